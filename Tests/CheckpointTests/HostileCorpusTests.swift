import Foundation
import Tensors
import Testing

@testable import Checkpoint

/// The hostile corpus, Tests/Fixtures/hostile/ (written by Tests/Reference/make_hostile.py): every file
/// is opened and every tensor read, and the first error must be exactly the one manifest.json names.
@Suite struct HostileCorpusTests {
    static let directory = Paths.fixtures.appendingPathComponent("hostile")

    nonisolated(unsafe) static let manifest: [[String: Any]] = {
        guard let data = try? Data(contentsOf: directory.appendingPathComponent("manifest.json")),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return [] }
        return json["files"] as? [[String: Any]] ?? []
    }()

    static var files: [String] { manifest.compactMap { $0["file"] as? String } }

    /// No vacuous pass: the directory and the manifest list the same files, at least 30 of them, each
    /// with its reason and a complete expectation.
    @Test func manifestListsEveryFile() throws {
        let onDisk = Set(try FileManager.default.contentsOfDirectory(atPath: Self.directory.path))
            .subtracting(["manifest.json"])
        let listed = Self.files
        #expect(listed.count >= 30)
        #expect(Set(listed).count == listed.count, "a file is listed twice")
        #expect(onDisk.subtracting(listed).isEmpty, "not in manifest.json: \(onDisk.subtracting(listed).sorted())")
        #expect(
            Set(listed).subtracting(onDisk).isEmpty,
            "missing from the directory: \(Set(listed).subtracting(onDisk).sorted())")
        for entry in Self.manifest {
            let name = entry["file"] as? String ?? "?"
            #expect((entry["hostile"] as? String)?.isEmpty == false, "\(name): no reason given")
            let expect = entry["expect"] as? [String: Any] ?? [:]
            for key in ["stage", "kind", "part", "offset", "tensor"] {
                #expect(expect.keys.contains(key), "\(name): expect has no '\(key)'")
            }
        }
        // Every reader is covered.
        #expect(Set(Self.manifest.compactMap { $0["format"] as? String }) == ["zip", "legacy", "tar", "swt"])
    }

    @Test(arguments: files)
    func refusedExactly(_ file: String) throws {
        let entry = try #require(Self.manifest.first { $0["file"] as? String == file })
        let want = entry["expect"] as! [String: Any]
        let path = Self.directory.appendingPathComponent(file).path

        let (stage, readTensor, error) = Self.firstError(path)
        guard let error else {
            Issue.record("\(file) was read without an error; expected \(want)")
            return
        }
        #expect(stage == want["stage"] as? String, "\(file): \(error)")
        if stage == "read" { #expect(readTensor == want["read_tensor"] as? String, "\(file): \(error)") }
        #expect(error.file == path)
        #expect(error.part == want["part"] as? String, "\(file): part of \(error)")
        #expect(error.offset == want["offset"] as? Int, "\(file): offset of \(error)")
        #expect(error.tensor == want["tensor"] as? String, "\(file): tensor of \(error)")

        // The kind and its payload, exactly: every field the error has, the manifest names.
        let got = Self.canonical(error.kind)
        let payload = want.filter { !["stage", "read_tensor", "part", "offset", "tensor", "detail"].contains($0.key) }
        #expect(Set(got.keys) == Set(payload.keys), "\(file): \(got) vs \(payload)")
        for (key, value) in got {
            #expect("\(value)" == "\(payload[key] ?? "nil")", "\(file): \(key) of \(error)")
        }
        let message = error.description
        if let detail = want["detail"] as? String {
            #expect(message.contains(detail), "\(file): '\(detail)' not in: \(message)")
        } else {
            #expect(got.count > 1, "\(file): a \(got["kind"]!) error needs a detail to be exact")
        }

        // The message says what and where.
        #expect(message.hasPrefix(path + ": "), "\(message)")
        if let offset = error.offset { #expect(message.contains("byte \(offset)")) }
        if let tensor = error.tensor { #expect(message.contains("tensor '\(tensor)'")) }
        switch error.kind {
        case .refusedGlobal(let m, let n): #expect(message.contains("refused global \(m).\(n)"))
        case .limitExceeded(let cap, let limit, _): #expect(message.contains("\(cap.qualifiedName) = \(limit)"))
        default: break
        }
    }

    /// The valid file the .swt cases are cut from reads to its tensors, so each case differs by its defect.
    @Test func swtBaseIsValid() throws {
        let ckpt = try Checkpoint(path: Paths.fixture("swt_small.swt"))
        let sd = try ckpt.stateDict()
        #expect(sd.names == ["a", "b"])
        #expect(try sd["a"]!.float32() == [1, 2, 3, 4])
        #expect(sd["a"]!.shape == [2, 2])
        let b = try sd["b"]!.contiguousBytes()
        #expect(b.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) } == [-7, 1 << 40])
    }

    /// Opens `path` and reads every tensor; the first error and where it happened.
    static func firstError(_ path: String) -> (stage: String, tensor: String?, error: CheckpointError?) {
        let ckpt: Checkpoint
        do {
            ckpt = try Checkpoint(path: path)
        } catch let e as CheckpointError {
            return ("open", nil, e)
        } catch {
            Issue.record("\(path): untyped error \(error)")
            return ("open", nil, nil)
        }
        var pending: [(Value, String)] = [(ckpt.root, "")]
        while let (v, name) = pending.popLast() {
            switch v {
            case .tensor(let t):
                do { _ = try t.contiguousBytes() } catch let e as CheckpointError {
                    return ("read", name, e)
                } catch {
                    Issue.record("\(path): untyped error \(error) reading \(name)")
                }
            case .list(let items), .tuple(let items), .set(let items):
                pending += items.map { ($0, name) }
            case .dict(let d):
                pending += d.entries.map { ($0.value, $0.key.string ?? name) }
            default:
                break
            }
        }
        return ("read", nil, nil)
    }

    /// An error kind as the manifest spells it: the case, and its payload except free text.
    static func canonical(_ kind: CheckpointError.Kind) -> [String: Any] {
        func caseName(_ x: Any) -> String { Mirror(reflecting: x).children.first?.label ?? "\(x)" }
        switch kind {
        case .truncated(let needed, let available):
            return ["kind": "truncated", "needed": needed, "available": available]
        case .unknownOpcode(let op): return ["kind": "unknownOpcode", "opcode": Int(op)]
        case .refusedGlobal(let module, let name): return ["kind": "refusedGlobal", "module": module, "name": name]
        case .limitExceeded(let cap, let limit, _):
            return ["kind": "limitExceeded", "cap": cap.rawValue, "limit": limit]
        case .unsafeEntryName(let name): return ["kind": "unsafeEntryName", "name": name]
        case .invalidTensor(let e): return ["kind": "invalidTensor", "tensor_error": caseName(e)]
        case .swtHeader(let e): return ["kind": "swtHeader", "swt_error": caseName(e)]
        case .stateDict(let e): return ["kind": "stateDict", "state_dict_error": caseName(e)]
        default: return ["kind": caseName(kind)]
        }
    }
}
