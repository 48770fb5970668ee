import ArgumentParser
import Checkpoint
import Tensors

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare two checkpoints tensor by tensor: names, dtypes, shapes, values.",
        discussion: """
            A and B may be in any formats pth2swt reads. With the default --rtol 0 --atol 0 values must be \
            bit-identical (same dtype required). With a tolerance, elements are compared as float64: \
            |a - b| <= atol + rtol * |b|, as torch.allclose; NaN matches NaN. Prints the first \
            differences and exits 1 when anything differs, 0 when everything matches.
            """
    )

    @Argument(help: "The first checkpoint.") var a: String
    @Argument(help: "The second checkpoint (the reference for --rtol).") var b: String
    @Option(help: "Relative tolerance.") var rtol: Double = 0
    @Option(help: "Absolute tolerance.") var atol: Double = 0
    @Option(name: .customLong("strip-prefix"), help: "Remove this prefix from names in both files.") var stripPrefix: String?
    @Option(help: "Report at most this many differences.") var limit: Int = 10
    @Flag(help: "Print one JSON object instead of text.") var json = false
    @OptionGroup var caps: CapOptions

    struct Difference {
        var tensor: String?
        var message: String
    }

    func run() throws {
        let sdA: StateDict, sdB: StateDict, formatA: String, formatB: String
        do {
            let options = try caps.loadOptions()
            let ca = try Checkpoint(path: a, options: options), cb = try Checkpoint(path: b, options: options)
            sdA = try ca.stateDict(stripPrefix: stripPrefix)
            sdB = try cb.stateDict(stripPrefix: stripPrefix)
            formatA = ca.format.rawValue
            formatB = cb.format.rawValue
        } catch {
            throw fail(error, json: json)
        }
        var diffs: [Difference] = []
        var compared = 0, elements = 0
        var maxAbs = 0.0
        for name in sdA.names where sdB[name] == nil {
            diffs.append(Difference(tensor: name, message: "only in A"))
        }
        for name in sdB.names where sdA[name] == nil {
            diffs.append(Difference(tensor: name, message: "only in B"))
        }
        do {
            for name in sdA.names {
                guard let ta = sdA[name], let tb = sdB[name] else { continue }
                compared += 1
                if ta.shape != tb.shape {
                    diffs.append(Difference(tensor: name, message: "shape \(ta.shape) vs \(tb.shape)"))
                    continue
                }
                let exact = rtol == 0 && atol == 0
                if ta.dtype != tb.dtype && exact {
                    diffs.append(Difference(tensor: name, message: "dtype \(ta.dtype.rawValue) vs \(tb.dtype.rawValue)"))
                    continue
                }
                elements += ta.count
                if let d = try compare(ta, tb, exact: exact, maxAbs: &maxAbs) {
                    diffs.append(Difference(tensor: name, message: d))
                }
            }
        } catch {
            throw fail(error, json: json)
        }
        let match = diffs.isEmpty
        if json {
            print(JSON.object([
                ("a", .string(a)), ("a_format", .string(formatA)),
                ("b", .string(b)), ("b_format", .string(formatB)),
                ("match", .bool(match)), ("tensors_compared", .int(compared)), ("elements", .int(elements)),
                ("max_abs_diff", .double(maxAbs)), ("rtol", .double(rtol)), ("atol", .double(atol)),
                ("differences", .array(diffs.prefix(limit).map {
                    .object([("tensor", $0.tensor.map(JSON.string) ?? .null), ("problem", .string($0.message))])
                })),
                ("difference_count", .int(diffs.count)),
            ]).render())
        } else if match {
            let how = rtol == 0 && atol == 0 ? "bit-identical" : "within rtol \(rtol), atol \(atol) (max |a-b| \(maxAbs))"
            print("match: \(compared) tensors, \(group(elements)) elements, \(how) (\(formatA) \(a) vs \(formatB) \(b))")
        } else {
            print("MISMATCH: \(diffs.count) difference\(diffs.count == 1 ? "" : "s") between \(formatA) \(a) and \(formatB) \(b)")
            for d in diffs.prefix(limit) { print("  \(d.tensor ?? "-"): \(d.message)") }
            if diffs.count > limit { print("  … and \(diffs.count - limit) more (--limit)") }
            if rtol == 0 && atol == 0 && diffs.contains(where: { $0.message.hasPrefix("dtype ") }) {
                print("  (bit-identical comparison needs equal dtypes; give --rtol/--atol to compare values across dtypes)")
            }
        }
        if !match { throw ExitCode(1) }
    }

    /// Nil when the tensors agree; otherwise a description of how they differ.
    func compare(_ ta: Tensor, _ tb: Tensor, exact: Bool, maxAbs: inout Double) throws -> String? {
        if exact {
            let ba = try ta.contiguousBytes(), bb = try tb.contiguousBytes()
            if ba == bb { return nil }
            let size = ta.dtype.itemSize
            var first = -1, count = 0
            for i in 0..<ta.count where ba[(i * size)..<((i + 1) * size)] != bb[(i * size)..<((i + 1) * size)] {
                if first < 0 { first = i }
                count += 1
            }
            let va = try value(ta, first), vb = try value(tb, first)
            return "\(count) of \(ta.count) elements differ; first at \(index(first, ta.shape)): \(va) vs \(vb)"
        }
        let da = try doubles(ta), db = try doubles(tb)
        var first = -1, count = 0, worst = 0.0
        for i in 0..<da.count {
            let x = da[i], y = db[i]
            if x.isNaN && y.isNaN { continue }
            let diff = abs(x - y)
            if !(diff <= atol + rtol * abs(y)) {
                if first < 0 { first = i }
                count += 1
            }
            if diff.isFinite { worst = max(worst, diff) }
        }
        maxAbs = max(maxAbs, worst)
        if count == 0 { return nil }
        return "\(count) of \(ta.count) elements differ beyond tolerance (max |a-b| \(worst)); first at \(index(first, ta.shape)): \(da[first]) vs \(db[first])"
    }

    func doubles(_ t: Tensor) throws -> [Double] {
        if t.dtype.isFloatingPoint {
            let raw = try t.contiguousBytes(as: .float64)
            return raw.withUnsafeBytes { r in (0..<t.count).map { Double(bitPattern: UInt64(littleEndian: r.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self))) } }
        }
        let raw = try t.contiguousBytes()
        return raw.withUnsafeBytes { r in
            (0..<t.count).map { i -> Double in
                switch t.dtype {
                case .int64: Double(Int64(littleEndian: r.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)))
                case .int32: Double(Int32(littleEndian: r.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))
                case .int16: Double(Int16(littleEndian: r.loadUnaligned(fromByteOffset: i * 2, as: Int16.self)))
                case .int8: Double(r.load(fromByteOffset: i, as: Int8.self))
                default: Double(r.load(fromByteOffset: i, as: UInt8.self))
                }
            }
        }
    }

    func value(_ t: Tensor, _ i: Int) throws -> String {
        let d = try doubles(t)[i]
        return t.dtype.isFloatingPoint ? "\(d)" : String(Int64(d))
    }

    func index(_ flat: Int, _ shape: [Int]) -> String {
        var rest = flat
        var idx = [Int](repeating: 0, count: shape.count)
        for d in stride(from: shape.count - 1, through: 0, by: -1) where shape[d] > 0 {
            idx[d] = rest % shape[d]
            rest /= shape[d]
        }
        return "[" + idx.map(String.init).joined(separator: ", ") + "]"
    }
}
