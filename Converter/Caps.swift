import ArgumentParser
import Checkpoint
import Tensors
import Vision

/// `--cap NAME=VALUE`: the resource caps of `LoadOptions`, for a file that is large but trusted.
struct CapOptions: ParsableArguments {
    @Option(
        name: .customLong("cap"),
        help: ArgumentHelp(
            "Change a resource cap, NAME=VALUE (repeatable): \(CheckpointLimit.allCases.map(\.rawValue).joined(separator: ", ")).",
            valueName: "name=value"))
    var caps: [String] = []

    func loadOptions() throws -> LoadOptions {
        var options = LoadOptions()
        for spec in caps {
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let cap = CheckpointLimit(rawValue: parts[0]) else {
                throw ValidationError(
                    "--cap \(spec): the name must be one of \(CheckpointLimit.allCases.map(\.rawValue).joined(separator: ", "))"
                )
            }
            guard let value = Int(parts[1].replacingOccurrences(of: "_", with: "")), value >= 0 else {
                throw ValidationError("--cap \(spec): the value must be a non-negative integer")
            }
            options.set(cap, to: value)
        }
        return options
    }
}

/// Which state dict to read and whether to read unknown classes as records: `--key`, `--stub-classes`.
struct SourceOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Read the state dict at this dotted path (dict keys, list indices, attributes), as `inspect` lists them; '' is the root.",
            valueName: "a.b.c"))
    var key: String?

    @Flag(
        name: .customLong("stub-classes"),
        help: ArgumentHelp(
            "Read classes outside the allowlist (whole pickled models, Lightning, omegaconf, argparse) as inert records.",
            discussion:
                "Nothing is imported or run either way: a record is the class's name and the arguments the file gave."))
    var stubClasses = false

    /// `base` with these choices applied.
    func loadOptions(_ base: LoadOptions = LoadOptions()) -> LoadOptions {
        var options = base
        options.stubClasses = stubClasses
        return options
    }
}

/// "under 'model' → 'state_dict' (1 of 3 candidates)", for a state dict not at the root or not alone.
func placeNote(_ sd: StateDict) -> String? {
    guard !sd.path.isEmpty || sd.candidates.count > 1 || sd.kind != .dict else { return nil }
    let place = sd.path.isEmpty ? "at the root" : "under " + sd.path.map { "'\($0)'" }.joined(separator: " → ")
    let kind =
        sd.kind == .module
        ? ", a module's state_dict()" : sd.kind == .tensor ? ", a bare tensor named '\(bareTensorName)'" : ""
    let of = sd.candidates.count > 1 ? " (picked of \(sd.candidates.count) candidates; --key chooses another)" : ""
    return "state dict \(place)\(kind)\(of)"
}

/// The bounds of the command line's sizes: a value past one is refused with the flag's name, before
/// anything is allocated for it.
enum Bounds {
    static let threads = 1...256
    static let batch = 1...4096
    static let classes = 1...ModelCard.maxClasses
    static let imageSize = 1...8192
    /// `--shard I/N`: N jobs at most.
    static let shards = 1...1_000_000

    /// Thrown (`ValidationError`) when `value` is outside `range`.
    static func check(_ flag: String, _ value: Int, _ range: ClosedRange<Int>) throws {
        guard range.contains(value) else {
            throw ValidationError("\(flag) \(value): must be between \(range.lowerBound) and \(range.upperBound)")
        }
    }

    /// Thrown when a given number is NaN or infinite.
    static func finite(_ flag: String, _ value: Double?) throws {
        if let value, !value.isFinite { throw ValidationError("\(flag) \(value): must be a finite number") }
    }
}

extension Array where Element == String {
    /// The command line with every `--flag -N` written `--flag=-N`, so that a negative number after an
    /// option is read as its value (ArgumentParser takes any word starting with '-' for an option).
    /// A word is joined when the whole of it reads as a negative number (`-1`, `-0.5`, `-1e-3`, `-inf`).
    func joiningNegativeValues() -> [String] {
        var out: [String] = []
        var i = 0
        while i < count {
            let word = self[i]
            if word == "--" {
                out += self[i...]
                break
            }
            if word.hasPrefix("--"), !word.contains("="), i + 1 < count, self[i + 1].hasPrefix("-"),
                Double(self[i + 1]) != nil
            {
                out.append(word + "=" + self[i + 1])
                i += 2
                continue
            }
            out.append(word)
            i += 1
        }
        return out
    }
}
