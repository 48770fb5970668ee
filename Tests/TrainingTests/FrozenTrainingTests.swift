import Checkpoint
import Foundation
import NN
import Tensors
import Testing
import Vision

@testable import Training

/// Tests/Fixtures/train/frozen.json: make_train_golden.py (torch 1.13, torchvision 0.14), resnet18 with
/// ../shared/weights/resnet18-zip.pth, fc replaced by Linear(512, 2), backbone frozen, eval mode, 20 steps.
@Suite struct FrozenGoldenTests {
    /// The 8 pattern images make_train_golden.py describes, [3, 64, 64] each.
    static func patternImages(count: Int = 8) -> [[Float]] {
        (0..<count).map { n in
            var x = [Float](repeating: 0, count: 3 * 64 * 64)
            var i = 0
            for c in 0..<3 {
                for h in 0..<64 {
                    for w in 0..<64 {
                        x[i] =
                            Float((h * 131 + w * 71 + c * 37 + n * n * 53 + (h * w * (n + 1)) % 97) % 255) / 127.5 - 1
                        i += 1
                    }
                }
            }
            return x
        }
    }

    @Test(
        .enabled(
            if: Fixtures.sharedAvailable,
            "../shared/weights/resnet18-zip.pth is absent; the frozen-mode golden needs it"))
    func frozenHeadTrainingMatchesTorch() throws {
        let golden = try Fixtures.json("train/frozen.json")
        #expect(golden["generator"] as? String == "Tests/Reference/make_train_golden.py")
        let sd = try Checkpoint(path: Fixtures.sharedZip).stateDict()
        let images = Self.patternImages()
        for v in golden["variants"] as! [[String: Any]] {
            let name = v["name"] as! String
            let model = ResNet(.resnet18)
            try model.load(sd, excluding: ["fc."])
            model.replaceHead(classes: 2)
            model.fc.weight.data = floats(golden["fc_weight_init"])
            model.fc.bias.data = floats(golden["fc_bias_init"])
            let options = v["options"] as! [String: Any]
            var config = FineTuneConfig()
            config.batchSize = 4
            config.head = UnitGoldenTests.options(options)
            config.noDecayForBiasAndNorm = v["no_decay_bias"] as? Bool ?? false
            config.l2spBeta = (v["beta"] as? NSNumber)?.doubleValue ?? 0
            let before = modelStateDict(model).tensors.filter { !$0.name.hasPrefix("fc.") }.map {
                try! $0.tensor.contiguousBytes()
            }
            let trainer = try FrozenBackboneTrainer(model: model.network, config: config)
            let features = try trainer.net.features(images.flatMap { $0 }, batch: 8, height: 64, width: 64)
            let fc = trainer.net.featureCount
            var losses: [Double] = []
            for k in 0..<20 {
                let idx = (0..<4).map { (5 * k + 3 * $0) % 8 }
                let f = idx.flatMap { features[($0 * fc)..<(($0 + 1) * fc)] }
                losses.append(try trainer.step(features: f, labels: idx.map { $0 % 2 }).loss)
            }
            let want = doubles(v["losses"])
            for (k, (g, w)) in zip(losses, want).enumerated() {
                #expect(abs(g - w) <= 1e-4 * abs(w), "\(name) step \(k + 1): loss \(g), torch \(w)")
            }
            expectClose(model.fc.weight.data, doubles(v["fc_weight"]), rtol: 1e-4, "\(name) fc.weight after 20 steps")
            expectClose(model.fc.bias.data, doubles(v["fc_bias"]), rtol: 1e-4, "\(name) fc.bias after 20 steps")
            let after = modelStateDict(model).tensors.filter { !$0.name.hasPrefix("fc.") }.map {
                try! $0.tensor.contiguousBytes()
            }
            #expect(before == after, "\(name): frozen parameters and BN buffers are bit-identical")
        }
    }
}

