import ArgumentParser
import Checkpoint
import Distributed
import Kernels
import Lifetime
import NN
import Tensors
import Vision

struct Predict: ParsableCommand, Cooperative {
    static let configuration = CommandConfiguration(
        abstract: "Classify images with a torchvision network and its weights.",
        discussion: """
            --weights may be any checkpoint pth2swt reads (tar, legacy, zip) or a .swt. The state dict is \
            loaded strictly into --arch, under torchvision's names; a head with other than 1000 classes \
            (a fine-tuned model, linear or --head mlp) is sized from the file's head weights (fc, \
            classifier.1, classifier.3). Images (JPEG, PNG) go through \
            torchvision's eval transform for the architecture's ImageNet weights (Resize(256) with Pillow's \
            bilinear antialiasing and CenterCrop(224) for most; EfficientNet's sizes, mostly bicubic, per \
            network: docs/models.md has the table; a model card's own sizes win; --resize, --crop and \
            --interpolation override both), ToTensor, Normalize(ImageNet mean and std). --input takes a float32 NCHW .npy of any size the network accepts, already \
            preprocessed, instead.

            Examples:
              pth2swt predict --weights resnet18-5c106cde.pth cat.jpg dog.png
              pth2swt predict --weights resnet18.swt --input batch.npy --json
              pth2swt predict --arch mobilenet_v2 --weights mobilenet_v2-b0353104.pth cat.jpg
              pth2swt predict --weights w.swt --shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT --json images/*.jpg
            """
    )

    @Option(help: "The weights (tar, legacy, zip, .swt).") var weights: String
    @Option(help: "\(Architecture.names) (default: the architecture the file records, else resnet18).") var arch:
        String?
    @Option(help: "Threads for the kernels.") var threads = 1
    @Option(help: "How many classes to show per input.") var top = 5
    @Option(
        name: .customLong("batch-size"),
        help: "Images per forward pass (memory does not grow with the number of images).")
    var batchSize = 8
    @Option(name: .customLong("strip-prefix"), help: "Remove this prefix from the weights' names (e.g. 'module.').")
    var stripPrefix: String?
    @Option(help: "A float32 .npy of shape [N, 3, H, W], already normalised, instead of images.") var input: String?
    @Flag(help: "Print a JSON array: one {source, top, logits} per input (or {source, error}).") var json = false
    @Flag(help: "No Winograd: the direct GEMM for every convolution (slower; for comparing accuracy).") var direct =
        false
    @Option(help: Shard.help) var shard: Shard?
    @Argument(help: "JPEG or PNG files.") var images: [String] = []
    @OptionGroup var preprocess: PreprocessOptions
    @OptionGroup var caps: CapOptions
    @OptionGroup var source: SourceOptions

    func validate() throws {
        if let arch, Architecture.named(arch) == nil {
            throw ValidationError("unknown --arch '\(arch)'; one of \(Architecture.names)")
        }
        guard (input == nil) != images.isEmpty else {
            throw ValidationError("give image files or --input X.npy (one of the two)")
        }
        try Bounds.check("--threads", threads, Bounds.threads)
        try Bounds.check("--batch-size", batchSize, Bounds.batch)
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
    }

    func run() throws {
        if Launch.fromEnvironment() != nil {
            try runOnRanks()
            return
        }
        let output = PredictionPrinter(json: json)
        do {
            try classify(output)
            output.finish()
        } catch {
            // Results already printed stay valid: the array closes, the error its last element.
            if output.started {
                output.failure(nil, (error as? CheckpointError)?.description ?? "\(error)")
                output.finish()
                if !json {
                    var err = StandardError()
                    print("error: \(error)", to: &err)
                }
                if let i = error as? Interrupted { throw ExitCode(i.exitCode) }
                throw ExitCode(1)
            }
            if let e = error as? ValidationError { throw e }
            throw fail(error, json: json)
        }
        if output.failures > 0 {
            var err = StandardError()
            let total = output.inputs
            print(
                "error: \(output.failures) of \(total) input\(total == 1 ? "" : "s") could not be classified (listed above)",
                to: &err)
            throw ExitCode(1)
        }
    }

