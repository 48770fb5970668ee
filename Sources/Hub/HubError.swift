import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Everything that can go wrong while resolving a name or fetching a file. The description is a
/// complete sentence for the user: it names the URL, status, path or hashes involved.
public enum HubError: Error, CustomStringConvertible, Sendable, Equatable {
    /// Thrown when a name is neither a file name, a file stem nor a model name of the registry.
    /// `known` lists the registry's model names with their file stems.
    case unknownModel(name: String, known: [String])
    /// Thrown when the server answers with an HTTP status the download cannot use (anything but 200,
    /// 206, and a 416 that means the partial file is already complete).
    case httpStatus(url: String, status: Int)
    /// Thrown when the transfer fails below HTTP (name resolution, refused or dropped connection,
    /// timeout) or ends before the announced length. `partial` is the partial file kept for resuming,
    /// with its size, when some bytes arrived.
    case network(url: String, message: String, partial: String?, partialBytes: Int64)
    /// Thrown when the downloaded file's SHA-256 does not start with the hash prefix of its file name.
    /// The partial file `deletedPartial` has been deleted; nothing was written to the final path.
    case hashMismatch(file: String, expected: String, actual: String, deletedPartial: String)
    /// Thrown when reading or writing a local file or directory fails.
    case io(path: String, message: String)
    /// Thrown when a URL is not http, https or file, or has no file name to save under.
    case unsupportedURL(String)

    public var description: String {
        switch self {
        case .unknownModel(let name, let known):
            return "unknown model or file '\(name)'; known: \(known.joined(separator: ", "))"
        case .httpStatus(let url, let status):
            let reason = HTTPURLResponse.localizedString(forStatusCode: status)
            return "HTTP \(status) (\(reason)) for \(url)"
        case .network(let url, let message, let partial, let partialBytes):
            let kept = partial.map { "; kept \(partialBytes) bytes in \($0), the next fetch resumes from there" } ?? ""
            return "download of \(url) failed: \(message)\(kept)"
        case .hashMismatch(let file, let expected, let actual, let deletedPartial):
            return
                "hash mismatch for \(file): expected a sha256 starting with \(expected), got \(actual); deleted the partial file \(deletedPartial)"
        case .io(let path, let message):
            return "\(path): \(message)"
        case .unsupportedURL(let url):
            return "unsupported URL '\(url)': need http://, https:// or file:// and a file name at the end of the path"
        }
    }
}
