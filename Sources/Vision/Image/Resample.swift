/// Pillow 9.4's `Image.resize(size, Image.BILINEAR)` on 8-bit RGB, pixel for pixel (libImaging's
/// Resample.c, which torchvision's `Resize` on a PIL image ends in; `reducing_gap` is None there, so
/// no `reduce()` step runs first).
///
/// The algorithm, mirrored exactly:
/// - Separable: a horizontal pass into an 8-bit intermediate image (only the rows the vertical pass
///   reads), then a vertical pass. A pass whose size does not change is skipped.
/// - Per output index i of a pass from `inSize` to `outSize`: scale = inSize / outSize, filterscale =
///   max(scale, 1) (antialiasing: the triangle filter of support 1 is stretched when downscaling),
///   center = (i + 0.5)·scale, taps from xmin = trunc(center − support + 0.5) (≥ 0) to
///   xmax = trunc(center + support + 0.5) (≤ inSize), weight(x) = max(0, 1 − |(x − center + 0.5)/filterscale|),
///   normalised by their sum, all in Double.
/// - Weights become integers with 22 fraction bits (`PRECISION_BITS` = 32 − 8 − 2), rounded half away
///   from zero; a sample is (2²¹ + Σ pixel·weight) >> 22, clipped to 0…255.
public enum Resample {
    /// Pillow's filters that torchvision's eval transforms use: the triangle (support 1) and Keys' cubic
    /// with a = −0.5 (support 2), both stretched by the scale when downscaling.
    public enum Interpolation: String, Sendable, CaseIterable {
        case bilinear, bicubic

        var support: Double { self == .bilinear ? 1 : 2 }

        /// Pillow's `bilinear_filter` / `bicubic_filter`.
        @inline(__always)
        func weight(_ x: Double) -> Double {
            let x = abs(x)
            switch self {
            case .bilinear: return x < 1.0 ? 1.0 - x : 0.0
            case .bicubic:
                let a = -0.5
                if x < 1.0 { return ((a + 2.0) * x - (a + 3.0)) * x * x + 1 }
                if x < 2.0 { return (((x - 5) * x + 8) * x - 4) * a }
                return 0.0
            }
        }
    }

    /// Fraction bits of the integer weights.
    static let precisionBits = 22

    /// One pass's integer taps: for output index i (counted from the window start), taps
    /// `weights[i * ksize ..< i * ksize + count[i]]` apply to input indices `start[i]...`.
    struct Taps {
        let ksize: Int
        let start: [Int]
        let count: [Int]
        let weights: [Int32]

        /// Taps for output indices `window` of a pass from `inSize` to `outSize`.
        init(inSize: Int, outSize: Int, window: Range<Int>, interpolation: Interpolation) {
            // Pillow passes the box as floats: in1 - in0 is Float(inSize), then the division is in double.
            let scale = Double(Float(inSize)) / Double(outSize)
            let filterscale = max(scale, 1.0)
            let support = interpolation.support * filterscale
            let ksize = Int(support.rounded(.up)) * 2 + 1
            let inverse = 1.0 / filterscale
            var start = [Int](repeating: 0, count: window.count)
            var count = [Int](repeating: 0, count: window.count)
            var weights = [Int32](repeating: 0, count: window.count * ksize)
            var w = [Double](repeating: 0, count: ksize)
            for (j, i) in window.enumerated() {
                let center = (Double(i) + 0.5) * scale
                let xmin = max(Int(center - support + 0.5), 0)
                let n = min(Int(center + support + 0.5), inSize) - xmin
                var sum = 0.0
                for x in 0..<n {
                    w[x] = interpolation.weight((Double(x + xmin) - center + 0.5) * inverse)
                    sum += w[x]
                }
                for x in 0..<n {
                    let k = sum != 0.0 ? w[x] / sum : w[x]
                    weights[j * ksize + x] = Resample.fixed(k)
                }
                start[j] = xmin
                count[j] = n
            }
            self.ksize = ksize
            self.start = start
            self.count = count
            self.weights = weights
        }

        /// Input indices the taps read: from the first tap of the first output to the last of the last.
        var inputRange: Range<Int> {
            guard let first = start.first, let lastStart = start.last, let lastCount = count.last else { return 0..<0 }
            return first..<(lastStart + lastCount)
        }
    }

    /// Pillow's `normalize_coeffs_8bpc`: Double weight to 22-bit fixed point, rounding half away from zero.
    @inline(__always)
    static func fixed(_ k: Double) -> Int32 {
        let s = k * Double(1 << precisionBits)
        return Int32(k < 0 ? -0.5 + s : 0.5 + s)
    }

    /// Pillow's `clip8`: drop the 22 fraction bits (arithmetic shift), clamp to 0…255.
    @inline(__always)
    static func clip8(_ acc: Int32) -> UInt8 {
        UInt8(clamping: acc >> Int32(precisionBits))
    }

    /// `image` resized to `width` × `height` as Pillow's bilinear `resize` does it. Returns the image
    /// itself when the size does not change (Pillow copies it).
    public static func bilinear(_ image: RGBImage, width: Int, height: Int) -> RGBImage {
        resize(image, width: width, height: height, columns: 0..<width, rows: 0..<height, interpolation: .bilinear)
    }

    /// `image` resized to `width` × `height` with `interpolation`, as Pillow's `resize` does it.
    public static func resize(_ image: RGBImage, width: Int, height: Int, interpolation: Interpolation) -> RGBImage {
        resize(image, width: width, height: height, columns: 0..<width, rows: 0..<height, interpolation: interpolation)
    }

