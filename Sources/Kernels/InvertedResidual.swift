import CKernels

/// MobileNetV2's inverted residual, channels-last, by row bands: [1×1 expand →] depthwise → 1×1 project
/// (+ residual). Run layer by layer, the expanded tensor (4.8 MB for features.2 at 224×224) goes to
/// memory and comes back twice; here each band of output rows expands only the input rows its windows
/// need into a buffer that stays in cache, runs the depthwise convolution on it and projects the band
/// straight into the output. Rows the next band shares with this one (k − stride of them) are moved to
/// the front of the buffer, not recomputed.
///
/// The same C kernels run on the same values in the same order, so the result is bit for bit the
/// unfused sequence's (`ConvNHWC.forward`, `DepthwiseNHWC.forward`, `ConvNHWC.forward`), which is what
/// the tests compare against. Threads take (image, slice of output rows) items; a slice boundary
/// recomputes its halo rows. Small maps with fewer images than threads run that sequence instead
/// (`runsByBands`).
public enum InvertedResidualNHWC {
    /// One 1×1 stage (expand or project): its packed weight, bias and activation.
    public struct Pointwise {
        public let weight: PackedConvWeight
        public let bias: UnsafePointer<Float>?
        public let activation: Activation
        public init(weight: PackedConvWeight, bias: UnsafePointer<Float>?, activation: Activation) {
            self.weight = weight
            self.bias = bias
            self.activation = activation
        }
    }

    /// The depthwise stage: `DepthwiseNHWC.pack`'s weight, its kernel, stride and padding.
    public struct Depthwise {
        public let weight: UnsafePointer<Float>
        public let bias: UnsafePointer<Float>?
        public let activation: Activation
        public let kernel: Int, stride: Int, padding: Int
        public init(
            weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, activation: Activation, kernel: Int,
            stride: Int, padding: Int
        ) {
            self.weight = weight
            self.bias = bias
            self.activation = activation
            self.kernel = kernel
            self.stride = stride
            self.padding = padding
        }
    }

    /// The block's geometry for `batch` images of height × width with `inChannels`. The expand is any
    /// dense convolution (1×1 in MobileNetV2's blocks; the 3×3 stride-2 stem before features.1); the
    /// project is 1×1 stride 1 without padding.
    public struct Shape: Sendable, Equatable {
        public let batch: Int, height: Int, width: Int, inChannels: Int
        public let expanded: Int, outChannels: Int
        /// The depthwise convolution's.
        public let kernel: Int, stride: Int, padding: Int
        public let hasExpand: Bool
        /// The expand convolution's (1, 1, 0 when there is none).
        public let expandKernel: Int, expandStride: Int, expandPadding: Int
        /// About how many bytes of expanded rows a band reads (tests make it small to get many bands).
        public var bandBytes = 384 * 1024
        /// The expand convolution (meaningful when `hasExpand`).
        public var expand: Conv2dGeometry {
            Conv2dGeometry(
                batch: batch, inChannels: inChannels, height: height, width: width, outChannels: expanded,
                kernel: (expandKernel, expandKernel), stride: (expandStride, expandStride),
                padding: (expandPadding, expandPadding))
        }
        /// The expanded tensor's height and width (the depthwise convolution's input).
        public var midHeight: Int { hasExpand ? expand.outHeight : height }
        public var midWidth: Int { hasExpand ? expand.outWidth : width }
        public var depthwise: Conv2dGeometry {
            Conv2dGeometry(
                batch: batch, inChannels: expanded, height: midHeight, width: midWidth, outChannels: expanded,
                kernel: (kernel, kernel), stride: (stride, stride), padding: (padding, padding), groups: expanded)
        }
        public var outHeight: Int { depthwise.outHeight }
        public var outWidth: Int { depthwise.outWidth }

        public init(
            batch: Int, height: Int, width: Int, inChannels: Int, expanded: Int, outChannels: Int, kernel: Int,
            stride: Int, padding: Int, hasExpand: Bool, expandKernel: Int = 1, expandStride: Int = 1,
            expandPadding: Int = 0
        ) {
            (self.batch, self.height, self.width, self.inChannels) = (batch, height, width, inChannels)
            (self.expanded, self.outChannels, self.kernel, self.stride, self.padding) = (
                expanded, outChannels, kernel, stride, padding
            )
            self.hasExpand = hasExpand
            (self.expandKernel, self.expandStride, self.expandPadding) =
                hasExpand ? (expandKernel, expandStride, expandPadding) : (1, 1, 0)
        }

        /// Whether the geometry holds together: a valid expand (when there is one) and depthwise.
        public var isValid: Bool { (!hasExpand || expand.isValid) && depthwise.isValid }

