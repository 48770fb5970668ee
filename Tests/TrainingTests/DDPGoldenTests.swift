import Checkpoint
import Foundation
import NN
import Testing
import Vision

@testable import Training

/// Data-parallel training against torch 1.13's DistributedDataParallel with the gloo backend
/// (Tests/Reference/make_ddp_golden.py, ddp.json): 20 steps of resnet18 from resnet18-zip.pth with a new
/// 2-class head, frozen through layer2, SGD(lr 5e-4, momentum 0.9), 24 pattern images, a global batch of
/// 6 over 2 and 3 ranks (here threads, `ThreadGroup`), DistributedSampler(shuffle, seed 7).
@Suite(
    .enabled(
        if: Fixtures.sharedAvailable, "../shared/weights/resnet18-zip.pth is absent; the DDP golden needs it"))
struct DDPGoldenTests {
    /// The trainable stages' BatchNorms on each rank's own batch statistics; with --bn train the frozen
    /// stages' too. Rank 0's running statistics are the ones compared (DDP broadcasts rank 0's buffers
    /// before every forward, so they evolve from rank 0's batches alone).
    /// through_layer2_bn_eval: every BatchNorm in eval mode (`batchNormUsesRunningStatistics`, --bn fixed)
    /// at lr 1e-4, where N ranks are the one-process run up to the order of the sums.
    /// Three of the seven cases by default (a debug build takes 75 s a case); PTH2SWT_DDP_ALL=1 runs all.
    static let cases: [(String, Int)] =
        ProcessInfo.processInfo.environment["PTH2SWT_DDP_ALL"] == "1"
        ? [
            ("through_layer2", 2), ("through_layer2", 3), ("through_layer2_bn_train", 2),
            ("through_layer2_bn_train", 3), ("through_layer2_bn_eval", 1), ("through_layer2_bn_eval", 2),
            ("through_layer2_bn_eval", 3),
        ]
        : [("through_layer2", 3), ("through_layer2_bn_train", 2), ("through_layer2_bn_eval", 3)]

