import ArgumentParser
import Checkpoint
import Distributed
import Kernels
import Lifetime
import Tensors

#if canImport(Glibc)
    import Glibc
#endif

@main
struct PTH2SWT: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pth2swt",
        abstract: "Read PyTorch checkpoints (tar, legacy, zip) without Python.",
        discussion: """
            Reads every on-disk format torch.save has written: PyTorch 0.1's tar (torchvision's \
            resnet18-5c106cde.pth), the legacy stacked pickles (0.1.10–1.5) and zip (1.6+). Pickles are \
            untrusted input: only the globals torch's weights_only unpickler allows are accepted.
            """,
        version: Version.string,
        subcommands: [
            Inspect.self, Convert.self, Verify.self, Predict.self, FineTune.self, Eval.self, Fetch.self, Bench.self,
        ]
    )

    /// ArgumentParser's main, inside the process's lifetime rules:
    /// - stdout is line-buffered, so progress and epoch lines reach a file or pipe as they happen;
    /// - SIGINT/SIGTERM are handled (`Interruption`): commands that check for them (`Cooperative`)
    ///   unwind, removing temporary files and joining their threads, and exit 130/143; the others end
    ///   at once with the same codes, their temporary files removed by the handler;
    /// - the kernels' worker threads are stopped and joined before the process exits, on every path.
    static func main() {
        StandardOutput.lineBuffered()
        Interruption.installHandlers()
        if let warning = ISA.environmentWarning {
            var err = StandardError()
            print("pth2swt: warning: \(warning)", to: &err)
        }
        let outcome: (any Error)?
        var commandType: any ParsableCommand.Type = PTH2SWT.self
        var parsed = false
        do {
            var command = try parseAsRoot(Array(CommandLine.arguments.dropFirst()).joiningNegativeValues())
            commandType = type(of: command)
            // `SUBCOMMAND --help` parses to ArgumentParser's own help command, which prints the help when
            // run: one of parsing's answers, printed by rank 0 alone.
            parsed = ([PTH2SWT.self] + configuration.subcommands).contains { $0 == commandType }
            if command is Cooperative {
                try Interruption.cooperating { try command.run() }
            } else {
                try command.run()
            }
            outcome = nil
        } catch {
            outcome = error
        }
        Parallel.shutdown()
        guard let error = outcome else { Glibc.exit(0) }
        // The flags are the same on every rank of a job, and so is what parsing them says (an error, the
        // usage, --help, --version): rank 0 alone prints it; the others exit with the same status.
        if !parsed, let launch = Launch.fromEnvironment(), launch.rank != 0 {
            Glibc.exit(commandType.exitCode(for: error).rawValue)
        }
        // `Interrupted` thrown past a command's own error handling: the same message and status as there.
        // A ValidationError thrown while running prints the usage of the command that threw it.
        commandType.exit(withError: (error as? Interrupted).map { fail($0, json: false) } ?? error)
    }
}

/// An error found while a command runs (not in its flags): printed as `error: …` with status 1, or as
/// JSON with `--json`, never with the usage text.
struct CommandError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A command whose long loops call `Interruption.check()`, so a first Ctrl-C unwinds it cleanly.
protocol Cooperative {}

enum Version {
    static let string = "0.3.0"
}

/// Prints an error the way every subcommand does (plain, or JSON on stdout with `--json`) and exits 1,
/// or 128 + the signal's number for `Interrupted` (130 for SIGINT, 143 for SIGTERM).
func fail(_ error: any Error, json: Bool) -> ExitCode {
    if let i = error as? Interrupted {
        if json {
            print(JSON.object([("error", .string(i.description)), ("signal", .string(i.name))]).render())
        } else {
            var err = StandardError()
            print("pth2swt: \(i); no partial output was left", to: &err)
        }
        return ExitCode(i.exitCode)
    }
    let message = (error as? CheckpointError)?.description ?? "\(error)"
    if json {
        var fields: [(String, JSON)] = [("error", .string(message))]
        if let e = error as? CheckpointError {
            if let f = e.file { fields.append(("file", .string(f))) }
            if let p = e.part { fields.append(("part", .string(p))) }
            if let o = e.offset { fields.append(("offset", .int(o))) }
            if let t = e.tensor { fields.append(("tensor", .string(t))) }
            if case .limitExceeded(let cap, _, _) = e.kind { fields.append(("limit", .string(cap.qualifiedName))) }
        }
        print(JSON.object(fields).render())
    } else {
        var err = StandardError()
        print("error: \(message)", to: &err)
    }
    return ExitCode(1)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) {
        var bytes = Array(string.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
