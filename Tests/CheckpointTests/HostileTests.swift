import Foundation
import Tensors
import Testing

@testable import Checkpoint

/// Files that must be refused with a typed error naming what and where — never a crash, never a result.
@Suite struct HostileTests {
    static let hostile = Paths.expectedFiles(hostile: true)

    @Test func hostileFixturesArePresent() {
        #expect(HostileTests.hostile.count >= 4)
    }

    /// Expected errors: Tests/Reference/make_fixtures.py (hand-written bytes; offsets from pickletools).
    @Test(arguments: hostile)
    func refusedAsExpected(_ name: String) throws {
        let exp = try Paths.json(name)
        let want = exp["expect_error"] as! [String: Any]
        let path = Paths.fixture(exp["file"] as! String)
        let error = #expect(throws: CheckpointError.self) { try Checkpoint(path: path) }
        guard let error else { return }
        #expect(error.file == path)
        #expect(error.offset == want["offset"] as? Int, "\(error)")
        #expect(error.part == want["entry"] as? String, "\(error)")
        switch want["kind"] as! String {
        case "refusedGlobal":
            #expect(
                error.kind == .refusedGlobal(module: want["module"] as! String, name: want["name"] as! String),
                "\(error)")
        case "unknownOpcode":
            #expect(error.kind == .unknownOpcode(UInt8(want["opcode"] as! Int)), "\(error)")
        default:
            Issue.record("unknown expectation \(want)")
        }
        // The message names the global (or opcode) and the offset.
        #expect(error.description.contains("byte \(want["offset"] as! Int)"))
    }

    /// A pickle built here byte by byte: (b'\x80\x02' GLOBAL 'os system' (S'echo' tR.)
    @Test func reduceOnSystemNamesGlobalAndOffset() throws {
        var p: [UInt8] = [0x80, 0x02]
        p += Array("cos\nsystem\n".utf8)
        p += [0x28] + Array("X".utf8) + [4, 0, 0, 0] + Array("echo".utf8) + [0x74, 0x52, 0x2E]
        let machine = PickleMachine(host: TorchHost())
        let error = #expect(throws: CheckpointError.self) {
            try p.withUnsafeBytes { raw in
                var r = ByteReader(raw, part: "test.pkl")
                _ = try machine.load(&r) { _ in 0 }
            }
        }
        #expect(error?.kind == .refusedGlobal(module: "os", name: "system"))
        #expect(error?.offset == 2)
        #expect(error?.description.contains("os.system") == true)
    }

    /// Every truncation of every small fixture, at every byte: a typed error, or (when only padding was
    /// cut) the same tensors. The cuts are read from memory, so the sweep stays quick.
    @Test(arguments: Paths.expectedFiles(hostile: false))
    func truncationNeverCrashes(_ name: String) throws {
        let exp = try Paths.json(name)
        let file = exp["file"] as! String
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Paths.fixture(file))))
        let whole = try Checkpoint(path: Paths.fixture(file)).stateDict()
        let wholeBytes = try whole.tensors.map { try $0.tensor.contiguousBytes() }
        var refused = 0
        for cut in 0..<bytes.count {
            let label = "\(file) cut at \(cut)"
            do {
                let sd = try Checkpoint(source: OwnedBytes(Array(bytes[0..<cut])), name: label).stateDict()
                let got = try sd.tensors.map { try $0.tensor.contiguousBytes() }
                #expect(sd.names == whole.names && got == wholeBytes, "\(label) read to different tensors")
            } catch let e as CheckpointError {
                #expect(e.file == label)
                refused += 1
            }
        }
        #expect(refused > 0)
    }

    /// Every truncation of the hostile files (the corpus, the four hand-written ones) and of the .swt
    /// fixture, at every byte: opening and reading every tensor gives a typed error or a result, never a
    /// crash (a cut can remove the defect: a tar cut before its duplicate member is a valid checkpoint).
    @Test(arguments: Self.truncationTargets)
    func truncatedHostileFilesNeverCrash(_ relative: String) throws {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Paths.fixture(relative))))
        var refused = 0
        for cut in 0..<bytes.count {
            let label = "\(relative) cut at \(cut)"
            do {
                let ckpt = try Checkpoint(source: OwnedBytes(Array(bytes[0..<cut])), name: label)
                try readEveryTensor(ckpt.root)
            } catch let e as CheckpointError {
                #expect(e.file == label, "\(e)")
                refused += 1
            }
        }
        #expect(refused > 0)
    }

    static var truncationTargets: [String] {
        let corpus = (try? FileManager.default.contentsOfDirectory(atPath: Paths.fixture("hostile"))) ?? []
        return corpus.filter { $0 != "manifest.json" }.sorted().map { "hostile/\($0)" }
            + Paths.expectedFiles(hostile: true).map { String($0.dropLast(".expected.json".count)) + ".pth" }
            + ["swt_small.swt"]
    }

    @Test func unknownFormatIsNamed() throws {
        let path = try temporaryFile(Array("hello world, not a checkpoint".utf8))
        let error = #expect(throws: CheckpointError.self) { try Checkpoint(path: path) }
        if case .unknownFormat? = error?.kind {
        } else {
            Issue.record("expected unknownFormat, got \(String(describing: error))")
        }
        let empty = try temporaryFile([])
        #expect(throws: CheckpointError.self) { try Checkpoint(path: empty) }
        #expect(throws: CheckpointError.self) { try Checkpoint(path: "/nonexistent/file.pth") }
    }

    /// Corrupting one data byte of a stored zip entry is caught by the CRC check, and only there.
    @Test func zipCRCMismatchIsAnError() throws {
        let good = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Paths.fixture("zip_dtypes.pth"))))
        let ckpt = try Checkpoint(path: Paths.fixture("zip_dtypes.pth"))
        let storage = ckpt.storages[0]
        let data = try storage.bytes()
        let offset = good.withUnsafeBytes { file in
            (0..<(file.count - data.count)).first { i in
                memcmp(file.baseAddress! + i, data.baseAddress!, data.count) == 0
            }!
        }
        var bad = good
        bad[offset] ^= 0xFF
        let path = try temporaryFile(bad)
        let sd = try Checkpoint(path: path).stateDict()
        let error = #expect(throws: CheckpointError.self) {
            for (_, t) in sd.tensors { _ = try t.float32() }
        }
        #expect(error?.description.contains("CRC-32") == true, "\(String(describing: error))")
        var lax = LoadOptions()
        lax.verifyCRC = false
        let unchecked = try Checkpoint(path: path, options: lax).stateDict()
        for (_, t) in unchecked.tensors { _ = try t.float32() }
    }

    @Test func tensorOutsideItsStorageIsRefused() throws {
        let s = try Storage(key: "0", dtype: .float32, count: 6, source: OwnedBytes(uninitializedCount: 24))
        #expect(throws: TensorError.self) { try Tensor(storage: s, shape: [2, 3], strides: [3, 1], storageOffset: 1) }
        #expect(throws: TensorError.self) {
            try Tensor(storage: s, shape: [Int.max, 2], strides: [1, 1], storageOffset: 0)
        }
        #expect(throws: TensorError.self) { try Tensor(storage: s, shape: [2], strides: [-1], storageOffset: 1) }
        #expect(throws: TensorError.self) {
            try Tensor(storage: s, shape: [2, 2], strides: [Int.max / 2, 1], storageOffset: 0)
        }
        #expect(throws: TensorError.self) { try Tensor.elementCount([1 << 32, 1 << 32]) }
        #expect(throws: TensorError.self) {
            try Storage(key: "1", dtype: .float64, count: Int.max / 4, source: OwnedBytes(uninitializedCount: 8))
        }
        _ = try Tensor(storage: s, shape: [3, 2], strides: [1, 3], storageOffset: 0)
        _ = try Tensor(storage: s, shape: [0, 5], strides: [5, 1], storageOffset: 6)
    }
}
