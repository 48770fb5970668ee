import CKernels

/// Gradients of the channels-last layers, for training. Each has a naive NCHW twin in `GradReference`
/// (straight from the definitions) that tests compare against, and Tests/Reference/make_grad_golden.py
/// checks the pair against torch's autograd.
public enum ConvBackward {
    /// The weight as the B operand of dCols = dY · Wᵀ: the K×(kh·kw·C) matrix whose row k is output
    /// channel k's filter in (ky, kx, c) order, packed in panels of 16 columns.
    public static func packTransposed(
        _ weight: [Float], outChannels k: Int, inChannels c: Int, kernelH kh: Int, kernelW kw: Int
    ) -> AlignedFloats {
        precondition(weight.count == k * c * kh * kw, "weight is not [\(k), \(c), \(kh), \(kw)]")
        return PackedConvWeight.pack(weight, outChannels: k, inChannels: c, taps: kh * kw, transposed: true)
    }

    /// Output positions per block of `data`: a block's columns (rows × kh·kw·C floats) are each thread's scratch.
    static let blockRows = 96
    /// Output positions per block of `weight`: each block adds a rank-`weightBlockRows` product to the
    /// depth × K sum, which is read and written once per block.
    static let weightBlockRows = 384

    /// Scratch floats for `data` and `weight` with `threads` threads.
    public static func scratchCount(_ g: Conv2dGeometry, threads: Int) -> Int {
        max(1, threads) * perThread(g)
    }

    /// One thread's scratch: a block's columns, its depth × K sum and pth2swt_gemm_tn's packing.
    static func perThread(_ g: Conv2dGeometry) -> Int {
        let depth = g.kernelH * g.kernelW * g.inChannels
        return weightBlockRows * depth + depth * g.outChannels + pth2swt_gemm_tn_scratch_count(Int32(g.outChannels))
    }

    /// dX [N, H, W, C] = the gradient of the convolution's input given dY [N, oH, oW, K]: per block of
    /// output positions, dCols = dY · Wᵀ on the micro-kernel, then added back onto the window positions
    /// (col2im). Threads take whole images, so their additions never overlap.
    public static func data(
        _ g: Conv2dGeometry, outputGradient dy: UnsafePointer<Float>, packedTransposedWeight wt: UnsafePointer<Float>,
        inputGradient dx: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, threads: Int = 1
    ) {
        precondition(ConvNHWC.applies(to: g), "unsupported convolution: \(g)")
        var s = g.cShape
        let depth = g.kernelH * g.kernelW * g.inChannels, K = g.outChannels
        let plane = g.outHeight * g.outWidth
        let each = perThread(g)
        dx.update(repeating: 0, count: g.inputCount)
        let parts = max(1, min(threads, g.batch))
        withUnsafePointer(to: &s) { shape in
            nonisolated(unsafe) let shape = shape
            Parallel.run(parts, parts) { part in
                let cols = scratch + part * each
                let rows = (g.batch * part / parts * plane)..<(g.batch * (part + 1) / parts * plane)
                var r0 = rows.lowerBound
                while r0 < rows.upperBound {
                    let mc = min(blockRows, rows.upperBound - r0)
                    pth2swt_gemm_rows(mc, Int32(depth), K, dy + r0 * K, K, wt, cols, depth, nil)
                    pth2swt_col2im_add_nhwc(shape, cols, r0, mc, dx)
                    r0 += mc
                }
            }
        }
    }

