import CKernels
import TestSupport
import Testing

@testable import Kernels

/// Depthwise and grouped convolutions, the ReLU6 epilogue and adaptive average pooling against the NCHW
/// references (`ConvKernel.reference` with groups, `Pool.adaptiveAverageReference`).
@Suite struct GroupedTests {
    typealias Rng = KernelTests.Rng

    /// The reference conv (+ bias) (+ residual) then `activation`, in NHWC.
    func expected(
        _ g: Conv2dGeometry, x: [Float], w: [Float], bias: [Float]?, residual: [Float]?, activation: Activation
    ) -> [Float] {
        let xc = Layout.nchw(x, batch: g.batch, channels: g.inChannels, plane: g.height * g.width)
        var y = ConvKernel.reference(g, input: xc, weight: w, bias: bias)
        y = Layout.nhwc(y, batch: g.batch, channels: g.outChannels, plane: g.outHeight * g.outWidth)
        if let residual { for i in y.indices { y[i] += residual[i] } }
        return y.map(activation.apply)
    }

    @Test(arguments: ISA.supported) func depthwiseMatchesReference(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 29)
            var checked = 0
            var sawInterior = false, sawTail = false, sawGroupsOfEight = false, sawFourBlocks = false
            while checked < 80 {
                // Up to 103 channels: the 3×3 path's channel blocks (16 in the AVX-512 tier) and the edge
                // path's four blocks at once (64 channels) with every kind of tail.
                let c =
                    checked % 4 == 0 ? rng.int(1...7) : 8 * rng.int(1...12) + (checked % 3 == 0 ? rng.int(1...7) : 0)
                let k = [1, 3, 3, 5, 7][rng.int(0...4)]
                var g = Conv2dGeometry(
                    batch: rng.int(1...2), inChannels: c, height: rng.int(1...19), width: rng.int(1...19),
                    outChannels: c,
                    kernel: (k, k), stride: (rng.int(1...2), rng.int(1...2)),
                    padding: (rng.int(0...k / 2 + 1), rng.int(0...k / 2 + 1)),
                    groups: c)
                if checked % 5 == 0 {
                    (g.height, g.width, g.strideH, g.strideW, g.padH, g.padW) = (14, 14, 1, 1, k / 2, k / 2)
                }
                guard DepthwiseNHWC.applies(to: g) else { continue }
                checked += 1
                sawInterior = sawInterior || g.outWidth >= 6
                sawTail = sawTail || c % 8 != 0
                sawGroupsOfEight = sawGroupsOfEight || (k == 3 && g.outWidth >= 11 && c >= 16)
                sawFourBlocks = sawFourBlocks || c >= 64
                let x = rng.floats(g.inputCount), w = rng.floats(g.weightCount)
                let bias = checked % 2 == 0 ? rng.floats(c) : nil
                let activation = Activation.allCases[checked % Activation.allCases.count]
                // Values past 6 so ReLU6 clamps.
                let xs = x.map { $0 * 4 }
                let want = expected(g, x: xs, w: w, bias: bias, residual: nil, activation: activation)
                let packed = DepthwiseNHWC.pack(w, channels: c, kernelH: k, kernelW: k)
                for threads in [1, 2, 3] {
                    var got = [Float](repeating: .nan, count: g.outputCount)
                    got.withUnsafeMutableBufferPointer { o in
                        packed.withUnsafeBufferPointer { p in
                            withBaseAddress(bias) { b in
                                DepthwiseNHWC.forward(
                                    g, input: xs, packedWeight: p.baseAddress!, bias: b, activation: activation,
                                    output: o.baseAddress!, threads: threads)
                            }
                        }
                    }
                    #expect(relativeError(got, want) < 1e-5, "\(g), \(activation), \(threads) threads")
                }
            }
            #expect(sawInterior && sawTail, "the random shapes missed a code path")
            #expect(sawGroupsOfEight, "no 3×3 case wide enough for the groups of eight")
            #expect(sawFourBlocks, "no case with the edges' four channel blocks")
        }
    }

    @Test(arguments: ISA.supported) func depthwiseKeepsNaNAndClampsInfinity(tier: ISA) throws {
        // 9 wide: interior outputs one at a time; 20 wide with 80 channels: groups of eight and the
        // edges' four channel blocks at once.
        try ISA.with(tier) { checkNaNAndInfinity(width: 9, channels: 16) }
        try ISA.with(tier) { checkNaNAndInfinity(width: 20, channels: 80) }
    }

    func checkNaNAndInfinity(width: Int, channels c: Int) {
        let g = Conv2dGeometry(
            batch: 1, inChannels: c, height: 6, width: width, outChannels: c, kernel: (3, 3),
            padding: (1, 1), groups: c)
        var x = [Float](repeating: 1, count: g.inputCount)
        x[(2 * width + 4) * c + 3] = .nan
        x[(2 * width + 4) * c + 5] = .infinity
        x[(2 * width + 0) * c + c - 2] = .nan
        let w = [Float](repeating: 1, count: g.weightCount)
        let packed = DepthwiseNHWC.pack(w, channels: c, kernelH: 3, kernelW: 3)
        for activation in Activation.allCases {
            var got = [Float](repeating: 0, count: g.outputCount)
            got.withUnsafeMutableBufferPointer { o in
                packed.withUnsafeBufferPointer { p in
                    DepthwiseNHWC.forward(
                        g, input: x, packedWeight: p.baseAddress!, bias: nil, activation: activation,
                        output: o.baseAddress!)
                }
            }
            let at = (2 * width + 4) * c, edge = (2 * width + 0) * c
            // The activation of a window's sum: exact for the clamps, within 2 ulps for SiLU's e^x.
            func close(_ a: Float, _ sum: Float) -> Bool {
                let b = activation.apply(sum)
                return a == b || abs(a - b) <= 2 * b.ulp
            }
            #expect(got[at + 3].isNaN, "\(c) channels, \(activation): NaN passes through")
            #expect(got[at + 5] == activation.apply(.infinity), "\(c) channels, \(activation): +inf")
            #expect(close(got[at + 4], 9), "\(c) channels, \(activation): a full window of ones")
            #expect(got[edge + c - 2].isNaN, "\(c) channels, \(activation): NaN at the left edge")
            #expect(close(got[edge + c - 3], 6), "\(c) channels, \(activation): an edge window of six ones")
        }
    }

    @Test(arguments: ISA.supported) func groupedMatchesReference(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 31)
            for trial in 0..<40 {
                let groups = rng.int(2...6), cg = rng.int(1...6), kg = rng.int(1...20)
                let k = [1, 3, 3, 5][rng.int(0...3)]
                let g = Conv2dGeometry(
                    batch: rng.int(1...2), inChannels: groups * cg, height: rng.int(k...15), width: rng.int(k...15),
                    outChannels: groups * kg, kernel: (k, k), stride: (rng.int(1...2), rng.int(1...2)),
                    padding: (rng.int(0...k / 2), rng.int(0...k / 2)), groups: groups)
                guard g.isValid else { continue }
                let x = rng.floats(g.inputCount), w = rng.floats(g.weightCount), bias = rng.floats(g.outChannels)
                let residual = trial % 2 == 0 ? rng.floats(g.outputCount) : nil
                let activation = Activation.allCases[trial % Activation.allCases.count]
                let want = expected(g, x: x, w: w, bias: bias, residual: residual, activation: activation)
                let weight = GroupedConvWeight(
                    w, outChannels: g.outChannels, inChannels: g.inChannels, groups: groups,
                    kernelH: k, kernelW: k)
                for threads in [1, 2] {
                    var got = [Float](repeating: .nan, count: g.outputCount)
                    var scratch = [Float](repeating: .nan, count: GroupedNHWC.scratchCount(g, threads: threads))
                    got.withUnsafeMutableBufferPointer { o in
                        scratch.withUnsafeMutableBufferPointer { s in
                            bias.withUnsafeBufferPointer { b in
                                withBaseAddress(residual) { r in
                                    GroupedNHWC.forward(
                                        g, input: x, weight: weight, bias: b.baseAddress, residual: r,
                                        activation: activation, output: o.baseAddress!, scratch: s.baseAddress!,
                                        threads: threads)
                                }
                            }
                        }
                    }
                    #expect(relativeError(got, want) < 1e-5, "\(g), \(activation), \(threads) threads")
                }
            }
        }
    }

    /// ReLU6 in the GEMM's and Winograd's epilogues.
    @Test(arguments: ISA.supported) func relu6Epilogues(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 37)
            let g = Conv2dGeometry(
                batch: 1, inChannels: 16, height: 9, width: 11, outChannels: 24, kernel: (3, 3), padding: (1, 1))
            let x = rng.floats(g.inputCount).map { $0 * 8 }, w = rng.floats(g.weightCount), bias = rng.floats(24)
            let residual = rng.floats(g.outputCount)
            let want = expected(g, x: x, w: w, bias: bias, residual: residual, activation: .relu6)
            #expect(want.contains(6) && want.contains(0), "the shape clamps on both sides")
            var direct = [Float](repeating: .nan, count: g.outputCount), wino = direct
            var scratch = [Float](
                repeating: 0, count: max(ConvNHWC.scratchCount(threads: 2), WinogradNHWC.scratchCount(g, threads: 2)))
            let packed = PackedConvWeight(w, outChannels: 24, inChannels: 16, kernelH: 3, kernelW: 3)
            let u = WinogradNHWC.transformWeights(w, outChannels: 24, inChannels: 16).array
            bias.withUnsafeBufferPointer { b in
                residual.withUnsafeBufferPointer { r in
                    scratch.withUnsafeMutableBufferPointer { s in
                        direct.withUnsafeMutableBufferPointer { o in
                            ConvNHWC.forward(
                                g, input: x, weight: packed, bias: b.baseAddress, residual: r.baseAddress,
                                activation: .relu6, output: o.baseAddress!, scratch: s.baseAddress!, threads: 2)
                        }
                        wino.withUnsafeMutableBufferPointer { o in
                            WinogradNHWC.forward(
                                g, input: x, transformedWeight: u, bias: b.baseAddress, residual: r.baseAddress,
                                activation: .relu6, output: o.baseAddress!, scratch: s.baseAddress!, threads: 2)
                        }
                    }
                }
            }
            #expect(relativeError(direct, want) < 1e-5)
            #expect(relativeError(wino, want) < 1e-4)
            #expect(direct.max()! <= 6 && wino.max()! <= 6)
        }
    }

    @Test func adaptiveAverageMatchesReference() {
        var rng = Rng(s: 41)
        for (h, w, oh, ow) in [(2, 2, 7, 7), (7, 7, 7, 7), (13, 9, 6, 6), (5, 8, 3, 2), (1, 1, 6, 6), (14, 14, 1, 1)] {
            let n = 2, c = 11
            let x = rng.floats(n * c * h * w)
            let want = Pool.adaptiveAverageReference(
                x, batch: n, channels: c, height: h, width: w, outHeight: oh, outWidth: ow)
            let xn = Layout.nhwc(x, batch: n, channels: c, plane: h * w)
            var got = [Float](repeating: .nan, count: n * c * oh * ow)
            got.withUnsafeMutableBufferPointer {
                PoolNHWC.adaptiveAverage(
                    xn, $0.baseAddress!, batch: n, channels: c, height: h, width: w, outHeight: oh, outWidth: ow)
            }
            let back = Layout.nchw(got, batch: n, channels: c, plane: oh * ow)
            #expect(relativeError(back, want) < 1e-6, "\(h)×\(w) → \(oh)×\(ow)")
        }
    }
}

