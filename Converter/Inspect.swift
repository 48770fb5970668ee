import ArgumentParser
import Checkpoint
import Tensors

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a checkpoint's format, globals and tensors.",
        discussion: """
            Prints the format (tar, legacy, zip), the pickle protocol, every global the pickles name, \
            and each tensor of the state dict with dtype, shape, strides and storage offset, plus byte \
            totals. The state dict is found at the root or under 'state_dict', 'model_state_dict' or \
            'model'; other entries (epoch, optimizer, …) are listed as values.
            """
    )

    @Argument(help: "The checkpoint (.pth, .pt, .tar …).")
    var file: String

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(name: .customLong("strip-prefix"), help: "Remove this prefix from tensor names (e.g. 'module.').")
    var stripPrefix: String?

    @OptionGroup var caps: CapOptions

    func run() throws {
        do {
            let ckpt = try Checkpoint(path: file, options: try caps.loadOptions())
            let sd = try ckpt.stateDict(stripPrefix: stripPrefix)
            if json {
                print(report(ckpt, sd).render())
            } else {
                printTable(ckpt, sd)
            }
        } catch {
            throw fail(error, json: json)
        }
    }

    func report(_ ckpt: Checkpoint, _ sd: StateDict) -> JSON {
        let tensors: [JSON] = sd.tensors.map { name, t in
            .object([
                ("name", .string(name)),
                ("dtype", .string(t.dtype.rawValue)),
                ("shape", .array(t.shape.map { .int($0) })),
                ("strides", .array(t.strides.map { .int($0) })),
                ("storage_offset", .int(t.storageOffset)),
                ("storage", .string(t.storage.base.key)),
                ("bytes", .int(t.byteCount)),
                ("requires_grad", .bool(t.requiresGrad)),
                ("parameter", .bool(t.isParameter)),
            ])
        }
        let values: [(String, JSON)] = otherValues(ckpt, sd).map { ($0.name, encode($0.value)) }
        return .object([
            ("file", .string(ckpt.path)),
            ("format", .string(ckpt.format.rawValue)),
            ("file_bytes", .int(ckpt.fileSize)),
            ("pickle_protocol", ckpt.pickleProtocol.map(JSON.int) ?? .null),
            ("little_endian", .bool(ckpt.littleEndian)),
            ("globals", .array(ckpt.globals.map { .string($0) })),
            ("state_dict_path", .array(sd.path.map { .string($0) })),
            ("tensors", .array(tensors)),
            ("values", .object(values)),
            ("has_metadata", .bool(sd.metadata != nil)),
            ("header_metadata", .object(ckpt.textMetadata.map { ($0.key, .string($0.value)) })),
            ("totals", .object([
                ("tensors", .int(sd.count)),
                ("elements", .int(sd.tensors.reduce(0) { $0 + $1.tensor.count })),
                ("tensor_bytes", .int(sd.tensorBytes)),
                ("storage_bytes", .int(sd.storageBytes)),
                ("storages", .int(ckpt.storages.count)),
            ])),
        ])
    }

    func printTable(_ ckpt: Checkpoint, _ sd: StateDict) {
        let elements = sd.tensors.reduce(0) { $0 + $1.tensor.count }
        let pickle = ckpt.pickleProtocol.map { "pickle protocol \($0)" } ?? "no pickle"
        print("\(ckpt.path): \(ckpt.format.rawValue) format, \(bytes(ckpt.fileSize)), \(pickle), \(ckpt.littleEndian ? "little" : "big")-endian")
        if ckpt.format == .swt {
            print("header metadata (\(ckpt.textMetadata.count)): " + ckpt.textMetadata.map { "\($0.key)=\($0.value.count > 40 ? String($0.value.prefix(37)) + "..." : $0.value)" }.joined(separator: ", "))
        } else {
            print("globals (\(ckpt.globals.count)): \(ckpt.globals.joined(separator: ", "))")
        }
        let place = sd.path.isEmpty ? "at the root" : "under " + sd.path.map { "'\($0)'" }.joined(separator: " → ")
        print("state dict \(place): \(sd.count) tensors, \(group(elements)) elements, \(bytes(sd.tensorBytes)) in \(ckpt.storages.count) storages\(sd.metadata != nil ? ", with _metadata" : "")")
        print("")
        let rows = sd.tensors.map { name, t in
            [name, t.dtype.rawValue, "[\(t.shape.map(String.init).joined(separator: ", "))]",
             "[\(t.strides.map(String.init).joined(separator: ", "))]", String(t.storageOffset)]
        }
        let header = ["name", "dtype", "shape", "strides", "offset"]
        let widths = (0..<header.count).map { c in ([header] + rows).map { $0[c].count }.max() ?? 0 }
        for row in [header] + rows {
            print(zip(row, widths).map { $0.padding($1) }.joined(separator: "  ").trailingTrimmed)
        }
        let others = otherValues(ckpt, sd)
        if !others.isEmpty {
            print("")
            print("other values:")
            for (name, v) in others { print("  \(name): \(describe(v))") }
        }
    }
}

