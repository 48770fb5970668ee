import Tensors

/// Emits pickle opcodes (protocol 2), the subset torch.save's pickler uses for a state dict.
///
/// Globals are memoized like CPython's pickler does, so each `module name` line appears once.
struct PickleWriter {
    private(set) var bytes: [UInt8] = [0x80, 2]  // PROTO 2
    private var memo: [String: UInt32] = [:]
    private var nextMemo: UInt32 = 0

    mutating func op(_ code: UInt8) { bytes.append(code) }

    mutating func mark() { op(0x28) }  // MARK
    mutating func tuple() { op(0x74) }  // TUPLE (to the last MARK)
    mutating func emptyTuple() { op(0x29) }  // EMPTY_TUPLE
    mutating func emptyDict() { op(0x7D) }  // EMPTY_DICT
    mutating func reduce() { op(0x52) }  // REDUCE
    mutating func build() { op(0x62) }  // BUILD
    mutating func setItems() { op(0x75) }  // SETITEMS (to the last MARK)
    mutating func binPersId() { op(0x51) }  // BINPERSID
    mutating func stop() { op(0x2E) }  // STOP
    mutating func bool(_ b: Bool) { op(b ? 0x88 : 0x89) }  // NEWTRUE / NEWFALSE
    mutating func none() { op(0x4E) }  // NONE

    mutating func int(_ v: Int) {
        if v >= 0 && v < 0x100 {
            op(0x4B)
            bytes.append(UInt8(v))  // BININT1
        } else if v >= 0 && v < 0x10000 {
            op(0x4D)
            le(UInt16(v))  // BININT2
        } else if v >= Int(Int32.min) && v <= Int(Int32.max) {
            op(0x4A)
            le(UInt32(bitPattern: Int32(v)))  // BININT
        } else {
            // LONG1: little-endian two's complement, shortest form.
            var n = v
            var digits: [UInt8] = []
            repeat {
                digits.append(UInt8(truncatingIfNeeded: n))
                n >>= 8
            } while !(n == 0 && digits.last! & 0x80 == 0) && !(n == -1 && digits.last! & 0x80 != 0)
            op(0x8A)
            bytes.append(UInt8(digits.count))
            bytes += digits
        }
    }

    mutating func double(_ d: Double) {
        op(0x47)  // BINFLOAT, big-endian
        let b = d.bitPattern.bigEndian
        withUnsafeBytes(of: b) { bytes += $0 }
    }

    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        op(0x58)
        le(UInt32(utf8.count))
        bytes += utf8  // BINUNICODE
    }

    /// GLOBAL `module\nname\n`, memoized: a second use is a BINGET.
    mutating func global(_ module: String, _ name: String) {
        let key = module + "\n" + name
        if let slot = memo[key] {
            get(slot)
            return
        }
        op(0x63)
        bytes += Array((module + "\n" + name + "\n").utf8)
        put(key)
    }

    private mutating func put(_ key: String) {
        let slot = nextMemo
        nextMemo += 1
        memo[key] = slot
        if slot < 0x100 {
            op(0x71)
            bytes.append(UInt8(slot))  // BINPUT
        } else {
            op(0x72)
            le(slot)  // LONG_BINPUT
        }
    }

    private mutating func get(_ slot: UInt32) {
        if slot < 0x100 {
            op(0x68)
            bytes.append(UInt8(slot))  // BINGET
        } else {
            op(0x6A)
            le(slot)  // LONG_BINGET
        }
    }

    private mutating func le<T: FixedWidthInteger>(_ v: T) {
        withUnsafeBytes(of: v.littleEndian) { bytes += $0 }
    }
}

extension PickleWriter {
    mutating func emptyList() { op(0x5D) }  // EMPTY_LIST
    mutating func appends() { op(0x65) }  // APPENDS (to the last MARK)

    /// A plain value as torch.save would pickle it (dicts that were OrderedDicts stay OrderedDicts).
    /// Thrown for values a `.pth` written here cannot carry (tensors inside values, bytes, sets, …).
    mutating func value(_ v: Value, path: String) throws {
        switch v {
        case .none: none()
        case .bool(let b): bool(b)
        case .int(let i): int(Int(i))
        case .float(let d): double(d)
        case .string(let s): string(s)
        case .list(let items):
            emptyList()
            for chunk in stride(from: 0, to: items.count, by: 1000) {
                mark()
                for item in items[chunk..<min(chunk + 1000, items.count)] { try value(item, path: path) }
                appends()
            }
        case .tuple(let items):
            if items.isEmpty {
                emptyTuple()
                return
            }
            mark()
            for item in items { try value(item, path: path) }
            tuple()
        case .dict(let d):
            if d.isOrdered {
                global("collections", "OrderedDict")
                emptyTuple()
                reduce()
            } else {
                emptyDict()
            }
            for chunk in stride(from: 0, to: d.entries.count, by: 1000) {
                mark()
                for e in d.entries[chunk..<min(chunk + 1000, d.entries.count)] {
                    try value(e.key, path: path)
                    try value(e.value, path: path)
                }
                setItems()
            }
        case .dtype(let d): global("torch", d.rawValue)
        case .bigInt, .complex, .bytes, .set, .tensor, .device, .object:
            throw CheckpointError(.io("\(path): a \(v.kindName) cannot be written to a .pth by pth2swt"))
        }
    }
}
