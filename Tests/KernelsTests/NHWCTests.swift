import CKernels
import TestSupport
import Testing

@testable import Kernels

/// The channels-last kernels against the NCHW references (`ConvKernel.reference`, `Pool.max2dReference`),
/// through `Layout`'s transposes.
@Suite struct NHWCTests {
    typealias Rng = KernelTests.Rng

    /// The reference for conv + bias + residual + ReLU, in NHWC.
    func expected(_ g: Conv2dGeometry, x: [Float], w: [Float], bias: [Float], residual: [Float]?, relu: Bool) -> [Float]
    {
        let xc = Layout.nchw(x, batch: g.batch, channels: g.inChannels, plane: g.height * g.width)
        var y = ConvKernel.reference(g, input: xc, weight: w, bias: bias)
        y = Layout.nhwc(y, batch: g.batch, channels: g.outChannels, plane: g.outHeight * g.outWidth)
        if let residual { for i in y.indices { y[i] += residual[i] } }
        if relu { y = y.map { max($0, 0) } }
        return y
    }

    /// The reference with any epilogue activation (the twins' `Activation.apply`).
    func expected(
        _ g: Conv2dGeometry, x: [Float], w: [Float], bias: [Float], residual: [Float]?, activation: Activation
    ) -> [Float] {
        expected(g, x: x, w: w, bias: bias, residual: residual, relu: false).map(activation.apply)
    }

