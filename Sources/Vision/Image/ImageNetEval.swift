/// torchvision's ImageNet evaluation preprocessing, bit for bit:
///
///     transforms.Compose([Resize(256), CenterCrop(224), ToTensor(),
///                         Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
///
/// applied to `PIL.Image.open(path).convert("RGB")` (Pillow 9.4, torchvision 0.14). The result is a
/// Float32 CHW buffer of `shape` [3, cropSize, cropSize].
///
/// Only the part of the resized image the crop keeps is computed (see
/// `Resample.bilinear(_:width:height:columns:rows:)`); the values are those of resizing everything.
public struct ImageNetEval: Sendable {
    /// ImageNet's per-channel mean, as torchvision writes it (Python floats, made float32 by torch).
    public static let mean: [Double] = [0.485, 0.456, 0.406]
    /// ImageNet's per-channel standard deviation.
    public static let std: [Double] = [0.229, 0.224, 0.225]

    /// `Resize`'s target for the shorter side.
    public let resizeSize: Int
    /// `CenterCrop`'s square side.
    public let cropSize: Int
    /// `Resize`'s filter (torchvision's `InterpolationMode`, done by Pillow).
    public let interpolation: Resample.Interpolation
    private let table: [Float]

    /// The standard pipeline is `ImageNetEval()`: 256, then 224, bilinear. Both sizes must be positive.
    public init(resizeSize: Int = 256, cropSize: Int = 224, interpolation: Resample.Interpolation = .bilinear) {
        precondition(resizeSize > 0 && cropSize > 0, "sizes \(resizeSize), \(cropSize)")
        self.resizeSize = resizeSize
        self.cropSize = cropSize
        self.interpolation = interpolation
        table = Transforms.normalizeTable(mean: Self.mean, std: Self.std)
    }

    /// [3, cropSize, cropSize]: channels, rows, columns.
    public var shape: [Int] { [3, cropSize, cropSize] }

    /// Decodes the JPEG or PNG at `path` and preprocesses it.
    ///
    /// - Throws: `ImageError` (see `ImageDecoder.decode(path:)`).
    public func tensor(from path: String) throws -> [Float] {
        tensor(from: try ImageDecoder.decode(path: path))
    }

    /// Decodes in-memory JPEG or PNG bytes and preprocesses them; `name` stands for the path in errors.
    ///
    /// - Throws: `ImageError` (see `ImageDecoder.decode(bytes:name:)`).
    public func tensor(bytes: [UInt8], name: String = "<memory>") throws -> [Float] {
        tensor(from: try ImageDecoder.decode(bytes: bytes, name: name))
    }

    /// Preprocesses a decoded image.
    public func tensor(from image: RGBImage) -> [Float] {
        Transforms.normalize(resizedCrop(image), table: table)
    }

    /// `CenterCrop(cropSize)(Resize(resizeSize)(image))` as 8-bit RGB, computing only the kept window.
    public func resizedCrop(_ image: RGBImage) -> RGBImage {
        let size = Transforms.resizedSize(width: image.width, height: image.height, shorterSide: resizeSize)
        let o = Transforms.centerCropOrigin(
            width: size.width, height: size.height, cropWidth: cropSize, cropHeight: cropSize)
        // The crop window clipped to the resized image; the rest, if any, is CenterCrop's zero padding.
        let columns = max(0, o.x)..<min(size.width, o.x + cropSize)
        let rows = max(0, o.y)..<min(size.height, o.y + cropSize)
        let window = Resample.resize(
            image, width: size.width, height: size.height, columns: columns, rows: rows, interpolation: interpolation)
        // Padded sides: the window spans the whole resized side, so CenterCrop pads it the same way.
        if columns.count == cropSize && rows.count == cropSize { return window }
        return Transforms.centerCrop(window, width: cropSize, height: cropSize)
    }
}
