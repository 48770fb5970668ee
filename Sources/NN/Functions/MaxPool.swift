import Kernels

/// torch.nn.MaxPool2d(kernel, stride, padding, ceil_mode=True): SqueezeNet's, GoogLeNet's pools. With
/// ceil mode the output has ⌈(n + 2p − k) / s⌉ + 1 positions, less one when the last window would start
/// in the right or bottom padding; a window that runs past the image takes the taps inside it. A NaN in a
/// window wins; the input that gets an output's gradient is found by torch's row-major scan, `val > max
/// || isnan(val)` (the first of equal maxima, the last NaN). Floor-mode pools stay `Layer.maxPool`.
public struct CeilMaxPool: LayerFunction {
    public let kernel: Int, stride: Int, padding: Int

    public init(kernel: Int, stride: Int, padding: Int = 0) {
        precondition(
            kernel > 0 && stride > 0 && padding >= 0 && padding <= kernel / 2,
            "max pool \(kernel)/\(stride) p\(padding)")
        self.kernel = kernel
        self.stride = stride
        self.padding = padding
    }

    public var summary: String { "maxpool \(kernel)×\(kernel)/\(stride) p\(padding) ceil" }

    /// torch's `pooling_output_shape` with ceil_mode.
    public func outputSize(_ n: Int) -> Int {
        let span = n + 2 * padding - kernel
        var out = (span + stride - 1) / stride + 1
        if (out - 1) * stride >= n + padding { out -= 1 }
        return out
    }

    public func outputShape(_ inputs: [NodeShape]) throws(FunctionShapeError) -> NodeShape {
        let x = inputs[0]
        guard x.height + 2 * padding >= kernel, x.width + 2 * padding >= kernel else {
            throw FunctionShapeError("input \(x.height)×\(x.width) is too small for a \(kernel)×\(kernel) pool")
        }
        return NodeShape(channels: x.channels, height: outputSize(x.height), width: outputSize(x.width))
    }

    /// Output (oy, ox)'s taps inside the image.
    @inline(__always)
    func window(_ oy: Int, _ ox: Int, height: Int, width: Int) -> (Range<Int>, Range<Int>) {
        let h0 = oy * stride - padding, w0 = ox * stride - padding
        return (max(h0, 0)..<min(h0 + kernel, height), max(w0, 0)..<min(w0 + kernel, width))
    }

    public func forward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], batch: Int, output: UnsafeMutablePointer<Float>,
        threads: Int
    ) {
        let s = shapes[0], c = s.channels, oh = outputSize(s.height), ow = outputSize(s.width)
        nonisolated(unsafe) let (x, y) = (inputs[0], output)
        Parallel.run(batch * oh, min(threads, batch * oh)) { row in
            let n = row / oh, oy = row % oh
            for ox in 0..<ow {
                let (rows, cols) = window(oy, ox, height: s.height, width: s.width)
                let dst = y + ((n * oh + oy) * ow + ox) * c
                // Eight channels at a time: a lane takes a tap that is larger or NaN.
                var k = 0
                while k + 8 <= c {
                    var m = SIMD8<Float>(repeating: -.infinity)
                    for iy in rows {
                        for ix in cols {
                            let v = UnsafeRawPointer(x + ((n * s.height + iy) * s.width + ix) * c + k)
                                .loadUnaligned(as: SIMD8<Float>.self)
                            m.replace(with: v, where: (v .> m) .| (v .!= v))
                        }
                    }
                    UnsafeMutableRawPointer(dst + k).storeBytes(of: m, as: SIMD8<Float>.self)
                    k += 8
                }
                for k in k..<c { dst[k] = -.infinity }
                for iy in rows {
                    for ix in cols {
                        let src = x + ((n * s.height + iy) * s.width + ix) * c
                        for j in k..<c where src[j] > dst[j] || src[j].isNaN { dst[j] = src[j] }
                    }
                }
            }
        }
    }

    /// dx: each output's gradient to the first input of its window that holds its value (found again
    /// from the input), summed where windows overlap.
    public func backward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], output: UnsafePointer<Float>,
        outputGradient: UnsafePointer<Float>, batch: Int, inputGradients: [UnsafeMutablePointer<Float>?],
        threads: Int
    ) {
        guard let dx = inputGradients[0] else { return }
        let s = shapes[0], c = s.channels, oh = outputSize(s.height), ow = outputSize(s.width)
        nonisolated(unsafe) let (x, dy, dxp) = (inputs[0], outputGradient, dx)
        // Images are independent; within one, overlapping windows add into the same inputs in order.
        Parallel.run(batch, min(threads, batch)) { n in
            let plane = s.height * s.width * c
            (dxp + n * plane).update(repeating: 0, count: plane)
            var best = [Int](repeating: 0, count: c), value = [Float](repeating: 0, count: c)
            for oy in 0..<oh {
                for ox in 0..<ow {
                    let (rows, cols) = window(oy, ox, height: s.height, width: s.width)
                    for k in 0..<c {
                        value[k] = -.infinity
                        best[k] = -1
                    }
                    for iy in rows {
                        for ix in cols {
                            let at = ((n * s.height + iy) * s.width + ix) * c
                            for k in 0..<c where best[k] < 0 || x[at + k] > value[k] || x[at + k].isNaN {
                                value[k] = x[at + k]
                                best[k] = at + k
                            }
                        }
                    }
                    let g = dy + ((n * oh + oy) * ow + ox) * c
                    for k in 0..<c where best[k] >= 0 { dxp[best[k]] += g[k] }
                }
            }
        }
    }
}
