import Kernels
import NN

/// torchvision's EfficientNet (B0–B7) and EfficientNetV2 (S, M, L): `features.0` (conv 3×3/2, BN, SiLU),
/// one `features.i` per stage of MBConv blocks (1×1 expand, depthwise, squeeze-excitation with SiLU and
/// sigmoid, 1×1 project) or, in V2's first stages, FusedMBConv blocks (a full k×k expand, 1×1 project),
/// each block with stochastic depth before its residual add; then the last 1×1 convolution (BN, SiLU),
/// global average pool, `classifier.0` Dropout and `classifier.1` Linear (the head).
public struct EfficientNetConfig: Sendable, Equatable {
    /// One stage: torchvision's `MBConvConfig` / `FusedMBConvConfig` before the multipliers.
    public struct Stage: Sendable, Equatable {
        public var fused: Bool
        public var expandRatio: Double
        public var kernel: Int, stride: Int, input: Int, output: Int, layers: Int

        public init(fused: Bool, expandRatio: Double, kernel: Int, stride: Int, input: Int, output: Int, layers: Int) {
            self.fused = fused
            self.expandRatio = expandRatio
            self.kernel = kernel
            self.stride = stride
            self.input = input
            self.output = output
            self.layers = layers
        }
    }

    public var name: String
    public var stages: [Stage]
    public var widthMult: Double, depthMult: Double
    public var dropout: Float
    /// The last convolution's width (V2: 1280); nil: four times the last stage's.
    public var lastChannel: Int?
    public var batchNormEps: Float, batchNormMomentum: Float
    public var stochasticDepthProb: Double = 0.2
    public var classes = 1000

    /// Any stages and multipliers (torchvision's `EfficientNet(inverted_residual_setting, …)`).
    public init(
        name: String, stages: [Stage], widthMult: Double = 1, depthMult: Double = 1, dropout: Float = 0.2,
        lastChannel: Int? = nil, batchNormEps: Float = 1e-5, batchNormMomentum: Float = 0.1, classes: Int = 1000
    ) {
        self.name = name
        self.stages = stages
        self.widthMult = widthMult
        self.depthMult = depthMult
        self.dropout = dropout
        self.lastChannel = lastChannel
        self.batchNormEps = batchNormEps
        self.batchNormMomentum = batchNormMomentum
        self.classes = classes
    }

    /// torchvision 0.14's builder `name` (efficientnet_b0 … b7, efficientnet_v2_s/m/l), or nil.
    public init?(_ name: String, classes: Int = 1000) {
        func mb(_ e: Double, _ k: Int, _ s: Int, _ i: Int, _ o: Int, _ n: Int) -> Stage {
            Stage(fused: false, expandRatio: e, kernel: k, stride: s, input: i, output: o, layers: n)
        }
        func fused(_ e: Double, _ k: Int, _ s: Int, _ i: Int, _ o: Int, _ n: Int) -> Stage {
            Stage(fused: true, expandRatio: e, kernel: k, stride: s, input: i, output: o, layers: n)
        }
        self.name = name
        self.classes = classes
        let b: [String: (Double, Double, Float)] = [
            "efficientnet_b0": (1.0, 1.0, 0.2), "efficientnet_b1": (1.0, 1.1, 0.2), "efficientnet_b2": (1.1, 1.2, 0.3),
            "efficientnet_b3": (1.2, 1.4, 0.3), "efficientnet_b4": (1.4, 1.8, 0.4), "efficientnet_b5": (1.6, 2.2, 0.4),
            "efficientnet_b6": (1.8, 2.6, 0.5), "efficientnet_b7": (2.0, 3.1, 0.5),
        ]
        if let (w, d, p) = b[name] {
            stages = [
                mb(1, 3, 1, 32, 16, 1), mb(6, 3, 2, 16, 24, 2), mb(6, 5, 2, 24, 40, 2), mb(6, 3, 2, 40, 80, 3),
                mb(6, 5, 1, 80, 112, 3), mb(6, 5, 2, 112, 192, 4), mb(6, 3, 1, 192, 320, 1),
            ]
            (widthMult, depthMult, dropout, lastChannel) = (w, d, p, nil)
            // B5–B7 were trained with TensorFlow's BatchNorm settings.
            let tf = ["efficientnet_b5", "efficientnet_b6", "efficientnet_b7"].contains(name)
            (batchNormEps, batchNormMomentum) = tf ? (1e-3, 0.01) : (1e-5, 0.1)
            return
        }
        (widthMult, depthMult, lastChannel, batchNormEps, batchNormMomentum) = (1, 1, 1280, 1e-3, 0.1)
        switch name {
        case "efficientnet_v2_s":
            stages = [
                fused(1, 3, 1, 24, 24, 2), fused(4, 3, 2, 24, 48, 4), fused(4, 3, 2, 48, 64, 4),
                mb(4, 3, 2, 64, 128, 6), mb(6, 3, 1, 128, 160, 9), mb(6, 3, 2, 160, 256, 15),
            ]
            dropout = 0.2
        case "efficientnet_v2_m":
            stages = [
                fused(1, 3, 1, 24, 24, 3), fused(4, 3, 2, 24, 48, 5), fused(4, 3, 2, 48, 80, 5),
                mb(4, 3, 2, 80, 160, 7), mb(6, 3, 1, 160, 176, 14), mb(6, 3, 2, 176, 304, 18),
                mb(6, 3, 1, 304, 512, 5),
            ]
            dropout = 0.3
        case "efficientnet_v2_l":
            stages = [
                fused(1, 3, 1, 32, 32, 4), fused(4, 3, 2, 32, 64, 7), fused(4, 3, 2, 64, 96, 7),
                mb(4, 3, 2, 96, 192, 10), mb(6, 3, 1, 192, 224, 19), mb(6, 3, 2, 224, 384, 25),
                mb(6, 3, 1, 384, 640, 7),
            ]
            dropout = 0.4
        default: return nil
        }
    }

