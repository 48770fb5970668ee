/// A strided view of a storage: torch's (storage, storage_offset, size, stride) quadruple.
///
/// Construction checks every number, so a `Tensor` never reaches outside its storage. The elements are
/// not read until `contiguousBytes()` or `float32()` asks for them.
public struct Tensor: Sendable {
    public let storage: Storage
    /// Sizes, outermost first.
    public let shape: [Int]
    /// Strides in elements, one per dimension.
    public let strides: [Int]
    /// Offset of element [0, 0, …] in the storage, in elements.
    public let storageOffset: Int
    /// Number of elements (product of `shape`; 1 for a 0-d tensor).
    public let count: Int
    public var requiresGrad: Bool
    /// Whether the checkpoint wrapped this tensor in `torch.nn.Parameter`.
    public var isParameter: Bool
    /// What the stored integers mean, for a quantized dtype (`qint8`, …): set by the reader, checked
    /// against the shape by `Quantization.check(shape:)`.
    public var quantization: Quantization?
    /// For a sparse tensor, its layout and components. The tensor itself then views the dense values,
    /// which are computed from the components on first read.
    public var sparse: SparseParts?

    public var dtype: DType { storage.dtype }
    public var rank: Int { shape.count }

    /// Checks that the view lies inside `storage`: sizes, strides and offset non-negative, no overflow,
    /// and the furthest element `offset + Σ (size−1)·stride` below `storage.count`.
    public init(
        storage: Storage, shape: [Int], strides: [Int], storageOffset: Int,
        requiresGrad: Bool = false, isParameter: Bool = false
    ) throws {
        guard shape.count == strides.count else { throw TensorError.rankMismatch(shape: shape, strides: strides) }
        if let bad = shape.first(where: { $0 < 0 }) { throw TensorError.negativeSize(bad) }
        if strides.contains(where: { $0 < 0 }) { throw TensorError.negativeStride(strides) }
        guard storageOffset >= 0 else { throw TensorError.negativeOffset(storageOffset) }
        let count = try Tensor.elementCount(shape)
        guard !count.multipliedReportingOverflow(by: storage.dtype.itemSize).overflow else {
            throw TensorError.elementCountOverflow(shape + [storage.dtype.itemSize])
        }
        let per = storage.dtype.valuesPerElement
        if per > 1 {
            // Packed values (quint4x2, quint2x4) are read as whole bytes: only a contiguous view that
            // starts on a byte can be.
            let strides0 = Tensor.contiguousStrides(shape)
            let contiguous = zip(zip(shape, strides), strides0).allSatisfy { $0.0.0 == 1 || $0.0.1 == $0.1 }
            let bytes = count / per + (count % per == 0 ? 0 : 1)
            guard contiguous, storageOffset % per == 0, storageOffset / per <= storage.count,
                bytes <= storage.count - storageOffset / per
            else {
                throw TensorError.packedView(
                    dtype: storage.dtype, shape: shape, strides: strides, offset: storageOffset,
                    storageBytes: storage.count)
            }
        } else if count > 0 {
            var last = storageOffset
            for (size, stride) in zip(shape, strides) {
                let (step, o1) = (size - 1).multipliedReportingOverflow(by: stride)
                let (sum, o2) = last.addingReportingOverflow(step)
                guard !o1, !o2 else {
                    throw TensorError.viewOutOfRange(
                        shape: shape, strides: strides, offset: storageOffset, storageCount: storage.count)
                }
                last = sum
            }
            guard last < storage.count else {
                throw TensorError.viewOutOfRange(
                    shape: shape, strides: strides, offset: storageOffset, storageCount: storage.count)
            }
        }
        self.storage = storage
        self.shape = shape
        self.strides = strides
        self.storageOffset = storageOffset
        self.count = count
        self.requiresGrad = requiresGrad
        self.isParameter = isParameter
        self.quantization = nil
        self.sparse = nil
    }

