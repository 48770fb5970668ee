import CZip
import Foundation
import Vision

/// An IDX file (LeCun's MNIST format, which Fashion-MNIST keeps): a magic of two zero bytes, a type
/// byte (0x08: unsigned bytes, the only type read here), the rank, then each dimension as a big-endian
/// UInt32, then the data row-major. `.gz` files are inflated with zlib; others are read as they are.
public struct IDXArray: Sendable {
    public let shape: [Int]
    public let bytes: [UInt8]

    /// The most data bytes an IDX file may declare (16 GiB): a bound on what its header can make the
    /// reader allocate.
    public static let maxDataBytes = 16 << 30

    /// Reads the file: the header first, then exactly the data it declares, into one buffer. Thrown
    /// (`DataError.idx`) for a bad magic or type, a truncated header, a shape whose size overflows or
    /// passes `maxDataBytes`, or data that is shorter or longer than the shape says.
    public init(path: String) throws {
        guard let f = gzopen(path, "rb") else { throw DataError.idx(path, "cannot open") }
        defer { gzclose(f) }
        func readExactly(_ count: Int, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            var done = 0
            while done < count {
                let n = gzread(f, buffer.baseAddress! + done, UInt32(min(count - done, 1 << 30)))
                if n < 0 { throw DataError.idx(path, "corrupt gzip data") }
                if n == 0 { break }
                done += Int(n)
            }
            return done
        }
        var head = [UInt8](repeating: 0, count: 4)
        let got = try head.withUnsafeMutableBytes { try readExactly(4, into: $0) }
        guard got == 4, head[0] == 0, head[1] == 0 else { throw DataError.idx(path, "not an IDX file (bad magic)") }
        guard head[2] == 0x08 else {
            throw DataError.idx(path, String(format: "IDX type 0x%02x; only unsigned bytes (0x08) are read", head[2]))
        }
        let rank = Int(head[3])
        var dims = [UInt8](repeating: 0, count: 4 * rank)
        guard rank >= 1, try dims.withUnsafeMutableBytes({ try readExactly(4 * rank, into: $0) }) == 4 * rank else {
            throw DataError.idx(path, "truncated header")
        }
        var shape: [Int] = []
        var count = 1
        for d in 0..<rank {
            let o = 4 * d
            let n = Int(dims[o]) << 24 | Int(dims[o + 1]) << 16 | Int(dims[o + 2]) << 8 | Int(dims[o + 3])
            shape.append(n)
            let (p, overflow) = count.multipliedReportingOverflow(by: n)
            guard !overflow, p <= Self.maxDataBytes else {
                throw DataError.idx(path, "shape \(shape)… declares more than \(Self.maxDataBytes >> 30) GiB of data")
            }
            count = p
        }
        var bytes = [UInt8](repeating: 0, count: count)
        let read = try bytes.withUnsafeMutableBytes { count == 0 ? 0 : try readExactly(count, into: $0) }
        var extra: UInt8 = 0
        let more = withUnsafeMutableBytes(of: &extra) { gzread(f, $0.baseAddress, 1) }
        guard read == count, more == 0 else {
            throw DataError.idx(
                path,
                "shape \(shape) needs \(count) bytes of data, the file has "
                    + (read < count ? "\(read)" : "more"))
        }
        self.shape = shape
        self.bytes = bytes
    }
}

/// Fashion-MNIST (Zalando) from its IDX files, as Debian's dataset-fashion-mnist installs them in
/// /usr/share/datasets/fashion-mnist: `train-images-idx3-ubyte(.gz)` and `train-labels-idx1-ubyte(.gz)`,
/// `t10k-…` for the test split. Each 28×28 gray image is made RGB by repeating the gray value in
/// the three channels (PIL's `convert("RGB")` of an "L" image), so ImageNet ResNets take it; the
/// transforms (Resize(256) + CenterCrop(224), or RandomResizedCrop(224)) then upsample it with Pillow's
/// bilinear filter as torchvision does on a PIL image.
public struct IDXDataset: ImageDataset {
    public static let fashionMNISTClasses = [
        "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
        "Sneaker", "Bag", "Ankle boot",
    ]
    public static let debianDirectory = "/usr/share/datasets/fashion-mnist"

    public let name: String
    public let classNames: [String]
    let images: IDXArray
    let labels: [UInt8]

    public enum Split: String, Sendable { case train, test }

    /// The split's files in `directory` (`.gz` or not).
    public static func files(in directory: String, split: Split) -> (images: String, labels: String)? {
        let prefix = split == .train ? "train" : "t10k"
        for suffix in ["", ".gz"] {
            let i = "\(directory)/\(prefix)-images-idx3-ubyte\(suffix)",
                l = "\(directory)/\(prefix)-labels-idx1-ubyte\(suffix)"
            if FileManager.default.fileExists(atPath: i) && FileManager.default.fileExists(atPath: l) { return (i, l) }
        }
        return nil
    }

    /// Whether `directory` holds a train and a test split in IDX files.
    public static func isIDXDirectory(_ directory: String) -> Bool {
        files(in: directory, split: .train) != nil && files(in: directory, split: .test) != nil
    }

    public init(directory: String, split: Split, classNames: [String] = IDXDataset.fashionMNISTClasses) throws {
        guard let f = Self.files(in: directory, split: split) else {
            throw DataError.idx(
                directory, "no \(split == .train ? "train" : "t10k")-images-idx3-ubyte / -labels-idx1-ubyte (.gz) pair")
        }
        try self.init(images: f.images, labels: f.labels, classNames: classNames)
    }

    public init(images: String, labels: String, classNames: [String]) throws {
        let i = try IDXArray(path: images), l = try IDXArray(path: labels)
        guard i.shape.count == 3 else { throw DataError.idx(images, "images are not [N, rows, columns]: \(i.shape)") }
        guard i.shape[1] >= 1, i.shape[2] >= 1 else {
            throw DataError.idx(
                images, "images of \(i.shape[1])×\(i.shape[2]) pixels: an image needs at least one row and one column")
        }
        guard l.shape.count == 1, l.shape[0] == i.shape[0] else {
            throw DataError.idx(labels, "\(l.shape) labels for \(i.shape[0]) images")
        }
        if let bad = l.bytes.first(where: { Int($0) >= classNames.count }) {
            throw DataError.idx(labels, "label \(bad) but \(classNames.count) class names")
        }
        name = images
        self.classNames = classNames
        self.images = i
        self.labels = l.bytes
    }

    public var count: Int { labels.count }
    public var height: Int { images.shape[1] }
    public var width: Int { images.shape[2] }
    public func label(_ index: Int) -> Int { Int(labels[index]) }
    public func source(_ index: Int) -> String { "\(name)[\(index)]" }

    public func image(_ index: Int) throws -> RGBImage {
        let plane = height * width
        var pixels = [UInt8](repeating: 0, count: plane * 3)
        images.bytes.withUnsafeBufferPointer { src in
            pixels.withUnsafeMutableBufferPointer { dst in
                let s = src.baseAddress! + index * plane
                for p in 0..<plane {
                    dst[3 * p] = s[p]
                    dst[3 * p + 1] = s[p]
                    dst[3 * p + 2] = s[p]
                }
            }
        }
        return RGBImage(width: width, height: height, pixels: pixels)
    }
}
