import Tensors

/// The zip format (PyTorch ≥ 1.6), read as `torch.serialization._load`:
///
///     <folder>/data.pkl     the object; persistent ids ('storage', StorageClass or dtype, key, location, numel)
///     <folder>/data/<key>   one entry per storage, stored (64-byte aligned) or deflated
///     <folder>/byteorder    'little' or 'big'; missing means little
///     <folder>/version, .data/serialization_id, …
///
/// The folder name is free; every entry must share it. Storages are read from the archive on first use.
///
/// A TorchScript archive (`torch.jit.save`) is the same zip plus `code/` (the module's TorchScript
/// source), `constants.pkl` with its storages in `constants/<key>`, and a data.pkl whose objects are
/// `__torch__.…` classes. Those are read as records, never compiled: the pickle only builds them
/// (NEWOBJ with `()`, BUILD with a dict of attributes), and which attributes are parameters and
/// buffers is read from the `__parameters__` / `__buffers__` lines of their declarations in `code/`.
enum ZipFormat {
    static func load(_ file: any ByteSource, name path: String, options: LoadOptions) throws -> LoadedCheckpoint {
        let zip = try ZipArchive(file)
        let fileBytes = file.count
        for e in zip.entries where !isSafeEntryName(e.name) { throw CheckpointError(.unsafeEntryName(e.name)) }
        // A zip bomb is refused from what the directory declares, before anything is inflated.
        let ratio = options.maxInflationRatio
        let cap = byteCap(fileBytes: fileBytes, ratio: ratio, plus: 16 << 20)
        var inflated = 0
        for e in zip.entries where e.method != 0 {
            let (sum, o) = inflated.addingReportingOverflow(e.size)
            guard !o, sum <= cap else {
                throw CheckpointError(
                    .limitExceeded(
                        .maxInflationRatio, limit: ratio,
                        "the compressed entries up to this one declare more than \(cap) bytes uncompressed (\(ratio) × the file's \(fileBytes) bytes + 16 MiB)"
                    ),
                    part: e.name)
            }
            inflated = sum
        }
        guard let first = zip.entries.first else {
            throw CheckpointError(.missingRecord("data.pkl: the zip archive is empty"))
        }
        guard let slash = first.name.firstIndex(of: "/") else {
            throw CheckpointError(.malformedArchive("entry '\(first.name)' is not inside a top-level folder"))
        }
        let folder = String(first.name[..<slash])
        if let stray = zip.entries.first(where: { !$0.name.hasPrefix(folder + "/") }) {
            throw CheckpointError(.malformedArchive("entry '\(stray.name)' is outside the archive folder '\(folder)/'"))
        }

        var le = true
        if let bo = zip.entry(named: "\(folder)/byteorder") {
            guard bo.size <= 16 else {
                throw CheckpointError(
                    .malformedArchive("byteorder holds \(bo.size) bytes, not 'little' or 'big'"), part: bo.name)
            }
            let raw = try zip.read(bo)
            let text = try withExtendedLifetime(raw) { String(decoding: try raw.bytes(), as: UTF8.self) }
            switch text {
            case "little": le = true
            case "big": le = false
            default:
                throw CheckpointError(
                    .malformedArchive("byteorder is '\(text.prefix(20))', not 'little' or 'big'"), part: bo.name)
            }
        }

        /// A pickle entry read whole, once its declared size is within `maxHeaderBytes`.
        func readPickle(_ entry: ZipArchive.Entry) throws -> OwnedBytes {
            guard entry.size <= options.maxHeaderBytes else {
                throw CheckpointError(
                    .limitExceeded(
                        .maxHeaderBytes, limit: options.maxHeaderBytes,
                        "\(entry.name.split(separator: "/").last ?? "") declares \(entry.size) bytes"), part: entry.name
                )
            }
            return try zip.read(entry)
        }
        let pklName = "\(folder)/data.pkl"
        guard let pkl = zip.entry(named: pklName) else { throw CheckpointError(.missingRecord("entry '\(pklName)'")) }
        let pickleBytes = try readPickle(pkl)

        let isTorchScript =
            zip.entry(named: "\(folder)/constants.pkl") != nil
            || zip.entries.contains { $0.name.hasPrefix("\(folder)/code/") }
        var order: [Storage] = []
        /// Resolves ('storage', type, key, location, numel) to the entry `<folder>/<dir>/<key>`.
        func resolver(_ dir: String) -> (PickleValue) throws -> PickleValue {
            var storages: [String: Storage] = [:]
            return { pid in
                guard case .tuple(let t) = pid, let kind = t.items.first.flatMap(asciiString) else {
                    throw CheckpointError(.badPersistentID("expected a tuple, got a \(pid.typeName)"))
                }
                guard kind == "storage" else {
                    throw CheckpointError(.badPersistentID("'\(kind)', expected 'storage'"))
                }
                guard t.items.count == 5, let key = asciiString(t.items[2]), case .int(let numel) = t.items[4],
                    numel >= 0
                else {
                    throw CheckpointError(.badPersistentID("a storage id is ('storage', type, key, location, numel)"))
                }
                let dtype = try storageDType(t.items[1], "storage \(key)")
                if let s = storages[key] {
                    guard s.dtype == dtype else {
                        throw CheckpointError(
                            .badPersistentID("storage \(key) is used as both \(s.dtype) and \(dtype)"))
                    }
                    return .object(StorageObject(s))
                }
                let name = "\(folder)/\(dir)/\(key)"
                guard let entry = zip.entry(named: name) else {
                    throw CheckpointError(.missingStorage("\(key): no entry '\(name)'"))
                }
                do {
                    let s = try Storage(
                        key: dir == "data" ? key : "\(dir)/\(key)", dtype: dtype, count: Int(numel),
                        source: nativeOrder(
                            ZipEntrySource(zip, entry, verifyCRC: options.verifyCRC, file: path),
                            dtype: dtype, littleEndian: le),
                        location: asciiString(t.items[3]) ?? "cpu")
                    storages[key] = s
                    order.append(s)
                    return .object(StorageObject(s))
                } catch let e as TensorError {
                    throw CheckpointError(.invalidTensor(e), part: name)
                }
            }
        }
        let host = TorchHost(persistentLoad: resolver("data"))
        host.littleEndian = le
        host.stubClasses = options.stubClasses
        if isTorchScript {
            host.torchScript = true
            host.scriptClasses = try scriptDeclarations(zip, folder: folder, options: options)
        }
        var log = GlobalLog()
        /// Runs one pickle, which must end at its STOP; the reader points into `bytes`, kept alive throughout.
        func run(_ bytes: OwnedBytes, part: String) throws -> (result: Value, proto: Int) {
            try withExtendedLifetime(bytes) {
                var r = ByteReader(try bytes.bytes(), part: part)
                let out = try runPickle(&r, host: host, options: options, log: &log)
                if !r.isAtEnd {
                    throw CheckpointError(
                        .malformedPickle("\(r.remaining) bytes after STOP"), part: part, offset: r.offset)
                }
                return out
            }
        }
        let (root, proto) = try run(pickleBytes, part: pklName)
        var constants: Value?
        if isTorchScript, let c = zip.entry(named: "\(folder)/constants.pkl") {
            let bytes = try readPickle(c)
            host.resolvePersistent = resolver("constants")
            constants = try run(bytes, part: c.name).result
        }
        return LoadedCheckpoint(
            root: root, pickleProtocol: proto, globals: log.list, littleEndian: le, storages: order,
            stubbed: host.stubbed, isTorchScript: isTorchScript, scriptConstants: constants)
    }

    /// The class declarations of a TorchScript archive's `code/*.py`, read as text. The files together
    /// may hold at most `LoadOptions.maxHeaderBytes`.
    static func scriptDeclarations(_ zip: ZipArchive, folder: String, options: LoadOptions) throws -> [String:
        ScriptClass]
    {
        var out: [String: ScriptClass] = [:]
        var total = 0
        let prefix = "\(folder)/code/"
        for e in zip.entries where e.name.hasPrefix(prefix) && e.name.hasSuffix(".py") {
            total += e.size
            guard total <= options.maxHeaderBytes else {
                throw CheckpointError(
                    .limitExceeded(
                        .maxHeaderBytes, limit: options.maxHeaderBytes,
                        "the TorchScript code up to this file declares more bytes"), part: e.name)
            }
            let raw = try zip.read(e)
            let text = try withExtendedLifetime(raw) { String(decoding: try raw.bytes(), as: UTF8.self) }
            let module = String(e.name.dropFirst(prefix.count).dropLast(3).map { $0 == "/" ? "." : $0 })
            out.merge(ScriptClass.parse(text[...], module: module)) { a, _ in a }
        }
        return out
    }
}
