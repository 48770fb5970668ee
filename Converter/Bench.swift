import ArgumentParser
import BLASComparison
import Checkpoint
import Kernels
import NN
import Tensors
import Training
import Vision

#if canImport(Glibc)
    import Glibc
#endif

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks. Tests/Reference/bench_*.py run these beside torch and print ratios.",
        subcommands: [
            BenchRead.self, BenchConvert.self, BenchOpen.self, BenchInfer.self, BenchConv.self, BenchTrain.self,
            BenchTiers.self,
        ]
    )
}

struct BenchRead: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "read",
        abstract: "Time reading a checkpoint to Float32 tensors.",
        discussion: """
            Each run opens the file, parses it, finds the state dict and converts every tensor to \
            contiguous Float32 memory it owns, which is what torch.load + .float().contiguous() gives: \
            in one huge-page arena (--mode arena, the default). --mode view points into the mapped file where the bytes allow and touches every \
            page; --mode parse stops after the state dict is found. Prints the median and minimum over --repeat \
            runs after --warmup runs.
            """
    )

    enum Mode: String, ExpressibleByArgument, CaseIterable { case arena, view, parse }

    @Argument(help: "Checkpoints to read.")
    var files: [String]

    @Option(name: .customLong("repeat"), help: "Timed runs per file.")
    var runs: Int = 10

    @Option(help: "Untimed runs first.")
    var warmup: Int = 2

    @Option(help: "arena, view or parse.")
    var mode: Mode = .arena

    @Option(help: "Threads that convert tensors (copy mode).")
    var threads: Int = 1

    @Flag(name: .customLong("no-verify-crc"), help: "Skip the CRC-32 check of stored zip entries (torch never checks).")
    var noVerifyCRC = false

    @Flag(help: "Print one JSON object per file.")
    var json = false

    func validate() throws {
        try Bounds.check("--threads", threads, Bounds.threads)
        guard runs >= 1, warmup >= 0 else {
            throw ValidationError("--repeat must be at least 1 and --warmup at least 0")
        }
    }

    func run() throws {
        for file in files {
            var times: [Double] = []
            var checksum: Float = 0
            var format = "?"
            do {
                times = try timed(warmup: warmup, runs: runs) { (checksum, format) = try readAll(file) }
            } catch {
                throw fail(error, json: json)
            }
            let (median, minimum) = summary(times)
            if json {
                print(
                    JSON.object([
                        ("file", .string(file)), ("format", .string(format)), ("mode", .string(mode.rawValue)),
                        ("threads", .int(threads)), ("verify_crc", .bool(!noVerifyCRC)),
                        ("median_ms", .double(median)), ("min_ms", .double(minimum)), ("runs", .int(times.count)),
                        ("checksum", .double(Double(checksum))),
                    ]).render(indent: nil))
            } else {
                print(
                    "\(file) [\(format), \(mode.rawValue), \(threads) thread\(threads == 1 ? "" : "s")\(noVerifyCRC ? ", no CRC" : "")]: median \(fmt(median)) ms, min \(fmt(minimum)) ms over \(times.count) runs"
                )
            }
        }
    }

    /// One full read. Returns a value that depends on every tensor so no work can be skipped.
    func readAll(_ file: String) throws -> (Float, String) {
        var options = LoadOptions()
        options.verifyCRC = !noVerifyCRC
        let ckpt = try Checkpoint(path: file, options: options)
        let sd = try ckpt.stateDict()
        var acc: Float = 0
        switch mode {
        case .arena:
            let arena = try Float32Arena(sd, threads: threads)
            for i in 0..<arena.count where !arena[i].isEmpty { acc += arena[i][0] + arena[i][arena[i].count - 1] }
        case .parse:
            acc = Float(sd.count)
        case .view:
            for (_, t) in sd.tensors {
                acc += try t.withFloat32 { buf in
                    var s: Float = 0
                    var i = 0
                    while i < buf.count {
                        s += buf[i]
                        i += 1024
                    }  // one read per 4 KiB page
                    return s
                }
            }
        }
        return (acc, ckpt.format.rawValue)
    }
}

