import CKernels
import Dispatch

/// 3×3, stride-1 convolutions by Winograd's minimal filtering F(4×4, 3×3) (Lavin & Gray 2015): each
/// 6×6 input tile and 3×3 filter are transformed (Bᵀ d B, G g Gᵀ), multiplied elementwise (as 36
/// sgemms over channels), and transformed back (Aᵀ m A) into a 4×4 output tile. 36 multiplies per tile
/// and channel pair instead of 144. Interpolation points 0, ±1, ±2, ∞; the added float32 error is
/// about 1e-6 relative (tests bound it against the direct reference).
public enum Winograd {
    /// Whether `g` is a convolution this kernel computes.
    public static func applies(to g: Conv2dGeometry) -> Bool {
        g.kernelH == 3 && g.kernelW == 3 && g.strideH == 1 && g.strideW == 1 && g.dilationH == 1 && g.dilationW == 1
            && g.groups == 1 && g.padH == 1 && g.padW == 1
    }

    /// U = G g Gᵀ per (k, c), from weight [K, C, 3, 3], as 36 matrices K×C each packed for the GEMM
    /// micro-kernel (`pth2swt_pack_a`).
    public static func transformWeights(_ w: [Float], outChannels k: Int, inChannels c: Int) -> [Float] {
        let plain = transformWeightsUnpacked(w, outChannels: k, inChannels: c)
        let each = pth2swt_packed_a_count(Int32(k), Int32(c))
        var packed = [Float](repeating: 0, count: 36 * each)
        plain.withUnsafeBufferPointer { u in
            packed.withUnsafeMutableBufferPointer { p in
                for xi in 0..<36 {
                    pth2swt_pack_a(Int32(k), Int32(c), u.baseAddress! + xi * k * c, Int32(c), p.baseAddress! + xi * each)
                }
            }
        }
        return packed
    }

    /// U[36][K][C], row-major.
    static func transformWeightsUnpacked(_ w: [Float], outChannels k: Int, inChannels c: Int) -> [Float] {
        precondition(w.count == k * c * 9)
        var u = [Float](repeating: 0, count: 36 * k * c)
        for o in 0..<k {
            for i in 0..<c {
                let g = Array(w[((o * c + i) * 9)..<((o * c + i) * 9 + 9)])
                // t = G g (6×3), then U = t Gᵀ (6×6).
                var t = [Float](repeating: 0, count: 18)
                for col in 0..<3 {
                    let (g0, g1, g2) = (g[col], g[3 + col], g[6 + col])
                    let v = gColumn(g0, g1, g2)
                    for r in 0..<6 { t[r * 3 + col] = v[r] }
                }
                for r in 0..<6 {
                    let v = gColumn(t[r * 3], t[r * 3 + 1], t[r * 3 + 2])
                    for s in 0..<6 { u[((r * 6 + s) * k + o) * c + i] = v[s] }
                }
            }
        }
        return u
    }

    @inline(__always)
    static func gColumn(_ g0: Float, _ g1: Float, _ g2: Float) -> [Float] {
        [g0 / 4, -(g0 + g1 + g2) / 6, -(g0 - g1 + g2) / 6, g0 / 24 + g1 / 12 + g2 / 6, g0 / 24 - g1 / 12 + g2 / 6, g2]
    }

    /// Tiles processed per round: their transformed inputs and products stay in cache-sized blocks.
    static let tileBlock = 196

    /// Scratch floats for `forward` on `g`.
    public static func scratchCount(_ g: Conv2dGeometry) -> Int {
        let p = min(tileBlock, g.batch * tiles(g).count)
        return 36 * (pth2swt_packed_b_count(Int32(g.inChannels), Int32(p)) + p * g.outChannels)
    }

    static func tiles(_ g: Conv2dGeometry) -> (h: Int, w: Int, count: Int) {
        let th = (g.outHeight + 3) / 4, tw = (g.outWidth + 3) / 4
        return (th, tw, th * tw)
    }

