import NN

/// torchvision's VGG and AlexNet shapes: `features` (convolutions with biases, optional BatchNorm, ReLU,
/// max pools), `avgpool` (adaptive, to a fixed size), `classifier` (Linear, ReLU, Dropout …).
public struct VGGConfig: Sendable, Equatable {
    /// Output channels per convolution; 0 is a 2×2 max pool ("M" in torchvision's cfgs).
    public var layers: [Int]
    public var batchNorm: Bool
    public var classes: Int = 1000
    /// Width of the two hidden classifier layers (torchvision: 4096).
    public var hidden: Int = 4096
    public var dropout: Float = 0.5

    public init(layers: [Int], batchNorm: Bool, classes: Int = 1000, hidden: Int = 4096, dropout: Float = 0.5) {
        self.layers = layers
        self.batchNorm = batchNorm
        self.classes = classes
        self.hidden = hidden
        self.dropout = dropout
    }

    /// torchvision's cfgs "A", "B", "D", "E" (VGG 11, 13, 16, 19).
    public static let cfgs: [Int: [Int]] = [
        11: [64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
        13: [64, 64, 0, 128, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0],
        16: [64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0],
        19: [64, 64, 0, 128, 128, 0, 256, 256, 256, 256, 0, 512, 512, 512, 512, 0, 512, 512, 512, 512, 0],
    ]

    /// `features.i` as torchvision's `make_layers` numbers them; classifier 0 Linear, 1 ReLU, 2 Dropout,
    /// 3 Linear, 4 ReLU, 5 Dropout, 6 Linear (the head).
    public func network(name: String = "vgg") -> Network {
        var b = NetworkBuilder()
        var x = b.input, i = 0
        var stages: [Stage] = []
        for v in layers {
            if v == 0 {
                x = b.maxPool("features.\(i)", x, kernel: 2, stride: 2)
                i += 1
                continue
            }
            let conv = i
            x = b.conv("features.\(i)", x, v, kernel: 3, padding: 1, bias: true)
            i += 1
            var prefixes = ["features.\(conv)."]
            if batchNorm {
                x = b.batchNorm("features.\(i)", x)
                prefixes.append("features.\(i).")
                i += 1
            }
            x = b.relu("features.\(i)", x)
            i += 1
            stages.append(Stage("features.\(conv)", prefixes: prefixes))
        }
        x = b.flatten("flatten", b.adaptiveAvgPool("avgpool", x, 7, 7), spatial: 49)
        x = b.dropout("classifier.2", b.relu("classifier.1", b.linear("classifier.0", x, hidden)), p: dropout)
        x = b.dropout("classifier.5", b.relu("classifier.4", b.linear("classifier.3", x, hidden)), p: dropout)
        _ = b.linear("classifier.6", x, classes)
        stages += [
            Stage("classifier.0", prefixes: ["classifier.0."]), Stage("classifier.3", prefixes: ["classifier.3."]),
        ]
        return b.build(name: name, stages: stages, head: "classifier.6")
    }
}

/// torchvision's AlexNet (the "one weird trick" variant torchvision ships): five convolutions with biases,
/// adaptive average pool to 6×6, classifier 0 Dropout, 1 Linear, 2 ReLU, 3 Dropout, 4 Linear, 5 ReLU,
/// 6 Linear (the head). `widths` and `hidden` shrink it for tests (torchvision: 64, 192, 384, 256, 256; 4096).
public struct AlexNetConfig: Sendable, Equatable {
    public var widths = [64, 192, 384, 256, 256]
    public var hidden = 4096
    public var classes = 1000
    public var dropout: Float = 0.5

    public init(
        widths: [Int] = [64, 192, 384, 256, 256], hidden: Int = 4096, classes: Int = 1000, dropout: Float = 0.5
    ) {
        precondition(widths.count == 5, "AlexNet has five convolutions")
        self.widths = widths
        self.hidden = hidden
        self.classes = classes
        self.dropout = dropout
    }

    public func network(name: String = "alexnet") -> Network {
        var b = NetworkBuilder()
        let w = widths
        var x = b.relu("features.1", b.conv("features.0", b.input, w[0], kernel: 11, stride: 4, padding: 2, bias: true))
        x = b.maxPool("features.2", x, kernel: 3, stride: 2)
        x = b.relu("features.4", b.conv("features.3", x, w[1], kernel: 5, padding: 2, bias: true))
        x = b.maxPool("features.5", x, kernel: 3, stride: 2)
        x = b.relu("features.7", b.conv("features.6", x, w[2], kernel: 3, padding: 1, bias: true))
        x = b.relu("features.9", b.conv("features.8", x, w[3], kernel: 3, padding: 1, bias: true))
        x = b.relu("features.11", b.conv("features.10", x, w[4], kernel: 3, padding: 1, bias: true))
        x = b.maxPool("features.12", x, kernel: 3, stride: 2)
        x = b.flatten("flatten", b.adaptiveAvgPool("avgpool", x, 6, 6), spatial: 36)
        x = b.relu("classifier.2", b.linear("classifier.1", b.dropout("classifier.0", x, p: dropout), hidden))
        x = b.relu("classifier.5", b.linear("classifier.4", b.dropout("classifier.3", x, p: dropout), hidden))
        _ = b.linear("classifier.6", x, classes)
        let stages =
            [0, 3, 6, 8, 10].map { Stage("features.\($0)", prefixes: ["features.\($0)."]) }
            + [Stage("classifier.1", prefixes: ["classifier.1."]), Stage("classifier.4", prefixes: ["classifier.4."])]
        return b.build(name: name, stages: stages, head: "classifier.6")
    }
}

extension Architecture {
    static let alexnet = Architecture("alexnet", family: "AlexNet") { AlexNetConfig(classes: $0).network() }

    /// vgg11 … vgg19 and their `_bn` variants.
    static let vggs: [Architecture] = [11, 13, 16, 19].flatMap { depth in
        [false, true].map { bn in
            let name = "vgg\(depth)" + (bn ? "_bn" : "")
            return Architecture(name, family: "VGG") {
                VGGConfig(layers: VGGConfig.cfgs[depth]!, batchNorm: bn, classes: $0).network(name: name)
            }
        }
    }
}
