import Tensors

/// Objects the torch host puts on the pickle stack.
final class StorageObject: PickleObject {
    let storage: Storage
    init(_ storage: Storage) { self.storage = storage }
    var typeName: String { "torch.\(storage.dtype.storageClassName ?? "UntypedStorage")" }
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
    init(_ r: Double, _ i: Double) {
        real = r
        imaginary = i
    }
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
    /// `LoadOptions.stubClasses`: globals outside the allowlist become `RecordObject`s.
    var stubClasses = false
    /// Reading a TorchScript archive: `__torch__.…` classes become records (NEWOBJ and BUILD only), and
    /// `torch.jit._pickle`'s list builders are allowed.
    var torchScript = false
    /// TorchScript class declarations from the archive's `code/`, by qualified name.
    var scriptClasses: [String: ScriptClass] = [:]
    /// The globals made into records, in order of first use.
    private(set) var stubbed: [PickleGlobal] = []
    private var stubbedSet: Set<PickleGlobal> = []
    let numpyKeys = NumpyKeys()
    /// The byte order the file declares; untyped storages are bytes, so a big-endian file's multi-byte
    /// `_rebuild_tensor_v3` tensors cannot be read as they are.
    var littleEndian = true
    /// Untyped storages seen as a dtype by `_rebuild_tensor_v3`, so that views keep sharing.
    var retypedStorages: [RetypeKey: Storage] = [:]

    init(
        persistentLoad: @escaping (PickleValue) throws -> PickleValue = { pid in
            throw CheckpointError(.badPersistentID("this pickle may not refer to storages (got a \(pid.typeName))"))
        }
    ) {
        self.resolvePersistent = persistentLoad
    }

    func global(_ g: PickleGlobal) throws -> PickleValue {
        if let kind = TorchGlobal(g) {
            if kind == .jitList || kind == .jitTypeTag, !torchScript, !stubClasses {
                throw CheckpointError(.refusedGlobal(module: g.module, name: g.name))
            }
            return .global(g)
        }
        let scriptClass = torchScript && (g.module == "__torch__" || g.module.hasPrefix("__torch__."))
        guard scriptClass || stubClasses else {
            throw CheckpointError(.refusedGlobal(module: g.module, name: g.name))
        }
        if stubbedSet.insert(g).inserted { stubbed.append(g) }
        let r = RecordObject(.reference, g, scriptOnly: !stubClasses)
        r.isScriptClass = scriptClass
        return .object(r)
    }

    /// What calling or instantiating `callee` makes, when that is a record: for a recorded class or
    /// function (a reference record) always, and for any other object under `stubClasses`, named by its
    /// type. Nil when the callee must go through the allowlist instead.
    private func record(
        _ kind: ObjectRecord.Kind, of callee: any PickleObject, args: [PickleValue], kwargs: PickleDict?
    ) -> PickleValue? {
        let rec: RecordObject
        if let r = callee as? RecordObject, r.kind == .reference {
            rec = RecordObject(kind, r.global, scriptOnly: r.scriptOnly)
            rec.isScriptClass = r.isScriptClass
        } else if stubClasses {
            rec = RecordObject(kind, PickleGlobal(module: "", name: "(\(callee.typeName))"), scriptOnly: false)
        } else {
            return nil
        }
        rec.args = args
        rec.kwargs = kwargs
        return .object(rec)
    }

    func appendItems(_ target: PickleValue, _ items: [PickleValue]) throws {
        guard case .object(let o) = target, let r = o as? RecordObject, r.kind != .reference, !r.scriptOnly else {
            throw CheckpointError(.malformedPickle("APPEND to a \(target.typeName)"))
        }
        r.listItems.append(contentsOf: items)
    }

    func setItems(_ target: PickleValue, _ pairs: [(PickleValue, PickleValue)]) throws {
        guard case .object(let o) = target, let r = o as? RecordObject, r.kind != .reference, !r.scriptOnly else {
            throw CheckpointError(.malformedPickle("SETITEM on a \(target.typeName)"))
        }
        for (k, v) in pairs {
            r.dictKeys.append(k)
            r.dictValues.append(v)
        }
    }

