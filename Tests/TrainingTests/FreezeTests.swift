import Testing
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
        let all: [Freeze] = [.none, .through("stem"), .through("layer1"), .through("layer2"), .through("layer3"), .backbone]
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
        #expect(TrainingMode(legacy: "freeze through:layer2, bn eval") == TrainingMode(freeze: .through("layer2"), batchNormTrains: false))
        #expect(TrainingMode(legacy: "freeze backbone, bn train") == TrainingMode(freeze: .backbone, batchNormTrains: true))
        #expect(TrainingMode(legacy: "freeze none, bn eval")?.freeze == Freeze.none)
        #expect(TrainingMode(legacy: "freeze everything") == nil)
        #expect("\(TrainingMode(freeze: .through("layer3"), batchNormTrains: false))" == "--freeze layer3 --bn eval")
    }
}
