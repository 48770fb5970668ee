import Tensors

extension TorchHost {
    /// Turns the machine's result into a typed `Value`. Runs while the machine's containers are alive.
    /// Depth is capped so cyclic or absurdly deep structures become an error, not a crash, and so is the
    /// number of values made, since a container referenced twice is converted twice.
    static func value(
        _ v: PickleValue, maxDepth: Int, maxValues: Int = PickleLimits().maxValues,
        stubClasses: Bool = false, scriptClasses: [String: ScriptClass] = [:]
    ) throws -> Value {
        var budget = maxValues
        let context = Context(
            maxDepth: maxDepth, maxValues: maxValues, stubClasses: stubClasses, scriptClasses: scriptClasses)
        return try value(v, context, budget: &budget, depth: 0)
    }

    private final class Context {
        let maxDepth: Int
        let maxValues: Int
        let stubClasses: Bool
        let scriptClasses: [String: ScriptClass]
        /// The records on the path being converted, to cut cycles through them.
        var active: Set<ObjectIdentifier> = []
        init(maxDepth: Int, maxValues: Int, stubClasses: Bool, scriptClasses: [String: ScriptClass]) {
            self.maxDepth = maxDepth
            self.maxValues = maxValues
            self.stubClasses = stubClasses
            self.scriptClasses = scriptClasses
        }
    }

    private static func value(_ v: PickleValue, _ c: Context, budget: inout Int, depth: Int) throws -> Value {
        let maxDepth = c.maxDepth, maxValues = c.maxValues
        guard depth <= maxDepth else {
            throw CheckpointError(
                .limitExceeded(.maxDepth, limit: maxDepth, "values nested deeper (or a container holds itself)"))
        }
        budget -= 1
        guard budget >= 0 else {
            throw CheckpointError(
                .limitExceeded(
                    .maxValues, limit: maxValues,
                    "the pickle's result holds more values (containers referenced many times through the memo)"))
        }
        func inner(_ x: PickleValue) throws -> Value {
            try value(x, c, budget: &budget, depth: depth + 1)
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
            switch TorchGlobal(g) {
            case .dtype(let dt)?: return .dtype(dt)
            case .qscheme?, .layout?: return .string(g.qualifiedName)
            default: break
            }
            if c.stubClasses { return .object(ObjectRecord(kind: .reference, module: g.module, name: g.name)) }
            throw CheckpointError(.refusedCall("the class \(g.qualifiedName) appears as a value, not as data"))
        case .object(let o):
            return try objectValue(o, c, inner)
        }
    }

    /// Objects the host made, converted outside `value`'s frame: this keeps the recursive frame small
    /// (a record's fields would otherwise sit in every level's frame, and 512 levels of nesting under
    /// AddressSanitizer overflowed a test thread's stack).
    @inline(never)
    private static func objectValue(_ o: any PickleObject, _ c: Context, _ inner: (PickleValue) throws -> Value) throws
        -> Value
    {
        switch o {
        case let t as TensorObject:
            guard let tensor = t.tensor else {
                throw CheckpointError(
                    .malformedPickle("a \(t.typeName) was created but never given its data (no BUILD)"))
            }
            return .tensor(tensor)
        case let d as DeviceObject: return .device(d.spelling)
        case let l as LayoutObject: return .string(l.typeName)
        case let c as ComplexObject: return .complex(real: c.real, imaginary: c.imaginary)
        case let a as NDArrayObject:
            guard let tensor = a.tensor else {
                throw CheckpointError(
                    .malformedPickle("a numpy.ndarray was created but never given its data (no BUILD)"))
            }
            return .tensor(tensor)
        case let d as NumpyDTypeObject:
            if let dt = d.dtype { return .dtype(dt) }
            return .string("numpy.dtype('\(d.byteOrder == "=" ? "" : String(d.byteOrder))\(d.code)')")
        case let r as RecordObject:
            // Python objects may hold themselves (omegaconf nodes point at their parent). Dicts and lists
            // that do are refused (a state dict never does), but a record met again on its own path
            // becomes a `.cycle` record of its class.
            let id = ObjectIdentifier(r)
            guard c.active.insert(id).inserted else {
                return .object(ObjectRecord(kind: .cycle, module: r.global.module, name: r.global.name))
            }
            defer { c.active.remove(id) }
            var out = ObjectRecord(kind: r.kind, module: r.global.module, name: r.global.name)
            out.args = try r.args.map(inner)
            if let kw = r.kwargs {
                for (k, x) in zip(kw.keys, kw.values) {
                    out.kwargs.append(.init(key: try inner(k), value: try inner(x)))
                }
            }
            out.states = try r.states.map(inner)
            out.listItems = try r.listItems.map(inner)
            for (k, x) in zip(r.dictKeys, r.dictValues) {
                out.dictItems.append(.init(key: try inner(k), value: try inner(x)))
            }
            if r.isScriptClass, r.kind == .instance {
                guard let decl = c.scriptClasses[r.global.qualifiedName] else {
                    throw CheckpointError(
                        .malformedArchive("the TorchScript class \(r.global.qualifiedName) has no declaration in code/")
                    )
                }
                if decl.isModule {
                    out.scriptParameters = decl.parameters
                    out.scriptBuffers = decl.buffers
                }
            }
            return .object(out)
        case let s as StorageObject:
            throw CheckpointError(.refusedCall("a bare \(s.typeName) (not wrapped in a tensor) is not supported"))
        default:
            throw CheckpointError(.refusedCall("a \(o.typeName) appears as a value"))
        }
    }
}
