import NN
import Tensors

/// Checkpoints of a fine-tuning run: what `--resume` needs to continue exactly where a run stopped.
public enum TrainingState {
    /// Key prefix of the optimizer's entries in a checkpoint.
    public static let optimizerPrefix = "optimizer."

    /// `model.state_dict()` (torch's names and order: parameters, BatchNorm running statistics and
    /// `num_batches_tracked`) plus the optimizer's state as `optimizer.<param>.<state>` (torch's state
    /// names: `momentum_buffer` for SGD, `exp_avg`, `exp_avg_sq`, `max_exp_avg_sq` for AdamW), and values
    /// `epoch`, `optimizer` (its kind), `optimizer.steps`, `seed`, `batch_size` and `mode` (the freezing
    /// and BatchNorm mode).
    public static func checkpoint(
        model: any Module, optimizer: any Optimizer, epoch: Int, config: FineTuneConfig, mode: TrainingMode
    ) -> StateDict {
        var sd = modelStateDict(model)
        let shapes = Dictionary(
            uniqueKeysWithValues: optimizer.groups.flatMap { $0.parameters.map { ($0.name, $0.parameter.shape) } })
        let state = optimizer.state
        for name in optimizer.parameterNames {
            guard let entries = state[name] else { continue }
            for key in type(of: optimizer).stateNames {
                if let b = entries[key] {
                    try! sd.insert(floatTensor(b, shape: shapes[name]!), named: optimizerPrefix + name + "." + key)
                }
            }
        }
        sd.values = [
            ("epoch", .int(Int64(epoch))), ("optimizer", .string(optimizer.kind.rawValue)),
            ("optimizer.steps", .int(Int64(optimizer.steps))),
            ("seed", .int(Int64(bitPattern: config.seed))), ("batch_size", .int(Int64(config.globalBatch))),
            ("freeze", .string(mode.freeze.spelling)), ("bn", .string(mode.batchNorm)),
            ("sampler", .string(config.dataParallel ? "distributed" : "shuffle")),
        ]
        return sd
    }

    /// Restores the optimizer's momentum buffers and step count from `checkpoint`'s state dict read back
    /// from a file, and returns the epochs completed. The model itself must already have been loaded
    /// from it (`model.load(sd, excluding: ["optimizer."])`). The seed, global batch (ranks × batch size),
    /// sampler and mode must be the run's: a resumed run with other settings would not be the same run.
    /// The recorded freeze is read against `stages`, the network's own.
    public static func restore(
        _ sd: StateDict, optimizer: any Optimizer, config: FineTuneConfig, mode: TrainingMode, stages: StageList
    ) throws -> Int {
        func value(_ name: String) -> Value? { sd.values.first { $0.name == name }?.value }
        guard case .int(let epoch)? = value("epoch"), case .int(let steps)? = value("optimizer.steps") else {
            throw ResumeError("the checkpoint has no epoch / optimizer.steps values (not written by pth2swt finetune)")
        }
        if case .int(let s)? = value("seed"), UInt64(bitPattern: s) != config.seed {
            throw ResumeError("the checkpoint was trained with --seed \(UInt64(bitPattern: s)), not \(config.seed)")
        }
        if case .int(let b)? = value("batch_size"), Int(b) != config.globalBatch {
            throw ResumeError(
                config.ranks == 1
                    ? "the checkpoint was trained with a batch of \(b) images per step, not \(config.batchSize)"
                    : "the checkpoint was trained with a batch of \(b) images per step, not \(config.ranks) ranks × \(config.batchSize) = \(config.globalBatch); give --batch-size \(Int(b) % config.ranks == 0 ? String(Int(b) / config.ranks) : "\(b) / ranks with a number of ranks that divides \(b)")"
            )
        }
        let sampler: String
        if case .string(let s)? = value("sampler") { sampler = s } else { sampler = "shuffle" }
        if sampler != (config.dataParallel ? "distributed" : "shuffle") {
            throw ResumeError(
                sampler == "distributed"
                    ? "the checkpoint was trained data-parallel, in torch's DistributedSampler order; resume it under mpirun or srun (any number of ranks, -np 1 included)"
                    : "the checkpoint was trained by one process, in its own shuffle order; resume it without mpirun")
        }
        let saved: TrainingMode
        if case .string(let f)? = value("freeze"), case .string(let b)? = value("bn"),
            let freeze = Freeze(parsing: f, stages: stages), ["train", "eval", "fixed"].contains(b)
        {
            saved = TrainingMode(freeze: freeze, batchNormTrains: b == "train", runningStatistics: b == "fixed")
        } else if case .string(let f)? = value("freeze"), Freeze(parsing: f, stages: stages) == nil {
            throw ResumeError(
                "the checkpoint's --freeze \(f) names no stage of this network (\(stages.names.joined(separator: ", "))): it was trained with another --arch"
            )
        } else if case .string(let m)? = value("mode"), let old = TrainingMode(legacy: m) {
            saved = old  // written before the freeze was a type: "freeze through:layer2, bn eval"
        } else {
            throw ResumeError("the checkpoint records no freeze and bn mode (not written by pth2swt finetune)")
        }
        if saved != mode {
            throw ResumeError("the checkpoint was trained with \(saved), not \(mode)")
        }
        // Checkpoints from before AdamW name no optimizer: they are SGD's.
        let kind = value("optimizer")?.string ?? OptimizerKind.sgd.rawValue
        guard kind == optimizer.kind.rawValue else {
            throw ResumeError("the checkpoint was trained with --optimizer \(kind), not \(optimizer.kind.rawValue)")
        }
        var state: [String: [String: [Float]]] = [:]
        for (name, t) in sd.tensors where name.hasPrefix(optimizerPrefix) {
            let rest = name.dropFirst(optimizerPrefix.count)
            guard let key = type(of: optimizer).stateNames.first(where: { rest.hasSuffix("." + $0) }) else {
                throw ResumeError("the checkpoint holds \(name), which \(kind) does not keep")
            }
            state[String(rest.dropLast(key.count + 1)), default: [:]][key] = try t.float32()
        }
        try optimizer.restore(state, steps: Int(steps))
        return Int(epoch)
    }
}

