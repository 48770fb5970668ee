import Checkpoint
import Foundation
import Tensors
import Testing

/// Every way out of `convert` and `finetune`: a thrown error while a background thread works, SIGINT at
/// several points, and a log read through a pipe while the run goes on.
@Suite(.enabled(if: Tool.available, Tool.skipReason), .serialized)
struct ExitPathTests {
    /// Regression: a zip whose first data entry fails its CRC used to exit by SIGSEGV
    /// in about 4 runs in 10 on an AVX-512 Xeon: the error returned while the thread hashing the source
    /// for the .swt header was still inside libcrypto, and exit() tore libcrypto down under it. The hash
    /// now runs in a scope that cancels and joins it on the error path (and needs no library).
    @Test func corruptEntryFailsCleanlyEveryTime() throws {
        let dir = try Scratch("badcrc")
        let input = dir.file("bad.pth")
        try Synthetic.checkpoint(at: input, bigTensors: 6, megabytesEach: 8)
        try Synthetic.corruptEntry(0, of: input)
        var outcomes: [String: Int] = [:]
        for _ in 0..<30 {
            let r = try Tool.run(["convert", input, dir.file("out.swt"), "-q"])
            let key = r.signalled ? "signal \(r.status)" : "exit \(r.status)"
            outcomes[key, default: 0] += 1
            if r.signalled || r.status != 1 || !r.stderr.contains("CRC-32") {
                Issue.record("\(r.description)")
                break
            }
            #expect(dir.contents == ["bad.pth"], "left behind: \(dir.contents)")
        }
        #expect(outcomes == ["exit 1": 30], "\(outcomes)")
    }

