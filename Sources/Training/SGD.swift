import Kernels
import NN

/// torch.optim.SGD as PyTorch 1.13 runs it (`_single_tensor_sgd`, the default `foreach=False`), per
/// parameter with a gradient, every operation on Float32 as torch's CPU kernels do it:
///
///     d_p = grad                     (−grad with maximize)
///     d_p = d_p + weight_decay·p     when weight_decay ≠ 0
///     when momentum ≠ 0:
///         buf = d_p                                  on the parameter's first step
///         buf = momentum·buf + (1 − dampening)·d_p   after
///         d_p = d_p + momentum·buf   with nesterov, else d_p = buf
///     p = p − lr·d_p
///
/// Scalars are Python floats (Double) made Float32 where they meet a tensor; `1 − dampening` is taken in
/// Double first, as Python does. Parameters without a gradient in a step are skipped and get no
/// momentum buffer. Frozen parameters cannot be added: the optimizer never holds them.
public final class SGD: Optimizer {
    public static let kind = OptimizerKind.sgd
    public private(set) var groups: [ParameterGroup]
    /// Momentum buffers by parameter name, present once the parameter has taken a step with momentum.
    public private(set) var momentumBuffers: [String: [Float]] = [:]
    /// Steps taken.
    public private(set) var steps = 0

    public init(_ groups: [ParameterGroup]) throws {
        try Self.checkGroups(groups)
        for g in groups {
            let o = g.options
            guard o.momentum >= 0 else { throw OptimizerError.invalid("Invalid momentum value: \(o.momentum)") }
            guard o.weightDecay >= 0 else {
                throw OptimizerError.invalid("Invalid weight_decay value: \(o.weightDecay)")
            }
            if o.nesterov && (o.momentum <= 0 || o.dampening != 0) {
                throw OptimizerError.invalid("Nesterov momentum requires a momentum and zero dampening")
            }
        }
        self.groups = groups
    }

    /// Sets group `index`'s learning rate (schedulers do this between steps).
    public func setLR(_ lr: Double, group index: Int) { groups[index].options.lr = lr }

    /// One step. `gradients` maps parameter names to gradients of the parameter's size; a parameter
    /// with no entry is skipped, as torch skips `p.grad is None`.
    public func step(_ gradients: [String: [Float]]) throws {
        try forEachGradient(gradients) { update($0, name: $1, grad: $2, $3) }
        steps += 1
    }

    private func update(_ p: Parameter, name: String, grad: [Float], _ o: SGDOptions) {
        let n = p.count
        var buffer = momentumBuffers[name]
        let first = buffer == nil
        if o.momentum != 0 && first { buffer = [Float](repeating: 0, count: n) }
        momentumBuffers[name] = nil  // so the buffer below is uniquely referenced and updated in place
        grad.withUnsafeBufferPointer { g in
            p.data.withUnsafeMutableBufferPointer { w in
                func run(_ b: UnsafeMutablePointer<Float>?) {
                    Elementwise.sgdUpdate(
                        w.baseAddress!, gradient: g.baseAddress!, buffer: b, count: n,
                        weightDecay: Float(o.weightDecay), momentum: Float(o.momentum),
                        keep: Float(1 - o.dampening), negLR: Float(-o.lr), nesterov: o.nesterov,
                        first: first, maximize: o.maximize)
                }
                if o.momentum != 0 {
                    buffer!.withUnsafeMutableBufferPointer { run($0.baseAddress!) }
                } else {
                    run(nil)
                }
            }
        }
        if o.momentum != 0 { momentumBuffers[name] = buffer }
    }

    public static let stateNames = ["momentum_buffer"]

    public var state: [String: [String: [Float]]] {
        momentumBuffers.mapValues { ["momentum_buffer": $0] }
    }

    /// Restores momentum buffers saved from `state` (a resumed run), checking names and sizes.
    public func restore(_ state: [String: [String: [Float]]], steps: Int) throws {
        try checkState(state)
        momentumBuffers = state.compactMapValues { $0["momentum_buffer"] }
        self.steps = steps
    }
}

/// The update of one parameter in Double, written from torch's algorithm independently of `SGD`: the
/// naive twin the tests hold SGD to.
struct SGDReference {
    public var options: SGDOptions
    public var buffer: [Double]?
    public init(_ options: SGDOptions) { self.options = options }

    public mutating func step(_ p: inout [Double], grad: [Double]) {
        let o = options
        var d = o.maximize ? grad.map { -$0 } : grad
        if o.weightDecay != 0 { d = zip(d, p).map { $0 + o.weightDecay * $1 } }
        if o.momentum != 0 {
            if let b = buffer {
                buffer = zip(b, d).map { o.momentum * $0 + (1 - o.dampening) * $1 }
            } else {
                buffer = d
            }
            d = o.nesterov ? zip(d, buffer!).map { $0 + o.momentum * $1 } : buffer!
        }
        p = zip(p, d).map { $0 - o.lr * $1 }
    }
}
