import Tensors

/// The globals a checkpoint may name, modelled on `torch._weights_only_unpickler._get_allowed_globals`
/// (torch 1.13 and 2.x) and nothing more. Every other global is refused with its name and offset.
enum TorchGlobal: Equatable {
    case orderedDict
    case rebuildTensor          // torch._utils._rebuild_tensor(storage, offset, size, stride)
    case rebuildTensorV2        // … requires_grad, backward_hooks[, metadata]
    case rebuildTensorV3        // … requires_grad, backward_hooks, dtype[, metadata]
    case rebuildParameter       // (data, requires_grad, backward_hooks)
    case rebuildParameterWithState  // (data, requires_grad, backward_hooks, state)
    case parameter              // torch.nn.parameter.Parameter (NEWOBJ, then BUILD for legacy files)
    case tensorClass            // torch.Tensor (legacy BUILD with a 4-tuple)
    case legacyTensorClass(DType)   // torch.FloatTensor …, named in the tar format's `tensors` member
    case storageClass(DType)    // torch.FloatStorage …, torch.cuda.FloatStorage …, torch.UntypedStorage (uint8)
    case dtype(DType)           // torch.float32 …
    case size                   // torch.Size
    case device                 // torch.device
    case codecsEncode           // _codecs.encode: how protocol 2 spells a bytes object
    case set, frozenset, bytearray, complex  // builtins torch allows
    case bytes                  // builtins.bytes(): how protocols 0–2 spell an empty bytes object
    /// Allowed by torch but naming a feature we do not read (sparse, quantized, meta tensors).
    case unsupported(String)

    init?(_ g: PickleGlobal) {
        let module = g.module == "__builtin__" ? "builtins" : g.module  // Python 2's name for builtins
        switch (module, g.name) {
        case ("collections", "OrderedDict"): self = .orderedDict
        case ("torch._utils", "_rebuild_tensor"): self = .rebuildTensor
        case ("torch._utils", "_rebuild_tensor_v2"): self = .rebuildTensorV2
        case ("torch._utils", "_rebuild_tensor_v3"): self = .rebuildTensorV3
        case ("torch._utils", "_rebuild_parameter"): self = .rebuildParameter
        case ("torch._utils", "_rebuild_parameter_with_state"): self = .rebuildParameterWithState
        case ("torch._utils", "_rebuild_sparse_tensor"), ("torch._utils", "_rebuild_sparse_csr_tensor"),
             ("torch._utils", "_rebuild_qtensor"), ("torch._utils", "_rebuild_meta_tensor_no_storage"),
             ("torch.serialization", "_get_layout"):
            self = .unsupported(g.qualifiedName)
        case ("torch.nn.parameter", "Parameter"): self = .parameter
        case ("torch", "Tensor"), ("torch._tensor", "Tensor"): self = .tensorClass
        case ("torch", "Size"): self = .size
        case ("torch", "device"): self = .device
        case ("torch", "UntypedStorage"): self = .storageClass(.uint8)
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
