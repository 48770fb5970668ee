import Foundation
import NN
import Testing

@testable import Training

/// The gradients of the layers the families beside ResNet add, through `NetworkStep`, against torch 1.13's
/// autograd (Tests/Reference/make_grad_golden_layers.py, grad/layers.json): a depthwise convolution, a
/// grouped one with a residual, ReLU6 (clamping at 6 as well as 0), BatchNorm in training mode, adaptive
/// average pooling to 7×7 from 5×5 (overlapping windows), flatten to a linear layer, and dropout with a
/// fixed mask.
@Suite struct LayerGradientTests {
    @Test func gradientsMatchTorch() throws {
        let golden = try Fixtures.json("grad/layers.json")
        #expect(golden["generator"] as? String == "Tests/Reference/make_grad_golden_layers.py")
        var b = NetworkBuilder(inputChannels: 4)
        var x = b.relu6("r1", b.convBN("c1", "b1", b.input, 8, kernel: 3, padding: 1))
        let z = b.relu6("r2", b.convBN("d", "b2", x, 8, kernel: 3, stride: 2, padding: 1, groups: 8))
        x = b.relu("r3", b.sum("add", b.convBN("g", "b3", z, 8, kernel: 3, padding: 1, groups: 2), z))
        x = b.flatten("flatten", b.adaptiveAvgPool("pool", x, 7, 7), spatial: 49)
        _ = b.linear("fc", b.dropout("drop", x, p: 0.5), 3)
        let net = b.build(
            name: "layers", stages: [Stage("body", prefixes: ["c1.", "b1.", "d.", "b2.", "g.", "b3."])], head: "fc")
        try Self.check(net, against: golden)
    }

    /// Hardswish, Hardsigmoid, squeeze-excitation's channel scaling, SiLU, exact GELU and Sigmoid, with a
    /// BatchNorm of eps 1e-3 and momentum 0.01 (Tests/Reference/make_grad_golden_functions.py,
    /// grad/functions.json, torch 1.13).
    @Test func functionGradientsMatchTorch() throws {
        let golden = try Fixtures.json("grad/functions.json")
        #expect(golden["generator"] as? String == "Tests/Reference/make_grad_golden_functions.py")
        var b = NetworkBuilder(inputChannels: 4)
        let a = b.activation(
            "hs", .hardswish,
            b.batchNorm("b1", b.conv("c1", b.input, 8, kernel: 3, padding: 1), eps: 1e-3, momentum: 0.01))
        var s = b.adaptiveAvgPool("se.pool", a, 1, 1)
        s = b.relu("se.relu", b.conv("se.fc1", s, 4, kernel: 1, bias: true))
        s = b.activation("se.hsig", .hardsigmoid, b.conv("se.fc2", s, 8, kernel: 1, bias: true))
        var x = b.function("se", ChannelScaling(), [a, s])
        x = b.activation("silu", .silu, b.conv("c2", x, 8, kernel: 1, bias: true))
        x = b.activation("gelu", .gelu, b.conv("d", x, 8, kernel: 3, padding: 1, groups: 8, bias: true))
        x = b.activation("sigmoid", .sigmoid, b.conv("c3", x, 6, kernel: 1, bias: true))
        x = b.flatten("flatten", b.adaptiveAvgPool("pool", x, 1, 1), spatial: 1)
        _ = b.linear("fc", x, 3)
        let net = b.build(
            name: "functions", stages: [Stage("body", prefixes: ["c1.", "b1.", "se.", "c2.", "d.", "c3."])], head: "fc")
        try Self.check(net, against: golden)
    }

