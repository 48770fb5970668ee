/// Casting between floating dtypes, rounding exactly as torch's CPU casts do.
///
/// - float32 → float16: round to nearest even; NaN becomes sign | 0x7E00 (c10's fp16_ieee_from_fp32_value).
/// - float32 → bfloat16: round to nearest even; NaN becomes 0xFFFF, as torch's vectorised CPU kernel
///   (`cvtfp32_bf16`) writes it for every tensor longer than a vector (c10's scalar path would give 0x7FC0).
/// - float64 → float16 / bfloat16 goes through float32, as `Tensor.half()` on a double tensor does.
/// - Everything else is exact or IEEE round-to-nearest (float64 → float32).
public enum Cast {
    /// Converts `count` little-endian elements of `from` at `src` to `to` at `dst`. `to` must be a
    /// floating dtype; `from` a floating or float8 dtype (float8 values are exact in float32, so the
    /// result is rounded once).
    public static func floats(
        _ from: DType, _ src: UnsafeRawPointer, to: DType, _ dst: UnsafeMutableRawPointer, count: Int
    ) {
        precondition((from.isFloatingPoint || from.isFloat8) && to.isFloatingPoint, "Cast.floats takes floating dtypes")
        if from == to {
            dst.copyMemory(from: src, byteCount: count * from.itemSize)
            return
        }
        if to == .float64 {
            for i in 0..<count {
                let d = Double(load(from, src, i))
                (dst + i * 8).storeBytes(of: d.bitPattern.littleEndian, as: UInt64.self)
            }
            return
        }
        for i in 0..<count {
            let f: Float =
                from == .float64
                ? Float(Double(bitPattern: UInt64(littleEndian: (src + i * 8).loadUnaligned(as: UInt64.self))))
                : load(from, src, i)
            switch to {
            case .float32: (dst + i * 4).storeBytes(of: f.bitPattern.littleEndian, as: UInt32.self)
            case .float16: (dst + i * 2).storeBytes(of: half(f).littleEndian, as: UInt16.self)
            case .bfloat16: (dst + i * 2).storeBytes(of: bfloat16(f).littleEndian, as: UInt16.self)
            default: preconditionFailure("unreachable: \(to)")
            }
        }
    }

    /// Element `i` of a float32, float16 or bfloat16 buffer, exactly.
    @inline(__always)
    static func load(_ dtype: DType, _ p: UnsafeRawPointer, _ i: Int) -> Float {
        switch dtype {
        case .float32: Float(bitPattern: UInt32(littleEndian: (p + i * 4).loadUnaligned(as: UInt32.self)))
        case .float16: Float(Float16(bitPattern: UInt16(littleEndian: (p + i * 2).loadUnaligned(as: UInt16.self))))
        case .bfloat16:
            Float(bitPattern: UInt32(UInt16(littleEndian: (p + i * 2).loadUnaligned(as: UInt16.self))) << 16)
        case .float8_e4m3fn, .float8_e5m2, .float8_e4m3fnuz, .float8_e5m2fnuz, .float8_e8m0fnu:
            Float8.value(p.load(fromByteOffset: i, as: UInt8.self), dtype)
        default: preconditionFailure("not a float32/16 or float8 dtype: \(dtype)")
        }
    }

    /// float32 → IEEE half bits, round to nearest even.
    public static func half(_ f: Float) -> UInt16 {
        if f.isNaN { return (f.sign == .minus ? 0x8000 : 0) | 0x7E00 }
        return Float16(f).bitPattern
    }

    /// float32 → bfloat16 bits, round to nearest even.
    public static func bfloat16(_ f: Float) -> UInt16 {
        if f.isNaN { return 0xFFFF }
        let bits = f.bitPattern
        let bias = ((bits >> 16) & 1) + 0x7FFF
        return UInt16(truncatingIfNeeded: (bits &+ bias) >> 16)
    }
}

extension Storage {
    /// The storage's elements cast to `dtype` (a floating dtype), as a new root storage with the same
    /// key and element count. Views into it keep their element offsets and strides.
    public func cast(to dtype: DType) throws -> Storage {
        let src = try bytes()
        let out = OwnedBytes(uninitializedCount: count * dtype.itemSize)
        if count > 0 {
            Cast.floats(self.dtype, src.baseAddress!, to: dtype, out.pointer, count: count)
        }
        return try Storage(key: key, dtype: dtype, count: count, source: out)
    }
}

extension Tensor {
    /// The elements in row-major order, cast to `dtype` (when both are floating) or as they are.
    public func contiguousBytes(as dtype: DType) throws -> [UInt8] {
        let raw = try contiguousBytes()
        guard dtype != self.dtype else { return raw }
        guard (self.dtype.isFloatingPoint || self.dtype.isFloat8) && dtype.isFloatingPoint else {
            throw TensorError.notReal(self.dtype)
        }
        return [UInt8](unsafeUninitializedCapacity: count * dtype.itemSize) { out, n in
            raw.withUnsafeBytes { src in
                if count > 0 {
                    Cast.floats(
                        self.dtype, src.baseAddress!, to: dtype, UnsafeMutableRawPointer(out.baseAddress!), count: count
                    )
                }
            }
            n = count * dtype.itemSize
        }
    }
}
