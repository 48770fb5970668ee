import Foundation
import Vision

/// Which images a run trains and tests on, as `finetune` and `eval` choose them from one path:
/// - a directory of IDX files (Fashion-MNIST's names): its train and t10k splits, the first `classes`
///   labels kept (0 T-shirt/top, 1 Trouser, …);
/// - an ImageFolder root with `train/` and `test/` (class folders must agree);
/// - an ImageFolder (`DIR/train/` or `DIR` itself) without `test/`, with `validationSplit` of it held out,
///   seeded.
/// `perClass` keeps the first N images of each class in each split.
public struct DataSelection: Sendable {
    public var path: String
    public var perClass: Int?
    public var validationSplit: Double?

    public init(path: String, perClass: Int? = nil, validationSplit: Double? = nil) {
        self.path = path
        self.perClass = perClass
        self.validationSplit = validationSplit
    }

    public struct Splits {
        public var train: any ImageDataset
        public var test: any ImageDataset
        /// How the data was found, for the run's first lines ("IDX files", "ImageFolder train/ and test/", …).
        public var kind: String
    }

    /// The splits with `classes` classes (nil: all there are). Throws `DataError` when the classes do not
    /// number `classes`, the folders disagree, an ImageFolder has no `test/` and no validation split, or
    /// a split holds no image.
    public func load(classes: Int?, seed: UInt64) throws -> Splits {
        let s = try splits(classes: classes, seed: seed, asked: "--classes", train: true)
        return Splits(train: s.train!, test: s.test, kind: s.kind)
    }

    /// Only the test split, as `eval` needs it: IDX files of the train split are not read. `asked` says
    /// where `classes` came from, for the error when the data has another number of classes.
    public func loadTest(classes: Int?, seed: UInt64, asked: String) throws -> (test: any ImageDataset, kind: String) {
        let s = try splits(classes: classes, seed: seed, asked: asked, train: false)
        return (s.test, s.kind)
    }

    func splits(classes: Int?, seed: UInt64, asked: String, train needTrain: Bool) throws
        -> (train: (any ImageDataset)?, test: any ImageDataset, kind: String)
    {
        var train: (any ImageDataset)?, test: any ImageDataset
        let kind: String
        if IDXDataset.isIDXDirectory(path) {
            let names = IDXDataset.fashionMNISTClasses
            if let classes, classes < 1 || classes > names.count {
                throw DataError.classCount(expected: classes, found: names.count, names: names, asked: asked)
            }
            let n = classes ?? names.count
            if needTrain {
                let tr = try IDXDataset(directory: path, split: .train)
                train = Renamed(base: tr.limited(perClass: perClass, classes: n), classNames: Array(names.prefix(n)))
            }
            let te = try IDXDataset(directory: path, split: .test)
            test = Renamed(base: te.limited(perClass: perClass, classes: n), classNames: Array(names.prefix(n)))
            kind = "IDX files"
        } else {
            let fm = FileManager.default
            let root = fm.fileExists(atPath: path + "/train") ? path + "/train" : path
            let full = try ImageFolder(root: root)
            if fm.fileExists(atPath: path + "/test") {
                let t = try ImageFolder(root: path + "/test")
                guard t.classNames == full.classNames else {
                    throw DataError.classMismatch(train: full.classNames, test: t.classNames)
                }
                (train, test) = (full, t)
                kind = "ImageFolder train/ and test/"
            } else if let validationSplit {
                let s = Shuffle.split(full, validation: validationSplit, seed: seed)
                (train, test) = (s.train, s.validation)
                kind = "ImageFolder, \(Int((validationSplit * 100).rounded()))% of train/ held out"
            } else {
                throw DataError.noTestSplit(path)
            }
            if let classes, classes != full.classNames.count {
                throw DataError.classCount(
                    expected: classes, found: full.classNames.count, names: full.classNames, asked: asked)
            }
            if let perClass { (train, test) = (train?.limited(perClass: perClass), test.limited(perClass: perClass)) }
        }
        if let train, train.count == 0 { throw DataError.emptySplit(path, "train") }
        if test.count == 0 { throw DataError.emptySplit(path, "test") }
        return (train, test, kind)
    }
}

/// A dataset with its class list cut to the classes kept.
struct Renamed: ImageDataset {
    let base: any ImageDataset
    let classNames: [String]
    var count: Int { base.count }
    func label(_ index: Int) -> Int { base.label(index) }
    func image(_ index: Int) throws -> RGBImage { try base.image(index) }
    func source(_ index: Int) -> String { base.source(index) }
}
