import NN
import Tensors
import Vision

/// Fine-tuning with some or all of the backbone training (`--freeze STAGE|none`, or a frozen backbone
/// whose BatchNorms run in training mode), for any `Network`: `NetworkStep` on every batch of every
/// epoch, and an evaluation through an `Inference` folded from the current weights and running statistics
/// (eval mode, as `model.eval()` in torch).
///
/// Parameter groups: `backbone` (every trainable parameter outside the head, with `config.backbone` or
/// the head's options) and `head` (`fc`, `classifier.6` …, with `config.head`); with
/// `noDecayForBiasAndNorm` each splits into a decayed group and a `.no_decay` group of the 1-D parameters
/// (BatchNorm's γ and β, biases).
public final class BackboneTrainer {
    public let model: Network
    public let config: FineTuneConfig
    public let step: NetworkStep
    public var optimizer: any Optimizer { step.optimizer }
    public let scheduler: LRScheduler?
    public private(set) var completedEpochs = 0
    let mode: TrainingMode
    /// The ranks of a data-parallel run (nil: this process alone). Each rank takes torch
    /// `DistributedSampler`'s share of every epoch, gradients are averaged over the ranks before each
    /// step, and evaluations are of rank 0's weights and statistics over every rank's share of the test
    /// images. `config.batchSize` is per rank, as in DDP.
    public var group: (any DataParallelGroup)? {
        didSet {
            if let g = group, g.size > 1 {
                step.reducer = GradientReducer(
                    parameters: step.trainable.map { ($0.name, $0.parameter.data.count) }, group: g,
                    overlaps: config.overlapAllreduce)
            } else {
                step.reducer = nil
            }
        }
    }

    public init(model: Network, config: FineTuneConfig) throws {
        self.model = model
        self.config = config
        let backbone = config.backbone ?? config.head
        let headPrefix = model.head + "."
        let step = try NetworkStep(
            network: model, frozen: StageList(model).frozenPrefixes(config.freeze), options: config.head,
            optimizer: config.optimizer,
            groups: { trainable in
                let body = trainable.filter { !$0.name.hasPrefix(headPrefix) },
                    head = trainable.filter { $0.name.hasPrefix(headPrefix) }
                func groups(_ name: String, _ p: [(name: String, parameter: Parameter)], _ o: SGDOptions)
                    -> [ParameterGroup]
                {
                    if p.isEmpty { return [] }
                    return config.noDecayForBiasAndNorm
                        ? ParameterGroup.splittingDecay(name: name, parameters: p, options: o)
                        : [ParameterGroup(name: name, parameters: p, options: o)]
                }
                return groups("backbone", body, backbone) + groups("head", head, config.head)
            }, l2sp: config.l2spAlpha != 0 || config.l2spBeta != 0 ? (config.l2spAlpha, config.l2spBeta) : nil,
            frozenBatchNormTrains: config.frozenBatchNormTrains,
            batchNormUsesRunningStatistics: config.batchNormUsesRunningStatistics, dropoutSeed: config.seed,
            threads: config.threads)
        self.step = step
        scheduler = config.schedule.map { LRScheduler($0, optimizer: step.optimizer) }
        mode = Self.describe(config)
    }

    /// The freeze and BatchNorm mode: what a checkpoint records.
    public static func describe(_ config: FineTuneConfig) -> TrainingMode {
        TrainingMode(
            freeze: config.freeze, batchNormTrains: config.frozenBatchNormTrains,
            runningStatistics: config.batchNormUsesRunningStatistics)
    }

    /// Trains the next epoch on `train` (shuffled by seed and epoch, loaded ahead on another thread),
    /// steps the LR schedule, then evaluates on `test` when given.
    public func trainEpoch(
        _ train: any TrainingInputs, test: (any TrainingInputs)? = nil,
        progress: ((TrainProgress) -> Void)? = nil
    ) throws -> EpochReport {
        let epoch = completedEpochs + 1
        step.threads = config.threads
        let order =
            config.dataParallel
            ? DataParallel.order(
                count: train.count, seed: config.seed, epoch: epoch, rank: group?.rank ?? 0, ranks: group?.size ?? 1)
            : Shuffle.permutation(train.count, seed: config.seed, epoch: epoch)
        var tally = EpochTally(epoch: epoch, total: order.count)
        try PrefetchingLoader.forEach(PrefetchingLoader.batches(order, size: config.batchSize), of: train, epoch: epoch)
        { b in
            let p = try tally.add(b.indices.count) {
                try step.step(b.inputs, labels: b.labels, height: train.height, width: train.width)
            }
            progress?(p)  // counted whether or not anyone listens
        }
        try NonFinite.checkWeights(model.trainableParameters, epoch: epoch, step: tally.steps)
        var report = tally.report(cached: false, featureSeconds: 0)
        if let group { report = try DataParallel.combine(report, group: group) }
        scheduler?.step()
        completedEpochs = epoch
        if let test { report.eval = try evaluate(test, progress: progress) }
        return report
    }

    /// Accuracy, loss and confusion matrix of the current model in eval mode on `test`.
    public func evaluate(_ test: any TrainingInputs, progress: ((TrainProgress) -> Void)? = nil) throws -> EvalReport {
        guard let group, group.size > 1 else {
            return try EvalReport.measure(
                model, on: test, batchSize: config.batchSize, threads: config.threads, epoch: completedEpochs,
                progress: progress)
        }
        // Rank 0's running statistics (DDP's broadcast_buffers), every rank its share of the images.
        try DataParallel.broadcastBuffers(model, group: group)
        let share = Array(stride(from: group.rank, to: test.count, by: group.size))
        let report = try EvalReport.measure(
            model, on: test, indices: share, batchSize: config.batchSize, threads: config.threads,
            epoch: completedEpochs, progress: progress)
        return try DataParallel.combine(report, group: group)
    }

    /// The model's state dict plus the optimizer's state: `TrainingState.checkpoint`.
    public func checkpoint() -> StateDict {
        TrainingState.checkpoint(model: model, optimizer: optimizer, epoch: completedEpochs, config: config, mode: mode)
    }

    /// Restores the optimizer, the epoch count and the LR schedule's position (`TrainingState.restore`;
    /// the model, BatchNorm statistics included, must already be loaded from the same file).
    public func restore(_ sd: StateDict) throws {
        completedEpochs = try TrainingState.restore(
            sd, optimizer: optimizer, config: config, mode: mode, stages: StageList(model))
        for _ in 0..<completedEpochs { scheduler?.step() }
    }
}
