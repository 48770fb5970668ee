import Kernels
import NN

/// Training steps through any `Network`: a forward pass that keeps what the backward pass needs, the
/// backward pass through every layer whose input gradient something trainable needs, and the optimizer's
/// step. Activations are channels-last.
///
/// The description is lowered as inference lowers it: each convolution takes its BatchNorm, a residual
/// `add` and its ReLU/ReLU6 as one unit (`Network.chain`), so the norm's apply adds the residual and
/// clamps in one pass, and its backward pass masks by the activation while it sums. Layers whose
/// parameters are all frozen run with their BatchNorm in eval mode, folded into the convolution (or in
/// training mode with `frozenBatchNormTrains`: batch statistics, running statistics updated, as torch
/// does for a model in `train()` with some `requires_grad` off). Dropout runs in training mode with
/// masks from `DropoutMask` (seeded per step and layer).
///
/// Freezing must be a prefix in forward order (what `Freeze` gives): no frozen layer sits between two
/// trainable ones, so no gradient ever flows through a frozen layer.
public final class NetworkStep {
    public let network: Network
    public let optimizer: any Optimizer
    /// Averages the gradients over a data-parallel group before the optimizer sees them, bucket by bucket
    /// as the backward pass finishes them (overlapped when the reducer says so).
    public var reducer: GradientReducer?
    public let frozenBatchNormTrains: Bool
    /// Every BatchNorm in eval mode, the trained ones included: the running statistics normalise and
    /// never change, while trained BatchNorms' γ and β still learn (torch: `model.eval()` throughout).
    public let batchNormUsesRunningStatistics: Bool
    public var threads: Int
    /// Seed of the dropout masks (`DropoutMask`): step s's mask at a layer is drawn from (seed, s, its name).
    public var dropoutSeed: UInt64
    let l2sp: L2SP?
    let trainable: [(name: String, parameter: Parameter)]
    let buffers = BufferPool()
    var scratch = AlignedFloats(zeros: 0)
    /// The Winograd-transformed weights of the convolution running now (transformed again every step).
    var transformed = AlignedFloats(zeros: 0)
    /// Seconds spent per phase since `profile` was set to `[:]`; nil records nothing.
    public var profile: [String: Double]?

    enum ConvKind { case dense, depthwise, grouped }

    /// A convolution with the BatchNorm, residual and activation it carries.
    final class ConvUnit {
        let conv: Conv2d, bn: BatchNorm2d?
        let name: String, bnName: String?
        let kind: ConvKind
        let activation: Activation
        /// The step whose value is added before the activation.
        let residual: Int?
        /// No parameter of the unit trains.
        let frozen: Bool
        /// Frozen with its BatchNorm in eval mode: one convolution with the folded weight and a bias.
        let folds: Bool
        lazy var folded: (weight: [Float], bias: [Float]) = {
            guard let bn else {
                return (conv.weight.data, conv.bias?.data ?? [Float](repeating: 0, count: conv.outChannels))
            }
            return BatchNorm.fold(
                convWeight: conv.weight.data, convBias: conv.bias?.data, outChannels: conv.outChannels,
                weight: bn.weight.data, bias: bn.bias.data, mean: bn.runningMean.data,
                variance: bn.runningVar.data, eps: bn.eps)
        }()
        lazy var foldedPacked = PackedConvWeight(
            folded.weight, outChannels: conv.outChannels, inChannels: conv.inChannels,
            kernelH: conv.kernelHeight, kernelW: conv.kernelWidth)
        // Saved by the forward pass.
        var geometry = Conv2dGeometry(batch: 1, inChannels: 1, height: 1, width: 1, outChannels: 1, kernel: (1, 1))
        var input: [Float] = [], preNorm: [Float] = []
        var mean: [Float] = [], invStd: [Float] = []

        init(
            _ conv: Conv2d, bn: BatchNorm2d?, name: String, bnName: String?, activation: Activation, residual: Int?,
            frozen: Bool, folds: Bool
        ) {
            self.conv = conv
            self.bn = bn
            self.name = name
            self.bnName = bnName
            kind = conv.groups == 1 ? .dense : conv.isDepthwise ? .depthwise : .grouped
            self.activation = activation
            self.residual = residual
            self.frozen = frozen
            self.folds = folds
        }
    }

    /// A BatchNorm that follows no convolution (DenseNet's `norm1` after a concatenation).
    final class NormUnit {
        let bn: BatchNorm2d
        let name: String
        let frozen: Bool
        // Saved by the forward pass when it trains.
        var mean: [Float] = [], invStd: [Float] = []

        init(_ bn: BatchNorm2d, name: String, frozen: Bool) {
            self.bn = bn
            self.name = name
            self.frozen = frozen
        }
    }

    enum Op {
        case input(channels: Int)
        case conv(ConvUnit)
        case batchNorm(NormUnit)
        /// A linear layer and the activation after it.
        case linear(Linear, name: String, frozen: Bool, activation: Activation)
        case maxPool(kernel: Int, stride: Int, padding: Int)
        case adaptiveAvgPool(height: Int, width: Int)
        case flatten
        case activation(Activation)
        case dropout(p: Float, name: String)
        case stochasticDepth(p: Double, name: String)
        case add(Activation)
        case function(any LayerFunction)
    }

    struct Step {
        var name: String
        var op: Op
        var inputs: [Int]
    }

    /// A value's shape, channels-last.
    typealias Shape = NodeShape

    /// The description read into steps (`Lowering`); `steps` are its steps, one for one.
    let lowering: Lowering
    let steps: [Step]
    /// Per step: whether its output's gradient is needed (something at or before it trains).
    let needsGradient: [Bool]
    // Per step, saved by the forward pass.
    var values: [[Float]] = []
    var shapes: [Shape] = []
    var poolIndices: [Int: [Int32]] = [:]
    var dropoutMasks: [Int: [Float]] = [:]

