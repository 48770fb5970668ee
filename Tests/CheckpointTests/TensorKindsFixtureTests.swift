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
        "quantized_mobilenet_v2", "quantized_kinds", "sparse_kinds", "complex", "meta", "v3_dtypes", "numpy_kinds",
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
        // A .pth from pth2swt keeps the tensors and the dtype values (a quantized module's), no others.
        let dtypeValues = sd.values.filter { if case .dtype = $0.value { true } else { false } }
        #expect(back.values.map(\.name) == dtypeValues.map(\.name))
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

    /// The committed .swt files beside the fixtures (written by `pth2swt convert` from quantized_kinds.pth,
    /// from sparse_kinds.pth with --keep-sparse, and from complex.pth) read back as their sources.
    @Test(arguments: ["quantized_kinds", "sparse_kinds", "complex"])
    func committedSWTFilesReadBackAsTheirSources(_ stem: String) throws {
        let source = try Checkpoint(path: Self.path(stem)).stateDict()
        var options = LoadOptions()
        options.verifyDataDigest = true
        let swt = try Checkpoint(path: Paths.fixture("kinds/\(stem).swt"), options: options)
        let back = try swt.stateDict()
        #expect(back.names == source.names)
        #expect(back.values.map(\.name) == source.values.map(\.name))
        for (name, t) in source.tensors {
            let u = try #require(back[name])
            #expect(u.dtype == t.dtype && u.shape == t.shape, "\(name)")
            #expect(u.sparse?.layout == t.sparse?.layout, "\(name)")
            #expect(u.quantization?.effectiveScheme == t.quantization?.effectiveScheme, "\(name)")
            #expect(try u.contiguousBytes() == t.contiguousBytes(), "\(name)")
        }
    }

    /// .swt out and back: quantized tensors as integers with NAME.scale / NAME.zero_point, or dequantized;
    /// sparse dense or as components; complex128 as float64 pairs; meta refused or left out. What the
    /// header records makes each the tensor it was when pth2swt reads the file again.
    @Test func swtWritesEveryKindInSafetensorsNames() throws {
        let dir = NSTemporaryDirectory() + "kinds-swt-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let q = try Checkpoint(path: Self.path("quantized_kinds")).stateDict()
        let qr = try SWTWriter.write(q, to: dir + "/q.swt", converter: "test")
        // In the file: integers under the name, NAME.scale and NAME.zero_point beside them.
        let written = Dictionary(uniqueKeysWithValues: qr.entries.map { ($0.name, $0) })
        #expect(written["qc_axis1"]?.dtype == .int8 && written["qc_axis1.scale"]?.dtype == .float64)
        #expect(written["q_quint8.scale"]?.shape == [] && written["q_quint8.zero_point"]?.dtype == .int64)
        #expect(written["q_quint4x2"]?.dtype == .uint8 && written["q_quint4x2"]?.shape == [3, 5])
        #expect(written["emb8._packed_params._packed_weight.zero_point"]?.dtype == .float32)
        // Read back: the quantized tensors they were.
        let qb = try Checkpoint(path: dir + "/q.swt").stateDict()
        #expect(qb.names == q.names)
        for (name, t) in q.tensors {
            let u = try #require(qb[name])
            #expect(u.dtype == t.dtype && u.shape == t.shape, "\(name)")
            #expect(u.quantization?.effectiveScheme == t.quantization?.effectiveScheme, "\(name)")
            #expect(try u.contiguousBytes() == t.contiguousBytes(), "\(name)")
            if t.quantization != nil {
                #expect(try u.dequantized().contiguousBytes() == t.dequantized().contiguousBytes(), "\(name)")
            }
        }
        try SWTWriter.write(q, to: dir + "/qd.swt", kinds: .init(dequantize: true), converter: "test")
        let qd = try Checkpoint(path: dir + "/qd.swt").stateDict()
        for (name, t) in q.tensors where t.quantization != nil {
            #expect(qd[name]?.dtype == .float32 && qd[name]?.quantization == nil, "\(name)")
            #expect(try qd[name]!.contiguousBytes() == t.dequantized().contiguousBytes(), "\(name)")
        }

        let s = try Checkpoint(path: Self.path("sparse_kinds")).stateDict()
        try SWTWriter.write(s, to: dir + "/s.swt", converter: "test")
        let kr = try SWTWriter.write(s, to: dir + "/sk.swt", kinds: .init(keepSparse: true), converter: "test")
        #expect(kr.entries.contains { $0.name == "coo.indices" } && !kr.entries.contains { $0.name == "coo" })
        let dense = try Checkpoint(path: dir + "/s.swt").stateDict()
        let kept = try Checkpoint(path: dir + "/sk.swt").stateDict()
        #expect(kept.names == s.names)
        for (name, t) in s.tensors {
            #expect(dense[name]?.sparse == nil, "\(name)")
            #expect(try dense[name]!.contiguousBytes() == t.contiguousBytes(), "\(name)")
            #expect(kept[name]?.sparse?.layout == t.sparse?.layout, "\(name)")
            #expect(try kept[name]!.contiguousBytes() == t.contiguousBytes(), "\(name)")
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
        for (name, t) in v3.tensors {
            #expect(v3b[name]?.dtype == t.dtype, "\(name)")
            #expect(try v3b[name]?.contiguousBytes() == t.contiguousBytes(), "\(name)")
        }
    }
}