/// Non-tensor entries beside the tensors, then the wrapper's other entries (epoch, optimizer, …).
func otherValues(_ ckpt: Checkpoint, _ sd: StateDict) -> [(name: String, value: Value)] {
    var out = sd.values
    if let rootDict = ckpt.root.dict, !sd.path.isEmpty {
        for e in rootDict.entries where e.key.string != sd.path.first {
            out.append((e.key.string ?? describe(e.key), e.value))
        }
    }
    return out
}

// MARK: - Formatting

func bytes(_ n: Int) -> String {
    if n >= 1_000_000 { return "\(Double(n / 10_000) / 100) MB (\(group(n)) bytes)" }
    return "\(group(n)) bytes"
}

func group(_ n: Int) -> String {
    let s = String(n.magnitude)
    var out = ""
    for (i, c) in s.enumerated() {
        if i > 0, (s.count - i) % 3 == 0 { out += "," }
        out.append(c)
    }
    return (n < 0 ? "-" : "") + out
}

extension String {
    func padding(_ width: Int) -> String { self + String(repeating: " ", count: max(0, width - count)) }
    var trailingTrimmed: String {
        var s = Substring(self)
        while s.last == " " { s.removeLast() }
        return String(s)
    }
}

/// A one-line summary of a value, for the table.
func describe(_ v: Value) -> String {
    switch v {
    case .none: return "None"
    case .bool(let b): return b ? "True" : "False"
    case .int(let i): return String(i)
    case .bigInt(let s): return s
    case .float(let d): return "\(d)"
    case .complex(let r, let i): return "(\(r)+\(i)j)"
    case .string(let s): return "'\(s)'"
    case .bytes(let b): return "bytes(\(b.count))"
    case .list(let l): return "list(\(l.count))"
    case .tuple(let t): return "(" + t.map(describe).joined(separator: ", ") + ")"
    case .set(let s): return "set(\(s.count))"
    case .dict(let d):
        let tensors = d.entries.filter { $0.value.tensor != nil }.count
        return "dict(\(d.count) entries\(tensors > 0 ? ", \(tensors) tensors" : ""))"
    case .tensor(let t): return "tensor \(t.dtype.rawValue) \(t.shape)"
    case .dtype(let d): return "torch.\(d.rawValue)"
    case .device(let s): return "device('\(s)')"
    }
}

/// A value as JSON; tensors become {"tensor": {dtype, shape}}, dicts with non-string keys a list of pairs.
func encode(_ v: Value) -> JSON {
    switch v {
    case .none: return .null
    case .bool(let b): return .bool(b)
    case .int(let i): return .int(Int(i))
    case .bigInt(let s): return .string(s)
    case .float(let d): return .double(d)
    case .complex(let r, let i): return .object([("real", .double(r)), ("imag", .double(i))])
    case .string(let s): return .string(s)
    case .bytes(let b): return .object([("bytes", .int(b.count))])
    case .list(let l), .tuple(let l), .set(let l): return .array(l.map(encode))
    case .dict(let d):
        if d.entries.allSatisfy({ $0.key.string != nil }) {
            return .object(d.entries.map { ($0.key.string!, encode($0.value)) })
        }
        return .array(d.entries.map { .array([encode($0.key), encode($0.value)]) })
    case .tensor(let t):
        return .object([("tensor", .object([
            ("dtype", .string(t.dtype.rawValue)), ("shape", .array(t.shape.map { .int($0) })),
        ]))])
    case .dtype(let d): return .string("torch.\(d.rawValue)")
    case .device(let s): return .string(s)
    }
}
