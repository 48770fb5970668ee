extension Resample {
    /// The reference twin of `resize(_:width:height:interpolation:)`: the same arithmetic written the plain way,
    /// one output sample at a time, with the taps recomputed for every pixel and the 8-bit
    /// intermediate of the horizontal pass recomputed for every tap of the vertical one. Slow; tests
    /// compare the fast path against it on random sizes.
    static func referenceResize(
        _ image: RGBImage, width: Int, height: Int, interpolation: Interpolation = .bilinear
    ) -> RGBImage {
        precondition(width > 0 && height > 0, "resize to \(width)×\(height)")
        func sample(_ x: Int, _ y: Int, _ c: Int) -> Int { Int(image.pixels[(y * image.width + x) * 3 + c]) }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height {
            for x in 0..<width {
                for c in 0..<3 {
                    // The horizontal pass at column x of source row `row` (skipped when the width stays).
                    func horizontal(_ row: Int) -> Int {
                        if width == image.width { return sample(x, row, c) }
                        let (first, weights) = referenceTaps(
                            inSize: image.width, outSize: width, index: x, interpolation)
                        var sum = 0
                        for (t, w) in weights.enumerated() { sum += sample(first + t, row, c) * Int(w) }
                        return referenceClip(sum)
                    }
                    var value: Int
                    if height == image.height {
                        value = horizontal(y)
                    } else {
                        let (first, weights) = referenceTaps(
                            inSize: image.height, outSize: height, index: y, interpolation)
                        var sum = 0
                        for (t, w) in weights.enumerated() { sum += horizontal(first + t) * Int(w) }
                        value = referenceClip(sum)
                    }
                    out[(y * width + x) * 3 + c] = UInt8(value)
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: out)
    }

    /// Rounds and clips a sum of 22-bit fixed-point products the way Pillow's `clip8` table does.
    static func referenceClip(_ sum: Int) -> Int {
        let v = (sum + (1 << (precisionBits - 1))) >> precisionBits
        return v < 0 ? 0 : (v > 255 ? 255 : v)
    }

    /// First input index and fixed-point weights of output `index` in a pass from `inSize` to `outSize`
    /// (Pillow's `precompute_coeffs` for one index; the same Double expressions, in the same order).
    static func referenceTaps(inSize: Int, outSize: Int, index: Int, _ interpolation: Interpolation) -> (Int, [Int32]) {
        let scale = Double(Float(inSize)) / Double(outSize)
        let stretch = scale < 1 ? 1 : scale
        let reach = interpolation.support * stretch
        let center = (Double(index) + 0.5) * scale
        let lo = max(0, Int(center - reach + 0.5))
        let hi = min(inSize, Int(center + reach + 0.5))
        let raw = (lo..<hi).map { x -> Double in
            let d = abs((Double(x) - center + 0.5) * (1 / stretch))
            switch interpolation {
            case .bilinear: return d < 1 ? 1 - d : 0
            case .bicubic:
                // Keys' cubic convolution kernel, a = −0.5, written out.
                if d < 1 { return 1.5 * d * d * d - 2.5 * d * d + 1 }
                if d < 2 { return -0.5 * d * d * d + 2.5 * d * d - 4 * d + 2 }
                return 0
            }
        }
        let total = raw.reduce(0, +)
        return (lo, raw.map { fixed(total == 0 ? $0 : $0 / total) })
    }
}