    /// dW [K, C, kh, kw] (torch's layout) = Σ over output positions of im2col(x)ᵀ · dY, on the micro-kernel
    /// (`pth2swt_gemm_tn`: the reduction runs over the positions). Threads take ranges of positions into
    /// their own sums, added at the end. A 1×1 stride-1 convolution's columns are x itself, taken whole.
    public static func weight(
        _ g: Conv2dGeometry, input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
        weightGradient dw: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, threads: Int = 1
    ) {
        precondition(ConvNHWC.applies(to: g), "unsupported convolution: \(g)")
        var s = g.cShape
        let C = g.inChannels, K = g.outChannels, taps = g.kernelH * g.kernelW, depth = taps * C
        let total = g.batch * g.outHeight * g.outWidth
        let each = perThread(g)
        let pointwise =
            g.kernelH == 1 && g.kernelW == 1 && g.strideH == 1 && g.strideW == 1 && g.padH == 0 && g.padW == 0
        let parts = max(1, min(threads, (total + blockRows - 1) / blockRows))
        withUnsafePointer(to: &s) { shape in
            nonisolated(unsafe) let shape = shape
            Parallel.run(parts, parts) { part in
                // cols: weightBlockRows × depth; sum: depth × K; then gemm_tn's packing.
                let cols = scratch + part * each, sum = cols + weightBlockRows * depth, pack = sum + depth * K
                var r0 = total * part / parts
                let end = total * (part + 1) / parts
                var first = true
                while r0 < end || first {
                    let mc = pointwise ? end - r0 : min(weightBlockRows, end - r0)
                    let a: UnsafePointer<Float>
                    if pointwise {
                        a = x + r0 * C
                    } else {
                        if mc > 0 { pth2swt_im2col_nhwc(shape, x, r0, mc, cols) }
                        a = UnsafePointer(cols)
                    }
                    pth2swt_gemm_tn(depth, Int32(K), mc, a, depth, dy + r0 * K, K, sum, K, first ? 0 : 1, pack)
                    first = false
                    r0 += mc
                }
            }
        }
        // Sum the parts and transpose (ky, kx, c) × K into [K, C, kh, kw].
        for o in 0..<K {
            for c in 0..<C {
                for t in 0..<taps {
                    var v: Float = 0
                    for part in 0..<parts { v += scratch[part * each + weightBlockRows * depth + (t * C + c) * K + o] }
                    dw[(o * C + c) * taps + t] = v
                }
            }
        }
    }
}

/// The weight gradient of a 3×3, stride-1, padding-1 convolution by Winograd F(4×4, 3×3): the backward
/// pass of `WinogradNHWC.forward`'s arithmetic with respect to the filter. Per block of tiles, the input
/// transform V = Bᵀ d B (the forward's) and dM = A dY Aᵀ, then dU[ξ] += V[ξ]ᵀ dM[ξ] for the 36 points
/// (`pth2swt_gemm_tn`, the reduction running over the block's tiles), and at the end dW = Gᵀ dU G. 36
/// multiplies per tile and channel pair instead of the direct form's 144; `ConvBackward.weight` is its
/// twin in tests.
///
/// Two schedules, as in the forward pass:
/// - **Per thread**, where dU is small (ResNet's 56×56 and 28×28 stages: 0.6 and 2.4 MB) and there are
///   at least four blocks a thread (at batch 32 on 224×224 images, 224 and 112 blocks there): each thread
///   takes every `threads`-th block of `threadBlockFloats`-sized V and dM into its own scratch and its own
///   dU, so all three stay in that core's cache, and the threads' dU are added in thread order at the end.
///   Against the shared schedule, batch 32 on two threads: 0.68× at 56×56·64, 0.78× at 28×28·128 (a C
///   harness running both alternately, the caches flushed between runs).
/// - **Shared** otherwise (the 14×14 stage's 9.4 MB dU, where per-thread copies were 1.1× slower): blocks
///   of about 8 MB of V and dM one after another, the threads splitting each block's transforms by tile
///   and its 36 products by ξ into the one dU.
///
/// Either way the sums run in a fixed order for a given thread count, so a step is reproducible.
public enum WinogradBackward {
    /// Shared blocks: V and dM of one block together about this many floats (8 MB).
    static let blockFloats = 2_000_000
    /// Per-thread blocks: V and dM together about this many floats (the forward pass's 512 KB of a core's L2).
    static let threadBlockFloats = WinogradNHWC.threadBlockFloats
    /// dU (36·C·K floats) up to this size is kept per thread (2.4 MB).
    static let threadMaxU = 600_000

    /// Whether `weight` gives each thread its own blocks and dU for `g` with `threads` threads (unless told
    /// otherwise): dU small, and at least four blocks a thread, as in the forward pass's rule, so that no
    /// thread waits long for another at the end (with fewer tiles V and dM fit the caches anyway).
    public static func perThread(_ g: Conv2dGeometry, threads: Int) -> Bool {
        let total = g.batch * ((g.outHeight + 3) / 4) * ((g.outWidth + 3) / 4)
        return 36 * g.inChannels * g.outChannels <= threadMaxU
            && total >= 4 * blockTiles(g, perThread: true) * max(1, threads)
    }

