import Foundation
import NN
import Testing
import Vision

@testable import Training

/// Data-parallel fine-tuning with N ranks as N threads (`ThreadGroup`): the semantics of torch's
/// DistributedDataParallel without MPI.
@Suite struct DataParallelTests {
    /// 24 seeded 32×32 inputs of 2 classes.
    static func inputs() -> TensorInputs {
        var rng = SplitMix64(seed: 11)
        let images = (0..<24).map { _ in (0..<(3 * 32 * 32)).map { _ in rng.nextUnitFloat() * 2 - 1 } }
        return TensorInputs(
            inputs: images, labels: (0..<24).map { $0 % 2 }, classNames: ["a", "b"], height: 32, width: 32)
    }

    static func config(batch: Int, ranks: Int) -> FineTuneConfig {
        var c = FineTuneConfig()
        c.batchSize = batch
        c.ranks = ranks
        c.dataParallel = true
        c.seed = 5
        c.head = SGDOptions(lr: 0.05, momentum: 0.9)
        return c
    }

    /// With only the head training (features in eval mode, so no per-rank statistics), N ranks of per-rank
    /// batch b train as one process of batch N·b on the same sampler order: the same weights up to the order
    /// of the gradient sums, and the same metrics.
    @Test func aFrozenBackboneTrainsAlikeOnOneTwoAndThreeRanks() throws {
        let train = Self.inputs()
        func run(ranks: Int) throws -> (weights: [Float], loss: Double, eval: EvalReport) {
            let group = ThreadGroup(size: ranks)
            let results = try group.run { rank -> ([Float], Double, EvalReport) in
                let ft = try FineTuning(
                    arch: "resnet18", classes: 2, weights: nil, config: Self.config(batch: 6 / ranks, ranks: ranks))
                try ft.join(rank)
                var last: EpochReport?
                for _ in 0..<2 { last = try ft.trainEpoch(train, test: train) }
                let fc = ft.network.namedParameters.filter { $0.name.hasPrefix("fc.") }.flatMap { $0.parameter.data }
                return (fc, last!.loss, last!.eval!)
            }
            // Every rank holds the same weights, bit for bit, and reports the same numbers.
            for r in results.dropFirst() {
                #expect(r.0 == results[0].0)
                #expect(r.1 == results[0].1 && r.2.count == results[0].2.count)
            }
            return results[0]
        }
        let one = try run(ranks: 1)
        for ranks in [2, 3] {
            let many = try run(ranks: ranks)
            let scale = one.weights.map(abs).max()!
            let diff = zip(one.weights, many.weights).map { abs($0 - $1) }.max()!
            #expect(diff <= 1e-5 * scale, "\(ranks) ranks: weights differ by \(diff) (scale \(scale))")
            #expect(
                abs(one.loss - many.loss) <= 1e-5 * abs(one.loss), "\(ranks) ranks: loss \(many.loss) vs \(one.loss)")
            #expect(many.eval.count == 24 && many.eval.confusion == one.eval.confusion)
            #expect(abs(many.eval.loss - one.eval.loss) <= 1e-5 * abs(one.eval.loss))
        }
    }

    /// With the backbone training, every rank steps with the averaged gradient: after an epoch all ranks
    /// hold the same weights, bit for bit, and rank 0's running statistics are every rank's after an
    /// evaluation (DDP's broadcast_buffers). The allreduces overlapped with the backward pass (the
    /// default) or run after it give the same bits.
    @Test func ranksStayInStepWhenTheBackboneTrains() throws {
        let overlapped = try Self.trainedStates(overlap: true)
        #expect(overlapped[0] == overlapped[1])
        #expect(try Self.trainedStates(overlap: false) == overlapped)
    }

    /// Every rank's parameters and buffers after an epoch of resnet18 trained from layer4 on, on 2 ranks,
    /// and an evaluation.
    static func trainedStates(overlap: Bool) throws -> [[Float]] {
        let train = Self.inputs()
        let group = ThreadGroup(size: 2)
        return try group.run { rank -> [Float] in
            var c = Self.config(batch: 3, ranks: 2)
            c.backbone = SGDOptions(lr: 0.01, momentum: 0.9)
            c.overlapAllreduce = overlap
            let ft = try FineTuning(arch: "resnet18", classes: 2, weights: nil, freeze: "through:layer3", config: c)
            try ft.join(rank)
            _ = try ft.trainEpoch(train, test: train)
            return ft.network.stateEntries.flatMap { e -> [Float] in
                switch e.entry {
                case .parameter(let p), .buffer(let p): p.data
                case .int64: []
                }
            }
        }
    }

    @Test func gradientsAreAveragedInBucketsInParameterOrder() throws {
        let group = ThreadGroup(size: 3)
        let out = try group.run { rank -> [String: [Float]] in
            var g: [String: [Float]] = [
                "a": [Float(rank.rank), 1], "b": [Float](repeating: Float(rank.rank + 1), count: 5), "frozen": [9],
            ]
            try GradientReducer(parameters: [("b", 5), ("a", 2)], group: rank, overlaps: false).average(&g)
            return g
        }
        for g in out {
            #expect(g["a"] == [1, 1] && g["b"] == [Float](repeating: 2, count: 5) && g["frozen"] == [9])
        }
    }
}
