import Checkpoint
import Checksums
import Foundation
import Tensors
import Testing

/// Tests/Fixtures/kinds/: quantized, sparse, complex, meta and newer-dtype tensors with their expected
/// values, written by Tests/Reference/make_tensor_kinds.py with torch 1.13 (v3_dtypes.pth is built by hand
/// there, since torch 1.13 cannot write those dtypes; its float values come from ml_dtypes 0.5.4).
@Suite struct TensorKindsFixtureTests {
    static let stems = [
        "quantized_mobilenet_v2", "quantized_kinds", "sparse_kinds", "complex", "meta", "v3_dtypes",
    ]

    static func expected(_ stem: String) throws -> [String: Any] { try Paths.json("kinds/\(stem).expected.json") }
    static func path(_ stem: String) -> String { Paths.fixture("kinds/\(stem).pth") }

    /// `hex` or `sha256` of `bytes`, whichever the entry records under `field_hex` / `field_sha256`.
    func expectBytes(_ bytes: [UInt8], _ entry: [String: Any], _ field: String, _ what: String) {
        if let h = entry[field + "_hex"] as? String {
            #expect(hex(bytes) == h, "\(what): \(field)")
        } else if let s = entry[field + "_sha256"] as? String {
            #expect(bytes.withUnsafeBytes { Checksums.sha256Hex($0) } == s, "\(what): \(field)")
        } else {
            Issue.record("\(what): the fixture records no \(field)")
        }
    }

    /// Float32 values compared bit for bit, except that any NaN matches any NaN (ml_dtypes drops payloads).
    func expectFloats(_ got: [Float], hex expectedHex: String, _ what: String) {
        var bytes: [UInt8] = []
        var i = expectedHex.startIndex
        while i < expectedHex.endIndex {
            let j = expectedHex.index(i, offsetBy: 2)
            bytes.append(UInt8(expectedHex[i..<j], radix: 16)!)
            i = j
        }
        let want = stride(from: 0, to: bytes.count, by: 4).map { k in
            Float(
                bitPattern: UInt32(bytes[k]) | UInt32(bytes[k + 1]) << 8 | UInt32(bytes[k + 2]) << 16 | UInt32(
                    bytes[k + 3]) << 24)
        }
        #expect(got.count == want.count, "\(what): count")
        for (k, (g, w)) in zip(got, want).enumerated() where !(g.isNaN && w.isNaN) && g.bitPattern != w.bitPattern {
            Issue.record("\(what)[\(k)]: \(g) (0x\(String(g.bitPattern, radix: 16))), expected \(w)")
            return
        }
    }

    /// Equal up to a few units in the last place: Foundation's JSON parser on Linux can round a 17-digit
    /// decimal one ulp away from the double Python printed. The bytes themselves are compared exactly
    /// through `dequantized_f32`.
    func close(_ a: [Double], _ b: [Double]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { abs($0 - $1) <= 4 * max(abs($0), abs($1)).ulp }
    }

