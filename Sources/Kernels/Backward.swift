import CKernels
import COpenBLAS

/// Gradients of the channels-last layers, for training. Each has a naive NCHW twin in `GradReference`
/// (straight from the definitions) that tests compare against, and Tests/Reference/make_grad_golden.py
/// checks the pair against torch's autograd.
public enum ConvBackward {
    /// The weight as the B operand of dCols = dY · Wᵀ: the K×(kh·kw·C) matrix whose row k is output
    /// channel k's filter in (ky, kx, c) order, packed in panels of 16 columns.
    public static func packTransposed(_ weight: [Float], outChannels k: Int, inChannels c: Int, kernelH kh: Int, kernelW kw: Int) -> [Float] {
        precondition(weight.count == k * c * kh * kw, "weight is not [\(k), \(c), \(kh), \(kw)]")
        let depth = kh * kw * c
        var b = [Float](repeating: 0, count: k * depth)
        for o in 0..<k {
            for i in 0..<c {
                for t in 0..<(kh * kw) { b[o * depth + t * c + i] = weight[(o * c + i) * kh * kw + t] }
            }
        }
        var p = [Float](repeating: 0, count: pth2swt_packed_b_count(Int32(k), Int32(depth)))
        b.withUnsafeBufferPointer { src in
            p.withUnsafeMutableBufferPointer { pth2swt_pack_b(Int32(k), Int32(depth), src.baseAddress!, Int32(depth), $0.baseAddress!) }
        }
        return p
    }

    /// Output positions per block: a block's columns (rows × kh·kw·C floats) are each thread's scratch.
    static let blockRows = 96

    /// Scratch floats for `data` and `weight` with `threads` threads.
    public static func scratchCount(_ g: Conv2dGeometry, threads: Int) -> Int {
        let depth = g.kernelH * g.kernelW * g.inChannels
        return max(1, threads) * (blockRows * depth + depth * g.outChannels)
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
        let each = scratchCount(g, threads: 1)
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
                    pth2swt_gemm_rows(mc, Int32(depth), K, dy + r0 * K, K, wt, cols, depth)
                    pth2swt_col2im_add_nhwc(shape, cols, r0, mc, dx)
                    r0 += mc
                }
            }
        }
    }

    /// dW [K, C, kh, kw] (torch's layout) = Σ over output positions of im2col(x)ᵀ · dY, by OpenBLAS sgemm
    /// (the reduction runs over the positions, which its packing handles well). Threads take ranges of
    /// positions into their own sums, added at the end.
    public static func weight(
        _ g: Conv2dGeometry, input x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
        weightGradient dw: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>, threads: Int = 1
    ) {
        precondition(ConvNHWC.applies(to: g), "unsupported convolution: \(g)")
        var s = g.cShape
        let C = g.inChannels, K = g.outChannels, taps = g.kernelH * g.kernelW, depth = taps * C
        let total = g.batch * g.outHeight * g.outWidth
        let each = scratchCount(g, threads: 1)
        let pointwise = g.kernelH == 1 && g.kernelW == 1 && g.strideH == 1 && g.strideW == 1 && g.padH == 0 && g.padW == 0
        let parts = max(1, min(threads, (total + blockRows - 1) / blockRows))
        withUnsafePointer(to: &s) { shape in
            nonisolated(unsafe) let shape = shape
            Parallel.run(parts, parts) { part in
                let cols = scratch + part * each, sum = cols + blockRows * depth  // sum: depth × K
                sum.update(repeating: 0, count: depth * K)
                var r0 = total * part / parts
                let end = total * (part + 1) / parts
                while r0 < end {
                    let mc = min(blockRows, end - r0)
                    let a: UnsafePointer<Float>
                    if pointwise {
                        a = x + r0 * C
                    } else {
                        pth2swt_im2col_nhwc(shape, x, r0, mc, cols)
                        a = UnsafePointer(cols)
                    }
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(depth), Int32(K), Int32(mc), 1, a, Int32(depth),
                                dy + r0 * K, Int32(K), 1, sum, Int32(K))
                    r0 += mc
                }
            }
        }
        // Sum the parts and transpose (ky, kx, c) × K into [K, C, kh, kw].
        for o in 0..<K {
            for c in 0..<C {
                for t in 0..<taps {
                    var v: Float = 0
                    for part in 0..<parts { v += scratch[part * each + blockRows * depth + (t * C + c) * K + o] }
                    dw[(o * C + c) * taps + t] = v
                }
            }
        }
    }
}

