import NN
import Testing
import Vision

@testable import Training

/// Freezing as a type: ResNet's stages by name, the old `through:` spellings, and what checkpoints record.
@Suite struct FreezeTests {
    let stages = StageList.resnet

    @Test func parsesStageNamesAndOldSpellings() {
        #expect(Freeze(parsing: "none", stages: stages) == Freeze.none)
        #expect(Freeze(parsing: "backbone", stages: stages) == .backbone)
        #expect(Freeze(parsing: "layer2", stages: stages) == .through("layer2"))
        #expect(Freeze(parsing: "through:layer2", stages: stages) == .through("layer2"))
        #expect(Freeze(parsing: "through:stem", stages: stages) == .through("stem"))
        // The last stage frozen is the whole backbone.
        #expect(Freeze(parsing: "layer4", stages: stages) == .backbone)
        #expect(Freeze(parsing: "through:layer4", stages: stages) == .backbone)
        #expect(Freeze(parsing: "layer5", stages: stages) == nil)
        #expect(Freeze(parsing: "fc", stages: stages) == nil)
        #expect(stages.choices == "none, stem, layer1, layer2, layer3, backbone")
    }

    @Test func countsAndPrefixesFollowTheStages() {
        let all: [Freeze] = [
            .none, .through("stem"), .through("layer1"), .through("layer2"), .through("layer3"), .backbone,
        ]
        #expect(all.map { $0.frozenCount(in: stages) } == [0, 1, 2, 3, 4, 5])
        for (i, f) in all.enumerated() {
            #expect(Freeze(frozenCount: i, in: stages) == f)
            #expect(Freeze(parsing: f.spelling, stages: stages) == f, "\(f.spelling) reads back")
        }
        #expect(stages.frozenPrefixes(.through("layer1")) == ["conv1.", "bn1.", "layer1."])
        #expect(stages.frozenPrefixes(.none).isEmpty)
        #expect(stages.frozenPrefixes(.backbone).count == 6 && !stages.frozenPrefixes(.backbone).contains("fc."))
        var config = FineTuneConfig()
        config.frozenThrough = 3
        #expect(config.freeze == .through("layer2"))
    }

    @Test func checkpointsBeforeTheTypeStillResume() {
        #expect(
            TrainingMode(legacy: "freeze through:layer2, bn eval")
                == TrainingMode(freeze: .through("layer2"), batchNormTrains: false))
        #expect(
            TrainingMode(legacy: "freeze backbone, bn train") == TrainingMode(freeze: .backbone, batchNormTrains: true))
        #expect(TrainingMode(legacy: "freeze none, bn eval")?.freeze == Freeze.none)
        #expect(TrainingMode(legacy: "freeze everything") == nil)
        #expect("\(TrainingMode(freeze: .through("layer3"), batchNormTrains: false))" == "--freeze layer3 --bn eval")
    }

    /// Every family names its stages in its description; ResNet's are the ones above.
    @Test func everyFamilyNamesItsStages() {
        #expect(StageList(ResNetConfig.resnet18.network()) == StageList.resnet)
        let mobile = StageList(MobileNetV2Config(classes: 2).network())
        #expect(mobile.names == (0...18).map { "features.\($0)" } && mobile.head == "classifier.1.")
        #expect(Freeze(parsing: "features.13", stages: mobile) == .through("features.13"))
        #expect(Freeze(parsing: "features", stages: mobile) == .backbone, "a family prefix: its last stage")
        #expect(mobile.frozenPrefixes(.through("features.1")) == ["features.0.", "features.1."])
        let vgg = StageList(VGGConfig(layers: VGGConfig.cfgs[11]!, batchNorm: true, classes: 2).network())
        #expect(
            vgg.names == [
                "features.0", "features.4", "features.8", "features.11", "features.15", "features.18", "features.22",
                "features.25", "classifier.0", "classifier.3",
            ])
        #expect(vgg.prefixes[0] == ["features.0.", "features.1."], "a convolution and its BatchNorm")
        #expect(Freeze(parsing: "features", stages: vgg) == .through("features.25"))
        #expect(Freeze(parsing: "classifier", stages: vgg) == .backbone)
        #expect(Freeze(parsing: "classifier.6", stages: vgg) == nil, "the head is no stage")
        let alex = StageList(AlexNetConfig(classes: 2).network())
        #expect(
            alex.names == [
                "features.0", "features.3", "features.6", "features.8", "features.10", "classifier.1", "classifier.4",
            ])
    }

    /// A frozen backbone's MLP head trains on its own: the head network shares the model's parameters.
    @Test func theHeadNetworkSharesTheParameters() {
        let net = MobileNetV2Config(classes: 10, widthMult: 0.25).network()
        net.replaceHead(classes: 3, kind: .mlp(hidden: 8, dropout: 0.1), seed: 2)
        let head = net.headNetwork()
        #expect(
            head.namedParameters.map(\.name) == [
                "classifier.1.0.weight", "classifier.1.0.bias", "classifier.1.3.weight",
                "classifier.1.3.bias",
            ])
        for ((_, p), (_, q)) in zip(head.namedParameters, net.namedParameters.suffix(4)) { #expect(p === q) }
        #expect(head.classes == 3 && head.headInputFeatures == 1280)
    }
}
