import ArgumentParser
import Checkpoint
import Distributed
import Foundation
import Kernels
import Lifetime
import NN
import Tensors
import Training
import Vision

#if canImport(Glibc)
    import Glibc
#endif

/// Options that `finetune` and `eval` share: where the data is and how much of it.
struct DataOptions: ParsableArguments {
    @Option(
        help: "ImageFolder root (DIR/train/<class>/*, DIR/test/<class>/*) or a directory of IDX files (Fashion-MNIST).")
    var data: String
    @Option(
        name: .customLong("per-class"),
        help: "Use only the first N images of each class in each split (a quick subset).")
    var perClass: Int?
    @Option(
        name: .customLong("val-split"),
        help: "Hold out this fraction of DIR/train as the test set (seeded by --seed) when there is no DIR/test.")
    var valSplit: Double?

    func validate() throws {
        if let perClass, perClass < 1 { throw ValidationError("--per-class must be at least 1") }
        if let valSplit, !(valSplit > 0 && valSplit < 1) {
            throw ValidationError("--val-split must be between 0 and 1")
        }
    }

    /// (train, test) with `classes` classes: see `DataSelection`.
    func load(classes: Int?, seed: UInt64) throws -> (train: any ImageDataset, test: any ImageDataset, kind: String) {
        let s = try selection.load(classes: classes, seed: seed)
        return (s.train, s.test, s.kind)
    }

    /// Only the test split (the train split's IDX files are not read); `asked` says where `classes` came from.
    func loadTest(classes: Int?, seed: UInt64, asked: String) throws -> (test: any ImageDataset, kind: String) {
        try selection.loadTest(classes: classes, seed: seed, asked: asked)
    }

    var selection: DataSelection { DataSelection(path: data, perClass: perClass, validationSplit: valSplit) }
}

/// Progress on stderr: on a terminal one line redrawn in place (5 times a second); into a file or pipe
/// a whole line every `logInterval` seconds, so a log shows a long epoch moving.
final class StatusLine {
    let enabled: Bool
    let terminal: Bool
    let logInterval = 10.0
    private var last = 0.0
    private var drawn = false
    init(enabled: Bool) {
        self.enabled = enabled
        terminal = isatty(2) != 0
        last = now()
    }

    func show(_ p: TrainProgress) {
        guard enabled else { return }
        let t = now()
        if terminal {
            guard t - last > 0.2 || p.done == p.total else { return }
        } else {
            guard t - last >= logInterval, p.done < p.total else { return }
        }
        last = t
        var s = "epoch \(p.epoch) \(p.phase.rawValue) \(p.done)/\(p.total)  \(fmt(p.imagesPerSecond)) img/s"
        if p.phase == .train {
            s += "  loss \(String(format: "%.4f", p.loss))  acc \(String(format: "%.1f", p.accuracy * 100))%"
        }
        var err = StandardError()
        if terminal {
            print("\r\u{1B}[K " + s, terminator: "", to: &err)
            drawn = true
        } else {
            print(s, to: &err)
        }
    }

    func clear() {
        guard drawn else { return }
        var err = StandardError()
        print("\r\u{1B}[K", terminator: "", to: &err)
        drawn = false
    }
}

func percent(_ x: Double) -> String { String(format: "%.2f%%", x * 100) }

