import Kernels

/// One layer of a network description. Layers with parameters hold the module that owns them.
public enum Layer {
    /// The network's input, [N, channels, H, W].
    case input(channels: Int)
    case conv(Conv2d)
    case batchNorm(BatchNorm2d)
    case relu
    case relu6
    /// torch.nn.MaxPool2d (square window, -inf padding, floor mode).
    case maxPool(kernel: Int, stride: Int, padding: Int)
    /// torch.nn.AdaptiveAvgPool2d((height, width)).
    case adaptiveAvgPool(height: Int, width: Int)
    /// torch.flatten(x, 1): [N, C, H, W] → [N, C·H·W], in torch's (c, h, w) order.
    case flatten
    case linear(Linear)
    /// torch.nn.Dropout(p): the identity in eval mode; in training, zeroes each value with probability p
    /// and scales the rest by 1 / (1 - p).
    case dropout(p: Float)
    /// torchvision's StochasticDepth(p, "row"): the identity in eval mode; in training, each image's whole
    /// value is dropped with probability p and kept ones are scaled by 1 / (1 − p). p is a Python float,
    /// kept as such for torch's scale.
    case stochasticDepth(p: Double)
    /// The sum of the node's two inputs (a residual connection).
    case add
    /// A layer without parameters that brings its own shape rule and kernels (`LayerFunction`).
    case function(any LayerFunction)

    /// A short name for listings ("conv 3×3/2 g32", "relu6").
    public var summary: String {
        switch self {
        case .input(let c): "input \(c)"
        case .conv(let c) where c.isPositionwiseLinear:
            "linear \(c.inChannels)→\(c.outChannels) per position" + (c.bias != nil ? " +bias" : "")
        case .conv(let c):
            Self.convSummary(c)
        case .batchNorm(let b): "bn \(b.channels)"
        case .relu: "relu"
        case .relu6: "relu6"
        case .maxPool(let k, let s, let p): "maxpool \(k)×\(k)/\(s) p\(p)"
        case .adaptiveAvgPool(let h, let w): "adaptive avgpool \(h)×\(w)"
        case .flatten: "flatten"
        case .linear(let l): "linear \(l.inFeatures)→\(l.outFeatures)"
        case .dropout(let p): "dropout \(p)"
        case .add: "add"
        case .stochasticDepth(let p): "stochastic depth \(p)"
        case .function(let f): f.summary
        }
    }

    static func convSummary(_ c: Conv2d) -> String {
        let stride = c.stride > 1 ? "/\(c.stride)" : ""
        let groups = c.groups > 1 ? " g\(c.groups)" : ""
        let bias = c.bias != nil ? " +bias" : ""
        return "conv \(c.kernelHeight)×\(c.kernelWidth)\(stride)\(groups) \(c.inChannels)→\(c.outChannels)\(bias)"
    }

    /// The activation this layer is, if a kernel's epilogue can apply it: ReLU, ReLU6, and the Hardswish,
    /// SiLU and GELU functions.
    public var activation: Activation? {
        switch self {
        case .relu: .relu
        case .relu6: .relu6
        case .function(let f as ActivationFunction):
            switch f.function {
            case .hardswish: .hardswish
            case .silu: .silu
            case .gelu: .gelu
            default: nil
            }
        default: nil
        }
    }

    /// The module whose parameters and buffers this layer carries, if any.
    public var module: (any Module)? {
        switch self {
        case .conv(let c): c
        case .batchNorm(let b): b
        case .linear(let l): l
        case .function(let f as any ParametricFunction): f
        default: nil
        }
    }
}

/// A layer in a network: its torchvision module path (`layer2.0.conv1`, `features.3.conv.1.0`;
/// parameter-free layers carry the path of the module torch would use, or a descriptive one), the
/// layer, and the nodes it reads (indices into `Network.nodes`, all earlier).
public struct Node {
    public let name: String
    public internal(set) var layer: Layer
    public let inputs: [Int]
}

/// A network's stage: a name `--freeze` takes and the state-dict prefixes it owns.
public struct Stage: Sendable, Equatable {
    public let name: String
    public let prefixes: [String]

