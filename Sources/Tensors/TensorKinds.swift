/// Tensors that are more than a strided view of real numbers: quantized integers with their scales,
/// sparse layouts, and tensors saved without data. The reader builds them; writers and `inspect` ask.

// MARK: - 8-bit floats

/// The five 8-bit float formats, decoded exactly (every value is a float32).
///
/// | format | exponent bias | NaN codes | infinity |
/// |---|---|---|---|
/// | float8_e4m3fn | 7 | S.1111.111 | none |
/// | float8_e5m2 | 15 | S.11111.mm, mm ≠ 0 | S.11111.00 |
/// | float8_e4m3fnuz | 8 | 0x80 only (no −0) | none |
/// | float8_e5m2fnuz | 16 | 0x80 only (no −0) | none |
/// | float8_e8m0fnu | 127, exponent only, no sign | 0xFF | none |
public enum Float8 {
    /// The value of one byte of `dtype` (one of the float8 types).
    @inline(__always)
    public static func value(_ byte: UInt8, _ dtype: DType) -> Float {
        switch dtype {
        case .float8_e4m3fn: e4m3fn[Int(byte)]
        case .float8_e5m2: e5m2[Int(byte)]
        case .float8_e4m3fnuz: e4m3fnuz[Int(byte)]
        case .float8_e5m2fnuz: e5m2fnuz[Int(byte)]
        case .float8_e8m0fnu: e8m0fnu[Int(byte)]
        default: preconditionFailure("not a float8 dtype: \(dtype)")
        }
    }

    /// sign, exponent and mantissa fields of `byte`, with the exponent `bias`, as an exact float.
    static func decode(_ byte: UInt8, mantissaBits: Int, bias: Int) -> Float {
        let negative = byte & 0x80 != 0
        let e = Int(byte & 0x7F) >> mantissaBits
        let m = Int(byte) & ((1 << mantissaBits) - 1)
        let scale = Float(m) / Float(1 << mantissaBits)
        let magnitude: Float =
            e == 0
            ? Float(sign: .plus, exponent: 1 - bias, significand: scale)
            : Float(sign: .plus, exponent: e - bias, significand: 1 + scale)
        return negative ? -magnitude : magnitude
    }

    static let e4m3fn: [Float] = (0...255).map { b in
        UInt8(b) & 0x7F == 0x7F ? (b & 0x80 != 0 ? -Float.nan : .nan) : decode(UInt8(b), mantissaBits: 3, bias: 7)
    }
    static let e5m2: [Float] = (0...255).map { b in
        let byte = UInt8(b)
        guard byte & 0x7C == 0x7C else { return decode(byte, mantissaBits: 2, bias: 15) }
        let negative = byte & 0x80 != 0
        if byte & 0x03 == 0 { return negative ? -.infinity : .infinity }
        return negative ? -.nan : .nan
    }
    static let e4m3fnuz: [Float] = (0...255).map { b in
        b == 0x80 ? .nan : decode(UInt8(b), mantissaBits: 3, bias: 8)
    }
    static let e5m2fnuz: [Float] = (0...255).map { b in
        b == 0x80 ? .nan : decode(UInt8(b), mantissaBits: 2, bias: 16)
    }
    static let e8m0fnu: [Float] = (0...255).map { b in
        b == 0xFF ? .nan : Float(sign: .plus, exponent: b - 127, significand: 1)
    }
}

// MARK: - Quantized tensors

/// What a quantized tensor's integers mean: torch's `_rebuild_qtensor` parameters.
public struct Quantization: Sendable {
    /// torch's qschemes, spelt as torch spells them (`torch.per_tensor_affine` without `torch.`).
    public enum Scheme: String, Sendable, CaseIterable {
        case perTensorAffine = "per_tensor_affine"
        case perChannelAffine = "per_channel_affine"
        case perTensorSymmetric = "per_tensor_symmetric"
        case perChannelSymmetric = "per_channel_symmetric"
        case perChannelAffineFloatQParams = "per_channel_affine_float_qparams"

        public var isPerChannel: Bool { self != .perTensorAffine && self != .perTensorSymmetric }
    }

    public indirect enum Parameters: Sendable {
        /// One scale and zero point for every element.
        case perTensor(scale: Double, zeroPoint: Int64)
        /// One scale and zero point per index along `axis`. Zero points are integers, or floats for
        /// `per_channel_affine_float_qparams` (which torch pickles as `per_channel_affine`).
        case perChannel(scales: Tensor, zeroPoints: Tensor, axis: Int)
    }

    /// The scheme the file names.
    public var scheme: Scheme
    public var parameters: Parameters

    public init(scheme: Scheme, parameters: Parameters) {
        self.scheme = scheme
        self.parameters = parameters
    }

    /// True when zero points are floats (`per_channel_affine_float_qparams`, which torch pickles as
    /// `per_channel_affine`): dequantizing is then done in float32.
    public var hasFloatZeroPoints: Bool {
        if case .perChannel(_, let z, _) = parameters { return z.dtype.isFloatingPoint }
        return false
    }

