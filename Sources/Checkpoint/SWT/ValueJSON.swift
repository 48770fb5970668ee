import Tensors

/// Non-tensor values in `.swt` metadata travel as JSON text. These are the two directions.
extension Value {
    /// The value as JSON, or nil when JSON cannot hold it faithfully: tensors, bytes, sets, complex
    /// numbers, dtypes, devices, integers beyond Int64, non-finite floats, dicts with non-string keys.
    /// Tuples become arrays.
    public var json: JSON? {
        switch self {
        case .none: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return Int(exactly: i).map(JSON.int)
        case .float(let d): return d.isFinite ? .double(d) : nil
        case .string(let s): return .string(s)
        case .list(let items), .tuple(let items):
            var out: [JSON] = []
            for v in items {
                guard let j = v.json else { return nil }
                out.append(j)
            }
            return .array(out)
        case .dict(let d):
            var out: [(String, JSON)] = []
            for e in d.entries {
                guard case .string(let k) = e.key, let j = e.value.json else { return nil }
                out.append((k, j))
            }
            return .object(out)
        case .bigInt, .complex, .bytes, .set, .tensor, .dtype, .device, .object:
            return nil
        }
    }

    /// The value a JSON text stands for (objects become ordered dicts with string keys).
    public init(json: JSON) {
        switch json {
        case .null: self = .none
        case .bool(let b): self = .bool(b)
        case .int(let i): self = .int(Int64(i))
        case .double(let d): self = .float(d)
        case .string(let s): self = .string(s)
        case .array(let items): self = .list(items.map(Value.init(json:)))
        case .object(let fields):
            self = .dict(ValueDict(
                entries: fields.map { .init(key: .string($0.0), value: Value(json: $0.1)) }, isOrdered: true))
        }
    }
}
