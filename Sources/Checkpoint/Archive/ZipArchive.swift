import CZip
import Checksums
import Synchronization
import Tensors

/// A zip archive read through libzip from bytes in memory (a mapped file).
///
/// libzip opens the archive, checks the central directory against the local headers
/// (`ZIP_CHECKCONS`), decompresses deflated entries and verifies their CRC-32. Stored entries (torch
/// writes every storage stored and 64-byte aligned) are not copied: `storedData(_:)` finds the data in
/// the mapping through the entry's local header, and the caller may check the CRC itself. One `zip_t`
/// is not thread-safe, so libzip reads are serialised through a mutex.
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
        /// For stored entries: where the data starts in the archive bytes.
        public internal(set) var dataOffset: Int?
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
            // libzip's own words for this one ("File already exists") would mislead.
            if zip_error_code_zip(&error) == ZIP_ER_EXISTS {
                throw CheckpointError(
                    .malformedArchive("two entries have the same name (which one is meant depends on the reader)"))
            }
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
            list.append(
                Entry(
                    name: name, index: i, size: Int(st.size), compressedSize: Int(st.comp_size),
                    method: st.comp_method, crc: st.crc))
        }
        do {
            try ZipArchive.locateStoredData(&list, in: bytes)
        } catch {
            zip_discard(za)
            throw error
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

    /// A stored entry's bytes, in place (no copy, no CRC check). Nil for compressed entries.
    public func storedData(_ entry: Entry) throws -> SliceSource? {
        guard entry.method == UInt16(ZIP_CM_STORE), let offset = entry.dataOffset else { return nil }
        return SliceSource(owner, offset: offset, count: entry.size)
    }

    /// Finds where each stored entry's data begins: the central directory gives the local header's
    /// offset (zip64 aware), the local header gives the lengths that precede the data. Every number is
    /// checked against the archive's size and against what libzip reported for the same entry.
    static func locateStoredData(_ entries: inout [Entry], in b: UnsafeRawBufferPointer) throws {
        guard entries.contains(where: { $0.method == UInt16(ZIP_CM_STORE) }) else { return }
        func bad(_ what: String, _ at: Int) -> CheckpointError {
            CheckpointError(.malformedArchive("zip \(what)"), offset: at)
        }
        // End of central directory: the last signature within 64 KiB + 22 of the end.
        var eocd = -1
        var i = b.count - 22
        while i >= max(0, b.count - 22 - 65_535) {
            if b.loadUnaligned(fromByteOffset: i, as: UInt32.self) == 0x0605_4B50 {
                eocd = i
                break
            }
            i -= 1
        }
        guard eocd >= 0 else { throw bad("end of central directory not found", b.count) }
        var r = ByteReader(b)
        r.position = eocd + 10
        var count = Int(try r.read(UInt16.self))
        _ = try r.read(UInt32.self)
        var cdOffset = Int(try r.read(UInt32.self))
        if cdOffset == 0xFFFF_FFFF || count == 0xFFFF, eocd >= 20,
            b.loadUnaligned(fromByteOffset: eocd - 20, as: UInt32.self) == 0x0706_4B50
        {
            r.position = eocd - 20 + 8
            let z64 = try r.read(UInt64.self)
            guard b.count >= 56, z64 <= UInt64(b.count - 56) else { throw bad("zip64 record offset \(z64)", eocd - 12) }
            r.position = Int(z64)
            guard try r.read(UInt32.self) == 0x0606_4B50 else { throw bad("zip64 end record signature", Int(z64)) }
            r.position = Int(z64) + 32
            count = Int(clamping: try r.read(UInt64.self))
            r.position = Int(z64) + 48
            cdOffset = Int(clamping: try r.read(UInt64.self))
        }
        guard count == entries.count else {
            throw bad("directory lists \(count) entries, libzip \(entries.count)", eocd)
        }
        guard cdOffset <= b.count else { throw bad("central directory offset \(cdOffset)", eocd) }
        r.position = cdOffset
        for k in entries.indices {
            let at = r.offset
            guard try r.read(UInt32.self) == 0x0201_4B50 else { throw bad("central directory signature", at) }
            try r.skip(6)
            let method = try r.read(UInt16.self)
            try r.skip(8)
            var compressed = UInt64(try r.read(UInt32.self))
            var size = UInt64(try r.read(UInt32.self))
            let nameLength = Int(try r.read(UInt16.self))
            let extraLength = Int(try r.read(UInt16.self))
            let commentLength = Int(try r.read(UInt16.self))
            try r.skip(8)
            var local = UInt64(try r.read(UInt32.self))
            let name = String(decoding: try r.read(count: nameLength), as: UTF8.self)
            var extra = ByteReader(try r.read(count: extraLength), part: nil, origin: r.offset - extraLength)
            try r.skip(commentLength)
            while extra.remaining >= 4 {
                let id = try extra.read(UInt16.self)
                let n = Int(try extra.read(UInt16.self))
                var field = ByteReader(try extra.read(count: n), origin: extra.offset - n)
                guard id == 0x0001 else { continue }  // zip64: only the fields whose 32-bit value is saturated
                if size == 0xFFFF_FFFF { size = try field.read(UInt64.self) }
                if compressed == 0xFFFF_FFFF { compressed = try field.read(UInt64.self) }
                if local == 0xFFFF_FFFF { local = try field.read(UInt64.self) }
            }
            let e = entries[k]
            guard name == e.name, method == e.method, size == UInt64(e.size), compressed == UInt64(e.compressedSize)
            else {
                throw bad("central directory record for '\(name)' disagrees with libzip", at)
            }
            guard method == UInt16(ZIP_CM_STORE) else { continue }
            guard size == compressed else {
                throw bad(
                    "stored entry '\(name)' declares \(compressed) bytes in the file but \(size) uncompressed", at)
            }
            guard b.count >= 30, local <= UInt64(b.count - 30) else {
                throw bad("local header offset \(local) of '\(name)'", at)
            }
            var lh = ByteReader(b)
            lh.position = Int(local)
            guard try lh.read(UInt32.self) == 0x0403_4B50 else {
                throw bad("local header signature of '\(name)'", Int(local))
            }
            lh.position = Int(local) + 26
            let localName = Int(try lh.read(UInt16.self))
            let localExtra = Int(try lh.read(UInt16.self))
            let start = Int(local) + 30 + localName + localExtra
            guard start <= b.count, e.size <= b.count - start else {
                throw CheckpointError(
                    .truncated(needed: e.size, available: max(0, b.count - start)), part: name, offset: 0)
            }
            entries[k].dataOffset = start
        }
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
                if n < 0 {
                    throw CheckpointError(.zip(String(cString: zip_file_strerror(f))), part: entry.name, offset: done)
                }
                if n == 0 { break }
                done += Int(n)
            }
            guard done == entry.size else {
                throw CheckpointError(
                    .truncated(needed: entry.size - done, available: 0), part: entry.name, offset: done)
            }
            // Reading one byte more makes libzip compare the CRC (it checks at end of data).
            var extra: UInt8 = 0
            let tail = zip_fread(f, &extra, 1)
            if tail < 0 {
                throw CheckpointError(.zip(String(cString: zip_file_strerror(f))), part: entry.name, offset: done)
            }
            if tail > 0 {
                throw CheckpointError(.malformedArchive("entry has more data than its declared size"), part: entry.name)
            }
        }
        return out
    }
}

