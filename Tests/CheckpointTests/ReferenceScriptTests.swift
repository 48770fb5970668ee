import Foundation
import Testing

/// Runs Tests/Reference/check_outputs.py (safetensors reads our .swt, torch.load(weights_only=True)
/// reads our .pth) when an interpreter with torch and safetensors is at hand: PTH2SWT_PYTHON, or
/// /usr/bin/python3 if it has both. CI has neither, so there this suite is skipped with the reason.
@Suite(.enabled(if: ReferenceScript.python != nil, ReferenceScript.skipReason))
struct ReferenceScriptTests {
    @Test func safetensorsAndTorchReadOurOutputs() throws {
        let exe = ReferenceScript.productsDirectory.appendingPathComponent("pth2swt").path
        #expect(FileManager.default.isExecutableFile(atPath: exe), "build the pth2swt executable first: \(exe)")
        let (status, output) = try ReferenceScript.run(
            ReferenceScript.python!,
            [Paths.root.appendingPathComponent("Tests/Reference/check_outputs.py").path, "--pth2swt", exe])
        #expect(status == 0, "check_outputs.py failed:\n\(output)")
        #expect(output.contains("files ok"), "\(output)")
    }

    /// Tests/Reference/check_kinds.py: the same for quantized, sparse, complex, meta and newer-dtype tensors.
    @Test func safetensorsAndTorchReadOurOutputsOfEveryTensorKind() throws {
        let exe = ReferenceScript.productsDirectory.appendingPathComponent("pth2swt").path
        #expect(FileManager.default.isExecutableFile(atPath: exe), "build the pth2swt executable first: \(exe)")
        let (status, output) = try ReferenceScript.run(
            ReferenceScript.python!,
            [Paths.root.appendingPathComponent("Tests/Reference/check_kinds.py").path, "--pth2swt", exe])
        #expect(status == 0, "check_kinds.py failed:\n\(output)")
        #expect(output.contains("7 files ok"), "\(output)")
    }
}

enum ReferenceScript {
    static let skipReason: Comment =
        "no Python with torch and safetensors (set PTH2SWT_PYTHON); Tests/Reference/check_outputs.py not run"

    /// The directory holding the test bundle and the built executables.
    static var productsDirectory: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }

    static let python: String? = {
        var candidates: [String] = []
        if let p = ProcessInfo.processInfo.environment["PTH2SWT_PYTHON"] { candidates.append(p) }
        candidates.append("/usr/bin/python3")
        return candidates.first { p in
            FileManager.default.isExecutableFile(atPath: p)
                && (try? run(p, ["-c", "import torch, safetensors"]).status) == 0
        }
    }()

    static func run(_ exe: String, _ args: [String]) throws -> (status: Int32, output: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = pipe
        try p.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