    /// Tiles per block for `g` in the chosen schedule.
    static func blockTiles(_ g: Conv2dGeometry, perThread: Bool) -> Int {
        let total = g.batch * ((g.outHeight + 3) / 4) * ((g.outWidth + 3) / 4)
        let budget = perThread ? threadBlockFloats : blockFloats
        return max(8, min(total, budget / (36 * (g.inChannels + g.outChannels))))
    }

    /// Scratch floats for `weight` with up to `threads` threads: in the shared schedule dU (36·C·K), one
    /// block's V and dM, and each thread's pth2swt_gemm_tn packing; per thread, each thread's dU, V, dM and
    /// packing.
    public static func scratchCount(
        _ g: Conv2dGeometry, tilesPerBlock: Int? = nil, threads: Int = 1,
        perThread: Bool? = nil
    ) -> Int {
        let own = perThread ?? self.perThread(g, threads: threads)
        let tiles = tilesPerBlock ?? blockTiles(g, perThread: own)
        let u = 36 * g.inChannels * g.outChannels, block = 36 * tiles * (g.inChannels + g.outChannels)
        let pack = pth2swt_gemm_tn_scratch_count(Int32(g.outChannels))
        return own ? max(1, threads) * (u + block + pack) : u + block + max(1, threads) * pack
    }

    /// dW [K, C, 3, 3] (torch's layout) from x [N, H, W, C] and dY [N, H, W, K], channels-last.
    /// `perThread` and `tilesPerBlock` override the schedule and its block size (tests).
    public static func weight(
        _ g: Conv2dGeometry, input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
        weightGradient dw: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, threads: Int = 1,
        tilesPerBlock: Int? = nil, perThread: Bool? = nil
    ) {
        precondition(WinogradNHWC.applies(to: g), "not a 3×3 stride-1 pad-1 convolution with channels in eights: \(g)")
        let th = (g.outHeight + 3) / 4, tw = (g.outWidth + 3) / 4
        let total = g.batch * th * tw
        let C = g.inChannels, K = g.outChannels
        let own = perThread ?? self.perThread(g, threads: threads)
        let tiles = tilesPerBlock ?? blockTiles(g, perThread: own)
        let uCount = 36 * C * K, packEach = pth2swt_gemm_tn_scratch_count(Int32(K))
        func transforms(
            _ start: Int, _ p: Int, _ lo: Int, _ hi: Int, _ v: UnsafeMutablePointer<Float>,
            _ m: UnsafeMutablePointer<Float>, input: Bool, gradient: Bool
        ) {
            if input {
                pth2swt_winograd_input_nhwc(
                    x, Int32(g.height), Int32(g.width), Int32(C), Int32(th), Int32(tw), start,
                    Int32(p), Int32(lo), Int32(hi), v)
            }
            if gradient {
                pth2swt_winograd_grad_output_nhwc(
                    dy, Int32(g.outHeight), Int32(g.outWidth), Int32(K), Int32(th),
                    Int32(tw), start, Int32(p), Int32(lo), Int32(hi), m)
            }
        }
        let du = scratch  // dU: the shared one, or part 0's, into which the others are added
        if own {
            // Thread part's scratch: dU, then V and dM of one block, then its packing.
            let each = uCount + 36 * tiles * (C + K) + packEach
            let blocks = (total + tiles - 1) / tiles
            let parts = max(1, min(threads, blocks))
            Parallel.run(parts, parts) { part in
                let u = scratch + part * each, v = u + uCount, m = v + 36 * tiles * C, pack = m + 36 * tiles * K
                var b = part, first = true
                while b < blocks {
                    let start = b * tiles, p = min(tiles, total - start)
                    transforms(start, p, 0, p, v, m, input: true, gradient: true)
                    for xi in 0..<36 {
                        pth2swt_gemm_tn(
                            C, Int32(K), p, v + xi * p * C, C, m + xi * p * K, K, u + xi * C * K, K,
                            first ? 0 : 1, pack)
                    }
                    first = false
                    b += parts
                }
            }
            // Thread order, whatever finished first.
            for part in 1..<parts { Elementwise.add(du, scratch + part * each, count: uCount, threads: threads) }
        } else {
            let v = scratch + uCount, m = v + 36 * tiles * C, packing = m + 36 * tiles * K
            var start = 0
            while start < total {
                let p = min(tiles, total - start), s = start, first = start == 0
                let pieces = (p + 7) / 8
                Parallel.dynamic(2 * pieces, threads) { i, _ in
                    let lo = (i % pieces) * 8, hi = min(p, lo + 8)
                    transforms(s, p, lo, hi, v, m, input: i < pieces, gradient: i >= pieces)
                }
                Parallel.dynamic(36, threads) { xi, worker in
                    pth2swt_gemm_tn(
                        C, Int32(K), p, v + xi * p * C, C, m + xi * p * K, K, du + xi * C * K, K, first ? 0 : 1,
                        packing + worker * packEach)
                }
                start += p
            }
        }
        nonisolated(unsafe) let dU = UnsafePointer(du)
        Parallel.ranges(K, threads: threads, grain: 8) { r in
            pth2swt_winograd_weights_grad(dU, Int32(K), Int32(C), Int32(r.lowerBound), Int32(r.upperBound), dw)
        }
    }
}

