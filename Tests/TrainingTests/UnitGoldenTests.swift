import Foundation
import NN
import Testing

@testable import Kernels
@testable import Training

/// Tests/Fixtures/train/units.json, written by Tests/Reference/make_train_golden.py with torch 1.13
/// (Debian python3-torch 1.13.0a0). Needs no weights: CI always runs these.
@Suite struct UnitGoldenTests {
    let units: [String: Any]
    init() throws {
        units = try Fixtures.json("train/units.json")
        #expect(units["generator"] as? String == "Tests/Reference/make_train_golden.py")
        #expect((units["torch"] as? String)?.hasPrefix("1.13") == true)
    }

    @Test func crossEntropyMatchesTorch() {
        let c = units["cross_entropy"] as! [String: Any]
        let logits = floats(c["logits"]), labels = c["labels"] as! [Int], classes = c["classes"] as! Int
        let fast = CrossEntropy.forward(logits, labels: labels, classes: classes)
        let slow = CrossEntropy.reference(logits, labels: labels, classes: classes)
        let want = (c["loss"] as! NSNumber).doubleValue
        #expect(abs(Double(fast.loss) - want) <= 1e-6 * abs(want), "loss \(fast.loss) vs torch \(want)")
        #expect(abs(slow.loss - want) <= 1e-6 * abs(want), "reference loss \(slow.loss) vs torch \(want)")
        expectClose(fast.gradient, doubles(c["gradient"]), rtol: 1e-6, "dL/dlogits")
        expectClose(slow.gradient, doubles(c["gradient"]), rtol: 1e-6, "reference dL/dlogits")
    }

    @Test func linearBackwardMatchesTorch() {
        let c = units["linear_backward"] as! [String: Any]
        let x = floats(c["x"]), w = floats(c["weight"]), b = floats(c["bias"]), labels = c["labels"] as! [Int]
        let layer = Linear(8, 3)
        layer.weight.data = w
        layer.bias.data = b
        let y = LinearHead.forward(x, layer, batch: 5)
        expectClose(y, doubles(c["logits"]), rtol: 1e-6, "logits")
        let ce = CrossEntropy.forward(y, labels: labels, classes: 3)
        let g = LinearHead.backward(
            dy: ce.gradient, x: x, weight: w, batch: 5, inFeatures: 8, outFeatures: 3, inputGradient: true)
        expectClose(g.weight, doubles(c["dweight"]), rtol: 1e-5, "dW")
        expectClose(g.bias, doubles(c["dbias"]), rtol: 1e-5, "db")
        expectClose(g.input!, doubles(c["dx"]), rtol: 1e-5, "dx")
        let r = LinearHead.backwardReference(dy: ce.gradient, x: x, weight: w, batch: 5, inFeatures: 8, outFeatures: 3)
        expectClose(g.weight, r.weight, rtol: 1e-6, "dW vs the naive twin")
        expectClose(g.bias, r.bias, rtol: 1e-6, "db vs the naive twin")
        expectClose(g.input!, r.input, rtol: 1e-6, "dx vs the naive twin")
    }

    static func options(_ g: [String: Any], default lr: Double = 0) -> SGDOptions {
        func d(_ k: String) -> Double { (g[k] as? NSNumber)?.doubleValue ?? 0 }
        return SGDOptions(
            lr: (g["lr"] as? NSNumber)?.doubleValue ?? lr, momentum: d("momentum"), dampening: d("dampening"),
            weightDecay: d("weight_decay"), nesterov: g["nesterov"] as? Bool ?? false,
            maximize: g["maximize"] as? Bool ?? false)
    }

    /// Runs every variant of units.json's `key` case: the optimizer `make` builds from each variant's
    /// groups, and the Double twin `twin` per parameter, step by step against torch's trace (the twin to
    /// `twinRTol`). `check` then looks at the optimizer after its variant's last step.
    func matchesTorchForEveryVariant<Twin>(
        _ key: String, variants expected: Int, options: ([String: Any]) -> OptimizerOptions,
        make: ([ParameterGroup]) throws -> any Optimizer, twin: (OptimizerOptions) -> Twin,
        step twinStep: (inout Twin, inout [Double], [Double]) -> Void, twinRTol: Double,
        check: (String, any Optimizer) -> Void = { _, _ in }
    ) throws {
        let c = units[key] as! [String: Any]
        let grads = (c["grads"] as! [[String: Any]]).map { (w: floats($0["w"]), b: floats($0["b"])) }
        let variants = c["variants"] as! [[String: Any]]
        #expect(variants.count == expected)
        for v in variants {
            let name = v["name"] as! String
            let w = Parameter(shape: [3, 4], data: floats(c["w"])), b = Parameter(shape: [4], data: floats(c["b"]))
            let specs = v["groups"] as! [[String: Any]]
            let groups = specs.map { g in
                ParameterGroup(
                    name: (g["params"] as! [String]).joined(),
                    parameters: (g["params"] as! [String]).map { ($0, $0 == "w" ? w : b) },
                    options: options(g))
            }
            let optimizer = try make(groups)
            var twins = specs.flatMap { g in (g["params"] as! [String]).map { ($0, twin(options(g))) } }
            var pw = floats(c["w"]).map(Double.init), pb = floats(c["b"]).map(Double.init)
            let skip = v["skip_b_at"] as? Int
            for (k, (step, g)) in zip(v["trace"] as! [[String: Any]], grads).enumerated() {
                var gradients = ["w": g.w]
                if k != skip { gradients["b"] = g.b }
                try optimizer.step(gradients)
                for i in twins.indices {
                    if twins[i].0 == "w" {
                        twinStep(&twins[i].1, &pw, g.w.map(Double.init))
                    } else if k != skip {
                        twinStep(&twins[i].1, &pb, g.b.map(Double.init))
                    }
                }
                expectClose(w.data, doubles(step["w"]), rtol: 1e-6, "\(name) step \(k + 1) w")
                expectClose(b.data, doubles(step["b"]), rtol: 1e-6, "\(name) step \(k + 1) b")
                expectClose(w.data, pw, rtol: twinRTol, "\(name) step \(k + 1) w vs the Double twin")
                expectClose(b.data, pb, rtol: twinRTol, "\(name) step \(k + 1) b vs the Double twin")
            }
            check(name, optimizer)
        }
    }

