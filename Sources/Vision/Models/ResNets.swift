import NN

extension ResNetConfig {
    /// torchvision's ResNet as a `Network`: `conv1 bn1 relu maxpool`, `layer1` … `layer4` of blocks
    /// (BasicBlock or Bottleneck, the stride on conv2 and on `downsample.0`), `avgpool`, `fc`.
    public func network(name: String = "resnet") -> Network {
        var b = NetworkBuilder()
        var x = b.relu("relu", b.convBN("conv1", "bn1", b.input, stem, kernel: 7, stride: 2, padding: 3))
        x = b.maxPool("maxpool", x, kernel: 3, stride: 2, padding: 1)
        for (s, (count, planes)) in zip(layers, widths).enumerated() {
            for i in 0..<count {
                x = block(&b, "layer\(s + 1).\(i).", x, planes: planes, stride: i == 0 && s > 0 ? 2 : 1)
            }
        }
        x = b.flatten("flatten", b.adaptiveAvgPool("avgpool", x, 1, 1), spatial: 1)
        _ = b.linear("fc", x, classes)
        return b.build(
            name: name,
            stages: [Stage("stem", prefixes: ["conv1.", "bn1."])]
                + (1...4).map { Stage("layer\($0)", prefixes: ["layer\($0)."]) },
            head: "fc")
    }

    /// One BasicBlock or Bottleneck reading `x`.
    func block(_ b: inout NetworkBuilder, _ p: String, _ x: Int, planes: Int, stride: Int) -> Int {
        let out = planes * block.expansion
        var y: Int
        switch block {
        case .basic:
            y = b.relu(p + "relu", b.convBN(p + "conv1", p + "bn1", x, planes, kernel: 3, stride: stride, padding: 1))
            y = b.convBN(p + "conv2", p + "bn2", y, planes, kernel: 3, padding: 1)
        case .bottleneck:
            let width = planes * widthPerGroup / 64 * groups
            y = b.relu(p + "relu", b.convBN(p + "conv1", p + "bn1", x, width, kernel: 1))
            y = b.relu(
                p + "relu",
                b.convBN(p + "conv2", p + "bn2", y, width, kernel: 3, stride: stride, padding: 1, groups: groups))
            y = b.convBN(p + "conv3", p + "bn3", y, out, kernel: 1)
        }
        let identity =
            stride != 1 || b.channels[x] != out
            ? b.convBN(p + "downsample.0", p + "downsample.1", x, out, kernel: 1, stride: stride) : x
        return b.relu(p + "relu", b.sum(p + "add", y, identity))
    }
}

extension Architecture {
    /// resnet18 … resnet152, resnext50_32x4d, resnext101_32x8d, resnext101_64x4d, wide_resnet50_2,
    /// wide_resnet101_2: torchvision's `ResNet(block, layers, groups, width_per_group)`.
    static let resnets: [Architecture] = [
        ("resnet18", ResNetConfig.resnet18), ("resnet34", .resnet34), ("resnet50", .resnet50),
        ("resnet101", .resnet101), ("resnet152", .resnet152),
        ("resnext50_32x4d", .resnext50_32x4d), ("resnext101_32x8d", .resnext101_32x8d),
        ("resnext101_64x4d", .resnext101_64x4d),
        ("wide_resnet50_2", .wideResnet50_2), ("wide_resnet101_2", .wideResnet101_2),
    ].map { name, config in
        Architecture(
            name, family: name.hasPrefix("resnext") ? "ResNeXt" : name.hasPrefix("wide") ? "Wide ResNet" : "ResNet"
        ) {
            var c = config
            c.classes = $0
            return c.network(name: name)
        }
    }
}

extension ResNetConfig {
    public static let resnext50_32x4d = ResNetConfig(
        block: .bottleneck, layers: [3, 4, 6, 3], groups: 32, widthPerGroup: 4)
    public static let resnext101_32x8d = ResNetConfig(
        block: .bottleneck, layers: [3, 4, 23, 3], groups: 32, widthPerGroup: 8)
    public static let resnext101_64x4d = ResNetConfig(
        block: .bottleneck, layers: [3, 4, 23, 3], groups: 64, widthPerGroup: 4)
    public static let wideResnet50_2 = ResNetConfig(block: .bottleneck, layers: [3, 4, 6, 3], widthPerGroup: 128)
    public static let wideResnet101_2 = ResNetConfig(block: .bottleneck, layers: [3, 4, 23, 3], widthPerGroup: 128)
}