struct FineTune: ParsableCommand, Cooperative {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract:
            "Fine-tune a torchvision network with a new head: frozen backbone, part of it, or all of it on a low LR.",
        discussion: """
            Loads --weights into --arch, replaces the head (ResNet's, RegNet's, ShuffleNetV2's, GoogLeNet's and Inception v3's fc, DenseNet's \
            classifier, VGG's and AlexNet's classifier.6, \
            MobileNetV2's, EfficientNet's and MNASNet's classifier.1, MobileNetV3's classifier.3, ConvNeXt's classifier.2; SqueezeNet's classifier.1 is a 1×1 convolution and is \
            replaced by one, --head linear only) with Linear(features, --classes) (Xavier-uniform from --seed, zero \
            bias) and trains with torch.optim.SGD's or AdamW's arithmetic.

            What trains (--freeze):
              backbone        only the head (the default); the backbone runs folded
                              in eval mode (dropout off), and without augmentation
                              on cached features; every --arch (SqueezeNet's
                              convolution head trains through the folded
                              network each step, no cache, its Dropout(0.5)
                              on with seeded masks)
              STAGE           STAGE and every stage before it frozen, the rest and
                              the head train (ResNets: stem, layer1 … layer3;
                              through:STAGE also reads)
              none            everything trains
            Stages: ResNet, ResNeXt and Wide ResNet stem, layer1 … layer4; MobileNetV2 features.0 … features.18; MobileNetV3 \
            features.0 … features.16 (large) or features.12 (small), then classifier.0; EfficientNet \
            features.0 … features.8; EfficientNetV2 features.0 … features.7 (S) or features.8 (M, L); MNASNet \
            layers.0, layers.3, layers.6, layers.8 … layers.14; RegNetX and RegNetY stem, block1 … block4; \
            ShuffleNetV2 conv1, stage2 … stage4, conv5; DenseNet conv0, denseblock1, transition1, … \
            denseblock4, norm5; ConvNeXt features.0 … features.7, then classifier.0 (the LayerNorm before \
            the head); SqueezeNet features.0, then each Fire module (1.0: features.3 … features.5, \
            features.7 … features.10, features.12; 1.1: features.3, features.4, features.6, features.7, \
            features.9 … features.12); GoogLeNet conv1 … conv3, inception3a, inception3b, \
            inception4a … inception4e, inception5a, inception5b; Inception v3 Conv2d_1a_3x3, Conv2d_2a_3x3, \
            Conv2d_2b_3x3, Conv2d_3b_1x1, Conv2d_4a_3x3, Mixed_5b … Mixed_5d, Mixed_6a … Mixed_6e, Mixed_7a … \
            Mixed_7c; VGG each \
            convolution features.N and classifier.0, classifier.3; AlexNet features.0, features.3, \
            features.6, features.8, features.10, classifier.1, classifier.4. A family prefix (features) means its last stage. With the backbone \
            frozen VGG's, AlexNet's and MobileNetV3's dropout is off (the features come from eval mode); wherever \
            classifier layers train, their dropout is on, with seeded masks.
            Frozen parameters never reach the optimizer: no decay, no momentum, bit-identical at the end.

            BatchNorm (--bn): trainable stages always run BatchNorm in training mode (batch statistics; \
            running statistics updated). In frozen stages --bn eval (the default) uses the running \
            statistics and never changes them, which is what freezing means; --bn train runs them in \
            training mode too, as torch does when the whole model is in train() with some parameters' \
            requires_grad off (d2l's fine-tuning): their parameters stay put but their running statistics \
            drift toward the new data, and nothing can be cached.

            Learning rates: --lr is the head's. --backbone-lr is the backbone's; without it the backbone \
            uses --lr (with --head-lr-mult M: --lr / M). --head-lr-mult M with --backbone-lr B and no --lr \
            makes the head's B·M (d2l: --backbone-lr 5e-5 --head-lr-mult 10). --no-decay-bn-bias gives \
            1-D parameters (BatchNorm γ, β and biases) weight decay 0. --l2sp-alpha A pulls the trainable \
            backbone toward its pretrained values (A/2·‖w − w⁰‖²) and --l2sp-beta B the head toward zero \
            (B/2·‖w‖²); use them with --weight-decay 0. --schedule and --warmup step once per epoch.

            Data: an ImageFolder (DIR/train/<class>/*, DIR/test/<class>/*, classes in sorted order; \
            --val-split without DIR/test) or IDX files (Debian's /usr/share/datasets/fashion-mnist), where \
            --classes N keeps the first N labels. Training images go through RandomResizedCrop(224) + \
            RandomHorizontalFlip (--augment, the default) or Resize(256) + CenterCrop(224) (--no-augment); \
            test images through the latter. Each epoch ends with a test line in eval mode.

            After each epoch: --out (the model: .swt or .pth) and OUT's .resume.swt (model with its \
            BatchNorm statistics, momentum buffers, epoch, mode), both written to a temporary file and \
            renamed. --resume FILE continues from such a checkpoint with the same flags and gives the same \
            weights as a run that was never interrupted. Ctrl-C (SIGINT) or SIGTERM stops between \
            batches: the files of the last complete epoch stay, no temporary file is left, and the exit \
            status is 130 (143 for SIGTERM). Epoch lines go to stdout as they happen, even into a file \
            or pipe; progress goes to stderr (into a file: a line every 10 s).

            Examples:
              pth2swt finetune --weights Weights/resnet18-5c106cde.pth \\
                  --data /usr/share/datasets/fashion-mnist --classes 2 \\
                  --per-class 200 --no-augment --epochs 5 --out ft.swt
              pth2swt finetune --weights Weights/resnet18-5c106cde.pth \\
                  --data hotdog --classes 2 --freeze none --backbone-lr 5e-5 \\
                  --head-lr-mult 10 --batch-size 128 --epochs 5 --out hotdog.swt
              pth2swt finetune --weights r18.swt --data photos --classes 5 \\
                  --freeze through:layer2 --lr 0.01 --schedule cosine \\
                  --warmup 1 --epochs 10 --json
            """
    )

    @Option(
        help:
            "Pretrained weights (tar, legacy, zip, .swt). Without it the backbone is seeded random values (said in the output)."
    )
    var weights: String?
    @Option(help: "\(Architecture.names).") var arch = "resnet18"
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var preprocess: PreprocessOptions
    @OptionGroup var source: SourceOptions
    @Option(help: "Classes of the new head.") var classes: Int
    @Option(
        help: ArgumentHelp(
            "The new head: linear, or mlp:HIDDEN[:DROPOUT] (Linear, ReLU, Dropout (0.5), Linear, as HEAD.0 … HEAD.3).",
            valueName: "kind")) var head = "linear"
    @Option(help: "What to freeze: none, a stage (it and every stage before it; see the list above), or backbone.")
    var freeze = "backbone"
    @Option(
        help:
            "BatchNorm: eval (frozen stages on their running statistics, never updated; trained stages in training mode), train (every BatchNorm on batch statistics, running statistics drift) or fixed (every BatchNorm on its running statistics, never updated, while trained stages' γ and β learn: torch's model.eval() throughout; under mpirun N ranks then train as one process on the global batch)."
    )
    var bn = "eval"
    @Option(help: "The head's learning rate (default 0.01, or --backbone-lr × --head-lr-mult).") var lr: Double?
    @Option(
        name: .customLong("backbone-lr"),
        help: "The backbone's learning rate (default: --lr, or --lr / --head-lr-mult).")
    var backboneLR: Double?
    @Option(name: .customLong("head-lr-mult"), help: "The head's learning rate as a multiple of the backbone's.")
    var headLRMult: Double?
    @Option(help: "sgd (torch.optim.SGD) or adamw (torch.optim.AdamW).") var optimizer: OptimizerKind = .sgd
    @Option(help: "SGD momentum (default 0.9).") var momentum: Double?
    @Option(help: "SGD dampening.") var dampening = 0.0
    @Flag(help: "SGD: Nesterov momentum.") var nesterov = false
    @Option(help: ArgumentHelp("AdamW: β1,β2 (default 0.9,0.999).", valueName: "b1,b2")) var betas: String?
    @Option(help: "AdamW: eps (default 1e-8).") var eps: Double?
    @Flag(help: "AdamW: the AMSGrad variant.") var amsgrad = false
    @Option(
        name: .customLong("weight-decay"),
        help: "Weight decay: SGD adds wd·w to the gradient, AdamW multiplies w by 1 − lr·wd (both as torch).")
    var weightDecay = 1e-3
    @Flag(
        name: .customLong("no-decay-bn-bias"), help: "No weight decay on 1-D parameters (BatchNorm γ and β, fc's bias)."
    )
    var noDecayBNBias = false
    @Option(
        name: .customLong("l2sp-alpha"),
        help: "L2-SP: α/2·‖w − w⁰‖² on the trainable backbone (w⁰: the pretrained weights).")
    var l2spAlpha = 0.0
    @Option(name: .customLong("l2sp-beta"), help: "L2-SP: β/2·‖w‖² on the head.") var l2spBeta = 0.0
    @Option(
        help:
            "LR schedule, stepped per epoch: constant, step:N[:GAMMA] (×GAMMA every N epochs, GAMMA 0.1), cosine[:MIN_LR]."
    )
    var schedule = "constant"
    @Option(help: "Warmup epochs: the LR rises linearly from 0.1× to 1× (LinearLR), then --schedule runs.") var warmup =
        0
    @Option(help: "Epochs to train (in all, counting the ones a resumed checkpoint already did).") var epochs = 5
    @Option(
        name: .customLong("stop-after"),
        help: "Stop after this epoch (the schedule still spans --epochs); --resume continues the run.")
    var stopAfter: Int?
    @Option(
        name: .customLong("batch-size"),
        help: "Images per SGD step; under mpirun or srun per rank, as in DDP (the global batch is ranks × this).")
    var batchSize = 32
    @Option(help: "Threads for the kernels (the default is every core).") var threads = ProcessInfo.processInfo
        .activeProcessorCount
    @Option(help: "Seed of the head's init, the shuffles, the augmentation and --val-split.") var seed: UInt64 = 0
    @Flag(inversion: .prefixedNo, help: "RandomResizedCrop(224) + horizontal flip for training images.") var augment =
        true
    @Option(help: "Write the fine-tuned model here after each epoch (.swt or .pth), and OUT's .resume.swt beside it.")
    var out: String?
    @Option(help: "Continue from a .resume.swt checkpoint.") var resume: String?
    @Option(
        help: ArgumentHelp(
            "Under mpirun or srun, when the backbone trains: overlap (each gradient bucket is allreduced on a communication thread while the backward pass goes on) or after (all of them after it). Same results.",
            valueName: "overlap|after"))
    var allreduce = "overlap"
    @Flag(help: "Print one JSON object with the final metrics (and no progress).") var json = false

    /// --schedule and --warmup as an LRSchedule (nil: constant).
    static func lrSchedule(_ text: String, warmup: Int, epochs: Int) throws -> LRSchedule? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false).map(String.init)
        let after: LRSchedule?
        switch parts[0] {
        case "constant" where parts.count == 1:
            after = nil
        case "step" where parts.count == 2 || parts.count == 3:
            guard let n = Int(parts[1]), n >= 1, let gamma = parts.count == 3 ? Double(parts[2]) : 0.1, gamma > 0,
                gamma.isFinite
            else {
                throw ValidationError("--schedule \(text): step:N[:GAMMA] needs N ≥ 1 epochs and GAMMA > 0")
            }
            after = .step(size: n, gamma: gamma)
        case "cosine" where parts.count <= 2:
            guard let minLR = parts.count == 2 ? Double(parts[1]) : 0, minLR >= 0, minLR.isFinite else {
                throw ValidationError("--schedule \(text): cosine[:MIN_LR] needs MIN_LR ≥ 0")
            }
            guard epochs - warmup >= 1 else {
                throw ValidationError("--schedule cosine needs more --epochs than --warmup")
            }
            after = .cosine(tMax: epochs - warmup, etaMin: minLR)
        default:
            throw ValidationError("--schedule \(text): one of constant, step:N[:GAMMA], cosine[:MIN_LR]")
        }
        guard warmup > 0 else { return after }
        let ramp = LRSchedule.linear(startFactor: 0.1, endFactor: 1, iterations: warmup)
        guard let after else { return ramp }
        return .sequential([ramp, after], milestones: [warmup])
    }

    /// (head, backbone) learning rates from --lr, --backbone-lr and --head-lr-mult.
    func learningRates() throws -> (head: Double, backbone: Double) {
        switch (lr, backboneLR, headLRMult) {
        case (let l?, let b?, let m?):
            guard abs(l - b * m) <= 1e-12 * max(abs(l), 1e-300) else {
                throw ValidationError(
                    "--lr \(l) is not --backbone-lr \(b) × --head-lr-mult \(m); give two of the three")
            }
            return (l, b)
        case (let l?, let b?, nil): return (l, b)
        case (let l?, nil, let m?): return (l, l / m)
        case (nil, let b?, let m?): return (b * m, b)
        case (nil, let b?, nil): return (0.01, b)
        case (let l?, nil, nil): return (l, l)
        case (nil, nil, _): return (0.01, 0.01)
        }
    }

    /// `--betas b1,b2`, torch's (0.9, 0.999) when absent.
    func adamBetas() throws -> (Double, Double) {
        guard let betas else { return (0.9, 0.999) }
        let parts = betas.split(separator: ",").compactMap { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2 else { throw ValidationError("--betas \(betas): two numbers, b1,b2 (e.g. 0.9,0.999)") }
        return (parts[0], parts[1])
    }

    func validate() throws {
        guard ["overlap", "after"].contains(allreduce) else {
            throw ValidationError("--allreduce must be overlap or after, not '\(allreduce)'")
        }
        guard Architecture.named(arch) != nil else {
            throw ValidationError("unknown --arch '\(arch)'; one of \(Architecture.names)")
        }
        // Stages are checked against the network in run(); the backbone spelling is known here.
        let frozenAll = freeze == "backbone"
        guard ["eval", "train", "fixed"].contains(bn) else { throw ValidationError("--bn \(bn): eval, train or fixed") }
        let signed = nonNegativeNumbers
        for (flag, value) in signed.prefix(5) + [("--eps", eps)] + signed.dropFirst(5) + [
            ("--val-split", dataOptions.valSplit)
        ] {
            try Bounds.finite(flag, value)
        }
        try Bounds.check("--classes", classes, Bounds.classes)
        try Bounds.check("--batch-size", batchSize, Bounds.batch)
        try Bounds.check("--threads", threads, Bounds.threads)
        guard epochs >= 1 else { throw ValidationError("--epochs must be at least 1") }
        if let stopAfter, !(1...epochs).contains(stopAfter) {
            throw ValidationError("--stop-after must be between 1 and --epochs")
        }
        guard warmup >= 0, warmup < epochs || warmup == 0 else {
            throw ValidationError("--warmup must be ≥ 0 and less than --epochs")
        }
        if frozenAll && (backboneLR != nil || headLRMult != nil || l2spAlpha != 0) {
            throw ValidationError(
                "--backbone-lr, --head-lr-mult and --l2sp-alpha need a trainable backbone (--freeze none or through:STAGE)"
            )
        }
        guard let kind = HeadKind(parsing: head) else {
            throw ValidationError(
                "--head \(head): linear, or mlp:HIDDEN[:DROPOUT] with HIDDEN ≥ 1 and DROPOUT in [0, 1)")
        }
        if case .mlp(let hidden, _) = kind { try Bounds.check("--head mlp's HIDDEN", hidden, 1...65_536) }
        if kind != .linear && (l2spAlpha != 0 || l2spBeta != 0) {
            throw ValidationError(
                "--l2sp-alpha and --l2sp-beta are for a linear head so far; drop them or use --head linear")
        }
        let rates = try learningRates()
        switch optimizer {
        case .sgd:
            if betas != nil || eps != nil || amsgrad {
                throw ValidationError("--betas, --eps and --amsgrad are AdamW's; add --optimizer adamw")
            }
        case .adamw:
            if momentum != nil || nesterov || dampening != 0 {
                throw ValidationError(
                    "--momentum, --dampening and --nesterov are SGD's; AdamW takes --betas, --eps and --amsgrad")
            }
            let b = try adamBetas()
            guard (0..<1).contains(b.0), (0..<1).contains(b.1) else {
                throw ValidationError("--betas \(betas ?? ""): each in [0, 1)")
            }
            guard (eps ?? 1e-8) >= 0 else { throw ValidationError("--eps must be ≥ 0") }
        }
        let momentum = self.momentum ?? 0.9
        guard rates.head.isFinite, rates.backbone.isFinite else {
            throw ValidationError("the learning rates (head \(rates.head), backbone \(rates.backbone)) must be finite")
        }
        for (flag, value) in signed {
            if let value, value < 0 { throw ValidationError("\(flag) \(value): must be ≥ 0") }
        }
        guard rates.head >= 0, rates.backbone >= 0 else {
            throw ValidationError("the learning rates (head \(rates.head), backbone \(rates.backbone)) must be ≥ 0")
        }
        if nesterov && (momentum <= 0 || dampening != 0) {
            throw ValidationError("--nesterov needs a --momentum above 0 and no --dampening")
        }
        _ = try Self.lrSchedule(schedule, warmup: warmup, epochs: epochs)
        if let out, OutputKind(path: out) == nil { throw ValidationError("--out must end in \(OutputKind.extensions)") }
    }

    /// The hyperparameters that must be finite and ≥ 0, by flag (nil: not given).
    var nonNegativeNumbers: [(String, Double?)] {
        [
            ("--lr", lr), ("--backbone-lr", backboneLR), ("--head-lr-mult", headLRMult), ("--momentum", momentum),
            ("--dampening", dampening), ("--weight-decay", weightDecay), ("--l2sp-alpha", l2spAlpha),
            ("--l2sp-beta", l2spBeta),
        ]
    }

    static func resumePath(_ out: String) -> String {
        let base = (out as NSString).deletingPathExtension
        return base + ".resume.swt"
    }

    func say(_ s: String) { if !json && Rank.prints { print(s) } }

    func run() throws {
        let comm: Communicator?
        do {
            comm = try Communicator.joinIfLaunched()
        } catch {
            throw fail(error, json: json)
        }
        guard let comm else {
            do {
                try train(comm: nil)
            } catch let e as ValidationError {
                throw e
            } catch {
                throw fail(error, json: json)
            }
            return
        }
        // Under a launcher: rank 0 alone prints and writes. Setting up (data, weights, resume) fails on
        // every rank alike, so the ranks agree on it and the lowest failing one says why; an error while
        // training ends the job (MPI_Abort) after its rank says why.
        defer { comm.finish() }
        Rank.prints = comm.isRoot
        do {
            try train(comm: comm)
        } catch let e as ExitCode {
            throw e
        } catch let e as ValidationError where Rank.agreed == false {
            try Job.agree(comm, e, json: json)
        } catch  where Rank.agreed == false {
            try Job.agree(comm, error, json: json)
        } catch {
            if let i = error as? Interrupted {
                _ = fail(i, json: json)
                comm.abort(i.exitCode)
            }
            _ = fail(RankError(rank: comm.rank, size: comm.size, error: error), json: json)
            comm.abort(1)
        }
    }

    /// Before any work: no file this run writes may replace one it reads, and the output's directory
    /// must take new files (found now, not after the first epoch).
    func checkOutputs() throws {
        guard let out else { return }
        var inputs: [OutputGuard.Named] = []
        if let weights { inputs.append(.init("--weights", weights)) }
        try OutputGuard.refuseOverwrite(
            .init("--out", out), inputs: inputs + (resume.map { [.init("--resume", $0)] } ?? []))
        // The resume file beside --out replaces --resume when they are the same file: that is how a run continues.
        try OutputGuard.refuseOverwrite(.init("the resume file of --out", Self.resumePath(out)), inputs: inputs)
        try OutputGuard.checkWritable(.init("--out", out))
    }

    func train(comm: Communicator?) throws {
        let started = now()
        if comm?.isRoot ?? true { try checkOutputs() }
        let data = try dataOptions.load(classes: classes, seed: seed)
        let kind = HeadKind(parsing: self.head)!
        let rates = try learningRates()
        var config = FineTuneConfig()
        config.epochs = epochs
        config.batchSize = batchSize
        config.ranks = comm?.size ?? 1
        config.dataParallel = comm != nil
        config.overlapAllreduce = allreduce == "overlap"
        config.threads = threads
        config.seed = seed
        config.optimizer = optimizer
        switch optimizer {
        case .sgd:
            config.head = OptimizerOptions(
                lr: rates.head, momentum: momentum ?? 0.9, dampening: dampening, weightDecay: weightDecay,
                nesterov: nesterov)
        case .adamw:
            config.head = OptimizerOptions(
                lr: rates.head, weightDecay: weightDecay, betas: try adamBetas(), eps: eps ?? 1e-8,
                amsgrad: amsgrad)
        }
        var backbone = config.head
        backbone.lr = rates.backbone
        config.backbone = backbone
        config.frozenBatchNormTrains = bn == "train"
        config.batchNormUsesRunningStatistics = bn == "fixed"
        config.noDecayForBiasAndNorm = noDecayBNBias
        config.l2spAlpha = l2spAlpha
        config.l2spBeta = l2spBeta
        config.schedule = try Self.lrSchedule(schedule, warmup: warmup, epochs: epochs)
        let pretrained = try weights.map {
            try Checkpoint(path: $0, options: source.loadOptions()).stateDict(key: source.key)
        }
        let run: FineTuning
        do {
            run = try FineTuning(
                arch: arch, classes: classes, head: kind, weights: pretrained, freeze: freeze, config: config)
        } catch let e as FineTuningError {
            throw ValidationError(e.description)
        }
        let trainer = run.trainer, stages = run.stages
        let headName = run.network.head, features = run.network.headInputFeatures
        let newHead =
            switch kind {
            case .linear where run.network.headConvolution != nil: "Conv2d(\(features), \(classes), 1×1)"
            case .linear: "Linear(\(features), \(classes))"
            case .mlp(let h, let p): "Linear(\(features), \(h)), ReLU, Dropout(\(p)), Linear(\(h), \(classes))"
            }
        if let weights, let pretrained, let report = run.loadReport {
            say(
                "weights: \(weights): \(report.loaded.count) tensors into \(arch), \(headName) replaced by \(newHead)"
                    + (report.renamed.isEmpty ? "" : "; \(report.renamed.count) under their old names")
                    + (report.dropped.isEmpty
                        ? "" : "; \(report.dropped.count) dropped (\(report.dropped[0]), …: parts \(arch) leaves out)")
                    + (placeNote(pretrained).map { "; \($0)" } ?? ""))
        } else {
            say(
                "weights: none given: the backbone is a seeded random \(arch) (not pretrained), \(headName) is \(newHead)"
            )
        }
        let through = run.freeze.frozenCount(in: stages), all = stages.names.count
        if let resume {
            // The checkpoint is the truth for every value it holds; it must have been written whole (its
            // data digest) by a run that started from these --weights (its start digest).
            var options = LoadOptions()
            options.verifyDataDigest = true
            let ckpt = try Checkpoint(path: resume, options: options)
            if case .absent = ckpt.dataDigest {
                say(
                    "note: \(resume) records no digest of its data (written before pth2swt 0.3); its bytes are not checked"
                )
            }
            do {
                for note in try run.resume(from: try ckpt.stateDict()) { say("note: \(resume): \(note)") }
            } catch FineTuningError.otherStartingWeights {
                throw CommandError(
                    "\(resume) continues a run that started from other weights than "
                        + (weights.map { "--weights \($0)" } ?? "a seeded random backbone (no --weights)")
                        + "; give the --weights that run was started with")
            }
            guard trainer.completedEpochs < (stopAfter ?? epochs) else {
                throw CommandError(
                    "\(resume) already holds epoch \(trainer.completedEpochs); "
                        + "\(stopAfter != nil ? "--stop-after \(stopAfter!)" : "--epochs \(epochs)") must be above it for anything to train"
                )
            }
            say("resumed: \(resume) after epoch \(trainer.completedEpochs)")
        }
        let preprocessing = preprocess.applied(to: Architecture.named(arch)!.preprocessing)
        let card = run.card(classNames: data.train.classNames, preprocessing: preprocessing)
        if let out, OutputKind(path: out) == .pth {
            say(
                "note: a .pth has no place for the model card (architecture, classes); predict and eval will need --arch \(arch)"
            )
        }
        let train = TransformedImages(data.train, augment: augment, seed: seed, preprocessing: preprocessing)
        do {
            try run.checkMemory(height: train.height, width: train.width, images: train.count)
        } catch let e as FineTuningError {
            throw CommandError("--batch-size \(batchSize): \(e)")
        }
        let test = TransformedImages(data.test, augment: false, preprocessing: preprocessing)
        say(
            "data: \(dataOptions.data) (\(data.kind)): \(classes) classes (\(data.train.classNames.joined(separator: ", "))), "
                + "\(train.count) train / \(test.count) test images; "
                + "\(augment ? "train RandomResizedCrop(\(preprocessing.cropSize)) and flips, test " : "")"
                + PreprocessOptions.describe(preprocessing))
        say(describeTraining(through: through, stages: stages, rates: rates))
        if through == all && bn != "train" && !run.onlyHeadTrains {
            say(
                "\(headName) is a convolution that runs at every position: the frozen backbone runs on every batch "
                    + "of every epoch (nothing is cached), its dropout on")
        } else if through == all && bn != "train" {
            say(
                trainer.caches(train)
                    ? "features cached: no random augmentation, so the backbone runs once per image and the head trains on the cache"
                    : "augmentation on: the backbone runs on every batch of every epoch (--no-augment caches features)")
        }
        if let comm {
            // Every rank got here: from now on the ranks train in step.
            try Job.agree(comm, nil, json: json)
            Rank.agreed = true
            try run.join(comm)
            say(
                "data parallel: \(comm.size) ranks × --batch-size \(batchSize) = a global batch of \(comm.size * batchSize) images per step (torch DistributedSampler order, gradients averaged)"
            )
        }
        let status = StatusLine(enabled: !json && Rank.prints)
        var reports: [EpochReport] = []
        var saved = resume == nil ? 0 : trainer.completedEpochs
        defer {
            // Interrupted or failed mid-run: say which complete checkpoint is left (a dropped run's files are
            // never partial: each is renamed into place whole).
            if trainer.completedEpochs < (stopAfter ?? epochs), let out, saved > 0, !json, Rank.prints {
                status.clear()
                var err = StandardError()
                print(
                    "\(out) and \(Self.resumePath(out)) hold epoch \(saved); --resume \(Self.resumePath(out)) continues",
                    to: &err)
            }
        }
        reports = try run.train(train, test: test, through: stopAfter ?? epochs, progress: status.show) { r in
            status.clear()
            var line =
                "epoch \(r.epoch)/\(epochs): train loss \(String(format: "%.4f", r.loss)) acc \(percent(r.accuracy)), "
            if r.seconds < 0.001 {
                // A head step on cached features: a rate over a sub-millisecond clock reading means nothing.
                line += "under 1 ms ("
            } else {
                line += "\(fmt(r.imagesPerSecond)) img/s (\(String(format3: r.seconds)) s"
            }
            if r.cached {
                line +=
                    r.featureSeconds > 0
                    ? ", features computed and cached" : (r.seconds < 0.001 ? "features cached" : ", features cached")
            }
            line += ")"
            if let e = r.eval {
                line += " | test loss \(String(format: "%.4f", e.loss)) acc \(percent(e.accuracy)) (\(e.count) images)"
            }
            say(line)
            if let out, Rank.prints {
                try OutputKind.write(
                    run.modelStateDict(), to: out, converter: "pth2swt \(Version.string) finetune",
                    metadata: card.metadata)
                let ckpt = run.checkpoint()
                try SWTWriter.write(
                    ckpt, to: Self.resumePath(out), values: ckpt.values, converter: "pth2swt \(Version.string) finetune"
                )
                saved = trainer.completedEpochs
            }
        }
        if let comm, let a = run.allreduceStatistics, a.steps > 0 {
            say(Self.describe(a, ranks: comm.size, overlapped: config.overlapAllreduce))
        }
        if let out { say("wrote \(out) and \(Self.resumePath(out)) (epoch \(saved))") }
        if json && Rank.prints {
            let last = reports.last
            var fields: [(String, JSON)] = [
                ("arch", .string(arch)), ("weights", weights.map(JSON.string) ?? .null), ("classes", .int(classes)),
                ("head", .string(kind.description)),
                ("class_names", .array(data.train.classNames.map(JSON.string))),
                ("freeze", .string(freeze)), ("bn", .string(bn)), ("lr_head", .double(rates.head)),
                ("lr_backbone", through == all ? .null : .double(rates.backbone)),
                ("train_images", .int(train.count)), ("test_images", .int(test.count)),
                ("features_cached", .bool(trainer.caches(train))),
                (
                    "epochs",
                    .array(
                        reports.map { r in
                            .object([
                                ("epoch", .int(r.epoch)), ("train_loss", .double(r.loss)),
                                ("train_accuracy", .double(r.accuracy)),
                                ("images_per_second", .double(r.imagesPerSecond)), ("seconds", .double(r.seconds)),
                                ("test_loss", .double(r.eval?.loss ?? .nan)),
                                ("test_accuracy", .double(r.eval?.accuracy ?? .nan)),
                            ])
                        })
                ),
                ("seconds", .double(now() - started)),
            ]
            if let e = last?.eval {
                fields += [
                    ("accuracy", .double(e.accuracy)), ("loss", .double(e.loss)),
                    ("confusion", .array(e.confusion.map { .array($0.map(JSON.int)) })),
                ]
            }
            if let out { fields += [("out", .string(out)), ("checkpoint", .string(Self.resumePath(out)))] }
            if let comm, let a = run.allreduceStatistics, a.steps > 0 {
                let steps = Double(a.steps)
                fields.append(
                    (
                        "allreduce",
                        .object([
                            ("ranks", .int(comm.size)), ("overlapped", .bool(config.overlapAllreduce)),
                            ("bytes_per_step", .int(a.floatsPerStep * 4)), ("steps", .int(a.steps)),
                            ("seconds_per_step", .double(a.communicationSeconds / steps)),
                            ("exposed_seconds_per_step", .double(a.exposedSeconds / steps)),
                            ("hidden_fraction", .double(a.hiddenFraction)),
                        ])
                    ))
            }
            print(JSON.object(fields).render())
        }
    }

    /// Rank 0's allreduce time per step, and how much of it the backward pass hid.
    static func describe(_ a: GradientReducer.Statistics, ranks: Int, overlapped: Bool) -> String {
        let steps = Double(a.steps)
        let ms = { (s: Double) in String(format: "%.1f ms", s / steps * 1000) }
        var line =
            "allreduce: \(String(format: "%.1f MB", Double(a.floatsPerStep * 4) / 1e6)) a step over \(ranks) ranks, \(ms(a.communicationSeconds)) a step in the calls (rank 0)"
        if overlapped {
            line +=
                ", \(ms(a.exposedSeconds)) of it waited for after the backward pass (\(Int((a.hiddenFraction * 100).rounded()))% hidden)"
        }
        return line
    }

    /// One line: what trains, BatchNorm's mode, and the optimizer's settings.
    func describeTraining(through: Int, stages list: StageList, rates: (head: Double, backbone: Double)) -> String {
        let stages = list.names, head = String(list.head.dropLast())
        var s: String
        switch through {
        case stages.count:
            s =
                "backbone frozen (BatchNorm in \(bn != "train" ? "eval mode" : "training mode: running statistics drift")); \(optimizer == .sgd ? "SGD" : "AdamW") on \(head): lr \(rates.head)"
        case 0:
            s =
                "everything trains (BatchNorm \(bn == "fixed" ? "in eval mode: running statistics fixed, γ and β learn" : "in training mode")); \(optimizer == .sgd ? "SGD" : "AdamW"): backbone lr \(rates.backbone), \(head) lr \(rates.head)"
        default:
            s =
                "\(stages[0])..\(stages[through - 1]) frozen (BatchNorm \(bn == "train" ? "in training mode: running statistics drift" : "in eval mode")), "
                + "\(stages[through]).. trains\(bn == "fixed" ? " (BatchNorm in eval mode: running statistics fixed, γ and β learn)" : ""); \(optimizer == .sgd ? "SGD" : "AdamW"): backbone lr \(rates.backbone), \(head) lr \(rates.head)"
        }
        switch optimizer {
        case .sgd:
            s +=
                ", momentum \(momentum ?? 0.9)\(nesterov ? " (nesterov)" : "")\(dampening != 0 ? ", dampening \(dampening)" : ""), "
                + "weight decay \(weightDecay)\(noDecayBNBias ? " (not on BatchNorm or biases)" : "")"
        case .adamw:
            let b = (try? adamBetas()) ?? (0.9, 0.999)
            s +=
                ", betas (\(b.0), \(b.1)), eps \(eps ?? 1e-8)\(amsgrad ? ", amsgrad" : ""), "
                + "decoupled weight decay \(weightDecay)\(noDecayBNBias ? " (not on BatchNorm or biases)" : "")"
        }
        if l2spAlpha != 0 || l2spBeta != 0 { s += ", L2-SP α \(l2spAlpha) β \(l2spBeta)" }
        if schedule != "constant" || warmup > 0 {
            s += ", schedule \(schedule)\(warmup > 0 ? " after \(warmup) warmup epoch\(warmup == 1 ? "" : "s")" : "")"
        }
        return s + ", batch \(batchSize), \(threads) thread\(threads == 1 ? "" : "s")"
    }
}