    /// The convolution with weights already transformed by `transformWeights`. NCHW in and out.
    /// `threads` > 1 splits the transforms across threads (the sgemms use OpenBLAS's own threads).
    public static func forward(
        _ g: Conv2dGeometry, input: UnsafePointer<Float>, transformedWeight u: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, epilogue: Epilogue, scratch: UnsafeMutablePointer<Float>, threads: Int = 1
    ) {
        precondition(applies(to: g), "not a 3×3 stride-1 pad-1 convolution: \(g)")
        let (_, tw, perImage) = tiles(g)
        let total = g.batch * perImage
        let C = g.inChannels, K = g.outChannels
        let H = g.height, W = g.width, oH = g.outHeight, oW = g.outWidth
        var start = 0
        while start < total {
            let P = min(tileBlock, total - start)
            let panels = (P + 15) / 16
            let vEach = panels * 16 * C
            let v = scratch                      // [36][P/16 panels][C][16], packed for the GEMM
            let m = scratch + 36 * vEach         // [36][K][P]
            let uEach = pth2swt_packed_a_count(Int32(K), Int32(C))
            // Where each tile of the block lives: image, output row and column of its top-left corner
            // (no divisions in the transforms' inner loops).
            var tileN = [Int](repeating: 0, count: P), tileY = [Int](repeating: 0, count: P), tileX = [Int](repeating: 0, count: P)
            for p in 0..<P {
                let tile = start + p
                let r = tile % perImage
                tileN[p] = tile / perImage
                tileY[p] = (r / tw) * 4
                tileX[p] = (r % tw) * 4
            }
            // Input transform: V = Bᵀ d B for each channel, eight tiles at a time (one SIMD lane each),
            // written straight into the GEMM's packed layout: lanes past P hold zeros.
            Parallel.run(C, threads) { c in
                let plane = input + c * H * W
                withUnsafeTemporaryAllocation(of: V8.self, capacity: 36) { d in
                    var p0 = 0
                    while p0 < P {
                        let lanes = min(8, P - p0)
                        for k in 0..<36 { d[k] = V8() }
                        for lane in 0..<lanes {
                            let y0 = tileY[p0 + lane] - 1, x0 = tileX[p0 + lane] - 1
                            let src = plane + tileN[p0 + lane] * C * H * W
                            if y0 >= 0 && y0 + 6 <= H && x0 >= 0 && x0 + 6 <= W {
                                for i in 0..<6 {
                                    let row = src + (y0 + i) * W + x0
                                    for j in 0..<6 { d[i * 6 + j][lane] = row[j] }
                                }
                            } else {
                                for i in 0..<6 where y0 + i >= 0 && y0 + i < H {
                                    let row = src + (y0 + i) * W
                                    for j in 0..<6 where x0 + j >= 0 && x0 + j < W { d[i * 6 + j][lane] = row[x0 + j] }
                                }
                            }
                        }
                        // Columns in place: d ← Bᵀ d.
                        for j in 0..<6 {
                            let d0 = d[j], d1 = d[6 + j], d2 = d[12 + j], d3 = d[18 + j], d4 = d[24 + j], d5 = d[30 + j]
                            d[j] = 4 * d0 - 5 * d2 + d4
                            d[6 + j] = -4 * (d1 + d2) + d3 + d4
                            d[12 + j] = 4 * (d1 - d2) - d3 + d4
                            d[18 + j] = 2 * (d3 - d1) - d2 + d4
                            d[24 + j] = 2 * (d1 - d3) - d2 + d4
                            d[30 + j] = 4 * d1 - 5 * d3 + d5
                        }
                        // Rows: (Bᵀ d) B, stored to V[ξ = i·6 + s][c][p0 …].
                        for i in 0..<6 {
                            let a0 = d[i * 6], a1 = d[i * 6 + 1], a2 = d[i * 6 + 2], a3 = d[i * 6 + 3], a4 = d[i * 6 + 4], a5 = d[i * 6 + 5]
                            let out: (V8, V8, V8, V8, V8, V8) = (
                                4 * a0 - 5 * a2 + a4, -4 * (a1 + a2) + a3 + a4, 4 * (a1 - a2) - a3 + a4,
                                2 * (a3 - a1) - a2 + a4, 2 * (a1 - a3) - a2 + a4, 4 * a1 - 5 * a3 + a5)
                            let dst = v + (i * 6 * panels + p0 / 16) * C * 16 + c * 16 + p0 % 16
                            let step = vEach
                            store(out.0, dst)
                            store(out.1, dst + step)
                            store(out.2, dst + 2 * step)
                            store(out.3, dst + 3 * step)
                            store(out.4, dst + 4 * step)
                            store(out.5, dst + 5 * step)
                        }
                        p0 += 8
                    }
                }
            }
            // 36 products: M[ξ] (K×P) = U[ξ] (K×C) · V[ξ] (C×P), by the packed micro-kernel, split across
            // threads.
            Parallel.run(36, threads) { xi in
                pth2swt_sgemm_packed(Int32(K), Int32(P), Int32(C), u + xi * uEach, v + xi * vEach, m + xi * K * P, Int32(P))
            }
            // Output transform: Y = Aᵀ M A, plus bias and ReLU, eight tiles at a time.
            Parallel.run(K, threads) { k in
                let bias = V8(repeating: epilogue.bias.map { $0[k] } ?? 0)
                withUnsafeTemporaryAllocation(of: V8.self, capacity: 24) { t in
                    var p0 = 0
                    while p0 < P {
                        let lanes = min(8, P - p0)
                        let base = m + k * P + p0
                        // Columns: t (4×6) = Aᵀ M.
                        for j in 0..<6 {
                            let q0 = load(base + (0 * 6 + j) * K * P, lanes), q1 = load(base + (1 * 6 + j) * K * P, lanes)
                            let q2 = load(base + (2 * 6 + j) * K * P, lanes), q3 = load(base + (3 * 6 + j) * K * P, lanes)
                            let q4 = load(base + (4 * 6 + j) * K * P, lanes), q5 = load(base + (5 * 6 + j) * K * P, lanes)
                            t[j] = q0 + q1 + q2 + q3 + q4
                            t[6 + j] = q1 - q2 + 2 * (q3 - q4)
                            t[12 + j] = q1 + q2 + 4 * (q3 + q4)
                            t[18 + j] = q1 - q2 + 8 * (q3 - q4) + q5
                        }
                        for i in 0..<4 {
                            let a0 = t[i * 6], a1 = t[i * 6 + 1], a2 = t[i * 6 + 2], a3 = t[i * 6 + 3], a4 = t[i * 6 + 4], a5 = t[i * 6 + 5]
                            var y0 = a0 + a1 + a2 + a3 + a4 + bias
                            var y1 = a1 - a2 + 2 * (a3 - a4) + bias
                            var y2 = a1 + a2 + 4 * (a3 + a4) + bias
                            var y3 = a1 - a2 + 8 * (a3 - a4) + a5 + bias
                            if epilogue.relu {
                                let zero = V8()
                                y0.replace(with: zero, where: y0 .< zero)
                                y1.replace(with: zero, where: y1 .< zero)
                                y2.replace(with: zero, where: y2 .< zero)
                                y3.replace(with: zero, where: y3 .< zero)
                            }
                            for lane in 0..<lanes {
                                let oy = tileY[p0 + lane] + i
                                guard oy < oH else { continue }
                                let ox0 = tileX[p0 + lane]
                                let row = output + ((tileN[p0 + lane] * K + k) * oH + oy) * oW + ox0
                                let width = min(4, oW - ox0)
                                row[0] = y0[lane]
                                if width > 1 { row[1] = y1[lane] }
                                if width > 2 { row[2] = y2[lane] }
                                if width > 3 { row[3] = y3[lane] }
                            }
                        }
                        p0 += 8
                    }
                }
            }
            start += P
        }
    }

    typealias V8 = SIMD8<Float>

    @inline(__always)
    static func store(_ x: V8, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: x, as: V8.self)
    }

    @inline(__always)
    static func load(_ p: UnsafePointer<Float>, _ lanes: Int) -> V8 {
        if lanes == 8 { return UnsafeRawPointer(p).loadUnaligned(as: V8.self) }
        var x = V8()
        for l in 0..<lanes { x[l] = p[l] }
        return x
    }

}
