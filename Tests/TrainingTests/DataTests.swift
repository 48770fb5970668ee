import Foundation
import NN
import Testing
import Vision

@testable import Training

@Suite struct DataTests {
    func tempDir(_ name: String) throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("pth2swt-\(name)-\(getpid())")
        try? FileManager.default.removeItem(at: d)
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    @Test func imageFolderSortsClassesAndFilesAsTorchvision() throws {
        let root = try tempDir("folder")
        defer { try? FileManager.default.removeItem(at: root) }
        let jpg = Fixtures.path("images/geom_50x40.jpg"), png = Fixtures.path("images/png_rgb.png")
        let fm = FileManager.default
        // Classes "B", "a", "b_2" sort by code point: B < a < b_2. Files walk recursively, sorted.
        for (dir, files) in [
            ("b_2", ["z.png", "sub/a.jpg"]), ("a", ["y.JPG", "x.jpeg", "notes.txt"]), ("B", ["k.png"]),
        ] {
            for f in files {
                let path = root.appendingPathComponent(dir).appendingPathComponent(f)
                try fm.createDirectory(at: path.deletingLastPathComponent(), withIntermediateDirectories: true)
                if f.hasSuffix(".txt") {
                    try Data("x".utf8).write(to: path)
                } else {
                    try fm.copyItem(atPath: f.lowercased().hasSuffix("png") ? png : jpg, toPath: path.path)
                }
            }
        }
        let ds = try ImageFolder(root: root.path)
        #expect(ds.classNames == ["B", "a", "b_2"])
        #expect(
            ds.paths.map { String($0.dropFirst(root.path.count + 1)) } == [
                "B/k.png", "a/x.jpeg", "a/y.JPG", "b_2/z.png", "b_2/sub/a.jpg",
            ])
        #expect((0..<ds.count).map(ds.label) == [0, 1, 1, 2, 2])
        #expect(try ds.image(1).width == 50)
        try Data().write(to: root.appendingPathComponent("a/bad.bmp"))
        #expect(throws: DataError.unsupportedImage(root.path + "/a/bad.bmp")) { try ImageFolder(root: root.path) }
        #expect(throws: DataError.missing(root.path + "/nope")) { try ImageFolder(root: root.path + "/nope") }
    }

    /// `DataSelection`, what finetune and eval train and test on, for each kind of directory.
    @Test func dataSelectionPicksSplitsAsDocumented() throws {
        let root = try tempDir("select")
        defer { try? FileManager.default.removeItem(at: root) }
        let png = Fixtures.path("images/png_rgb.png"), fm = FileManager.default
        func put(_ relative: String) throws {
            let path = root.appendingPathComponent(relative)
            try fm.createDirectory(at: path.deletingLastPathComponent(), withIntermediateDirectories: true)
            try fm.copyItem(atPath: png, toPath: path.path)
        }
        for c in ["cat", "dog"] { for i in 0..<4 { try put("train/\(c)/\(i).png") } }
        // No test/: a validation split is needed, and is seeded.
        #expect(throws: DataError.noTestSplit(root.path)) {
            try DataSelection(path: root.path).load(classes: nil, seed: 0)
        }
        let held = try DataSelection(path: root.path, validationSplit: 0.25).load(classes: 2, seed: 7)
        #expect(held.train.count + held.test.count == 8 && held.test.count == 2)
        #expect(held.kind == "ImageFolder, 25% of train/ held out")
        #expect(throws: DataError.classCount(expected: 3, found: 2, names: ["cat", "dog"])) {
            try DataSelection(path: root.path, validationSplit: 0.25).load(classes: 3, seed: 7)
        }
        // test/ with the same classes; --per-class keeps the first N of each.
        for c in ["cat", "dog"] { for i in 0..<2 { try put("test/\(c)/\(i).png") } }
        let both = try DataSelection(path: root.path, perClass: 1).load(classes: 2, seed: 0)
        #expect(both.kind == "ImageFolder train/ and test/")
        #expect(both.train.count == 2 && both.test.count == 2)
        try put("test/emu/0.png")
        #expect(throws: DataError.classMismatch(train: ["cat", "dog"], test: ["cat", "dog", "emu"])) {
            try DataSelection(path: root.path).load(classes: nil, seed: 0)
        }
    }

    @Test func idxReaderReadsAHandMadeFile() throws {
        let dir = try tempDir("idx")
        defer { try? FileManager.default.removeItem(at: dir) }
        // 3 images of 2×2, labels 2, 0, 1.
        let images: [UInt8] = [0, 0, 8, 3, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 0, 2] + Array(1...12)
        let labels: [UInt8] = [0, 0, 8, 1, 0, 0, 0, 3, 2, 0, 1]
        try Data(images).write(to: dir.appendingPathComponent("train-images-idx3-ubyte"))
        try Data(labels).write(to: dir.appendingPathComponent("train-labels-idx1-ubyte"))
        let ds = try IDXDataset(directory: dir.path, split: .train)
        #expect(ds.count == 3 && ds.width == 2 && ds.height == 2)
        #expect((0..<3).map(ds.label) == [2, 0, 1])
        #expect(try ds.image(1).pixels == [5, 5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 8], "gray repeated in R, G, B")
        #expect(!IDXDataset.isIDXDirectory(dir.path), "no t10k split")
        try Data(images.dropLast()).write(to: dir.appendingPathComponent("bad"))
        #expect(throws: DataError.idx(dir.path + "/bad", "shape [3, 2, 2] needs 12 bytes of data, the file has 11")) {
            try IDXArray(path: dir.path + "/bad")
        }
        let subset = ds.limited(perClass: 1, classes: 2)
        #expect(subset.indices == [1, 2])
    }

    @Test(
        .enabled(
            if: Fixtures.fashionMNISTAvailable,
            "/usr/share/datasets/fashion-mnist is absent (Debian dataset-fashion-mnist)"))
    func fashionMNISTFromDebian() throws {
        let train = try IDXDataset(directory: IDXDataset.debianDirectory, split: .train)
        let test = try IDXDataset(directory: IDXDataset.debianDirectory, split: .test)
        #expect(train.count == 60000 && test.count == 10000 && train.width == 28)
        #expect(train.classCounts == Array(repeating: 6000, count: 10))
        #expect(test.classCounts == Array(repeating: 1000, count: 10))
    }

    @Test func shuffleIsASeededPermutation() {
        let a = Shuffle.permutation(100, seed: 5, epoch: 1)
        #expect(a.sorted() == Array(0..<100))
        #expect(a == Shuffle.permutation(100, seed: 5, epoch: 1))
        #expect(a != Shuffle.permutation(100, seed: 5, epoch: 2) && a != Shuffle.permutation(100, seed: 6, epoch: 1))
        let ds = MemoryImages(
            images: Array(repeating: RGBImage(width: 1, height: 1, pixels: [0, 0, 0]), count: 10),
            labels: Array(repeating: 0, count: 10))
        let (train, val) = Shuffle.split(ds, validation: 0.2, seed: 3)
        #expect(val.count == 2 && train.count == 8 && Set(train.indices + val.indices).count == 10)
        #expect(Shuffle.split(ds, validation: 0.2, seed: 3).validation.indices == val.indices)
    }

    @Test func randomResizedCropFollowsTorchvisionsRules() {
        let crop = RandomResizedCrop(size: 16)
        var rng = SplitMix64(seed: 1)
        for _ in 0..<500 {
            let p = crop.parameters(width: 40, height: 30, rng: &rng)
            #expect(p.height > 0 && p.width > 0 && p.top + p.height <= 30 && p.left + p.width <= 40)
            let fraction = Double(p.width * p.height) / 1200
            #expect(fraction > 0.05 && fraction <= 1.0)
        }
        // A 200×1 strip: every attempt needs h ≥ 3 > 1, so the fallback: h = 1, w = round(1 · 4/3) = 1,
        // top = 0, left = (200 − 1) // 2 = 99.
        let p = crop.parameters(width: 200, height: 1, rng: &rng)
        #expect(p.top == 0 && p.left == 99 && p.height == 1 && p.width == 1)
        let image = RGBImage(width: 3, height: 2, pixels: Array(0..<18))
        #expect(
            RandomResizedCrop.flipHorizontally(image).pixels == [
                6, 7, 8, 3, 4, 5, 0, 1, 2, 15, 16, 17, 12, 13, 14, 9, 10, 11,
            ])
        #expect(RandomResizedCrop.crop(image, top: 1, left: 1, height: 1, width: 2).pixels == [12, 13, 14, 15, 16, 17])
        var r1 = SplitMix64(seed: 9), r2 = SplitMix64(seed: 9)
        let big = RGBImage(width: 40, height: 30, pixels: (0..<3600).map { UInt8($0 % 256) })
        #expect(crop.apply(big, rng: &r1) == crop.apply(big, rng: &r2))
    }

    @Test func prefetchingLoaderGivesTheSequentialBatches() throws {
        let inputs = seededInputs(count: 11, size: 8, classes: 3)
        let batches = PrefetchingLoader.batches(Shuffle.permutation(11, seed: 1, epoch: 1), size: 4)
        #expect(batches.map(\.count) == [4, 4, 3])
        var seen: [Batch] = []
        try PrefetchingLoader.forEach(batches, of: inputs, epoch: 1) { seen.append($0) }
        #expect(seen.count == 3)
        for (b, indices) in zip(seen, batches) {
            let want = try PrefetchingLoader.load(indices, of: inputs, epoch: 1)
            #expect(b.indices == indices && b.inputs == want.inputs && b.labels == want.labels)
        }
        struct Failing: Error {}
        #expect(throws: Failing.self) {
            try PrefetchingLoader.forEach(batches, of: inputs, epoch: 1) { _ in throw Failing() }
        }
    }
}
