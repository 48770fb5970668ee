import ArgumentParser
import Checkpoint
import Kernels
import Lifetime
import Tensors

#if canImport(Glibc)
    import Glibc
#endif

struct Convert: ParsableCommand, Cooperative {
    static let configuration = CommandConfiguration(
        abstract: "Convert a checkpoint to .swt (safetensors layout) or to a .pth torch.load reads.",
        discussion: """
            IN may be any format pth2swt reads: tar (PyTorch 0.1, e.g. resnet18-5c106cde.pth), legacy, \
            zip, or .swt/.safetensors. OUT's extension picks what is written:
              .swt, .safetensors   safetensors' layout, data 64-byte aligned
              .pth, .pt            torch.save's zip format; views keep sharing storage

            Quantized tensors (qint8, quint8, …) go into a .swt as their integers, one per element, with \
            NAME.scale and NAME.zero_point beside them and the dtype, qscheme and axis in the header \
            (pth2swt.quantized); --dequantize writes float32 values equal to torch's dequantize() instead, \
            to either output. Sparse tensors go into a .swt as dense values, or with --keep-sparse as their \
            components (NAME.indices, NAME.values, …); a .pth keeps them sparse. complex128 goes into a \
            .swt as float64 pairs (a trailing dimension of 2), named in pth2swt.dtypes. Tensors saved \
            without values (meta tensors) have nothing to write: a .pth keeps them as meta tensors, a .swt \
            refuses them unless --skip-meta leaves them out.

            A .swt header's __metadata__ records the source file's name, size, sha256 and format, and \
            the checkpoint's non-tensor values (epoch, …) as JSON. A .pth holds the state dict's tensors \
            (and torch's _metadata); torch.load(f, weights_only=True) reads it. Values that a target \
            cannot hold are named in a note, never dropped silently.

            The output goes to a temporary file beside OUT and is renamed into place at the end, so a \
            failed or interrupted conversion leaves no partial file: Ctrl-C (SIGINT) or SIGTERM stops it, \
            removes the temporary file and exits with status 130 (143 for SIGTERM).

            Which tensors: the state dict inspect marks as read (the obvious candidate; --key a.b.c \
            names another), or with --all-tensors every tensor and numpy array in the file, each \
            named by its dotted path from the root. --stub-classes reads classes outside the \
            allowlist (a whole pickled model, Lightning or omegaconf objects) as inert records; \
            nothing is imported or run.

            Examples:
              pth2swt convert resnet18-5c106cde.pth resnet18.swt
              pth2swt convert whole_model.pth weights.swt --stub-classes
              pth2swt convert train_ckpt.pt ema.swt --key ema
              pth2swt convert resnet18.swt resnet18-f16.pth --dtype float16
              pth2swt convert ckpt.pth backbone.swt --strip-prefix module. --exclude 'fc.*'
            """
    )

    @Argument(
        help: ArgumentHelp(
            "IN OUT: the checkpoint to read and the file to write (.swt, .safetensors, .pth or .pt). With --out-dir, the checkpoints to read.",
            valueName: "paths"))
    var paths: [String] = []

    @Option(
        name: .customLong("out-dir"),
        help: "Convert every path given into this directory, each as NAME.swt (or NAME.pth with --to pth).")
    var outDir: String?

    @Option(help: "With --out-dir: the format to write, swt or pth.")
    var to: OutputFormat = .swt

    @Option(help: Shard.help)
    var shard: Shard?

    @Option(help: "Cast floating tensors to float32, float16 or bfloat16 (torch's rounding).")
    var dtype: CastType?

    @Option(name: .customLong("strip-prefix"), help: "Remove this prefix from tensor names (e.g. 'module.').")
    var stripPrefix: String?

    @Option(help: "Keep only tensors whose names match this shell pattern (repeatable; * ? [..]).")
    var select: [String] = []

    @Option(help: "Drop tensors whose names match this shell pattern (repeatable).")
    var exclude: [String] = []

    @Flag(help: "Write quantized tensors as float32 values equal to torch's dequantize().")
    var dequantize = false

