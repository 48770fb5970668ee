import CKernels

/// What a convolution's epilogue applies after the bias and residual.
public enum Activation: String, Sendable, CaseIterable {
    case none
    /// max(0, x), NaN kept (torch.nn.ReLU).
    case relu
    /// min(max(0, x), 6), NaN kept (torch.nn.ReLU6, a hardtanh).
    case relu6
    /// x · min(max(x + 3, 0), 6) / 6 (torch.nn.Hardswish). Inference's epilogues only: training runs it
    /// as a `LayerFunction`, whose backward pass needs the input.
    case hardswish
    /// x / (1 + e^−x) (torch.nn.SiLU), e^x by the kernels' Cephes polynomial. Inference's epilogues only.
    case silu
    /// x · Φ(x) (torch.nn.GELU(), exact), Φ by the kernels' erfc fit. Inference's epilogues only.
    case gelu

    /// The C kernels' code: 0 … 5.
    var code: Int32 {
        switch self {
        case .none: 0
        case .relu: 1
        case .relu6: 2
        case .hardswish: 3
        case .silu: 4
        case .gelu: 5
        }
    }

    /// The activations a training step can take into a convolution's or BatchNorm's pass: those whose
    /// gradient its output gives.
    public static let trainable: Set<Activation> = [.relu, .relu6]

    /// The activation of one value, as the kernels compute it (the twins use this).
    @inline(__always)
    public func apply(_ v: Float) -> Float {
        switch self {
        case .none: v
        case .relu: v < 0 ? 0 : v
        case .relu6: v < 0 ? 0 : (v > 6 ? 6 : v)
        case .hardswish: Pointwise.reference(.hardswish, v)
        case .silu: Pointwise.reference(.silu, v)
        case .gelu: Pointwise.reference(.gelu, v)
        }
    }
}

/// Depthwise convolution, channels-last: groups = in channels = out channels (MobileNetV2's 3×3 layers).
/// Each output channel is its input channel's window, so it is no GEMM: the C kernel runs eight channels
/// at a time with the taps inside, reading the input in place (memory-bound). Threads split the output
/// rows. `ConvKernel.reference` with `groups` is its twin in the tests.
public enum DepthwiseNHWC {
    /// Whether `forward` computes `g`: one input channel per group, one output channel per group.
    public static func applies(to g: Conv2dGeometry) -> Bool {
        g.isValid && g.groups == g.inChannels && g.outChannels == g.inChannels && g.dilationH == 1 && g.dilationW == 1
    }

    /// torch's weight [C, 1, kh, kw] as the kernel takes it: [kh·kw][C], tap-major.
    public static func pack(_ weight: [Float], channels c: Int, kernelH kh: Int, kernelW kw: Int) -> [Float] {
        precondition(weight.count == c * kh * kw, "weight is not [\(c), 1, \(kh), \(kw)]")
        let taps = kh * kw
        var out = [Float](repeating: 0, count: weight.count)
        for ch in 0..<c {
            for t in 0..<taps { out[t * c + ch] = weight[ch * taps + t] }
        }
        return out
    }

    /// y [N, oH, oW, C] = activation(x ⊛ w + bias). `packedWeight` is `pack`'s result.
    public static func forward(
        _ g: Conv2dGeometry, input: UnsafePointer<Float>, packedWeight w: UnsafePointer<Float>,
        bias: UnsafePointer<Float>?,
        activation: Activation, output: UnsafeMutablePointer<Float>, threads: Int = 1
    ) {
        precondition(applies(to: g), "not a depthwise convolution: \(g)")
        var shape = g.cShape
        let rows = g.batch * g.outHeight
        let parts = max(1, min(threads, rows))
        let act = activation.code
        withUnsafePointer(to: &shape) { shape in
            nonisolated(unsafe) let shape = shape
            Parallel.run(parts, parts) { part in
                pth2swt_depthwise_nhwc(
                    shape, input, w, bias, act, output, rows * part / parts, rows * (part + 1) / parts)
            }
        }
    }
}

