import Kernels
import NN

/// A ResNet prepared for inference: every BatchNorm folded into the convolution before it (weight
/// scaled, bias added), ReLU fused into the convolution's epilogue, NCHW Float32.
///
/// Build it after loading weights; it copies what it needs, so the model can change afterwards. One
/// instance runs one `logits` call at a time (it keeps scratch state); make one per thread to run
/// several at once.
public final class ResNetInference {
    struct Conv {
        var id = 0
        var inChannels: Int, outChannels: Int, kernel: Int, stride: Int, padding: Int, groups: Int
        var weight: [Float]
        var bias: [Float]
        /// Whether Winograd applies (3×3, stride 1); its transformed weight is made on first use.
        var winogradApplies: Bool

        init(_ c: Conv2d, _ bn: BatchNorm2d) {
            inChannels = c.inChannels
            outChannels = c.outChannels
            kernel = c.kernel
            stride = c.stride
            padding = c.padding
            groups = c.groups
            (weight, bias) = BatchNorm.fold(
                convWeight: c.weight.data, convBias: nil, outChannels: c.outChannels, weight: bn.weight.data,
                bias: bn.bias.data, mean: bn.runningMean.data, variance: bn.runningVar.data, eps: bn.eps)
            winogradApplies = Winograd.applies(to: Conv2dGeometry(
                batch: 1, inChannels: c.inChannels, height: 8, width: 8, outChannels: c.outChannels,
                kernel: (c.kernel, c.kernel), stride: (c.stride, c.stride), padding: (c.padding, c.padding), groups: c.groups))
        }

        func geometry(batch: Int, height: Int, width: Int) -> Conv2dGeometry {
            Conv2dGeometry(batch: batch, inChannels: inChannels, height: height, width: width, outChannels: outChannels,
                           kernel: (kernel, kernel), stride: (stride, stride), padding: (padding, padding), groups: groups)
        }
    }

    struct Block {
        var convs: [Conv]
        var downsample: Conv?
    }

    var stem: Conv
    var blocks: [Block]
    let fcWeight: [Float], fcBias: [Float]
    public let classes: Int
    let features: Int
    /// Threads the kernels split their work across (OpenBLAS itself stays single-threaded).
    public var threads: Int = 1
    /// Use Winograd F(4×4, 3×3) for the 3×3 stride-1 convolutions (else im2col + sgemm).
    public var useWinograd = true
    /// Per convolution (by position), whether Winograd measured faster (`tune`); absent: use it.
    var winogradChoice: [Int: Bool] = [:]
    /// Winograd weights by convolution, made when a convolution first runs that way (4× the size of the
    /// plain weight, so only for the layers that use it).
    var winogradWeights: [Int: [Float]] = [:]
    private var tuning = false
    /// Per convolution: "conv 1x64x56x56 → 64 …: winograd 1.2 ms, direct 2.0 ms".
    public private(set) var tuningLog: [String] = []

    /// Times both algorithms for every 3×3 stride-1 convolution at this batch and input size, with the
    /// current thread count, and keeps the faster one per convolution.
    public func tune(batch: Int, height: Int, width: Int) {
        tuning = true
        tuningLog = []
        defer { tuning = false }
        _ = logits([Float](repeating: 0.5, count: batch * 3 * height * width), batch: batch, height: height, width: width)
    }

