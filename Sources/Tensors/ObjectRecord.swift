/// What a pickle says about an object of a class pth2swt does not know, kept as inert data.
///
/// Nothing named here is imported, looked up or run: the record holds the class's `module.name`
/// as text and the values the pickle would have passed to it. Records come from two places:
/// - `LoadOptions.stubClasses` (`--stub-classes`): every global outside the allowlist becomes one;
/// - TorchScript archives: their `__torch__.…` module classes, whose parameter and buffer names the
///   archive declares in `code/` (`__parameters__`, `__buffers__`), read as text.
public struct ObjectRecord: Sendable {
    /// How the pickle used the name.
    public enum Kind: String, Sendable {
        /// The class or function itself, as a value (GLOBAL with nothing applied).
        case reference
        /// `name(*args)`: REDUCE, or `copyreg._reconstructor`.
        case call
        /// `cls.__new__(cls, *args)`: NEWOBJ, NEWOBJ_EX, OBJ, INST.
        case instance
        /// An object met again inside itself (omegaconf's `_parent`, a module that refers to its
        /// container): a tree cannot hold the cycle, so the inner occurrence keeps only its class.
        case cycle
    }

    public var kind: Kind
    /// The module of the class or function, or "" when the callee was itself a record's result.
    public var module: String
    public var name: String
    public var args: [Value] = []
    public var kwargs: [ValueDict.Entry] = []
    /// Each BUILD's state, in order (an object's `__dict__`, or `(dict, slots)`, or what `__setstate__`
    /// would have received).
    public var states: [Value] = []
    /// APPEND / APPENDS applied to the object (a list subclass).
    public var listItems: [Value] = []
    /// SETITEM / SETITEMS applied to the object (a dict subclass such as Lightning's AttributeDict).
    public var dictItems: [ValueDict.Entry] = []
    /// TorchScript modules: the names the class declares as parameters and buffers, in order.
    public var scriptParameters: [String]?
    public var scriptBuffers: [String]?

    public init(kind: Kind, module: String, name: String) {
        self.kind = kind
        self.module = module
        self.name = name
    }

    /// `module.name`.
    public var qualifiedName: String { module.isEmpty ? name : "\(module).\(name)" }

    /// The object's attributes: the string-keyed entries of its BUILD states (a plain `__dict__`, or
    /// the first item of a `(dict, slots)` pair, merged with the slots), in the order given.
    public var attributes: [ValueDict.Entry] {
        var out: [ValueDict.Entry] = []
        func add(_ v: Value) {
            switch v {
            case .dict(let d): out += d.entries
            case .tuple(let t) where t.count == 2:
                if case .dict(let d) = t[0] { out += d.entries }
                if case .dict(let d) = t[1] { out += d.entries }
            default: break
            }
        }
        for s in states { add(s) }
        return out
    }

    /// The attribute `name`, when a BUILD state set it.
    public func attribute(_ name: String) -> Value? {
        attributes.last(where: { $0.key.string == name })?.value
    }

    /// True for an `nn.Module` pickled whole (`_parameters`, `_buffers` and `_modules` dicts among its
    /// attributes) and for a TorchScript module (its class declares `__parameters__`).
    public var isModule: Bool {
        if scriptParameters != nil { return true }
        return attribute("_parameters")?.dict != nil && attribute("_modules")?.dict != nil
    }
}