/// Grouped convolution (1 < groups, not depthwise: ResNeXt's 3×3 layers), channels-last: each group's
/// input channels are gathered into a contiguous NHWC buffer, convolved by `ConvNHWC` with that group's
/// packed filters, and its outputs scattered into their channels of y. Bias and activation go in the
/// epilogue; a residual is added after the last group.
public struct GroupedConvWeight: Sendable {
    public let groups: Int
    /// Per group, its filters packed for `ConvNHWC`.
    public let perGroup: [PackedConvWeight]

    /// From torch's weight [K, C/groups, kh, kw].
    public init(_ weight: [Float], outChannels k: Int, inChannels c: Int, groups: Int, kernelH kh: Int, kernelW kw: Int)
    {
        precondition(groups > 0 && k % groups == 0 && c % groups == 0, "\(groups) groups do not divide \(c) → \(k)")
        let kg = k / groups, cg = c / groups, each = kg * cg * kh * kw
        precondition(weight.count == groups * each, "weight is not [\(k), \(cg), \(kh), \(kw)]")
        self.groups = groups
        perGroup = (0..<groups).map { g in
            PackedConvWeight(
                Array(weight[(g * each)..<((g + 1) * each)]), outChannels: kg, inChannels: cg, kernelH: kh,
                kernelW: kw)
        }
    }
}

public enum GroupedNHWC {
    /// Scratch floats `forward` needs for `g`: one group's input and output, and the convolution's.
    public static func scratchCount(_ g: Conv2dGeometry, threads: Int) -> Int {
        g.batch * g.height * g.width * (g.inChannels / g.groups) + g.batch * g.outHeight * g.outWidth
            * (g.outChannels / g.groups)
            + ConvNHWC.scratchCount(threads: threads)
    }

    public static func forward(
        _ g: Conv2dGeometry, input: UnsafePointer<Float>, weight: GroupedConvWeight, bias: UnsafePointer<Float>?,
        residual: UnsafePointer<Float>?, activation: Activation, output: UnsafeMutablePointer<Float>,
        scratch: UnsafeMutablePointer<Float>, threads: Int = 1
    ) {
        precondition(
            g.isValid && g.groups == weight.groups && g.dilationH == 1 && g.dilationW == 1, "weight does not fit \(g)")
        let cg = g.inChannels / g.groups, kg = g.outChannels / g.groups
        let positions = g.batch * g.height * g.width, outPositions = g.batch * g.outHeight * g.outWidth
        let xg = scratch, yg = scratch + positions * cg, work = yg + outPositions * kg
        var sub = g
        sub.inChannels = cg
        sub.outChannels = kg
        sub.groups = 1
        let C = g.inChannels, K = g.outChannels
        for grp in 0..<g.groups {
            for p in 0..<positions { (xg + p * cg).update(from: input + p * C + grp * cg, count: cg) }
            let b = bias.map { $0 + grp * kg }
            // The activation waits for the residual when there is one.
            ConvNHWC.forward(
                sub, input: xg, weight: weight.perGroup[grp], bias: b, residual: nil,
                activation: residual == nil ? activation : .none, output: yg, scratch: work, threads: threads)
            for p in 0..<outPositions { (output + p * K + grp * kg).update(from: yg + p * kg, count: kg) }
        }
        if let residual {
            let n = outPositions * K
            for i in 0..<n { output[i] = activation.apply(output[i] + residual[i]) }
        }
    }
}

extension PoolNHWC {
    /// Output cell i's window along a side of `size` pooled to `out`: ⌊i·size/out⌋ ..< ⌈(i+1)·size/out⌉.
    @inline(__always)
    static func adaptiveWindow(_ i: Int, _ size: Int, _ out: Int) -> Range<Int> {
        (i * size / out)..<(((i + 1) * size + out - 1) / out)
    }

