/// What the pickle machine asks of its host: every operation that could run code goes through here.
///
/// The machine itself only builds plain data (numbers, strings, tuples, lists, dicts, sets). A host
/// decides which globals exist and what calling, instantiating or building them means; anything it does
/// not know it refuses by throwing. Errors thrown without a position get the opcode's offset.
public protocol PickleHost: AnyObject {
    /// GLOBAL, STACK_GLOBAL, INST: resolve `module.name` or throw `.refusedGlobal`.
    func global(_ global: PickleGlobal) throws -> PickleValue
    /// REDUCE: `callable(*args)`.
    func call(_ callable: PickleValue, args: [PickleValue]) throws -> PickleValue
    /// NEWOBJ, NEWOBJ_EX, OBJ, INST: `cls.__new__(cls, *args)`.
    func instantiate(_ cls: PickleValue, args: [PickleValue], kwargs: PickleDict?) throws -> PickleValue
    /// BUILD: `instance.__setstate__(state)`. Returns the instance to leave on the stack.
    func build(_ instance: PickleValue, state: PickleValue) throws -> PickleValue
    /// PERSID, BINPERSID.
    func persistentLoad(_ pid: PickleValue) throws -> PickleValue
    /// APPEND, APPENDS on something that is not a list (a list subclass the host made).
    func appendItems(_ target: PickleValue, _ items: [PickleValue]) throws
    /// SETITEM, SETITEMS on something that is not a dict (a dict subclass the host made).
    func setItems(_ target: PickleValue, _ pairs: [(PickleValue, PickleValue)]) throws
}

extension PickleHost {
    public func appendItems(_ target: PickleValue, _ items: [PickleValue]) throws {
        throw CheckpointError(.malformedPickle("APPEND to a \(target.typeName)"))
    }
    public func setItems(_ target: PickleValue, _ pairs: [(PickleValue, PickleValue)]) throws {
        throw CheckpointError(.malformedPickle("SETITEM on a \(target.typeName)"))
    }
}

/// Caps that keep a hostile pickle from exhausting memory or time. The defaults are far above what
/// any real checkpoint needs (resnet18's data.pkl puts 1,009 entries in its memo).
public struct PickleLimits: Sendable {
    /// Items on the stack, all marks included.
    public var maxStack = 1 << 20
    /// Open MARKs at once.
    public var maxMarks = 1 << 16
    /// Entries in the memo.
    public var maxMemo = 1 << 20
    /// Bytes of one LONG1/LONG4 integer (and a LONG/INT spelled in decimal: 3 digits per byte).
    /// 256 bytes is a 2,048-bit integer; the legacy format's magic number takes 10.
    public var maxIntegerBytes = 256
    /// Nesting depth of a value when the result is converted, and of a tuple used as a dict key or set
    /// member. Also bounds recursion on release, so a deep or cyclic pickle is an error, not a crash.
    public var maxDepth = 512
    /// Values made when the result is converted to a `Value` tree: a container the pickle refers to
    /// twice (through the memo) is converted twice, so a few hundred bytes can describe 2^100 values
    /// (a "billion laughs"). The cap is this or twice the pickle's size in bytes, whichever is larger;
    /// a pickle without shared containers makes at most one value per byte. The same budget bounds the
    /// nodes made hashing dict keys and set members, which repeat the same way.
    public var maxValues = 1 << 20
    public init() {}
}

