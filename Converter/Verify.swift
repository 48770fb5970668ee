import ArgumentParser
import Checkpoint
import Tensors

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare two checkpoints tensor by tensor: names, dtypes, shapes, values.",
        discussion: """
            A and B may be in any formats pth2swt reads. With the default --rtol 0 --atol 0 values must be \
            bit-identical (same dtype required). With a tolerance, elements are compared as float64: \
            |a - b| <= atol + rtol * |b|, as torch.allclose; NaN matches NaN and an infinity only itself. Prints the first \
            differences and exits 1 when anything differs, 0 when everything matches.
            """
    )

    @Argument(help: "The first checkpoint.") var a: String
    @Argument(help: "The second checkpoint (the reference for --rtol).") var b: String
    @Option(help: "Relative tolerance.") var rtol: Double = 0
    @Option(help: "Absolute tolerance.") var atol: Double = 0
    @Option(name: .customLong("strip-prefix"), help: "Remove this prefix from names in both files.") var stripPrefix:
        String?
    @Option(help: "Report at most this many differences.") var limit: Int = 10
    @Flag(help: "Print one JSON object instead of text.") var json = false
    @OptionGroup var caps: CapOptions

    func validate() throws {
        for (flag, value) in [("--rtol", rtol), ("--atol", atol)] {
            guard value.isFinite, value >= 0 else {
                throw ValidationError("\(flag) \(value): must be a finite number ≥ 0")
            }
        }
        guard limit >= 0 else { throw ValidationError("--limit \(limit): must be ≥ 0") }
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
        let comparison = StateDictComparison(rtol: rtol, atol: atol)
        let result: StateDictComparison.Result
        do {
            result = try comparison.compare(sdA, sdB)
        } catch {
            throw fail(error, json: json)
        }
        let diffs = result.differences, compared = result.tensorsCompared, elements = result.elements
        let maxAbs = result.maxAbsDifference
        let match = diffs.isEmpty
        if json {
            print(
                JSON.object([
                    ("a", .string(a)), ("a_format", .string(formatA)),
                    ("b", .string(b)), ("b_format", .string(formatB)),
                    ("match", .bool(match)), ("tensors_compared", .int(compared)), ("elements", .int(elements)),
                    ("max_abs_diff", .double(maxAbs)), ("rtol", .double(rtol)), ("atol", .double(atol)),
                    (
                        "differences",
                        .array(
                            diffs.prefix(limit).map {
                                .object([
                                    ("tensor", $0.tensor.map(JSON.string) ?? .null), ("problem", .string($0.message)),
                                ])
                            })
                    ),
                    ("difference_count", .int(diffs.count)),
                ]).render())
        } else if match {
            let how =
                rtol == 0 && atol == 0 ? "bit-identical" : "within rtol \(rtol), atol \(atol) (max |a-b| \(maxAbs))"
            print(
                "match: \(compared) tensors, \(group(elements)) elements, \(how) (\(formatA) \(a) vs \(formatB) \(b))")
        } else {
            print(
                "MISMATCH: \(diffs.count) difference\(diffs.count == 1 ? "" : "s") between \(formatA) \(a) and \(formatB) \(b)"
            )
            for d in diffs.prefix(limit) { print("  \(d.tensor ?? "-"): \(d.message)") }
            if diffs.count > limit { print("  … and \(diffs.count - limit) more (--limit)") }
            if rtol == 0 && atol == 0 && diffs.contains(where: { $0.message.hasPrefix("dtype ") }) {
                print(
                    "  (bit-identical comparison needs equal dtypes; give --rtol/--atol to compare values across dtypes)"
                )
            }
        }
        if !match { throw ExitCode(1) }
    }

}
