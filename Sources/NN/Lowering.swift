import Kernels

/// A `Network` read once into the steps that inference and training both run: the one place that turns
/// layers into steps.
///
/// - Each convolution takes the BatchNorm that only it feeds, then a residual `add` whose other operand
///   is already computed (not after a depthwise convolution, as torchvision's blocks never do), then a
///   ReLU or ReLU6 that only the chain feeds (`Network.chain`): one step.
/// - A linear layer takes the activation that only it feeds; an `add` takes the activation that only it
///   feeds.
/// - Every other layer is a step of its own.
///
/// Steps are in forward order; a chain's step stands where its last layer stood. Inference adds BN
/// folding, weight packing, pooling and block fusion and buffer planning on top; training adds what the
/// backward pass saves and the backward pass itself. A new layer kind is a `Layer` case, one case here
/// (and in `shapes`), and the kernels inference and training call for it.
public struct Lowering {
    /// A convolution with what follows it.
    public struct ConvChain {
        public let conv: Conv2d
        public let bn: BatchNorm2d?
        /// The BatchNorm's module path (`bn1`, `features.0.1`).
        public let bnName: String?
        /// The step whose value is added before the activation.
        public let residual: Int?
        public let activation: Activation
    }

    public enum Op {
        /// The network input, [N, channels, H, W].
        case input(channels: Int)
        case conv(ConvChain)
        case linear(Linear, activation: Activation)
        /// A BatchNorm that follows no convolution.
        case batchNorm(BatchNorm2d)
        case maxPool(kernel: Int, stride: Int, padding: Int)
        case adaptiveAvgPool(height: Int, width: Int)
        case flatten
        case activation(Activation)
        case dropout(p: Float)
        case stochasticDepth(p: Double)
        case add(Activation)
        /// A parameter-free layer with its own kernels; reads `inputs` in order.
        case function(any LayerFunction)
    }

    public struct Step {
        /// The module path of the step's first layer (a chain is named after its convolution or linear
        /// layer).
        public let name: String
        public let op: Op
        /// The steps whose values it reads, in the layer's order (a chain reads its first layer's input;
        /// its residual is `ConvChain.residual`).
        public let inputs: [Int]
        /// Every step it reads: `inputs` and a chain's residual.
        public var reads: [Int] {
            if case .conv(let c) = op, let r = c.residual { return inputs + [r] }
            return inputs
        }
    }

    public let steps: [Step]
    /// The step whose value the head's first layer reads.
    public let featureStep: Int
    /// Per node of the network, the step that computes it: the step whose value is the node's output, or
    /// for a node inside a chain (a convolution and the BatchNorm after it), the chain's step, whose
    /// value has the node's shape but not its values.
    public let stepOfNode: [Int]