    @Test(arguments: stems) func readsEveryTensorAsTorchMadeIt(_ stem: String) throws {
        let exp = try Self.expected(stem)
        let ckpt = try Checkpoint(path: Self.path(stem))
        let sd = try ckpt.stateDict()
        let tensors = exp["tensors"] as! [[String: Any]]
        #expect(sd.names == tensors.map { $0["name"] as! String })
        #expect(Set(ckpt.globals) == Set(exp["globals"] as! [String]))
        for e in tensors {
            let name = e["name"] as! String
            guard let t = sd[name] else { continue }
            #expect(t.dtype.rawValue == e["dtype"] as! String, "\(name)")
            #expect(t.shape == e["shape"] as! [Int], "\(name)")
            #expect((t.sparse?.layout.rawValue ?? "strided") == e["layout"] as! String, "\(name)")
            #expect((t.hasData ? "cpu" : "meta") == e["device"] as! String, "\(name)")
            #expect(t.requiresGrad == (e["requires_grad"] as? Bool ?? false), "\(name)")
            if e["layout"] as! String == "strided", let stride = e["stride"] as? [Int] {
                #expect(t.strides == stride, "\(name)")
                #expect(t.storageOffset == (e["storage_offset"] as? Int ?? 0), "\(name)")
            }
            if let qscheme = e["qscheme"] as? String {
                let q = try #require(t.quantization, "\(name) is quantized")
                #expect(q.effectiveScheme.rawValue == qscheme, "\(name)")
                expectBytes(try t.contiguousBytes(), e, "int_repr", name)
                expectBytes(try t.dequantized().contiguousBytes(), e, "dequantized_f32", name)
                switch q.parameters {
                case .perTensor(let scale, let zeroPoint):
                    #expect(scale == e["scale"] as? Double, "\(name)")
                    #expect(Int(zeroPoint) == e["zero_point"] as? Int, "\(name)")
                case .perChannel(let scales, let zeros, let axis):
                    #expect(axis == e["axis"] as? Int, "\(name)")
                    #expect(scales.dtype.rawValue == e["scales_dtype"] as? String, "\(name)")
                    #expect(zeros.dtype.rawValue == e["zero_points_dtype"] as? String, "\(name)")
                    if let s = e["scales"] as? [Double] {
                        #expect(close(try scales.float64Values(), s), "\(name)")
                    } else {
                        expectBytes(try scales.contiguousBytes(), e, "scales", name)
                    }
                    if let z = e["zero_points"] as? [Double] {
                        #expect(close(try zeros.float64Values(), z), "\(name)")
                    } else {
                        expectBytes(try zeros.contiguousBytes(), e, "zero_points", name)
                    }
                }
            } else if let components = e["components"] as? [[String: Any]] {
                let parts = try #require(t.sparse, "\(name) is sparse")
                expectBytes(try t.contiguousBytes(), e, "dense", name)
                #expect(parts.components.map(\.name) == components.map { $0["name"] as! String }, "\(name)")
                for (c, ce) in zip(parts.components, components) {
                    #expect(c.tensor.shape == ce["shape"] as! [Int], "\(name).\(c.name)")
                    expectBytes(try c.tensor.contiguousBytes(), ce, "bytes", "\(name).\(c.name)")
                }
            } else if t.hasData {
                expectBytes(try t.contiguousBytes(), e, "bytes", name)
                if let f = e["float32_hex"] as? String, t.dtype.isFloat8 {
                    expectFloats(try t.float32(), hex: f, name)
                }
            } else {
                #expect(t.strides == e["stride"] as! [Int], "\(name)")
                #expect(throws: TensorError.self) { try t.contiguousBytes() }
            }
        }
        let values = exp["values"] as? [[String: Any]] ?? []
        #expect(sd.values.map(\.name) == values.map { $0["name"] as! String })
    }

