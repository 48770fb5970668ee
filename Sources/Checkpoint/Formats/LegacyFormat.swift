import Tensors

/// The legacy stacked-pickle format (PyTorch 0.1.10 – 1.5), read as `torch.serialization._legacy_load`:
///
///     pickle  magic number 0x1950a86a20f9469cfc6c
///     pickle  protocol version 1001
///     pickle  sys_info
///     pickle  the object; persistent ids ('storage', StorageClass, root_key, location, numel, view_metadata)
///     pickle  [storage keys]
///     per key, in that order: int64 numel, numel × itemsize bytes
///
/// Storages point into the mapped file. Their bytes follow the object, so each storage is declared by
/// the object pickle and bound to its bytes afterwards; one that is never bound is an error.
enum LegacyFormat {
    static let magic = "119547037146038801333356"  // 0x1950a86a20f9469cfc6c
    static let protocolVersion = 1001

    static func load(_ file: any ByteSource, options: LoadOptions) throws -> LoadedCheckpoint {
        var r = ByteReader(try file.bytes())
        var log = GlobalLog()
        let host = TorchHost()
        host.stubClasses = options.stubClasses

        let magicOffset = r.offset
        let magic = try runPickle(&r, host: host, options: options, log: &log).result
        guard case .bigInt(let m) = magic, m == LegacyFormat.magic else {
            throw CheckpointError(
                .badMagic("\(magic); a legacy checkpoint starts with 0x1950a86a20f9469cfc6c"), offset: magicOffset)
        }
        let versionOffset = r.offset
        let version = try runPickle(&r, host: host, options: options, log: &log).result
        guard case .int(let v) = version, v == LegacyFormat.protocolVersion else {
            throw CheckpointError(
                .unsupportedVersion("legacy protocol \(version), expected 1001"), offset: versionOffset)
        }
        let info = try runPickle(&r, host: host, options: options, log: &log).result
        let le = littleEndian(fromSysInfo: info)

        // The object. Storages are created as their ids appear and bound to bytes below.
        var roots: [String: (storage: Storage, source: DeferredSource)] = [:]
        var rootOrder: [String] = []
        var views: [String: Storage] = [:]
        host.resolvePersistent = { pid in
            guard case .tuple(let t) = pid, let kind = t.items.first.flatMap(asciiString) else {
                throw CheckpointError(.badPersistentID("expected a tuple, got a \(pid.typeName)"))
            }
            if kind == "module", options.stubClasses {
                // ('module', class, source_file, source): a whole model's class, with its source text as
                // the writer had it. torch.load returns the class; here it is already a record (the
                // class's global was read under stubClasses), and the source is never looked at.
                guard t.items.count == 4, case .object = t.items[1] else {
                    throw CheckpointError(.badPersistentID("a module id is ('module', class, source_file, source)"))
                }
                return t.items[1]
            }
            guard kind == "storage" else {
                throw CheckpointError(
                    .badPersistentID("'\(kind)' (a whole pickled module: --stub-classes reads it as data)"))
            }
            let items = t.items
            guard items.count == 6, let rootKey = asciiString(items[2]), case .int(let numel) = items[4], numel >= 0
            else {
                throw CheckpointError(.badPersistentID("a storage id is ('storage', type, key, location, numel, view)"))
            }
            let dtype = try storageDType(items[1], "storage \(rootKey)")
            let root: Storage
            if let existing = roots[rootKey] {
                root = existing.storage
            } else {
                let (bytes, overflow) = Int(numel).multipliedReportingOverflow(by: dtype.itemSize)
                guard !overflow else {
                    throw CheckpointError(.invalidTensor(.elementCountOverflow([Int(numel), dtype.itemSize])))
                }
                let deferred = DeferredSource(key: rootKey, count: bytes)
                do {
                    root = try Storage(
                        key: rootKey, dtype: dtype, count: Int(numel),
                        source: nativeOrder(deferred, dtype: dtype, littleEndian: le),
                        location: asciiString(items[3]) ?? "cpu")
                } catch let e as TensorError { throw CheckpointError(.invalidTensor(e)) }
                roots[rootKey] = (root, deferred)
                rootOrder.append(rootKey)
            }
            switch items[5] {
            case .none:
                return .object(StorageObject(root))
            case .tuple(let view):
                guard view.items.count == 3, let viewKey = asciiString(view.items[0]),
                    case .int(let offset) = view.items[1], case .int(let size) = view.items[2]
                else { throw CheckpointError(.badPersistentID("view metadata is (key, offset, size)")) }
                if let v = views[viewKey] { return .object(StorageObject(v)) }
                do {
                    let v = try Storage(key: viewKey, viewOf: root, offset: Int(offset), count: Int(size))
                    views[viewKey] = v
                    return .object(StorageObject(v))
                } catch let e as TensorError { throw CheckpointError(.invalidTensor(e)) }
            default:
                throw CheckpointError(.badPersistentID("view metadata is a \(items[5].typeName)"))
            }
        }
        let (root, proto) = try runPickle(&r, host: host, options: options, log: &log)

        // The keys, then each storage's bytes in that order.
        let keysOffset = r.offset
        let keys = try runPickle(&r, host: TorchHost(), options: options, log: &log) { v -> [String] in
            guard case .list(let l) = v else {
                throw CheckpointError(.malformedArchive("the storage key list is a \(v.typeName)"), offset: keysOffset)
            }
            return try l.items.map {
                guard let k = asciiString($0) else {
                    throw CheckpointError(.malformedArchive("a storage key is a \($0.typeName)"), offset: keysOffset)
                }
                return k
            }
        }.result
        for key in keys {
            let countOffset = r.offset
            guard let (storage, deferred) = roots[key] else {
                throw CheckpointError(
                    .missingStorage("\(key): listed for reading but no tensor declared it"), offset: countOffset)
            }
            guard !deferred.isBound else {
                throw CheckpointError(.malformedArchive("storage \(key) is listed twice"), offset: countOffset)
            }
            let numel = try r.read(Int64.self)
            guard numel == Int64(storage.count) else {
                throw CheckpointError(
                    .malformedArchive(
                        "storage \(key) holds \(numel) elements here but \(storage.count) where the object declared it"),
                    offset: countOffset)
            }
            let start = r.offset
            try r.skip(deferred.count)
            deferred.bind(SliceSource(file, offset: start, count: deferred.count))
        }
        if let unbound = rootOrder.first(where: { !roots[$0]!.source.isBound }) {
            throw CheckpointError(
                .missingStorage("\(unbound): the object uses it but the file holds no bytes for it"),
                offset: r.offset)
        }
        if !r.isAtEnd {
            throw CheckpointError(.malformedArchive("\(r.remaining) bytes after the last storage"), offset: r.offset)
        }
        // File order: the order the bytes sit in.
        let storages = keys.map { roots[$0]!.storage }
        return LoadedCheckpoint(
            root: root, pickleProtocol: proto, globals: log.list, littleEndian: le, storages: storages,
            stubbed: host.stubbed)
    }
}
