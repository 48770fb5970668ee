import Synchronization

/// A sparse tensor's layout and components, as torch pickles them (`_rebuild_sparse_tensor`).
///
/// The `Tensor` that carries them views the dense values: a `DenseExpansion` computes them from the
/// components on first read, so a writer or `float32()` sees an ordinary tensor. `check(shape:)` validates
/// the components the way torch's `_validate_sparse_coo_tensor_args` and
/// `_validate_sparse_compressed_tensor_args` do, before any index is used.
public struct SparseParts: Sendable {
    public enum Layout: String, Sendable, CaseIterable {
        case coo = "sparse_coo"
        case csr = "sparse_csr"
        case csc = "sparse_csc"
        case bsr = "sparse_bsr"
        case bsc = "sparse_bsc"

        /// The component names torch uses, in the order it pickles them.
        public var componentNames: [String] {
            switch self {
            case .coo: ["indices", "values"]
            case .csr, .bsr: ["crow_indices", "col_indices", "values"]
            case .csc, .bsc: ["ccol_indices", "row_indices", "values"]
            }
        }
    }

    public var layout: Layout
    /// The components, named as `componentNames` names them.
    public var components: [(name: String, tensor: Tensor)]
    /// What a COO tensor's pickle said of its coalescing (newer torch writes it; nil when absent).
    public var isCoalesced: Bool?

    public init(layout: Layout, components: [(name: String, tensor: Tensor)], isCoalesced: Bool? = nil) {
        self.layout = layout
        self.components = components
        self.isCoalesced = isCoalesced
    }

    public var values: Tensor { components[components.count - 1].tensor }

    /// Number of specified elements (torch's `_nnz()`).
    public var nnz: Int { values.shape.first ?? 0 }

    /// Checks every component against the dense `shape`: dtypes, ranks and lengths, then every index.
    /// COO: indices int64 `[sparse_dim, nnz]`, each in `[0, size)` along its dimension; values
    /// `[nnz] + shape[sparse_dim...]`. Compressed: indices int32 or int64; compressed indices
    /// `[n + 1]`, starting at 0, never decreasing, ending at nnz; plain indices `[nnz]`, each in range
    /// and strictly increasing within one compressed slice; values `[nnz]` (CSR, CSC) or
    /// `[nnz, block rows, block columns]` (BSR, BSC), plus the dense dimensions.
    public func check(shape: [Int]) throws {
        guard components.map(\.name) == layout.componentNames else {
            throw TensorError.sparse(
                "a \(layout.rawValue) tensor needs \(layout.componentNames.joined(separator: ", "))")
        }
        for (name, t) in components {
            guard t.hasData, t.sparse == nil, t.quantization == nil else {
                throw TensorError.sparse("the \(name) are not a plain tensor with values")
            }
            // A component may not hold more elements than its storage: a stride-0 or overlapping view
            // would make a few bytes of the file stand for terabytes of indices or values.
            guard t.count <= t.storage.count else {
                throw TensorError.sparse(
                    "the \(name) view \(t.count) elements of a storage of \(t.storage.count) (stride \(t.strides)); torch saves components whole"
                )
            }
        }
        let v = values
        guard v.rank >= 1 else { throw TensorError.sparse("the values have no nnz dimension (shape \(v.shape))") }
        guard !v.dtype.isQuantized, v.dtype.valuesPerElement == 1 else {
            throw TensorError.sparse("values of dtype \(v.dtype) are not read")
        }
        switch layout {
        case .coo: try checkCOO(shape)
        case .csr, .csc, .bsr, .bsc: try checkCompressed(shape)
        }
    }

    private func checkCOO(_ shape: [Int]) throws {
        let indices = components[0].tensor
        let v = values
        guard indices.dtype == .int64, indices.rank == 2 else {
            throw TensorError.sparse("indices must be a 2-D int64 tensor, got \(indices.dtype) \(indices.shape)")
        }
        let sparseDims = indices.shape[0]
        let nnz = indices.shape[1]
        guard v.shape[0] == nnz else {
            throw TensorError.sparse("\(nnz) index columns but \(v.shape[0]) values")
        }
        guard sparseDims + v.rank - 1 == shape.count, sparseDims >= (shape.isEmpty ? 0 : 1) || nnz == 0 else {
            throw TensorError.sparse(
                "\(sparseDims) sparse and \(v.rank - 1) dense dimensions do not make a tensor of shape \(shape)")
        }
        guard Array(v.shape.dropFirst()) == Array(shape[sparseDims...]) else {
            throw TensorError.sparse("values of shape \(v.shape) do not fit the dense dimensions of \(shape)")
        }
        let idx = try indices.int64Values()
        for d in 0..<sparseDims {
            for k in 0..<nnz {
                let i = idx[d * nnz + k]
                guard i >= 0, i < shape[d] else {
                    throw TensorError.sparse(
                        "index \(i) at [\(d), \(k)] is outside dimension \(d) of size \(shape[d])")
                }
            }
        }
    }

