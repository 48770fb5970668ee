/// torchvision 0.14's eval transforms on a PIL image, one step at a time: `Resize(size)` (shorter
/// side), `CenterCrop(size)`, and `ToTensor()` + `Normalize(mean, std)` fused.
public enum Transforms {
    /// The output size of `Resize(shorterSide, max_size=maxSize)` for a `width` × `height` image
    /// (torchvision's `_compute_resized_output_size`): the shorter side becomes `shorterSide` (the
    /// width when the sides are equal), the longer `int(shorterSide * long / short)`, truncated, with
    /// the division in Double as Python does it. With `maxSize`, a longer side above it becomes
    /// `maxSize` and the shorter `int(maxSize * shorter / longer)`.
    ///
    /// `maxSize` must be greater than `shorterSide` (torchvision raises otherwise).
    public static func resizedSize(width: Int, height: Int, shorterSide: Int, maxSize: Int? = nil)
        -> (width: Int, height: Int)
    {
        precondition(width > 0 && height > 0 && shorterSide > 0, "resize \(width)×\(height) to \(shorterSide)")
        let (short, long) = width <= height ? (width, height) : (height, width)
        var newShort = shorterSide
        var newLong = Int(Double(shorterSide * long) / Double(short))
        if let maxSize {
            precondition(maxSize > shorterSide, "max_size = \(maxSize) must be greater than size = \(shorterSide)")
            if newLong > maxSize {
                newShort = Int(Double(maxSize * newShort) / Double(newLong))
                newLong = maxSize
            }
        }
        return width <= height ? (newShort, newLong) : (newLong, newShort)
    }

    /// `Resize(shorterSide, max_size=maxSize)`: Pillow's bilinear resize to `resizedSize(...)`, or the
    /// image itself when that is its size (torchvision returns it unchanged).
    public static func resize(_ image: RGBImage, shorterSide: Int, maxSize: Int? = nil) -> RGBImage {
        let size = resizedSize(width: image.width, height: image.height, shorterSide: shorterSide, maxSize: maxSize)
        return Resample.bilinear(image, width: size.width, height: size.height)
    }

    /// Where `CenterCrop` puts a `cropWidth` × `cropHeight` window on a `width` × `height` image, in
    /// the image's coordinates: torchvision pads a too-small side with zeros, `(crop − size) // 2`
    /// before and the rest after, then takes `crop_top = int(round((height − crop) / 2.0))` and the
    /// same for the left, where `round` is Python's, halves to even (a margin of 33 gives 16).
    /// The origin is negative on a padded side.
    public static func centerCropOrigin(width: Int, height: Int, cropWidth: Int, cropHeight: Int) -> (x: Int, y: Int) {
        func origin(_ size: Int, _ crop: Int) -> Int {
            if crop > size { return -((crop - size) / 2) }
            return Int((Double(size - crop) / 2).rounded(.toNearestOrEven))
        }
        return (origin(width, cropWidth), origin(height, cropHeight))
    }

    /// `CenterCrop((cropHeight, cropWidth))`: the window at `centerCropOrigin(...)`, zeros where it
    /// lies outside the image.
    public static func centerCrop(_ image: RGBImage, width cropWidth: Int, height cropHeight: Int) -> RGBImage {
        precondition(cropWidth > 0 && cropHeight > 0, "crop to \(cropWidth)×\(cropHeight)")
        let o = centerCropOrigin(width: image.width, height: image.height, cropWidth: cropWidth, cropHeight: cropHeight)
        var out = [UInt8](repeating: 0, count: cropWidth * cropHeight * 3)
        let x0 = max(0, -o.x), x1 = min(cropWidth, image.width - o.x)
        for y in 0..<cropHeight {
            let sy = y + o.y
            guard sy >= 0 && sy < image.height && x1 > x0 else { continue }
            let src = (sy * image.width + x0 + o.x) * 3
            let dst = (y * cropWidth + x0) * 3
            out.replaceSubrange(dst..<(dst + (x1 - x0) * 3), with: image.pixels[src..<(src + (x1 - x0) * 3)])
        }
        return RGBImage(width: cropWidth, height: cropHeight, pixels: out)
    }

    /// `ToTensor()` then `Normalize(mean, std)`: CHW Float32, each value `(Float(v) / 255 − mean[c]) / std[c]`
    /// computed in Float32 in that order (torch's `div(255)`, `sub_(mean)`, `div_(std)` with mean and
    /// std as float32 tensors), so the result is bit-identical to torchvision's. Three channels.
    public static func normalize(_ image: RGBImage, mean: [Double], std: [Double]) -> [Float] {
        normalize(image, table: normalizeTable(mean: mean, std: std))
    }

    /// `normalize` with the table of `normalizeTable` already made.
    static func normalize(_ image: RGBImage, table: [Float]) -> [Float] {
        let plane = image.width * image.height
        var out = [Float](repeating: 0, count: 3 * plane)
        image.pixels.withUnsafeBufferPointer { src in
            table.withUnsafeBufferPointer { t in
                out.withUnsafeMutableBufferPointer { dst in
                    for i in 0..<plane {
                        dst[i] = t[Int(src[i * 3])]
                        dst[plane + i] = t[256 + Int(src[i * 3 + 1])]
                        dst[2 * plane + i] = t[512 + Int(src[i * 3 + 2])]
                    }
                }
            }
        }
        return out
    }

    /// The normalized value of every byte in every channel: entry `c * 256 + v` is
    /// `(Float(v) / 255 − Float(mean[c])) / Float(std[c])`. A value depends only on its byte and
    /// channel, so `normalize` is a table lookup.
    public static func normalizeTable(mean: [Double], std: [Double]) -> [Float] {
        precondition(mean.count == 3 && std.count == 3, "three channels: mean \(mean), std \(std)")
        precondition(std.allSatisfy { Float($0) != 0 }, "std \(std) has a zero in float32")
        var table = [Float](repeating: 0, count: 3 * 256)
        for c in 0..<3 {
            let m = Float(mean[c]), s = Float(std[c])
            for v in 0..<256 {
                table[c * 256 + v] = (Float(v) / 255 - m) / s
            }
        }
        return table
    }
}
