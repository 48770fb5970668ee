import COpenBLAS

/// The geometry of a 2-D convolution, NCHW, as torch.nn.Conv2d describes it.
public struct Conv2dGeometry: Sendable, Equatable, CustomStringConvertible {
    public var batch: Int
    public var inChannels: Int
    public var height: Int
    public var width: Int
    public var outChannels: Int
    public var kernelH: Int
    public var kernelW: Int
    public var strideH: Int
    public var strideW: Int
    public var padH: Int
    public var padW: Int
    public var dilationH: Int
    public var dilationW: Int
    public var groups: Int

    public init(
        batch: Int, inChannels: Int, height: Int, width: Int, outChannels: Int,
        kernel: (Int, Int), stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0),
        dilation: (Int, Int) = (1, 1), groups: Int = 1
    ) {
        self.batch = batch
        self.inChannels = inChannels
        self.height = height
        self.width = width
        self.outChannels = outChannels
        (kernelH, kernelW) = kernel
        (strideH, strideW) = stride
        (padH, padW) = padding
        (dilationH, dilationW) = dilation
        self.groups = groups
    }

    public var outHeight: Int { (height + 2 * padH - dilationH * (kernelH - 1) - 1) / strideH + 1 }
    public var outWidth: Int { (width + 2 * padW - dilationW * (kernelW - 1) - 1) / strideW + 1 }
    /// Elements of the input [N, C, H, W], the weight [O, C/groups, kH, kW] and the output [N, O, oH, oW].
    public var inputCount: Int { batch * inChannels * height * width }
    public var weightCount: Int { outChannels * (inChannels / groups) * kernelH * kernelW }
    public var outputCount: Int { batch * outChannels * outHeight * outWidth }
    /// Multiply-adds × 2.
    public var flops: Int { 2 * outputCount * (inChannels / groups) * kernelH * kernelW }

    public var isValid: Bool {
        batch > 0 && inChannels > 0 && outChannels > 0 && groups > 0 && inChannels % groups == 0
            && outChannels % groups == 0 && kernelH > 0 && kernelW > 0 && strideH > 0 && strideW > 0
            && padH >= 0 && padW >= 0 && dilationH > 0 && dilationW > 0 && outHeight > 0 && outWidth > 0
    }

    public var description: String {
        "conv \(batch)x\(inChannels)x\(height)x\(width) → \(outChannels), k\(kernelH)x\(kernelW) s\(strideH)x\(strideW) p\(padH)x\(padW) d\(dilationH)x\(dilationW) g\(groups)"
    }
}

/// What happens to each output element after the sum: `+ bias[oc]`, then `max(0, ·)` if `relu`.
public struct Epilogue {
    public var bias: UnsafePointer<Float>?
    public var relu: Bool
    public init(bias: UnsafePointer<Float>? = nil, relu: Bool = false) {
        self.bias = bias
        self.relu = relu
    }
}

public enum ConvKernel {
    /// Scratch floats the fast kernel needs for `g` (the im2col matrix of one image and group).
    public static func scratchCount(_ g: Conv2dGeometry) -> Int {
        if isPointwise(g) { return 0 }
        return (g.inChannels / g.groups) * g.kernelH * g.kernelW * g.outHeight * g.outWidth
    }

    static func isPointwise(_ g: Conv2dGeometry) -> Bool {
        g.kernelH == 1 && g.kernelW == 1 && g.strideH == 1 && g.strideW == 1 && g.padH == 0 && g.padW == 0
    }

