/// A typed value from a checkpoint: everything `torch.load` can return once tensors are resolved.
///
/// Wrappers such as `{'state_dict': …, 'epoch': 3, 'optimizer': {…}}` keep every entry; nothing the
/// file holds is dropped.
public indirect enum Value: Sendable {
    case none
    case bool(Bool)
    case int(Int64)
    /// An integer outside Int64, as Python's decimal spelling.
    case bigInt(String)
    case float(Double)
    case complex(real: Double, imaginary: Double)
    case string(String)
    case bytes([UInt8])
    case list([Value])
    case tuple([Value])
    case set([Value])
    case dict(ValueDict)
    case tensor(Tensor)
    case dtype(DType)
    /// `torch.device('cpu')` and friends, by their spelling.
    case device(String)
    /// A Python object the file describes but that is never built: an instance of a class outside the
    /// allowlist, read as data with `LoadOptions.stubClasses`, or a TorchScript module.
    case object(ObjectRecord)

    public var tensor: Tensor? { if case .tensor(let t) = self { t } else { nil } }
    public var dict: ValueDict? { if case .dict(let d) = self { d } else { nil } }
    public var string: String? { if case .string(let s) = self { s } else { nil } }
    public var int: Int64? { if case .int(let i) = self { i } else { nil } }
    public var object: ObjectRecord? { if case .object(let o) = self { o } else { nil } }
    public var isNone: Bool { if case .none = self { true } else { false } }

    /// A short name of the case, for messages ("dict", "tensor", …).
    public var kindName: String {
        switch self {
        case .none: "None"
        case .bool: "bool"
        case .int, .bigInt: "int"
        case .float: "float"
        case .complex: "complex"
        case .string: "str"
        case .bytes: "bytes"
        case .list: "list"
        case .tuple: "tuple"
        case .set: "set"
        case .dict: "dict"
        case .tensor: "tensor"
        case .dtype: "dtype"
        case .device: "device"
        case .object(let o): o.qualifiedName
        }
    }
}

/// An insertion-ordered dictionary as Python keeps it, with the `_metadata` attribute torch attaches to
/// state dicts (per-module versions) when the file has one.
public struct ValueDict: Sendable {
    public struct Entry: Sendable {
        public var key: Value
        public var value: Value
        public init(key: Value, value: Value) {
            self.key = key
            self.value = value
        }
    }

    public var entries: [Entry]
    public var metadata: Value?
    /// Other attributes BUILD set on an OrderedDict besides `_metadata` (kept, never dropped).
    public var attributes: [Entry] = []
    /// True for `collections.OrderedDict`, false for a plain `dict`.
    public var isOrdered: Bool

    public init(entries: [Entry] = [], metadata: Value? = nil, isOrdered: Bool = false) {
        self.entries = entries
        self.metadata = metadata
        self.isOrdered = isOrdered
    }

    /// The value under a string key.
    public subscript(key: String) -> Value? {
        entries.first(where: { $0.key.string == key })?.value
    }

    public var count: Int { entries.count }
}
