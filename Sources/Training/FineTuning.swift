import Checksums
import NN
import Tensors
import Vision

/// A fine-tuning run of a torchvision network: what `pth2swt finetune` does, as a type a Swift program
/// drives.
///
/// ```swift
/// let weights = try Checkpoint(path: "mobilenet_v2-b0353104.pth").stateDict()
/// let data = try DataSelection(path: "/usr/share/datasets/fashion-mnist", perClass: 20).load(classes: 4, seed: 0)
/// var config = FineTuneConfig()
/// config.epochs = 2
/// let run = try FineTuning(arch: "mobilenet_v2", classes: 4, weights: weights, config: config)
/// let train = TransformedImages(data.train, augment: false), test = TransformedImages(data.test, augment: false)
/// while run.completedEpochs < config.epochs { print(try run.trainEpoch(train, test: test).loss) }
/// try OutputKind.write(run.modelStateDict(), to: "ft.swt", converter: "my app",
///                      metadata: run.card(classNames: data.train.classNames).metadata)
/// ```
///
/// What it does, in order: builds `arch` with torchvision's 1000-class head; loads `weights` into
/// everything but the head (or, without weights, fills the backbone with seeded values); records the
/// digest of those starting values; replaces the head with `head` for `classes` classes (Xavier-uniform
/// from the seed, zero bias); freezes `freeze`; and picks the trainer: `FrozenBackboneTrainer` when
/// only the head trains with BatchNorm in eval mode (features cached when the inputs are not random),
/// otherwise `BackboneTrainer`.
///
/// Files are the caller's: `modelStateDict()` and `card(classNames:)` make the model file,
/// `checkpoint()` the resume file, and `resume(from:)` continues from one read back. The checkpoint is
/// the truth for every value it holds; `resume` refuses one whose run started from other weights.
public final class FineTuning {
    /// torchvision's builder name (`resnet18`, `mobilenet_v2`, …).
    public let arch: String
    public let network: Network
    public let stages: StageList
    public let freeze: Freeze
    public let head: HeadKind
    public let config: FineTuneConfig
    public let trainer: any FineTuner
    /// What loading `weights` did (nil without weights).
    public let loadReport: LoadReport?
    /// SHA-256 of the starting values outside the head (`startDigest(_:)`); the checkpoint records it.
    public let startDigest: String

    /// The name of the checkpoint value that holds `startDigest`.
    public static let startDigestValue = "start_weights_sha256"

    /// Thrown (`FineTuningError`) for an unknown architecture or stage, and by the trainers for settings
    /// torch would refuse; `LoadError` when `weights` does not fit the backbone.
    public init(
        arch: String, classes: Int, head: HeadKind = .linear, weights: StateDict?, freeze: String = "backbone",
        config: FineTuneConfig
    ) throws {
        guard let architecture = Architecture.named(arch) else { throw FineTuningError.unknownArchitecture(arch) }
        let model = architecture.build(1000)
        if let weights {
            loadReport = try model.load(weights, excluding: [model.head + "."])
        } else {
            Self.seedBackbone(model, seed: config.seed)
            loadReport = nil
        }
        startDigest = Self.startDigest(model)
        if model.headConvolution != nil, head != .linear {
            throw FineTuningError.unsupportedHead(arch: arch, kind: head.description)
        }
        model.replaceHead(classes: classes, kind: head, seed: config.seed)
        let stages = StageList(model)
        guard let frozen = Freeze(parsing: freeze, stages: stages) else {
            throw FineTuningError.unknownStage(freeze, choices: stages.choices)
        }
        var config = config
        config.freeze = frozen
        self.arch = arch
        network = model
        self.stages = stages
        self.freeze = frozen
        self.head = head
        self.config = config
        // The trainer records L2-SP's w⁰ now, before a resumed checkpoint's values are loaded.
        // A convolution head runs at every position of the backbone's last map, which the feature cache
        // does not keep: it trains through the whole (folded, frozen) network each step instead.
        trainer =
            Self.onlyHeadTrains(frozen, stages: stages, config: config) && model.headConvolution == nil
            ? try FrozenBackboneTrainer(model: model, config: config)
            : try BackboneTrainer(model: model, config: config)
    }

    static func onlyHeadTrains(_ freeze: Freeze, stages: StageList, config: FineTuneConfig) -> Bool {
        freeze.frozenCount(in: stages) == stages.names.count && !config.frozenBatchNormTrains
    }