/// An entry's bytes, produced on first use: stored entries point into the mapping (and have their CRC-32
/// checked once, unless the caller opted out), compressed ones are inflated by libzip.
final class ZipEntrySource: ByteSource {
    let archive: ZipArchive
    let entry: ZipArchive.Entry
    let verifyCRC: Bool
    /// The checkpoint's path, for errors thrown when the bytes are first asked for.
    let file: String?
    private let loaded = Mutex<(any ByteSource)?>(nil)
    var count: Int { entry.size }

    init(_ archive: ZipArchive, _ entry: ZipArchive.Entry, verifyCRC: Bool, file: String? = nil) {
        self.archive = archive
        self.entry = entry
        self.verifyCRC = verifyCRC
        self.file = file
    }

    func bytes() throws -> UnsafeRawBufferPointer {
        do {
            return try load()
        } catch let e as CheckpointError {
            throw file.map { e.inFile($0) } ?? e
        }
    }

    private func load() throws -> UnsafeRawBufferPointer {
        try loaded.withLock { cached in
            if let cached { return try cached.bytes() }
            let source: any ByteSource
            if let mapped = try archive.storedData(entry) {
                let data = try mapped.bytes()
                if verifyCRC {
                    let crc = Checksums.crc32(data)
                    guard crc == entry.crc else {
                        throw CheckpointError(
                            .malformedArchive(
                                "CRC-32 is \(hex(crc)) but the directory says \(hex(entry.crc)): the data is corrupt"),
                            part: entry.name)
                    }
                }
                source = mapped
            } else {
                source = try archive.read(entry)
            }
            cached = source
            return try source.bytes()
        }
    }
}

private func hex(_ v: UInt32) -> String {
    let h = String(v, radix: 16)
    return "0x" + String(repeating: "0", count: 8 - h.count) + h
}
