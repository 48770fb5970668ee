import CKernels

/// Channels-last kernels: activations are [N, H, W, C], so each output position's channels are one
/// contiguous row. A convolution is then a GEMM whose rows are output positions: im2col copies whole
/// channel runs, the micro-kernel's epilogue adds bias and the block's residual and applies ReLU, and
/// Winograd's transforms load and store eight channels at a time. `ConvKernel.reference` (NCHW, one sum
/// at a time) is the twin the tests compare against, through `Layout`.
public enum Layout {
    /// [N, C, H, W] → [N, H, W, C], the positions split across threads.
    public static func nhwc(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, channels: Int, plane: Int,
        threads: Int = 1
    ) {
        let total = batch * plane
        let parts = total >= 1 << 14 ? max(1, threads) : 1
        Parallel.run(parts, parts) { part in
            var i = total * part / parts
            let end = total * (part + 1) / parts
            while i < end {
                let n = i / plane, first = i % plane, count = min(end - i, plane - first)
                let src = x + n * channels * plane + first, dst = y + i * channels
                if channels == 3 {
                    // An image's planes (the network input): one pass that writes each pixel's three
                    // values together, not three strided passes over the output.
                    let s0 = src, s1 = src + plane, s2 = src + 2 * plane
                    for j in 0..<count {
                        dst[3 * j] = s0[j]
                        dst[3 * j + 1] = s1[j]
                        dst[3 * j + 2] = s2[j]
                    }
                } else {
                    for c in 0..<channels {
                        let s = src + c * plane
                        for j in 0..<count { dst[j * channels + c] = s[j] }
                    }
                }
                i += count
            }
        }
    }

    /// [N, H, W, C] → [N, C, H, W].
    public static func nchw(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, channels: Int, plane: Int
    ) {
        for n in 0..<batch {
            let src = x + n * channels * plane, dst = y + n * channels * plane
            for i in 0..<plane {
                for c in 0..<channels { dst[c * plane + i] = src[i * channels + c] }
            }
        }
    }

    public static func nhwc(_ x: [Float], batch: Int, channels: Int, plane: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: x.count) { y, n in
            x.withUnsafeBufferPointer {
                nhwc($0.baseAddress!, y.baseAddress!, batch: batch, channels: channels, plane: plane)
            }
            n = x.count
        }
    }

    public static func nchw(_ x: [Float], batch: Int, channels: Int, plane: Int) -> [Float] {
        [Float](unsafeUninitializedCapacity: x.count) { y, n in
            x.withUnsafeBufferPointer {
                nchw($0.baseAddress!, y.baseAddress!, batch: batch, channels: channels, plane: plane)
            }
            n = x.count
        }
    }
}

/// A convolution's weights packed for `ConvNHWC.forward`: the (kh·kw·C)×K matrix of taps by output
/// channel, in panels of 16 output channels.
public struct PackedConvWeight: Sendable {
    public let outChannels: Int, inChannels: Int, kernelH: Int, kernelW: Int
    public let packed: AlignedFloats

    /// From a torch weight [K, C, kh, kw].
    public init(_ weight: [Float], outChannels k: Int, inChannels c: Int, kernelH kh: Int, kernelW kw: Int) {
        precondition(weight.count == k * c * kh * kw, "weight is not [\(k), \(c), \(kh), \(kw)]")
        outChannels = k
        inChannels = c
        kernelH = kh
        kernelW = kw
        packed = Self.pack(weight, outChannels: k, inChannels: c, taps: kh * kw, transposed: false)
    }

