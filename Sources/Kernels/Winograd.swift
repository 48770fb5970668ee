/// The arithmetic of Winograd's minimal filtering F(4×4, 3×3) (Lavin & Gray 2015) for 3×3 stride-1
/// convolutions: each 6×6 input tile and 3×3 filter are transformed (Bᵀ d B, G g Gᵀ), multiplied
/// elementwise (as 36 GEMMs over channels), and transformed back (Aᵀ m A) into a 4×4 output tile. 36
/// multiplies per tile and channel pair instead of 144. Interpolation points 0, ±1, ±2, ∞; the added
/// float32 error is about 1e-6 relative (tests bound it against the direct reference).
/// `WinogradNHWC` runs it; the input and output transforms are in CKernels (nhwc_body.h).
public enum Winograd {
    /// Whether `g` is a convolution F(4×4, 3×3) computes.
    public static func applies(to g: Conv2dGeometry) -> Bool {
        g.kernelH == 3 && g.kernelW == 3 && g.strideH == 1 && g.strideW == 1 && g.dilationH == 1 && g.dilationW == 1
            && g.groups == 1 && g.padH == 1 && g.padW == 1
    }

    /// U = G g Gᵀ for each (k, c) of weight [K, C, 3, 3], as U[36][K][C], row-major.
    static func transformWeightsUnpacked(_ w: [Float], outChannels k: Int, inChannels c: Int) -> [Float] {
        precondition(w.count == k * c * 9)
        var u = [Float](repeating: 0, count: 36 * k * c)
        w.withUnsafeBufferPointer { w in
            u.withUnsafeMutableBufferPointer { u in
                for o in 0..<k {
                    for i in 0..<c {
                        let g = w.baseAddress! + (o * c + i) * 9
                        // t = G g (6×3), then U = t Gᵀ (6×6).
                        let c0 = gColumn(g[0], g[3], g[6]), c1 = gColumn(g[1], g[4], g[7]), c2 = gColumn(g[2], g[5], g[8])
                        for r in 0..<6 {
                            let v = gColumn(c0[r], c1[r], c2[r])
                            for s in 0..<6 { u[((r * 6 + s) * k + o) * c + i] = v[s] }
                        }
                    }
                }
            }
        }
        return u
    }

    /// G · (g0, g1, g2)ᵀ.
    @inline(__always)
    static func gColumn(_ g0: Float, _ g1: Float, _ g2: Float) -> SIMD8<Float> {
        [g0 / 4, -(g0 + g1 + g2) / 6, -(g0 - g1 + g2) / 6, g0 / 24 + g1 / 12 + g2 / 6, g0 / 24 - g1 / 12 + g2 / 6, g2, 0, 0]
    }
}
