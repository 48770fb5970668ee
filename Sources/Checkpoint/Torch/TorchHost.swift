import Tensors

/// Objects the torch host puts on the pickle stack.
final class StorageObject: PickleObject {
    let storage: Storage
    init(_ storage: Storage) { self.storage = storage }
    var typeName: String { "torch.\(storage.dtype.storageClassName)" }
}

/// A tensor, or a Parameter whose data BUILD has not yet supplied (legacy NEWOBJ with no arguments).
final class TensorObject: PickleObject {
    var tensor: Tensor?
    let isParameter: Bool
    init(_ tensor: Tensor?, isParameter: Bool) {
        self.tensor = tensor
        self.isParameter = isParameter
    }
    var typeName: String { isParameter ? "torch.nn.parameter.Parameter" : "torch.Tensor" }
}

final class DeviceObject: PickleObject {
    let spelling: String
    init(_ s: String) { spelling = s }
    var typeName: String { "torch.device" }
}

final class ComplexObject: PickleObject {
    let real: Double, imaginary: Double
    init(_ r: Double, _ i: Double) { real = r; imaginary = i }
    var typeName: String { "complex" }
}

/// torch's rebuild rules on top of the pickle machine: the allowlist, `_rebuild_tensor_v2`,
/// `Parameter` (new and legacy), OrderedDict with `_metadata`, and persistent ids, which each format
/// resolves its own way through `persistentLoad`.
final class TorchHost: PickleHost {
    /// Resolves a persistent id to a storage (zip, legacy) or a tensor (tar).
    var resolvePersistent: (PickleValue) throws -> PickleValue
    /// Caps on hashing keys of the dicts and sets the host makes, shared with the machine.
    var keyLimits = KeyLimits(maxDepth: PickleLimits().maxDepth, maxValues: PickleLimits().maxValues)

    init(persistentLoad: @escaping (PickleValue) throws -> PickleValue = { pid in
        throw CheckpointError(.badPersistentID("this pickle may not refer to storages (got a \(pid.typeName))"))
    }) {
        self.resolvePersistent = persistentLoad
    }

    func global(_ g: PickleGlobal) throws -> PickleValue {
        guard TorchGlobal(g) != nil else {
            throw CheckpointError(.refusedGlobal(module: g.module, name: g.name))
        }
        return .global(g)
    }

    func persistentLoad(_ pid: PickleValue) throws -> PickleValue {
        try resolvePersistent(pid)
    }

    private func refuse(_ what: String) -> CheckpointError { CheckpointError(.refusedCall(what)) }

