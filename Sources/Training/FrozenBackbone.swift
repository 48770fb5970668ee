import Kernels
import Lifetime
import NN
import Tensors
import Vision

#if canImport(Glibc)
    import Glibc
#endif

/// How to fine-tune with a frozen backbone.
public struct FineTuneConfig: Sendable {
    public var epochs = 5
    /// Images per step; per rank in a data-parallel run, as in DDP (the global batch is ranks × this).
    public var batchSize = 32
    /// Ranks of a data-parallel run (`FineTuning.join`); 1 alone. Recorded with the global batch in a
    /// checkpoint, so a run may resume with another number of ranks of the same global batch.
    public var ranks = 1
    /// Whether epochs follow torch's DistributedSampler order (a run under a launcher, any number of
    /// ranks) rather than the one-process shuffle (`Shuffle.permutation`). A checkpoint records it.
    public var dataParallel = false
    /// In a data-parallel run with a training backbone: allreduce each gradient bucket on a communication
    /// thread while the backward pass goes on (`GradientReducer.overlaps`), rather than after it. The
    /// results are the same either way.
    public var overlapAllreduce = true
    /// The images of one optimizer step over every rank.
    public var globalBatch: Int { batchSize * ranks }
    public var threads = 1
    public var seed: UInt64 = 0
    /// Which optimizer trains (`--optimizer`): torch.optim.SGD or AdamW.
    public var optimizer = OptimizerKind.sgd
    /// The head's optimizer options (`lr` is the head's learning rate).
    public var head = SGDOptions(lr: 0.01)
    /// Give fc.bias (a 1-D parameter) weight decay 0: groups `head` and `head.no_decay`.
    public var noDecayForBiasAndNorm = false
    /// L2-SP's β (head toward zero). α (backbone toward w⁰) needs a trainable backbone.
    public var l2spBeta = 0.0
    /// Compute backbone features once when the training inputs are not random.
    public var cacheFeatures = true
    /// What is frozen, by the network's stage names (`StageList`); `BackboneTrainer` trains the rest.
    public var freeze = Freeze.backbone
    /// `freeze` as a count of ResNet's stages frozen: 0 none, 1 the stem, 2 through layer1, …, 5 everything
    /// but fc.
    public var frozenThrough: Int {
        get { freeze.frozenCount(in: .resnet) }
        set { freeze = Freeze(frozenCount: newValue, in: .resnet) }
    }
    /// The backbone's optimizer options when it trains (nil: the head's).
    public var backbone: SGDOptions?
    /// Frozen stages' BatchNorms in training mode (d2l's `net.train()`), for `BackboneTrainer`.
    public var frozenBatchNormTrains = false
    /// Every BatchNorm in eval mode, the trained stages' too (`--bn fixed`; torch's `model.eval()` for the
    /// whole run): running statistics normalise and never change, trained γ and β still learn. With it,
    /// N ranks train as one process on the global batch, up to the order of the sums.
    public var batchNormUsesRunningStatistics = false
    /// L2-SP's α (trainable backbone parameters toward their values when training started).
    public var l2spAlpha = 0.0
    /// A learning-rate schedule, stepped after each epoch (torch's `scheduler.step()` per epoch).
    public var schedule: LRSchedule?

    public init() {}
}

/// A progress report, after each batch.
public struct TrainProgress: Sendable {
    public enum Phase: String, Sendable {
        case features = "computing features"
        case train = "training"
        case eval = "evaluating"
    }
    public var phase: Phase
    public var epoch: Int
    public var done: Int, total: Int
    public var imagesPerSecond: Double
    /// Running means over the epoch so far (train phase).
    public var loss: Double, accuracy: Double

    public init(
        phase: Phase, epoch: Int, done: Int, total: Int, imagesPerSecond: Double, loss: Double, accuracy: Double
    ) {
        self.phase = phase
        self.epoch = epoch
        self.done = done
        self.total = total
        self.imagesPerSecond = imagesPerSecond
        self.loss = loss
        self.accuracy = accuracy
    }
}

/// Accuracy, mean loss and confusion matrix over a set of images.
public struct EvalReport: Sendable {
    public var count: Int
    public var correct: Int
    public var loss: Double
    /// confusion[true][predicted].
    public var confusion: [[Int]]
    public var accuracy: Double { count == 0 ? 0 : Double(correct) / Double(count) }

