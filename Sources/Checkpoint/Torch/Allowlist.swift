import Tensors

/// The globals a checkpoint may name. Every global of torch's `weights_only` unpickler (1.13 to the
/// main branch) is either read here or, when pth2swt does not read it yet, refused by name
/// (`NotReadYet`, and the `.unsupported` rebuild functions). Beyond torch's list, this reads every
/// tensor rebuild function `torch.load` has accepted since 0.3, the numpy constructors of plain arrays
/// and scalars, and the builtins and copyreg forms older writers used. Each is plain data: none can
/// reach code. Every other global is refused with its name and offset (or, with
/// `LoadOptions.stubClasses`, recorded).
///
/// Rebuild functions by the release that introduced them (torch/_utils.py unless noted; releases
/// from the code of 1.5.0 and 2.2.2 and from the pull requests that added the rest):
///   0.1.11 `_rebuild_tensor(storage, offset, size, stride)` (what 0.3's tensors reduce to)
///   0.3    `torch.autograd.variable.Variable`: `(type, (data,))`, BUILD `(requires_grad, volatile, hooks)`
///   0.4.0  `_rebuild_tensor_v2(…, requires_grad, backward_hooks)`
///   0.4.1  `(Parameter, (data, requires_grad))`
///   1.0    `_rebuild_parameter(data, requires_grad, backward_hooks)`
///   1.3    `_rebuild_xla_tensor(data, dtype, device, requires_grad)`, later an alias of
///          `_rebuild_device_tensor_from_numpy`
///   1.8    `_rebuild_from_type(func, type, args, dict)` (torch/tensor.py; torch/_tensor.py from 1.9)
///   1.10   `_rebuild_from_type_v2(func, new_type, args, state)` (torch/_tensor.py)
///   2.0    `_rebuild_tensor_v2`'s `metadata`; `_rebuild_parameter_with_state(…, state)`
///   2.2    `_rebuild_tensor_v3(…, dtype[, metadata])`
/// and, for quantized, sparse, meta and wrapper-subclass tensors, `_rebuild_qtensor`,
/// `_rebuild_sparse_tensor`, `_rebuild_sparse_csr_tensor`, `_rebuild_meta_tensor_no_storage` and
/// `_rebuild_wrapper_subclass` (TorchKinds.swift).
/// Nested tensors are named and refused.
enum TorchGlobal: Equatable {
    case orderedDict
    case dict  // builtins.dict(iterable of pairs)
    case rebuildTensor  // torch._utils._rebuild_tensor(storage, offset, size, stride)
    case rebuildTensorV2  // … requires_grad, backward_hooks[, metadata]
    case rebuildTensorV3  // … requires_grad, backward_hooks, dtype[, metadata]
    case rebuildParameter  // (data, requires_grad, backward_hooks)
    case rebuildParameterWithState  // (data, requires_grad, backward_hooks, state)
    case parameter  // torch.nn.parameter.Parameter (NEWOBJ, then BUILD for legacy files)
    case tensorClass  // torch.Tensor (legacy BUILD with a 4-tuple)
    case legacyTensorClass(DType)  // torch.FloatTensor …, named in the tar format's `tensors` member
    case storageClass(DType)  // torch.FloatStorage …, torch.cuda.FloatStorage …, torch.UntypedStorage (uint8)
    case dtype(DType)  // torch.float32 …
    case size  // torch.Size
    case device  // torch.device
    case codecsEncode  // _codecs.encode: how protocol 2 spells a bytes object
    case set, frozenset, bytearray, complex  // builtins torch allows
    case bytes  // builtins.bytes(): how protocols 0–2 spell an empty bytes object
    case variable  // torch.autograd.variable.Variable (0.3)
    case rebuildFromType  // _rebuild_from_type(func, type, args, dict)
    case rebuildFromTypeV2  // _rebuild_from_type_v2(func, new_type, args, state)
    case rebuildFromNumpy  // _rebuild_device_tensor_from_numpy(data, dtype, device, requires_grad)
    case copyregNewobj  // copyreg.__newobj__(cls, *args): cls.__new__(cls, *args)
    case copyregReconstructor  // copyreg._reconstructor(cls, base, state): protocols 0 and 1
    case object  // builtins.object, the base `_reconstructor` names
    case numpyReconstruct  // numpy.core.multiarray._reconstruct(ndarray, (0,), b'b'), then BUILD
    case numpyNDArray  // numpy.ndarray, the class `_reconstruct` is given
    case numpyDType  // numpy.dtype('f4', False, True), then BUILD (byte order)
    case numpyScalar  // numpy.core.multiarray.scalar(dtype, bytes)
    case numpyFromBuffer  // numpy.core.numeric._frombuffer(bytes, dtype, shape, order): protocol 5
    case jitList  // torch.jit._pickle.build_intlist … : TorchScript archives only
    case jitTypeTag  // torch.jit._pickle.restore_type_tag(value, type): TorchScript only
    case rebuildQTensor  // _rebuild_qtensor(storage, offset, size, stride, quantizer_params, requires_grad, hooks)
    case rebuildSparse  // _rebuild_sparse_tensor(layout, data), _rebuild_sparse_csr_tensor(layout, data)
    case rebuildMeta  // _rebuild_meta_tensor_no_storage(dtype, size, stride, requires_grad)
    case rebuildWrapperSubclass  // _rebuild_wrapper_subclass(cls, dtype, size, stride, offset, layout, device, rg)
    case rebuildFromCPUTensor  // _rebuild_device_tensor_from_cpu_tensor(data, dtype, device, requires_grad)
    case getLayout  // torch.serialization._get_layout("torch.sparse_coo")
    case qscheme(Quantization.Scheme)  // torch.per_tensor_affine …
    case layout(String)  // torch.strided, torch.sparse_coo …: layouts as older pickles name them
    case counter  // collections.Counter(dict)
    /// Allowed by torch but naming a feature we do not read (nested tensors).
    case unsupported(String)

