import Tensors

/// The `.swt` format: safetensors' layout, byte for byte.
///
/// ```
/// [0, 8)        header length N, little-endian UInt64
/// [8, 8+N)      JSON: {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, …}
///               padded with spaces so that 8+N is a multiple of 64
/// [8+N, EOF)    the data; offsets count from 8+N; every byte belongs to exactly one tensor
/// ```
///
/// pth2swt writes every tensor whose size allows it on a 64-byte boundary (all of a ResNet's) and every
/// tensor on a multiple of its element size; readers accept any layout that is tight (no holes, no
/// overlaps) as safetensors itself requires.
public enum SWT {
    /// safetensors' dtype spellings (safetensors 0.8), or nil for a dtype it has none for: complex32 and
    /// complex128 are written through `standIn(for:)`, quantized types as their integers (see
    /// `SafetensorsPlan`).
    public static func name(of dtype: DType) -> String? {
        switch dtype {
        case .float32: "F32"
        case .float64: "F64"
        case .float16: "F16"
        case .bfloat16: "BF16"
        case .int64: "I64"
        case .int32: "I32"
        case .int16: "I16"
        case .int8: "I8"
        case .uint8: "U8"
        case .bool: "BOOL"
        case .uint16: "U16"
        case .uint32: "U32"
        case .uint64: "U64"
        case .complex64: "C64"
        case .float8_e4m3fn: "F8_E4M3"
        case .float8_e5m2: "F8_E5M2"
        case .float8_e4m3fnuz: "F8_E4M3FNUZ"
        case .float8_e5m2fnuz: "F8_E5M2FNUZ"
        case .float8_e8m0fnu: "F8_E8M0"
        case .complex32, .complex128, .qint8, .quint8, .qint32, .quint4x2, .quint2x4: nil
        }
    }

    public static func dtype(named name: String) -> DType? {
        DType.allCases.first { SWT.name(of: $0) == name }
    }

    /// The dtype a complex type without a safetensors name is stored as, with a trailing dimension of 2
    /// (real, imaginary): float64 for complex128, float16 for complex32. `MetadataKey.dtypes` records
    /// the real dtype, and pth2swt reads it back.
    public static func standIn(for dtype: DType) -> DType? {
        switch dtype {
        case .complex128: .float64
        case .complex32: .float16
        default: nil
        }
    }

    /// The data region starts on this boundary, and so does every tensor the layout can align.
    public static let alignment = 64
    /// The largest header accepted (safetensors' own limit is 100 MB).
    public static let maxHeaderBytes = 100_000_000

    /// Keys pth2swt writes into `__metadata__`.
    public enum MetadataKey {
        /// safetensors' convention for torch tensors ("pt"), which Hugging Face loaders look for.
        public static let format = "format"
        public static let converter = "pth2swt.version"
        public static let sourceFile = "source.file"
        public static let sourceBytes = "source.bytes"
        public static let sourceSHA256 = "source.sha256"
        public static let sourceFormat = "source.format"
        /// JSON list of the wrapper keys that led to the state dict, e.g. `["state_dict"]`.
        public static let stateDictPath = "source.state_dict_path"
        /// torch's `_metadata` (module path → {"version": n}) as JSON.
        public static let torchMetadata = "torch._metadata"
        /// Prefix of non-tensor values (`value.epoch` → `"3"`), each as JSON.
        public static let valuePrefix = "value."
        /// JSON list of the names of values that JSON cannot hold (they hold tensors, bytes, …).
        public static let droppedValues = "pth2swt.values_not_kept"
        /// SHA-256 of the data region (every byte after the header, in file order), 64 lowercase hex
        /// digits: `Checkpoint.checkDataDigest()` and `inspect --check` compare it with the bytes.
        public static let dataSHA256 = "pth2swt.data_sha256"
        /// JSON object: tensor name → torch dtype, for tensors stored through `SWT.standIn(for:)`.
        public static let dtypes = "pth2swt.dtypes"
        /// JSON object: tensor name → {"dtype", "qscheme"[, "axis"]}, for quantized tensors written as
        /// their integers beside `NAME.scale` and `NAME.zero_point`.
        public static let quantized = "pth2swt.quantized"
        /// JSON object: tensor name → {"layout", "shape"}, for sparse tensors written as their components
        /// (`NAME.indices`, `NAME.values`, …).
        public static let sparse = "pth2swt.sparse"
        /// JSON object: value name → torch dtype, for values that are dtypes (a quantized module's
        /// `_packed_params.dtype`), which JSON has no type for.
        public static let dtypeValues = "pth2swt.dtype_values"
        /// JSON object: entry name → its tensors' names (null for None), for state-dict entries that were
        /// tuples of tensors (a quantized Linear's `_packed_params._packed_params`).
        public static let tuples = "pth2swt.tuples"
        /// JSON list of tensors saved without values (meta, wrapper subclasses) that were left out.
        public static let withoutData = "pth2swt.tensors_without_data"
    }
}

