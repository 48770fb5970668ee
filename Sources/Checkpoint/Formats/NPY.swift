import Tensors

/// A NumPy `.npy` array (format versions 1–3): little-endian float32/float64/int64/int32/uint8/bool, C
/// order. The header is checked (magic, version, dict keys, shape against the file size) before use.
public struct NPYArray: Sendable {
    public var dtype: DType
    public var shape: [Int]
    /// Row-major little-endian bytes.
    public var bytes: [UInt8]

    public var count: Int { shape.reduce(1, *) }

    /// The elements as Float32.
    public func float32() throws -> [Float] {
        let storage = try Storage(key: "npy", dtype: dtype, count: count, source: OwnedBytes(bytes))
        return try Tensor(storage: storage, shape: shape, strides: Tensor.contiguousStrides(shape), storageOffset: 0)
            .float32()
    }

    /// Reads `path`. Thrown (`CheckpointError`) for a file that is not a valid `.npy` of a supported dtype.
    public init(path: String) throws {
        let file = try MappedFile(path: path)
        do {
            self = try NPYArray(bytes: try file.bytes())
        } catch let e as CheckpointError {
            throw e.inFile(path)
        }
    }

    public init(bytes raw: UnsafeRawBufferPointer) throws {
        func bad(_ why: String, _ at: Int) -> CheckpointError {
            CheckpointError(.malformedArchive("npy: \(why)"), offset: at)
        }
        let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)
        guard raw.count >= 10, Array(raw.prefix(6)) == magic else { throw bad("no \\x93NUMPY magic", 0) }
        let major = raw[6]
        let headerLength: Int, start: Int
        switch major {
        case 1:
            headerLength = Int(raw[8]) | Int(raw[9]) << 8
            start = 10
        case 2, 3:
            guard raw.count >= 12 else { throw bad("truncated header length", 8) }
            headerLength = Int(raw.loadUnaligned(fromByteOffset: 8, as: UInt32.self).littleEndian)
            start = 12
        default:
            throw bad("unsupported version \(major)", 6)
        }
        guard headerLength <= raw.count - start else { throw bad("header runs past the end", start) }
        let header = String(
            decoding: UnsafeRawBufferPointer(rebasing: raw[start..<(start + headerLength)]), as: UTF8.self)
        // {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3, 64, 48), }
        func field(_ key: String) -> Substring? {
            guard let r = header.firstRange(of: "'\(key)':") else { return nil }
            return header[r.upperBound...].drop { $0 == " " }
        }
        guard let descr = field("descr"), descr.hasPrefix("'") else { throw bad("no 'descr'", start) }
        let code = descr.dropFirst().prefix { $0 != "'" }
        let types: [String: DType] = [
            "<f4": .float32, "<f8": .float64, "<f2": .float16, "<i8": .int64, "<i4": .int32,
            "<i2": .int16, "|i1": .int8, "|u1": .uint8, "|b1": .bool,
        ]
        guard let dtype = types[String(code)] else {
            throw bad("unsupported descr '\(code)' (little-endian numbers and bool only)", start)
        }
        guard let order = field("fortran_order"), order.hasPrefix("False") else {
            throw bad("Fortran-order arrays are not supported", start)
        }
        guard let shapeText = field("shape"), shapeText.hasPrefix("("), let close = shapeText.firstIndex(of: ")") else {
            throw bad("no 'shape'", start)
        }
        var shape: [Int] = []
        for part in shapeText[shapeText.index(after: shapeText.startIndex)..<close].split(separator: ",") {
            let t = part.trimmingCharacters(in: " ")
            if t.isEmpty { continue }
            guard let d = Int(t), d >= 0 else { throw bad("bad dimension '\(t)'", start) }
            shape.append(d)
        }
        let count = try Tensor.elementCount(shape)
        let (size, overflow) = count.multipliedReportingOverflow(by: dtype.itemSize)
        let dataStart = start + headerLength
        guard !overflow, size == raw.count - dataStart else {
            throw bad(
                "shape \(shape) of \(code) needs \(overflow ? "too many" : String(size)) bytes, the file has \(raw.count - dataStart)",
                dataStart)
        }
        self.dtype = dtype
        self.shape = shape
        self.bytes = Array(UnsafeRawBufferPointer(rebasing: raw[dataStart...]))
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in c: Character) -> String {
        String(drop { $0 == c }.reversed().drop { $0 == c }.reversed())
    }
}
