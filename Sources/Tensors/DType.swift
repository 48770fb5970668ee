/// The element types a checkpoint tensor may have: every dtype torch's safe loader accepts, except the
/// `bits*` and `float4_e2m1fn_x2` types, whose elements have no agreed meaning.
///
/// The raw values are torch's own spelling (`str(torch.float32)` without the `torch.` prefix), so they
/// can be printed and parsed as users of PyTorch expect.
public enum DType: String, CaseIterable, Sendable, Codable {
    case float32
    case float64
    case float16
    case bfloat16
    case int64
    case int32
    case int16
    case int8
    case uint8
    case bool
    // Complex: interleaved (real, imaginary) pairs of float16, float32, float64.
    case complex32
    case complex64
    case complex128
    // Unsigned integers beyond uint8 (torch 2.3).
    case uint16
    case uint32
    case uint64
    // 8-bit floats (torch 2.1 to 2.7): sign, exponent and mantissa bits, bias, and which codes are NaN differ.
    case float8_e4m3fn
    case float8_e5m2
    case float8_e4m3fnuz
    case float8_e5m2fnuz
    case float8_e8m0fnu
    // Quantized integers: the stored values; `Tensor.quantization` says what they mean.
    case qint8
    case quint8
    case qint32
    /// Two 4-bit values per byte, the first in the low nibble.
    case quint4x2
    /// Four 2-bit values per byte, the first in the lowest bits.
    case quint2x4

    /// Bytes per storage element (for the packed quantized types, bytes per byte of packed values).
    public var itemSize: Int {
        switch self {
        case .complex128: 16
        case .float64, .int64, .uint64, .complex64: 8
        case .float32, .int32, .uint32, .qint32, .complex32: 4
        case .float16, .bfloat16, .int16, .uint16: 2
        case .int8, .uint8, .bool, .float8_e4m3fn, .float8_e5m2, .float8_e4m3fnuz, .float8_e5m2fnuz,
            .float8_e8m0fnu, .qint8, .quint8, .quint4x2, .quint2x4:
            1
        }
    }

    /// How many values one storage element holds: 2 for quint4x2, 4 for quint2x4, else 1. A packed
    /// tensor is read as its packed bytes, `ceil(count / valuesPerElement)` of them.
    public var valuesPerElement: Int {
        switch self {
        case .quint4x2: 2
        case .quint2x4: 4
        default: 1
        }
    }

    /// The four IEEE-style floats `Cast.floats` converts between (float32, float64, float16, bfloat16).
    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float64, .float16, .bfloat16: true
        default: false
        }
    }

    /// One of the five 8-bit float formats.
    public var isFloat8: Bool {
        switch self {
        case .float8_e4m3fn, .float8_e5m2, .float8_e4m3fnuz, .float8_e5m2fnuz, .float8_e8m0fnu: true
        default: false
        }
    }

    public var isComplex: Bool { self == .complex32 || self == .complex64 || self == .complex128 }

    /// A quantized integer type, whose values mean something only with their scale and zero point.
    public var isQuantized: Bool {
        switch self {
        case .qint8, .quint8, .qint32, .quint4x2, .quint2x4: true
        default: false
        }
    }

    /// Every element is one real number that `Tensor.float32()` gives exactly or rounded: not complex,
    /// not quantized (use `Tensor.dequantized()`).
    public var isReal: Bool { !isComplex && !isQuantized }

    /// The dtype each of a complex number's two parts has; nil for other dtypes.
    public var complexPart: DType? {
        switch self {
        case .complex32: .float16
        case .complex64: .float32
        case .complex128: .float64
        default: nil
        }
    }

    /// The plain integer type a quantized type stores (`int_repr()`'s dtype); nil for other dtypes.
    public var integerRepresentation: DType? {
        switch self {
        case .qint8: .int8
        case .quint8, .quint4x2, .quint2x4: .uint8
        case .qint32: .int32
        default: nil
        }
    }

    /// The typed storage class torch pickles for this dtype (`torch.FloatStorage` for float32, …); nil for
    /// the dtypes torch saves as an untyped storage with `_rebuild_tensor_v3` (complex32, the unsigned
    /// types past uint8, the 8-bit floats).
    public var storageClassName: String? {
        switch self {
        case .float32: "FloatStorage"
        case .float64: "DoubleStorage"
        case .float16: "HalfStorage"
        case .bfloat16: "BFloat16Storage"
        case .int64: "LongStorage"
        case .int32: "IntStorage"
        case .int16: "ShortStorage"
        case .int8: "CharStorage"
        case .uint8: "ByteStorage"
        case .bool: "BoolStorage"
        case .complex64: "ComplexFloatStorage"
        case .complex128: "ComplexDoubleStorage"
        case .qint8: "QInt8Storage"
        case .quint8: "QUInt8Storage"
        case .qint32: "QInt32Storage"
        case .quint4x2: "QUInt4x2Storage"
        case .quint2x4: "QUInt2x4Storage"
        case .complex32, .uint16, .uint32, .uint64, .float8_e4m3fn, .float8_e5m2, .float8_e4m3fnuz,
            .float8_e5m2fnuz, .float8_e8m0fnu:
            nil
        }
    }

    /// The legacy tensor class of PyTorch ≤ 0.3 for this dtype (`torch.FloatTensor` for float32, …), for
    /// the ten dtypes that had one.
    public var tensorClassName: String? {
        guard DType.legacyTensorTypes.contains(self), let s = storageClassName else { return nil }
        return String(s.dropLast("Storage".count)) + "Tensor"
    }

    static let legacyTensorTypes: Set<DType> = [
        .float32, .float64, .float16, .bfloat16, .int64, .int32, .int16, .int8, .uint8, .bool,
    ]

    /// Looks up a dtype by the legacy class name of its storage (`FloatStorage`) or tensor (`FloatTensor`).
    public init?(legacyClassName name: String) {
        guard
            let match = DType.allCases.first(where: {
                $0.storageClassName == name || $0.tensorClassName == name
            })
        else { return nil }
        self = match
    }

    /// Looks up a dtype by torch's attribute name as it appears in pickles (`torch.float32`, and the
    /// aliases `float`, `double`, `half`, `long`, `int`, `short`, `cfloat`, `cdouble`, `chalf`).
    public init?(torchAttribute name: String) {
        switch name {
        case "float": self = .float32
        case "double": self = .float64
        case "half": self = .float16
        case "long": self = .int64
        case "int": self = .int32
        case "short": self = .int16
        case "chalf": self = .complex32
        case "cfloat": self = .complex64
        case "cdouble": self = .complex128
        default:
            guard let d = DType(rawValue: name) else { return nil }
            self = d
        }
    }
}
