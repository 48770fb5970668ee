import Checksums
import Foundation
import Tensors
import Testing

@testable import Checkpoint

/// A fresh temporary directory, removed by the caller.
func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("pth2swt-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// The source's tensors, one by one: same names in the same order, dtypes, shapes and bytes.
func expectSameTensors(_ a: StateDict, _ b: StateDict, _ what: String) throws {
    #expect(a.names == b.names, "\(what): names differ")
    for (name, ta) in a.tensors {
        guard let tb = b[name] else { continue }
        #expect(
            ta.dtype == tb.dtype && ta.shape == tb.shape,
            "\(what): \(name) is \(tb.dtype) \(tb.shape), want \(ta.dtype) \(ta.shape)")
        #expect(try ta.contiguousBytes() == tb.contiguousBytes(), "\(what): \(name) bytes differ")
    }
}

@Suite struct ConvertTests {
    static let sources = Paths.expectedFiles(hostile: false).map {
        String($0.dropLast(".expected.json".count)) + ".pth"
    }

    /// source → .swt → .pth → .swt, exact at every step (Tests/Fixtures, written by make_fixtures.py).
    @Test(arguments: sources)
    func roundTripIsExact(_ name: String) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let src = try Checkpoint(path: Paths.fixture(name))
        let sd = try src.stateDict()
        let swt1 = dir.appendingPathComponent("a.swt").path
        let pth = dir.appendingPathComponent("b.pth").path
        let swt2 = dir.appendingPathComponent("c.swt").path
        try SWTWriter.write(sd, to: swt1, converter: "test")
        let c1 = try Checkpoint(path: swt1)
        #expect(c1.format == .swt)
        try expectSameTensors(sd, try c1.stateDict(), "\(name) → swt")
        try PTHWriter.write(try c1.stateDict(), to: pth)
        let c2 = try Checkpoint(path: pth)
        #expect(c2.format == .zip)
        try expectSameTensors(sd, try c2.stateDict(), "\(name) → swt → pth")
        try SWTWriter.write(try c2.stateDict(), to: swt2, converter: "test")
        try expectSameTensors(sd, try Checkpoint(path: swt2).stateDict(), "\(name) → swt → pth → swt")
        // No temporary files are left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["a.swt", "b.pth", "c.swt"])
    }

    /// A .pth written straight from the source keeps views: same storage sharing, offsets, strides.
    @Test(arguments: sources)
    func pthKeepsViews(_ name: String) throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sd = try Checkpoint(path: Paths.fixture(name)).stateDict()
        let pth = dir.appendingPathComponent("v.pth").path
        try PTHWriter.write(sd, to: pth)
        let back = try Checkpoint(path: pth).stateDict()
        try expectSameTensors(sd, back, "\(name) → pth")
        var groupsA: [ObjectIdentifier: [String]] = [:], groupsB: [ObjectIdentifier: [String]] = [:]
        for (n, t) in sd.tensors { groupsA[ObjectIdentifier(t.storage.base), default: []].append(n) }
        for (n, t) in back.tensors { groupsB[ObjectIdentifier(t.storage.base), default: []].append(n) }
        #expect(Set(groupsA.values) == Set(groupsB.values), "\(name): storage sharing changed")
        for (n, t) in sd.tensors {
            let u = back[n]!
            #expect(u.strides == t.strides, "\(name): \(n) strides")
            #expect(u.storageOffset == t.storage.rootOffset + t.storageOffset, "\(name): \(n) offset")
        }
    }

    @Test func viewsFixtureReallyHasViews() throws {
        // Guards the test above against passing vacuously.
        let sd = try Checkpoint(path: Paths.fixture("zip_views.pth")).stateDict()
        let bases = Set(sd.tensors.map { ObjectIdentifier($0.tensor.storage.base) })
        #expect(bases.count < sd.count)
        #expect(sd.tensors.contains { !$0.tensor.isContiguous })
        #expect(sd.tensors.contains { $0.tensor.storageOffset > 0 })
    }

    @Test func swtLayoutIsAligned() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in Self.sources {
            let sd = try Checkpoint(path: Paths.fixture(name)).stateDict()
            let path = dir.appendingPathComponent("\(name).swt").path
            let report = try SWTWriter.write(sd, to: path, converter: "test")
            #expect(report.dataStart % 64 == 0, "\(name): data starts at \(report.dataStart)")
            for e in report.entries {
                #expect(e.begin % e.dtype.itemSize == 0, "\(name): \(e.name) at \(e.begin)")
                // What can be 64-aligned is: every tensor whose size is a multiple of 64 bytes.
                if (e.end - e.begin) % 64 == 0 { #expect(e.begin % 64 == 0, "\(name): \(e.name) at \(e.begin)") }
            }
        }
    }

    @Test func dataOrderKeepsElementAlignment() {
        // Odd sizes of every width, in an order that would misalign naive packing.
        let sizes: [(bytes: Int, itemSize: Int)] = [
            (3, 1), (4000, 4), (8, 8), (6, 2), (256, 4), (12, 4), (24, 8), (1, 1), (10, 2),
        ]
        let order = SWTWriter.dataOrder(sizes)
        #expect(order.sorted() == Array(sizes.indices))
        var offset = 0
        for i in order {
            #expect(offset % sizes[i].itemSize == 0, "entry \(i) at \(offset)")
            offset += sizes[i].bytes
        }
        #expect(order.first == 4)  // the 256-byte tensor leads, aligned
        #expect(order[1] == 1)  // then the largest of the rest, still at a 64-byte boundary
    }

    @Test func metadataRecordsSourceAndValues() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let ckpt = try Checkpoint(path: Paths.fixture("zip_nested.pth"))
        let sd = try ckpt.stateDict()
        let values: [(name: String, value: Value)] = [
            ("epoch", .int(3)), ("lr", .float(0.1)), ("blob", .bytes([1, 2])),
        ]
        let source = SourceInfo(
            fileName: "zip_nested.pth", bytes: ckpt.fileSize, sha256: try Checksums.sha256Hex(file: ckpt.path),
            format: .zip)
        let path = dir.appendingPathComponent("m.swt").path
        let report = try SWTWriter.write(sd, to: path, values: values, source: source, converter: "pth2swt test")
        #expect(report.droppedValues == ["blob"])
        let back = try Checkpoint(path: path)
        let meta = Dictionary(back.textMetadata.map { ($0.key, $0.value) }, uniquingKeysWith: { a, _ in a })
        #expect(meta["source.file"] == "zip_nested.pth")
        #expect(meta["source.bytes"] == String(ckpt.fileSize))
        #expect(meta["source.format"] == "zip")
        #expect(meta["source.sha256"]?.count == 64)
        #expect(meta["value.epoch"] == "3")
        #expect(meta["value.lr"] == "0.1")
        #expect(meta["pth2swt.values_not_kept"] == "[\"blob\"]")
        let backSD = try back.stateDict()
        #expect(backSD.values.map(\.name) == ["epoch", "lr"])
    }

    @Test func metadataAttributeSurvivesBothWriters() throws {
        // module-prefixed fixture with torch's _metadata (make_fixtures.py: zip_nested).
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sd = try Checkpoint(path: Paths.fixture("zip_nested.pth")).stateDict()
        guard let meta = sd.metadata?.json else {
            Issue.record("zip_nested.pth has no _metadata; the fixture changed")
            return
        }
        let swt = dir.appendingPathComponent("m.swt").path
        let pth = dir.appendingPathComponent("m.pth").path
        try SWTWriter.write(sd, to: swt, converter: "test")
        let viaSWT = try Checkpoint(path: swt).stateDict()
        #expect(viaSWT.metadata?.json == meta)
        try PTHWriter.write(viaSWT, to: pth)
        #expect(try Checkpoint(path: pth).stateDict().metadata?.json == meta)
    }

    @Test func castMatchesTorch() throws {
        // Tests/Reference/make_casts.py (torch 1.13): torch's own float16/bfloat16/float32 casts.
        let exp = try Paths.json("casts.expected.json")
        func bits(_ key: String, _ field: String) -> [UInt64] {
            ((exp[key] as! [String: Any])[field] as! [String]).map { UInt64($0, radix: 16)! }
        }
        for (source, size) in [("float32", 4), ("float64", 8)] {
            let input = bits(source, "input")
            var raw = [UInt8]()
            for v in input { for b in 0..<size { raw.append(UInt8(truncatingIfNeeded: v >> (8 * b))) } }
            let targets: [(String, DType)] =
                source == "float32"
                ? [("float16", .float16), ("bfloat16", .bfloat16)]
                : [("float16", .float16), ("bfloat16", .bfloat16), ("float32", .float32)]
            for (field, dtype) in targets {
                let want = bits(source, field)
                var out = [UInt8](repeating: 0, count: input.count * dtype.itemSize)
                raw.withUnsafeBytes { s in
                    out.withUnsafeMutableBytes { d in
                        Cast.floats(
                            DType(rawValue: source)!, s.baseAddress!, to: dtype, d.baseAddress!, count: input.count)
                    }
                }
                var wrong: [String] = []
                for i in 0..<input.count {
                    var got: UInt64 = 0
                    for b in 0..<dtype.itemSize { got |= UInt64(out[i * dtype.itemSize + b]) << (8 * b) }
                    if got != want[i] {
                        wrong.append(
                            "\(String(input[i], radix: 16)) → \(String(got, radix: 16)), torch \(String(want[i], radix: 16))"
                        )
                    }
                }
                #expect(wrong.isEmpty, "\(source) → \(field): \(wrong.prefix(5))")
            }
        }
    }

    @Test func castKeepsViewsInPth() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sd = try Checkpoint(path: Paths.fixture("zip_views.pth")).stateDict()
        let pth = dir.appendingPathComponent("h.pth").path
        try PTHWriter.write(sd, to: pth, dtype: .float16)
        let back = try Checkpoint(path: pth).stateDict()
        for (name, t) in sd.tensors {
            let u = back[name]!
            #expect(u.dtype == (t.dtype.isFloatingPoint ? .float16 : t.dtype))
            #expect(u.strides == t.strides && u.shape == t.shape)
            if t.dtype.isFloatingPoint {
                let want = try t.contiguousBytes(as: .float16)
                #expect(try u.contiguousBytes() == want, "\(name)")
            }
        }
    }

    @Test func pthEntriesAreAlignedAndZip64Reads() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sd = try Checkpoint(path: Paths.fixture("zip_dtypes.pth")).stateDict()
        for force in [false, true] {
            let pth = dir.appendingPathComponent("z\(force).pth").path
            try PTHWriter.write(sd, to: pth, forceZip64: force)
            let file = try MappedFile(path: pth)
            let archive = try ZipArchive(file)
            #expect(archive.entries.map(\.name).first == "archive/data.pkl")
            #expect(archive.entries.map(\.name).last == "archive/version")
            for e in archive.entries where e.name.hasPrefix("archive/data/") {
                let data = try archive.storedData(e)!.bytes()
                let offset = data.baseAddress! - (try file.bytes()).baseAddress!
                #expect(offset % 64 == 0, "\(e.name) at \(offset) (zip64: \(force))")
            }
            let ckpt = try Checkpoint(path: pth)
            #expect(ckpt.globals.first == "collections.OrderedDict")
            #expect(ckpt.globals.contains("torch._utils._rebuild_tensor_v2"))
            try expectSameTensors(sd, try ckpt.stateDict(), "zip64 \(force)")
        }
    }

    @Test func failedConversionLeavesNothing() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // A storage whose CRC is wrong fails mid-write, after the header is out.
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: Paths.fixture("zip_dtypes.pth"))))
        let archive = try ZipArchive(try MappedFile(path: Paths.fixture("zip_dtypes.pth")))
        let entry = archive.entries.first { $0.name.hasSuffix("data/0") }!
        let data = try archive.storedData(entry)!.bytes()
        let needle = [UInt8](data.prefix(16))
        let at = (0..<(bytes.count - 16)).first { Array(bytes[$0..<($0 + 16)]) == needle }!
        bytes[at] ^= 0xFF
        let bad = dir.appendingPathComponent("bad.pth").path
        try Data(bytes).write(to: URL(fileURLWithPath: bad))
        let sd = try Checkpoint(path: bad).stateDict()
        for out in ["o.swt", "o.pth"] {
            let path = dir.appendingPathComponent(out).path
            #expect(throws: CheckpointError.self) {
                if out.hasSuffix("swt") {
                    try SWTWriter.write(sd, to: path, converter: "test")
                } else {
                    try PTHWriter.write(sd, to: path)
                }
            }
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["bad.pth"])
    }
}
