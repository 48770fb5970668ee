import Kernels

/// Squeeze-and-excitation's product: the first input [C, H, W] times the second [C, 1, 1], channel by
/// channel (torchvision's `scale * input`).
public struct ChannelScaling: LayerFunction {
    public init() {}

    public var summary: String { "scale" }

    public func outputShape(_ inputs: [NodeShape]) throws(FunctionShapeError) -> NodeShape {
        let x = inputs[0], s = inputs[1]
        guard s.height == 1, s.width == 1, s.channels == x.channels else {
            throw FunctionShapeError("scales \(x) by \(s), not by \(x.channels)×1×1")
        }
        return x
    }

    public func forward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], batch: Int, output: UnsafeMutablePointer<Float>,
        threads: Int
    ) {
        let x = shapes[0]
        ChannelScale.forward(
            inputs[0], scale: inputs[1], output, batch: batch, plane: x.height * x.width, channels: x.channels,
            threads: threads)
    }

    public func backward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], output: UnsafePointer<Float>,
        outputGradient: UnsafePointer<Float>, batch: Int, inputGradients: [UnsafeMutablePointer<Float>?],
        threads: Int
    ) {
        let x = shapes[0]
        ChannelScale.backward(
            inputs[0], scale: inputs[1], outputGradient: outputGradient, inputGradient: inputGradients[0],
            scaleGradient: inputGradients[1], batch: batch, plane: x.height * x.width, channels: x.channels,
            threads: threads)
    }
}
