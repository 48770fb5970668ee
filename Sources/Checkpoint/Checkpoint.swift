import Synchronization
import Tensors

/// The on-disk format of a PyTorch checkpoint.
public enum CheckpointFormat: String, Sendable, Codable, CaseIterable {
    /// PyTorch ≤ 0.1.x: a PAX tar of sys_info, pickle, tensors, storages.
    case tar
    /// PyTorch 0.1.10 – 1.5 (and `_use_new_zipfile_serialization=False`): stacked pickles.
    case legacy
    /// PyTorch ≥ 1.6: a zip of data.pkl and data/<key>.
    case zip
    /// safetensors' layout (`.swt`, `.safetensors`): a JSON header, then the data. No pickle.
    case swt
}

/// How a checkpoint is read, and the caps that keep a hostile file from taking unbounded memory or time.
/// Every cap has a safe default that real checkpoints stay far below; an error that hits one names it
/// (`CheckpointError.Kind.limitExceeded`).
public struct LoadOptions: Sendable {
    /// Caps on each pickle: stack, marks, memo, integer size, nesting, values made.
    public var limits = PickleLimits()
    /// The most bytes of a header read into memory: a `.swt` JSON header, a zip's `data.pkl`.
    /// safetensors' own limit, 100 MB (resnet18's `data.pkl` is 11,810 bytes).
    public var maxHeaderBytes = 100_000_000
    /// The most entries (tensors, plus `__metadata__`) a `.swt` header may hold. Each costs a few hundred
    /// bytes once parsed, so this bounds the memory a header takes whatever its byte size; real files
    /// hold thousands.
    public var maxHeaderEntries = 200_000
    /// The uncompressed bytes a zip's compressed entries declare, all together, may be at most this many
    /// times the file's size, plus 16 MiB. Checked from the central directory before anything is
    /// inflated, so a zip bomb is refused without inflating it. torch writes its entries stored; weights
    /// deflate to about 0.9 of their size.
    public var maxInflationRatio = 32
    /// The bytes all tensors of the checkpoint span when read (`shape` product × item size, summed over
    /// every tensor reference) may be at most this many times the file's size, plus 64 MiB. Views and
    /// shared storages count once per tensor; a stride-0 `expand` counts its logical size. Reading them
    /// is what allocates, so this bounds a reader's memory by the file it was given.
    public var maxTensorBytesRatio = 16
    /// Check the CRC-32 of each stored zip entry the first time its storage is read. torch does not
    /// (its miniz is built without CRC checks); turning this off matches torch and skips one pass over
    /// the data. Deflated entries are always checked by libzip.
    public var verifyCRC = true
    /// Read globals outside the allowlist as inert records (`ObjectRecord`) instead of refusing the
    /// file: whole pickled models, Lightning and omegaconf objects, `argparse.Namespace`. Nothing is
    /// imported or run either way: the pickle machine has no way to execute anything, and a record is
    /// only the name and the arguments the file gave. Off by default, so that a file naming something
    /// unexpected is refused loudly.
    public var stubClasses = false
    /// For a `.swt` whose header records the SHA-256 of its data (`pth2swt.data_sha256`, in every
    /// file pth2swt writes): hash the data on load and refuse the file when it differs
    /// (`CheckpointError.Kind.dataDigestMismatch`). One pass over the file; off by default.
    /// `Checkpoint.dataDigest` says what was found.
    public var verifyDataDigest = false
    public init() {}
}

/// A checkpoint file, read: its format, the globals its pickles name, and the whole object it holds
/// as a typed `Value` tree whose tensors point at lazily read storages.
///
/// ```swift
/// let ckpt = try Checkpoint(path: "resnet18-5c106cde.pth")
/// let sd = try ckpt.stateDict()
/// let w = try sd["conv1.weight"]!.float32()   // 9408 floats
/// ```
public final class Checkpoint: Sendable {
    public let path: String
    public let format: CheckpointFormat
    public let fileSize: Int
    /// The protocol of the pickle holding the object (tar: the `pickle` member; zip: data.pkl); nil for
    /// `.swt`, which has no pickle.
    public let pickleProtocol: Int?
    /// Every global the file's pickles name, `module.name`, in order of first use.
    public let globals: [String]
    /// False when the file says its storages are big-endian (they are converted on read).
    public let littleEndian: Bool
    /// What `torch.load` would return.
    public let root: Value
    /// Every storage the file defines, in file order (for tar and legacy files, including ones no
    /// tensor uses).
    public let storages: [Storage]
    /// A `.swt` header's `__metadata__`, in order (empty for the pickle formats).
    public let textMetadata: [(key: String, value: String)]
    /// The globals read as records (`LoadOptions.stubClasses`, and a TorchScript archive's
    /// `__torch__` classes), `module.name`, in order of first use.
    public let stubbedClasses: [String]
    /// True for a TorchScript archive (`torch.jit.save`): a zip with `code/` and `constants.pkl`.
    public let isTorchScript: Bool
    /// A TorchScript archive's `constants.pkl` (a tuple; its tensors are not part of `state_dict()`).
    public let scriptConstants: Value?
    /// Whether the file records a digest of its data, and whether it was checked.
    public let dataDigest: DataDigest

