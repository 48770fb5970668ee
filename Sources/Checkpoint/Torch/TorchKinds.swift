import Tensors

/// A tensor layout (`torch.strided`, `torch.sparse_coo`, …), as `_get_layout` or a global names it.
final class LayoutObject: PickleObject {
    /// nil for `torch.strided`.
    let sparse: SparseParts.Layout?
    let name: String

    init?(_ name: String) {
        if name == "strided" {
            sparse = nil
        } else if let l = SparseParts.Layout(rawValue: name) {
            sparse = l
        } else {
            return nil
        }
        self.name = name
    }

    var typeName: String { "torch.\(name)" }
}

/// torch's rebuild functions for quantized, sparse, meta and wrapper-subclass tensors, and the
/// untyped storages of `_rebuild_tensor_v3`. Each checks its arguments as hostile input: the storage's
/// dtype, the parameters' counts against the axis, every sparse index against the shape.
extension TorchHost {
    /// An untyped storage (bytes) seen as `dtype`: same bytes, `bytes / itemSize` elements. One per
    /// (storage, dtype), so tensors that shared the untyped storage share the typed one.
    func retyped(_ storage: Storage, as dtype: DType, _ what: String) throws -> Storage {
        let key = RetypeKey(storage: ObjectIdentifier(storage), dtype: dtype)
        if let s = retypedStorages[key] { return s }
        guard littleEndian || dtype.itemSize == 1 else {
            throw refuse("\(what): a big-endian file's untyped storage seen as \(dtype); its byte order is not read")
        }
        guard storage.count % dtype.itemSize == 0 else {
            throw refuse(
                "\(what): an untyped storage of \(storage.count) bytes is not a whole number of \(dtype) elements")
        }
        let typed: Storage
        do {
            typed = try Storage(
                key: storage.key, dtype: dtype, count: storage.count / dtype.itemSize, source: storage.source,
                location: storage.location)
        } catch let e as TensorError {
            throw CheckpointError(.invalidTensor(e))
        }
        retypedStorages[key] = typed
        return typed
    }

    /// `_rebuild_qtensor(storage, storage_offset, size, stride, quantizer_params, requires_grad,
    /// backward_hooks)`; quantizer_params is `(qscheme, scale, zero_point)` or
    /// `(qscheme, scales, zero_points, axis)`.
    func rebuildQTensor(_ name: String, _ args: [PickleValue]) throws -> Tensor {
        guard args.count == 7 else { throw refuse("\(name) takes 7 arguments, got \(args.count)") }
        guard case .object(let so) = args[0], let storage = (so as? StorageObject)?.storage else {
            throw refuse("\(name) needs a storage, got a \(args[0].typeName)")
        }
        guard storage.dtype.isQuantized else {
            throw refuse("\(name) on a \(storage.dtype) storage; quantized tensors use QInt8Storage and its kin")
        }
        var tensor = try makeTensor(storage, offset: args[1], size: args[2], stride: args[3], name)
        guard case .tuple(let p) = args[4], let first = p.items.first, case .global(let g) = first,
            case .qscheme(let scheme)? = TorchGlobal(g)
        else {
            throw refuse(
                "\(name): quantizer_params must be a tuple that starts with a qscheme, got a \(args[4].typeName)")
        }
        let params = p.items
        let parameters: Quantization.Parameters
        if scheme.isPerChannel {
            guard params.count == 4 else {
                throw refuse("\(name): \(scheme.rawValue) takes (qscheme, scales, zero_points, axis)")
            }
            guard case .object(let so) = params[1], let scales = (so as? TensorObject)?.tensor,
                case .object(let zo) = params[2], let zeros = (zo as? TensorObject)?.tensor
            else {
                throw refuse("\(name): per-channel scales and zero points must be tensors")
            }
            guard case .int(let axis) = params[3] else { throw refuse("\(name): the axis is a \(params[3].typeName)") }
            parameters = .perChannel(scales: scales, zeroPoints: zeros, axis: Int(clamping: axis))
        } else {
            guard params.count == 3 else {
                throw refuse("\(name): \(scheme.rawValue) takes (qscheme, scale, zero_point)")
            }
            let scale: Double
            switch params[1] {
            case .float(let d): scale = d
            case .int(let i): scale = Double(i)
            default: throw refuse("\(name): the scale is a \(params[1].typeName)")
            }
            guard case .int(let zero) = params[2] else {
                throw refuse("\(name): the zero point is a \(params[2].typeName)")
            }
            parameters = .perTensor(scale: scale, zeroPoint: zero)
        }
        let q = Quantization(scheme: scheme, parameters: parameters)
        do {
            try q.check(shape: tensor.shape, dtype: tensor.dtype)
        } catch let e as TensorError {
            throw CheckpointError(.invalidTensor(e))
        }
        tensor.quantization = q
        guard case .bool(let rg) = args[5] else { throw refuse("\(name): requires_grad is a \(args[5].typeName)") }
        tensor.requiresGrad = rg
        try checkNoHooks(args[6], name)
        return tensor
    }