    public init(classes: Int) {
        count = 0
        correct = 0
        loss = 0
        confusion = Array(repeating: Array(repeating: 0, count: classes), count: classes)
    }

    /// The reports of several ranks' shares as one: counts and confusion summed, loss the mean over every
    /// image (equal to one report over all the images up to the order of the sum).
    public static func combining(_ parts: [EvalReport]) -> EvalReport {
        guard var out = parts.first else { return EvalReport(classes: 0) }
        for p in parts.dropFirst() {
            let n = out.count + p.count
            out.loss = n == 0 ? 0 : (out.loss * Double(out.count) + p.loss * Double(p.count)) / Double(n)
            out.count = n
            out.correct += p.correct
            for (i, row) in p.confusion.enumerated() { for (j, v) in row.enumerated() { out.confusion[i][j] += v } }
        }
        return out
    }

    /// Adds a batch's logits: loss is kept as a mean over everything added.
    public mutating func add(logits: [Float], labels: [Int], classes: Int) {
        let ce = CrossEntropy.forward(logits, labels: labels, classes: classes)
        let predicted = CrossEntropy.argmax(logits, classes: classes)
        let n = labels.count
        loss = (loss * Double(count) + Double(ce.loss) * Double(n)) / Double(count + n)
        count += n
        for (y, p) in zip(labels, predicted) {
            confusion[y][p] += 1
            if y == p { correct += 1 }
        }
    }
}

/// One epoch's numbers.
public struct EpochReport: Sendable {
    public var epoch: Int
    public var images: Int
    public var loss: Double
    public var accuracy: Double
    /// Seconds of the epoch, features included (the first cached epoch computes them).
    public var seconds: Double
    public var imagesPerSecond: Double { seconds > 0 ? Double(images) / seconds : 0 }
    /// Whether the head trained on cached features.
    public var cached: Bool
    /// Seconds spent computing features this epoch (all of the backbone work).
    public var featureSeconds: Double
    public var eval: EvalReport?
}

/// One training epoch's running numbers, as both trainers count them.
struct EpochTally {
    let epoch: Int, total: Int
    let start = monotonic()
    var seen = 0, correct = 0, steps = 0
    var lossSum = 0.0

    init(epoch: Int, total: Int) {
        self.epoch = epoch
        self.total = total
    }

    /// Runs the epoch's next step and counts its batch of `n` images: a `NonFiniteError` from the step
    /// becomes `TrainingError.nonFinite` naming this epoch and step.
    mutating func add(_ n: Int, step: () throws -> (loss: Double, correct: Int)) throws -> TrainProgress {
        steps += 1
        do {
            return add(n, try step())
        } catch let e as NonFiniteError {
            throw TrainingError.nonFinite(what: e.what, epoch: epoch, step: steps)
        }
    }

    /// Counts a batch of `n` images with its mean loss and right answers; returns the progress so far.
    mutating func add(_ n: Int, _ r: (loss: Double, correct: Int)) -> TrainProgress {
        seen += n
        correct += r.correct
        lossSum += r.loss * Double(n)
        return TrainProgress(
            phase: .train, epoch: epoch, done: seen, total: total,
            imagesPerSecond: Double(seen) / max(monotonic() - start, 1e-9),
            loss: lossSum / Double(seen), accuracy: Double(correct) / Double(seen))
    }

    /// The epoch's report, its time measured now.
    func report(cached: Bool, featureSeconds: Double) -> EpochReport {
        EpochReport(
            epoch: epoch, images: seen, loss: lossSum / Double(max(seen, 1)),
            accuracy: Double(correct) / Double(max(seen, 1)),
            seconds: monotonic() - start, cached: cached, featureSeconds: featureSeconds, eval: nil)
    }
}

