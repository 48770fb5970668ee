/// A place in a checkpoint's object tree that holds a state dict.
public struct StateDictCandidate: Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// A dict (or dict subclass) holding tensors under string keys.
        case dict
        /// An `nn.Module` pickled whole, or a TorchScript module: its tensors are named as its
        /// `state_dict()` names them.
        case module
        /// A bare tensor, Parameter or numpy array at the root (`torch.save(t)`): one tensor.
        case tensor
    }

    /// The components leading from the root: dict keys, list and tuple indices, object attributes.
    public var path: [String]
    public var kind: Kind
    public var tensorCount: Int

    /// `a.b.c`, the spelling `--key` takes; "" for the root.
    public var dottedPath: String { path.joined(separator: ".") }
    /// The path for messages: `'model' → 'state_dict'`, or "the root".
    public var shownPath: String { path.isEmpty ? "the root" : path.map { "'\($0)'" }.joined(separator: " → ") }
}

/// The name a bare tensor at a checkpoint's root gets in a state dict: torch gives it none.
public let bareTensorName = "tensor"

extension Value {
    /// Every state dict in the tree, depth-first in file order: dicts holding tensors directly,
    /// modules pickled whole, and a bare tensor at the root. A module's own `_parameters`,
    /// `_buffers` and `_modules` dicts are part of its candidate, not candidates of their own.
    ///
    /// The walk is iterative and visits each node once; the tree is already bounded by the reader's
    /// caps (`PickleLimits.maxDepth`, `maxValues`).
    public func stateDictCandidates() -> [StateDictCandidate] {
        var out: [StateDictCandidate] = []
        if case .tensor = self { return [StateDictCandidate(path: [], kind: .tensor, tensorCount: 1)] }
        var paths = PathTable()
        var pending: [(Value, Int)] = [(self, -1)]
        while let (v, at) = pending.popLast() {
            var children: [(Value, Int)] = []
            switch v {
            case .dict(let d):
                let n = d.entries.reduce(0) { $0 + ($1.key.string != nil && $1.value.tensor != nil ? 1 : 0) }
                if n > 0 { out.append(StateDictCandidate(path: paths.path(at), kind: .dict, tensorCount: n)) }
                for e in d.entries {
                    if let k = e.key.pathComponent { children.append((e.value, paths.add(k, under: at))) }
                }
            case .list(let items), .tuple(let items):
                for (i, x) in items.enumerated() { children.append((x, paths.add(String(i), under: at))) }
            case .object(let o):
                if o.isModule {
                    out.append(
                        StateDictCandidate(path: paths.path(at), kind: .module, tensorCount: o.moduleTensorCount))
                    break
                }
                let n = o.dictItems.reduce(0) { $0 + ($1.key.string != nil && $1.value.tensor != nil ? 1 : 0) }
                if n > 0 { out.append(StateDictCandidate(path: paths.path(at), kind: .dict, tensorCount: n)) }
                for (name, x) in o.namedChildren { children.append((x, paths.add(name, under: at))) }
            default:
                break
            }
            pending.append(contentsOf: children.reversed())
        }
        return out
    }

    /// The value at a candidate's path.
    public func value(at path: [String]) -> Value? {
        var current = self
        for component in path {
            switch current {
            case .dict(let d):
                guard let e = d.entries.first(where: { $0.key.pathComponent == component }) else { return nil }
                current = e.value
            case .list(let items), .tuple(let items):
                guard let i = Int(component), items.indices.contains(i) else { return nil }
                current = items[i]
            case .object(let o):
                guard let x = o.namedChildren.last(where: { $0.name == component }) else { return nil }
                current = x.value
            default:
                return nil
            }
        }
        return current
    }

    /// Every tensor in the tree with its dotted path from the root, in file order: dict keys, list
    /// and tuple indices, object attributes. A module's `_modules`, `_parameters` and `_buffers` are
    /// left out of the path, as `state_dict()` names things. A bare tensor at the root is named
    /// `bareTensorName`. Throws when two tensors get one name.
    public func allTensors(prefix: [String] = []) throws -> StateDict {
        var sd = StateDict()
        sd.path = prefix
        if case .tensor(let t) = self {
            try sd.insert(t, named: prefix.isEmpty ? bareTensorName : prefix.joined(separator: "."))
            return sd
        }
        var paths = PathTable()
        var root = -1
        for component in prefix { root = paths.add(component, under: root) }
        var pending: [(Value, Int)] = [(self, root)]
        while let (v, at) = pending.popLast() {
            var children: [(Value, Int)] = []
            switch v {
            case .tensor(let t):
                try sd.insert(t, named: paths.path(at).joined(separator: "."))
            case .dict(let d):
                for e in d.entries {
                    if let k = e.key.pathComponent { children.append((e.value, paths.add(k, under: at))) }
                }
            case .list(let items), .tuple(let items), .set(let items):
                for (i, x) in items.enumerated() { children.append((x, paths.add(String(i), under: at))) }
            case .object(let o):
                for (name, x) in o.namedChildren {
                    let transparent = o.isModule && ["_modules", "_parameters", "_buffers"].contains(name)
                    children.append((x, transparent ? at : paths.add(name, under: at)))
                }
            default:
                break
            }
            pending.append(contentsOf: children.reversed())
        }
        return sd
    }
}