    @Test(arguments: ISA.supported) func convMatchesReference(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 17)
            var checked = 0
            var sawChunked = false, sawBlocks = false, sawPanelSplit = false
            while checked < 60 {
                var g = Conv2dGeometry(
                    batch: rng.int(1...2), inChannels: rng.int(1...20), height: rng.int(1...17), width: rng.int(1...17),
                    outChannels: rng.int(1...40), kernel: (rng.int(1...7), rng.int(1...7)),
                    stride: (rng.int(1...3), rng.int(1...3)), padding: (rng.int(0...3), rng.int(0...3)))
                switch checked % 10 {
                case 0: (g.kernelH, g.kernelW, g.strideH, g.strideW, g.padH, g.padW) = (1, 1, 1, 1, 0, 0)
                case 1: (g.inChannels, g.kernelH, g.kernelW) = (80, 3, 3)  // depth 720: chunks split a tap
                case 2: (g.height, g.width, g.strideH, g.strideW) = (30, 30, 1, 1)  // several row blocks
                // Several 64-column groups.
                case 3: (g.outChannels, g.kernelH, g.kernelW) = (rng.int(65...150), rng.int(1...3), rng.int(1...3))
                default: break
                }
                guard ConvNHWC.applies(to: g) else { continue }
                checked += 1
                let rows = g.batch * g.outHeight * g.outWidth
                sawChunked = sawChunked || g.kernelH * g.kernelW * g.inChannels > 640
                sawBlocks = sawBlocks || rows > 96
                let x = rng.floats(g.inputCount), w = rng.floats(g.weightCount), bias = rng.floats(g.outChannels)
                let residual = checked % 3 == 0 ? rng.floats(g.outputCount) : nil
                // Every epilogue activation in turn (ReLU, ReLU6, Hardswish, SiLU).
                let activation = Activation.allCases[checked % Activation.allCases.count]
                let want = expected(g, x: x, w: w, bias: bias, residual: residual, activation: activation)
                let packed = PackedConvWeight(
                    w, outChannels: g.outChannels, inChannels: g.inChannels, kernelH: g.kernelH, kernelW: g.kernelW)
                for threads in [1, 2, 3] {
                    sawPanelSplit =
                        sawPanelSplit || (threads > 1 && rows < threads * 48 && (g.outChannels + 15) / 16 >= threads)
                    var got = [Float](repeating: .nan, count: g.outputCount)
                    var scratch = [Float](repeating: .nan, count: ConvNHWC.scratchCount(threads: threads))
                    got.withUnsafeMutableBufferPointer { o in
                        scratch.withUnsafeMutableBufferPointer { s in
                            bias.withUnsafeBufferPointer { b in
                                if let residual {
                                    residual.withUnsafeBufferPointer { r in
                                        ConvNHWC.forward(
                                            g, input: x, weight: packed, bias: b.baseAddress, residual: r.baseAddress,
                                            activation: activation, output: o.baseAddress!, scratch: s.baseAddress!,
                                            threads: threads)
                                    }
                                } else {
                                    ConvNHWC.forward(
                                        g, input: x, weight: packed, bias: b.baseAddress, residual: nil,
                                        activation: activation, output: o.baseAddress!, scratch: s.baseAddress!,
                                        threads: threads)
                                }
                            }
                        }
                    }
                    #expect(relativeError(got, want) < 1e-5, "\(g), \(activation), \(threads) threads")
                }
            }
            #expect(sawChunked && sawBlocks && sawPanelSplit, "the random shapes missed a code path")
        }
    }

    /// Depth chunks that lie inside one tap are read from the input in place (zeros outside the image):
    /// 512 input channels are a multiple of every tier's chunk (128 in AVX-512, 512 in the others), with
    /// windows past every edge, strides 1 and 2, and rows split (batch 2, 9×9) or channels split (few rows).
    @Test(arguments: ISA.supported) func convChunksInsideATapMatchReference(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 29)
            let shapes: [(n: Int, h: Int, w: Int, k: Int, kh: Int, kw: Int, s: Int, p: Int)] = [
                (1, 7, 7, 40, 3, 3, 1, 1), (2, 9, 9, 20, 3, 3, 2, 1), (1, 5, 3, 70, 2, 3, 1, 2),
                (1, 1, 1, 16, 3, 3, 1, 1),
            ]
            for c in shapes {
                let g = Conv2dGeometry(
                    batch: c.n, inChannels: 512, height: c.h, width: c.w, outChannels: c.k,
                    kernel: (c.kh, c.kw), stride: (c.s, c.s), padding: (c.p, c.p))
                try #require(ConvNHWC.applies(to: g))
                let x = rng.floats(g.inputCount), w = rng.floats(g.weightCount), bias = rng.floats(g.outChannels)
                let want = expected(g, x: x, w: w, bias: bias, residual: nil, relu: true)
                let packed = PackedConvWeight(
                    w, outChannels: g.outChannels, inChannels: 512, kernelH: c.kh, kernelW: c.kw)
                for threads in [1, 2, 3] {
                    var got = [Float](repeating: .nan, count: g.outputCount)
                    var scratch = [Float](repeating: .nan, count: ConvNHWC.scratchCount(threads: threads))
                    got.withUnsafeMutableBufferPointer { o in
                        scratch.withUnsafeMutableBufferPointer { s in
                            bias.withUnsafeBufferPointer { b in
                                ConvNHWC.forward(
                                    g, input: x, weight: packed, bias: b.baseAddress, residual: nil, relu: true,
                                    output: o.baseAddress!, scratch: s.baseAddress!, threads: threads)
                            }
                        }
                    }
                    #expect(relativeError(got, want) < 1e-5, "\(g), \(threads) threads")
                }
            }
        }
    }

    /// The transform threaded by panels equals one thread's, and the flipped transform (the input
    /// gradient's filters, read in place) equals transforming the filters flipped and swapped first.
    @Test(arguments: ISA.supported) func winogradWeightTransformFlipsInPlace(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 29)
            for (k, c) in [(8, 8), (16, 24), (40, 8), (64, 32)] {
                let w = rng.floats(k * c * 9)
                let one = WinogradNHWC.transformWeights(w, outChannels: k, inChannels: c).array
                var flippedFirst = [Float](repeating: 0, count: w.count)  // [C, K, 3, 3], each filter turned 180°
                for o in 0..<k {
                    for i in 0..<c { for t in 0..<9 { flippedFirst[(i * k + o) * 9 + 8 - t] = w[(o * c + i) * 9 + t] } }
                }
                let want = WinogradNHWC.transformWeights(flippedFirst, outChannels: c, inChannels: k).array
                for threads in [1, 2, 3] {
                    var u = [Float](
                        repeating: .nan, count: WinogradNHWC.transformedCount(outChannels: k, inChannels: c))
                    u.withUnsafeMutableBufferPointer {
                        WinogradNHWC.transformWeights(w, outChannels: k, inChannels: c, into: $0, threads: threads)
                    }
                    #expect(u == one, "K \(k), C \(c), \(threads) threads")
                    var f = [Float](
                        repeating: .nan, count: WinogradNHWC.transformedCount(outChannels: c, inChannels: k))
                    f.withUnsafeMutableBufferPointer {
                        WinogradNHWC.transformWeights(
                            w, outChannels: c, inChannels: k, flipped: true, into: $0, threads: threads)
                    }
                    #expect(f == want, "flipped: K \(k), C \(c), \(threads) threads")
                }
            }
        }
    }

    @Test(arguments: ISA.supported) func winogradMatchesReference(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 23)
            for trial in 0..<30 {
                let g = Conv2dGeometry(
                    batch: rng.int(1...3), inChannels: 8 * rng.int(1...4), height: rng.int(1...19),
                    width: rng.int(1...19), outChannels: 8 * rng.int(1...5), kernel: (3, 3), padding: (1, 1))
                #expect(WinogradNHWC.applies(to: g))
                let x = rng.floats(g.inputCount), w = rng.floats(g.weightCount), bias = rng.floats(g.outChannels)
                let residual = trial % 3 == 0 ? rng.floats(g.outputCount) : nil
                let activation = Activation.allCases[trial % Activation.allCases.count]
                let want = expected(g, x: x, w: w, bias: bias, residual: residual, activation: activation)
                let u = WinogradNHWC.transformWeights(w, outChannels: g.outChannels, inChannels: g.inChannels).array
                // The default schedule, and both schedules with small blocks so the block loops run many
                // rounds with ragged ends.
                let schedules: [(Int, WinogradNHWC.Schedule?)] = [
                    (1, nil), (2, nil), (2, .shared(tiles: 5)), (3, .shared(tiles: 1)), (2, .perThread(tiles: 3)),
                    (3, .perThread(tiles: 7)),
                ]
                for (threads, schedule) in schedules {
                    var got = [Float](repeating: .nan, count: g.outputCount)
                    var scratch = [Float](
                        repeating: .nan, count: WinogradNHWC.scratchCount(g, threads: threads, schedule: schedule))
                    got.withUnsafeMutableBufferPointer { o in
                        scratch.withUnsafeMutableBufferPointer { s in
                            bias.withUnsafeBufferPointer { b in
                                let r = residual.map { UnsafeMutableBufferPointer<Float>.allocate(capacity: $0.count) }
                                defer { r?.deallocate() }
                                if let r, let residual { _ = r.initialize(from: residual) }
                                WinogradNHWC.forward(
                                    g, input: x, transformedWeight: u, bias: b.baseAddress,
                                    residual: r.map { UnsafePointer($0.baseAddress!) }, activation: activation,
                                    output: o.baseAddress!, scratch: s.baseAddress!, threads: threads,
                                    schedule: schedule)
                            }
                        }
                    }
                    let err = relativeError(got, want)
                    #expect(err < 2e-5, "\(g), \(threads) threads, \(schedule.map { "\($0)" } ?? "default"): \(err)")
                }
            }
        }
    }

    @Test(arguments: ISA.supported) func maxPoolMatchesReference(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 29)
            for _ in 0..<30 {
                let n = rng.int(1...2), c = rng.int(1...20), h = rng.int(1...15), w = rng.int(1...15)
                let k = rng.int(1...4), s = rng.int(1...3), p = rng.int(0...(k / 2))
                guard h + 2 * p >= k, w + 2 * p >= k else { continue }
                var x = rng.floats(n * c * h * w)
                x[rng.int(0...(x.count - 1))] = .nan
                let want = Layout.nhwc(
                    Pool.max2dReference(
                        x, batch: n, channels: c, height: h, width: w, kernel: k, stride: s, padding: p),
                    batch: n, channels: c, plane: ((h + 2 * p - k) / s + 1) * ((w + 2 * p - k) / s + 1))
                let xl = Layout.nhwc(x, batch: n, channels: c, plane: h * w)
                for threads in [1, 2] {
                    var got = [Float](repeating: -7, count: want.count)
                    got.withUnsafeMutableBufferPointer {
                        PoolNHWC.max2d(
                            xl, $0.baseAddress!, batch: n, channels: c, height: h, width: w, kernel: k, stride: s,
                            padding: p, threads: threads)
                    }
                    #expect(
                        got.elementsEqual(want) { $0 == $1 || ($0.isNaN && $1.isNaN) },
                        "n\(n) c\(c) \(h)x\(w) k\(k) s\(s) p\(p)")
                }
            }
        }
    }

    @Test func globalAverageAndLayout() {
        var rng = Rng(s: 31)
        let n = 2, c = 5, plane = 7
        let x = rng.floats(n * c * plane)
        #expect(
            Layout.nchw(Layout.nhwc(x, batch: n, channels: c, plane: plane), batch: n, channels: c, plane: plane) == x)
        // Large enough to split across threads, with a split inside an image.
        let big = rng.floats(2 * 3 * 9001), want = Layout.nhwc(big, batch: 2, channels: 3, plane: 9001)
        for threads in [2, 3] {
            var got = [Float](repeating: .nan, count: big.count)
            got.withUnsafeMutableBufferPointer {
                Layout.nhwc(big, $0.baseAddress!, batch: 2, channels: 3, plane: 9001, threads: threads)
            }
            #expect(got == want, "\(threads) threads")
        }
        var got = [Float](repeating: 0, count: n * c)
        got.withUnsafeMutableBufferPointer {
            PoolNHWC.globalAverage(
                Layout.nhwc(x, batch: n, channels: c, plane: plane), $0.baseAddress!, batch: n, channels: c,
                plane: plane)
        }
        for i in 0..<(n * c) {
            let mean = x[(i * plane)..<((i + 1) * plane)].reduce(0, +) / Float(plane)
            #expect(abs(got[i] - mean) < 1e-6)
        }
    }

    @Test(arguments: ISA.supported) func rowGEMMMatchesReference(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 37)
            for _ in 0..<30 {
                // n past 64 and ragged: every panel count of the 6×64 AVX-512 kernel, with masked tails.
                let m = rng.int(1...30), n = rng.int(1...150), k = rng.int(1...70), lda = k + rng.int(0...3)
                let a = rng.floats(m * lda), b = rng.floats(k * n)
                var pb = [Float](repeating: .nan, count: pth2swt_packed_b_count(Int32(k), Int32(n)))
                pth2swt_pack_b(Int32(k), Int32(n), b, Int32(n), &pb)
                let ldc = n + 2
                var c = [Float](repeating: -7, count: m * ldc), want = [Float](repeating: -7, count: m * ldc)
                // Half the calls also prefetch a next B (the same one): the result must not change.
                let prefetch = rng.int(0...1) == 1
                pb.withUnsafeBufferPointer { b in
                    pth2swt_gemm_rows(m, Int32(n), k, a, lda, b.baseAddress, &c, ldc, prefetch ? b.baseAddress : nil)
                }
                pth2swt_sgemm_reference(Int32(m), Int32(n), Int32(k), a, Int32(lda), b, Int32(n), &want, Int32(ldc))
                #expect(zip(c, want).map { abs($0 - $1) }.max()! < 1e-4, "m\(m) n\(n) k\(k)")
            }
        }
    }

    /// pth2swt_gemm_tn (C = (acc ? C : 0) + Aᵀ·B, the weight gradients' product) against the one-sum-at-a-time
    /// reference on Aᵀ, with ragged m, n and k, reductions longer than one packed chunk (128 or 256 by
    /// tier), m past one block of columns (96, read in place at an offset by the strided micro-kernel),
    /// strides, and k = 0 (C zeroed, or kept when accumulating).
    @Test(arguments: ISA.supported) func transposedGEMMMatchesReference(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 41)
            for trial in 0..<30 {
                let m = trial % 3 == 1 ? rng.int(97...220) : rng.int(1...40)
                let n = rng.int(1...150), k = trial == 0 ? 0 : rng.int(1...600)
                let lda = m + rng.int(0...3), ldb = n + rng.int(0...3), ldc = n + 2, acc = trial % 2
                let a = rng.floats(max(1, k * lda)), b = rng.floats(max(1, k * ldb))
                let start = rng.floats(m * ldc)
                var at = [Float](repeating: 0, count: m * max(1, k))  // Aᵀ, m × k
                for r in 0..<k { for i in 0..<m { at[i * k + r] = a[r * lda + i] } }
                var want = [Float](repeating: 0, count: m * ldc)
                pth2swt_sgemm_reference(
                    Int32(m), Int32(n), Int32(k), at, Int32(max(1, k)), b, Int32(ldb), &want, Int32(ldc))
                for i in 0..<m { for j in n..<ldc { want[i * ldc + j] = start[i * ldc + j] } }  // outside C: untouched
                if acc == 1 { for i in 0..<m { for j in 0..<n { want[i * ldc + j] += start[i * ldc + j] } } }
                var c = start
                var scratch = [Float](repeating: .nan, count: pth2swt_gemm_tn_scratch_count(Int32(n)))
                pth2swt_gemm_tn(m, Int32(n), k, a, lda, b, ldb, &c, ldc, Int32(acc), &scratch)
                let err = zip(c, want).map { abs($0 - $1) }.max()!
                #expect(err < 1e-3, "m\(m) n\(n) k\(k) acc\(acc): \(err)")
            }
        }
    }
}

@Suite struct AlignedFloatsTests {
    /// Every allocation starts on a cache line, whatever its size (the point of the type), and holds
    /// what it was given.
    @Test func startsOnACacheLine() {
        for count in [0, 1, 3, 16, 17, 1000, 40_000, 3_000_000] {
            let values = (0..<count).map { Float($0 % 251) - 125 }
            let a = AlignedFloats(values)
            #expect(Int(bitPattern: a.baseAddress) % 64 == 0, "\(count) floats")
            #expect(a.count == count && a.array == values)
            let z = AlignedFloats(zeros: count)
            #expect(Int(bitPattern: z.baseAddress) % 64 == 0 && z.array.allSatisfy { $0 == 0 })
            let b = UnsafeMutableBufferPointer<Float>.allocateLineAligned(capacity: count)
            #expect(Int(bitPattern: b.baseAddress!) % 64 == 0 && b.count == count)
            b.deallocate()
        }
        let packed = PackedConvWeight(
            (0..<(24 * 5 * 9)).map(Float.init), outChannels: 24, inChannels: 5, kernelH: 3, kernelW: 3)
        #expect(Int(bitPattern: packed.packed.baseAddress) % 64 == 0)
    }
}