func now() -> Double { Timing.now() }

func fmt(_ x: Double) -> String {
    let r = (x * 100).rounded() / 100
    return "\(r)"
}

/// Runs `body` `warmup` times untimed, then `runs` times (at least once) timed; the timed runs'
/// milliseconds.
func timed(warmup: Int, runs: Int, _ body: () throws -> Void) rethrows -> [Double] {
    for _ in 0..<warmup { try body() }
    return try (0..<max(1, runs)).map { _ in
        let start = now()
        try body()
        return (now() - start) * 1000
    }
}

/// Median and minimum of a list of milliseconds (at least one).
func summary(_ times: [Double]) -> (median: Double, min: Double) { Timing.summary(times) ?? (0, 0) }

struct BenchConvert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Time converting a checkpoint to .swt or .pth (what `pth2swt convert` does, in process).",
        discussion: """
            Each run opens IN, finds the state dict and writes OUT through a temporary file, like \
            `pth2swt convert IN OUT`, but without hashing IN for the .swt metadata unless --hash is given. \
            Tests/Reference/bench_convert.py runs it beside torch.load + torch.save / safetensors.
            """
    )

    @Argument(help: "The checkpoint to read.") var input: String
    @Argument(help: "The output (.swt or .pth); overwritten each run.") var output: String
    @Option(name: .customLong("repeat"), help: "Timed runs.") var runs: Int = 10
    @Option(help: "Untimed runs first.") var warmup: Int = 2
    @Flag(help: "Hash the input for the .swt metadata, as `convert` does.") var hash = false
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        guard let target = OutputKind(path: output) else {
            throw ValidationError("OUT must end in \(OutputKind.extensions)")
        }
        do {
            try OutputGuard.refuseOverwrite(.init("OUT", output), inputs: [.init("IN", input)])
        } catch {
            throw fail(error, json: false)
        }
        var times: [Double] = []
        var format = "?"
        do {
            times = try timed(warmup: warmup, runs: runs) {
                let ckpt = try Checkpoint(path: input)
                format = ckpt.format.rawValue
                let sd = try ckpt.stateDict()
                switch target {
                case .swt:
                    let source = hash ? SourceInfo(path: input, bytes: ckpt.fileSize, format: ckpt.format) : nil
                    try SWTWriter.write(
                        sd, to: output, values: otherValues(ckpt, sd), source: source, converter: "bench")
                case .pth:
                    try PTHWriter.write(sd, to: output)
                }
            }
        } catch {
            throw fail(error, json: json)
        }
        let (median, minimum) = summary(times)
        if json {
            print(
                JSON.object([
                    ("file", .string(input)), ("format", .string(format)), ("output", .string(target.rawValue)),
                    ("hash", .bool(hash)), ("median_ms", .double(median)), ("min_ms", .double(minimum)),
                    ("runs", .int(times.count)),
                ]).render(indent: nil))
        } else {
            print(
                "\(input) [\(format)] → \(target.rawValue)\(hash ? " (with sha256)" : ""): median \(fmt(median)) ms, min \(fmt(minimum)) ms over \(times.count) runs"
            )
        }
    }
}