    /// `groups` gives the optimizer's parameter groups for the trainable parameters (after `frozen`
    /// prefixes are frozen); the default is one group with `options`.
    public init(
        network: Network, frozen prefixes: [String], options: OptimizerOptions, optimizer kind: OptimizerKind = .sgd,
        groups: ((_ trainable: [(name: String, parameter: Parameter)]) -> [ParameterGroup])? = nil,
        l2sp: (alpha: Double, beta: Double)? = nil, frozenBatchNormTrains: Bool = false,
        batchNormUsesRunningStatistics: Bool = false, dropoutSeed: UInt64 = 0, threads: Int = 1
    ) throws {
        guard !(frozenBatchNormTrains && batchNormUsesRunningStatistics) else {
            throw FineTuningError.conflictingBatchNormModes
        }
        self.network = network
        self.frozenBatchNormTrains = frozenBatchNormTrains
        self.batchNormUsesRunningStatistics = batchNormUsesRunningStatistics
        self.threads = threads
        self.dropoutSeed = dropoutSeed
        for (_, p) in network.namedParameters { p.requiresGrad = true }
        if !prefixes.isEmpty { network.freeze(prefixes) }
        trainable = network.trainableParameters
        optimizer = try kind.make(
            groups?(trainable) ?? [ParameterGroup(name: "all", parameters: trainable, options: options)])
        self.l2sp = l2sp.map {
            L2SP(
                alpha: $0.alpha, beta: $0.beta, parameters: network.namedParameters, headPrefixes: [network.head + "."])
        }
        lowering = Lowering(network)
        (steps, needsGradient) = Self.lower(lowering, frozenBatchNormTrains: frozenBatchNormTrains)
    }

    /// `Lowering`'s steps with what training adds: whether each convolution is frozen (and then folded,
    /// unless frozen BatchNorms train), and whether each step's output needs a gradient.
    static func lower(_ lowering: Lowering, frozenBatchNormTrains: Bool) -> ([Step], [Bool]) {
        func frozen(_ m: (any Module)?) -> Bool {
            guard let m else { return true }
            return m.state(prefix: "").allSatisfy {
                if case .parameter(let p) = $0.entry { !p.requiresGrad } else { true }
            }
        }
        var steps: [Step] = []
        var trains: [Bool] = []
        for s in lowering.steps {
            let op: Op
            var t = false
            switch s.op {
            case .input(let c): op = .input(channels: c)
            case .conv(let c):
                let isFrozen = frozen(c.conv) && frozen(c.bn)
                op = .conv(
                    ConvUnit(
                        c.conv, bn: c.bn, name: s.name, bnName: c.bnName, activation: c.activation,
                        residual: c.residual, frozen: isFrozen,
                        folds: isFrozen && (c.bn == nil || !frozenBatchNormTrains)))
                t = !isFrozen
            case .linear(let l, let a):
                op = .linear(l, name: s.name, frozen: frozen(l), activation: a)
                t = !frozen(l)
            case .batchNorm(let bn):
                op = .batchNorm(NormUnit(bn, name: s.name, frozen: frozen(bn)))
                t = !frozen(bn)
            case .maxPool(let k, let st, let p): op = .maxPool(kernel: k, stride: st, padding: p)
            case .adaptiveAvgPool(let h, let w): op = .adaptiveAvgPool(height: h, width: w)
            case .flatten: op = .flatten
            case .activation(let a): op = .activation(a)
            case .dropout(let p): op = .dropout(p: p, name: s.name)
            case .stochasticDepth(let p): op = .stochasticDepth(p: p, name: s.name)
            case .add(let a): op = .add(a)
            case .function(let f):
                op = .function(f)
                if let m = f as? any ParametricFunction { t = !frozen(m) }
            }
            steps.append(Step(name: s.name, op: op, inputs: s.inputs))
            trains.append(t)
        }
        // A step's output needs a gradient when it or anything it reads (directly, or as a residual) trains.
        var needs = [Bool](repeating: false, count: steps.count)
        for (i, s) in steps.enumerated() {
            needs[i] = trains[i] || lowering.steps[i].reads.contains { needs[$0] }
            if case .conv(let u) = s.op, u.frozen, needs[i] {
                preconditionFailure(
                    "\(s.name) is frozen but a trainable layer precedes it: freeze a prefix of the network")
            }
            if case .function(let f as any ParametricFunction) = s.op, frozen(f), needs[i] {
                preconditionFailure(
                    "\(s.name) is frozen but a trainable layer precedes it: freeze a prefix of the network")
            }
            if case .batchNorm(let u) = s.op, u.frozen, needs[i] {
                preconditionFailure(
                    "\(s.name) is frozen but a trainable layer precedes it: freeze a prefix of the network")
            }
        }
        return (steps, needs)
    }

    @inline(__always)
    func timed<R>(_ phase: String, _ body: () throws -> R) rethrows -> R {
        guard profile != nil else { return try body() }
        let t0 = Timing.now()
        defer { profile![phase, default: 0] += Timing.now() - t0 }
        return try body()
    }

    func ensureScratch(_ count: Int) {
        if scratch.count < count { scratch = AlignedFloats(uninitializedCount: count) }
    }

    // MARK: forward

