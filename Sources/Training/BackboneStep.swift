import Kernels
import NN
import Vision

/// `count` floats whose values are whatever the allocator left (every caller overwrites them all):
/// skips the zeroing pass that `Array(repeating:count:)` makes over tens of megabytes per layer.
func uninitializedFloats(_ count: Int) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
}

/// Activation and gradient buffers kept from one training step for the next.
///
/// A step at batch 32 allocates and frees about two gigabytes of activations and gradients, many of
/// them larger than glibc's mmap threshold (32 MB at most): each would be mapped fresh, page-faulted in
/// and unmapped again every step, a fifth of the step's time. The step takes its buffers here and gives
/// them back when they die, so after the first step the same memory is reused. Contents are
/// uninitialised: every taker overwrites its whole buffer. A buffer still referenced elsewhere when it
/// is taken again is copied on write by Swift's arrays, so a missed hand-back costs speed, never
/// correctness.
final class BufferPool {
    private var free: [Int: [[Float]]] = [:]
    private var held = Set<UnsafeRawPointer>()

    func take(_ count: Int) -> [Float] {
        guard var list = free[count], let buffer = list.popLast() else { return uninitializedFloats(count) }
        free[count] = list
        held.remove(Self.address(buffer))
        return buffer
    }

    /// Keeps `buffer` for a later `take` (once per storage: a second hand-back of the same storage is ignored).
    func give(_ buffer: consuming [Float]) {
        guard !buffer.isEmpty else { return }
        let a = Self.address(buffer)
        guard held.insert(a).inserted else { return }
        free[buffer.count, default: []].append(buffer)
    }

    static func address(_ b: [Float]) -> UnsafeRawPointer { b.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!) } }
}

/// Training steps through the backbone: a forward pass that keeps what the backward pass needs, the
/// backward pass through every trainable layer, and the optimizer's step.
///
/// The stages up to `frozenThrough` (0: none, 1: the stem, 2: the stem and layer1, …, 5: everything
/// but fc) are frozen: their parameters do not train and their BatchNorms run in eval mode (running
/// statistics, folded into the convolution), as torch does for modules put in `eval()`. Every other
/// BatchNorm runs in training mode: batch statistics, running statistics updated, `num_batches_tracked`
/// counted. With `frozenBatchNormTrains` the frozen stages' BatchNorms run in training mode too (their
/// running statistics drift while their parameters stay put): torch's behaviour when a model is put in
/// `train()` with some parameters' `requires_grad` off, as d2l's fine-tuning does. Activations are channels-last; the kernels are the inference kernels plus
/// `ConvBackward`, `BatchNormTrain` and `PoolBackward`.
public final class BackboneStep {
    public let model: ResNet
    public let optimizer: any Optimizer
    public let frozenThrough: Int
    /// Whether the frozen stages' BatchNorms run in training mode (batch statistics, running statistics updated).
    public let frozenBatchNormTrains: Bool
    public var threads: Int
    let l2sp: L2SP?
    let trainable: [(name: String, parameter: Parameter)]

    /// One convolution and the BatchNorm after it.
    final class Unit {
        let conv: Conv2d, bn: BatchNorm2d, convName: String, bnName: String
        /// Parameters frozen (no backward pass through this unit).
        let frozen: Bool
        /// BatchNorm in eval mode, folded into the convolution (a frozen unit unless frozen BNs train).
        let folds: Bool
        /// The frozen form: BN folded into the weight and a bias (made once: frozen weights do not change).
        lazy var folded: (weight: PackedConvWeight, bias: [Float]) = {
            let f = BatchNorm.fold(convWeight: conv.weight.data, convBias: nil, outChannels: conv.outChannels,
                                   weight: bn.weight.data, bias: bn.bias.data, mean: bn.runningMean.data,
                                   variance: bn.runningVar.data, eps: bn.eps)
            return (PackedConvWeight(f.weight, outChannels: conv.outChannels, inChannels: conv.inChannels,
                                     kernelH: conv.kernel, kernelW: conv.kernel), f.bias)
        }()
        // Saved by the forward pass for the backward pass.
        var geometry = Conv2dGeometry(batch: 1, inChannels: 1, height: 1, width: 1, outChannels: 1, kernel: (1, 1))
        var input: [Float] = [], preNorm: [Float] = [], output: [Float] = []
        var mean: [Float] = [], invStd: [Float] = []

