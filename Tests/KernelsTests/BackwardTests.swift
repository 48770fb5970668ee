import Foundation
import TestSupport
import Testing

@testable import Kernels

/// The training kernels against their NCHW twins (`GradReference`) on random geometries, and a whole
/// residual block against torch's autograd (Tests/Reference/make_grad_golden.py, torch 1.13).
@Suite struct BackwardTests {
    typealias Rng = KernelTests.Rng

    /// Winograd's weight gradient against the direct reference: partial edge tiles (sizes not multiples of
    /// four), several blocks of tiles (the last one short), 1 to 3 threads (more threads than blocks
    /// included), and both schedules (shared blocks, and per-thread blocks and dU).
    @Test(arguments: ISA.supported) func winogradWeightGradientMatchesReference(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 43)
            for (n, c, k, h, w, block) in [
                (1, 8, 8, 4, 4, nil), (2, 8, 16, 7, 7, nil), (3, 16, 8, 5, 9, 5), (2, 24, 32, 14, 14, 7),
                (1, 8, 8, 1, 1, nil), (2, 16, 16, 13, 6, 3),
            ] as [(Int, Int, Int, Int, Int, Int?)] {
                let g = Conv2dGeometry(
                    batch: n, inChannels: c, height: h, width: w, outChannels: k, kernel: (3, 3), padding: (1, 1))
                let x = rng.floats(g.inputCount), dy = rng.floats(g.outputCount)
                let want = GradReference.convWeight(g, input: x, outputGradient: dy)
                let xl = Layout.nhwc(x, batch: n, channels: c, plane: h * w)
                let dyl = Layout.nhwc(dy, batch: n, channels: k, plane: g.outHeight * g.outWidth)
                for threads in [1, 2, 3] {
                    for own in [false, true] {
                        var scratch = [Float](
                            repeating: .nan,
                            count: WinogradBackward.scratchCount(
                                g, tilesPerBlock: block, threads: threads, perThread: own))
                        var dw = [Float](repeating: .nan, count: g.weightCount)
                        scratch.withUnsafeMutableBufferPointer { s in
                            dw.withUnsafeMutableBufferPointer {
                                WinogradBackward.weight(
                                    g, input: xl, outputGradient: dyl, weightGradient: $0.baseAddress!,
                                    scratch: s.baseAddress!, threads: threads, tilesPerBlock: block,
                                    perThread: own)
                            }
                        }
                        let err = relativeError(dw, want)
                        #expect(
                            err < 2e-5,
                            "dw: \(g), block \(block.map(String.init) ?? "default"), \(threads) threads, \(own ? "per-thread" : "shared") blocks: \(err)"
                        )
                    }
                }
            }
        }
    }

    @Test(arguments: ISA.supported) func convGradientsMatchReference(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 41)
            var checked = 0
            while checked < 40 {
                var g = Conv2dGeometry(
                    batch: rng.int(1...3), inChannels: rng.int(1...20), height: rng.int(1...13), width: rng.int(1...13),
                    outChannels: rng.int(1...40), kernel: (rng.int(1...5), rng.int(1...5)),
                    stride: (rng.int(1...3), rng.int(1...3)), padding: (rng.int(0...2), rng.int(0...2)))
                if checked % 8 == 0 {
                    (g.kernelH, g.kernelW, g.strideH, g.strideW, g.padH, g.padW) = (1, 1, 1, 1, 0, 0)
                }
                if checked % 8 == 1 {
                    (g.height, g.width, g.kernelH, g.kernelW, g.strideH, g.strideW) = (24, 24, 3, 3, 1, 1)
                }
                guard ConvNHWC.applies(to: g) else { continue }
                checked += 1
                let x = rng.floats(g.inputCount), w = rng.floats(g.weightCount), dy = rng.floats(g.outputCount)
                let wantDx = GradReference.convInput(g, outputGradient: dy, weight: w)
                let wantDw = GradReference.convWeight(g, input: x, outputGradient: dy)
                let xl = Layout.nhwc(x, batch: g.batch, channels: g.inChannels, plane: g.height * g.width)
                let dyl = Layout.nhwc(dy, batch: g.batch, channels: g.outChannels, plane: g.outHeight * g.outWidth)
                let wt = ConvBackward.packTransposed(
                    w, outChannels: g.outChannels, inChannels: g.inChannels, kernelH: g.kernelH, kernelW: g.kernelW)
                for threads in [1, 2, 3] {
                    var scratch = [Float](repeating: .nan, count: ConvBackward.scratchCount(g, threads: threads))
                    var dx = [Float](repeating: .nan, count: g.inputCount),
                        dw = [Float](repeating: .nan, count: g.weightCount)
                    scratch.withUnsafeMutableBufferPointer { s in
                        dx.withUnsafeMutableBufferPointer {
                            ConvBackward.data(
                                g, outputGradient: dyl, packedTransposedWeight: wt.array,
                                inputGradient: $0.baseAddress!,
                                scratch: s.baseAddress!, threads: threads)
                        }
                        dw.withUnsafeMutableBufferPointer {
                            ConvBackward.weight(
                                g, input: xl, outputGradient: dyl, weightGradient: $0.baseAddress!,
                                scratch: s.baseAddress!, threads: threads)
                        }
                    }
                    let gotDx = Layout.nchw(dx, batch: g.batch, channels: g.inChannels, plane: g.height * g.width)
                    #expect(relativeError(gotDx, wantDx) < 1e-5, "dx: \(g), \(threads) threads")
                    #expect(relativeError(dw, wantDw) < 1e-5, "dw: \(g), \(threads) threads")
                }
            }
        }
    }

    /// The fused kernels (statistics, normalisation + residual + ReLU; ReLU's mask + the backward pass)
    /// against the reference composed step by step, on shapes that cover the 8-channel vectors and
    /// their tail and several 2048-row blocks; 1 and 2 threads give the same bits.
    @Test(arguments: ISA.supported) func batchNormMatchesReference(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 43)
            for trial in 0..<12 {
                let t = BatchNormTrial(&rng, trial: trial)
                let (n, c, plane, x, dy, fused, gamma, beta) = (t.n, t.c, t.plane, t.x, t.dy, t.fused, t.gamma, t.beta)
                let want = GradReference.batchNorm(
                    x, outputGradient: dy, batch: n, channels: c, plane: plane, gamma: gamma, beta: beta, eps: 1e-5)
                let (xl, dyl, rl) = (t.xl, t.dyl, t.rl)
                // The reference's output after + residual and ReLU (channels-last), and dy masked by it.
                let wantY = zip(Layout.nhwc(want.y, batch: n, channels: c, plane: plane), rl).map {
                    fused ? max(0, $0 + $1) : $0
                }
                var results: [[Float]] = []
                for threads in [1, 2] {
                    var y = [Float](repeating: .nan, count: x.count), dx = y
                    var rm = [Float](repeating: 0.25, count: c), rv = [Float](repeating: 2, count: c)
                    var mean = [Float](repeating: .nan, count: c), inv = mean, dg = mean, db = mean
                    withBaseAddress(fused ? rl : nil) { r in
                        BatchNormTrain.forward(
                            xl, &y, rows: n * plane, channels: c, gamma: gamma, beta: beta, runningMean: &rm,
                            runningVar: &rv, momentum: 0.1, eps: 1e-5, savedMean: &mean, savedInvStd: &inv,
                            residual: r, relu: fused, threads: threads)
                    }
                    var g = dyl
                    withBaseAddress(fused ? y : nil) { mask in
                        BatchNormTrain.backward(
                            xl, outputGradient: &g, inputGradient: &dx, rows: n * plane, channels: c, gamma: gamma,
                            savedMean: mean, savedInvStd: inv, gammaGradient: &dg, betaGradient: &db,
                            reluOutput: mask, threads: threads)
                    }
                    #expect(relativeError(y, wantY) < 1e-6, "y, trial \(trial)")
                    if fused {
                        // dy masked in place, then the reference's backward of the masked gradient.
                        let masked = zip(dyl, y).map { $1 > 0 ? $0 : 0 }
                        #expect(g == masked, "the mask, trial \(trial)")
                        let m = GradReference.batchNorm(
                            x, outputGradient: Layout.nchw(masked, batch: n, channels: c, plane: plane), batch: n,
                            channels: c, plane: plane, gamma: gamma, beta: beta, eps: 1e-5)
                        #expect(
                            relativeError(Layout.nchw(dx, batch: n, channels: c, plane: plane), m.dx) < 1e-5,
                            "dx, trial \(trial)")
                        #expect(relativeError(dg, m.dGamma) < 1e-5 && relativeError(db, m.dBeta) < 1e-5)
                    } else {
                        #expect(
                            relativeError(Layout.nchw(dx, batch: n, channels: c, plane: plane), want.dx) < 1e-5,
                            "dx, trial \(trial)")
                        #expect(relativeError(dg, want.dGamma) < 1e-5 && relativeError(db, want.dBeta) < 1e-5)
                    }
                    let count = Float(n * plane)
                    for k in 0..<c {
                        #expect(abs(rm[k] - (0.9 * 0.25 + 0.1 * want.mean[k])) < 1e-5)
                        #expect(abs(rv[k] - (0.9 * 2 + 0.1 * want.variance[k] * count / (count - 1))) < 1e-4)
                    }
                    results.append(y + dx + dg + db + rm + rv)
                }
                #expect(results[0] == results[1], "threads change the bits, trial \(trial)")
            }
        }
    }

    /// Eval mode with γ and β training (`runningStatistics`): the running statistics normalise and stay
    /// as they were, and the backward pass drops the batch-statistics terms; against the reference, with
    /// and without the fused residual and ReLU, on 1 and 2 threads (the same bits).
    @Test(arguments: ISA.supported) func batchNormOnRunningStatisticsMatchesReference(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 47)
            for trial in 0..<8 {
                let t = BatchNormTrial(&rng, trial: trial)
                let (n, c, plane, x, fused, gamma, beta) = (t.n, t.c, t.plane, t.x, t.fused, t.gamma, t.beta)
                let runningMean = rng.floats(c), runningVar = rng.floats(c).map { $0 * $0 + 0.5 }
                let (xl, dyl, rl) = (t.xl, t.dyl, t.rl)
                var results: [[Float]] = []
                for threads in [1, 2] {
                    var y = [Float](repeating: .nan, count: x.count), dx = y
                    var rm = runningMean, rv = runningVar
                    var mean = [Float](repeating: .nan, count: c), inv = mean, dg = mean, db = mean
                    withBaseAddress(fused ? rl : nil) { r in
                        BatchNormTrain.forward(
                            xl, &y, rows: n * plane, channels: c, gamma: gamma, beta: beta, runningMean: &rm,
                            runningVar: &rv, momentum: 0.1, eps: 1e-5, savedMean: &mean, savedInvStd: &inv,
                            residual: r, relu: fused, runningStatistics: true, threads: threads)
                    }
                    #expect(rm == runningMean && rv == runningVar, "running statistics moved, trial \(trial)")
                    var g = dyl
                    withBaseAddress(fused ? y : nil) { mask in
                        BatchNormTrain.backward(
                            xl, outputGradient: &g, inputGradient: &dx, rows: n * plane, channels: c, gamma: gamma,
                            savedMean: mean, savedInvStd: inv, gammaGradient: &dg, betaGradient: &db,
                            reluOutput: mask, runningStatistics: true, threads: threads)
                    }
                    // The reference on the gradient the fused ReLU lets through.
                    let masked = fused ? zip(dyl, y).map { $1 > 0 ? $0 : 0 } : dyl
                    let want = GradReference.batchNormRunningStatistics(
                        x, outputGradient: Layout.nchw(masked, batch: n, channels: c, plane: plane), batch: n,
                        channels: c, plane: plane, gamma: gamma, beta: beta, mean: runningMean, variance: runningVar,
                        eps: 1e-5)
                    let wantY = zip(Layout.nhwc(want.y, batch: n, channels: c, plane: plane), rl).map {
                        fused ? max(0, $0 + $1) : $0
                    }
                    #expect(relativeError(y, wantY) < 1e-6, "y, trial \(trial)")
                    #expect(g == masked, "the mask, trial \(trial)")
                    #expect(
                        relativeError(Layout.nchw(dx, batch: n, channels: c, plane: plane), want.dx) < 1e-6,
                        "dx, trial \(trial)")
                    #expect(relativeError(dg, want.dGamma) < 1e-5 && relativeError(db, want.dBeta) < 1e-5)
                    results.append(y + dx + dg + db)
                }
                #expect(results[0] == results[1], "threads change the bits, trial \(trial)")
            }
        }
    }

    @Test(arguments: ISA.supported) func maxPoolIndicesFollowTorch(tier: ISA) throws {
        try ISA.with(tier) {
            // Ties keep the first maximum; a NaN wins, the last of several.
            let x: [Float] = [1, 3, 3, 2, .nan, 0, .nan, 5, 4]  // 1 image, 3×3, 1 channel
            var y = [Float](repeating: 0, count: 1), idx = [Int32](repeating: 0, count: 1)
            PoolBackward.max2d(
                x, &y, indices: &idx, batch: 1, channels: 1, height: 3, width: 3, kernel: 3, stride: 1, padding: 0)
            #expect(y[0].isNaN && idx[0] == 6)
            let t: [Float] = [1, 3, 3, 2]
            PoolBackward.max2d(
                t, &y, indices: &idx, batch: 1, channels: 1, height: 2, width: 2, kernel: 2, stride: 1, padding: 0)
            #expect(y[0] == 3 && idx[0] == 1)
        }
    }

    /// Max pooling with indices against its NCHW twin: random shapes (channel counts across the 8-wide
    /// vectors and their tail), ties (values rounded to a few levels) and NaNs, 1 and 2 threads.
    @Test(arguments: ISA.supported) func maxPoolMatchesReference(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 77)
            for trial in 0..<12 {
                let n = rng.int(1...2), c = rng.int(1...19), h = rng.int(3...13), w = rng.int(3...13)
                let (k, stride, pad) = [(3, 2, 1), (2, 2, 0), (3, 1, 1), (3, 2, 0)][trial % 4]
                var x = rng.floats(n * c * h * w).map { ($0 * 4).rounded() }
                for i in x.indices where rng.int(0...40) == 0 { x[i] = .nan }
                let want = GradReference.maxPool(
                    x, batch: n, channels: c, height: h, width: w, kernel: k, stride: stride, padding: pad)
                let oH = (h + 2 * pad - k) / stride + 1, oW = (w + 2 * pad - k) / stride + 1
                let xl = Layout.nhwc(x, batch: n, channels: c, plane: h * w)
                for threads in [1, 2] {
                    var y = [Float](repeating: 0, count: n * oH * oW * c), idx = [Int32](repeating: -7, count: y.count)
                    PoolBackward.max2d(
                        xl, &y, indices: &idx, batch: n, channels: c, height: h, width: w, kernel: k, stride: stride,
                        padding: pad, threads: threads)
                    // Our index is into NHWC; map it to the NCHW flat index the reference gives.
                    let got = Layout.nchw(
                        idx.map { i -> Float in
                            let i = Int(i), ch = i % c, pos = i / c, img = pos / (h * w)
                            return Float((img * c + ch) * h * w + pos % (h * w))
                        }, batch: n, channels: c, plane: oH * oW
                    ).map { Int($0) }
                    let gotY = Layout.nchw(y, batch: n, channels: c, plane: oH * oW)
                    #expect(got == want.indices, "indices, trial \(trial), \(threads) threads")
                    #expect(
                        zip(gotY, want.y).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }, "values, trial \(trial)")
                }
            }
        }
    }

    /// The block make_grad_golden.py describes, forward and backward with our kernels, against torch.
    @Test(arguments: ISA.supported) func residualBlockMatchesTorchAutograd(tier: ISA) throws {
        try ISA.with(tier) {
            let url = Golden.fixtures.appendingPathComponent("grad/block.json")
            let meta = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
            #expect(meta["generator"] as? String == "Tests/Reference/make_grad_golden.py")
            let inputs = meta["inputs"] as! [String: Any], grads = meta["grads"] as! [String: Any]
            func floats(_ v: Any?) -> [Float] { (v as! [Double]).map(Float.init) }
            func bn(_ name: String) -> [String: [Float]] { (inputs[name] as! [String: Any]).mapValues(floats) }
            let eps: Float = 1e-5, momentum: Float = 0.1
            let (n, h, w) = (2, 11, 9)
            let g1 = Conv2dGeometry(
                batch: n, inChannels: 6, height: h, width: w, outChannels: 8, kernel: (3, 3), stride: (2, 2),
                padding: (1, 1))
            let (ph, pw) = ((g1.outHeight + 2 - 3) / 2 + 1, (g1.outWidth + 2 - 3) / 2 + 1)
            let g2 = Conv2dGeometry(
                batch: n, inChannels: 8, height: ph, width: pw, outChannels: 16, kernel: (3, 3), padding: (1, 1))
            let g3 = Conv2dGeometry(batch: n, inChannels: 8, height: ph, width: pw, outChannels: 16, kernel: (1, 1))
            let x = Layout.nhwc(floats(inputs["x"]), batch: n, channels: 6, plane: h * w)
            let w1 = floats(inputs["conv1"]), w2 = floats(inputs["conv2"]), w3 = floats(inputs["conv3"]),
                r = floats(inputs["r"])
            var bn1 = bn("bn1"), bn2 = bn("bn2"), bn3 = bn("bn3")
            var scratch = [Float](repeating: 0, count: 1 << 16)

            func conv(_ g: Conv2dGeometry, _ x: [Float], _ w: [Float]) -> [Float] {
                let packed = PackedConvWeight(
                    w, outChannels: g.outChannels, inChannels: g.inChannels, kernelH: g.kernelH, kernelW: g.kernelW)
                var y = [Float](repeating: 0, count: g.outputCount)
                y.withUnsafeMutableBufferPointer { o in
                    scratch.withUnsafeMutableBufferPointer {
                        ConvNHWC.forward(
                            g, input: x, weight: packed, bias: nil, residual: nil, relu: false, output: o.baseAddress!,
                            scratch: $0.baseAddress!, threads: 2)
                    }
                }
                return y
            }
            struct Saved { var mean: [Float], inv: [Float] }
            func bnForward(_ x: [Float], _ p: inout [String: [Float]], rows: Int) -> ([Float], Saved) {
                let c = p["weight"]!.count
                var y = [Float](repeating: 0, count: x.count),
                    s = Saved(mean: .init(repeating: 0, count: c), inv: .init(repeating: 0, count: c))
                var rm = p["running_mean"]!, rv = p["running_var"]!
                BatchNormTrain.forward(
                    x, &y, rows: rows, channels: c, gamma: p["weight"]!, beta: p["bias"]!, runningMean: &rm,
                    runningVar: &rv, momentum: momentum, eps: eps, savedMean: &s.mean, savedInvStd: &s.inv)
                p["running_mean"] = rm
                p["running_var"] = rv
                return (y, s)
            }
            func bnBackward(_ x: [Float], _ dy: [Float], _ p: [String: [Float]], _ s: Saved, rows: Int) -> (
                [Float], [Float], [Float]
            ) {
                let c = p["weight"]!.count
                var dy = dy
                var dx = [Float](repeating: 0, count: x.count), dg = [Float](repeating: 0, count: c), db = dg
                BatchNormTrain.backward(
                    x, outputGradient: &dy, inputGradient: &dx, rows: rows, channels: c, gamma: p["weight"]!,
                    savedMean: s.mean, savedInvStd: s.inv, gammaGradient: &dg, betaGradient: &db)
                return (dx, dg, db)
            }
            func convBackward(_ g: Conv2dGeometry, _ x: [Float], _ w: [Float], _ dy: [Float]) -> (
                dx: [Float], dw: [Float]
            ) {
                let wt = ConvBackward.packTransposed(
                    w, outChannels: g.outChannels, inChannels: g.inChannels, kernelH: g.kernelH, kernelW: g.kernelW)
                var dx = [Float](repeating: 0, count: g.inputCount), dw = [Float](repeating: 0, count: g.weightCount)
                var s = [Float](repeating: 0, count: ConvBackward.scratchCount(g, threads: 2))
                s.withUnsafeMutableBufferPointer { s in
                    dx.withUnsafeMutableBufferPointer {
                        ConvBackward.data(
                            g, outputGradient: dy, packedTransposedWeight: wt.array, inputGradient: $0.baseAddress!,
                            scratch: s.baseAddress!, threads: 2)
                    }
                    dw.withUnsafeMutableBufferPointer {
                        ConvBackward.weight(
                            g, input: x, outputGradient: dy, weightGradient: $0.baseAddress!, scratch: s.baseAddress!,
                            threads: 2)
                    }
                }
                return (dx, dw)
            }

            // Forward.
            let rows1 = n * g1.outHeight * g1.outWidth, rowsP = n * ph * pw
            let c1 = conv(g1, x, w1)
            var (y1, s1) = bnForward(c1, &bn1, rows: rows1)
            y1 = y1.map { $0 > 0 ? $0 : 0 }
            var p = [Float](repeating: 0, count: rowsP * 8), idx = [Int32](repeating: 0, count: rowsP * 8)
            PoolBackward.max2d(
                y1, &p, indices: &idx, batch: n, channels: 8, height: g1.outHeight, width: g1.outWidth, kernel: 3,
                stride: 2, padding: 1)
            let c2 = conv(g2, p, w2), c3 = conv(g3, p, w3)
            let (b2, s2) = bnForward(c2, &bn2, rows: rowsP)
            let (b3, s3) = bnForward(c3, &bn3, rows: rowsP)
            let y = zip(b2, b3).map { max($0 + $1, 0) }
            var f = [Float](repeating: 0, count: n * 16)
            PoolNHWC.globalAverage(y, &f, batch: n, channels: 16, plane: ph * pw)
            let loss = zip(f, r).reduce(Float(0)) { $0 + $1.0 * $1.1 }
            #expect(abs(loss - Float(meta["loss"] as! Double)) <= 1e-5 * abs(loss), "loss \(loss)")

            // Backward.
            var dyOut = [Float](repeating: 0, count: y.count)
            PoolBackward.globalAverage(outputGradient: r, inputGradient: &dyOut, batch: n, channels: 16, plane: ph * pw)
            PoolBackward.relu(output: y, gradient: &dyOut, count: y.count)
            let (dc2, dg2, db2) = bnBackward(c2, dyOut, bn2, s2, rows: rowsP)
            let (dc3, dg3, db3) = bnBackward(c3, dyOut, bn3, s3, rows: rowsP)
            let (dp2, dw2) = convBackward(g2, p, w2, dc2), (dp3, dw3) = convBackward(g3, p, w3, dc3)
            let dp = zip(dp2, dp3).map(+)
            var dy1 = [Float](repeating: 0, count: y1.count)
            PoolBackward.max2d(
                outputGradient: dp, indices: idx, count: dp.count, inputGradient: &dy1, inputCount: y1.count)
            PoolBackward.relu(output: y1, gradient: &dy1, count: y1.count)
            let (dc1, dg1, db1) = bnBackward(c1, dy1, bn1, s1, rows: rows1)
            let (dx, dw1) = convBackward(g1, x, w1, dc1)

            func check(_ got: [Float], _ key: String, _ sub: String? = nil, _ what: String) {
                let want = sub.map { floats((grads[key] as! [String: Any])[$0]) } ?? floats(grads[key])
                let err = relativeError(got, want)
                #expect(err < 1e-4, "\(what): relative error \(err)")
            }
            check(Layout.nchw(dx, batch: n, channels: 6, plane: h * w), "x", nil, "dL/dx")
            check(dw1, "conv1", nil, "dL/dconv1")
            check(dw2, "conv2", nil, "dL/dconv2")
            check(dw3, "conv3", nil, "dL/dconv3")
            for (name, dg, db) in [("bn1", dg1, db1), ("bn2", dg2, db2), ("bn3", dg3, db3)] {
                check(dg, name, "weight", "dL/d\(name).weight")
                check(db, name, "bias", "dL/d\(name).bias")
            }
            let after = meta["running_after"] as! [String: [String: [Double]]]
            for (name, p) in [("bn1", bn1), ("bn2", bn2), ("bn3", bn3)] {
                #expect(
                    relativeError(p["running_mean"]!, after[name]!["running_mean"]!.map(Float.init)) < 1e-5,
                    "\(name).running_mean")
                #expect(
                    relativeError(p["running_var"]!, after[name]!["running_var"]!.map(Float.init)) < 1e-5,
                    "\(name).running_var")
            }
        }
    }
}

