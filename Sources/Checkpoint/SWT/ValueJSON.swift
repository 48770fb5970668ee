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
            self = .dict(
                ValueDict(
                    entries: fields.map { .init(key: .string($0.0), value: Value(json: $0.1)) }, isOrdered: true))
        }
    }
}

extension Value {
    /// A one-line summary, for tables: numbers and strings as Python prints them, containers by size,
    /// tensors by dtype and shape, records by class.
    public var summary: String { Value.describe(self) }

    /// The value as JSON for reports, total where `json` is faithful or nil: tensors become
    /// `{"tensor": {dtype, shape}}`, bytes `{"bytes": count}`, complex numbers `{real, imag}`, dicts with
    /// non-string keys a list of pairs, records `{"object": {class, kind, args, state, …}}`.
    public var reportJSON: JSON { Value.encode(self) }

    static func describe(_ v: Value) -> String {
        switch v {
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .bigInt(let s): return s
        case .float(let d): return "\(d)"
        case .complex(let r, let i): return "(\(r)+\(i)j)"
        case .string(let s): return "'\(s)'"
        case .bytes(let b): return "bytes(\(b.count))"
        case .list(let l): return "list(\(l.count))"
        case .tuple(let t): return "(" + t.map(describe).joined(separator: ", ") + ")"
        case .set(let s): return "set(\(s.count))"
        case .dict(let d):
            let tensors = d.entries.filter { $0.value.tensor != nil }.count
            return "dict(\(d.count) entries\(tensors > 0 ? ", \(tensors) tensors" : ""))"
        case .tensor(let t): return "tensor \(t.dtype.rawValue) \(t.shape)"
        case .dtype(let d): return "torch.\(d.rawValue)"
        case .device(let s): return "device('\(s)')"
        case .object(let o):
            switch o.kind {
            case .reference: return "<\(o.qualifiedName)>"
            case .cycle: return "<\(o.qualifiedName) object, met again inside itself>"
            case .call: return "<\(o.qualifiedName)(\(o.args.map(describe).joined(separator: ", ")))>"
            case .instance:
                let n = o.attributes.count + o.dictItems.count + o.listItems.count
                return "<\(o.qualifiedName) object, \(n) entries\(o.isModule ? ", a module" : "")>"
            }
        }
    }

    static func encode(_ v: Value) -> JSON {
        switch v {
        case .none: return .null
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(Int(i))
        case .bigInt(let s): return .string(s)
        case .float(let d): return .double(d)
        case .complex(let r, let i): return .object([("real", .double(r)), ("imag", .double(i))])
        case .string(let s): return .string(s)
        case .bytes(let b): return .object([("bytes", .int(b.count))])
        case .list(let l), .tuple(let l), .set(let l): return .array(l.map(encode))
        case .dict(let d):
            if d.entries.allSatisfy({ $0.key.string != nil }) {
                return .object(d.entries.map { ($0.key.string!, encode($0.value)) })
            }
            return .array(d.entries.map { .array([encode($0.key), encode($0.value)]) })
        case .tensor(let t):
            return .object([
                (
                    "tensor",
                    .object([
                        ("dtype", .string(t.dtype.rawValue)), ("shape", .array(t.shape.map { .int($0) })),
                    ])
                )
            ])
        case .dtype(let d): return .string("torch.\(d.rawValue)")
        case .device(let s): return .string(s)
        case .object(let o):
            var fields: [(String, JSON)] = [("class", .string(o.qualifiedName)), ("kind", .string(o.kind.rawValue))]
            if !o.args.isEmpty { fields.append(("args", .array(o.args.map(encode)))) }
            if !o.kwargs.isEmpty { fields.append(("kwargs", encode(.dict(ValueDict(entries: o.kwargs))))) }
            if !o.states.isEmpty { fields.append(("state", .array(o.states.map(encode)))) }
            if !o.listItems.isEmpty { fields.append(("list_items", .array(o.listItems.map(encode)))) }
            if !o.dictItems.isEmpty { fields.append(("dict_items", encode(.dict(ValueDict(entries: o.dictItems))))) }
            return .object([("object", .object(fields))])
        }
    }
}
