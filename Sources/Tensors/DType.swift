/// The element types a checkpoint tensor may have.
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

    /// Bytes per element.
    public var itemSize: Int {
        switch self {
        case .float64, .int64: 8
        case .float32, .int32: 4
        case .float16, .bfloat16, .int16: 2
        case .int8, .uint8, .bool: 1
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .float32, .float64, .float16, .bfloat16: true
        default: false
        }
    }

    /// The legacy storage class torch pickles for this dtype (`torch.FloatStorage` for float32, …).
    public var storageClassName: String {
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
        }
    }

    /// The legacy tensor class of PyTorch ≤ 0.3 for this dtype (`torch.FloatTensor` for float32, …).
    public var tensorClassName: String {
        String(storageClassName.dropLast("Storage".count)) + "Tensor"
    }

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
    /// aliases `float`, `double`, `half`, `long`, `int`, `short`).
    public init?(torchAttribute name: String) {
        switch name {
        case "float", "float32": self = .float32
        case "double", "float64": self = .float64
        case "half", "float16": self = .float16
        case "bfloat16": self = .bfloat16
        case "long", "int64": self = .int64
        case "int", "int32": self = .int32
        case "short", "int16": self = .int16
        case "int8": self = .int8
        case "uint8": self = .uint8
        case "bool": self = .bool
        default: return nil
        }
    }
}
