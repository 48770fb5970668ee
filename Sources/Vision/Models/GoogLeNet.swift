import NN

/// torchvision's GoogLeNet as it is built for its ImageNet weights: `transform_input` on (the
/// normalised input mapped to the range the weights were trained on), no auxiliary classifiers (the
/// published file has `aux1.` and `aux2.`; loading reads and drops them, as torchvision's builder does),
/// every convolution a BasicConv2d (`conv` without a bias, `bn` with eps 1e-3, ReLU), ceil-mode max
/// pools, Inception modules of four branches concatenated (1×1; 1×1 → 3×3; 1×1 → 3×3, torchvision's
/// kernel for the "5×5" branch; 3×3/1 max pool → 1×1), global average pool, Dropout(0.2) and `fc`.
public struct GoogLeNetConfig: Sendable {
    public var stem: (conv1: Int, conv2: Int, conv3: Int)
    /// Inception modules and the pools between them, in order.
    public var body: [Either]
    public var classes = 1000
    public var dropout: Float = 0.2

    public enum Either: Sendable {
        /// An Inception module by name: widths (1×1, 3×3 reduce, 3×3, "5×5" reduce, "5×5", pool projection).
        case inception(String, [Int])
        /// A ceil-mode max pool with stride 2, by name and kernel.
        case pool(String, kernel: Int)
    }

    public init(stem: (Int, Int, Int), body: [Either], classes: Int = 1000, dropout: Float = 0.2) {
        self.stem = stem
        self.body = body
        self.classes = classes
        self.dropout = dropout
    }

    public static func torchvision(classes: Int = 1000) -> GoogLeNetConfig {
        GoogLeNetConfig(
            stem: (64, 64, 192),
            body: [
                .pool("maxpool2", kernel: 3),
                .inception("inception3a", [64, 96, 128, 16, 32, 32]),
                .inception("inception3b", [128, 128, 192, 32, 96, 64]), .pool("maxpool3", kernel: 3),
                .inception("inception4a", [192, 96, 208, 16, 48, 64]),
                .inception("inception4b", [160, 112, 224, 24, 64, 64]),
                .inception("inception4c", [128, 128, 256, 24, 64, 64]),
                .inception("inception4d", [112, 144, 288, 32, 64, 64]),
                .inception("inception4e", [256, 160, 320, 32, 128, 128]), .pool("maxpool4", kernel: 2),
                .inception("inception5a", [256, 160, 320, 32, 128, 128]),
                .inception("inception5b", [384, 192, 384, 48, 128, 128]),
            ], classes: classes)
    }

    public func network(name: String = "googlenet") -> Network {
        var b = NetworkBuilder()
        func basic(_ p: String, _ x: Int, _ out: Int, kernel: Int, stride: Int = 1, padding: Int = 0) -> Int {
            let c = b.conv(p + ".conv", x, out, kernel: kernel, stride: stride, padding: padding)
            return b.relu(p + ".relu", b.batchNorm(p + ".bn", c, eps: 1e-3))
        }
        var x = b.function("transform_input", ChannelAffine.imageNetToHalfRange, [b.input])
        x = basic("conv1", x, stem.conv1, kernel: 7, stride: 2, padding: 3)
        x = b.function("maxpool1", CeilMaxPool(kernel: 3, stride: 2), [x])
        x = basic("conv2", x, stem.conv2, kernel: 1)
        x = basic("conv3", x, stem.conv3, kernel: 3, padding: 1)
        var stages = ["conv1", "conv2", "conv3"].map { Stage($0, prefixes: [$0 + "."]) }
        for part in body {
            switch part {
            case .pool(let name, let k):
                x = b.function(name, CeilMaxPool(kernel: k, stride: 2), [x])
            case .inception(let p, let w):
                let b1 = basic(p + ".branch1", x, w[0], kernel: 1)
                let b2 = basic(
                    p + ".branch2.1", basic(p + ".branch2.0", x, w[1], kernel: 1), w[2], kernel: 3, padding: 1)
                let b3 = basic(
                    p + ".branch3.1", basic(p + ".branch3.0", x, w[3], kernel: 1), w[4], kernel: 3, padding: 1)
                let pooled = b.function(p + ".branch4.0", CeilMaxPool(kernel: 3, stride: 1, padding: 1), [x])
                let b4 = basic(p + ".branch4.1", pooled, w[5], kernel: 1)
                x = b.function(p + ".cat", Concatenation(), [b1, b2, b3, b4])
                stages.append(Stage(p, prefixes: [p + "."]))
            }
        }
        x = b.flatten("flatten", b.adaptiveAvgPool("avgpool", x, 1, 1), spatial: 1)
        _ = b.linear("fc", b.dropout("dropout", x, p: dropout), classes)
        let net = b.build(name: name, stages: stages, head: "fc")
        net.droppedPrefixes = ["aux1.", "aux2."]
        return net
    }
}

extension Architecture {
    static let googLeNet = Architecture("googlenet", family: "GoogLeNet") {
        GoogLeNetConfig.torchvision(classes: $0).network()
    }
}
