import Kernels
import NN

#if canImport(Glibc)
    import Glibc
#endif

/// A `Network` prepared for inference, channels-last ([N, H, W, C]).
///
/// Lowering reads the description once:
/// - each convolution absorbs the BatchNorm after it (weight scaled, bias added), then a residual `add`
///   whose other operand is already computed, then ReLU or ReLU6: one kernel call whose epilogue does
///   all of it;
/// - a convolution whose only reader is a max pool runs image by image into a one-image buffer that the
///   pool reads while it is in cache;
/// - flatten and dropout (the identity in eval) are views, not copies; a linear layer after a spatial
///   flatten has its weight's columns reordered from torch's (c, h, w) to channels-last (h, w, c);
/// - each step's output goes in a buffer that no live value holds (planned per input size).
///
/// Kernels: dense convolutions by Winograd F(4×4, 3×3) where it applies and has enough tiles (or as
/// `tune` measured), else im2col + the packed GEMM; depthwise by `DepthwiseNHWC`; grouped by
/// `GroupedNHWC`; linear layers as 1×1 convolutions over a 1×1 image.
///
/// Build it after loading weights; it copies what it needs. One instance runs one call at a time.
public final class Inference {
    enum ConvKind { case dense, depthwise, grouped, linear }

    /// A convolution or linear layer with what it absorbed.
    struct Conv {
        var name: String
        var kind: ConvKind
        var inChannels: Int, outChannels: Int, kernelH: Int, kernelW: Int, stride: Int, padH: Int, padW: Int
        var groups: Int
        /// Folded weight in torch's layout ([K, C/groups, kh, kw]; linear: [out, in], columns reordered to
        /// channels-last when the input is a spatial flatten) and bias.
        var weight: [Float], bias: [Float]?
        var activation: Activation
        /// The step whose value is added before the activation.
        var residual: Int?
        var winogradApplies: Bool

        func geometry(batch: Int, height: Int, width: Int) -> Conv2dGeometry {
            Conv2dGeometry(
                batch: batch, inChannels: inChannels, height: height, width: width, outChannels: outChannels,
                kernel: (kernelH, kernelW), stride: (stride, stride), padding: (padH, padW), groups: groups)
        }

        /// The same kernel size and padding in height and width.
        var isSquare: Bool { kernelH == kernelW && padH == padW }
    }

    enum Op {
        /// The network input, copied to NHWC.
        case input(channels: Int)
        case conv(Conv)
        /// A convolution, then a max pool of its output, image by image.
        case convPool(Conv, kernel: Int, stride: Int, padding: Int)
        case maxPool(kernel: Int, stride: Int, padding: Int)
        case adaptiveAvgPool(height: Int, width: Int)
        /// Per-channel affine (a BatchNorm that follows no convolution), then the activation that alone reads
        /// it (DenseNet's norm1 → relu1).
        case affine(scale: [Float], shift: [Float], activation: Activation)
        case activation(Activation)
        case add(Activation)
        /// The input's buffer under another shape: flatten (`flatten` true) or dropout.
        case view(flatten: Bool)
        /// MobileNetV2's inverted residual, [1×1 expand →] depthwise → 1×1 project (+ residual), run by row
        /// bands so the expanded tensor stays in cache (`InvertedResidualNHWC`).
        case block(expand: Conv?, depthwise: Conv, project: Conv)
        /// A parameter-free layer's own forward kernel.
        case function(any LayerFunction)
    }

    struct Step {
        var name: String
        var op: Op
        var inputs: [Int]
        /// The lowered step whose value this step computes (a fused step: its last).
        var output: Int
    }

    /// The description read into steps; the shapes come from it.
    let lowering: Lowering
    /// The steps run here: the lowering's, with pools and blocks fused.
    var steps: [Step] = []
    /// The step whose value is the head's input (`features`).
    let featureStep: Int
    public let classes: Int
    /// Features the head takes (512 for resnet18, 1280 for mobilenet_v2, 4096 for VGG).
    public let featureCount: Int
    /// torchvision's builder name of the network.
    public let name: String

