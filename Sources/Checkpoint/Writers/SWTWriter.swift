import Checksums
import Lifetime
import Tensors

/// Where a converted file came from, recorded in the `.swt` header.
public struct SourceInfo: Sendable {
    public var fileName: String
    public var bytes: Int
    /// Lowercase hex; nil to have the writer hash `path` on a second thread while it writes the data
    /// (the header is patched when the digest is ready).
    public var sha256: String?
    public var path: String?
    public var format: CheckpointFormat

    public init(fileName: String, bytes: Int, sha256: String, format: CheckpointFormat) {
        self.fileName = fileName
        self.bytes = bytes
        self.sha256 = sha256
        self.format = format
    }

    /// The file at `path`, to be hashed by the writer.
    public init(path: String, bytes: Int, format: CheckpointFormat) {
        self.fileName = path.split(separator: "/").last.map(String.init) ?? path
        self.bytes = bytes
        self.path = path
        self.format = format
    }
}

/// Writes a state dict as `.swt` (safetensors' layout; see `SWT`).
public enum SWTWriter {
    /// What was written.
    public struct Report: Sendable {
        public var entries: [SWTEntry]
        public var dataStart: Int
        public var fileBytes: Int
        /// Names of values JSON cannot hold, which the file does not keep.
        public var droppedValues: [String]
        /// The source's SHA-256 as recorded in the header.
        public var sourceSHA256: String?
    }

    /// The data order: tensors whose size is a multiple of 64 bytes first (file order, all aligned),
    /// then the rest, largest first, never breaking any tensor's element alignment.
    static func dataOrder(_ sizes: [(bytes: Int, itemSize: Int)]) -> [Int] {
        var order = sizes.indices.filter { sizes[$0].bytes % SWT.alignment == 0 }
        var rest = sizes.indices.filter { sizes[$0].bytes % SWT.alignment != 0 }
        var offset = order.reduce(0) { $0 + sizes[$1].bytes }
        while !rest.isEmpty {
            // The largest tensor that starts aligned to its element and leaves the offset aligned for
            // the element size of every tensor still to place.
            let byBytes = rest.sorted { sizes[$0].bytes > sizes[$1].bytes }
            let pick = byBytes.first { i in
                let next = offset + sizes[i].bytes
                let needed = rest.filter { $0 != i }.map { sizes[$0].itemSize }.max() ?? 1
                return offset % sizes[i].itemSize == 0 && next % needed == 0
            }
            guard let i = pick else {
                // Widest element first keeps every offset a multiple of what follows.
                let tail = rest.sorted { (sizes[$0].itemSize, sizes[$0].bytes) > (sizes[$1].itemSize, sizes[$1].bytes) }
                order += tail
                break
            }
            order.append(i)
            offset += sizes[i].bytes
            rest.removeAll { $0 == i }
        }
        return order
    }

    /// The `__metadata__` entries for `values` (non-tensor entries) and the state dict's `_metadata`.
    static func metadata(
        _ sd: StateDict, values: [(name: String, value: Value)], source: SourceInfo?, converter: String,
        extra: [(key: String, value: String)] = []
    ) -> (entries: [(String, String)], dropped: [String]) {
        // 64 zeros stand in for the data's digest, which is known once the data is written; the same width
        // keeps the layout.
        var out: [(String, String)] = [
            (SWT.MetadataKey.format, "pt"), (SWT.MetadataKey.converter, converter),
            (SWT.MetadataKey.dataSHA256, String(repeating: "0", count: 64)),
        ]
        if let s = source {
            out += [
                (SWT.MetadataKey.sourceFile, s.fileName),
                (SWT.MetadataKey.sourceBytes, String(s.bytes)),
                // 64 zeros stand in for a digest still being computed; the same width keeps the layout.
                (SWT.MetadataKey.sourceSHA256, s.sha256 ?? String(repeating: "0", count: 64)),
                (SWT.MetadataKey.sourceFormat, s.format.rawValue),
            ]
        }
        if !sd.path.isEmpty {
            out.append((SWT.MetadataKey.stateDictPath, JSON.array(sd.path.map(JSON.string)).render(indent: nil)))
        }
        if let meta = sd.metadata, let j = meta.json {
            out.append((SWT.MetadataKey.torchMetadata, j.render(indent: nil)))
        }
        var dropped: [String] = []
        var dtypes: [(String, JSON)] = []
        for (name, value) in values {
            if let j = value.json {
                out.append((SWT.MetadataKey.valuePrefix + name, j.render(indent: nil)))
            } else if case .dtype(let d) = value {
                dtypes.append((name, .string(d.rawValue)))
            } else {
                dropped.append(name)
            }
        }
        if !dtypes.isEmpty {
            out.append((SWT.MetadataKey.dtypeValues, JSON.object(dtypes).render(indent: nil)))
        }
        let tuples = sd.tupleEntries.filter { entry in entry.items.allSatisfy { $0 == nil || sd[$0!] != nil } }
        if !tuples.isEmpty {
            out.append(
                (
                    SWT.MetadataKey.tuples,
                    JSON.object(tuples.map { ($0.name, .array($0.items.map { $0.map(JSON.string) ?? .null })) })
                        .render(indent: nil)
                ))
        }
        if !dropped.isEmpty {
            out.append((SWT.MetadataKey.droppedValues, JSON.array(dropped.map(JSON.string)).render(indent: nil)))
        }
        // The caller's own entries (a model card); a key pth2swt already wrote is not repeated.
        let taken = Set(out.map(\.0))
        out += extra.filter { !taken.contains($0.key) }.map { ($0.key, $0.value) }
        return (out, dropped)
    }