    /// The scheme torch reports for the tensor (`qscheme()`): per-channel float zero points make
    /// `per_channel_affine_float_qparams`, whatever the pickle named.
    public var effectiveScheme: Scheme { hasFloatZeroPoints ? .perChannelAffineFloatQParams : scheme }

    /// Checks that the parameters fit a tensor of `shape` and `dtype`: a per-tensor scheme with one
    /// scale, a per-channel one with an axis inside the shape and one floating scale and one zero point
    /// per index along it, both 1-D with values.
    public func check(shape: [Int], dtype: DType) throws {
        guard dtype.isQuantized else { throw TensorError.quantization("the dtype \(dtype) is not a quantized type") }
        switch parameters {
        case .perTensor(let scale, _):
            guard !scheme.isPerChannel else {
                throw TensorError.quantization("the scheme \(scheme.rawValue) needs per-channel scales")
            }
            guard scale.isFinite else { throw TensorError.quantization("the scale \(scale) is not finite") }
        case .perChannel(let scales, let zeroPoints, let axis):
            guard scheme.isPerChannel else {
                throw TensorError.quantization("the scheme \(scheme.rawValue) takes one scale, not a tensor of them")
            }
            guard axis >= 0, axis < shape.count else {
                throw TensorError.quantization("axis \(axis) is outside a tensor of \(shape.count) dimensions")
            }
            let n = shape[axis]
            for (what, t) in [("scales", scales), ("zero points", zeroPoints)] {
                guard t.rank == 1, t.count == n else {
                    throw TensorError.quantization(
                        "\(t.count) \(what) of shape \(t.shape) for axis \(axis) of length \(n)")
                }
                guard t.hasData, t.sparse == nil, t.quantization == nil, t.dtype.isReal else {
                    throw TensorError.quantization("the \(what) are a \(t.dtype) tensor without plain values")
                }
            }
            guard scales.dtype.isFloatingPoint else {
                throw TensorError.quantization("the scales are \(scales.dtype), not a floating type")
            }
        }
    }
}

extension Tensor {
    /// The quantized integers, one per element in row-major order (packed types unpacked, first value in
    /// the lowest bits), as a new tensor of `int_repr()`'s dtype (`int8`, `uint8`, `int32`).
    public func unpackedIntegers() throws -> Tensor {
        guard let intType = dtype.integerRepresentation else {
            throw TensorError.quantization("\(dtype) is not quantized")
        }
        let raw = try contiguousBytes()
        let per = dtype.valuesPerElement
        let out: OwnedBytes
        if per == 1 {
            out = OwnedBytes(raw)
        } else {
            let bits = 8 / per
            let mask = UInt8((1 << bits) - 1)
            out = OwnedBytes(uninitializedCount: count)
            for i in 0..<count {
                out.mutableBytes[i] = (raw[i / per] >> UInt8((i % per) * bits)) & mask
            }
        }
        let storage = try Storage(key: storage.key, dtype: intType, count: count, source: out)
        return try Tensor(storage: storage, shape: shape, strides: Tensor.contiguousStrides(shape), storageOffset: 0)
    }

    /// The float32 values torch's `dequantize()` gives, as a new contiguous tensor: per tensor
    /// `(Float(q) − Float(zero_point)) × Float(scale)` in float32; per channel `((q − zero_point) × scale)`
    /// in float64, rounded once; with float zero points `(Float(q) − zero_point) × scale` in float32
    /// (each checked against torch 1.13's output by Tests/Reference/make_tensor_kinds.py's fixtures).
    public func dequantized() throws -> Tensor {
        guard let q = quantization else { throw TensorError.quantization("the tensor has no quantization parameters") }
        try q.check(shape: shape, dtype: dtype)
        let ints = try unpackedIntegers()
        let values = try ints.float64Values()
        let out = OwnedBytes(uninitializedCount: count * 4)
        let dst = out.pointer.assumingMemoryBound(to: Float.self)
        switch q.parameters {
        case .perTensor(let scale, let zeroPoint):
            let s = Float(scale)
            let z = Float(zeroPoint)
            for i in 0..<count { dst[i] = (Float(values[i]) - z) * s }
        case .perChannel(let scalesTensor, let zeroTensor, let axis):
            let scales = try scalesTensor.float64Values()
            let zeros = try zeroTensor.float64Values()
            let inner = shape[(axis + 1)...].reduce(1, *)
            let length = shape[axis]
            if q.hasFloatZeroPoints {
                for i in 0..<count {
                    let c = (i / inner) % length
                    dst[i] = (Float(values[i]) - Float(zeros[c])) * Float(scales[c])
                }
            } else {
                for i in 0..<count {
                    let c = (i / inner) % length
                    dst[i] = Float((values[i] - zeros[c]) * scales[c])
                }
            }
        }
        let storage = try Storage(key: storage.key, dtype: .float32, count: count, source: out)
        var t = try Tensor(storage: storage, shape: shape, strides: Tensor.contiguousStrides(shape), storageOffset: 0)
        t.requiresGrad = requiresGrad
        t.isParameter = isParameter
        return t
    }

