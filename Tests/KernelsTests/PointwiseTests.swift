import Foundation
import TestSupport
import Testing

@testable import Kernels

/// The pointwise activations' kernels (`Pointwise`, every tier) against their twins from the definitions,
/// in Double, and squeeze-excitation's channel scaling against direct sums.
@Suite struct PointwiseTests {
    typealias Rng = KernelTests.Rng

    /// Values across every branch: random in (−8, 8), the kinks ±3 and 0 exactly, large magnitudes where
    /// exp over- or underflows, and a count whose tail is not a whole vector.
    static func values(_ rng: inout Rng, count: Int) -> [Float] {
        var x = (0..<count).map { _ in rng.float() * 8 }
        let special: [Float] = [-3, 3, 0, -0.0, 100, -100, 1e-30, -1e-30, 88.8, -88.8, 6, -6]
        for (k, v) in special.enumerated() { x[k * 7 % count] = v }
        return x
    }

    @Test(arguments: ISA.supported) func forwardMatchesTwin(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 31)
            for f in PointwiseFunction.allCases {
                for (count, threads) in [(12, 1), (13, 1), (1003, 2), (70_001, 3)] {
                    let x = Self.values(&rng, count: count)
                    var y = [Float](repeating: .nan, count: x.count)
                    Pointwise.forward(f, x, &y, count: x.count, threads: threads)
                    for i in x.indices {
                        let want = Pointwise.reference(f, x[i])
                        #expect(
                            abs(y[i] - want) <= 2e-7 + 4 * want.ulp, "\(f) at \(x[i]): \(y[i]), twin \(want) (\(tier))")
                    }
                    // In place gives the same bits.
                    var z = x
                    Pointwise.forward(f, z, &z, count: z.count, threads: threads)
                    #expect(z == y, "\(f) in place")
                }
            }
        }
    }

    @Test(arguments: ISA.supported) func backwardMatchesTwin(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 32)
            for f in PointwiseFunction.allCases {
                let x = Self.values(&rng, count: 5001), dy = rng.floats(x.count)
                var y = [Float](repeating: 0, count: x.count), dx = y
                Pointwise.forward(f, x, &y, count: x.count)
                Pointwise.backward(
                    f, input: x, output: y, outputGradient: dy, inputGradient: &dx, count: x.count, threads: 2)
                for i in x.indices {
                    let want = Float(Double(dy[i]) * Pointwise.referenceDerivative(f, x[i]))
                    #expect(
                        abs(dx[i] - want) <= 1e-6 + 4 * want.ulp, "\(f)′ at \(x[i]): \(dx[i]), twin \(want) (\(tier))")
                }
            }
        }
    }

    @Test(arguments: ISA.supported) func nanPassesThrough(tier: ISA) throws {
        try ISA.with(tier) {
            for f in PointwiseFunction.allCases {
                let x = [Float](repeating: .nan, count: 17)
                var y = [Float](repeating: 0, count: 17)
                Pointwise.forward(f, x, &y, count: 17)
                #expect(y.allSatisfy { $0.isNaN }, "\(f)")
            }
        }
    }

    @Test func channelScaleMatchesDirectSums() {
        var rng = Rng(s: 33)
        for (batch, plane, channels, threads) in [(1, 1, 3, 1), (2, 15, 13, 2), (3, 49, 40, 3)] {
            let x = rng.floats(batch * plane * channels), s = rng.floats(batch * channels)
            let dy = rng.floats(x.count)
            var y = [Float](repeating: 0, count: x.count), dx = y, ds = [Float](repeating: 0, count: s.count)
            ChannelScale.forward(x, scale: s, &y, batch: batch, plane: plane, channels: channels, threads: threads)
            ChannelScale.backward(
                x, scale: s, outputGradient: dy, inputGradient: &dx, scaleGradient: &ds, batch: batch, plane: plane,
                channels: channels, threads: threads)
            for n in 0..<batch {
                for c in 0..<channels {
                    var sum = 0.0
                    for p in 0..<plane {
                        let i = (n * plane + p) * channels + c
                        #expect(y[i] == x[i] * s[n * channels + c])
                        #expect(dx[i] == dy[i] * s[n * channels + c])
                        sum += Double(dy[i]) * Double(x[i])
                    }
                    #expect(abs(Double(ds[n * channels + c]) - sum) <= 1e-5 * Double(plane), "ds[\(n), \(c)]")
                }
            }
        }
    }
}
