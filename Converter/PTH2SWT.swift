import ArgumentParser
import Checkpoint
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
        subcommands: [Inspect.self, Convert.self, Verify.self, Predict.self, FineTune.self, Eval.self, Fetch.self, Bench.self]
    )
}

enum Version {
    static let string = "0.2.0"
}

/// Prints an error the way every subcommand does (plain, or JSON on stdout with `--json`) and exits 1.
func fail(_ error: any Error, json: Bool) -> ExitCode {
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
