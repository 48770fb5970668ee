import Kernels

/// A layer without parameters that inference and training both run through this one type: its shape
/// rule, its forward kernel and its backward kernel. Values are channels-last ([N, H, W, C]; after a
/// flatten, [N, features] as C × 1 × 1).
///
/// A new parameter-free layer kind is one conforming type (in `NN/Functions/`) and a `NetworkBuilder`
/// call that places it: `Lowering`, `Inference` and `NetworkStep` run every `Layer.function` alike.
public protocol LayerFunction {
    /// For listings ("hardswish", "scale").
    var summary: String { get }
    /// The output's shape per image, for the shapes of the values it reads.
    func outputShape(_ inputs: [NodeShape]) throws(FunctionShapeError) -> NodeShape
    /// The output's channel count where the inputs' are known (nil where one is not).
    func outputChannels(_ inputs: [Int?]) -> Int?
    /// Writes the output for `batch` images.
    func forward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], batch: Int, output: UnsafeMutablePointer<Float>,
        threads: Int)
    /// Writes every element of each non-nil `inputGradients[k]` (dL/d input k), given the inputs, the
    /// output and dL/d output.
    func backward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], output: UnsafePointer<Float>,
        outputGradient: UnsafePointer<Float>, batch: Int, inputGradients: [UnsafeMutablePointer<Float>?],
        threads: Int)
}

/// A layer function with parameters of its own (LayerNorm, ConvNeXt's layer scale): also the `Module`
/// that lists them, under the node's name. Training asks it for its parameters' gradients beside its
/// input's; loading, freezing, optimizers and the data-parallel reducer see it as any module.
///
/// A new layer kind with parameters is one such class (in `NN/Functions/`) and a `NetworkBuilder` call
/// that places it, as for a parameter-free one.
public protocol ParametricFunction: LayerFunction, Module {
    /// Its parameters, in `state`'s order (buffers are not parameters).
    var parameters: [Parameter] { get }
    /// Writes dL/d each parameter (in `parameters`' order) into each non-nil `parameterGradients[k]`,
    /// every element of it, given the inputs and dL/d output.
    func parameterBackward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], outputGradient: UnsafePointer<Float>, batch: Int,
        parameterGradients: [UnsafeMutablePointer<Float>?], threads: Int)
    /// Seeded values for tests and benchmarks that need realistic, non-trivial parameters
    /// (`Network.fillSeeded`).
    func fillSeeded(_ rng: inout SplitMix64)
}

/// Why a function's inputs do not fit it (`Lowering.shapes` names the layer).
public struct FunctionShapeError: Error, Equatable {
    public let detail: String
    public init(_ detail: String) { self.detail = detail }
}

extension LayerFunction {
    public func outputChannels(_ inputs: [Int?]) -> Int? { inputs[0] }
}

/// `body` with the base addresses of every array, in order.
public func withBaseAddresses<R>(_ arrays: [[Float]], _ body: ([UnsafePointer<Float>]) -> R) -> R {
    func nest(_ k: Int, _ done: [UnsafePointer<Float>]) -> R {
        if k == arrays.count { return body(done) }
        return arrays[k].withUnsafeBufferPointer { nest(k + 1, done + [$0.baseAddress!]) }
    }
    return nest(0, [])
}