    @Test(arguments: ISA.supported) func sgdMatchesTorchForEveryVariant(tier: ISA) throws {
        try ISA.with(tier) {
            // The two-group case in torch takes momentum 0.9 from the defaults; units.json lists it per group.
            try matchesTorchForEveryVariant(
                "sgd", variants: 9, options: { Self.options($0) }, make: { try SGD($0) },
                twin: SGDReference.init, step: { $0.step(&$1, grad: $2) }, twinRTol: 1e-6
            ) { name, sgd in
                if name == "missing_grad" {
                    #expect((sgd as! SGD).momentumBuffers["b"] != nil, "b got a buffer at its first step (2)")
                }
            }
        }
    }

    static func adamOptions(_ g: [String: Any]) -> OptimizerOptions {
        func d(_ k: String) -> Double { (g[k] as! NSNumber).doubleValue }
        let betas = (g["betas"] as! [NSNumber]).map(\.doubleValue)
        return OptimizerOptions(
            lr: d("lr"), weightDecay: d("weight_decay"), maximize: g["maximize"] as! Bool,
            betas: (betas[0], betas[1]), eps: d("eps"), amsgrad: g["amsgrad"] as! Bool)
    }

    /// torch.optim.AdamW (units.json "adamw"), and the Double twin, step by step for every variant.
    @Test(arguments: ISA.supported) func adamwMatchesTorchForEveryVariant(tier: ISA) throws {
        try ISA.with(tier) {
            try matchesTorchForEveryVariant(
                "adamw", variants: 8, options: { Self.adamOptions($0) }, make: { try OptimizerKind.adamw.make($0) },
                twin: AdamWReference.init, step: { $0.step(&$1, grad: $2) }, twinRTol: 1e-5
            ) { name, adamw in
                if name == "missing_grad" {
                    // b's first step was the optimizer's second: its bias correction counts its own steps.
                    #expect((adamw as! AdamW).parameterSteps == ["w": 6, "b": 5])
                }
            }
        }
    }