struct BenchOpen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "open",
        abstract: "Time opening a .swt and getting every tensor (zero-copy views into the mapping).",
        discussion: """
            Each run maps the file, validates the header, builds the state dict and, for every tensor, \
            takes its Float32 buffer (a pointer into the mapping) and reads its first element. \
            Tests/Reference/bench_convert.py runs it beside safetensors' safe_open + get_tensor.
            """
    )

    @Argument(help: "A .swt / .safetensors file.") var file: String
    @Option(name: .customLong("repeat"), help: "Timed runs.") var runs: Int = 100
    @Option(help: "Untimed runs first.") var warmup: Int = 5
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        var times: [Double] = []
        var acc: Float = 0
        var count = 0
        var copies = 0
        do {
            times = try timed(warmup: warmup, runs: runs) {
                let sd = try Checkpoint(path: file).stateDict()
                copies = 0
                for (_, t) in sd.tensors where t.count > 0 {
                    let raw = try t.storage.bytes()
                    acc += try t.withFloat32 { buf in
                        if buf.baseAddress.map({
                            UnsafeRawPointer($0) < raw.baseAddress!
                                || UnsafeRawPointer($0) >= raw.baseAddress! + raw.count
                        }) ?? true {
                            copies += 1
                        }
                        return buf[0]
                    }
                }
                count = sd.count
            }
        } catch {
            throw fail(error, json: json)
        }
        let (median, minimum) = summary(times)
        if json {
            print(
                JSON.object([
                    ("file", .string(file)), ("tensors", .int(count)), ("copied", .int(copies)),
                    ("median_ms", .double(median)), ("min_ms", .double(minimum)), ("runs", .int(times.count)),
                    ("checksum", .double(Double(acc))),
                ]).render(indent: nil))
        } else {
            print(
                "\(file): \(count) tensors (\(copies) copied), median \(fmt(median)) ms, min \(fmt(minimum)) ms over \(times.count) runs"
            )
        }
    }
}

struct BenchInfer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer",
        abstract: "Time inference of any --arch (logits for a batch of inputs).",
        discussion: """
            Loads --weights (any format) into --arch, or without --weights gives every parameter a seeded \
            pattern, prepares the inference model (BN folded, activations and residuals fused, buffers \
            planned) and times `logits` on a fixed pattern input. Tests/Reference/bench_peers.py runs it \
            beside PyTorch, ONNX Runtime and OpenVINO and prints ratios.
            """
    )

    @Option(help: "Weights file (tar, legacy, zip, .swt); without it, seeded values.") var weights: String?
    @Option(help: "\(Architecture.names).") var arch = "resnet18"
    @Option(help: "Images per batch.") var batch = 1
    @Option(help: "Input height and width.") var size = 224
    @Option(help: "Threads.") var threads = 1
    @Flag(help: "The direct GEMM for every convolution (no Winograd).") var direct = false
    @Flag(help: "Time both algorithms per convolution first and keep the faster.") var tune = false
    @Flag(
        help:
            "Run each inverted residual's convolutions one after another over whole tensors instead of by row bands (MobileNetV2, depthwise bottlenecks; same results)."
    )
    var unfused = false
    @Flag(help: "Also time each step (convolution, pooling) and print the median of each.") var layers = false
    @Option(name: .customLong("repeat"), help: "Timed runs.") var runs = 20
    @Option(help: "Untimed runs first.") var warmup = 3
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard Architecture.named(arch) != nil else {
            throw ValidationError("unknown --arch '\(arch)'; one of \(Architecture.names)")
        }
        try Bounds.check("--batch", batch, Bounds.batch)
        try Bounds.check("--threads", threads, Bounds.threads)
        try Bounds.check("--size", size, Bounds.imageSize)
    }

    @OptionGroup var tier: TierOption

    func run() throws {
        let isa = try tier.apply()
        let architecture = Architecture.named(arch)!
        let net: Inference
        do {
            let model: Network
            if let weights {
                model = try LoadedModel(weights: weights, arch: arch, options: LoadOptions(), key: nil).network
            } else {
                model = architecture.build(1000)
                model.fillSeeded()
            }
            net = Inference(model, fuseBlocks: !unfused)
            net.threads = threads
            net.useWinograd = !direct
            do {
                try net.checkPlan(batch: batch, height: size, width: size)
            } catch {
                throw CommandError("--batch \(batch) --size \(size): \(error)")
            }
            if tune {
                try net.tune(batch: batch, height: size, width: size)
                if !json { for line in net.tuningLog { print(line) } }
            }
        } catch {
            throw fail(error, json: json)
        }
        let input = (0..<(batch * 3 * size * size)).map { Float($0 % 255) / 127.5 - 1 }
        var check: Float = 0
        let times = try timed(warmup: warmup, runs: runs) {
            check += try net.logits(input, batch: batch, height: size, width: size)[0]
        }
        let (median, minimum) = summary(times)
        let rate = Double(batch) * 1000 / median
        // Per step, in separate runs so that the timed runs above carry no clock reads.
        var steps: [(String, Double)] = []
        if layers {
            net.profiling = true
            var per: [[Double]] = []
            for _ in 0..<max(1, runs) {
                _ = try net.logits(input, batch: batch, height: size, width: size)
                per.append(net.stepTimes.map { $0.seconds * 1000 })
            }
            steps = net.stepTimes.enumerated().map { i, s in (s.step, summary(per.map { $0[i] }).median) }
        }
        if json {
            print(
                JSON.object([
                    ("arch", .string(arch)), ("batch", .int(batch)), ("size", .int(size)), ("threads", .int(threads)),
                    ("isa", .string(isa.name)), ("cpu", ISA.cpuModel.map { .string($0) } ?? .null),
                    ("steps", .array(steps.map { .object([("step", .string($0.0)), ("median_ms", .double($0.1))]) })),
                    ("median_ms", .double(median)), ("min_ms", .double(minimum)), ("images_per_s", .double(rate)),
                    ("runs", .int(times.count)), ("checksum", .double(Double(check))),
                    ("peak_rss_bytes", .int(peakResidentBytes() ?? 0)),
                ]).render(indent: nil))
        } else {
            print(
                "\(arch) batch \(batch), \(threads) thread\(threads == 1 ? "" : "s"), \(isa): median \(fmt(median)) ms, min \(fmt(minimum)) ms, \(fmt(rate)) images/s over \(times.count) runs (\(ISA.cpuModel ?? "unknown CPU"))"
            )
            if !steps.isEmpty {
                let total = steps.reduce(0) { $0 + $1.1 }
                for (name, ms) in steps {
                    print(
                        "  \(name.padding(toLength: 44, withPad: " ", startingAt: 0))\(fmt(ms).leftPadded(8)) ms\(fmt(100 * ms / total).leftPadded(7)) %"
                    )
                }
                print(
                    "  \("sum of step medians".padding(toLength: 44, withPad: " ", startingAt: 0))\(fmt(total).leftPadded(8)) ms"
                )
            }
        }
    }
}

