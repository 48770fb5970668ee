import Kernels
import NN

/// A ResNet prepared for inference: every BatchNorm folded into the convolution before it (weight
/// scaled, bias added); activations channels-last ([N, H, W, C]) so that each convolution is one GEMM
/// over output positions whose epilogue adds the bias and the block's residual and applies ReLU.
/// 3×3 stride-1 convolutions use Winograd F(4×4, 3×3) when there are enough tiles.
///
/// Build it after loading weights; it copies what it needs, so the model can change afterwards. One
/// instance runs one `logits` call at a time (it keeps its activation buffers between calls); make one
/// per thread to run several at once.
public final class ResNetInference {
    struct Conv {
        var id = 0
        /// torchvision's name of the convolution ("layer2.0.conv1", "layer2.0.downsample.0").
        var name: String
        var inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int
        /// Folded weight [K, C, kh, kw] and bias [K].
        var weight: [Float]
        var bias: [Float]
        /// Whether Winograd applies (3×3, stride 1, channels in eights).
        var winogradApplies: Bool

        init(_ c: Conv2d, _ bn: BatchNorm2d, name: String) {
            self.name = name
            precondition(c.groups == 1, "grouped convolutions are not part of these ResNets")
            inChannels = c.inChannels
            outChannels = c.outChannels
            kernel = c.kernel
            stride = c.stride
            padding = c.padding
            (weight, bias) = BatchNorm.fold(
                convWeight: c.weight.data, convBias: nil, outChannels: c.outChannels, weight: bn.weight.data,
                bias: bn.bias.data, mean: bn.runningMean.data, variance: bn.runningVar.data, eps: bn.eps)
            winogradApplies = WinogradNHWC.applies(to: Conv2dGeometry(
                batch: 1, inChannels: c.inChannels, height: 8, width: 8, outChannels: c.outChannels,
                kernel: (c.kernel, c.kernel), stride: (c.stride, c.stride), padding: (c.padding, c.padding)))
        }

        func geometry(batch: Int, height: Int, width: Int) -> Conv2dGeometry {
            Conv2dGeometry(batch: batch, inChannels: inChannels, height: height, width: width, outChannels: outChannels,
                           kernel: (kernel, kernel), stride: (stride, stride), padding: (padding, padding))
        }
    }

    struct Block {
        var convs: [Conv]
        var downsample: Conv?
    }

    var stem: Conv
    var blocks: [Block]
    /// fc as a 1×1 convolution over a 1×1 image of `features` channels.
    let fc: PackedConvWeight, fcBias: [Float]
    public let classes: Int
    /// Channels of the pooled features fc takes (512 for resnet18/34, 2048 for the bottleneck ResNets).
    public let featureCount: Int
    /// Threads the kernels split their work across.
    public var threads: Int = 1
    /// Use Winograd F(4×4, 3×3) for the 3×3 stride-1 convolutions (else im2col + GEMM).
    public var useWinograd = true
    /// Per convolution (by position), whether Winograd measured faster (`tune`); absent: the default rule.
    var winogradChoice: [Int: Bool] = [:]
    /// Weights in each algorithm's layout, made when a convolution first runs that way (Winograd's are
    /// 4× the plain weight, so only for the layers that use it).
    var winogradWeights: [Int: [Float]] = [:]
    var packedWeights: [Int: PackedConvWeight] = [:]
    private var tuning = false
    /// Per convolution: "conv 1x64x56x56 → 64 …: winograd 1200 µs, direct 2000 µs → winograd".
    public private(set) var tuningLog: [String] = []
    /// When true, `logits` records each step's time in `stepTimes`.
    public var profiling = false
    /// Seconds per step of the last `logits` call while `profiling`, in order: "input" (the NHWC copy),
    /// "conv1 direct + maxpool", each convolution by its torchvision name and algorithm
    /// ("layer1.0.conv1 winograd"), "avgpool" and "fc".
    public private(set) var stepTimes: [(step: String, seconds: Double)] = []
    private var lastMark = 0.0