    /// A `.swt` header's `pth2swt.data_sha256`, and what became of it.
    public enum DataDigest: Sendable, Equatable {
        /// The file records none (other formats, and `.swt` files other tools wrote).
        case absent
        /// Recorded, not checked (`LoadOptions.verifyDataDigest` was off).
        case unchecked(String)
        /// Recorded, and the data hashes to it.
        case verified(String)
    }

    /// Opens and parses `path`. Throws a `CheckpointError` naming the file, the part and the offset.
    public convenience init(path: String, options: LoadOptions = LoadOptions()) throws {
        try self.init(source: try MappedFile(path: path), name: path, options: options)
    }

    /// Parses a checkpoint whose bytes are `source` (a mapped file, or bytes in memory: `OwnedBytes`).
    /// `name` stands for the path in errors and in `path`. With `format` nil the format is recognised
    /// from the first bytes; otherwise the bytes are read as that format and nothing else.
    public init(
        source: any ByteSource, name: String, format: CheckpointFormat? = nil,
        options: LoadOptions = LoadOptions()
    ) throws {
        do {
            let bytes = try source.bytes()
            guard let format = format ?? Checkpoint.recognise(bytes) else {
                let head = bytes.prefix(8).map { String($0, radix: 16) }.joined(separator: " ")
                throw CheckpointError(
                    .unknownFormat(
                        bytes.isEmpty
                            ? "the file is empty"
                            : "starts with bytes [\(head)], which is neither zip, tar, a pickle nor a .swt header"),
                    offset: 0)
            }
            let loaded: LoadedCheckpoint =
                switch format {
                case .swt: try SWTFormat.load(source, options: options)
                case .zip: try ZipFormat.load(source, name: name, options: options)
                case .tar: try TarFormat.load(source, options: options)
                case .legacy: try LegacyFormat.load(source, options: options)
                }
            try Checkpoint.checkTensorBytes(
                .tuple([loaded.root, loaded.scriptConstants ?? .none]), fileBytes: bytes.count, options: options)
            self.path = name
            self.format = format
            self.fileSize = bytes.count
            self.pickleProtocol = loaded.pickleProtocol
            self.globals = loaded.globals.map(\.qualifiedName)
            self.littleEndian = loaded.littleEndian
            self.root = loaded.root
            self.storages = loaded.storages
            self.textMetadata = loaded.textMetadata
            self.stubbedClasses = loaded.stubbed.map(\.qualifiedName)
            self.isTorchScript = loaded.isTorchScript
            self.scriptConstants = loaded.scriptConstants
            self.dataDigest = loaded.dataDigest
        } catch let e as CheckpointError {
            throw e.inFile(name)
        }
    }

    /// The format the first bytes announce: a zip signature, a ustar header with a good checksum, a
    /// `.swt` length followed by `{`, or a pickle's PROTO opcode (legacy).
    static func recognise(_ bytes: UnsafeRawBufferPointer) -> CheckpointFormat? {
        if ZipArchive.looksLikeZip(bytes) { return .zip }
        if TarArchive.looksLikeTar(bytes) { return .tar }
        if SWTFormat.looksLikeSWT(bytes) { return .swt }
        if bytes.count >= 2, bytes[0] == 0x80 { return .legacy }
        return nil
    }

