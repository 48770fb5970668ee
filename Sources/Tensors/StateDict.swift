/// Name → tensor, in file order, as `model.state_dict()` made it; plus the non-tensor entries that sat
/// beside the tensors and torch's `_metadata`.
public struct StateDict: Sendable {
    public private(set) var names: [String] = []
    private var index: [String: Int] = [:]
    private var storage: [Tensor] = []
    /// Entries of the same dict whose values are not tensors, in file order.
    public var values: [(name: String, value: Value)] = []
    /// The `_metadata` attribute (module path → {"version": n}), when present.
    public var metadata: Value?
    /// Keys that led from the checkpoint's root to this dict (`["state_dict"]`, or `[]` for the root).
    public var path: [String] = []

    public init() {}

    public var count: Int { names.count }
    public var isEmpty: Bool { names.isEmpty }

    public subscript(name: String) -> Tensor? {
        index[name].map { storage[$0] }
    }

    /// Tensors in file order.
    public var tensors: [(name: String, tensor: Tensor)] {
        zip(names, storage).map { ($0, $1) }
    }

    /// Adds a tensor; a name may appear once.
    public mutating func insert(_ tensor: Tensor, named name: String) throws {
        guard index[name] == nil else { throw StateDictError.duplicateName(name) }
        index[name] = storage.count
        names.append(name)
        storage.append(tensor)
    }

    /// Total bytes of the distinct storages the tensors use (shared storages counted once).
    public var storageBytes: Int {
        var seen = Set<ObjectIdentifier>()
        var total = 0
        for t in storage where seen.insert(ObjectIdentifier(t.storage.base)).inserted {
            total += t.storage.base.byteCount
        }
        return total
    }

    /// Total bytes of the tensors' own elements (a view counts its elements only).
    public var tensorBytes: Int { storage.reduce(0) { $0 + $1.byteCount } }
}

public enum StateDictError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Thrown when two entries share a name (also after a prefix was stripped).
    case duplicateName(String)
    /// Thrown when the checkpoint holds no dict with tensors under the usual keys.
    case notFound(rootKind: String, keys: [String])
    /// Thrown when the state dict has a key that is not a string.
    case nonStringKey(kind: String)

    public var description: String {
        switch self {
        case .duplicateName(let n): "the state dict has two entries named '\(n)'"
        case .notFound(let kind, let keys):
            keys.isEmpty
                ? "no state dict found: the checkpoint's root is a \(kind)"
                : "no state dict found: the root \(kind) has keys \(keys.prefix(12).joined(separator: ", ")) and none holds tensors"
        case .nonStringKey(let kind): "the state dict has a key of type \(kind); names must be strings"
        }
    }
}

extension StateDict {
    /// Keys under which training scripts wrap a state dict, tried in this order.
    public static let wrapperKeys = ["state_dict", "model_state_dict", "model"]

    /// Finds the state dict in a checkpoint's root value.
    ///
    /// The root itself is used when it is a dict that holds tensors directly. Otherwise the first of
    /// `wrapperKeys` whose value is such a dict is used (one level, then once more for
    /// `{'model': {'state_dict': …}}`). When `stripPrefix` is given (e.g. `"module."`, from
    /// DataParallel), it is removed from every name and `_metadata` key that starts with it.
    public init(from root: Value, stripPrefix: String? = nil) throws {
        var path: [String] = []
        var current = root
        search: for _ in 0..<3 {
            guard let dict = current.dict else { break }
            if dict.entries.contains(where: { $0.value.tensor != nil }) { break }
            for key in StateDict.wrapperKeys {
                if let inner = dict[key], inner.dict != nil {
                    path.append(key)
                    current = inner
                    continue search
                }
            }
            break
        }
        guard let dict = current.dict, dict.entries.contains(where: { $0.value.tensor != nil }) else {
            let keys = root.dict?.entries.compactMap { $0.key.string } ?? []
            throw StateDictError.notFound(rootKind: root.kindName, keys: keys)
        }
        self.init()
        self.path = path
        func strip(_ name: String) -> String {
            if let p = stripPrefix, !p.isEmpty, name.hasPrefix(p) { return String(name.dropFirst(p.count)) }
            return name
        }
        for entry in dict.entries {
            guard case .string(let rawName) = entry.key else {
                throw StateDictError.nonStringKey(kind: entry.key.kindName)
            }
            let name = strip(rawName)
            if let tensor = entry.value.tensor {
                try insert(tensor, named: name)
            } else {
                values.append((name, entry.value))
            }
        }
        if let meta = dict.metadata?.dict, let prefix = stripPrefix, !prefix.isEmpty {
            self.metadata = .dict(StateDict.stripMetadata(meta, prefix: prefix))
        } else {
            self.metadata = dict.metadata
        }
    }
}

extension StateDict {
    /// Renames `_metadata` keys as torch's `consume_prefix_in_state_dict_if_present` does: a key equal to
    /// the prefix without dots (DataParallel's own "module") or starting with the prefix loses it, and is
    /// re-inserted (Python's `d[new] = d.pop(old)`: in place if `new` exists, else at the end).
    static func stripMetadata(_ meta: ValueDict, prefix: String) -> ValueDict {
        var out = meta
        let bare = String(prefix.filter { $0 != "." })
        for entry in meta.entries {
            guard case .string(let key) = entry.key, !key.isEmpty, key == bare || key.hasPrefix(prefix) else { continue }
            let newKey = String(key.dropFirst(min(prefix.count, key.count)))
            out.entries.removeAll { $0.key.string == key }
            if let i = out.entries.firstIndex(where: { $0.key.string == newKey }) {
                out.entries[i].value = entry.value
            } else {
                out.entries.append(.init(key: .string(newKey), value: entry.value))
            }
        }
        return out
    }
}

