import NN
import Tensors

/// Which residual block a ResNet stacks.
public enum BlockKind: String, Sendable, CaseIterable {
    /// Two 3×3 convolutions (resnet18, resnet34); expansion 1.
    case basic
    /// 1×1, 3×3 (carrying the stride), 1×1 (resnet50 and deeper); expansion 4.
    case bottleneck

    public var expansion: Int { self == .basic ? 1 : 4 }
}

/// A ResNet's shape, as torchvision's `ResNet(block, layers, …)` takes it, plus the stem and stage
/// widths torchvision fixes at 64 and [64, 128, 256, 512] (smaller ones make small test models).
public struct ResNetConfig: Sendable, Equatable {
    public var block: BlockKind
    public var layers: [Int]
    public var classes: Int = 1000
    public var stem: Int = 64
    public var widths: [Int] = [64, 128, 256, 512]
    public var groups: Int = 1
    public var widthPerGroup: Int = 64

    public init(block: BlockKind, layers: [Int], classes: Int = 1000, stem: Int = 64,
                widths: [Int] = [64, 128, 256, 512], groups: Int = 1, widthPerGroup: Int = 64) {
        self.block = block
        self.layers = layers
        self.classes = classes
        self.stem = stem
        self.widths = widths
        self.groups = groups
        self.widthPerGroup = widthPerGroup
    }

    public static let resnet18 = ResNetConfig(block: .basic, layers: [2, 2, 2, 2])
    public static let resnet34 = ResNetConfig(block: .basic, layers: [3, 4, 6, 3])
    public static let resnet50 = ResNetConfig(block: .bottleneck, layers: [3, 4, 6, 3])
    public static let resnet101 = ResNetConfig(block: .bottleneck, layers: [3, 4, 23, 3])
    public static let resnet152 = ResNetConfig(block: .bottleneck, layers: [3, 8, 36, 3])

    /// By torchvision's function name.
    public static func named(_ name: String) -> ResNetConfig? {
        ["resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50, "resnet101": resnet101,
         "resnet152": resnet152][name]
    }
    public static let names = ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"]

    /// Channels into the head.
    public var features: Int { widths[3] * block.expansion }

    /// This network with as many classes as `sd`'s `fc.weight` has rows, when that weight is
    /// [classes, features] (a fine-tuned head); unchanged otherwise, so that loading reports the
    /// mismatch by name.
    public func sizingHead(from sd: StateDict) -> ResNetConfig {
        var c = self
        if let fc = sd["fc.weight"], fc.rank == 2, fc.shape[1] == features, fc.shape[0] > 0 { c.classes = fc.shape[0] }
        return c
    }
}

/// torchvision's BasicBlock / Bottleneck: `conv1 bn1 conv2 bn2 [conv3 bn3] [downsample.0 downsample.1]`.
public final class Block: Module {
    public let kind: BlockKind
    public let stride: Int
    public let conv1: Conv2d, bn1: BatchNorm2d
    public let conv2: Conv2d, bn2: BatchNorm2d
    public let conv3: Conv2d?, bn3: BatchNorm2d?
    /// `downsample.0` (1×1 conv with the stride) and `downsample.1` (BN), when the shape changes.
    public let downsample: (conv: Conv2d, bn: BatchNorm2d)?

    init(_ kind: BlockKind, inChannels: Int, planes: Int, stride: Int, groups: Int, widthPerGroup: Int) {
        self.kind = kind
        self.stride = stride
        let out = planes * kind.expansion
        switch kind {
        case .basic:
            conv1 = Conv2d(inChannels, planes, kernel: 3, stride: stride, padding: 1)
            bn1 = BatchNorm2d(planes)
            conv2 = Conv2d(planes, planes, kernel: 3, padding: 1)
            bn2 = BatchNorm2d(planes)
            conv3 = nil
            bn3 = nil
        case .bottleneck:
            let width = planes * widthPerGroup / 64 * groups
            conv1 = Conv2d(inChannels, width, kernel: 1)
            bn1 = BatchNorm2d(width)
            conv2 = Conv2d(width, width, kernel: 3, stride: stride, padding: 1, groups: groups)
            bn2 = BatchNorm2d(width)
            conv3 = Conv2d(width, out, kernel: 1)
            bn3 = BatchNorm2d(out)
        }
        downsample = (stride != 1 || inChannels != out)
            ? (Conv2d(inChannels, out, kernel: 1, stride: stride), BatchNorm2d(out)) : nil
    }

    public func state(prefix: String) -> [(name: String, entry: StateEntry)] {
        var s = conv1.state(prefix: prefix + "conv1.") + bn1.state(prefix: prefix + "bn1.")
        s += conv2.state(prefix: prefix + "conv2.") + bn2.state(prefix: prefix + "bn2.")
        if let conv3, let bn3 { s += conv3.state(prefix: prefix + "conv3.") + bn3.state(prefix: prefix + "bn3.") }
        if let d = downsample { s += d.conv.state(prefix: prefix + "downsample.0.") + d.bn.state(prefix: prefix + "downsample.1.") }
        return s
    }
}

/// torchvision's ResNet, under its exact state-dict names: `conv1`, `bn1`, `layer1`…`layer4` (blocks
/// `layerN.i`), `fc`. Load weights with `load(_:strict:excluding:)`; run it with `ResNetInference`.
public final class ResNet: Module {
    public let config: ResNetConfig
    public let conv1: Conv2d, bn1: BatchNorm2d
    public let layers: [[Block]]
    public private(set) var fc: Linear

    public init(_ config: ResNetConfig) {
        precondition(config.layers.count == 4 && config.widths.count == 4, "a ResNet has four stages")
        self.config = config
        conv1 = Conv2d(3, config.stem, kernel: 7, stride: 2, padding: 3)
        bn1 = BatchNorm2d(config.stem)
        var inChannels = config.stem
        var stages: [[Block]] = []
        for (i, (count, planes)) in zip(config.layers, config.widths).enumerated() {
            var blocks: [Block] = []
            for j in 0..<count {
                let b = Block(config.block, inChannels: inChannels, planes: planes, stride: j == 0 && i > 0 ? 2 : 1,
                              groups: config.groups, widthPerGroup: config.widthPerGroup)
                inChannels = planes * config.block.expansion
                blocks.append(b)
            }
            stages.append(blocks)
        }
        layers = stages
        fc = Linear(config.features, config.classes)
    }

    public func state(prefix: String) -> [(name: String, entry: StateEntry)] {
        var s = conv1.state(prefix: prefix + "conv1.") + bn1.state(prefix: prefix + "bn1.")
        for (i, stage) in layers.enumerated() {
            for (j, b) in stage.enumerated() { s += b.state(prefix: prefix + "layer\(i + 1).\(j).") }
        }
        return s + fc.state(prefix: prefix + "fc.")
    }

    /// Replaces the head with a new `fc` for `classes` outputs, Xavier-uniform from `seed`. Load the
    /// backbone with `load(sd, excluding: ["fc."])` before or after.
    public func replaceHead(classes: Int, seed: UInt64 = 0) {
        fc = Linear(config.features, classes)
        fc.resetXavierUniform(seed: seed)
    }

    public var classes: Int { fc.outFeatures }
}
