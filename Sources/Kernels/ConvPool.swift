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

    /// The pool's rows over the convolution's.
    static func bands(_ g: Conv2dGeometry, _ p: Pool) -> Bands {
        Bands(
            kernel: p.kernel, stride: p.stride, padding: p.padding, rows: g.outHeight,
            outRows: max(
                1, Kernels.Pool.outputSize(g.outHeight, kernel: p.kernel, stride: p.stride, padding: p.padding)))
    }

    /// Pooled rows per band: the convolution rows a band needs fill about `bandBytes`.
    static func bandRows(_ g: Conv2dGeometry, _ p: Pool, bandBytes: Int) -> Int {
        bands(g, p).bandRows(rowBytes: g.outWidth * g.outChannels * 4, bandBytes: bandBytes)
    }

    /// Scratch floats `forward` needs with `threads`.
    public static func scratchCount(_ g: Conv2dGeometry, _ p: Pool, threads: Int, bandBytes: Int = 384 * 1024) -> Int {
        let band = bandRows(g, p, bandBytes: bandBytes)
        let each = bands(g, p).bufferRows(band) * g.outWidth * g.outChannels + Int(pth2swt_conv_nhwc_scratch_count())
        return each * max(1, threads)
    }

    /// y [N, pooled H, pooled W, K] = maxpool(activation(x ⊛ w + bias)).
    public static func forward(
        _ g: Conv2dGeometry, input: UnsafePointer<Float>, weight: PackedConvWeight, bias: UnsafePointer<Float>?,
        activation: Activation, pool p: Pool, output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
        threads: Int = 1, bandBytes: Int = 384 * 1024
    ) {
        precondition(
            ConvNHWC.applies(to: g) && weight.outChannels == g.outChannels && weight.inChannels == g.inChannels
                && weight.kernelH == g.kernelH && weight.kernelW == g.kernelW, "weight does not fit \(g)")
        let H = g.outHeight, W = g.outWidth, K = g.outChannels
        let pH = Kernels.Pool.outputSize(H, kernel: p.kernel, stride: p.stride, padding: p.padding)
        let pW = Kernels.Pool.outputSize(W, kernel: p.kernel, stride: p.stride, padding: p.padding)
        precondition(pH > 0 && pW > 0, "\(g) pools to nothing")
        let bands = Self.bands(g, p)
        let band = bandRows(g, p, bandBytes: bandBytes)
        let slices = bands.slices(batch: g.batch, threads: threads)
        let bufferCount = bands.bufferRows(band) * W * K
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
                var window = Bands.Window(buffer: buffer, rowFloats: W * K)  // convolution rows
                var py0 = first
                while py0 < end {
                    let py1 = min(end, py0 + band)
                    let need = bands.needed(py0, py1)
                    window.hold(need.lo, need.hi) { from, to, origin in
                        // Output positions [from·W, to·W); the kernel writes position r at origin + r·K.
                        pth2swt_conv_nhwc(&sh, x, w, bias, nil, act, origin, from * W, to * W, 0, panels, convScratch)
                    }
                    // The pool reads only rows inside [need.lo, need.hi) for pooled rows [py0, py1).
                    pth2swt_max_pool_nhwc(
                        window.origin, Int32(H), Int32(W), Int32(K), Int32(k), Int32(st),
                        Int32(pad), Int32(pH), Int32(pW), py0, py1, y)
                    py0 = py1
                }
            }
        }
    }
}
