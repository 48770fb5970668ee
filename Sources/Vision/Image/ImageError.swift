/// The two containers the decoder reads.
public enum ImageFormat: String, Sendable, Equatable {
    /// JPEG (JFIF, Exif or Adobe), read with libjpeg-turbo.
    case jpeg
    /// PNG, read with libpng.
    case png
}

/// Why an image could not be decoded. `path` is the file as the caller named it (or the name given
/// with in-memory bytes).
public struct ImageError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// Thrown when the file cannot be opened or read (the text is the system's reason).
        case io(String)
        /// Thrown when the bytes start with neither the JPEG marker FF D8 FF nor the PNG signature.
        case unknownFormat
        /// Thrown when the data ends before the image does (Pillow: "image file is truncated").
        case truncated(ImageFormat, String)
        /// Thrown when libjpeg or libpng refuses the data; the text is the codec's.
        case corrupt(ImageFormat, String)
        /// Thrown for a well-formed file of a kind the decoder does not handle: a JPEG with 2 or more
        /// than 4 components, 12-bit samples, a lossless or hierarchical frame.
        case unsupported(ImageFormat, String)
        /// Thrown when width × height is above `ImageDecoder.maxPixels` (Pillow's decompression-bomb
        /// limit), before any pixel buffer is allocated.
        case tooLarge(width: Int, height: Int)
        /// Thrown when the pixel buffer cannot be allocated.
        case outOfMemory
    }

    /// What went wrong.
    public var kind: Kind
    /// The file's path as the caller gave it, or the name given with in-memory bytes.
    public var path: String

    /// An error of `kind` about `path`.
    public init(_ kind: Kind, path: String) {
        self.kind = kind
        self.path = path
    }

    /// The path, then what went wrong.
    public var description: String {
        switch kind {
        case .io(let reason): return "\(path): cannot read: \(reason)"
        case .unknownFormat: return "\(path): neither JPEG nor PNG"
        case .truncated(let f, let detail): return "\(path): truncated \(f.rawValue.uppercased()) (\(detail))"
        case .corrupt(let f, let detail): return "\(path): corrupt \(f.rawValue.uppercased()): \(detail)"
        case .unsupported(let f, let detail): return "\(path): unsupported \(f.rawValue.uppercased()): \(detail)"
        case .tooLarge(let w, let h):
            return
                "\(path): \(w)×\(h) is more than \(ImageDecoder.maxPixels) pixels (Pillow's decompression-bomb limit)"
        case .outOfMemory: return "\(path): out of memory for the pixel buffer"
        }
    }
}
