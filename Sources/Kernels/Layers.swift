import CKernels

#if canImport(Glibc)
    import Glibc
#endif

/// Batch norm at inference, and folding it into the convolution before it.
public enum BatchNorm {
    /// y = (x - mean) / sqrt(var + eps) · weight + bias, per channel of NCHW `x` (in place allowed).
    public static func inference(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, channels: Int, plane: Int,
        weight: [Float], bias: [Float], mean: [Float], variance: [Float], eps: Float
    ) {
        for n in 0..<batch {
            for c in 0..<channels {
                let scale = weight[c] / (variance[c] + eps).squareRoot()
                let shift = bias[c] - mean[c] * scale
                let base = (n * channels + c) * plane
                for i in 0..<plane { y[base + i] = x[base + i] * scale + shift }
            }
        }
    }

    /// The reference: torch's formula, element by element, in the order it is written.
    static func reference(
        _ x: [Float], batch: Int, channels: Int, plane: Int,
        weight: [Float], bias: [Float], mean: [Float], variance: [Float], eps: Float
    ) -> [Float] {
        var y = x
        for n in 0..<batch {
            for c in 0..<channels {
                for i in 0..<plane {
                    let k = (n * channels + c) * plane + i
                    y[k] = (x[k] - mean[c]) / (variance[c] + eps).squareRoot() * weight[c] + bias[c]
                }
            }
        }
        return y
    }

    /// The convolution weight [O, …] and bias [O] that compute conv → BN in one convolution:
    /// w' = w · s, b' = bias - mean · s (+ convBias · s), s = gamma / sqrt(var + eps).
    public static func fold(
        convWeight: [Float], convBias: [Float]?, outChannels: Int,
        weight: [Float], bias: [Float], mean: [Float], variance: [Float], eps: Float
    ) -> (weight: [Float], bias: [Float]) {
        let per = convWeight.count / outChannels
        var w = convWeight
        var b = [Float](repeating: 0, count: outChannels)
        for o in 0..<outChannels {
            let s = weight[o] / (variance[o] + eps).squareRoot()
            for i in 0..<per { w[o * per + i] *= s }
            b[o] = bias[o] + ((convBias?[o] ?? 0) - mean[o]) * s
        }
        return (w, b)
    }
}

/// The pooling references (the fast kernels are in `PoolNHWC`).
public enum Pool {
    /// The output size of a window along one axis: ⌊(n + 2·padding − kernel) / stride⌋ + 1 (torch's floor
    /// mode), 0 when the padded input is shorter than the window (torch refuses it). The fast kernels, both
    /// runtimes and `Network.shapes` use this one rule; the reference twins write the definition out on
    /// their own.
    public static func outputSize(_ n: Int, kernel: Int, stride: Int, padding: Int) -> Int {
        n + 2 * padding < kernel ? 0 : (n + 2 * padding - kernel) / stride + 1
    }

    /// The reference: every window position, padding included as -inf; a NaN in the window wins, as in
    /// torch.
    static func max2dReference(
        _ x: [Float], batch: Int, channels: Int, height: Int, width: Int, kernel: Int, stride: Int, padding: Int
    ) -> [Float] {
        let oH = (height + 2 * padding - kernel) / stride + 1
        let oW = (width + 2 * padding - kernel) / stride + 1
        var out = [Float](repeating: 0, count: batch * channels * oH * oW)
        for nc in 0..<(batch * channels) {
            for oy in 0..<oH {
                for ox in 0..<oW {
                    var m = -Float.infinity
                    for ky in 0..<kernel {
                        for kx in 0..<kernel {
                            let iy = oy * stride - padding + ky, ix = ox * stride - padding + kx
                            let v =
                                (iy >= 0 && iy < height && ix >= 0 && ix < width)
                                ? x[(nc * height + iy) * width + ix] : -Float.infinity
                            if v > m || v.isNaN { m = v }
                        }
                    }
                    out[(nc * oH + oy) * oW + ox] = m
                }
            }
        }
        return out
    }
}

public enum LinearKernel {
    /// y[N, O] = x[N, I] · W[O, I]ᵀ + b[O], on the micro-kernel (W packed as the I × O operand each call: the
    /// training head's forward, where W changes every step).
    public static func forward(
        _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        _ y: UnsafeMutablePointer<Float>, batch: Int, inFeatures: Int, outFeatures: Int
    ) {
        let w = PackedConvWeight(
            Array(UnsafeBufferPointer(start: weight, count: outFeatures * inFeatures)),
            outChannels: outFeatures, inChannels: inFeatures, kernelH: 1, kernelW: 1)
        w.packed.withUnsafeBufferPointer {
            pth2swt_gemm_rows(
                batch, Int32(outFeatures), inFeatures, x, inFeatures, $0.baseAddress!, y, outFeatures, nil)
        }
        if let bias {
            for n in 0..<batch { for o in 0..<outFeatures { y[n * outFeatures + o] += bias[o] } }
        }
    }

    static func reference(_ x: [Float], weight: [Float], bias: [Float]?, batch: Int, inFeatures: Int, outFeatures: Int)
        -> [Float]
    {
        var y = [Float](repeating: 0, count: batch * outFeatures)
        for n in 0..<batch {
            for o in 0..<outFeatures {
                var s: Float = 0
                for i in 0..<inFeatures { s += x[n * inFeatures + i] * weight[o * inFeatures + i] }
                y[n * outFeatures + o] = s + (bias?[o] ?? 0)
            }
        }
        return y
    }
}

public enum Elementwise {
    /// Softmax over each row of [rows, columns], computed in Double after subtracting the row's max.
    public static func softmax(_ x: [Float], rows: Int, columns: Int) -> [Float] {
        var out = [Float](repeating: 0, count: x.count)
        for r in 0..<rows {
            let row = x[(r * columns)..<((r + 1) * columns)]
            let m = row.max() ?? 0
            var sum = 0.0
            for v in row { sum += exp(Double(v - m)) }
            for (i, v) in row.enumerated() { out[r * columns + i] = Float(exp(Double(v - m)) / sum) }
        }
        return out
    }
}