    /// Threads the kernels split their work across.
    public var threads: Int = 1
    /// Use Winograd F(4×4, 3×3) for the 3×3 stride-1 dense convolutions (else im2col + GEMM).
    public var useWinograd = true
    /// The batch size the choice between Winograd and the direct convolution is made for; nil: each
    /// call's own. The two round differently, so an image's logits depend on that choice: a caller that
    /// splits a list of images into batches of different sizes (the last batch, shards, MPI ranks) and
    /// wants each image's logits bit for bit the same sets it to its batch size.
    public var algorithmBatch: Int?
    /// The most bytes of buffers (activations, scratch) a plan may allocate: half the machine's memory
    /// by default. A batch or input size past it is refused (`InferenceError.tooLarge`) instead of
    /// failing to allocate.
    public var maxBufferBytes = Inference.defaultMaxBufferBytes
    public static let defaultMaxBufferBytes: Int = {
        let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
        guard pages > 0, size > 0 else { return 8 << 30 }
        return pages.multipliedReportingOverflow(by: size).overflow ? Int.max / 2 : pages * size / 2
    }()
    /// Per convolution step, whether Winograd measured faster (`tune`); absent: the default rule.
    var winogradChoice: [Int: Bool] = [:]
    var winogradWeights: [Int: AlignedFloats] = [:]
    var packedWeights: [Int: PackedConvWeight] = [:]
    var depthwiseWeights: [Int: [Float]] = [:]
    var groupedWeights: [Int: GroupedConvWeight] = [:]
    private var tuning = false
    /// Per tuned convolution: "conv 1x64x56x56 → 64 …: winograd 1200 µs, direct 2000 µs → winograd".
    public private(set) var tuningLog: [String] = []
    /// When true, each call records each step's time in `stepTimes`.
    public var profiling = false
    /// Seconds per step of the last call while `profiling`, in order: "input", each layer by its
    /// torchvision name (convolutions with their algorithm, "layer1.0.conv1 winograd"), pools, "fc".
    public private(set) var stepTimes: [(step: String, seconds: Double)] = []
    private var lastMark = 0.0

    /// `fuseBlocks` false keeps each inverted residual's three convolutions as separate steps (the
    /// tests compare the two; the result is the same bits).
    public init(_ network: Network, fuseBlocks: Bool = true) {
        name = network.name
        // Eval mode: stochastic depth is the identity, and without it a residual add joins its chain.
        // Every activation goes into its kernel's epilogue (Hardswish and SiLU too: no backward pass here).
        let lowering = Lowering(network.evaluationView, epilogueActivations: Set(Activation.allCases))
        self.lowering = lowering
        let readers = lowering.readers
        /// Lowered step → the step here whose value it is.
        var valueOf = [Int](repeating: -1, count: lowering.steps.count)
        var steps: [Step] = []
        /// The lowered step being read.
        var current = 0
        func emit(_ name: String, _ op: Op, _ inputs: [Int]) -> Int {
            steps.append(Step(name: name, op: op, inputs: inputs.map { valueOf[$0] }, output: current))
            return steps.count - 1
        }
        /// The step a linear layer reads, past views (dropout).
        func source(_ i: Int) -> Int {
            if case .dropout = lowering.steps[i].op { return source(lowering.steps[i].inputs[0]) }
            return i
        }
        for (i, s) in lowering.steps.enumerated() {
            current = i
            switch s.op {
            case .input(let c):
                valueOf[i] = emit(s.name, .input(channels: c), [])
            case .conv(let chain):
                let c = chain.conv
                var conv = Conv(
                    name: s.name, kind: c.groups == 1 ? .dense : c.isDepthwise ? .depthwise : .grouped,
                    inChannels: c.inChannels, outChannels: c.outChannels, kernelH: c.kernelHeight,
                    kernelW: c.kernelWidth, stride: c.stride, padH: c.paddingHeight, padW: c.paddingWidth,
                    groups: c.groups, weight: c.weight.data, bias: c.bias?.data,
                    activation: chain.activation, residual: chain.residual.map { valueOf[$0] },
                    winogradApplies: false)
                if let bn = chain.bn {
                    (conv.weight, conv.bias) = BatchNorm.fold(
                        convWeight: conv.weight, convBias: conv.bias, outChannels: c.outChannels,
                        weight: bn.weight.data, bias: bn.bias.data, mean: bn.runningMean.data,
                        variance: bn.runningVar.data, eps: bn.eps)
                }
                conv.winogradApplies =
                    conv.kind == .dense && WinogradNHWC.applies(to: conv.geometry(batch: 1, height: 8, width: 8))
                valueOf[i] = emit(s.name, .conv(conv), s.inputs)
            case .linear(let l, let a):
                var weight = l.weight.data
                // After a spatial flatten, torch's weight columns follow (c, h, w); ours read (h, w, c).
                let from = source(s.inputs[0])
                if case .flatten = lowering.steps[from].op,
                    case .adaptiveAvgPool(let h, let w) = lowering.steps[lowering.steps[from].inputs[0]].op,
                    h * w > 1, let c = lowering.channels(of: lowering.steps[from].inputs[0])
                {
                    weight = Self.channelsLastColumns(weight, rows: l.outFeatures, channels: c, height: h, width: w)
                }
                let conv = Conv(
                    name: s.name, kind: .linear, inChannels: l.inFeatures, outChannels: l.outFeatures, kernelH: 1,
                    kernelW: 1, stride: 1, padH: 0, padW: 0, groups: 1, weight: weight, bias: l.bias.data,
                    activation: a, residual: nil,
                    winogradApplies: false)
                valueOf[i] = emit(s.name, .conv(conv), s.inputs)
            case .batchNorm(let bn):
                var scale = [Float](repeating: 0, count: bn.channels), shift = scale
                for c in 0..<bn.channels {
                    scale[c] = bn.weight.data[c] / (bn.runningVar.data[c] + bn.eps).squareRoot()
                    shift[c] = bn.bias.data[c] - bn.runningMean.data[c] * scale[c]
                }
                valueOf[i] = emit(s.name, .affine(scale: scale, shift: shift, activation: .none), s.inputs)
            case .maxPool(let k, let st, let p):
                // A max pool that alone reads a convolution chain (with its BatchNorm or activation, no
                // residual) runs with it, image by image.
                let x = s.inputs[0]
                if readers[x] == 1, case .conv(let chain) = lowering.steps[x].op, chain.residual == nil,
                    chain.bn != nil || chain.activation != .none, case .conv(let c) = steps[valueOf[x]].op
                {
                    steps[valueOf[x]].op = .convPool(c, kernel: k, stride: st, padding: p)
                    steps[valueOf[x]].name += " + " + s.name
                    steps[valueOf[x]].output = i
                    valueOf[i] = valueOf[x]
                } else {
                    valueOf[i] = emit(s.name, .maxPool(kernel: k, stride: st, padding: p), s.inputs)
                }
            case .adaptiveAvgPool(let h, let w):
                valueOf[i] = emit(s.name, .adaptiveAvgPool(height: h, width: w), s.inputs)
            case .flatten: valueOf[i] = emit(s.name, .view(flatten: true), s.inputs)
            case .dropout, .stochasticDepth: valueOf[i] = emit(s.name, .view(flatten: false), s.inputs)
            case .activation(let a):
                // An activation that alone reads a BatchNorm's affine runs in the affine's pass.
                let x = s.inputs[0]
                if readers[x] == 1, case .affine(let scale, let shift, .none) = steps[valueOf[x]].op {
                    steps[valueOf[x]].op = .affine(scale: scale, shift: shift, activation: a)
                    steps[valueOf[x]].name += " + " + s.name
                    steps[valueOf[x]].output = i
                    valueOf[i] = valueOf[x]
                } else {
                    valueOf[i] = emit(s.name, .activation(a), s.inputs)
                }
            case .add(let a): valueOf[i] = emit(s.name, .add(a), s.inputs)
            case .function(let f): valueOf[i] = emit(s.name, .function(f), s.inputs)
            }
        }
        var feature = valueOf[lowering.featureStep]
        if fuseBlocks { (steps, feature) = Self.fuseBlocks(steps, feature: feature) }
        self.steps = steps
        featureStep = feature
        classes = network.classes
        featureCount = network.headInputFeatures
    }