/// Paths of a tree walk as a parent-pointer table: adding a child is O(1), and a path is spelt out only
/// for the nodes that need it (a candidate, a tensor), so a deep tree costs no copy of its path per node.
struct PathTable {
    private var parent: [Int] = []
    private var component: [String] = []

    /// A node named `name` under node `at` (-1: the root); its index.
    mutating func add(_ name: String, under at: Int) -> Int {
        parent.append(at)
        component.append(name)
        return parent.count - 1
    }

    /// The components from the root to node `at`.
    func path(_ at: Int) -> [String] {
        var out: [String] = []
        var i = at
        while i >= 0 {
            out.append(component[i])
            i = parent[i]
        }
        return out.reversed()
    }
}

extension Value {
    /// A dict key as a path component: strings as they are, integers in decimal; nil for other keys.
    var pathComponent: String? {
        switch self {
        case .string(let s): s
        case .int(let i): String(i)
        case .bool(let b): b ? "True" : "False"
        default: nil
        }
    }
}

extension ObjectRecord {
    /// What a walk of the tree visits under this record, named: attributes, then dict items and list
    /// items (a dict or list subclass), then the arguments it was made with, by index.
    var namedChildren: [(name: String, value: Value)] {
        var out: [(String, Value)] = []
        for e in attributes { if let k = e.key.pathComponent { out.append((k, e.value)) } }
        for e in dictItems { if let k = e.key.pathComponent { out.append((k, e.value)) } }
        for (i, x) in listItems.enumerated() { out.append((String(i), x)) }
        for (i, x) in args.enumerated() { out.append((String(i), x)) }
        return out
    }

    var moduleTensorCount: Int { (try? moduleStateDict().count) ?? 0 }

    /// The tensors `state_dict()` would return for this module, named as it names them.
    ///
    /// A module pickled whole (`torch.save(model)`): `_parameters` (None skipped), then `_buffers`
    /// not in `_non_persistent_buffers_set`, then each of `_modules` with its name and a dot before
    /// its own. A TorchScript module: the attributes its class declares in `__parameters__`, then in
    /// `__buffers__`, in attribute order, then each attribute that is itself a module.
    /// Iterative, so depth is bounded by the tree, not by the stack.
    public func moduleStateDict() throws -> StateDict {
        var sd = StateDict()
        var pending: [(ObjectRecord, String)] = [(self, "")]
        while let (m, prefix) = pending.popLast() {
            var children: [(ObjectRecord, String)] = []
            if let params = m.scriptParameters {
                let buffers = m.scriptBuffers ?? []
                let attrs = m.attributes
                for e in attrs {
                    if let k = e.key.string, params.contains(k), let t = e.value.tensor {
                        try sd.insert(t, named: prefix + k)
                    }
                }
                for e in attrs {
                    if let k = e.key.string, buffers.contains(k), let t = e.value.tensor {
                        try sd.insert(t, named: prefix + k)
                    }
                }
                for e in attrs {
                    if let k = e.key.string, let sub = e.value.object, sub.isModule {
                        children.append((sub, prefix + k + "."))
                    }
                }
            } else {
                if let p = m.attribute("_parameters")?.dict {
                    for e in p.entries {
                        if let k = e.key.string, let t = e.value.tensor { try sd.insert(t, named: prefix + k) }
                    }
                }
                var nonPersistent = Set<String>()
                if case .set(let s)? = m.attribute("_non_persistent_buffers_set") {
                    for x in s { if let k = x.string { nonPersistent.insert(k) } }
                }
                if let b = m.attribute("_buffers")?.dict {
                    for e in b.entries {
                        if let k = e.key.string, !nonPersistent.contains(k), let t = e.value.tensor {
                            try sd.insert(t, named: prefix + k)
                        }
                    }
                }
                if let mods = m.attribute("_modules")?.dict {
                    for e in mods.entries {
                        if let k = e.key.string, let sub = e.value.object, sub.isModule {
                            children.append((sub, prefix + k + "."))
                        }
                    }
                }
            }
            pending.append(contentsOf: children.reversed())
        }
        return sd
    }
}
