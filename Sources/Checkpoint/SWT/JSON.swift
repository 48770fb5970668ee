/// A JSON value whose objects keep their key order.
///
/// Used for the `.swt` header (read and written) and for every `--json` report. The parser is strict:
/// it refuses duplicate keys, bad escapes, invalid UTF-8, nesting deeper than `maxDepth`, and trailing
/// bytes other than whitespace; numbers without a fraction or exponent that fit Int stay integers.
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.int(let x), .int(let y)): x == y
        case (.double(let x), .double(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)):
            x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    /// The value under `key` of an object (first match), else nil.
    public subscript(key: String) -> JSON? {
        if case .object(let fields) = self { return fields.first { $0.0 == key }?.1 }
        return nil
    }

    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var intValue: Int? { if case .int(let i) = self { i } else { nil } }
    public var arrayValue: [JSON]? { if case .array(let a) = self { a } else { nil } }
    public var objectValue: [(String, JSON)]? { if case .object(let o) = self { o } else { nil } }

    /// A short name of the case, for messages.
    public var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .int, .double: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }
}

// MARK: - Writing

extension JSON {
    /// The text of the value: indented by `indent` spaces per level, or compact when nil. Arrays of
    /// scalars (shapes, strides) stay on one line.
    public func render(indent: Int? = 2) -> String {
        var out = ""
        write(&out, indent: indent, level: 0)
        return out
    }

    private func write(_ out: inout String, indent: Int?, level: Int) {
        let nl = indent == nil ? "" : "\n"
        let pad = { (l: Int) in String(repeating: " ", count: (indent ?? 0) * l) }
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d): out += d.isFinite ? "\(d)" : "null"
        case .string(let s): JSON.quote(s, into: &out)
        case .array(let items):
            if items.isEmpty {
                out += "[]"
                return
            }
            let flat =
                indent == nil
                || items.allSatisfy {
                    switch $0 {
                    case .array, .object: false
                    default: true
                    }
                }
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += flat ? (indent == nil ? "," : ", ") : "," }
                if !flat { out += nl + pad(level + 1) }
                v.write(&out, indent: indent, level: level + 1)
            }
            if !flat { out += nl + pad(level) }
            out += "]"
        case .object(let fields):
            if fields.isEmpty {
                out += "{}"
                return
            }
            out += "{"
            for (i, (k, v)) in fields.enumerated() {
                if i > 0 { out += "," }
                out += nl + pad(level + 1)
                JSON.quote(k, into: &out)
                out += indent == nil ? ":" : ": "
                v.write(&out, indent: indent, level: level + 1)
            }
            out += nl + pad(level) + "}"
        }
    }

    public static func quote(_ s: String, into out: inout String) {
        out += "\""
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                let h = String(u.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - h.count) + h
            default: out.unicodeScalars.append(u)
            }
        }
        out += "\""
    }
}

// MARK: - Parsing

/// Why a JSON text was refused, and the byte offset (from the start of the text) where.
public struct JSONParseError: Error, Equatable, Sendable, CustomStringConvertible {
    public let offset: Int
    public let reason: String
    /// True when the text was refused for holding more top-level fields than the caller allowed.
    public var fieldLimit: Int? = nil
    public init(offset: Int, reason: String, fieldLimit: Int? = nil) {
        self.offset = offset
        self.reason = reason
        self.fieldLimit = fieldLimit
    }
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }
}