    /// The fast convolution: im2col (skipped for 1×1, stride-1 convolutions) then OpenBLAS sgemm per
    /// image and group, then the epilogue in one pass over the output.
    ///
    /// `input` [N, C, H, W], `weight` [O, C/groups, kH, kW], `output` [N, O, oH, oW], all contiguous.
    /// `scratch` holds at least `scratchCount(g)` floats.
    public static func forward(
        _ g: Conv2dGeometry, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, epilogue: Epilogue = Epilogue(), scratch: UnsafeMutablePointer<Float>?,
        threads: Int = 1
    ) {
        precondition(g.isValid, "invalid convolution: \(g)")
        let cg = g.inChannels / g.groups, og = g.outChannels / g.groups
        let oHW = g.outHeight * g.outWidth, HW = g.height * g.width
        let k = cg * g.kernelH * g.kernelW
        let pointwise = isPointwise(g)
        for n in 0..<g.batch {
            for grp in 0..<g.groups {
                let x = input + (n * g.inChannels + grp * cg) * HW
                let b: UnsafePointer<Float>
                if pointwise {
                    b = x
                } else {
                    im2col(g, x, scratch!, threads: threads)
                    b = UnsafePointer(scratch!)
                }
                let w = weight + grp * og * k
                let y = output + (n * g.outChannels + grp * og) * oHW
                // y[og, oHW] = w[og, k] · b[k, oHW], output channels split across threads.
                let parts = min(threads, og)
                Parallel.run(parts, parts) { part in
                    let lo = og * part / parts, hi = og * (part + 1) / parts
                    guard hi > lo else { return }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(hi - lo), Int32(oHW), Int32(k),
                                1, w + lo * k, Int32(k), b, Int32(oHW), 0, y + lo * oHW, Int32(oHW))
                    apply(epilogue, y + lo * oHW, channels: hi - lo, firstChannel: grp * og + lo, plane: oHW)
                }
            }
        }
    }

    /// Rows (c, ky, kx), columns (oy, ox); zero where the window falls in the padding.
    static func im2col(_ g: Conv2dGeometry, _ x: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>, threads: Int = 1) {
        let cg = g.inChannels / g.groups
        let oH = g.outHeight, oW = g.outWidth
        Parallel.run(cg, threads) { c in
            var row = c * g.kernelH * g.kernelW
            let plane = x + c * g.height * g.width
            for ky in 0..<g.kernelH {
                for kx in 0..<g.kernelW {
                    let dst = col + row * oH * oW
                    let dy = ky * g.dilationH - g.padH, dx = kx * g.dilationW - g.padW
                    // Columns ox whose input x = ox·s + dx lies in [0, W).
                    let oxLo = max(0, (-dx + g.strideW - 1) / g.strideW)
                    let oxHi = min(oW, (g.width - dx + g.strideW - 1) / g.strideW)
                    for oy in 0..<oH {
                        let iy = oy * g.strideH + dy
                        let d = dst + oy * oW
                        if iy < 0 || iy >= g.height || oxLo >= oxHi {
                            d.update(repeating: 0, count: oW)
                            continue
                        }
                        if oxLo > 0 { d.update(repeating: 0, count: oxLo) }
                        if oxHi < oW { (d + oxHi).update(repeating: 0, count: oW - oxHi) }
                        let src = plane + iy * g.width + dx
                        if g.strideW == 1 {
                            (d + oxLo).update(from: src + oxLo, count: oxHi - oxLo)
                        } else {
                            for ox in oxLo..<oxHi { d[ox] = src[ox * g.strideW] }
                        }
                    }
                    row += 1
                }
            }
        }
    }

    @inline(__always)
    static func apply(_ e: Epilogue, _ y: UnsafeMutablePointer<Float>, channels: Int, firstChannel: Int, plane: Int) {
        guard e.bias != nil || e.relu else { return }
        typealias V8 = SIMD8<Float>
        let zero = V8()
        for c in 0..<channels {
            let bias = e.bias.map { $0[firstChannel + c] } ?? 0
            let vb = V8(repeating: bias)
            let p = y + c * plane
            let raw = UnsafeMutableRawPointer(p)
            var i = 0
            while i + 8 <= plane {
                var v = raw.loadUnaligned(fromByteOffset: i * 4, as: V8.self) + vb
                if e.relu { v.replace(with: zero, where: v .< zero) }
                raw.storeBytes(of: v, toByteOffset: i * 4, as: V8.self)
                i += 8
            }
            while i < plane {
                let v = p[i] + bias
                p[i] = e.relu && v < 0 ? 0 : v
                i += 1
            }
        }
    }

    /// The naive reference: one output element at a time, straight from the definition. Tests compare
    /// `forward` against it.
    public static func reference(
        _ g: Conv2dGeometry, input: [Float], weight: [Float], bias: [Float]? = nil, relu: Bool = false
    ) -> [Float] {
        precondition(g.isValid && input.count == g.inputCount && weight.count == g.weightCount)
        let cg = g.inChannels / g.groups, og = g.outChannels / g.groups
        var out = [Float](repeating: 0, count: g.outputCount)
        for n in 0..<g.batch {
            for o in 0..<g.outChannels {
                let grp = o / og
                for oy in 0..<g.outHeight {
                    for ox in 0..<g.outWidth {
                        var sum: Float = 0
                        for c in 0..<cg {
                            for ky in 0..<g.kernelH {
                                let iy = oy * g.strideH - g.padH + ky * g.dilationH
                                guard iy >= 0 && iy < g.height else { continue }
                                for kx in 0..<g.kernelW {
                                    let ix = ox * g.strideW - g.padW + kx * g.dilationW
                                    guard ix >= 0 && ix < g.width else { continue }
                                    let xv = input[((n * g.inChannels + grp * cg + c) * g.height + iy) * g.width + ix]
                                    let wv = weight[((o * cg + c) * g.kernelH + ky) * g.kernelW + kx]
                                    sum += xv * wv
                                }
                            }
                        }
                        if let bias { sum += bias[o] }
                        if relu { sum = max(sum, 0) }
                        out[((n * g.outChannels + o) * g.outHeight + oy) * g.outWidth + ox] = sum
                    }
                }
            }
        }
        return out
    }
}

/// The kernels split their work across threads themselves (output channels, Winograd's 36 products,
/// transforms by channel); OpenBLAS runs single-threaded inside each piece, which measured faster here
/// than its own pool on these matrix shapes.
public enum KernelThreads {
    /// Keeps OpenBLAS's own pool at one thread. Call once before running kernels.
    public static func singleThreadedBLAS() { openblas_set_num_threads(1) }
}
