import CChecksum

#if canImport(Glibc)
    import Glibc
#endif

/// Thrown when a file cannot be opened or read for hashing: the path and the system's reason.
public struct FileReadError: Error, Equatable, Sendable, CustomStringConvertible {
    public let path: String
    public let message: String
    public var description: String { "\(path): \(message)" }
}

/// CRC-32 and SHA-256 over `CChecksum`, and lowercase hex: the one Swift face of both, for the
/// checkpoint reader and writers, the downloader and the tests.
public enum Checksums {
    /// The zip CRC-32 of `data`, continuing from `crc` (0 to start).
    public static func crc32(_ data: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = data.baseAddress, data.count > 0 else { return crc }
        return pth2swt_crc32(crc, base, data.count)
    }

    /// SHA-256 of a buffer, as 64 lowercase hex digits.
    public static func sha256Hex(_ bytes: UnsafeRawBufferPointer) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        let ok = digest.withUnsafeMutableBufferPointer {
            pth2swt_sha256(bytes.baseAddress, bytes.count, $0.baseAddress)
        }
        precondition(ok == 1, "cannot allocate a SHA-256 context")
        return hex(digest)
    }

    /// SHA-256 of a whole file, read in 4 MiB pieces (not mapped: a caller that has the file mapped
    /// already would otherwise count its pages twice). `isCancelled` is asked before each piece; when
    /// it answers true the read stops and the error says "cancelled".
    public static func sha256Hex(
        file path: String, isCancelled: () -> Bool = { false }
    ) throws(FileReadError) -> String {
        func failure(_ message: String) -> FileReadError { FileReadError(path: path, message: message) }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("cannot open: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        guard let h = pth2swt_sha256_create() else { throw failure("cannot allocate a SHA-256 context") }
        var finished = false
        defer { if !finished { pth2swt_sha256_free(h) } }
        let chunk = 4 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        while true {
            if isCancelled() { throw failure("cancelled") }
            let n = read(fd, buffer, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw failure("cannot read: \(String(cString: strerror(errno)))")
            }
            if n == 0 { break }
            pth2swt_sha256_update(h, buffer, n)
        }
        var digest = [UInt8](repeating: 0, count: 32)
        finished = true
        pth2swt_sha256_finish(h, &digest)
        return hex(digest)
    }

    /// Lowercase hex, two digits per byte.
    public static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// SHA-256 fed piece by piece: a writer hashes what it writes as it goes.
public final class SHA256Hasher {
    private var context: OpaquePointer?

    public init() {
        context = pth2swt_sha256_create()
        precondition(context != nil, "cannot allocate a SHA-256 context")
    }

    deinit { if let context { pth2swt_sha256_free(context) } }

    /// Adds `bytes`. Calling it after `finish()` is a programming error.
    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard let context else { preconditionFailure("SHA256Hasher.update after finish") }
        guard let base = bytes.baseAddress, bytes.count > 0 else { return }
        pth2swt_sha256_update(context, base, bytes.count)
    }

    /// The digest of everything added, as 64 lowercase hex digits. Ends the hasher.
    public func finish() -> String {
        guard let context else { preconditionFailure("SHA256Hasher.finish twice") }
        var digest = [UInt8](repeating: 0, count: 32)
        pth2swt_sha256_finish(context, &digest)
        self.context = nil
        return Checksums.hex(digest)
    }
}