    public init(_ name: String, prefixes: [String]) {
        self.name = name
        self.prefixes = prefixes
    }
}

/// A network described once, under torchvision's state-dict names: a list of layers in forward order,
/// each reading earlier ones. Inference (BN folding, epilogue fusion, buffer planning), training
/// (forward, backward, freezing), loading and the tools all read this description; a family
/// (`Vision/Models/`) only builds it.
public final class Network: Module {
    /// torchvision's builder name (`resnet18`, `mobilenet_v2`), or a description for custom shapes.
    public let name: String
    public private(set) var nodes: [Node]
    /// The node whose output is the network's output (the logits).
    public private(set) var output: Int
    /// The stages in forward order, for freezing; the head is not one of them.
    public let stages: [Stage]
    /// The head's module path (`fc`, `classifier.6`, `classifier.1`): the layer `replaceHead` replaces.
    public private(set) var head: String
    /// How the family's older files spell some state-dict keys (`Module.currentName(ofLegacy:)`): the
    /// family's torchvision loader's renaming, nil when it has none.
    public var legacyNames: (@Sendable (String) -> String?)?

    public func currentName(ofLegacy name: String) -> String? { legacyNames?(name) }

    /// State-dict prefixes of parts the family's files hold and the network leaves out (`aux1.`):
    /// `Module.isDropped`.
    public var droppedPrefixes: [String] = []

    public func isDropped(_ name: String) -> Bool { droppedPrefixes.contains { name.hasPrefix($0) } }

    public init(name: String, nodes: [Node], stages: [Stage], head: String) {
        precondition(!nodes.isEmpty, "a network has nodes")
        for (i, n) in nodes.enumerated() {
            precondition(n.inputs.allSatisfy { $0 >= 0 && $0 < i }, "node \(n.name) reads a later node")
        }
        self.name = name
        self.nodes = nodes
        self.output = nodes.count - 1
        self.stages = stages
        self.head = head
        precondition(headNodes.first != nil, "no head \(head)")
    }

    public func state(prefix: String) -> [(name: String, entry: StateEntry)] {
        Self.torchOrder(nodes.flatMap { n in n.layer.module.map { $0.state(prefix: prefix + n.name + ".") } ?? [] })
    }

    /// `entries` (in node order) in the order torch's `state_dict()` walks a module tree: at each module
    /// its own entries, then each child's, children in the order they first appear. Node order already
    /// is that order except where a module holds a parameter of its own beside children that run
    /// before it uses it (ConvNeXt's `layer_scale`, listed before its block's layers).
    static func torchOrder(_ entries: [(name: String, entry: StateEntry)]) -> [(name: String, entry: StateEntry)] {
        final class Tree {
            var own: [Int] = []
            var children: [Substring: Tree] = [:]
            var order: [Substring] = []
        }
        let root = Tree()
        for (i, e) in entries.enumerated() {
            var t = root
            for part in e.name.split(separator: ".", omittingEmptySubsequences: false).dropLast() {
                if let c = t.children[part] {
                    t = c
                } else {
                    let c = Tree()
                    t.children[part] = c
                    t.order.append(part)
                    t = c
                }
            }
            t.own.append(i)
        }
        var out: [(name: String, entry: StateEntry)] = []
        out.reserveCapacity(entries.count)
        func walk(_ t: Tree) {
            for i in t.own { out.append(entries[i]) }
            for k in t.order { walk(t.children[k]!) }
        }
        walk(root)
        return out
    }

    /// The nodes (indices) whose layers belong to the head: `head` itself or under `head.`.
    public var headNodes: [Int] {
        nodes.indices.filter { nodes[$0].name == head || nodes[$0].name.hasPrefix(head + ".") }
    }

    /// The head's first linear layer.
    public var headLinears: [Linear] {
        headNodes.compactMap { if case .linear(let l) = nodes[$0].layer { l } else { nil } }
    }