    public func network() -> Network {
        var b = NetworkBuilder()
        func adjust(_ c: Double) -> Int { MobileNetV2Config.divisible(c) }
        /// Conv2dNormActivation with this network's BatchNorm, then SiLU when `silu`.
        func convBN(_ p: String, _ x: Int, _ out: Int, kernel: Int, stride: Int = 1, groups: Int = 1, silu: Bool)
            -> Int
        {
            b.convNormActivation(
                p, x, out, kernel: kernel, stride: stride, groups: groups, eps: batchNormEps,
                momentum: batchNormMomentum, activation: silu ? .silu : .none)
        }
        // MBConvConfig scales channels and depth; FusedMBConvConfig (V2 only, multipliers 1) does not.
        let scaled = stages.map { s -> Stage in
            var s = s
            if !s.fused {
                s.input = adjust(Double(s.input) * widthMult)
                s.output = adjust(Double(s.output) * widthMult)
                s.layers = Int((Double(s.layers) * depthMult).rounded(.up))
            }
            return s
        }
        let total = scaled.reduce(0) { $0 + $1.layers }
        var x = convBN("features.0", b.input, scaled[0].input, kernel: 3, stride: 2, silu: true)
        var id = 0
        for (si, stage) in scaled.enumerated() {
            for j in 0..<stage.layers {
                let p = "features.\(si + 1).\(j)"
                let input = j == 0 ? stage.input : stage.output, stride = j == 0 ? stage.stride : 1
                let expanded = adjust(Double(input) * stage.expandRatio)
                var y = x, k = 0
                if stage.fused {
                    if expanded != input {
                        y = convBN(p + ".block.0", y, expanded, kernel: stage.kernel, stride: stride, silu: true)
                        y = convBN(p + ".block.1", y, stage.output, kernel: 1, silu: false)
                    } else {
                        y = convBN(p + ".block.0", y, stage.output, kernel: stage.kernel, stride: stride, silu: true)
                    }
                } else {
                    if expanded != input {
                        y = convBN(p + ".block.0", y, expanded, kernel: 1, silu: true)
                        k = 1
                    }
                    y = convBN(
                        p + ".block.\(k)", y, expanded, kernel: stage.kernel, stride: stride, groups: expanded,
                        silu: true)
                    // SqueezeExcitation(expanded, max(1, input / 4), activation=SiLU), sigmoid scale.
                    y = b.squeezeExcitation(
                        p + ".block.\(k + 1)", y, squeeze: max(1, input / 4), activation: .silu, scale: .sigmoid)
                    y = convBN(p + ".block.\(k + 2)", y, stage.output, kernel: 1, silu: false)
                }
                if stride == 1 && input == stage.output {
                    let sd = stochasticDepthProb * Double(id) / Double(total)
                    x = b.sum(p + ".add", b.stochasticDepth(p + ".stochastic_depth", y, p: sd), x)
                } else {
                    x = y
                }
                id += 1
            }
        }
        let last = scaled.count + 1
        let lastWidth = lastChannel ?? 4 * scaled[scaled.count - 1].output
        x = convBN("features.\(last)", x, lastWidth, kernel: 1, silu: true)
        x = b.flatten("flatten", b.adaptiveAvgPool("avgpool", x, 1, 1), spatial: 1)
        _ = b.linear("classifier.1", b.dropout("classifier.0", x, p: dropout), classes)
        let stages = (0...last).map { NN.Stage("features.\($0)", prefixes: ["features.\($0)."]) }
        return b.build(name: name, stages: stages, head: "classifier.1")
    }
}

extension Architecture {
    /// torchvision's weights' eval transforms (the V1 files): (crop, resize, interpolation).
    static let efficientNets: [Architecture] = [
        ("efficientnet_b0", 224, 256, Resample.Interpolation.bicubic), ("efficientnet_b1", 240, 256, .bicubic),
        ("efficientnet_b2", 288, 288, .bicubic), ("efficientnet_b3", 300, 320, .bicubic),
        ("efficientnet_b4", 380, 384, .bicubic), ("efficientnet_b5", 456, 456, .bicubic),
        ("efficientnet_b6", 528, 528, .bicubic), ("efficientnet_b7", 600, 600, .bicubic),
        ("efficientnet_v2_s", 384, 384, .bilinear), ("efficientnet_v2_m", 480, 480, .bilinear),
        ("efficientnet_v2_l", 480, 480, .bicubic),
    ].map { name, crop, resize, filter in
        Architecture(
            name, family: name.hasPrefix("efficientnet_v2") ? "EfficientNetV2" : "EfficientNet",
            preprocessing: ImageNetEval(resizeSize: resize, cropSize: crop, interpolation: filter)
        ) { EfficientNetConfig(name, classes: $0)!.network() }
    }
}