    /// (compressed length, plain length, block shape) of a compressed layout over `shape`.
    private func compressedGeometry(_ shape: [Int]) throws -> (outer: Int, inner: Int, block: (Int, Int)) {
        let v = values
        let blocked = layout == .bsr || layout == .bsc
        guard shape.count >= 2 else { throw TensorError.sparse("a \(layout.rawValue) tensor of shape \(shape)") }
        let blockDims = blocked ? 2 : 0
        guard v.rank >= 1 + blockDims, shape.count == 2 + (v.rank - 1 - blockDims) else {
            throw TensorError.sparse(
                "values of shape \(v.shape) do not fit a \(layout.rawValue) tensor of shape \(shape) (batch dimensions are not read)"
            )
        }
        let (bh, bw) = blocked ? (v.shape[1], v.shape[2]) : (1, 1)
        guard bh > 0, bw > 0, shape[0] % bh == 0, shape[1] % bw == 0 else {
            throw TensorError.sparse("blocks of \(bh)×\(bw) do not tile a \(shape[0])×\(shape[1]) tensor")
        }
        guard Array(v.shape.dropFirst(1 + blockDims)) == Array(shape.dropFirst(2)) else {
            throw TensorError.sparse("values of shape \(v.shape) do not fit the dense dimensions of \(shape)")
        }
        let rows = shape[0] / bh
        let cols = shape[1] / bw
        let rowMajor = layout == .csr || layout == .bsr
        return (rowMajor ? rows : cols, rowMajor ? cols : rows, (bh, bw))
    }

    private func checkCompressed(_ shape: [Int]) throws {
        let (outer, inner, _) = try compressedGeometry(shape)
        let compressed = components[0]
        let plain = components[1]
        for (name, t) in [compressed, plain] {
            guard t.dtype == .int64 || t.dtype == .int32, t.rank == 1 else {
                throw TensorError.sparse("\(name) must be a 1-D int32 or int64 tensor, got \(t.dtype) \(t.shape)")
            }
        }
        guard compressed.tensor.dtype == plain.tensor.dtype else {
            throw TensorError.sparse("\(compressed.name) and \(plain.name) have different dtypes")
        }
        let nnz = values.shape[0]
        guard compressed.tensor.count == outer + 1 else {
            throw TensorError.sparse("\(compressed.name) has \(compressed.tensor.count) entries, not \(outer + 1)")
        }
        guard plain.tensor.count == nnz else {
            throw TensorError.sparse("\(plain.name) has \(plain.tensor.count) entries for \(nnz) values")
        }
        let c = try compressed.tensor.int64Values()
        let p = try plain.tensor.int64Values()
        guard c[0] == 0 else { throw TensorError.sparse("\(compressed.name)[0] is \(c[0]), not 0") }
        guard c[outer] == Int64(nnz) else {
            throw TensorError.sparse("\(compressed.name)[\(outer)] is \(c[outer]), not the \(nnz) values")
        }
        for i in 0..<outer {
            guard c[i] <= c[i + 1], c[i + 1] <= Int64(nnz), c[i + 1] - c[i] <= Int64(inner) else {
                throw TensorError.sparse(
                    "\(compressed.name) goes from \(c[i]) to \(c[i + 1]) at \(i): it must rise by 0 to \(inner) and stay within the \(nnz) values"
                )
            }
            for k in Int(c[i])..<Int(c[i + 1]) {
                guard p[k] >= 0, p[k] < Int64(inner) else {
                    throw TensorError.sparse("\(plain.name)[\(k)] is \(p[k]), outside [0, \(inner))")
                }
                guard k == Int(c[i]) || p[k - 1] < p[k] else {
                    throw TensorError.sparse(
                        "\(plain.name) is not strictly increasing at \(k) (\(p[k - 1]) then \(p[k])) within slice \(i)")
                }
            }
        }
    }