    /// The head's 1×1 convolution when the head is one rather than Linear layers (SqueezeNet's
    /// `classifier.1`, which the ReLU and the global average pool after it follow), nil otherwise.
    public var headConvolution: Conv2d? {
        guard headLinears.isEmpty else { return nil }
        return headNodes.lazy.compactMap { if case .conv(let c) = self.nodes[$0].layer { c } else { nil } }.first
    }

    /// Outputs of the network (the last linear layer's rows, or the head convolution's channels).
    public var classes: Int { headLinears.last?.outFeatures ?? headConvolution!.outChannels }

    /// Features into the head (its first linear layer's columns, or the head convolution's input
    /// channels, at every position).
    public var headInputFeatures: Int { headLinears.first?.inFeatures ?? headConvolution!.inChannels }

    /// How many nodes read each node's output.
    public var consumers: [[Int]] {
        var c = [[Int]](repeating: [], count: nodes.count)
        for (i, n) in nodes.enumerated() { for j in n.inputs { c[j].append(i) } }
        return c
    }

    /// The node named `name` with parameters (conv, bn, linear), if any.
    public func node(named name: String) -> Int? { nodes.firstIndex { $0.name == name && $0.layer.module != nil } }

    /// The convolution named `name` (a precondition: the family defines it).
    public func conv(_ name: String) -> Conv2d {
        guard let i = node(named: name), case .conv(let c) = nodes[i].layer else {
            preconditionFailure("no convolution \(name)")
        }
        return c
    }

    /// The BatchNorm named `name` (a precondition: the family defines it).
    public func batchNorm(_ name: String) -> BatchNorm2d {
        guard let i = node(named: name), case .batchNorm(let b) = nodes[i].layer else {
            preconditionFailure("no BatchNorm \(name)")
        }
        return b
    }

    /// A new head for `classes` outputs, Xavier-uniform from `seed`, in place of the old one.
    ///
    /// - `.linear`: one Linear named as the old head (`fc`).
    /// - `.mlp(hidden:dropout:)`: `head.0` Linear(features, hidden), `head.1` ReLU, `head.2` Dropout,
    ///   `head.3` Linear(hidden, classes): what `model.fc = nn.Sequential(…)` gives in torch.
    ///
    /// The layers the old head read stay; the head's input is the node before the old head. A convolution
    /// head (`headConvolution`) takes `.linear` only: a new 1×1 convolution with a bias, Xavier-uniform,
    /// in the old one's place, the layers after it kept (torch: `model.classifier[1] = nn.Conv2d(…)`).
    public func replaceHead(classes: Int, kind: HeadKind = .linear, seed: UInt64 = 0) {
        if let conv = headConvolution {
            precondition(kind == .linear, "a convolution head is replaced by a convolution")
            let at = headNodes.first { if case .conv = nodes[$0].layer { true } else { false } }!
            let c = Conv2d(conv.inChannels, classes, kernel: 1, bias: true)
            var rng = SplitMix64(seed: seed)
            let bound = (6 / Float(conv.inChannels + classes)).squareRoot()
            for i in 0..<c.weight.count { c.weight.data[i] = (rng.nextUnitFloat() * 2 - 1) * bound }
            nodes[at].layer = .conv(c)
            return
        }
        let old = headNodes
        let features = headInputFeatures
        guard let first = old.first, let last = old.last, last == nodes.count - 1 else {
            preconditionFailure("the head is not the network's last layers")
        }
        let source = nodes[first].inputs[0]
        nodes.removeSubrange(first...)
        switch kind {
        case .linear:
            let l = Linear(features, classes)
            l.resetXavierUniform(seed: seed)
            nodes.append(Node(name: head, layer: .linear(l), inputs: [source]))
        case .mlp(let hidden, let p):
            let l0 = Linear(features, hidden), l3 = Linear(hidden, classes)
            l0.resetXavierUniform(seed: seed)
            l3.resetXavierUniform(seed: seed &+ 1)
            let at = nodes.count
            nodes.append(Node(name: head + ".0", layer: .linear(l0), inputs: [source]))
            nodes.append(Node(name: head + ".1", layer: .relu, inputs: [at]))
            nodes.append(Node(name: head + ".2", layer: .dropout(p: p), inputs: [at + 1]))
            nodes.append(Node(name: head + ".3", layer: .linear(l3), inputs: [at + 2]))
        }
        output = nodes.count - 1
    }