    /// Filters [K, C, taps] as a packed B operand of the micro-kernel: the depth×K matrix whose column k
    /// is filter k in (ky, kx, c) order (the forward GEMM), or `transposed`, the K×depth matrix (the
    /// input gradient's dY · Wᵀ).
    static func pack(_ weight: [Float], outChannels k: Int, inChannels c: Int, taps: Int, transposed: Bool)
        -> AlignedFloats
    {
        let depth = taps * c
        let (rows, columns) = transposed ? (k, depth) : (depth, k)
        var b = [Float](repeating: 0, count: depth * k)
        pth2swt_rearrange_filters(weight, Int32(k), Int32(c), Int32(taps), transposed ? 1 : 0, &b)
        return AlignedFloats(count: pth2swt_packed_b_count(Int32(rows), Int32(columns))) { p in
            b.withUnsafeBufferPointer { src in
                pth2swt_pack_b(Int32(rows), Int32(columns), src.baseAddress!, Int32(columns), p.baseAddress!)
            }
        }
    }
}

extension Conv2dGeometry {
    /// The geometry as the C kernels take it (dilation 1 and one group, which `ConvNHWC.applies` checks).
    var cShape: pth2swt_conv_shape {
        pth2swt_conv_shape(
            batch: Int32(batch), height: Int32(height), width: Int32(width), channels: Int32(inChannels),
            out_channels: Int32(outChannels), kernel_h: Int32(kernelH), kernel_w: Int32(kernelW),
            stride_h: Int32(strideH), stride_w: Int32(strideW), pad_h: Int32(padH), pad_w: Int32(padW),
            out_height: Int32(outHeight), out_width: Int32(outWidth))
    }
}

public enum ConvNHWC {
    /// Whether `forward` computes `g` (dilation 1, one group; everything a torchvision ResNet has).
    public static func applies(to g: Conv2dGeometry) -> Bool {
        g.isValid && g.groups == 1 && g.dilationH == 1 && g.dilationW == 1
    }

    /// Scratch floats `forward` needs with `threads` threads.
    public static func scratchCount(threads: Int) -> Int { max(1, threads) * pth2swt_conv_nhwc_scratch_count() }

    /// y = x ⊛ w + bias (+ residual), then ReLU if asked. `x` [N, H, W, C], `y` and `residual`
    /// [N, oH, oW, K]. Threads split the output positions, or the output channels when there are few
    /// positions.
    public static func forward(
        _ g: Conv2dGeometry, input: UnsafePointer<Float>, weight: PackedConvWeight, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>?, relu: Bool, output: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>, threads: Int = 1
    ) {
        forward(
            g, input: input, weight: weight, bias: bias, residual: residual, activation: relu ? .relu : .none,
            output: output, scratch: scratch, threads: threads)
    }

    /// The same with any `Activation` in the epilogue (ReLU6 for MobileNetV2).
    public static func forward(
        _ g: Conv2dGeometry, input: UnsafePointer<Float>, weight: PackedConvWeight, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>?, activation: Activation, output: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>, threads: Int = 1
    ) {
        let relu = activation.code
        precondition(
            applies(to: g) && weight.outChannels == g.outChannels && weight.inChannels == g.inChannels
                && weight.kernelH == g.kernelH && weight.kernelW == g.kernelW, "weight does not fit \(g)")
        var shape = g.cShape
        let rows = g.batch * g.outHeight * g.outWidth
        let panels = (g.outChannels + 15) / 16
        let each = pth2swt_conv_nhwc_scratch_count()
        // Enough rows for every thread to fill its micro-kernels: split rows (each thread packs only
        // its own); else split the output channels (each thread packs the same rows).
        let byRows = rows >= threads * 48 || panels < threads
        let parts = max(1, min(threads, byRows ? (rows + 5) / 6 : panels))
        weight.packed.withUnsafeBufferPointer { w in
            withUnsafePointer(to: &shape) { shape in
                nonisolated(unsafe) let w = w.baseAddress!, shape = shape
                if byRows && parts > 1 {
                    // About four pieces per thread, whole micro-blocks, taken as threads come free.
                    let piece = max(96, (rows / (4 * parts) + 5) / 6 * 6)
                    Parallel.dynamic((rows + piece - 1) / piece, parts) { i, worker in
                        pth2swt_conv_nhwc(
                            shape, input, w, bias, residual, relu, output, i * piece,
                            min(rows, (i + 1) * piece), 0, Int32(panels), scratch + worker * each)
                    }
                    return
                }
                // Few rows (or one thread): each thread packs the same rows once, for its own fixed share
                // of the channels.
                Parallel.run(parts, parts) { part in
                    let lo = panels * part / parts, hi = panels * (part + 1) / parts
                    guard hi > lo else { return }
                    pth2swt_conv_nhwc(
                        shape, input, w, bias, residual, relu, output, 0, rows, Int32(lo), Int32(hi),
                        scratch + part * each)
                }
            }
        }
    }
}