    /// A resumed AdamW continues exactly: state out, state in, the same next step.
    @Test func adamwStateRoundTrips() throws {
        func make() throws -> (any Optimizer, Parameter) {
            let p = Parameter(shape: [3], data: [1, -2, 3])
            return (
                try OptimizerKind.adamw.make([
                    ParameterGroup(
                        name: "g", parameters: [("p", p)],
                        options: OptimizerOptions(lr: 0.1, amsgrad: true))
                ]), p
            )
        }
        let (a, pa) = try make()
        try a.step(["p": [0.5, -1, 2]])
        try a.step(["p": [0.1, 0.3, -0.2]])
        let (b, pb) = try make()
        pb.data = pa.data
        try b.restore(a.state, steps: a.steps)
        try a.step(["p": [1, 1, 1]])
        try b.step(["p": [1, 1, 1]])
        #expect(pa.data == pb.data)
        #expect(Set(a.state["p"]!.keys) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"])
        #expect(throws: OptimizerError.unknownState("q")) { try b.restore(["q": ["exp_avg": [0]]], steps: 1) }
        #expect(throws: OptimizerError.invalid("Invalid beta parameter at index 1: 1.0")) {
            try OptimizerKind.adamw.make([
                ParameterGroup(name: "g", parameters: [("p", pa)], options: OptimizerOptions(lr: 0.1, betas: (0.9, 1)))
            ])
        }
    }

    @Test func momentumBufferOnlyForParametersWithGradients() throws {
        let w = Parameter(shape: [2], data: [1, 2]), b = Parameter(shape: [2], data: [3, 4])
        let sgd = try SGD([
            ParameterGroup(name: "g", parameters: [("w", w), ("b", b)], options: SGDOptions(lr: 0.1, momentum: 0.9))
        ])
        try sgd.step(["w": [1, 1]])
        #expect(sgd.momentumBuffers.keys.sorted() == ["w"])
        #expect(b.data == [3, 4], "a parameter without a gradient does not move")
    }

    @Test func optimizerRefusesWhatTorchRefuses() throws {
        let p = Parameter(shape: [1])
        #expect(throws: OptimizerError.invalid("Nesterov momentum requires a momentum and zero dampening")) {
            try SGD([ParameterGroup(name: "g", parameters: [("p", p)], options: SGDOptions(lr: 0.1, nesterov: true))])
        }
        #expect(throws: OptimizerError.duplicateParameter("p")) {
            try SGD([
                ParameterGroup(name: "a", parameters: [("p", p)], options: SGDOptions(lr: 0.1)),
                ParameterGroup(name: "b", parameters: [("p", p)], options: SGDOptions(lr: 0.1)),
            ])
        }
        let frozen = Parameter(shape: [1], requiresGrad: false)
        #expect(throws: OptimizerError.frozenParameter("f")) {
            try SGD([ParameterGroup(name: "a", parameters: [("f", frozen)], options: SGDOptions(lr: 0.1))])
        }
        #expect(throws: OptimizerError.invalid("Invalid learning rate: -1.0")) {
            try SGD([ParameterGroup(name: "a", parameters: [("p", p)], options: SGDOptions(lr: -1))])
        }
    }

    @Test func splittingDecayPutsBiasesAndNormsInTheNoDecayGroup() {
        let model = smallResNet()
        let groups = ParameterGroup.splittingDecay(
            name: "all", parameters: model.namedParameters,
            options: SGDOptions(lr: 0.1, weightDecay: 1e-3))
        #expect(groups.map(\.name) == ["all", "all.no_decay"])
        #expect(groups[1].options.weightDecay == 0 && groups[0].options.weightDecay == 1e-3)
        #expect(
            groups[1].parameters.allSatisfy {
                $0.name.contains("bn") || $0.name.contains("downsample.1") || $0.name == "fc.bias"
            })
        #expect(
            groups[0].parameters.allSatisfy {
                $0.name.hasSuffix("conv1.weight") || $0.name.hasSuffix("conv2.weight")
                    || $0.name.hasSuffix("downsample.0.weight") || $0.name == "fc.weight"
            })
        #expect(groups[0].parameters.count + groups[1].parameters.count == model.namedParameters.count)
    }

    @Test func schedulesMatchTorch() throws {
        for s in units["schedules"] as! [[String: Any]] {
            let name = s["name"] as! String, spec = s["spec"] as! [String: Any]
            func d(_ k: String) -> Double { (spec[k] as! NSNumber).doubleValue }
            func i(_ k: String) -> Int { spec[k] as! Int }
            let schedule: LRSchedule =
                switch spec["kind"] as! String {
                case "step": .step(size: i("size"), gamma: d("gamma"))
                case "cosine": .cosine(tMax: i("t_max"), etaMin: d("eta_min"))
                case "linear": .linear(startFactor: d("start"), endFactor: d("end"), iterations: i("iterations"))
                default:
                    .warmupCosine(warmup: i("warmup"), total: i("total"), startFactor: d("start"), etaMin: d("eta_min"))
                }
            let sgd = try SGD([
                ParameterGroup(name: "a", parameters: [("a", Parameter(shape: [1]))], options: SGDOptions(lr: 0.1)),
                ParameterGroup(name: "b", parameters: [("b", Parameter(shape: [1]))], options: SGDOptions(lr: 0.01)),
            ])
            let scheduler = LRScheduler(schedule, optimizer: sgd)
            let want = (s["lrs"] as! [[NSNumber]]).map { $0.map(\.doubleValue) }
            for (k, lrs) in want.enumerated() {
                if k > 0 { scheduler.step() }
                for (got, w) in zip(scheduler.lastLR, lrs) {
                    #expect(abs(got - w) <= 1e-12 * max(abs(w), 1e-3), "\(name) step \(k): \(got) vs torch \(w)")
                }
            }
        }
    }

    @Test func l2spGradientIsItsPenaltysDerivative() {
        let w = Parameter(shape: [3], data: [1, -2, 0.5]), h = Parameter(shape: [2], data: [3, 4])
        let params = [("layer1.w", w), ("fc.weight", h)]
        let l2sp = L2SP(alpha: 0.2, beta: 0.1, parameters: params)
        w.data = [1.5, -2, 0]
        var grads: [String: [Float]] = ["layer1.w": [0, 0, 0], "fc.weight": [1, 1]]
        let penalty = l2sp.apply(params, to: &grads)
        // α/2·(0.5² + 0 + 0.5²) + β/2·(9 + 16)
        #expect(abs(penalty - (0.1 * 0.5 + 0.05 * 25)) < 1e-9)
        expectClose(grads["layer1.w"]!, [0.2 * 0.5, 0, 0.2 * -0.5], rtol: 1e-6, "α(w − w⁰)")
        #expect(grads["fc.weight"] == [1 + Float(0.1) * 3, 1 + Float(0.1) * 4])
        var none: [String: [Float]] = [:]
        #expect(l2sp.apply(params, to: &none) == 0, "parameters without gradients (frozen) are not penalised")
    }
}