    /// The bilinear resize's window (`resize(_:width:height:columns:rows:interpolation:)`).
    public static func bilinear(_ image: RGBImage, width: Int, height: Int, columns: Range<Int>, rows: Range<Int>)
        -> RGBImage
    {
        resize(image, width: width, height: height, columns: columns, rows: rows, interpolation: .bilinear)
    }

    /// The part `columns` × `rows` of `resize(image, width:, height:, interpolation:)`, computed without
    /// the rest. Every output pixel depends only on its own taps, so this equals resizing the whole image
    /// and cropping; it is how `ImageNetEval` skips the border a center crop throws away.
    public static func resize(
        _ image: RGBImage, width: Int, height: Int, columns: Range<Int>, rows: Range<Int>,
        interpolation: Interpolation
    ) -> RGBImage {
        precondition(width > 0 && height > 0, "resize to \(width)×\(height)")
        precondition(
            columns.lowerBound >= 0 && columns.upperBound <= width && !columns.isEmpty,
            "columns \(columns) outside 0..<\(width)")
        precondition(
            rows.lowerBound >= 0 && rows.upperBound <= height && !rows.isEmpty, "rows \(rows) outside 0..<\(height)")
        let needH = width != image.width
        let needV = height != image.height
        if !needH && !needV {
            return columns == 0..<width && rows == 0..<height ? image : crop(image, columns: columns, rows: rows)
        }
        let vertical =
            needV ? Taps(inSize: image.height, outSize: height, window: rows, interpolation: interpolation) : nil
        // Source rows the vertical pass reads (all of `rows` themselves when there is no vertical pass).
        let sourceRows = vertical?.inputRange ?? rows
        var stage: RGBImage
        if needH {
            let horizontal = Taps(inSize: image.width, outSize: width, window: columns, interpolation: interpolation)
            stage = horizontalPass(image, horizontal, rows: sourceRows)
        } else {
            stage = crop(image, columns: columns, rows: sourceRows)
        }
        if let vertical {
            stage = verticalPass(stage, vertical, firstRow: sourceRows.lowerBound)
        }
        return stage
    }

    /// Rows `rows` of `image`, each resampled with `taps` (one output column per tap set).
    static func horizontalPass(_ image: RGBImage, _ taps: Taps, rows: Range<Int>) -> RGBImage {
        let outWidth = taps.start.count
        var out = [UInt8](repeating: 0, count: outWidth * rows.count * 3)
        let half = Int32(1 << (precisionBits - 1))
        let ksize = taps.ksize
        image.pixels.withUnsafeBufferPointer { src in
            taps.weights.withUnsafeBufferPointer { weights in
                taps.start.withUnsafeBufferPointer { starts in
                    taps.count.withUnsafeBufferPointer { counts in
                        out.withUnsafeMutableBufferPointer { dst in
                            let inStride = image.width * 3
                            for (j, y) in rows.enumerated() {
                                let row = src.baseAddress! + y * inStride
                                let o = dst.baseAddress! + j * outWidth * 3
                                for x in 0..<outWidth {
                                    let k = weights.baseAddress! + x * ksize
                                    var p = row + starts[x] * 3
                                    var r = half, g = half, b = half
                                    for t in 0..<counts[x] {
                                        let w = k[t]
                                        r &+= Int32(p[0]) &* w
                                        g &+= Int32(p[1]) &* w
                                        b &+= Int32(p[2]) &* w
                                        p += 3
                                    }
                                    o[x * 3] = clip8(r)
                                    o[x * 3 + 1] = clip8(g)
                                    o[x * 3 + 2] = clip8(b)
                                }
                            }
                        }
                    }
                }
            }
        }
        return RGBImage(width: outWidth, height: rows.count, pixels: out)
    }

    /// `image` (source rows from `firstRow` on) resampled down its columns with `taps`.
    static func verticalPass(_ image: RGBImage, _ taps: Taps, firstRow: Int) -> RGBImage {
        let outHeight = taps.start.count
        let rowBytes = image.width * 3
        var out = [UInt8](repeating: 0, count: rowBytes * outHeight)
        var acc = [Int32](repeating: 0, count: rowBytes)
        let half = Int32(1 << (precisionBits - 1))
        let ksize = taps.ksize
        image.pixels.withUnsafeBufferPointer { src in
            taps.weights.withUnsafeBufferPointer { weights in
                acc.withUnsafeMutableBufferPointer { a in
                    out.withUnsafeMutableBufferPointer { dst in
                        for y in 0..<outHeight {
                            for i in 0..<rowBytes { a[i] = half }
                            let first = taps.start[y] - firstRow
                            for t in 0..<taps.count[y] {
                                let w = weights[y * ksize + t]
                                let row = src.baseAddress! + (first + t) * rowBytes
                                for i in 0..<rowBytes { a[i] &+= Int32(row[i]) &* w }
                            }
                            let o = dst.baseAddress! + y * rowBytes
                            for i in 0..<rowBytes { o[i] = clip8(a[i]) }
                        }
                    }
                }
            }
        }
        return RGBImage(width: image.width, height: outHeight, pixels: out)
    }

    /// Columns `columns`, rows `rows` of `image` (both inside it).
    static func crop(_ image: RGBImage, columns: Range<Int>, rows: Range<Int>) -> RGBImage {
        var out = [UInt8]()
        out.reserveCapacity(columns.count * rows.count * 3)
        for y in rows {
            let base = (y * image.width + columns.lowerBound) * 3
            out.append(contentsOf: image.pixels[base..<(base + columns.count * 3)])
        }
        return RGBImage(width: columns.count, height: rows.count, pixels: out)
    }
}