    /// Every parameter and buffer filled from a seeded generator: weights uniform in ±√(3 / fan-in)
    /// (unit variance through each layer), BatchNorm scales near 1, running variances in [0.5, 1.5]. For
    /// benchmarks and tests that need realistic values without a checkpoint.
    public func fillSeeded(_ seed: UInt64 = 1) {
        var rng = SplitMix64(seed: seed)
        func uniform(_ p: Parameter, _ bound: Float, _ offset: Float = 0) {
            for i in 0..<p.count { p.data[i] = offset + (rng.nextUnitFloat() * 2 - 1) * bound }
        }
        for n in nodes {
            switch n.layer {
            case .conv(let c):
                uniform(c.weight, (3 / Float(c.inChannels / c.groups * c.kernelHeight * c.kernelWidth)).squareRoot())
                if let b = c.bias { uniform(b, 0.05) }
            case .linear(let l):
                uniform(l.weight, (3 / Float(l.inFeatures)).squareRoot())
                uniform(l.bias, 0.05)
            case .batchNorm(let b):
                uniform(b.weight, 0.2, 1)
                uniform(b.bias, 0.1)
                uniform(b.runningMean, 0.1)
                uniform(b.runningVar, 0.5, 1)
            case .function(let f as any ParametricFunction): f.fillSeeded(&rng)
            default: break
            }
        }
    }

    /// What a convolution or linear layer at `start` can carry in one kernel: the BatchNorm that alone reads
    /// it, then a residual `add` that alone reads that (when `takesResidual`), then a ReLU or ReLU6 that
    /// alone reads the result. Inference and training both fuse along these chains.
    public struct Chain: Sendable {
        public var start: Int
        public var batchNorm: Int?
        /// The `add` node and the node it adds (the other operand).
        public var add: Int?, residual: Int?
        public var activation: Int?
        /// The last node the chain takes: its value is the chain's output.
        public var end: Int { activation ?? add ?? batchNorm ?? start }
        /// Every node the chain takes after `start`.
        public var absorbed: [Int] { [batchNorm, add, activation].compactMap { $0 } }
    }

    /// The chain starting at conv or linear node `start`; `taken` holds nodes other chains already took;
    /// `activations` are those the chain may end with.
    public func chain(
        from start: Int, takesResidual: Bool, taken: Set<Int> = [], activations: Set<Activation> = Activation.trainable
    ) -> Chain {
        let readers = consumers
        func only(_ n: Int) -> Int? { readers[n].count == 1 && !taken.contains(readers[n][0]) ? readers[n][0] : nil }
        var c = Chain(start: start)
        if case .conv = nodes[start].layer, let r = only(start), case .batchNorm = nodes[r].layer { c.batchNorm = r }
        if takesResidual, let r = only(c.end), case .add = nodes[r].layer {
            c.residual = nodes[r].inputs[0] == c.end ? nodes[r].inputs[1] : nodes[r].inputs[0]
            c.add = r
        }
        if let r = only(c.end), let a = nodes[r].layer.activation, activations.contains(a) { c.activation = r }
        return c
    }

    /// The network as eval mode runs it: the same layer objects, without the layers that are the identity
    /// there and that would split a fusable chain (stochastic depth); each of their readers reads their
    /// input instead. Inference lowers this view.
    public var evaluationView: Network {
        let removed = nodes.indices.filter { if case .stochasticDepth = nodes[$0].layer { true } else { false } }
        guard !removed.isEmpty else { return self }
        var map = [Int](repeating: -1, count: nodes.count)
        var out: [Node] = []
        for (i, n) in nodes.enumerated() {
            let inputs = n.inputs.map { map[$0] }
            if case .stochasticDepth = n.layer {
                map[i] = inputs[0]
                continue
            }
            map[i] = out.count
            out.append(Node(name: n.name, layer: n.layer, inputs: inputs))
        }
        let view = Network(name: name, nodes: out, stages: stages, head: head)
        view.output = map[output]
        return view
    }