/// BatchNorm2d in training mode, channels-last: statistics over every position of the batch.
///
/// Sums run in double over fixed blocks of `blockRows` rows whose partial sums are added in block
/// order, so the result does not depend on the number of threads.
public enum BatchNormTrain {
    static let blockRows = 2048

    /// Σ over rows of x (or of (x − mean)² when `mean` is given), per channel, in double.
    static func channelSums(_ x: UnsafePointer<Float>, rows: Int, channels c: Int, mean: [Double]?, threads: Int)
        -> [Double]
    {
        let blocks = (rows + blockRows - 1) / blockRows
        var partial = [Double](repeating: 0, count: blocks * c)
        partial.withUnsafeMutableBufferPointer { p in
            nonisolated(unsafe) let p = p.baseAddress!
            withBaseAddress(mean) { m in
                nonisolated(unsafe) let m = m
                Parallel.dynamic(blocks, threads) { b, _ in
                    pth2swt_bn_sums(x, b * blockRows, min(rows, (b + 1) * blockRows), Int32(c), m, p + b * c)
                }
            }
        }
        var sum = [Double](repeating: 0, count: c)
        for b in 0..<blocks { for k in 0..<c { sum[k] += partial[b * c + k] } }
        return sum
    }

    /// y = (x − mean) / sqrt(var + eps) · γ + β with the batch's mean and biased variance (sums in Double),
    /// then + `residual` and ReLU when asked (torch's order: the block's addition after the norm, ReLU
    /// last; NaN passes ReLU as in torch). Running statistics move by `momentum` toward the mean and the
    /// unbiased variance, as torch's do. Saves mean and 1/sqrt(var + eps) per channel for `backward`.
    ///
    /// With `runningStatistics` (a BatchNorm in eval mode whose γ and β still train): the running mean
    /// and variance normalise instead, and neither they nor anything else is updated.
    public static func forward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, channels c: Int,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, runningMean: UnsafeMutablePointer<Float>,
        runningVar: UnsafeMutablePointer<Float>, momentum: Float, eps: Float,
        savedMean: UnsafeMutablePointer<Float>, savedInvStd: UnsafeMutablePointer<Float>,
        residual: UnsafePointer<Float>? = nil, relu: Bool = false, activation: Activation? = nil,
        runningStatistics: Bool = false, threads: Int = 1
    ) {
        precondition(rows > 0)
        let act = (activation ?? (relu ? .relu : .none)).code
        // y = (x − mean) · (invstd · γ) + β, torch's order: centring first keeps the precision that
        // x · scale + (β − mean · scale) loses to cancellation when the mean is large against the spread.
        var scale = [Float](repeating: 0, count: c)
        if runningStatistics {
            for k in 0..<c {
                let inv = 1 / (Double(runningVar[k]) + Double(eps)).squareRoot()
                savedMean[k] = runningMean[k]
                savedInvStd[k] = Float(inv)
                scale[k] = Float(inv) * gamma[k]
            }
        }
        let mean =
            runningStatistics
            ? [] : channelSums(x, rows: rows, channels: c, mean: nil, threads: threads).map { $0 / Double(rows) }
        let sq = runningStatistics ? [] : channelSums(x, rows: rows, channels: c, mean: mean, threads: threads)
        for k in 0..<c where !runningStatistics {
            let variance = sq[k] / Double(rows)
            let inv = 1 / (variance + Double(eps)).squareRoot()
            savedMean[k] = Float(mean[k])
            savedInvStd[k] = Float(inv)
            scale[k] = Float(inv) * gamma[k]
            let unbiased = rows > 1 ? sq[k] / Double(rows - 1) : variance
            runningMean[k] = (1 - momentum) * runningMean[k] + momentum * Float(mean[k])
            runningVar[k] = (1 - momentum) * runningVar[k] + momentum * Float(unbiased)
        }
        nonisolated(unsafe) let (x, y, beta, savedMean, residual) = (x, y, beta, UnsafePointer(savedMean), residual)
        scale.withUnsafeBufferPointer { sp in
            nonisolated(unsafe) let sp = sp.baseAddress!
            Parallel.ranges(rows, threads: threads, grain: 1024) { r in
                pth2swt_bn_apply(x, r.lowerBound, r.upperBound, Int32(c), savedMean, sp, beta, residual, act, y)
            }
        }
    }

    /// dx, dγ, dβ given dy and the forward pass's input and saved statistics:
    /// dβ = Σ dy, dγ = Σ dy·x̂, dx = γ·invstd·(dy − dβ/n − x̂·dγ/n). With `reluOutput` (the forward
    /// pass's output after the activation), dy is first masked in place by output > 0 (`activation`
    /// .relu6: 0 < output < 6): on return dy holds the
    /// gradient at the norm's output (and at the block's residual, which the same addition fed).
    /// With `runningStatistics` (the forward pass normalised with fixed statistics): dx = γ·invstd·dy,
    /// as torch's eval-mode BatchNorm backward.
    public static func backward(
        _ x: UnsafePointer<Float>, outputGradient dy: UnsafeMutablePointer<Float>,
        inputGradient dx: UnsafeMutablePointer<Float>,
        rows: Int, channels c: Int, gamma: UnsafePointer<Float>, savedMean: UnsafePointer<Float>,
        savedInvStd: UnsafePointer<Float>, gammaGradient: UnsafeMutablePointer<Float>,
        betaGradient: UnsafeMutablePointer<Float>,
        reluOutput: UnsafePointer<Float>? = nil, activation: Activation = .relu, runningStatistics: Bool = false,
        threads: Int = 1
    ) {
        let blocks = (rows + blockRows - 1) / blockRows
        let act = activation.code
        var partial = [Double](repeating: 0, count: 2 * blocks * c)
        partial.withUnsafeMutableBufferPointer { p in
            nonisolated(unsafe) let (p, x, dy, reluOutput, savedMean, savedInvStd) = (
                p.baseAddress!, x, dy, reluOutput, savedMean, savedInvStd
            )
            Parallel.dynamic(blocks, threads) { b, _ in
                pth2swt_bn_backward_sums(
                    x, dy, reluOutput, act, b * blockRows, min(rows, (b + 1) * blockRows), Int32(c), savedMean,
                    savedInvStd, p + 2 * b * c, p + (2 * b + 1) * c)
            }
        }
        var db = [Double](repeating: 0, count: c), dg = [Double](repeating: 0, count: c)
        for b in 0..<blocks {
            for k in 0..<c {
                db[k] += partial[2 * b * c + k]
                dg[k] += partial[(2 * b + 1) * c + k]
            }
        }
        let n = Double(rows)
        var coefficients = [Float](repeating: 0, count: 3 * c)  // a, mb, mg
        for k in 0..<c {
            gammaGradient[k] = Float(dg[k])
            betaGradient[k] = Float(db[k])
            coefficients[k] = gamma[k] * savedInvStd[k]
            coefficients[c + k] = runningStatistics ? 0 : Float(db[k] / n)
            coefficients[2 * c + k] = runningStatistics ? 0 : Float(dg[k] / n)
        }
        coefficients.withUnsafeBufferPointer { cp in
            nonisolated(unsafe) let (a, x, dy, dx, savedMean, savedInvStd) = (
                cp.baseAddress!, x, UnsafePointer(dy), dx, savedMean, savedInvStd
            )
            Parallel.ranges(rows, threads: threads, grain: 1024) { r in
                pth2swt_bn_backward_apply(
                    x, dy, r.lowerBound, r.upperBound, Int32(c), savedMean, savedInvStd, a, a + c, a + 2 * c, dx)
            }
        }
    }
}