/// Fine-tuning with the whole backbone frozen (`--freeze backbone`): only the head (`fc`, `classifier.6`,
/// `classifier.1`) learns, for any `Network`.
///
/// The backbone runs as `Inference`: every BatchNorm folded with its running statistics and every dropout
/// the identity, which is exactly eval mode (frozen BN never updates its statistics). The features are the
/// head's input (ResNet's pooled 512 or 2048, VGG's 4096 after classifier.5). Frozen parameters
/// are never handed to the optimizer, so they get no decay and no momentum and stay bit-identical.
///
/// Features: with inputs that do not change between epochs (no random augmentation) they are computed
/// once, in dataset order, and every epoch gathers its shuffled batches from that cache; otherwise each
/// batch's features are computed as it comes. Both give the same bits: the convolutions' algorithms are
/// fixed for the batch size up front (`fixAlgorithms`), after which an image's features do not depend
/// on which images share its batch.
public final class FrozenBackboneTrainer {
    public let model: Network
    public let config: FineTuneConfig
    public let optimizer: any Optimizer
    public let net: Inference
    /// The head when it is one linear layer (trained here directly).
    let head: Linear?
    /// Otherwise (an MLP head) the head as its own network, trained by `NetworkStep` on the features.
    let headStep: NetworkStep?
    public let scheduler: LRScheduler?
    /// Epochs finished (restored by `restore`).
    public private(set) var completedEpochs = 0
    let classes: Int
    let headParameters: [(name: String, parameter: Parameter)]
    let l2sp: L2SP?
    var trainCache: [Float]?
    var testCache: [Float]?
    /// The ranks of a data-parallel run (nil: this process alone): as `BackboneTrainer.group`. The
    /// feature caches are computed a share per rank and summed into every rank's copy.
    public var group: (any DataParallelGroup)? {
        didSet {
            // The head's gradients, averaged after each backward pass (a few kilobytes: nothing to overlap).
            if let g = group, g.size > 1 {
                let parameters = (headStep?.trainable ?? headParameters).map { ($0.name, $0.parameter.data.count) }
                let reducer = GradientReducer(parameters: parameters, group: g, overlaps: false)
                if let headStep { headStep.reducer = reducer } else { headReducer = reducer }
            } else {
                headStep?.reducer = nil
                headReducer = nil
            }
        }
    }
    /// The linear head's reducer in a data-parallel run (an MLP head's is its `headStep`'s).
    var headReducer: GradientReducer?
    var cacheHeight = 0, cacheWidth = 0

    /// Freezes everything but the head in `model` (whose head has already been replaced or loaded).
    public init(model: Network, config: FineTuneConfig) throws {
        self.model = model
        self.config = config
        let prefix = model.head + "."
        model.freeze(model.namedParameters.map(\.name).filter { !$0.hasPrefix(prefix) })
        headParameters = model.trainableParameters
        precondition(
            headParameters.allSatisfy { $0.name.hasPrefix(prefix) }, "only the head trains with a frozen backbone")
        let groups: (_ parameters: [(name: String, parameter: Parameter)]) -> [ParameterGroup] = { p in
            config.noDecayForBiasAndNorm
                ? ParameterGroup.splittingDecay(name: "head", parameters: p, options: config.head)
                : [ParameterGroup(name: "head", parameters: p, options: config.head)]
        }
        let optimizer: any Optimizer
        if model.headLinears.count == 1 && model.headNodes.count == 1 {
            head = model.headLinears[0]
            headStep = nil
            optimizer = try config.optimizer.make(groups(headParameters))
        } else {
            head = nil
            let step = try NetworkStep(
                network: model.headNetwork(), frozen: [], options: config.head, optimizer: config.optimizer,
                groups: groups, dropoutSeed: config.seed, threads: config.threads)
            headStep = step
            optimizer = step.optimizer
        }
        self.optimizer = optimizer
        scheduler = config.schedule.map { LRScheduler($0, optimizer: optimizer) }
        l2sp =
            config.l2spBeta != 0
            ? L2SP(alpha: 0, beta: config.l2spBeta, parameters: headParameters, headPrefixes: [prefix]) : nil
        net = Inference(model)
        net.threads = config.threads
        classes = model.classes
    }

    /// Whether training on `inputs` uses the feature cache.
    public func caches(_ inputs: any TrainingInputs) -> Bool { config.cacheFeatures && !inputs.isRandom }

    /// One SGD step of the head on `features` [n, featureCount]: returns the batch's mean
    /// cross-entropy (plus the L2-SP penalty when β ≠ 0) and how many argmaxes were right.
    @discardableResult
    public func step(features: [Float], labels: [Int]) throws -> (loss: Double, correct: Int) {
        let n = labels.count
        if let headStep {
            // L2-SP's β is not offered for MLP heads (checked by the tool).
            return try headStep.step(features, labels: labels, height: 1, width: 1)
        }
        let fc = head!
        let logits = LinearHead.forward(features, fc, batch: n)
        let ce = CrossEntropy.forward(logits, labels: labels, classes: classes)
        let correct = zip(CrossEntropy.argmax(logits, classes: classes), labels).filter { $0 == $1 }.count
        let g = LinearHead.backward(
            dy: ce.gradient, x: features, weight: fc.weight.data, batch: n,
            inFeatures: fc.inFeatures, outFeatures: fc.outFeatures)
        var gradients = [model.head + ".weight": g.weight, model.head + ".bias": g.bias]
        try headReducer?.average(&gradients)
        var loss = Double(ce.loss)
        if let l2sp { loss += l2sp.apply(headParameters, to: &gradients) }
        try NonFinite.check(loss: loss, gradients: gradients)
        try optimizer.step(gradients)
        return (loss, correct)
    }