/// BatchNorm2d in training mode, channels-last: statistics over every position of the batch.
public enum BatchNormTrain {
    /// y = (x − mean) / sqrt(var + eps) · γ + β with the batch's mean and biased variance (sums in Double);
    /// running statistics move by `momentum` toward the mean and the unbiased variance, as torch's do.
    /// Saves mean and 1/sqrt(var + eps) per channel for `backward`.
    public static func forward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, channels c: Int,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, runningMean: UnsafeMutablePointer<Float>,
        runningVar: UnsafeMutablePointer<Float>, momentum: Float, eps: Float,
        savedMean: UnsafeMutablePointer<Float>, savedInvStd: UnsafeMutablePointer<Float>
    ) {
        precondition(rows > 0)
        var sum = [Double](repeating: 0, count: c), sq = [Double](repeating: 0, count: c)
        for r in 0..<rows {
            let row = x + r * c
            for k in 0..<c { sum[k] += Double(row[k]) }
        }
        for k in 0..<c { sum[k] /= Double(rows) }
        for r in 0..<rows {
            let row = x + r * c
            for k in 0..<c {
                let d = Double(row[k]) - sum[k]
                sq[k] += d * d
            }
        }
        // y = (x − mean) · (invstd · γ) + β, torch's order: centring first keeps the precision that
        // x · scale + (β − mean · scale) loses to cancellation when the mean is large against the spread.
        var scale = [Float](repeating: 0, count: c)
        for k in 0..<c {
            let mean = sum[k], variance = sq[k] / Double(rows)
            let inv = 1 / (variance + Double(eps)).squareRoot()
            savedMean[k] = Float(mean)
            savedInvStd[k] = Float(inv)
            scale[k] = Float(inv) * gamma[k]
            let unbiased = rows > 1 ? sq[k] / Double(rows - 1) : variance
            runningMean[k] = (1 - momentum) * runningMean[k] + momentum * Float(mean)
            runningVar[k] = (1 - momentum) * runningVar[k] + momentum * Float(unbiased)
        }
        for r in 0..<rows {
            let src = x + r * c, dst = y + r * c
            for k in 0..<c { dst[k] = (src[k] - savedMean[k]) * scale[k] + beta[k] }
        }
    }

    /// dx, dγ, dβ given dy and the forward pass's input and saved statistics:
    /// dβ = Σ dy, dγ = Σ dy·x̂, dx = γ·invstd·(dy − dβ/n − x̂·dγ/n).
    public static func backward(
        _ x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>, inputGradient dx: UnsafeMutablePointer<Float>,
        rows: Int, channels c: Int, gamma: UnsafePointer<Float>, savedMean: UnsafePointer<Float>,
        savedInvStd: UnsafePointer<Float>, gammaGradient: UnsafeMutablePointer<Float>, betaGradient: UnsafeMutablePointer<Float>
    ) {
        var db = [Double](repeating: 0, count: c), dg = [Double](repeating: 0, count: c)
        for r in 0..<rows {
            let xr = x + r * c, gr = dy + r * c
            for k in 0..<c {
                let g = Double(gr[k])
                db[k] += g
                dg[k] += g * (Double(xr[k]) - Double(savedMean[k])) * Double(savedInvStd[k])
            }
        }
        let n = Double(rows)
        var a = [Float](repeating: 0, count: c), mb = [Float](repeating: 0, count: c), mg = [Float](repeating: 0, count: c)
        for k in 0..<c {
            gammaGradient[k] = Float(dg[k])
            betaGradient[k] = Float(db[k])
            a[k] = gamma[k] * savedInvStd[k]
            mb[k] = Float(db[k] / n)
            mg[k] = Float(dg[k] / n)
        }
        for r in 0..<rows {
            let xr = x + r * c, gr = dy + r * c, out = dx + r * c
            for k in 0..<c {
                let xhat = (xr[k] - savedMean[k]) * savedInvStd[k]
                out[k] = a[k] * (gr[k] - mb[k] - xhat * mg[k])
            }
        }
    }
}