extension JSON {
    /// Parses one JSON value that fills `text` (surrounding whitespace allowed).
    ///
    /// Thrown (`JSONParseError`) when the text is not JSON, when an object repeats a key, when nesting
    /// is deeper than `maxDepth`, when a string is not valid UTF-8, or when the top-level object holds
    /// more than `maxTopLevelFields` fields (`fieldLimit` is then set; checked as they are read, so a
    /// huge object is refused before it is built). With `duplicateTopLevelKeys` a key repeated in the
    /// top-level object is kept (twice) for the caller to report in its own terms; a repeated key in
    /// any nested object is refused either way.
    public static func parse(
        _ text: UnsafeRawBufferPointer, maxDepth: Int = 64, duplicateTopLevelKeys: Bool = false,
        maxTopLevelFields: Int = .max
    ) throws(JSONParseError) -> JSON {
        var p = JSONParser(
            bytes: text, maxDepth: maxDepth, duplicateTopLevelKeys: duplicateTopLevelKeys,
            maxTopLevelFields: maxTopLevelFields)
        p.skipSpace()
        let v = try p.value(depth: 0)
        p.skipSpace()
        guard p.at == text.count else { throw p.fail("unexpected bytes after the value") }
        return v
    }

    public static func parse(_ text: String, maxDepth: Int = 64) throws(JSONParseError) -> JSON {
        let bytes = Array(text.utf8)
        let result: Result<JSON, JSONParseError> = bytes.withUnsafeBytes { raw in
            do throws(JSONParseError) { return .success(try parse(raw, maxDepth: maxDepth)) } catch {
                return .failure(error)
            }
        }
        return try result.get()
    }
}

private struct JSONParser {
    let bytes: UnsafeRawBufferPointer
    let maxDepth: Int
    let duplicateTopLevelKeys: Bool
    let maxTopLevelFields: Int
    var at = 0

    init(bytes: UnsafeRawBufferPointer, maxDepth: Int, duplicateTopLevelKeys: Bool, maxTopLevelFields: Int) {
        self.bytes = bytes
        self.maxDepth = maxDepth
        self.duplicateTopLevelKeys = duplicateTopLevelKeys
        self.maxTopLevelFields = maxTopLevelFields
    }

    func fail(_ reason: String, at offset: Int? = nil) -> JSONParseError {
        JSONParseError(offset: offset ?? at, reason: reason)
    }

    var peek: UInt8? { at < bytes.count ? bytes[at] : nil }

    mutating func skipSpace() {
        while let c = peek, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { at += 1 }
    }

    mutating func expect(_ literal: StaticString) throws(JSONParseError) {
        let n = literal.utf8CodeUnitCount
        guard bytes.count - at >= n else { throw fail("unexpected end of text") }
        for i in 0..<n where bytes[at + i] != literal.utf8Start[i] {
            throw fail("expected '\(literal)'")
        }
        at += n
    }

