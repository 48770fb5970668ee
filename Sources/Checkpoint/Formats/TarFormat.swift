import Tensors

/// PyTorch 0.1's tar format (torchvision's resnet18-5c106cde.pth and its siblings), read as
/// `torch.serialization.legacy_load` does:
///
///     sys_info  pickle {'little_endian', 'protocol_version': 1000, 'type_sizes'}
///     storages  pickle N; N × [pickle (key, location, StorageClass); int64 numel; numel × itemsize bytes];
///               pickle [(view_key, root_key, offset, numel), …]
///     tensors   pickle M; M × [pickle (key, storage_key, TensorClass); int32 ndim; 4 bytes padding;
///               ndim × int64 size; ndim × int64 stride; int64 storage_offset]
///     pickle    the object; persistent ids are tensor keys as strings
///
/// Storages point into the mapped file: nothing is copied.
public enum TarFormat {
    /// A storage record of the `storages` member.
    public struct StorageRecord: Sendable {
        public let key: String
        public let dtype: DType
        public let count: Int
        /// Absolute file offset of the first element byte.
        public let dataOffset: Int
    }

    /// A tensor record of the `tensors` member.
    public struct TensorRecord: Sendable {
        public let key: String
        public let storageKey: String
        public let shape: [Int]
        public let strides: [Int]
        public let storageOffset: Int
        /// The dtype the record's tensor class names (`torch.FloatTensor` → float32), when it names one.
        public let dtype: DType?
    }

    /// The upper bound on a tensor record's rank (torch's limit is 64 in practice).
    static let maxRank = 1024

    static func load(_ file: any ByteSource, options: LoadOptions) throws -> LoadedCheckpoint {
        try load(file, options: options, salvage: false).loaded
    }

    /// Reads a cut-off tar checkpoint as far as it goes: the object, with every tensor whose storage is
    /// whole, and the storage records that are whole. Tensors whose storage lies past the cut throw the
    /// truncation error when their bytes are asked for. `error` is that truncation (nil when the file is whole).
    public static func salvage(path: String, options: LoadOptions = LoadOptions()) throws
        -> (root: Value, wholeStorages: [StorageRecord], error: CheckpointError?)
    {
        do {
            let r = try load(try MappedFile(path: path), options: options, salvage: true)
            return (r.loaded.root, r.records, r.error?.inFile(path))
        } catch let e as CheckpointError {
            throw e.inFile(path)
        }
    }

    static func load(_ file: any ByteSource, options: LoadOptions, salvage: Bool) throws
        -> (loaded: LoadedCheckpoint, records: [StorageRecord], error: CheckpointError?)
    {
        let tar = try TarArchive(try file.bytes())
        var log = GlobalLog()
        let host = TorchHost()

        let sysInfo = try member(tar, "sys_info")
        var r = ByteReader(sysInfo.data, part: sysInfo.part)
        let info = try runPickle(&r, host: host, options: options, log: &log).result
        let le = littleEndian(fromSysInfo: info)

        // storages
        let scan = try scanStorages(tar, options: options, log: &log)
        if let error = scan.error, !salvage { throw error }
        var storages: [String: Storage] = [:]
        var fileOrder: [Storage] = []
        for rec in scan.records {
            let source = Tensors.SliceSource(file, offset: rec.dataOffset, count: rec.count * rec.dtype.itemSize)
            let s = try storage(
                key: rec.key, dtype: rec.dtype, count: rec.count,
                source: nativeOrder(source, dtype: rec.dtype, littleEndian: le), part: "tar member 'storages'",
                offset: rec.dataOffset)
            guard storages[rec.key] == nil else {
                throw CheckpointError(
                    .malformedArchive("storage key \(rec.key) appears twice"), part: "tar member 'storages'")
            }
            storages[rec.key] = s
            fileOrder.append(s)
        }
        for view in scan.views {
            guard let root = storages[view.rootKey] else {
                throw CheckpointError(
                    .missingStorage("\(view.rootKey), the root of storage view \(view.key)"),
                    part: "tar member 'storages'")
            }
            do {
                storages[view.key] = try Storage(key: view.key, viewOf: root, offset: view.offset, count: view.count)
            } catch let e as TensorError {
                throw CheckpointError(.invalidTensor(e), part: "tar member 'storages'")
            }
        }

        // tensors
        let tensorsPart = try member(tar, "tensors")
        var tensors: [String: Tensor] = [:]
        for rec in try tensorRecords(tensorsPart, options: options, log: &log) {
            if salvage, storages[rec.storageKey] == nil, let cut = scan.error {
                // Past the cut: a storage that throws the truncation when read, sized to fit the view.
                let dtype = rec.dtype ?? .uint8
                let count = Int.max / 8
                storages[rec.storageKey] = try Storage(
                    key: rec.storageKey, dtype: dtype, count: count,
                    source: Unavailable(count: count * dtype.itemSize, error: cut))
            }
            guard let s = storages[rec.storageKey] else {
                throw CheckpointError(
                    .missingStorage("\(rec.storageKey), used by tensor record \(rec.key)"),
                    part: tensorsPart.part)
            }
            do {
                tensors[rec.key] = try Tensor(
                    storage: s, shape: rec.shape, strides: rec.strides,
                    storageOffset: rec.storageOffset)
            } catch let e as TensorError {
                throw CheckpointError(.invalidTensor(e), part: tensorsPart.part, tensor: "record \(rec.key)")
            }
        }

        // pickle
        let object = try member(tar, "pickle")
        host.resolvePersistent = { pid in
            guard case .string(let key) = pid else {
                throw CheckpointError(
                    .badPersistentID(
                        "the tar format refers to tensors by string keys; got a \(pid.typeName) (pickled modules are not supported)"
                    ))
            }
            guard let t = tensors[key] else {
                throw CheckpointError(.missingStorage("tensor \(key) is not in the tensors member"))
            }
            return .object(TensorObject(t, isParameter: false))
        }
        var pr = ByteReader(object.data, part: object.part)
        host.stubClasses = options.stubClasses
        let (root, proto) = try runPickle(&pr, host: host, options: options, log: &log)
        return (
            LoadedCheckpoint(
                root: root, pickleProtocol: proto, globals: log.list, littleEndian: le, storages: fileOrder,
                stubbed: host.stubbed),
            scan.records, scan.error
        )
    }