    /// Logits [batch, classes] for `input` [batch, C, height, width] (NCHW, normalised), keeping what the
    /// backward pass needs.
    /// `shapes` are the lowering's for this input size (`Lowering.shapes`, which `step` checks first).
    func forward(_ input: [Float], batch: Int, height: Int, width: Int, step: Int, shapes: [Shape]) -> [Float] {
        values = []
        self.shapes = shapes
        for (i, s) in steps.enumerated() {
            let x = s.inputs.first.map { values[$0] } ?? []
            let xs = s.inputs.first.map { shapes[$0] } ?? Shape(channels: 0, height: height, width: width)
            var y: [Float]
            let ys = shapes[i]
            switch s.op {
            case .input(let c):
                y = buffers.take(input.count)
                input.withUnsafeBufferPointer { src in
                    y.withUnsafeMutableBufferPointer {
                        Layout.nhwc(
                            src.baseAddress!, $0.baseAddress!, batch: batch, channels: c, plane: height * width,
                            threads: threads)
                    }
                }
            case .conv(let u):
                let g = u.conv.geometry(batch: batch, height: xs.height, width: xs.width)
                y = forward(u, x, g, residual: u.residual.map { values[$0] })
            case .batchNorm(let u):
                y = buffers.take(x.count)
                let bn = u.bn, rows = batch * xs.height * xs.width
                // Frozen: eval mode on the running statistics (unless frozen BatchNorms train); trained:
                // batch statistics, or the running ones with `batchNormUsesRunningStatistics`.
                let eval = u.frozen && !frozenBatchNormTrains
                let fixed = eval || batchNormUsesRunningStatistics
                u.mean = [Float](repeating: 0, count: bn.channels)
                u.invStd = u.mean
                timed("forward bn") {
                    BatchNormTrain.forward(
                        x, &y, rows: rows, channels: bn.channels, gamma: bn.weight.data, beta: bn.bias.data,
                        runningMean: &bn.runningMean.data, runningVar: &bn.runningVar.data, momentum: bn.momentum,
                        eps: bn.eps, savedMean: &u.mean, savedInvStd: &u.invStd, runningStatistics: fixed,
                        threads: threads)
                }
                if !fixed { bn.numBatchesTracked.value += 1 }
            case .linear(let l, _, _, let a):
                y = timed("forward linear") { LinearHead.forward(x, l, batch: batch) }
                if a != .none { for j in y.indices { y[j] = a.apply(y[j]) } }
            case .maxPool(let k, let st, let p):
                y = buffers.take(batch * ys.channels * ys.height * ys.width)
                // Kept from step to step (every index is written).
                var indices = poolIndices.removeValue(forKey: i) ?? []
                if indices.count != y.count { indices = [Int32](repeating: 0, count: y.count) }
                timed("forward pool") {
                    PoolBackward.max2d(
                        x, &y, indices: &indices, batch: batch, channels: xs.channels, height: xs.height,
                        width: xs.width, kernel: k, stride: st, padding: p, threads: threads)
                }
                poolIndices[i] = indices
            case .adaptiveAvgPool(let h, let w):
                y = buffers.take(batch * xs.channels * h * w)
                y.withUnsafeMutableBufferPointer { o in
                    x.withUnsafeBufferPointer { src in
                        if h == 1 && w == 1 {
                            PoolNHWC.globalAverage(
                                src.baseAddress!, o.baseAddress!, batch: batch, channels: xs.channels,
                                plane: xs.height * xs.width)
                        } else {
                            PoolNHWC.adaptiveAverage(
                                src.baseAddress!, o.baseAddress!, batch: batch, channels: xs.channels,
                                height: xs.height, width: xs.width, outHeight: h, outWidth: w)
                        }
                    }
                }
            case .flatten:
                // torch's (c, h, w) order, which the next linear layer's weight columns follow.
                y =
                    xs.height * xs.width == 1
                    ? x : Layout.nchw(x, batch: batch, channels: xs.channels, plane: xs.height * xs.width)
            case .activation(let a):
                y = x.map(a.apply)
            case .dropout(let p, let name):
                let mask = DropoutMask.scales(count: x.count, p: p, seed: dropoutSeed, step: step, layer: name)
                y = zip(x, mask).map { $0 * $1 }
                dropoutMasks[i] = mask
            case .stochasticDepth(let p, let name):
                // Training mode where its stage trains; in a frozen stage (eval mode there), the identity.
                if needsGradient[i] && p > 0 {
                    let mask = DropoutMask.rowScales(
                        rows: batch, p: p, seed: dropoutSeed, step: step, layer: name)
                    let each = x.count / batch
                    y = buffers.take(x.count)
                    for n in 0..<batch { for j in (n * each)..<((n + 1) * each) { y[j] = x[j] * mask[n] } }
                    dropoutMasks[i] = mask
                } else {
                    y = x
                }
            case .add(let a):
                let b = values[s.inputs[1]]
                y = zip(x, b).map { a.apply($0 + $1) }
            case .function(let f):
                y = buffers.take(batch * ys.channels * ys.height * ys.width)
                y.withUnsafeMutableBufferPointer { o in
                    withBaseAddresses(s.inputs.map { values[$0] }) { xs in
                        timed("forward \(f.summary)") {
                            f.forward(
                                xs, shapes: s.inputs.map { shapes[$0] }, batch: batch, output: o.baseAddress!,
                                threads: threads)
                        }
                    }
                }
            }
            values.append(y)
        }
        return values[steps.count - 1]
    }

