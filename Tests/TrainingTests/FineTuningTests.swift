import Checkpoint
import Foundation
import NN
import Tensors
import Testing
import Vision

@testable import Training

/// The library's fine-tuning run: the start digest that ties a checkpoint to its starting weights, the
/// resume rule, and the model card the model file carries.
@Suite struct FineTuningTests {
    static func config(epochs: Int = 2, seed: UInt64 = 0) -> FineTuneConfig {
        var c = FineTuneConfig()
        c.epochs = epochs
        c.batchSize = 4
        c.seed = seed
        return c
    }

    @Test func startDigestNamesTheValuesNotTheFile() throws {
        let a = try FineTuning(arch: "resnet18", classes: 2, weights: nil, config: Self.config())
        let b = try FineTuning(
            arch: "resnet18", classes: 5, head: .mlp(hidden: 8, dropout: 0.5), weights: nil, config: Self.config())
        #expect(a.startDigest == b.startDigest, "the head is not part of it")
        // The same values through a .swt file: the same digest.
        let path = NSTemporaryDirectory() + "finetuning-\(getpid()).swt"
        defer { try? FileManager.default.removeItem(atPath: path) }
        try SWTWriter.write(a.modelStateDict(), to: path, converter: "test")
        let c = try FineTuning(
            arch: "resnet18", classes: 2, weights: try Checkpoint(path: path).stateDict(), config: Self.config())
        #expect(c.startDigest == a.startDigest)
        let other = try FineTuning(arch: "resnet18", classes: 2, weights: nil, config: Self.config(seed: 1))
        #expect(other.startDigest != a.startDigest)
    }

    @Test func resumeRefusesACheckpointOfOtherStartingWeights() throws {
        let data = seededInputs(count: 4, size: 32, classes: 2)
        let run = try FineTuning(arch: "resnet18", classes: 2, weights: nil, config: Self.config())
        _ = try run.trainEpoch(data)
        let checkpoint = try throughFile(run.checkpoint(), name: "finetuning-resume")
        #expect(checkpoint.values.contains { $0.name == FineTuning.startDigestValue })
        // Another run from the same start continues it.
        let same = try FineTuning(arch: "resnet18", classes: 2, weights: nil, config: Self.config())
        #expect(try same.resume(from: checkpoint).isEmpty)
        #expect(same.completedEpochs == 1)
        #expect(same.modelStateDict().tensors.map(\.name) == run.modelStateDict().tensors.map(\.name))
        // Other starting values: refused before anything is loaded.
        let pretrained = try FineTuning(arch: "resnet18", classes: 2, weights: nil, config: Self.config())
        pretrained.network.namedParameters[0].parameter.data[0] += 1
        let seeded = pretrained.modelStateDict()
        let other = try FineTuning(arch: "resnet18", classes: 2, weights: seeded, config: Self.config())
        #expect(throws: FineTuningError.otherStartingWeights) { try other.resume(from: checkpoint) }
        #expect(other.completedEpochs == 0)
    }

    /// Stopped after epoch 1 and resumed from the checkpoint file, a run ends bit for bit where the
    /// uninterrupted run ends: for each family, with part of its backbone training (the freeze is read
    /// against the family's own stages).
    @Test(arguments: [
        ("resnet18", "layer3"), ("mobilenet_v2", "features.15"), ("mobilenet_v3_small", "features.8"),
        ("efficientnet_b0", "features.5"), ("mnasnet0_5", "layers.12"), ("regnet_y_400mf", "block3"),
        ("shufflenet_v2_x0_5", "stage3"), ("densenet121", "transition3"), ("squeezenet1_1", "features.9"),
        ("squeezenet1_0", "backbone"),
    ])
    func aResumedRunIsTheUninterruptedRun(_ arch: String, _ freeze: String) throws {
        try Self.resumeIsUninterrupted(arch, freeze)
    }

    /// The same for the three largest families' networks (24 to 29 million parameters, four copies of
    /// each): the address-sanitized CI run leaves these out for time (scripts/sanitize.sh's --skip).
    @Test(arguments: [("convnext_tiny", "features.5"), ("googlenet", "inception4e"), ("inception_v3", "Mixed_7a")])
    func aResumedLargeRunIsTheUninterruptedRun(_ arch: String, _ freeze: String) throws {
        try Self.resumeIsUninterrupted(arch, freeze)
    }

