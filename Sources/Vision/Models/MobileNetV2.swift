import NN

/// torchvision's MobileNetV2: `features.0` (conv 3×3/2, BN, ReLU6), inverted residual blocks
/// `features.1` … `features.17`, `features.18` (conv 1×1 to the last channel, BN, ReLU6), global average
/// pool, `classifier.0` Dropout, `classifier.1` Linear (the head).
public struct MobileNetV2Config: Sendable, Equatable {
    public var classes = 1000
    public var widthMult: Double = 1.0
    public var dropout: Float = 0.2
    /// (expansion t, channels c, repeats n, first stride s) per group of blocks, torchvision's default.
    public var settings: [[Int]] = [
        [1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2], [6, 96, 3, 1],
        [6, 160, 3, 2], [6, 320, 1, 1],
    ]

    public init(classes: Int = 1000, widthMult: Double = 1.0, dropout: Float = 0.2) {
        self.classes = classes
        self.widthMult = widthMult
        self.dropout = dropout
    }

    /// torchvision's `_make_divisible(v, 8)`: to the nearest multiple of 8, at least 8, never more than
    /// 10% below v.
    static func divisible(_ v: Double, _ divisor: Int = 8) -> Int {
        var n = max(divisor, Int(v + Double(divisor) / 2) / divisor * divisor)
        if Double(n) < 0.9 * v { n += divisor }
        return n
    }

    public func network(name: String = "mobilenet_v2") -> Network {
        var b = NetworkBuilder()
        var input = Self.divisible(32 * widthMult)
        let last = Self.divisible(1280 * max(1.0, widthMult))
        var x = b.relu6(
            "features.0.2", b.convBN("features.0.0", "features.0.1", b.input, input, kernel: 3, stride: 2, padding: 1))
        var i = 1
        for s in settings {
            let (t, c, n, stride) = (s[0], s[1], s[2], s[3])
            let out = Self.divisible(Double(c) * widthMult)
            for j in 0..<n {
                x = invertedResidual(
                    &b, "features.\(i).", x, input: input, output: out, stride: j == 0 ? stride : 1, expand: t)
                input = out
                i += 1
            }
        }
        x = b.relu6("features.\(i).2", b.convBN("features.\(i).0", "features.\(i).1", x, last, kernel: 1))
        x = b.flatten("flatten", b.adaptiveAvgPool("avgpool", x, 1, 1), spatial: 1)
        _ = b.linear("classifier.1", b.dropout("classifier.0", x, p: dropout), classes)
        let stages = (0...i).map { Stage("features.\($0)", prefixes: ["features.\($0)."]) }
        return b.build(name: name, stages: stages, head: "classifier.1")
    }

    /// torchvision's InvertedResidual: `conv.0` (1×1 expand, BN, ReLU6) when t ≠ 1, the depthwise 3×3 (BN,
    /// ReLU6), the 1×1 projection and its BN; the input added when the stride is 1 and the width stays.
    func invertedResidual(
        _ b: inout NetworkBuilder, _ p: String, _ x: Int, input: Int, output: Int, stride: Int,
        expand: Int
    ) -> Int {
        let hidden = Int((Double(input * expand)).rounded())
        var y = x, k = 0
        if expand != 1 {
            y = b.relu6(p + "conv.0.2", b.convBN(p + "conv.0.0", p + "conv.0.1", y, hidden, kernel: 1))
            k = 1
        }
        y = b.relu6(
            p + "conv.\(k).2",
            b.convBN(
                p + "conv.\(k).0", p + "conv.\(k).1", y, hidden, kernel: 3, stride: stride,
                padding: 1, groups: hidden))
        y = b.convBN(p + "conv.\(k + 1)", p + "conv.\(k + 2)", y, output, kernel: 1)
        return stride == 1 && input == output ? b.sum(p + "add", x, y) : y
    }
}

extension Architecture {
    static let mobilenetV2 = Architecture("mobilenet_v2", family: "MobileNetV2") {
        MobileNetV2Config(classes: $0).network()
    }
}
