import Foundation
import Kernels
import NN

/// torchvision's RegNet X and Y: `stem` (conv 3×3/2, BN, ReLU), four stages `trunk_output.blockN` of
/// residual bottlenecks (`f.a` 1×1, `f.b` 3×3 grouped by the group width, in Y a squeeze-excitation
/// `f.se` with ReLU and sigmoid, `f.c` 1×1; a 1×1 `proj` where the width or stride changes; ReLU after
/// the add), global average pool, and `fc` (the head).
public struct RegNetConfig: Sendable, Equatable {
    /// torchvision's `BlockParams.from_init_params` arguments.
    public var depth: Int, w0: Int, wa: Double, wm: Double, groupWidth: Int
    public var seRatio: Double?
    public var bottleneckMultiplier: Double = 1
    public var stemWidth = 32
    public var classes = 1000

    public init(
        depth: Int, w0: Int, wa: Double, wm: Double, groupWidth: Int, seRatio: Double? = nil, stemWidth: Int = 32,
        classes: Int = 1000
    ) {
        (self.depth, self.w0, self.wa, self.wm, self.groupWidth, self.seRatio) = (
            depth, w0, wa, wm, groupWidth, seRatio
        )
        self.stemWidth = stemWidth
        self.classes = classes
    }

    /// Per stage: (width, depth, group width), as `BlockParams.from_init_params` computes them, in
    /// float32 where torch computes in float32 (the widths are quantised to multiples of 8 from logs
    /// and powers, so the precision decides them).
    public var stages: [(width: Int, depth: Int, groupWidth: Int)] {
        let w0f = Float(w0), waf = Float(wa), wmf = Float(wm), logWm = Float(Foundation.log(wm))
        let widths = (0..<depth).map { i -> Int in
            let cont = Float(i) * waf + w0f
            let capacity = (Foundation.log(cont / w0f) / logWm).rounded(.toNearestOrEven)
            return Int(((w0f * Foundation.pow(wmf, capacity)) / 8).rounded(.toNearestOrEven) * 8)
        }
        var stages: [(width: Int, depth: Int, groupWidth: Int)] = []
        for w in widths {
            if let last = stages.last, last.width == w {
                stages[stages.count - 1].depth += 1
            } else {
                stages.append((w, 1, groupWidth))
            }
        }
        // `_adjust_widths_groups_compatibilty`: the bottleneck width a multiple of the (clamped) group width.
        return stages.map { s in
            let bottleneck = Int(Double(s.width) * bottleneckMultiplier)
            let g = min(s.groupWidth, bottleneck)
            let adjusted = MobileNetV2Config.divisible(Double(bottleneck), g)
            return (Int(Double(adjusted) / bottleneckMultiplier), s.depth, g)
        }
    }

    public func network(name: String) -> Network {
        var b = NetworkBuilder()
        var x = b.convNormActivation("stem", b.input, stemWidth, kernel: 3, stride: 2, activation: .relu)
        var width = stemWidth
        for (si, stage) in stages.enumerated() {
            for j in 0..<stage.depth {
                let p = "trunk_output.block\(si + 1).block\(si + 1)-\(j)"
                let stride = j == 0 ? 2 : 1
                let wb = Int((Double(stage.width) * bottleneckMultiplier).rounded(.toNearestOrEven))
                // torchvision builds `proj` before `f`: the state dict lists it first.
                let shortcut =
                    width != stage.width || stride != 1
                    ? b.convNormActivation(p + ".proj", x, stage.width, kernel: 1, stride: stride, activation: .none)
                    : x
                var y = b.convNormActivation(p + ".f.a", x, wb, kernel: 1, activation: .relu)
                y = b.convNormActivation(
                    p + ".f.b", y, wb, kernel: 3, stride: stride, groups: wb / stage.groupWidth, activation: .relu)
                if let seRatio {
                    let squeeze = Int((seRatio * Double(width)).rounded(.toNearestOrEven))
                    y = b.squeezeExcitation(p + ".f.se", y, squeeze: squeeze, activation: .relu, scale: .sigmoid)
                }
                y = b.convNormActivation(p + ".f.c", y, stage.width, kernel: 1, activation: .none)
                x = b.relu(p + ".activation", b.sum(p + ".add", shortcut, y))
                width = stage.width
            }
        }
        x = b.flatten("flatten", b.adaptiveAvgPool("avgpool", x, 1, 1), spatial: 1)
        _ = b.linear("fc", x, classes)
        let stages =
            [Stage("stem", prefixes: ["stem."])]
            + (1...stages.count).map { Stage("block\($0)", prefixes: ["trunk_output.block\($0)."]) }
        return b.build(name: name, stages: stages, head: "fc")
    }
}

extension Architecture {
    /// torchvision 0.14's builders and their `from_init_params` arguments.
    static let regnets: [Architecture] = [
        ("regnet_y_400mf", 16, 48, 27.89, 2.09, 8, 0.25), ("regnet_y_800mf", 14, 56, 38.84, 2.4, 16, 0.25),
        ("regnet_y_1_6gf", 27, 48, 20.71, 2.65, 24, 0.25), ("regnet_y_3_2gf", 21, 80, 42.63, 2.66, 24, 0.25),
        ("regnet_y_8gf", 17, 192, 76.82, 2.19, 56, 0.25), ("regnet_y_16gf", 18, 200, 106.23, 2.48, 112, 0.25),
        ("regnet_y_32gf", 20, 232, 115.89, 2.53, 232, 0.25), ("regnet_y_128gf", 27, 456, 160.83, 2.52, 264, 0.25),
        ("regnet_x_400mf", 22, 24, 24.48, 2.54, 16, nil), ("regnet_x_800mf", 16, 56, 35.73, 2.28, 16, nil),
        ("regnet_x_1_6gf", 18, 80, 34.01, 2.25, 24, nil), ("regnet_x_3_2gf", 25, 88, 26.31, 2.25, 48, nil),
        ("regnet_x_8gf", 23, 80, 49.56, 2.88, 120, nil), ("regnet_x_16gf", 22, 216, 55.59, 2.1, 128, nil),
        ("regnet_x_32gf", 23, 320, 69.86, 2.0, 168, nil),
    ].map { (name: String, depth: Int, w0: Int, wa: Double, wm: Double, g: Int, se: Double?) in
        // regnet_y_128gf has only SWAG weights, evaluated at 384 bicubic; the others' V1 files at 256 / 224.
        let p =
            name == "regnet_y_128gf"
            ? ImageNetEval(resizeSize: 384, cropSize: 384, interpolation: .bicubic) : ImageNetEval()
        return Architecture(name, family: name.hasPrefix("regnet_x") ? "RegNetX" : "RegNetY", preprocessing: p) {
            RegNetConfig(depth: depth, w0: w0, wa: wa, wm: wm, groupWidth: g, seRatio: se, classes: $0).network(
                name: name)
        }
    }
}
