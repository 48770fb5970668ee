import Checkpoint
import Foundation
import NN
import Tensors
import Testing
import Vision

@testable import Training

/// Training through the backbone against torch 1.13 (Tests/Reference/make_train_golden.py, backbone.json):
/// 20 steps from resnet18-zip.pth with a new 2-class head, per mode.
@Suite(
    .enabled(
        if: Fixtures.sharedAvailable,
        "../shared/weights/resnet18-zip.pth is absent; the backbone-training golden needs it"))
struct BackboneGoldenTests {
    /// layer3, layer4 and fc train; the frozen stages' BatchNorms in eval mode, or (--bn train) in training mode.
    @Test(arguments: ["through_layer2", "through_layer2_bn_train"])
    func frozenThroughLayer2MatchesTorch(_ mode: String) throws { try matchesTorch(mode) }

    /// Every parameter but conv1.weight trains: d2l's low-LR recipe, and L2-SP on the same groups.
    /// (Tests of at most two cases, so that none runs a minute in a debug build.)
    @Test(arguments: ["low_lr_fixed_conv1", "l2sp"])
    func allButConv1MatchesTorch(_ mode: String) throws { try matchesTorch(mode) }

    /// through_layer2 trained by AdamW (lr 1e-4, weight decay 0.01, eps 1e-4) instead of SGD. (At the
    /// default eps 1e-8 torch's own float32 and float64 runs part by 1.6e-2: make_train_golden.py.)
    @Test func adamwThroughLayer2MatchesTorch() throws { try matchesTorch("adamw_through_layer2") }

    /// Every parameter trains, d2l's recipe as it is. Chaotic after a few steps (see `chaotic` below).
    @Test func everyParameterMatchesTorch() throws { try matchesTorch("low_lr") }