    /// Writes `sd` to `path` (through a temporary file). Floating tensors (float8 ones included) are cast
    /// to `dtype` when it is given. Quantized, sparse, complex128 and data-less tensors go in as `kinds`
    /// says (see `SafetensorsPlan`). `values` are the non-tensor entries to keep as JSON in
    /// `__metadata__`; `metadata` are string entries written there as they are (keys pth2swt writes
    /// itself win).
    @discardableResult
    public static func write(
        _ original: StateDict, to path: String, dtype: DType? = nil, kinds: TensorKindOptions = .init(),
        values: [(name: String, value: Value)] = [], source: SourceInfo? = nil, converter: String,
        metadata extra: [(key: String, value: String)] = [], progress: WriteProgress? = nil
    ) throws -> Report {
        let (sd, planned) = try SafetensorsPlan.apply(original, kinds)
        let extra = planned + extra
        let tensors = sd.tensors
        func outType(_ t: Tensor) -> DType {
            (dtype != nil && (t.dtype.isFloatingPoint || t.dtype.isFloat8)) ? dtype! : t.dtype
        }
        let sizes = tensors.map {
            (bytes: $0.tensor.count * outType($0.tensor).itemSize, itemSize: outType($0.tensor).itemSize)
        }
        for (name, t) in tensors where SWT.name(of: outType(t)) == nil {
            throw CheckpointError(
                .invalidTensor(.notReal(t.dtype)), tensor: name, file: path)
        }
        let order = dataOrder(sizes)
        var begins = [Int](repeating: 0, count: tensors.count)
        var cursor = 0
        for i in order {
            begins[i] = cursor
            cursor += sizes[i].bytes
        }
        let total = cursor
        let entries = tensors.indices.map { i in
            SWTEntry(
                name: tensors[i].name, dtype: outType(tensors[i].tensor), shape: tensors[i].tensor.shape,
                begin: begins[i], end: begins[i] + sizes[i].bytes)
        }
        let (meta, dropped) = metadata(sd, values: values, source: source, converter: converter, extra: extra)
        var fields: [(String, JSON)] = [("__metadata__", .object(meta.map { ($0.0, .string($0.1)) }))]
        for e in entries {
            fields.append(
                (
                    e.name,
                    .object([
                        ("dtype", .string(SWT.name(of: e.dtype) ?? e.dtype.rawValue)),
                        ("shape", .array(e.shape.map(JSON.int))),
                        ("data_offsets", .array([.int(e.begin), .int(e.end)])),
                    ])
                ))
        }
        var header = Array(JSON.object(fields).render(indent: nil).utf8)
        let padded = (8 + header.count + SWT.alignment - 1) / SWT.alignment * SWT.alignment - 8
        header += [UInt8](repeating: UInt8(ascii: " "), count: padded - header.count)

        // Hash the source while the data is written (two cores: about the hash's whole cost saved). The
        // hashing thread belongs to this call's scope: on every way out it is cancelled if need be, and
        // joined.
        let hashPath = source.flatMap { $0.sha256 == nil ? $0.path : nil }
        let (recorded, fileBytes) = try BackgroundScope.with { scope in
            let digest = try hashPath.map { hashPath in
                try scope.start { cancellation -> String in
                    do throws(FileReadError) {
                        return try Checksums.sha256Hex(file: hashPath, isCancelled: { cancellation.isCancelled })
                    } catch {
                        throw CheckpointError(.io(error.message), file: hashPath)
                    }
                }
            }
            let out = try OutputFile(path: path)
            var length = UInt64(header.count).littleEndian
            try withUnsafeBytes(of: &length) { try out.write($0) }
            try out.write(header)
            var done = 0
            let dataHash = SHA256Hasher()
            for i in order {
                try Interruption.check()
                let (name, t) = tensors[i]
                do {
                    let target = outType(t)
                    if t.isContiguous && target == t.dtype {
                        let raw = try t.storage.bytes()
                        let bytes = UnsafeRawBufferPointer(
                            rebasing: raw[(t.storageOffset * t.dtype.itemSize)...].prefix(t.byteCount))
                        dataHash.update(bytes)
                        try out.write(bytes)
                    } else {
                        let bytes = try t.contiguousBytes(as: target)
                        bytes.withUnsafeBytes { dataHash.update($0) }
                        try out.write(bytes)
                    }
                } catch let e as CheckpointError {
                    throw e.forTensor(name)
                } catch let e as TensorError {
                    throw CheckpointError(.invalidTensor(e), tensor: name, file: path)
                }
                done += sizes[i].bytes
                progress?(done, total)
            }
            /// Writes `hex` over the 64 zeros that stand for `key`'s digest in the header.
            func patchDigest(_ key: String, _ hex: String) throws {
                let placeholder = Array(("\"" + key + "\":\"" + String(repeating: "0", count: 64) + "\"").utf8)
                guard let at = header.firstRange(of: placeholder)?.lowerBound else {
                    preconditionFailure("the \(key) placeholder is missing from the header")
                }
                try out.patch(at: 8 + at + placeholder.count - 65, Array(hex.utf8))
            }
            try patchDigest(SWT.MetadataKey.dataSHA256, dataHash.finish())
            var recorded = source?.sha256
            if let digest {
                let hex = try digest.value()
                recorded = hex
                try patchDigest(SWT.MetadataKey.sourceSHA256, hex)
            }
            try Interruption.check()
            let fileBytes = out.offset
            try out.commit()
            return (recorded, fileBytes)
        }
        return Report(
            entries: entries, dataStart: 8 + header.count, fileBytes: fileBytes, droppedValues: dropped,
            sourceSHA256: recorded)
    }
}