        /// The depthwise convolution's rows over the expanded tensor's.
        var bands: Bands {
            Bands(kernel: kernel, stride: stride, padding: padding, rows: midHeight, outRows: outHeight)
        }

        /// Output rows per band: the expanded rows a band needs fill about `bandBytes`.
        func bandRows() -> Int { bands.bandRows(rowBytes: midWidth * expanded * 4, bandBytes: bandBytes) }

        /// Expanded rows a band of `bandRows` output rows reads at most.
        func bufferRows(_ band: Int) -> Int { bands.bufferRows(band) }
    }

    /// Scratch floats per worker.
    public static func scratchPerWorker(_ s: Shape) -> Int {
        let band = s.bandRows()
        let expanded = s.hasExpand ? s.bufferRows(band) * s.midWidth * s.expanded : 0
        return expanded + band * s.outWidth * s.expanded + Int(pth2swt_conv_nhwc_scratch_count())
    }

    /// Image slices per image: one, or with fewer images than threads, enough slices for every thread.
    static func slices(_ s: Shape, threads: Int) -> Int { s.bands.slices(batch: s.batch, threads: threads) }

    /// Whether `forward` runs by bands: with at least as many images as threads, or when each thread's
    /// slice of an image has 8 or more output rows. Slicing smaller maps (MobileNetV2's 14×14 and 7×7
    /// at batch 1 on 2 threads) would recompute too many halo rows; those run layer by layer, each
    /// convolution split across the threads, and their tensors fit in cache anyway.
    public static func runsByBands(_ s: Shape, threads: Int) -> Bool {
        threads <= 1 || s.batch >= threads || s.outHeight / slices(s, threads: threads) >= 8
    }

    /// Scratch floats `forward` needs with `threads`.
    public static func scratchCount(_ s: Shape, threads: Int) -> Int {
        if runsByBands(s, threads: threads) { return scratchPerWorker(s) * max(1, threads) }
        let expanded = s.hasExpand ? s.batch * s.midHeight * s.midWidth * s.expanded : 0
        return expanded + s.batch * s.outHeight * s.outWidth * s.expanded + ConvNHWC.scratchCount(threads: threads)
    }

    /// Layer by layer over whole tensors, each convolution split across the threads.
    static func layerByLayer(
        _ s: Shape, input: UnsafePointer<Float>, expand: Pointwise?, depthwise d: Depthwise, project p: Pointwise,
        residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
        threads: Int
    ) {
        let expandedCount = s.hasExpand ? s.batch * s.midHeight * s.midWidth * s.expanded : 0
        let mid = scratch + expandedCount, convScratch = mid + s.batch * s.outHeight * s.outWidth * s.expanded
        var dwInput = input
        if let e = expand {
            ConvNHWC.forward(
                s.expand, input: input, weight: e.weight, bias: e.bias, residual: nil, activation: e.activation,
                output: scratch, scratch: convScratch, threads: threads)
            dwInput = UnsafePointer(scratch)
        }
        DepthwiseNHWC.forward(
            s.depthwise, input: dwInput, packedWeight: d.weight, bias: d.bias, activation: d.activation,
            output: mid, threads: threads)
        let gp = Conv2dGeometry(
            batch: s.batch, inChannels: s.expanded, height: s.outHeight, width: s.outWidth,
            outChannels: s.outChannels, kernel: (1, 1), stride: (1, 1), padding: (0, 0))
        ConvNHWC.forward(
            gp, input: mid, weight: p.weight, bias: p.bias, residual: residual, activation: p.activation,
            output: output, scratch: convScratch, threads: threads)
    }