    /// The bytes of a storage that lies past the end of a cut-off file.
    final class Unavailable: ByteSource {
        let count: Int
        let error: CheckpointError
        init(count: Int, error: CheckpointError) {
            self.count = count
            self.error = error
        }
        func bytes() throws -> UnsafeRawBufferPointer { throw error }
    }

    struct MemberData {
        let data: UnsafeRawBufferPointer
        let part: String
    }

    static func member(_ tar: TarArchive, _ name: String) throws -> MemberData {
        let m = try tar.member(named: name)
        return MemberData(data: try tar.data(of: m), part: "tar member '\(name)'")
    }

    static func storage(key: String, dtype: DType, count: Int, source: any ByteSource, part: String, offset: Int) throws
        -> Storage
    {
        do {
            return try Storage(key: key, dtype: dtype, count: count, source: source)
        } catch let e as TensorError {
            throw CheckpointError(.invalidTensor(e), part: part, offset: offset)
        }
    }

    // MARK: - Records

    public struct StorageView: Sendable {
        public let key: String
        public let rootKey: String
        public let offset: Int
        public let count: Int
    }

    /// Reads the `storages` member record by record. Stops at the first problem and returns it in
    /// `error` with the records that came before, so a cut-off file can be examined up to the cut.
    public static func scanStorages(
        _ tar: TarArchive, options: LoadOptions = LoadOptions()
    ) throws -> (records: [StorageRecord], views: [StorageView], error: CheckpointError?) {
        var log = GlobalLog()
        return try scanStorages(tar, options: options, log: &log)
    }