    /// The elements of a real tensor as Float64, row-major (exact for every dtype but uint64/int64 past
    /// 2^53). For small tensors such as quantization parameters and sparse indices.
    public func float64Values() throws -> [Double] {
        guard dtype.isReal else { throw TensorError.notReal(dtype) }
        if dtype == .float64 {
            return try contiguousBytes().withUnsafeBytes { raw in
                (0..<count).map {
                    Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)))
                }
            }
        }
        if dtype == .int64 || dtype == .uint64 {
            return try int64Values().map { dtype == .uint64 ? Double(UInt64(bitPattern: $0)) : Double($0) }
        }
        return try float32().map(Double.init)
    }

    /// The elements of an integer tensor as Int64, row-major (uint64 as its bit pattern).
    public func int64Values() throws -> [Int64] {
        let raw = try contiguousBytes()
        return raw.withUnsafeBytes { p in
            (0..<count).map { i -> Int64 in
                switch dtype {
                case .int64, .uint64: Int64(littleEndian: p.loadUnaligned(fromByteOffset: i * 8, as: Int64.self))
                case .int32: Int64(Int32(littleEndian: p.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))
                case .uint32: Int64(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                case .int16: Int64(Int16(littleEndian: p.loadUnaligned(fromByteOffset: i * 2, as: Int16.self)))
                case .uint16: Int64(UInt16(littleEndian: p.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
                case .int8: Int64(Int8(bitPattern: p[i]))
                default: Int64(p[i])
                }
            }
        }
    }
}

// MARK: - Tensors without data

/// The bytes of a tensor that was saved without them (a meta tensor, a wrapper subclass): `count` is
/// the size its values would have, and reading throws `TensorError.noData`.
public final class AbsentBytes: ByteSource {
    public let count: Int
    /// What the tensor is, for the error: "a meta tensor", …
    public let what: String

    public init(count: Int, what: String) {
        self.count = count
        self.what = what
    }

    public func bytes() throws -> UnsafeRawBufferPointer { throw TensorError.noData(what) }
}

extension Tensor {
    /// A tensor of `dtype`, `shape` and `strides` with no values: `what` names it in errors.
    public static func withoutData(
        dtype: DType, shape: [Int], strides: [Int], storageOffset: Int = 0, what: String, location: String = "meta"
    ) throws -> Tensor {
        guard shape.count == strides.count else { throw TensorError.rankMismatch(shape: shape, strides: strides) }
        // The smallest storage the view fits in, as torch sizes a meta tensor's storage.
        guard storageOffset >= 0 else { throw TensorError.negativeOffset(storageOffset) }
        let (afterOffset, offsetOverflow) = storageOffset.addingReportingOverflow(1)
        guard !offsetOverflow else { throw TensorError.elementCountOverflow([storageOffset, 1]) }
        var extent = try Tensor.elementCount(shape) == 0 ? 0 : afterOffset
        for (size, stride) in zip(shape, strides) where size > 0 {
            let (step, o1) = (size - 1).multipliedReportingOverflow(by: max(stride, 0))
            let (sum, o2) = extent.addingReportingOverflow(step)
            guard !o1, !o2 else { throw TensorError.elementCountOverflow(shape) }
            extent = sum
        }
        let per = dtype.valuesPerElement
        let elements = per == 1 ? extent : (extent + per - 1) / per
        let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.itemSize)
        guard !overflow else { throw TensorError.elementCountOverflow(shape + [dtype.itemSize]) }
        let storage = try Storage(
            key: what, dtype: dtype, count: elements, source: AbsentBytes(count: bytes, what: what), location: location)
        return try Tensor(storage: storage, shape: shape, strides: strides, storageOffset: storageOffset)
    }
}

// MARK: - Descriptions

extension Tensor {
    /// A short description of what the tensor is beyond a strided view, for listings: the quantization
    /// scheme and parameters, the sparse layout and its count of values, or that it has no values; nil
    /// for an ordinary tensor.
    public var kindSummary: String? {
        if let q = quantization {
            switch q.parameters {
            case .perTensor(let scale, let zeroPoint):
                return "\(q.effectiveScheme.rawValue) scale \(scale) zero_point \(zeroPoint)"
            case .perChannel(let scales, _, let axis):
                return "\(q.effectiveScheme.rawValue) axis \(axis), \(scales.count) scales"
            }
        }
        if let s = sparse { return "\(s.layout.rawValue), \(s.nnz) values" }
        if let absent = storage.source as? AbsentBytes { return "\(absent.what), no values" }
        return nil
    }
}
