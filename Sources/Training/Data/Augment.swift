import NN
import Vision

#if canImport(Glibc)
    import Glibc
#endif

/// torchvision 0.14's RandomResizedCrop(size, scale=(0.08, 1), ratio=(3/4, 4/3)) and
/// RandomHorizontalFlip(0.5) on a PIL image, drawing from our seeded SplitMix64 instead of torch's
/// generator (so the crops differ from torch's draws; the procedure is torch's):
///
/// - Up to 10 attempts: area fraction s ~ U(scale) and log-ratio r ~ U(log ratio) in Float32 (as
///   torch's `uniform_` on a float tensor), aspect = exp(r); w = round(√(area·s·aspect)),
///   h = round(√(area·s/aspect)) with Python's round (half to even); if 0 < w ≤ width and 0 < h ≤ height,
///   top ~ U{0…height−h}, left ~ U{0…width−w}, done.
/// - Else the fallback: the largest centred crop whose ratio is clamped into `ratio`.
/// - Then crop and resize to size×size with Pillow's bilinear filter (`F.resized_crop`).
/// - Flip left–right when u < 0.5, u ~ U[0, 1).
public struct RandomResizedCrop: Sendable {
    public var size: Int
    public var scale: (Float, Float)
    public var ratio: (Float, Float)

    public init(size: Int = 224, scale: (Float, Float) = (0.08, 1), ratio: (Double, Double) = (3.0 / 4.0, 4.0 / 3.0)) {
        self.size = size
        self.scale = scale
        self.ratio = (Float(ratio.0), Float(ratio.1))
    }

    /// torchvision's `get_params`: (top, left, height, width) of the crop on a `width` × `height` image.
    public func parameters(width: Int, height: Int, rng: inout SplitMix64) -> (
        top: Int, left: Int, height: Int, width: Int
    ) {
        let area = Double(height * width)
        let logRatio = (logf(ratio.0), logf(ratio.1))
        for _ in 0..<10 {
            let s = scale.0 + (scale.1 - scale.0) * rng.nextUnitFloat()
            let aspect = Double(expf(logRatio.0 + (logRatio.1 - logRatio.0) * rng.nextUnitFloat()))
            let target = area * Double(s)
            let w = Int((target * aspect).squareRoot().rounded(.toNearestOrEven))
            let h = Int((target / aspect).squareRoot().rounded(.toNearestOrEven))
            if w > 0 && w <= width && h > 0 && h <= height {
                let top = Int(rng.next() % UInt64(height - h + 1))
                let left = Int(rng.next() % UInt64(width - w + 1))
                return (top, left, h, w)
            }
        }
        let inRatio = Double(width) / Double(height)
        var w = width, h = height
        let lo = Double(min(ratio.0, ratio.1)), hi = Double(max(ratio.0, ratio.1))
        if inRatio < lo {
            h = Int((Double(w) / lo).rounded(.toNearestOrEven))
        } else if inRatio > hi {
            w = Int((Double(h) * hi).rounded(.toNearestOrEven))
        }
        return ((height - h) / 2, (width - w) / 2, h, w)
    }

    /// The crop, resized to size × size, flipped left–right half the time.
    public func apply(_ image: RGBImage, rng: inout SplitMix64, flip: Bool = true) -> RGBImage {
        let p = parameters(width: image.width, height: image.height, rng: &rng)
        var out = Resample.bilinear(
            Self.crop(image, top: p.top, left: p.left, height: p.height, width: p.width),
            width: size, height: size)
        if flip && rng.nextUnitFloat() < 0.5 { out = Self.flipHorizontally(out) }
        return out
    }

    /// The window [top, top+height) × [left, left+width), which lies inside the image.
    public static func crop(_ image: RGBImage, top: Int, left: Int, height: Int, width: Int) -> RGBImage {
        precondition(top >= 0 && left >= 0 && top + height <= image.height && left + width <= image.width)
        var out = [UInt8](repeating: 0, count: width * height * 3)
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<height {
                    let s = src.baseAddress! + ((top + y) * image.width + left) * 3
                    (dst.baseAddress! + y * width * 3).update(from: s, count: width * 3)
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// Mirror image (PIL's FLIP_LEFT_RIGHT).
    public static func flipHorizontally(_ image: RGBImage) -> RGBImage {
        var out = image.pixels
        let w = image.width
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<image.height {
                    for x in 0..<w {
                        let s = (y * w + x) * 3, d = (y * w + w - 1 - x) * 3
                        dst[d] = src[s]
                        dst[d + 1] = src[s + 1]
                        dst[d + 2] = src[s + 2]
                    }
                }
            }
        }
        return RGBImage(width: image.width, height: image.height, pixels: out)
    }
}
