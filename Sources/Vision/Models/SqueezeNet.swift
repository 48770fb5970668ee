import NN

/// torchvision's SqueezeNet 1.0 and 1.1: a stem convolution with a bias and a ReLU, Fire modules (a 1×1
/// `squeeze`, then `expand1x1` and 3×3 `expand3x3` side by side, each with a bias and a ReLU,
/// concatenated) between ceil-mode 3×3/2 max pools, then the classifier: Dropout(0.5) (`classifier.0`),
/// a 1×1 convolution to the classes (`classifier.1`, the head), a ReLU and a global average pool. The
/// head is a convolution: replacing it gives a convolution, and it runs at every position before the
/// pool.
public struct SqueezeNetConfig: Sendable {
    public enum Version: String, Sendable {
        case v1_0 = "1_0"
        case v1_1 = "1_1"
    }
    /// The stem convolution's channels and kernel (stride 2, no padding).
    public var stem: (channels: Int, kernel: Int)
    /// `features.2` on: a Fire module's (squeeze, expand1x1, expand3x3) widths, or nil for a pool.
    public var body: [(Int, Int, Int)?]
    public var classes = 1000
    public var dropout: Float = 0.5
    public var name: String

    public init(
        stem: (channels: Int, kernel: Int), body: [(Int, Int, Int)?], classes: Int = 1000, dropout: Float = 0.5,
        name: String
    ) {
        self.stem = stem
        self.body = body
        self.classes = classes
        self.dropout = dropout
        self.name = name
    }

    /// torchvision's two versions.
    public init(_ version: Version, classes: Int = 1000) {
        switch version {
        case .v1_0:
            self.init(
                stem: (96, 7),
                body: [
                    nil, (16, 64, 64), (16, 64, 64), (32, 128, 128), nil, (32, 128, 128), (48, 192, 192),
                    (48, 192, 192), (64, 256, 256), nil, (64, 256, 256),
                ], classes: classes, name: "squeezenet1_0")
        case .v1_1:
            self.init(
                stem: (64, 3),
                body: [
                    nil, (16, 64, 64), (16, 64, 64), nil, (32, 128, 128), (32, 128, 128), nil, (48, 192, 192),
                    (48, 192, 192), (64, 256, 256), (64, 256, 256),
                ], classes: classes, name: "squeezenet1_1")
        }
    }

    public func network() -> Network {
        var b = NetworkBuilder()
        var x = b.relu(
            "features.1", b.conv("features.0", b.input, stem.channels, kernel: stem.kernel, stride: 2, bias: true))
        var stages = [Stage("features.0", prefixes: ["features.0."])]
        for (i, fire) in body.enumerated() {
            let p = "features.\(i + 2)"
            guard let (squeeze, e1, e3) = fire else {
                x = b.function(p, CeilMaxPool(kernel: 3, stride: 2), [x])
                continue
            }
            let s = b.relu(p + ".squeeze_activation", b.conv(p + ".squeeze", x, squeeze, kernel: 1, bias: true))
            let a = b.relu(p + ".expand1x1_activation", b.conv(p + ".expand1x1", s, e1, kernel: 1, bias: true))
            let c = b.relu(
                p + ".expand3x3_activation", b.conv(p + ".expand3x3", s, e3, kernel: 3, padding: 1, bias: true))
            x = b.function(p + ".cat", Concatenation(), [a, c])
            stages.append(Stage(p, prefixes: [p + "."]))
        }
        x = b.dropout("classifier.0", x, p: dropout)
        x = b.relu("classifier.2", b.conv("classifier.1", x, classes, kernel: 1, bias: true))
        _ = b.flatten("flatten", b.adaptiveAvgPool("classifier.3", x, 1, 1), spatial: 1)
        return b.build(name: name, stages: stages, head: "classifier.1")
    }
}

extension Architecture {
    static let squeezeNets = [SqueezeNetConfig.Version.v1_0, .v1_1].map { v in
        Architecture("squeezenet\(v.rawValue)", family: "SqueezeNet") { SqueezeNetConfig(v, classes: $0).network() }
    }
}