        init(_ conv: Conv2d, _ bn: BatchNorm2d, convName: String, bnName: String, frozen: Bool, folds: Bool) {
            self.conv = conv
            self.bn = bn
            self.convName = convName + ".weight"
            self.bnName = bnName
            self.frozen = frozen
            self.folds = folds
        }
    }

    struct BlockUnits {
        var units: [Unit]
        var downsample: Unit?
        var stage: Int
    }

    let stem: Unit
    var blocks: [BlockUnits] = []
    var scratch: [Float] = []
    var poolIndices: [Int32] = []
    var features: [Float] = []
    let buffers = BufferPool()
    /// The max pool's output (layer1's input), handed back with the units' activations.
    var pooledOutput: [Float] = []

    /// Seconds spent per phase ("forward conv", "backward bn", …) since `profile` was set to `[:]`;
    /// nil (the default) records nothing.
    public var profile: [String: Double]?

    /// `body`, its time added to `profile[phase]` when profiling.
    @inline(__always)
    func timed<R>(_ phase: String, _ body: () throws -> R) rethrows -> R {
        guard profile != nil else { return try body() }
        let t0 = monotonic()
        defer { profile![phase, default: 0] += monotonic() - t0 }
        return try body()
    }

    /// `groups` gives the optimizer's parameter groups for the trainable parameters (names as
    /// `model.trainableParameters` gives them, after this initializer has frozen the stages); the
    /// default is one group with `options`.
    public init(model: ResNet, frozenThrough: Int, options: SGDOptions, optimizer kind: OptimizerKind = .sgd,
                groups: ((_ trainable: [(name: String, parameter: Parameter)]) -> [ParameterGroup])? = nil,
                l2sp: (alpha: Double, beta: Double)? = nil, frozenBatchNormTrains: Bool = false, threads: Int = 1) throws {
        precondition((0...5).contains(frozenThrough), "frozenThrough is 0…5")
        // The kernels split work across threads themselves; OpenBLAS's own pool inside each piece
        // (the weight gradients) would only fight them for the cores.
        KernelThreads.singleThreadedBLAS()
        self.model = model
        self.frozenThrough = frozenThrough
        self.frozenBatchNormTrains = frozenBatchNormTrains
        self.threads = threads
        let frozenPrefixes = StageList.resnet.frozenPrefixes(Freeze(frozenCount: frozenThrough, in: .resnet))
        // Start from a clean slate, then freeze.
        for (_, p) in model.namedParameters { p.requiresGrad = true }
        if !frozenPrefixes.isEmpty { model.freeze(frozenPrefixes) }
        trainable = model.trainableParameters
        optimizer = try kind.make(groups?(trainable) ?? [ParameterGroup(name: "all", parameters: trainable, options: options)])
        self.l2sp = l2sp.map { L2SP(alpha: $0.alpha, beta: $0.beta, parameters: model.namedParameters) }
        let folds = !frozenBatchNormTrains
        stem = Unit(model.conv1, model.bn1, convName: "conv1", bnName: "bn1", frozen: frozenThrough >= 1, folds: folds && frozenThrough >= 1)
        for (s, stage) in model.layers.enumerated() {
            let frozen = frozenThrough >= s + 2
            for (i, b) in stage.enumerated() {
                let p = "layer\(s + 1).\(i)."
                var units = [Unit(b.conv1, b.bn1, convName: p + "conv1", bnName: p + "bn1", frozen: frozen, folds: folds && frozen),
                             Unit(b.conv2, b.bn2, convName: p + "conv2", bnName: p + "bn2", frozen: frozen, folds: folds && frozen)]
                if let c3 = b.conv3, let bn3 = b.bn3 { units.append(Unit(c3, bn3, convName: p + "conv3", bnName: p + "bn3", frozen: frozen, folds: folds && frozen)) }
                let ds = b.downsample.map { Unit($0.conv, $0.bn, convName: p + "downsample.0", bnName: p + "downsample.1", frozen: frozen, folds: folds && frozen) }
                blocks.append(BlockUnits(units: units, downsample: ds, stage: s))
            }
        }
    }

