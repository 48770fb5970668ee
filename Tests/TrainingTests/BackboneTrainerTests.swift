import Checkpoint
import Foundation
import NN
import Tensors
import Testing
import Vision

@testable import Training

/// `BackboneTrainer` (finetune's --freeze through:STAGE|none and --bn train) on a small seeded ResNet.
struct BackboneTrainerTests {
    static func config(frozenThrough: Int, bnTrains: Bool = false) -> FineTuneConfig {
        var c = FineTuneConfig()
        c.batchSize = 8
        c.epochs = 3
        c.seed = 42
        c.head = SGDOptions(lr: 0.05, momentum: 0.9, weightDecay: 1e-3, nesterov: true)
        c.backbone = SGDOptions(lr: 0.005, momentum: 0.9, weightDecay: 1e-3, nesterov: true)
        c.frozenThrough = frozenThrough
        c.frozenBatchNormTrains = bnTrains
        c.noDecayForBiasAndNorm = true
        c.l2spAlpha = 0.01
        c.schedule = .warmupCosine(warmup: 1, total: 3)
        return c
    }

    func train(_ config: FineTuneConfig, epochs: Int, from checkpoint: StateDict? = nil) throws -> (
        ResNet, BackboneTrainer, [EpochReport]
    ) {
        let model = smallResNet()
        let trainer = try BackboneTrainer(model: model.network, config: config)
        if let checkpoint {
            try model.load(checkpoint, excluding: [TrainingState.optimizerPrefix])
            try trainer.restore(checkpoint)
        }
        let data = seededInputs(count: 20, size: 32, classes: 3),
            test = seededInputs(count: 9, size: 32, classes: 3, seed: 99)
        var reports: [EpochReport] = []
        while trainer.completedEpochs < epochs { reports.append(try trainer.trainEpoch(data, test: test)) }
        return (model, trainer, reports)
    }

    static func state(_ model: ResNet) -> [String: [UInt8]] {
        Dictionary(
            uniqueKeysWithValues: modelStateDict(model).tensors.map {
                ($0.name, Array(try! $0.tensor.contiguousBytes()))
            })
    }

