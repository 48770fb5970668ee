import CKernels
import TestSupport
import Testing

@testable import Kernels

/// `InvertedResidualNHWC` (expand → depthwise → project by row bands) against its three convolutions run
/// one after another over whole tensors (`ConvNHWC`, `DepthwiseNHWC`, `ConvNHWC`, each tested against the
/// naive twins elsewhere): the same kernels on the same values, so the same bits. Bands are made small
/// so that images span many bands, kept rows move to the buffer's front, and slices recompute halos;
/// small maps on more threads than images take the layer-by-layer path.
@Suite struct InvertedResidualTests {
    typealias Rng = KernelTests.Rng

    @Test(arguments: ISA.supported) func bandsGiveTheLayerByLayerBits(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 91)
            var sawManyBands = false, sawNoExpand = false, sawStride2 = false, sawSlices = false,
                sawLayerByLayer = false, sawSpatialExpand = false
            for case_ in 0..<60 {
                let hasExpand = case_ % 4 != 0
                let cin = rng.int(1...20), e = hasExpand ? rng.int(1...40) : cin, k = [1, 3, 3, 5][rng.int(0...3)]
                let cout = rng.int(1...24), stride = rng.int(1...2), pad = rng.int(0...k / 2)
                // The expand: 1×1 mostly, sometimes a 3×3 with stride and padding (MobileNetV2's stem).
                let ek = case_ % 3 == 1 ? 3 : 1, es = ek == 3 ? rng.int(1...2) : 1, ep = ek == 3 ? rng.int(0...1) : 0
                var s = InvertedResidualNHWC.Shape(
                    batch: rng.int(1...3), height: rng.int(1...40), width: rng.int(1...23),
                    inChannels: cin, expanded: e, outChannels: cout, kernel: k,
                    stride: stride, padding: pad, hasExpand: hasExpand, expandKernel: ek,
                    expandStride: es, expandPadding: ep)
                guard s.isValid else { continue }
                // From one expanded row per band up to the whole image.
                s.bandBytes = [1, s.midWidth * e * 4 * 2, s.midWidth * e * 4 * 5, 1 << 30][case_ % 4]
                sawSpatialExpand = sawSpatialExpand || (hasExpand && ek == 3 && s.bandRows() < s.outHeight)
                let withResidual = stride == 1 && cin == cout && s.outHeight == s.height && s.outWidth == s.width
                let x = rng.floats(s.batch * s.height * s.width * cin)
                let we = rng.floats(e * cin * ek * ek), be = rng.floats(e), wd = rng.floats(e * k * k),
                    bd = rng.floats(e)
                let wp = rng.floats(cout * e), bp = case_ % 3 == 0 ? nil : rng.floats(cout)
                let residual = withResidual ? rng.floats(s.batch * s.outHeight * s.outWidth * cout) : nil
                let acts = Activation.allCases
                let n = acts.count
                let (ea, da, pa) = (acts[case_ % n], acts[(case_ + 1) % n], acts[(case_ / n) % n])
                let pe = PackedConvWeight(we, outChannels: e, inChannels: cin, kernelH: ek, kernelW: ek)
                let pd = DepthwiseNHWC.pack(wd, channels: e, kernelH: k, kernelW: k)
                let pp = PackedConvWeight(wp, outChannels: cout, inChannels: e, kernelH: 1, kernelW: 1)
                sawManyBands = sawManyBands || s.bandRows() < s.outHeight
                sawNoExpand = sawNoExpand || !hasExpand
                sawStride2 = sawStride2 || (stride == 2 && s.bandRows() < s.outHeight)
                // The layer-by-layer result.
                let ge = s.expand
                let gp = Conv2dGeometry(
                    batch: s.batch, inChannels: e, height: s.outHeight, width: s.outWidth, outChannels: cout,
                    kernel: (1, 1), stride: (1, 1), padding: (0, 0))
                var want = [Float](repeating: .nan, count: s.batch * s.outHeight * s.outWidth * cout)
                var expanded = hasExpand ? [Float](repeating: .nan, count: s.batch * s.midHeight * s.midWidth * e) : x
                var mid = [Float](repeating: .nan, count: s.batch * s.outHeight * s.outWidth * e)
                var scratch = [Float](repeating: 0, count: ConvNHWC.scratchCount(threads: 1))
                if hasExpand {
                    be.withUnsafeBufferPointer { b in
                        ConvNHWC.forward(
                            ge, input: x, weight: pe, bias: b.baseAddress!, residual: nil, activation: ea,
                            output: &expanded, scratch: &scratch)
                    }
                }
                pd.withUnsafeBufferPointer { w in
                    bd.withUnsafeBufferPointer { b in
                        DepthwiseNHWC.forward(
                            s.depthwise, input: expanded, packedWeight: w.baseAddress!, bias: b.baseAddress!,
                            activation: da, output: &mid)
                    }
                }
                withBaseAddress(bp) { b in
                    withBaseAddress(residual) { r in
                        ConvNHWC.forward(
                            gp, input: mid, weight: pp, bias: b, residual: r, activation: pa, output: &want,
                            scratch: &scratch)
                    }
                }
                for threads in [1, 2, 3] {
                    let bands = InvertedResidualNHWC.runsByBands(s, threads: threads)
                    sawSlices = sawSlices || (bands && threads > s.batch)
                    sawLayerByLayer = sawLayerByLayer || !bands
                    var got = [Float](repeating: .nan, count: want.count)
                    var work = [Float](repeating: .nan, count: InvertedResidualNHWC.scratchCount(s, threads: threads))
                    be.withUnsafeBufferPointer { eb in
                        bd.withUnsafeBufferPointer { db in
                            pd.withUnsafeBufferPointer { dw in
                                withBaseAddress(bp) { pb in
                                    withBaseAddress(residual) { r in
                                        InvertedResidualNHWC.forward(
                                            s, input: x,
                                            expand: hasExpand
                                                ? .init(weight: pe, bias: eb.baseAddress!, activation: ea) : nil,
                                            depthwise: .init(
                                                weight: dw.baseAddress!, bias: db.baseAddress!, activation: da,
                                                kernel: k, stride: stride, padding: pad),
                                            project: .init(weight: pp, bias: pb, activation: pa),
                                            residual: r, output: &got, scratch: &work, threads: threads)
                                    }
                                }
                            }
                        }
                    }
                    let same = zip(got, want).allSatisfy { $0.bitPattern == $1.bitPattern }
                    #expect(same, "\(s), \(threads) threads: max |Δ| \(zip(got, want).map { abs($0 - $1) }.max() ?? 0)")
                }
            }
            #expect(sawManyBands && sawNoExpand, "the random shapes missed a code path")
            #expect(sawStride2 && sawSlices, "no strided multi-band case or no sliced image")
            #expect(sawLayerByLayer, "no small map that runs layer by layer")
            #expect(sawSpatialExpand, "no multi-band case with a 3×3 expand")
        }
    }
}