    /// y [N, oH, oW, outChannels] = project(depthwise(expand(x))) (+ residual, which has y's layout).
    public static func forward(
        _ s: Shape, input: UnsafePointer<Float>, expand: Pointwise?, depthwise: Depthwise, project: Pointwise,
        residual: UnsafePointer<Float>?, output: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
        threads: Int = 1
    ) {
        precondition(s.hasExpand == (expand != nil), "expand stage does not match the shape")
        precondition(
            s.isValid && depthwise.kernel == s.kernel && depthwise.stride == s.stride
                && depthwise.padding == s.padding, "depthwise stage does not fit \(s)")
        if let e = expand {
            precondition(
                e.weight.kernelH == s.expandKernel && e.weight.kernelW == s.expandKernel
                    && e.weight.inChannels == s.inChannels
                    && e.weight.outChannels == s.expanded, "expand weight does not fit \(s)")
        } else {
            precondition(s.inChannels == s.expanded, "without an expand stage the input has the expanded channels")
        }
        precondition(
            project.weight.kernelH == 1 && project.weight.kernelW == 1 && project.weight.inChannels == s.expanded
                && project.weight.outChannels == s.outChannels, "project weight does not fit \(s)")
        guard runsByBands(s, threads: threads) else {
            layerByLayer(
                s, input: input, expand: expand, depthwise: depthwise, project: project, residual: residual,
                output: output, scratch: scratch, threads: threads)
            return
        }
        let oH = s.outHeight, oW = s.outWidth, W = s.midWidth
        let bands = s.bands
        let expandShape: pth2swt_conv_shape = {
            var one = s.expand.cShape
            one.batch = 1
            return one
        }()
        let band = s.bandRows()
        // Items: images, each cut into slices of output rows when there are fewer images than threads.
        let slices = Self.slices(s, threads: threads)
        let items = s.batch * slices
        let each = scratchPerWorker(s)
        let expandRows = s.hasExpand ? s.bufferRows(band) * W * s.expanded : 0
        let inImage = s.height * s.width * s.inChannels, outImage = oH * oW * s.outChannels
        let E = s.expanded, K = s.outChannels, k = s.kernel, st = s.stride, pad = s.padding
        let eAct = expand?.activation.code ?? 0, dAct = depthwise.activation.code, pAct = project.activation.code
        let ePanels = Int32((E + 15) / 16), pPanels = Int32((K + 15) / 16)
        let eWeight = expand?.weight.packed, pWeight = project.weight.packed
        let eBias = expand?.bias
        nonisolated(unsafe) let input = input, output = output, scratch = scratch, residual = residual
        nonisolated(unsafe) let dw = depthwise.weight, dBias = depthwise.bias, pBias = project.bias
        func pointwiseShape(rows: Int, channels: Int, out: Int) -> pth2swt_conv_shape {
            pth2swt_conv_shape(
                batch: 1, height: Int32(rows), width: 1, channels: Int32(channels), out_channels: Int32(out),
                kernel_h: 1, kernel_w: 1, stride_h: 1, stride_w: 1, pad_h: 0, pad_w: 0,
                out_height: Int32(rows), out_width: 1)
        }
        withExtendedLifetime((eWeight, pWeight)) {
            nonisolated(unsafe) let ew = eWeight.map { UnsafePointer($0.baseAddress) },
                pw = UnsafePointer(pWeight.baseAddress)
            Parallel.dynamic(items, threads) { item, worker in
                let n = item / slices, slice = item % slices
                let first = oH * slice / slices, end = oH * (slice + 1) / slices
                let work = scratch + worker * each
                let expanded = work, dwOut = work + expandRows, convScratch = dwOut + band * oW * E
                let x = input + n * inImage, y = output + n * outImage, r = residual.map { $0 + n * outImage }
                var window = Bands.Window(buffer: expanded, rowFloats: W * E)  // expanded rows
                var sh = expandShape
                var oy0 = first
                while oy0 < end {
                    let oy1 = min(end, oy0 + band)
                    let (needLo, needHi) = bands.needed(oy0, oy1)
                    var base: UnsafePointer<Float>
                    if let ew {
                        window.hold(needLo, needHi) { from, to, origin in
                            // Output positions [from·W, to·W) of the whole image's expand; the kernel
                            // writes position r at origin + r·E.
                            pth2swt_conv_nhwc(
                                &sh, x, ew, eBias, nil, eAct, origin, from * W, to * W, 0, ePanels,
                                convScratch)
                        }
                        base = UnsafePointer(expanded)
                    } else {
                        base = x + needLo * W * E
                    }
                    // The band as an image of needHi − needLo rows whose top padding is what remains of
                    // the real padding above its first window.
                    var dsh = pth2swt_conv_shape(
                        batch: 1, height: Int32(needHi - needLo), width: Int32(W), channels: Int32(E),
                        out_channels: Int32(E),
                        kernel_h: Int32(k), kernel_w: Int32(k), stride_h: Int32(st), stride_w: Int32(st),
                        pad_h: Int32(needLo - (oy0 * st - pad)), pad_w: Int32(pad), out_height: Int32(oy1 - oy0),
                        out_width: Int32(oW))
                    pth2swt_depthwise_nhwc(&dsh, base, dw, dBias, dAct, dwOut, 0, oy1 - oy0)
                    let rows = (oy1 - oy0) * oW
                    var psh = pointwiseShape(rows: rows, channels: E, out: K)
                    pth2swt_conv_nhwc(
                        &psh, dwOut, pw, pBias, r.map { $0 + oy0 * oW * K }, pAct, y + oy0 * oW * K, 0, rows,
                        0, pPanels, convScratch)
                    oy0 = oy1
                }
            }
        }
    }
}
