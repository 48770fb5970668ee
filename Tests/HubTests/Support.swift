import Checksums
import Foundation
import TestSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Deterministic pseudo-random bytes.
func testBytes(_ count: Int, seed: UInt64 = 0x9E37_79B9_7F4A_7C15) -> [UInt8] {
    var g = TestRandom(seed: seed)
    return g.bytes(count)
}

/// The lowercase hex SHA-256 of some bytes, through the one-shot call.
func sha256(_ bytes: [UInt8]) -> String { bytes.withUnsafeBytes { Checksums.sha256Hex($0) } }

/// A fresh directory under the system temp directory, removed by `remove()`.
struct TemporaryDirectory {
    let path: String

    init() {
        var template = Array((NSTemporaryDirectory() + "/hubtests.XXXXXX").utf8CString)
        let made = template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }
        precondition(made != nil, "mkdtemp failed")
        path = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func file(_ name: String) -> String { path + "/" + name }

    func remove() {
        try? FileManager.default.removeItem(atPath: path)
    }
}

func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

func contents(_ path: String) -> [UInt8]? { FileManager.default.contents(atPath: path).map { [UInt8]($0) } }

func write(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Collects progress reports from the delegate thread.
final class ProgressLog: @unchecked Sendable {
    private let lock = NSLock()
    private var reports: [(bytes: Int64, total: Int64?, resumedFrom: Int64)] = []

    func record(bytes: Int64, total: Int64?, resumedFrom: Int64) {
        lock.lock()
        reports.append((bytes, total, resumedFrom))
        lock.unlock()
    }

    var all: [(bytes: Int64, total: Int64?, resumedFrom: Int64)] {
        lock.lock()
        defer { lock.unlock() }
        return reports
    }
}