public enum PoolBackward {
    /// Max pooling, channels-last, that also records where each maximum came from (the flat index into x):
    /// as in torch, the first maximum in window order, or the last NaN.
    public static func max2d(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int32>, batch: Int,
        channels c: Int, height: Int, width: Int, kernel: Int, stride: Int, padding: Int
    ) {
        let oH = (height + 2 * padding - kernel) / stride + 1, oW = (width + 2 * padding - kernel) / stride + 1
        precondition(batch * height * width * c <= Int(Int32.max), "max pooling indices exceed Int32")
        for n in 0..<batch {
            for oy in 0..<oH {
                for ox in 0..<oW {
                    let out = ((n * oH + oy) * oW + ox) * c
                    for k in 0..<c {
                        var best = -Float.infinity, at = -1
                        for ky in 0..<kernel {
                            let iy = oy * stride - padding + ky
                            guard iy >= 0 && iy < height else { continue }
                            for kx in 0..<kernel {
                                let ix = ox * stride - padding + kx
                                guard ix >= 0 && ix < width else { continue }
                                let i = ((n * height + iy) * width + ix) * c + k
                                if at < 0 || x[i] > best || x[i].isNaN {
                                    best = x[i]
                                    at = i
                                }
                            }
                        }
                        y[out + k] = best
                        indices[out + k] = Int32(at)
                    }
                }
            }
        }
    }

    /// dx = 0, then dx[indices[i]] += dy[i].
    public static func max2d(outputGradient dy: UnsafePointer<Float>, indices: UnsafePointer<Int32>, count: Int,
                             inputGradient dx: UnsafeMutablePointer<Float>, inputCount: Int) {
        dx.update(repeating: 0, count: inputCount)
        for i in 0..<count where indices[i] >= 0 { dx[Int(indices[i])] += dy[i] }
    }

    /// The global average pool's gradient: each position gets dy[n, c] / plane.
    public static func globalAverage(outputGradient dy: UnsafePointer<Float>, inputGradient dx: UnsafeMutablePointer<Float>,
                                     batch: Int, channels c: Int, plane: Int) {
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

/// The naive twins of the gradients, NCHW, one sum at a time from the definitions.
public enum GradReference {
    /// dx[n, c, iy, ix] = Σ dy[n, k, oy, ox] · w[k, c, ky, kx] over the windows that cover (iy, ix).
    public static func convInput(_ g: Conv2dGeometry, outputGradient dy: [Float], weight w: [Float]) -> [Float] {
        var dx = [Float](repeating: 0, count: g.inputCount)
        let C = g.inChannels
        for n in 0..<g.batch { for k in 0..<g.outChannels { for oy in 0..<g.outHeight { for ox in 0..<g.outWidth {
            let d = dy[((n * g.outChannels + k) * g.outHeight + oy) * g.outWidth + ox]
            for c in 0..<C { for ky in 0..<g.kernelH { for kx in 0..<g.kernelW {
                let iy = oy * g.strideH - g.padH + ky, ix = ox * g.strideW - g.padW + kx
                guard iy >= 0 && iy < g.height && ix >= 0 && ix < g.width else { continue }
                dx[((n * C + c) * g.height + iy) * g.width + ix] += d * w[((k * C + c) * g.kernelH + ky) * g.kernelW + kx]
            } } }
        } } } }
        return dx
    }

    /// dw[k, c, ky, kx] = Σ over n, oy, ox of dy[n, k, oy, ox] · x[n, c, oy·s − p + ky, ox·s − p + kx].
    public static func convWeight(_ g: Conv2dGeometry, input x: [Float], outputGradient dy: [Float]) -> [Float] {
        var dw = [Float](repeating: 0, count: g.weightCount)
        let C = g.inChannels
        for k in 0..<g.outChannels { for c in 0..<C { for ky in 0..<g.kernelH { for kx in 0..<g.kernelW {
            var s: Float = 0
            for n in 0..<g.batch { for oy in 0..<g.outHeight { for ox in 0..<g.outWidth {
                let iy = oy * g.strideH - g.padH + ky, ix = ox * g.strideW - g.padW + kx
                guard iy >= 0 && iy < g.height && ix >= 0 && ix < g.width else { continue }
                s += dy[((n * g.outChannels + k) * g.outHeight + oy) * g.outWidth + ox]
                    * x[((n * C + c) * g.height + iy) * g.width + ix]
            } } }
            dw[((k * C + c) * g.kernelH + ky) * g.kernelW + kx] = s
        } } } }
        return dw
    }

    /// BatchNorm2d's training forward and backward, NCHW, per channel: (y, dx, dγ, dβ, mean, biased var).
    public static func batchNorm(
        _ x: [Float], outputGradient dy: [Float], batch: Int, channels: Int, plane: Int, gamma: [Float], beta: [Float], eps: Float
    ) -> (y: [Float], dx: [Float], dGamma: [Float], dBeta: [Float], mean: [Float], variance: [Float]) {
        var y = x, dx = x, dGamma = [Float](repeating: 0, count: channels), dBeta = dGamma, means = dGamma, vars = dGamma
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
