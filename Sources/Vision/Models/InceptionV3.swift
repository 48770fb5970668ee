import NN

/// torchvision's Inception v3 as it is built for its ImageNet weights: `transform_input` on, every
/// convolution a BasicConv2d (`conv` without a bias, `bn` with eps 1e-3, ReLU), the stem
/// (`Conv2d_1a_3x3` … `Conv2d_4a_3x3` with two floor-mode 3×3/2 max pools), `Mixed_5b` … `Mixed_7c`
/// (InceptionA to E: 1×7 and 7×1 kernels with (0, 3) and (3, 0) padding, 1×3 and 3×1 pairs whose outputs
/// are concatenated, 3×3/1 average pools that count their padding, 3×3/2 max pools), global average
/// pool, Dropout(0.5) and `fc`. The published file's `AuxLogits.` (the auxiliary classifier, used only
/// in training) is read and dropped. Its input is 299×299 (342, then a 299 crop).
public struct InceptionV3Config: Sendable {
    /// Every width torchvision writes divided by this (1 for the real network; the tests build smaller
    /// ones of the same structure).
    public var divisor: Int
    public var classes: Int
    public var dropout: Float = 0.5

    public init(classes: Int = 1000, divisor: Int = 1) {
        self.classes = classes
        self.divisor = divisor
    }