/// What a run freezes and how the frozen stages' BatchNorms run: the part of a run's settings a resume
/// must match.
public struct TrainingMode: Sendable, Equatable, CustomStringConvertible {
    public var freeze: Freeze
    /// Frozen stages' BatchNorms in training mode (`--bn train`).
    public var batchNormTrains: Bool
    /// Every BatchNorm on its running statistics, trained ones included (`--bn fixed`).
    public var runningStatistics: Bool

    public init(freeze: Freeze, batchNormTrains: Bool, runningStatistics: Bool = false) {
        self.freeze = freeze
        self.batchNormTrains = batchNormTrains
        self.runningStatistics = runningStatistics
    }

    /// What `--bn` says: eval, train or fixed.
    public var batchNorm: String { runningStatistics ? "fixed" : batchNormTrains ? "train" : "eval" }

    /// Reads the string checkpoints held before: "freeze through:layer2, bn eval".
    init?(legacy: String) {
        let parts = legacy.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.count == 2, parts[0].hasPrefix("freeze "), parts[1] == "bn eval" || parts[1] == "bn train",
            let f = Freeze(parsing: String(parts[0].dropFirst("freeze ".count)), stages: .resnet)
        else { return nil }
        self.init(freeze: f, batchNormTrains: parts[1] == "bn train")
    }

    public var description: String { "--freeze \(freeze.spelling) --bn \(batchNorm)" }
}

/// What `pth2swt finetune` drives: `FrozenBackboneTrainer` (only fc trains, on cached features where it
/// can) or `BackboneTrainer` (some or all of the backbone trains, or frozen BatchNorms run in training mode).
public protocol FineTuner: AnyObject {
    var completedEpochs: Int { get }
    var optimizer: any Optimizer { get }
    /// Whether training on `inputs` runs the head on cached backbone features.
    func caches(_ inputs: any TrainingInputs) -> Bool
    func trainEpoch(_ train: any TrainingInputs, test: (any TrainingInputs)?, progress: ((TrainProgress) -> Void)?)
        throws -> EpochReport
    func checkpoint() -> StateDict
    func restore(_ sd: StateDict) throws
}

extension FrozenBackboneTrainer: FineTuner {}

extension BackboneTrainer: FineTuner {
    public func caches(_ inputs: any TrainingInputs) -> Bool { false }
}
