import CKernels

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
}