    /// Steps with `.block` in place of each [1×1 expand →] depthwise → 1×1 project chain whose inner values
    /// nothing else reads, and where the feature step went.
    static func fuseBlocks(_ steps: [Step], feature: Int) -> ([Step], Int) {
        var readers = [Int](repeating: 0, count: steps.count)
        for s in steps {
            for v in s.inputs { readers[v] += 1 }
            if case .conv(let c) = s.op, let r = c.residual { readers[r] += 1 }
        }
        func pointwise(_ c: Conv) -> Bool {
            c.kind == .dense && c.kernelH == 1 && c.kernelW == 1 && c.stride == 1 && c.padH == 0 && c.padW == 0
                && c.groups == 1
        }
        func conv(_ i: Int) -> Conv? { if case .conv(let c) = steps[i].op { c } else { nil } }
        var gone = Set<Int>()
        var out = steps
        for (j, s) in steps.enumerated() {
            guard let project = conv(j), pointwise(project), let d = s.inputs.first, let dw = conv(d),
                dw.kind == .depthwise, dw.isSquare,
                dw.residual == nil, readers[d] == 1, d != feature, let e = steps[d].inputs.first
            else { continue }
            var expand: Conv? = nil
            var input = e
            // The expand: a 1×1 convolution, or any other dense one Winograd would not run (MobileNetV2's
            // 3×3 stride-2 stem before features.1).
            if let ec = conv(e), ec.kind == .dense, ec.groups == 1, ec.isSquare, pointwise(ec) || !ec.winogradApplies,
                ec.residual == nil,
                readers[e] == 1, e != feature, !gone.contains(e)
            {
                expand = ec
                input = steps[e].inputs[0]
                gone.insert(e)
            }
            gone.insert(d)
            out[j] = Step(
                name: s.name, op: .block(expand: expand, depthwise: dw, project: project), inputs: [input],
                output: s.output)
        }
        guard !gone.isEmpty else { return (steps, feature) }
        var newIndex = [Int](repeating: -1, count: steps.count)
        var kept: [Step] = []
        for (i, s) in out.enumerated() where !gone.contains(i) {
            newIndex[i] = kept.count
            kept.append(s)
        }
        for i in kept.indices {
            kept[i].inputs = kept[i].inputs.map { newIndex[$0] }
            switch kept[i].op {
            case .conv(var c):
                if let r = c.residual { c.residual = newIndex[r] }
                kept[i].op = .conv(c)
            case .block(let e, let d, var p):
                if let r = p.residual { p.residual = newIndex[r] }
                kept[i].op = .block(expand: e, depthwise: d, project: p)
            default: break
            }
        }
        return (kept, newIndex[feature])
    }