    static func resumeIsUninterrupted(_ arch: String, _ freeze: String) throws {
        // Inception v3 takes no input smaller than 75×75.
        let data = seededInputs(count: 8, size: arch == "inception_v3" ? 75 : 32, classes: 2)
        var c = Self.config(epochs: 2)
        c.backbone = SGDOptions(lr: 0.01, momentum: 0.9)
        let whole = try FineTuning(arch: arch, classes: 2, weights: nil, freeze: freeze, config: c)
        _ = try whole.train(data, through: 2) { _ in }
        let first = try FineTuning(arch: arch, classes: 2, weights: nil, freeze: freeze, config: c)
        _ = try first.train(data, through: 1) { _ in }
        let checkpoint = try throughFile(first.checkpoint(), name: "resume-\(arch)")
        let resumed = try FineTuning(arch: arch, classes: 2, weights: nil, freeze: freeze, config: c)
        #expect(try resumed.resume(from: checkpoint).isEmpty)
        #expect(resumed.completedEpochs == 1)
        _ = try resumed.train(data, through: 2) { _ in }
        let a = whole.modelStateDict(), b = resumed.modelStateDict()
        #expect(a.tensors.map(\.name) == b.tensors.map(\.name))
        var compared = 0
        for ((name, x), (_, y)) in zip(a.tensors, b.tensors) where x.dtype == .float32 {
            #expect(try x.float32() == y.float32(), "\(arch): \(name)")
            compared += 1
        }
        #expect(compared >= 50)  // SqueezeNet has 52 tensors, the others more
        // And the run moved: the uninterrupted run's weights are not the starting ones.
        let start = try FineTuning(arch: arch, classes: 2, weights: nil, freeze: freeze, config: c).modelStateDict()
        #expect(try zip(a.tensors, start.tensors).contains { try $0.1.float32() != $1.1.float32() })
    }

