import COpenBLAS

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
    public static func reference(
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

public enum Pool {
    /// Max pooling NCHW with -inf padding (torch's MaxPool2d), square window. Separable: the max over
    /// each row window first (for every input row), then over the column window of those.
    public static func max2d(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int, channels: Int,
        height: Int, width: Int, kernel: Int, stride: Int, padding: Int, threads: Int = 1
    ) {
        let oH = (height + 2 * padding - kernel) / stride + 1
        let oW = (width + 2 * padding - kernel) / stride + 1
        Parallel.run(batch * channels, threads) { nc in
            withUnsafeTemporaryAllocation(of: Float.self, capacity: height * oW) { rows in
                let r = rows.baseAddress!
                let src = x + nc * height * width
                let dst = y + nc * oH * oW
                for iy in 0..<height {
                    let row = src + iy * width
                    let out = r + iy * oW
                    if kernel == 3 && stride == 2 && padding == 1 && width >= 2 {
                        // ResNet's pool: columns 2·ox - 1 … 2·ox + 1, the first clipped at the edge.
                        out[0] = Swift.max(row[0], row[1])
                        var ox = 1
                        while ox < oW && 2 * ox + 1 < width {
                            let a = row[2 * ox - 1], b = row[2 * ox], c = row[2 * ox + 1]
                            let m = a > b ? a : b
                            out[ox] = m > c ? m : c
                            ox += 1
                        }
                        while ox < oW {
                            let x0 = 2 * ox - 1, x1 = Swift.min(width, 2 * ox + 2)
                            var m = -Float.infinity
                            for ix in x0..<x1 { m = Swift.max(m, row[ix]) }
                            out[ox] = m
                            ox += 1
                        }
                        continue
                    }
                    for ox in 0..<oW {
                        let x0 = max(0, ox * stride - padding), x1 = min(width, ox * stride - padding + kernel)
                        var m = -Float.infinity
                        for ix in x0..<x1 { m = Swift.max(m, row[ix]) }
                        out[ox] = m
                    }
                }
                for oy in 0..<oH {
                    let y0 = max(0, oy * stride - padding), y1 = min(height, oy * stride - padding + kernel)
                    let out = dst + oy * oW
                    out.update(from: r + y0 * oW, count: oW)
                    for iy in (y0 + 1)..<max(y0 + 1, y1) {
                        let row = r + iy * oW
                        for ox in 0..<oW { out[ox] = out[ox] > row[ox] ? out[ox] : row[ox] }
                    }
                }
            }
        }
    }

    /// The reference: every window position, padding included as -inf; a NaN in the window wins, as in
    /// torch.
    public static func max2dReference(
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
                            let v = (iy >= 0 && iy < height && ix >= 0 && ix < width) ? x[(nc * height + iy) * width + ix] : -Float.infinity
                            if v > m || v.isNaN { m = v }
                        }
                    }
                    out[(nc * oH + oy) * oW + ox] = m
                }
            }
        }
        return out
    }

    /// AdaptiveAvgPool2d((1, 1)): the mean of each plane.
    public static func globalAverage(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, planes: Int, plane: Int) {
        for p in 0..<planes {
            var s: Float = 0
            let src = x + p * plane
            for i in 0..<plane { s += src[i] }
            y[p] = s / Float(plane)
        }
    }
}

public enum LinearKernel {
    /// y[N, O] = x[N, I] · W[O, I]ᵀ + b[O] (OpenBLAS sgemm).
    public static func forward(
        _ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
        _ y: UnsafeMutablePointer<Float>, batch: Int, inFeatures: Int, outFeatures: Int
    ) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(batch), Int32(outFeatures), Int32(inFeatures),
                    1, x, Int32(inFeatures), weight, Int32(inFeatures), 0, y, Int32(outFeatures))
        if let bias {
            for n in 0..<batch { for o in 0..<outFeatures { y[n * outFeatures + o] += bias[o] } }
        }
    }

    public static func reference(_ x: [Float], weight: [Float], bias: [Float]?, batch: Int, inFeatures: Int, outFeatures: Int) -> [Float] {
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
    /// y = max(x + r, 0): the residual join of a ResNet block.
    public static func addReLU(
        _ x: UnsafePointer<Float>, _ r: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int, threads: Int = 1
    ) {
        let parts = count >= 1 << 16 ? threads : 1
        Parallel.run(parts, parts) { part in
            let lo = count * part / parts, hi = count * (part + 1) / parts
            for i in lo..<hi { y[i] = max(x[i] + r[i], 0) }
        }
    }

    public static func relu(_ x: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { x[i] = max(x[i], 0) }
    }

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