/// A pickle virtual machine for protocols 0–5.
///
/// It runs every opcode CPython's pickler writes except the two that need outside state: EXT1/2/4
/// (the copyreg extension registry) and NEXT_BUFFER (out-of-band buffers). Those, unknown bytes, and
/// all globals the host refuses stop the run with a typed error at the opcode's offset.
public final class PickleMachine {
    public let limits: PickleLimits
    private let host: any PickleHost
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]
    private var containers: [any Teardown] = []
    /// The protocol the PROTO opcode announced (0 when there is none).
    public private(set) var proto = 0
    /// Every global the pickle named, in order of first use.
    public private(set) var globals: [PickleGlobal] = []
    private var globalSet: Set<PickleGlobal> = []
    /// Caps on hashing keys; set by the caller to share them with its host, else made per load.
    var keyLimits = KeyLimits(maxDepth: PickleLimits().maxDepth, maxValues: PickleLimits().maxValues) {
        didSet { keyLimitsGiven = true }
    }
    private var keyLimitsGiven = false
    /// Offset of the opcode being run.
    private var opOffset = 0
    private var part: String?

    public init(host: any PickleHost, limits: PickleLimits = PickleLimits()) {
        self.host = host
        self.limits = limits
    }

    /// Runs one pickle from `reader` up to and including STOP, hands the result to `finish` while the
    /// containers are alive, then tears them down. The reader is left after STOP.
    public func load<R>(_ reader: inout ByteReader, finish: (PickleValue) throws -> R) throws -> R {
        defer { reset() }
        part = reader.part
        if !keyLimitsGiven { keyLimits = KeyLimits(limits, pickleBytes: reader.remaining) }
        let result = try run(&reader)
        return try finish(result)
    }

    private func reset() {
        for c in containers { c.teardown() }
        containers = []
        stack = []
        marks = []
        memo = [:]
    }

    // MARK: - Stack helpers

    private func fail(_ kind: CheckpointError.Kind) -> CheckpointError {
        CheckpointError(kind, part: part, offset: opOffset)
    }

    @inline(__always)
    private func push(_ v: PickleValue) throws {
        guard stack.count < limits.maxStack else {
            throw fail(.limitExceeded(.maxStack, limit: limits.maxStack, "the pickle stack would hold more items"))
        }
        stack.append(v)
    }

    /// The first stack index above the innermost mark.
    private var floor: Int { marks.last ?? 0 }

    private func pop(_ op: String) throws -> PickleValue {
        guard stack.count > floor else { throw fail(.malformedPickle("\(op) on an empty stack")) }
        return stack.removeLast()
    }

    private func top(_ op: String) throws -> PickleValue {
        guard stack.count > floor else { throw fail(.malformedPickle("\(op) on an empty stack")) }
        return stack[stack.count - 1]
    }

    private func popMark(_ op: String) throws -> [PickleValue] {
        guard let m = marks.popLast() else { throw fail(.malformedPickle("\(op) without a MARK")) }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    private func register<T: Teardown>(_ c: T) -> T {
        containers.append(c)
        return c
    }

    private func makeTuple(_ items: [PickleValue]) -> PickleValue {
        .tuple(register(PickleTuple(items)))
    }

    private func remember(_ index: Int, _ value: PickleValue) throws {
        guard index >= 0 else { throw fail(.malformedPickle("negative memo index \(index)")) }
        if memo[index] == nil, memo.count >= limits.maxMemo {
            throw fail(.limitExceeded(.maxMemo, limit: limits.maxMemo, "the pickle memo would hold more entries"))
        }
        memo[index] = value
    }

    private func recall(_ index: Int) throws -> PickleValue {
        guard let v = memo[index] else { throw fail(.malformedPickle("memo entry \(index) is not defined")) }
        return v
    }

    private func resolve(_ g: PickleGlobal) throws -> PickleValue {
        if globalSet.insert(g).inserted { globals.append(g) }
        return try hosted { try host.global(g) }
    }

    /// Containers the host makes (OrderedDict, set) are torn down with the machine's own, so a dict the
    /// pickle puts inside itself does not outlive the run.
    private func adopt(_ v: PickleValue) -> PickleValue {
        switch v {
        case .tuple(let t): containers.append(t)
        case .list(let l): containers.append(l)
        case .dict(let d): containers.append(d)
        case .set(let s): containers.append(s)
        case .object(let o): if let t = o as? any Teardown { containers.append(t) }
        default: break
        }
        return v
    }

    /// Runs a host call, giving its errors this opcode's position.
    private func hosted<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch var e as CheckpointError {
            if e.offset == nil {
                e.offset = opOffset
                e.part = part
            }
            throw e
        }
    }

    // MARK: - Text operands (protocol 0)

    private func text(_ bytes: UnsafeRawBufferPointer, _ op: String) throws -> String {
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw fail(.malformedPickle("\(op) operand is not valid text"))
        }
        return s
    }

    private func decimal(_ bytes: UnsafeRawBufferPointer, _ op: String) throws -> Int {
        let s = try text(bytes, op)
        guard let v = Int(s.trimmingSpaces) else {
            throw fail(.malformedPickle("\(op) operand '\(s.prefix(40))' is not an integer"))
        }
        return v
    }

    private func utf8(_ bytes: UnsafeRawBufferPointer, _ op: String) throws -> PickleValue {
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw fail(.malformedPickle("\(op) string is not valid UTF-8"))
        }
        return .string(s)
    }

    /// An integer from its decimal spelling: Int64 when it fits, else kept as text.
    private func integer(decimal s: String, _ op: String) throws -> PickleValue {
        if let v = Int64(s) { return .int(v) }
        let digits = s.hasPrefix("-") || s.hasPrefix("+") ? s.dropFirst() : Substring(s)
        guard !digits.isEmpty, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            throw fail(.malformedPickle("\(op) operand '\(s.prefix(40))' is not an integer"))
        }
        guard s.count <= limits.maxIntegerBytes * 3 else {
            throw fail(
                .limitExceeded(.maxIntegerBytes, limit: limits.maxIntegerBytes, "\(op) integer of \(s.count) digits"))
        }
        let body = digits.drop(while: { $0 == "0" })
        return .bigInt((s.hasPrefix("-") && !body.isEmpty ? "-" : "") + (body.isEmpty ? "0" : String(body)))
    }

    /// LONG1/LONG4: little-endian two's complement of any length.
    private func integer(twosComplement raw: UnsafeRawBufferPointer) throws -> PickleValue {
        guard raw.count <= limits.maxIntegerBytes else {
            throw fail(.limitExceeded(.maxIntegerBytes, limit: limits.maxIntegerBytes, "integer of \(raw.count) bytes"))
        }
        if raw.isEmpty { return .int(0) }
        let negative = raw[raw.count - 1] & 0x80 != 0
        if raw.count <= 8 {
            var v: UInt64 = negative ? ~0 : 0
            for (i, b) in raw.enumerated() {
                v &= ~(UInt64(0xFF) << (8 * UInt64(i)))
                v |= UInt64(b) << (8 * UInt64(i))
            }
            return .int(Int64(bitPattern: v))
        }
        // Magnitude as little-endian bytes, then as 32-bit limbs divided by 10^9 (nine digits a pass).
        var mag = [UInt8](raw)
        if negative {
            var carry = 1
            for i in mag.indices {
                let v = Int(~mag[i]) + carry
                mag[i] = UInt8(v & 0xFF)
                carry = v >> 8
            }
        }
        var limbs = stride(from: 0, to: mag.count, by: 4).map { i -> UInt32 in
            var v: UInt32 = 0
            for k in 0..<min(4, mag.count - i) { v |= UInt32(mag[i + k]) << (8 * UInt32(k)) }
            return v
        }
        var groups: [UInt32] = []  // base-10^9 digits, least significant first
        while let last = limbs.last, last == 0 { limbs.removeLast() }
        while !limbs.isEmpty {
            var rem: UInt64 = 0
            for i in stride(from: limbs.count - 1, through: 0, by: -1) {
                let cur = rem << 32 | UInt64(limbs[i])
                limbs[i] = UInt32(cur / 1_000_000_000)
                rem = cur % 1_000_000_000
            }
            groups.append(UInt32(rem))
            while let last = limbs.last, last == 0 { limbs.removeLast() }
        }
        var s = String(groups.last ?? 0)
        for g in groups.dropLast().reversed() {
            let t = String(g)
            s += String(repeating: "0", count: 9 - t.count) + t
        }
        if let v = Int64(negative ? "-" + s : s) { return .int(v) }
        return .bigInt(negative ? "-" + s : s)
    }

    /// Python 2 `str` literal from protocol 0's STRING: quoted, with backslash escapes.
    private func quoted(_ raw: UnsafeRawBufferPointer) throws -> PickleValue {
        let b = [UInt8](raw)
        guard b.count >= 2, let q = b.first, q == 0x27 || q == 0x22, b.last == q else {
            throw fail(.malformedPickle("STRING operand is not quoted"))
        }
        var out: [UInt8] = []
        var i = 1
        let end = b.count - 1
        while i < end {
            let c = b[i]
            i += 1
            guard c == 0x5C else {
                out.append(c)
                continue
            }
            guard i < end else { throw fail(.malformedPickle("STRING ends in a backslash")) }
            let e = b[i]
            i += 1
            switch e {
            case 0x6E: out.append(0x0A)  // \n
            case 0x74: out.append(0x09)  // \t
            case 0x72: out.append(0x0D)  // \r
            case 0x5C, 0x27, 0x22: out.append(e)
            case 0x61: out.append(0x07)
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x76: out.append(0x0B)
            case 0x0A: break  // line continuation
            case 0x78:  // \xHH
                guard i + 2 <= end, let v = UInt8(String(decoding: b[i..<(i + 2)], as: UTF8.self), radix: 16) else {
                    throw fail(.malformedPickle("bad \\x escape in STRING"))
                }
                out.append(v)
                i += 2
            case 0x30...0x37:  // octal, up to 3 digits
                var v = Int(e - 0x30)
                var n = 1
                while n < 3, i < end, (0x30...0x37).contains(b[i]) {
                    v = v * 8 + Int(b[i] - 0x30)
                    i += 1
                    n += 1
                }
                out.append(UInt8(v & 0xFF))
            default:
                out.append(0x5C)
                out.append(e)
            }
        }
        return try out.withUnsafeBytes { try utf8($0, "STRING") }
    }

    /// Protocol 0's UNICODE: raw-unicode-escape (`\uXXXX`, `\UXXXXXXXX`, other bytes are Latin-1).
    private func rawUnicodeEscape(_ raw: UnsafeRawBufferPointer) throws -> PickleValue {
        let b = [UInt8](raw)
        var s = String.UnicodeScalarView()
        var i = 0
        while i < b.count {
            if b[i] == 0x5C, i + 1 < b.count, b[i + 1] == 0x75 || b[i + 1] == 0x55 {
                let n = b[i + 1] == 0x75 ? 4 : 8
                guard i + 2 + n <= b.count,
                    let v = UInt32(String(decoding: b[(i + 2)..<(i + 2 + n)], as: UTF8.self), radix: 16),
                    let scalar = Unicode.Scalar(v)
                else { throw fail(.malformedPickle("bad \\u escape in UNICODE")) }
                s.append(scalar)
                i += 2 + n
            } else {
                s.append(Unicode.Scalar(b[i]))
                i += 1
            }
        }
        return .string(String(s))
    }

    // MARK: - The loop

    private func run(_ r: inout ByteReader) throws -> PickleValue {
        while true {
            opOffset = r.offset
            let byte = try r.readByte()
            guard let op = Opcode(rawValue: byte) else { throw fail(.unknownOpcode(byte)) }
            switch op {
            // Framing and protocol
            case .proto:
                let v = Int(try r.readByte())
                guard v <= 5 else { throw fail(.unsupportedVersion("pickle protocol \(v)")) }
                proto = v
            case .frame:
                let n = try r.read(UInt64.self)
                guard n <= UInt64(r.remaining) else {
                    throw fail(.truncated(needed: Int(clamping: n), available: r.remaining))
                }
            case .stop:
                let result = try pop("STOP")
                return result

            // Stack and memo
            case .mark:
                guard marks.count < limits.maxMarks else {
                    throw fail(.limitExceeded(.maxMarks, limit: limits.maxMarks, "one more MARK would be open"))
                }
                marks.append(stack.count)
            case .pop:
                if stack.count > floor { stack.removeLast() } else { _ = try popMark("POP") }
            case .popMark: _ = try popMark("POP_MARK")
            case .dup: try push(try top("DUP"))
            case .put: try remember(try decimal(try r.readLine(), "PUT"), try top("PUT"))
            case .binPut: try remember(Int(try r.readByte()), try top("BINPUT"))
            case .longBinPut: try remember(Int(try r.read(UInt32.self)), try top("LONG_BINPUT"))
            case .memoize: try remember(memo.count, try top("MEMOIZE"))
            case .get: try push(try recall(try decimal(try r.readLine(), "GET")))
            case .binGet: try push(try recall(Int(try r.readByte())))
            case .longBinGet: try push(try recall(Int(try r.read(UInt32.self))))

            // Constants
            case .none: try push(.none)
            case .newTrue: try push(.bool(true))
            case .newFalse: try push(.bool(false))
            case .int:
                let s = try text(try r.readLine(), "INT").trimmingSpaces
                switch s {
                case "00": try push(.bool(false))
                case "01": try push(.bool(true))
                default: try push(try integer(decimal: s, "INT"))
                }
            case .binInt: try push(.int(Int64(try r.read(Int32.self))))
            case .binInt1: try push(.int(Int64(try r.readByte())))
            case .binInt2: try push(.int(Int64(try r.read(UInt16.self))))
            case .long:
                var s = try text(try r.readLine(), "LONG").trimmingSpaces
                if s.hasSuffix("L") { s.removeLast() }
                try push(try integer(decimal: s, "LONG"))
            case .long1: try push(try integer(twosComplement: try r.read(count: Int(try r.readByte()))))
            case .long4:
                let n = Int(try r.read(Int32.self))
                guard n >= 0 else { throw fail(.malformedPickle("LONG4 with negative length \(n)")) }
                try push(try integer(twosComplement: try r.read(count: n)))
            case .float:
                let s = try text(try r.readLine(), "FLOAT").trimmingSpaces
                guard let d = Double(s) else { throw fail(.malformedPickle("FLOAT operand '\(s.prefix(40))'")) }
                try push(.float(d))
            case .binFloat:
                try push(.float(Double(bitPattern: UInt64(bigEndian: try r.read(UInt64.self).littleEndian))))

            // Strings and bytes
            case .string: try push(try quoted(try r.readLine()))
            case .binString:
                let n = Int(try r.read(Int32.self))
                guard n >= 0 else { throw fail(.malformedPickle("BINSTRING with negative length \(n)")) }
                try push(try utf8(try r.read(count: n), "BINSTRING"))
            case .shortBinString: try push(try utf8(try r.read(count: Int(try r.readByte())), "SHORT_BINSTRING"))
            case .unicode: try push(try rawUnicodeEscape(try r.readLine()))
            case .binUnicode: try push(try utf8(try r.read(count: Int(try r.read(UInt32.self))), "BINUNICODE"))
            case .shortBinUnicode: try push(try utf8(try r.read(count: Int(try r.readByte())), "SHORT_BINUNICODE"))
            case .binUnicode8: try push(try utf8(try r.read(count: try length64(&r)), "BINUNICODE8"))
            case .binBytes: try push(.bytes([UInt8](try r.read(count: Int(try r.read(UInt32.self))))))
            case .shortBinBytes: try push(.bytes([UInt8](try r.read(count: Int(try r.readByte())))))
            case .binBytes8: try push(.bytes([UInt8](try r.read(count: try length64(&r)))))
            case .byteArray8: try push(.bytes([UInt8](try r.read(count: try length64(&r)))))
            case .nextBuffer:
                throw fail(.refusedCall("NEXT_BUFFER: out-of-band buffers are not part of a checkpoint"))
            case .readonlyBuffer: _ = try top("READONLY_BUFFER")

            // Containers
            case .emptyTuple: try push(makeTuple([]))
            case .tuple: try push(makeTuple(try popMark("TUPLE")))
            case .tuple1:
                let a = try pop("TUPLE1")
                try push(makeTuple([a]))
            case .tuple2:
                let b = try pop("TUPLE2"), a = try pop("TUPLE2")
                try push(makeTuple([a, b]))
            case .tuple3:
                let c = try pop("TUPLE3"), b = try pop("TUPLE3"), a = try pop("TUPLE3")
                try push(makeTuple([a, b, c]))
            case .emptyList: try push(.list(register(PickleList())))
            case .list:
                let l = register(PickleList())
                l.items = try popMark("LIST")
                try push(.list(l))
            case .append:
                let v = try pop("APPEND")
                let target = try top("APPEND")
                if case .list(let l) = target {
                    l.items.append(v)
                } else if case .object = target {
                    try hosted { try host.appendItems(target, [v]) }
                } else {
                    throw fail(.malformedPickle("APPEND to a \(target.typeName)"))
                }
            case .appends:
                let items = try popMark("APPENDS")
                let target = try top("APPENDS")
                if case .list(let l) = target {
                    l.items.append(contentsOf: items)
                } else if case .object = target {
                    try hosted { try host.appendItems(target, items) }
                } else {
                    throw fail(.malformedPickle("APPENDS to a \(target.typeName)"))
                }
            case .emptyDict: try push(.dict(register(PickleDict(keyLimits: keyLimits))))
            case .dict:
                let items = try popMark("DICT")
                let d = register(PickleDict(keyLimits: keyLimits))
                try fill(d, items, "DICT")
                try push(.dict(d))
            case .setItem:
                let v = try pop("SETITEM"), k = try pop("SETITEM")
                let target = try top("SETITEM")
                if case .dict(let d) = target {
                    try hosted { try d.insert(k, v) }
                } else if case .object = target {
                    try hosted { try host.setItems(target, [(k, v)]) }
                } else {
                    throw fail(.malformedPickle("SETITEM on a \(target.typeName)"))
                }
            case .setItems:
                let items = try popMark("SETITEMS")
                let target = try top("SETITEMS")
                if case .dict(let d) = target {
                    try fill(d, items, "SETITEMS")
                } else {
                    guard case .object = target else {
                        throw fail(.malformedPickle("SETITEMS on a \(target.typeName)"))
                    }
                    guard items.count % 2 == 0 else {
                        throw fail(.malformedPickle("SETITEMS with an odd number of items"))
                    }
                    let pairs = stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) }
                    try hosted { try host.setItems(target, pairs) }
                }
            case .emptySet: try push(.set(register(PickleSet(frozen: false, keyLimits: keyLimits))))
            case .addItems:
                let items = try popMark("ADDITEMS")
                guard case .set(let s) = try top("ADDITEMS"), !s.isFrozen else {
                    throw fail(.malformedPickle("ADDITEMS on a \(try top("ADDITEMS").typeName)"))
                }
                for i in items { try hosted { try s.insert(i) } }
            case .frozenSet:
                let items = try popMark("FROZENSET")
                let s = register(PickleSet(frozen: true, keyLimits: keyLimits))
                for i in items { try hosted { try s.insert(i) } }
                try push(.set(s))

            // Globals and objects: all through the host
            case .global:
                let module = try text(try r.readLine(), "GLOBAL")
                let name = try text(try r.readLine(), "GLOBAL")
                try push(try resolve(PickleGlobal(module: module, name: name)))
            case .stackGlobal:
                let name = try pop("STACK_GLOBAL"), module = try pop("STACK_GLOBAL")
                guard case .string(let m) = module, case .string(let n) = name else {
                    throw fail(
                        .malformedPickle("STACK_GLOBAL needs two strings, got \(module.typeName) and \(name.typeName)"))
                }
                try push(try resolve(PickleGlobal(module: m, name: n)))
            case .inst:
                let module = try text(try r.readLine(), "INST")
                let name = try text(try r.readLine(), "INST")
                let args = try popMark("INST")
                let cls = try resolve(PickleGlobal(module: module, name: name))
                try push(adopt(try hosted { try host.instantiate(cls, args: args, kwargs: nil) }))
            case .obj:
                var items = try popMark("OBJ")
                guard !items.isEmpty else { throw fail(.malformedPickle("OBJ without a class")) }
                let cls = items.removeFirst()
                try push(adopt(try hosted { try host.instantiate(cls, args: items, kwargs: nil) }))
            case .reduce:
                let args = try pop("REDUCE"), callable = try pop("REDUCE")
                guard case .tuple(let t) = args else {
                    throw fail(.malformedPickle("REDUCE arguments are a \(args.typeName), not a tuple"))
                }
                try push(adopt(try hosted { try host.call(callable, args: t.items) }))
            case .newObj:
                let args = try pop("NEWOBJ"), cls = try pop("NEWOBJ")
                guard case .tuple(let t) = args else {
                    throw fail(.malformedPickle("NEWOBJ arguments are a \(args.typeName), not a tuple"))
                }
                try push(adopt(try hosted { try host.instantiate(cls, args: t.items, kwargs: nil) }))
            case .newObjEx:
                let kwargs = try pop("NEWOBJ_EX"), args = try pop("NEWOBJ_EX"), cls = try pop("NEWOBJ_EX")
                guard case .tuple(let t) = args, case .dict(let kw) = kwargs else {
                    throw fail(.malformedPickle("NEWOBJ_EX needs a tuple and a dict"))
                }
                try push(adopt(try hosted { try host.instantiate(cls, args: t.items, kwargs: kw) }))
            case .build:
                let state = try pop("BUILD"), inst = try pop("BUILD")
                try push(try hosted { try host.build(inst, state: state) })
            case .persID:
                let pid = try text(try r.readLine(), "PERSID")
                try push(try hosted { try host.persistentLoad(.string(pid)) })
            case .binPersID:
                let pid = try pop("BINPERSID")
                try push(try hosted { try host.persistentLoad(pid) })
            case .ext1, .ext2, .ext4:
                throw fail(.refusedCall("\(op) refers to the copyreg extension registry, which checkpoints do not use"))
            }
        }
    }

    private func length64(_ r: inout ByteReader) throws -> Int {
        let n = try r.read(UInt64.self)
        guard n <= UInt64(r.remaining) else { throw fail(.truncated(needed: Int(clamping: n), available: r.remaining)) }
        return Int(n)
    }

    private func fill(_ d: PickleDict, _ items: [PickleValue], _ op: String) throws {
        guard items.count % 2 == 0 else { throw fail(.malformedPickle("\(op) with an odd number of items")) }
        var i = 0
        while i < items.count {
            try hosted { try d.insert(items[i], items[i + 1]) }
            i += 2
        }
    }
}

extension String {
    var trimmingSpaces: String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\r" || c == "\t" { s.removeFirst() }
        while let c = s.last, c == " " || c == "\r" || c == "\t" { s.removeLast() }
        return String(s)
    }
}
