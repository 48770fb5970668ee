import Tensors

#if canImport(Glibc)
    import Glibc
#endif

/// A whole file mapped read-only. Storages of tar and legacy checkpoints point into it without copying.
public final class MappedFile: ByteSource, @unchecked Sendable {
    public let path: String
    public let count: Int
    private let base: UnsafeMutableRawPointer?

    /// Maps `path`. Throws `.io` naming the path and the system's reason.
    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw CheckpointError(.io("cannot open: \(String(cString: strerror(errno)))"), file: path)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else {
            throw CheckpointError(.io("cannot stat: \(String(cString: strerror(errno)))"), file: path)
        }
        guard (st.st_mode & S_IFMT) == S_IFREG else {
            throw CheckpointError(.io("not a regular file"), file: path)
        }
        count = Int(st.st_size)
        if count == 0 {
            base = nil
            return
        }
        let p = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let p, p != MAP_FAILED else {
            throw CheckpointError(.io("cannot map: \(String(cString: strerror(errno)))"), file: path)
        }
        base = p
    }

    public func bytes() throws -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: base, count: count)
    }

    /// Asks the kernel to read the range ahead (used before touching many storages).
    public func willNeed(offset: Int = 0, count: Int? = nil) {
        guard let base else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = offset / page * page
        let end = min(self.count, offset + (count ?? self.count - offset))
        guard end > start else { return }
        _ = madvise(base + start, end - start, MADV_WILLNEED)
    }

    deinit {
        if let base { munmap(base, count) }
    }
}