struct BenchConv: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conv",
        abstract: "Time each distinct convolution of a network: our kernels against OpenBLAS.",
        discussion: """
            For every distinct convolution of --arch on 224×224 inputs (random weights), times our NHWC \
            im2col + micro-kernel ("direct"), our Winograd F(4×4, 3×3) where it applies, and OpenBLAS \
            (NCHW im2col + cblas_sgemm, the output channels split across --threads) in the same process. \
            Prints GFLOP/s (of the direct algorithm's 2·MACs, so Winograd can exceed the machine's peak) \
            and OpenBLAS's time over ours.
            """
    )

    @Option(help: "Any network of `pth2swt finetune --help`'s list (resnet18, mobilenet_v2, vgg16, …).") var arch =
        "resnet18"
    @Option(help: "Images per batch.") var batch = 1
    @Option(help: "Threads.") var threads = 1
    @Option(name: .customLong("repeat"), help: "Timed runs per convolution and algorithm.") var runs = 10
    @Option(help: "Only convolutions whose description contains this, e.g. \"k7x7\".") var only: String?
    @Flag(help: "Print one JSON object.") var json = false

    @OptionGroup var tier: TierOption

    func validate() throws {
        guard Architecture.named(arch) != nil else {
            throw ValidationError("unknown --arch \(arch) (one of \(Architecture.names))")
        }
        try Bounds.check("--batch", batch, Bounds.batch)
        try Bounds.check("--threads", threads, Bounds.threads)
    }

    func run() throws {
        let isa = try tier.apply()
        guard let architecture = Architecture.named(arch) else { throw ValidationError("unknown --arch \(arch)") }
        KernelThreads.singleThreadedBLAS()
        // Every distinct convolution of the description, with the input size it meets at 224×224.
        let network = architecture.build(1000)
        guard let sizes = network.shapes(height: 224, width: 224) else {
            throw ValidationError("\(arch) does not fit 224×224")
        }
        var shapes: [Conv2dGeometry] = []
        for node in network.nodes {
            guard case .conv(let c) = node.layer else { continue }
            let x = sizes[node.inputs[0]]
            let g = c.geometry(batch: batch, height: x.height, width: x.width)
            if !shapes.contains(g) && only.map({ g.description.contains($0) }) ?? true { shapes.append(g) }
        }
        // Grouped and depthwise convolutions have their own kernels and no OpenBLAS counterpart here.
        let grouped = shapes.filter { !ConvNHWC.applies(to: $0) }
        shapes = shapes.filter { ConvNHWC.applies(to: $0) }
        if !grouped.isEmpty && !json {
            print(
                "\(grouped.count) grouped or depthwise convolution\(grouped.count == 1 ? "" : "s") not timed here (`bench infer --arch \(arch) --layers` times them)"
            )
        }
        var rows: [JSON] = []
        let blasCore = KernelThreads.coreName
        if !json {
            print(
                "\(ISA.cpuModel ?? "unknown CPU"), kernels \(isa); OpenBLAS (the comparison column only) runs its \(blasCore) kernels"
            )
        }
        if !json {
            print(
                "convolution (batch \(batch), \(threads) thread\(threads == 1 ? "" : "s"))                     direct GFLOP/s  winograd GFLOP/s  OpenBLAS GFLOP/s  OpenBLAS ÷ best"
            )
        }
        for g in shapes {
            let x = (0..<g.inputCount).map { Float($0 % 13) / 13 - 0.5 }
            let weight = (0..<g.weightCount).map { Float($0 % 7) / 70 - 0.05 }
            let bias = [Float](repeating: 0.1, count: g.outChannels)
            var y = [Float](repeating: 0, count: g.outputCount)
            let packed = PackedConvWeight(
                weight, outChannels: g.outChannels, inChannels: g.inChannels, kernelH: g.kernelH, kernelW: g.kernelW)
            let gflop = Double(g.flops) / 1e9
            func best(_ body: () -> Void) -> Double { summary(timed(warmup: 1, runs: runs, body)).min }
            var scratch = [Float](
                repeating: 0,
                count: max(
                    ConvNHWC.scratchCount(threads: threads), ConvKernel.scratchCount(g),
                    WinogradNHWC.applies(to: g) ? WinogradNHWC.scratchCount(g, threads: threads) : 0))
            let direct = best {
                y.withUnsafeMutableBufferPointer { o in
                    scratch.withUnsafeMutableBufferPointer { s in
                        ConvNHWC.forward(
                            g, input: x, weight: packed, bias: bias, residual: nil, relu: true,
                            output: o.baseAddress!, scratch: s.baseAddress!, threads: threads)
                    }
                }
            }
            var winograd: Double? = nil
            if WinogradNHWC.applies(to: g) {
                let u = WinogradNHWC.transformWeights(weight, outChannels: g.outChannels, inChannels: g.inChannels)
                winograd = best {
                    y.withUnsafeMutableBufferPointer { o in
                        scratch.withUnsafeMutableBufferPointer { s in
                            u.withUnsafeBufferPointer { u in
                                WinogradNHWC.forward(
                                    g, input: x, transformedWeight: u.baseAddress!, bias: bias, residual: nil,
                                    relu: true, output: o.baseAddress!, scratch: s.baseAddress!, threads: threads)
                            }
                        }
                    }
                }
            }
            let blas = best {
                bias.withUnsafeBufferPointer { b in
                    y.withUnsafeMutableBufferPointer { o in
                        scratch.withUnsafeMutableBufferPointer { s in
                            ConvKernel.forward(
                                g, input: x, weight: weight, output: o.baseAddress!,
                                epilogue: Epilogue(bias: b.baseAddress!, relu: true), scratch: s.baseAddress,
                                threads: threads)
                        }
                    }
                }
            }
            let ours = min(direct, winograd ?? .infinity)
            if json {
                rows.append(
                    .object([
                        ("convolution", .string(g.description)), ("gflop", .double(gflop)),
                        ("direct_ms", .double(direct)),
                        ("winograd_ms", winograd.map { .double($0) } ?? .null), ("openblas_ms", .double(blas)),
                    ]))
            } else {
                let name = g.description.padding(toLength: 62, withPad: " ", startingAt: 0)
                func rate(_ t: Double?) -> String { (t.map { fmt(gflop / ($0 / 1000)) } ?? "–").leftPadded(16) }
                print("\(name)\(rate(direct))\(rate(winograd))\(rate(blas))\(fmt(blas / ours).leftPadded(17))")
            }
        }
        if json {
            print(
                JSON.object([
                    ("arch", .string(arch)), ("batch", .int(batch)), ("threads", .int(threads)),
                    ("isa", .string(isa.name)), ("cpu", ISA.cpuModel.map { .string($0) } ?? .null),
                    ("openblas_core", .string(blasCore)), ("convolutions", .array(rows)),
                ]).render(indent: nil))
        }
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Time training steps through the backbone (forward, backward, SGD).",
        discussion: """
            Loads --weights into resnet18 with a new 2-class head and times `NetworkStep.step` on a fixed \
            pattern batch of 224×224 inputs: with --frozen-through 0 every stage trains with d2l's low-LR \
            recipe (backbone lr 5e-5, head 5e-4, momentum 0.9, nesterov, weight decay 1e-3) and BatchNorm in \
            training mode. Tests/Reference/bench_train.py runs it beside the same steps in torch.
            """
    )

    @Option(help: "Weights file (tar, legacy, zip, .swt).") var weights: String
    @Option(help: "Images per step.") var batch = 32
    @Option(help: "Threads.") var threads = 2
    @Option(help: "Stages frozen in eval mode: 0 none, 1 the stem, 2 through layer1, … 5 everything but fc.")
    var frozenThrough = 0
    @Option(name: .customLong("repeat"), help: "Timed steps.") var runs = 3
    @Option(help: "Untimed steps first.") var warmup = 1
    @Flag(
        help:
            "Also print where a step's time goes, per phase (mean over the timed steps; nested phases inside the '(all)' totals)."
    )
    var profile = false
    @Flag(help: "Print one JSON object.") var json = false

    @OptionGroup var tier: TierOption

    func validate() throws {
        try Bounds.check("--batch", batch, Bounds.batch)
        try Bounds.check("--threads", threads, Bounds.threads)
    }

    func run() throws {
        let isa = try tier.apply()
        guard (0...5).contains(frozenThrough) else { throw ValidationError("--frozen-through is 0…5") }
        let model = ResNet(.resnet18)
        do {
            try model.load(try Checkpoint(path: weights).stateDict(), excluding: ["fc."])
        } catch {
            throw fail(error, json: json)
        }
        model.replaceHead(classes: 2)
        let o = SGDOptions(lr: 5e-5, momentum: 0.9, weightDecay: 1e-3, nesterov: true)
        let stages = StageList(model.network)
        let step = try NetworkStep(
            network: model.network, frozen: stages.frozenPrefixes(Freeze(frozenCount: frozenThrough, in: stages)),
            options: o,
            groups: { trainable in
                var head = o
                head.lr = 5e-4
                return [
                    ParameterGroup(
                        name: "backbone", parameters: trainable.filter { !$0.name.hasPrefix("fc.") }, options: o),
                    ParameterGroup(
                        name: "head", parameters: trainable.filter { $0.name.hasPrefix("fc.") }, options: head),
                ]
            }, threads: threads)
        let input = (0..<(batch * 3 * 224 * 224)).map { Float($0 % 255) / 127.5 - 1 }
        let labels = (0..<batch).map { $0 % 2 }
        var loss = 0.0
        var done = 0
        let times = try timed(warmup: warmup, runs: runs) {
            if done == warmup && profile { step.profile = [:] }
            loss = try step.step(input, labels: labels, height: 224, width: 224).loss
            done += 1
        }
        let phases = (step.profile ?? [:]).map { (name: $0.key, ms: $0.value * 1000 / Double(max(times.count, 1))) }
            .sorted { $0.ms > $1.ms }
        let (median, minimum) = summary(times)
        let rate = Double(batch) * 1000 / median
        if json {
            print(
                JSON.object([
                    ("batch", .int(batch)), ("threads", .int(threads)), ("frozen_through", .int(frozenThrough)),
                    ("isa", .string(isa.name)), ("cpu", ISA.cpuModel.map { .string($0) } ?? .null),
                    ("median_ms", .double(median)), ("min_ms", .double(minimum)), ("images_per_s", .double(rate)),
                    ("runs", .int(times.count)), ("last_loss", .double(loss)),
                    ("peak_rss_bytes", .int(peakResidentBytes() ?? 0)),
                    ("phases_ms", .object(phases.map { ($0.name, .double($0.ms)) })),
                ]).render(indent: nil))
        } else {
            print(
                "resnet18 training step, batch \(batch), \(threads) thread\(threads == 1 ? "" : "s"), frozen through \(frozenThrough), \(isa) (\(ISA.cpuModel ?? "unknown CPU")): median \(fmt(median)) ms, min \(fmt(minimum)) ms, \(fmt(rate)) images/s over \(times.count) steps"
            )
            for p in phases {
                print("  \(p.name.padding(toLength: 32, withPad: " ", startingAt: 0)) \(fmt(p.ms).leftPadded(9)) ms")
            }
        }
    }
}

