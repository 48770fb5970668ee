import Kernels

/// torch.nn.LayerNorm(channels, eps) over each position's channels: ConvNeXt's norms, which torchvision
/// applies after permuting to channels-last (the block's `norm_layer`) or through `LayerNorm2d`, the same
/// arithmetic. State: `weight` [C], `bias` [C].
public final class LayerNorm: ParametricFunction, PerChannelFunction {
    public let channels: Int
    public let eps: Float
    public let weight: Parameter, bias: Parameter

    public init(_ channels: Int, eps: Float = 1e-5) {
        self.channels = channels
        self.eps = eps
        weight = Parameter(shape: [channels], data: [Float](repeating: 1, count: channels))
        bias = Parameter(shape: [channels])
    }

    public var summary: String { "layernorm \(channels)" }
    public var parameters: [Parameter] { [weight, bias] }

    public func state(prefix: String) -> [(name: String, entry: StateEntry)] {
        [(prefix + "weight", .parameter(weight)), (prefix + "bias", .parameter(bias))]
    }

    public func forward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], batch: Int, output: UnsafeMutablePointer<Float>,
        threads: Int
    ) {
        weight.data.withUnsafeBufferPointer { w in
            bias.data.withUnsafeBufferPointer { b in
                LayerNormNHWC.forward(
                    inputs[0], output, rows: rows(shapes, batch), channels: channels, weight: w.baseAddress!,
                    bias: b.baseAddress!, eps: eps, threads: threads)
            }
        }
    }

    public func backward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], output: UnsafePointer<Float>,
        outputGradient: UnsafePointer<Float>, batch: Int, inputGradients: [UnsafeMutablePointer<Float>?],
        threads: Int
    ) {
        guard let dx = inputGradients[0] else { return }
        weight.data.withUnsafeBufferPointer { w in
            LayerNormNHWC.inputBackward(
                inputs[0], outputGradient: outputGradient, inputGradient: dx, rows: rows(shapes, batch),
                channels: channels, weight: w.baseAddress!, eps: eps, threads: threads)
        }
    }

    public func parameterBackward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], outputGradient: UnsafePointer<Float>, batch: Int,
        parameterGradients: [UnsafeMutablePointer<Float>?], threads: Int
    ) {
        LayerNormNHWC.parameterBackward(
            inputs[0], outputGradient: outputGradient, weightGradient: parameterGradients[0],
            biasGradient: parameterGradients[1], rows: rows(shapes, batch), channels: channels, eps: eps,
            threads: threads)
    }

    /// γ in 1 ± 0.2, β in ±0.1.
    public func fillSeeded(_ rng: inout SplitMix64) {
        for i in 0..<channels {
            weight.data[i] = 1 + (rng.nextUnitFloat() * 2 - 1) * 0.2
            bias.data[i] = (rng.nextUnitFloat() * 2 - 1) * 0.1
        }
    }
}

/// ConvNeXt's layer scale: the block's output times a learned per-channel factor (`layer_scale`, stored
/// [C, 1, 1], torchvision's initial value 1e-6). State: `layer_scale` under the block's name.
public final class LayerScale: ParametricFunction, PerChannelFunction {
    public let channels: Int
    public let scale: Parameter

    public init(_ channels: Int, initial: Float = 1e-6) {
        self.channels = channels
        scale = Parameter(shape: [channels, 1, 1], data: [Float](repeating: initial, count: channels))
    }

    public var summary: String { "layer scale \(channels)" }
    public var parameters: [Parameter] { [scale] }

    public func state(prefix: String) -> [(name: String, entry: StateEntry)] {
        [(prefix + "layer_scale", .parameter(scale))]
    }

    public func forward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], batch: Int, output: UnsafeMutablePointer<Float>,
        threads: Int
    ) {
        scale.data.withUnsafeBufferPointer { s in
            ChannelMultiply.forward(
                inputs[0], scale: s.baseAddress!, output, rows: rows(shapes, batch), channels: channels,
                threads: threads)
        }
    }

    public func backward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], output: UnsafePointer<Float>,
        outputGradient: UnsafePointer<Float>, batch: Int, inputGradients: [UnsafeMutablePointer<Float>?],
        threads: Int
    ) {
        guard let dx = inputGradients[0] else { return }
        scale.data.withUnsafeBufferPointer { s in
            ChannelMultiply.backward(
                inputs[0], scale: s.baseAddress!, outputGradient: outputGradient, inputGradient: dx,
                scaleGradient: nil, rows: rows(shapes, batch), channels: channels, threads: threads)
        }
    }

    public func parameterBackward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], outputGradient: UnsafePointer<Float>, batch: Int,
        parameterGradients: [UnsafeMutablePointer<Float>?], threads: Int
    ) {
        guard let ds = parameterGradients[0] else { return }
        scale.data.withUnsafeBufferPointer { s in
            ChannelMultiply.backward(
                inputs[0], scale: s.baseAddress!, outputGradient: outputGradient, inputGradient: nil,
                scaleGradient: ds, rows: rows(shapes, batch), channels: channels, threads: threads)
        }
    }

    /// Factors in [0.05, 0.45]: small, as trained ones are, but far from the identity and from zero.
    public func fillSeeded(_ rng: inout SplitMix64) {
        for i in 0..<channels { scale.data[i] = 0.05 + rng.nextUnitFloat() * 0.4 }
    }
}

/// A function of one input that keeps its shape and acts per channel (LayerNorm, layer scale): its shape
/// rule, and its rows (positions) for a batch.
protocol PerChannelFunction: LayerFunction {
    var channels: Int { get }
}

extension PerChannelFunction {
    public func outputShape(_ inputs: [NodeShape]) throws(FunctionShapeError) -> NodeShape {
        guard inputs[0].channels == channels else {
            throw FunctionShapeError("takes \(channels) channels, gets \(inputs[0].channels)")
        }
        return inputs[0]
    }

    func rows(_ shapes: [NodeShape], _ batch: Int) -> Int { batch * shapes[0].height * shapes[0].width }
}
