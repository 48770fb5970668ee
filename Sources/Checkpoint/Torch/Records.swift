import Tensors

/// The pickle-side form of an `ObjectRecord`: a name the host does not know, and what the pickle did
/// with it. It has no behaviour: calling, instantiating or building it only writes down the arguments.
final class RecordObject: PickleObject, Teardown {
    let kind: ObjectRecord.Kind
    let global: PickleGlobal
    /// True for a TorchScript class read without `--stub-classes`: only `NEWOBJ ()` and BUILD with a
    /// dict are accepted, the one shape the TorchScript pickler writes.
    let scriptOnly: Bool
    /// A TorchScript `__torch__` class, whose declaration `code/` holds.
    var isScriptClass = false
    var args: [PickleValue] = []
    var kwargs: PickleDict?
    var states: [PickleValue] = []
    var listItems: [PickleValue] = []
    var dictKeys: [PickleValue] = []
    var dictValues: [PickleValue] = []

    init(_ kind: ObjectRecord.Kind, _ global: PickleGlobal, scriptOnly: Bool) {
        self.kind = kind
        self.global = global
        self.scriptOnly = scriptOnly
    }

    var typeName: String {
        switch kind {
        case .reference: global.qualifiedName
        case .call: "\(global.qualifiedName)(…)"
        case .instance, .cycle: "\(global.qualifiedName) object"
        }
    }

    func teardown() {
        args = []
        kwargs = nil
        states = []
        listItems = []
        dictKeys = []
        dictValues = []
    }
}

/// A TorchScript class's declaration in the archive's `code/`: which attributes are parameters and
/// buffers. Read from the text `__parameters__ = ["weight", "bias", ]`; never compiled or run.
struct ScriptClass: Sendable, Equatable {
    /// `class Name(Module):`; other TorchScript classes hold data but are not modules.
    var isModule: Bool
    var parameters: [String] = []
    var buffers: [String] = []

    /// The classes one `code/…/name.py` declares, by qualified name (`module` is the file's path under
    /// `code/` with dots: `__torch__.torch.nn.modules.conv.___torch_mangle_17`). Reads only the
    /// `class` lines and the `__parameters__` / `__buffers__` lists of string literals under them.
    static func parse(_ text: Substring, module: String) -> [String: ScriptClass] {
        var out: [String: ScriptClass] = [:]
        var current: String?
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
            if line.hasPrefix("class ") {
                let decl = line.dropFirst(6)
                guard let open = decl.firstIndex(of: "("), let close = decl.lastIndex(of: ")"), open < close else {
                    current = nil
                    continue
                }
                let name = String(decl[..<open])
                let base = decl[decl.index(after: open)..<close]
                current = "\(module).\(name)"
                out[current!] = ScriptClass(isModule: base == "Module")
            } else if let c = current, line.hasPrefix("  __parameters__ = ") {
                out[c]!.parameters = strings(line.dropFirst(19))
            } else if let c = current, line.hasPrefix("  __buffers__ = ") {
                out[c]!.buffers = strings(line.dropFirst(16))
            } else if !line.hasPrefix(" "), !line.isEmpty {
                current = nil
            }
        }
        return out
    }

    /// The string literals of `["a", "b", ]`.
    static func strings(_ list: Substring) -> [String] {
        var out: [String] = []
        var rest = list[...]
        while let q = rest.firstIndex(of: "\"") {
            let after = rest[rest.index(after: q)...]
            guard let end = after.firstIndex(of: "\"") else { break }
            out.append(String(after[..<end]))
            rest = after[after.index(after: end)...]
        }
        return out
    }
}
