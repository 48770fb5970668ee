import Kernels

/// Hardswish, Hardsigmoid, Sigmoid, SiLU or GELU on one value (`Pointwise`'s kernels).
public struct ActivationFunction: LayerFunction {
    public let function: PointwiseFunction
    public init(_ function: PointwiseFunction) { self.function = function }

    public var summary: String { function.description }

    public func outputShape(_ inputs: [NodeShape]) throws(FunctionShapeError) -> NodeShape { inputs[0] }

    public func forward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], batch: Int, output: UnsafeMutablePointer<Float>,
        threads: Int
    ) {
        let s = shapes[0]
        Pointwise.forward(
            function, inputs[0], output, count: batch * s.channels * s.height * s.width, threads: threads)
    }

    public func backward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], output: UnsafePointer<Float>,
        outputGradient: UnsafePointer<Float>, batch: Int, inputGradients: [UnsafeMutablePointer<Float>?],
        threads: Int
    ) {
        guard let dx = inputGradients[0] else { return }
        let s = shapes[0]
        Pointwise.backward(
            function, input: inputs[0], output: output, outputGradient: outputGradient, inputGradient: dx,
            count: batch * s.channels * s.height * s.width, threads: threads)
    }
}