    /// True when only the head trains and the backbone runs folded in eval mode on cached features
    /// (`FrozenBackboneTrainer`).
    public var onlyHeadTrains: Bool { trainer is FrozenBackboneTrainer }

    public var completedEpochs: Int { trainer.completedEpochs }

    /// Where the gradient allreduces' time went, when the backbone trains on more than one rank (nil
    /// otherwise: a head alone sends a few kilobytes a step, after its backward pass).
    public var allreduceStatistics: GradientReducer.Statistics? {
        (trainer as? BackboneTrainer)?.step.reducer?.statistics
    }

    /// The ranks this run is one of (nil: alone); set by `join`.
    public private(set) var group: (any DataParallelGroup)?

    /// Makes this run one rank of a data-parallel run, as torch's DistributedDataParallel does: rank 0's
    /// parameters and buffers (the new head included) are copied to every rank now; from here each epoch
    /// takes torch `DistributedSampler`'s share, `config.batchSize` images per rank and step, gradients
    /// averaged over the ranks before each step, and evaluations of rank 0's weights over every rank's
    /// share of the test images. Call it on every rank, after `resume` when resuming.
    public func join(_ group: any DataParallelGroup) throws {
        guard config.dataParallel, config.ranks == group.size else {
            throw FineTuningError.notDataParallel(
                ranks: group.size, configured: config.dataParallel ? config.ranks : nil)
        }
        try DataParallel.broadcastState(network, group: group)
        self.group = group
        if let t = trainer as? BackboneTrainer { t.group = group }
        if let t = trainer as? FrozenBackboneTrainer { t.group = group }
    }

    /// Continues from a checkpoint that `checkpoint()` made (read back from its file): every parameter,
    /// buffer and optimizer state, the epoch count and the schedule's position. Thrown:
    /// `FineTuningError.otherStartingWeights` when the checkpoint's run started from other values than
    /// this one's, and `ResumeError` when it was trained with other settings (seed, batch size, freeze,
    /// BatchNorm mode, optimizer). Returns notes on what could not be checked (checkpoints of older
    /// versions record no start digest).
    @discardableResult
    public func resume(from sd: StateDict) throws -> [String] {
        var notes: [String] = []
        if let recorded = sd.values.first(where: { $0.name == Self.startDigestValue })?.value.string {
            guard recorded == startDigest else { throw FineTuningError.otherStartingWeights }
        } else {
            notes.append(
                "the checkpoint does not record the weights its run started from (written before pth2swt 0.3); not checked"
            )
        }
        try network.load(sd, excluding: [TrainingState.optimizerPrefix])
        try trainer.restore(sd)
        return notes
    }

    /// Trains the next epoch on `train`, then evaluates on `test` when given.
    public func trainEpoch(
        _ train: any TrainingInputs, test: (any TrainingInputs)? = nil,
        progress: ((TrainProgress) -> Void)? = nil
    ) throws -> EpochReport {
        try trainer.trainEpoch(train, test: test, progress: progress)
    }

    /// Trains epoch after epoch until `through` epochs are complete (a resumed run starts after its
    /// checkpoint's), evaluating on `test` after each; `afterEpoch` gets each report as soon as the
    /// epoch ends, which is where a caller saves `modelStateDict()` and `checkpoint()`, so that an
    /// interrupted run keeps its last complete epoch. Returns the reports of the epochs it trained.
    @discardableResult
    public func train(
        _ train: any TrainingInputs, test: (any TrainingInputs)? = nil, through: Int,
        progress: ((TrainProgress) -> Void)? = nil, afterEpoch: (EpochReport) throws -> Void
    ) throws -> [EpochReport] {
        var reports: [EpochReport] = []
        while completedEpochs < through {
            let report = try trainEpoch(train, test: test, progress: progress)
            reports.append(report)
            try afterEpoch(report)
        }
        return reports
    }

    /// The most bytes a training step's buffers may take (`checkMemory`): half the machine's memory by
    /// default, as for inference.
    public var maxBufferBytes = Inference.defaultMaxBufferBytes

