import Tensors

extension TorchHost {
    /// Turns the machine's result into a typed `Value`. Runs while the machine's containers are alive.
    /// Depth is capped so cyclic or absurdly deep structures become an error, not a crash, and so is the
    /// number of values made, since a container referenced twice is converted twice.
    static func value(_ v: PickleValue, maxDepth: Int, maxValues: Int = PickleLimits().maxValues) throws -> Value {
        var budget = maxValues
        return try value(v, maxDepth: maxDepth, maxValues: maxValues, budget: &budget, depth: 0)
    }

    private static func value(
        _ v: PickleValue, maxDepth: Int, maxValues: Int, budget: inout Int, depth: Int
    ) throws -> Value {
        guard depth <= maxDepth else {
            throw CheckpointError(.limitExceeded(.maxDepth, limit: maxDepth, "values nested deeper (or a container holds itself)"))
        }
        budget -= 1
        guard budget >= 0 else {
            throw CheckpointError(.limitExceeded(.maxValues, limit: maxValues,
                "the pickle's result holds more values (containers referenced many times through the memo)"))
        }
        func inner(_ x: PickleValue) throws -> Value {
            try value(x, maxDepth: maxDepth, maxValues: maxValues, budget: &budget, depth: depth + 1)
        }
        switch v {
        case .none: return .none
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .bigInt(let s): return .bigInt(s)
        case .float(let d): return .float(d)
        case .string(let s): return .string(s)
        case .bytes(let b): return .bytes(b)
        case .tuple(let t): return .tuple(try t.items.map(inner))
        case .list(let l): return .list(try l.items.map(inner))
        case .set(let s): return .set(try s.items.map(inner))
        case .dict(let d):
            var out = ValueDict(isOrdered: d.isOrdered)
            out.entries.reserveCapacity(d.count)
            for (k, x) in zip(d.keys, d.values) {
                out.entries.append(.init(key: try inner(k), value: try inner(x)))
            }
            if let attrs = d.attributes {
                for (k, x) in zip(attrs.keys, attrs.values) {
                    if case .string("_metadata") = k {
                        out.metadata = try inner(x)
                    } else {
                        out.attributes.append(.init(key: try inner(k), value: try inner(x)))
                    }
                }
            }
            return .dict(out)
        case .global(let g):
            if case .dtype(let dt)? = TorchGlobal(g) { return .dtype(dt) }
            throw CheckpointError(.refusedCall("the class \(g.qualifiedName) appears as a value, not as data"))
        case .object(let o):
            switch o {
            case let t as TensorObject:
                guard let tensor = t.tensor else {
                    throw CheckpointError(.malformedPickle("a \(t.typeName) was created but never given its data (no BUILD)"))
                }
                return .tensor(tensor)
            case let d as DeviceObject: return .device(d.spelling)
            case let c as ComplexObject: return .complex(real: c.real, imaginary: c.imaginary)
            case let s as StorageObject:
                throw CheckpointError(.refusedCall("a bare \(s.typeName) (not wrapped in a tensor) is not supported"))
            default:
                throw CheckpointError(.refusedCall("a \(o.typeName) appears as a value"))
            }
        }
    }
}
