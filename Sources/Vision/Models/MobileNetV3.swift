import Kernels
import NN

/// torchvision's MobileNetV3, large and small: `features.0` (conv 3×3/2, BN, Hardswish), inverted residual
/// blocks (`features.i.block.k`, some with squeeze-and-excitation), the last 1×1 convolution (BN,
/// Hardswish), global average pool, then `classifier.0` Linear, Hardswish, `classifier.2` Dropout and
/// `classifier.3` Linear (the head). Every BatchNorm has eps 1e-3 and momentum 0.01.
public struct MobileNetV3Config: Sendable, Equatable {
    /// One inverted residual: torchvision's `InvertedResidualConfig` before the width multiplier.
    public struct Block: Sendable, Equatable {
        public var input: Int, kernel: Int, expanded: Int, output: Int
        public var squeezeExcitation: Bool
        /// Hardswish (else ReLU) after the expand and depthwise convolutions.
        public var hardswish: Bool
        public var stride: Int
    }

    public enum Size: String, Sendable { case large, small }

    public var size: Size
    public var classes = 1000
    public var widthMult: Double = 1.0
    public var dropout: Float = 0.2

    public init(_ size: Size, classes: Int = 1000, widthMult: Double = 1.0, dropout: Float = 0.2) {
        self.size = size
        self.classes = classes
        self.widthMult = widthMult
        self.dropout = dropout
    }

    /// torchvision 0.14's `_mobilenet_v3_conf` (no reduced tail, no dilation): the blocks and the width
    /// of the classifier's hidden layer, before the multiplier.
    var settings: (blocks: [Block], lastChannel: Int) {
        func b(_ i: Int, _ k: Int, _ e: Int, _ o: Int, _ se: Bool, _ hs: Bool, _ s: Int) -> Block {
            Block(input: i, kernel: k, expanded: e, output: o, squeezeExcitation: se, hardswish: hs, stride: s)
        }
        switch size {
        case .large:
            return (
                [
                    b(16, 3, 16, 16, false, false, 1), b(16, 3, 64, 24, false, false, 2),
                    b(24, 3, 72, 24, false, false, 1), b(24, 5, 72, 40, true, false, 2),
                    b(40, 5, 120, 40, true, false, 1), b(40, 5, 120, 40, true, false, 1),
                    b(40, 3, 240, 80, false, true, 2), b(80, 3, 200, 80, false, true, 1),
                    b(80, 3, 184, 80, false, true, 1), b(80, 3, 184, 80, false, true, 1),
                    b(80, 3, 480, 112, true, true, 1), b(112, 3, 672, 112, true, true, 1),
                    b(112, 5, 672, 160, true, true, 2), b(160, 5, 960, 160, true, true, 1),
                    b(160, 5, 960, 160, true, true, 1),
                ], 1280
            )
        case .small:
            return (
                [
                    b(16, 3, 16, 16, true, false, 2), b(16, 3, 72, 24, false, false, 2),
                    b(24, 3, 88, 24, false, false, 1), b(24, 5, 96, 40, true, true, 2),
                    b(40, 5, 240, 40, true, true, 1), b(40, 5, 240, 40, true, true, 1),
                    b(40, 5, 120, 48, true, true, 1), b(48, 5, 144, 48, true, true, 1),
                    b(48, 5, 288, 96, true, true, 2), b(96, 5, 576, 96, true, true, 1),
                    b(96, 5, 576, 96, true, true, 1),
                ], 1024
            )
        }
    }

    public func network(name: String? = nil) -> Network {
        var b = NetworkBuilder()
        func adjust(_ c: Int) -> Int { MobileNetV2Config.divisible(Double(c) * widthMult) }
        /// Conv2dNormActivation with MobileNetV3's BatchNorm (eps 1e-3, momentum 0.01).
        func convBNAct(
            _ p: String, _ x: Int, _ out: Int, kernel: Int, stride: Int = 1, groups: Int = 1, activation: Activation
        ) -> Int {
            b.convNormActivation(
                p, x, out, kernel: kernel, stride: stride, groups: groups, eps: 1e-3, momentum: 0.01,
                activation: activation)
        }
        let (blocks, lastChannel) = settings
        var x = convBNAct("features.0", b.input, adjust(blocks[0].input), kernel: 3, stride: 2, activation: .hardswish)
        for (n, block) in blocks.enumerated() {
            let p = "features.\(n + 1)"
            let input = adjust(block.input), expanded = adjust(block.expanded), output = adjust(block.output)
            var y = x, k = 0
            if expanded != input {
                y = convBNAct(p + ".block.0", y, expanded, kernel: 1, activation: block.hardswish ? .hardswish : .relu)
                k = 1
            }
            y = convBNAct(
                p + ".block.\(k)", y, expanded, kernel: block.kernel, stride: block.stride, groups: expanded,
                activation: block.hardswish ? .hardswish : .relu)
            k += 1
            if block.squeezeExcitation {
                // ReLU inside, Hardsigmoid as the scale.
                y = b.squeezeExcitation(
                    p + ".block.\(k)", y, squeeze: MobileNetV2Config.divisible(Double(expanded / 4)),
                    activation: .relu, scale: .hardsigmoid)
                k += 1
            }
            y = convBNAct(p + ".block.\(k)", y, output, kernel: 1, activation: .none)
            x = block.stride == 1 && input == output ? b.sum(p + ".add", x, y) : y
        }
        let last = blocks.count + 1, lastConv = 6 * adjust(blocks[blocks.count - 1].output)
        x = convBNAct("features.\(last)", x, lastConv, kernel: 1, activation: .hardswish)
        x = b.flatten("flatten", b.adaptiveAvgPool("avgpool", x, 1, 1), spatial: 1)
        x = b.activation("classifier.1", .hardswish, b.linear("classifier.0", x, adjust(lastChannel)))
        _ = b.linear("classifier.3", b.dropout("classifier.2", x, p: dropout), classes)
        let stages =
            (0...last).map { Stage("features.\($0)", prefixes: ["features.\($0)."]) }
            + [Stage("classifier.0", prefixes: ["classifier.0."])]
        return b.build(name: name ?? "mobilenet_v3_\(size.rawValue)", stages: stages, head: "classifier.3")
    }
}

extension Architecture {
    static let mobilenetV3 = [
        Architecture("mobilenet_v3_large", family: "MobileNetV3") { MobileNetV3Config(.large, classes: $0).network() },
        Architecture("mobilenet_v3_small", family: "MobileNetV3") { MobileNetV3Config(.small, classes: $0).network() },
    ]
}