    /// Channel slices, concatenation, ShuffleNet's shuffle, a BatchNorm that follows no convolution (in
    /// training mode), 2×2 average pooling that drops a row and a column, and a 3×3 one that counts its
    /// padding (Tests/Reference/make_grad_golden_channels.py, grad/channels.json, torch 1.13).
    @Test func channelGradientsMatchTorch() throws {
        let golden = try Fixtures.json("grad/channels.json")
        #expect(golden["generator"] as? String == "Tests/Reference/make_grad_golden_channels.py")
        var b = NetworkBuilder(inputChannels: 4)
        let a = b.relu("r1", b.convBN("c1", "b1", b.input, 8, kernel: 3, padding: 1))
        let p = b.function("p", ChannelSlice(start: 0, count: 4), [a])
        let q = b.function("q", ChannelSlice(start: 4, count: 4), [a])
        let r = b.relu("r2", b.convBN("c2", "b2", q, 4, kernel: 1))
        let s = b.function("shuffle", ChannelShuffle(groups: 2), [b.function("cat1", Concatenation(), [p, r])])
        let u = b.relu("r3", b.batchNorm("n3", b.function("cat2", Concatenation(), [s, a])))
        var x = b.function("pool2", AveragePool(kernel: 2, stride: 2), [b.conv("c3", u, 8, kernel: 1)])
        x = b.function("pool3", AveragePool(kernel: 3, stride: 1, padding: 1), [x])
        x = b.flatten("flatten", b.adaptiveAvgPool("pool", x, 1, 1), spatial: 1)
        _ = b.linear("fc", x, 3)
        let net = b.build(
            name: "channels", stages: [Stage("body", prefixes: ["c1.", "b1.", "c2.", "b2.", "n3.", "c3."])], head: "fc")
        try Self.check(net, against: golden)
    }

    /// ConvNeXt's layers: LayerNorm over channels (after a convolution, on a block's branch and after
    /// the pool), a 7×7 depthwise convolution with a bias on an image smaller than its window, Linear
    /// layers over positions, exact GELU and the layer scale (Tests/Reference/make_grad_golden_convnext.py,
    /// grad/convnext.json, torch 1.13).
    @Test func convNeXtGradientsMatchTorch() throws {
        let golden = try Fixtures.json("grad/convnext.json")
        #expect(golden["generator"] as? String == "Tests/Reference/make_grad_golden_convnext.py")
        var b = NetworkBuilder(inputChannels: 4)
        let a = b.function("n0", LayerNorm(8, eps: 1e-6), [b.conv("c0", b.input, 8, kernel: 2, stride: 2, bias: true)])
        var e = b.conv("d", a, 8, kernel: 7, padding: 3, groups: 8, bias: true)
        e = b.function("n1", LayerNorm(8, eps: 1e-6), [e])
        e = b.positionwiseLinear("l2", b.activation("gelu", .gelu, b.positionwiseLinear("l1", e, 32)), 8)
        var x = b.sum("add", a, b.function("s", LayerScale(8), [e]))
        x = b.flatten("flatten", b.adaptiveAvgPool("pool", x, 1, 1), spatial: 1)
        _ = b.linear("fc", b.function("n2", LayerNorm(8, eps: 1e-6), [x]), 3)
        let net = b.build(
            name: "convnext",
            stages: [Stage("body", prefixes: ["c0.", "n0.", "d.", "n1.", "l1.", "l2.", "s.", "n2."])],
            head: "fc")
        try Self.check(net, against: golden)
    }

    /// SqueezeNet's layers: ceil-mode max pools (windows past the image, padding, equal maxima from a
    /// ReLU's zeros), a Fire module's concatenation and a convolution head before the pool
    /// (Tests/Reference/make_grad_golden_squeezenet.py, grad/squeezenet.json, torch 1.13).
    @Test func squeezeNetGradientsMatchTorch() throws {
        let golden = try Fixtures.json("grad/squeezenet.json")
        #expect(golden["generator"] as? String == "Tests/Reference/make_grad_golden_squeezenet.py")
        var b = NetworkBuilder(inputChannels: 3)
        var x = b.relu("r0", b.conv("c0", b.input, 8, kernel: 3, stride: 2, bias: true))
        x = b.function("p0", CeilMaxPool(kernel: 3, stride: 2), [x])
        let s = b.relu("rs", b.conv("squeeze", x, 4, kernel: 1, bias: true))
        let e1 = b.relu("r1", b.conv("e1", s, 6, kernel: 1, bias: true))
        let e3 = b.relu("r3", b.conv("e3", s, 6, kernel: 3, padding: 1, bias: true))
        x = b.function(
            "p1", CeilMaxPool(kernel: 3, stride: 2, padding: 1), [b.function("cat", Concatenation(), [e1, e3])])
        x = b.relu("rh", b.conv("head", x, 3, kernel: 1, bias: true))
        _ = b.flatten("flatten", b.adaptiveAvgPool("pool", x, 1, 1), spatial: 1)
        let net = b.build(
            name: "squeezenet", stages: [Stage("body", prefixes: ["c0.", "squeeze.", "e1.", "e3."])], head: "head")
        try Self.check(net, against: golden)
    }

