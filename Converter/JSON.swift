/// A JSON value with ordered objects, written compactly or indented. Output keys keep the order they
/// were given in, so `--json` prints fields in a stable, readable order.
enum JSON {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([JSON])
    case object([(String, JSON)])

    func render(indent: Int? = 2) -> String {
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
        case .double(let d):
            if d.isFinite { out += d == d.rounded() && abs(d) < 1e15 ? String(format0: d) : "\(d)" } else { out += "null" }
        case .string(let s): JSON.quote(s, into: &out)
        case .array(let items):
            // Arrays of scalars stay on one line (shapes, strides).
            let flat = indent == nil || items.allSatisfy { if case .array = $0 { false } else if case .object = $0 { false } else { true } }
            if items.isEmpty { out += "[]"; return }
            out += "["
            for (i, v) in items.enumerated() {
                if i > 0 { out += flat ? ", " : "," }
                if !flat { out += nl + pad(level + 1) }
                v.write(&out, indent: indent, level: level + 1)
            }
            if !flat { out += nl + pad(level) }
            out += "]"
        case .object(let fields):
            if fields.isEmpty { out += "{}"; return }
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

    static func quote(_ s: String, into out: inout String) {
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

extension String {
    /// An integral double without a trailing ".0" noise beyond one decimal (1.0 stays "1.0").
    init(format0 d: Double) { self = "\(d)" }
}