    /// Records the time since the previous mark as step `name`'s.
    private func mark(_ name: @autoclosure () -> String) {
        guard profiling else { return }
        let t = monotonicSeconds()
        stepTimes.append((name(), t - lastMark))
        lastMark = t
    }
    /// Activation buffers, reused from call to call (four suffice: a block's input, two intermediates
    /// and the downsampled identity), and the kernels' scratch.
    private var buffers: [UnsafeMutableBufferPointer<Float>] = []
    private var scratch = UnsafeMutableBufferPointer<Float>(start: nil, count: 0)

    /// Times both algorithms for every 3×3 stride-1 convolution at this batch and input size, with the
    /// current thread count, and keeps the faster one per convolution.
    public func tune(batch: Int, height: Int, width: Int) {
        tuning = true
        tuningLog = []
        defer { tuning = false }
        _ = logits([Float](repeating: 0.5, count: batch * 3 * height * width), batch: batch, height: height, width: width)
    }

    public init(_ model: ResNet) {
        stem = Conv(model.conv1, model.bn1, name: "conv1")
        var blocks: [Block] = []
        for (s, stage) in model.layers.enumerated() {
            for (i, b) in stage.enumerated() {
                let prefix = "layer\(s + 1).\(i)."
                var convs = [Conv(b.conv1, b.bn1, name: prefix + "conv1"), Conv(b.conv2, b.bn2, name: prefix + "conv2")]
                if let c3 = b.conv3, let bn3 = b.bn3 { convs.append(Conv(c3, bn3, name: prefix + "conv3")) }
                blocks.append(Block(convs: convs, downsample: b.downsample.map { Conv($0.conv, $0.bn, name: prefix + "downsample.0") }))
            }
        }
        self.blocks = blocks
        var id = 0
        stem.id = id
        for b in self.blocks.indices {
            for c in self.blocks[b].convs.indices {
                id += 1
                self.blocks[b].convs[c].id = id
            }
            if self.blocks[b].downsample != nil {
                id += 1
                self.blocks[b].downsample!.id = id
            }
        }
        fc = PackedConvWeight(model.fc.weight.data, outChannels: model.fc.outFeatures, inChannels: model.fc.inFeatures,
                              kernelH: 1, kernelW: 1)
        fcBias = model.fc.bias.data
        classes = model.fc.outFeatures
        featureCount = model.fc.inFeatures
    }

    deinit {
        for b in buffers { b.deallocate() }
        scratch.deallocate()
    }

    /// A tensor in flight: NHWC in `buffers[slot]`.
    struct Activation {
        var slot: Int
        var channels: Int, height: Int, width: Int
    }

    /// Whether conv `c` runs by Winograd on geometry `g`. Untuned default: when there are enough tiles
    /// to keep its 36 products busy (measured here: at batch 1 the 7×7 stage's 4 tiles lose to im2col +
    /// GEMM, 64 tiles win).
    func winograd(_ c: Conv, _ g: Conv2dGeometry) -> Bool {
        guard useWinograd, c.winogradApplies else { return false }
        return winogradChoice[c.id] ?? (g.batch * ((g.outHeight + 3) / 4) * ((g.outWidth + 3) / 4) >= 16)
    }

    /// Fixes every 3×3 convolution's algorithm to the one the default rule picks for `batch` images of
    /// this size (choices `tune` made are kept). Afterwards an image's features no longer depend on how
    /// many images share its call: each output value is summed in the same order whatever the batch
    /// (checked by TrainingTests), which a feature cache relies on.
    public func fixAlgorithms(batch: Int, height: Int, width: Int) {
        forEachConvolution(batch: batch, height: height, width: width) { c, g in
            if c.winogradApplies && winogradChoice[c.id] == nil { winogradChoice[c.id] = winograd(c, g) }
        }
    }

