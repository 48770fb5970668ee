import Checkpoint
import Foundation
import Kernels
import NN
import Tensors
import TestSupport
import Testing

@testable import Vision

/// Tests/Fixtures/golden/families/, written by Tests/Reference/make_golden_families.py (torch 1.13,
/// torchvision 0.14).
enum Families {
    static func path(_ name: String) -> String { Golden.path("families/\(name)") }

    static func meta() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path("families.json"))))
            as! [String: Any]
    }

    static func cases() throws -> [String: [String: Any]] { try meta()["cases"] as! [String: [String: Any]] }

    /// The network a case describes, from its shape parameters.
    static func network(_ c: [String: Any]) -> Network {
        let classes = c["classes"] as! Int
        switch c["family"] as! String {
        case "mobilenet_v2":
            return MobileNetV2Config(classes: classes, widthMult: c["width_mult"] as! Double).network()
        case "efficientnet":
            let stages = (c["stages"] as! [[Any]]).map { s in
                let v = s.dropFirst().map { ($0 as! NSNumber).intValue }
                return EfficientNetConfig.Stage(
                    fused: s[0] as! String == "fused", expandRatio: Double(v[0]), kernel: v[1], stride: v[2],
                    input: v[3], output: v[4], layers: v[5])
            }
            return EfficientNetConfig(
                name: "efficientnet (small)", stages: stages, widthMult: c["width_mult"] as! Double,
                depthMult: c["depth_mult"] as! Double, dropout: Float(c["dropout"] as! Double),
                lastChannel: c["last_channel"] as? Int, batchNormEps: Float(c["bn_eps"] as! Double),
                batchNormMomentum: Float(c["bn_momentum"] as! Double), classes: classes
            ).network()
        case "densenet":
            return DenseNetConfig(
                growthRate: c["growth_rate"] as! Int, blocks: c["blocks"] as! [Int],
                initialFeatures: c["initial_features"] as! Int, bottleneckSize: c["bn_size"] as! Int, classes: classes
            ).network(name: "densenet (small)")
        case "googlenet":
            let stem = c["stem"] as! [Int]
            let body = (c["inceptions"] as! [[Any]]).map {
                GoogLeNetConfig.Either.inception($0[0] as! String, $0[1] as! [Int])
            }
            // torchvision's pools between the modules: after 3b, and 4e (2×2).
            var parts: [GoogLeNetConfig.Either] = [.pool("maxpool2", kernel: 3)]
            for (i, m) in body.enumerated() {
                parts.append(m)
                if i == 1 { parts.append(.pool("maxpool3", kernel: 3)) }
                if i == 6 { parts.append(.pool("maxpool4", kernel: 2)) }
            }
            return GoogLeNetConfig(stem: (stem[0], stem[1], stem[2]), body: parts, classes: classes).network(
                name: "googlenet (small)")
        case "inception_v3":
            return InceptionV3Config(classes: classes, divisor: c["divisor"] as! Int).network(
                name: "inception_v3 (small)")
        case "squeezenet":
            let stem = c["stem"] as! [Int]
            let body = (c["body"] as! [Any]).map { f -> (Int, Int, Int)? in
                guard let w = f as? [Int] else { return nil }
                return (w[0], w[1], w[2])
            }
            return SqueezeNetConfig(
                stem: (stem[0], stem[1]), body: body, classes: classes, name: "squeezenet (small)"
            ).network()
        case "convnext":
            let stages = (c["stages"] as! [[Any]]).map { s in (s[0] as! Int, s[1] as? Int, s[2] as! Int) }
            return ConvNeXtConfig(
                stages: stages, stochasticDepth: c["stochastic_depth_prob"] as! Double, classes: classes
            ).network(name: "convnext (small)")
        case "shufflenet":
            return ShuffleNetV2Config(repeats: c["repeats"] as! [Int], widths: c["widths"] as! [Int], classes: classes)
                .network(name: "shufflenet (small)")
        case "regnet":
            return RegNetConfig(
                depth: c["depth"] as! Int, w0: c["w_0"] as! Int, wa: c["w_a"] as! Double, wm: c["w_m"] as! Double,
                groupWidth: c["group_width"] as! Int, seRatio: c["se_ratio"] as? Double,
                stemWidth: c["stem_width"] as! Int,
                classes: classes
            ).network(name: "regnet (small)")
        case "mnasnet":
            return MNASNetConfig(
                alpha: c["alpha"] as! Double, classes: classes, versionOneStem: c["version_one_stem"] as? Bool ?? false
            ).network(name: "mnasnet (small)")
        case "mobilenet_v3":
            let size: MobileNetV3Config.Size = c["arch"] as! String == "mobilenet_v3_large" ? .large : .small
            return MobileNetV3Config(size, classes: classes, widthMult: c["width_mult"] as! Double).network()
        case "vgg":
            return VGGConfig(
                layers: c["layers"] as! [Int], batchNorm: c["batch_norm"] as! Bool, classes: classes,
                hidden: c["hidden"] as! Int
            ).network()
        case "alexnet":
            return AlexNetConfig(widths: c["widths"] as! [Int], hidden: c["hidden"] as! Int, classes: classes).network()
        case "resnet":
            return ResNetConfig(
                block: .bottleneck, layers: c["layers"] as! [Int], classes: classes, stem: c["stem"] as! Int,
                widths: c["widths"] as! [Int], groups: c["groups"] as! Int,
                widthPerGroup: c["width_per_group"] as! Int
            ).network()
        default:
            fatalError("unknown family in families.json")
        }
    }

    static let realWeights = Golden.root.appendingPathComponent("Weights/mobilenet_v2-b0353104.pth").path
    static var realAvailable: Bool { FileManager.default.fileExists(atPath: realWeights) }
}