/// The depthwise gradients against the grouped NCHW references (`GradReference.convInput/convWeight`).
@Suite struct DepthwiseBackwardTests {
    typealias Rng = KernelTests.Rng

    @Test(arguments: ISA.supported) func depthwiseGradientsMatchReference(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 43)
            for trial in 0..<30 {
                let c = trial % 3 == 0 ? rng.int(1...7) : 8 * rng.int(1...3) + rng.int(0...7)
                let k = [1, 3, 3, 5][rng.int(0...3)]
                let g = Conv2dGeometry(
                    batch: rng.int(1...2), inChannels: c, height: rng.int(k...13), width: rng.int(k...13),
                    outChannels: c, kernel: (k, k), stride: (rng.int(1...2), rng.int(1...2)),
                    padding: (rng.int(0...k / 2), rng.int(0...k / 2)), groups: c)
                guard DepthwiseNHWC.applies(to: g) else { continue }
                let x = rng.floats(g.inputCount), w = rng.floats(g.weightCount), dy = rng.floats(g.outputCount)
                let xc = Layout.nchw(x, batch: g.batch, channels: c, plane: g.height * g.width)
                let dyc = Layout.nchw(dy, batch: g.batch, channels: c, plane: g.outHeight * g.outWidth)
                let wantDX = Layout.nhwc(
                    GradReference.convInput(g, outputGradient: dyc, weight: w), batch: g.batch, channels: c,
                    plane: g.height * g.width)
                let wantDW = GradReference.convWeight(g, input: xc, outputGradient: dyc)
                let packed = DepthwiseNHWC.pack(w, channels: c, kernelH: k, kernelW: k)
                for threads in [1, 2, 3] {
                    var dx = [Float](repeating: .nan, count: g.inputCount),
                        dw = [Float](repeating: .nan, count: g.weightCount)
                    packed.withUnsafeBufferPointer { p in
                        dx.withUnsafeMutableBufferPointer {
                            DepthwiseBackward.data(
                                g, outputGradient: dy, packedWeight: p.baseAddress!, inputGradient: $0.baseAddress!,
                                threads: threads)
                        }
                    }
                    dw.withUnsafeMutableBufferPointer {
                        DepthwiseBackward.weight(
                            g, input: x, outputGradient: dy, weightGradient: $0.baseAddress!, threads: threads)
                    }
                    #expect(relativeError(dx, wantDX) < 1e-5, "dx \(g), \(threads) threads")
                    #expect(relativeError(dw, wantDW) < 1e-5, "dw \(g), \(threads) threads")
                }
            }
        }
    }
}
