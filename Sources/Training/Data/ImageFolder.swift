import Foundation
import Vision

/// torchvision.datasets.ImageFolder's layout: ROOT/<class>/**/<image>. Classes are the sorted names of
/// ROOT's subdirectories (label k = the k-th); within a class, files come in the order of a sorted
/// recursive walk (directories, then names, compared by code point as Python compares strings).
/// JPEG and PNG files (by extension, case-insensitive: .jpg .jpeg .png) are taken; torchvision would
/// also take .ppm .bmp .pgm .tif .tiff .webp, which the decoder cannot read: such files are an error,
/// named, rather than silently skipped.
public struct ImageFolder: ImageDataset {
    public let root: String
    public let classNames: [String]
    public let paths: [String]
    public let labels: [Int]

    public static let extensions = ["jpg", "jpeg", "png"]
    static let unreadable = ["ppm", "bmp", "pgm", "tif", "tiff", "webp"]

    public init(root: String) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else { throw DataError.missing(root) }
        let classes = try fm.contentsOfDirectory(atPath: root).filter { name in
            var d: ObjCBool = false
            return !name.hasPrefix(".") && fm.fileExists(atPath: root + "/" + name, isDirectory: &d) && d.boolValue
        }.sorted(by: Self.codePointOrder)
        guard !classes.isEmpty else { throw DataError.noClasses(root) }
        var paths: [String] = [], labels: [Int] = []
        for (k, c) in classes.enumerated() {
            let files = try Self.walk(root + "/" + c)
            for f in files {
                let ext = (f as NSString).pathExtension.lowercased()
                if Self.extensions.contains(ext) {
                    paths.append(f)
                    labels.append(k)
                } else if Self.unreadable.contains(ext) {
                    throw DataError.unsupportedImage(f)
                }
            }
        }
        guard !paths.isEmpty else { throw DataError.noImages(root) }
        self.root = root
        classNames = classes
        self.paths = paths
        self.labels = labels
    }

    static func codePointOrder(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars)
    }

    /// Files under `dir`, as `sorted(os.walk(dir))` visits them with each directory's files sorted.
    static func walk(_ dir: String) throws -> [String] {
        let fm = FileManager.default
        var out: [String] = []
        var subdirs: [String] = []
        for name in try fm.contentsOfDirectory(atPath: dir).sorted(by: codePointOrder) {
            var d: ObjCBool = false
            let path = dir + "/" + name
            guard fm.fileExists(atPath: path, isDirectory: &d) else { continue }
            if d.boolValue { subdirs.append(path) } else { out.append(path) }
        }
        for s in subdirs { out += try walk(s) }
        return out
    }

    public var count: Int { paths.count }
    public func label(_ index: Int) -> Int { labels[index] }
    public func image(_ index: Int) throws -> RGBImage { try ImageDecoder.decode(path: paths[index]) }
    public func source(_ index: Int) -> String { paths[index] }
}

/// Why a data directory cannot be used.
public enum DataError: Error, Equatable, CustomStringConvertible {
    case missing(String)
    case noClasses(String)
    case noImages(String)
    case unsupportedImage(String)
    case idx(String, String)
    case classMismatch(train: [String], test: [String])
    /// The data has `found` classes where `expected` were asked for, by `asked`: "--classes", or the
    /// model's head.
    case classCount(expected: Int, found: Int, names: [String], asked: String = "--classes")
    /// A split (train or test) of the data holds no image.
    case emptySplit(String, String)
    /// An ImageFolder without `test/` and no validation split asked for.
    case noTestSplit(String)

    public var description: String {
        switch self {
        case .missing(let p): "\(p): no such directory"
        case .noTestSplit(let p):
            "\(p) has no test/ directory and no IDX files; give --val-split F to hold out part of train/"
        case .noClasses(let p): "\(p): no class directories (ImageFolder wants ROOT/<class>/<image>)"
        case .noImages(let p): "\(p): no .jpg, .jpeg or .png file under its class directories"
        case .unsupportedImage(let p): "\(p): only JPEG and PNG are read"
        case .idx(let p, let why): "\(p): \(why)"
        case .classMismatch(let a, let b): "train and test have different classes: \(a) vs \(b)"
        case .classCount(let e, let f, let names, let asked):
            "\(asked) \(e)\(asked.hasPrefix("--") ? "" : " classes"), but the data has \(f) classes: "
                + names.prefix(12).joined(separator: ", ") + (names.count > 12 ? ", …" : "")
        case .emptySplit(let p, let split):
            "\(p): the \(split) split holds no image (with --per-class and --classes as given); nothing to \(split == "train" ? "train on" : "evaluate")"
        }
    }
}
