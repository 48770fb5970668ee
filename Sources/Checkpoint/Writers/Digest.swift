import CChecksum

#if canImport(Glibc)
import Glibc
#endif

/// SHA-256 of a buffer (OpenSSL; SHA-NI where the CPU has it), as 64 lowercase hex digits.
public func sha256Hex(_ bytes: UnsafeRawBufferPointer) -> String {
    var digest = [UInt8](repeating: 0, count: 32)
    let ok = digest.withUnsafeMutableBufferPointer { pth2swt_sha256(bytes.baseAddress, bytes.count, $0.baseAddress) }
    precondition(ok == 1, "libcrypto's SHA-256 failed")
    return hexDigits(digest)
}

/// SHA-256 of a whole file, read in 4 MiB pieces (not mapped: a converter that has the file mapped
/// already would otherwise count its pages twice).
public func sha256Hex(file path: String) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw CheckpointError(.io("cannot open: \(String(cString: strerror(errno)))"), file: path) }
    defer { close(fd) }
    guard let h = pth2swt_sha256_create() else { throw CheckpointError(.io("libcrypto cannot create a SHA-256 context"), file: path) }
    var buffer = [UInt8](repeating: 0, count: 4 << 20)
    while true {
        let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR { continue }
            pth2swt_sha256_free(h)
            throw CheckpointError(.io("cannot read: \(String(cString: strerror(errno)))"), file: path)
        }
        if n == 0 { break }
        _ = buffer.withUnsafeBytes { pth2swt_sha256_update(h, $0.baseAddress, n) }
    }
    var digest = [UInt8](repeating: 0, count: 32)
    let ok = digest.withUnsafeMutableBufferPointer { pth2swt_sha256_finish(h, $0.baseAddress) }
    guard ok == 1 else { throw CheckpointError(.io("libcrypto's SHA-256 failed"), file: path) }
    return hexDigits(digest)
}

func hexDigits(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}