    /// Under an MPI launcher: each rank classifies the inputs at positions ≡ rank (mod ranks), keeping its
    /// results; rank 0 gathers them and prints them in input order, as one run would.
    func runOnRanks() throws {
        try Job.run(
            json: json,
            local: { comm -> PredictionPrinter in
                let output = PredictionPrinter(json: json, recording: true)
                try classify(output, ranks: comm.map { ($0.rank, $0.size) })
                return output
            },
            combine: { comm, output in
                guard let comm else { return }
                var failures = [Int64(output.failures)]
                try comm.allreduceSum(&failures)
                let mine = JSON.array(
                    (output.recorded ?? []).map { JSON.array([.string($0.out), .string($0.err)]) }
                ).render(indent: nil)
                if let parts = try comm.gather(Array(mine.utf8)) {
                    let lists = try parts.map { bytes -> [(out: String, err: String)] in
                        guard case .array(let items) = try JSON.parse(String(decoding: bytes, as: UTF8.self)) else {
                            return []
                        }
                        return items.map { item in
                            guard case .array(let pair) = item, pair.count == 2, case .string(let o) = pair[0],
                                case .string(let e) = pair[1]
                            else { return ("", "") }
                            return (o, e)
                        }
                    }
                    // Position p is rank p mod N's entry p / N.
                    var merged: [(out: String, err: String)] = []
                    let total = lists.reduce(0) { $0 + $1.count }
                    for p in 0..<total {
                        let list = lists[p % comm.size]
                        if p / comm.size < list.count { merged.append(list[p / comm.size]) }
                    }
                    let printer = PredictionPrinter(json: json)
                    printer.replay(merged, failures: Int(failures[0]))
                    printer.finish()
                }
                if failures[0] > 0 {
                    if comm.isRoot {
                        var err = StandardError()
                        print("error: \(failures[0]) of the inputs could not be classified (listed above)", to: &err)
                    }
                    throw ExitCode(1)
                }
            })
    }

    /// Classifies every input, a batch at a time, printing each result as it comes (an input that fails
    /// is reported where its result would be, and counted by `output`). With `ranks`, only the inputs at
    /// positions ≡ rank (mod size), after --shard.
    func classify(_ output: PredictionPrinter, ranks: (rank: Int, size: Int)? = nil) throws {
        // The input array is checked before the weights are read: a bad one fails fast.
        let array = try input.map { path in
            let array = try NPYArray(path: path)
            guard array.shape.count == 4, array.shape[1] == 3 else {
                throw CommandError("\(path): shape \(array.shape) is not [N, 3, H, W]")
            }
            guard array.shape.allSatisfy({ $0 >= 1 }) else {
                throw CommandError("\(path): shape \(array.shape) holds no image (N, H and W must be at least 1)")
            }
            return array
        }
        let options = source.loadOptions(try caps.loadOptions())
        let model = try LoadedModel(
            weights: weights, arch: arch, options: options, key: source.key, stripPrefix: stripPrefix)
        if let note = placeNote(model.stateDict), (ranks?.rank ?? 0) == 0 {
            var err = StandardError()
            print("weights: \(weights): \(note)", to: &err)
        }
        let net = Inference(model.network)
        net.threads = threads
        net.useWinograd = !direct
        // The same algorithms whatever batch an image lands in: one run, its shards and its ranks agree.
        net.algorithmBatch = batchSize
        let classes = net.classes

        /// Runs one batch and prints its rows, in input order with the inputs that failed before it
        /// (`failed`: index in the batch's order → message); a row whose logits are not finite is a failure.
        func emit(
            _ batch: [Float], sources: [String], failed: [(before: Int, source: String, message: String)] = [],
            height: Int, width: Int
        ) throws {
            let result = Result { () throws(InferenceError) -> [Float] in
                try net.logits(batch, batch: sources.count, height: height, width: width)
            }
            guard case .success(let logits) = result else {
                if case .failure(let e) = result, case .tooLarge = e {
                    throw CommandError("--batch-size \(batchSize) at \(height)×\(width): \(e)")
                }
                if case .failure(let e) = result { throw CommandError("\(sources.first ?? "input"): \(e)") }
                return
            }
            let probabilities = Elementwise.softmax(logits, rows: sources.count, columns: classes)
            var pending = failed[...]
            func flushFailures(upTo r: Int) {
                while let f = pending.first, f.before <= r {
                    output.failure(f.source, f.message)
                    pending = pending.dropFirst()
                }
            }
            defer { flushFailures(upTo: Int.max) }
            for (r, name) in sources.enumerated() {
                flushFailures(upTo: r)
                let row = logits[(r * classes)..<((r + 1) * classes)]
                guard row.allSatisfy({ $0.isFinite }) else {
                    output.failure(
                        name, "the network's output is NaN or infinite (do the weights hold NaN or infinite values?)")
                    continue
                }
                let p = Array(probabilities[(r * classes)..<((r + 1) * classes)])
                let best = p.enumerated().sorted { $0.element > $1.element }.prefix(min(top, classes))
                output.result(
                    name, best.map { (index: $0.offset, label: model.label($0.offset), probability: $0.element) },
                    logits: Array(row))
            }
        }

        if let input, let array {
            let (n, h, w) = (array.shape[0], array.shape[2], array.shape[3])
            let values = try array.float32()
            let per = 3 * h * w
            // The array's images (this shard's, with --shard), a batch at a time, named by their index.
            var rows = (0..<n).filter { shard?.takes($0) ?? true }
            if let ranks { rows = rows.enumerated().filter { $0.offset % ranks.size == ranks.rank }.map(\.element) }
            for start in stride(from: 0, to: rows.count, by: batchSize) {
                try Interruption.check()
                let chosen = rows[start..<min(rows.count, start + batchSize)]
                var batch: [Float] = []
                batch.reserveCapacity(chosen.count * per)
                for r in chosen { batch += values[(r * per)..<((r + 1) * per)] }
                try emit(batch, sources: chosen.map { "\(input)[\($0)]" }, height: h, width: w)
            }
        } else {
            let transform = preprocess.applied(to: model.preprocessing)
            var batch: [Float] = [], sources: [String] = [],
                failed: [(before: Int, source: String, message: String)] = []
            var images = shard.map { $0.pick(self.images).map(\.item) } ?? self.images
            if let ranks {
                images = images.enumerated().filter { $0.offset % ranks.size == ranks.rank }.map(\.element)
            }
            for (k, path) in images.enumerated() {
                try Interruption.check()
                do {
                    batch += try transform.tensor(from: path)
                    sources.append(path)
                } catch {
                    failed.append((sources.count, path, "\(error)"))
                }
                if sources.count == batchSize || k == images.count - 1 {
                    if sources.isEmpty {
                        for f in failed { output.failure(f.source, f.message) }
                    } else {
                        try emit(
                            batch, sources: sources, failed: failed, height: transform.cropSize,
                            width: transform.cropSize)
                    }
                    batch.removeAll(keepingCapacity: true)
                    sources.removeAll(keepingCapacity: true)
                    failed.removeAll()
                }
            }
        }
    }
}

