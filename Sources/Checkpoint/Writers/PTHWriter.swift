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

    /// The values of a state dict a `.pth` from here keeps beside its tensors: dtypes, which quantized
    /// modules' state dicts hold (`fc._packed_params.dtype`) and `load_state_dict` needs.
    static func keeps(_ v: Value) -> Bool { if case .dtype = v { true } else { false } }

    /// Writes `sd` to `path` through a temporary file. Floating storages are cast to `dtype` when given.
    @discardableResult
    public static func write(
        _ sd: StateDict, to path: String, dtype: DType? = nil, archiveName: String = "archive",
        forceZip64: Bool = false, progress: WriteProgress? = nil
    ) throws -> Report {
        // Storages in order of first use, keyed "0", "1", … as torch.save numbers them; the components of
        // sparse tensors and the scales of per-channel quantized ones count as tensors of their own.
        var keys: [ObjectIdentifier: Int] = [:]
        var bases: [Storage] = []
        func collect(_ t: Tensor) {
            if let parts = t.sparse {
                for (_, c) in parts.components { collect(c) }
                return
            }
            guard t.hasData else { return }
            let base = t.storage.base
            if keys[ObjectIdentifier(base)] == nil {
                keys[ObjectIdentifier(base)] = bases.count
                bases.append(base)
            }
            if case .perChannel(let scales, let zeros, _)? = t.quantization?.parameters {
                collect(scales)
                collect(zeros)
            }
        }
        for (_, t) in sd.tensors { collect(t) }
        func outType(_ d: DType) -> DType { (dtype != nil && (d.isFloatingPoint || d.isFloat8)) ? dtype! : d }

        var p = PickleWriter()
        p.global("collections", "OrderedDict")
        p.emptyTuple()
        p.reduce()
        let tensors = sd.tensors
        // Tensors that came from a tuple entry, by the index of their tuple; a tuple whose tensors were not
        // all kept (--select, --exclude) is written as separate tensors.
        var tupleOf: [String: Int] = [:]
        for (i, entry) in sd.tupleEntries.enumerated() {
            let members = entry.items.compactMap { $0 }
            if members.allSatisfy({ sd[$0] != nil }) { for m in members { tupleOf[m] = i } }
        }
        for chunk in stride(from: 0, to: tensors.count, by: 1000) {
            p.mark()
            for (name, t) in tensors[chunk..<min(chunk + 1000, tensors.count)] {
                if let group = tupleOf[name] {
                    // A tuple entry (quantized Linear's packed parameters) goes back as the tuple, where its
                    // first tensor stood.
                    guard sd.tupleEntries[group].items.first(where: { $0 != nil }) == name else { continue }
                    p.string(sd.tupleEntries[group].name)
                    p.mark()
                    for item in sd.tupleEntries[group].items {
                        if let item, let member = sd[item] {
                            emit(&p, member, keys: keys, outType: outType)
                        } else {
                            p.none()
                        }
                    }
                    p.tuple()
                    continue
                }
                p.string(name)
                emit(&p, t, keys: keys, outType: outType)
            }
            p.setItems()
        }
        let kept = sd.values.filter { keeps($0.value) }
        if !kept.isEmpty {
            p.mark()
            for (name, v) in kept {
                p.string(name)
                try p.value(v, path: name)
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
        return Report(
            storages: bases.count, fileBytes: size, valuesNotWritten: sd.values.filter { !keeps($0.value) }.map(\.name))
    }

    /// One tensor as torch.save pickles it: `_rebuild_tensor_v2` on a typed storage;
    /// `_rebuild_tensor_v3` on an untyped one for the dtypes without a storage class (uint16, float8, …,
    /// which torch ≥ 2.3 reads); `_rebuild_qtensor` with its quantizer parameters (symmetric schemes as
    /// the affine ones they equal, float zero points under `per_channel_affine` as torch writes them);
    /// `_rebuild_sparse_tensor` with `_get_layout` (COO as torch 1.13 writes it; CSC, BSR and BSC as later
    /// releases do) or `_rebuild_sparse_csr_tensor` (CSR, as torch 1.13 writes it);
    /// `_rebuild_meta_tensor_no_storage` for a tensor without values.
    private static func emit(
        _ p: inout PickleWriter, _ t: Tensor, keys: [ObjectIdentifier: Int], outType: (DType) -> DType
    ) {
        if let parts = t.sparse {
            // CSR as torch 1.13 writes it (its _rebuild_sparse_tensor takes COO only); the layouts 1.13 cannot
            // save as later releases write them.
            p.global("torch._utils", parts.layout == .csr ? "_rebuild_sparse_csr_tensor" : "_rebuild_sparse_tensor")
            p.mark()
            p.global("torch.serialization", "_get_layout")
            p.mark()
            p.string("torch." + parts.layout.rawValue)
            p.tuple()
            p.reduce()
            p.mark()
            for (_, c) in parts.components { emit(&p, c, keys: keys, outType: outType) }
            p.global("torch", "Size")
            p.mark()
            ints(&p, t.shape)
            p.tuple()
            p.reduce()
            p.tuple()
            p.tuple()
            p.reduce()
            return
        }
        guard t.hasData else {
            p.global("torch._utils", "_rebuild_meta_tensor_no_storage")
            p.mark()
            p.global("torch", t.dtype.rawValue)
            ints(&p, t.shape)
            ints(&p, t.strides)
            p.bool(t.requiresGrad)
            p.tuple()
            p.reduce()
            return
        }
        let base = t.storage.base
        let stored = outType(base.dtype)
        let className = stored.storageClassName
        p.global(
            "torch._utils",
            t.quantization != nil ? "_rebuild_qtensor" : className == nil ? "_rebuild_tensor_v3" : "_rebuild_tensor_v2")
        p.mark()
        p.mark()
        p.string("storage")
        if let className {
            p.global("torch", className)
        } else {
            p.global("torch.storage", "UntypedStorage")
        }
        p.string(String(keys[ObjectIdentifier(base)]!))
        p.string("cpu")
        p.int(className == nil ? base.count * stored.itemSize : base.count)
        p.tuple()
        p.binPersId()
        p.int(t.storage.rootOffset + t.storageOffset)  // element offset into the base storage
        ints(&p, t.shape)
        ints(&p, t.strides)
        if let q = t.quantization {
            p.mark()
            switch q.parameters {
            case .perTensor(let scale, let zeroPoint):
                p.global("torch", "per_tensor_affine")
                p.double(scale)
                p.int(Int(zeroPoint))
            case .perChannel(let scales, let zeros, let axis):
                p.global("torch", "per_channel_affine")
                emit(&p, scales, keys: keys, outType: { $0 })
                emit(&p, zeros, keys: keys, outType: { $0 })
                p.int(axis)
            }
            p.tuple()
        }
        p.bool(t.requiresGrad)
        p.global("collections", "OrderedDict")
        p.emptyTuple()
        p.reduce()
        if className == nil, t.quantization == nil { p.global("torch", stored.rawValue) }
        p.tuple()
        p.reduce()
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
