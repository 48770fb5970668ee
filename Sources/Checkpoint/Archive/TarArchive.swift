/// A POSIX tar archive read in place: ustar headers, PAX extended headers (`x`, `g`) and GNU long names
/// (`L`), as PyTorch 0.1's `tarfile.open(..., format=PAX_FORMAT)` wrote them.
///
/// Members are found by name. A member whose data runs past the end of the file is listed with the
/// bytes that are there (`available`), so a cut-off file can still be examined up to the cut; asking
/// for its data throws `.truncated`.
public struct TarArchive {
    public struct Member: Sendable {
        public let name: String
        /// Size the header declares.
        public let size: Int
        /// Absolute offset of the first data byte.
        public let dataOffset: Int
        /// Bytes present in the file (less than `size` when the file is cut off).
        public let available: Int
        /// Absolute offset of the member's header block.
        public let headerOffset: Int
        /// The header's type flag when the member is not a regular file ("2" a symbolic link, "1" a hard
        /// link, "5" a directory, …); nil for a regular file. Such a member has no data to read.
        public var special: (type: Character, target: String)? = nil
        public var isComplete: Bool { available == size }
    }

    public static let blockSize = 512
    public let file: UnsafeRawBufferPointer
    public private(set) var members: [Member] = []

    /// True when `bytes` starts with a ustar/gnu header whose checksum is right.
    public static func looksLikeTar(_ bytes: UnsafeRawBufferPointer) -> Bool {
        guard bytes.count >= blockSize else { return false }
        let magic = [UInt8](bytes[257..<262])
        guard magic == Array("ustar".utf8) else { return false }
        return (try? checksumMatches(UnsafeRawBufferPointer(rebasing: bytes[0..<blockSize]), at: 0)) == true
    }

    /// Reads every header. Throws on a corrupt header; a short last member is recorded, not thrown.
    public init(_ file: UnsafeRawBufferPointer) throws {
        self.file = file
        var offset = 0
        var pax: [String: String] = [:]
        var globalPax: [String: String] = [:]
        var longName: String?
        while offset + TarArchive.blockSize <= file.count {
            let header = UnsafeRawBufferPointer(rebasing: file[offset..<(offset + TarArchive.blockSize)])
            if header.allSatisfy({ $0 == 0 }) { break }  // end-of-archive marker
            guard try TarArchive.checksumMatches(header, at: offset) else {
                throw CheckpointError(.malformedArchive("tar header checksum does not match"), offset: offset)
            }
            let type = header[156]
            var name = TarArchive.string(header, 0, 100)
            let prefix = TarArchive.string(header, 345, 155)
            if !prefix.isEmpty { name = prefix + "/" + name }
            var size = try TarArchive.number(header, 124, 12, at: offset + 124)
            if let s = pax["size"] ?? globalPax["size"] {
                guard let v = Int(s), v >= 0 else {
                    throw CheckpointError(.malformedArchive("PAX size '\(s)' is not a size"), offset: offset)
                }
                size = v
            }
            let dataOffset = offset + TarArchive.blockSize
            let available = max(0, min(size, file.count - dataOffset))
            let data = UnsafeRawBufferPointer(rebasing: file[dataOffset..<(dataOffset + available)])
            switch type {
            case UInt8(ascii: "x"), UInt8(ascii: "g"):
                guard available == size else {
                    throw CheckpointError(
                        .truncated(needed: size - available, available: 0),
                        part: "tar PAX header", offset: offset)
                }
                let records = try TarArchive.paxRecords(data, at: dataOffset)
                if type == UInt8(ascii: "x") { pax = records } else { globalPax.merge(records) { $1 } }
            case UInt8(ascii: "L"):
                guard available == size else {
                    throw CheckpointError(
                        .truncated(needed: size - available, available: 0),
                        part: "tar long name", offset: offset)
                }
                longName = String(decoding: data.prefix(while: { $0 != 0 }), as: UTF8.self)
            default:
                if let p = pax["path"] ?? globalPax["path"] { name = p } else if let l = longName { name = l }
                guard isSafeEntryName(name) else { throw CheckpointError(.unsafeEntryName(name), offset: offset) }
                // tar readers disagree on which of two same-named members wins: refuse the ambiguity.
                guard !members.contains(where: { $0.name == name }) else {
                    throw CheckpointError(.malformedArchive("two tar members are named '\(name)'"), offset: offset)
                }
                var member = Member(
                    name: name, size: size, dataOffset: dataOffset, available: available, headerOffset: offset)
                // Regular files: '0', NUL (pre-POSIX) and '7' (contiguous). Links and the rest carry no data.
                if type != UInt8(ascii: "0") && type != 0 && type != UInt8(ascii: "7") {
                    member.special = (
                        Character(Unicode.Scalar(type)), pax["linkpath"] ?? TarArchive.string(header, 157, 100)
                    )
                }
                members.append(member)
                pax = [:]
                longName = nil
            }
            // Data is padded to whole blocks.
            let (padded, o1) = size.addingReportingOverflow(TarArchive.blockSize - 1)
            guard !o1 else {
                throw CheckpointError(.malformedArchive("tar member size \(size) overflows"), offset: offset)
            }
            let (next, o2) = dataOffset.addingReportingOverflow(padded / TarArchive.blockSize * TarArchive.blockSize)
            guard !o2 else {
                throw CheckpointError(.malformedArchive("tar member size \(size) overflows"), offset: offset)
            }
            offset = next
        }
        if offset < file.count, file.count - offset < TarArchive.blockSize {
            throw CheckpointError(
                .truncated(needed: TarArchive.blockSize - (file.count - offset), available: 0),
                part: "tar header", offset: offset)
        }
    }

