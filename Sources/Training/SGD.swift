import Kernels
import NN

/// One parameter group's hyper-parameters, as torch.optim.SGD's param_groups hold them.
public struct SGDOptions: Sendable, Equatable {
    public var lr: Double
    public var momentum: Double = 0
    public var dampening: Double = 0
    public var weightDecay: Double = 0
    public var nesterov: Bool = false
    public var maximize: Bool = false

    public init(lr: Double, momentum: Double = 0, dampening: Double = 0, weightDecay: Double = 0, nesterov: Bool = false,
                maximize: Bool = false) {
        self.lr = lr
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        self.maximize = maximize
    }
}

/// A parameter group: parameters by their dotted names, and the options they share.
public struct ParameterGroup {
    public var name: String
    public var parameters: [(name: String, parameter: Parameter)]
    public var options: SGDOptions

    public init(name: String, parameters: [(name: String, parameter: Parameter)], options: SGDOptions) {
        self.name = name
        self.parameters = parameters
        self.options = options
    }

    /// Splits `parameters` in two groups as the usual "no decay for norms and biases" recipe does:
    /// `<name>` keeps `options`; `<name>.no_decay` has weight decay 0 and holds every parameter of rank
    /// ≤ 1 (BatchNorm weights and biases, and every bias: in a ResNet these are exactly the 1-D
    /// parameters). An empty group is left out.
    public static func splittingDecay(name: String, parameters: [(name: String, parameter: Parameter)],
                                      options: SGDOptions) -> [ParameterGroup] {
        let noDecay = parameters.filter { $0.parameter.shape.count <= 1 }
        let decay = parameters.filter { $0.parameter.shape.count > 1 }
        var free = options
        free.weightDecay = 0
        return [ParameterGroup(name: name, parameters: decay, options: options),
                ParameterGroup(name: name + ".no_decay", parameters: noDecay, options: free)].filter { !$0.parameters.isEmpty }
    }
}

/// Why `SGD` refuses its groups, with torch's wording where torch has one.
public enum OptimizerError: Error, Equatable, CustomStringConvertible {
    case invalid(String)
    case duplicateParameter(String)
    case frozenParameter(String)
    case gradientShape(name: String, expected: Int, got: Int)
    case unknownState(String)

    public var description: String {
        switch self {
        case .invalid(let s): s
        case .duplicateParameter(let n): "some parameters appear in more than one parameter group: \(n)"
        case .frozenParameter(let n): "\(n) is frozen (requiresGrad false); an optimizer does not hold frozen parameters"
        case .gradientShape(let n, let e, let g): "the gradient of \(n) has \(g) elements, the parameter \(e)"
        case .unknownState(let n): "optimizer state for \(n), which no group holds"
        }
    }
}

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
public final class SGD {
    public private(set) var groups: [ParameterGroup]
    /// Momentum buffers by parameter name, present once the parameter has taken a step with momentum.
    public private(set) var momentumBuffers: [String: [Float]] = [:]
    /// Steps taken.
    public private(set) var steps = 0

    public init(_ groups: [ParameterGroup]) throws {
        var seen = Set<String>()
        for g in groups {
            let o = g.options
            guard o.lr >= 0 else { throw OptimizerError.invalid("Invalid learning rate: \(o.lr)") }
            guard o.momentum >= 0 else { throw OptimizerError.invalid("Invalid momentum value: \(o.momentum)") }
            guard o.weightDecay >= 0 else { throw OptimizerError.invalid("Invalid weight_decay value: \(o.weightDecay)") }
            if o.nesterov && (o.momentum <= 0 || o.dampening != 0) {
                throw OptimizerError.invalid("Nesterov momentum requires a momentum and zero dampening")
            }
            for (name, p) in g.parameters {
                guard seen.insert(name).inserted else { throw OptimizerError.duplicateParameter(name) }
                guard p.requiresGrad else { throw OptimizerError.frozenParameter(name) }
            }
        }
        self.groups = groups
    }

    /// Sets group `index`'s learning rate (schedulers do this between steps).
    public func setLR(_ lr: Double, group index: Int) { groups[index].options.lr = lr }

    /// Names of every parameter the optimizer holds, in group order.
    public var parameterNames: [String] { groups.flatMap { $0.parameters.map(\.name) } }

    /// One step. `gradients` maps parameter names to gradients of the parameter's size; a parameter
    /// with no entry is skipped, as torch skips `p.grad is None`.
    public func step(_ gradients: [String: [Float]]) throws {
        for g in groups {
            for (name, p) in g.parameters {
                guard let grad = gradients[name] else { continue }
                guard grad.count == p.count else { throw OptimizerError.gradientShape(name: name, expected: p.count, got: grad.count) }
                update(p, name: name, grad: grad, g.options)
            }
        }
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
                    Elementwise.sgdUpdate(w.baseAddress!, gradient: g.baseAddress!, buffer: b, count: n,
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

    /// Restores momentum buffers saved from `momentumBuffers` (a resumed run), checking names and sizes.
    public func restoreMomentum(_ buffers: [String: [Float]], steps: Int) throws {
        let sizes = Dictionary(uniqueKeysWithValues: groups.flatMap { $0.parameters.map { ($0.name, $0.parameter.count) } })
        for (name, b) in buffers {
            guard let size = sizes[name] else { throw OptimizerError.unknownState(name) }
            guard size == b.count else { throw OptimizerError.gradientShape(name: name, expected: size, got: b.count) }
        }
        momentumBuffers = buffers
        self.steps = steps
    }
}

/// The update of one parameter in Double, written from torch's algorithm independently of `SGD`: the
/// naive twin the tests hold SGD to.
public struct SGDReference {
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