    /// Thrown (`FineTuningError.tooLarge`) when a batch of `config.batchSize` images of height × width
    /// (or of all `images`, when there are fewer) would need more than `maxBufferBytes`, so that the run
    /// stops with the reason before it allocates.
    /// Only the head trains: the inference plan of the backbone at that batch, exactly
    /// (`Inference.checkPlan`). Otherwise an estimate of the training step: every node's output for
    /// every image, kept for the backward pass, with a quarter more for gradients in flight (ResNet-18 at
    /// 224×224 measured 34 MB an image against 33 MB of outputs), plus four copies of the parameters.
    public func checkMemory(height: Int, width: Int, images: Int = .max) throws {
        let batch = min(config.batchSize, max(images, 1))
        if onlyHeadTrains {
            let net = Inference(network)
            net.threads = config.threads
            net.maxBufferBytes = maxBufferBytes
            do {
                try net.checkPlan(batch: batch, height: height, width: width)
            } catch {
                if case .tooLarge(let bytes, let limit) = error {
                    throw FineTuningError.tooLarge(bytes: bytes, limit: limit)
                }
                throw error
            }
            return
        }
        guard let shapes = network.shapes(height: height, width: width) else { return }  // the step reports it
        var outputs = 0
        for s in shapes { outputs = outputs.addingSaturating(s.channels.multipliedSaturating(s.height * s.width)) }
        let parameters = network.namedParameters.reduce(0) { $0.addingSaturating($1.parameter.count) }
        let bytes = outputs.multipliedSaturating(batch).multipliedSaturating(5)  // 4 bytes × 1.25
            .addingSaturating(parameters.multipliedSaturating(16))
        guard bytes <= maxBufferBytes else { throw FineTuningError.tooLarge(bytes: bytes, limit: maxBufferBytes) }
    }

    /// Whether training on `train` runs the head on cached features.
    public func caches(_ train: any TrainingInputs) -> Bool { trainer.caches(train) }

    /// The model's state dict (torch's names and order), for the model file.
    public func modelStateDict() -> StateDict { Training.modelStateDict(network) }

    /// The resume checkpoint: the model, the optimizer's state, the run's settings and `startDigest`.
    public func checkpoint() -> StateDict {
        var sd = trainer.checkpoint()
        sd.values.append((Self.startDigestValue, .string(startDigest)))
        return sd
    }

    /// What the model file records of itself (`ModelCard`): the architecture, the head, the class names
    /// and the eval preprocessing.
    /// The model card for the file the run writes; `preprocessing` is the eval transform it ran with.
    public func card(classNames: [String], preprocessing: ImageNetEval = ImageNetEval()) -> ModelCard {
        ModelCard(arch: arch, head: head.description, classNames: classNames, preprocessing: preprocessing)
    }

    /// SHA-256 over the names and values of every parameter and buffer outside the head: which weights a
    /// run started from. The same values in another file format give the same digest.
    public static func startDigest(_ model: Network) -> String {
        let hasher = SHA256Hasher()
        for (name, entry) in model.stateEntries where !name.hasPrefix(model.head + ".") {
            Array(name.utf8 + [0]).withUnsafeBytes { hasher.update($0) }
            switch entry {
            case .parameter(let p), .buffer(let p): p.data.withUnsafeBytes { hasher.update($0) }
            case .int64(let b): withUnsafeBytes(of: b.value.littleEndian) { hasher.update($0) }
            }
        }
        return hasher.finish()
    }

    /// A seeded random backbone: conv weights uniform with torchvision's kaiming_normal_(fan_out, relu)
    /// standard deviation √(2 / fan_out) (bound √(6 / fan_out)), BatchNorm as constructed (γ 1, β 0,
    /// mean 0, var 1); hidden linear layers (VGG's, AlexNet's) uniform with normal(0, 0.01)'s standard
    /// deviation. Not torchvision's draws; a from-scratch baseline.
    public static func seedBackbone(_ model: Network, seed: UInt64) {
        var rng = SplitMix64(seed: seed ^ 0xB4C_B0E5)
        for (name, p) in model.namedParameters where p.shape.count == 4 && !name.hasPrefix(model.head + ".") {
            let bound = (6 / Float(p.shape[0] * p.shape[2] * p.shape[3])).squareRoot()
            for i in 0..<p.count { p.data[i] = (rng.nextUnitFloat() * 2 - 1) * bound }
        }
        // ResNets have no hidden linear layer, so their draws above are unchanged.
        for (name, p) in model.namedParameters where p.shape.count == 2 && !name.hasPrefix(model.head + ".") {
            for i in 0..<p.count { p.data[i] = (rng.nextUnitFloat() * 2 - 1) * 0.01 * Float(3).squareRoot() }
        }
    }
}

