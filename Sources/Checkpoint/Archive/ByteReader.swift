/// A bounds-checked, little-endian cursor over bytes that someone else keeps alive.
///
/// Every read checks the remaining length first and throws `.truncated` with the absolute offset, so
/// no caller indexes past the end. `origin` is the offset of `bytes[0]` inside `part`, so error offsets
/// count from the start of the tar member, zip entry or file.
public struct ByteReader {
    public let bytes: UnsafeRawBufferPointer
    public let part: String?
    public let origin: Int
    /// Index of the next byte within `bytes`.
    public var position: Int = 0

    public init(_ bytes: UnsafeRawBufferPointer, part: String? = nil, origin: Int = 0) {
        self.bytes = bytes
        self.part = part
        self.origin = origin
    }

    public var remaining: Int { bytes.count - position }
    public var isAtEnd: Bool { position >= bytes.count }
    /// `position` as an offset into `part`.
    public var offset: Int { origin + position }

    public func error(_ kind: CheckpointError.Kind, at offset: Int? = nil) -> CheckpointError {
        CheckpointError(kind, part: part, offset: offset ?? self.offset)
    }

    @inline(__always)
    func require(_ n: Int) throws {
        guard n >= 0, n <= remaining else {
            throw error(.truncated(needed: n, available: remaining))
        }
    }

    public mutating func readByte() throws -> UInt8 {
        try require(1)
        defer { position += 1 }
        return bytes[position]
    }

    public func peekByte() throws -> UInt8 {
        try require(1)
        return bytes[position]
    }

    /// Reads a little-endian integer of `T`'s width.
    public mutating func read<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try require(MemoryLayout<T>.size)
        defer { position += MemoryLayout<T>.size }
        return T(littleEndian: bytes.loadUnaligned(fromByteOffset: position, as: T.self))
    }

    /// `n` bytes without copying.
    public mutating func read(count n: Int) throws -> UnsafeRawBufferPointer {
        try require(n)
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
    }

    public mutating func skip(_ n: Int) throws {
        try require(n)
        position += n
    }

    /// The bytes up to (not including) the next newline, which is consumed.
    public mutating func readLine() throws -> UnsafeRawBufferPointer {
        let start = position
        var i = start
        while i < bytes.count {
            if bytes[i] == 0x0A {
                position = i + 1
                return UnsafeRawBufferPointer(rebasing: bytes[start..<i])
            }
            i += 1
        }
        throw error(.truncated(needed: 1, available: 0), at: origin + bytes.count)
    }
}

/// An archive member name torch could have written: relative, no `..` component, no backslash. Nothing is
/// ever extracted, but a name that would climb out of a folder is a sign of a crafted file.
func isSafeEntryName(_ name: String) -> Bool {
    !name.hasPrefix("/") && !name.contains("\\")
        && !name.split(separator: "/", omittingEmptySubsequences: false).contains("..")
}
