import Lifetime
import NN
import Vision

/// What the trainer reads: normalised CHW Float32 inputs of one size, with labels.
public protocol TrainingInputs: Sendable {
    var count: Int { get }
    var classNames: [String] { get }
    var height: Int { get }
    var width: Int { get }
    /// True when an input differs from epoch to epoch (random augmentation): features cannot be cached.
    var isRandom: Bool { get }
    func label(_ index: Int) -> Int
    /// [3, height, width], normalised, for `epoch` (random transforms draw from (seed, epoch, index)).
    func input(_ index: Int, epoch: Int) throws -> [Float]
}

/// An `ImageDataset` through torchvision's transforms, with ImageNet's normalisation:
/// - eval (and training without augmentation): `preprocessing`, by default Resize(256), CenterCrop(224),
///   bilinear (`ImageNetEval`);
/// - augmented training: RandomResizedCrop(the crop size) + RandomHorizontalFlip(), each image's draws
///   from SplitMix64 seeded by (seed, epoch, index).
public struct TransformedImages: TrainingInputs {
    public let dataset: any ImageDataset
    public let augment: Bool
    public let seed: UInt64
    let eval: ImageNetEval
    let crop: RandomResizedCrop
    let table: [Float]

    public init(
        _ dataset: any ImageDataset, augment: Bool, seed: UInt64 = 0, preprocessing: ImageNetEval = ImageNetEval()
    ) {
        self.dataset = dataset
        self.augment = augment
        self.seed = seed
        eval = preprocessing
        crop = RandomResizedCrop(size: preprocessing.cropSize)
        table = Transforms.normalizeTable(mean: ImageNetEval.mean, std: ImageNetEval.std)
    }

    public var count: Int { dataset.count }
    public var classNames: [String] { dataset.classNames }
    public var height: Int { eval.cropSize }
    public var width: Int { eval.cropSize }
    public var isRandom: Bool { augment }
    public func label(_ index: Int) -> Int { dataset.label(index) }

    public func input(_ index: Int, epoch: Int) throws -> [Float] {
        let image = try dataset.image(index)
        guard augment else { return eval.tensor(from: image) }
        var rng = SplitMix64(seed: Seeds.derive(seed, UInt64(epoch), UInt64(index)))
        return Transforms.normalize(crop.apply(image, rng: &rng), mean: ImageNetEval.mean, std: ImageNetEval.std)
    }
}

/// Inputs already made: `inputs[i]` is [3, height, width].
public struct TensorInputs: TrainingInputs {
    public let inputs: [[Float]]
    public let labels: [Int]
    public let classNames: [String]
    public let height: Int, width: Int
    public init(inputs: [[Float]], labels: [Int], classNames: [String], height: Int, width: Int) {
        precondition(inputs.count == labels.count && inputs.allSatisfy { $0.count == 3 * height * width })
        self.inputs = inputs
        self.labels = labels
        self.classNames = classNames
        self.height = height
        self.width = width
    }
    public var count: Int { inputs.count }
    public var isRandom: Bool { false }
    public func label(_ index: Int) -> Int { labels[index] }
    public func input(_ index: Int, epoch: Int) throws -> [Float] { inputs[index] }
}

/// A batch: the images' indices, their inputs [n, 3, H, W] and labels.
public struct Batch: Sendable {
    public var indices: [Int]
    public var inputs: [Float]
    public var labels: [Int]
}

/// Runs `body` on each batch while the next one is decoded and transformed on another thread, so data
/// loading overlaps compute. Batches come in order and are the same whatever the timing.
public enum PrefetchingLoader {
    /// Calls `body` with each of `batches` (lists of indices into `inputs`) for `epoch`, in order. The
    /// next batch loads on a thread this call owns; when `body` throws (an error, or `Interrupted`) that
    /// load is cancelled between images and joined before the error propagates.
    public static func forEach(
        _ batches: [[Int]], of inputs: any TrainingInputs, epoch: Int, _ body: (Batch) throws -> Void
    ) throws {
        try BackgroundScope.with { scope in
            func start(_ indices: [Int]) throws -> BackgroundJob<Batch> {
                try scope.start { cancellation in
                    try load(indices, of: inputs, epoch: epoch, cancellation: cancellation)
                }
            }
            var next = try batches.first.map(start)
            for k in batches.indices {
                let current = try next!.value()
                next = k + 1 < batches.count ? try start(batches[k + 1]) : nil
                try Interruption.check()
                try body(current)
            }
        }
    }

    /// One batch, loaded on the calling thread.
    public static func load(
        _ indices: [Int], of inputs: any TrainingInputs, epoch: Int, cancellation: CancellationFlag? = nil
    ) throws -> Batch {
        let size = 3 * inputs.height * inputs.width
        var data = [Float](repeating: 0, count: indices.count * size)
        for (k, i) in indices.enumerated() {
            if cancellation?.isCancelled == true { throw LoadCancelled() }
            let x = try inputs.input(i, epoch: epoch)
            precondition(x.count == size, "input \(i) has \(x.count) values, not 3×\(inputs.height)×\(inputs.width)")
            data.withUnsafeMutableBufferPointer { d in
                x.withUnsafeBufferPointer { (d.baseAddress! + k * size).update(from: $0.baseAddress!, count: size) }
            }
        }
        return Batch(indices: indices, inputs: data, labels: indices.map(inputs.label))
    }

    /// Thrown by a prefetch that its owner cancelled; never seen by callers (the owner is already
    /// unwinding with its own error).
    struct LoadCancelled: Error {}

    /// 0..<count in consecutive batches of `size` (the last may be smaller), following `order`.
    public static func batches(_ order: [Int], size: Int) -> [[Int]] {
        stride(from: 0, to: order.count, by: size).map { Array(order[$0..<min($0 + size, order.count)]) }
    }
}