/// Winograd F(4×4, 3×3) for NHWC: the input transform writes V[ξ][tile][C], 36 GEMMs make
/// M[ξ][tile][K] = V[ξ] · U[ξ], and the output transform writes each tile's 4×4 outputs with bias,
/// residual and ReLU. Tiles go in blocks sized so that V and M stay in the last-level cache.
public enum WinogradNHWC {
    /// 3×3, stride 1, padding 1, and channel counts the eight-wide transforms take.
    public static func applies(to g: Conv2dGeometry) -> Bool {
        Winograd.applies(to: g) && g.inChannels % 8 == 0 && g.outChannels % 8 == 0
    }

    /// The default rule for when Winograd is worth it: when there are enough tiles to keep its 36 products
    /// busy (measured: at batch 1 the 7×7 stage's 4 tiles lose to im2col + GEMM, 64 tiles win). Inference
    /// and training both ask this.
    public static func preferred(_ g: Conv2dGeometry) -> Bool {
        applies(to: g) && g.batch * ((g.outHeight + 3) / 4) * ((g.outWidth + 3) / 4) >= 16
    }

    /// U[ξ] (C×K) for each of the 36 points, packed for the GEMM: [36][K/16 panels][C][16].
    public static func transformWeights(_ w: [Float], outChannels k: Int, inChannels c: Int) -> AlignedFloats {
        AlignedFloats(count: transformedCount(outChannels: k, inChannels: c)) {
            transformWeights(w, outChannels: k, inChannels: c, into: $0)
        }
    }

    /// Floats of `transformWeights`' result.
    public static func transformedCount(outChannels k: Int, inChannels c: Int) -> Int {
        36 * pth2swt_packed_b_count(Int32(c), Int32(k))
    }

    /// `transformWeights` into a caller-owned buffer of at least `transformedCount` floats (training
    /// transforms changing weights every step), threads taking panels of 16 output channels. With
    /// `flipped`, `w` is [c, k, 3, 3] and the filters transformed are those of its input-gradient
    /// convolution (each w[i][o] turned 180°, the channels swapped), without writing them out first.
    public static func transformWeights(
        _ w: [Float], outChannels k: Int, inChannels c: Int, flipped: Bool = false,
        into packed: UnsafeMutableBufferPointer<Float>, threads: Int = 1
    ) {
        precondition(w.count == k * c * 9, "weight has \(w.count) values, not \(k)·\(c)·9")
        precondition(packed.count >= transformedCount(outChannels: k, inChannels: c))
        let nr = Int(PTH2SWT_GEMM_NR), panels = (k + nr - 1) / nr
        w.withUnsafeBufferPointer { w in
            nonisolated(unsafe) let w = w, p = packed
            Parallel.ranges(panels, threads: threads, grain: 2) { r in
                pth2swt_winograd_weights_packed(
                    w.baseAddress!, Int32(k), Int32(c), flipped ? 1 : 0, Int32(r.lowerBound),
                    Int32(r.upperBound), p.baseAddress!)
            }
        }
    }

