import Checksums
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
    do throws(FileReadError) {
        return try Checksums.sha256Hex(file: path)
    } catch {
        throw HubError.io(path: path, message: error.message)
    }
}

/// `strerror(errno)`, for messages about local files.
func systemError(_ code: Int32 = errno) -> String {
    String(cString: strerror(code))
}
