import Kernels

/// torch.nn.AvgPool2d(kernel, stride, padding, count_include_pad) in floor mode: each window's sum over
/// its taps inside the image, divided by the window's size within the padded image (count_include_pad)
/// or by its taps inside the image.
public struct AveragePool: LayerFunction {
    public let kernel: Int, stride: Int, padding: Int
    public let countIncludePad: Bool

    public init(kernel: Int, stride: Int, padding: Int = 0, countIncludePad: Bool = true) {
        precondition(
            kernel > 0 && stride > 0 && padding >= 0 && padding <= kernel / 2,
            "avg pool \(kernel)/\(stride) p\(padding)")
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
        self.countIncludePad = countIncludePad
    }

    public var summary: String { "avgpool \(kernel)×\(kernel)/\(stride) p\(padding)" }

    func outputSize(_ n: Int) -> Int { (n + 2 * padding - kernel) / stride + 1 }

    public func outputShape(_ inputs: [NodeShape]) throws(FunctionShapeError) -> NodeShape {
        let x = inputs[0]
        guard x.height + 2 * padding >= kernel, x.width + 2 * padding >= kernel else {
            throw FunctionShapeError("input \(x.height)×\(x.width) is too small for a \(kernel)×\(kernel) pool")
        }
        return NodeShape(channels: x.channels, height: outputSize(x.height), width: outputSize(x.width))
    }

    /// Output (oy, ox)'s window: its rows and columns inside the image, and the divisor.
    @inline(__always)
    func window(_ oy: Int, _ ox: Int, height: Int, width: Int) -> (Range<Int>, Range<Int>, Float) {
        let h0 = oy * stride - padding, w0 = ox * stride - padding
        let h1 = min(h0 + kernel, height + padding), w1 = min(w0 + kernel, width + padding)
        let padded = (h1 - h0) * (w1 - w0)
        let rows = max(h0, 0)..<min(h1, height), cols = max(w0, 0)..<min(w1, width)
        return (rows, cols, Float(countIncludePad ? padded : rows.count * cols.count))
    }

    public func forward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], batch: Int, output: UnsafeMutablePointer<Float>,
        threads: Int
    ) {
        let s = shapes[0], c = s.channels, oh = outputSize(s.height), ow = outputSize(s.width)
        nonisolated(unsafe) let (x, y) = (inputs[0], output)
        Parallel.run(batch * oh, min(threads, batch * oh)) { row in
            let n = row / oh, oy = row % oh
            var sum = [Float](repeating: 0, count: c)
            for ox in 0..<ow {
                let (rows, cols, divide) = window(oy, ox, height: s.height, width: s.width)
                for k in 0..<c { sum[k] = 0 }
                for iy in rows {
                    for ix in cols {
                        let src = x + ((n * s.height + iy) * s.width + ix) * c
                        for k in 0..<c { sum[k] += src[k] }
                    }
                }
                let dst = y + ((n * oh + oy) * ow + ox) * c
                for k in 0..<c { dst[k] = sum[k] / divide }
            }
        }
    }

    public func backward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], output: UnsafePointer<Float>,
        outputGradient: UnsafePointer<Float>, batch: Int, inputGradients: [UnsafeMutablePointer<Float>?],
        threads: Int
    ) {
        guard let dxp = inputGradients[0] else { return }
        let s = shapes[0], c = s.channels, oh = outputSize(s.height), ow = outputSize(s.width)
        nonisolated(unsafe) let (dy, dx) = (outputGradient, dxp)
        // Image by image: windows overlap within an image only.
        Parallel.run(batch, min(threads, batch)) { n in
            (dx + n * s.height * s.width * c).update(repeating: 0, count: s.height * s.width * c)
            for oy in 0..<oh {
                for ox in 0..<ow {
                    let (rows, cols, divide) = window(oy, ox, height: s.height, width: s.width)
                    let g = dy + ((n * oh + oy) * ow + ox) * c
                    for iy in rows {
                        for ix in cols {
                            let d = dx + ((n * s.height + iy) * s.width + ix) * c
                            for k in 0..<c { d[k] += g[k] / divide }
                        }
                    }
                }
            }
        }
    }
}
