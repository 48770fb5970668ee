/// An 8-bit RGB image: `height` rows of `width` pixels, each pixel three bytes R, G, B, no padding.
/// It is what `PIL.Image.open(f).convert("RGB")` holds, and what every preprocessing step passes on.
public struct RGBImage: Sendable, Equatable {
    /// Pixels per row.
    public let width: Int
    /// Rows.
    public let height: Int
    /// `width * height * 3` bytes, row-major, interleaved RGB.
    public var pixels: [UInt8]

    /// Wraps interleaved RGB bytes. `pixels.count` must be `width * height * 3`, sizes positive.
    public init(width: Int, height: Int, pixels: [UInt8]) {
        precondition(width > 0 && height > 0, "RGBImage needs positive sizes, got \(width)×\(height)")
        precondition(
            pixels.count == width * height * 3,
            "RGBImage \(width)×\(height) needs \(width * height * 3) bytes, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}
