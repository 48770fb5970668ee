import Foundation
import Tensors
import TestSupport
import Testing

@testable import Checkpoint

/// The full-size ResNet-18 checkpoints in ../shared/weights, against per-tensor checksums that
/// Tests/Reference/shared_checksums.py computed with torch 1.13's torch.load.
@Suite(.enabled(if: Paths.sharedAvailable, Paths.sharedSkipReason))
struct SharedWeightsTests {
    static func expected() throws -> [String: Any] { try Paths.json("resnet18-shared.expected.json") }

    @Test(arguments: ["resnet18-tar.pth", "resnet18-legacy.pth", "resnet18-zip.pth"])
    func fullFileMatchesTorch(_ file: String) throws {
        let exp = try SharedWeightsTests.expected()
        #expect(exp["generator"] as? String == "Tests/Reference/shared_checksums.py")
        let want = exp["tensors"] as! [[String: Any]]
        let ckpt = try Checkpoint(path: Paths.sharedFile(file))
        let info = (exp["files"] as! [String: [String: Any]])[file]!
        #expect(ckpt.format.rawValue == info["format"] as? String)
        let sd = try ckpt.stateDict()
        #expect(sd.count == 102)
        #expect(want.count == 102)
        for (w, (name, t)) in zip(want, sd.tensors) {
            #expect(name == w["name"] as? String)
            #expect(t.dtype.rawValue == w["dtype"] as? String)
            #expect(t.shape == w["shape"] as! [Int], "\(name)")
            #expect(t.strides == w["stride"] as! [Int], "\(name)")
            #expect(t.storageOffset == w["storage_offset"] as? Int, "\(name)")
            let bytes = try t.contiguousBytes()
            #expect(SHA256.hex(bytes) == w["sha256"] as? String, "\(file): \(name) differs from torch.load")
            let floats = try t.float32()
            let first = (w["first"] as! [Double]).map(Float.init)
            #expect(Array(floats.prefix(first.count)) == first, "\(name)")
        }
        #expect(!sd.names.contains { $0.hasSuffix("num_batches_tracked") })
    }

    @Test func threeFormatsReadIdentically() throws {
        let sds = try ["resnet18-tar.pth", "resnet18-legacy.pth", "resnet18-zip.pth"].map {
            try Checkpoint(path: Paths.sharedFile($0)).stateDict()
        }
        #expect(sds[0].names == sds[1].names && sds[1].names == sds[2].names)
        for name in sds[0].names {
            let a = try sds[0][name]!.float32()
            let b = try sds[1][name]!.float32(), c = try sds[2][name]!.float32()
            #expect(sameBits(a, b) && sameBits(a, c), "\(name)")
        }
    }

    /// Each full-size file cut at 64 deterministic offsets (32 spread over the file, 16 in its first and
    /// 16 in its last 64 KiB, where the headers, pickles and directories are): opening and reading every
    /// tensor gives a typed error, or the same state dict when only end padding was cut.
    @Test(arguments: ["resnet18-tar.pth", "resnet18-legacy.pth", "resnet18-zip.pth"])
    func truncatedAtSampledOffsets(_ file: String) throws {
        let mapped = try MappedFile(path: Paths.sharedFile(file))
        let size = mapped.count
        let names = try Checkpoint(path: Paths.sharedFile(file)).stateDict().names
        var rng = TestRandom(seed: 0x9E37_79B9_7F4A_7C15)
        func next(_ bound: Int) -> Int { rng.int(0...(bound - 1)) }  // the same offsets on every run
        var cuts = (0..<32).map { size / 32 * $0 + next(size / 32) }
        cuts += (0..<16).map { _ in next(65_536) }
        cuts += (0..<16).map { _ in size - 1 - next(65_536) }
        #expect(Set(cuts).count == 64)
        var refused = 0
        for cut in cuts {
            let label = "\(file) cut at \(cut)"
            do {
                let ckpt = try Checkpoint(source: SliceSource(mapped, offset: 0, count: cut), name: label)
                try readEveryTensor(ckpt.root)
                #expect(try ckpt.stateDict().names == names, "\(label) read to a different state dict")
            } catch let e as CheckpointError {
                #expect(e.file == label, "\(e)")
                refused += 1
            }
        }
        #expect(refused >= 60, "\(file): only \(refused) of 64 cuts were refused")
    }