    @Flag(name: .customLong("keep-sparse"), help: "Write sparse tensors to a .swt as their components, not dense.")
    var keepSparse = false

    @Flag(name: .customLong("skip-meta"), help: "Leave tensors saved without values (meta) out of a .swt.")
    var skipMeta = false

    @Flag(help: "Print one JSON object describing the result instead of text.")
    var json = false

    @Flag(name: .shortAndLong, help: "No progress bar.")
    var quiet = false

    @Flag(
        name: .customLong("all-tensors"),
        help: "Write every tensor and numpy array in the file, named by its dotted path from the root.")
    var allTensors = false

    @OptionGroup var caps: CapOptions
    @OptionGroup var source: SourceOptions

    enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
        case swt, pth
    }

    enum CastType: String, ExpressibleByArgument, CaseIterable {
        case float32, float16, bfloat16
        var dtype: DType { DType(rawValue: rawValue)! }
    }

    func validate() throws {
        if let outDir {
            guard !paths.isEmpty else { throw ValidationError("--out-dir \(outDir): give the checkpoints to convert") }
            // Two inputs of one name would write one output twice.
            var seen: [String: String] = [:]
            for path in paths {
                let out = outputPath(for: path, in: outDir)
                if let other = seen[out] {
                    throw ValidationError("\(other) and \(path) would both be written to \(out); rename one")
                }
                seen[out] = path
            }
        } else {
            guard paths.count == 2 else {
                throw ValidationError(
                    "give IN and OUT (got \(paths.count) path\(paths.count == 1 ? "" : "s")), or --out-dir DIR with the checkpoints to convert"
                )
            }
            guard OutputKind(path: paths[1]) != nil else {
                throw ValidationError("OUT must end in \(OutputKind.extensions) (got '\(paths[1])')")
            }
            if shard != nil { throw ValidationError("--shard shares out the paths of --out-dir; IN OUT is one file") }
        }
        if allTensors, source.key != nil { throw ValidationError("--all-tensors and --key exclude each other") }
    }

    /// `mkdir -p dir`.
    func makeDirectories(_ dir: String) throws {
        var path = dir.hasPrefix("/") ? "" : "."
        for part in dir.split(separator: "/") {
            path += "/" + part
            var st = stat()
            if stat(path, &st) == 0 {
                guard st.st_mode & S_IFMT == S_IFDIR else {
                    throw CommandError("--out-dir \(dir): \(path) is not a directory")
                }
                continue
            }
            guard mkdir(path, 0o755) == 0 || errno == EEXIST else {
                throw CommandError("--out-dir \(dir): cannot create \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    /// DIR/NAME.swt for DIR and IN = …/NAME.pth.
    func outputPath(for input: String, in dir: String) -> String {
        let file = input.split(separator: "/").last.map(String.init) ?? input
        let stem = file.contains(".") ? String(file[..<file.lastIndex(of: ".")!]) : file
        return (dir.hasSuffix("/") ? dir : dir + "/") + stem + "." + to.rawValue
    }

    func run() throws {
        guard let outDir else {
            do {
                let fields = try convert(paths[0], paths[1])
                if json { print(JSON.object(fields).render()) }
            } catch let e as ValidationError {
                throw e
            } catch {
                throw fail(error, json: json)
            }
            return
        }
        // Many files: each converted in turn; one that fails is reported in its place and the rest go on.
        do {
            try makeDirectories(outDir)
        } catch {
            throw fail(error, json: json)
        }
        let jobs = (shard.map { $0.pick(paths).map(\.item) } ?? paths).map { ($0, outputPath(for: $0, in: outDir)) }
        var results: [JSON] = []
        var failures = 0
        for (input, output) in jobs {
            do {
                try Interruption.check()
                results.append(.object(try convert(input, output)))
            } catch let e as Interrupted {
                throw fail(e, json: json)
            } catch {
                failures += 1
                let text = (error as? CheckpointError)?.description ?? "\(error)"
                let message = text.hasPrefix(input) ? text : "\(input): \(text)"
                results.append(
                    .object([("input", .string(input)), ("output", .string(output)), ("error", .string(message))]))
                if !json {
                    var err = StandardError()
                    print("error: \(message)", to: &err)
                }
            }
        }
        if json {
            print(JSON.array(results).render())
        } else if let shard {
            print("shard \(shard): \(jobs.count - failures) of \(jobs.count) files converted (of \(paths.count) given)")
        }
        if failures > 0 {
            var err = StandardError()
            print("error: \(failures) of \(jobs.count) files could not be converted (listed above)", to: &err)
            throw ExitCode(1)
        }
    }

    /// Converts one file, printing its lines (unless --json); returns the JSON fields describing it.
    func convert(_ input: String, _ output: String) throws -> [(String, JSON)] {
        let start = now()
        do {
            try OutputGuard.refuseOverwrite(.init("OUT", output), inputs: [.init("IN", input)])
            let options = source.loadOptions(try caps.loadOptions())
            let ckpt = try Checkpoint(path: input, options: options)
            let full =
                allTensors ? try ckpt.allTensors() : try ckpt.stateDict(key: source.key, stripPrefix: stripPrefix)
            let sd = full.filtered(select: select.map(NamePattern.init), exclude: exclude.map(NamePattern.init))
            guard !sd.isEmpty else {
                throw ValidationError("no tensor is left after --select/--exclude (the file has \(full.count))")
            }
            let bar = ProgressBar(label: "writing \(output)", enabled: !quiet && !json)
            let target = OutputKind(path: output)!
            // Tensors of the state dict that go into the file (a .swt leaves out those without values).
            let written = sd.count - (target == .swt ? sd.tensors.filter { !$0.tensor.hasData }.count : 0)
            var notes: [String] = []
            var fields: [(String, JSON)] = [
                ("input", .string(input)), ("input_format", .string(ckpt.format.rawValue)),
                ("output", .string(output)), ("output_format", .string(target.rawValue)),
                ("tensors", .int(written)),
                ("state_dict_path", .array(sd.path.map(JSON.string))),
                ("state_dict_kind", .string(allTensors ? "all" : sd.kind.rawValue)),
                ("candidates", .int(full.candidates.count)),
                ("stubbed_classes", .array(ckpt.stubbedClasses.map(JSON.string))),
            ]
            if !allTensors, let note = placeNote(full) { notes.append(note) }
            if allTensors { notes.append("every tensor in the file, named by its path from the root") }
            if !ckpt.stubbedClasses.isEmpty {
                notes.append(
                    "read \(ckpt.stubbedClasses.count) classes as inert records (--stub-classes): \(ckpt.stubbedClasses.prefix(6).joined(separator: ", "))\(ckpt.stubbedClasses.count > 6 ? ", …" : "")"
                )
            }
            let values = allTensors ? [] : otherValues(ckpt, sd)
            let kinds = TensorKindOptions(dequantize: dequantize, keepSparse: keepSparse, skipWithoutData: skipMeta)
            let quantized = sd.tensors.filter { $0.tensor.quantization != nil }.map(\.name)
            let sparse = sd.tensors.filter { $0.tensor.sparse != nil }.map(\.name)
            let withoutData = sd.tensors.filter { !$0.tensor.hasData }.map(\.name)
            fields += [
                ("quantized", .array(quantized.map(JSON.string))), ("sparse", .array(sparse.map(JSON.string))),
                ("without_data", .array(withoutData.map(JSON.string))),
            ]
            func tensors(_ n: Int) -> String { n == 1 ? "1 tensor" : "\(n) tensors" }
            func list(_ names: [String]) -> String {
                names.prefix(6).joined(separator: ", ") + (names.count > 6 ? ", and \(names.count - 6) more" : "")
            }
            if !quantized.isEmpty {
                notes.append(
                    dequantize
                        ? "quantized, \(tensors(quantized.count)), written as float32 dequantize() values: \(list(quantized))"
                        : target == .swt
                            ? "quantized, \(tensors(quantized.count)), written as integers with NAME.scale and NAME.zero_point (pth2swt.quantized in the header): \(list(quantized))"
                            : "quantized, \(tensors(quantized.count)), kept quantized: \(list(quantized))")
            }
            if !sparse.isEmpty {
                notes.append(
                    target == .pth
                        ? "sparse, \(tensors(sparse.count)), kept sparse: \(list(sparse))"
                        : keepSparse
                            ? "sparse, \(tensors(sparse.count)), written as their components (pth2swt.sparse in the header): \(list(sparse))"
                            : "sparse, \(tensors(sparse.count)), written as dense values: \(list(sparse))")
            }
            if !withoutData.isEmpty {
                notes.append(
                    target == .pth
                        ? "without values, \(tensors(withoutData.count)), kept as meta tensors: \(list(withoutData))"
                        : "without values, \(tensors(withoutData.count)), left out (--skip-meta; listed in the header): \(list(withoutData))"
                )
            }
            switch target {
            case .swt:
                let source = SourceInfo(path: input, bytes: ckpt.fileSize, format: ckpt.format)
                let report = try SWTWriter.write(
                    sd, to: output, dtype: dtype?.dtype, kinds: kinds, values: values, source: source,
                    converter: "pth2swt \(Version.string)", progress: bar.update)
                bar.finish()
                fields += [
                    ("bytes", .int(report.fileBytes)), ("source_sha256", .string(report.sourceSHA256 ?? "")),
                    (
                        "values_kept",
                        .array(values.map(\.name).filter { !report.droppedValues.contains($0) }.map(JSON.string))
                    ),
                    ("values_not_kept", .array(report.droppedValues.map(JSON.string))),
                ]
                if !report.droppedValues.isEmpty {
                    notes.append(
                        "not kept (JSON cannot hold them; listed in the header): \(report.droppedValues.joined(separator: ", "))"
                    )
                }
            case .pth:
                let report = try PTHWriter.write(
                    dequantize ? try sd.dequantized() : sd, to: output, dtype: dtype?.dtype, progress: bar.update)
                bar.finish()
                let dropped = report.valuesNotWritten.filter { n in values.contains { $0.name == n } }
                fields += [
                    ("bytes", .int(report.fileBytes)), ("storages", .int(report.storages)),
                    ("values_not_kept", .array(dropped.map(JSON.string))),
                ]
                if !dropped.isEmpty {
                    notes.append(
                        "not written (a .pth from pth2swt holds the state dict's tensors and dtype values only): \(dropped.joined(separator: ", "))"
                    )
                }
            }
            let seconds = now() - start
            fields.append(("seconds", .double((seconds * 1000).rounded() / 1000)))
            if let peak = peakResidentBytes() { fields.append(("peak_rss_bytes", .int(peak))) }
            if !json {
                let bytesOut = fields.first { $0.0 == "bytes" }?.1.intValue ?? 0
                let cast = dtype.map { ", cast to \($0.rawValue)" } ?? ""
                print(
                    "\(output): \(target.rawValue), \(written == 1 ? "1 tensor" : "\(written) tensors")\(cast), \(bytes(bytesOut)), from \(ckpt.format.rawValue) \(input) in \(String(format3: seconds)) s"
                )
                for n in notes { print("note: \(n)") }
            }
            return fields
        }
    }
}

/// A one-line progress bar on stderr, drawn only when stderr is a terminal and the work is large.
final class ProgressBar {
    let label: String
    let enabled: Bool
    private var lastDrawn = -1
    private var drew = false

    init(label: String, enabled: Bool) {
        self.label = label
        self.enabled = enabled && isatty(2) != 0
    }

    func update(_ done: Int, _ total: Int) {
        guard enabled, total >= 8 << 20 else { return }
        let percent = total == 0 ? 100 : done * 100 / total
        guard percent != lastDrawn else { return }
        lastDrawn = percent
        drew = true
        let width = 30
        let filled = percent * width / 100
        let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: width - filled)
        var err = StandardError()
        print("\r\(label) [\(bar)] \(percent)% \(done >> 20)/\(total >> 20) MiB", terminator: "", to: &err)
    }

    func finish() {
        guard drew else { return }
        var err = StandardError()
        print("", to: &err)
    }
}

extension String {
    /// Three decimals.
    init(format3 d: Double) { self = Timing.seconds(d) }
}

func peakResidentBytes() -> Int? { Timing.peakResidentBytes() }
