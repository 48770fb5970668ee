import Tensors

/// numpy values as pickle writes them, read as plain data:
///
///     dtype:   numpy.dtype('f4', False, True), BUILD (3, '<', None, None, None, -1, -1, 0)
///              (version 4 adds a flags item; a dtype with fields or subarrays is refused)
///     ndarray: numpy.core.multiarray._reconstruct(numpy.ndarray, (0,), b'b'),
///              BUILD (1, shape, dtype, is_fortran, raw bytes)
///     scalar:  numpy.core.multiarray.scalar(dtype, raw bytes)
///     (protocol 5: numpy.core.numeric._frombuffer(bytes, dtype, shape, order))
///
/// Arrays become tensors over a copy of their bytes; scalars become Python numbers. Object arrays
/// (whose elements are pickles of their own) and dtypes torch lacks are refused by name.
final class NumpyDTypeObject: PickleObject {
    /// The type code without byte order: "f4", "i8", "b1", "u1" …
    let code: String
    var byteOrder: Character = "="
    init(code: String) { self.code = code }
    var typeName: String { "numpy.dtype" }

    var littleEndian: Bool { byteOrder != ">" }

    /// The torch dtype with the same elements, or nil.
    var dtype: DType? {
        switch code {
        case "f4": .float32
        case "f8": .float64
        case "f2": .float16
        case "i8": .int64
        case "i4": .int32
        case "i2": .int16
        case "i1": .int8
        case "u1": .uint8
        case "u2": .uint16
        case "u4": .uint32
        case "u8": .uint64
        case "c8": .complex64
        case "c16": .complex128
        case "b1": .bool
        default: nil
        }
    }
}

/// An ndarray whose data BUILD has not yet supplied, then the tensor over its bytes.
final class NDArrayObject: PickleObject {
    var tensor: Tensor?
    var typeName: String { "numpy.ndarray" }
}

/// Counts numpy arrays of one checkpoint, to give their storages distinct keys.
final class NumpyKeys {
    private(set) var next = 0
    func make() -> String {
        defer { next += 1 }
        return "numpy:\(next)"
    }
}

enum Numpy {
    static func refuse(_ what: String) -> CheckpointError { CheckpointError(.refusedCall(what)) }

    /// `numpy.dtype(code, align, copy)`.
    static func dtype(_ args: [PickleValue]) throws -> NumpyDTypeObject {
        guard (1...3).contains(args.count), let spelled = asciiString(args[0]) else {
            throw refuse("numpy.dtype needs a type code string, got \(args.map(\.typeName))")
        }
        var code = spelled
        var order: Character = "="
        if let first = code.first, "<>=|".contains(first) {
            order = first
            code.removeFirst()
        }
        let d = NumpyDTypeObject(code: code)
        d.byteOrder = order
        return d
    }

    /// dtype BUILD: (version, byteorder, subarray, names, fields, elsize, alignment, flags[, metadata]).
    static func buildDType(_ d: NumpyDTypeObject, _ state: PickleValue) throws {
        guard case .tuple(let t) = state, t.items.count >= 8, let order = asciiString(t.items[1]), order.count == 1
        else {
            throw refuse("BUILD on numpy.dtype with a \(state.typeName); expected numpy's 8- or 9-item state")
        }
        for i in 2...4 {
            guard case .none = t.items[i] else {
                throw refuse("numpy.dtype '\(d.code)' with fields or a subarray (a structured dtype)")
            }
        }
        d.byteOrder = order.first!
    }

    static func torchDType(_ d: NumpyDTypeObject) throws -> DType {
        guard let dt = d.dtype else {
            throw refuse(
                d.code == "O"
                    ? "a numpy object array (its elements are pickles of their own)"
                    : "numpy dtype '\(d.code)' has no torch dtype")
        }
        return dt
    }

    /// The elements of `raw` (bytes, or a protocol 2 latin-1 string) as a tensor of `shape`.
    static func array(
        _ raw: PickleValue, dtype d: NumpyDTypeObject, shape: PickleValue, fortran: Bool,
        keys: NumpyKeys
    ) throws -> Tensor {
        let dt = try torchDType(d)
        guard case .tuple(let st) = shape else { throw refuse("numpy array shape is a \(shape.typeName)") }
        let dims: [Int] = try st.items.map {
            guard case .int(let n) = $0, n >= 0, n <= Int64(Int32.max) else {
                throw refuse("numpy array shape holds \($0.typeName)")
            }
            return Int(n)
        }
        let bytes = try rawBytes(raw)
        var count = 1
        for n in dims {
            let (c, o) = count.multipliedReportingOverflow(by: n)
            guard !o else { throw CheckpointError(.invalidTensor(.elementCountOverflow(dims))) }
            count = c
        }
        let (need, o) = count.multipliedReportingOverflow(by: dt.itemSize)
        guard !o, need == bytes.count else {
            throw CheckpointError(
                .malformedPickle(
                    "a numpy array of shape \(dims) and dtype \(d.code) holds \(bytes.count) bytes, not \(o ? "that many" : String(need))"
                ))
        }
        let source = nativeOrder(OwnedBytes(bytes), dtype: dt, littleEndian: d.littleEndian)
        do {
            let storage = try Storage(key: keys.make(), dtype: dt, count: count, source: source)
            var strides = Tensor.contiguousStrides(dims)
            if fortran {
                var s = 1
                strides = dims.map { n in
                    defer { s *= max(n, 1) }
                    return s
                }
            }
            return try Tensor(storage: storage, shape: dims, strides: strides, storageOffset: 0)
        } catch let e as TensorError {
            throw CheckpointError(.invalidTensor(e))
        }
    }