public enum PoolBackward {
    /// Max pooling, channels-last, that also records where each maximum came from (the flat index into x):
    /// as in torch, the first maximum in window order, or the last NaN.
    public static func max2d(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int32>, batch: Int,
        channels c: Int, height: Int, width: Int, kernel: Int, stride: Int, padding: Int, threads: Int = 1
    ) {
        let oH = Pool.outputSize(height, kernel: kernel, stride: stride, padding: padding)
        let oW = Pool.outputSize(width, kernel: kernel, stride: stride, padding: padding)
        precondition(batch * height * width * c <= Int(Int32.max), "max pooling indices exceed Int32")
        nonisolated(unsafe) let (x, y, indices) = (x, y, indices)
        Parallel.ranges(batch * oH, threads: threads, grain: 1) { r in
            pth2swt_max_pool_indices_nhwc(
                x, Int32(height), Int32(width), Int32(c), Int32(kernel), Int32(stride), Int32(padding),
                Int32(oH), Int32(oW), r.lowerBound, r.upperBound, y, indices)
        }
    }

    /// dx = 0, then dx[indices[i]] += dy[i].
    public static func max2d(
        outputGradient dy: UnsafePointer<Float>, indices: UnsafePointer<Int32>, count: Int,
        inputGradient dx: UnsafeMutablePointer<Float>, inputCount: Int
    ) {
        dx.update(repeating: 0, count: inputCount)
        for i in 0..<count where indices[i] >= 0 { dx[Int(indices[i])] += dy[i] }
    }