    /// One convolution unit's forward pass; saves what backward needs when it trains.
    func forward(_ u: ConvUnit, _ x: [Float], _ g: Conv2dGeometry, residual: [Float]?) -> [Float] {
        u.geometry = g
        var y = buffers.take(g.outputCount)
        if u.folds {
            let f = u.folded
            timed("forward conv (frozen, folded)") {
                if u.kind == .dense {
                    // Frozen weights never change: packed once, and always the direct GEMM.
                    let packed = u.foldedPacked
                    ensureScratch(ConvNHWC.scratchCount(threads: threads))
                    x.withUnsafeBufferPointer { xp in
                        f.bias.withUnsafeBufferPointer { b in
                            y.withUnsafeMutableBufferPointer { o in
                                scratch.withUnsafeMutableBufferPointer { s in
                                    withBaseAddress(residual) { r in
                                        ConvNHWC.forward(
                                            g, input: xp.baseAddress!, weight: packed, bias: b.baseAddress, residual: r,
                                            activation: u.activation, output: o.baseAddress!, scratch: s.baseAddress!,
                                            threads: threads)
                                    }
                                }
                            }
                        }
                    }
                } else {
                    convolve(
                        u.kind, g, x, weight: f.weight, bias: f.bias, residual: residual, activation: u.activation,
                        into: &y)
                }
            }
            return y
        }
        guard let bn = u.bn else {
            // No BatchNorm: the bias, residual and activation in the convolution's epilogue.
            timed("forward conv") {
                convolve(
                    u.kind, g, x, weight: u.conv.weight.data, bias: u.conv.bias?.data, residual: residual,
                    activation: u.activation, into: &y)
            }
            if !u.frozen { u.input = x }
            return y
        }
        var c = buffers.take(g.outputCount)
        timed("forward conv") {
            convolve(
                u.kind, g, x, weight: u.conv.weight.data, bias: u.conv.bias?.data, residual: nil, activation: .none,
                into: &c)
        }
        let k = g.outChannels, rows = g.batch * g.outHeight * g.outWidth
        u.mean = [Float](repeating: 0, count: k)
        u.invStd = [Float](repeating: 0, count: k)
        timed("forward bn+add+act") {
            withBaseAddress(residual) { r in
                BatchNormTrain.forward(
                    c, &y, rows: rows, channels: k, gamma: bn.weight.data, beta: bn.bias.data,
                    runningMean: &bn.runningMean.data, runningVar: &bn.runningVar.data, momentum: bn.momentum,
                    eps: bn.eps, savedMean: &u.mean, savedInvStd: &u.invStd, residual: r,
                    activation: u.activation, runningStatistics: batchNormUsesRunningStatistics, threads: threads)
            }
        }
        if !batchNormUsesRunningStatistics { bn.numBatchesTracked.value += 1 }
        if u.frozen {
            buffers.give(c)
        } else {
            u.input = x
            u.preNorm = c
        }
        return y
    }

    /// y = x ⊛ weight (+ bias) (+ residual), then the activation, by the unit's kind: dense by Winograd
    /// where the inference rule picks it (`WinogradNHWC.preferred`), else the packed GEMM; depthwise;
    /// grouped. The weights change every step, so they are packed or transformed here each time.
    /// `flipped` (dense Winograd only): the filters are those of `weight` [C, K, 3, 3]'s input gradient.
    func convolve(
        _ kind: ConvKind, _ g: Conv2dGeometry, _ x: [Float], weight: [Float], bias: [Float]?, residual: [Float]?,
        activation: Activation, flipped: Bool = false, into y: inout [Float]
    ) {
        withBaseAddress(bias) { b in
            withBaseAddress(residual) { r in
                x.withUnsafeBufferPointer { xp in
                    y.withUnsafeMutableBufferPointer { o in
                        switch kind {
                        case .dense where WinogradNHWC.preferred(g):
                            let count = WinogradNHWC.transformedCount(
                                outChannels: g.outChannels, inChannels: g.inChannels)
                            if transformed.count < count { transformed = AlignedFloats(uninitializedCount: count) }
                            let u = transformed
                            timed("conv weight transform") {
                                u.withUnsafeMutableBufferPointer {
                                    WinogradNHWC.transformWeights(
                                        weight, outChannels: g.outChannels, inChannels: g.inChannels,
                                        flipped: flipped, into: $0, threads: threads)
                                }
                            }
                            ensureScratch(WinogradNHWC.scratchCount(g, threads: threads))
                            u.withUnsafeBufferPointer { up in
                                scratch.withUnsafeMutableBufferPointer { s in
                                    WinogradNHWC.forward(
                                        g, input: xp.baseAddress!, transformedWeight: up.baseAddress!, bias: b,
                                        residual: r, activation: activation, output: o.baseAddress!,
                                        scratch: s.baseAddress!, threads: threads)
                                }
                            }
                        case .dense:
                            let packed = timed("conv weight transform") {
                                PackedConvWeight(
                                    weight, outChannels: g.outChannels, inChannels: g.inChannels, kernelH: g.kernelH,
                                    kernelW: g.kernelW)
                            }
                            ensureScratch(ConvNHWC.scratchCount(threads: threads))
                            scratch.withUnsafeMutableBufferPointer { s in
                                ConvNHWC.forward(
                                    g, input: xp.baseAddress!, weight: packed, bias: b, residual: r,
                                    activation: activation,
                                    output: o.baseAddress!, scratch: s.baseAddress!, threads: threads)
                            }
                        case .depthwise:
                            precondition(residual == nil, "a depthwise convolution carries no residual")
                            let packed = DepthwiseNHWC.pack(
                                weight, channels: g.inChannels, kernelH: g.kernelH, kernelW: g.kernelW)
                            packed.withUnsafeBufferPointer { w in
                                DepthwiseNHWC.forward(
                                    g, input: xp.baseAddress!, packedWeight: w.baseAddress!, bias: b,
                                    activation: activation, output: o.baseAddress!, threads: threads)
                            }
                        case .grouped:
                            let w = GroupedConvWeight(
                                weight, outChannels: g.outChannels, inChannels: g.inChannels, groups: g.groups,
                                kernelH: g.kernelH, kernelW: g.kernelW)
                            ensureScratch(GroupedNHWC.scratchCount(g, threads: threads))
                            scratch.withUnsafeMutableBufferPointer { s in
                                GroupedNHWC.forward(
                                    g, input: xp.baseAddress!, weight: w, bias: b, residual: r, activation: activation,
                                    output: o.baseAddress!, scratch: s.baseAddress!, threads: threads)
                            }
                        }
                    }
                }
            }
        }
    }

    // MARK: backward