    func call(_ callable: PickleValue, args: [PickleValue]) throws -> PickleValue {
        guard case .global(let g) = callable, let fn = TorchGlobal(g) else {
            throw refuse("REDUCE on a \(callable.typeName), which is not an allowed callable")
        }
        let name = g.qualifiedName
        switch fn {
        case .orderedDict:
            let d = PickleDict(keyLimits: keyLimits)
            d.isOrdered = true
            if let first = args.first {
                // OrderedDict(iterable of pairs), as protocol 0 pickles write it.
                let pairs: [PickleValue]
                switch first {
                case .list(let l): pairs = l.items
                case .tuple(let t): pairs = t.items
                default: throw refuse("\(name) with a \(first.typeName) argument")
                }
                for p in pairs {
                    guard case .tuple(let kv) = p, kv.items.count == 2 else { throw refuse("\(name) items must be pairs") }
                    try d.insert(kv.items[0], kv.items[1])
                }
            }
            guard args.count <= 1 else { throw refuse("\(name) takes at most one argument") }
            return .dict(d)
        case .rebuildTensor, .rebuildTensorV2, .rebuildTensorV3:
            return .object(TensorObject(try rebuildTensor(name, fn, args), isParameter: false))
        case .rebuildParameter, .rebuildParameterWithState:
            let expected = fn == .rebuildParameter ? 3 : 4
            guard args.count == expected else { throw refuse("\(name) takes \(expected) arguments, got \(args.count)") }
            guard case .object(let o) = args[0], let t = (o as? TensorObject)?.tensor else {
                throw refuse("\(name) needs a tensor, got a \(args[0].typeName)")
            }
            guard case .bool(let requiresGrad) = args[1] else { throw refuse("\(name): requires_grad is a \(args[1].typeName)") }
            try checkNoHooks(args[2], name)
            if fn == .rebuildParameterWithState, !isEmpty(args[3]) {
                throw refuse("\(name) with Python attributes on the parameter (a subclass state we cannot represent)")
            }
            var tensor = t
            tensor.requiresGrad = requiresGrad
            tensor.isParameter = true
            return .object(TensorObject(tensor, isParameter: true))
        case .size:
            guard args.count == 1, case .tuple(let t) = args[0] else { throw refuse("\(name) needs one tuple") }
            return .tuple(t)
        case .device:
            guard let first = args.first, case .string(let type) = first, args.count <= 2 else {
                throw refuse("\(name) needs a device type string")
            }
            if args.count == 2 {
                guard case .int(let index) = args[1] else { throw refuse("\(name) index is a \(args[1].typeName)") }
                return .object(DeviceObject("\(type):\(index)"))
            }
            return .object(DeviceObject(type))
        case .codecsEncode:
            guard args.count == 2, case .string(let s) = args[0], case .string(let encoding) = args[1] else {
                throw refuse("\(name) needs (str, encoding)")
            }
            switch encoding.lowercased() {
            case "latin1", "latin-1", "iso-8859-1":
                var out: [UInt8] = []
                out.reserveCapacity(s.unicodeScalars.count)
                for u in s.unicodeScalars {
                    guard u.value <= 0xFF else { throw refuse("\(name): character U+\(String(u.value, radix: 16)) is not latin1") }
                    out.append(UInt8(u.value))
                }
                return .bytes(out)
            case "utf-8", "utf8": return .bytes(Array(s.utf8))
            case "ascii":
                guard s.utf8.allSatisfy({ $0 < 0x80 }) else { throw refuse("\(name): text is not ascii") }
                return .bytes(Array(s.utf8))
            default: throw refuse("\(name) with encoding '\(encoding)'")
            }
        case .set, .frozenset:
            let s = PickleSet(frozen: fn == .frozenset, keyLimits: keyLimits)
            if let first = args.first {
                switch first {
                case .list(let l): for i in l.items { try s.insert(i) }
                case .tuple(let t): for i in t.items { try s.insert(i) }
                case .set(let o): for i in o.items { try s.insert(i) }
                default: throw refuse("\(name) of a \(first.typeName)")
                }
            }
            return .set(s)
        case .bytes where args.isEmpty:
            return .bytes([])
        case .bytes:
            throw refuse("\(name) with arguments (only bytes() for an empty value is allowed)")
        case .bytearray:
            switch args.first {
            case nil: return .bytes([])
            case .bytes(let b)?: return .bytes(b)
            case .list(let l)?:
                return .bytes(try l.items.map {
                    guard case .int(let v) = $0, (0...255).contains(v) else { throw refuse("\(name) of a non-byte value") }
                    return UInt8(v)
                })
            case let other?: throw refuse("\(name) of a \(other.typeName)")
            }
        case .complex:
            func number(_ v: PickleValue) throws -> Double {
                switch v {
                case .float(let d): return d
                case .int(let i): return Double(i)
                default: throw refuse("\(name) of a \(v.typeName)")
                }
            }
            let re = try args.first.map(number) ?? 0
            let im = try args.count > 1 ? number(args[1]) : 0
            return .object(ComplexObject(re, im))
        case .unsupported(let what):
            throw refuse("\(what): sparse, quantized and meta tensors are not supported")
        case .parameter, .tensorClass, .legacyTensorClass, .storageClass, .dtype:
            throw refuse("\(name) cannot be called through REDUCE")
        }
    }

    func instantiate(_ cls: PickleValue, args: [PickleValue], kwargs: PickleDict?) throws -> PickleValue {
        guard case .global(let g) = cls, let kind = TorchGlobal(g) else {
            throw refuse("instantiating a \(cls.typeName), which is not an allowed class")
        }
        guard kwargs == nil || kwargs!.count == 0 else { throw refuse("\(g.qualifiedName) with keyword arguments") }
        switch kind {
        case .parameter:
            // Legacy files: NEWOBJ with () and BUILD supplies the data. Newer: Parameter(data[, requires_grad]).
            if args.isEmpty { return .object(TensorObject(nil, isParameter: true)) }
            guard args.count <= 2, case .object(let o) = args[0], var t = (o as? TensorObject)?.tensor else {
                throw refuse("\(g.qualifiedName) needs a tensor")
            }
            if args.count == 2 {
                guard case .bool(let rg) = args[1] else { throw refuse("\(g.qualifiedName): requires_grad is a \(args[1].typeName)") }
                t.requiresGrad = rg
            } else {
                t.requiresGrad = true
            }
            t.isParameter = true
            return .object(TensorObject(t, isParameter: true))
        case .tensorClass:
            guard args.isEmpty else { throw refuse("\(g.qualifiedName) with arguments") }
            return .object(TensorObject(nil, isParameter: false))
        case .orderedDict:
            guard args.isEmpty else { throw refuse("\(g.qualifiedName) with arguments") }
            let d = PickleDict(keyLimits: keyLimits)
            d.isOrdered = true
            return .dict(d)
        default:
            throw refuse("\(g.qualifiedName) cannot be instantiated")
        }
    }

