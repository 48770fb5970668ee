import Tensors

/// The files pth2swt writes, chosen by the output path's extension (case-insensitive):
/// `.swt` and `.safetensors` are safetensors' layout (`SWTWriter`), `.pth` and `.pt` torch.save's zip
/// (`PTHWriter`). The one place that rule lives: `convert`, `finetune --out` and `bench` ask here.
public enum OutputKind: String, Sendable, CaseIterable {
    case swt, pth

    /// The kind `path`'s extension names, or nil for any other extension.
    public init?(path: String) {
        let lower = path.lowercased()
        if lower.hasSuffix(".swt") || lower.hasSuffix(".safetensors") {
            self = .swt
        } else if lower.hasSuffix(".pth") || lower.hasSuffix(".pt") {
            self = .pth
        } else {
            return nil
        }
    }

    /// For messages: the extensions there are.
    public static let extensions = ".swt, .safetensors, .pth or .pt"

    /// Writes a state dict (its tensors, and in a `.swt` its non-tensor values as header metadata) to
    /// `path` in the kind its extension names. Throws `CheckpointError` for an extension no kind has.
    /// `metadata` goes into a `.swt` header's `__metadata__`; a `.pth` has no place for it.
    public static func write(
        _ sd: StateDict, to path: String, converter: String, metadata: [(key: String, value: String)] = []
    ) throws {
        guard let kind = OutputKind(path: path) else {
            throw CheckpointError(.io("\(path): the extension names no format pth2swt writes (\(extensions))"))
        }
        switch kind {
        case .swt: _ = try SWTWriter.write(sd, to: path, values: sd.values, converter: converter, metadata: metadata)
        case .pth: _ = try PTHWriter.write(sd, to: path)
        }
    }
}