    public func member(named name: String) throws -> Member {
        guard let m = members.first(where: { $0.name == name }) else {
            throw CheckpointError(
                .missingRecord("tar member '\(name)' (members: \(members.map(\.name).joined(separator: ", ")))"))
        }
        return m
    }

    /// The member's bytes, or `.truncated` when the file ends inside them. Thrown
    /// (`.malformedArchive`) for a link, directory or device member: links are never followed.
    public func data(of m: Member) throws -> UnsafeRawBufferPointer {
        try requireRegular(m)
        guard m.isComplete else {
            throw CheckpointError(
                .truncated(needed: m.size - m.available, available: 0),
                part: "tar member '\(m.name)'", offset: m.available)
        }
        return UnsafeRawBufferPointer(rebasing: file[m.dataOffset..<(m.dataOffset + m.size)])
    }

    /// The bytes of the member that are present, even when it is cut off. Thrown (`.malformedArchive`)
    /// for a member that is not a regular file, as `data(of:)`.
    public func availableData(of m: Member) throws -> UnsafeRawBufferPointer {
        try requireRegular(m)
        return UnsafeRawBufferPointer(rebasing: file[m.dataOffset..<(m.dataOffset + m.available)])
    }

    /// Thrown (`.malformedArchive`) for a link, directory or device member: links are never followed.
    func requireRegular(_ m: Member) throws {
        if let (type, target) = m.special {
            let what =
                switch type {
                case "2": "a symbolic link to '\(target)'"
                case "1": "a hard link to '\(target)'"
                case "5": "a directory"
                default: "not a regular file (type '\(type)')"
                }
            throw CheckpointError(
                .malformedArchive(
                    "tar member '\(m.name)' is \(what); links are not followed and only regular files hold data"),
                part: "tar member '\(m.name)'", offset: m.headerOffset)
        }
    }

    // MARK: - Header fields

    static func checksumMatches(_ header: UnsafeRawBufferPointer, at offset: Int) throws -> Bool {
        let stored = try number(header, 148, 8, at: offset + 148)
        var unsigned = 0
        for (i, b) in header.enumerated() { unsigned += (148..<156).contains(i) ? 0x20 : Int(b) }
        return stored == unsigned
    }

    static func string(_ h: UnsafeRawBufferPointer, _ start: Int, _ length: Int) -> String {
        let field = h[start..<(start + length)]
        return String(decoding: field.prefix(while: { $0 != 0 }), as: UTF8.self)
    }

    /// An octal field (NUL/space padded) or GNU base-256 (high bit set).
    static func number(_ h: UnsafeRawBufferPointer, _ start: Int, _ length: Int, at offset: Int) throws -> Int {
        let field = Array(h[start..<(start + length)])
        if let first = field.first, first & 0x80 != 0 {
            guard first == 0x80 else {
                throw CheckpointError(.malformedArchive("negative base-256 tar number"), offset: offset)
            }
            var v = 0
            for b in field.dropFirst() {
                guard v <= (Int.max >> 8) else {
                    throw CheckpointError(.malformedArchive("tar number overflows"), offset: offset)
                }
                v = v << 8 | Int(b)
            }
            return v
        }
        var v = 0
        var seenDigit = false
        for b in field {
            if b == 0 || b == 0x20 { if seenDigit { break } else { continue } }
            guard (0x30...0x37).contains(b) else {
                throw CheckpointError(
                    .malformedArchive("tar number field has byte 0x\(String(b, radix: 16))"), offset: offset)
            }
            guard v <= (Int.max >> 3) else {
                throw CheckpointError(.malformedArchive("tar number overflows"), offset: offset)
            }
            v = v << 3 | Int(b - 0x30)
            seenDigit = true
        }
        return v
    }

    /// PAX records: "LEN key=value\n", LEN counting the whole record.
    static func paxRecords(_ data: UnsafeRawBufferPointer, at offset: Int) throws -> [String: String] {
        var out: [String: String] = [:]
        var i = 0
        while i < data.count, data[i] != 0 {
            var len = 0
            var j = i
            while j < data.count, data[j] != 0x20 {
                guard (0x30...0x39).contains(data[j]), len < 1 << 40 else {
                    throw CheckpointError(.malformedArchive("PAX record length"), offset: offset + i)
                }
                len = len * 10 + Int(data[j] - 0x30)
                j += 1
            }
            guard len > j - i + 1, i + len <= data.count, data[i + len - 1] == 0x0A else {
                throw CheckpointError(.malformedArchive("PAX record of length \(len)"), offset: offset + i)
            }
            let record = String(decoding: data[(j + 1)..<(i + len - 1)], as: UTF8.self)
            guard let eq = record.firstIndex(of: "=") else {
                throw CheckpointError(.malformedArchive("PAX record without '='"), offset: offset + i)
            }
            out[String(record[..<eq])] = String(record[record.index(after: eq)...])
            i += len
        }
        return out
    }
}