/// Why a fine-tuning run cannot start or continue.
public enum FineTuningError: Error, Equatable, CustomStringConvertible {
    case unknownArchitecture(String)
    /// A freeze that names no stage of the network; `choices` lists them.
    case unknownStage(String, choices: String)
    /// A checkpoint whose run started from other weights than this one (`FineTuning.startDigest`).
    case otherStartingWeights
    /// A batch whose training buffers would need `bytes`, more than `limit` (`FineTuning.checkMemory`).
    case tooLarge(bytes: Int, limit: Int)
    /// `join` with a group of `ranks`, when the config was not made for it (`configured`: its ranks when
    /// data-parallel, nil when not).
    case notDataParallel(ranks: Int, configured: Int?)
    /// Frozen BatchNorms asked to train (`frozenBatchNormTrains`) while every BatchNorm is to keep its
    /// running statistics (`batchNormUsesRunningStatistics`).
    case conflictingBatchNormModes
    /// A head kind the architecture's head cannot take (SqueezeNet's head is a convolution: `linear` only).
    case unsupportedHead(arch: String, kind: String)

    public var description: String {
        switch self {
        case .unknownArchitecture(let a): "unknown architecture '\(a)'; one of \(Architecture.names)"
        case .unknownStage(let s, let choices):
            "--freeze \(s): one of \(choices) (a stage freezes it and every stage before it)"
        case .otherStartingWeights: "the checkpoint continues a run that started from other weights"
        case .tooLarge(let bytes, let limit):
            "a training step at this batch size needs about \(bytes == Int.max ? "more than 2^63 bytes" : "\(bytes >> 20) MiB"); "
                + "the limit is \(limit >> 20) MiB (half the machine's memory)"
        case .notDataParallel(let ranks, let configured):
            "joining \(ranks) ranks needs FineTuneConfig.dataParallel with ranks \(ranks)"
                + (configured.map { " (it says \($0))" } ?? " (it is not data-parallel)")
        case .conflictingBatchNormModes:
            "frozen BatchNorms cannot both train (--bn train) and keep their running statistics (--bn fixed)"
        case .unsupportedHead(let arch, let kind):
            "--head \(kind): \(arch)'s head is a 1×1 convolution, which is replaced by another (--head linear)"
        }
    }
}

extension EvalReport {
    /// Accuracy, loss and confusion matrix of `network` (eval mode: BatchNorm folded, dropout off) on
    /// `test`, in batches of `batchSize`, images loaded ahead on another thread.
    /// `indices` chooses the images of `test` to measure (all of them when nil): one rank's share.
    public static func measure(
        _ network: Network, on test: any TrainingInputs, indices: [Int]? = nil, batchSize: Int, threads: Int,
        epoch: Int = 0, progress: ((TrainProgress) -> Void)? = nil
    ) throws -> EvalReport {
        let chosen = indices ?? Array(0..<test.count)
        let net = Inference(network)
        net.threads = threads
        // Each image's logits the same whatever batch it is in (a rank's share, the last batch).
        net.algorithmBatch = batchSize
        let classes = network.classes
        var report = EvalReport(classes: classes)
        let start = monotonic()
        try PrefetchingLoader.forEach(
            PrefetchingLoader.batches(chosen, size: batchSize), of: test, epoch: epoch
        ) { b in
            let logits = try net.logits(b.inputs, batch: b.indices.count, height: test.height, width: test.width)
            report.add(logits: logits, labels: b.labels, classes: classes)
            progress?(
                TrainProgress(
                    phase: .eval, epoch: epoch, done: report.count, total: chosen.count,
                    imagesPerSecond: Double(report.count) / max(monotonic() - start, 1e-9), loss: 0, accuracy: 0))
        }
        return report
    }
}

extension Int {
    func addingSaturating(_ x: Int) -> Int {
        let (r, o) = addingReportingOverflow(x)
        return o ? .max : r
    }

    func multipliedSaturating(_ x: Int) -> Int {
        let (r, o) = multipliedReportingOverflow(by: x)
        return o ? .max : r
    }
}
