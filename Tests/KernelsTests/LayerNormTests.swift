import TestSupport
import Testing

@testable import Kernels

/// LayerNorm over channels and the per-channel scale (`LayerNormNHWC`, `ChannelMultiply`) against their
/// twins from the definitions, in Double; parameter gradients the same bits on any thread count.
@Suite struct LayerNormTests {
    typealias Rng = KernelTests.Rng

    /// (rows, channels, threads): vector tails, one channel, rows fewer than threads, and enough rows to split.
    static let shapes = [(1, 1, 1), (3, 7, 2), (5, 8, 1), (17, 19, 3), (64, 96, 2), (2, 768, 2), (300, 24, 4)]

    @Test func forwardAndBackwardMatchTwins() {
        var rng = Rng(s: 41)
        for (rows, c, threads) in Self.shapes {
            // An offset far from zero: the variance is taken about the mean, not as E[x²] − E[x]².
            let x = (0..<(rows * c)).map { _ in 50 + rng.float() * 3 }
            let w = (0..<c).map { _ in 1 + rng.float() * 0.5 }, b = rng.floats(c)
            let dy = rng.floats(rows * c)
            let eps: Float = 1e-6
            var y = [Float](repeating: .nan, count: x.count)
            LayerNormNHWC.forward(x, &y, rows: rows, channels: c, weight: w, bias: b, eps: eps, threads: threads)
            let want = LayerNormNHWC.referenceForward(x, rows: rows, channels: c, weight: w, bias: b, eps: eps)
            for i in y.indices {
                #expect(abs(y[i] - want[i]) <= 2e-5 * max(1, abs(want[i])), "y[\(i)] of \(rows)×\(c)")
            }
            var dx = [Float](repeating: .nan, count: x.count)
            LayerNormNHWC.inputBackward(
                x, outputGradient: dy, inputGradient: &dx, rows: rows, channels: c, weight: w, eps: eps,
                threads: threads)
            var dw = [Float](repeating: .nan, count: c), db = dw
            LayerNormNHWC.parameterBackward(
                x, outputGradient: dy, weightGradient: &dw, biasGradient: &db, rows: rows, channels: c, eps: eps,
                threads: threads)
            let r = LayerNormNHWC.referenceBackward(x, outputGradient: dy, rows: rows, channels: c, weight: w, eps: eps)
            let dxScale = max(r.input.map(abs).max()!, 1e-3)
            for i in dx.indices { #expect(abs(dx[i] - r.input[i]) <= 1e-4 * dxScale, "dx[\(i)] of \(rows)×\(c)") }
            for k in 0..<c {
                #expect(abs(dw[k] - r.weight[k]) <= 2e-5 * Float(rows), "dγ[\(k)] of \(rows)×\(c)")
                #expect(abs(db[k] - r.bias[k]) <= 2e-6 * Float(rows), "dβ[\(k)] of \(rows)×\(c)")
            }
            // The parameter gradients do not depend on the thread count.
            var dw1 = dw, db1 = db
            LayerNormNHWC.parameterBackward(
                x, outputGradient: dy, weightGradient: &dw1, biasGradient: &db1, rows: rows, channels: c, eps: eps,
                threads: 1)
            #expect(dw1 == dw && db1 == db, "\(rows)×\(c): parameter gradients on 1 and \(threads) threads")
        }
    }

    /// A constant row normalises to β (its variance is 0: eps alone keeps it finite).
    @Test func constantRowGivesBias() {
        let x = [Float](repeating: 3.25, count: 10)
        var y = [Float](repeating: .nan, count: 10)
        let b = (0..<10).map { Float($0) / 8 }
        LayerNormNHWC.forward(
            x, &y, rows: 1, channels: 10, weight: [Float](repeating: 2, count: 10), bias: b, eps: 1e-6)
        #expect(y == b)
    }

    @Test func channelMultiplyMatchesDirectProducts() {
        var rng = Rng(s: 43)
        for (rows, c, threads) in Self.shapes {
            let x = rng.floats(rows * c), s = rng.floats(c), dy = rng.floats(rows * c)
            var y = [Float](repeating: .nan, count: x.count)
            ChannelMultiply.forward(x, scale: s, &y, rows: rows, channels: c, threads: threads)
            #expect(y == (0..<(rows * c)).map { x[$0] * s[$0 % c] })
            var dx = [Float](repeating: .nan, count: x.count), ds = [Float](repeating: .nan, count: c)
            ChannelMultiply.backward(
                x, scale: s, outputGradient: dy, inputGradient: &dx, scaleGradient: &ds, rows: rows, channels: c,
                threads: threads)
            #expect(dx == (0..<(rows * c)).map { dy[$0] * s[$0 % c] })
            for k in 0..<c {
                let want = (0..<rows).reduce(0.0) { $0 + Double(dy[$1 * c + k]) * Double(x[$1 * c + k]) }
                #expect(abs(Double(ds[k]) - want) <= 1e-5 * Double(rows), "ds[\(k)]")
            }
        }
    }
}
