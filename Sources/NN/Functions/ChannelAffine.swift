import Kernels

/// y[…, c] = x[…, c] · scale[c] + shift[c] with fixed constants: GoogLeNet's and Inception v3's
/// `transform_input`, which maps ImageNet-normalised channels to the (x − 0.5) / 0.5 inputs their
/// weights were trained on. Float32 products then sums, in torch's order.
public struct ChannelAffine: PerChannelFunction, Sendable {
    public let scale: [Float], shift: [Float]

    public init(scale: [Float], shift: [Float]) {
        precondition(scale.count == shift.count && !scale.isEmpty, "a scale and a shift per channel")
        self.scale = scale
        self.shift = shift
    }

    /// torchvision's `_transform_input`: x · (std / 0.5) + (mean − 0.5) / 0.5 per channel, the constants
    /// computed in double and rounded to float32 as torch's scalar arithmetic does.
    public static let imageNetToHalfRange = ChannelAffine(
        scale: [0.229, 0.224, 0.225].map { Float($0 / 0.5) },
        shift: [0.485, 0.456, 0.406].map { Float(($0 - 0.5) / 0.5) })

    public var summary: String { "channel affine \(scale.count)" }

    var channels: Int { scale.count }

    public func forward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], batch: Int, output: UnsafeMutablePointer<Float>,
        threads: Int
    ) {
        let c = scale.count, rows = rows(shapes, batch)
        nonisolated(unsafe) let (x, y) = (inputs[0], output)
        scale.withUnsafeBufferPointer { s in
            shift.withUnsafeBufferPointer { b in
                nonisolated(unsafe) let (s, b) = (s, b)
                Parallel.ranges(rows, threads: threads, grain: 8192) { r in
                    for row in r {
                        for k in 0..<c {
                            let product = x[row * c + k] * s[k]
                            y[row * c + k] = product + b[k]
                        }
                    }
                }
            }
        }
    }

    public func backward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], output: UnsafePointer<Float>,
        outputGradient: UnsafePointer<Float>, batch: Int, inputGradients: [UnsafeMutablePointer<Float>?],
        threads: Int
    ) {
        guard let dx = inputGradients[0] else { return }
        scale.withUnsafeBufferPointer { s in
            ChannelMultiply.forward(
                outputGradient, scale: s.baseAddress!, dx, rows: rows(shapes, batch),
                channels: scale.count, threads: threads)
        }
    }
}