    /// Backbone features for `batch`'s inputs [n, featureCount].
    func features(_ batch: Batch, height: Int, width: Int) throws -> [Float] {
        try net.features(batch.inputs, batch: batch.indices.count, height: height, width: width)
    }

    private func prepare(height: Int, width: Int) throws {
        if cacheHeight != height || cacheWidth != width {
            try net.fixAlgorithms(batch: config.batchSize, height: height, width: width)
            cacheHeight = height
            cacheWidth = width
        }
    }

    /// Features of every input, in order, computed in batches of `batchSize`.
    func allFeatures(
        _ inputs: any TrainingInputs, epoch: Int, phase: TrainProgress.Phase,
        progress: ((TrainProgress) -> Void)?
    ) throws -> [Float] {
        try prepare(height: inputs.height, width: inputs.width)
        var out = [Float](repeating: 0, count: inputs.count * net.featureCount)
        let start = monotonic()
        var done = 0
        // A data-parallel rank computes its share (positions ≡ rank mod N) and the shares are summed
        // into every rank's cache (each row comes from one rank; the others add zeros).
        let share = group.flatMap { $0.size > 1 ? Array(stride(from: $0.rank, to: inputs.count, by: $0.size)) : nil }
        let fc = net.featureCount
        try PrefetchingLoader.forEach(
            PrefetchingLoader.batches(share ?? Array(0..<inputs.count), size: config.batchSize),
            of: inputs, epoch: epoch
        ) { b in
            let f = try features(b, height: inputs.height, width: inputs.width)
            for (k, i) in b.indices.enumerated() {
                out.replaceSubrange((i * fc)..<((i + 1) * fc), with: f[(k * fc)..<((k + 1) * fc)])
            }
            done += b.indices.count
            progress?(
                TrainProgress(
                    phase: phase, epoch: epoch, done: done, total: share?.count ?? inputs.count,
                    imagesPerSecond: Double(done) / max(monotonic() - start, 1e-9), loss: 0, accuracy: 0))
        }
        if let group, share != nil { try out.withUnsafeMutableBufferPointer { try group.allreduceSum($0) } }
        return out
    }

    /// Trains one epoch (the next one, `completedEpochs + 1`) on `train`, then evaluates on `test` when
    /// given.
    public func trainEpoch(
        _ train: any TrainingInputs, test: (any TrainingInputs)? = nil,
        progress: ((TrainProgress) -> Void)? = nil
    ) throws -> EpochReport {
        let epoch = completedEpochs + 1
        var tally = EpochTally(epoch: epoch, total: train.count)
        var featureSeconds = 0.0
        let cached = caches(train)
        try prepare(height: train.height, width: train.width)
        if cached && trainCache == nil {
            let t0 = monotonic()
            trainCache = try allFeatures(train, epoch: epoch, phase: .features, progress: progress)
            featureSeconds += monotonic() - t0
        }
        let order =
            config.dataParallel
            ? DataParallel.order(
                count: train.count, seed: config.seed, epoch: epoch, rank: group?.rank ?? 0, ranks: group?.size ?? 1)
            : Shuffle.permutation(train.count, seed: config.seed, epoch: epoch)
        tally = EpochTally(epoch: epoch, total: order.count)
        let batches = PrefetchingLoader.batches(order, size: config.batchSize)
        let fc = net.featureCount
        if cached, let cache = trainCache {
            for b in batches {
                try Interruption.check()
                var f = [Float](repeating: 0, count: b.count * fc)
                cache.withUnsafeBufferPointer { c in
                    f.withUnsafeMutableBufferPointer { d in
                        for (k, i) in b.enumerated() {
                            (d.baseAddress! + k * fc).update(from: c.baseAddress! + i * fc, count: fc)
                        }
                    }
                }
                let p = try tally.add(b.count) { try step(features: f, labels: b.map(train.label)) }
                progress?(p)  // counted whether or not anyone listens
            }
        } else {
            try PrefetchingLoader.forEach(batches, of: train, epoch: epoch) { b in
                let t0 = monotonic()
                let f = try features(b, height: train.height, width: train.width)
                featureSeconds += monotonic() - t0
                let p = try tally.add(b.indices.count) { try step(features: f, labels: b.labels) }
                progress?(p)  // counted whether or not anyone listens
            }
        }
        try NonFinite.checkWeights(headParameters, epoch: epoch, step: tally.steps)
        var report = tally.report(cached: cached, featureSeconds: featureSeconds)
        if let group { report = try DataParallel.combine(report, group: group) }
        scheduler?.step()
        completedEpochs = epoch
        if let test { report.eval = try evaluate(test, progress: progress) }
        return report
    }