    /// SqueezeNet's head is a 1×1 convolution: it is replaced by another (the ReLU and pool after it
    /// kept), an MLP head is refused, and with the whole backbone frozen only the head's parameters move.
    @Test func aConvolutionHeadIsReplacedByAConvolution() throws {
        #expect(throws: FineTuningError.unsupportedHead(arch: "squeezenet1_1", kind: "mlp:64:0.5")) {
            try FineTuning(
                arch: "squeezenet1_1", classes: 3, head: .mlp(hidden: 64, dropout: 0.5), weights: nil,
                config: Self.config())
        }
        let run = try FineTuning(arch: "squeezenet1_1", classes: 3, weights: nil, config: Self.config(epochs: 1))
        let head = try #require(run.network.headConvolution)
        #expect(head.outChannels == 3 && head.inChannels == 512 && head.bias != nil)
        #expect(run.network.classes == 3 && !run.onlyHeadTrains)
        let before = run.modelStateDict()
        _ = try run.train(seededInputs(count: 8, size: 32, classes: 3), through: 1) { _ in }
        let after = run.modelStateDict()
        for ((name, x), (_, y)) in zip(before.tensors, after.tensors) where x.dtype == .float32 {
            let moved = try x.float32() != y.float32()
            #expect(moved == name.hasPrefix("classifier.1."), "\(name) moved: \(moved)")
        }
    }

    /// A training step on an input the network cannot take throws before anything runs, naming the layer
    /// (the lowering's shape walk, as inference's): AlexNet's 11×11 stem on 1×1.
    @Test func aStepOnAnInputTooSmallIsRefusedNamingTheLayer() throws {
        let net = Architecture.named("alexnet")!.build(2)
        let step = try NetworkStep(network: net, frozen: ["features."], options: SGDOptions(lr: 0.01))
        #expect(throws: Lowering.ShapeError(step: "features.0", detail: "input 1×1 is too small")) {
            try step.step([Float](repeating: 0, count: 2 * 3), labels: [0, 1], height: 1, width: 1)
        }
        #expect(step.optimizer.steps == 0)
    }

    /// Frozen BatchNorms that train and BatchNorms that keep their running statistics cannot both be
    /// asked for: an error, not a trap.
    @Test func conflictingBatchNormModesAreRefused() throws {
        var c = Self.config()
        c.frozenBatchNormTrains = true
        c.batchNormUsesRunningStatistics = true
        #expect(throws: FineTuningError.conflictingBatchNormModes) {
            try FineTuning(arch: "resnet18", classes: 2, weights: nil, freeze: "layer2", config: c)
        }
    }

    @Test func trainRunsEpochsUntilThroughAndHandsEachReportOver() throws {
        let data = seededInputs(count: 4, size: 32, classes: 2)
        let run = try FineTuning(arch: "resnet18", classes: 2, weights: nil, config: Self.config(epochs: 3))
        var seen: [Int] = []
        let reports = try run.train(data, through: 2) { seen.append($0.epoch) }
        #expect(reports.map(\.epoch) == [1, 2] && seen == [1, 2] && run.completedEpochs == 2)
        #expect(try run.train(data, through: 2) { _ in Issue.record("an epoch past through") }.isEmpty)
        // An error from the caller's save stops the loop after that epoch.
        struct Full: Error {}
        #expect(throws: Full.self) { try run.train(data, through: 3) { _ in throw Full() } }
        #expect(run.completedEpochs == 3)
    }

    @Test func aBatchThatCannotFitIsRefusedBeforeItAllocates() throws {
        var config = Self.config()
        config.batchSize = 4096
        config.freeze = .none
        let whole = try FineTuning(arch: "resnet18", classes: 2, weights: nil, freeze: "none", config: config)
        whole.maxBufferBytes = 8 << 30
        // 4096 images × 33 MB of outputs (ResNet-18 at 224×224): far past 8 GiB.
        #expect(throws: FineTuningError.self) { try whole.checkMemory(height: 224, width: 224) }
        // With 8 images there is no batch of 4096.
        #expect(throws: Never.self) { try whole.checkMemory(height: 224, width: 224, images: 8) }
        let head = try FineTuning(arch: "resnet18", classes: 2, weights: nil, config: config)
        head.maxBufferBytes = 64 << 20
        let e = #expect(throws: FineTuningError.self) { try head.checkMemory(height: 224, width: 224, images: 64) }
        guard case .tooLarge(_, let limit)? = e else {
            Issue.record("\(String(describing: e))")
            return
        }
        #expect(limit == 64 << 20)
    }

    @Test func unknownStagesAndArchitecturesAreNamed() {
        #expect(throws: FineTuningError.unknownArchitecture("resnet19")) {
            try FineTuning(arch: "resnet19", classes: 2, weights: nil, config: Self.config())
        }
        let e = #expect(throws: FineTuningError.self) {
            try FineTuning(arch: "resnet18", classes: 2, weights: nil, freeze: "layer9", config: Self.config())
        }
        #expect(e?.description.contains("layer1") == true)
    }

    @Test func modelCardRoundTripsThroughMetadata() throws {
        let run = try FineTuning(arch: "resnet18", classes: 3, weights: nil, config: Self.config())
        let card = run.card(classNames: ["cat", "dog", "emu"])
        #expect(try ModelCard(metadata: card.metadata) == card)
        #expect(card.arch == "resnet18" && card.head == "linear")
        #expect(try ModelCard(metadata: []) == nil, "no card: nil, not an error")
        var broken = card.metadata
        broken.removeAll { $0.key == ModelCard.prefix + "class.1" }
        #expect(throws: ModelCardError("no pth2swt.model.class.1")) { try ModelCard(metadata: broken) }
        let huge = card.metadata.map { $0.key == ModelCard.prefix + "classes" ? ($0.key, "100000000") : $0 }
        #expect(throws: ModelCardError.self) { try ModelCard(metadata: huge) }
    }

    /// A DenseNet-121 state dict under the old key names (`denselayer1.norm.1.weight`, as torchvision's
    /// published file has them) is recognised as densenet121 when given to another --arch.
    @Test func oldDenseNetNamesStillSayWhichNetworkAFileIs() throws {
        let run = try FineTuning(arch: "densenet121", classes: 1000, weights: nil, config: Self.config())
        var old = StateDict()
        for (name, tensor) in run.modelStateDict().tensors {
            let legacy = name.replacingOccurrences(
                of: #"(denselayer\d+\.(norm|conv))([12])\."#, with: "$1.$3.", options: .regularExpression)
            try old.insert(tensor, named: legacy)
        }
        #expect(old.names.contains("features.denseblock1.denselayer1.norm.1.weight"))
        let best = try #require(Architecture.fits(old).first)
        #expect(best.name == "densenet121" && best.matched == best.networkKeys, "\(best)")
    }

    /// A card records the run's eval transform, bicubic included, and gives it back; a filter this
    /// version does not implement is named, not silently replaced.
    @Test func modelCardKeepsThePreprocessing() throws {
        let run = try FineTuning(arch: "resnet18", classes: 2, weights: nil, config: Self.config())
        let p = ImageNetEval(resizeSize: 72, cropSize: 64, interpolation: .bicubic)
        let card = try #require(try ModelCard(metadata: run.card(classNames: ["a", "b"], preprocessing: p).metadata))
        #expect(card.resize == 72 && card.crop == 64 && card.interpolation == "bicubic")
        #expect(card.unsupportedPreprocessing == nil)
        let back = card.preprocessing
        #expect(back.resizeSize == 72 && back.cropSize == 64 && back.interpolation == .bicubic)
        var other = card
        other.interpolation = "lanczos"
        #expect(other.unsupportedPreprocessing?.contains("lanczos") == true)
    }
}