    /// A linear weight [rows, c·h·w] whose columns follow torch's flatten (c, h, w), reordered to the
    /// channels-last flatten (h, w, c).
    static func channelsLastColumns(_ w: [Float], rows: Int, channels c: Int, height h: Int, width wd: Int) -> [Float] {
        let plane = h * wd, cols = c * plane
        precondition(w.count == rows * cols, "linear weight does not fit [\(rows), \(c)·\(h)·\(wd)]")
        var out = [Float](repeating: 0, count: w.count)
        for r in 0..<rows {
            for ch in 0..<c {
                for p in 0..<plane { out[r * cols + p * c + ch] = w[r * cols + ch * plane + p] }
            }
        }
        return out
    }

    deinit {
        for b in buffers { b.deallocate() }
        scratch.deallocate()
        imageBuffer.deallocate()
    }

    // MARK: planning

    /// A value's shape: channels-last [batch, height, width, channels].
    typealias Shape = NodeShape

    struct Plan {
        var batch: Int, height: Int, width: Int
        /// The thread count the scratch was sized for.
        var threads: Int
        var shapes: [Shape]
        /// Per step, its buffer.
        var slot: [Int]
        /// Floats per buffer.
        var sizes: [Int]
        var scratch: Int
        var image: Int
    }

    var plan: Plan?
    private var buffers: [UnsafeMutableBufferPointer<Float>] = []
    private var scratch = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)
    private var imageBuffer = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)

    /// Whether conv step `id` runs by Winograd on `g`: tuned, or when there are enough tiles to keep its
    /// 36 products busy (`WinogradNHWC.preferred`).
    func winograd(_ id: Int, _ c: Conv, _ g: Conv2dGeometry) -> Bool {
        guard useWinograd, c.winogradApplies else { return false }
        var chosenFor = g
        if let b = algorithmBatch { chosenFor.batch = b }
        return winogradChoice[id] ?? WinogradNHWC.preferred(chosenFor)
    }

    /// Shapes, buffers and scratch for `batch` images of height × width. The shapes are the lowering's
    /// (`Lowering.shapes`, which also says which step an input does not fit); each step here has the shape
    /// of the lowered step whose value it computes.
    func makePlan(batch: Int, height: Int, width: Int) throws(InferenceError) -> Plan {
        let lowered: [NodeShape]
        do {
            lowered = try lowering.shapes(height: height, width: width)
        } catch {
            throw .shape(step: error.step, detail: error.detail)
        }
        let shapes = steps.map { lowered[$0.output] }
        var scratch = ConvNHWC.scratchCount(threads: threads), image = 0
        for s in steps {
            guard let x = s.inputs.first.map({ shapes[$0] }) else { continue }
            switch s.op {
            case .conv(let c), .convPool(let c, _, _, _):
                let g = c.geometry(batch: batch, height: x.height, width: x.width)
                // Winograd's scratch whenever it may run (tuning tries it on every convolution it applies to),
                // for the whole batch and, under a pool, for one image.
                if c.winogradApplies {
                    scratch = max(
                        scratch, WinogradNHWC.scratchCount(g, threads: threads),
                        WinogradNHWC.scratchCount(
                            c.geometry(batch: 1, height: x.height, width: x.width), threads: threads))
                }
                if c.kind == .grouped { scratch = max(scratch, GroupedNHWC.scratchCount(g, threads: threads)) }
                if case .convPool(_, let k, let st, let p) = s.op {
                    if c.kind == .dense {
                        scratch = max(
                            scratch,
                            ConvPoolNHWC.scratchCount(g, .init(kernel: k, stride: st, padding: p), threads: threads))
                    }
                    // The image buffer only where the convolution may not run by bands (grouped, or
                    // Winograd, which tuning may pick for any convolution it applies to).
                    if c.kind != .dense || c.winogradApplies {
                        image = max(image, c.outChannels * g.outHeight * g.outWidth)
                    }
                }
            case .block(let e, let d, let pr):
                let s0 = blockShape(e, d, pr, batch: batch, input: x)
                scratch = max(scratch, InvertedResidualNHWC.scratchCount(s0, threads: threads))
            case .input, .maxPool, .adaptiveAvgPool, .affine, .activation, .add, .view, .function:
                break
            }
        }
        // Buffers: a step's output takes a buffer no live value holds; views share their input's.
        var lastUse = Array(0..<steps.count)
        var root = Array(0..<steps.count)
        for (i, s) in steps.enumerated() {
            if case .view = s.op { root[i] = root[s.inputs[0]] }
            for v in s.inputs { lastUse[root[v]] = max(lastUse[root[v]], i) }
            if case .conv(let c) = s.op, let r = c.residual { lastUse[root[r]] = max(lastUse[root[r]], i) }
            if case .block(_, _, let c) = s.op, let r = c.residual { lastUse[root[r]] = max(lastUse[root[r]], i) }
        }
        lastUse[root[steps.count - 1]] = steps.count
        lastUse[root[featureStep]] = max(lastUse[root[featureStep]], featureStep)
        var slot = [Int](repeating: -1, count: steps.count)
        var sizes: [Int] = []
        var holder: [Int?] = []
        for (i, s) in steps.enumerated() {
            if case .view = s.op {
                slot[i] = slot[root[i]]
                continue
            }
            let count = Self.product([batch, shapes[i].channels, shapes[i].height, shapes[i].width])
            // Free the buffers whose values died before this step (its own inputs die after it).
            for b in holder.indices { if let v = holder[b], lastUse[v] < i { holder[b] = nil } }
            if let b = holder.firstIndex(where: { $0 == nil }) {
                slot[i] = b
                holder[b] = i
                sizes[b] = max(sizes[b], count)
            } else {
                slot[i] = holder.count
                holder.append(i)
                sizes.append(count)
            }
        }
        var floats = scratch, overflow = false
        for n in sizes + [image] {
            (floats, overflow) = floats.addingReportingOverflow(n)
            if overflow { break }
        }
        let bytes = overflow || floats > Int.max / 4 ? Int.max : floats * 4
        guard bytes <= maxBufferBytes else { throw .tooLarge(bytes: bytes, limit: maxBufferBytes) }
        return Plan(
            batch: batch, height: height, width: width, threads: threads, shapes: shapes, slot: slot, sizes: sizes,
            scratch: scratch,
            image: image)
    }

    /// The product of `factors`, or `Int.max` when it overflows (the plan's size check then refuses it).
    static func product(_ factors: [Int]) -> Int {
        var p = 1
        for f in factors {
            let (q, o) = p.multipliedReportingOverflow(by: f)
            if o { return Int.max }
            p = q
        }
        return p
    }

    /// Checks that a batch of this size fits: every layer's shape, and the buffers within
    /// `maxBufferBytes`. Allocates nothing. Thrown: `InferenceError`.
    public func checkPlan(batch: Int, height: Int, width: Int) throws(InferenceError) {
        _ = try makePlan(batch: batch, height: height, width: width)
    }

    /// The plan for this input size, its buffers allocated.
    func prepare(batch: Int, height: Int, width: Int) throws(InferenceError) -> Plan {
        if let p = plan, p.batch == batch, p.height == height, p.width == width, p.threads == threads { return p }
        let p = try makePlan(batch: batch, height: height, width: width)
        for b in buffers { b.deallocate() }
        buffers = p.sizes.map { .allocateLineAligned(capacity: max(1, $0)) }
        if scratch.count < p.scratch {
            scratch.deallocate()
            scratch = .allocateLineAligned(capacity: p.scratch)
        }
        if imageBuffer.count < p.image {
            imageBuffer.deallocate()
            imageBuffer = .allocateLineAligned(capacity: p.image)
        }
        plan = p
        return p
    }

    /// The value of step `i` in this plan.
    func value(_ i: Int, _ p: Plan) -> UnsafeMutablePointer<Float> { buffers[p.slot[i]].baseAddress! }

    // MARK: running

    private func mark(_ name: @autoclosure () -> String) {
        guard profiling else { return }
        let t = Timing.now()
        stepTimes.append((name(), t - lastMark))
        lastMark = t
    }

    /// Times both algorithms for every Winograd-capable convolution at this batch and input size, with
    /// the current thread count, and keeps the faster one per convolution.
    public func tune(batch: Int, height: Int, width: Int) throws(InferenceError) {
        tuning = true
        tuningLog = []
        defer { tuning = false }
        _ = try logits(
            [Float](repeating: 0.5, count: batch * 3 * height * width), batch: batch, height: height, width: width)
    }

    /// Fixes every Winograd-capable convolution's algorithm to the one the default rule picks for `batch`
    /// images of this size (tuned choices are kept), so that an image's outputs no longer depend on how
    /// many images share its call (a feature cache relies on this).
    public func fixAlgorithms(batch: Int, height: Int, width: Int) throws(InferenceError) {
        let p = try makePlan(batch: batch, height: height, width: width)
        for (i, s) in steps.enumerated() {
            guard case .conv(let c) = s.op, c.winogradApplies, winogradChoice[i] == nil else { continue }
            let x = p.shapes[s.inputs[0]]
            winogradChoice[i] = winograd(i, c, c.geometry(batch: batch, height: x.height, width: x.width))
        }
    }

    /// Logits [batch, classes] for `input` [batch, C, height, width] (NCHW, already normalised).
    public func logits(_ input: [Float], batch: Int, height: Int, width: Int) throws(InferenceError) -> [Float] {
        try run(input, batch: batch, height: height, width: width, through: steps.count - 1)
    }

    /// The head's input [batch, featureCount] for `input` (ResNet: the pooled, flattened features).
    public func features(_ input: [Float], batch: Int, height: Int, width: Int) throws(InferenceError) -> [Float] {
        try run(input, batch: batch, height: height, width: width, through: featureStep)
    }

    func run(_ input: [Float], batch: Int, height: Int, width: Int, through last: Int) throws(InferenceError) -> [Float]
    {
        guard case .input(let c) = steps[0].op, batch > 0, input.count == batch * c * height * width else {
            throw .shape(step: "input", detail: "\(input.count) values are not [\(batch), 3, \(height), \(width)]")
        }
        let p = try prepare(batch: batch, height: height, width: width)
        stepTimes = []
        lastMark = profiling ? Timing.now() : 0
        for i in 0...last { run(i, input, p) }
        let s = p.shapes[last]
        let count = batch * s.channels * s.height * s.width
        let out = value(last, p)
        if s.height * s.width == 1 { return Array(UnsafeBufferPointer(start: out, count: count)) }
        var nchw = [Float](repeating: 0, count: count)
        Layout.nchw(out, &nchw, batch: batch, channels: s.channels, plane: s.height * s.width)
        return nchw
    }

    func run(_ i: Int, _ input: [Float], _ p: Plan) {
        let s = steps[i], batch = p.batch
        let y = value(i, p)
        func x(_ k: Int = 0) -> UnsafeMutablePointer<Float> { value(s.inputs[k], p) }
        switch s.op {
        case .input(let c):
            input.withUnsafeBufferPointer {
                Layout.nhwc($0.baseAddress!, y, batch: batch, channels: c, plane: p.height * p.width, threads: threads)
            }
            mark("input")
        case .conv(let c):
            let xs = p.shapes[s.inputs[0]]
            let g = c.geometry(batch: batch, height: xs.height, width: xs.width)
            if tuning, useWinograd, c.winogradApplies {
                tuneOne(i, c, g, input: x(), residual: c.residual.map { value($0, p) }, output: y)
            }
            convolve(i, c, g, input: x(), residual: c.residual.map { UnsafePointer(value($0, p)) }, output: y)
            mark("\(s.name) \(algorithm(i, c, g))")
        case .convPool(let c, let k, let st, let pad):
            let xs = p.shapes[s.inputs[0]]
            let g1 = c.geometry(batch: 1, height: xs.height, width: xs.width)
            if c.kind == .dense && !winograd(i, c, g1) {
                // By bands of pooled rows, the convolution's output kept in cache.
                withBaseAddress(c.bias) { bias in
                    ConvPoolNHWC.forward(
                        c.geometry(batch: batch, height: xs.height, width: xs.width), input: x(),
                        weight: packedWeight(i, c), bias: bias, activation: c.activation,
                        pool: .init(kernel: k, stride: st, padding: pad), output: y,
                        scratch: scratch.baseAddress!, threads: threads)
                }
                mark("\(s.name) \(algorithm(i, c, g1)) by bands")
                return
            }
            let out = p.shapes[i]
            let inEach = xs.channels * xs.height * xs.width, outEach = out.channels * out.height * out.width
            for n in 0..<batch {
                convolve(i, c, g1, input: x() + n * inEach, residual: nil, output: imageBuffer.baseAddress!)
                PoolNHWC.max2d(
                    imageBuffer.baseAddress!, y + n * outEach, batch: 1, channels: c.outChannels,
                    height: g1.outHeight, width: g1.outWidth, kernel: k, stride: st, padding: pad, threads: threads)
            }
            mark("\(s.name) \(algorithm(i, c, g1))")
        case .maxPool(let k, let st, let pad):
            let xs = p.shapes[s.inputs[0]]
            PoolNHWC.max2d(
                x(), y, batch: batch, channels: xs.channels, height: xs.height, width: xs.width, kernel: k,
                stride: st, padding: pad, threads: threads)
            mark(s.name)
        case .adaptiveAvgPool(let h, let w):
            let xs = p.shapes[s.inputs[0]]
            if h == 1 && w == 1 {
                PoolNHWC.globalAverage(x(), y, batch: batch, channels: xs.channels, plane: xs.height * xs.width)
            } else if h == xs.height && w == xs.width {
                y.update(from: x(), count: batch * xs.channels * h * w)
            } else {
                PoolNHWC.adaptiveAverage(
                    x(), y, batch: batch, channels: xs.channels, height: xs.height, width: xs.width,
                    outHeight: h, outWidth: w)
            }
            mark(s.name)
        case .affine(let scale, let shift, let a):
            let sh = p.shapes[i], rows = batch * sh.height * sh.width, c = sh.channels
            nonisolated(unsafe) let (src, dst) = (x(), y)
            scale.withUnsafeBufferPointer { sc in
                shift.withUnsafeBufferPointer { sf in
                    nonisolated(unsafe) let (sc, sf) = (sc, sf)
                    Parallel.ranges(rows, threads: threads, grain: max(1, 16384 / max(c, 1))) { r in
                        for row in r {
                            let u = src + row * c, v = dst + row * c
                            for ch in 0..<c { v[ch] = u[ch] * sc[ch] + sf[ch] }
                            Self.clamp(v, count: c, a)
                        }
                    }
                }
            }
            Self.activate(dst, count: rows * c, a, threads: threads)
            mark(s.name)
        case .activation(let a):
            let sh = p.shapes[i], n = batch * sh.channels * sh.height * sh.width
            if x() != y { y.update(from: x(), count: n) }
            Self.clamp(y, count: n, a, threads: threads)
            Self.activate(y, count: n, a, threads: threads)
            mark(s.name)
        case .add(let a):
            let sh = p.shapes[i], n = batch * sh.channels * sh.height * sh.width
            nonisolated(unsafe) let (u, v, out) = (x(0), x(1), y)
            Parallel.ranges(n, threads: threads, grain: 65536) { r in for j in r { out[j] = u[j] + v[j] } }
            Self.clamp(y, count: n, a, threads: threads)
            Self.activate(y, count: n, a, threads: threads)
            mark(s.name)
        case .view:
            break
        case .function(let f):
            f.forward(
                s.inputs.map { UnsafePointer(value($0, p)) }, shapes: s.inputs.map { p.shapes[$0] }, batch: batch,
                output: y, threads: threads)
            mark(s.name)
        case .block(let e, let d, let pr):
            let s0 = blockShape(e, d, pr, batch: batch, input: p.shapes[s.inputs[0]])
            runBlock(i, s0, e, d, pr, input: x(), residual: pr.residual.map { UnsafePointer(value($0, p)) }, output: y)
            mark("\(s.name) block")
        }
    }

    /// ReLU or ReLU6 in place over `count` values (NaN kept); the other activations are `activate`'s.
    static func clamp(_ v: UnsafeMutablePointer<Float>, count: Int, _ a: Activation, threads: Int = 1) {
        guard a == .relu || a == .relu6 else { return }
        nonisolated(unsafe) let v = v
        Parallel.ranges(count, threads: threads, grain: 65536) { r in
            if a == .relu6 {
                for j in r { v[j] = v[j] < 0 ? 0 : (v[j] > 6 ? 6 : v[j]) }
            } else {
                for j in r { v[j] = v[j] < 0 ? 0 : v[j] }
            }
        }
    }

    /// Hardswish or SiLU in place (`Pointwise`, the epilogues' arithmetic); nothing for the clamps.
    static func activate(_ v: UnsafeMutablePointer<Float>, count: Int, _ a: Activation, threads: Int) {
        switch a {
        case .hardswish: Pointwise.forward(.hardswish, v, v, count: count, threads: threads)
        case .silu: Pointwise.forward(.silu, v, v, count: count, threads: threads)
        case .gelu: Pointwise.forward(.gelu, v, v, count: count, threads: threads)
        case .none, .relu, .relu6: break
        }
    }

    func blockShape(_ e: Conv?, _ d: Conv, _ p: Conv, batch: Int, input x: Shape) -> InvertedResidualNHWC.Shape {
        InvertedResidualNHWC.Shape(
            batch: batch, height: x.height, width: x.width, inChannels: (e ?? d).inChannels,
            expanded: d.inChannels, outChannels: p.outChannels, kernel: d.kernelH, stride: d.stride,
            padding: d.padH, hasExpand: e != nil, expandKernel: e?.kernelH ?? 1,
            expandStride: e?.stride ?? 1, expandPadding: e?.padH ?? 0)
    }

    /// Per block step: its expand and project weights packed, its depthwise weight in the kernel's layout.
    var blockWeights: [Int: (expand: PackedConvWeight?, depthwise: [Float], project: PackedConvWeight)] = [:]

    func runBlock(
        _ i: Int, _ s: InvertedResidualNHWC.Shape, _ e: Conv?, _ d: Conv, _ p: Conv, input: UnsafePointer<Float>,
        residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>
    ) {
        if blockWeights[i] == nil {
            blockWeights[i] = (
                e.map {
                    PackedConvWeight(
                        $0.weight, outChannels: $0.outChannels, inChannels: $0.inChannels,
                        kernelH: $0.kernelH, kernelW: $0.kernelW)
                },
                DepthwiseNHWC.pack(d.weight, channels: d.inChannels, kernelH: d.kernelH, kernelW: d.kernelW),
                PackedConvWeight(p.weight, outChannels: p.outChannels, inChannels: p.inChannels, kernelH: 1, kernelW: 1)
            )
        }
        let w = blockWeights[i]!
        withBaseAddress(e?.bias) { eb in
            withBaseAddress(d.bias) { db in
                withBaseAddress(p.bias) { pb in
                    w.depthwise.withUnsafeBufferPointer { dw in
                        InvertedResidualNHWC.forward(
                            s, input: input,
                            expand: w.expand.map { .init(weight: $0, bias: eb, activation: e!.activation) },
                            depthwise: .init(
                                weight: dw.baseAddress!, bias: db, activation: d.activation, kernel: d.kernelH,
                                stride: d.stride, padding: d.padH),
                            project: .init(weight: w.project, bias: pb, activation: p.activation),
                            residual: residual, output: output, scratch: scratch.baseAddress!, threads: threads)
                    }
                }
            }
        }
    }

    func algorithm(_ i: Int, _ c: Conv, _ g: Conv2dGeometry) -> String {
        switch c.kind {
        case .dense: winograd(i, c, g) ? "winograd" : "direct"
        case .depthwise: "depthwise"
        case .grouped: "grouped"
        case .linear: "gemm"
        }
    }

    func tuneOne(
        _ i: Int, _ c: Conv, _ g: Conv2dGeometry, input: UnsafeMutablePointer<Float>,
        residual: UnsafeMutablePointer<Float>?, output: UnsafeMutablePointer<Float>
    ) {
        func time(_ w: Bool) -> Double {
            winogradChoice[i] = w
            var best = Double.infinity
            for _ in 0..<3 {
                let t0 = Timing.now()
                convolve(i, c, g, input: input, residual: residual.map { UnsafePointer($0) }, output: output)
                best = min(best, Timing.now() - t0)
            }
            return best
        }
        let w = time(true), d = time(false)
        winogradChoice[i] = w < d
        tuningLog.append(
            "\(g): winograd \(Int(w * 1e6)) µs, direct \(Int(d * 1e6)) µs → \(w < d ? "winograd" : "direct")")
    }

    /// Step `i`'s dense or linear weight packed for the GEMM, packed on first use.
    func packedWeight(_ i: Int, _ c: Conv) -> PackedConvWeight {
        if let w = packedWeights[i] { return w }
        let w = PackedConvWeight(
            c.weight, outChannels: c.outChannels, inChannels: c.inChannels, kernelH: c.kernelH,
            kernelW: c.kernelW)
        packedWeights[i] = w
        return w
    }

    func convolve(
        _ i: Int, _ c: Conv, _ g: Conv2dGeometry, input: UnsafePointer<Float>, residual: UnsafePointer<Float>?,
        output: UnsafeMutablePointer<Float>
    ) {
        withBaseAddress(c.bias) { bias in
            switch c.kind {
            case .dense where winograd(i, c, g):
                if winogradWeights[i] == nil {
                    winogradWeights[i] = WinogradNHWC.transformWeights(
                        c.weight, outChannels: c.outChannels, inChannels: c.inChannels)
                }
                winogradWeights[i]!.withUnsafeBufferPointer { u in
                    WinogradNHWC.forward(
                        g, input: input, transformedWeight: u.baseAddress!, bias: bias, residual: residual,
                        activation: c.activation, output: output, scratch: scratch.baseAddress!,
                        threads: threads)
                }
            case .dense, .linear:
                ConvNHWC.forward(
                    g, input: input, weight: packedWeight(i, c), bias: bias, residual: residual,
                    activation: c.activation, output: output, scratch: scratch.baseAddress!, threads: threads)
            case .depthwise:
                if depthwiseWeights[i] == nil {
                    depthwiseWeights[i] = DepthwiseNHWC.pack(
                        c.weight, channels: c.inChannels, kernelH: c.kernelH, kernelW: c.kernelW)
                }
                depthwiseWeights[i]!.withUnsafeBufferPointer { w in
                    DepthwiseNHWC.forward(
                        g, input: input, packedWeight: w.baseAddress!, bias: bias, activation: c.activation,
                        output: output, threads: threads)
                }
            case .grouped:
                if groupedWeights[i] == nil {
                    groupedWeights[i] = GroupedConvWeight(
                        c.weight, outChannels: c.outChannels, inChannels: c.inChannels,
                        groups: c.groups, kernelH: c.kernelH, kernelW: c.kernelW)
                }
                GroupedNHWC.forward(
                    g, input: input, weight: groupedWeights[i]!, bias: bias, residual: residual,
                    activation: c.activation, output: output, scratch: scratch.baseAddress!, threads: threads)
            }
        }
    }

    /// "[kind +residual activation]": a convolution's kernel and what it absorbed.
    static func absorbed(_ c: Conv) -> String {
        "[\(c.kind)" + (c.residual != nil ? " +residual" : "") + (c.activation != .none ? " \(c.activation)" : "") + "]"
    }

    /// One line per step: its name, what it absorbed and its kernel (for `--verbose` and tests).
    public var stepListing: [String] {
        steps.map { s in
            switch s.op {
            case .conv(let c), .convPool(let c, _, _, _):
                s.name + " " + Self.absorbed(c)
            case .block(let e, let d, let p):
                [e, d, p].compactMap { $0 }.map { $0.name + " " + Self.absorbed($0) }.joined(separator: " → ")
                    + " (by row bands)"
            default: s.name
            }
        }
    }
}

/// What `Inference` refuses: an input that does not fit the network.
public enum InferenceError: Error, CustomStringConvertible, Equatable {
    /// Thrown when the input's size or a layer's input shape does not fit (names the layer).
    case shape(step: String, detail: String)
    /// Thrown when the batch and input size need more buffer bytes than `Inference.maxBufferBytes`.
    case tooLarge(bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case .shape(let step, let detail): "\(step): \(detail)"
        case .tooLarge(let bytes, let limit):
            "this batch and input size need \(bytes == Int.max ? "more than 2^63" : "\(bytes >> 20) MiB of") buffers; "
                + "the limit is \(limit >> 20) MiB (half the machine's memory)"
        }
    }
}
