import Foundation
import NN
import Testing
import Vision

@testable import Training

/// Training that diverges stops with the epoch and step, and degenerate data is an error, not a crash.
@Suite struct NonFiniteTests {
    /// The SIMD check against the element-by-element answer, with a NaN or infinity at every position
    /// of buffers whose lengths straddle the 16-lane blocks.
    @Test func allFiniteMatchesTheScalarAnswer() {
        for n in [0, 1, 15, 16, 17, 33, 100] {
            var x = (0..<n).map { Float($0) * 1e30 - 3 }
            #expect(NonFinite.allFinite(x) == x.allSatisfy(\.isFinite))
            for i in 0..<n {
                for bad in [Float.nan, .infinity, -.infinity] {
                    let keep = x[i]
                    x[i] = bad
                    #expect(!NonFinite.allFinite(x), "n \(n), \(bad) at \(i)")
                    x[i] = keep
                }
            }
        }
        #expect(NonFinite.allFinite([Float.greatestFiniteMagnitude, -.greatestFiniteMagnitude]))
    }

    static func config(lr: Double, freeze: Freeze) -> FineTuneConfig {
        var config = FineTuneConfig()
        config.batchSize = 4
        config.threads = 1
        config.head.lr = lr
        config.head.momentum = 0
        config.freeze = freeze
        return config
    }

    /// A learning rate of 1e308 (Float(-1e308) is -∞): the first update makes the weights NaN or
    /// infinite, which the epoch's end finds; the error names epoch 1 and the step.
    @Test func hugeLearningRateStopsWithEpochAndStep() throws {
        let data = seededInputs(count: 8, size: 32, classes: 3)
        for frozen in [true, false] {
            let model = smallResNet()
            let config = Self.config(lr: 1e308, freeze: frozen ? .backbone : .none)
            let trainer: any FineTuner =
                frozen
                ? try FrozenBackboneTrainer(model: model.network, config: config)
                : try BackboneTrainer(model: model.network, config: config)
            let e = #expect(throws: TrainingError.self) { try trainer.trainEpoch(data, test: nil, progress: nil) }
            switch e {
            case .nonFiniteWeights(_, let epoch, let step)?: #expect(epoch == 1 && step == 2, "\(e!)")
            case .nonFinite(_, let epoch, let step)?: #expect(epoch == 1 && step == 2, "\(e!)")
            case nil: Issue.record("no error")
            }
            #expect(trainer.completedEpochs == 0)
        }
    }

    /// A NaN in the input makes the loss NaN at the first step: nothing of that step is applied.
    @Test func nanLossStopsBeforeTheUpdate() throws {
        let seeded = seededInputs(count: 4, size: 32, classes: 3)
        var inputs = seeded.inputs
        inputs[2][5] = .nan
        let data = TensorInputs(
            inputs: inputs, labels: seeded.labels, classNames: seeded.classNames, height: 32, width: 32)
        let model = smallResNet()
        let before = model.network.namedParameters.map { $0.parameter.data }
        let trainer = try BackboneTrainer(model: model.network, config: Self.config(lr: 0.1, freeze: .none))
        #expect(throws: TrainingError.nonFinite(what: "the loss", epoch: 1, step: 1)) {
            try trainer.trainEpoch(data, test: nil, progress: nil)
        }
        #expect(model.network.namedParameters.map { $0.parameter.data } == before, "the step was applied")
    }

    @Test func zeroSizedIDXImagesAndEmptySplitsAreErrors() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("nonfinite-idx-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        func write(count: UInt8, rows: UInt8, columns: UInt8) throws {
            for split in ["train", "t10k"] {
                let images: [UInt8] =
                    [0, 0, 8, 3, 0, 0, 0, count, 0, 0, 0, rows, 0, 0, 0, columns]
                    + [UInt8](repeating: 1, count: Int(count) * Int(rows) * Int(columns))
                try Data(images).write(to: dir.appendingPathComponent("\(split)-images-idx3-ubyte"))
                try Data([0, 0, 8, 1, 0, 0, 0, count] + [UInt8](repeating: 0, count: Int(count)))
                    .write(to: dir.appendingPathComponent("\(split)-labels-idx1-ubyte"))
            }
        }
        try write(count: 2, rows: 0, columns: 0)
        #expect(
            throws: DataError.idx(
                dir.path + "/train-images-idx3-ubyte",
                "images of 0×0 pixels: an image needs at least one row and one column")
        ) {
            try IDXDataset(directory: dir.path, split: .train)
        }
        try write(count: 0, rows: 28, columns: 28)
        #expect(throws: DataError.emptySplit(dir.path, "train")) {
            try DataSelection(path: dir.path).load(classes: 2, seed: 0)
        }
        #expect(throws: DataError.emptySplit(dir.path, "test")) {
            try DataSelection(path: dir.path).loadTest(classes: 2, seed: 0, asked: "the head has")
        }
        // A shape whose size overflows is refused from the header, before anything is allocated.
        try Data([0, 0, 8, 3, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF])
            .write(to: dir.appendingPathComponent("huge"))
        #expect(throws: DataError.self) { try IDXArray(path: dir.appendingPathComponent("huge").path) }
    }
}
