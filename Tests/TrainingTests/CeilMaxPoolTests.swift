import NN
import Testing

/// The ceil-mode max pool (`CeilMaxPool`): torch's output sizes, windows past the image, and where the
/// gradient of a window of equal values goes.
@Suite struct CeilMaxPoolTests {
    /// torch 1.13's sizes: `F.max_pool2d(torch.zeros(1, 1, n, n), k, s, p, ceil_mode=True).shape[-1]`.
    @Test func outputSizesAreTorchs() {
        for (n, k, s, p, want) in [
            (111, 3, 2, 0, 55), (112, 3, 2, 0, 56), (3, 3, 2, 0, 1), (5, 2, 2, 0, 3), (4, 3, 2, 1, 3),
            (6, 3, 2, 1, 4), (7, 3, 2, 0, 3), (6, 3, 2, 0, 3),
            // Where ⌈(n + 2p − k) / s⌉ + 1 would start the last window in the padding: one fewer.
            (5, 2, 2, 1, 3), (3, 2, 2, 1, 2),
        ] {
            #expect(CeilMaxPool(kernel: k, stride: s, padding: p).outputSize(n) == want, "\(n) \(k)/\(s) p\(p)")
        }
    }

    /// Every output against a direct scan of its window's taps inside the image; a window of equal values
    /// sends its gradient to its first tap in row-major order; overlapping windows add.
    @Test func forwardAndBackwardFollowTheWindows() {
        let pool = CeilMaxPool(kernel: 3, stride: 2, padding: 1)
        let shape = NodeShape(channels: 2, height: 6, width: 5)
        var rng = SplitMix64(seed: 3)
        let x = (0..<(2 * 6 * 5 * 2)).map { i in i % 7 == 0 ? Float(1) : rng.nextUnitFloat() }
        let out = try! pool.outputShape([shape])
        #expect(out == NodeShape(channels: 2, height: 4, width: 3))
        var y = [Float](repeating: .nan, count: 2 * 4 * 3 * 2)
        x.withUnsafeBufferPointer { xp in
            pool.forward([xp.baseAddress!], shapes: [shape], batch: 2, output: &y, threads: 2)
        }
        for n in 0..<2 {
            for oy in 0..<4 {
                for ox in 0..<3 {
                    for c in 0..<2 {
                        var m = -Float.infinity
                        for iy in max(0, 2 * oy - 1)..<min(6, 2 * oy + 2) {
                            for ix in max(0, 2 * ox - 1)..<min(5, 2 * ox + 2) {
                                m = max(m, x[((n * 6 + iy) * 5 + ix) * 2 + c])
                            }
                        }
                        #expect(y[((n * 4 + oy) * 3 + ox) * 2 + c] == m)
                    }
                }
            }
        }
        // All equal: each output's gradient to its window's first tap inside the image.
        let flat = [Float](repeating: 2, count: 6 * 5)
        let one = NodeShape(channels: 1, height: 6, width: 5)
        var dx = [Float](repeating: .nan, count: flat.count)
        let dy = (0..<12).map { Float($0 + 1) }
        flat.withUnsafeBufferPointer { xp in
            dy.withUnsafeBufferPointer { g in
                dx.withUnsafeMutableBufferPointer { d in
                    pool.backward(
                        [xp.baseAddress!], shapes: [one], output: xp.baseAddress!, outputGradient: g.baseAddress!,
                        batch: 1, inputGradients: [d.baseAddress!], threads: 1)
                }
            }
        }
        var want = [Float](repeating: 0, count: flat.count)
        for oy in 0..<4 { for ox in 0..<3 { want[max(0, 2 * oy - 1) * 5 + max(0, 2 * ox - 1)] += dy[oy * 3 + ox] } }
        #expect(dx == want)
    }

    /// A NaN anywhere in a window makes that output NaN, in the vector lanes and in the channel tail
    /// (10 channels: eight at a time, then two).
    @Test func aNaNInAWindowWins() {
        let pool = CeilMaxPool(kernel: 3, stride: 2)
        let shape = NodeShape(channels: 10, height: 4, width: 4)
        var x = (0..<160).map { Float($0 % 13) }
        for c in [0, 7, 9] { x[(1 * 4 + 1) * 10 + c] = .nan }  // inside window (0, 0) only
        var y = [Float](repeating: 0, count: 2 * 2 * 10)
        x.withUnsafeBufferPointer { pool.forward([$0.baseAddress!], shapes: [shape], batch: 1, output: &y, threads: 1) }
        for c in 0..<10 {
            #expect(y[c].isNaN == [0, 7, 9].contains(c), "channel \(c): \(y[c])")
            #expect(!y[10 + c].isNaN && !y[30 + c].isNaN)
        }
    }

    @Test func anInputSmallerThanTheWindowIsRefused() {
        #expect(throws: FunctionShapeError.self) {
            try CeilMaxPool(kernel: 3, stride: 2).outputShape([NodeShape(channels: 1, height: 2, width: 9)])
        }
    }
}