/// `--isa NAME` for the compute benchmarks: the kernels' instruction-set tier for this run.
struct TierOption: ParsableArguments {
    @Option(
        name: .customLong("isa"),
        help: ArgumentHelp(
            "The kernels' instruction-set tier: \(ISA.names) (default: PTH2SWT_ISA, else the best this CPU runs).",
            valueName: "tier"))
    var name: String?

    func validate() throws {
        guard let name else { return }
        guard let tier = ISA(named: name) else {
            throw ValidationError("--isa \(name): no such tier (\(ISA.names))")
        }
        guard tier.isSupported else { throw ValidationError("--isa \(name): \(ISA.Unsupported(tier: tier.name))") }
    }

    /// Forces the tier if one was named (validate() has checked it); the tier that runs.
    func apply() throws -> ISA {
        if let name, let tier = ISA(named: name) { try ISA.force(tier) }
        return ISA.process
    }
}

struct BenchTiers: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tiers",
        abstract: "Show the CPU, the kernels' instruction-set tiers and which one runs.",
        discussion: """
            Tiers are picked from CPUID and the OS's XSAVE state (XCR0), best first. PTH2SWT_ISA=NAME (or \
            `--isa` on bench infer/conv/train) forces a lower one; `auto` or unset takes the best.
            """
    )

    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let running = ISA.process
        if json {
            print(
                JSON.object([
                    ("cpu", ISA.cpuModel.map { .string($0) } ?? .null), ("running", .string(running.name)),
                    (
                        "tiers",
                        .array(
                            ISA.all.map { .object([("name", .string($0.name)), ("supported", .bool($0.isSupported))]) })
                    ),
                    ("environment", ISA.environmentWarning.map { .string($0) } ?? .null),
                ]).render(indent: nil))
        } else {
            print("CPU: \(ISA.cpuModel ?? "unknown")")
            for tier in ISA.all {
                let mark = tier == running ? "*" : " "
                print(
                    "\(mark) \(tier.name.padding(toLength: 9, withPad: " ", startingAt: 0)) \(tier.isSupported ? "supported" : "not supported by this CPU")"
                )
            }
            print("* runs" + (ISA.environment == .honoured ? " (PTH2SWT_ISA)" : ""))
            if let warning = ISA.environmentWarning { print("(\(warning))") }
        }
    }
}