    /// The head alone as a network: an input of `headInputFeatures` channels (1×1), then the head's layers
    /// under their own names, sharing this network's parameter objects. A frozen backbone's head trains
    /// on cached features through it.
    public func headNetwork() -> Network {
        let indices = headNodes
        var map = [Int: Int]()
        var out = [Node(name: "input", layer: .input(channels: headInputFeatures), inputs: [])]
        map[nodes[indices[0]].inputs[0]] = 0
        for i in indices {
            map[i] = out.count
            out.append(Node(name: nodes[i].name, layer: nodes[i].layer, inputs: nodes[i].inputs.map { map[$0]! }))
        }
        return Network(name: name + " head", nodes: out, stages: [], head: head)
    }

    /// A readable listing: one line per node, "name: summary ← inputs".
    public var listing: String {
        nodes.enumerated().map { i, n in
            "\(i) \(n.name): \(n.layer.summary)"
                + (n.inputs.isEmpty ? "" : " ← " + n.inputs.map(String.init).joined(separator: ", "))
        }.joined(separator: "\n")
    }
}

/// The classifier a fine-tuning run puts on a network.
public enum HeadKind: Sendable, Equatable, CustomStringConvertible {
    /// One Linear layer.
    case linear
    /// Linear → ReLU → Dropout(p) → Linear (the seeds' "add hidden layers").
    case mlp(hidden: Int, dropout: Float)

    /// Reads `linear` or `mlp:HIDDEN[:DROPOUT]` (dropout 0.5 when omitted).
    public init?(parsing text: String) {
        if text == "linear" {
            self = .linear
            return
        }
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count >= 2, parts.count <= 3, parts[0] == "mlp", let h = Int(parts[1]), h > 0 else { return nil }
        var p: Float = 0.5
        if parts.count == 3 {
            guard let d = Float(parts[2]), d >= 0, d < 1 else { return nil }
            p = d
        }
        self = .mlp(hidden: h, dropout: p)
    }

    public var description: String {
        switch self {
        case .linear: "linear"
        case .mlp(let h, let p): "mlp:\(h):\(p)"
        }
    }
}

/// Builds a `Network` in forward order, tracking each node's channels so that families state only what
/// torchvision's constructors state.
public struct NetworkBuilder {
    public private(set) var nodes: [Node]
    /// Channels (or features, after flatten) of each node's output; nil where it depends on the input size.
    public private(set) var channels: [Int?]

    public init(inputChannels: Int = 3) {
        nodes = [Node(name: "input", layer: .input(channels: inputChannels), inputs: [])]
        channels = [inputChannels]
    }

    /// The input node.
    public var input: Int { 0 }

    /// Appends `layer` named `name`, reading `inputs`; returns its index.
    @discardableResult
    public mutating func add(_ name: String, _ layer: Layer, _ inputs: [Int], channels c: Int?) -> Int {
        nodes.append(Node(name: name, layer: layer, inputs: inputs))
        channels.append(c)
        return nodes.count - 1
    }

    public func channelsOf(_ x: Int) -> Int {
        guard let c = channels[x] else { preconditionFailure("\(nodes[x].name)'s channels depend on the input size") }
        return c
    }

    public mutating func conv(
        _ name: String, _ x: Int, _ out: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
        groups: Int = 1, bias: Bool = false
    ) -> Int {
        add(
            name,
            .conv(
                Conv2d(channelsOf(x), out, kernel: kernel, stride: stride, padding: padding, groups: groups, bias: bias)
            ),
            [x], channels: out)
    }

    /// torch.nn.Linear(in, out) over each position's channels (a 1×1 convolution with a bias, its weight
    /// stored [out, in]).
    public mutating func positionwiseLinear(_ name: String, _ x: Int, _ out: Int) -> Int {
        add(
            name, .conv(Conv2d(channelsOf(x), out, kernel: 1, bias: true, positionwiseLinear: true)), [x], channels: out
        )
    }