    /// `LoadOptions.maxTensorBytesRatio`: the bytes every tensor reference spans, summed, against the
    /// file's size. Reading a tensor allocates its logical size, so this is what bounds a reader's memory.
    static func checkTensorBytes(_ root: Value, fileBytes: Int, options: LoadOptions) throws {
        let ratio = options.maxTensorBytesRatio
        let cap = byteCap(fileBytes: fileBytes, ratio: ratio, plus: 64 << 20)
        var total = 0
        // Depth-first, iteratively; the tree is already bounded by PickleLimits (depth, values).
        var pending: [(value: Value, name: String?)] = [(root, nil)]
        while let (v, name) = pending.popLast() {
            switch v {
            case .tensor(let t):
                // A tensor saved without values is never read; a sparse one counts its dense values, which
                // writers and readers expand, and its components.
                var bytes = t.hasData ? t.byteCount : 0
                for c in t.sparse?.components ?? [] { bytes = bytes &+ c.tensor.byteCount }
                let (sum, o) = total.addingReportingOverflow(bytes)
                guard !o, sum <= cap else {
                    throw CheckpointError(
                        .limitExceeded(
                            .maxTensorBytesRatio, limit: ratio,
                            "the tensors would span more than \(cap) bytes when read (\(ratio) × the file's \(fileBytes) bytes + 64 MiB)"
                        ),
                        tensor: name ?? "?")
                }
                total = sum
            case .list(let items), .tuple(let items), .set(let items):
                for x in items.reversed() { pending.append((x, name)) }
            case .dict(let d):
                for e in d.entries.reversed() { pending.append((e.value, e.key.string ?? name)) }
                for e in d.attributes.reversed() { pending.append((e.value, e.key.string ?? name)) }
                if let m = d.metadata { pending.append((m, "_metadata")) }
            default:
                break
            }
        }
    }

    /// The state dict inside the checkpoint: the one `key` names (a candidate's dotted path), or the
    /// obvious one (see `StateDict.pick`). `sd.path` says where it was found, `sd.candidates` lists
    /// every state dict the file holds.
    public func stateDict(key: String? = nil, stripPrefix: String? = nil) throws -> StateDict {
        do {
            return try StateDict(from: root, key: key, stripPrefix: stripPrefix)
        } catch let e as StateDictError {
            throw CheckpointError(.stateDict(e), file: path)
        }
    }

    /// Every state dict candidate in the file (`Value.stateDictCandidates()`).
    public var candidates: [StateDictCandidate] { root.stateDictCandidates() }

    /// Every tensor and numpy array the file holds, named by its dotted path from the root (see
    /// `Value.allTensors`); a TorchScript archive's constants are named `constants.N`.
    public func allTensors() throws -> StateDict {
        do {
            var sd = try root.allTensors()
            if let constants = scriptConstants {
                for (name, t) in try constants.allTensors(prefix: ["constants"]).tensors {
                    try sd.insert(t, named: name)
                }
            }
            sd.candidates = candidates
            return sd
        } catch let e as StateDictError {
            throw CheckpointError(.stateDict(e), file: path)
        }
    }
}

/// What each format reader hands back.
struct LoadedCheckpoint {
    var root: Value
    var pickleProtocol: Int?
    var globals: [PickleGlobal]
    var littleEndian: Bool
    var storages: [Storage]
    var textMetadata: [(key: String, value: String)] = []
    var stubbed: [PickleGlobal] = []
    var isTorchScript = false
    var scriptConstants: Value?
    var dataDigest: Checkpoint.DataDigest = .absent
}

/// Globals gathered across the several pickles of one file, first use first.
struct GlobalLog {
    private(set) var list: [PickleGlobal] = []
    private var seen: Set<PickleGlobal> = []
    mutating func add(_ gs: [PickleGlobal]) {
        for g in gs where seen.insert(g).inserted { list.append(g) }
    }
}

/// Runs one pickle with `host`; `finish` sees the raw result while its containers are alive.
func runPickle<R>(
    _ reader: inout ByteReader, host: TorchHost, options: LoadOptions, log: inout GlobalLog,
    _ finish: (PickleValue) throws -> R
) throws -> (result: R, proto: Int) {
    let keys = KeyLimits(options.limits, pickleBytes: reader.remaining)
    host.keyLimits = keys
    let machine = PickleMachine(host: host, limits: options.limits)
    machine.keyLimits = keys
    defer { log.add(machine.globals) }
    do {
        let r = try machine.load(&reader, finish: finish)
        return (r, machine.proto)
    } catch var e as CheckpointError {
        // Thrown while converting the result: the pickle as a whole.
        if e.part == nil, e.offset == nil { e.part = reader.part }
        throw e
    }
}