    /// How the tiles are split into blocks and blocks across threads.
    public enum Schedule: Equatable, Sendable {
        /// Blocks of `tiles` tiles, one after another; within a block the threads split each stage (the
        /// transforms by tile, the 36 GEMMs by ξ). For few tiles or a large U, which all threads share.
        case shared(tiles: Int)
        /// Blocks of `tiles` tiles dealt to the threads, each running all three stages of its blocks in
        /// its own scratch, so V and M stay in that core's cache. For many tiles and a small U.
        case perThread(tiles: Int)
    }

    /// Shared blocks: V and M together about this many floats (8 MB), or as large as U where U is larger
    /// (every block reads all of U, so for the deep stages fewer, larger blocks move less memory).
    static let sharedBlockFloats = 2_000_000
    /// Per-thread blocks: V and M together about this many floats (512 KB, a core's L2).
    static let threadBlockFloats = 131_072
    /// U up to this many floats (1 MB) is read by every per-thread block from the shared cache.
    static let threadBlockMaxU = 262_144

    /// The schedule `forward` uses by default.
    public static func schedule(_ g: Conv2dGeometry, threads: Int) -> Schedule {
        let total = g.batch * ((g.outHeight + 3) / 4) * ((g.outWidth + 3) / 4)
        let perTile = 36 * (g.inChannels + g.outChannels), u = 36 * g.inChannels * g.outChannels
        // Per-thread blocks are whole passes of the micro-kernel (its rows are tiles): a block of 28 tiles
        // costs five passes, as one of 30 does, so the work a thread gets is counted in passes.
        let mr = Int(PTH2SWT_GEMM_MR)
        let small = max(mr, min(96, threadBlockFloats / perTile) / mr * mr)
        if u <= threadBlockMaxU && total >= 4 * small * max(1, threads) { return .perThread(tiles: small) }
        // Fewer tiles (ResNet's 56×56 stage at batch 1 on two threads: 196): smaller per-thread blocks,
        // at least three per thread, rather than one shared block whose V and M (3.6 MB there) leave the
        // cores' caches and pass between them. There, blocks of 24 tiles make 8 blocks of four passes and
        // one of a single pass (17 and 16 passes a thread) where blocks of 28 made 7 of five (20 and 15:
        // one thread waited for the other 50–80 µs a convolution).
        let fewer = total / (3 * max(1, threads))
        if u <= threadBlockMaxU && threads > 1 && fewer >= 8 {
            return .perThread(tiles: max(mr, min(small, fewer) / mr * mr))
        }
        return .shared(tiles: max(1, min(total, max(sharedBlockFloats, u) / perTile)))
    }

    public static func scratchCount(_ g: Conv2dGeometry, threads: Int, schedule: Schedule? = nil) -> Int {
        switch schedule ?? self.schedule(g, threads: threads) {
        case .shared(let tiles): 36 * tiles * (g.inChannels + g.outChannels)
        case .perThread(let tiles): max(1, threads) * 36 * tiles * (g.inChannels + g.outChannels)
        }
    }

    public static func forward(
        _ g: Conv2dGeometry, input: UnsafePointer<Float>, transformedWeight u: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, relu: Bool,
        output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, threads: Int = 1,
        schedule: Schedule? = nil
    ) {
        forward(
            g, input: input, transformedWeight: u, bias: bias, residual: residual, activation: relu ? .relu : .none,
            output: output, scratch: scratch, threads: threads, schedule: schedule)
    }

