import Kernels
import NN

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// torch.optim.AdamW as PyTorch 1.13 runs it (`_single_tensor_adamw`, the default `foreach=False`), per
/// parameter with a gradient, every tensor operation on Float32 as torch's CPU kernels do it:
///
///     g = grad                                 (−grad with maximize)
///     step += 1                                (per parameter)
///     p = p · (1 − lr·weight_decay)            decoupled weight decay
///     m = m·β1 + (1 − β1)·g
///     v = v·β2 + (1 − β2)·g·g
///     v̂ = max(v̂, v) with amsgrad, else v
///     p = p − (lr / (1 − β1^step)) · m / (sqrt(v̂) / sqrt(1 − β2^step) + eps)
///
/// The scalars (1 − lr·wd, 1 − β, the bias corrections and the step size) are Python floats (Double),
/// made Float32 where they meet a tensor. The state of a parameter (`exp_avg`, `exp_avg_sq`,
/// `max_exp_avg_sq`, and its own step count) is made at its first step with a gradient, as torch does.
public final class AdamW: Optimizer {
    public static let kind = OptimizerKind.adamw
    public static let stateNames = ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"]

    public private(set) var groups: [ParameterGroup]
    public private(set) var steps = 0

    /// One parameter's state.
    struct Moments {
        var step = 0
        var m: [Float]
        var v: [Float]
        var vmax: [Float]?
    }
    private var moments: [String: Moments] = [:]

    public init(_ groups: [ParameterGroup]) throws {
        self.groups = groups
        try Self.checkGroups(groups)
        for g in groups {
            let o = g.options
            guard o.eps >= 0 else { throw OptimizerError.invalid("Invalid epsilon value: \(o.eps)") }
            guard (0..<1).contains(o.beta1) else {
                throw OptimizerError.invalid("Invalid beta parameter at index 0: \(o.beta1)")
            }
            guard (0..<1).contains(o.beta2) else {
                throw OptimizerError.invalid("Invalid beta parameter at index 1: \(o.beta2)")
            }
            guard o.weightDecay >= 0 else {
                throw OptimizerError.invalid("Invalid weight_decay value: \(o.weightDecay)")
            }
        }
    }

    public func setLR(_ lr: Double, group index: Int) { groups[index].options.lr = lr }

    public func step(_ gradients: [String: [Float]]) throws {
        try forEachGradient(gradients) { update($0, name: $1, grad: $2, $3) }
        steps += 1
    }

    private func update(_ p: Parameter, name: String, grad: [Float], _ o: OptimizerOptions) {
        let n = p.count
        var s =
            moments.removeValue(forKey: name)  // uniquely referenced below, updated in place
            ?? Moments(
                m: [Float](repeating: 0, count: n), v: [Float](repeating: 0, count: n),
                vmax: o.amsgrad ? [Float](repeating: 0, count: n) : nil)
        if o.amsgrad && s.vmax == nil { s.vmax = [Float](repeating: 0, count: n) }
        s.step += 1
        let step = Double(s.step)
        let bc1 = 1 - pow(o.beta1, step)
        let bc2 = 1 - pow(o.beta2, step)
        let stepSize = o.lr / bc1
        grad.withUnsafeBufferPointer { g in
            p.data.withUnsafeMutableBufferPointer { w in
                s.m.withUnsafeMutableBufferPointer { m in
                    s.v.withUnsafeMutableBufferPointer { v in
                        func run(_ vmax: UnsafeMutablePointer<Float>?) {
                            Elementwise.adamwUpdate(
                                w.baseAddress!, gradient: g.baseAddress!, m: m.baseAddress!, v: v.baseAddress!,
                                vmax: vmax, count: n, decay: Float(1 - o.lr * o.weightDecay),
                                beta1: Float(o.beta1), oneMinusBeta1: Float(1 - o.beta1),
                                beta2: Float(o.beta2), oneMinusBeta2: Float(1 - o.beta2),
                                biasCorrection2Sqrt: Float(bc2.squareRoot()), eps: Float(o.eps),
                                negStepSize: Float(-stepSize), maximize: o.maximize)
                        }
                        if o.amsgrad {
                            s.vmax!.withUnsafeMutableBufferPointer { run($0.baseAddress!) }
                        } else {
                            run(nil)
                        }
                    }
                }
            }
        }
        moments[name] = s
    }

    public var state: [String: [String: [Float]]] {
        moments.mapValues { s in
            var out = ["exp_avg": s.m, "exp_avg_sq": s.v]
            if let vmax = s.vmax { out["max_exp_avg_sq"] = vmax }
            return out
        }
    }

    /// The per-parameter step counts (torch keeps one per parameter, `state[p]['step']`).
    public var parameterSteps: [String: Int] { moments.mapValues(\.step) }

    /// Restores moments saved from `state`. Each parameter's step count is `steps` (every parameter
    /// of a fine-tuning run has a gradient at every step).
    public func restore(_ state: [String: [String: [Float]]], steps: Int) throws {
        try checkState(state)
        var restored: [String: Moments] = [:]
        for (name, s) in state {
            guard let m = s["exp_avg"], let v = s["exp_avg_sq"] else {
                throw OptimizerError.unknownState("\(name): exp_avg and exp_avg_sq are both needed")
            }
            restored[name] = Moments(step: steps, m: m, v: v, vmax: s["max_exp_avg_sq"])
        }
        moments = restored
        self.steps = steps
    }
}

/// AdamW's update of one parameter in Double, written from torch's algorithm independently of `AdamW`:
/// the naive twin the tests hold AdamW to.
struct AdamWReference {
    public var options: OptimizerOptions
    public var m: [Double]?
    public var v: [Double]?
    public var vmax: [Double]?
    public var step = 0
    public init(_ options: OptimizerOptions) { self.options = options }

    public mutating func step(_ p: inout [Double], grad: [Double]) {
        let o = options
        let g = o.maximize ? grad.map { -$0 } : grad
        step += 1
        p = p.map { $0 * (1 - o.lr * o.weightDecay) }
        m = zip(m ?? Array(repeating: 0, count: g.count), g).map { o.beta1 * $0 + (1 - o.beta1) * $1 }
        v = zip(v ?? Array(repeating: 0, count: g.count), g).map { o.beta2 * $0 + (1 - o.beta2) * $1 * $1 }
        var second = v!
        if o.amsgrad {
            vmax = zip(vmax ?? Array(repeating: 0, count: g.count), v!).map { max($0, $1) }
            second = vmax!
        }
        let bc1 = 1 - pow(o.beta1, Double(step)), bc2 = 1 - pow(o.beta2, Double(step))
        for i in p.indices {
            p[i] -= (o.lr / bc1) * m![i] / (second[i].squareRoot() / bc2.squareRoot() + o.eps)
        }
    }
}