    /// The real file's first MiB: sys_info, pickle and tensors parse whole; 102 tensors with
    /// torchvision's names and shapes in file order; the first 16 storages whole; a full read fails
    /// with a truncation error.
    @Test func authenticHead() throws {
        let exp = try SharedWeightsTests.expected()
        let head = exp["head"] as! [String: Any]
        let path = Paths.sharedFile(head["file"] as! String)
        let error = #expect(throws: CheckpointError.self) { try Checkpoint(path: path) }
        if case .truncated? = error?.kind {
        } else {
            Issue.record("expected a truncation error, got \(String(describing: error))")
        }
        #expect(error?.part == "tar member 'storages'")

        let (root, whole, cut) = try TarFormat.salvage(path: path)
        if case .truncated? = cut?.kind {
        } else {
            Issue.record("salvage should report the cut, got \(String(describing: cut))")
        }
        let sd = try StateDict(from: root)
        let want = exp["tensors"] as! [[String: Any]]
        #expect(sd.names == want.map { $0["name"] as! String })
        #expect(sd.tensors.map(\.tensor.shape) == want.map { $0["shape"] as! [Int] })

        let records = head["storage_records"] as! [[String: Any]]
        #expect(whole.count == head["whole_storages"] as? Int)
        #expect(whole.count == 16)
        let file = try MappedFile(path: path)
        for (rec, w) in zip(whole, records) {
            #expect(rec.key == String(w["key"] as! Int))
            #expect(rec.count == w["numel"] as? Int)
            #expect(rec.dataOffset == w["data_offset"] as? Int)
            let bytes = [UInt8](
                UnsafeRawBufferPointer(rebasing: try file.bytes()[rec.dataOffset..<(rec.dataOffset + rec.count * 4)]))
            #expect(SHA256.hex(bytes) == w["sha256"] as? String, "storage \(rec.key)")
            // Tensors on a whole storage materialise to those bytes; conv1.weight among them.
            for name in w["tensors"] as! [String] {
                #expect(try sd[name]!.contiguousBytes() == bytes, "\(name)")
            }
        }
        #expect(
            whole.contains { rec in
                (records.first { String($0["key"] as! Int) == rec.key }?["tensors"] as? [String])?.contains(
                    "conv1.weight") == true
            })
        // A tensor past the cut says so when read.
        let last = sd.tensors.last!.tensor
        #expect(throws: CheckpointError.self) { try last.float32() }
    }
}

/// tar / legacy / zip → .swt → .pth → .swt for the full-size files, exact at every step, and the .swt
/// layout puts every ResNet-18 tensor on a 64-byte boundary.
@Suite(.enabled(if: Paths.sharedAvailable, Paths.sharedSkipReason))
struct SharedRoundTripTests {
    @Test(arguments: ["resnet18-tar.pth", "resnet18-legacy.pth", "resnet18-zip.pth"])
    func roundTrip(_ file: String) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = try Checkpoint(path: Paths.sharedFile(file))
        let sd = try src.stateDict()
        #expect(sd.count == 102)
        let swt = dir.appendingPathComponent("r.swt").path, pth = dir.appendingPathComponent("r.pth").path
        let swt2 = dir.appendingPathComponent("r2.swt").path
        let report = try SWTWriter.write(sd, to: swt, converter: "test")
        #expect(report.entries.allSatisfy { $0.begin % 64 == 0 }, "a tensor is not 64-byte aligned")
        #expect(report.dataStart % 64 == 0)
        let viaSWT = try Checkpoint(path: swt).stateDict()
        try expectSameTensors(sd, viaSWT, "\(file) → swt")
        try PTHWriter.write(viaSWT, to: pth)
        let viaPTH = try Checkpoint(path: pth).stateDict()
        try expectSameTensors(sd, viaPTH, "\(file) → swt → pth")
        try SWTWriter.write(viaPTH, to: swt2, converter: "test")
        try expectSameTensors(sd, try Checkpoint(path: swt2).stateDict(), "\(file) → swt → pth → swt")
        // Both .swt files are the same bytes: the output does not depend on the route.
        let fa = try MappedFile(path: swt), fb = try MappedFile(path: swt2)
        let a = try fa.bytes(), b = try fb.bytes()
        #expect(a.count == b.count && memcmp(a.baseAddress!, b.baseAddress!, a.count) == 0)
    }
}