@Suite struct FamilyGoldenTests {
    static let names = [
        "mobilenet_v2_small", "vgg_small", "vgg_bn_small", "alexnet_small", "resnext_small",
        "wide_resnet_small", "mobilenet_v3_large_small", "mobilenet_v3_small_small", "efficientnet_b0_small",
        "efficientnet_v2_small", "mnasnet_small", "mnasnet_v1_stem", "regnet_y_small",
        "regnet_x_small", "shufflenet_small", "densenet_small", "convnext_small_case", "squeezenet_small_case",
        "googlenet_small_case", "inception_v3_small_case",
    ]
    /// The cases whose logits are checked: every case above, and a DenseNet saved under the old key names.
    static let logitCases = names + ["densenet_legacy_names"]

    @Test func generatorAndCases() throws {
        let meta = try Families.meta()
        #expect(meta["generator"] as? String == "Tests/Reference/make_golden_families.py")
        #expect((meta["torch"] as? String)?.hasPrefix("1.13") == true)
        let cases = try Families.cases()
        for n in Self.names { #expect(cases[n] != nil, "families.json lacks \(n)") }
    }

    /// The description's state-dict names are torchvision's: a strict load of torch's own state dict
    /// loads every key and leaves none over.
    @Test(arguments: names)
    func namesAreTorchvisions(_ name: String) throws {
        let c = try Families.cases()[name]!
        let net = Families.network(c)
        let sd = try Checkpoint(path: Families.path(c["weights"] as! String)).stateDict()
        #expect(sd.count == c["state_dict_keys"] as! Int)
        let report = try net.load(sd)
        #expect(report.missing.isEmpty && report.unexpected.isEmpty)
        // GoogLeNet's file holds its auxiliary classifiers, which loading reads and drops.
        #expect(report.loaded.count + report.dropped.count == sd.count)
        #expect(report.dropped.allSatisfy { ["aux1.", "aux2.", "AuxLogits."].contains(where: $0.hasPrefix) })
        #expect(
            (name.hasPrefix("googlenet") || name.hasPrefix("inception")) == !report.dropped.isEmpty,
            "\(report.dropped)")
        #expect(net.stateEntries.map(\.name) == sd.names.filter { !net.isDropped($0) }, "state_dict() order")
    }

    @Test(arguments: logitCases)
    func logitsMatchTorch(_ name: String) throws {
        let c = try Families.cases()[name]!
        let net = Families.network(c)
        try net.load(try Checkpoint(path: Families.path(c["weights"] as! String)).stateDict())
        let input = try NPYArray(path: Families.path(c["input"] as! String))
        let want = try NPYArray(path: Families.path(c["logits"] as! String)).float32()
        let s = input.shape
        let run = Inference(net)
        for threads in [1, 2] {
            for winograd in [true, false] {
                run.threads = threads
                run.useWinograd = winograd
                let got = try run.logits(try input.float32(), batch: s[0], height: s[2], width: s[3])
                Golden.check(got, want, classes: net.classes, "\(name), \(threads) threads, winograd \(winograd)")
            }
        }
        // One image at a time gives the same rows (the stem's image-by-image pooling, buffers re-planned).
        let x = try input.float32(), each = x.count / s[0]
        for n in 0..<s[0] {
            let got = try run.logits(Array(x[(n * each)..<((n + 1) * each)]), batch: 1, height: s[2], width: s[3])
            Golden.check(
                got, Array(want[(n * net.classes)..<((n + 1) * net.classes)]), classes: net.classes,
                "\(name) image \(n)")
        }
    }

