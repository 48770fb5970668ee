import NN

/// torchvision's ShuffleNetV2 (`shufflenet_v2_x0_5` … `x2_0`): `conv1` (conv 3×3/2, BN, ReLU), max pool,
/// stages `stage2` … `stage4` of units that split the channels in two (stride 1: half passes, half goes
/// through `branch2`; stride 2: `branch1` and `branch2` both read everything), concatenate and shuffle
/// the channels in two groups, then `conv5` (1×1, BN, ReLU), the mean over the image and `fc` (the head).
public struct ShuffleNetV2Config: Sendable, Equatable {
    public var repeats: [Int]
    /// The widths of conv1, stage2 … stage4 and conv5.
    public var widths: [Int]
    public var classes = 1000

    public init(repeats: [Int] = [4, 8, 4], widths: [Int], classes: Int = 1000) {
        self.repeats = repeats
        self.widths = widths
        self.classes = classes
    }

    public func network(name: String) -> Network {
        var b = NetworkBuilder()
        func convBN(_ p: String, _ i: Int, _ x: Int, _ out: Int, kernel: Int, stride: Int = 1, groups: Int = 1) -> Int {
            b.batchNorm(
                p + ".\(i + 1)",
                b.conv(p + ".\(i)", x, out, kernel: kernel, stride: stride, padding: kernel / 2, groups: groups))
        }
        var x = b.relu("conv1.2", convBN("conv1", 0, b.input, widths[0], kernel: 3, stride: 2))
        x = b.maxPool("maxpool", x, kernel: 3, stride: 2, padding: 1)
        var input = widths[0]
        for (s, repeats) in repeats.enumerated() {
            let out = widths[s + 1], half = out / 2
            for u in 0..<repeats {
                let p = "stage\(s + 2).\(u)"
                let stride = u == 0 ? 2 : 1
                let passed: Int, into: Int
                if stride == 1 {
                    passed = b.function(p + ".chunk0", ChannelSlice(start: 0, count: input / 2), [x])
                    into = b.function(p + ".chunk1", ChannelSlice(start: input / 2, count: input / 2), [x])
                } else {
                    var y = convBN(p + ".branch1", 0, x, input, kernel: 3, stride: 2, groups: input)
                    y = b.relu(p + ".branch1.4", convBN(p + ".branch1", 2, y, half, kernel: 1))
                    passed = y
                    into = x
                }
                var y = b.relu(p + ".branch2.2", convBN(p + ".branch2", 0, into, half, kernel: 1))
                y = convBN(p + ".branch2", 3, y, half, kernel: 3, stride: stride, groups: half)
                y = b.relu(p + ".branch2.7", convBN(p + ".branch2", 5, y, half, kernel: 1))
                x = b.function(
                    p + ".shuffle", ChannelShuffle(groups: 2), [b.function(p + ".cat", Concatenation(), [passed, y])])
                input = out
            }
        }
        x = b.relu("conv5.2", convBN("conv5", 0, x, widths[4], kernel: 1))
        // x.mean([2, 3]): the global average pool, flattened.
        x = b.flatten("flatten", b.adaptiveAvgPool("globalpool", x, 1, 1), spatial: 1)
        _ = b.linear("fc", x, classes)
        let stages = ["conv1", "stage2", "stage3", "stage4", "conv5"].map { Stage($0, prefixes: [$0 + "."]) }
        return b.build(name: name, stages: stages, head: "fc")
    }
}

extension Architecture {
    static let shuffleNets: [Architecture] = [
        ("shufflenet_v2_x0_5", [24, 48, 96, 192, 1024], 256), ("shufflenet_v2_x1_0", [24, 116, 232, 464, 1024], 256),
        ("shufflenet_v2_x1_5", [24, 176, 352, 704, 1024], 232), ("shufflenet_v2_x2_0", [24, 244, 488, 976, 2048], 232),
    ].map { name, widths, resize in
        Architecture(name, family: "ShuffleNetV2", preprocessing: ImageNetEval(resizeSize: resize, cropSize: 224)) {
            ShuffleNetV2Config(widths: widths, classes: $0).network(name: name)
        }
    }
}