@Suite struct FrozenTrainerTests {
    /// An image's features are the same bits whatever batch it is computed in, once algorithms are fixed:
    /// the property the feature cache stands on.
    @Test func featuresDoNotDependOnTheBatch() throws {
        let model = smallResNet()
        let net = Inference(model.network)
        try net.fixAlgorithms(batch: 8, height: 32, width: 32)
        let inputs = seededInputs(count: 8, size: 32, classes: 3)
        let all = try net.features(inputs.inputs.flatMap { $0 }, batch: 8, height: 32, width: 32)
        let f = net.featureCount
        for threads in [1, 2] {
            net.threads = threads
            for i in [0, 5, 7] {
                let one = try net.features(inputs.inputs[i], batch: 1, height: 32, width: 32)
                #expect(one == Array(all[(i * f)..<((i + 1) * f)]), "image \(i) alone, \(threads) threads")
            }
            let three = try net.features(
                inputs.inputs[2] + inputs.inputs[6] + inputs.inputs[1], batch: 3, height: 32, width: 32)
            #expect(
                three == Array(all[(2 * f)..<(3 * f)] + all[(6 * f)..<(7 * f)] + all[(1 * f)..<(2 * f)]),
                "a shuffled batch of 3")
        }
    }

    static func config(cache: Bool, epochs: Int = 3) -> FineTuneConfig {
        var c = FineTuneConfig()
        c.batchSize = 8
        c.epochs = epochs
        c.seed = 42
        c.head = SGDOptions(lr: 0.05, momentum: 0.9, weightDecay: 1e-3)
        c.cacheFeatures = cache
        return c
    }

    func train(cache: Bool, epochs: Int, from checkpoint: StateDict? = nil) throws -> (
        ResNet, FrozenBackboneTrainer, [EpochReport]
    ) {
        let model = smallResNet()
        if let checkpoint { try model.load(checkpoint, excluding: [FrozenBackboneTrainer.optimizerPrefix]) }
        let trainer = try FrozenBackboneTrainer(model: model.network, config: Self.config(cache: cache, epochs: epochs))
        if let checkpoint { try trainer.restore(checkpoint) }
        let data = seededInputs(count: 20, size: 32, classes: 3),
            test = seededInputs(count: 9, size: 32, classes: 3, seed: 99)
        var reports: [EpochReport] = []
        while trainer.completedEpochs < epochs { reports.append(try trainer.trainEpoch(data, test: test)) }
        return (model, trainer, reports)
    }

    @Test func cachedEqualsUncached() throws {
        let (a, ta, ra) = try train(cache: true, epochs: 3)
        let (b, tb, rb) = try train(cache: false, epochs: 3)
        #expect(ra.allSatisfy(\.cached) && !rb.contains(where: \.cached))
        #expect(
            ta.caches(seededInputs(count: 1, size: 32, classes: 3))
                && !tb.caches(seededInputs(count: 1, size: 32, classes: 3)))
        #expect(
            a.fc.weight.data == b.fc.weight.data && a.fc.bias.data == b.fc.bias.data,
            "cached and uncached heads are bit-identical")
        #expect(ra.map(\.loss) == rb.map(\.loss))
        #expect(ra.map { $0.eval!.loss } == rb.map { $0.eval!.loss })
        #expect(ra[0].loss != ra[2].loss, "the head learned something")
        #expect(
            ra[0].featureSeconds > 0 && ra[1].featureSeconds == 0,
            "features are computed in the first cached epoch only")
    }

    @Test func frozenPartsStayBitIdenticalAndOutOfTheOptimizer() throws {
        let model = smallResNet()
        let before = modelStateDict(model).tensors.map { ($0.name, try! $0.tensor.contiguousBytes()) }
        let trainer = try FrozenBackboneTrainer(model: model.network, config: Self.config(cache: true))
        #expect(trainer.optimizer.parameterNames == ["fc.weight", "fc.bias"])
        _ = try trainer.trainEpoch(seededInputs(count: 16, size: 32, classes: 3))
        let after = Dictionary(
            uniqueKeysWithValues: modelStateDict(model).tensors.map { ($0.name, try! $0.tensor.contiguousBytes()) })
        for (name, bytes) in before where !name.hasPrefix("fc.") { #expect(after[name] == bytes, "\(name) changed") }
        #expect(after["fc.weight"] != before.first { $0.0 == "fc.weight" }!.1, "the head trained")
        #expect(Set(trainer.optimizer.state.keys) == ["fc.weight", "fc.bias"])
    }

    /// Two epochs, a checkpoint written to disk and read back, then one more: the same bits as three
    /// epochs in one go.
    @Test func resumeEqualsUninterrupted() throws {
        let (full, _, _) = try train(cache: true, epochs: 3)
        let (_, partial, _) = try train(cache: true, epochs: 2)
        let back = try throughFile(partial.checkpoint(), name: "train-resume")
        #expect(back.values.first { $0.name == "epoch" }?.value.int == 2)
        let (resumed, trainer, reports) = try train(cache: true, epochs: 3, from: back)
        #expect(reports.map(\.epoch) == [3])
        #expect(trainer.optimizer.steps == 9, "3 epochs of 3 batches")
        #expect(resumed.fc.weight.data == full.fc.weight.data && resumed.fc.bias.data == full.fc.bias.data)
        // A different seed is refused rather than silently continued.
        var other = Self.config(cache: true)
        other.seed = 1
        #expect(throws: ResumeError.self) {
            try FrozenBackboneTrainer(model: smallResNet().network, config: other).restore(back)
        }
    }

    @Test func augmentedInputsAreNotCached() throws {
        let model = smallResNet(classes: 2)
        let trainer = try FrozenBackboneTrainer(model: model.network, config: Self.config(cache: true))
        let gray = RGBImage(width: 40, height: 30, pixels: (0..<(40 * 30 * 3)).map { UInt8($0 % 251) })
        let data = TransformedImages(
            MemoryImages(images: [gray, gray, gray, gray], labels: [0, 1, 0, 1]), augment: true, seed: 3,
            preprocessing: ImageNetEval(resizeSize: 36, cropSize: 32))
        #expect(!trainer.caches(data))
        let r = try trainer.trainEpoch(data)
        #expect(!r.cached && r.images == 4)
        // Same (seed, epoch, index), same input; another epoch, another crop.
        #expect(try data.input(2, epoch: 1) == data.input(2, epoch: 1))
        #expect(try data.input(2, epoch: 1) != data.input(2, epoch: 2))
    }
}

/// Images held in memory, for tests.
struct MemoryImages: ImageDataset {
    let images: [RGBImage]
    let labels: [Int]
    var count: Int { images.count }
    var classNames: [String] { ["a", "b"] }
    func label(_ index: Int) -> Int { labels[index] }
    func image(_ index: Int) throws -> RGBImage { images[index] }
    func source(_ index: Int) -> String { "memory[\(index)]" }
}
