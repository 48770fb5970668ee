import CImageSupport

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Decodes JPEG (libjpeg-turbo) and PNG (libpng) into the bytes `PIL.Image.open(f).convert("RGB")`
/// gives with Pillow 9.4: the same libjpeg settings (islow IDCT, fancy upsampling), and Pillow's mode
/// conversions to RGB, quirks included (see `decode(bytes:name:)`). EXIF orientation is not applied:
/// neither `Image.open` nor torchvision applies it.
public enum ImageDecoder {
    /// Images with more pixels than this are refused: Pillow's `DecompressionBombError` threshold,
    /// 2 × `Image.MAX_IMAGE_PIXELS` = 2 × (1024 · 1024 · 1024 / 4 / 3).
    public static let maxPixels = 2 * (1024 * 1024 * 1024 / 4 / 3)

    /// The container `bytes` start with, by signature (Pillow's: FF D8 FF for JPEG, the 8-byte PNG
    /// signature), or nil.
    public static func format(of bytes: UnsafeRawBufferPointer) -> ImageFormat? {
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF { return .jpeg }
        if bytes.count >= 8, png.indices.allSatisfy({ bytes[$0] == png[$0] }) { return .png }
        return nil
    }

    /// Reads and decodes the file at `path`.
    ///
    /// - Throws: `ImageError` naming `path`: `.io` when the file cannot be read, otherwise as
    ///   `decode(bytes:name:)`.
    public static func decode(path: String) throws -> RGBImage {
        let bytes = try readFile(path)
        return try decode(bytes: bytes, name: path)
    }

    /// Decodes a JPEG or PNG held in memory. `name` stands for the path in errors.
    ///
    /// Pillow's conversions, mirrored here:
    /// - JPEG grayscale ("L") is replicated to R = G = B. CMYK and YCCK JPEGs are read as Pillow
    ///   reads them ("CMYK;I": libjpeg's CMYK output inverted, the Adobe convention assumed) and
    ///   converted with Pillow's `cmyk2rgb`: each of R, G, B is clip8(nk − MULDIV255(c, nk)) with
    ///   nk = 255 − K and MULDIV255(a, b) = (((a·b + 128) >> 8) + a·b + 128) >> 8.
    /// - PNG 1/2/4-bit grayscale is scaled by bit replication (0/255, ×85, ×17), as Pillow's "1",
    ///   "L;2", "L;4" unpackers do; 8-bit grayscale and gray+alpha are replicated, alpha dropped.
    /// - PNG 16-bit grayscale opens in Pillow as mode "I" (the full 16-bit value), and "I" → "RGB"
    ///   clips it to 0…255: a value of 1000 becomes 255. Mirrored.
    /// - Other 16-bit PNGs keep the high byte of each sample (Pillow's "RGB;16B", "LA;16B",
    ///   "RGBA;16B" unpackers); alpha is dropped, never composited.
    /// - Palette images map through PLTE; an index past the palette's end maps to gray (i, i, i),
    ///   which is what Pillow 9.4's palette holds there. tRNS does not change any pixel.
    ///
    /// - Throws: `ImageError` naming `name`: `.unknownFormat`, `.truncated` when the data ends early,
    ///   `.corrupt` when the codec refuses the data, `.unsupported` for JPEGs with 2 or more than 4
    ///   components, 12-bit samples or a lossless or hierarchical frame (Pillow refuses those too),
    ///   `.tooLarge` past `maxPixels`, `.outOfMemory`.
    public static func decode(bytes: [UInt8], name: String = "<memory>") throws -> RGBImage {
        try bytes.withUnsafeBytes { raw -> RGBImage in
            guard let format = format(of: raw) else { throw ImageError(.unknownFormat, path: name) }
            let base = raw.baseAddress!.assumingMemoryBound(to: UInt8.self)
            var decoded = cis_image()
            let status: Int32
            switch format {
            case .jpeg: status = cis_decode_jpeg(base, raw.count, UInt64(maxPixels), &decoded)
            case .png: status = cis_decode_png(base, raw.count, UInt64(maxPixels), &decoded)
            }
            defer { cis_image_free(&decoded) }
            let message = withUnsafeBytes(of: decoded.message) {
                String(cString: $0.bindMemory(to: CChar.self).baseAddress!)
            }
            switch Int(status) {
            case Int(CIS_OK): break
            case Int(CIS_TRUNCATED): throw ImageError(.truncated(format, message), path: name)
            case Int(CIS_UNSUPPORTED): throw ImageError(.unsupported(format, message), path: name)
            case Int(CIS_TOO_LARGE):
                throw ImageError(.tooLarge(width: Int(decoded.width), height: Int(decoded.height)), path: name)
            case Int(CIS_NO_MEMORY): throw ImageError(.outOfMemory, path: name)
            default: throw ImageError(.corrupt(format, message), path: name)
            }
            guard decoded.width > 0, decoded.height > 0, let pixels = decoded.pixels else {
                throw ImageError(.corrupt(format, "empty image"), path: name)
            }
            let samples = UnsafeBufferPointer(start: pixels, count: decoded.pixels_size)
            return toRGB(decoded, samples, format: format)
        }
    }

