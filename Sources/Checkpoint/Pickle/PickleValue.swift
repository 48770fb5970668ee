/// A value on the pickle machine's stack or in its memo.
///
/// Containers are reference types because pickles mutate them after memoizing (APPEND to a list that
/// BINGET fetched). The machine tears every container down iteratively when it finishes, so deep or
/// cyclic structures from a hostile file neither leak nor overflow the stack on release.
public enum PickleValue {
    case none
    case bool(Bool)
    case int(Int64)
    /// An integer outside Int64, in decimal.
    case bigInt(String)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple(PickleTuple)
    case list(PickleList)
    case dict(PickleDict)
    case set(PickleSet)
    /// A global the host allowed (a class or function), not yet called.
    case global(PickleGlobal)
    /// Something the host built (a storage, a tensor, a parameter…).
    case object(any PickleObject)

    public var typeName: String {
        switch self {
        case .none: "None"
        case .bool: "bool"
        case .int, .bigInt: "int"
        case .float: "float"
        case .string: "str"
        case .bytes: "bytes"
        case .tuple: "tuple"
        case .list: "list"
        case .dict: "dict"
        case .set(let s): s.isFrozen ? "frozenset" : "set"
        case .global(let g): g.qualifiedName
        case .object(let o): o.typeName
        }
    }
}

/// A module-qualified name from GLOBAL, STACK_GLOBAL or INST.
public struct PickleGlobal: Hashable, Sendable {
    public let module: String
    public let name: String
    public init(module: String, name: String) {
        self.module = module
        self.name = name
    }
    /// `module.name`, the spelling torch's allowlist uses.
    public var qualifiedName: String { "\(module).\(name)" }
}

/// An object a `PickleHost` made. Hosts define their own classes.
public protocol PickleObject: AnyObject {
    var typeName: String { get }
}

/// Containers the machine can empty when it is done.
protocol Teardown: AnyObject { func teardown() }

public final class PickleTuple: Teardown {
    public private(set) var items: [PickleValue]
    init(_ items: [PickleValue]) { self.items = items }
    func teardown() { items = [] }
}

public final class PickleList: Teardown {
    public internal(set) var items: [PickleValue] = []
    init() {}
    func teardown() { items = [] }
}

public final class PickleSet: Teardown {
    public internal(set) var items: [PickleValue] = []
    var keys: Set<PickleKey> = []
    public let isFrozen: Bool
    /// The caps on hashing members, shared by every dict and set of one pickle.
    let keyLimits: KeyLimits
    init(frozen: Bool, keyLimits: KeyLimits) {
        isFrozen = frozen
        self.keyLimits = keyLimits
    }
    /// Python's `s.add(value)`: a member already there is not added again.
    func insert(_ value: PickleValue) throws {
        if keys.insert(try PickleKey(value, keyLimits)).inserted { items.append(value) }
    }
    func teardown() {
        items = []
        keys = []
    }
}

/// An insertion-ordered dict with Python's key semantics (1, 1.0 and True are one key).
///
/// A pickle of a dict names each key once; a key given twice can only come from a crafted file (two
/// readers could each keep a different value), so `insert` refuses it instead of replacing.
public final class PickleDict: Teardown {
    public private(set) var keys: [PickleValue] = []
    public private(set) var values: [PickleValue] = []
    private var index: [PickleKey: Int] = [:]
    /// Set by the host for `collections.OrderedDict`.
    public var isOrdered = false
    /// Attributes set by BUILD (`_metadata` on state dicts).
    public var attributes: PickleDict?
    /// The caps on hashing keys, shared by every dict and set of one pickle.
    let keyLimits: KeyLimits

    init(keyLimits: KeyLimits) { self.keyLimits = keyLimits }

    public var count: Int { keys.count }

    /// `d[key] = value` for a key the dict does not hold yet; a second value for a key throws.
    public func insert(_ key: PickleValue, _ value: PickleValue) throws {
        let k = try PickleKey(key, keyLimits)
        guard index[k] == nil else {
            let shown = if case .string(let s) = key { "'\(s.prefix(200))'" } else { "of type \(key.typeName)" }
            throw CheckpointError(.malformedPickle("the key \(shown) is given twice in one dict"))
        }
        index[k] = keys.count
        keys.append(key)
        values.append(value)
    }

    public subscript(string key: String) -> PickleValue? {
        index[.string(key)].map { values[$0] }
    }

    func teardown() {
        keys = []
        values = []
        index = [:]
        attributes = nil
    }
}

/// What hashing dict keys and set members may cost in one pickle: a key is projected to a `PickleKey`
/// tree, and a tuple or frozenset the pickle refers to twice is projected twice, so nested frozensets of
/// repeated members grow exponentially (a 876-byte key of 40 nested (t, t) pairs is 2^40 tuples).
/// Depth is capped by `PickleLimits.maxDepth`, the nodes made for all keys together by the same budget
/// as the result's values (`PickleLimits.maxValues`, or twice the pickle's bytes).
final class KeyLimits {
    let maxDepth: Int
    let maxValues: Int
    var left: Int
    init(maxDepth: Int, maxValues: Int) {
        self.maxDepth = maxDepth
        self.maxValues = maxValues
        self.left = maxValues
    }
    convenience init(_ limits: PickleLimits, pickleBytes: Int) {
        self.init(maxDepth: limits.maxDepth, maxValues: max(limits.maxValues, 2 * pickleBytes))
    }
}

/// The hashable projection of a value, for dict keys and set members.
enum PickleKey: Hashable {
    case none
    case int(Int64)
    case bigInt(String)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case tuple([PickleKey])
    case global(PickleGlobal)
    case object(ObjectIdentifier)

    /// Tuples and frozensets nest; past `maxDepth` levels the value is refused (a key 100,000 tuples
    /// deep would otherwise overflow the stack here and when it is released).
    init(_ value: PickleValue, _ limits: KeyLimits, depth: Int = 0) throws {
        guard depth <= limits.maxDepth else {
            throw CheckpointError(
                .limitExceeded(.maxDepth, limit: limits.maxDepth, "a dict key or set member nested deeper"))
        }
        limits.left -= 1
        guard limits.left >= 0 else {
            throw CheckpointError(
                .limitExceeded(
                    .maxValues, limit: limits.maxValues,
                    "dict keys and set members hold more values (tuples and frozensets referenced many times)"))
        }
        func inner(_ v: PickleValue) throws -> PickleKey { try PickleKey(v, limits, depth: depth + 1) }
        switch value {
        case .none: self = .none
        case .bool(let b): self = .int(b ? 1 : 0)
        case .int(let i): self = .int(i)
        case .bigInt(let s): self = .bigInt(s)
        case .float(let d):
            if d.rounded() == d, let i = Int64(exactly: d) { self = .int(i) } else { self = .float(d) }
        case .string(let s): self = .string(s)
        case .bytes(let b): self = .bytes(b)
        case .tuple(let t): self = .tuple(try t.items.map(inner))
        case .global(let g): self = .global(g)
        case .object(let o): self = .object(ObjectIdentifier(o))
        case .set(let s) where s.isFrozen: self = .tuple(try s.items.map(inner))
        case .list, .dict, .set:
            throw CheckpointError(.malformedPickle("unhashable type '\(value.typeName)' used as a key"))
        }
    }
}