struct Eval: ParsableCommand, Cooperative {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract:
            "Top-1 accuracy, loss and confusion matrix of a torchvision network (--arch) on a data set's test images.",
        discussion: """
            The head is sized from the file's head weights (fc, classifier.6, classifier.1; linear or mlp). Images: DIR/test/<class>/* (or --val-split of \
            DIR/train, or the IDX test split, first N labels for an N-class head) through Resize(256), \
            CenterCrop(224), ImageNet normalisation. Loss is nn.CrossEntropyLoss's mean.

            Examples:
              pth2swt eval --weights ft.swt --data /usr/share/datasets/fashion-mnist --per-class 200
              pth2swt eval --weights ft.pth --data photos --json
            """
    )

    @Option(help: "The model (tar, legacy, zip, .swt).") var weights: String
    @Option(help: "\(Architecture.names) (default: the architecture the file records, else resnet18).") var arch:
        String?
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup var preprocess: PreprocessOptions
    @OptionGroup var source: SourceOptions
    @Option(name: .customLong("batch-size"), help: "Images per forward pass.") var batchSize = 32
    @Option(help: "Threads for the kernels (the default is every core).") var threads = ProcessInfo.processInfo
        .activeProcessorCount
    @Option(help: "Seed of --val-split (use the fine-tuning run's).") var seed: UInt64 = 0
    @Flag(help: "Print one JSON object: accuracy (0–1), loss, count, classes, confusion.") var json = false

    func validate() throws {
        if let arch, Architecture.named(arch) == nil {
            throw ValidationError("unknown --arch '\(arch)'; one of \(Architecture.names)")
        }
        try Bounds.check("--batch-size", batchSize, Bounds.batch)
        try Bounds.check("--threads", threads, Bounds.threads)
        try Bounds.finite("--val-split", dataOptions.valSplit)
    }

    func run() throws {
        let started = now()
        // Each rank measures its share of the test images (all of them when run alone); rank 0 prints the
        // sum, which is the one-process result (loss up to the order of the sum).
        try Job.run(
            json: json,
            local: { comm -> (report: EvalReport, names: [String], kind: String) in
                let loaded = try LoadedModel(
                    weights: weights, arch: arch, options: source.loadOptions(), key: source.key)
                let model = loaded.network
                let data = try dataOptions.loadTest(
                    classes: model.classes, seed: seed, asked: "the head of \(weights) has")
                if let card = loaded.card, card.classNames != data.test.classNames, comm?.isRoot ?? true {
                    var err = StandardError()
                    Swift.print(
                        "note: \(weights) was trained on classes \(card.classNames.prefix(6).joined(separator: ", "))"
                            + "\(card.classNames.count > 6 ? ", …" : ""); the data's are \(data.test.classNames.prefix(6).joined(separator: ", "))"
                            + "\(data.test.classNames.count > 6 ? ", …" : "") (compared by index)", to: &err)
                }
                let test = TransformedImages(
                    data.test, augment: false, preprocessing: preprocess.applied(to: loaded.preprocessing))
                let status = StatusLine(enabled: !json && (comm?.isRoot ?? true))
                let report = try EvalReport.measure(
                    model, on: test, indices: comm?.share(test.count), batchSize: batchSize, threads: threads,
                    progress: status.show)
                status.clear()
                return (report, data.test.classNames, data.kind)
            },
            combine: { comm, part in
                var report = part.report
                if let comm {
                    // Sums in a fixed order: counts and confusion exactly, the loss as Σ loss·count.
                    var ints =
                        [Int64(report.count), Int64(report.correct)] + report.confusion.flatMap { $0.map(Int64.init) }
                    var loss = [report.loss * Double(report.count)]
                    try comm.allreduceSum(&ints)
                    try comm.allreduceSum(&loss)
                    let k = report.confusion.count
                    report.count = Int(ints[0])
                    report.correct = Int(ints[1])
                    report.confusion = (0..<k).map { i in (0..<k).map { j in Int(ints[2 + i * k + j]) } }
                    report.loss = report.count == 0 ? 0 : loss[0] / Double(report.count)
                    guard comm.isRoot else { return }
                }
                show(report, names: part.names, kind: part.kind, ranks: comm?.size ?? 1, started: started)
            })
    }

    func show(_ report: EvalReport, names: [String], kind: String, ranks: Int, started: Double) {
        if json {
            Swift.print(
                JSON.object([
                    ("weights", .string(weights)), ("data", .string(dataOptions.data)),
                    ("count", .int(report.count)),
                    ("accuracy", .double(report.accuracy)), ("loss", .double(report.loss)),
                    ("classes", .array(names.map(JSON.string))),
                    ("confusion", .array(report.confusion.map { .array($0.map(JSON.int)) })),
                    ("ranks", .int(ranks)), ("seconds", .double(now() - started)),
                ]).render())
            return
        }
        let across = ranks > 1 ? " (\(ranks) ranks)" : ""
        Swift.print(
            "\(weights) on \(dataOptions.data) (\(kind)): \(report.count) test images, \(names.count) classes\(across)")
        Swift.print(
            "top-1 accuracy \(percent(report.accuracy)) (\(report.correct)/\(report.count)), loss \(String(format: "%.4f", report.loss))"
        )
        Swift.print("confusion (rows: true class, columns: predicted):")
        let width = max(6, report.confusion.flatMap { $0 }.map { String($0).count }.max()! + 1)
        let label = min(names.map(\.count).max()! + 4, 24)
        func pad(_ s: String, _ n: Int) -> String { String(repeating: " ", count: max(0, n - s.count)) + s }
        Swift.print(pad("", label) + (0..<names.count).map { pad("[\($0)]", width) }.joined())
        for (i, row) in report.confusion.enumerated() {
            let name = String(("[\(i)] " + names[i]).prefix(label))
            Swift.print(
                name + String(repeating: " ", count: label - name.count) + row.map { pad(String($0), width) }.joined())
        }
    }
}
extension OptimizerKind: ExpressibleByArgument {}
