import Lifetime

#if canImport(Glibc)
    import Glibc
#endif

/// A file written through a temporary sibling and renamed into place by `commit()`, so a failed or
/// interrupted conversion never leaves a half-written output: the temporary file is removed when the
/// object is released uncommitted (an error, or `Interrupted`, unwinding), and by the signal handler
/// if the process is ended before that (`TemporaryFileRegistration`). Small writes are buffered; large ones
/// go straight from the caller's memory (a mapped checkpoint) to the kernel.
final class OutputFile {
    let path: String
    let temporaryPath: String
    private var fd: Int32
    private var buffer: [UInt8] = []
    private let bufferLimit = 1 << 20
    /// Bytes written so far (buffered ones included): the offset of the next byte.
    private(set) var offset = 0
    private var committed = false
    private let registration: TemporaryFileRegistration

    /// Creates `.<name>.partial-<pid>` beside `path`. Thrown (`.io`) when it cannot be created. When
    /// `path` already exists, the new file gets its permission bits (a replaced output keeps its mode).
    init(path: String) throws {
        self.path = path
        temporaryPath = Self.hiddenSibling(of: path, suffix: ".partial-\(getpid())").path
        registration = TemporaryFileRegistration(path: temporaryPath)
        fd = open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            registration.end()
            throw CheckpointError(
                .io("cannot create \(temporaryPath): \(String(cString: strerror(errno)))"), file: path)
        }
        buffer.reserveCapacity(bufferLimit)
        var existing = stat()
        if stat(path, &existing) == 0, (existing.st_mode & S_IFMT) == S_IFREG {
            _ = fchmod(fd, existing.st_mode & 0o7777)
        }
    }

    /// `.<name><suffix>` in `path`'s directory, and that directory as written in `path` ("" for none).
    static func hiddenSibling(of path: String, suffix: String) -> (path: String, directory: String) {
        let slash = path.lastIndex(of: "/")
        let dir = slash.map { String(path[...$0]) } ?? ""
        let base = slash.map { String(path[path.index(after: $0)...]) } ?? path
        return ("\(dir).\(base)\(suffix)", dir)
    }

    deinit {
        if !committed {
            if fd >= 0 { close(fd) }
            unlink(temporaryPath)
        }
        registration.end()
    }

    func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0) }
    }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count > 0 else { return }
        if bytes.count < bufferLimit / 4 {
            buffer.append(contentsOf: bytes)
            offset += bytes.count
            if buffer.count >= bufferLimit { try flush() }
            return
        }
        try flush()
        try writeAll(bytes)
        offset += bytes.count
    }

    func zeros(_ count: Int) throws {
        guard count > 0 else { return }
        try write([UInt8](repeating: 0, count: count))
    }

    private func flush() throws {
        guard !buffer.isEmpty else { return }
        try buffer.withUnsafeBytes { try writeAll($0) }
        buffer.removeAll(keepingCapacity: true)
    }

    private func writeAll(_ bytes: UnsafeRawBufferPointer) throws {
        var done = 0
        while done < bytes.count {
            let n = Glibc.write(fd, bytes.baseAddress! + done, min(bytes.count - done, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw CheckpointError(
                    .io("cannot write \(temporaryPath): \(String(cString: strerror(errno)))"), file: path)
            }
            done += n
        }
    }

    /// Overwrites bytes already written at `offset` (the file is flushed first).
    func patch(at position: Int, _ bytes: [UInt8]) throws {
        precondition(position >= 0 && position + bytes.count <= offset, "patch outside the written bytes")
        try flush()
        let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(position)) }
        guard n == bytes.count else {
            throw CheckpointError(.io("cannot write \(temporaryPath): \(String(cString: strerror(errno)))"), file: path)
        }
    }

    /// Flushes, closes and renames the temporary file to `path`.
    func commit() throws {
        try flush()
        guard close(fd) == 0 else {
            fd = -1
            throw CheckpointError(.io("cannot close \(temporaryPath): \(String(cString: strerror(errno)))"), file: path)
        }
        fd = -1
        guard rename(temporaryPath, path) == 0 else {
            throw CheckpointError(
                .io("cannot rename \(temporaryPath) to \(path): \(String(cString: strerror(errno)))"), file: path)
        }
        committed = true
        registration.end()
    }
}

/// How far a writer has got: bytes of tensor data written and the total to write.
public typealias WriteProgress = (_ done: Int, _ total: Int) -> Void
