import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A run of bytes that a storage reads from: a window of a memory-mapped file, an entry that an archive
/// decompresses on first use, or memory we own.
///
/// Implementations load lazily and at most once. The pointer stays valid for the life of the source.
public protocol ByteSource: AnyObject, Sendable {
    /// The number of bytes `bytes()` returns.
    var count: Int { get }
    /// The bytes, little-endian per element. May do I/O on the first call.
    func bytes() throws -> UnsafeRawBufferPointer
}

/// Bytes in memory this process allocated (64-byte aligned) and frees on deinit.
public final class OwnedBytes: ByteSource, @unchecked Sendable {
    public let count: Int
    public let pointer: UnsafeMutableRawPointer

    /// Allocates `count` uninitialised bytes.
    public init(uninitializedCount count: Int) {
        precondition(count >= 0)
        self.count = count
        self.pointer = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1), alignment: 64)
    }

    public convenience init(copying source: UnsafeRawBufferPointer) {
        self.init(uninitializedCount: source.count)
        if let base = source.baseAddress, source.count > 0 {
            pointer.copyMemory(from: base, byteCount: source.count)
        }
    }

    public convenience init(_ bytes: [UInt8]) {
        self.init(uninitializedCount: bytes.count)
        bytes.withUnsafeBytes { if let b = $0.baseAddress { pointer.copyMemory(from: b, byteCount: $0.count) } }
    }

    public var mutableBytes: UnsafeMutableRawBufferPointer {
        UnsafeMutableRawBufferPointer(start: pointer, count: count)
    }

    public func bytes() throws -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: pointer, count: count)
    }

    deinit { pointer.deallocate() }
}

/// A window `[offset, offset + count)` of another source, e.g. one storage inside a mapped file.
public final class SliceSource: ByteSource {
    public let base: any ByteSource
    public let offset: Int
    public let count: Int

    /// The caller has checked that the window lies inside `base`.
    public init(_ base: any ByteSource, offset: Int, count: Int) {
        precondition(offset >= 0 && count >= 0 && offset <= base.count - count)
        self.base = base
        self.offset = offset
        self.count = count
    }

    public func bytes() throws -> UnsafeRawBufferPointer {
        let all = try base.bytes()
        return UnsafeRawBufferPointer(rebasing: all[offset..<(offset + count)])
    }
}

/// A big-endian source shown little-endian: each `itemSize`-byte element is reversed, once, on first use.
public final class ByteSwappedSource: ByteSource {
    public let base: any ByteSource
    public let itemSize: Int
    public var count: Int { base.count }
    private let swapped = Mutex<OwnedBytes?>(nil)

    public init(_ base: any ByteSource, itemSize: Int) {
        self.base = base
        self.itemSize = itemSize
    }

    public func bytes() throws -> UnsafeRawBufferPointer {
        try swapped.withLock { cached in
            if let cached { return try cached.bytes() }
            let input = try base.bytes()
            let out = OwnedBytes(uninitializedCount: input.count)
            let dst = out.mutableBytes
            let n = itemSize
            var i = 0
            while i + n <= input.count {
                for k in 0..<n { dst[i + k] = input[i + n - 1 - k] }
                i += n
            }
            while i < input.count {
                dst[i] = input[i]
                i += 1
            }  // a ragged tail cannot be a whole element
            cached = out
            return try out.bytes()
        }
    }
}

/// One typed, flat run of elements that tensors view.
///
/// A storage may itself be a window onto a larger `root` storage (the tar format's `storage_views`,
/// legacy `view_metadata`); tensors share memory exactly when their storages share a root.
public final class Storage: Sendable {
    /// The checkpoint's key for this storage (`"0"` in zip files, `"404999536"` in resnet18-5c106cde.pth).
    public let key: String
    public let dtype: DType
    /// Number of elements.
    public let count: Int
    public let source: any ByteSource
    /// The storage this one is a window of, and where the window starts (in elements), if any.
    public let root: Storage?
    public let rootOffset: Int
    /// Where the file says the storage lived when it was saved (`cpu`, `cuda:0`, …). Recorded only:
    /// every storage is read into host memory, as `torch.load(map_location='cpu')` does.
    public let location: String

    /// A root storage whose bytes are all of `source`. Throws when the byte count is not `count × itemSize`.
    public init(key: String, dtype: DType, count: Int, source: any ByteSource, location: String = "cpu") throws {
        guard count >= 0 else { throw TensorError.negativeSize(count) }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.itemSize)
        guard !overflow else { throw TensorError.elementCountOverflow([count, dtype.itemSize]) }
        guard bytes == source.count else {
            throw TensorError.storageSizeMismatch(key: key, expectedBytes: bytes, actualBytes: source.count)
        }
        self.key = key
        self.dtype = dtype
        self.count = count
        self.source = source
        self.root = nil
        self.rootOffset = 0
        self.location = location
    }

    /// A window of `count` elements of `root` starting at element `offset`, sharing its memory.
    public init(key: String, viewOf root: Storage, offset: Int, count: Int) throws {
        guard offset >= 0, count >= 0, offset <= root.count, count <= root.count - offset else {
            throw TensorError.storageViewOutOfRange(
                key: key, rootKey: root.key, offset: offset, count: count, rootCount: root.count)
        }
        let base = root.root ?? root
        self.key = key
        self.dtype = root.dtype
        self.count = count
        self.root = base
        self.location = base.location
        self.rootOffset = (root.root == nil ? 0 : root.rootOffset) + offset
        let size = root.dtype.itemSize
        self.source = SliceSource(root.source, offset: offset * size, count: count * size)
    }

    public var byteCount: Int { count * dtype.itemSize }

    /// The storage whose memory this one uses (itself when it is not a view).
    public var base: Storage { root ?? self }

    /// The raw little-endian bytes, loading them on first use.
    public func bytes() throws -> UnsafeRawBufferPointer { try source.bytes() }
}
