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

    public init(
        block: BlockKind, layers: [Int], classes: Int = 1000, stem: Int = 64,
        widths: [Int] = [64, 128, 256, 512], groups: Int = 1, widthPerGroup: Int = 64
    ) {
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
        [
            "resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50, "resnet101": resnet101,
            "resnet152": resnet152,
        ][name]
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

/// torchvision's BasicBlock / Bottleneck: `conv1 bn1 conv2 bn2 [conv3 bn3] [downsample.0 downsample.1]`,
/// the layers of a `Network` node by node (the same objects).
public final class Block {
    public let kind: BlockKind
    public let stride: Int
    public let conv1: Conv2d, bn1: BatchNorm2d
    public let conv2: Conv2d, bn2: BatchNorm2d
    public let conv3: Conv2d?, bn3: BatchNorm2d?
    /// `downsample.0` (1×1 conv with the stride) and `downsample.1` (BN), when the shape changes.
    public let downsample: (conv: Conv2d, bn: BatchNorm2d)?

    init(_ kind: BlockKind, _ net: Network, prefix p: String) {
        self.kind = kind
        conv1 = net.conv(p + "conv1")
        bn1 = net.batchNorm(p + "bn1")
        conv2 = net.conv(p + "conv2")
        bn2 = net.batchNorm(p + "bn2")
        conv3 = kind == .bottleneck ? net.conv(p + "conv3") : nil
        bn3 = kind == .bottleneck ? net.batchNorm(p + "bn3") : nil
        stride = conv2.stride
        downsample =
            net.node(named: p + "downsample.0") != nil
            ? (net.conv(p + "downsample.0"), net.batchNorm(p + "downsample.1")) : nil
    }
}

/// torchvision's ResNet, under its exact state-dict names: `conv1`, `bn1`, `layer1`…`layer4` (blocks
/// `layerN.i`), `fc`. A typed view of `network` (`ResNetConfig.network`, where the topology is written):
/// its properties are the network's own layer objects. Load weights with `load(_:strict:excluding:)`;
/// run it with `Inference(model.network)`.
public final class ResNet: Module {
    public let config: ResNetConfig
    /// The description, holding every parameter.
    public let network: Network
    public let conv1: Conv2d, bn1: BatchNorm2d
    public let layers: [[Block]]
    public var fc: Linear { network.headLinears[0] }

    public init(_ config: ResNetConfig) {
        precondition(config.layers.count == 4 && config.widths.count == 4, "a ResNet has four stages")
        self.config = config
        let net = config.network(name: ResNetConfig.names.first { ResNetConfig.named($0) == config } ?? "resnet")
        network = net
        conv1 = net.conv("conv1")
        bn1 = net.batchNorm("bn1")
        layers = config.layers.enumerated().map { s, count in
            (0..<count).map { Block(config.block, net, prefix: "layer\(s + 1).\($0).") }
        }
    }

    public func state(prefix: String) -> [(name: String, entry: StateEntry)] { network.state(prefix: prefix) }

    /// Replaces the head with a new `fc` for `classes` outputs, Xavier-uniform from `seed`. Load the
    /// backbone with `load(sd, excluding: ["fc."])` before or after.
    public func replaceHead(classes: Int, seed: UInt64 = 0) {
        network.replaceHead(classes: classes, seed: seed)
    }

    public var classes: Int { fc.outFeatures }
}
