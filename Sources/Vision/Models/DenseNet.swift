import NN

/// torchvision's DenseNet (121, 161, 169, 201): `features.conv0` (7×7/2), `norm0`, `relu0`, `pool0`,
/// four dense blocks whose layers each read the concatenation of everything before them in the block
/// (`norm1`, `relu1`, `conv1` 1×1, `norm2`, `relu2`, `conv2` 3×3), transitions between them (`norm`,
/// `relu`, `conv` 1×1, 2×2 average pool), `norm5`, a ReLU, global average pool and `classifier` (the
/// head). Files saved before torchvision 0.3 spell `norm1` as `norm.1` (and so on); they load, renamed.
public struct DenseNetConfig: Sendable, Equatable {
    public var growthRate: Int
    public var blocks: [Int]
    public var initialFeatures: Int
    public var bottleneckSize = 4
    public var classes = 1000

    public init(growthRate: Int, blocks: [Int], initialFeatures: Int, bottleneckSize: Int = 4, classes: Int = 1000) {
        self.growthRate = growthRate
        self.blocks = blocks
        self.initialFeatures = initialFeatures
        self.bottleneckSize = bottleneckSize
        self.classes = classes
    }

    /// torchvision's `_load_state_dict` pattern: `…denselayerN.norm.1.weight` → `…denselayerN.norm1.weight`
    /// (norm, relu, conv; 1 or 2; weight, bias, running_mean, running_var).
    public static func currentName(ofLegacy name: String) -> String? {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count >= 4 else { return nil }
        let n = parts.count
        let (layer, kind, index, field) = (parts[n - 4], parts[n - 3], parts[n - 2], parts[n - 1])
        guard layer.hasPrefix("denselayer"), Int(layer.dropFirst("denselayer".count)) != nil,
            ["norm", "relu", "conv"].contains(kind), index == "1" || index == "2",
            ["weight", "bias", "running_mean", "running_var"].contains(field)
        else { return nil }
        return (parts[..<(n - 3)] + ["\(kind)\(index)", field]).joined(separator: ".")
    }

    public func network(name: String) -> Network {
        var b = NetworkBuilder()
        var x = b.conv("features.conv0", b.input, initialFeatures, kernel: 7, stride: 2, padding: 3)
        x = b.relu("features.relu0", b.batchNorm("features.norm0", x))
        x = b.maxPool("features.pool0", x, kernel: 3, stride: 2, padding: 1)
        var features = initialFeatures
        var stages = [Stage("conv0", prefixes: ["features.conv0.", "features.norm0."])]
        for (i, layers) in blocks.enumerated() {
            let block = "features.denseblock\(i + 1)"
            var parts = [x]
            for l in 0..<layers {
                let p = "\(block).denselayer\(l + 1)"
                let input = parts.count == 1 ? parts[0] : b.function(p + ".cat", Concatenation(), parts)
                var y = b.relu(p + ".relu1", b.batchNorm(p + ".norm1", input))
                y = b.conv(p + ".conv1", y, bottleneckSize * growthRate, kernel: 1)
                y = b.relu(p + ".relu2", b.batchNorm(p + ".norm2", y))
                parts.append(b.conv(p + ".conv2", y, growthRate, kernel: 3, padding: 1))
            }
            x = b.function(block + ".cat", Concatenation(), parts)
            features += layers * growthRate
            stages.append(Stage("denseblock\(i + 1)", prefixes: [block + "."]))
            if i != blocks.count - 1 {
                let t = "features.transition\(i + 1)"
                x = b.relu(t + ".relu", b.batchNorm(t + ".norm", x))
                x = b.conv(t + ".conv", x, features / 2, kernel: 1)
                x = b.function(t + ".pool", AveragePool(kernel: 2, stride: 2), [x])
                features /= 2
                stages.append(Stage("transition\(i + 1)", prefixes: [t + "."]))
            }
        }
        x = b.relu("relu", b.batchNorm("features.norm5", x))
        stages.append(Stage("norm5", prefixes: ["features.norm5."]))
        x = b.flatten("flatten", b.adaptiveAvgPool("avgpool", x, 1, 1), spatial: 1)
        _ = b.linear("classifier", x, classes)
        let net = b.build(name: name, stages: stages, head: "classifier")
        net.legacyNames = { Self.currentName(ofLegacy: $0) }
        return net
    }
}

extension Architecture {
    static let denseNets: [Architecture] = [
        ("densenet121", 32, [6, 12, 24, 16], 64), ("densenet161", 48, [6, 12, 36, 24], 96),
        ("densenet169", 32, [6, 12, 32, 32], 64), ("densenet201", 32, [6, 12, 48, 32], 64),
    ].map { name, growth, blocks, initial in
        Architecture(name, family: "DenseNet") {
            DenseNetConfig(growthRate: growth, blocks: blocks, initialFeatures: initial, classes: $0).network(
                name: name)
        }
    }
}