    /// Adds `g` into `grads[i]`. The sum is written into `g`, which the caller hands over: the gradient
    /// already there may still be held elsewhere (a residual gradient is also its unit's masked dy), and
    /// writing into it would copy it. Addition commutes, so the bits are the same either way.
    func accumulate(_ g: consuming [Float], into grads: inout [[Float]?], _ i: Int) {
        var sum = g
        if let existing = grads[i] {
            grads[i] = nil
            sum.withUnsafeMutableBufferPointer { a in
                existing.withUnsafeBufferPointer { b in
                    Elementwise.add(a.baseAddress!, b.baseAddress!, count: b.count, threads: threads)
                }
            }
            buffers.give(existing)
        }
        grads[i] = sum
    }

    /// The gradients of the loss with respect to every trainable parameter, given dL/d(logits).
    /// `ready` receives each parameter's gradient once it is final (after the step that produces it).
    func backward(
        logitsGradient: [Float], batch: Int, ready: (String, [Float]) -> Void = { _, _ in }
    ) -> [String: [Float]] {
        var gradients: [String: [Float]] = [:]
        var grads = [[Float]?](repeating: nil, count: steps.count)
        grads[steps.count - 1] = logitsGradient
        for i in steps.indices.reversed() {
            guard needsGradient[i], var dy = grads[i] else { continue }
            grads[i] = nil
            let s = steps[i]
            let input = s.inputs.first
            let wantsInput = input.map { needsGradient[$0] } ?? false
            let xs = input.map { shapes[$0] } ?? shapes[i]
            switch s.op {
            case .input:
                break
            case .conv(let u):
                let wantsResidual = u.residual.map { needsGradient[$0] } ?? false
                let (dx, residualGradient) = backward(
                    u, &dy, inputGradient: wantsInput, gradients: &gradients,
                    residualGradient: wantsResidual)
                if let r = u.residual, let rg = residualGradient {
                    accumulate(rg, into: &grads, r)
                } else {
                    buffers.give(dy)  // nothing else holds it: back to the pool for the next step
                }
                if let dx { accumulate(dx, into: &grads, input!) }
            case .batchNorm(let u):
                precondition(!u.frozen, "\(u.name): no gradient flows through a frozen layer")
                let bn = u.bn, rows = batch * xs.height * xs.width
                var dx = buffers.take(dy.count)
                var dGamma = [Float](repeating: 0, count: bn.channels), dBeta = dGamma
                timed("backward bn") {
                    BatchNormTrain.backward(
                        values[input!], outputGradient: &dy, inputGradient: &dx, rows: rows, channels: bn.channels,
                        gamma: bn.weight.data, savedMean: u.mean, savedInvStd: u.invStd, gammaGradient: &dGamma,
                        betaGradient: &dBeta, reluOutput: nil, runningStatistics: batchNormUsesRunningStatistics,
                        threads: threads)
                }
                gradients[u.name + ".weight"] = dGamma
                gradients[u.name + ".bias"] = dBeta
                if wantsInput { accumulate(dx, into: &grads, input!) } else { buffers.give(dx) }
                buffers.give(dy)
            case .linear(let l, let name, let frozen, let a):
                Self.mask(&dy, output: values[i], a)
                let x = values[input!]
                let g = timed("backward linear") {
                    LinearHead.backward(
                        dy: dy, x: x, weight: l.weight.data, batch: batch, inFeatures: l.inFeatures,
                        outFeatures: l.outFeatures, inputGradient: wantsInput)
                }
                if !frozen {
                    gradients[name + ".weight"] = g.weight
                    gradients[name + ".bias"] = g.bias
                }
                if let dx = g.input { accumulate(dx, into: &grads, input!) }
                buffers.give(dy)
            case .maxPool:
                guard wantsInput else { break }
                var dx = buffers.take(batch * xs.channels * xs.height * xs.width)
                let indices = poolIndices[i]!
                timed("backward pool") {
                    PoolBackward.max2d(
                        outputGradient: dy, indices: indices, count: dy.count, inputGradient: &dx, inputCount: dx.count)
                }
                accumulate(dx, into: &grads, input!)
                buffers.give(dy)
            case .adaptiveAvgPool(let h, let w):
                guard wantsInput else { break }
                var dx = buffers.take(batch * xs.channels * xs.height * xs.width)
                dx.withUnsafeMutableBufferPointer { d in
                    dy.withUnsafeBufferPointer { g in
                        if h == 1 && w == 1 {
                            PoolBackward.globalAverage(
                                outputGradient: g.baseAddress!, inputGradient: d.baseAddress!, batch: batch,
                                channels: xs.channels, plane: xs.height * xs.width)
                        } else {
                            PoolBackward.adaptiveAverage(
                                outputGradient: g.baseAddress!, inputGradient: d.baseAddress!, batch: batch,
                                channels: xs.channels, height: xs.height, width: xs.width, outHeight: h,
                                outWidth: w)
                        }
                    }
                }
                accumulate(dx, into: &grads, input!)
                buffers.give(dy)
            case .flatten:
                guard wantsInput else { break }
                let plane = xs.height * xs.width
                accumulate(
                    plane == 1 ? dy : Layout.nhwc(dy, batch: batch, channels: xs.channels, plane: plane), into: &grads,
                    input!)
            case .activation(let a):
                guard wantsInput else { break }
                Self.mask(&dy, output: values[i], a)
                accumulate(dy, into: &grads, input!)
            case .dropout:
                guard wantsInput else { break }
                let mask = dropoutMasks[i]!
                for j in dy.indices { dy[j] *= mask[j] }
                accumulate(dy, into: &grads, input!)
            case .stochasticDepth:
                guard wantsInput else { break }
                if let mask = dropoutMasks[i] {
                    let each = dy.count / batch
                    for n in 0..<batch { for j in (n * each)..<((n + 1) * each) { dy[j] *= mask[n] } }
                }
                accumulate(dy, into: &grads, input!)
            case .add(let a):
                Self.mask(&dy, output: values[i], a)
                if needsGradient[s.inputs[1]] { accumulate(dy, into: &grads, s.inputs[1]) }
                if wantsInput { accumulate(dy, into: &grads, input!) }
            case .function(let f):
                // A buffer per input whose gradient is needed; the function writes all of each.
                var dxs: [[Float]] = s.inputs.map { needsGradient[$0] ? buffers.take(values[$0].count) : [] }
                timed("backward \(f.summary)") {
                    withBaseAddresses(s.inputs.map { values[$0] }) { xs in
                        values[i].withUnsafeBufferPointer { y in
                            dy.withUnsafeBufferPointer { g in
                                withMutableBaseAddresses(&dxs) { d in
                                    f.backward(
                                        xs, shapes: s.inputs.map { shapes[$0] }, output: y.baseAddress!,
                                        outputGradient: g.baseAddress!, batch: batch, inputGradients: d,
                                        threads: threads)
                                }
                            }
                        }
                    }
                }
                for (k, v) in s.inputs.enumerated() where needsGradient[v] { accumulate(dxs[k], into: &grads, v) }
                if let m = f as? any ParametricFunction {
                    // Its trainable parameters' gradients, each a fresh array the function fills.
                    let names = Self.parameterNames(s.op, name: s.name)
                    var dps: [[Float]] = m.parameters.map {
                        $0.requiresGrad ? [Float](repeating: 0, count: $0.count) : []
                    }
                    timed("backward \(f.summary) parameters") {
                        withBaseAddresses(s.inputs.map { values[$0] }) { xs in
                            dy.withUnsafeBufferPointer { g in
                                withMutableBaseAddresses(&dps) { d in
                                    m.parameterBackward(
                                        xs, shapes: s.inputs.map { shapes[$0] }, outputGradient: g.baseAddress!,
                                        batch: batch, parameterGradients: d, threads: threads)
                                }
                            }
                        }
                    }
                    var k = 0
                    for (p, dp) in zip(m.parameters, dps) where p.requiresGrad {
                        gradients[names[k]] = dp
                        k += 1
                    }
                }
                buffers.give(dy)
            }
            for name in Self.parameterNames(s.op, name: s.name) { if let g = gradients[name] { ready(name, g) } }
        }
        return gradients
    }

