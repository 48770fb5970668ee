import Checksums
import Tensors

/// Reads `.swt` / `.safetensors` files: the header is validated whole (`SWTHeader.parse`), then each
/// tensor is a view of the mapped file, with no copy.
enum SWTFormat {
    /// 8-byte length, then a JSON object: byte 8 is `{`. The length itself is checked by the reader,
    /// so a file that looks like a header with an impossible length is refused as such.
    static func looksLikeSWT(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 10 && bytes[8] == UInt8(ascii: "{")
    }

    static func load(_ file: any ByteSource, options: LoadOptions) throws -> LoadedCheckpoint {
        let bytes = try file.bytes()
        if bytes.count >= 8 {
            let declared = bytes.loadUnaligned(as: UInt64.self).littleEndian
            if declared <= UInt64(bytes.count - 8), declared > UInt64(max(options.maxHeaderBytes, 0)) {
                throw CheckpointError(
                    .limitExceeded(
                        .maxHeaderBytes, limit: options.maxHeaderBytes,
                        "the .swt header declares \(declared) bytes"), offset: 0)
            }
        }
        let header: SWTHeader
        do {
            header = try SWTHeader.parse(
                bytes, maxHeaderBytes: max(options.maxHeaderBytes, SWT.maxHeaderBytes),
                maxEntries: options.maxHeaderEntries)
        } catch {
            var offset: Int? = nil
            if case .notJSON(let e) = error { offset = e.offset }
            if case .tooManyEntries(let limit, let at) = error {
                throw CheckpointError(
                    .limitExceeded(
                        .maxHeaderEntries, limit: limit,
                        "the .swt header holds more than \(limit) entries"), offset: at)
            }
            throw CheckpointError(.swtHeader(error), offset: offset)
        }
        var dict = ValueDict(isOrdered: true)
        var storages: [Storage] = []
        storages.reserveCapacity(header.entries.count)
        for e in header.entries {
            let source = SliceSource(file, offset: header.dataStart + e.begin, count: e.end - e.begin)
            let count = e.shape.reduce(1, *)
            do {
                let storage = try Storage(key: e.name, dtype: e.dtype, count: count, source: source)
                let tensor = try Tensor(
                    storage: storage, shape: e.shape, strides: Tensor.contiguousStrides(e.shape), storageOffset: 0)
                storages.append(storage)
                dict.entries.append(.init(key: .string(e.name), value: .tensor(tensor)))
            } catch let error as TensorError {
                throw CheckpointError(.invalidTensor(error), offset: header.dataStart + e.begin, tensor: e.name)
            }
        }
        // Complex, quantized and sparse tensors that pth2swt wrote in safetensors' terms.
        try SWTKinds.restore(&dict.entries, metadata: header.metadata)
        // Non-tensor values and torch's _metadata, as pth2swt convert recorded them.
        for (key, text) in header.metadata {
            if key.hasPrefix(SWT.MetadataKey.valuePrefix) {
                let name = String(key.dropFirst(SWT.MetadataKey.valuePrefix.count))
                dict.entries.append(.init(key: .string(name), value: Value(json: try metadataJSON(key, text))))
            } else if key == SWT.MetadataKey.torchMetadata {
                dict.metadata = Value(json: try metadataJSON(key, text))
            } else if key == SWT.MetadataKey.dtypeValues {
                guard case .object(let fields) = try metadataJSON(key, text) else {
                    throw CheckpointError(.swtHeader(.badMetadata("value of '\(key)' is not a JSON object")))
                }
                for (name, v) in fields {
                    guard case .string(let spelling) = v, let dtype = DType(rawValue: spelling) else {
                        throw CheckpointError(.swtHeader(.badMetadata("\(key) gives '\(name)' no dtype")))
                    }
                    dict.entries.append(.init(key: .string(name), value: .dtype(dtype)))
                }
            }
        }
        var loaded = LoadedCheckpoint(
            root: .dict(dict), pickleProtocol: nil, globals: [], littleEndian: true, storages: storages,
            textMetadata: header.metadata)
        loaded.dataDigest = try dataDigest(header, bytes: bytes, verify: options.verifyDataDigest)
        return loaded
    }

    /// `pth2swt.data_sha256`, checked against the data region when `verify` is set.
    static func dataDigest(_ header: SWTHeader, bytes: UnsafeRawBufferPointer, verify: Bool) throws
        -> Checkpoint.DataDigest
    {
        guard let recorded = header.metadata.first(where: { $0.key == SWT.MetadataKey.dataSHA256 })?.value else {
            return .absent
        }
        guard verify else { return .unchecked(recorded) }
        let computed = Checksums.sha256Hex(UnsafeRawBufferPointer(rebasing: bytes[header.dataStart...]))
        guard computed == recorded else {
            throw CheckpointError(.dataDigestMismatch(recorded: recorded, computed: computed), offset: header.dataStart)
        }
        return .verified(recorded)
    }

    private static func metadataJSON(_ key: String, _ text: String) throws -> JSON {
        do {
            return try JSON.parse(text)
        } catch {
            throw CheckpointError(.swtHeader(.badMetadata("value of '\(key)' is not JSON: \(error)")))
        }
    }
}