/// Runs one pickle and converts its result to a `Value`.
func runPickle(
    _ reader: inout ByteReader, host: TorchHost, options: LoadOptions, log: inout GlobalLog
) throws -> (result: Value, proto: Int) {
    let size = reader.remaining
    return try runPickle(&reader, host: host, options: options, log: &log) {
        try TorchHost.value(
            $0, maxDepth: options.limits.maxDepth, maxValues: max(options.limits.maxValues, 2 * size),
            stubClasses: host.stubClasses, scriptClasses: host.scriptClasses)
    }
}

/// A storage whose bytes come later in the file than the pickle that declares it (legacy format).
final class DeferredSource: ByteSource {
    let count: Int
    private let bound = Mutex<(any ByteSource)?>(nil)
    let key: String

    init(key: String, count: Int) {
        self.key = key
        self.count = count
    }

    var isBound: Bool { bound.withLock { $0 != nil } }

    func bind(_ source: any ByteSource) {
        bound.withLock { $0 = source }
    }

    func bytes() throws -> UnsafeRawBufferPointer {
        guard let s = bound.withLock({ $0 }) else { throw CheckpointError(.missingStorage("'\(key)' was never read")) }
        return try s.bytes()
    }
}

/// The byte order a sys_info dict declares (`little_endian`), true when absent.
func littleEndian(fromSysInfo v: Value) -> Bool {
    if let d = v.dict, case .bool(let le)? = d["little_endian"] { return le }
    return true
}

/// Wraps a source so big-endian elements read as little-endian.
/// A complex number's parts are swapped one by one.
func nativeOrder(_ source: any ByteSource, dtype: DType, littleEndian: Bool) -> any ByteSource {
    let size = dtype.complexPart?.itemSize ?? dtype.itemSize
    return littleEndian || size == 1 ? source : ByteSwappedSource(source, itemSize: size)
}

/// The dtype a storage-type global names: a legacy storage class or (newer zip files) a dtype.
func storageDType(_ v: PickleValue, _ what: String) throws -> DType {
    guard case .global(let g) = v, let kind = TorchGlobal(g) else {
        throw CheckpointError(.badPersistentID("\(what): storage type is a \(v.typeName)"))
    }
    switch kind {
    case .storageClass(let dt), .dtype(let dt): return dt
    default: throw CheckpointError(.badPersistentID("\(what): \(g.qualifiedName) is not a storage type"))
    }
}

/// A persistent id's string parts may be bytes in files written by Python 2.
func asciiString(_ v: PickleValue) -> String? {
    switch v {
    case .string(let s): s
    case .bytes(let b): String(decoding: b, as: UTF8.self)
    case .int(let i): String(i)
    default: nil
    }
}

/// `ratio × fileBytes + plus`, saturating at `Int.max`.
func byteCap(fileBytes: Int, ratio: Int, plus: Int) -> Int {
    let (scaled, o1) = fileBytes.multipliedReportingOverflow(by: max(ratio, 0))
    let (sum, o2) = scaled.addingReportingOverflow(plus)
    return o1 || o2 ? Int.max : sum
}

extension LoadOptions {
    /// The value of a cap, by name.
    public func value(of cap: CheckpointLimit) -> Int {
        switch cap {
        case .maxStack: limits.maxStack
        case .maxMarks: limits.maxMarks
        case .maxMemo: limits.maxMemo
        case .maxIntegerBytes: limits.maxIntegerBytes
        case .maxDepth: limits.maxDepth
        case .maxValues: limits.maxValues
        case .maxHeaderBytes: maxHeaderBytes
        case .maxHeaderEntries: maxHeaderEntries
        case .maxInflationRatio: maxInflationRatio
        case .maxTensorBytesRatio: maxTensorBytesRatio
        }
    }

    /// Sets a cap by name (the command line's `--cap NAME=VALUE`).
    public mutating func set(_ cap: CheckpointLimit, to value: Int) {
        switch cap {
        case .maxStack: limits.maxStack = value
        case .maxMarks: limits.maxMarks = value
        case .maxMemo: limits.maxMemo = value
        case .maxIntegerBytes: limits.maxIntegerBytes = value
        case .maxDepth: limits.maxDepth = value
        case .maxValues: limits.maxValues = value
        case .maxHeaderBytes: maxHeaderBytes = value
        case .maxHeaderEntries: maxHeaderEntries = value
        case .maxInflationRatio: maxInflationRatio = value
        case .maxTensorBytesRatio: maxTensorBytesRatio = value
        }
    }
}