    init?(_ g: PickleGlobal) {
        let module = g.module == "__builtin__" ? "builtins" : g.module  // Python 2's name for builtins
        switch (module, g.name) {
        case ("collections", "OrderedDict"): self = .orderedDict
        case ("builtins", "dict"): self = .dict
        case ("builtins", "object"): self = .object
        case ("torch.autograd.variable", "Variable"), ("torch.autograd", "Variable"): self = .variable
        case ("torch._tensor", "_rebuild_from_type"), ("torch.tensor", "_rebuild_from_type"): self = .rebuildFromType
        case ("torch._tensor", "_rebuild_from_type_v2"), ("torch.tensor", "_rebuild_from_type_v2"):
            self = .rebuildFromTypeV2
        case ("torch._utils", "_rebuild_device_tensor_from_numpy"), ("torch._utils", "_rebuild_xla_tensor"):
            self = .rebuildFromNumpy
        case ("copyreg", "__newobj__"), ("copy_reg", "__newobj__"): self = .copyregNewobj
        case ("copyreg", "_reconstructor"), ("copy_reg", "_reconstructor"): self = .copyregReconstructor
        case ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"):
            self = .numpyReconstruct
        case ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"): self = .numpyScalar
        case ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"): self = .numpyFromBuffer
        case ("numpy", "ndarray"): self = .numpyNDArray
        case ("numpy", "dtype"): self = .numpyDType
        case ("torch.jit._pickle", "build_intlist"), ("torch.jit._pickle", "build_doublelist"),
            ("torch.jit._pickle", "build_boollist"), ("torch.jit._pickle", "build_tensorlist"):
            self = .jitList
        case ("torch.jit._pickle", "restore_type_tag"): self = .jitTypeTag
        case ("torch._utils", "_rebuild_tensor"): self = .rebuildTensor
        case ("torch._utils", "_rebuild_tensor_v2"): self = .rebuildTensorV2
        case ("torch._utils", "_rebuild_tensor_v3"): self = .rebuildTensorV3
        case ("torch._utils", "_rebuild_parameter"): self = .rebuildParameter
        case ("torch._utils", "_rebuild_parameter_with_state"): self = .rebuildParameterWithState
        case ("torch._utils", "_rebuild_sparse_tensor"), ("torch._utils", "_rebuild_sparse_csr_tensor"):
            self = .rebuildSparse
        case ("torch._utils", "_rebuild_qtensor"): self = .rebuildQTensor
        case ("torch._utils", "_rebuild_meta_tensor_no_storage"): self = .rebuildMeta
        case ("torch._utils", "_rebuild_wrapper_subclass"): self = .rebuildWrapperSubclass
        case ("torch._utils", "_rebuild_device_tensor_from_cpu_tensor"): self = .rebuildFromCPUTensor
        case ("torch.serialization", "_get_layout"): self = .getLayout
        case ("collections", "Counter"): self = .counter
        case ("torch._utils", "_rebuild_nested_tensor"): self = .unsupported(g.qualifiedName)
        case ("torch.nn.parameter", "Parameter"): self = .parameter
        case ("torch", "Tensor"), ("torch._tensor", "Tensor"): self = .tensorClass
        case ("torch", "Size"): self = .size
        case ("torch", "device"): self = .device
        // torch.storage.UntypedStorage is how torch pickles the class (its module); torch.UntypedStorage is
        // the same class by its public name.
        case ("torch", "UntypedStorage"), ("torch.storage", "UntypedStorage"): self = .storageClass(.uint8)
        case ("torch", let name), ("torch.cuda", let name):
            if name.hasSuffix("Storage"), let dt = DType(legacyClassName: name) {
                self = .storageClass(dt)
            } else if name.hasSuffix("Tensor"), let dt = DType(legacyClassName: name) {
                self = .legacyTensorClass(dt)
            } else if module == "torch", let dt = DType(torchAttribute: name) {
                self = .dtype(dt)
            } else if module == "torch", let q = Quantization.Scheme(rawValue: name) {
                self = .qscheme(q)
            } else if module == "torch", LayoutObject(name) != nil {
                self = .layout(name)
            } else {
                return nil
            }
        case ("_codecs", "encode"): self = .codecsEncode
        case ("builtins", "set"): self = .set
        case ("builtins", "frozenset"): self = .frozenset
        case ("builtins", "bytearray"): self = .bytearray
        case ("builtins", "bytes"): self = .bytes
        case ("builtins", "complex"): self = .complex
        default: return nil
        }
    }
}

