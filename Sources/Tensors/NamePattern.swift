/// A shell-style pattern for tensor names: `*` matches any run of characters (dots included), `?` one
/// character, and `[abc]` / `[a-z]` / `[!abc]` one of a set, as Python's `fnmatch`. Anything else
/// matches itself. `layer4.*` selects a block, `*.num_batches_tracked` a kind of buffer.
public struct NamePattern: Sendable, Equatable, CustomStringConvertible {
    public let text: String
    private let chars: [Character]

    public init(_ text: String) {
        self.text = text
        self.chars = Array(text)
    }

    public var description: String { text }

    public func matches(_ name: String) -> Bool {
        let s = Array(name)
        // Iterative wildcard matching with one backtrack point for the last '*'.
        var p = 0, i = 0
        var star = -1, mark = 0
        while i < s.count {
            if p < chars.count, chars[p] == "*" {
                star = p
                mark = i
                p += 1
            } else if p < chars.count, let width = matchOne(at: p, s[i]) {
                p += width
                i += 1
            } else if star >= 0 {
                p = star + 1
                mark += 1
                i = mark
            } else {
                return false
            }
        }
        while p < chars.count, chars[p] == "*" { p += 1 }
        return p == chars.count
    }

    /// If the pattern element at `p` matches `c`, its width in pattern characters.
    private func matchOne(at p: Int, _ c: Character) -> Int? {
        switch chars[p] {
        case "?": return 1
        case "[":
            var q = p + 1
            var negate = false
            if q < chars.count, chars[q] == "!" {
                negate = true
                q += 1
            }
            var matched = false
            var first = true
            while q < chars.count, chars[q] != "]" || first {
                first = false
                if q + 2 < chars.count, chars[q + 1] == "-", chars[q + 2] != "]" {
                    if chars[q] <= c && c <= chars[q + 2] { matched = true }
                    q += 3
                } else {
                    if chars[q] == c { matched = true }
                    q += 1
                }
            }
            // An unclosed '[' is a literal, as in fnmatch.
            guard q < chars.count else { return c == "[" ? 1 : nil }
            return matched != negate ? q - p + 1 : nil
        default:
            return chars[p] == c ? 1 : nil
        }
    }
}

extension StateDict {
    /// The tensors whose names match any of `select` (all when it is empty) and none of `exclude`,
    /// in file order, with the same values and `_metadata`.
    public func filtered(select: [NamePattern] = [], exclude: [NamePattern] = []) -> StateDict {
        var out = withoutTensors()
        for (name, tensor) in tensors
        where (select.isEmpty || select.contains { $0.matches(name) }) && !exclude.contains(where: { $0.matches(name) })
        {
            // Names are unique already.
            try! out.insert(tensor, named: name)
        }
        return out
    }
}