    func matchesTorch(_ mode: String) throws {
        let golden = try Fixtures.json("train/backbone.json")
        #expect(golden["generator"] as? String == "Tests/Reference/make_train_golden.py")
        let m = (golden["modes"] as! [[String: Any]]).first { $0["name"] as? String == mode }!
        let sd = try Checkpoint(path: Fixtures.sharedZip).stateDict()
        let model = ResNet(.resnet18)
        try model.load(sd, excluding: ["fc."])
        model.replaceHead(classes: 2)
        model.fc.weight.data = floats(golden["fc_weight_init"])
        model.fc.bias.data = floats(golden["fc_bias_init"])
        let before = Dictionary(
            uniqueKeysWithValues: model.stateEntries.compactMap { e -> (String, [Float])? in
                switch e.entry {
                case .parameter(let p), .buffer(let p): (e.name, p.data)
                case .int64: nil
                }
            })
        let step: NetworkStep
        let throughLayer2 = StageList(model.network).frozenPrefixes(.through("layer2"))
        #expect(throughLayer2 == ["conv1.", "bn1.", "layer1.", "layer2."])
        switch mode {
        case "through_layer2":
            step = try NetworkStep(
                network: model.network, frozen: throughLayer2, options: SGDOptions(lr: 5e-4, momentum: 0.9),
                threads: 2)
        case "adamw_through_layer2":
            step = try NetworkStep(
                network: model.network, frozen: throughLayer2,
                options: OptimizerOptions(lr: 1e-4, weightDecay: 0.01, eps: 1e-4), optimizer: .adamw, threads: 2)
        case "through_layer2_bn_train":
            step = try NetworkStep(
                network: model.network, frozen: throughLayer2, options: SGDOptions(lr: 5e-4, momentum: 0.9),
                frozenBatchNormTrains: true, threads: 2)
        default:
            // Backbone lr 5e-5, head 5e-4, nesterov, decay 1e-3; l2sp adds L2-SP. Leaving conv1.weight out
            // of every group is torch's requires_grad False for it: no update.
            let l2sp = mode == "l2sp"
            let o = SGDOptions(lr: 5e-5, momentum: 0.9, weightDecay: 1e-3, nesterov: true)
            let fixConv1 = mode != "low_lr"
            step = try NetworkStep(
                network: model.network, frozen: [], options: o,
                groups: { trainable in
                    var head = o
                    head.lr = 5e-4
                    let body = trainable.filter {
                        !$0.name.hasPrefix("fc.") && !(fixConv1 && $0.name == "conv1.weight")
                    }
                    return [
                        ParameterGroup(name: "backbone", parameters: body, options: o),
                        ParameterGroup(
                            name: "head", parameters: trainable.filter { $0.name.hasPrefix("fc.") }, options: head),
                    ]
                }, l2sp: l2sp ? (alpha: 0.01, beta: 0.01) : nil, threads: 2)
        }
        let images = FrozenGoldenTests.patternImages()
        // With conv1.weight training the run is chaotic: resnet18's dead conv1 filters, scaled up by
        // bn1's 1/sqrt(eps), learn whatever rounding says (make_train_golden.py). Torch's own float32 and
        // float64 runs of low_lr part by 2.3 % in the loss (Tests/Reference/measure_spread.py, torch 1.13),
        // so after step 1 its losses are held to 5e-2. With conv1.weight fixed that spread is 5e-6.
        let chaotic = mode == "low_lr"
        // With the frozen stages' BatchNorms on batch statistics (--bn train) the drift from torch grows
        // to 4.5e-4 in the loss and 5e-4 in running statistics by step 20 (1e-4 through step 15), above
        // torch's own float32-vs-float64 spread for this mode (1.2e-5 in the loss, 7.4e-5 in the state:
        // Tests/Reference/measure_spread.py, torch 1.13); held to 1e-3 until that gap is explained.
        let tight = mode == "through_layer2_bn_train" ? 1e-3 : 1e-4
        let want = doubles(m["losses"])
        // Torch's own run moves by up to `perturbation` when its weights move by a convolution's rounding
        // (through_layer2: under 1e-6 for seven steps, up to 3.3e-3 by step 20); no tier is held tighter
        // than three times that.
        let perturbation = chaotic ? nil : try Perturbation(mode: mode)
        var losses: [Double] = []
        for k in 0..<20 {
            let idx = (0..<4).map { (5 * k + 3 * $0) % 8 }
            losses.append(
                try step.step(idx.flatMap { images[$0] }, labels: idx.map { $0 % 2 }, height: 64, width: 64).loss)
            if k == 0 {
                // The first step's update of every trainable tensor (a ReLU mask bit in layer4.0 differs
                // from torch's by rounding at this step, which moves some updates by up to 0.6 %).
                for (name, s) in m["step1"] as! [String: [String: Any]] {
                    let p = model.namedParameters.first { $0.name == name }!.parameter
                    let delta = zip(p.data, before[name]!).map { $0 - $1 }
                    let idx = s["indices"] as! [Int]
                    let rtol = perturbation?.step1(name, atLeast: 2e-2) ?? 2e-2
                    expectClose(
                        idx.map { delta[$0] }, doubles(s["samples"]), rtol: rtol, "\(mode) \(name) first update")
                    let norm = delta.reduce(0.0) { $0 + Double($1) * Double($1) }.squareRoot()
                    let wantNorm = (s["norm"] as! NSNumber).doubleValue
                    #expect(
                        abs(norm - wantNorm) <= rtol * wantNorm,
                        "\(mode) \(name) first update norm \(norm), torch \(wantNorm)")
                }
            }
        }
        for (k, (g, w)) in zip(losses, want).enumerated() {
            let fixed = chaotic && k > 0 ? 5e-2 : (k < 15 ? 1e-4 : tight)
            let rtol = perturbation?.loss(k, atLeast: fixed) ?? fixed
            #expect(abs(g - w) <= rtol * abs(w), "\(mode) step \(k + 1): loss \(g), torch \(w) (bound \(rtol))")
        }
        // Every tensor torch changed, by norm and samples (through_layer2; in the chaotic modes, only
        // that it changed: their trajectories part within torch's own float32/float64 spread); every
        // tensor it left alone, bit for bit.
        let state = Dictionary(uniqueKeysWithValues: model.stateEntries.map { ($0.name, $0.entry) })
        for (name, s) in m["changed"] as! [String: [String: Any]] {
            switch state[name] {
            case .parameter(let p)?, .buffer(let p)?:
                if chaotic {
                    #expect(p.data != before[name], "\(mode): \(name) did not change")
                } else {
                    check(p.data, s, "\(mode) \(name)", rtol: perturbation!.state(atLeast: tight))
                }
            default: Issue.record("\(name) missing")
            }
        }
        for name in m["unchanged"] as! [String] {
            switch state[name] {
            case .parameter(let p)?, .buffer(let p)?: #expect(p.data == before[name], "\(mode): \(name) changed")
            default: break
            }
        }
        for (name, n) in m["num_batches_tracked"] as! [String: Int] {
            guard case .int64(let v)? = state[name] else {
                Issue.record("\(name) missing")
                continue
            }
            #expect(v.value == Int64(n), "\(mode) \(name): \(v.value), torch \(n)")
        }
        if !chaotic {
            check(
                model.fc.weight.data, m["fc_weight"] as! [String: Any], "\(mode) fc.weight",
                rtol: perturbation!.state(atLeast: tight))
            expectClose(
                model.fc.bias.data, doubles(m["fc_bias"]), rtol: perturbation!.state(atLeast: tight),
                "\(mode) fc.bias")
        }
    }

    func check(_ data: [Float], _ s: [String: Any], _ what: String, rtol: Double) {
        let norm = (data.reduce(0.0) { $0 + Double($1) * Double($1) }).squareRoot()
        let wantNorm = (s["norm"] as! NSNumber).doubleValue
        #expect(abs(norm - wantNorm) <= rtol * wantNorm, "\(what): norm \(norm), torch \(wantNorm)")
        let idx = s["indices"] as! [Int]
        expectClose(idx.map { data[$0] }, doubles(s["samples"]), rtol: rtol, "\(what) samples")
    }
}