    /// torch's adaptive_avg_pool2d to outHeight × outWidth, [N, H, W, C] → [N, oH, oW, C]: output cell
    /// (i, j) averages rows ⌊i·H/oH⌋ ..< ⌈(i+1)·H/oH⌉ and the same for columns.
    public static func adaptiveAverage(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, channels: Int, height: Int, width: Int,
        outHeight: Int, outWidth: Int
    ) {
        for n in 0..<batch {
            let image = x + n * height * width * channels
            for i in 0..<outHeight {
                let rows = adaptiveWindow(i, height, outHeight)
                for j in 0..<outWidth {
                    let cols = adaptiveWindow(j, width, outWidth)
                    let out = y + ((n * outHeight + i) * outWidth + j) * channels
                    out.update(repeating: 0, count: channels)
                    for iy in rows {
                        for ix in cols {
                            let row = image + (iy * width + ix) * channels
                            for c in 0..<channels { out[c] += row[c] }
                        }
                    }
                    let count = Float(rows.count * cols.count)
                    for c in 0..<channels { out[c] /= count }
                }
            }
        }
    }
}

extension PoolBackward {
    /// `PoolNHWC.adaptiveAverage`'s gradient: each output cell's dy divided equally among the cells of
    /// its window, summed where windows overlap.
    public static func adaptiveAverage(
        outputGradient dy: UnsafePointer<Float>, inputGradient dx: UnsafeMutablePointer<Float>, batch: Int,
        channels: Int,
        height: Int, width: Int, outHeight: Int, outWidth: Int
    ) {
        dx.update(repeating: 0, count: batch * height * width * channels)
        for n in 0..<batch {
            let image = dx + n * height * width * channels
            for i in 0..<outHeight {
                let rows = PoolNHWC.adaptiveWindow(i, height, outHeight)
                for j in 0..<outWidth {
                    let cols = PoolNHWC.adaptiveWindow(j, width, outWidth)
                    let g = dy + ((n * outHeight + i) * outWidth + j) * channels
                    let count = Float(rows.count * cols.count)
                    for iy in rows {
                        for ix in cols {
                            let row = image + (iy * width + ix) * channels
                            for c in 0..<channels { row[c] += g[c] / count }
                        }
                    }
                }
            }
        }
    }
}

extension Pool {
    /// The reference: NCHW, each output cell's mean from the definition.
    static func adaptiveAverageReference(
        _ x: [Float], batch: Int, channels: Int, height: Int, width: Int, outHeight: Int, outWidth: Int
    ) -> [Float] {
        var out = [Float](repeating: 0, count: batch * channels * outHeight * outWidth)
        for nc in 0..<(batch * channels) {
            for i in 0..<outHeight {
                let y0 = Int((Double(i * height) / Double(outHeight)).rounded(.down))
                let y1 = Int((Double((i + 1) * height) / Double(outHeight)).rounded(.up))
                for j in 0..<outWidth {
                    let x0 = Int((Double(j * width) / Double(outWidth)).rounded(.down))
                    let x1 = Int((Double((j + 1) * width) / Double(outWidth)).rounded(.up))
                    var s: Float = 0
                    for iy in y0..<y1 { for ix in x0..<x1 { s += x[(nc * height + iy) * width + ix] } }
                    out[(nc * outHeight + i) * outWidth + j] = s / Float((y1 - y0) * (x1 - x0))
                }
            }
        }
        return out
    }
}

/// The depthwise convolution's gradients, channels-last, eight channels at a time. Each has the grouped
/// `GradReference` as its twin in the tests.
public enum DepthwiseBackward {
    typealias V8 = SIMD8<Float>