    @Test(arguments: cases)
    func matchesTorchDDP(_ mode: String, _ ranks: Int) throws {
        let golden = try Fixtures.json("train/ddp.json")
        #expect(golden["generator"] as? String == "Tests/Reference/make_ddp_golden.py")
        let c = (golden["cases"] as! [String: [String: [String: Any]]])[mode]![String(ranks)]!
        let backbone = try Fixtures.json("train/backbone.json")
        let fcWeight = floats(backbone["fc_weight_init"]), fcBias = floats(backbone["fc_bias_init"])
        let indices = c["indices"] as! [[[Int]]]
        let epochs = c["epochs"] as! [Int]
        let batch = c["batch"] as! Int
        let images = FrozenGoldenTests.patternImages(count: 24)
        let setup = golden["setup"] as! [String: Any]
        let modeLR = setup["mode_lr"] as! [String: Double]
        let lr: Double = modeLR[mode] ?? (setup["lr"] as! Double)
        let sd = try Checkpoint(path: Fixtures.sharedZip).stateDict()
        let group = ThreadGroup(size: ranks)
        let results = try group.run { rank -> (losses: [Double], model: ResNet) in
            let model = ResNet(.resnet18)
            try model.load(sd, excluding: ["fc."])
            model.replaceHead(classes: 2)
            model.fc.weight.data = fcWeight
            model.fc.bias.data = fcBias
            if ProcessInfo.processInfo.environment["PTH2SWT_DDP_PERTURB"] == "1" {
                // A diagnostic, not a case: layer3.0.conv1's weights moved by one rounding, as
                // measure_ddp_sensitivity.py moves torch's.
                for (name, p) in model.network.namedParameters where name == "layer3.0.conv1.weight" {
                    p.data = p.data.map { $0 * (1 + .ulpOfOne) }
                }
            }
            let step = try NetworkStep(
                network: model.network, frozen: StageList(model.network).frozenPrefixes(.through("layer2")),
                options: SGDOptions(lr: lr, momentum: 0.9), frozenBatchNormTrains: mode == "through_layer2_bn_train",
                batchNormUsesRunningStatistics: mode == "through_layer2_bn_eval",
                threads: 1)
            // DDP's buckets, each allreduced while the backward pass goes on (as `finetune` does).
            step.reducer = GradientReducer(
                parameters: step.trainable.map { ($0.name, $0.parameter.data.count) }, group: rank, overlaps: true)
            var losses: [Double] = []
            for k in 0..<20 {
                // Our sampler gives torch's indices for this rank and step.
                let mine = DataParallel.order(count: 24, seed: 7, epoch: epochs[k] + 1, rank: rank.rank, ranks: ranks)
                let within = k % 4
                let idx = Array(mine[(within * batch)..<((within + 1) * batch)])
                #expect(idx == indices[k][rank.rank], "step \(k) rank \(rank.rank)")
                losses.append(
                    try step.step(idx.flatMap { images[$0] }, labels: idx.map { $0 % 2 }, height: 64, width: 64).loss)
            }
            return (losses, model)
        }
        // Per step, the mean of the ranks' losses (what DDP's loss is, averaged) against torch's.
        let want = doubles(c["losses"])
        var worst = 0.0
        var early = 0.0
        for k in 0..<20 {
            let mean = results.map { $0.losses[k] }.reduce(0, +) / Double(ranks)
            let d = abs(mean - want[k]) / abs(want[k])
            worst = max(worst, d)
            if k < 5 { early = max(early, d) }
        }
        let bound = Self.bounds["\(mode)/\(ranks)"]!
        if mode == "through_layer2_bn_eval" {
            // With every BatchNorm on its running statistics, N ranks are torch's one-process run.
            let one = doubles((golden["cases"] as! [String: [String: [String: Any]]])[mode]!["1"]!["losses"])
            var apart = 0.0
            for k in 0..<20 {
                let mean: Double = results.map { $0.losses[k] }.reduce(0, +) / Double(ranks)
                apart = max(apart, abs(mean - one[k]) / abs(one[k]))
            }
            #expect(apart <= bound.loss, "\(mode) on \(ranks) ranks: \(apart) from torch's one-process run")
            print("DDPGoldenTests: \(mode) on \(ranks) ranks: losses within \(apart) of torch's one-process run")
        }
        #expect(early <= 1e-5, "\(mode) on \(ranks) ranks: the first 5 losses differ from torch's by \(early)")
        #expect(worst <= bound.loss, "\(mode) on \(ranks) ranks: losses differ from torch's by \(worst) (relative)")
        // Every rank holds the same parameters.
        for r in results.dropFirst() {
            for ((_, a), (_, b)) in zip(r.model.namedParameters, results[0].model.namedParameters) {
                #expect(a.data == b.data)
            }
        }
        // Rank 0's state: every tensor torch changed, by norm and samples, to a bound of its scale; the
        // weights (parameters) and the running statistics (buffers) apart.
        let state = Dictionary(uniqueKeysWithValues: results[0].model.stateEntries.map { ($0.name, $0.entry) })
        var worstWeights = Self.distance(results[0].model.fc.weight.data, c["fc_weight"] as! [String: Any])
        var worstStatistics = 0.0
        for (name, s) in c["changed"] as! [String: [String: Any]] {
            switch state[name] ?? nil {
            case .parameter(let p)?: worstWeights = max(worstWeights, Self.distance(p.data, s))
            case .buffer(let p)?: worstStatistics = max(worstStatistics, Self.distance(p.data, s))
            default: Issue.record("\(name): torch changed it, and resnet18 has no such float tensor")
            }
        }
        let worstState = max(worstWeights, worstStatistics)
        #expect(worstWeights <= bound.weights, "\(mode) on \(ranks) ranks: rank 0's weights differ by \(worstWeights)")
        #expect(
            worstStatistics <= bound.statistics,
            "\(mode) on \(ranks) ranks: rank 0's running statistics differ by \(worstStatistics)")
        print(
            "DDPGoldenTests: \(mode) on \(ranks) ranks: losses within \(worst), rank 0's weights within \(worstWeights) and running statistics within \(worstStatistics) (state \(worstState)) of torch's"
        )
    }

    /// Bounds per case, over 20 steps (loss: relative; weights and running statistics: relative to each
    /// tensor's scale). Measured on an AMD EPYC with AVX-512 (worst step; worst weight; worst running
    /// statistic): through_layer2 on 2 ranks 6.7e-7, 1.5e-6, 1.4e-6; on 3 ranks 7.2e-4, 1.1e-4, 9.6e-4;
    /// through_layer2_bn_train on 2 ranks 1.9e-5, 3.0e-5, 1.1e-4, on 3 ranks 6.0e-5, 5.5e-5, 2.1e-4;
    /// through_layer2_bn_eval (every BatchNorm on running statistics, lr 1e-4) on 1, 2 and 3 ranks 2.0e-6,
    /// 6.9e-6 and 4.3e-6 in the loss, at most 8.4e-8 in the weights, statistics unchanged; its 2- and
    /// 3-rank runs are within 3.1e-6 of torch's one-process run. Every case agrees to 1e-5 over its first
    /// 5 steps. The 3-rank through_layer2 run agrees to 1e-5 through step 7 and then parts; with
    /// PTH2SWT_DDP_PERTURB=1 (layer3.0.conv1 moved by one rounding) the same case stays within 8.6e-7
    /// (state 4.4e-6) of torch over all 20 steps, while torch's run moved the same way stays within
    /// 8.6e-7 of itself (measure_ddp_sensitivity.py). So this run of ours, and not the arithmetic, passes
    /// near a point where the step is not continuous in the weights (each rank's BatchNorm sees 2 images,
    /// 8 positions at layer4, so one element on the other side of a ReLU weighs much); the same
    /// one-rounding change moves torch's own runs by up to 1.6e-4 on other batch sizes.
    static let bounds: [String: (loss: Double, weights: Double, statistics: Double)] = [
        "through_layer2/2": (1e-5, 1e-5, 1e-5), "through_layer2/3": (2e-3, 5e-4, 2e-3),
        "through_layer2_bn_train/2": (1e-4, 1e-4, 5e-4), "through_layer2_bn_train/3": (2e-4, 1e-4, 5e-4),
        "through_layer2_bn_eval/1": (2e-5, 1e-6, 1e-6), "through_layer2_bn_eval/2": (2e-5, 1e-6, 1e-6),
        "through_layer2_bn_eval/3": (2e-5, 1e-6, 1e-6),
    ]

    /// The larger of the norm's relative difference and the samples' largest difference over the
    /// samples' scale.
    static func distance(_ data: [Float], _ s: [String: Any]) -> Double {
        let norm = (data.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
        let wantNorm = (s["norm"] as! NSNumber).doubleValue
        let idx = s["indices"] as! [Int]
        let want = doubles(s["samples"])
        let scale = max(want.map(abs).max() ?? 0, 1e-12)
        let samples = zip(idx.map { Double(data[$0]) }, want).map { abs($0 - $1) }.max() ?? 0
        return max(abs(norm - wantNorm) / max(wantNorm, 1e-12), samples / scale)
    }
}