    /// Pillow's `convert("RGB")` of the mode Pillow opens the file in, from the codec's samples.
    static func toRGB(_ d: cis_image, _ s: UnsafeBufferPointer<UInt8>, format: ImageFormat) -> RGBImage {
        let count = Int(d.width) * Int(d.height)
        let channels = Int(d.channels)
        var out = [UInt8](repeating: 0, count: count * 3)
        out.withUnsafeMutableBufferPointer { o in
            if d.is_palette != 0 {
                // Pillow's palette: the PLTE entries, then the gray ramp it was initialised with.
                var table = [UInt8](repeating: 0, count: 256 * 3)
                withUnsafeBytes(of: d.palette) { p in
                    for i in 0..<256 {
                        for c in 0..<3 {
                            table[i * 3 + c] = i < Int(d.palette_size) ? p[i * 3 + c] : UInt8(i)
                        }
                    }
                }
                table.withUnsafeBufferPointer { t in
                    for i in 0..<count {
                        let e = Int(s[i]) * 3
                        o[i * 3] = t[e]
                        o[i * 3 + 1] = t[e + 1]
                        o[i * 3 + 2] = t[e + 2]
                    }
                }
            } else if d.bit_depth == 16 {
                // 16-bit grayscale: mode "I", clipped to 0...255 by "I" -> "RGB".
                for i in 0..<count {
                    let v = Int(s[i * 2]) << 8 | Int(s[i * 2 + 1])
                    let g = UInt8(min(v, 255))
                    o[i * 3] = g
                    o[i * 3 + 1] = g
                    o[i * 3 + 2] = g
                }
            } else if format == .jpeg && channels == 4 {
                for i in 0..<count {
                    // "CMYK;I": Pillow's CMYK is libjpeg's output inverted, so nk = 255 - K is libjpeg's K.
                    let nk = Int(s[i * 4 + 3])
                    for c in 0..<3 {
                        let t = (255 - Int(s[i * 4 + c])) * nk + 128
                        let v = nk - (((t >> 8) + t) >> 8)
                        o[i * 3 + c] = UInt8(clamping: v)
                    }
                }
            } else {
                switch channels {
                case 1, 2:
                    for i in 0..<count {
                        let g = s[i * channels]
                        o[i * 3] = g
                        o[i * 3 + 1] = g
                        o[i * 3 + 2] = g
                    }
                case 3:
                    _ = o.initialize(from: s)
                default:
                    for i in 0..<count {
                        o[i * 3] = s[i * 4]
                        o[i * 3 + 1] = s[i * 4 + 1]
                        o[i * 3 + 2] = s[i * 4 + 2]
                    }
                }
            }
        }
        return RGBImage(width: Int(d.width), height: Int(d.height), pixels: out)
    }

    /// The whole file, or `.io` with the system's reason.
    static func readFile(_ path: String) throws -> [UInt8] {
        func failure(_ what: String) -> ImageError {
            ImageError(.io("\(what): \(String(cString: strerror(errno)))"), path: path)
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure("cannot open") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw failure("cannot stat") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw ImageError(.io("not a regular file"), path: path) }
        var bytes = [UInt8](repeating: 0, count: Int(st.st_size))
        var done = 0
        while done < bytes.count {
            let n = bytes.withUnsafeMutableBytes { read(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0 {
                if errno == EINTR { continue }
                throw failure("cannot read")
            }
            if n == 0 { break }
            done += n
        }
        // A file that shrank while being read: decode what is there (the decoder reports truncation).
        return done == bytes.count ? bytes : Array(bytes[..<done])
    }
}
