import NN

/// torchvision's MNASNet (`mnasnet0_5`, `0_75`, `1_0`, `1_3`): `layers.0` … `layers.7` (conv 3×3/2, a
/// depthwise separable convolution), six stacks of inverted residuals `layers.8` … `layers.13` (1×1
/// expand, depthwise, 1×1 project, ReLU), `layers.14` (1×1 to 1280, BN, ReLU), the mean over the image,
/// `classifier.0` Dropout and `classifier.1` Linear (the head). Every BatchNorm has momentum 1 − 0.9997.
public struct MNASNetConfig: Sendable, Equatable {
    public var alpha: Double
    public var classes = 1000
    public var dropout: Float = 0.2
    /// torchvision's version-1 layout (`_version` 1: the published mnasnet0_5 file): the stem's widths fixed
    /// at 32 and 16 whatever alpha is.
    public var versionOneStem = false

    public init(alpha: Double, classes: Int = 1000, dropout: Float = 0.2, versionOneStem: Bool = false) {
        self.alpha = alpha
        self.classes = classes
        self.dropout = dropout
        self.versionOneStem = versionOneStem
    }

    /// `_round_to_multiple_of(v, 8)`, round-up bias 0.9.
    static func rounded(_ v: Double) -> Int {
        let n = max(8, Int(v + 4) / 8 * 8)
        return Double(n) >= 0.9 * v ? n : n + 8
    }

    /// `_get_depths(alpha)`.
    var depths: [Int] { [32, 16, 24, 40, 80, 96, 192, 320].map { Self.rounded(Double($0) * alpha) } }

    public func network(name: String) -> Network {
        var b = NetworkBuilder()
        let momentum: Float = Float(1 - 0.9997)
        var d = depths
        if versionOneStem { (d[0], d[1]) = (32, 16) }
        func convBN(_ c: Int, _ x: Int, _ out: Int, kernel: Int, stride: Int = 1, groups: Int = 1) -> Int {
            let y = b.conv(
                "layers.\(c)", x, out, kernel: kernel, stride: stride, padding: kernel / 2, groups: groups)
            return b.batchNorm("layers.\(c + 1)", y, momentum: momentum)
        }
        var x = b.relu("layers.2", convBN(0, b.input, d[0], kernel: 3, stride: 2))
        x = b.relu("layers.5", convBN(3, x, d[0], kernel: 3, groups: d[0]))
        x = convBN(6, x, d[1], kernel: 1)
        // (kernel, stride, expansion, repeats) per stack.
        let stacks = [(3, 2, 3, 3), (5, 2, 3, 3), (5, 2, 6, 3), (3, 1, 6, 2), (5, 2, 6, 4), (3, 1, 6, 1)]
        var input = d[1]
        for (s, (k, stride, e, repeats)) in stacks.enumerated() {
            let out = d[s + 2]
            for r in 0..<repeats {
                let p = "layers.\(8 + s).\(r).layers."
                let from = r == 0 ? input : out, st = r == 0 ? stride : 1, mid = from * e
                func cb(_ i: Int, _ y: Int, _ o: Int, kernel: Int, stride: Int = 1, groups: Int = 1) -> Int {
                    let c = b.conv(
                        p + "\(i)", y, o, kernel: kernel, stride: stride, padding: kernel / 2, groups: groups)
                    return b.batchNorm(p + "\(i + 1)", c, momentum: momentum)
                }
                var y = b.relu(p + "2", cb(0, x, mid, kernel: 1))
                y = b.relu(p + "5", cb(3, y, mid, kernel: k, stride: st, groups: mid))
                y = cb(6, y, out, kernel: 1)
                x = from == out && st == 1 ? b.sum("layers.\(8 + s).\(r).add", y, x) : y
            }
            input = out
        }
        x = b.relu("layers.16", convBN(14, x, 1280, kernel: 1))
        // x.mean([2, 3]): the global average pool, flattened.
        x = b.flatten("flatten", b.adaptiveAvgPool("mean", x, 1, 1), spatial: 1)
        _ = b.linear("classifier.1", b.dropout("classifier.0", x, p: dropout), classes)
        let stages =
            [
                Stage("layers.0", prefixes: ["layers.0.", "layers.1."]),
                Stage("layers.3", prefixes: ["layers.3.", "layers.4."]),
                Stage("layers.6", prefixes: ["layers.6.", "layers.7."]),
            ]
            + (8...13).map { Stage("layers.\($0)", prefixes: ["layers.\($0)."]) }
            + [Stage("layers.14", prefixes: ["layers.14.", "layers.15."])]
        return b.build(name: name, stages: stages, head: "classifier.1")
    }
}

extension Architecture {
    static let mnasnets: [Architecture] = [
        ("mnasnet0_5", 0.5, 256), ("mnasnet0_75", 0.75, 232), ("mnasnet1_0", 1.0, 256),
        ("mnasnet1_3", 1.3, 232),
    ].map { name, alpha, resize in
        Architecture(
            name, family: "MNASNet", preprocessing: ImageNetEval(resizeSize: resize, cropSize: 224),
            variant: { sd, classes in
                // A version-1 file (torchvision's mnasnet0_5 weights): its stem is 32 wide whatever alpha is.
                guard alpha != 1.0, sd["layers.0.weight"]?.shape.first == 32 else { return nil }
                return MNASNetConfig(alpha: alpha, classes: classes, versionOneStem: true).network(name: name)
            }
        ) { MNASNetConfig(alpha: alpha, classes: $0).network(name: name) }
    }
}
