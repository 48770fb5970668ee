/// torch.nn.LayerNorm over the channels of channels-last values ([N, H, W, C] as rows of C floats) and
/// a per-channel scale (ConvNeXt's layer scale): the kernels of `LayerNorm` and `LayerScale`
/// (NN/Functions). Rows split across threads; the parameter gradients split by channel blocks, each
/// summed in row order, so they do not depend on the thread count. Memory-bound loops over contiguous
/// rows, with explicit SIMD accumulators where a loop reduces.
public enum LayerNormNHWC {
    /// Σ v[0..<n], eight lanes at a time, then the lanes and the tail.
    @inline(__always)
    static func sum(_ v: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        var j = 0
        while j + 8 <= n {
            acc += UnsafeRawPointer(v + j).loadUnaligned(as: SIMD8<Float>.self)
            j += 8
        }
        var s = acc.sum()
        while j < n {
            s += v[j]
            j += 1
        }
        return s
    }

    /// Σ (v[j] − m)² over 0..<n, as `sum`.
    @inline(__always)
    static func squaredDeviations(_ v: UnsafePointer<Float>, _ n: Int, mean m: Float) -> Float {
        var acc = SIMD8<Float>(repeating: 0)
        let mv = SIMD8<Float>(repeating: m)
        var j = 0
        while j + 8 <= n {
            let d = UnsafeRawPointer(v + j).loadUnaligned(as: SIMD8<Float>.self) - mv
            acc += d * d
            j += 8
        }
        var s = acc.sum()
        while j < n {
            let d = v[j] - m
            s += d * d
            j += 1
        }
        return s
    }

    /// A row's mean and 1 / √(biased variance + eps), from two passes over it.
    @inline(__always)
    static func statistics(_ row: UnsafePointer<Float>, _ c: Int, eps: Float) -> (mean: Float, invStd: Float) {
        let mean = sum(row, c) / Float(c)
        let variance = squaredDeviations(row, c, mean: mean) / Float(c)
        return (mean, 1 / (variance + eps).squareRoot())
    }

    /// y[r, c] = (x[r, c] − mean_r) / √(var_r + eps) · γ[c] + β[c] for `rows` rows of `channels`.
    public static func forward(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int, channels: Int,
        weight: UnsafePointer<Float>, bias: UnsafePointer<Float>, eps: Float, threads: Int = 1
    ) {
        nonisolated(unsafe) let (x, y, w, b) = (x, y, weight, bias)
        let c = channels
        Parallel.ranges(rows, threads: threads, grain: max(1, 16384 / max(c, 1))) { r in
            for row in r {
                let xr = x + row * c, yr = y + row * c
                let (mean, invStd) = statistics(xr, c, eps: eps)
                for j in 0..<c { yr[j] = (xr[j] - mean) * invStd * w[j] + b[j] }
            }
        }
    }

    /// dx from dy, given x and γ: with x̂ the normalised row and g = dy·γ,
    /// dx = (g − mean(g) − x̂ · mean(g · x̂)) / √(var + eps), row by row.
    public static func inputBackward(
        _ x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
        inputGradient dx: UnsafeMutablePointer<Float>,
        rows: Int, channels: Int, weight: UnsafePointer<Float>, eps: Float, threads: Int = 1
    ) {
        nonisolated(unsafe) let (x, dy, dx, w) = (x, dy, dx, weight)
        let c = channels
        Parallel.ranges(rows, threads: threads, grain: max(1, 8192 / max(c, 1))) { r in
            for row in r {
                let xr = x + row * c, gr = dy + row * c, dr = dx + row * c
                let (mean, invStd) = statistics(xr, c, eps: eps)
                var sg = SIMD8<Float>(repeating: 0), sgx = SIMD8<Float>(repeating: 0)
                var tg: Float = 0, tgx: Float = 0
                var j = 0
                let mv = SIMD8<Float>(repeating: mean), iv = SIMD8<Float>(repeating: invStd)
                while j + 8 <= c {
                    let xv = UnsafeRawPointer(xr + j).loadUnaligned(as: SIMD8<Float>.self)
                    let g =
                        UnsafeRawPointer(gr + j).loadUnaligned(as: SIMD8<Float>.self)
                        * UnsafeRawPointer(w + j).loadUnaligned(as: SIMD8<Float>.self)
                    sg += g
                    sgx += g * ((xv - mv) * iv)
                    j += 8
                }
                while j < c {
                    let g = gr[j] * w[j]
                    tg += g
                    tgx += g * ((xr[j] - mean) * invStd)
                    j += 1
                }
                let meanG = (sg.sum() + tg) / Float(c), meanGX = (sgx.sum() + tgx) / Float(c)
                for k in 0..<c {
                    let xhat = (xr[k] - mean) * invStd
                    dr[k] = (gr[k] * w[k] - meanG - xhat * meanGX) * invStd
                }
            }
        }
    }