    /// The parameters whose gradients a step produces.
    static func parameterNames(_ op: Op, name stepName: String) -> [String] {
        switch op {
        case .function(let f as any ParametricFunction):
            // Its trainable parameters' state-dict names, in `parameters`' order.
            let trained = Set(f.parameters.filter(\.requiresGrad).map(ObjectIdentifier.init))
            return f.state(prefix: stepName + ".").compactMap {
                if case .parameter(let p) = $0.entry, trained.contains(ObjectIdentifier(p)) { $0.name } else { nil }
            }
        case .conv(let u):
            return [u.name + ".weight", u.name + ".bias"] + (u.bnName.map { [$0 + ".weight", $0 + ".bias"] } ?? [])
        case .linear(_, let name, let frozen, _):
            return frozen ? [] : [name + ".weight", name + ".bias"]
        case .batchNorm(let u):
            return u.frozen ? [] : [u.name + ".weight", u.name + ".bias"]
        case .input, .maxPool, .adaptiveAvgPool, .flatten, .activation, .dropout, .stochasticDepth, .add, .function:
            return []
        }
    }

    /// dy zeroed where the activation's output says its gradient is 0 (ReLU: not > 0; ReLU6: not strictly
    /// between 0 and 6), as torch's threshold_backward and hardtanh_backward.
    static func mask(_ dy: inout [Float], output y: [Float], _ a: Activation) {
        switch a {
        case .none: break
        case .relu: for j in dy.indices where !(y[j] > 0) { dy[j] = 0 }
        case .relu6: for j in dy.indices where !(y[j] > 0 && y[j] < 6) { dy[j] = 0 }
        case .hardswish, .silu, .gelu:
            // Training lowers with Activation.trainable: these stay LayerFunctions, never a step's epilogue.
            preconditionFailure("\(a) is not a training epilogue")
        }
    }