    func persistentLoad(_ pid: PickleValue) throws -> PickleValue {
        try resolvePersistent(pid)
    }

    func refuse(_ what: String) -> CheckpointError { CheckpointError(.refusedCall(what)) }

    func call(_ callable: PickleValue, args: [PickleValue]) throws -> PickleValue {
        if case .object(let o) = callable {
            if let r = o as? RecordObject, r.kind == .reference, r.scriptOnly {
                throw refuse(
                    "REDUCE on the TorchScript class \(r.global.qualifiedName); a TorchScript archive only builds its classes (NEWOBJ, BUILD)"
                )
            }
            if let rec = record(.call, of: o, args: args, kwargs: nil) { return rec }
        }
        guard case .global(let g) = callable, let fn = TorchGlobal(g) else {
            throw refuse("REDUCE on a \(callable.typeName), which is not an allowed callable")
        }
        let name = g.qualifiedName
        switch fn {
        case .orderedDict, .dict:
            // OrderedDict(iterable of pairs), as protocol 0 pickles write it; Python 2's OrderedDict
            // wrote its pairs as two-item lists ([[k, v], …]), which torch.load reads too.
            let d = PickleDict(keyLimits: keyLimits)
            d.isOrdered = fn == .orderedDict
            guard args.count <= 1 else { throw refuse("\(name) takes at most one argument") }
            if let first = args.first {
                let pairs: [PickleValue]
                switch first {
                case .list(let l): pairs = l.items
                case .tuple(let t): pairs = t.items
                case .dict(let other):
                    for (k, v) in zip(other.keys, other.values) { try d.insert(k, v) }
                    pairs = []
                default: throw refuse("\(name) with a \(first.typeName) argument")
                }
                for p in pairs {
                    let kv: [PickleValue]
                    switch p {
                    case .tuple(let t): kv = t.items
                    case .list(let l): kv = l.items
                    default: throw refuse("\(name) items must be pairs, got a \(p.typeName)")
                    }
                    guard kv.count == 2 else { throw refuse("\(name) items must be pairs, got \(kv.count) items") }
                    try d.insert(kv[0], kv[1])
                }
            }
            return .dict(d)
        case .rebuildTensor, .rebuildTensorV2, .rebuildTensorV3:
            return .object(TensorObject(try rebuildTensor(name, fn, args), isParameter: false))
        case .rebuildParameter, .rebuildParameterWithState:
            let expected = fn == .rebuildParameter ? 3 : 4
            guard args.count == expected else { throw refuse("\(name) takes \(expected) arguments, got \(args.count)") }
            guard case .object(let o) = args[0], let t = (o as? TensorObject)?.tensor else {
                throw refuse("\(name) needs a tensor, got a \(args[0].typeName)")
            }
            guard case .bool(let requiresGrad) = args[1] else {
                throw refuse("\(name): requires_grad is a \(args[1].typeName)")
            }
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
                    guard u.value <= 0xFF else {
                        throw refuse("\(name): character U+\(String(u.value, radix: 16)) is not latin1")
                    }
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
                return .bytes(
                    try l.items.map {
                        guard case .int(let v) = $0, (0...255).contains(v) else {
                            throw refuse("\(name) of a non-byte value")
                        }
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
            throw refuse("\(what): nested tensors are not read")
        case .rebuildQTensor:
            return .object(TensorObject(try rebuildQTensor(name, args), isParameter: false))
        case .rebuildSparse:
            return .object(TensorObject(try rebuildSparse(name, args), isParameter: false))
        case .rebuildMeta:
            return .object(TensorObject(try rebuildMeta(name, args), isParameter: false))
        case .rebuildWrapperSubclass:
            return .object(TensorObject(try rebuildWrapperSubclass(name, args), isParameter: false))
        case .rebuildFromCPUTensor:
            // (data, dtype, device, requires_grad): a device tensor saved through its CPU copy.
            guard args.count == 4, case .object(let o) = args[0], let t = (o as? TensorObject)?.tensor else {
                throw refuse("\(name) needs (tensor, dtype, device, requires_grad)")
            }
            guard case .global(let dg) = args[1], case .dtype(let dt)? = TorchGlobal(dg), dt == t.dtype else {
                throw refuse("\(name): the dtype \(args[1].typeName) does not match the tensor's \(t.dtype)")
            }
            guard case .bool(let rg) = args[3] else { throw refuse("\(name): requires_grad is a \(args[3].typeName)") }
            var tensor = t
            tensor.requiresGrad = rg
            return .object(TensorObject(tensor, isParameter: false))
        case .getLayout:
            guard args.count == 1, case .string(let spelling) = args[0] else {
                throw refuse("\(name) needs one string")
            }
            let bare = spelling.hasPrefix("torch.") ? String(spelling.dropFirst(6)) : spelling
            guard let layout = LayoutObject(bare) else { throw refuse("\(name) of the unknown layout '\(spelling)'") }
            return .object(layout)
        case .counter:
            // Counter(dict): a dict of counts, as collections.Counter.__reduce__ writes it.
            guard args.count <= 1 else { throw refuse("\(name) takes at most one argument") }
            let d = PickleDict(keyLimits: keyLimits)
            if let first = args.first {
                guard case .dict(let other) = first else { throw refuse("\(name) of a \(first.typeName)") }
                for (k, v) in zip(other.keys, other.values) {
                    guard case .int = v else { throw refuse("\(name) with a count that is a \(v.typeName)") }
                    try d.insert(k, v)
                }
            }
            return .dict(d)
        case .parameter, .variable:
            // 0.4's Parameter.__reduce_ex__: (Parameter, (data, requires_grad)); 0.3's Variable: (cls, (data,)).
            return try makeParameter(g, fn, args)
        case .rebuildFromType, .rebuildFromTypeV2:
            // (func, type, args, state): a tensor subclass; func rebuilds the tensor, state holds its
            // Python attributes, which a plain tensor cannot carry.
            guard args.count == 4 else { throw refuse("\(name) takes 4 arguments, got \(args.count)") }
            guard case .global(let f) = args[0], let inner = TorchGlobal(f),
                [
                    .rebuildTensor, .rebuildTensorV2, .rebuildTensorV3, .rebuildParameter, .rebuildParameterWithState,
                    .rebuildFromNumpy,
                ].contains(inner)
            else {
                throw refuse("\(name) with the function \(args[0].typeName), which is not a tensor rebuild function")
            }
            switch args[1] {
            case .global(let t) where [.tensorClass, .parameter].contains(TorchGlobal(t)): break
            // A subclass, stubbed.
            case .object(let o as RecordObject) where o.kind == .reference && !o.scriptOnly: break
            default: throw refuse("\(name) with the type \(args[1].typeName), which is not a tensor class")
            }
            guard case .tuple(let inner_args) = args[2] else { throw refuse("\(name): args is a \(args[2].typeName)") }
            guard isEmpty(args[3]) else {
                throw refuse("\(name) with Python attributes on the tensor, which a tensor here cannot carry")
            }
            return try call(args[0], args: inner_args.items)
        case .rebuildFromNumpy:
            guard args.count == 4, case .object(let o) = args[0], let t = (o as? NDArrayObject)?.tensor else {
                throw refuse("\(name) needs (numpy array, dtype, device, requires_grad)")
            }
            guard case .global(let dg) = args[1], case .dtype(let dt)? = TorchGlobal(dg), dt == t.dtype else {
                throw refuse("\(name): the dtype \(args[1].typeName) does not match the array's \(t.dtype)")
            }
            guard case .bool(let rg) = args[3] else { throw refuse("\(name): requires_grad is a \(args[3].typeName)") }
            var tensor = t
            tensor.requiresGrad = rg
            return .object(TensorObject(tensor, isParameter: false))
        case .copyregNewobj:
            guard let cls = args.first else { throw refuse("\(name) needs a class") }
            return try instantiate(cls, args: Array(args.dropFirst()), kwargs: nil)
        case .copyregReconstructor:
            // _reconstructor(cls, base, state): base.__new__(cls, state), the object protocols 0–1 write.
            guard args.count == 3 else { throw refuse("\(name) takes 3 arguments, got \(args.count)") }
            guard case .global(let base) = args[1], TorchGlobal(base) == .object else {
                throw refuse("\(name) with the base \(args[1].typeName); only object is read")
            }
            guard case .none = args[2] else { throw refuse("\(name) with a state for the base") }
            return try instantiate(args[0], args: [], kwargs: nil)
        case .numpyReconstruct:
            guard args.count == 3, case .global(let c) = args[0], TorchGlobal(c) == .numpyNDArray else {
                throw refuse("\(name) needs (numpy.ndarray, shape, dtype); a subclass of ndarray is not read")
            }
            return .object(NDArrayObject())
        case .numpyDType:
            return .object(try Numpy.dtype(args))
        case .numpyScalar:
            return try Numpy.scalar(args)
        case .numpyFromBuffer:
            let a = NDArrayObject()
            a.tensor = try Numpy.fromBuffer(args, keys: numpyKeys)
            return .object(a)
        case .jitList:
            guard args.count == 1, case .list = args[0] else { throw refuse("\(name) needs one list") }
            return args[0]
        case .jitTypeTag:
            guard args.count == 2 else { throw refuse("\(name) takes 2 arguments") }
            return args[0]
        case .tensorClass, .legacyTensorClass, .storageClass, .dtype, .object, .numpyNDArray, .qscheme, .layout:
            throw refuse("\(name) cannot be called through REDUCE")
        }
    }

    /// `Parameter(data[, requires_grad])` (requires_grad defaults to True) and 0.3's `Variable(data)`
    /// (False until BUILD sets it).
    private func makeParameter(_ g: PickleGlobal, _ kind: TorchGlobal, _ args: [PickleValue]) throws -> PickleValue {
        let isParameter = kind == .parameter
        if args.isEmpty { return .object(TensorObject(nil, isParameter: isParameter)) }
        guard args.count <= 2, case .object(let o) = args[0], var t = (o as? TensorObject)?.tensor else {
            throw refuse("\(g.qualifiedName) needs a tensor")
        }
        if args.count == 2 {
            guard case .bool(let rg) = args[1] else {
                throw refuse("\(g.qualifiedName): requires_grad is a \(args[1].typeName)")
            }
            t.requiresGrad = rg
        } else {
            t.requiresGrad = isParameter
        }
        t.isParameter = isParameter
        return .object(TensorObject(t, isParameter: isParameter))
    }

    func instantiate(_ cls: PickleValue, args: [PickleValue], kwargs: PickleDict?) throws -> PickleValue {
        if case .object(let o) = cls {
            if let r = o as? RecordObject, r.kind == .reference, r.scriptOnly, !args.isEmpty || (kwargs?.count ?? 0) > 0
            {
                throw refuse(
                    "the TorchScript class \(r.global.qualifiedName) made with arguments; the TorchScript pickler writes NEWOBJ with ()"
                )
            }
            if let rec = record(.instance, of: o, args: args, kwargs: kwargs) { return rec }
        }
        guard case .global(let g) = cls, let kind = TorchGlobal(g) else {
            throw refuse("instantiating a \(cls.typeName), which is not an allowed class")
        }
        guard kwargs == nil || kwargs!.count == 0 else { throw refuse("\(g.qualifiedName) with keyword arguments") }
        switch kind {
        case .parameter, .variable:
            // Legacy files: NEWOBJ with () and BUILD supplies the data. Newer: Parameter(data[, requires_grad]).
            return try makeParameter(g, kind, args)
        case .tensorClass:
            guard args.isEmpty else { throw refuse("\(g.qualifiedName) with arguments") }
            return .object(TensorObject(nil, isParameter: false))
        case .orderedDict, .dict:
            guard args.isEmpty else { throw refuse("\(g.qualifiedName) with arguments") }
            let d = PickleDict(keyLimits: keyLimits)
            d.isOrdered = kind == .orderedDict
            return .dict(d)
        default:
            throw refuse("\(g.qualifiedName) cannot be instantiated")
        }
    }

    func build(_ instance: PickleValue, state: PickleValue) throws -> PickleValue {
        switch instance {
        case .object(let r as RecordObject) where r.kind != .reference:
            if r.scriptOnly, case .dict = state {
            } else if r.scriptOnly {
                throw refuse(
                    "BUILD on the TorchScript object \(r.global.qualifiedName) with a \(state.typeName); the TorchScript pickler writes a dict"
                )
            }
            r.states.append(state)
            return instance
        case .object(let a as NDArrayObject):
            try Numpy.buildArray(a, state, keys: numpyKeys)
            return instance
        case .object(let d as NumpyDTypeObject):
            try Numpy.buildDType(d, state)
            return instance
        case .object(let o as TensorObject) where o.tensor != nil:
            // 0.3's Variable.__setstate__: (requires_grad, volatile, backward_hooks).
            guard case .tuple(let t) = state, t.items.count == 3, case .bool(let rg) = t.items[0] else {
                throw refuse("BUILD on a \(o.typeName) that has its data, with a \(state.typeName)")
            }
            try checkNoHooks(t.items[2], "BUILD on \(o.typeName)")
            o.tensor!.requiresGrad = rg
            return instance
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
                guard case .bool(let rg) = s[3] else {
                    throw refuse("BUILD on \(o.typeName): requires_grad is a \(s[3].typeName)")
                }
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
        let counts: ClosedRange<Int> =
            switch fn {
            case .rebuildTensor: 4...4
            case .rebuildTensorV2: 6...7
            default: 7...8
            }
        guard counts.contains(args.count) else { throw refuse("\(name) takes \(counts) arguments, got \(args.count)") }
        guard case .object(let so) = args[0], var storage = (so as? StorageObject)?.storage else {
            throw refuse("\(name) needs a storage, got a \(args[0].typeName)")
        }
        if fn == .rebuildTensorV3, args.count > 6, case .global(let g) = args[6], case .dtype(let dt)? = TorchGlobal(g),
            dt != storage.dtype, storage.dtype == .uint8
        {
            // Current torch saves the dtypes without a typed storage class (uint16, float8, …) as an
            // untyped storage of bytes and names the dtype here.
            storage = try retyped(storage, as: dt, name)
        }
        guard !storage.dtype.isQuantized else {
            throw refuse("\(name) on a \(storage.dtype) storage; quantized tensors are rebuilt by _rebuild_qtensor")
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

    func makeTensor(
        _ storage: Storage, offset: PickleValue, size: PickleValue, stride: PickleValue, _ what: String
    ) throws -> Tensor {
        let shape = try ints(size, "\(what): size")
        let strides = try ints(stride, "\(what): stride")
        guard case .int(let off) = offset else { throw refuse("\(what): storage offset is a \(offset.typeName)") }
        do {
            return try Tensor(storage: storage, shape: shape, strides: strides, storageOffset: Int(off))
        } catch let e as TensorError {
            throw CheckpointError(.invalidTensor(e))
        }
    }

    func ints(_ v: PickleValue, _ what: String) throws -> [Int] {
        guard case .tuple(let t) = v else { throw refuse("\(what) is a \(v.typeName), not a tuple") }
        return try t.items.map {
            guard case .int(let i) = $0 else { throw refuse("\(what) holds a \($0.typeName)") }
            return Int(i)
        }
    }

    func isEmpty(_ v: PickleValue) -> Bool {
        switch v {
        case .none: true
        case .dict(let d): d.count == 0
        default: false
        }
    }

    /// Backward hooks cannot be pickled by torch; a checkpoint carries an empty OrderedDict or None.
    func checkNoHooks(_ v: PickleValue, _ what: String) throws {
        guard isEmpty(v) else { throw refuse("\(what) with backward hooks") }
    }
}