/// One tensor's entry in the header.
public struct SWTEntry: Sendable, Equatable {
    public var name: String
    public var dtype: DType
    public var shape: [Int]
    /// Byte range within the data region.
    public var begin: Int
    public var end: Int
}

/// What is wrong with a `.swt` header. Each case names the tensor when there is one.
public enum SWTHeaderError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Thrown when the 8-byte length is zero, over `SWT.maxHeaderBytes`, or past the end of the file.
    case headerLength(declared: UInt64, fileBytes: Int)
    /// Thrown when the header is not JSON (the offset counts from the file's start). A key repeated
    /// inside an entry or inside `__metadata__` is refused here.
    case notJSON(JSONParseError)
    /// Thrown when the header holds more entries than the caller allows (`LoadOptions.maxHeaderEntries`).
    case tooManyEntries(limit: Int, offset: Int)
    /// Thrown when the header is JSON but not an object.
    case notAnObject(kind: String)
    /// Thrown when two entries have the same name.
    case duplicateName(String)
    /// Thrown when `__metadata__` is not an object of strings.
    case badMetadata(String)
    /// Thrown when an entry lacks a field, has an extra one, or a field has the wrong type.
    case badEntry(name: String, reason: String)
    /// Thrown when the dtype is not one of safetensors' names.
    case unknownDType(name: String, dtype: String)
    /// Thrown when a dimension is negative or the element count overflows.
    case badShape(name: String, shape: [Int])
    /// Thrown when `end - begin` is not the byte size that shape and dtype imply.
    case sizeMismatch(name: String, expectedBytes: Int, begin: Int, end: Int)
    /// Thrown when an entry's range is reversed or runs past the data region.
    case offsetOutOfRange(name: String, begin: Int, end: Int, dataBytes: Int)
    /// Thrown when two entries' ranges overlap.
    case overlap(name: String, other: String, at: Int)
    /// Thrown when bytes of the data region belong to no tensor (between two, or at the end).
    case hole(after: String?, from: Int, to: Int)

    public var description: String {
        switch self {
        case .headerLength(let n, let size):
            "header length \(n) does not fit a file of \(size) bytes (it must be 1…\(SWT.maxHeaderBytes) and end inside the file)"
        case .notJSON(let e): e.description
        case .tooManyEntries(let limit, let offset):
            "more than \(limit) entries (the one at byte \(offset) is one too many)"
        case .notAnObject(let kind): "the header is a JSON \(kind), not an object"
        case .duplicateName(let n): "two entries are named '\(n)'"
        case .badMetadata(let s): "__metadata__ \(s)"
        case .badEntry(let n, let r): "entry '\(n)': \(r)"
        case .unknownDType(let n, let d):
            "entry '\(n)': unknown dtype '\(d)' (known: \(DType.allCases.compactMap(SWT.name(of:)).joined(separator: ", ")))"
        case .badShape(let n, let s): "entry '\(n)': shape \(s) has a negative dimension or too many elements"
        case .sizeMismatch(let n, let want, let b, let e):
            "entry '\(n)': data_offsets [\(b), \(e)] hold \(e - b) bytes but dtype and shape need \(want)"
        case .offsetOutOfRange(let n, let b, let e, let size):
            "entry '\(n)': data_offsets [\(b), \(e)] are outside the data region of \(size) bytes"
        case .overlap(let n, let o, let at): "entry '\(n)' overlaps '\(o)' at data byte \(at)"
        case .hole(let after, let from, let to):
            "data bytes [\(from), \(to)) belong to no tensor"
                + (after.map { " (after '\($0)')" } ?? " (before the first tensor)")
        }
    }
}

/// A parsed and validated header.
public struct SWTHeader: Sendable {
    /// Entries in the header's order.
    public var entries: [SWTEntry]
    /// `__metadata__`, in the header's order.
    public var metadata: [(key: String, value: String)]
    /// Where the data region starts in the file (8 + header length).
    public var dataStart: Int