    public mutating func batchNorm(_ name: String, _ x: Int, eps: Float = 1e-5, momentum: Float = 0.1) -> Int {
        add(name, .batchNorm(BatchNorm2d(channelsOf(x), eps: eps, momentum: momentum)), [x], channels: channels[x])
    }

    /// A parameter-free layer reading `inputs` (`LayerFunction`).
    public mutating func function(_ name: String, _ f: any LayerFunction, _ inputs: [Int]) -> Int {
        add(name, .function(f), inputs, channels: f.outputChannels(inputs.map { channels[$0] }))
    }

    /// Hardswish, Hardsigmoid, Sigmoid, SiLU or GELU.
    public mutating func activation(_ name: String, _ f: PointwiseFunction, _ x: Int) -> Int {
        function(name, ActivationFunction(f), [x])
    }

    public mutating func relu(_ name: String, _ x: Int) -> Int { add(name, .relu, [x], channels: channels[x]) }
    public mutating func relu6(_ name: String, _ x: Int) -> Int { add(name, .relu6, [x], channels: channels[x]) }

    public mutating func maxPool(_ name: String, _ x: Int, kernel: Int, stride: Int, padding: Int = 0) -> Int {
        add(name, .maxPool(kernel: kernel, stride: stride, padding: padding), [x], channels: channels[x])
    }

    public mutating func adaptiveAvgPool(_ name: String, _ x: Int, _ height: Int, _ width: Int) -> Int {
        add(name, .adaptiveAvgPool(height: height, width: width), [x], channels: channels[x])
    }

    /// Flattens [C, h, w] to C·h·w features, where h × w is known (after an adaptive pool).
    public mutating func flatten(_ name: String, _ x: Int, spatial: Int) -> Int {
        add(name, .flatten, [x], channels: channels[x].map { $0 * spatial })
    }

    public mutating func linear(_ name: String, _ x: Int, _ out: Int) -> Int {
        add(name, .linear(Linear(channelsOf(x), out)), [x], channels: out)
    }

    public mutating func dropout(_ name: String, _ x: Int, p: Float) -> Int {
        add(name, .dropout(p: p), [x], channels: channels[x])
    }

    public mutating func stochasticDepth(_ name: String, _ x: Int, p: Double) -> Int {
        add(name, .stochasticDepth(p: p), [x], channels: channels[x])
    }

    public mutating func sum(_ name: String, _ a: Int, _ b: Int) -> Int {
        precondition(channels[a] == channels[b], "adding \(nodes[a].name) and \(nodes[b].name) of different widths")
        return add(name, .add, [a, b], channels: channels[a])
    }

    /// conv → BN (→ activation): torchvision's Conv2dNormActivation and ResNet's conv/bn pairs.
    public mutating func convBN(
        _ conv: String, _ bn: String, _ x: Int, _ out: Int, kernel: Int, stride: Int = 1,
        padding: Int = 0, groups: Int = 1
    ) -> Int {
        batchNorm(bn, self.conv(conv, x, out, kernel: kernel, stride: stride, padding: padding, groups: groups))
    }

    public func build(name: String, stages: [Stage], head: String) -> Network {
        let names = nodes.compactMap { $0.layer.module != nil ? $0.name : nil }
        precondition(Set(names).count == names.count, "two layers with parameters share a name")
        return Network(name: name, nodes: nodes, stages: stages, head: head)
    }
}

/// A value's shape in a network, per image: channels × height × width (1 × 1 after a flatten or linear).
public struct NodeShape: Sendable, Equatable, CustomStringConvertible {
    public var channels: Int, height: Int, width: Int
    public init(channels: Int, height: Int, width: Int) {
        self.channels = channels
        self.height = height
        self.width = width
    }
    public var description: String { "\(channels)×\(height)×\(width)" }
}

extension Network {
    /// Every node's output shape for an input of height × width, in node order (`Lowering.shapes`, the
    /// one walk of the shape rules, read per node); nil when the input does not fit the network.
    public func shapes(height: Int, width: Int) -> [NodeShape]? {
        let lowering = Lowering(self)
        guard let steps = try? lowering.shapes(height: height, width: width) else { return nil }
        return lowering.stepOfNode.map { steps[$0] }
    }
}
