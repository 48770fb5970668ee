import Foundation
import Tensors
import Testing

@testable import Checkpoint

/// What the fuzzers found (Tests/Fixtures/fuzz/HARNESS/, as scripts/fuzz.sh saved them), replayed the way
/// the harness ran them: each must end quickly in a CheckpointError or a result, never a crash or a hang.
@Suite struct FuzzRegressionTests {
    static let directory = Paths.fixtures.appendingPathComponent("fuzz")

    static var findings: [String] {
        let fm = FileManager.default
        let harnesses = (try? fm.contentsOfDirectory(atPath: directory.path)) ?? []
        return harnesses.sorted().flatMap { h in
            ((try? fm.contentsOfDirectory(atPath: directory.appendingPathComponent(h).path)) ?? []).sorted().map {
                "\(h)/\($0)"
            }
        }
    }

    @Test func everyFindingIsKept() {
        #expect(Self.findings.count >= 2)
    }

    @Test(arguments: findings)
    func findingEndsInTypedErrorQuickly(_ finding: String) throws {
        let bytes = [UInt8](try Data(contentsOf: Self.directory.appendingPathComponent(finding)))
        let harness = String(finding.prefix { $0 != "/" })
        let clock = ContinuousClock()
        let elapsed = clock.measure {
            do {
                if harness == "pickle" {
                    try Self.replayPickle(bytes)
                } else {
                    let format = try #require(CheckpointFormat(rawValue: harness))
                    let ckpt = try Checkpoint(source: OwnedBytes(bytes), name: finding, format: format)
                    try readEveryTensor(ckpt.root)
                }
            } catch is CheckpointError {
            } catch {
                Issue.record("\(finding): untyped error \(error)")
            }
        }
        #expect(elapsed < .seconds(10), "\(finding) took \(elapsed)")
    }

    /// The pickle harness: one pickle through the machine with torch's allowlist; zip-style persistent
    /// ids get small zero-filled storages.
    static func replayPickle(_ bytes: [UInt8]) throws {
        let host = TorchHost { pid in
            guard case .tuple(let t) = pid, t.items.count >= 5, let key = asciiString(t.items[2]),
                case .int(let numel) = t.items[4], (0...4096).contains(numel)
            else { throw CheckpointError(.badPersistentID("test: ('storage', type, key, location, numel ≤ 4096)")) }
            let dtype = try storageDType(t.items[1], "storage \(key)")
            let source = OwnedBytes([UInt8](repeating: 0, count: Int(numel) * dtype.itemSize))
            return .object(StorageObject(try Storage(key: key, dtype: dtype, count: Int(numel), source: source)))
        }
        var log = GlobalLog()
        try bytes.withUnsafeBytes { raw in
            var r = ByteReader(raw, part: "finding.pkl")
            let value = try runPickle(&r, host: host, options: LoadOptions(), log: &log).result
            try Checkpoint.checkTensorBytes(value, fileBytes: bytes.count, options: LoadOptions())
            try readEveryTensor(value)
        }
    }
}
