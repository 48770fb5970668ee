import Checksums

/// Writes a zip archive of stored (uncompressed) entries whose data start on 64-byte boundaries, as
/// torch's PyTorchStreamWriter does: the padding is an extra field with id "FB". Zip64 records are added
/// when a size, an offset or the entry count needs them (or always, with `forceZip64`, for tests).
struct ZipWriter {
    struct Entry {
        var name: [UInt8]
        var crc: UInt32
        var size: Int
        var headerOffset: Int
    }

    let out: OutputFile
    let forceZip64: Bool
    private(set) var entries: [Entry] = []
    static let alignment = 64

    init(_ out: OutputFile, forceZip64: Bool = false) {
        self.out = out
        self.forceZip64 = forceZip64
    }

    /// Adds an entry whose data is written by `body` (exactly `size` bytes, CRC `crc`).
    mutating func add(_ name: String, size: Int, crc: UInt32, _ body: () throws -> Void) throws {
        let nameBytes = Array(name.utf8)
        let headerOffset = out.offset
        let zip64 = forceZip64 || size >= 0xFFFF_FFFF
        var extra: [UInt8] = []
        if zip64 {
            extra += le16(0x0001) + le16(16) + le64(UInt64(size)) + le64(UInt64(size))
        }
        // Pad so the data starts aligned; an extra field needs at least its 4-byte header.
        let unpadded = headerOffset + 30 + nameBytes.count + extra.count
        var pad = (Self.alignment - unpadded % Self.alignment) % Self.alignment
        if pad > 0 && pad < 4 { pad += Self.alignment }
        if pad > 0 {
            extra += le16(0x4246) + le16(UInt16(pad - 4)) + [UInt8](repeating: 0x5A, count: pad - 4)  // "FB", as torch
        }
        var h: [UInt8] = le32(0x0403_4B50)
        h += le16(zip64 ? 45 : 20) + le16(0) + le16(0)  // version, flags, method: stored
        h += le16(0) + le16(0x21)  // time 00:00, date 1980-01-01
        h += le32(crc)
        h += zip64 ? le32(0xFFFF_FFFF) + le32(0xFFFF_FFFF) : le32(UInt32(size)) + le32(UInt32(size))
        h += le16(UInt16(nameBytes.count)) + le16(UInt16(extra.count))
        h += nameBytes + extra
        try out.write(h)
        let start = out.offset
        try body()
        guard out.offset - start == size else {
            throw CheckpointError(.io("zip entry \(name) wrote \(out.offset - start) bytes, expected \(size)"))
        }
        entries.append(Entry(name: nameBytes, crc: crc, size: size, headerOffset: headerOffset))
    }

    mutating func add(_ name: String, bytes: [UInt8]) throws {
        let crc = bytes.withUnsafeBytes { Checksums.crc32($0) }
        let file = out
        try add(name, size: bytes.count, crc: crc) { try file.write(bytes) }
    }

    /// Writes the central directory and the end records.
    func finish() throws {
        let cdStart = out.offset
        for e in entries {
            let needSizes = forceZip64 || e.size >= 0xFFFF_FFFF
            let needOffset = forceZip64 || e.headerOffset >= 0xFFFF_FFFF
            var extra: [UInt8] = []
            if needSizes || needOffset {
                var body: [UInt8] = []
                if needSizes { body += le64(UInt64(e.size)) + le64(UInt64(e.size)) }
                if needOffset { body += le64(UInt64(e.headerOffset)) }
                extra = le16(0x0001) + le16(UInt16(body.count)) + body
            }
            var c: [UInt8] = le32(0x0201_4B50)
            c += le16(needSizes || needOffset ? 45 : 20) + le16(needSizes || needOffset ? 45 : 20)
            c += le16(0) + le16(0) + le16(0) + le16(0x21)
            c += le32(e.crc)
            c += needSizes ? le32(0xFFFF_FFFF) + le32(0xFFFF_FFFF) : le32(UInt32(e.size)) + le32(UInt32(e.size))
            c += le16(UInt16(e.name.count)) + le16(UInt16(extra.count)) + le16(0)  // comment length
            c += le16(0) + le16(0) + le32(0)  // disk, attributes
            c += needOffset ? le32(0xFFFF_FFFF) : le32(UInt32(e.headerOffset))
            c += e.name + extra
            try out.write(c)
        }
        let cdSize = out.offset - cdStart
        let zip64 = forceZip64 || entries.count >= 0xFFFF || cdStart >= 0xFFFF_FFFF || cdSize >= 0xFFFF_FFFF
        if zip64 {
            let recordStart = out.offset
            var r: [UInt8] = le32(0x0606_4B50) + le64(44)
            r += le16(45) + le16(45) + le32(0) + le32(0)
            r += le64(UInt64(entries.count)) + le64(UInt64(entries.count))
            r += le64(UInt64(cdSize)) + le64(UInt64(cdStart))
            r += le32(0x0706_4B50) + le32(0) + le64(UInt64(recordStart)) + le32(1)  // locator
            try out.write(r)
        }
        var end: [UInt8] = le32(0x0605_4B50) + le16(0) + le16(0)
        let count16 = zip64 ? UInt16(0xFFFF) : UInt16(entries.count)
        end += le16(count16) + le16(count16)
        end += zip64 ? le32(0xFFFF_FFFF) + le32(0xFFFF_FFFF) : le32(UInt32(cdSize)) + le32(UInt32(cdStart))
        end += le16(0)
        try out.write(end)
    }
}

private func le16(_ v: UInt16) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8)] }
private func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
private func le64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