    /// The global average pool's gradient: each position gets dy[n, c] / plane.
    public static func globalAverage(
        outputGradient dy: UnsafePointer<Float>, inputGradient dx: UnsafeMutablePointer<Float>,
        batch: Int, channels c: Int, plane: Int
    ) {
        for n in 0..<batch {
            for i in 0..<plane {
                let row = dx + (n * plane + i) * c
                for k in 0..<c { row[k] = dy[n * c + k] / Float(plane) }
            }
        }
    }

    /// ReLU's gradient from its output: dy where y > 0, else 0 (torch's threshold_backward), in place.
    public static func relu(output y: UnsafePointer<Float>, gradient dy: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count where !(y[i] > 0) { dy[i] = 0 }
    }
}

extension Elementwise {
    /// One torch.optim.SGD update of `count` elements in torch's order of operations (no fused
    /// multiply-adds): d = grad (negated if maximize) + weightDecay·w; with `buffer`, buffer = d on the
    /// first step, else buffer·momentum + keep·d, and d = d + momentum·buffer (nesterov) or buffer;
    /// then w += negLR·d.
    public static func sgdUpdate(
        _ w: UnsafeMutablePointer<Float>, gradient: UnsafePointer<Float>, buffer: UnsafeMutablePointer<Float>?,
        count: Int, weightDecay: Float, momentum: Float, keep: Float, negLR: Float, nesterov: Bool,
        first: Bool, maximize: Bool
    ) {
        pth2swt_sgd_update(
            w, gradient, buffer, count, weightDecay, momentum, keep, negLR, nesterov ? 1 : 0, first ? 1 : 0,
            maximize ? 1 : 0)
    }

    /// One AdamW update (torch's `_single_tensor_adamw` order, no fused multiply-adds); `vmax` with amsgrad.
    public static func adamwUpdate(
        _ w: UnsafeMutablePointer<Float>, gradient: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
        v: UnsafeMutablePointer<Float>, vmax: UnsafeMutablePointer<Float>?, count: Int, decay: Float,
        beta1: Float, oneMinusBeta1: Float, beta2: Float, oneMinusBeta2: Float,
        biasCorrection2Sqrt: Float, eps: Float, negStepSize: Float, maximize: Bool
    ) {
        pth2swt_adamw_update(
            w, gradient, m, v, vmax, count, decay, beta1, oneMinusBeta1, beta2, oneMinusBeta2,
            biasCorrection2Sqrt, eps, negStepSize, maximize ? 1 : 0)
    }