/// Globals that current torch's `weights_only` unpickler (`torch/_weights_only_unpickler.py` on the main
/// branch) accepts and pth2swt does not read yet: a refusal of one of them says what it is, and never
/// claims that torch refuses it.
enum NotReadYet {
    /// What `module.name` is, when torch's safe loader accepts it and pth2swt cannot read it yet.
    static func feature(module: String, name: String) -> String? {
        switch (module, name) {
        case ("torch.sparse", let n) where n.hasSuffix("Tensor"),
            ("torch.cuda.sparse", let n) where n.hasSuffix("Tensor"):
            return "sparse tensors (the legacy class \(module).\(n))"
        case ("torch.storage", "TypedStorage"): return "storages pickled as TypedStorage objects"
        case ("torch", let n) where laterDTypes.contains(n): return "tensors of dtype \(n)"
        case ("torch._utils", "_rebuild_nested_tensor"): return "nested tensors"
        default: return nil
        }
    }

    /// torch's dtypes that `DType` does not read: bit containers and sub-byte types whose elements
    /// have no agreed meaning.
    static let laterDTypes: Set<String> = {
        var names: Set<String> = ["bits8", "bits16", "bits1x8", "bits2x4", "bits4x2", "float4_e2m1fn_x2"]
        for k in 1...7 { names.formUnion(["int\(k)", "uint\(k)"]) }
        return names
    }()
}
