import Foundation
import Testing
import Training

/// The data-parallel order against torch 1.13: `torch.randperm` with a seeded generator and
/// `DistributedSampler` (Tests/Fixtures/train/sampler.json, written by
/// Tests/Reference/make_sampler_golden.py).
@Suite struct SamplerTests {
    var golden: [String: Any] { try! Fixtures.json("train/sampler.json") }

    @Test func randpermIsTorchs() {
        let cases = golden["randperm"] as! [[String: Any]]
        #expect(cases.count == 8)
        for c in cases {
            let n = c["n"] as! Int
            let seed = (c["seed"] as! NSNumber).uint64Value
            #expect(TorchGenerator.randperm(n, seed: seed) == c["perm"] as! [Int], "n \(n) seed \(seed)")
        }
    }

    @Test func everyRankTakesWhatTorchsDistributedSamplerGives() {
        let cases = golden["sampler"] as! [[String: Any]]
        #expect(cases.count == 12)
        for c in cases {
            let replicas = c["replicas"] as! Int
            let ranks = c["ranks"] as! [[Int]]
            let label = "\(c)"
            for rank in 0..<replicas {
                let s = DistributedSampler(
                    count: c["count"] as! Int, replicas: replicas, rank: rank, shuffle: c["shuffle"] as! Bool,
                    seed: (c["seed"] as! NSNumber).uint64Value, dropLast: c["drop_last"] as! Bool)
                #expect(s.perRank == c["num_samples"] as! Int && s.total == c["total_size"] as! Int, "\(label)")
                #expect(s.indices(epoch: c["epoch"] as! Int) == ranks[rank], "rank \(rank) of \(label)")
            }
        }
    }

    /// What makes a resume with another number of ranks train on the same images: with the same global
    /// batch, step k covers the same items whatever the number of ranks.
    @Test func aGlobalBatchIsTheSameSetForAnyNumberOfRanks() {
        let count = 96
        let global = 12
        var steps: [[Set<Int>]] = []
        for replicas in [1, 2, 3, 4, 6] {
            let b = global / replicas
            let perRank = (0..<replicas).map {
                DistributedSampler(count: count, replicas: replicas, rank: $0, seed: 7).indices(epoch: 3)
            }
            steps.append(
                (0..<(count / global)).map { k in Set(perRank.flatMap { $0[(k * b)..<((k + 1) * b)] }) })
        }
        for s in steps.dropFirst() { #expect(s == steps[0]) }
    }
}