    /// dγ[c] = Σ_r dy[r, c] · x̂[r, c] and dβ[c] = Σ_r dy[r, c], each summed in row order (either may be
    /// nil).
    public static func parameterBackward(
        _ x: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
        weightGradient dw: UnsafeMutablePointer<Float>?, biasGradient db: UnsafeMutablePointer<Float>?,
        rows: Int, channels: Int, eps: Float, threads: Int = 1
    ) {
        let c = channels
        // The rows' statistics once, then channel blocks across threads.
        var stats = [Float](repeating: 0, count: 2 * rows)
        stats.withUnsafeMutableBufferPointer { st in
            nonisolated(unsafe) let (x, st) = (x, st.baseAddress!)
            Parallel.ranges(rows, threads: threads, grain: max(1, 16384 / max(c, 1))) { r in
                for row in r {
                    let s = statistics(x + row * c, c, eps: eps)
                    st[2 * row] = s.mean
                    st[2 * row + 1] = s.invStd
                }
            }
        }
        stats.withUnsafeBufferPointer { st in
            nonisolated(unsafe) let (x, dy, dw, db, st) = (x, dy, dw, db, st.baseAddress!)
            let blocks = (c + 15) / 16
            Parallel.run(blocks, min(threads, blocks)) { blk in
                let lo = blk * 16, hi = min(c, lo + 16)
                for k in lo..<hi {
                    dw?[k] = 0
                    db?[k] = 0
                }
                for row in 0..<rows {
                    let xr = x + row * c, gr = dy + row * c
                    let mean = st[2 * row], invStd = st[2 * row + 1]
                    for k in lo..<hi {
                        dw?[k] += gr[k] * ((xr[k] - mean) * invStd)
                        db?[k] += gr[k]
                    }
                }
            }
        }
    }

    /// The twin of `forward`, from the definition in Double: one row at a time.
    public static func referenceForward(
        _ x: [Float], rows: Int, channels: Int, weight: [Float], bias: [Float], eps: Float
    ) -> [Float] {
        var y = [Float](repeating: 0, count: x.count)
        for r in 0..<rows {
            let v = (0..<channels).map { Double(x[r * channels + $0]) }
            let mean = v.reduce(0, +) / Double(channels)
            let variance = v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(channels)
            let invStd = 1 / (variance + Double(eps)).squareRoot()
            for k in 0..<channels {
                y[r * channels + k] = Float((v[k] - mean) * invStd * Double(weight[k]) + Double(bias[k]))
            }
        }
        return y
    }

    /// The twin of `inputBackward` and `parameterBackward`, in Double: (dx, dγ, dβ).
    public static func referenceBackward(
        _ x: [Float], outputGradient dy: [Float], rows: Int, channels: Int, weight: [Float], eps: Float
    ) -> (input: [Float], weight: [Float], bias: [Float]) {
        var dx = [Float](repeating: 0, count: x.count)
        var dw = [Double](repeating: 0, count: channels), db = dw
        let n = Double(channels)
        for r in 0..<rows {
            let v = (0..<channels).map { Double(x[r * channels + $0]) }
            let g = (0..<channels).map { Double(dy[r * channels + $0]) }
            let mean = v.reduce(0, +) / n
            let invStd = 1 / (v.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / n + Double(eps)).squareRoot()
            let xhat = v.map { ($0 - mean) * invStd }
            let gw = (0..<channels).map { g[$0] * Double(weight[$0]) }
            let meanG = gw.reduce(0, +) / n
            let meanGX = zip(gw, xhat).map { $0 * $1 }.reduce(0, +) / n
            for k in 0..<channels {
                dx[r * channels + k] = Float((gw[k] - meanG - xhat[k] * meanGX) * invStd)
                dw[k] += g[k] * xhat[k]
                db[k] += g[k]
            }
        }
        return (dx, dw.map(Float.init), db.map(Float.init))
    }
}

/// y[r, c] = x[r, c] · s[c] over rows of channels (ConvNeXt's layer scale), and its gradients.
public enum ChannelMultiply {
    public static func forward(
        _ x: UnsafePointer<Float>, scale s: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, rows: Int,
        channels: Int, threads: Int = 1
    ) {
        nonisolated(unsafe) let (x, s, y) = (x, s, y)
        let c = channels
        Parallel.ranges(rows, threads: threads, grain: max(1, 32768 / max(c, 1))) { r in
            for row in r {
                let xr = x + row * c, yr = y + row * c
                for k in 0..<c { yr[k] = xr[k] * s[k] }
            }
        }
    }

    /// dx = dy · s (when `inputGradient` is given); ds[c] = Σ_r dy[r, c] · x[r, c] in row order (when
    /// `scaleGradient` is given), by channel blocks across threads.
    public static func backward(
        _ x: UnsafePointer<Float>, scale s: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
        inputGradient dx: UnsafeMutablePointer<Float>?, scaleGradient ds: UnsafeMutablePointer<Float>?, rows: Int,
        channels: Int, threads: Int = 1
    ) {
        let c = channels
        if let dx { forward(dy, scale: s, dx, rows: rows, channels: c, threads: threads) }
        guard let ds else { return }
        nonisolated(unsafe) let (x, dy, out) = (x, dy, ds)
        let blocks = (c + 15) / 16
        Parallel.run(blocks, min(threads, blocks)) { blk in
            let lo = blk * 16, hi = min(c, lo + 16)
            for k in lo..<hi { out[k] = 0 }
            for row in 0..<rows {
                let xr = x + row * c, gr = dy + row * c
                for k in lo..<hi { out[k] += gr[k] * xr[k] }
            }
        }
    }
}
