import Kernels
import Tensors

/// A Float32 parameter or buffer: a shape and its elements, row-major. A class, so modules and
/// optimizers can share it by reference.
public final class Parameter {
    public let shape: [Int]
    /// The elements. Zeros until first read or written: a description built only for its names and
    /// shapes (`finetune --help`, `Architecture.fits`, the tests over every architecture) allocates no
    /// weights, which matters for regnet_y_128gf's 2.6 GB. The first access materialises them; touch a
    /// parameter once before sharing it between threads.
    public var data: [Float] {
        get {
            if storage == nil { storage = [Float](repeating: 0, count: elementCount) }
            return storage!
        }
        _modify {
            if storage == nil { storage = [Float](repeating: 0, count: elementCount) }
            yield &storage!
        }
        set { storage = newValue }
    }
    private var storage: [Float]?
    private let elementCount: Int
    /// False for frozen parameters and for buffers.
    public var requiresGrad: Bool

    public init(shape: [Int], data: [Float]? = nil, requiresGrad: Bool = true) {
        let count = shape.reduce(1, *)
        precondition(data == nil || data!.count == count, "data does not fit shape \(shape)")
        self.shape = shape
        elementCount = count
        storage = data
        self.requiresGrad = requiresGrad
    }

    public var count: Int { storage?.count ?? elementCount }
}

/// An integer buffer (BatchNorm's `num_batches_tracked`, int64 in torch).
public final class IntBuffer {
    public var value: Int64
    public init(_ value: Int64 = 0) { self.value = value }
}

/// One entry of a module's state dict.
public enum StateEntry {
    case parameter(Parameter)
    case buffer(Parameter)
    case int64(IntBuffer)

    public var shape: [Int] {
        switch self {
        case .parameter(let p), .buffer(let p): p.shape
        case .int64: []
        }
    }

    public var isParameter: Bool { if case .parameter = self { true } else { false } }
}

/// Anything with a state dict under torch's dotted names.
public protocol Module: AnyObject {
    /// Every parameter and buffer, in the order torch's `state_dict()` lists them, with `prefix` before
    /// each name (`"layer1.0."`).
    func state(prefix: String) -> [(name: String, entry: StateEntry)]
    /// The current name of a state-dict key that older files spell otherwise, as the family's torchvision
    /// loader renames it (DenseNet's `denselayer1.norm.1.weight` → `denselayer1.norm1.weight`); nil when
    /// `name` is not such a spelling.
    func currentName(ofLegacy name: String) -> String?
    /// Whether a state-dict key belongs to a part of the family's files that the model leaves out, as
    /// torchvision's builder does after loading them (GoogLeNet's and Inception v3's auxiliary
    /// classifiers): loading reads and drops it rather than calling it unexpected.
    func isDropped(_ name: String) -> Bool
}

extension Module {
    public func currentName(ofLegacy name: String) -> String? { nil }
    public func isDropped(_ name: String) -> Bool { false }
}

extension Module {
    /// The state dict's names and entries, in torch's order.
    public var stateEntries: [(name: String, entry: StateEntry)] { state(prefix: "") }

    /// Parameters only (no buffers), by name.
    public var namedParameters: [(name: String, parameter: Parameter)] {
        stateEntries.compactMap { if case .parameter(let p) = $0.entry { ($0.name, p) } else { nil } }
    }

    /// Marks every parameter whose name starts with one of `prefixes` (all when empty) as frozen.
    public func freeze(_ prefixes: [String] = []) {
        for (name, p) in namedParameters where prefixes.isEmpty || prefixes.contains(where: { name.hasPrefix($0) }) {
            p.requiresGrad = false
        }
    }

    /// The parameters an optimizer should update.
    public var trainableParameters: [(name: String, parameter: Parameter)] {
        namedParameters.filter { $0.parameter.requiresGrad }
    }
}

/// torch.nn.Conv2d, weight [out, in/groups, kH, kW], with a bias [out] when `bias` (VGG's and AlexNet's;
/// ResNet's and MobileNetV2's convolutions have none, their BatchNorm supplies it). The kernel and the
/// padding may differ between height and width (Inception v3's 1×7 and 7×1 with padding (0, 3) and
/// (3, 0)); the stride is the same in both.
public final class Conv2d: Module {
    public let inChannels: Int, outChannels: Int
    public let kernelHeight: Int, kernelWidth: Int
    public let paddingHeight: Int, paddingWidth: Int
    public let stride: Int, groups: Int
    public let weight: Parameter
    public let bias: Parameter?
    /// A torch.nn.Linear applied at every position (ConvNeXt's `block.3` and `block.5` on channels-last
    /// values): a 1×1 convolution whose weight is stored [out, in], the same elements in the same order.
    public let isPositionwiseLinear: Bool