    /// What lowering made of each family: BN folded, activations and residual adds in the epilogues.
    @Test func loweringFusesWhatItShould() throws {
        let cases = try Families.cases()
        let mobileNet = Families.network(cases["mobilenet_v2_small"]!)
        let mobile = Inference(mobileNet).stepListing
        #expect(mobile.contains("features.0.0 [dense relu6]"), "features.0's output is also features.1's residual here")
        #expect(
            mobile.contains(
                "features.1.conv.0.0 [depthwise relu6] → features.1.conv.1 [dense +residual] (by row bands)"),
            "\(mobile)")
        // torchvision's full width: features.1 has no residual (32 → 16), so the 3×3 stride-2 stem is its expand.
        let full = Inference(Architecture.named("mobilenet_v2")!.build(1000)).stepListing
        #expect(
            full.contains(
                "features.0.0 [dense relu6] → features.1.conv.0.0 [depthwise relu6] → features.1.conv.1 [dense] (by row bands)"
            ),
            "\(full)")
        #expect(
            mobile.contains(
                "features.2.conv.0.0 [dense relu6] → features.2.conv.1.0 [depthwise relu6] → features.2.conv.2 [dense] (by row bands)"
            ))
        #expect(
            mobile.contains(
                "features.3.conv.0.0 [dense relu6] → features.3.conv.1.0 [depthwise relu6] → features.3.conv.2 [dense +residual] (by row bands)"
            ))
        #expect(!mobile.contains { $0.contains("features.0.1") }, "BatchNorm folded away")
        let unfused = Inference(mobileNet, fuseBlocks: false).stepListing
        #expect(unfused.contains("features.2.conv.1.0 [depthwise relu6]"))
        #expect(unfused.contains("features.3.conv.2 [dense +residual]"), "\(unfused)")
        let vgg = Inference(Families.network(cases["vgg_bn_small"]!)).stepListing
        #expect(vgg.contains("features.0 + features.3 [dense relu]"), "\(vgg)")
        #expect(vgg.contains("classifier.0 [linear relu]"))
        let resNeXt = Families.network(cases["resnext_small"]!)
        let resnext = Inference(resNeXt).stepListing
        #expect(
            resnext.contains(
                "layer1.0.conv1 [dense relu] → layer1.0.conv2 [depthwise relu] → layer1.0.conv3 [dense +residual relu] (by row bands)"
            ),
            "4 channels in 4 groups: a depthwise bottleneck, \(resnext)")
        #expect(resnext.contains("layer2.0.conv2 [grouped relu]"))
        #expect(Inference(resNeXt, fuseBlocks: false).stepListing.contains("layer1.0.conv3 [dense +residual relu]"))
        // Stochastic depth is the identity in eval mode: the residual add joins the projection's epilogue,
        // and the step list has no stochastic depth step.
        let efficient = Inference(Families.network(cases["efficientnet_b0_small"]!)).stepListing
        #expect(efficient.contains("features.1.0.block.2.0 [dense +residual]"), "\(efficient)")
        #expect(!efficient.contains { $0.contains("stochastic_depth") || $0.hasSuffix(".add") })
        // A BatchNorm that follows no convolution takes the ReLU after it into its pass.
        let dense = Inference(Families.network(cases["densenet_small"]!)).stepListing
        #expect(
            dense.contains("features.denseblock1.denselayer2.norm1 + features.denseblock1.denselayer2.relu1"),
            "\(dense)")
    }

    /// The blocks run by row bands give the same bits as their three convolutions one after another, for
    /// whole networks: every batch size and thread count, both families with depthwise bottlenecks.
    @Test(arguments: ["mobilenet_v2_small", "resnext_small"])
    func fusedBlocksGiveTheUnfusedBits(_ name: String) throws {
        let c = try Families.cases()[name]!
        let net = Families.network(c)
        try net.load(try Checkpoint(path: Families.path(c["weights"] as! String)).stateDict())
        let fused = Inference(net), unfused = Inference(net, fuseBlocks: false)
        #expect(fused.steps.count < unfused.steps.count, "nothing was fused")
        var rng = TestRandom(seed: 15)
        for (batch, size) in [(1, 32), (3, 40), (2, 57)] {
            let x = (0..<(batch * 3 * size * size)).map { _ in Float.random(in: -2...2, using: &rng) }
            for threads in [1, 2, 3] {
                fused.threads = threads
                unfused.threads = threads
                let a = try fused.logits(x, batch: batch, height: size, width: size)
                let b = try unfused.logits(x, batch: batch, height: size, width: size)
                #expect(a == b, "\(name): batch \(batch), \(size)×\(size), \(threads) threads")
            }
        }
    }

    /// torchvision's full-width MobileNetV2 (seeded), whose first block takes the 3×3 stride-2 stem as
    /// its expand: the same bits by bands as layer by layer.
    @Test func fullMobileNetV2FusedGivesTheUnfusedBits() throws {
        let net = Architecture.named("mobilenet_v2")!.build(10)
        net.fillSeeded()
        let fused = Inference(net), unfused = Inference(net, fuseBlocks: false)
        var rng = TestRandom(seed: 2)
        for (batch, size) in [(1, 96), (2, 64)] {
            let x = (0..<(batch * 3 * size * size)).map { _ in Float.random(in: -2...2, using: &rng) }
            for threads in [1, 2] {
                fused.threads = threads
                unfused.threads = threads
                #expect(
                    try fused.logits(x, batch: batch, height: size, width: size)
                        == unfused.logits(x, batch: batch, height: size, width: size),
                    "batch \(batch), \(threads) threads")
            }
        }
    }

    /// torchvision's ImageNet MobileNetV2 (scripts/fetch_mobilenet_v2.sh) on the committed photos, through
    /// the eval transform: torch's logits within the bound and its top-5.
    @Test(
        .enabled(
            if: Families.realAvailable,
            "Weights/mobilenet_v2-b0353104.pth is absent (bash scripts/fetch_mobilenet_v2.sh)"))
    func realMobileNetV2OnPhotos() throws {
        let c = try Families.cases()["mobilenet_v2-real"]
        let real = try #require(
            c, "families.json has no mobilenet_v2-real case: rerun make_golden_families.py with the weights present")
        let net = Architecture.named("mobilenet_v2")!.build(1000)
        let report = try net.load(try Checkpoint(path: Families.realWeights).stateDict())
        #expect(report.loaded.count == 314)
        let photos = real["images"] as! [String]
        var batch: [Float] = []
        for p in photos {
            batch += try ImageNetEval().tensor(
                from: Golden.root.appendingPathComponent("Tests/Fixtures/images/\(p)").path)
        }
        let want = try NPYArray(path: Families.path(real["logits"] as! String)).float32()
        let run = Inference(net)
        run.threads = 2
        let got = try run.logits(batch, batch: photos.count, height: 224, width: 224)
        Golden.check(got, want, classes: 1000, "mobilenet_v2 on the photos")
    }
}