    /// `epilogueActivations`: the activations a chain or an add may take in (training's default: those
    /// whose gradient the output gives; inference takes every `Activation`).
    public init(_ network: Network, epilogueActivations: Set<Activation> = Activation.trainable) {
        let nodes = network.nodes
        let readers = network.consumers
        var valueOf = [Int](repeating: -1, count: nodes.count)
        var absorbed = Set<Int>()
        /// By the node that ends a chain: the step to emit there.
        var pending: [Int: (name: String, op: Op, input: Int, absorbed: [Int])] = [:]
        var steps: [Step] = []
        func emit(_ name: String, _ op: Op, _ inputs: [Int]) -> Int {
            precondition(inputs.allSatisfy { $0 >= 0 }, "\(name) reads a node lowering has not reached")
            steps.append(Step(name: name, op: op, inputs: inputs))
            return steps.count - 1
        }
        func activation(_ chain: Network.Chain) -> Activation {
            chain.activation.flatMap { nodes[$0].layer.activation } ?? .none
        }
        for (i, node) in nodes.enumerated() {
            if let p = pending.removeValue(forKey: i) {
                var op = p.op
                if case .conv(let c) = op, let r = c.residual {
                    op = .conv(
                        ConvChain(
                            conv: c.conv, bn: c.bn, bnName: c.bnName, residual: valueOf[r], activation: c.activation))
                }
                valueOf[i] = emit(p.name, op, [valueOf[p.input]])
                for n in p.absorbed { valueOf[n] = valueOf[i] }
                continue
            }
            if absorbed.contains(i) { continue }
            let inputs = node.inputs.map { valueOf[$0] }
            var chained: (op: Op, chain: Network.Chain)?
            switch node.layer {
            case .input(let c):
                valueOf[i] = emit(node.name, .input(channels: c), [])
            case .conv(let c):
                let chain = network.chain(
                    from: i, takesResidual: !c.isDepthwise, taken: absorbed, activations: epilogueActivations)
                var bn: BatchNorm2d?
                if let b = chain.batchNorm, case .batchNorm(let m) = nodes[b].layer { bn = m }
                // The residual is a node here; the pending emission turns it into its step.
                chained = (
                    .conv(
                        ConvChain(
                            conv: c, bn: bn, bnName: chain.batchNorm.map { nodes[$0].name }, residual: chain.residual,
                            activation: activation(chain))), chain
                )
            case .linear(let l):
                let chain = network.chain(
                    from: i, takesResidual: false, taken: absorbed, activations: epilogueActivations)
                chained = (.linear(l, activation: activation(chain)), chain)
            case .batchNorm(let b): valueOf[i] = emit(node.name, .batchNorm(b), inputs)
            case .relu: valueOf[i] = emit(node.name, .activation(.relu), inputs)
            case .relu6: valueOf[i] = emit(node.name, .activation(.relu6), inputs)
            case .maxPool(let k, let s, let p):
                valueOf[i] = emit(node.name, .maxPool(kernel: k, stride: s, padding: p), inputs)
            case .adaptiveAvgPool(let h, let w):
                valueOf[i] = emit(node.name, .adaptiveAvgPool(height: h, width: w), inputs)
            case .flatten: valueOf[i] = emit(node.name, .flatten, inputs)
            case .dropout(let p): valueOf[i] = emit(node.name, .dropout(p: p), inputs)
            case .stochasticDepth(let p): valueOf[i] = emit(node.name, .stochasticDepth(p: p), inputs)
            case .function(let f): valueOf[i] = emit(node.name, .function(f), inputs)
            case .add:
                if readers[i].count == 1, let a = nodes[readers[i][0]].layer.activation,
                    epilogueActivations.contains(a)
                {
                    absorbed.insert(readers[i][0])
                    valueOf[i] = emit(node.name, .add(a), inputs)
                    valueOf[readers[i][0]] = valueOf[i]
                } else {
                    valueOf[i] = emit(node.name, .add(.none), inputs)
                }
            }
            if let (op, chain) = chained {
                absorbed.formUnion(chain.absorbed)
                if chain.end == i {
                    valueOf[i] = emit(node.name, op, inputs)
                } else {
                    pending[chain.end] = (node.name, op, node.inputs[0], [i] + chain.absorbed)
                }
            }
        }
        for (i, s) in steps.enumerated() {
            precondition(s.reads.allSatisfy { $0 >= 0 && $0 < i }, "step \(i) \(s.name) reads \(s.reads)")
        }
        self.steps = steps
        stepOfNode = valueOf
        featureStep = valueOf[nodes[network.headNodes[0]].inputs[0]]
    }

    /// A step whose input does not fit it, for an input of a given size: the step's name and why.
    public struct ShapeError: Error, Equatable, CustomStringConvertible {
        public let step: String
        public let detail: String
        public var description: String { "\(step): \(detail)" }
        public init(step: String, detail: String) {
            self.step = step
            self.detail = detail
        }
    }