    /// The same with any `Activation` in the output transform.
    public static func forward(
        _ g: Conv2dGeometry, input: UnsafePointer<Float>, transformedWeight u: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?, residual: UnsafePointer<Float>?, activation: Activation,
        output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, threads: Int = 1,
        schedule: Schedule? = nil
    ) {
        precondition(applies(to: g), "not a 3×3 stride-1 pad-1 convolution with channels in eights: \(g)")
        let th = (g.outHeight + 3) / 4, tw = (g.outWidth + 3) / 4
        let total = g.batch * th * tw
        let C = g.inChannels, K = g.outChannels
        let uEach = pth2swt_packed_b_count(Int32(C), Int32(K))
        let relu = activation.code
        func transformIn(_ start: Int, _ p: Int, _ lo: Int, _ hi: Int, _ v: UnsafeMutablePointer<Float>) {
            pth2swt_winograd_input_nhwc(
                input, Int32(g.height), Int32(g.width), Int32(C), Int32(th), Int32(tw), start,
                Int32(p), Int32(lo), Int32(hi), v)
        }
        // Product ξ, prefetching the start of U[next] (the product this thread runs after it) as it ends.
        func gemm(_ p: Int, _ xi: Int, next: Int, _ v: UnsafeMutablePointer<Float>, _ m: UnsafeMutablePointer<Float>) {
            pth2swt_gemm_rows(
                p, Int32(K), C, v + xi * p * C, C, u + xi * uEach, m + xi * p * K, K,
                next < 36 ? u + next * uEach : nil)
        }
        func transformOut(_ start: Int, _ p: Int, _ lo: Int, _ hi: Int, _ m: UnsafeMutablePointer<Float>) {
            pth2swt_winograd_output_nhwc(
                m, Int32(p), Int32(K), Int32(g.outHeight), Int32(g.outWidth), Int32(th), Int32(tw),
                start, Int32(lo), Int32(hi), bias, residual, relu, output)
        }
        switch schedule ?? self.schedule(g, threads: threads) {
        case .perThread(let tiles):
            let blocks = (total + tiles - 1) / tiles
            Parallel.dynamic(blocks, threads) { b, worker in
                let v = scratch + worker * 36 * tiles * (C + K), m = v + 36 * tiles * C
                let start = b * tiles, p = min(tiles, total - start)
                transformIn(start, p, 0, p, v)
                for xi in 0..<36 { gemm(p, xi, next: xi + 1, v, m) }
                transformOut(start, p, 0, p, m)
            }
        case .shared(let tiles):
            var start = 0
            while start < total {
                let p = min(tiles, total - start)
                let v = scratch, m = scratch + 36 * p * C
                let s = start
                // Transforms in pieces of 8 tiles, the 36 products one by one, taken as threads come free
                // (so a thread's next product is most likely ξ + threads).
                let pieces = (p + 7) / 8
                Parallel.dynamic(pieces, threads) { i, _ in transformIn(s, p, i * 8, min(p, i * 8 + 8), v) }
                Parallel.dynamic(36, threads) { xi, _ in gemm(p, xi, next: xi + max(1, threads), v, m) }
                Parallel.dynamic(pieces, threads) { i, _ in transformOut(s, p, i * 8, min(p, i * 8 + 8), m) }
                start += p
            }
        }
    }
}

public enum PoolNHWC {
    /// Max pooling with -inf padding, square window (NaN wins, as in torch).
    public static func max2d(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, channels: Int,
        height: Int, width: Int, kernel: Int, stride: Int, padding: Int, threads: Int = 1
    ) {
        let oH = Pool.outputSize(height, kernel: kernel, stride: stride, padding: padding)
        let oW = Pool.outputSize(width, kernel: kernel, stride: stride, padding: padding)
        let rows = batch * oH
        let parts = max(1, min(threads, rows))
        Parallel.run(parts, parts) { part in
            pth2swt_max_pool_nhwc(
                x, Int32(height), Int32(width), Int32(channels), Int32(kernel), Int32(stride),
                Int32(padding), Int32(oH), Int32(oW), rows * part / parts, rows * (part + 1) / parts, y)
        }
    }

    /// The mean over H and W of each image and channel: [N, H, W, C] → [N, C].
    public static func globalAverage(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, channels: Int, plane: Int
    ) {
        for n in 0..<batch {
            let out = y + n * channels
            out.update(repeating: 0, count: channels)
            for i in 0..<plane {
                let row = x + (n * plane + i) * channels
                for c in 0..<channels { out[c] += row[c] }
            }
            for c in 0..<channels { out[c] /= Float(plane) }
        }
    }
}