/// One BatchNorm kernel trial: n images of c channels over a plane (several 2048-row blocks every third
/// trial), x spread around 0.5, dy, a residual, γ around 1.5 and β; channels-last copies; the fused
/// residual and ReLU on odd trials.
struct BatchNormTrial {
    let n: Int, c: Int, plane: Int
    let x: [Float], dy: [Float], residual: [Float], gamma: [Float], beta: [Float]
    let fused: Bool

    init(_ rng: inout KernelTests.Rng, trial: Int) {
        n = rng.int(1...3)
        c = rng.int(1...20)
        plane = trial % 3 == 0 ? rng.int(700...1500) : rng.int(2...30)
        x = rng.floats(n * c * plane).map { $0 * 3 + 0.5 }
        dy = rng.floats(n * c * plane)
        residual = rng.floats(n * c * plane)
        fused = trial % 2 == 1
        gamma = rng.floats(c).map { $0 + 1.5 }
        beta = rng.floats(c)
    }

    var xl: [Float] { Layout.nhwc(x, batch: n, channels: c, plane: plane) }
    var dyl: [Float] { Layout.nhwc(dy, batch: n, channels: c, plane: plane) }
    var rl: [Float] { Layout.nhwc(residual, batch: n, channels: c, plane: plane) }
}

enum Golden {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures")
}