    /// ndarray BUILD: (version, shape, dtype, is_fortran, rawdata).
    static func buildArray(_ a: NDArrayObject, _ state: PickleValue, keys: NumpyKeys) throws {
        guard a.tensor == nil else { throw refuse("BUILD on a numpy.ndarray that already has data") }
        // (version, shape, dtype, is_fortran, data); the version may be left out.
        guard case .tuple(let whole) = state, whole.items.count == 5 || whole.items.count == 4 else {
            throw refuse(
                "BUILD on numpy.ndarray with a \(state.typeName); expected (version, shape, dtype, is_fortran, data)")
        }
        let t = Array(whole.items.suffix(4))
        guard case .object(let o) = t[1], let d = o as? NumpyDTypeObject else {
            throw refuse("numpy.ndarray state: dtype is a \(t[1].typeName)")
        }
        guard case .bool(let fortran) = t[2] else {
            throw refuse("numpy.ndarray state: is_fortran is a \(t[2].typeName)")
        }
        a.tensor = try array(t[3], dtype: d, shape: t[0], fortran: fortran, keys: keys)
    }

    /// `numpy.core.multiarray.scalar(dtype, bytes)`: a Python number.
    static func scalar(_ args: [PickleValue]) throws -> PickleValue {
        guard args.count == 2, case .object(let o) = args[0], let d = o as? NumpyDTypeObject else {
            throw refuse("numpy scalar needs (dtype, bytes)")
        }
        let dt = try torchDType(d)
        let raw = try rawBytes(args[1])
        guard raw.count == dt.itemSize else {
            throw CheckpointError(
                .malformedPickle("a numpy \(d.code) scalar holds \(raw.count) bytes, not \(dt.itemSize)"))
        }
        let bytes = d.littleEndian ? raw : raw.reversed()
        var bits: UInt64 = 0
        for (i, b) in bytes.enumerated() { bits |= UInt64(b) << (8 * i) }
        switch dt {
        case .bool: return .bool(bytes[0] != 0)
        case .int64, .int32, .int16, .int8, .uint8:
            var v: Int64 = 0
            for (i, b) in bytes.enumerated() { v |= Int64(b) << (8 * i) }
            let bits = 8 * bytes.count
            if dt != .uint8, bits < 64, v & (1 << (bits - 1)) != 0 { v -= 1 << bits }  // sign-extend
            return .int(v)
        case .uint16, .uint32: return .int(Int64(bits))
        case .uint64: return bits <= UInt64(Int64.max) ? .int(Int64(bits)) : .bigInt(String(bits))
        case .float64: return .float(Double(bitPattern: bits))
        case .float32: return .float(Double(Float(bitPattern: UInt32(bits))))
        case .float16: return .float(Double(Float(Float16(bitPattern: UInt16(bits)))))
        case .complex64, .complex128:
            // Each part in the file's byte order.
            let half = raw.count / 2
            func part(_ bytes: ArraySlice<UInt8>) -> Double {
                let ordered = d.littleEndian ? Array(bytes) : bytes.reversed()
                var b: UInt64 = 0
                for (i, x) in ordered.enumerated() { b |= UInt64(x) << (8 * i) }
                return half == 8 ? Double(bitPattern: b) : Double(Float(bitPattern: UInt32(b)))
            }
            return .object(ComplexObject(part(raw[0..<half]), part(raw[half...])))
        default: throw refuse("a numpy scalar of dtype \(d.code)")
        }
    }

    /// `numpy.core.numeric._frombuffer(buffer, dtype, shape, order)`.
    static func fromBuffer(_ args: [PickleValue], keys: NumpyKeys) throws -> Tensor {
        guard args.count == 4, case .object(let o) = args[1], let d = o as? NumpyDTypeObject,
            let order = asciiString(args[3])
        else {
            throw refuse("numpy _frombuffer needs (buffer, dtype, shape, order)")
        }
        return try array(args[0], dtype: d, shape: args[2], fortran: order == "F", keys: keys)
    }

    static func rawBytes(_ v: PickleValue) throws -> [UInt8] {
        switch v {
        case .bytes(let b): return b
        case .string(let s):  // Python 2's str, read as text: each character is one byte
            var out: [UInt8] = []
            out.reserveCapacity(s.unicodeScalars.count)
            for u in s.unicodeScalars {
                guard u.value <= 0xFF else { throw refuse("numpy data as text holds U+\(String(u.value, radix: 16))") }
                out.append(UInt8(u.value))
            }
            return out
        case .list: throw refuse("a numpy object array (its elements are pickles of their own)")
        default: throw refuse("numpy data is a \(v.typeName), not bytes")
        }
    }
}
