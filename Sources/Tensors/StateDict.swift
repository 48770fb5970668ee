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
    /// What the state dict was made from: a dict, a module's tensors, a bare tensor.
    public var kind: StateDictCandidate.Kind = .dict
    /// Every state dict the checkpoint holds, this one among them (empty when made by hand).
    public var candidates: [StateDictCandidate] = []
    /// Entries whose value was a tuple of tensors (and None), such as a quantized Linear's
    /// `_packed_params._packed_params` (weight, bias): each tensor is in the state dict as `NAME.i`, and
    /// `items` lists those names in tuple order, nil where the tuple held None. Writers of `.pth` put
    /// the tuple back.
    public var tupleEntries: [(name: String, items: [String?])] = []

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

    /// The same state dict with no tensors yet: values, `_metadata`, path, kind, candidates and tuple
    /// entries kept. For making one with other tensors under the same names.
    public func withoutTensors() -> StateDict {
        var out = StateDict()
        out.values = values
        out.metadata = metadata
        out.path = path
        out.kind = kind
        out.candidates = candidates
        out.tupleEntries = tupleEntries
        return out
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
        for t in storage where t.hasData && seen.insert(ObjectIdentifier(t.storage.base)).inserted {
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
    /// Thrown when stripping a prefix would leave an entry with an empty name.
    case emptyName(original: String, prefix: String)
    /// Thrown when the checkpoint holds no dict with tensors under the usual keys.
    case notFound(rootKind: String, keys: [String])
    /// Thrown when the state dict has a key that is not a string.
    case nonStringKey(kind: String)
    /// Thrown when several state dicts qualify and none is the obvious one.
    case ambiguous([StateDictCandidate])
    /// Thrown when `key` names no candidate.
    case noCandidate(key: String, [StateDictCandidate])

    public var description: String {
        switch self {
        case .duplicateName(let n): "the state dict has two entries named '\(n)'"
        case .emptyName(let n, let p):
            "removing the prefix '\(p)' from '\(n)' leaves an empty name; choose a shorter prefix"
        case .notFound(let kind, let keys):
            keys.isEmpty
                ? "no state dict found: the checkpoint's root is a \(kind)"
                : "no state dict found: the root \(kind) has keys \(keys.prefix(12).joined(separator: ", ")) and none holds tensors"
        case .nonStringKey(let kind): "the state dict has a key of type \(kind); names must be strings"
        case .ambiguous(let cs):
            "\(cs.count) state dicts and none is the obvious one; name one with --key (Swift: key:): "
                + StateDictError.list(cs)
        case .noCandidate(let key, let cs):
            cs.isEmpty
                ? "no state dict at '\(key)': the checkpoint holds no tensors in a dict or module"
                : "no state dict at '\(key)'; the candidates are " + StateDictError.list(cs)
        }
    }

    static func list(_ cs: [StateDictCandidate]) -> String {
        cs.prefix(12).map { "'\($0.dottedPath)' (\($0.kind.rawValue), \($0.tensorCount) tensors)" }.joined(
            separator: ", ")
            + (cs.count > 12 ? ", and \(cs.count - 12) more" : "")
    }
}

extension StateDict {
    /// Keys under which training scripts wrap a state dict, most preferred first. A candidate whose
    /// last path component is one of these is preferred over one that is not.
    public static let wrapperKeys = [
        "state_dict", "model_state_dict", "model_state", "model", "net", "network", "module",
        "weights", "params", "ema", "model_ema", "ema_model", "ema_state_dict",
    ]

    /// Picks the obvious state dict among `candidates` (from `Value.stateDictCandidates()`):
    /// 1. candidates under an optimizer or scheduler (a path component holding "optim" or "sched":
    ///    their moments are not weights) are left aside;
    /// 2. the root, when it is a candidate with at least as many tensors as any other (a wrapper
    ///    such as `{'step': tensor(5), 'model': {…}}` holds a stray tensor, not the weights);
    /// 3. else the only candidate left;
    /// 4. else the one whose last path component comes first in `wrapperKeys`, when exactly one does.
    /// Anything else is ambiguous and throws, listing the candidates, so the caller names one.
    public static func pick(_ candidates: [StateDictCandidate], root: Value) throws -> StateDictCandidate {
        var weights = candidates.filter { c in
            !c.path.contains { $0.lowercased().contains("optim") || $0.lowercased().contains("sched") }
        }
        let most = weights.map(\.tensorCount).max() ?? 0
        if let r = weights.first(where: { $0.path.isEmpty }) {
            if r.tensorCount >= most { return r }
            weights.removeAll { $0.path.isEmpty }
        }
        if weights.count == 1 { return weights[0] }
        let ranked = weights.compactMap { c in c.path.last.flatMap { wrapperKeys.firstIndex(of: $0) }.map { (c, $0) } }
        if let best = ranked.map(\.1).min(), ranked.filter({ $0.1 == best }).count == 1 {
            return ranked.first { $0.1 == best }!.0
        }
        if candidates.isEmpty {
            let keys = root.dict?.entries.compactMap { $0.key.string } ?? []
            throw StateDictError.notFound(rootKind: root.kindName, keys: keys)
        }
        throw StateDictError.ambiguous(candidates)
    }

    /// Finds the state dict in a checkpoint's root value: the candidate `key` names (its dotted path,
    /// as `StateDictCandidate.dottedPath` spells it), or the obvious one (`pick`).
    ///
    /// When `stripPrefix` is given (e.g. `"module."`, from DataParallel), it is removed from every
    /// name and `_metadata` key that starts with it.
    public init(from root: Value, key: String? = nil, stripPrefix: String? = nil) throws {
        let candidates = root.stateDictCandidates()
        let chosen: StateDictCandidate
        if let key {
            guard let c = candidates.first(where: { $0.dottedPath == key }) else {
                throw StateDictError.noCandidate(key: key, candidates)
            }
            chosen = c
        } else {
            chosen = try StateDict.pick(candidates, root: root)
        }
        guard let value = root.value(at: chosen.path) else {
            throw StateDictError.noCandidate(key: chosen.dottedPath, candidates)
        }
        self.init()
        func strip(_ name: String) throws -> String {
            if let p = stripPrefix, !p.isEmpty, name.hasPrefix(p) {
                guard name.count > p.count else { throw StateDictError.emptyName(original: name, prefix: p) }
                return String(name.dropFirst(p.count))
            }
            return name
        }
        switch chosen.kind {
        case .tensor:
            try insert(value.tensor!, named: bareTensorName)
        case .module:
            for (name, t) in try value.object!.moduleStateDict().tensors { try insert(t, named: strip(name)) }
        case .dict:
            let dict: ValueDict
            if let d = value.dict { dict = d } else { dict = ValueDict(entries: value.object?.dictItems ?? []) }
            for entry in dict.entries {
                guard case .string(let rawName) = entry.key else {
                    throw StateDictError.nonStringKey(kind: entry.key.kindName)
                }
                let name = try strip(rawName)
                if let tensor = entry.value.tensor {
                    try insert(tensor, named: name)
                } else if case .tuple(let items) = entry.value, items.contains(where: { $0.tensor != nil }),
                    items.allSatisfy({ $0.tensor != nil || $0.isNone })
                {
                    var names: [String?] = []
                    for (i, item) in items.enumerated() {
                        if let t = item.tensor {
                            try insert(t, named: "\(name).\(i)")
                            names.append("\(name).\(i)")
                        } else {
                            names.append(nil)
                        }
                    }
                    tupleEntries.append((name, names))
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
        self.path = chosen.path
        self.kind = chosen.kind
        self.candidates = candidates
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
            guard case .string(let key) = entry.key, !key.isEmpty, key == bare || key.hasPrefix(prefix) else {
                continue
            }
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