    /// Given dL/d(unit output) in `dy` (masked in place by the activation), records the unit's parameter
    /// gradients and returns dL/d(unit input) when `inputGradient`. `residualGradient` receives the
    /// masked dy, which is also the residual's gradient.
    func backward(
        _ u: ConvUnit, _ dy: inout [Float], inputGradient: Bool, gradients: inout [String: [Float]],
        residualGradient wantsResidual: Bool
    ) -> (input: [Float]?, residual: [Float]?) {
        precondition(!u.frozen, "\(u.name): no gradient flows through a frozen layer")
        let g = u.geometry, k = g.outChannels, rows = g.batch * g.outHeight * g.outWidth
        var dc: [Float]
        if let bn = u.bn, let bnName = u.bnName {
            dc = buffers.take(dy.count)
            var dGamma = [Float](repeating: 0, count: k), dBeta = dGamma
            let output = values[stepIndex(of: u)]
            timed("backward act+bn") {
                withBaseAddress(u.activation == .none ? nil : output) { mask in
                    BatchNormTrain.backward(
                        u.preNorm, outputGradient: &dy, inputGradient: &dc, rows: rows, channels: k,
                        gamma: bn.weight.data, savedMean: u.mean, savedInvStd: u.invStd,
                        gammaGradient: &dGamma, betaGradient: &dBeta, reluOutput: mask,
                        activation: u.activation == .none ? .relu : u.activation,
                        runningStatistics: batchNormUsesRunningStatistics, threads: threads)
                }
            }
            gradients[bnName + ".weight"] = dGamma
            gradients[bnName + ".bias"] = dBeta
        } else {
            Self.mask(&dy, output: values[stepIndex(of: u)], u.activation)
            dc = dy
            if u.conv.bias != nil {
                var db = [Float](repeating: 0, count: k)
                for r in 0..<rows { for c in 0..<k { db[c] += dy[r * k + c] } }
                gradients[u.name + ".bias"] = db
            }
        }
        let residualGradient = wantsResidual ? dy : nil
        var dw = [Float](repeating: 0, count: g.weightCount)
        var dx: [Float]?
        switch u.kind {
        case .dense:
            let winograd = WinogradNHWC.preferred(g)
            ensureScratch(
                winograd
                    ? WinogradBackward.scratchCount(g, threads: threads)
                    : ConvBackward.scratchCount(g, threads: threads))
            scratch.withUnsafeMutableBufferPointer { s in
                dw.withUnsafeMutableBufferPointer { w in
                    if winograd {
                        timed("backward conv weight (winograd)") {
                            WinogradBackward.weight(
                                g, input: u.input, outputGradient: dc, weightGradient: w.baseAddress!,
                                scratch: s.baseAddress!, threads: threads)
                        }
                    } else {
                        timed("backward conv weight") {
                            ConvBackward.weight(
                                g, input: u.input, outputGradient: dc, weightGradient: w.baseAddress!,
                                scratch: s.baseAddress!, threads: threads)
                        }
                    }
                }
                if inputGradient && !winograd {
                    timed("backward conv data") {
                        let wt = ConvBackward.packTransposed(
                            u.conv.weight.data, outChannels: k, inChannels: g.inChannels,
                            kernelH: g.kernelH, kernelW: g.kernelW)
                        var out = buffers.take(g.inputCount)
                        out.withUnsafeMutableBufferPointer { o in
                            wt.withUnsafeBufferPointer {
                                ConvBackward.data(
                                    g, outputGradient: dc, packedTransposedWeight: $0.baseAddress!,
                                    inputGradient: o.baseAddress!,
                                    scratch: s.baseAddress!, threads: threads)
                            }
                        }
                        dx = out
                    }
                }
            }
            if inputGradient && winograd {
                timed("backward conv data (winograd)") {
                    // A 3×3, stride-1, padding-1 convolution's input gradient is the same kind of convolution of
                    // dY with the filters flipped and their channels swapped: Winograd again.
                    let back = Conv2dGeometry(
                        batch: g.batch, inChannels: k, height: g.outHeight, width: g.outWidth,
                        outChannels: g.inChannels, kernel: (3, 3), padding: (1, 1))
                    var out = buffers.take(g.inputCount)
                    convolve(
                        .dense, back, dc, weight: u.conv.weight.data, bias: nil, residual: nil, activation: .none,
                        flipped: true,
                        into: &out)
                    dx = out
                }
            }
        case .depthwise:
            let packed = DepthwiseNHWC.pack(
                u.conv.weight.data, channels: g.inChannels, kernelH: g.kernelH, kernelW: g.kernelW)
            timed("backward depthwise") {
                u.input.withUnsafeBufferPointer { x in
                    dc.withUnsafeBufferPointer { d in
                        dw.withUnsafeMutableBufferPointer { w in
                            DepthwiseBackward.weight(
                                g, input: x.baseAddress!, outputGradient: d.baseAddress!,
                                weightGradient: w.baseAddress!, threads: threads)
                        }
                        if inputGradient {
                            var out = buffers.take(g.inputCount)
                            packed.withUnsafeBufferPointer { p in
                                out.withUnsafeMutableBufferPointer {
                                    DepthwiseBackward.data(
                                        g, outputGradient: d.baseAddress!, packedWeight: p.baseAddress!,
                                        inputGradient: $0.baseAddress!, threads: threads)
                                }
                            }
                            dx = out
                        }
                    }
                }
            }
        case .grouped:
            timed("backward grouped") {
                dx = GroupedBackward.run(
                    g, input: u.input, outputGradient: dc, weight: u.conv.weight.data, weightGradient: &dw,
                    inputGradient: inputGradient, threads: threads)
            }
        }
        gradients[u.name + ".weight"] = dw
        if u.bn != nil { buffers.give(dc) }
        return (dx, residualGradient)
    }

    /// The step index of a conv unit (units are few; a linear search).
    func stepIndex(of u: ConvUnit) -> Int {
        steps.firstIndex { if case .conv(let v) = $0.op { v === u } else { false } }!
    }

    /// Hands every saved activation back to the pool.
    func recycle() {
        for v in values { buffers.give(v) }
        values = []
        for s in steps {
            if case .conv(let u) = s.op {
                u.input = []
                buffers.give(u.preNorm)
                u.preNorm = []
            }
        }
        dropoutMasks = [:]
    }

    /// One training step on `input` [batch, C, height, width] (NCHW, normalised) with `labels`: the mean
    /// cross-entropy (plus the L2-SP penalty when set) before the step, and how many argmaxes were right.
    @discardableResult
    public func step(_ input: [Float], labels: [Int], height: Int, width: Int) throws -> (loss: Double, correct: Int) {
        let batch = labels.count
        // An input size the network cannot take is refused here, naming the layer.
        let shapes = try lowering.shapes(height: height, width: width)
        let logits = timed("forward (all)") {
            forward(input, batch: batch, height: height, width: width, step: optimizer.steps, shapes: shapes)
        }
        let classes = network.classes
        let ce = CrossEntropy.forward(logits, labels: labels, classes: classes)
        let correct = zip(CrossEntropy.argmax(logits, classes: classes), labels).filter { $0 == $1 }.count
        var gradients: [String: [Float]]
        if let reducer {
            let before = reducer.statistics.exposedSeconds
            gradients = try reducer.reduce { ready in
                timed("backward (all)") { backward(logitsGradient: ce.gradient, batch: batch, ready: ready) }
            }
            if profile != nil { profile!["allreduce", default: 0] += reducer.statistics.exposedSeconds - before }
        } else {
            gradients = timed("backward (all)") { backward(logitsGradient: ce.gradient, batch: batch) }
        }
        recycle()
        var loss = Double(ce.loss)
        try timed("optimizer") {
            if let l2sp { loss += l2sp.apply(trainable, to: &gradients) }
            try NonFinite.check(loss: loss, gradients: gradients)
            try optimizer.step(gradients)
        }
        return (loss, correct)
    }
}