    /// `_rebuild_sparse_tensor(layout, data)` and `_rebuild_sparse_csr_tensor(layout, data)`: data is
    /// `(indices, values, size[, is_coalesced])` for COO and `(compressed_indices, plain_indices,
    /// values, size)` for the compressed layouts.
    func rebuildSparse(_ name: String, _ args: [PickleValue]) throws -> Tensor {
        guard args.count == 2 else { throw refuse("\(name) takes 2 arguments, got \(args.count)") }
        let layout: SparseParts.Layout
        switch args[0] {
        case .object(let o as LayoutObject) where o.sparse != nil: layout = o.sparse!
        case .global(let g):
            guard case .layout(let n)? = TorchGlobal(g), let l = SparseParts.Layout(rawValue: n) else {
                throw refuse("\(name) with the layout \(g.qualifiedName)")
            }
            layout = l
        default: throw refuse("\(name): the layout is a \(args[0].typeName)")
        }
        guard case .tuple(let data) = args[1] else { throw refuse("\(name): data is a \(args[1].typeName)") }
        var items = data.items
        var coalesced: Bool?
        if layout == .coo, items.count == 4 {
            guard case .bool(let b) = items[3] else { throw refuse("\(name): is_coalesced is a \(items[3].typeName)") }
            coalesced = b
            items.removeLast()
        }
        let names = layout.componentNames
        guard items.count == names.count + 1 else {
            throw refuse("\(name): a \(layout.rawValue) tensor takes (\(names.joined(separator: ", ")), size)")
        }
        var components: [(name: String, tensor: Tensor)] = []
        for (n, v) in zip(names, items) {
            guard case .object(let o) = v, let t = (o as? TensorObject)?.tensor else {
                throw refuse("\(name): \(n) is a \(v.typeName), not a tensor")
            }
            components.append((n, t))
        }
        let shape = try ints(items[names.count], "\(name): size")
        let key = "sparse:" + components.map { $0.tensor.storage.key }.joined(separator: "+")
        do {
            return try Tensor.sparse(
                SparseParts(layout: layout, components: components, isCoalesced: coalesced), shape: shape, key: key)
        } catch let e as TensorError {
            throw CheckpointError(.invalidTensor(e))
        }
    }

    /// `_rebuild_meta_tensor_no_storage(dtype, size, stride, requires_grad)`.
    func rebuildMeta(_ name: String, _ args: [PickleValue]) throws -> Tensor {
        guard args.count == 4 else { throw refuse("\(name) takes 4 arguments, got \(args.count)") }
        guard case .global(let g) = args[0], case .dtype(let dt)? = TorchGlobal(g) else {
            throw refuse("\(name): the dtype is a \(args[0].typeName)")
        }
        let shape = try ints(args[1], "\(name): size")
        let strides = try ints(args[2], "\(name): stride")
        guard case .bool(let rg) = args[3] else { throw refuse("\(name): requires_grad is a \(args[3].typeName)") }
        var t = try noData(dt, shape, strides, 0, "a meta tensor", "meta")
        t.requiresGrad = rg
        return t
    }

    /// `_rebuild_wrapper_subclass(cls, dtype, size, stride, storage_offset, layout, device,
    /// requires_grad)`: a subclass whose data lives in its own fields; read as shape and dtype only.
    func rebuildWrapperSubclass(_ name: String, _ args: [PickleValue]) throws -> Tensor {
        guard args.count == 8 else { throw refuse("\(name) takes 8 arguments, got \(args.count)") }
        let cls: String
        switch args[0] {
        case .global(let g) where TorchGlobal(g) == .tensorClass: cls = g.qualifiedName
        case .object(let r as RecordObject) where r.kind == .reference && !r.scriptOnly: cls = r.global.qualifiedName
        default: throw refuse("\(name): the class is a \(args[0].typeName), not a tensor subclass")
        }
        guard case .global(let g) = args[1], case .dtype(let dt)? = TorchGlobal(g) else {
            throw refuse("\(name): the dtype is a \(args[1].typeName)")
        }
        let shape = try ints(args[2], "\(name): size")
        let strides = try ints(args[3], "\(name): stride")
        guard case .int(let offset) = args[4], offset >= 0 else {
            throw refuse("\(name): the storage offset is \(args[4].typeName)")
        }
        switch args[5] {
        case .object(let o as LayoutObject) where o.sparse == nil: break
        case .global(let lg) where TorchGlobal(lg) == .layout("strided"): break
        default: throw refuse("\(name) with a layout other than strided (\(args[5].typeName))")
        }
        let device: String
        switch args[6] {
        case .object(let d as DeviceObject): device = d.spelling
        case .string(let s): device = s
        default: throw refuse("\(name): the device is a \(args[6].typeName)")
        }
        guard case .bool(let rg) = args[7] else { throw refuse("\(name): requires_grad is a \(args[7].typeName)") }
        var t = try noData(dt, shape, strides, Int(offset), "a wrapper-subclass tensor (\(cls))", device)
        t.requiresGrad = rg
        return t
    }

    private func noData(
        _ dtype: DType, _ shape: [Int], _ strides: [Int], _ offset: Int, _ what: String, _ location: String
    ) throws -> Tensor {
        do {
            if let bad = shape.first(where: { $0 < 0 }) { throw TensorError.negativeSize(bad) }
            if strides.contains(where: { $0 < 0 }) { throw TensorError.negativeStride(strides) }
            return try Tensor.withoutData(
                dtype: dtype, shape: shape, strides: strides, storageOffset: offset, what: what, location: location)
        } catch let e as TensorError {
            throw CheckpointError(.invalidTensor(e))
        }
    }
}

struct RetypeKey: Hashable {
    let storage: ObjectIdentifier
    let dtype: DType
}
