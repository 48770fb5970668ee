import Kernels
import NN

/// What fine-tuning asks of an optimizer: torch.optim's surface, over parameters named as the model's
/// state dict names them. `SGD` and `AdamW` implement it; adding one is a new file with a type that
/// conforms, plus its case in `OptimizerKind`.
public protocol Optimizer: AnyObject {
    /// Which optimizer this is (recorded in resume checkpoints).
    static var kind: OptimizerKind { get }
    /// The per-parameter state tensors it keeps, by torch's names (`momentum_buffer`, `exp_avg`, …).
    static var stateNames: [String] { get }
    var groups: [ParameterGroup] { get }
    /// Steps taken.
    var steps: Int { get }
    /// Sets group `index`'s learning rate (schedulers do this between steps).
    func setLR(_ lr: Double, group index: Int)
    /// One step. `gradients` maps parameter names to gradients of the parameter's size; a parameter with
    /// no entry is skipped, as torch skips `p.grad is None`.
    func step(_ gradients: [String: [Float]]) throws
    /// State by parameter name, then by state name: what a resume checkpoint saves.
    var state: [String: [String: [Float]]] { get }
    /// Restores `state` and the step count (a resumed run), checking names and sizes.
    func restore(_ state: [String: [String: [Float]]], steps: Int) throws
}

extension Optimizer {
    /// Names of every parameter the optimizer holds, in group order.
    public var parameterNames: [String] { groups.flatMap { $0.parameters.map(\.name) } }
    public var kind: OptimizerKind { Self.kind }

    /// torch's checks every optimizer shares: a learning rate ≥ 0, each parameter in one group only,
    /// no frozen parameter.
    static func checkGroups(_ groups: [ParameterGroup]) throws {
        var seen = Set<String>()
        for g in groups {
            guard g.options.lr >= 0 else { throw OptimizerError.invalid("Invalid learning rate: \(g.options.lr)") }
            for (name, p) in g.parameters {
                guard seen.insert(name).inserted else { throw OptimizerError.duplicateParameter(name) }
                guard p.requiresGrad else { throw OptimizerError.frozenParameter(name) }
            }
        }
    }

    /// Calls `body` for each held parameter that has an entry in `gradients`, in group order, with its
    /// group's options; a parameter with no entry is skipped, as torch skips `p.grad is None`, and a
    /// gradient of another size is refused before anything is updated by it.
    func forEachGradient(
        _ gradients: [String: [Float]],
        _ body: (Parameter, String, [Float], OptimizerOptions) throws -> Void
    ) throws {
        for g in groups {
            for (name, p) in g.parameters {
                guard let grad = gradients[name] else { continue }
                guard grad.count == p.count else {
                    throw OptimizerError.gradientShape(name: name, expected: p.count, got: grad.count)
                }
                try body(p, name, grad, g.options)
            }
        }
    }

    /// Every state entry names a held parameter and has its size.
    func checkState(_ state: [String: [String: [Float]]]) throws {
        let sizes = Dictionary(
            uniqueKeysWithValues: groups.flatMap { $0.parameters.map { ($0.name, $0.parameter.count) } })
        for (name, entries) in state {
            guard let size = sizes[name] else { throw OptimizerError.unknownState(name) }
            for (key, values) in entries {
                guard Self.stateNames.contains(key) else { throw OptimizerError.unknownState("\(name).\(key)") }
                guard values.count == size else {
                    throw OptimizerError.gradientShape(name: "\(name).\(key)", expected: size, got: values.count)
                }
            }
        }
    }
}

/// The optimizers there are, by the name `finetune --optimizer` takes. The one place a new optimizer
/// is registered.
public enum OptimizerKind: String, CaseIterable, Sendable, Codable {
    case sgd, adamw

    /// An optimizer of this kind over `groups`.
    public func make(_ groups: [ParameterGroup]) throws -> any Optimizer {
        switch self {
        case .sgd: try SGD(groups)
        case .adamw: try AdamW(groups)
        }
    }

    /// torch's defaults for a group at `lr` (AdamW: weight decay 0.01, betas (0.9, 0.999), eps 1e-8).
    public func defaults(lr: Double) -> OptimizerOptions {
        switch self {
        case .sgd: OptimizerOptions(lr: lr)
        case .adamw: OptimizerOptions(lr: lr, weightDecay: 0.01)
        }
    }
}

/// One parameter group's hyper-parameters, as torch.optim's param_groups hold them: the union of what
/// the optimizers here read (SGD: lr, momentum, dampening, weight_decay, nesterov, maximize; AdamW: lr,
/// betas, eps, weight_decay, amsgrad, maximize). Each optimizer ignores the fields it does not have.
public struct OptimizerOptions: Sendable, Equatable {
    public var lr: Double
    public var momentum: Double = 0
    public var dampening: Double = 0
    public var weightDecay: Double = 0
    public var nesterov: Bool = false
    public var maximize: Bool = false
    public var beta1: Double = 0.9
    public var beta2: Double = 0.999
    public var eps: Double = 1e-8
    public var amsgrad: Bool = false

    public init(
        lr: Double, momentum: Double = 0, dampening: Double = 0, weightDecay: Double = 0, nesterov: Bool = false,
        maximize: Bool = false, betas: (Double, Double) = (0.9, 0.999), eps: Double = 1e-8, amsgrad: Bool = false
    ) {
        self.lr = lr
        self.momentum = momentum
        self.dampening = dampening
        self.weightDecay = weightDecay
        self.nesterov = nesterov
        self.maximize = maximize
        self.beta1 = betas.0
        self.beta2 = betas.1
        self.eps = eps
        self.amsgrad = amsgrad
    }
}

/// The name the SGD-only code used; the same options.
public typealias SGDOptions = OptimizerOptions

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
    public static func splittingDecay(
        name: String, parameters: [(name: String, parameter: Parameter)],
        options: SGDOptions
    ) -> [ParameterGroup] {
        let noDecay = parameters.filter { $0.parameter.shape.count <= 1 }
        let decay = parameters.filter { $0.parameter.shape.count > 1 }
        var free = options
        free.weightDecay = 0
        return [
            ParameterGroup(name: name, parameters: decay, options: options),
            ParameterGroup(name: name + ".no_decay", parameters: noDecay, options: free),
        ].filter { !$0.parameters.isEmpty }
    }
}

/// Why an optimizer refuses its groups or state, with torch's wording where torch has one.
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
        case .frozenParameter(let n):
            "\(n) is frozen (requiresGrad false); an optimizer does not hold frozen parameters"
        case .gradientShape(let n, let e, let g): "the gradient of \(n) has \(g) elements, the parameter \(e)"
        case .unknownState(let n): "optimizer state for \(n), which no group holds"
        }
    }
}