    /// a[i] += b[i], split across threads.
    public static func add(_ a: UnsafeMutablePointer<Float>, _ b: UnsafePointer<Float>, count n: Int, threads: Int = 1)
    {
        nonisolated(unsafe) let (a, b) = (a, b)
        Parallel.ranges(n, threads: threads, grain: 65536) { r in pth2swt_add_inplace(a, b, r.lowerBound, r.upperBound)
        }
    }
}

/// `body` with `array`'s base address, or nil when there is no array.
public func withBaseAddress<T, R>(_ array: [T]?, _ body: (UnsafePointer<T>?) -> R) -> R {
    guard let array else { return body(nil) }
    return array.withUnsafeBufferPointer { body($0.baseAddress) }
}

/// The naive twins of the gradients, NCHW, one sum at a time from the definitions.
enum GradReference {
    /// Max pooling with −inf padding and torch's argmax rule (the first maximum in window order, or the
    /// last NaN): (y, indices), indices flat into x [N, C, H, W].
    public static func maxPool(
        _ x: [Float], batch: Int, channels: Int, height: Int, width: Int, kernel: Int, stride: Int,
        padding: Int
    ) -> (y: [Float], indices: [Int]) {
        let oH = (height + 2 * padding - kernel) / stride + 1, oW = (width + 2 * padding - kernel) / stride + 1
        var y: [Float] = [], indices: [Int] = []
        for n in 0..<batch {
            for c in 0..<channels {
                for oy in 0..<oH {
                    for ox in 0..<oW {
                        var best = -Float.infinity, at = -1
                        for ky in 0..<kernel {
                            for kx in 0..<kernel {
                                let iy = oy * stride - padding + ky, ix = ox * stride - padding + kx
                                guard iy >= 0 && iy < height && ix >= 0 && ix < width else { continue }
                                let i = ((n * channels + c) * height + iy) * width + ix
                                if at < 0 || x[i] > best || x[i].isNaN { (best, at) = (x[i], i) }
                            }
                        }
                        y.append(best)
                        indices.append(at)
                    }
                }
            }
        }
        return (y, indices)
    }

    /// dx[n, c, iy, ix] = Σ dy[n, k, oy, ox] · w[k, c', ky, kx] over the windows that cover (iy, ix) and
    /// the output channels k of c's group (c' = c's index within its group).
    public static func convInput(_ g: Conv2dGeometry, outputGradient dy: [Float], weight w: [Float]) -> [Float] {
        var dx = [Float](repeating: 0, count: g.inputCount)
        let C = g.inChannels, cg = C / g.groups, og = g.outChannels / g.groups
        for n in 0..<g.batch {
            for k in 0..<g.outChannels {
                for oy in 0..<g.outHeight {
                    for ox in 0..<g.outWidth {
                        let d = dy[((n * g.outChannels + k) * g.outHeight + oy) * g.outWidth + ox]
                        let first = k / og * cg
                        for c in 0..<cg {
                            for ky in 0..<g.kernelH {
                                for kx in 0..<g.kernelW {
                                    let iy = oy * g.strideH - g.padH + ky, ix = ox * g.strideW - g.padW + kx
                                    guard iy >= 0 && iy < g.height && ix >= 0 && ix < g.width else { continue }
                                    dx[((n * C + first + c) * g.height + iy) * g.width + ix] +=
                                        d * w[((k * cg + c) * g.kernelH + ky) * g.kernelW + kx]
                                }
                            }
                        }
                    }
                }
            }
        }
        return dx
    }