    // MARK: forward

    func ensureScratch(_ count: Int) {
        if scratch.count < count { scratch = [Float](repeating: 0, count: count) }
    }

    /// conv → BN (→ + residual) (→ ReLU) for one unit; saves what backward needs when it trains.
    func forward(_ u: Unit, _ x: [Float], batch: Int, height: Int, width: Int, relu: Bool, residual: [Float]?) -> [Float] {
        let g = Conv2dGeometry(batch: batch, inChannels: u.conv.inChannels, height: height, width: width,
                               outChannels: u.conv.outChannels, kernel: (u.conv.kernel, u.conv.kernel),
                               stride: (u.conv.stride, u.conv.stride), padding: (u.conv.padding, u.conv.padding))
        u.geometry = g
        ensureScratch(ConvNHWC.scratchCount(threads: threads))
        var y = buffers.take(g.outputCount)
        if u.folds {
            let f = u.folded
            timed("forward conv (frozen, folded)") {
            x.withUnsafeBufferPointer { xp in
                f.bias.withUnsafeBufferPointer { b in
                    y.withUnsafeMutableBufferPointer { o in
                        scratch.withUnsafeMutableBufferPointer { s in
                            withBaseAddress(residual) { r in
                                ConvNHWC.forward(g, input: xp.baseAddress!, weight: f.weight, bias: b.baseAddress, residual: r,
                                                 relu: relu, output: o.baseAddress!, scratch: s.baseAddress!, threads: threads)
                            }
                        }
                    }
                }
            }
            }
            u.output = y  // kept only so the step can hand it back at the end
            return y
        }
        var c = buffers.take(g.outputCount)
        timed("forward conv") { convolve(g, x, weight: u.conv.weight.data, into: &c) }
        let k = g.outChannels, rows = g.batch * g.outHeight * g.outWidth
        u.mean = [Float](repeating: 0, count: k)
        u.invStd = [Float](repeating: 0, count: k)
        timed("forward bn+add+relu") {
            withBaseAddress(residual) { r in
                BatchNormTrain.forward(c, &y, rows: rows, channels: k, gamma: u.bn.weight.data, beta: u.bn.bias.data,
                                       runningMean: &u.bn.runningMean.data, runningVar: &u.bn.runningVar.data, momentum: 0.1,
                                       eps: u.bn.eps, savedMean: &u.mean, savedInvStd: &u.invStd, residual: r, relu: relu,
                                       threads: threads)
            }
        }
        u.bn.numBatchesTracked.value += 1
        u.output = y
        if u.frozen {
            buffers.give(c)
        } else {
            u.input = x
            u.preNorm = c
        }
        return y
    }

    /// Whether a 3×3 stride-1 convolution runs by Winograd: the same rule as inference (enough tiles).
    func winograd(_ g: Conv2dGeometry) -> Bool {
        WinogradNHWC.applies(to: g) && g.batch * ((g.outHeight + 3) / 4) * ((g.outWidth + 3) / 4) >= 16
    }

