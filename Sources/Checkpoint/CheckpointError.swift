import Tensors

/// Why a checkpoint was refused. It says where: the file, the part of it (a tar member, a zip entry),
/// the byte offset, and the tensor when one is involved.
public struct CheckpointError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Thrown when the bytes end before a record does.
        case truncated(needed: Int, available: Int)
        /// Thrown when the file is none of tar, legacy or zip.
        case unknownFormat(String)
        /// Thrown when the legacy magic number is wrong.
        case badMagic(String)
        /// Thrown when a legacy/tar protocol version is not the one torch writes (1001 / 1000).
        case unsupportedVersion(String)
        /// Thrown when the pickle holds a byte that is no opcode of protocols 0–5.
        case unknownOpcode(UInt8)
        /// Thrown for a GLOBAL / STACK_GLOBAL / INST outside the allowlist.
        case refusedGlobal(module: String, name: String)
        /// Thrown when an allowlisted global is called, instantiated or built in a way torch does not allow.
        case refusedCall(String)
        /// Thrown when the pickle is ill-formed (stack underflow, missing memo entry, wrong operand type…).
        case malformedPickle(String)
        /// Thrown when a resource cap of `LoadOptions` / `PickleLimits` is reached: which cap, its value,
        /// and what went over it.
        case limitExceeded(CheckpointLimit, limit: Int, String)
        /// Thrown when an archive entry's name is absolute, climbs out with `..`, or holds a backslash.
        case unsafeEntryName(String)
        /// Thrown when an archive record is inconsistent.
        case malformedArchive(String)
        /// Thrown when a required tar member or zip entry is absent.
        case missingRecord(String)
        /// Thrown when a persistent id or tensor refers to a storage the file does not have.
        case missingStorage(String)
        /// Thrown when a persistent id is not one torch writes.
        case badPersistentID(String)
        /// Thrown when a tensor's shape, strides or offset do not fit its storage.
        case invalidTensor(TensorError)
        /// Thrown when no state dict is found, or names collide.
        case stateDict(StateDictError)
        /// Thrown when libzip refuses the archive or an entry.
        case zip(String)
        /// Thrown when the file cannot be opened, mapped or read.
        case io(String)
        /// Thrown when a `.swt` / `.safetensors` header breaks a rule of the format.
        case swtHeader(SWTHeaderError)
        /// Thrown, when `LoadOptions.verifyDataDigest` asks, when the SHA-256 of a `.swt` file's data
        /// is not the one its header records (`pth2swt.data_sha256`): the data was changed after writing.
        case dataDigestMismatch(recorded: String, computed: String)
    }

    public var kind: Kind
    /// The checkpoint's path, as given by the caller.
    public var file: String?
    /// The part of the file the offset counts from: a tar member or zip entry. Nil: the file itself.
    public var part: String?
    /// Byte offset, from the start of `part` (or of the file).
    public var offset: Int?
    /// The tensor being read, when there is one.
    public var tensor: String?

    public init(_ kind: Kind, part: String? = nil, offset: Int? = nil, tensor: String? = nil, file: String? = nil) {
        self.kind = kind
        self.part = part
        self.offset = offset
        self.tensor = tensor
        self.file = file
    }

    public var description: String {
        var place: [String] = []
        if let file { place.append(file) }
        if let part { place.append(part) }
        if let offset { place.append("byte \(offset)") }
        if let tensor { place.append("tensor '\(tensor)'") }
        let prefix = place.isEmpty ? "" : place.joined(separator: ": ") + ": "
        return prefix + kind.message
    }
}

/// The resource caps a reader enforces. Each is a field of `LoadOptions` or `PickleLimits`, and an
/// error that hits one names it.
public enum CheckpointLimit: String, Sendable, CaseIterable {
    case maxStack, maxMarks, maxMemo, maxIntegerBytes, maxDepth, maxValues
    case maxHeaderBytes, maxHeaderEntries, maxInflationRatio, maxTensorBytesRatio

    /// Where the cap lives: `PickleLimits.maxMemo`, `LoadOptions.maxHeaderBytes`, …
    public var qualifiedName: String {
        switch self {
        case .maxStack, .maxMarks, .maxMemo, .maxIntegerBytes, .maxDepth, .maxValues: "PickleLimits.\(rawValue)"
        case .maxHeaderBytes, .maxHeaderEntries, .maxInflationRatio, .maxTensorBytesRatio: "LoadOptions.\(rawValue)"
        }
    }
}

extension CheckpointError.Kind {
    public var message: String {
        switch self {
        case .truncated(let needed, let available):
            "truncated: needs \(needed) more byte\(needed == 1 ? "" : "s"), \(available) left"
        case .unknownFormat(let s): "not a PyTorch checkpoint: \(s)"
        case .badMagic(let s): "bad magic number \(s)"
        case .unsupportedVersion(let s): "unsupported version: \(s)"
        case .unknownOpcode(let op): "unknown pickle opcode 0x\(String(op, radix: 16, uppercase: false))"
        case .refusedGlobal(let module, let name):
            if let feature = NotReadYet.feature(module: module, name: name) {
                "refused global \(module).\(name): torch's weights_only unpickler accepts it, but pth2swt does not read "
                    + "\(feature) yet; nothing in the file was imported or run"
            } else {
                "refused global \(module).\(name): not in the allowlist of torch's weights_only unpickler. "
                    + "--stub-classes (LoadOptions.stubClasses) reads it as data, an inert record of its name and arguments; "
                    + "either way nothing in the file is ever imported or run"
            }
        case .refusedCall(let s): "refused: \(s)"
        case .malformedPickle(let s): "malformed pickle: \(s)"
        case .limitExceeded(let cap, let limit, let s): "limit exceeded: \(cap.qualifiedName) = \(limit): \(s)"
        case .unsafeEntryName(let n):
            "unsafe entry name '\(n)': absolute, climbing out with '..', or holding a backslash"
        case .malformedArchive(let s): "malformed archive: \(s)"
        case .missingRecord(let s): "missing \(s)"
        case .missingStorage(let s): "missing storage \(s)"
        case .badPersistentID(let s): "bad persistent id: \(s)"
        case .invalidTensor(let e): "invalid tensor: \(e)"
        case .stateDict(let e): e.description
        case .zip(let s): "zip: \(s)"
        case .io(let s): s
        case .swtHeader(let e): "invalid .swt header: \(e)"
        case .dataDigestMismatch(let recorded, let computed):
            "the data's SHA-256 is \(computed), but the header records \(recorded) (pth2swt.data_sha256): "
                + "the tensor data was changed after the file was written"
        }
    }
}

extension CheckpointError {
    /// The same error with the file path filled in (when not already set).
    func inFile(_ path: String) -> CheckpointError {
        var e = self
        if e.file == nil { e.file = path }
        return e
    }

    func forTensor(_ name: String) -> CheckpointError {
        var e = self
        if e.tensor == nil { e.tensor = name }
        return e
    }
}