    /// The optimizer holds exactly the trainable stages and fc, split into decayed and `.no_decay` groups;
    /// frozen stages (parameters and, with --bn eval, running statistics) end bit-identical; the stages
    /// that train all moved.
    @Test(arguments: [0, 1, 3, 4])
    func frozenStagesStayPutAndTheRestTrains(_ through: Int) throws {
        let model = smallResNet()
        let before = Self.state(model)
        let trainer = try BackboneTrainer(model: model.network, config: Self.config(frozenThrough: through))
        let frozen = ["conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4."].prefix(
            through == 0 ? 0 : through + 1)
        func isFrozen(_ name: String) -> Bool { frozen.contains { name.hasPrefix($0) } }
        let held = Set(trainer.optimizer.parameterNames)
        #expect(held == Set(model.namedParameters.map(\.name).filter { !isFrozen($0) }))
        let groups = trainer.optimizer.groups
        #expect(
            groups.map(\.name) == (through == 5 ? [] : ["backbone", "backbone.no_decay"]) + ["head", "head.no_decay"])
        for g in groups {
            #expect(
                g.parameters.allSatisfy { ($0.parameter.shape.count == 1) == g.name.hasSuffix(".no_decay") },
                "\(g.name)")
            #expect(g.options.weightDecay == (g.name.hasSuffix(".no_decay") ? 0 : 1e-3), "\(g.name)")
        }
        _ = try trainer.trainEpoch(seededInputs(count: 16, size: 32, classes: 3))
        let after = Self.state(model)
        for (name, bytes) in before {
            if isFrozen(name) {
                #expect(after[name] == bytes, "frozen \(name) changed")
            } else if !name.hasSuffix("num_batches_tracked") {
                #expect(after[name] != bytes, "trainable \(name) did not change")
            }
        }
        #expect(Set(trainer.optimizer.state.keys) == held)
    }

    /// --bn train: frozen parameters stay bit-identical, but the frozen BatchNorms' running statistics
    /// move and count their batches, as in torch's train() mode.
    @Test func frozenBatchNormInTrainingModeUpdatesOnlyStatistics() throws {
        let model = smallResNet()
        let before = Self.state(model)
        let trainer = try BackboneTrainer(model: model.network, config: Self.config(frozenThrough: 5, bnTrains: true))
        #expect(trainer.optimizer.parameterNames.sorted() == ["fc.bias", "fc.weight"])
        _ = try trainer.trainEpoch(seededInputs(count: 16, size: 32, classes: 3))
        let after = Self.state(model)
        for name in model.namedParameters.map(\.name) where !name.hasPrefix("fc.") {
            #expect(after[name] == before[name], "\(name) changed")
        }
        for (name, entry) in model.stateEntries {
            switch entry {
            case .buffer: #expect(after[name] != before[name], "\(name) did not move")
            case .int64(let b): #expect(b.value == 2, "\(name): \(b.value) batches, not 2")
            case .parameter: break
            }
        }
    }

    /// One epoch, a checkpoint written to disk and read back, then two more (warmup + cosine schedule,
    /// nesterov, L2-SP): the same bits as three epochs in one go, running statistics included.
    @Test(arguments: [0, 3])
    func resumeEqualsUninterrupted(_ through: Int) throws {
        let config = Self.config(frozenThrough: through)
        let (full, fullTrainer, fullReports) = try train(config, epochs: 3)
        let (_, partial, _) = try train(config, epochs: 1)
        let back = try throughFile(partial.checkpoint(), name: "backbone-resume-\(through)")
        let (resumed, trainer, reports) = try train(config, epochs: 3, from: back)
        #expect(reports.map(\.epoch) == [2, 3])
        #expect(reports.map(\.loss) == Array(fullReports.map(\.loss).suffix(2)))
        #expect(
            trainer.optimizer.groups.map(\.options.lr) == fullTrainer.optimizer.groups.map(\.options.lr),
            "the schedule's position")
        let (a, b) = (Self.state(resumed), Self.state(full))
        #expect(a.keys.sorted() == b.keys.sorted())
        for (name, bytes) in b { #expect(a[name] == bytes, "\(name) differs after resuming") }
        #expect(fullReports[0].loss != fullReports[2].loss)
        // Another freezing mode is refused rather than silently continued.
        #expect(throws: ResumeError.self) {
            try BackboneTrainer(model: smallResNet().network, config: Self.config(frozenThrough: through + 1)).restore(
                back)
        }
    }

    /// The same with AdamW (amsgrad, two groups): its moments and per-parameter steps survive the file, and
    /// a resume with SGD is refused.
    @Test func adamwResumeEqualsUninterrupted() throws {
        var config = Self.config(frozenThrough: 3)
        config.optimizer = .adamw
        config.head = OptimizerOptions(lr: 1e-3, weightDecay: 0.01, amsgrad: true)
        config.backbone = OptimizerOptions(lr: 1e-4, weightDecay: 0.01, amsgrad: true)
        let (full, _, fullReports) = try train(config, epochs: 3)
        let (_, partial, _) = try train(config, epochs: 1)
        let saved = partial.checkpoint()
        #expect(saved.names.contains("optimizer.fc.weight.max_exp_avg_sq"))
        #expect(saved.values.first { $0.name == "optimizer" }?.value.string == "adamw")
        let back = try throughFile(saved, name: "backbone-resume-adamw")
        let (resumed, _, reports) = try train(config, epochs: 3, from: back)
        #expect(reports.map(\.loss) == Array(fullReports.map(\.loss).suffix(2)))
        let (a, b) = (Self.state(resumed), Self.state(full))
        for (name, bytes) in b { #expect(a[name] == bytes, "\(name) differs after resuming") }
        #expect(throws: ResumeError.self) {
            try BackboneTrainer(model: smallResNet().network, config: Self.config(frozenThrough: 3)).restore(back)
        }
    }

    /// The evaluation runs in eval mode: the running statistics, folded, exactly as `Inference`.
    @Test func evaluationUsesRunningStatistics() throws {
        let (model, trainer, _) = try train(Self.config(frozenThrough: 0), epochs: 1)
        let test = seededInputs(count: 9, size: 32, classes: 3, seed: 99)
        let report = try trainer.evaluate(test)
        let net = Inference(model.network)
        net.threads = 1
        // The evaluation chooses its convolution algorithms for its batch size, 8, the last batch included.
        net.algorithmBatch = 8
        var direct = EvalReport(classes: 3)
        for range in [0..<8, 8..<9] {  // the trainer's batches of 8
            direct.add(
                logits: try net.logits(test.inputs[range].flatMap { $0 }, batch: range.count, height: 32, width: 32),
                labels: Array(test.labels[range]), classes: 3)
        }
        #expect(report.loss == direct.loss && report.confusion == direct.confusion)
    }
}
