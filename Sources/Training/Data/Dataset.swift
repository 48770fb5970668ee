import NN
import Vision

/// Labelled images, in a fixed order: what ImageFolder and the IDX reader give.
public protocol ImageDataset: Sendable {
    var count: Int { get }
    /// Class names; label `k` is `classNames[k]`.
    var classNames: [String] { get }
    func label(_ index: Int) -> Int
    /// The image, decoded to 8-bit RGB.
    func image(_ index: Int) throws -> RGBImage
    /// Where the image comes from (a path, or `file[index]`), for messages.
    func source(_ index: Int) -> String
}

/// The images of `base` at `indices`, in that order.
public struct Subset: ImageDataset {
    public let base: any ImageDataset
    public let indices: [Int]
    public init(_ base: any ImageDataset, indices: [Int]) {
        precondition(indices.allSatisfy { $0 >= 0 && $0 < base.count }, "subset index out of range")
        self.base = base
        self.indices = indices
    }
    public var count: Int { indices.count }
    public var classNames: [String] { base.classNames }
    public func label(_ index: Int) -> Int { base.label(indices[index]) }
    public func image(_ index: Int) throws -> RGBImage { try base.image(indices[index]) }
    public func source(_ index: Int) -> String { base.source(indices[index]) }
}

extension ImageDataset {
    /// The first `perClass` images of each class, in dataset order (all of a class with fewer), keeping
    /// only classes `0..<classes` when given. A small subset for demos and tests.
    public func limited(perClass: Int?, classes: Int? = nil) -> Subset {
        var taken = [Int: Int]()
        var keep: [Int] = []
        for i in 0..<count {
            let y = label(i)
            if let classes, y >= classes { continue }
            if let perClass, taken[y, default: 0] >= perClass { continue }
            taken[y, default: 0] += 1
            keep.append(i)
        }
        return Subset(self, indices: keep)
    }

    /// Images per class, indexed by label.
    public var classCounts: [Int] {
        var counts = [Int](repeating: 0, count: classNames.count)
        for i in 0..<count where label(i) < counts.count { counts[label(i)] += 1 }
        return counts
    }
}

/// Seeds derived from one user seed, so each epoch's shuffle and each image's augmentation have their
/// own independent stream (and a resumed run draws exactly what an uninterrupted one drew).
public enum Seeds {
    /// A seed for (`seed`, `a`, `b`): SplitMix64 outputs chained through the three.
    public static func derive(_ seed: UInt64, _ a: UInt64, _ b: UInt64 = 0) -> UInt64 {
        var r = SplitMix64(seed: seed)
        var s = r.next() ^ a
        r = SplitMix64(seed: s)
        s = r.next() ^ b
        r = SplitMix64(seed: s)
        return r.next()
    }
}

/// Seeded shuffling (Fisher–Yates over SplitMix64). torch's RandomSampler draws from torch's own
/// generator, which is not reproduced here: the orders differ from torch's, the procedure does not.
public enum Shuffle {
    /// A permutation of 0..<count for `epoch` of a run seeded with `seed`.
    public static func permutation(_ count: Int, seed: UInt64, epoch: Int) -> [Int] {
        var order = Array(0..<count)
        var rng = SplitMix64(seed: Seeds.derive(seed, 0x5348_5546, UInt64(epoch)))
        guard count > 1 else { return order }
        for i in stride(from: count - 1, to: 0, by: -1) {
            let j = Int(rng.next() % UInt64(i + 1))
            order.swapAt(i, j)
        }
        return order
    }

    /// `dataset` split into (train, validation) with a fraction `validation` held out, after a seeded
    /// shuffle; both keep dataset order within themselves. The validation part has
    /// `Int((Double(count) · validation).rounded())` images.
    public static func split(_ dataset: any ImageDataset, validation: Double, seed: UInt64) -> (
        train: Subset, validation: Subset
    ) {
        precondition(validation > 0 && validation < 1, "a validation fraction in (0, 1)")
        let order = permutation(dataset.count, seed: Seeds.derive(seed, 0x5350_4C54), epoch: 0)
        let held = Int((Double(dataset.count) * validation).rounded())
        let val = Array(order.prefix(held)).sorted(), train = Array(order.dropFirst(held)).sorted()
        return (Subset(dataset, indices: train), Subset(dataset, indices: val))
    }
}