@Suite struct NetworkDescriptionTests {
    /// `Network.shapes` against the runtime: for every architecture at 224×224 the last shape is the
    /// logits (classes × 1 × 1), each convolution's output size is what `Conv2dGeometry` (its own formula,
    /// with dilation) gives for its input, and each one's channels follow the layer; an input torch refuses
    /// gives nil instead of a size.
    @Test func shapesFollowTheLayers() throws {
        for arch in Architecture.all {
            let net = arch.build(10)
            let shapes = try #require(net.shapes(height: 224, width: 224), "\(arch.name) at 224")
            #expect(shapes.last == NodeShape(channels: 10, height: 1, width: 1), "\(arch.name): \(shapes.last!)")
            for (i, node) in net.nodes.enumerated() {
                guard case .conv(let c) = node.layer else { continue }
                let x = shapes[node.inputs[0]]
                let g = Conv2dGeometry(
                    batch: 1, inChannels: c.inChannels, height: x.height, width: x.width,
                    outChannels: c.outChannels, kernel: (c.kernelHeight, c.kernelWidth), stride: (c.stride, c.stride),
                    padding: (c.paddingHeight, c.paddingWidth), groups: c.groups)
                #expect(
                    shapes[i] == NodeShape(channels: c.outChannels, height: g.outHeight, width: g.outWidth),
                    "\(arch.name) \(node.name)")
            }
        }
        // Inputs torch refuses: AlexNet's 11×11 stem on 1×1 ("kernel size can't be greater than actual input
        // size"), VGG's first 2×2 max pool on 1×1 ("output size is too small").
        #expect(Architecture.named("alexnet")!.build(10).shapes(height: 1, width: 1) == nil)
        #expect(Architecture.named("vgg11")!.build(10).shapes(height: 1, width: 1) == nil)
    }

    /// An input a network cannot take is refused before anything runs, naming the layer, by the same
    /// shape walk `Network.shapes` reads (`Lowering.shapes`): VGG's first max pool on 1×1 (fused into the
    /// convolution before it when inference runs), AlexNet's 11×11 stem.
    @Test func anInputTooSmallIsRefusedNamingTheLayer() throws {
        let vgg = Inference(Architecture.named("vgg11")!.build(10))
        #expect(throws: InferenceError.shape(step: "features.2", detail: "input 1×1 is too small for a 2×2 pool")) {
            try vgg.checkPlan(batch: 1, height: 1, width: 1)
        }
        let alexnet = Inference(Architecture.named("alexnet")!.build(10))
        #expect(throws: InferenceError.shape(step: "features.0", detail: "input 1×1 is too small")) {
            try alexnet.checkPlan(batch: 2, height: 1, width: 1)
        }
        try vgg.checkPlan(batch: 1, height: 32, width: 32)
        #expect(throws: InferenceError.shape(step: "input", detail: "an input of 0×32")) {
            try vgg.checkPlan(batch: 1, height: 0, width: 32)
        }
    }

    /// Every registered architecture builds, with unique parameter names, stages whose prefixes own only
    /// backbone parameters and every backbone parameter owned by exactly one stage.
    @Test func everyArchitectureBuildsWithStagesCoveringTheBackbone() {
        for arch in Architecture.all {
            let net = arch.build(10)
            #expect(net.name == arch.name)
            #expect(net.classes == 10)
            let names = net.namedParameters.map(\.name)
            for n in names {
                let owners = net.stages.filter { s in s.prefixes.contains { n.hasPrefix($0) } }
                if n.hasPrefix(net.head + ".") {
                    #expect(owners.isEmpty, "\(arch.name): head parameter \(n) in a stage")
                } else {
                    #expect(owners.count == 1, "\(arch.name): \(n) is owned by \(owners.map(\.name))")
                }
            }
        }
    }

    @Test func torchvisionParameterCounts() {
        // torchvision 0.14's sum(p.numel() for p in model.parameters()), printed by
        // `python3 -c "import torchvision; m = torchvision.models.NAME(); print(sum(p.numel() for p in m.parameters()))"`
        // (googlenet, inception_v3: NAME(aux_logits=False, init_weights=False), as pth2swt builds them).
        let want = [
            "resnet18": 11_689_512, "resnet50": 25_557_032, "resnext50_32x4d": 25_028_904,
            "wide_resnet50_2": 68_883_240, "alexnet": 61_100_840, "vgg11": 132_863_336, "vgg16_bn": 138_365_992,
            "mobilenet_v2": 3_504_872, "mobilenet_v3_large": 5_483_032, "mobilenet_v3_small": 2_542_856,
            "efficientnet_b0": 5_288_548, "efficientnet_b7": 66_347_960, "efficientnet_v2_s": 21_458_488,
            "mnasnet0_5": 2_218_512, "mnasnet1_0": 4_383_312, "mnasnet1_3": 6_282_256, "regnet_y_400mf": 4_344_144,
            "regnet_x_400mf": 5_495_976, "regnet_y_16gf": 83_590_140, "shufflenet_v2_x0_5": 1_366_792,
            "shufflenet_v2_x2_0": 7_393_996, "densenet121": 7_978_856, "densenet161": 28_681_000,
            "convnext_tiny": 28_589_128, "convnext_small": 50_223_688, "convnext_base": 88_591_464,
            "convnext_large": 197_767_336, "squeezenet1_0": 1_248_424, "squeezenet1_1": 1_235_496,
            "googlenet": 6_624_904, "inception_v3": 23_834_568,
        ]
        for (name, count) in want {
            let net = Architecture.named(name)!.build(1000)
            #expect(net.namedParameters.reduce(0) { $0 + $1.parameter.count } == count, "\(name)")
        }
    }

    /// Every full-size builder that architectures.json records (make_golden_families.py, torchvision 0.14's
    /// `model.state_dict()`) has torchvision's state-dict names, in its order, with its shapes.
    @Test func fullSizeStateDictsAreTorchvisions() throws {
        let json =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: Families.path("architectures.json")))) as! [String: Any]
        let all = json["state_dicts"] as! [String: [[Any]]]
        #expect(all.count >= 2)
        for (arch, entries) in all {
            guard let a = Architecture.named(arch) else {
                Issue.record("architectures.json names \(arch), which is not registered")
                continue
            }
            let got = a.build(1000).stateEntries.map { "\($0.name) \($0.entry.shape)" }
            let want = entries.map { "\($0[0] as! String) \(($0[1] as! [Int]))" }
            #expect(got == want, "\(arch)")
        }
    }

    /// A version-1 MNASNet file (the stem 32 and 16 wide, as torchvision's published mnasnet0_5 is) gets
    /// the version-1 description from the architecture, as torchvision's loader patches its model.
    @Test func versionOneMNASNetFilesGetTheirLayout() throws {
        let c = try Families.cases()["mnasnet_v1_stem"]!
        let sd = try Checkpoint(path: Families.path(c["weights"] as! String)).stateDict()
        let net = Architecture.named("mnasnet0_5")!.sizedFor(sd)
        #expect(net.classes == 10)
        let report = try net.load(sd)
        #expect(report.missing.isEmpty && report.unexpected.isEmpty && report.shapeMismatches.isEmpty)
        #expect(Architecture.named("mnasnet0_5")!.build(10).conv("layers.0").outChannels == 16)
    }

    /// A DenseNet file under the key names of torchvision's published files (`denselayer1.norm.1.weight`,
    /// no num_batches_tracked) loads as torchvision's loader loads it: renamed, and the report says so.
    @Test func denseNetLoadsItsOldKeyNames() throws {
        let c = try Families.cases()["densenet_legacy_names"]!
        let sd = try Checkpoint(path: Families.path(c["weights"] as! String)).stateDict()
        #expect(sd.names.contains("features.denseblock1.denselayer1.norm.1.weight"))
        let net = Families.network(c)
        let report = try net.load(sd)
        #expect(report.missing.isEmpty && report.unexpected.isEmpty)
        // Per dense layer: norm1, norm2 (weight, bias, running_mean, running_var) and conv1, conv2.
        let layers = (c["blocks"] as! [Int]).reduce(0, +)
        #expect(report.renamed.count == layers * 10)
        #expect(
            report.renamed.contains {
                $0.from == "features.denseblock1.denselayer1.norm.1.weight"
                    && $0.to == "features.denseblock1.denselayer1.norm1.weight"
            })
        #expect(report.description.contains("under their old names"), "\(report)")
        #expect(!report.filledNumBatchesTracked.isEmpty)
        #expect(DenseNetConfig.currentName(ofLegacy: "features.denseblock1.denselayer1.norm1.weight") == nil)
        #expect(DenseNetConfig.currentName(ofLegacy: "features.transition1.norm.weight") == nil)
    }

    @Test func headKindsParse() {
        #expect(HeadKind(parsing: "linear") == .linear)
        #expect(HeadKind(parsing: "mlp:256") == .mlp(hidden: 256, dropout: 0.5))
        #expect(HeadKind(parsing: "mlp:128:0.2") == .mlp(hidden: 128, dropout: 0.2))
        for bad in ["mlp", "mlp:", "mlp:0", "mlp:12:1", "mlp:12:-0.1", "mlp:1:2:3", "conv"] {
            #expect(HeadKind(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test func mlpHeadHasTorchsSequentialNames() {
        let net = Architecture.named("mobilenet_v2")!.build(1000)
        net.replaceHead(classes: 7, kind: .mlp(hidden: 32, dropout: 0.3), seed: 1)
        let names = net.namedParameters.map(\.name).filter { $0.hasPrefix("classifier") }
        #expect(
            names == ["classifier.1.0.weight", "classifier.1.0.bias", "classifier.1.3.weight", "classifier.1.3.bias"])
        #expect(net.classes == 7 && net.headInputFeatures == 1280)
    }
}