    /// The product of `dims`, or a typed error when it overflows.
    public static func elementCount(_ dims: [Int]) throws -> Int {
        var n = 1
        for d in dims {
            guard d >= 0 else { throw TensorError.negativeSize(d) }
            let (p, overflow) = n.multipliedReportingOverflow(by: d)
            guard !overflow else { throw TensorError.elementCountOverflow(dims) }
            n = p
        }
        return n
    }

    /// Row-major strides for `shape`.
    public static func contiguousStrides(_ shape: [Int]) -> [Int] {
        var strides = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            strides[i] = acc
            // Saturates: only a tensor of no elements can get here with a product past Int.max, and its
            // strides are never used to reach an element.
            let (p, overflow) = acc.multipliedReportingOverflow(by: max(shape[i], 1))
            acc = overflow ? Int.max : p
        }
        return strides
    }

    /// True when the elements are laid out row-major without gaps (size-1 dimensions' strides are ignored).
    public var isContiguous: Bool {
        if count == 0 { return true }
        var expected = 1
        for i in stride(from: rank - 1, through: 0, by: -1) where shape[i] != 1 {
            if shape[i] == 0 { return true }
            if strides[i] != expected { return false }
            expected *= shape[i]
        }
        return true
    }

    /// Bytes of the elements in row-major order: `count × itemSize`, or for the packed quantized types
    /// the whole bytes the values fill.
    public var byteCount: Int {
        let per = dtype.valuesPerElement
        return per == 1 ? count * dtype.itemSize : (count + per - 1) / per
    }

    /// False for a tensor saved without values (a meta tensor, a wrapper subclass): its shape, strides
    /// and dtype are known, and reading its elements throws `TensorError.noData`.
    public var hasData: Bool { !(storage.source is AbsentBytes) }
}

// MARK: - Materialising

extension Tensor {
    /// The elements in row-major order as little-endian bytes (`count × itemSize` of them).
    public func contiguousBytes() throws -> [UInt8] {
        let raw = try storage.bytes()
        let size = dtype.itemSize
        if dtype.valuesPerElement > 1 {
            // Checked at construction: contiguous, starting on a byte, inside the storage.
            let start = storageOffset / dtype.valuesPerElement
            return Array(raw[start..<(start + byteCount)])
        }
        return [UInt8](unsafeUninitializedCapacity: byteCount) { out, initialized in
            let dst = UnsafeMutableRawPointer(out.baseAddress!)
            var written = 0
            forEachRun { start, length, step in
                if step == 1 {
                    (dst + written).copyMemory(from: raw.baseAddress! + start * size, byteCount: length * size)
                    written += length * size
                } else {
                    for i in 0..<length {
                        (dst + written).copyMemory(from: raw.baseAddress! + (start + i * step) * size, byteCount: size)
                        written += size
                    }
                }
            }
            initialized = written
        }
    }

    /// The elements converted to Float32 in row-major order (a new array).
    public func float32() throws -> [Float] {
        guard dtype.isReal else { throw TensorError.notReal(dtype) }
        return try [Float](unsafeUninitializedCapacity: count) { out, initialized in
            if count > 0 { try writeFloat32(into: out.baseAddress!) }
            initialized = count
        }
    }