    func build(_ instance: PickleValue, state: PickleValue) throws -> PickleValue {
        switch instance {
        case .dict(let d) where d.isOrdered:
            // OrderedDict.__dict__.update(state): this is how `_metadata` arrives.
            var attrs = state
            if case .tuple(let t) = state, t.items.count == 2 { attrs = t.items[0] }  // (dict, slotstate)
            guard case .dict(let a) = attrs else { throw refuse("BUILD on OrderedDict with a \(attrs.typeName)") }
            if let existing = d.attributes {
                for (k, v) in zip(a.keys, a.values) { try existing.insert(k, v) }
            } else {
                d.attributes = a
            }
            return instance
        case .object(let o as TensorObject) where o.tensor == nil:
            guard case .tuple(let t) = state else { throw refuse("BUILD on \(o.typeName) with a \(state.typeName)") }
            let s = t.items
            switch s.count {
            case 5:  // legacy Variable: (data, grad, backward_hooks, requires_grad, volatile)
                guard case .object(let d) = s[0], var data = (d as? TensorObject)?.tensor else {
                    throw refuse("BUILD on \(o.typeName): data is a \(s[0].typeName)")
                }
                guard case .none = s[1] else { throw refuse("BUILD on \(o.typeName) with a saved gradient") }
                try checkNoHooks(s[2], "BUILD on \(o.typeName)")
                guard case .bool(let rg) = s[3] else { throw refuse("BUILD on \(o.typeName): requires_grad is a \(s[3].typeName)") }
                data.requiresGrad = rg
                data.isParameter = o.isParameter
                o.tensor = data
            case 4:  // legacy Tensor: set_(storage, offset, size, stride)
                guard case .object(let so) = s[0], let storage = (so as? StorageObject)?.storage else {
                    throw refuse("BUILD on \(o.typeName): storage is a \(s[0].typeName)")
                }
                var t = try makeTensor(storage, offset: s[1], size: s[2], stride: s[3], "BUILD on \(o.typeName)")
                t.isParameter = o.isParameter
                o.tensor = t
            default:
                throw refuse("BUILD on \(o.typeName) with a state of \(s.count) items")
            }
            return instance
        default:
            throw refuse("BUILD on a \(instance.typeName); torch allows it on Tensor, Parameter and OrderedDict only")
        }
    }

    // MARK: - Tensors

    private func rebuildTensor(_ name: String, _ fn: TorchGlobal, _ args: [PickleValue]) throws -> Tensor {
        let counts: ClosedRange<Int> = switch fn {
        case .rebuildTensor: 4...4
        case .rebuildTensorV2: 6...7
        default: 7...8
        }
        guard counts.contains(args.count) else { throw refuse("\(name) takes \(counts) arguments, got \(args.count)") }
        guard case .object(let so) = args[0], let storage = (so as? StorageObject)?.storage else {
            throw refuse("\(name) needs a storage, got a \(args[0].typeName)")
        }
        var tensor = try makeTensor(storage, offset: args[1], size: args[2], stride: args[3], name)
        if fn == .rebuildTensor { return tensor }
        guard case .bool(let rg) = args[4] else { throw refuse("\(name): requires_grad is a \(args[4].typeName)") }
        tensor.requiresGrad = rg
        try checkNoHooks(args[5], name)
        if fn == .rebuildTensorV3 {
            guard case .global(let g) = args[6], case .dtype(let dt)? = TorchGlobal(g), dt == storage.dtype else {
                throw refuse("\(name): dtype argument \(args[6].typeName) does not match the \(storage.dtype) storage")
            }
        }
        let metaIndex = fn == .rebuildTensorV3 ? 7 : 6
        if args.count > metaIndex, !isEmpty(args[metaIndex]) {
            throw refuse("\(name) with tensor metadata (conj/neg bits), which we do not read")
        }
        return tensor
    }

    private func makeTensor(_ storage: Storage, offset: PickleValue, size: PickleValue, stride: PickleValue, _ what: String) throws -> Tensor {
        let shape = try ints(size, "\(what): size")
        let strides = try ints(stride, "\(what): stride")
        guard case .int(let off) = offset else { throw refuse("\(what): storage offset is a \(offset.typeName)") }
        do {
            return try Tensor(storage: storage, shape: shape, strides: strides, storageOffset: Int(off))
        } catch let e as TensorError {
            throw CheckpointError(.invalidTensor(e))
        }
    }

    private func ints(_ v: PickleValue, _ what: String) throws -> [Int] {
        guard case .tuple(let t) = v else { throw refuse("\(what) is a \(v.typeName), not a tuple") }
        return try t.items.map {
            guard case .int(let i) = $0 else { throw refuse("\(what) holds a \($0.typeName)") }
            return Int(i)
        }
    }

    private func isEmpty(_ v: PickleValue) -> Bool {
        switch v {
        case .none: true
        case .dict(let d): d.count == 0
        default: false
        }
    }

    /// Backward hooks cannot be pickled by torch; a checkpoint carries an empty OrderedDict or None.
    private func checkNoHooks(_ v: PickleValue, _ what: String) throws {
        guard isEmpty(v) else { throw refuse("\(what) with backward hooks") }
    }
}