    /// dw[k, c', ky, kx] = Σ over n, oy, ox of dy[n, k, oy, ox] · x[n, c, oy·s − p + ky, ox·s − p + kx], c
    /// the c'-th input channel of k's group.
    public static func convWeight(_ g: Conv2dGeometry, input x: [Float], outputGradient dy: [Float]) -> [Float] {
        var dw = [Float](repeating: 0, count: g.weightCount)
        let C = g.inChannels, cg = C / g.groups, og = g.outChannels / g.groups
        for k in 0..<g.outChannels {
            for c in 0..<cg {
                for ky in 0..<g.kernelH {
                    for kx in 0..<g.kernelW {
                        var s: Float = 0
                        let ch = k / og * cg + c
                        for n in 0..<g.batch {
                            for oy in 0..<g.outHeight {
                                for ox in 0..<g.outWidth {
                                    let iy = oy * g.strideH - g.padH + ky, ix = ox * g.strideW - g.padW + kx
                                    guard iy >= 0 && iy < g.height && ix >= 0 && ix < g.width else { continue }
                                    s +=
                                        dy[((n * g.outChannels + k) * g.outHeight + oy) * g.outWidth + ox]
                                        * x[((n * C + ch) * g.height + iy) * g.width + ix]
                                }
                            }
                        }
                        dw[((k * cg + c) * g.kernelH + ky) * g.kernelW + kx] = s
                    }
                }
            }
        }
        return dw
    }

    /// BatchNorm2d in eval mode with γ and β training, NCHW, per channel: y = (x − mean)/sqrt(var + eps)·γ
    /// + β with the given running statistics, dx = γ/sqrt(var + eps)·dy, dγ = Σ dy·x̂, dβ = Σ dy.
    static func batchNormRunningStatistics(
        _ x: [Float], outputGradient dy: [Float], batch: Int, channels: Int, plane: Int, gamma: [Float],
        beta: [Float], mean: [Float], variance: [Float], eps: Float
    ) -> (y: [Float], dx: [Float], dGamma: [Float], dBeta: [Float]) {
        var y = x, dx = x, dGamma = [Float](repeating: 0, count: channels), dBeta = dGamma
        for c in 0..<channels {
            let inv = 1 / (Double(variance[c]) + Double(eps)).squareRoot()
            var sdy = 0.0, sdyx = 0.0
            for n in 0..<batch {
                for i in 0..<plane {
                    let at = (n * channels + c) * plane + i
                    let xhat = (Double(x[at]) - Double(mean[c])) * inv
                    y[at] = Float(xhat * Double(gamma[c]) + Double(beta[c]))
                    dx[at] = Float(Double(gamma[c]) * inv * Double(dy[at]))
                    sdy += Double(dy[at])
                    sdyx += Double(dy[at]) * xhat
                }
            }
            dGamma[c] = Float(sdyx)
            dBeta[c] = Float(sdy)
        }
        return (y, dx, dGamma, dBeta)
    }

    /// BatchNorm2d's training forward and backward, NCHW, per channel: (y, dx, dγ, dβ, mean, biased var).
    public static func batchNorm(
        _ x: [Float], outputGradient dy: [Float], batch: Int, channels: Int, plane: Int, gamma: [Float], beta: [Float],
        eps: Float
    ) -> (y: [Float], dx: [Float], dGamma: [Float], dBeta: [Float], mean: [Float], variance: [Float]) {
        var y = x, dx = x, dGamma = [Float](repeating: 0, count: channels), dBeta = dGamma, means = dGamma,
            vars = dGamma
        let m = Double(batch * plane)
        for c in 0..<channels {
            var idx: [Int] = []
            for n in 0..<batch { for i in 0..<plane { idx.append((n * channels + c) * plane + i) } }
            let mean = idx.reduce(0.0) { $0 + Double(x[$1]) } / m
            let variance = idx.reduce(0.0) { $0 + (Double(x[$1]) - mean) * (Double(x[$1]) - mean) } / m
            let inv = 1 / (variance + Double(eps)).squareRoot()
            var sdy = 0.0, sdyx = 0.0
            for i in idx {
                let xhat = (Double(x[i]) - mean) * inv
                y[i] = Float(xhat * Double(gamma[c]) + Double(beta[c]))
                sdy += Double(dy[i])
                sdyx += Double(dy[i]) * xhat
            }
            for i in idx {
                let xhat = (Double(x[i]) - mean) * inv
                dx[i] = Float(Double(gamma[c]) * inv * (Double(dy[i]) - sdy / m - xhat * sdyx / m))
            }
            dGamma[c] = Float(sdyx)
            dBeta[c] = Float(sdy)
            means[c] = Float(mean)
            vars[c] = Float(variance)
        }
        return (y, dx, dGamma, dBeta, means, vars)
    }
}
