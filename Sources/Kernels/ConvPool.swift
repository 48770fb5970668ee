import CKernels

/// A convolution whose only reader is a max pool (ResNet's stem, VGG's last convolution of a stage), by
/// bands of pooled rows: each band computes only the convolution rows its windows need into a buffer
/// that stays in cache and pools them straight into the output, so the convolution's output (3.2 MB for
/// ResNet's stem at 224×224) never goes to memory. Rows the next band shares are moved to the buffer's
/// front, not recomputed. Same kernels, same values as the convolution then the pool over whole tensors
/// (`ConvNHWC.forward`, `PoolNHWC.max2d`), which the tests compare bit for bit. Threads take (image,
/// slice of pooled rows) items; a slice boundary recomputes its halo rows.
public enum ConvPoolNHWC {
    /// The pool after the convolution.
    public struct Pool: Sendable, Equatable {
        public let kernel: Int, stride: Int, padding: Int
        public init(kernel: Int, stride: Int, padding: Int) {
            (self.kernel, self.stride, self.padding) = (kernel, stride, padding)
        }
    }

    /// Pooled rows per band: the convolution rows a band needs fill about `bandBytes`.
    static func bandRows(_ g: Conv2dGeometry, _ p: Pool, pooledHeight: Int, bandBytes: Int) -> Int {
        let rowBytes = max(1, g.outWidth * g.outChannels * 4)
        let rows = max(p.kernel, bandBytes / rowBytes)
        return max(1, min(pooledHeight, (rows - p.kernel) / p.stride + 1))
    }

    static func bufferRows(_ g: Conv2dGeometry, _ p: Pool, band: Int) -> Int {
        min(g.outHeight, (band - 1) * p.stride + p.kernel)
    }

    static func slices(_ g: Conv2dGeometry, pooledHeight: Int, threads: Int) -> Int {
        max(1, min(pooledHeight, (threads + g.batch - 1) / g.batch))
    }

    /// Scratch floats `forward` needs with `threads`.
    public static func scratchCount(_ g: Conv2dGeometry, _ p: Pool, threads: Int, bandBytes: Int = 384 * 1024) -> Int {
        let pooledHeight = Kernels.Pool.outputSize(g.outHeight, kernel: p.kernel, stride: p.stride, padding: p.padding)
        let band = bandRows(g, p, pooledHeight: max(1, pooledHeight), bandBytes: bandBytes)
        let each = bufferRows(g, p, band: band) * g.outWidth * g.outChannels + Int(pth2swt_conv_nhwc_scratch_count())
        return each * max(1, threads)
    }

    /// y [N, pooled H, pooled W, K] = maxpool(activation(x ⊛ w + bias)).
    public static func forward(
        _ g: Conv2dGeometry, input: UnsafePointer<Float>, weight: PackedConvWeight, bias: UnsafePointer<Float>?,
        activation: Activation, pool p: Pool, output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
        threads: Int = 1, bandBytes: Int = 384 * 1024
    ) {
        precondition(ConvNHWC.applies(to: g) && weight.outChannels == g.outChannels && weight.inChannels == g.inChannels
                     && weight.kernelH == g.kernelH && weight.kernelW == g.kernelW, "weight does not fit \(g)")
        let H = g.outHeight, W = g.outWidth, K = g.outChannels
        let pH = Kernels.Pool.outputSize(H, kernel: p.kernel, stride: p.stride, padding: p.padding)
        let pW = Kernels.Pool.outputSize(W, kernel: p.kernel, stride: p.stride, padding: p.padding)
        precondition(pH > 0 && pW > 0, "\(g) pools to nothing")
        let band = bandRows(g, p, pooledHeight: pH, bandBytes: bandBytes)
        let slices = Self.slices(g, pooledHeight: pH, threads: threads)
        let bufferCount = bufferRows(g, p, band: band) * W * K
        let each = bufferCount + Int(pth2swt_conv_nhwc_scratch_count())
        let inImage = g.height * g.width * g.inChannels, outImage = pH * pW * K
        let panels = Int32((K + 15) / 16), act = activation.code
        let shape: pth2swt_conv_shape = {
            var one = g.cShape
            one.batch = 1
            return one
        }()
        let (k, st, pad) = (p.kernel, p.stride, p.padding)
        nonisolated(unsafe) let input = input, output = output, scratch = scratch, bias = bias
        weight.packed.withUnsafeBufferPointer { w in
            nonisolated(unsafe) let w = w.baseAddress!
            Parallel.dynamic(g.batch * slices, threads) { item, worker in
                let n = item / slices, slice = item % slices
                let first = pH * slice / slices, end = pH * (slice + 1) / slices
                let buffer = scratch + worker * each, convScratch = buffer + bufferCount
                let x = input + n * inImage, y = output + n * outImage
                var sh = shape
                var haveLo = 0, haveHi = 0  // convolution rows [haveLo, haveHi) at the buffer's front
                var py0 = first
                while py0 < end {
                    let py1 = min(end, py0 + band)
                    let needLo = max(0, py0 * st - pad), needHi = min(H, (py1 - 1) * st - pad + k)
                    if needLo >= haveLo && needLo < haveHi {
                        buffer.update(from: buffer + (needLo - haveLo) * W * K, count: (haveHi - needLo) * W * K)
                        haveLo = needLo
                    } else {
                        (haveLo, haveHi) = (needLo, needLo)
                    }
                    if needHi > haveHi {
                        // Output positions [haveHi·W, needHi·W); the kernel writes position r at y + r·K,
                        // so y is the buffer moved back by the rows before it.
                        pth2swt_conv_nhwc(&sh, x, w, bias, nil, act, buffer - haveLo * W * K, haveHi * W, needHi * W, 0,
                                          panels, convScratch)
                        haveHi = needHi
                    }
                    // The pool reads only rows inside [needLo, needHi) for pooled rows [py0, py1).
                    pth2swt_max_pool_nhwc(buffer - haveLo * W * K, Int32(H), Int32(W), Int32(K), Int32(k), Int32(st),
                                          Int32(pad), Int32(pH), Int32(pW), py0, py1, y)
                    py0 = py1
                }
            }
        }
    }
}
