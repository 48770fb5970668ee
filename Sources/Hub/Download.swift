import Foundation

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// What to download, what to call it on disk, and which SHA-256 prefix it must have.
public struct FetchTarget: Sendable, Hashable {
    /// Where the bytes come from: http://, https:// or file://.
    public var url: URL
    /// The name in the download directory.
    public var fileName: String
    /// The SHA-256 prefix the file must have, or nil for no check.
    public var hashPrefix: String?

    public init(url: URL, fileName: String, hashPrefix: String?) {
        self.url = url
        self.fileName = fileName
        self.hashPrefix = hashPrefix
    }

    /// A registry file, optionally fetched from another URL (a mirror, a local server, a file:// copy);
    /// the file name and hash prefix stay the registry's.
    public init(_ file: WeightFile, url: URL? = nil) {
        self.init(url: url ?? file.url, fileName: file.fileName, hashPrefix: file.hashPrefix)
    }

    /// Any URL: the file name is its last path component and the hash prefix comes from that name the
    /// way torch.hub takes it (``torchHubHashPrefix(_:)``).
    ///
    /// - Throws: ``HubError/unsupportedURL(_:)`` when the scheme is not http, https or file, or the
    ///   path has no last component.
    public init(url: URL) throws {
        let name = url.lastPathComponent
        guard Downloader.schemes.contains(url.scheme?.lowercased() ?? ""), !name.isEmpty, name != "/" else {
            throw HubError.unsupportedURL(url.absoluteString)
        }
        self.init(url: url, fileName: name, hashPrefix: torchHubHashPrefix(name))
    }

    /// Whether a digest passes the check: it starts with the prefix, or there is no prefix.
    public func accepts(sha256 digest: String) -> Bool {
        hashPrefix.map { digest.hasPrefix($0) } ?? true
    }
}

/// How a fetch ended.
public struct FetchResult: Sendable, Hashable {
    /// `downloaded`: fetched from the start; `resumed`: continued from a partial file; `present`: the
    /// file was already there with a matching hash, nothing was requested.
    public enum Status: String, Sendable {
        case downloaded, resumed, present
    }

    public let target: FetchTarget
    /// The final path, `<directory>/<file name>`.
    public let path: String
    public let bytes: Int64
    /// The full lowercase hex SHA-256 of the file.
    public let sha256: String
    public let status: Status
}

/// A progress report, sent once when the transfer starts and after every chunk written.
public struct FetchProgress: Sendable, Hashable {
    /// Bytes in the partial file so far, including the ones a resume started from.
    public let bytes: Int64
    /// The complete file's size, when the server (or the source file) tells.
    public let total: Int64?
    /// The partial file's size when this transfer started (0 unless resuming).
    public let resumedFrom: Int64
}

/// Downloads files into a directory the way torch.hub's `download_url_to_file(url, dst, hash_prefix)`
/// does, plus resuming: bytes go to `<file>.partial`, an existing partial file is continued with an
/// HTTP `Range: bytes=N-` request (a server that ignores it makes the download start over), the
/// finished file's SHA-256 must start with the target's hash prefix, and only then is the partial file
/// renamed into place. A mismatch deletes the partial file.
///
/// Every call is synchronous: it blocks the calling thread until the file is in place or an error is
/// thrown. The progress handler runs on a URLSession delegate thread (on the calling thread for
/// file:// URLs).
public struct Downloader: Sendable {
    static let schemes: Set<String> = ["http", "https", "file"]

    /// Seconds without any data before an HTTP transfer fails.
    public var timeout: TimeInterval
    /// Sent as `User-Agent`.
    public var userAgent: String

    public init(timeout: TimeInterval = 60, userAgent: String = "pth2swt-hub") {
        self.timeout = timeout
        self.userAgent = userAgent
    }

