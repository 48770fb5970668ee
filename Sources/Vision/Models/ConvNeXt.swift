import NN

/// torchvision's ConvNeXt (tiny, small, base, large):
/// - `features.0`: a 4×4/4 convolution with a bias (`.0`) and a LayerNorm over channels (`.1`, eps 1e-6);
/// - four stages of CNBlocks (`features.1`, `.3`, `.5`, `.7`), each block a 7×7 depthwise convolution
///   with a bias (`block.0`), a LayerNorm (`block.2`), Linear(C, 4C) (`block.3`), exact GELU, Linear(4C,
///   C) (`block.5`), the per-channel `layer_scale`, stochastic depth (row mode) and the residual add;
/// - between stages a LayerNorm and a 2×2/2 convolution (`features.2`, `.4`, `.6`);
/// - global average pool, a LayerNorm (`classifier.0`), flatten and `classifier.2` (the head).
///
/// The blocks' Linear layers act at every position, which channels-last values make a 1×1 convolution
/// (`Conv2d.isPositionwiseLinear`); torchvision's permutes are then the identity. Block k of the n in
/// the network drops its branch with probability p·k / (n − 1) in training (p: 0.1 tiny, 0.4 small,
/// 0.5 base and large).
public struct ConvNeXtConfig: Sendable, Equatable {
    /// (input channels, output channels of the downsampling after it or nil, blocks) per stage.
    public var stages: [(input: Int, output: Int?, blocks: Int)]
    public var stochasticDepth: Double
    public var layerScale: Float = 1e-6
    public var classes = 1000

    public init(
        stages: [(input: Int, output: Int?, blocks: Int)], stochasticDepth: Double, layerScale: Float = 1e-6,
        classes: Int = 1000
    ) {
        self.stages = stages
        self.stochasticDepth = stochasticDepth
        self.layerScale = layerScale
        self.classes = classes
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.stages.elementsEqual(b.stages) { $0 == $1 } && a.stochasticDepth == b.stochasticDepth
            && a.layerScale == b.layerScale && a.classes == b.classes
    }

    /// torchvision's four sizes.
    public static func named(_ size: String, classes: Int = 1000) -> ConvNeXtConfig? {
        let (widths, deep, p): ([Int], Int, Double)
        switch size {
        case "tiny": (widths, deep, p) = ([96, 192, 384, 768], 9, 0.1)
        case "small": (widths, deep, p) = ([96, 192, 384, 768], 27, 0.4)
        case "base": (widths, deep, p) = ([128, 256, 512, 1024], 27, 0.5)
        case "large": (widths, deep, p) = ([192, 384, 768, 1536], 27, 0.5)
        default: return nil
        }
        let blocks = [3, 3, deep, 3]
        return ConvNeXtConfig(
            stages: (0..<4).map { (widths[$0], $0 < 3 ? widths[$0 + 1] : nil, blocks[$0]) }, stochasticDepth: p,
            classes: classes)
    }

    public func network(name: String) -> Network {
        var b = NetworkBuilder()
        var x = b.conv("features.0.0", b.input, stages[0].input, kernel: 4, stride: 4, bias: true)
        x = b.function("features.0.1", LayerNorm(stages[0].input, eps: 1e-6), [x])
        var stageList = [Stage("features.0", prefixes: ["features.0."])]
        let total = stages.reduce(0) { $0 + $1.blocks }
        var blockID = 0
        var index = 1
        for stage in stages {
            let dim = stage.input
            for j in 0..<stage.blocks {
                let p = "features.\(index).\(j)"
                var y = b.conv(p + ".block.0", x, dim, kernel: 7, padding: 3, groups: dim, bias: true)
                y = b.function(p + ".block.2", LayerNorm(dim, eps: 1e-6), [y])
                y = b.activation(p + ".block.4", .gelu, b.positionwiseLinear(p + ".block.3", y, 4 * dim))
                y = b.positionwiseLinear(p + ".block.5", y, dim)
                y = b.function(p, LayerScale(dim, initial: layerScale), [y])
                // torchvision computes the probability in Python floats.
                let sd = stochasticDepth * Double(blockID) / (Double(total) - 1.0)
                y = b.stochasticDepth(p + ".stochastic_depth", y, p: sd)
                x = b.sum(p + ".add", y, x)
                blockID += 1
            }
            stageList.append(Stage("features.\(index)", prefixes: ["features.\(index)."]))
            index += 1
            if let out = stage.output {
                let p = "features.\(index)"
                x = b.function(p + ".0", LayerNorm(dim, eps: 1e-6), [x])
                x = b.conv(p + ".1", x, out, kernel: 2, stride: 2, bias: true)
                stageList.append(Stage(p, prefixes: [p + "."]))
                index += 1
            }
        }
        let last = stages[stages.count - 1].output ?? stages[stages.count - 1].input
        x = b.function("classifier.0", LayerNorm(last, eps: 1e-6), [b.adaptiveAvgPool("avgpool", x, 1, 1)])
        _ = b.linear("classifier.2", b.flatten("classifier.1", x, spatial: 1), classes)
        stageList.append(Stage("classifier.0", prefixes: ["classifier.0."]))
        return b.build(name: name, stages: stageList, head: "classifier.2")
    }
}

extension Architecture {
    /// Eval transforms of torchvision's V1 weights: 224 crops of 236 (tiny), 230 (small), 232 (base, large).
    static let convNeXts: [Architecture] = [("tiny", 236), ("small", 230), ("base", 232), ("large", 232)].map {
        size, resize in
        Architecture(
            "convnext_\(size)", family: "ConvNeXt", preprocessing: ImageNetEval(resizeSize: resize, cropSize: 224)
        ) { ConvNeXtConfig.named(size, classes: $0)!.network(name: "convnext_\(size)") }
    }
}