    /// `body` for every convolution of a forward pass on this input size, in order, with its geometry.
    private func forEachConvolution(batch: Int, height: Int, width: Int, _ body: (Conv, Conv2dGeometry) -> Void) {
        func visit(_ c: Conv, _ h: Int, _ w: Int) -> (Int, Int) {
            let g = c.geometry(batch: batch, height: h, width: w)
            body(c, g)
            return (g.outHeight, g.outWidth)
        }
        var (h, w) = visit(stem, height, width)
        (h, w) = ((h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1)
        for b in blocks {
            var (bh, bw) = (h, w)
            for c in b.convs { (bh, bw) = visit(c, bh, bw) }
            if let d = b.downsample { _ = visit(d, h, w) }
            (h, w) = (bh, bw)
        }
    }

    /// Makes sure there are four buffers of the largest activation and scratch for the largest
    /// convolution of a forward pass on this input size (allocated once, reused after).
    private func reserve(batch: Int, height: Int, width: Int) {
        var largest = batch * 3 * height * width
        var work = ConvNHWC.scratchCount(threads: threads)
        forEachConvolution(batch: batch, height: height, width: width) { c, g in
            largest = max(largest, g.outputCount)
            if c.winogradApplies { work = max(work, WinogradNHWC.scratchCount(g, threads: threads)) }
        }
        if buffers.count < 4 || buffers[0].count < largest {
            for b in buffers { b.deallocate() }
            buffers = (0..<4).map { _ in .allocate(capacity: largest) }
        }
        if scratch.count < work {
            scratch.deallocate()
            scratch = .allocate(capacity: work)
        }
    }

    /// Logits [batch, classes] for `input` [batch, 3, height, width] (NCHW, already normalised).
    public func logits(_ input: [Float], batch: Int, height: Int, width: Int) -> [Float] {
        let pooledFeatures = features(input, batch: batch, height: height, width: width)
        var out = [Float](repeating: 0, count: batch * classes)
        let fcShape = Conv2dGeometry(batch: batch, inChannels: featureCount, height: 1, width: 1, outChannels: classes, kernel: (1, 1))
        pooledFeatures.withUnsafeBufferPointer { f in
            fcBias.withUnsafeBufferPointer { b in
                out.withUnsafeMutableBufferPointer { o in
                    ConvNHWC.forward(fcShape, input: f.baseAddress!, weight: fc, bias: b.baseAddress, residual: nil, relu: false,
                                     output: o.baseAddress!, scratch: scratch.baseAddress!, threads: threads)
                }
            }
        }
        mark("fc")
        return out
    }

    /// The pooled features fc takes, [batch, featureCount] (torch: `torch.flatten(avgpool(layer4(…)), 1)`),
    /// for `input` [batch, 3, height, width] (NCHW, already normalised).
    public func features(_ input: [Float], batch: Int, height: Int, width: Int) -> [Float] {
        precondition(input.count == batch * 3 * height * width, "input is not [\(batch), 3, \(height), \(width)]")
        reserve(batch: batch, height: height, width: width)
        stepTimes = []
        lastMark = profiling ? monotonicSeconds() : 0
        input.withUnsafeBufferPointer {
            Layout.nhwc($0.baseAddress!, buffers[0].baseAddress!, batch: batch, channels: 3, plane: height * width,
                        threads: threads)
        }
        mark("input")
        // Stem and MaxPool2d(3, stride 2, padding 1). With several images, image by image: one image's
        // stem output (3 MB at 224×224) stays in cache for the pool instead of a batch's going through
        // memory twice.
        let sg = stem.geometry(batch: 1, height: height, width: width)
        let pH = (sg.outHeight + 2 - 3) / 2 + 1, pW = (sg.outWidth + 2 - 3) / 2 + 1
        let pooled = batch == 1 ? 0 : 2
        for n in 0..<batch {
            let image = UnsafePointer(buffers[0].baseAddress! + n * sg.inputCount)
            run(stem, sg, input: image, residual: nil, relu: true, output: buffers[1].baseAddress!)
            PoolNHWC.max2d(buffers[1].baseAddress!, buffers[pooled].baseAddress! + n * pH * pW * sg.outChannels, batch: 1,
                           channels: sg.outChannels, height: sg.outHeight, width: sg.outWidth, kernel: 3, stride: 2,
                           padding: 1, threads: threads)
        }
        mark("conv1 direct + maxpool")
        var x = Activation(slot: pooled, channels: sg.outChannels, height: pH, width: pW)
        for b in blocks {
            // Slots other than the block input's, in order.
            var free = (0..<4).filter { $0 != x.slot }
            let identity: Activation
            if let d = b.downsample {
                identity = conv(d, x, batch: batch, relu: false, residual: nil, into: free.removeLast())
            } else {
                identity = x
            }
            var y = x
            for (i, c) in b.convs.enumerated() {
                let last = i == b.convs.count - 1
                // The last convolution adds the identity and applies ReLU in its epilogue.
                let target = free.first { $0 != y.slot }!
                y = conv(c, y, batch: batch, relu: true, residual: last ? identity : nil, into: target)
            }
            x = y
        }
        var pooledFeatures = [Float](repeating: 0, count: batch * x.channels)
        pooledFeatures.withUnsafeMutableBufferPointer { dst in
            PoolNHWC.globalAverage(buffers[x.slot].baseAddress!, dst.baseAddress!, batch: batch, channels: x.channels,
                                   plane: x.height * x.width)
        }
        mark("avgpool")
        return pooledFeatures
    }

    func conv(_ c: Conv, _ x: Activation, batch: Int, relu: Bool, residual: Activation?, into slot: Int) -> Activation {
        let g = c.geometry(batch: batch, height: x.height, width: x.width)
        if tuning, useWinograd, c.winogradApplies {
            func time(_ winograd: Bool) -> Double {
                winogradChoice[c.id] = winograd
                var best = Double.infinity
                for _ in 0..<3 {
                    let t0 = monotonicSeconds()
                    run(c, x, g, relu: relu, residual: residual, into: slot)
                    best = min(best, monotonicSeconds() - t0)
                }
                return best
            }
            let w = time(true), d = time(false)
            winogradChoice[c.id] = w < d
            tuningLog.append("\(g): winograd \(Int(w * 1e6)) µs, direct \(Int(d * 1e6)) µs → \(w < d ? "winograd" : "direct")")
        }
        run(c, x, g, relu: relu, residual: residual, into: slot)
        mark("\(c.name) \(winograd(c, g) ? "winograd" : "direct")")
        return Activation(slot: slot, channels: g.outChannels, height: g.outHeight, width: g.outWidth)
    }

    func run(_ c: Conv, _ x: Activation, _ g: Conv2dGeometry, relu: Bool, residual: Activation?, into slot: Int) {
        precondition(slot != x.slot && slot != residual?.slot, "a convolution's output overwrites its input")
        run(c, g, input: buffers[x.slot].baseAddress!, residual: residual.map { UnsafePointer(buffers[$0.slot].baseAddress!) },
            relu: relu, output: buffers[slot].baseAddress!)
    }

    func run(_ c: Conv, _ g: Conv2dGeometry, input: UnsafePointer<Float>, residual res: UnsafePointer<Float>?, relu: Bool,
             output: UnsafeMutablePointer<Float>) {
        c.bias.withUnsafeBufferPointer { bias in
            if winograd(c, g) {
                if winogradWeights[c.id] == nil {
                    winogradWeights[c.id] = WinogradNHWC.transformWeights(c.weight, outChannels: c.outChannels, inChannels: c.inChannels)
                }
                winogradWeights[c.id]!.withUnsafeBufferPointer { u in
                    WinogradNHWC.forward(g, input: input, transformedWeight: u.baseAddress!, bias: bias.baseAddress,
                                         residual: res, relu: relu, output: output, scratch: scratch.baseAddress!,
                                         threads: threads)
                }
            } else {
                if packedWeights[c.id] == nil {
                    packedWeights[c.id] = PackedConvWeight(c.weight, outChannels: c.outChannels, inChannels: c.inChannels,
                                                           kernelH: c.kernel, kernelW: c.kernel)
                }
                ConvNHWC.forward(g, input: input, weight: packedWeights[c.id]!, bias: bias.baseAddress, residual: res,
                                 relu: relu, output: output, scratch: scratch.baseAddress!, threads: threads)
            }
        }
    }
}

#if canImport(Glibc)
import Glibc
#endif

@inline(__always) func monotonicSeconds() -> Double { Timing.now() }