    /// y = x ⊛ weight ([K, C, kh, kw]), no bias: Winograd where it applies, else the direct GEMM. The
    /// weights change every step, so they are packed or transformed here each time. `flipped` (Winograd
    /// only): the filters are those of `weight` [C, K, 3, 3]'s input-gradient convolution.
    func convolve(_ g: Conv2dGeometry, _ x: [Float], weight: [Float], flipped: Bool = false, into y: inout [Float]) {
        if winograd(g) {
            var u = buffers.take(WinogradNHWC.transformedCount(outChannels: g.outChannels, inChannels: g.inChannels))
            timed("conv weight transform") {
                WinogradNHWC.transformWeights(weight, outChannels: g.outChannels, inChannels: g.inChannels, flipped: flipped,
                                              into: &u, threads: threads)
            }
            defer { buffers.give(u) }
            ensureScratch(WinogradNHWC.scratchCount(g, threads: threads))
            x.withUnsafeBufferPointer { xp in
                u.withUnsafeBufferPointer { up in
                    y.withUnsafeMutableBufferPointer { o in
                        scratch.withUnsafeMutableBufferPointer { s in
                            WinogradNHWC.forward(g, input: xp.baseAddress!, transformedWeight: up.baseAddress!, bias: nil, residual: nil,
                                                 relu: false, output: o.baseAddress!, scratch: s.baseAddress!, threads: threads)
                        }
                    }
                }
            }
            return
        }
        let packed = timed("conv weight transform") {
            PackedConvWeight(weight, outChannels: g.outChannels, inChannels: g.inChannels, kernelH: g.kernelH, kernelW: g.kernelW)
        }
        ensureScratch(ConvNHWC.scratchCount(threads: threads))
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { o in
                scratch.withUnsafeMutableBufferPointer { s in
                    ConvNHWC.forward(g, input: xp.baseAddress!, weight: packed, bias: nil, residual: nil, relu: false,
                                     output: o.baseAddress!, scratch: s.baseAddress!, threads: threads)
                }
            }
        }
    }

    /// Logits [batch, classes] for `input` [batch, 3, height, width] (NCHW, normalised), keeping what
    /// `backward` needs.
    func forward(_ input: [Float], batch: Int, height: Int, width: Int) -> [Float] {
        let x = Layout.nhwc(input, batch: batch, channels: 3, plane: height * width)
        var y = forward(stem, x, batch: batch, height: height, width: width, relu: true, residual: nil)
        let sg = stem.geometry
        let pH = (sg.outHeight + 2 - 3) / 2 + 1, pW = (sg.outWidth + 2 - 3) / 2 + 1
        var pooled = buffers.take(batch * pH * pW * sg.outChannels)
        if poolIndices.count != pooled.count { poolIndices = [Int32](repeating: 0, count: pooled.count) }
        timed("forward pool") {
            PoolBackward.max2d(y, &pooled, indices: &poolIndices, batch: batch, channels: sg.outChannels, height: sg.outHeight,
                               width: sg.outWidth, kernel: 3, stride: 2, padding: 1, threads: threads)
        }
        y = pooled
        pooledOutput = pooled
        var (h, w) = (pH, pW)
        for b in blocks {
            let blockInput = y
            let identity = b.downsample.map { forward($0, blockInput, batch: batch, height: h, width: w, relu: false, residual: nil) }
                ?? blockInput
            var z = blockInput, (zh, zw) = (h, w)
            for (i, u) in b.units.enumerated() {
                let last = i == b.units.count - 1
                z = forward(u, z, batch: batch, height: zh, width: zw, relu: true, residual: last ? identity : nil)
                (zh, zw) = (u.geometry.outHeight, u.geometry.outWidth)
            }
            y = z
            (h, w) = (zh, zw)
        }
        let c = model.fc.inFeatures
        features = [Float](repeating: 0, count: batch * c)
        PoolNHWC.globalAverage(y, &features, batch: batch, channels: c, plane: h * w)
        return LinearHead.forward(features, model.fc, batch: batch)
    }

    // MARK: backward

    /// Given dL/d(unit output), adds the unit's parameter gradients and returns dL/d(unit input) when
    /// `inputGradient`. `residualGradient` receives dL/d(residual) (the same as dL/d(BN output) after
    /// the ReLU mask) for the last unit of a block.
    func backward(_ u: Unit, _ dy: consuming [Float], inputGradient: Bool, relu: Bool, gradients: inout [String: [Float]],
                  residualGradient: inout [Float]?) -> [Float]? {
        precondition(!u.frozen)
        let g = u.geometry, k = g.outChannels, rows = g.batch * g.outHeight * g.outWidth
        var dc = buffers.take(dy.count)
        var dGamma = [Float](repeating: 0, count: k), dBeta = dGamma
        timed("backward relu+bn") {
            // Masks dy by ReLU in place first: dy is then dL/d(norm output), which is also dL/d(residual).
            withBaseAddress(relu ? u.output : nil) { mask in
                BatchNormTrain.backward(u.preNorm, outputGradient: &dy, inputGradient: &dc, rows: rows, channels: k,
                                        gamma: u.bn.weight.data, savedMean: u.mean, savedInvStd: u.invStd,
                                        gammaGradient: &dGamma, betaGradient: &dBeta, reluOutput: mask, threads: threads)
            }
        }
        if residualGradient != nil { residualGradient = dy } else { buffers.give(dy) }
        gradients[u.bnName + ".weight"] = dGamma
        gradients[u.bnName + ".bias"] = dBeta
        let winogradWeight = winograd(g)
        ensureScratch(winogradWeight ? WinogradBackward.scratchCount(g) : ConvBackward.scratchCount(g, threads: threads))
        var dw = [Float](repeating: 0, count: g.weightCount)
        var dx: [Float]? = nil
        scratch.withUnsafeMutableBufferPointer { s in
            dw.withUnsafeMutableBufferPointer { w in
                if winogradWeight {
                    timed("backward conv weight (winograd)") {
                        WinogradBackward.weight(g, input: u.input, outputGradient: dc, weightGradient: w.baseAddress!,
                                                scratch: s.baseAddress!, threads: threads)
                    }
                } else {
                    timed("backward conv weight") {
                        ConvBackward.weight(g, input: u.input, outputGradient: dc, weightGradient: w.baseAddress!,
                                            scratch: s.baseAddress!, threads: threads)
                    }
                }
            }
            if inputGradient && !winograd(g) { timed("backward conv data") {
                let wt = ConvBackward.packTransposed(u.conv.weight.data, outChannels: k, inChannels: g.inChannels,
                                                     kernelH: g.kernelH, kernelW: g.kernelW)
                var out = buffers.take(g.inputCount)
                out.withUnsafeMutableBufferPointer {
                    ConvBackward.data(g, outputGradient: dc, packedTransposedWeight: wt, inputGradient: $0.baseAddress!,
                                      scratch: s.baseAddress!, threads: threads)
                }
                dx = out
            } }
        }
        if inputGradient && winograd(g) { timed("backward conv data (winograd)") {
            // A 3×3, stride-1, padding-1 convolution's input gradient is the same kind of convolution of
            // dY with the filters flipped and their channels swapped: Winograd again.
            let back = Conv2dGeometry(batch: g.batch, inChannels: k, height: g.outHeight, width: g.outWidth,
                                      outChannels: g.inChannels, kernel: (3, 3), padding: (1, 1))
            var out = buffers.take(g.inputCount)
            convolve(back, dc, weight: u.conv.weight.data, flipped: true, into: &out)
            dx = out
        } }
        gradients[u.convName] = dw
        buffers.give(dc)
        return dx
    }

    /// The gradients of the mean cross-entropy over the batch with respect to every trainable parameter.
    func backward(logitsGradient: [Float], batch: Int) -> [String: [Float]] {
        var gradients: [String: [Float]] = [:]
        let fc = model.fc
        let head = LinearHead.backward(dy: logitsGradient, x: features, weight: fc.weight.data, batch: batch,
                                       inFeatures: fc.inFeatures, outFeatures: fc.outFeatures, inputGradient: frozenThrough < 5)
        gradients["fc.weight"] = head.weight
        gradients["fc.bias"] = head.bias
        guard let dFeatures = head.input else { return gradients }
        // Through the global average pool.
        let last = blocks.last!.units.last!.geometry
        var d = buffers.take(batch * last.outHeight * last.outWidth * fc.inFeatures)
        PoolBackward.globalAverage(outputGradient: dFeatures, inputGradient: &d, batch: batch, channels: fc.inFeatures,
                                   plane: last.outHeight * last.outWidth)
        for bi in blocks.indices.reversed() {
            let b = blocks[bi]
            if b.units[0].frozen { return gradients }
            // Whether this block's input needs a gradient: something below it trains.
            let below = bi > 0 ? !blocks[bi - 1].units[0].frozen : !stem.frozen
            var residual: [Float]? = []
            var dz: [Float]? = d
            for (i, u) in b.units.enumerated().reversed() {
                let isLast = i == b.units.count - 1
                var r: [Float]? = isLast ? [] : nil
                let incoming = dz!
                dz = nil
                dz = backward(u, consume incoming, inputGradient: i > 0 || below, relu: true, gradients: &gradients, residualGradient: &r)
                if isLast { residual = r }
            }
            // The identity path: the downsample's own gradients whether or not anything below trains.
            var identityGradient = residual!
            if let ds = b.downsample {
                var none: [Float]? = nil
                let dsx = backward(ds, residual!, inputGradient: below, relu: false, gradients: &gradients, residualGradient: &none)
                if let dsx { identityGradient = dsx }
                // backward(ds) masked nothing (no ReLU) and gave residual back as its consumed gradient.
            }
            guard below else { return gradients }
            var dInput = dz!
            dz = nil
            timed("backward add") {
                precondition(identityGradient.count == dInput.count)
                Elementwise.add(&dInput, identityGradient, count: dInput.count, threads: threads)
            }
            buffers.give(identityGradient)
            d = dInput
        }
        // Through the max pool and the stem.
        // stem.output is the pool's input (the stem unit's output after ReLU).
        var dStem = buffers.take(stem.output.count)
        timed("backward pool") {
            PoolBackward.max2d(outputGradient: d, indices: poolIndices, count: d.count, inputGradient: &dStem, inputCount: dStem.count)
        }
        buffers.give(d)
        var none: [Float]? = nil
        _ = backward(stem, dStem, inputGradient: false, relu: true, gradients: &gradients, residualGradient: &none)
        return gradients
    }

    /// Hands every unit's saved activations back to the pool once the backward pass is done with them.
    func recycleActivations() {
        buffers.give(pooledOutput)
        pooledOutput = []
        for u in [stem] + blocks.flatMap({ $0.units + ($0.downsample.map { [$0] } ?? []) }) {
            u.input = []
            buffers.give(u.preNorm)
            u.preNorm = []
            buffers.give(u.output)
            u.output = []
        }
    }

    /// One training step on `input` [batch, 3, height, width] (NCHW, normalised) with `labels`: the mean
    /// cross-entropy (plus the L2-SP penalty when set) before the step, and how many argmaxes were right.
    @discardableResult
    public func step(_ input: [Float], labels: [Int], height: Int, width: Int) throws -> (loss: Double, correct: Int) {
        let batch = labels.count
        let logits = timed("forward (all)") { forward(input, batch: batch, height: height, width: width) }
        let classes = model.fc.outFeatures
        let ce = CrossEntropy.forward(logits, labels: labels, classes: classes)
        let correct = zip(CrossEntropy.argmax(logits, classes: classes), labels).filter { $0 == $1 }.count
        var gradients = timed("backward (all)") { backward(logitsGradient: ce.gradient, batch: batch) }
        recycleActivations()
        var loss = Double(ce.loss)
        try timed("optimizer") {
            if let l2sp { loss += l2sp.apply(trainable, to: &gradients) }
            try optimizer.step(gradients)
        }
        return (loss, correct)
    }
}