    /// SIGINT (converting to .swt) and SIGTERM (to .pth) at several moments of a conversion: the process
    /// ends with 130 / 143 (or 0 if it had finished, or by the signal itself before its handlers were in
    /// place); never a temporary file; an output file only when it is whole (it reads back equal to the
    /// source).
    @Test func interruptedConvertLeavesNoPartialOutput() throws {
        let dir = try Scratch("sigint-convert")
        let input = dir.file("big.pth")
        try Synthetic.checkpoint(at: input, bigTensors: 12, megabytesEach: 8)
        let source = try Checkpoint(path: input).stateDict()
        var interruptedMidway: [Int32: Int] = [:]
        for delay in [0.0, 0.01, 0.03, 0.06, 0.1, 0.15, 0.2, 0.3, 0.5, 0.8] {
            for (target, signal) in [("out.swt", SIGINT), ("out.pth", SIGTERM)] {
                let out = dir.file(target)
                let p = Process()
                p.executableURL = URL(fileURLWithPath: Tool.path)
                p.arguments = ["convert", input, out, "-q"]
                p.standardOutput = FileHandle.nullDevice
                p.standardError = FileHandle.nullDevice
                try p.run()
                usleep(UInt32(delay * 1e6))
                kill(p.processIdentifier, signal)
                p.waitUntilExit()
                let status = p.terminationStatus
                let signalled = p.terminationReason == .uncaughtSignal
                let what = "delay \(delay) \(target): \(signalled ? "signal" : "exit") \(status)"
                #expect(
                    (signalled && status == signal) || (!signalled && (status == 0 || status == 128 + signal)),
                    "\(what)")
                #expect(dir.contents.allSatisfy { !$0.contains("partial") }, "\(what): \(dir.contents)")
                if FileManager.default.fileExists(atPath: out) {
                    let written = try Checkpoint(path: out).stateDict()
                    #expect(written.names == source.names, "\(what)")
                    for (name, t) in source.tensors {
                        #expect(try written[name]!.contiguousBytes() == t.contiguousBytes(), "\(what): \(name)")
                    }
                    try FileManager.default.removeItem(atPath: out)
                } else {
                    #expect(status == 128 + signal || signalled, "\(what): no output after a clean exit")
                    if status == 128 + signal && !signalled { interruptedMidway[signal, default: 0] += 1 }
                }
            }
        }
        // Not vacuous: some signals landed while the file was being written.
        #expect(
            interruptedMidway[SIGINT, default: 0] > 0 && interruptedMidway[SIGTERM, default: 0] > 0,
            "\(interruptedMidway)")
    }

    static let fashion = "/usr/share/datasets/fashion-mnist"

    /// `pth2swt finetune` on 16 Fashion-MNIST images from a seeded random resnet18, through layer3
    /// frozen, writing OUT and OUT's .resume.swt each epoch (a few seconds an epoch in a debug build).
    static func finetune(out: String, epochs: Int, threads: Int) -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Tool.path)
        p.arguments = [
            "finetune", "--data", fashion, "--classes", "2", "--per-class", "8",
            "--freeze", "through:layer3", "--epochs", String(epochs), "--batch-size", "4",
            "--threads", String(threads), "--no-augment", "--out", out,
        ]
        return p
    }

    /// finetune's epoch lines reach a pipe while the run goes on (stdout is line-buffered), and SIGINT
    /// after epoch 1's checkpoint ends the run with 130, leaving that checkpoint whole and nothing partial.
    @Test(
        .enabled(
            if: FileManager.default.fileExists(atPath: fashion + "/train-images-idx3-ubyte.gz"),
            "Fashion-MNIST is not installed (bash scripts/bootstrap.sh installs dataset-fashion-mnist)"))
    func finetuneLogStreamsAndSIGINTKeepsTheLastCheckpoint() throws {
        let dir = try Scratch("finetune")
        let out = dir.file("ft.swt"), resume = dir.file("ft.resume.swt")
        let p = Self.finetune(out: out, epochs: 6, threads: 1)
        let stdout = Pipe(), stderr = Pipe()
        p.standardOutput = stdout
        p.standardError = stderr
        try p.run()
        defer {
            if p.isRunning {
                p.terminate()
                p.waitUntilExit()
            }
        }

        // Read the pipe as it fills, until epoch 1's line is there.
        var text = ""
        let reader = stdout.fileHandleForReading
        let deadline = Date().addingTimeInterval(180)
        while !text.contains("epoch 1/6:") && Date() < deadline {
            let chunk = reader.availableData
            if chunk.isEmpty { break }  // end of file: the process is gone
            text += String(decoding: chunk, as: UTF8.self)
        }
        #expect(text.contains("epoch 1/6:"), "no epoch line while running:\n\(text)")
        #expect(p.isRunning, "epoch 1's line came only when the process ended")
        #expect(!text.contains("epoch 2/6:"), "epoch 2 had already ended:\n\(text)")

        // Wait for epoch 1's checkpoint to be in place, then interrupt.
        while !FileManager.default.fileExists(atPath: resume) && p.isRunning { usleep(10_000) }
        kill(p.processIdentifier, SIGINT)
        let rest = reader.readDataToEndOfFile()
        let errText = String(decoding: stderr.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        text += String(decoding: rest, as: UTF8.self)
        #expect(
            p.terminationReason == .exit && p.terminationStatus == 130,
            "status \(p.terminationStatus)\n\(text)\n\(errText)")
        #expect(errText.contains("interrupted by SIGINT"), "\(errText)")
        #expect(dir.contents.allSatisfy { !$0.contains("partial") }, "\(dir.contents)")

        // The checkpoint left is whole: it reads, and records the last epoch that finished.
        let ckpt = try Checkpoint(path: resume).stateDict()
        let epochs = text.split(separator: "\n").filter { $0.hasPrefix("epoch ") }.count
        #expect(epochs >= 1)
        guard case .int(let recorded)? = ckpt.values.first(where: { $0.name == "epoch" })?.value else {
            Issue.record("the resume file has no epoch value: \(ckpt.values.map(\.name))")
            return
        }
        // The saved epoch is the last whose line was printed, or the one before if the signal landed
        // while that epoch's files were being written; stderr names it.
        #expect(
            recorded >= 1 && (Int(recorded) == epochs || Int(recorded) == epochs - 1),
            "epoch \(recorded), \(epochs) lines")
        #expect(errText.contains("hold epoch \(recorded); --resume \(resume) continues"), "\(errText)")
        #expect(try Checkpoint(path: out).stateDict().count > 0)
    }

    /// SIGINT early in a finetune run (while the data loads or epoch 1 trains) and SIGTERM during epoch
    /// 2: exit 130 / 143, never a temporary file, and checkpoint files only for the epochs whose lines
    /// were printed, each readable.
    @Test(
        .enabled(
            if: FileManager.default.fileExists(atPath: fashion + "/train-images-idx3-ubyte.gz"),
            "Fashion-MNIST is not installed (bash scripts/bootstrap.sh installs dataset-fashion-mnist)"))
    func finetuneInterruptedAtOtherPoints() throws {
        for (delay, signal) in [(0.3, SIGINT), (1.5, SIGINT), (0.0, SIGTERM)] {
            let dir = try Scratch("finetune-points")
            let out = dir.file("ft.swt"), resume = dir.file("ft.resume.swt")
            let p = Self.finetune(out: out, epochs: 4, threads: 2)
            let stdout = Pipe()
            p.standardOutput = stdout
            p.standardError = FileHandle.nullDevice
            try p.run()
            if delay > 0 {
                usleep(UInt32(delay * 1e6))
            } else {
                // Into epoch 2: after epoch 1's checkpoint is in place.
                while !FileManager.default.fileExists(atPath: resume) && p.isRunning { usleep(5_000) }
            }
            kill(p.processIdentifier, signal)
            let text = String(decoding: stdout.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            let what = "signal \(signal) after \(delay) s"
            #expect(
                p.terminationReason == .exit && p.terminationStatus == 128 + signal,
                "\(what): status \(p.terminationStatus)\n\(text)")
            #expect(dir.contents.allSatisfy { !$0.contains("partial") }, "\(what): \(dir.contents)")
            let finished = text.split(separator: "\n").filter { $0.hasPrefix("epoch ") }.count
            // Whatever was written is whole (the model is written just before its resume file, so a
            // signal between the two leaves the model of that epoch alone).
            for file in [out, resume] where FileManager.default.fileExists(atPath: file) {
                #expect(finished >= 1, "\(what): \(file) without a finished epoch")
                #expect(try Checkpoint(path: file).stateDict().count > 0, "\(what): \(file)")
            }
        }
    }
}
