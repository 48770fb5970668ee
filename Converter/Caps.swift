import ArgumentParser
import Checkpoint

/// `--cap NAME=VALUE`: the resource caps of `LoadOptions`, for a file that is large but trusted.
struct CapOptions: ParsableArguments {
    @Option(name: .customLong("cap"), help: ArgumentHelp(
        "Change a resource cap, NAME=VALUE (repeatable): \(CheckpointLimit.allCases.map(\.rawValue).joined(separator: ", ")).",
        valueName: "name=value"))
    var caps: [String] = []

    func loadOptions() throws -> LoadOptions {
        var options = LoadOptions()
        for spec in caps {
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let cap = CheckpointLimit(rawValue: parts[0]) else {
                throw ValidationError("--cap \(spec): the name must be one of \(CheckpointLimit.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            guard let value = Int(parts[1].replacingOccurrences(of: "_", with: "")), value >= 0 else {
                throw ValidationError("--cap \(spec): the value must be a non-negative integer")
            }
            options.set(cap, to: value)
        }
        return options
    }
}
