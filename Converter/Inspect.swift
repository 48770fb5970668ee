import ArgumentParser
import Checkpoint
import Tensors

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a checkpoint's format, globals and tensors.",
        discussion: """
            Prints the format (tar, legacy, zip, TorchScript, .swt), the pickle protocol, every global \
            the pickles name, every state dict the file holds (candidates, with their paths), and each \
            tensor of the one picked with dtype, shape, strides and storage offset, plus byte totals. \
            Other entries (epoch, optimizer, …) are listed as values.

            The state dict is picked as convert, predict and finetune pick it: the root when it holds \
            the most tensors, else the only candidate outside an optimizer or scheduler, else the one \
            under the best-known key (state_dict, model_state_dict, model_state, model, net, …). \
            --key a.b.c names another; --all-tensors lists every tensor and numpy array in the file by \
            its dotted path instead.

            A global outside the allowlist is refused. With --stub-classes it is read as an inert \
            record (its name and the arguments the file gave) and listed; a whole pickled nn.Module \
            then gives the names its state_dict() would. Nothing is imported or run in either mode.

            Examples:
              pth2swt inspect resnet18-5c106cde.pth
              pth2swt inspect checkpoint.pt --key model.ema --json
              pth2swt inspect whole_model.pth --stub-classes
            """
    )

    @Argument(help: "The checkpoint (.pth, .pt, .tar …).")
    var file: String

    @Flag(help: "Print one JSON object instead of a table.")
    var json = false

    @Option(name: .customLong("strip-prefix"), help: "Remove this prefix from tensor names (e.g. 'module.').")
    var stripPrefix: String?

    @Flag(
        name: .customLong("all-tensors"),
        help: "List every tensor and numpy array in the file, named by its dotted path.")
    var allTensors = false

    @Flag(
        help: ArgumentHelp(
            "Read every tensor's data and check what the file records of it: a .swt's SHA-256 (pth2swt.data_sha256), a zip's CRC-32s.",
            discussion: "Exits 1 when the data does not match; says so when the file records no checksum."))
    var check = false

    @OptionGroup var caps: CapOptions
    @OptionGroup var source: SourceOptions

    func validate() throws {
        if allTensors, source.key != nil { throw ValidationError("--all-tensors and --key exclude each other") }
    }

    func run() throws {
        do {
            var options = source.loadOptions(try caps.loadOptions())
            options.verifyDataDigest = check
            let ckpt = try Checkpoint(path: file, options: options)
            let sd = allTensors ? try ckpt.allTensors() : try ckpt.stateDict(key: source.key, stripPrefix: stripPrefix)
            // Reading each storage checks a stored zip entry's CRC-32 (LoadOptions.verifyCRC) and every size.
            if check { for s in ckpt.storages { _ = try s.bytes() } }
            if json {
                var fields = report(ckpt, sd)
                if check, case .object(var f) = fields {
                    f.append(("check", checkReport(ckpt).json))
                    fields = .object(f)
                }
                print(fields.render())
            } else {
                printTable(ckpt, sd)
                if check {
                    print("")
                    print("check: \(checkReport(ckpt).text)")
                }
            }
        } catch {
            throw fail(error, json: json)
        }
    }

    /// What `--check` verified, once every storage was read without error.
    func checkReport(_ ckpt: Checkpoint) -> (text: String, json: JSON) {
        let n = ckpt.storages.count
        let what: String
        var digest: JSON = .null
        switch ckpt.dataDigest {
        case .verified(let d):
            what = "the data's SHA-256 is the one the header records (\(d)); \(n) tensors read"
            digest = .string(d)
        case .unchecked, .absent:
            what =
                ckpt.format == .zip
                ? "\(n) storages read; every stored entry's CRC-32 matched"
                : "\(n) storages read; the file records no checksum of its data (\(ckpt.format.rawValue)), so nothing more was checked"
        }
        return (
            what,
            .object([
                ("ok", .bool(true)), ("storages_read", .int(n)), ("data_sha256", digest),
                ("crc32_checked", .bool(ckpt.format == .zip)), ("message", .string(what)),
            ])
        )
    }

    func report(_ ckpt: Checkpoint, _ sd: StateDict) -> JSON {
        let tensors: [JSON] = sd.tensors.map { name, t in
            var kind: [(String, JSON)] = []
            if let q = t.quantization {
                var fields: [(String, JSON)] = [("qscheme", .string(q.effectiveScheme.rawValue))]
                switch q.parameters {
                case .perTensor(let scale, let zeroPoint):
                    fields += [("scale", .double(scale)), ("zero_point", .int(Int(zeroPoint)))]
                case .perChannel(let scales, let zeros, let axis):
                    fields += [
                        ("axis", .int(axis)), ("scales", .int(scales.count)),
                        ("scales_dtype", .string(scales.dtype.rawValue)),
                        ("zero_points_dtype", .string(zeros.dtype.rawValue)),
                    ]
                }
                kind.append(("quantization", .object(fields)))
            }
            if let s = t.sparse {
                kind.append(
                    (
                        "sparse",
                        .object(
                            [("layout", .string(s.layout.rawValue)), ("nnz", .int(s.nnz))]
                                + s.components.map { c in
                                    (
                                        c.name,
                                        .object([
                                            ("dtype", .string(c.tensor.dtype.rawValue)),
                                            ("shape", .array(c.tensor.shape.map { .int($0) })),
                                        ])
                                    )
                                })
                    ))
            }
            if let absent = t.storage.source as? AbsentBytes {
                kind += [("has_data", .bool(false)), ("without_data", .string(absent.what))]
            }
            return .object(
                [
                    ("name", .string(name)),
                    ("dtype", .string(t.dtype.rawValue)),
                    ("shape", .array(t.shape.map { .int($0) })),
                    ("strides", .array(t.strides.map { .int($0) })),
                    ("storage_offset", .int(t.storageOffset)),
                    ("storage", .string(t.storage.base.key)),
                    ("bytes", .int(t.byteCount)),
                    ("requires_grad", .bool(t.requiresGrad)),
                    ("parameter", .bool(t.isParameter)),
                ] + kind)
        }
        let values: [(String, JSON)] = otherValues(ckpt, sd).map { ($0.name, $0.value.reportJSON) }
        return .object([
            ("file", .string(ckpt.path)),
            ("format", .string(ckpt.format.rawValue)),
            ("file_bytes", .int(ckpt.fileSize)),
            ("pickle_protocol", ckpt.pickleProtocol.map(JSON.int) ?? .null),
            ("little_endian", .bool(ckpt.littleEndian)),
            ("torchscript", .bool(ckpt.isTorchScript)),
            ("globals", .array(ckpt.globals.map { .string($0) })),
            ("stubbed_classes", .array(ckpt.stubbedClasses.map { .string($0) })),
            ("storage_locations", .array(locations(ckpt).map { .string($0) })),
            (
                "candidates",
                .array(
                    sd.candidates.map { c in
                        .object([
                            ("path", .string(c.dottedPath)), ("kind", .string(c.kind.rawValue)),
                            ("tensors", .int(c.tensorCount)), ("picked", .bool(!allTensors && c.path == sd.path)),
                        ])
                    })
            ),
            ("all_tensors", .bool(allTensors)),
            ("state_dict_path", .array(sd.path.map { .string($0) })),
            ("state_dict_kind", .string(sd.kind.rawValue)),
            ("tensors", .array(tensors)),
            ("values", .object(values)),
            ("has_metadata", .bool(sd.metadata != nil)),
            ("header_metadata", .object(ckpt.textMetadata.map { ($0.key, .string($0.value)) })),
            (
                "totals",
                .object([
                    ("tensors", .int(sd.count)),
                    ("elements", .int(sd.tensors.reduce(0) { $0 + $1.tensor.count })),
                    ("tensor_bytes", .int(sd.tensorBytes)),
                    ("storage_bytes", .int(sd.storageBytes)),
                    ("storages", .int(ckpt.storages.count)),
                ])
            ),
        ])
    }

    func printTable(_ ckpt: Checkpoint, _ sd: StateDict) {
        let elements = sd.tensors.reduce(0) { $0 + $1.tensor.count }
        let pickle = ckpt.pickleProtocol.map { "pickle protocol \($0)" } ?? "no pickle"
        print(
            "\(ckpt.path): \(ckpt.format.rawValue) format, \(bytes(ckpt.fileSize)), \(pickle), \(ckpt.littleEndian ? "little" : "big")-endian"
        )
        if ckpt.format == .swt {
            print(
                "header metadata (\(ckpt.textMetadata.count)): "
                    + ckpt.textMetadata.map {
                        "\($0.key)=\($0.value.count > 40 ? String($0.value.prefix(37)) + "..." : $0.value)"
                    }.joined(separator: ", "))
        } else {
            print("globals (\(ckpt.globals.count)): \(ckpt.globals.joined(separator: ", "))")
        }
        if ckpt.isTorchScript {
            print(
                "TorchScript archive: its __torch__ classes are read as records (module, name, attributes); code/ is read as text for __parameters__ and __buffers__, never compiled or run"
            )
        }
        if !ckpt.stubbedClasses.isEmpty {
            let label = ckpt.isTorchScript && !source.stubClasses ? "TorchScript classes" : "stubbed classes"
            print(
                "\(label) (\(ckpt.stubbedClasses.count)), read as inert records, never imported or run: \(ckpt.stubbedClasses.joined(separator: ", "))"
            )
        }
        let where_ = locations(ckpt)
        if where_ != ["cpu"], !where_.isEmpty {
            print(
                "storage locations: \(where_.joined(separator: ", ")) (recorded; every storage is read into memory, as torch.load(map_location='cpu'))"
            )
        }
        let candidates = sd.candidates
        if candidates.count > 1 || allTensors {
            print("state dicts (\(candidates.count)):")
            for c in candidates {
                let mark = !allTensors && c.path == sd.path ? "  <- read" : ""
                print(
                    "  \(c.dottedPath.isEmpty ? "(root)" : c.dottedPath)  \(c.kind.rawValue), \(c.tensorCount) tensors\(mark)"
                )
            }
        }
        let place =
            allTensors
            ? "every tensor in the file, by its path"
            : sd.path.isEmpty ? "at the root" : "under " + sd.path.map { "'\($0)'" }.joined(separator: " → ")
        let kind =
            allTensors
            ? ""
            : sd.kind == .module
                ? " (a module, named as its state_dict() names them)"
                : sd.kind == .tensor ? " (a bare tensor, named '\(bareTensorName)')" : ""
        print(
            "state dict \(place)\(kind): \(sd.count) tensors, \(group(elements)) elements, \(bytes(sd.tensorBytes)) in \(Set(sd.tensors.map { ObjectIdentifier($0.tensor.storage.base) }).count) storages\(sd.metadata != nil ? ", with _metadata" : "")"
        )
        print("")
        // A "kind" column appears when some tensor is quantized, sparse or without values.
        let kinds = sd.tensors.map { $0.tensor.kindSummary }
        let showKind = kinds.contains { $0 != nil }
        let rows = zip(sd.tensors, kinds).map { entry, kind in
            [
                entry.name, entry.tensor.dtype.rawValue,
                "[\(entry.tensor.shape.map(String.init).joined(separator: ", "))]",
                "[\(entry.tensor.strides.map(String.init).joined(separator: ", "))]",
                String(entry.tensor.storageOffset),
            ] + (showKind ? [kind ?? ""] : [])
        }
        let header = ["name", "dtype", "shape", "strides", "offset"] + (showKind ? ["kind"] : [])
        let widths = (0..<header.count).map { c in ([header] + rows).map { $0[c].count }.max() ?? 0 }
        for row in [header] + rows {
            print(zip(row, widths).map { $0.padding($1) }.joined(separator: "  ").trailingTrimmed)
        }
        let others = otherValues(ckpt, sd)
        if !others.isEmpty {
            print("")
            print("other values:")
            for (name, v) in others { print("  \(name): \(v.summary)") }
        }
    }
}

/// The distinct locations the file's storages were saved from, in file order.
func locations(_ ckpt: Checkpoint) -> [String] {
    var seen = Set<String>()
    return ckpt.storages.map(\.location).filter { seen.insert($0).inserted }
}

/// Non-tensor entries beside the tensors, then the wrapper's other entries (epoch, optimizer, …).
func otherValues(_ ckpt: Checkpoint, _ sd: StateDict) -> [(name: String, value: Value)] {
    var out = sd.values
    if let rootDict = ckpt.root.dict, !sd.path.isEmpty {
        for e in rootDict.entries where e.key.string != sd.path.first {
            out.append((e.key.string ?? e.key.summary, e.value))
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