/// Prints predictions as they come: text, or one JSON array streamed element by element (so a run over
/// many images holds none of the earlier results).
final class PredictionPrinter {
    let json: Bool
    private var count = 0
    /// Inputs reported so far, classified or not.
    private(set) var inputs = 0
    /// Inputs reported as not classified.
    private(set) var failures = 0

    /// When set, each input's output is kept here instead of printed: (stdout, stderr), one entry per
    /// input, for a rank of an MPI job whose results rank 0 prints in input order.
    private(set) var recorded: [(out: String, err: String)]?

    init(json: Bool, recording: Bool = false) {
        self.json = json
        self.recorded = recording ? [] : nil
    }

    func result(_ source: String, _ best: [(index: Int, label: String, probability: Float)], logits: [Float]) {
        inputs += 1
        if recorded != nil {
            var text = ""
            if json {
                text = Self.resultJSON(source, best, logits).render(indent: nil)
            } else {
                text = "\(source):\n" + Self.lines(best).joined(separator: "\n")
            }
            recorded!.append((text, ""))
            return
        }
        if json {
            element(Self.resultJSON(source, best, logits))
        } else {
            print("\(source):")
            for line in Self.lines(best) { print(line) }
        }
    }

    static func lines(_ best: [(index: Int, label: String, probability: Float)]) -> [String] {
        best.enumerated().map { rank, b in
            "  \(rank + 1). \(b.label) (\(b.index)): \((Double(b.probability) * 10000).rounded() / 100)%"
        }
    }

    static func resultJSON(
        _ source: String, _ best: [(index: Int, label: String, probability: Float)], _ logits: [Float]
    )
        -> JSON
    {
        .object([
            ("source", .string(source)),
            (
                "top",
                .array(
                    best.map {
                        .object([
                            ("index", .int($0.index)), ("label", .string($0.label)),
                            ("probability", .double(Double($0.probability))),
                        ])
                    })
            ),
            ("logits", .array(logits.map { .double(Double($0)) })),
        ])
    }

    /// Prints entries recorded on the ranks, already in input order (rank 0 of an MPI job).
    func replay(_ entries: [(out: String, err: String)], failures: Int) {
        for e in entries {
            inputs += 1
            if json {
                if !e.out.isEmpty {
                    print((count == 0 ? "[" : ",") + e.out)
                    count += 1
                }
            } else if !e.out.isEmpty {
                print(e.out)
            }
            if !e.err.isEmpty {
                var err = StandardError()
                print(e.err, to: &err)
            }
        }
        self.failures += failures
    }

    /// Whether anything was printed.
    var started: Bool { count > 0 }

    /// An input that could not be classified (or, with no source, the error that ended the run).
    func failure(_ source: String?, _ message: String) {
        if source != nil {
            inputs += 1
            failures += 1
        }
        if recorded != nil, let source {
            let element = JSON.object([("source", JSON.string(source)), ("error", .string(message))])
            let line = "error: \(message.hasPrefix(source) ? message : "\(source): \(message)")"
            recorded!.append(json ? (element.render(indent: nil), "") : ("", line))
            return
        }
        if json {
            element(.object((source.map { [("source", JSON.string($0))] } ?? []) + [("error", .string(message))]))
        } else if let source {
            var err = StandardError()
            print("error: \(message.hasPrefix(source) ? message : "\(source): \(message)")", to: &err)
        }
    }

    private func element(_ value: JSON) {
        print((count == 0 ? "[" : ",") + value.render(indent: nil))
        count += 1
    }

    /// Closes the JSON array (an empty one when nothing was printed).
    func finish() {
        guard json else { return }
        print(count == 0 ? "[]" : "]")
        count = 0
    }
}
