import Checkpoint
import Foundation
import Tensors
import Testing

/// The built `pth2swt` executable, run as a user runs it: separate processes, real signals, pipes.
enum Tool {
    /// The directory holding the test bundle and the built executables.
    static var productsDirectory: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }

    /// The binary beside the tests, or PTH2SWT_TOOL (to run these tests against another build, e.g. an
    /// older commit's, to see that a regression test fails there).
    static var path: String {
        ProcessInfo.processInfo.environment["PTH2SWT_TOOL"] ?? productsDirectory.appendingPathComponent("pth2swt").path
    }

    static var available: Bool { FileManager.default.isExecutableFile(atPath: path) }

    static let skipReason: Comment = "the pth2swt executable is not built beside the tests (swift build first)"

    /// How a run ended.
    struct Outcome {
        var status: Int32
        /// True when the process died by a signal (`status` is then the signal's number).
        var signalled: Bool
        var stdout: String
        var stderr: String
        var description: String {
            (signalled ? "killed by signal \(status)" : "exit \(status)") + "\nstdout: \(stdout)\nstderr: \(stderr)"
        }
    }

    /// Runs the tool to the end with a deadline (a hang fails the caller instead of the suite).
    static func run(_ arguments: [String], timeout: Double = 120) throws -> Outcome {
        try run(program: path, arguments, timeout: timeout)
    }

    /// Runs another program (mpirun) the same way.
    static func run(program: String, _ arguments: [String], timeout: Double = 120) throws -> Outcome {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: program)
        p.arguments = arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let deadline = Date().addingTimeInterval(timeout)
        // Read both pipes to the end (a full pipe would block the child).
        let group = DispatchGroup()
        nonisolated(unsafe) var o = Data(), e = Data()
        DispatchQueue.global().async(group: group) { o = out.fileHandleForReading.readDataToEndOfFile() }
        DispatchQueue.global().async(group: group) { e = err.fileHandleForReading.readDataToEndOfFile() }
        while p.isRunning && Date() < deadline { usleep(2_000) }
        if p.isRunning {
            p.terminate()
            p.waitUntilExit()
            group.wait()
            throw ToolTimeout(arguments: arguments, seconds: timeout)
        }
        p.waitUntilExit()
        group.wait()
        return Outcome(
            status: p.terminationStatus, signalled: p.terminationReason == .uncaughtSignal,
            stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    struct ToolTimeout: Error, CustomStringConvertible {
        var arguments: [String]
        var seconds: Double
        var description: String { "pth2swt \(arguments.joined(separator: " ")) ran past \(seconds) s" }
    }
}

/// A scratch directory per test, removed afterwards.
final class Scratch {
    let path: String
    init(_ name: String) throws {
        path = NSTemporaryDirectory() + "pth2swt-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
    func file(_ name: String) -> String { path + "/" + name }
    /// Every file in the directory, hidden ones (a `.x.partial-PID`) included.
    var contents: [String] { ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted() }
}

enum Synthetic {
    /// A zip `.pth` of float32 tensors written by PTHWriter: a small first tensor, then `bigTensors`
    /// of `megabytesEach` MiB, filled with a deterministic pattern.
    static func checkpoint(at path: String, bigTensors: Int, megabytesEach: Int) throws {
        var sd = StateDict()
        var sizes = [256]
        sizes += Array(repeating: megabytesEach << 18, count: bigTensors)
        var x: UInt32 = 0x9E37_79B9
        for (i, count) in sizes.enumerated() {
            let bytes = OwnedBytes(uninitializedCount: count * 4)
            let p = bytes.pointer.bindMemory(to: UInt32.self, capacity: count)
            for k in 0..<count {
                x ^= x << 13
                x ^= x >> 17
                x ^= x << 5
                p[k] = (x & 0x3FFF_FFFF) | 0x3000_0000  // finite floats
            }
            let storage = try Storage(key: "\(i)", dtype: .float32, count: count, source: bytes)
            try sd.insert(try Tensor(storage: storage, shape: [count], strides: [1], storageOffset: 0), named: "t\(i)")
        }
        try PTHWriter.write(sd, to: path)
    }

    /// Flips one byte inside the data of the zip entry whose name ends with `/data/<entry>` (so its
    /// CRC-32 no longer matches the directory).
    static func corruptEntry(_ entry: Int, of path: String) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let name = Array("/data/\(entry)".utf8)
        var at = 0
        while at + 30 < bytes.count {
            if bytes[at] == 0x50 && bytes[at + 1] == 0x4B && bytes[at + 2] == 3 && bytes[at + 3] == 4 {
                let n = Int(bytes[at + 26]) | Int(bytes[at + 27]) << 8
                let e = Int(bytes[at + 28]) | Int(bytes[at + 29]) << 8
                if Array(bytes[(at + 30)..<(at + 30 + n)]).reversed().starts(with: name.reversed()) {
                    bytes[at + 30 + n + e + 100] ^= 0xFF
                    try Data(bytes).write(to: URL(fileURLWithPath: path))
                    return
                }
            }
            at += 1
        }
        Issue.record("no entry named */data/\(entry) in \(path)")
    }
}
