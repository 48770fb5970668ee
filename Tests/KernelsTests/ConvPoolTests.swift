import CKernels
import TestSupport
import Testing

@testable import Kernels

/// `ConvPoolNHWC` (a convolution and the max pool that reads it, by bands of pooled rows) against the
/// two run over whole tensors (`ConvNHWC.forward` then `PoolNHWC.max2d`, each tested against the naive
/// twins elsewhere): the same kernels on the same values, so the same bits, NaN included. Bands are
/// made small so images span many bands, shared rows move to the buffer's front, and slices recompute
/// their halos.
@Suite struct ConvPoolTests {
    typealias Rng = KernelTests.Rng

    @Test(arguments: ISA.supported) func bandsGiveTheWholeTensorBits(tier: ISA) throws {
        try ISA.with(tier) {
            var rng = Rng(s: 57)
            var sawManyBands = false, sawSlices = false, sawOverlap = false
            var checked = 0
            while checked < 50 {
                let k = [1, 3, 3, 7][rng.int(0...3)], c = rng.int(1...9), out = rng.int(1...40)
                let g = Conv2dGeometry(
                    batch: rng.int(1...3), inChannels: c, height: rng.int(1...30), width: rng.int(1...30),
                    outChannels: out, kernel: (k, k), stride: (rng.int(1...2), rng.int(1...2)),
                    padding: (rng.int(0...k / 2), rng.int(0...k / 2)))
                let pk = rng.int(1...3), ps = rng.int(1...2), pp = rng.int(0...pk / 2)
                let pool = ConvPoolNHWC.Pool(kernel: pk, stride: ps, padding: pp)
                guard g.isValid, Pool.outputSize(g.outHeight, kernel: pk, stride: ps, padding: pp) > 0,
                    Pool.outputSize(g.outWidth, kernel: pk, stride: ps, padding: pp) > 0
                else { continue }
                checked += 1
                var x = rng.floats(g.inputCount)
                if checked % 7 == 0 { x[rng.int(0...(x.count - 1))] = .nan }
                let w = rng.floats(g.weightCount), bias = checked % 3 == 0 ? nil : rng.floats(out)
                let activation = Activation.allCases[checked % Activation.allCases.count]
                let packed = PackedConvWeight(w, outChannels: out, inChannels: c, kernelH: k, kernelW: k)
                let pH = Pool.outputSize(g.outHeight, kernel: pk, stride: ps, padding: pp)
                let pW = Pool.outputSize(g.outWidth, kernel: pk, stride: ps, padding: pp)
                var conv = [Float](repeating: .nan, count: g.outputCount)
                var scratch = [Float](repeating: 0, count: ConvNHWC.scratchCount(threads: 1))
                withBaseAddress(bias) { b in
                    ConvNHWC.forward(
                        g, input: x, weight: packed, bias: b, residual: nil, activation: activation, output: &conv,
                        scratch: &scratch)
                }
                var want = [Float](repeating: .nan, count: g.batch * pH * pW * out)
                PoolNHWC.max2d(
                    conv, &want, batch: g.batch, channels: out, height: g.outHeight, width: g.outWidth, kernel: pk,
                    stride: ps, padding: pp)
                // From one convolution row per band up to the whole image.
                let bandBytes = [1, g.outWidth * out * 4 * 3, 1 << 30][checked % 3]
                sawManyBands = sawManyBands || ConvPoolNHWC.bandRows(g, pool, bandBytes: bandBytes) < pH
                sawOverlap = sawOverlap || (pk > ps && ConvPoolNHWC.bandRows(g, pool, bandBytes: bandBytes) < pH)
                for threads in [1, 2, 3] {
                    sawSlices = sawSlices || (threads > g.batch && pH > 1)
                    var got = [Float](repeating: .nan, count: want.count)
                    var work = [Float](
                        repeating: .nan,
                        count: ConvPoolNHWC.scratchCount(g, pool, threads: threads, bandBytes: bandBytes))
                    withBaseAddress(bias) { b in
                        ConvPoolNHWC.forward(
                            g, input: x, weight: packed, bias: b, activation: activation, pool: pool, output: &got,
                            scratch: &work, threads: threads, bandBytes: bandBytes)
                    }
                    let same = zip(got, want).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
                    #expect(same, "\(g), pool \(pk)/\(ps)/\(pp), \(threads) threads")
                }
            }
            #expect(sawManyBands && sawSlices, "the random shapes missed a code path")
            #expect(sawOverlap, "no multi-band case whose bands share rows")
        }
    }
}
