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
/// Sparse, quantized, nested, meta and wrapper-subclass tensors are named and refused.
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
    /// Allowed by torch but naming a feature we do not read (sparse, quantized, meta tensors).
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
        case ("torch._utils", "_rebuild_sparse_tensor"), ("torch._utils", "_rebuild_sparse_csr_tensor"),
            ("torch._utils", "_rebuild_qtensor"), ("torch._utils", "_rebuild_meta_tensor_no_storage"),
            ("torch._utils", "_rebuild_wrapper_subclass"), ("torch._utils", "_rebuild_nested_tensor"),
            ("torch.serialization", "_get_layout"):
            self = .unsupported(g.qualifiedName)
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
        case ("torch", let n) where n.hasSuffix("Storage"), ("torch.cuda", let n) where n.hasSuffix("Storage"):
            if n.hasPrefix("QInt") || n.hasPrefix("QUInt") { return "quantized tensors (\(n))" }
            if n.hasPrefix("Complex") { return "complex tensors (\(n))" }
            return nil
        case ("torch.sparse", let n) where n.hasSuffix("Tensor"),
            ("torch.cuda.sparse", let n) where n.hasSuffix("Tensor"):
            return "sparse tensors (the legacy class \(module).\(n))"
        case ("torch.storage", "TypedStorage"): return "storages pickled as TypedStorage objects"
        case ("torch", let n) where quantizationSchemes.contains(n): return "quantized tensors (the qscheme \(n))"
        case ("torch", let n) where laterDTypes.contains(n): return "tensors of dtype \(n)"
        case ("torch._utils", "_rebuild_qtensor"): return "quantized tensors"
        case ("torch._utils", "_rebuild_sparse_tensor"), ("torch._utils", "_rebuild_sparse_csr_tensor"),
            ("torch.serialization", "_get_layout"):
            return "sparse tensors"
        case ("torch._utils", "_rebuild_meta_tensor_no_storage"): return "meta tensors (shapes without data)"
        case ("torch._utils", "_rebuild_wrapper_subclass"): return "wrapper-subclass tensors"
        case ("torch._utils", "_rebuild_nested_tensor"): return "nested tensors"
        case ("torch._utils", "_rebuild_device_tensor_from_cpu_tensor"): return "device tensors saved from CPU data"
        case ("collections", "Counter"): return "collections.Counter values"
        default: return nil
        }
    }

    static let quantizationSchemes: Set<String> = [
        "per_tensor_affine", "per_channel_affine", "per_tensor_symmetric", "per_channel_symmetric",
        "per_channel_affine_float_qparams",
    ]

    /// torch's dtypes beyond the ten `DType` reads.
    static let laterDTypes: Set<String> = {
        var names: Set<String> = [
            "complex32", "chalf", "complex64", "cfloat", "complex128", "cdouble", "uint16", "uint32", "uint64",
            "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz", "float8_e8m0fnu", "qint8",
            "quint8", "qint32", "quint4x2", "quint2x4", "bits8", "bits16", "bits1x8", "bits2x4", "bits4x2",
            "float4_e2m1fn_x2",
        ]
        for k in 1...7 { names.formUnion(["int\(k)", "uint\(k)"]) }
        return names
    }()
}
