import Checksums
import Lifetime
import Tensors

/// Writes a state dict as torch.save does (zip format, PyTorch ≥ 1.6): `archive/data.pkl` (protocol 2,
/// an OrderedDict of `_rebuild_tensor_v2` calls, with `_metadata` when the state dict has it),
/// `archive/byteorder`, one stored, 64-byte-aligned entry per storage `archive/data/<key>`, and
/// `archive/version`. Tensors that shared a storage still share one (views keep their offsets and
/// strides), so `torch.load(f, weights_only=True)` gives back the same tensors.
public enum PTHWriter {
    public struct Report: Sendable {
        public var storages: Int
        public var fileBytes: Int
        /// Entries of the state dict that are not tensors (a .pth from here holds tensors only).
        public var valuesNotWritten: [String]
    }

    /// Writes `sd` to `path` through a temporary file. Floating storages are cast to `dtype` when given.
    @discardableResult
    public static func write(
        _ sd: StateDict, to path: String, dtype: DType? = nil, archiveName: String = "archive",
        forceZip64: Bool = false, progress: WriteProgress? = nil
    ) throws -> Report {
        // Storages in order of first use, keyed "0", "1", … as torch.save numbers them.
        var keys: [ObjectIdentifier: Int] = [:]
        var bases: [Storage] = []
        for (_, t) in sd.tensors {
            let base = t.storage.base
            if keys[ObjectIdentifier(base)] == nil {
                keys[ObjectIdentifier(base)] = bases.count
                bases.append(base)
            }
        }
        func outType(_ d: DType) -> DType { (dtype != nil && d.isFloatingPoint) ? dtype! : d }

        var p = PickleWriter()
        p.global("collections", "OrderedDict")
        p.emptyTuple()
        p.reduce()
        let tensors = sd.tensors
        for chunk in stride(from: 0, to: tensors.count, by: 1000) {
            p.mark()
            for (name, t) in tensors[chunk..<min(chunk + 1000, tensors.count)] {
                let base = t.storage.base
                let key = keys[ObjectIdentifier(base)]!
                p.string(name)
                p.global("torch._utils", "_rebuild_tensor_v2")
                p.mark()
                p.mark()
                p.string("storage")
                p.global("torch", outType(base.dtype).storageClassName)
                p.string(String(key))
                p.string("cpu")
                p.int(base.count)
                p.tuple()
                p.binPersId()
                p.int(t.storage.rootOffset + t.storageOffset)  // element offset into the base storage
                ints(&p, t.shape)
                ints(&p, t.strides)
                p.bool(t.requiresGrad)
                p.global("collections", "OrderedDict")
                p.emptyTuple()
                p.reduce()
                p.tuple()
                p.reduce()
            }
            p.setItems()
        }
        if let meta = sd.metadata {
            p.emptyDict()
            p.mark()
            p.string("_metadata")
            try p.value(meta, path: "_metadata")
            p.setItems()
            p.build()
        }
        p.stop()

        let out = try OutputFile(path: path)
        var zip = ZipWriter(out, forceZip64: forceZip64)
        try zip.add("\(archiveName)/data.pkl", bytes: p.bytes)
        try zip.add("\(archiveName)/byteorder", bytes: Array("little".utf8))
        let total = bases.reduce(0) { $0 + $1.count * outType($1.dtype).itemSize }
        var done = 0
        for (i, base) in bases.enumerated() {
            try Interruption.check()
            let target = outType(base.dtype)
            // One storage at a time: a cast copy lives only while its entry is written.
            let storage = target == base.dtype ? base : try base.cast(to: target)
            let bytes = try storage.bytes()
            let crc = Checksums.crc32(bytes)
            try zip.add("\(archiveName)/data/\(i)", size: bytes.count, crc: crc) { try out.write(bytes) }
            done += bytes.count
            progress?(done, total)
        }
        try zip.add("\(archiveName)/version", bytes: Array("3\n".utf8))
        try zip.finish()
        try Interruption.check()
        let size = out.offset
        try out.commit()
        return Report(storages: bases.count, fileBytes: size, valuesNotWritten: sd.values.map(\.name))
    }

    private static func ints(_ p: inout PickleWriter, _ values: [Int]) {
        if values.isEmpty {
            p.emptyTuple()
            return
        }
        p.mark()
        for v in values { p.int(v) }
        p.tuple()
    }
}