    /// Writes the dense values, row-major, into `dst` (`shape`'s element count × itemSize bytes, zeroed
    /// here first). COO duplicates are summed in the element type (float16 and bfloat16 through float32,
    /// bool as or). Call `check(shape:)` first.
    func densify(shape: [Int], into dst: UnsafeMutableRawBufferPointer) throws {
        let v = values
        let size = v.dtype.itemSize
        dst.initializeMemory(as: UInt8.self, repeating: 0)
        let vbytes = try v.contiguousBytes()
        let strides = Tensor.contiguousStrides(shape)
        switch layout {
        case .coo:
            let indices = components[0].tensor
            let sparseDims = indices.shape[0]
            let nnz = indices.shape[1]
            let block = shape[sparseDims...].reduce(1, *)
            let idx = try indices.int64Values()
            var seen = Set<Int>()
            for k in 0..<nnz {
                var at = 0
                for d in 0..<sparseDims { at += Int(idx[d * nnz + k]) * strides[d] }
                let first = seen.insert(at).inserted
                for j in 0..<block {
                    let from = (k * block + j) * size
                    let to = (at + j) * size
                    if first {
                        for b in 0..<size { dst[to + b] = vbytes[from + b] }
                    } else {
                        Self.accumulate(v.dtype, dst.baseAddress! + to, vbytes, from)
                    }
                }
            }
        case .csr, .csc, .bsr, .bsc:
            let (outer, _, (bh, bw)) = try compressedGeometry(shape)
            let c = try components[0].tensor.int64Values()
            let p = try components[1].tensor.int64Values()
            let dense = shape.dropFirst(2).reduce(1, *)
            let rowMajor = layout == .csr || layout == .bsr
            for o in 0..<outer {
                for k in Int(c[o])..<Int(c[o + 1]) {
                    let (br, bc) = rowMajor ? (o, Int(p[k])) : (Int(p[k]), o)
                    for i in 0..<bh {
                        for j in 0..<bw {
                            let row = br * bh + i
                            let col = bc * bw + j
                            let from = ((k * bh + i) * bw + j) * dense * size
                            let to = (row * strides[0] + col * strides[1]) * size
                            for b in 0..<(dense * size) { dst[to + b] = vbytes[from + b] }
                        }
                    }
                }
            }
        }
    }

    /// `*at += value` for one element of `dtype`.
    private static func accumulate(_ dtype: DType, _ at: UnsafeMutableRawPointer, _ src: [UInt8], _ from: Int) {
        src.withUnsafeBytes { s in
            let p = s.baseAddress! + from
            func add<T: FixedWidthInteger>(_: T.Type) {
                let a = T(littleEndian: at.loadUnaligned(as: T.self))
                let b = T(littleEndian: p.loadUnaligned(as: T.self))
                at.storeBytes(of: (a &+ b).littleEndian, as: T.self)
            }
            func addFloat(_ count: Int, _ part: DType) {
                for i in 0..<count {
                    let size = part.itemSize
                    var x: Float = 0
                    var y: Float = 0
                    switch part {
                    case .float64:
                        let a = Double(bitPattern: UInt64(littleEndian: (at + i * 8).loadUnaligned(as: UInt64.self)))
                        let b = Double(bitPattern: UInt64(littleEndian: (p + i * 8).loadUnaligned(as: UInt64.self)))
                        (at + i * 8).storeBytes(of: (a + b).bitPattern.littleEndian, as: UInt64.self)
                        continue
                    default:
                        Conversion.toFloat32(part, from: UnsafeRawPointer(at), start: i, step: 1, count: 1, into: &x)
                        Conversion.toFloat32(part, from: p, start: i, step: 1, count: 1, into: &y)
                    }
                    let sum = x + y
                    withUnsafeBytes(of: sum) { f in
                        Cast.floats(.float32, f.baseAddress!, to: part, at + i * size, count: 1)
                    }
                }
            }
            switch dtype {
            case .float32, .float64, .float16, .bfloat16: addFloat(1, dtype)
            case .complex32, .complex64, .complex128: addFloat(2, dtype.complexPart!)
            case .int64, .uint64: add(Int64.self)
            case .int32, .uint32: add(Int32.self)
            case .int16, .uint16: add(Int16.self)
            case .int8, .uint8: add(UInt8.self)
            case .bool:
                at.storeBytes(of: (at.load(as: UInt8.self) | p.load(as: UInt8.self)) != 0 ? 1 : 0, as: UInt8.self)
            default:
                // float8: sum through float32 is not what torch does for these; keep the first value.
                break
            }
        }
    }
}

/// The dense values of a sparse tensor, computed from its components on first read and kept.
public final class DenseExpansion: ByteSource {
    public let count: Int
    let parts: SparseParts
    let shape: [Int]
    private let dense = Mutex<OwnedBytes?>(nil)

    init(_ parts: SparseParts, shape: [Int], bytes: Int) {
        self.parts = parts
        self.shape = shape
        self.count = bytes
    }

    public func bytes() throws -> UnsafeRawBufferPointer {
        try dense.withLock { cached in
            if let cached { return try cached.bytes() }
            let out = OwnedBytes(uninitializedCount: count)
            try parts.densify(shape: shape, into: out.mutableBytes)
            cached = out
            return try out.bytes()
        }
    }
}

extension Tensor {
    /// A sparse tensor of dense `shape`: checks `parts` against it and views their dense expansion.
    public static func sparse(_ parts: SparseParts, shape: [Int], key: String) throws -> Tensor {
        try parts.check(shape: shape)
        let dtype = parts.values.dtype
        let count = try Tensor.elementCount(shape)
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.itemSize)
        guard !overflow else { throw TensorError.elementCountOverflow(shape + [dtype.itemSize]) }
        let storage = try Storage(
            key: key, dtype: dtype, count: count, source: DenseExpansion(parts, shape: shape, bytes: bytes))
        var t = try Tensor(storage: storage, shape: shape, strides: Tensor.contiguousStrides(shape), storageOffset: 0)
        t.sparse = parts
        return t
    }
}