    /// Calls `body` with the elements as contiguous Float32. When the storage already holds aligned,
    /// contiguous float32 the buffer points into it (no copy); otherwise it is a temporary conversion.
    public func withFloat32<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) throws -> R {
        if dtype == .float32, isContiguous {
            let raw = try storage.bytes()
            let start = raw.baseAddress.map { $0 + storageOffset * 4 }
            if let start, Int(bitPattern: start) % MemoryLayout<Float>.alignment == 0 {
                return try body(UnsafeBufferPointer(start: start.assumingMemoryBound(to: Float.self), count: count))
            }
        }
        let copy = try float32()
        return try copy.withUnsafeBufferPointer(body)
    }

    /// The element-by-element reference for `float32()`: one index computation per element, no runs.
    /// Tests compare the two.
    func float32Reference() throws -> [Float] {
        guard dtype.isReal else { throw TensorError.notReal(dtype) }
        let raw = try storage.bytes()
        var out = [Float]()
        out.reserveCapacity(count)
        var index = [Int](repeating: 0, count: rank)
        for _ in 0..<count {
            var offset = storageOffset
            for d in 0..<rank { offset += index[d] * strides[d] }
            var value: Float = 0
            Conversion.toFloat32(dtype, from: raw.baseAddress!, start: offset, step: 1, count: 1, into: &value)
            out.append(value)
            var d = rank - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return out
    }

    /// Visits the elements as runs `(startElement, length, step)` in row-major order, merging dimensions
    /// that are contiguous with each other so a contiguous tensor is one run.
    func forEachRun(_ body: (_ start: Int, _ length: Int, _ step: Int) -> Void) {
        guard count > 0 else { return }
        // Drop size-1 dimensions, then merge a dimension into the next one when stride[i] == size[i+1]·stride[i+1].
        var sizes: [Int] = []
        var steps: [Int] = []
        for (size, step) in zip(shape, strides) where size != 1 {
            if let lastSize = sizes.last, let lastStep = steps.last, lastStep == size * step {
                sizes[sizes.count - 1] = lastSize * size
                steps[steps.count - 1] = step
            } else {
                sizes.append(size)
                steps.append(step)
            }
        }
        guard let innerSize = sizes.last, let innerStep = steps.last else {
            body(storageOffset, 1, 1)
            return
        }
        let outer = sizes.count - 1
        var index = [Int](repeating: 0, count: outer)
        var base = storageOffset
        while true {
            body(base, innerSize, innerStep)
            var d = outer - 1
            while d >= 0 {
                index[d] += 1
                base += steps[d]
                if index[d] < sizes[d] { break }
                base -= steps[d] * sizes[d]
                index[d] = 0
                d -= 1
            }
            if d < 0 { return }
        }
    }
}

/// Element conversions from little-endian storage bytes (which need not be aligned).
enum Conversion {
    static func toFloat32(
        _ dtype: DType, from raw: UnsafeRawPointer, start: Int, step: Int, count: Int,
        into dst: UnsafeMutablePointer<Float>
    ) {
        let size = dtype.itemSize
        if dtype == .float32 && step == 1 {
            UnsafeMutableRawPointer(dst).copyMemory(from: raw + start * 4, byteCount: count * 4)
            return
        }
        var p = raw + start * size
        let advance = step * size
        for i in 0..<count {
            let v: Float
            switch dtype {
            case .float32: v = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
            case .float64: v = Float(Double(bitPattern: UInt64(littleEndian: p.loadUnaligned(as: UInt64.self))))
            case .float16: v = Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(as: UInt16.self))))
            case .bfloat16: v = Float(bitPattern: UInt32(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self))) << 16)
            case .int64: v = Float(Int64(littleEndian: p.loadUnaligned(as: Int64.self)))
            case .int32: v = Float(Int32(littleEndian: p.loadUnaligned(as: Int32.self)))
            case .int16: v = Float(Int16(littleEndian: p.loadUnaligned(as: Int16.self)))
            case .int8: v = Float(p.load(as: Int8.self))
            case .uint8: v = Float(p.load(as: UInt8.self))
            case .bool: v = p.load(as: UInt8.self) != 0 ? 1 : 0
            case .uint16: v = Float(UInt16(littleEndian: p.loadUnaligned(as: UInt16.self)))
            case .uint32: v = Float(UInt32(littleEndian: p.loadUnaligned(as: UInt32.self)))
            case .uint64: v = Float(UInt64(littleEndian: p.loadUnaligned(as: UInt64.self)))
            case .float8_e4m3fn, .float8_e5m2, .float8_e4m3fnuz, .float8_e5m2fnuz, .float8_e8m0fnu:
                v = Float8.value(p.load(as: UInt8.self), dtype)
            case .complex32, .complex64, .complex128, .qint8, .quint8, .qint32, .quint4x2, .quint2x4:
                preconditionFailure("not a real dtype: \(dtype); callers check DType.isReal")
            }
            dst[i] = v
            p += advance
        }
    }
}