    /// A square kernel and padding.
    public convenience init(
        _ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, groups: Int = 1,
        bias: Bool = false, positionwiseLinear: Bool = false
    ) {
        self.init(
            inChannels, outChannels, kernel: (kernel, kernel), stride: stride, padding: (padding, padding),
            groups: groups, bias: bias, positionwiseLinear: positionwiseLinear)
    }

    public init(
        _ inChannels: Int, _ outChannels: Int, kernel: (height: Int, width: Int), stride: Int = 1,
        padding: (height: Int, width: Int), groups: Int = 1, bias: Bool = false, positionwiseLinear: Bool = false
    ) {
        precondition(
            !positionwiseLinear || (kernel == (1, 1) && stride == 1 && padding == (0, 0) && groups == 1))
        self.inChannels = inChannels
        self.outChannels = outChannels
        kernelHeight = kernel.height
        kernelWidth = kernel.width
        paddingHeight = padding.height
        paddingWidth = padding.width
        self.stride = stride
        self.groups = groups
        isPositionwiseLinear = positionwiseLinear
        weight = Parameter(
            shape: positionwiseLinear
                ? [outChannels, inChannels] : [outChannels, inChannels / groups, kernel.height, kernel.width])
        self.bias = bias ? Parameter(shape: [outChannels]) : nil
    }

    /// The same kernel size and padding in height and width.
    public var isSquare: Bool { kernelHeight == kernelWidth && paddingHeight == paddingWidth }

    /// The geometry of this convolution on `batch` images of height × width.
    public func geometry(batch: Int, height: Int, width: Int) -> Conv2dGeometry {
        Conv2dGeometry(
            batch: batch, inChannels: inChannels, height: height, width: width, outChannels: outChannels,
            kernel: (kernelHeight, kernelWidth), stride: (stride, stride), padding: (paddingHeight, paddingWidth),
            groups: groups)
    }

    /// One input channel per group and one output channel per group (MobileNetV2's 3×3 layers).
    public var isDepthwise: Bool { groups > 1 && groups == inChannels && outChannels == inChannels }

    public func state(prefix: String) -> [(name: String, entry: StateEntry)] {
        [(prefix + "weight", .parameter(weight))] + (bias.map { [(prefix + "bias", .parameter($0))] } ?? [])
    }
}

/// torch.nn.BatchNorm2d (affine, tracking running stats); torch's defaults are eps 1e-5 and momentum 0.1
/// (MobileNetV3: 1e-3 and 0.01).
public final class BatchNorm2d: Module {
    public let channels: Int
    public let eps: Float
    /// The running statistics' update weight in training: running = (1 − momentum)·running + momentum·batch.
    public let momentum: Float
    public let weight: Parameter, bias: Parameter
    public let runningMean: Parameter, runningVar: Parameter
    public let numBatchesTracked = IntBuffer()

    public init(_ channels: Int, eps: Float = 1e-5, momentum: Float = 0.1) {
        self.channels = channels
        self.eps = eps
        self.momentum = momentum
        weight = Parameter(shape: [channels], data: [Float](repeating: 1, count: channels))
        bias = Parameter(shape: [channels])
        runningMean = Parameter(shape: [channels], requiresGrad: false)
        runningVar = Parameter(shape: [channels], data: [Float](repeating: 1, count: channels), requiresGrad: false)
    }

    public func state(prefix: String) -> [(name: String, entry: StateEntry)] {
        [
            (prefix + "weight", .parameter(weight)), (prefix + "bias", .parameter(bias)),
            (prefix + "running_mean", .buffer(runningMean)), (prefix + "running_var", .buffer(runningVar)),
            (prefix + "num_batches_tracked", .int64(numBatchesTracked)),
        ]
    }
}

/// torch.nn.Linear, weight [out, in], bias [out].
public final class Linear: Module {
    public let inFeatures: Int, outFeatures: Int
    public let weight: Parameter, bias: Parameter

    public init(_ inFeatures: Int, _ outFeatures: Int) {
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        weight = Parameter(shape: [outFeatures, inFeatures])
        bias = Parameter(shape: [outFeatures])
    }

    public func state(prefix: String) -> [(name: String, entry: StateEntry)] {
        [(prefix + "weight", .parameter(weight)), (prefix + "bias", .parameter(bias))]
    }

    /// Xavier-uniform weight (bound √(6 / (in + out))) and a zero bias, from a seeded generator.
    public func resetXavierUniform(seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let bound = (6 / Float(inFeatures + outFeatures)).squareRoot()
        for i in 0..<weight.count { weight.data[i] = (rng.nextUnitFloat() * 2 - 1) * bound }
        for i in 0..<bias.count { bias.data[i] = 0 }
    }
}

/// A small, fast, seedable generator (SplitMix64) for initialisation.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1) with 24 bits.
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) / Float(1 << 24) }
}
