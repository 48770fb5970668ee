import Foundation
import Testing

@testable import Training

/// `GradientReducer`: DDP's buckets, its 1/N-then-sum average, and the same bits whether or not the
/// allreduces overlap the backward pass.
@Suite struct GradientReducerTests {
    /// Bucket assignment against torch 1.13's own `_compute_bucket_assignment_by_size`, applied to the
    /// reverse parameter order with DDP's 1 MiB first bucket and 25 MiB cap
    /// (Tests/Reference/make_ddp_buckets.py, ddp_buckets.json).
    @Test(arguments: ["resnet18", "resnet18_from_layer3", "resnet50", "mobilenet_v2"])
    func bucketsAreTorchs(_ name: String) throws {
        let golden = try Fixtures.json("train/ddp_buckets.json")
        #expect(golden["generator"] as? String == "Tests/Reference/make_ddp_buckets.py")
        #expect(golden["first_bucket_bytes"] as? Int == GradientReducer.firstBucketBytes)
        #expect(golden["bucket_bytes"] as? Int == GradientReducer.bucketBytes)
        let c = (golden["cases"] as! [String: [String: Any]])[name]!
        let parameters = (c["parameters"] as! [[Any]]).map { (name: $0[0] as! String, count: $0[1] as! Int) }
        let buckets = GradientReducer.assign(
            parameters, firstBucketBytes: GradientReducer.firstBucketBytes, bucketBytes: GradientReducer.bucketBytes)
        let want = c["buckets"] as! [[String]]
        #expect(buckets.map(\.names) == want)
        for b in buckets {
            #expect(b.offsets == b.counts.indices.map { i in b.counts[..<i].reduce(0, +) })
            #expect(b.floats == b.counts.reduce(0, +))
        }
    }

    /// Rank r's gradient of parameter p, element i: values whose sums round differently in different
    /// orders, so the test sees the order.
    static func gradient(rank: Int, parameter: Int, count: Int) -> [Float] {
        (0..<count).map { i in Float(sin(Double(rank * 7919 + parameter * 104_729 + i) * 0.618)) * Float(1 + parameter)
        }
    }

    static let parameters: [(name: String, count: Int)] = (0..<9).map { ("p\($0)", 5 + 37 * $0) }

    /// One reduction on 3 ranks with small caps (several buckets): what every rank gets back.
    static func reduce(overlaps: Bool, skip: String? = nil) throws -> [[String: [Float]]] {
        let group = ThreadGroup(size: 3)
        return try group.run { rank -> [String: [Float]] in
            let reducer = GradientReducer(
                parameters: Self.parameters, group: rank, overlaps: overlaps, firstBucketBytes: 200,
                bucketBytes: 1000)
            #expect(reducer.buckets.count > 3)
            var out: [String: [Float]] = [:]
            for _ in 0..<2 {
                out = try reducer.reduce { ready in
                    // As a backward pass does: the last parameters first, something else untouched.
                    var g: [String: [Float]] = ["not-trained": [42]]
                    for (p, (name, count)) in Self.parameters.enumerated().reversed() where name != skip {
                        g[name] = Self.gradient(rank: rank.rank, parameter: p, count: count)
                        ready(name, g[name]!)
                    }
                    return g
                }
            }
            #expect(reducer.statistics.steps == 2)
            #expect(reducer.statistics.floatsPerStep == Self.parameters.reduce(0) { $0 + $1.count })
            #expect(reducer.statistics.communicationSeconds > 0)
            return out
        }
    }

    /// DDP's average: each rank's gradient times 1/N as a float, then the ranks' values summed (here in
    /// rank order, the order `ThreadGroup` sums in).
    @Test func theAverageIsTheScaledSum() throws {
        let got = try Self.reduce(overlaps: false)
        let scale = 1 / Float(3)
        for (p, (name, count)) in Self.parameters.enumerated() {
            var want = [Float](repeating: 0, count: count)
            for r in 0..<3 {
                let g = Self.gradient(rank: r, parameter: p, count: count)
                for i in 0..<count { want[i] += g[i] * scale }
            }
            for rank in got { #expect(rank[name] == want, "\(name)") }
        }
        for rank in got { #expect(rank["not-trained"] == [42]) }
        // Not the sum divided afterwards: on these values the two differ somewhere.
        let differs = Self.parameters.enumerated().contains { p, e in
            (0..<e.count).contains { i in
                let g = (0..<3).map { Self.gradient(rank: $0, parameter: p, count: e.count)[i] }
                return (g[0] + g[1] + g[2]) * scale != g[0] * scale + g[1] * scale + g[2] * scale
            }
        }
        #expect(differs)
    }

    @Test func overlappingChangesNoBit() throws {
        let after = try Self.reduce(overlaps: false)
        let overlapped = try Self.reduce(overlaps: true)
        #expect(after == overlapped)
    }

    /// A parameter the backward pass gave no gradient on any rank: sent as zeros, left out of the result,
    /// and the other parameters of its bucket are still averaged (nothing waits for it forever).
    @Test(arguments: [false, true])
    func aMissingGradientDoesNotHang(_ overlaps: Bool) throws {
        let got = try Self.reduce(overlaps: overlaps, skip: "p4")
        let full = try Self.reduce(overlaps: false)
        for (g, f) in zip(got, full) {
            #expect(g["p4"] == nil)
            for (name, _) in Self.parameters where name != "p4" { #expect(g[name] == f[name]) }
        }
    }

    /// One rank: nothing is communicated, the gradients pass through.
    @Test func aloneItPassesThrough() throws {
        let group = ThreadGroup(size: 1)
        let out = try group.run { rank -> [String: [Float]] in
            let reducer = GradientReducer(parameters: Self.parameters, group: rank, overlaps: true)
            return try reducer.reduce { ready in
                ready("p0", [1, 2])
                return ["p0": [1, 2]]
            }
        }
        #expect(out[0] == ["p0": [1, 2]])
    }
}