    /// Accuracy, loss and confusion matrix of the current model on `test` (its features are cached
    /// after the first call when the inputs are not random).
    public func evaluate(_ test: any TrainingInputs, progress: ((TrainProgress) -> Void)? = nil) throws -> EvalReport {
        let f: [Float]
        if let c = testCache, !test.isRandom, c.count == test.count * net.featureCount {
            f = c
        } else {
            f = try allFeatures(test, epoch: completedEpochs, phase: .eval, progress: progress)
            if config.cacheFeatures && !test.isRandom { testCache = f }
        }
        var report = EvalReport(classes: classes)
        let fcCount = net.featureCount
        // An MLP head in eval mode (dropout off), built from its current weights.
        let headInference = headStep.map { Inference($0.network) }
        for lo in stride(from: 0, to: test.count, by: config.batchSize) {
            let hi = min(lo + config.batchSize, test.count)
            let x = Array(f[(lo * fcCount)..<(hi * fcCount)])
            let logits =
                try head.map { LinearHead.forward(x, $0, batch: hi - lo) }
                ?? headInference!.logits(x, batch: hi - lo, height: 1, width: 1)
            report.add(logits: logits, labels: (lo..<hi).map(test.label), classes: classes)
        }
        return report
    }

    // MARK: checkpoints

    /// Key prefix of the optimizer's entries in a checkpoint.
    public static let optimizerPrefix = TrainingState.optimizerPrefix

    /// The model's state dict plus the optimizer's state: `TrainingState.checkpoint`.
    public func checkpoint() -> StateDict {
        TrainingState.checkpoint(
            model: model, optimizer: optimizer, epoch: completedEpochs, config: config, mode: Self.mode)
    }

    /// Restores the optimizer state and epoch count: `TrainingState.restore`.
    public func restore(_ sd: StateDict) throws {
        completedEpochs = try TrainingState.restore(
            sd, optimizer: optimizer, config: config, mode: Self.mode, stages: StageList(model))
        for _ in 0..<completedEpochs { scheduler?.step() }
    }

    /// The training mode a checkpoint records (a run resumes only in the mode that wrote it).
    static let mode = TrainingMode(freeze: .backbone, batchNormTrains: false)
}

/// Why a run cannot resume from a checkpoint.
public struct ResumeError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

/// `model.state_dict()` as tensors: parameters and buffers as float32, num_batches_tracked as int64.
public func modelStateDict(_ model: any Module) -> StateDict {
    var sd = StateDict()
    for (name, entry) in model.stateEntries {
        switch entry {
        case .parameter(let p), .buffer(let p):
            try! sd.insert(floatTensor(p.data, shape: p.shape), named: name)
        case .int64(let b):
            var v = b.value.littleEndian
            let bytes = withUnsafeBytes(of: &v) { OwnedBytes(copying: $0) }
            let storage = try! Storage(key: "\(sd.count)", dtype: .int64, count: 1, source: bytes)
            try! sd.insert(Tensor(storage: storage, shape: [], strides: [], storageOffset: 0), named: name)
        }
    }
    return sd
}

/// A contiguous float32 tensor holding a copy of `data`.
public func floatTensor(_ data: [Float], shape: [Int]) -> Tensor {
    let bytes = data.withUnsafeBytes { OwnedBytes(copying: $0) }
    let storage = try! Storage(key: "0", dtype: .float32, count: data.count, source: bytes)
    return try! Tensor(
        storage: storage, shape: shape, strides: Tensor.contiguousStrides(shape), storageOffset: 0,
        requiresGrad: false, isParameter: false)
}

@inline(__always) func monotonic() -> Double { Timing.now() }
