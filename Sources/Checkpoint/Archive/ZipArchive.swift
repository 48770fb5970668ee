import CZip
import Synchronization
import Tensors

/// A zip archive read through libzip from bytes in memory (a mapped file).
///
/// libzip checks the central directory against the local headers (`ZIP_CHECKCONS`), decompresses
/// deflated entries and verifies every entry's CRC-32 as it reads it. One `zip_t` is not thread-safe,
/// so reads are serialised through a mutex.
public final class ZipArchive: @unchecked Sendable {
    public struct Entry: Sendable {
        public let name: String
        public let index: UInt64
        /// Uncompressed size.
        public let size: Int
        public let compressedSize: Int
        /// 0 stored, 8 deflated, others as the zip spec numbers them.
        public let method: UInt16
        public let crc: UInt32
    }

    public let entries: [Entry]
    private let byName: [String: Int]
    private let za: OpaquePointer
    private let lock = Mutex<Void>(())
    /// Keeps the bytes alive while libzip points into them.
    private let owner: any ByteSource

    /// True when `bytes` starts with a local-file or empty-archive signature.
    public static func looksLikeZip(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= 4, bytes[0] == 0x50, bytes[1] == 0x4B else { return false }
        return (bytes[2] == 3 && bytes[3] == 4) || (bytes[2] == 5 && bytes[3] == 6)
    }

    /// Opens the archive in `source` (its bytes are loaded now).
    public init(_ source: any ByteSource) throws {
        owner = source
        let bytes = try source.bytes()
        var error = zip_error_t()
        zip_error_init(&error)
        defer { zip_error_fini(&error) }
        guard let src = zip_source_buffer_create(bytes.baseAddress, zip_uint64_t(bytes.count), 0, &error) else {
            throw CheckpointError(.zip(String(cString: zip_error_strerror(&error))))
        }
        guard let za = zip_open_from_source(src, ZIP_RDONLY | ZIP_CHECKCONS, &error) else {
            zip_source_free(src)
            throw CheckpointError(.zip(String(cString: zip_error_strerror(&error))))
        }
        let n = zip_get_num_entries(za, 0)
        var list: [Entry] = []
        var index: [String: Int] = [:]
        for i in 0..<UInt64(max(n, 0)) {
            var st = zip_stat_t()
            zip_stat_init(&st)
            guard zip_stat_index(za, i, 0, &st) == 0, let cname = st.name else {
                let message = String(cString: zip_strerror(za))
                zip_discard(za)
                throw CheckpointError(.zip("entry \(i): \(message)"))
            }
            guard st.size <= UInt64(Int.max), st.comp_size <= UInt64(Int.max) else {
                zip_discard(za)
                throw CheckpointError(.zip("entry \(i) declares a size above 2^63"))
            }
            let name = String(cString: cname)
            guard index[name] == nil else {
                zip_discard(za)
                throw CheckpointError(.malformedArchive("two zip entries are named '\(name)'"))
            }
            guard st.encryption_method == ZIP_EM_NONE else {
                zip_discard(za)
                throw CheckpointError(.zip("entry '\(name)' is encrypted"))
            }
            index[name] = list.count
            list.append(Entry(name: name, index: i, size: Int(st.size), compressedSize: Int(st.comp_size),
                              method: st.comp_method, crc: st.crc))
        }
        entries = list
        byName = index
        self.za = za
    }

    deinit {
        zip_discard(za)
    }

    public func entry(named name: String) -> Entry? {
        byName[name].map { entries[$0] }
    }

    /// The entry's uncompressed bytes, CRC-checked.
    public func read(_ entry: Entry) throws -> OwnedBytes {
        let out = OwnedBytes(uninitializedCount: entry.size)
        try lock.withLock { _ in
            guard let f = zip_fopen_index(za, entry.index, 0) else {
                throw CheckpointError(.zip(String(cString: zip_strerror(za))), part: entry.name)
            }
            defer { zip_fclose(f) }
            var done = 0
            while done < entry.size {
                let n = zip_fread(f, out.pointer + done, zip_uint64_t(entry.size - done))
                if n < 0 { throw CheckpointError(.zip(String(cString: zip_file_strerror(f))), part: entry.name, offset: done) }
                if n == 0 { break }
                done += Int(n)
            }
            guard done == entry.size else {
                throw CheckpointError(.truncated(needed: entry.size - done, available: 0), part: entry.name, offset: done)
            }
            // Reading one byte more makes libzip compare the CRC (it checks at end of data).
            var extra: UInt8 = 0
            let tail = zip_fread(f, &extra, 1)
            if tail < 0 { throw CheckpointError(.zip(String(cString: zip_file_strerror(f))), part: entry.name, offset: done) }
            if tail > 0 { throw CheckpointError(.malformedArchive("entry has more data than its declared size"), part: entry.name) }
        }
        return out
    }
}

/// An entry read through the archive on first use.
final class ZipEntrySource: ByteSource {
    let archive: ZipArchive
    let entry: ZipArchive.Entry
    private let loaded = Mutex<OwnedBytes?>(nil)
    var count: Int { entry.size }

    init(_ archive: ZipArchive, _ entry: ZipArchive.Entry) {
        self.archive = archive
        self.entry = entry
    }

    func bytes() throws -> UnsafeRawBufferPointer {
        try loaded.withLock { cached in
            if let cached { return try cached.bytes() }
            let b = try archive.read(entry)
            cached = b
            return try b.bytes()
        }
    }
}
