import CKernels

#if canImport(Glibc)
    import Glibc
#endif

/// An elementwise activation that no convolution epilogue carries: a kernel of its own, forward and
/// backward, in every ISA tier (`pth2swt_pointwise`).
public enum PointwiseFunction: Int32, CaseIterable, Sendable, CustomStringConvertible {
    /// torch.nn.Hardswish: x · min(max(x + 3, 0), 6) / 6.
    case hardswish = 1
    /// torch.nn.Hardsigmoid: min(max(x + 3, 0), 6) / 6.
    case hardsigmoid = 2
    /// torch.nn.Sigmoid: 1 / (1 + e^−x).
    case sigmoid = 3
    /// torch.nn.SiLU: x / (1 + e^−x).
    case silu = 4
    /// torch.nn.GELU() (exact): x · ½ · (1 + erf(x / √2)).
    case gelu = 5

    public var description: String {
        switch self {
        case .hardswish: "hardswish"
        case .hardsigmoid: "hardsigmoid"
        case .sigmoid: "sigmoid"
        case .silu: "silu"
        case .gelu: "gelu"
        }
    }
}

/// The pointwise activations' kernels: y = f(x) and dx = f′(x)·dy, split across threads.
public enum Pointwise {
    /// y[i] = f(x[i]) for i in 0..<count (y may be x).
    public static func forward(
        _ f: PointwiseFunction, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, count: Int,
        threads: Int = 1
    ) {
        nonisolated(unsafe) let (x, y) = (x, y)
        Parallel.ranges(count, threads: threads, grain: 32768) { r in
            pth2swt_pointwise(f.rawValue, x, y, r.lowerBound, r.upperBound)
        }
    }

    /// dx[i] = dL/dx[i] from the input x, the output y and dy (dx may be dy).
    public static func backward(
        _ f: PointwiseFunction, input x: UnsafePointer<Float>, output y: UnsafePointer<Float>,
        outputGradient dy: UnsafePointer<Float>, inputGradient dx: UnsafeMutablePointer<Float>, count: Int,
        threads: Int = 1
    ) {
        nonisolated(unsafe) let (x, y, dy, dx) = (x, y, dy, dx)
        Parallel.ranges(count, threads: threads, grain: 32768) { r in
            pth2swt_pointwise_backward(f.rawValue, x, y, dy, dx, r.lowerBound, r.upperBound)
        }
    }

    /// The twin: f(v) from its definition, in Double, rounded once.
    public static func reference(_ f: PointwiseFunction, _ v: Float) -> Float {
        let x = Double(v)
        let r: Double
        switch f {
        case .hardswish: r = x * min(max(x + 3, 0), 6) / 6
        case .hardsigmoid: r = min(max(x + 3, 0), 6) / 6
        case .sigmoid: r = 1 / (1 + exp(-x))
        case .silu: r = x / (1 + exp(-x))
        case .gelu: r = x * 0.5 * (1 + erf(x / 2.0.squareRoot()))
        }
        return v.isNaN ? .nan : Float(r)
    }

    /// The twin of the derivative f′(v), in Double (Hardswish and Hardsigmoid take torch's one-sided
    /// choices at their kinks: Hardswish's slope at −3 is −½ and at 3 is 1.5; Hardsigmoid's is 0 at both).
    public static func referenceDerivative(_ f: PointwiseFunction, _ v: Float) -> Double {
        let x = Double(v)
        switch f {
        case .hardswish: return x < -3 ? 0 : x <= 3 ? x / 3 + 0.5 : 1
        case .hardsigmoid: return x > -3 && x < 3 ? 1.0 / 6 : 0
        case .sigmoid:
            let s = 1 / (1 + exp(-x))
            return s * (1 - s)
        case .silu:
            let s = 1 / (1 + exp(-x))
            return s * (1 + x * (1 - s))
        case .gelu:
            return 0.5 * (1 + erf(x / 2.0.squareRoot())) + x * exp(-0.5 * x * x) / (2 * Double.pi).squareRoot()
        }
    }
}

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