    /// GoogLeNet's and Inception v3's layers: the input transform, BasicConv2d (BatchNorm eps 1e-3 in
    /// training mode), 1×7 / 7×1 and 1×3 / 3×1 convolutions with their one-sided padding, and a 3×3/1
    /// average pool that counts its padding (Tests/Reference/make_grad_golden_inception.py,
    /// grad/inception.json, torch 1.13).
    @Test func inceptionGradientsMatchTorch() throws {
        let golden = try Fixtures.json("grad/inception.json")
        #expect(golden["generator"] as? String == "Tests/Reference/make_grad_golden_inception.py")
        var b = NetworkBuilder(inputChannels: 3)
        func basic(_ p: String, _ x: Int, _ out: Int, _ k: (Int, Int), _ pad: (Int, Int)) -> Int {
            let c = b.add(
                p + ".conv", .conv(Conv2d(b.channelsOf(x), out, kernel: k, padding: pad)), [x], channels: out)
            return b.relu(p + ".relu", b.batchNorm(p + ".bn", c, eps: 1e-3))
        }
        let t = b.function("transform_input", ChannelAffine.imageNetToHalfRange, [b.input])
        let a = basic("a", t, 8, (3, 3), (0, 0))
        let bb = basic("b2", basic("b1", a, 6, (1, 7), (0, 3)), 6, (7, 1), (3, 0))
        let c = b.function(
            "cat_c", Concatenation(), [basic("c1", a, 4, (1, 3), (0, 1)), basic("c2", a, 4, (3, 1), (1, 0))])
        let d = basic("d", b.function("pool", AveragePool(kernel: 3, stride: 1, padding: 1), [a]), 4, (1, 1), (0, 0))
        let x = b.flatten(
            "flatten", b.adaptiveAvgPool("gap", b.function("cat", Concatenation(), [bb, c, d]), 1, 1), spatial: 1)
        _ = b.linear("fc", x, 3)
        let net = b.build(
            name: "inception", stages: [Stage("body", prefixes: ["a.", "b1.", "b2.", "c1.", "c2.", "d."])], head: "fc")
        try Self.check(net, against: golden)
    }

    /// Loads the golden's state into `net`, runs one forward and backward pass through `NetworkStep` and
    /// compares the loss, every parameter's gradient and the running statistics after the step.
    static func check(_ net: Network, against golden: [String: Any]) throws {
        let state = golden["state"] as! [String: Any]
        for (name, entry) in net.stateEntries {
            switch entry {
            case .parameter(let p), .buffer(let p): p.data = floats(state[name])
            case .int64: break
            }
        }
        let step = try NetworkStep(network: net, frozen: [], options: SGDOptions(lr: 0), threads: 2)
        let shape = golden["x_shape"] as! [Int]
        let out = step.forward(
            floats(golden["x"]), batch: shape[0], height: shape[2], width: shape[3], step: 0,
            shapes: try step.lowering.shapes(height: shape[2], width: shape[3]))
        let r = floats(golden["r"])
        let loss = zip(out, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        let want = (golden["loss"] as! NSNumber).doubleValue
        #expect(abs(loss - want) <= 1e-4 * abs(want), "loss \(loss), torch \(want)")
        let grads = step.backward(logitsGradient: r, batch: shape[0])
        let wantGrads = golden["grads"] as! [String: Any]
        #expect(Set(grads.keys) == Set(wantGrads.keys))
        for (name, w) in wantGrads {
            let got = try #require(grads[name], "no gradient for \(name)")
            let wv = floats(w)
            let scale = wv.map(abs).max()!
            let err = zip(got, wv).map { abs($0 - $1) }.max()!
            #expect(err <= 1e-4 * scale, "\(name): max |Δ| \(err), scale \(scale)")
        }
        let after = golden["running_after"] as! [String: Any]
        for (name, entry) in net.stateEntries {
            guard case .buffer(let p) = entry, let w = after[name] else { continue }
            expectClose(p.data, doubles(w), rtol: 1e-5, name)
        }
    }
}