    /// Fetches `target` into `directory` (created if missing).
    ///
    /// If the final file already exists it is hashed first: when it passes the check the result is
    /// `present` and nothing is requested; when it does not, it is downloaded again and replaced once
    /// the new file passes. `force` skips that check and discards any partial file, so the download
    /// starts from zero.
    ///
    /// - Throws: ``HubError``: `httpStatus` and `network` (the partial file is kept for the next call),
    ///   `hashMismatch` (the partial file is deleted), `io`, `unsupportedURL`.
    public func fetch(
        _ target: FetchTarget, into directory: String, force: Bool = false,
        progress: (@Sendable (FetchProgress) -> Void)? = nil
    ) throws -> FetchResult {
        try makeDirectories(directory)
        let path = directory.hasSuffix("/") ? directory + target.fileName : directory + "/" + target.fileName
        let partial = path + ".partial"

        if !force, let size = fileSize(path) {
            let digest = try sha256Hex(ofFile: path)
            if target.accepts(sha256: digest) {
                return FetchResult(target: target, path: path, bytes: size, sha256: digest, status: .present)
            }
        }
        if force { try removeFile(partial) }

        let resumed: Bool
        switch target.url.scheme?.lowercased() {
        case "http", "https":
            resumed = try HTTPTransfer.download(
                target.url, to: partial, timeout: timeout, userAgent: userAgent, progress: progress)
        case "file":
            resumed = try copyFile(target.url.path, to: partial, progress: progress)
        default:
            throw HubError.unsupportedURL(target.url.absoluteString)
        }

        let digest = try sha256Hex(ofFile: partial)
        guard target.accepts(sha256: digest) else {
            try removeFile(partial)
            throw HubError.hashMismatch(
                file: target.fileName, expected: target.hashPrefix ?? "",
                actual: digest, deletedPartial: partial)
        }
        guard rename(partial, path) == 0 else { throw HubError.io(path: path, message: systemError()) }
        return FetchResult(
            target: target, path: path, bytes: fileSize(path) ?? 0, sha256: digest,
            status: resumed ? .resumed : .downloaded)
    }

    /// Copies a local file into the partial file, continuing from the partial file's size when it is
    /// not larger than the source. Returns whether it resumed.
    private func copyFile(_ source: String, to partial: String, progress: (@Sendable (FetchProgress) -> Void)?) throws
        -> Bool
    {
        let input = open(source, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw HubError.io(path: source, message: systemError()) }
        defer { close(input) }
        var info = stat()
        guard fstat(input, &info) == 0 else { throw HubError.io(path: source, message: systemError()) }
        let total = Int64(info.st_size)
        var offset = fileSize(partial) ?? 0
        if offset > total { offset = 0 }
        let output = try openForWriting(partial, truncate: offset == 0)
        defer { close(output) }
        guard lseek(input, off_t(offset), SEEK_SET) == off_t(offset) else {
            throw HubError.io(path: source, message: systemError())
        }
        progress?(FetchProgress(bytes: offset, total: total, resumedFrom: offset))
        let chunk = 4 << 20
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: chunk, alignment: 64)
        defer { buffer.deallocate() }
        var done = offset
        while true {
            let n = read(input, buffer, chunk)
            if n < 0 {
                if errno == EINTR { continue }
                throw HubError.io(path: source, message: systemError())
            }
            if n == 0 { break }
            try writeAll(output, UnsafeRawBufferPointer(start: buffer, count: n), path: partial)
            done += Int64(n)
            progress?(FetchProgress(bytes: done, total: total, resumedFrom: offset))
        }
        return offset > 0
    }
}

// MARK: - Local files

/// The size of a regular file, or nil when there is none at `path`.
func fileSize(_ path: String) -> Int64? {
    var info = stat()
    guard stat(path, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { return nil }
    return Int64(info.st_size)
}

/// Deletes a file if it exists.
func removeFile(_ path: String) throws {
    if unlink(path) != 0, errno != ENOENT { throw HubError.io(path: path, message: systemError()) }
}

/// `mkdir -p`.
func makeDirectories(_ path: String) throws {
    var info = stat()
    if stat(path, &info) == 0 {
        guard (info.st_mode & S_IFMT) == S_IFDIR else { throw HubError.io(path: path, message: "not a directory") }
        return
    }
    // The parent, by hand: NSString.deletingLastPathComponent traps on some short relative paths
    // ("W") in release builds of swift-corelibs-foundation 6.3.
    var trimmed = Substring(path)
    while trimmed.count > 1, trimmed.hasSuffix("/") { trimmed = trimmed.dropLast() }
    if let slash = trimmed.lastIndex(of: "/") {
        let parent = slash == trimmed.startIndex ? "/" : String(trimmed[..<slash])
        if parent != path { try makeDirectories(parent) }
    }
    if mkdir(path, 0o755) != 0, errno != EEXIST { throw HubError.io(path: path, message: systemError()) }
}

/// Opens a file for writing, created if missing, either emptied or appended to.
func openForWriting(_ path: String, truncate: Bool) throws -> Int32 {
    let fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (truncate ? O_TRUNC : O_APPEND), 0o644)
    guard fd >= 0 else { throw HubError.io(path: path, message: systemError()) }
    return fd
}

/// Writes every byte, retrying short writes.
func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
    var done = 0
    while done < bytes.count {
        let n = write(fd, bytes.baseAddress! + done, bytes.count - done)
        if n < 0 {
            if errno == EINTR { continue }
            throw HubError.io(path: path, message: systemError())
        }
        done += n
    }
}