    /// Every step's output shape, per image, for an input of height × width: the one walk of the shape
    /// rules (convolution and pooling windows in `Pool.outputSize`'s floor mode). Thrown for the first
    /// step its input does not fit, or that it would shrink to nothing.
    public func shapes(height: Int, width: Int) throws(ShapeError) -> [NodeShape] {
        var out: [NodeShape] = []
        out.reserveCapacity(steps.count)
        for s in steps {
            let x = s.inputs.first.map { out[$0] } ?? NodeShape(channels: 0, height: height, width: width)
            func fail(_ detail: String) -> ShapeError { ShapeError(step: s.name, detail: detail) }
            let y: NodeShape
            switch s.op {
            case .input(let c):
                guard height > 0, width > 0 else { throw fail("an input of \(height)×\(width)") }
                y = NodeShape(channels: c, height: height, width: width)
            case .conv(let chain):
                let c = chain.conv
                guard x.channels == c.inChannels else {
                    throw fail("takes \(c.inChannels) channels, gets \(x.channels)")
                }
                let g = c.geometry(batch: 1, height: x.height, width: x.width)
                guard g.isValid else { throw fail("input \(x.height)×\(x.width) is too small") }
                y = NodeShape(channels: c.outChannels, height: g.outHeight, width: g.outWidth)
                if let r = chain.residual, out[r] != y { throw fail("adds \(out[r]) to \(y)") }
            case .linear(let l, _):
                guard x.height == 1, x.width == 1 else {
                    throw fail("a linear layer needs a flattened input, gets \(x.height)×\(x.width)")
                }
                guard x.channels == l.inFeatures else {
                    throw fail("takes \(l.inFeatures) features, gets \(x.channels)")
                }
                y = NodeShape(channels: l.outFeatures, height: 1, width: 1)
            case .batchNorm(let b):
                guard x.channels == b.channels else { throw fail("takes \(b.channels) channels, gets \(x.channels)") }
                y = x
            case .maxPool(let k, let st, let p):
                y = NodeShape(
                    channels: x.channels, height: Pool.outputSize(x.height, kernel: k, stride: st, padding: p),
                    width: Pool.outputSize(x.width, kernel: k, stride: st, padding: p))
                guard y.height > 0, y.width > 0 else {
                    throw fail("input \(x.height)×\(x.width) is too small for a \(k)×\(k) pool")
                }
            case .adaptiveAvgPool(let h, let w): y = NodeShape(channels: x.channels, height: h, width: w)
            case .flatten: y = NodeShape(channels: x.channels * x.height * x.width, height: 1, width: 1)
            case .activation, .dropout, .stochasticDepth: y = x
            case .add:
                guard out[s.inputs[1]] == x else { throw fail("adds \(x) and \(out[s.inputs[1]])") }
                y = x
            case .function(let f):
                do {
                    y = try f.outputShape(s.inputs.map { out[$0] })
                } catch {
                    throw fail(error.detail)
                }
                guard y.channels > 0, y.height > 0, y.width > 0 else { throw fail("gives \(y)") }
            }
            out.append(y)
        }
        return out
    }

    /// How many steps read each step's value (a residual counts as a read).
    public var readers: [Int] {
        var n = [Int](repeating: 0, count: steps.count)
        for s in steps { for v in s.reads { n[v] += 1 } }
        return n
    }

    /// A step's channel count where the description fixes it (nil after a flatten).
    public func channels(of i: Int) -> Int? {
        switch steps[i].op {
        case .input(let c): c
        case .conv(let c): c.conv.outChannels
        case .linear(let l, _): l.outFeatures
        case .batchNorm(let b): b.channels
        case .maxPool, .adaptiveAvgPool, .activation, .dropout, .stochasticDepth, .add:
            channels(of: steps[i].inputs[0])
        case .flatten: nil
        case .function(let f): f.outputChannels(steps[i].inputs.map { channels(of: $0) })
        }
    }
}
