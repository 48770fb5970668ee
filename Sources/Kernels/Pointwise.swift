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