    @inline(__always) static func load(_ p: UnsafePointer<Float>) -> V8 {
        UnsafeRawPointer(p).loadUnaligned(as: V8.self)
    }
    @inline(__always) static func store(_ v: V8, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V8.self)
    }

    /// `body(tap, iy, ix)` for each tap of output (oy, ox)'s window that lies inside the image (tap =
    /// ky·kw + kx).
    @inline(__always)
    static func forEachTap(
        _ g: Conv2dGeometry, _ oy: Int, _ ox: Int, _ body: (_ tap: Int, _ iy: Int, _ ix: Int) -> Void
    ) {
        for ky in 0..<g.kernelH {
            let iy = oy * g.strideH - g.padH + ky
            guard iy >= 0 && iy < g.height else { continue }
            for kx in 0..<g.kernelW {
                let ix = ox * g.strideW - g.padW + kx
                guard ix >= 0 && ix < g.width else { continue }
                body(ky * g.kernelW + kx, iy, ix)
            }
        }
    }

    /// d[c] += a[c] · b[c] for c in `range`, eight at a time.
    @inline(__always)
    static func multiplyAdd(
        _ d: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ range: Range<Int>
    ) {
        var c = range.lowerBound
        while c + 8 <= range.upperBound {
            store(load(d + c) + load(a + c) * load(b + c), d + c)
            c += 8
        }
        while c < range.upperBound {
            d[c] += a[c] * b[c]
            c += 1
        }
    }

    /// dX [N, H, W, C] = Σ over the windows that read each input of dY · w. `packedWeight` is
    /// `DepthwiseNHWC.pack`'s [kh·kw][C]. Threads take whole images.
    public static func data(
        _ g: Conv2dGeometry, outputGradient dy: UnsafePointer<Float>, packedWeight w: UnsafePointer<Float>,
        inputGradient dx: UnsafeMutablePointer<Float>, threads: Int = 1
    ) {
        precondition(DepthwiseNHWC.applies(to: g), "not a depthwise convolution: \(g)")
        let C = g.inChannels, H = g.height, W = g.width, oH = g.outHeight, oW = g.outWidth
        nonisolated(unsafe) let (dy, w, dx) = (dy, w, dx)
        Parallel.run(g.batch, max(1, min(threads, g.batch))) { n in
            let out = dx + n * H * W * C
            out.update(repeating: 0, count: H * W * C)
            for oy in 0..<oH {
                for ox in 0..<oW {
                    let src = dy + ((n * oH + oy) * oW + ox) * C
                    forEachTap(g, oy, ox) { tap, iy, ix in multiplyAdd(out + (iy * W + ix) * C, src, w + tap * C, 0..<C)
                    }
                }
            }
        }
    }

    /// dW as torch lays it out, [C, 1, kh, kw]: Σ over every output position of dY · the input it read.
    /// Threads split the channels in eights, so each channel's sum runs in the same order whatever the
    /// thread count.
    public static func weight(
        _ g: Conv2dGeometry, input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
        weightGradient dw: UnsafeMutablePointer<Float>, threads: Int = 1
    ) {
        precondition(DepthwiseNHWC.applies(to: g), "not a depthwise convolution: \(g)")
        let C = g.inChannels, H = g.height, W = g.width, oH = g.outHeight, oW = g.outWidth
        let taps = g.kernelH * g.kernelW
        var packed = [Float](repeating: 0, count: taps * C)
        packed.withUnsafeMutableBufferPointer { pw in
            nonisolated(unsafe) let (x, dy, p) = (x, dy, pw.baseAddress!)
            let chunks = (C + 7) / 8
            Parallel.ranges(chunks, threads: threads, grain: 1) { r in
                let c0 = r.lowerBound * 8, c1 = min(C, r.upperBound * 8)
                for n in 0..<g.batch {
                    for oy in 0..<oH {
                        for ox in 0..<oW {
                            let src = dy + ((n * oH + oy) * oW + ox) * C
                            forEachTap(g, oy, ox) { tap, iy, ix in
                                multiplyAdd(p + tap * C, src, x + ((n * H + iy) * W + ix) * C, c0..<c1)
                            }
                        }
                    }
                }
            }
        }
        for c in 0..<C { for t in 0..<taps { dw[c * taps + t] = packed[t * C + c] } }
    }
}