    public init(_ model: ResNet) {
        KernelThreads.singleThreadedBLAS()
        stem = Conv(model.conv1, model.bn1)
        var blocks: [Block] = []
        for stage in model.layers {
            for b in stage {
                var convs = [Conv(b.conv1, b.bn1), Conv(b.conv2, b.bn2)]
                if let c3 = b.conv3, let bn3 = b.bn3 { convs.append(Conv(c3, bn3)) }
                blocks.append(Block(convs: convs, downsample: b.downsample.map { Conv($0.conv, $0.bn) }))
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
        fcWeight = model.fc.weight.data
        fcBias = model.fc.bias.data
        classes = model.fc.outFeatures
        features = model.fc.inFeatures
    }

    /// A tensor in flight: NCHW.
    struct Activation {
        var data: [Float]
        var channels: Int, height: Int, width: Int
    }

    /// Logits [batch, classes] for `input` [batch, 3, height, width] (already normalised).
    public func logits(_ input: [Float], batch: Int, height: Int, width: Int) -> [Float] {
        precondition(input.count == batch * 3 * height * width, "input is not [\(batch), 3, \(height), \(width)]")
        var scratch: [Float] = []
        var x = conv(stem, Activation(data: input, channels: 3, height: height, width: width), batch: batch, relu: true, scratch: &scratch)
        // MaxPool2d(3, stride 2, padding 1)
        let pH = (x.height + 2 - 3) / 2 + 1, pW = (x.width + 2 - 3) / 2 + 1
        var pooled = [Float](repeating: 0, count: batch * x.channels * pH * pW)
        x.data.withUnsafeBufferPointer { src in
            pooled.withUnsafeMutableBufferPointer { dst in
                Pool.max2d(src.baseAddress!, dst.baseAddress!, batch: batch, channels: x.channels, height: x.height,
                           width: x.width, kernel: 3, stride: 2, padding: 1, threads: threads)
            }
        }
        x = Activation(data: pooled, channels: x.channels, height: pH, width: pW)
        for b in blocks {
            var y = x
            for (i, c) in b.convs.enumerated() {
                y = conv(c, y, batch: batch, relu: i < b.convs.count - 1, scratch: &scratch)
            }
            let identity = b.downsample.map { conv($0, x, batch: batch, relu: false, scratch: &scratch) } ?? x
            let count = y.data.count
            identity.data.withUnsafeBufferPointer { r in
                y.data.withUnsafeMutableBufferPointer { p in
                    Elementwise.addReLU(p.baseAddress!, r.baseAddress!, p.baseAddress!, count: count, threads: threads)
                }
            }
            x = y
        }
        var pooledFeatures = [Float](repeating: 0, count: batch * x.channels)
        x.data.withUnsafeBufferPointer { src in
            pooledFeatures.withUnsafeMutableBufferPointer { dst in
                Pool.globalAverage(src.baseAddress!, dst.baseAddress!, planes: batch * x.channels, plane: x.height * x.width)
            }
        }
        var out = [Float](repeating: 0, count: batch * classes)
        pooledFeatures.withUnsafeBufferPointer { f in
            fcWeight.withUnsafeBufferPointer { w in
                fcBias.withUnsafeBufferPointer { b in
                    out.withUnsafeMutableBufferPointer { o in
                        LinearKernel.forward(f.baseAddress!, weight: w.baseAddress!, bias: b.baseAddress!, o.baseAddress!,
                                       batch: batch, inFeatures: features, outFeatures: classes)
                    }
                }
            }
        }
        return out
    }

    func conv(_ c: Conv, _ x: Activation, batch: Int, relu: Bool, scratch: inout [Float]) -> Activation {
        let g = c.geometry(batch: batch, height: x.height, width: x.width)
        if tuning, useWinograd, c.winogradApplies {
            func time(_ winograd: Bool) -> Double {
                winogradChoice[c.id] = winograd
                var best = Double.infinity
                for _ in 0..<3 {
                    let t0 = monotonicSeconds()
                    _ = run(c, x, g, batch: batch, relu: relu, scratch: &scratch)
                    best = min(best, monotonicSeconds() - t0)
                }
                return best
            }
            let w = time(true), d = time(false)
            winogradChoice[c.id] = w < d
            tuningLog.append("\(g): winograd \(Int(w * 1e6)) µs, direct \(Int(d * 1e6)) µs → \(w < d ? "winograd" : "direct")")
        }
        return run(c, x, g, batch: batch, relu: relu, scratch: &scratch)
    }

    func run(_ c: Conv, _ x: Activation, _ g: Conv2dGeometry, batch: Int, relu: Bool, scratch: inout [Float]) -> Activation {
        // Untuned default: Winograd when there are enough tiles to keep its 36 products busy (measured
        // here: at batch 1 the 7×7 stage's 4 tiles lose to im2col + sgemm, 64 tiles win).
        let tileCount = batch * ((g.outHeight + 3) / 4) * ((g.outWidth + 3) / 4)
        var fast: [Float]? = nil
        if useWinograd, c.winogradApplies, winogradChoice[c.id] ?? (tileCount >= 16) {
            if winogradWeights[c.id] == nil {
                winogradWeights[c.id] = Winograd.transformWeights(c.weight, outChannels: c.outChannels, inChannels: c.inChannels)
            }
            fast = winogradWeights[c.id]
        }
        let need = fast != nil ? Winograd.scratchCount(g) : ConvKernel.scratchCount(g)
        if scratch.count < need { scratch = [Float](repeating: 0, count: need) }
        let threads = self.threads
        let out = [Float](unsafeUninitializedCapacity: g.outputCount) { dst, initialized in
            x.data.withUnsafeBufferPointer { src in
                c.bias.withUnsafeBufferPointer { b in
                    scratch.withUnsafeMutableBufferPointer { s in
                        let epilogue = Epilogue(bias: b.baseAddress!, relu: relu)
                        if let u = fast {
                            u.withUnsafeBufferPointer { u in
                                Winograd.forward(g, input: src.baseAddress!, transformedWeight: u.baseAddress!,
                                                 output: dst.baseAddress!, epilogue: epilogue, scratch: s.baseAddress!, threads: threads)
                            }
                        } else {
                            c.weight.withUnsafeBufferPointer { w in
                                ConvKernel.forward(g, input: src.baseAddress!, weight: w.baseAddress!, output: dst.baseAddress!,
                                                   epilogue: epilogue, scratch: s.baseAddress, threads: threads)
                            }
                        }
                    }
                }
            }
            initialized = g.outputCount
        }
        return Activation(data: out, channels: g.outChannels, height: g.outHeight, width: g.outWidth)
    }
}

#if canImport(Glibc)
import Glibc
#endif

func monotonicSeconds() -> Double {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}