    public func network(name: String = "inception_v3") -> Network {
        var b = NetworkBuilder()
        func w(_ c: Int) -> Int { c / divisor }
        func basic(
            _ p: String, _ x: Int, _ out: Int, kernel: (Int, Int), stride: Int = 1, padding: (Int, Int) = (0, 0)
        ) -> Int {
            let c = b.add(
                p + ".conv",
                .conv(Conv2d(b.channelsOf(x), w(out), kernel: kernel, stride: stride, padding: padding)), [x],
                channels: w(out))
            return b.relu(p + ".relu", b.batchNorm(p + ".bn", c, eps: 1e-3))
        }
        func basic(_ p: String, _ x: Int, _ out: Int, kernel: Int, stride: Int = 1, padding: Int = 0) -> Int {
            basic(p, x, out, kernel: (kernel, kernel), stride: stride, padding: (padding, padding))
        }
        func averagePool(_ p: String, _ x: Int) -> Int {
            b.function(p, AveragePool(kernel: 3, stride: 1, padding: 1), [x])
        }
        func cat(_ p: String, _ parts: [Int]) -> Int { b.function(p, Concatenation(), parts) }

        var x = b.function("transform_input", ChannelAffine.imageNetToHalfRange, [b.input])
        x = basic("Conv2d_1a_3x3", x, 32, kernel: 3, stride: 2)
        x = basic("Conv2d_2a_3x3", x, 32, kernel: 3)
        x = basic("Conv2d_2b_3x3", x, 64, kernel: 3, padding: 1)
        x = b.maxPool("maxpool1", x, kernel: 3, stride: 2)
        x = basic("Conv2d_3b_1x1", x, 80, kernel: 1)
        x = basic("Conv2d_4a_3x3", x, 192, kernel: 3)
        x = b.maxPool("maxpool2", x, kernel: 3, stride: 2)
        var stages = ["Conv2d_1a_3x3", "Conv2d_2a_3x3", "Conv2d_2b_3x3", "Conv2d_3b_1x1", "Conv2d_4a_3x3"]

        func inceptionA(_ p: String, _ x: Int, pool: Int) -> Int {
            let a = basic(p + ".branch1x1", x, 64, kernel: 1)
            let c = basic(p + ".branch5x5_2", basic(p + ".branch5x5_1", x, 48, kernel: 1), 64, kernel: 5, padding: 2)
            var d = basic(p + ".branch3x3dbl_1", x, 64, kernel: 1)
            d = basic(
                p + ".branch3x3dbl_3", basic(p + ".branch3x3dbl_2", d, 96, kernel: 3, padding: 1), 96, kernel: 3,
                padding: 1)
            let e = basic(p + ".branch_pool", averagePool(p + ".avg_pool", x), pool, kernel: 1)
            return cat(p + ".cat", [a, c, d, e])
        }
        func inceptionB(_ p: String, _ x: Int) -> Int {
            let a = basic(p + ".branch3x3", x, 384, kernel: 3, stride: 2)
            var d = basic(p + ".branch3x3dbl_1", x, 64, kernel: 1)
            d = basic(
                p + ".branch3x3dbl_3", basic(p + ".branch3x3dbl_2", d, 96, kernel: 3, padding: 1), 96, kernel: 3,
                stride: 2)
            return cat(p + ".cat", [a, d, b.maxPool(p + ".max_pool", x, kernel: 3, stride: 2)])
        }
        func inceptionC(_ p: String, _ x: Int, c7: Int) -> Int {
            let a = basic(p + ".branch1x1", x, 192, kernel: 1)
            var s = basic(p + ".branch7x7_1", x, c7, kernel: 1)
            s = basic(p + ".branch7x7_2", s, c7, kernel: (1, 7), padding: (0, 3))
            s = basic(p + ".branch7x7_3", s, 192, kernel: (7, 1), padding: (3, 0))
            var d = basic(p + ".branch7x7dbl_1", x, c7, kernel: 1)
            d = basic(p + ".branch7x7dbl_2", d, c7, kernel: (7, 1), padding: (3, 0))
            d = basic(p + ".branch7x7dbl_3", d, c7, kernel: (1, 7), padding: (0, 3))
            d = basic(p + ".branch7x7dbl_4", d, c7, kernel: (7, 1), padding: (3, 0))
            d = basic(p + ".branch7x7dbl_5", d, 192, kernel: (1, 7), padding: (0, 3))
            let e = basic(p + ".branch_pool", averagePool(p + ".avg_pool", x), 192, kernel: 1)
            return cat(p + ".cat", [a, s, d, e])
        }
        func inceptionD(_ p: String, _ x: Int) -> Int {
            let a = basic(p + ".branch3x3_2", basic(p + ".branch3x3_1", x, 192, kernel: 1), 320, kernel: 3, stride: 2)
            var s = basic(p + ".branch7x7x3_1", x, 192, kernel: 1)
            s = basic(p + ".branch7x7x3_2", s, 192, kernel: (1, 7), padding: (0, 3))
            s = basic(p + ".branch7x7x3_3", s, 192, kernel: (7, 1), padding: (3, 0))
            s = basic(p + ".branch7x7x3_4", s, 192, kernel: 3, stride: 2)
            return cat(p + ".cat", [a, s, b.maxPool(p + ".max_pool", x, kernel: 3, stride: 2)])
        }
        func inceptionE(_ p: String, _ x: Int) -> Int {
            let a = basic(p + ".branch1x1", x, 320, kernel: 1)
            let s = basic(p + ".branch3x3_1", x, 384, kernel: 1)
            let s2 = cat(
                p + ".cat3x3",
                [
                    basic(p + ".branch3x3_2a", s, 384, kernel: (1, 3), padding: (0, 1)),
                    basic(p + ".branch3x3_2b", s, 384, kernel: (3, 1), padding: (1, 0)),
                ])
            var d = basic(p + ".branch3x3dbl_1", x, 448, kernel: 1)
            d = basic(p + ".branch3x3dbl_2", d, 384, kernel: 3, padding: 1)
            let d2 = cat(
                p + ".cat3x3dbl",
                [
                    basic(p + ".branch3x3dbl_3a", d, 384, kernel: (1, 3), padding: (0, 1)),
                    basic(p + ".branch3x3dbl_3b", d, 384, kernel: (3, 1), padding: (1, 0)),
                ])
            let e = basic(p + ".branch_pool", averagePool(p + ".avg_pool", x), 192, kernel: 1)
            return cat(p + ".cat", [a, s2, d2, e])
        }

        x = inceptionA("Mixed_5b", x, pool: 32)
        x = inceptionA("Mixed_5c", x, pool: 64)
        x = inceptionA("Mixed_5d", x, pool: 64)
        x = inceptionB("Mixed_6a", x)
        x = inceptionC("Mixed_6b", x, c7: 128)
        x = inceptionC("Mixed_6c", x, c7: 160)
        x = inceptionC("Mixed_6d", x, c7: 160)
        x = inceptionC("Mixed_6e", x, c7: 192)
        x = inceptionD("Mixed_7a", x)
        x = inceptionE("Mixed_7b", x)
        x = inceptionE("Mixed_7c", x)
        stages += ["Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e"]
        stages += ["Mixed_7a", "Mixed_7b", "Mixed_7c"]
        x = b.flatten("flatten", b.adaptiveAvgPool("avgpool", x, 1, 1), spatial: 1)
        _ = b.linear("fc", b.dropout("dropout", x, p: dropout), classes)
        let net = b.build(name: name, stages: stages.map { Stage($0, prefixes: [$0 + "."]) }, head: "fc")
        net.droppedPrefixes = ["AuxLogits."]
        return net
    }
}

extension Architecture {
    static let inceptionV3 = Architecture(
        "inception_v3", family: "Inception v3", preprocessing: ImageNetEval(resizeSize: 342, cropSize: 299)
    ) { InceptionV3Config(classes: $0).network() }
}