    static func scanStorages(
        _ tar: TarArchive, options: LoadOptions, log: inout GlobalLog
    ) throws -> (records: [StorageRecord], views: [StorageView], error: CheckpointError?) {
        let m = try tar.member(named: "storages")
        let part = "tar member 'storages'"
        // Offsets are absolute file offsets: storages are large and are found by their place in the file.
        var r = ByteReader(try tar.availableData(of: m), part: part, origin: m.dataOffset)
        let host = TorchHost()
        var records: [StorageRecord] = []
        var views: [StorageView] = []
        do {
            let first = r.offset
            let n = try runPickle(&r, host: host, options: options, log: &log) {
                try int($0, "storage count", part, first)
            }.result
            guard n >= 0 else { throw r.error(.malformedArchive("negative storage count \(n)")) }
            for _ in 0..<n {
                let head = r.offset
                let (key, dtype) = try runPickle(&r, host: host, options: options, log: &log) { v -> (String, DType) in
                    guard case .tuple(let t) = v, t.items.count == 3, let key = asciiString(t.items[0]) else {
                        throw CheckpointError(
                            .malformedArchive("a storage record is not (key, location, type)"), part: part, offset: head
                        )
                    }
                    return (key, try storageDType(t.items[2], "storage \(key)"))
                }.result
                let numel = try r.read(Int64.self)
                guard numel >= 0, let count = Int(exactly: numel) else {
                    throw r.error(
                        .malformedArchive("storage \(key) has a negative element count \(numel)"), at: r.offset - 8)
                }
                let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.itemSize)
                guard !overflow else {
                    throw r.error(.invalidTensor(.elementCountOverflow([count, dtype.itemSize])), at: r.offset - 8)
                }
                let start = r.offset
                try r.skip(bytes)
                records.append(StorageRecord(key: key, dtype: dtype, count: count, dataOffset: start))
            }
            let viewsOffset = r.offset
            views = try runPickle(&r, host: host, options: options, log: &log) { v -> [StorageView] in
                guard case .list(let l) = v else {
                    throw CheckpointError(
                        .malformedArchive("storage_views is not a list"), part: part, offset: viewsOffset)
                }
                return try l.items.map { item in
                    guard case .tuple(let t) = item, t.items.count == 4,
                        let key = asciiString(t.items[0]), let root = asciiString(t.items[1]),
                        case .int(let off) = t.items[2], case .int(let n) = t.items[3]
                    else {
                        throw CheckpointError(
                            .malformedArchive("a storage view is not (key, root, offset, numel)"),
                            part: part, offset: viewsOffset)
                    }
                    return StorageView(key: key, rootKey: root, offset: Int(off), count: Int(n))
                }
            }.result
        } catch let e as CheckpointError {
            return (records, views, e)
        }
        if !r.isAtEnd {
            return (records, views, r.error(.malformedArchive("\(r.remaining) unexplained bytes after storage_views")))
        }
        return (records, views, nil)
    }

    static func tensorRecords(_ m: MemberData, options: LoadOptions, log: inout GlobalLog) throws -> [TensorRecord] {
        var r = ByteReader(m.data, part: m.part)
        let host = TorchHost()
        let part = m.part
        let n = try runPickle(&r, host: host, options: options, log: &log) { try int($0, "tensor count", part, 0) }
            .result
        guard n >= 0 else { throw r.error(.malformedArchive("negative tensor count \(n)")) }
        var out: [TensorRecord] = []
        for _ in 0..<n {
            let head = r.offset
            let (key, storageKey, dtype) = try runPickle(&r, host: host, options: options, log: &log) {
                v -> (String, String, DType?) in
                guard case .tuple(let t) = v, t.items.count == 3,
                    let key = asciiString(t.items[0]), let sk = asciiString(t.items[1])
                else {
                    throw CheckpointError(
                        .malformedArchive("a tensor record is not (key, storage_key, type)"), part: part, offset: head)
                }
                var dtype: DType?
                if case .global(let g) = t.items[2], case .legacyTensorClass(let dt)? = TorchGlobal(g) { dtype = dt }
                return (key, sk, dtype)
            }.result
            let rankOffset = r.offset
            let rank = Int(try r.read(Int32.self))
            guard (0...maxRank).contains(rank) else {
                throw r.error(.malformedArchive("tensor \(key) has rank \(rank)"), at: rankOffset)
            }
            try r.skip(4)  // padding: old writers stored ndim as 8 bytes
            try r.require(16 * rank + 8)
            var shape: [Int] = [], strides: [Int] = []
            for _ in 0..<rank { shape.append(Int(try r.read(Int64.self))) }
            for _ in 0..<rank { strides.append(Int(try r.read(Int64.self))) }
            let offset = Int(try r.read(Int64.self))
            out.append(
                TensorRecord(
                    key: key, storageKey: storageKey, shape: shape, strides: strides,
                    storageOffset: offset, dtype: dtype))
        }
        if !r.isAtEnd { throw r.error(.malformedArchive("\(r.remaining) unexplained bytes after the tensor records")) }
        return out
    }

    /// Public view of the `tensors` member, for tools and tests that examine cut-off files.
    public static func tensorRecords(_ tar: TarArchive, options: LoadOptions = LoadOptions()) throws -> [TensorRecord] {
        var log = GlobalLog()
        return try tensorRecords(try member(tar, "tensors"), options: options, log: &log)
    }

    static func int(_ v: PickleValue, _ what: String, _ part: String, _ offset: Int) throws -> Int {
        guard case .int(let i) = v else {
            throw CheckpointError(
                .malformedArchive("\(what) is a \(v.typeName), not an int"), part: part, offset: offset)
        }
        return Int(i)
    }
}