    /// Parses and checks the header of a file whose bytes are `file`.
    ///
    /// Every rule is checked before any tensor is made: the length, the JSON, each entry's fields,
    /// dtype, shape and size, and that the entries tile the data region exactly.
    /// `maxHeaderBytes` above 100 MB (safetensors' limit) reads headers safetensors would refuse.
    public static func parse(
        _ file: UnsafeRawBufferPointer, maxHeaderBytes: Int = SWT.maxHeaderBytes, maxEntries: Int = .max
    ) throws(SWTHeaderError) -> SWTHeader {
        guard file.count >= 8 else { throw .headerLength(declared: 0, fileBytes: file.count) }
        let declared = file.loadUnaligned(as: UInt64.self).littleEndian
        guard declared > 0, declared <= UInt64(max(maxHeaderBytes, 0)), declared <= UInt64(file.count - 8) else {
            throw .headerLength(declared: declared, fileBytes: file.count)
        }
        let n = Int(declared)
        let json: JSON
        do {
            json = try JSON.parse(
                UnsafeRawBufferPointer(rebasing: file[8..<(8 + n)]), maxDepth: 8, duplicateTopLevelKeys: true,
                maxTopLevelFields: maxEntries)
        } catch {
            if let limit = error.fieldLimit { throw .tooManyEntries(limit: limit, offset: error.offset + 8) }
            throw .notJSON(JSONParseError(offset: error.offset + 8, reason: error.reason))
        }
        guard case .object(let fields) = json else { throw .notAnObject(kind: json.kindName) }
        let dataBytes = file.count - 8 - n
        var header = SWTHeader(entries: [], metadata: [], dataStart: 8 + n)
        var names = Set<String>()
        for (name, value) in fields {
            guard names.insert(name).inserted else { throw .duplicateName(name) }
            if name == "__metadata__" {
                guard case .object(let meta) = value else {
                    throw .badMetadata("is a \(value.kindName), not an object")
                }
                for (k, v) in meta {
                    guard case .string(let s) = v else {
                        throw .badMetadata("value of '\(k)' is a \(v.kindName), not a string")
                    }
                    header.metadata.append((k, s))
                }
                continue
            }
            header.entries.append(try entry(name, value, dataBytes: dataBytes))
        }
        try checkTiling(header.entries, dataBytes: dataBytes)
        return header
    }

    static func entry(_ name: String, _ value: JSON, dataBytes: Int) throws(SWTHeaderError) -> SWTEntry {
        guard case .object(let fields) = value else {
            throw .badEntry(name: name, reason: "is a \(value.kindName), not an object")
        }
        for (k, _) in fields where !["dtype", "shape", "data_offsets"].contains(k) {
            throw .badEntry(name: name, reason: "unexpected field '\(k)'")
        }
        guard let dtypeName = value["dtype"]?.stringValue else {
            throw .badEntry(name: name, reason: "no string 'dtype'")
        }
        guard let dtype = SWT.dtype(named: dtypeName) else { throw .unknownDType(name: name, dtype: dtypeName) }
        guard let dims = value["shape"]?.arrayValue else { throw .badEntry(name: name, reason: "no array 'shape'") }
        var shape: [Int] = []
        for d in dims {
            guard let i = d.intValue else {
                throw .badEntry(name: name, reason: "shape holds a \(d.kindName), not an integer")
            }
            shape.append(i)
        }
        guard let offsets = value["data_offsets"]?.arrayValue, offsets.count == 2,
            let begin = offsets[0].intValue, let end = offsets[1].intValue
        else { throw .badEntry(name: name, reason: "'data_offsets' is not a pair of integers") }
        guard begin >= 0, end >= begin, end <= dataBytes else {
            throw .offsetOutOfRange(name: name, begin: begin, end: end, dataBytes: dataBytes)
        }
        // The byte count, and the same product with zeros read as ones: the row-major strides are
        // products of the sizes after a dimension, so [0, 2^40, 2^40] holds no bytes but its strides
        // would overflow.
        var bytes = dtype.itemSize
        var span = dtype.itemSize
        for d in shape {
            guard d >= 0 else { throw .badShape(name: name, shape: shape) }
            let (p, o) = bytes.multipliedReportingOverflow(by: d)
            let (q, o2) = span.multipliedReportingOverflow(by: max(d, 1))
            guard !o, !o2 else { throw .badShape(name: name, shape: shape) }
            bytes = p
            span = q
        }
        guard end - begin == bytes else {
            throw .sizeMismatch(name: name, expectedBytes: bytes, begin: begin, end: end)
        }
        return SWTEntry(name: name, dtype: dtype, shape: shape, begin: begin, end: end)
    }

    /// The entries, sorted by offset, must cover [0, dataBytes) exactly once.
    static func checkTiling(_ entries: [SWTEntry], dataBytes: Int) throws(SWTHeaderError) {
        let sorted = entries.sorted { ($0.begin, $0.end) < ($1.begin, $1.end) }
        var cursor = 0
        var previous: SWTEntry?
        for e in sorted {
            if e.begin > cursor { throw .hole(after: previous?.name, from: cursor, to: e.begin) }
            if e.begin < cursor, let p = previous { throw .overlap(name: e.name, other: p.name, at: e.begin) }
            cursor = e.end
            previous = e
        }
        if cursor < dataBytes { throw .hole(after: previous?.name, from: cursor, to: dataBytes) }
    }
}
