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

    public static func isPointwise(_ g: Conv2dGeometry) -> Bool {
        g.kernelH == 1 && g.kernelW == 1 && g.strideH == 1 && g.strideW == 1 && g.padH == 0 && g.padW == 0
    }

    /// The naive reference: one output element at a time, straight from the definition. Tests compare
    /// `forward` against it.
    static func reference(
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
