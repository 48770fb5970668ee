/// Squeeze-and-excitation's product and the channel moves of concatenation, slices and shuffles, on
/// channels-last values ([N, H, W, C]): the kernels of `ChannelScaling`, `Concatenation`, `ChannelSlice`
/// and `ChannelShuffle` (NN/Functions). Memory-bound loops the compiler vectorises; threads split rows.

/// Squeeze-and-excitation's scaling: y[n, h, w, c] = x[n, h, w, c] · s[n, c], channels-last.
public enum ChannelScale {
    public static func forward(
        _ x: UnsafePointer<Float>, scale s: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, batch: Int,
        plane: Int, channels: Int, threads: Int = 1
    ) {
        nonisolated(unsafe) let (x, s, y) = (x, s, y)
        Parallel.run(batch * plane, min(threads, max(1, batch * plane * channels / 16384))) { r in
            let row = r * channels, sc = s + (r / plane) * channels
            for c in 0..<channels { y[row + c] = x[row + c] * sc[c] }
        }
    }

    /// dx = dy · s (when `inputGradient` is given) and ds[n, c] = Σ over the image's positions of dy · x, in
    /// position order (when `scaleGradient` is given).
    public static func backward(
        _ x: UnsafePointer<Float>, scale s: UnsafePointer<Float>, outputGradient dy: UnsafePointer<Float>,
        inputGradient dx: UnsafeMutablePointer<Float>?, scaleGradient ds: UnsafeMutablePointer<Float>?,
        batch: Int, plane: Int, channels: Int, threads: Int = 1
    ) {
        nonisolated(unsafe) let (x, s, dy, dx, ds) = (x, s, dy, dx, ds)
        Parallel.run(batch, threads) { n in
            let base = n * plane * channels, sc = s + n * channels
            if let dx {
                for p in 0..<plane {
                    let row = base + p * channels
                    for c in 0..<channels { dx[row + c] = dy[row + c] * sc[c] }
                }
            }
            if let ds {
                let out = ds + n * channels
                for c in 0..<channels { out[c] = 0 }
                for p in 0..<plane {
                    let row = base + p * channels
                    for c in 0..<channels { out[c] += dy[row + c] * x[row + c] }
                }
            }
        }
    }
}

/// Moving channels of channels-last values: concatenation, slices and shuffles.
public enum Channels {
    /// For each of `positions` positions, `channels` floats from `from` (rows `stride` apart) to `to`
    /// (rows `toStride` apart).
    public static func copy(
        from: UnsafePointer<Float>, stride: Int, to: UnsafeMutablePointer<Float>, stride toStride: Int, channels: Int,
        positions: Int, threads: Int = 1
    ) {
        nonisolated(unsafe) let (from, to) = (from, to)
        Parallel.ranges(positions, threads: threads, grain: max(1, 16384 / max(channels, 1))) { r in
            for p in r { (to + p * toStride).update(from: from + p * stride, count: channels) }
        }
    }

    /// y[p, o] = x[p, gather[o]] for each position p.
    public static func permute(
        _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, gather: [Int], positions: Int, threads: Int = 1
    ) {
        let c = gather.count
        nonisolated(unsafe) let (x, y) = (x, y)
        gather.withUnsafeBufferPointer { g in
            nonisolated(unsafe) let g = g
            Parallel.ranges(positions, threads: threads, grain: max(1, 16384 / max(c, 1))) { r in
                for p in r {
                    let src = x + p * c, dst = y + p * c
                    for o in 0..<c { dst[o] = src[g[o]] }
                }
            }
        }
    }
}
