import CChecksum
import Foundation

/// The hash prefix torch.hub checks for a file name, or nil when there is none.
///
/// Mirrors `torch.hub`: `HASH_REGEX = re.compile(r'-([a-f0-9]*)\.')`, `HASH_REGEX.search(filename)`,
/// group 1. The first `-` that is followed by lowercase hex digits and a `.` wins, so
/// `my-model-1a2b3c4d.pth` gives `1a2b3c4d` but `a-b1.c-d2.pth` gives `b1`. The prefix may be empty
/// (`x-.pth`); like torch's `digest[:0] == ''` it then matches every digest.
public func torchHubHashPrefix(_ fileName: String) -> String? {
    guard let match = fileName.firstMatch(of: /-([a-f0-9]*)\./) else { return nil }
    return String(match.output.1)
}

/// The lowercase hex SHA-256 of a file, read in 4 MiB chunks.
///
/// - Throws: ``HubError/io(path:message:)`` when the file cannot be opened or read.
public func sha256Hex(ofFile path: String) throws -> String {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { throw HubError.io(path: path, message: systemError()) }
    defer { close(fd) }
    guard let hasher = pth2swt_sha256_create() else {
        throw HubError.io(path: path, message: "cannot create a SHA-256 context")
    }
    var finished = false
    defer { if !finished { pth2swt_sha256_free(hasher) } }
    let chunk = 4 << 20
    let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
    defer { buffer.deallocate() }
    while true {
        let n = read(fd, buffer, chunk)
        if n < 0 {
            if errno == EINTR { continue }
            throw HubError.io(path: path, message: systemError())
        }
        if n == 0 { break }
        guard pth2swt_sha256_update(hasher, buffer, n) == 1 else {
            throw HubError.io(path: path, message: "SHA-256 update failed")
        }
    }
    var digest = [UInt8](repeating: 0, count: 32)
    finished = true
    guard pth2swt_sha256_finish(hasher, &digest) == 1 else {
        throw HubError.io(path: path, message: "SHA-256 finish failed")
    }
    return hex(digest)
}

/// Lowercase hex of some bytes.
func hex(_ bytes: [UInt8]) -> String {
    let digits = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for b in bytes {
        out.append(digits[Int(b >> 4)])
        out.append(digits[Int(b & 15)])
    }
    return String(decoding: out, as: UTF8.self)
}

/// `strerror(errno)`, for messages about local files.
func systemError(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}