/// A `.swt` header's claims about quantized, sparse and complex tensors are input like any other: each
/// false claim is refused, naming the tensor.
@Suite struct SWTKindClaimTests {
    func swt(_ tensors: [(String, DType, [Int], [UInt8])], metadata: [(String, String)]) throws -> String {
        var fields: [(String, JSON)] = [("__metadata__", .object(metadata.map { ($0.0, .string($0.1)) }))]
        var data: [UInt8] = []
        for (name, dtype, shape, bytes) in tensors {
            fields.append(
                (
                    name,
                    .object([
                        ("dtype", .string(SWT.name(of: dtype)!)), ("shape", .array(shape.map(JSON.int))),
                        ("data_offsets", .array([.int(data.count), .int(data.count + bytes.count)])),
                    ])
                ))
            data += bytes
        }
        var header = Array(JSON.object(fields).render(indent: nil).utf8)
        while (header.count + 8) % 8 != 0 { header.append(0x20) }
        var file = withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) }
        file += header + data
        let path = NSTemporaryDirectory() + "claims-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).swt"
        FileManager.default.createFile(atPath: path, contents: Data(file))
        return path
    }

    func error(_ path: String) -> String? {
        defer { try? FileManager.default.removeItem(atPath: path) }
        do {
            _ = try Checkpoint(path: path)
            return nil
        } catch {
            return "\(error)"
        }
    }

    let f64one = withUnsafeBytes(of: (1.0).bitPattern.littleEndian) { Array($0) }
    let i64zero = [UInt8](repeating: 0, count: 8)

    @Test func falseClaimsAreRefusedByName() throws {
        let q = #"{"w":{"dtype":"qint8","qscheme":"per_tensor_affine"}}"#
        // The integers are not int8.
        var e = error(
            try swt(
                [
                    ("w", .uint8, [2], [1, 2]), ("w.scale", .float64, [], f64one),
                    ("w.zero_point", .int64, [], i64zero),
                ],
                metadata: [("pth2swt.quantized", q)]))
        #expect(e?.contains("says qint8, but the values are uint8") == true, "\(e ?? "accepted")")
        // No scale.
        e = error(try swt([("w", .int8, [2], [1, 2])], metadata: [("pth2swt.quantized", q)]))
        #expect(e?.contains("'w.scale', which the file does not hold") == true, "\(e ?? "accepted")")
        // Per channel, 1 scale for an axis of 2.
        e = error(
            try swt(
                [
                    ("w", .int8, [2], [1, 2]), ("w.scale", .float64, [1], f64one),
                    ("w.zero_point", .int64, [1], i64zero),
                ],
                metadata: [("pth2swt.quantized", #"{"w":{"dtype":"qint8","qscheme":"per_channel_affine","axis":0}}"#)]))
        #expect(e?.contains("1 scales") == true, "\(e ?? "accepted")")
        // quint4x2 values past 4 bits.
        e = error(
            try swt(
                [
                    ("w", .uint8, [2], [1, 16]), ("w.scale", .float64, [], f64one),
                    ("w.zero_point", .int64, [], i64zero),
                ],
                metadata: [("pth2swt.quantized", #"{"w":{"dtype":"quint4x2","qscheme":"per_tensor_affine"}}"#)]))
        #expect(e?.contains("does not fit the 4 bits") == true, "\(e ?? "accepted")")
        // A sparse index outside the shape.
        let idx: [UInt8] = [5, 0, 0, 0, 0, 0, 0, 0]
        e = error(
            try swt(
                [("s.indices", .int64, [1, 1], idx), ("s.values", .float32, [1], [0, 0, 128, 63])],
                metadata: [("pth2swt.sparse", #"{"s":{"layout":"sparse_coo","shape":[3]}}"#)]))
        #expect(e?.contains("index 5 at [0, 0] is outside dimension 0 of size 3") == true, "\(e ?? "accepted")")
        // complex128 over a tensor that is not pairs.
        e = error(
            try swt(
                [("c", .float64, [3], f64one + f64one + f64one)],
                metadata: [("pth2swt.dtypes", #"{"c":"complex128"}"#)]))
        #expect(e?.contains("not float64 pairs") == true, "\(e ?? "accepted")")
        e = error(try swt([("c", .float64, [1, 2], f64one + f64one)], metadata: [("pth2swt.dtypes", "[1]")]))
        #expect(e?.contains("not a JSON object") == true, "\(e ?? "accepted")")
    }
}

/// The sparse layouts torch 1.13 cannot save (CSC, BSR, BSC) go through a .pth as later releases write
/// them, `_rebuild_sparse_tensor(_get_layout('torch.sparse_bsr'), (…))`, and come back the same.
@Suite struct CompressedLayoutsRoundTripTests {
    func i64(_ v: [Int64]) throws -> Tensor {
        let b = v.flatMap { x in withUnsafeBytes(of: x.littleEndian) { Array($0) } }
        return try Tensor(
            storage: Storage(key: "i", dtype: .int64, count: v.count, source: OwnedBytes(b)), shape: [v.count],
            strides: [1], storageOffset: 0)
    }

    func f32(_ v: [Float], shape: [Int]) throws -> Tensor {
        let b = v.flatMap { x in withUnsafeBytes(of: x.bitPattern.littleEndian) { Array($0) } }
        return try Tensor(
            storage: Storage(key: "f", dtype: .float32, count: v.count, source: OwnedBytes(b)), shape: shape,
            strides: Tensor.contiguousStrides(shape), storageOffset: 0)
    }

    @Test func cscBsrAndBscSurviveAPthRoundTrip() throws {
        var sd = StateDict()
        let csc = SparseParts(
            layout: .csc,
            components: [
                ("ccol_indices", try i64([0, 2, 3])), ("row_indices", try i64([0, 2, 1])),
                ("values", try f32([1, 2, 3], shape: [3])),
            ])
        try sd.insert(try Tensor.sparse(csc, shape: [3, 2], key: "csc"), named: "csc")
        for layout in [SparseParts.Layout.bsr, .bsc] {
            let parts = SparseParts(
                layout: layout,
                components: [
                    (layout.componentNames[0], try i64([0, 1, 1])), (layout.componentNames[1], try i64([1])),
                    ("values", try f32([1, 2, 3, 4], shape: [1, 2, 2])),
                ])
            try sd.insert(
                try Tensor.sparse(parts, shape: [4, 4], key: layout.rawValue), named: layout == .bsr ? "bsr" : "bsc")
        }
        let out = NSTemporaryDirectory() + "compressed-\(getpid()).pth"
        defer { try? FileManager.default.removeItem(atPath: out) }
        try PTHWriter.write(sd, to: out)
        let ckpt = try Checkpoint(path: out)
        #expect(ckpt.globals.contains("torch._utils._rebuild_sparse_tensor"))
        let back = try ckpt.stateDict()
        for (name, t) in sd.tensors {
            #expect(back[name]?.sparse?.layout == t.sparse?.layout, "\(name)")
            #expect(try back[name]!.float32() == t.float32(), "\(name)")
        }
        #expect(try sd["bsr"]!.float32() == [0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0])
        #expect(try sd["bsc"]!.float32() == [0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0])
    }
}