    /// .pth out and back through pth2swt's own reader: every kind keeps its dtype, layout, integers,
    /// parameters and values (tests of the same files with torch 1.13: Tests/Reference/check_outputs.py).
    @Test(arguments: stems) func pthRoundTripKeepsEveryKind(_ stem: String) throws {
        let sd = try Checkpoint(path: Self.path(stem)).stateDict()
        let out = NSTemporaryDirectory() + "kinds-\(stem)-\(getpid()).pth"
        defer { try? FileManager.default.removeItem(atPath: out) }
        try PTHWriter.write(sd, to: out)
        let back = try Checkpoint(path: out).stateDict()
        #expect(Set(back.names) == Set(sd.names))
        #expect(back.values.map(\.name) == sd.values.map(\.name))
        for (name, t) in sd.tensors {
            let u = try #require(back[name])
            #expect(u.dtype == t.dtype && u.shape == t.shape && u.hasData == t.hasData, "\(name)")
            #expect(
                u.sparse?.layout == t.sparse?.layout
                    && u.quantization?.effectiveScheme == t.quantization?.effectiveScheme, "\(name)")
            guard t.hasData else { continue }
            #expect(try u.contiguousBytes() == t.contiguousBytes(), "\(name)")
            if t.quantization != nil {
                #expect(try u.dequantized().contiguousBytes() == t.dequantized().contiguousBytes(), "\(name)")
            }
        }
    }

    /// .swt out and back: quantized tensors as integers with NAME.scale / NAME.zero_point, or dequantized;
    /// sparse dense or as components; complex128 as float64 pairs; meta refused or left out.
    @Test func swtWritesEveryKindInSafetensorsNames() throws {
        let dir = NSTemporaryDirectory() + "kinds-swt-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let q = try Checkpoint(path: Self.path("quantized_kinds")).stateDict()
        try SWTWriter.write(q, to: dir + "/q.swt", converter: "test")
        let qb = try Checkpoint(path: dir + "/q.swt").stateDict()
        let pc = try #require(q["qc_axis1"])
        #expect(try qb["qc_axis1"]!.contiguousBytes() == pc.contiguousBytes() && qb["qc_axis1"]!.dtype == .int8)
        if case .perChannel(let scales, let zeros, _)? = pc.quantization?.parameters {
            #expect(try qb["qc_axis1.scale"]!.contiguousBytes() == scales.contiguousBytes())
            #expect(try qb["qc_axis1.zero_point"]!.contiguousBytes() == zeros.contiguousBytes())
        }
        #expect(try qb["q_quint4x2"]!.contiguousBytes() == q["q_quint4x2"]!.unpackedIntegers().contiguousBytes())
        #expect(
            try qb["q_quint8.scale"]!.float64Values() == [0.02] && qb["q_quint8.zero_point"]!.int64Values() == [128])
        try SWTWriter.write(q, to: dir + "/qd.swt", kinds: .init(dequantize: true), converter: "test")
        let qd = try Checkpoint(path: dir + "/qd.swt").stateDict()
        for (name, t) in q.tensors where t.quantization != nil {
            #expect(try qd[name]!.contiguousBytes() == t.dequantized().contiguousBytes(), "\(name)")
        }

        let s = try Checkpoint(path: Self.path("sparse_kinds")).stateDict()
        try SWTWriter.write(s, to: dir + "/s.swt", converter: "test")
        try SWTWriter.write(s, to: dir + "/sk.swt", kinds: .init(keepSparse: true), converter: "test")
        let dense = try Checkpoint(path: dir + "/s.swt").stateDict()
        let kept = try Checkpoint(path: dir + "/sk.swt").stateDict()
        for (name, t) in s.tensors {
            #expect(try dense[name]!.contiguousBytes() == t.contiguousBytes(), "\(name)")
            for (c, ct) in t.sparse?.components ?? [] {
                #expect(try kept["\(name).\(c)"]!.contiguousBytes() == ct.contiguousBytes(), "\(name).\(c)")
            }
        }

        let c = try Checkpoint(path: Self.path("complex")).stateDict()
        let report = try SWTWriter.write(c, to: dir + "/c.swt", converter: "test")
        let c128 = try #require(c.tensors.first { $0.tensor.dtype == .complex128 })
        let entry = try #require(report.entries.first { $0.name == c128.name })
        #expect(entry.dtype == .float64 && entry.shape == c128.tensor.shape + [2])
        #expect(
            try Checkpoint(path: dir + "/c.swt").stateDict()[c128.name]!.contiguousBytes()
                == c128.tensor.contiguousBytes())

        let m = try Checkpoint(path: Self.path("meta")).stateDict()
        #expect(throws: TensorKindError.self) { try SWTWriter.write(m, to: dir + "/m.swt", converter: "test") }
        #expect(!FileManager.default.fileExists(atPath: dir + "/m.swt"))
        try SWTWriter.write(m, to: dir + "/m.swt", kinds: .init(skipWithoutData: true), converter: "test")
        let mb = try Checkpoint(path: dir + "/m.swt")
        #expect(try mb.stateDict().names == m.tensors.filter { $0.tensor.hasData }.map(\.name))
        #expect(mb.textMetadata.contains { $0.key == SWT.MetadataKey.withoutData })

        let v3 = try Checkpoint(path: Self.path("v3_dtypes")).stateDict()
        let vr = try SWTWriter.write(v3, to: dir + "/v3.swt", converter: "test")
        #expect(vr.entries.first { $0.name == "float8_e5m2" }?.dtype == .float8_e5m2)
        let v3b = try Checkpoint(path: dir + "/v3.swt").stateDict()
        for (name, t) in v3.tensors where t.dtype != .complex32 {
            #expect(v3b[name]?.dtype == t.dtype, "\(name)")
            #expect(try v3b[name]?.contiguousBytes() == t.contiguousBytes(), "\(name)")
        }
    }
}