/// `body` with the base address of each array, nil for an empty one.
func withMutableBaseAddresses<R>(_ arrays: inout [[Float]], _ body: ([UnsafeMutablePointer<Float>?]) -> R) -> R {
    func nest(_ k: Int, _ done: [UnsafeMutablePointer<Float>?], _ arrays: inout [[Float]]) -> R {
        if k == arrays.count { return body(done) }
        if arrays[k].isEmpty { return nest(k + 1, done + [nil], &arrays) }
        var a = arrays[k]
        arrays[k] = []
        defer { arrays[k] = a }
        return a.withUnsafeMutableBufferPointer { nest(k + 1, done + [$0.baseAddress!], &arrays) }
    }
    return nest(0, [], &arrays)
}

/// Dropout's training-mode masks, reproducible from (seed, step, layer name): a SplitMix64 stream
/// seeded with seed + step · (2³² + 1) + FNV-1a-64(name) (wrapping), one draw per element in memory
/// order; element i is kept when the draw's top 24 bits, as a fraction of 2²⁴, are ≥ p, and a kept
/// element is scaled by 1 / (1 − p) (torch's `bernoulli_(1 − p).div_(1 − p)`, with our generator, not
/// torch's). Every dropout in these families acts on [N, features], where memory order is torch's.
/// Tests/Reference/make_train_golden_families.py draws the same masks in Python.
public enum DropoutMask {
    public static func scales(count: Int, p: Float, seed: UInt64, step: Int, layer: String) -> [Float] {
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in layer.utf8 { hash = (hash ^ UInt64(b)) &* 0x100_0000_01B3 }
        var rng = SplitMix64(seed: seed &+ UInt64(step) &* 0x1_0000_0001 &+ hash)
        let scale = 1 / (1 - p)
        return (0..<count).map { _ in rng.nextUnitFloat() >= p ? scale : 0 }
    }

    /// Stochastic depth's per-image scales from the same stream (one draw per image; kept when the draw
    /// is ≥ Float(p)), each kept image scaled as torch's `noise.div_(1 − p)`: 1 / Float(1 − p).
    public static func rowScales(rows: Int, p: Double, seed: UInt64, step: Int, layer: String) -> [Float] {
        let keep = scales(count: rows, p: Float(p), seed: seed, step: step, layer: layer)
        let scale = 1 / Float(1 - p)
        return keep.map { $0 == 0 ? 0 : scale }
    }
}

/// Grouped convolutions' gradients: each group's input and output gradient gathered into contiguous
/// buffers, then the dense kernels (`ConvBackward`), the results scattered back.
enum GroupedBackward {
    static func run(
        _ g: Conv2dGeometry, input x: [Float], outputGradient dy: [Float], weight: [Float],
        weightGradient dw: inout [Float], inputGradient: Bool, threads: Int
    ) -> [Float]? {
        let cg = g.inChannels / g.groups, kg = g.outChannels / g.groups, each = kg * cg * g.kernelH * g.kernelW
        let positions = g.batch * g.height * g.width, outPositions = g.batch * g.outHeight * g.outWidth
        var sub = g
        sub.inChannels = cg
        sub.outChannels = kg
        sub.groups = 1
        var dx: [Float]? = inputGradient ? [Float](repeating: 0, count: x.count) : nil
        var xg = [Float](repeating: 0, count: positions * cg), dyg = [Float](repeating: 0, count: outPositions * kg)
        let scratch = AlignedFloats(uninitializedCount: ConvBackward.scratchCount(sub, threads: threads))
        var dwg = [Float](repeating: 0, count: each), dxg = [Float](repeating: 0, count: positions * cg)
        for grp in 0..<g.groups {
            for p in 0..<positions { for c in 0..<cg { xg[p * cg + c] = x[p * g.inChannels + grp * cg + c] } }
            for p in 0..<outPositions { for c in 0..<kg { dyg[p * kg + c] = dy[p * g.outChannels + grp * kg + c] } }
            scratch.withUnsafeMutableBufferPointer { s in
                dwg.withUnsafeMutableBufferPointer { w in
                    ConvBackward.weight(
                        sub, input: xg, outputGradient: dyg, weightGradient: w.baseAddress!, scratch: s.baseAddress!,
                        threads: threads)
                }
                if inputGradient {
                    let wt = ConvBackward.packTransposed(
                        Array(weight[(grp * each)..<((grp + 1) * each)]), outChannels: kg,
                        inChannels: cg, kernelH: g.kernelH, kernelW: g.kernelW)
                    dxg.withUnsafeMutableBufferPointer { o in
                        wt.withUnsafeBufferPointer {
                            ConvBackward.data(
                                sub, outputGradient: dyg, packedTransposedWeight: $0.baseAddress!,
                                inputGradient: o.baseAddress!,
                                scratch: s.baseAddress!, threads: threads)
                        }
                    }
                }
            }
            dw.replaceSubrange((grp * each)..<((grp + 1) * each), with: dwg)
            if inputGradient {
                for p in 0..<positions { for c in 0..<cg { dx![p * g.inChannels + grp * cg + c] = dxg[p * cg + c] } }
            }
        }
        return dx
    }
}