    mutating func value(depth: Int) throws(JSONParseError) -> JSON {
        guard depth <= maxDepth else { throw fail("nesting deeper than \(maxDepth) levels") }
        guard let c = peek else { throw fail("unexpected end of text") }
        switch c {
        case UInt8(ascii: "{"): return try object(depth: depth)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"):
            try expect("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try expect("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try expect("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
        default: throw fail("unexpected byte 0x\(String(c, radix: 16))")
        }
    }

    mutating func object(depth: Int) throws(JSONParseError) -> JSON {
        at += 1
        var fields: [(String, JSON)] = []
        var seen = Set<String>()
        skipSpace()
        if peek == UInt8(ascii: "}") {
            at += 1
            return .object([])
        }
        while true {
            skipSpace()
            let keyOffset = at
            guard peek == UInt8(ascii: "\"") else { throw fail("expected a string key") }
            let key = try string()
            guard seen.insert(key).inserted || (depth == 0 && duplicateTopLevelKeys) else {
                throw fail("duplicate key \"\(key)\"", at: keyOffset)
            }
            if depth == 0 && fields.count >= maxTopLevelFields {
                throw JSONParseError(
                    offset: keyOffset, reason: "more than \(maxTopLevelFields) fields in the top-level object",
                    fieldLimit: maxTopLevelFields)
            }
            skipSpace()
            guard peek == UInt8(ascii: ":") else { throw fail("expected ':'") }
            at += 1
            skipSpace()
            fields.append((key, try value(depth: depth + 1)))
            skipSpace()
            switch peek {
            case UInt8(ascii: ","): at += 1
            case UInt8(ascii: "}"):
                at += 1
                return .object(fields)
            default: throw fail("expected ',' or '}'")
            }
        }
    }

    mutating func array(depth: Int) throws(JSONParseError) -> JSON {
        at += 1
        var items: [JSON] = []
        skipSpace()
        if peek == UInt8(ascii: "]") {
            at += 1
            return .array([])
        }
        while true {
            skipSpace()
            items.append(try value(depth: depth + 1))
            skipSpace()
            switch peek {
            case UInt8(ascii: ","): at += 1
            case UInt8(ascii: "]"):
                at += 1
                return .array(items)
            default: throw fail("expected ',' or ']'")
            }
        }
    }

    mutating func number() throws(JSONParseError) -> JSON {
        let start = at
        if peek == UInt8(ascii: "-") { at += 1 }
        func digits(_ p: inout JSONParser) -> Int {
            let s = p.at
            while let c = p.peek, c >= UInt8(ascii: "0"), c <= UInt8(ascii: "9") { p.at += 1 }
            return p.at - s
        }
        let intStart = at
        let intDigits = digits(&self)
        guard intDigits > 0 else { throw fail("expected a digit") }
        guard !(intDigits > 1 && bytes[intStart] == UInt8(ascii: "0")) else { throw fail("leading zero", at: intStart) }
        var integral = true
        if peek == UInt8(ascii: ".") {
            at += 1
            integral = false
            guard digits(&self) > 0 else { throw fail("expected a digit after '.'") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            at += 1
            integral = false
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { at += 1 }
            guard digits(&self) > 0 else { throw fail("expected a digit in the exponent") }
        }
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<at]), as: UTF8.self)
        if integral, let i = Int(text) { return .int(i) }
        guard let d = Double(text) else { throw fail("number out of range", at: start) }
        return .double(d)
    }

    mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard bytes.count - at >= 4 else { throw fail("unexpected end of text in \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[at]
            let d: UInt32
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = UInt32(c - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = UInt32(c - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = UInt32(c - UInt8(ascii: "A") + 10)
            default: throw fail("bad hex digit in \\u escape")
            }
            v = v << 4 | d
            at += 1
        }
        return v
    }

    mutating func string() throws(JSONParseError) -> String {
        at += 1
        let start = at
        // Fast path: no escapes.
        while let c = peek, c != UInt8(ascii: "\""), c != UInt8(ascii: "\\") {
            guard c >= 0x20 else { throw fail("control character in a string") }
            at += 1
        }
        guard let stop = peek else { throw fail("unterminated string", at: start - 1) }
        var raw = Array(UnsafeRawBufferPointer(rebasing: bytes[start..<at]))
        if stop == UInt8(ascii: "\\") {
            while true {
                guard let c = peek else { throw fail("unterminated string", at: start - 1) }
                if c == UInt8(ascii: "\"") { break }
                guard c >= 0x20 else { throw fail("control character in a string") }
                at += 1
                if c != UInt8(ascii: "\\") {
                    raw.append(c)
                    continue
                }
                guard let e = peek else { throw fail("unterminated escape") }
                at += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): raw.append(e)
                case UInt8(ascii: "b"): raw.append(0x08)
                case UInt8(ascii: "f"): raw.append(0x0C)
                case UInt8(ascii: "n"): raw.append(0x0A)
                case UInt8(ascii: "r"): raw.append(0x0D)
                case UInt8(ascii: "t"): raw.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard bytes.count - at >= 2, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u")
                        else {
                            throw fail("unpaired surrogate")
                        }
                        at += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw fail("unpaired surrogate")
                    }
                    raw.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
                default: throw fail("bad escape '\\\(Character(Unicode.Scalar(e)))'")
                }
            }
        }
        at += 1
        guard let s = String(validating: raw, as: UTF8.self) else { throw fail("invalid UTF-8 in a string", at: start) }
        return s
    }
}
