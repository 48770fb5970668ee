import Checkpoint
import Foundation
import NN
import Tensors
import Testing
import Training
import Vision

enum Fixtures {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static func path(_ name: String) -> String { root.appendingPathComponent("Tests/Fixtures/\(name)").path }
    static let sharedZip = root.deletingLastPathComponent().appendingPathComponent("shared/weights/resnet18-zip.pth")
        .path
    static var sharedAvailable: Bool { FileManager.default.fileExists(atPath: sharedZip) }
    static var fashionMNISTAvailable: Bool {
        FileManager.default.fileExists(atPath: "/usr/share/datasets/fashion-mnist")
    }

    /// A JSON file under Tests/Fixtures, as Foundation objects.
    static func json(_ name: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path(name)))) as! [String: Any]
    }
}

func floats(_ any: Any?) -> [Float] { (any as! [NSNumber]).map { Float($0.doubleValue) } }
func doubles(_ any: Any?) -> [Double] { (any as! [NSNumber]).map(\.doubleValue) }

/// max |got − want| ≤ rtol · max |want| (the scale is the largest magnitude, so entries near zero are
/// held to the same absolute bound as the rest).
func expectClose<G: BinaryFloatingPoint, W: BinaryFloatingPoint>(
    _ got: [G], _ want: [W], rtol: Double, _ what: String, sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(got.count == want.count, "\(what): \(got.count) values, want \(want.count)", sourceLocation: sourceLocation)
    guard got.count == want.count, !want.isEmpty else { return }
    let scale = max(want.map { abs(Double($0)) }.max()!, 1e-30)
    let err = zip(got, want).map { abs(Double($0) - Double($1)) }.max()!
    #expect(
        err <= rtol * scale, "\(what): max |Δ| \(err), max |want| \(scale), rtol \(rtol)",
        sourceLocation: sourceLocation)
}

/// A small seeded ResNet (BasicBlock, widths 8…32) with random BN statistics, so tests of the
/// training loop run in a debug build in well under a second per epoch.
func smallResNet(classes: Int = 3, seed: UInt64 = 7) -> ResNet {
    let model = ResNet(
        ResNetConfig(block: .basic, layers: [1, 1, 1, 1], classes: classes, stem: 8, widths: [8, 16, 16, 32]))
    var rng = SplitMix64(seed: seed)
    for (name, entry) in model.stateEntries {
        switch entry {
        case .parameter(let p), .buffer(let p):
            let isVar = name.hasSuffix("running_var"), isBNWeight = name.hasSuffix("weight") && p.shape.count == 1
            for i in 0..<p.count {
                let u = rng.nextUnitFloat()
                if isVar || isBNWeight {
                    p.data[i] = 0.5 + u
                } else if p.shape.count == 4 {
                    let fanIn = Float(p.shape[1] * p.shape[2] * p.shape[3])
                    p.data[i] = (u * 2 - 1) * (3 / fanIn).squareRoot()
                } else {
                    p.data[i] = (u - 0.5) * 0.2
                }
            }
        case .int64: break
        }
    }
    model.replaceHead(classes: classes, seed: seed)
    return model
}

/// `count` seeded [3, size, size] inputs in [-1, 1) with labels cycling through `classes`.
func seededInputs(count: Int, size: Int, classes: Int, seed: UInt64 = 11) -> TensorInputs {
    var rng = SplitMix64(seed: seed)
    let inputs = (0..<count).map { n in
        (0..<(3 * size * size)).map { _ in rng.nextUnitFloat() * 2 - 1 + Float(n % classes) * 0.3 }
    }
    return TensorInputs(
        inputs: inputs, labels: (0..<count).map { $0 % classes },
        classNames: (0..<classes).map { "c\($0)" }, height: size, width: size)
}

/// A checkpoint (values included) written as .swt to a temporary file and read back, as `--resume` reads it.
func throughFile(_ sd: StateDict, name: String) throws -> StateDict {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let path = dir.appendingPathComponent("ckpt.swt").path
    try SWTWriter.write(sd, to: path, values: sd.values, converter: "test")
    return try Checkpoint(path: path).stateDict()
}

/// How far torch's own 20-step run moves when its starting weights move by the rounding of one
/// convolution's sum (2⁻²⁰ relative), or when it runs in float64 (Tests/Reference/make_train_perturbation.py, torch 1.13 → train/perturbation.json):
/// per step for the loss, per tensor for the first update and the final state, the larger of the two.
/// Runs that start one rounding apart part by this much, so the parity tests hold every ISA tier to the
/// larger of their fixed bound and three times these figures.
struct Perturbation {
    let loss: [Double]
    let step1: [String: Double]
    /// The largest final-state spread of any tensor: after 20 steps the trajectories have parted, and every
    /// tensor that trains has moved with them.
    let state: Double

    init(mode: String) throws {
        let file = try Fixtures.json("train/perturbation.json")
        precondition(file["generator"] as? String == "Tests/Reference/make_train_perturbation.py")
        self.init(record: (file["modes"] as! [String: [String: Any]])[mode]!)
    }

    /// One mode's record, as make_train_perturbation.py's `record` writes it.
    init(record m: [String: Any]) {
        let f64 = m["float64"] as! [String: Any]
        func table(_ any: Any?) -> [String: Double] { (any as! [String: NSNumber]).mapValues(\.doubleValue) }
        loss = zip(doubles(m["loss"]), doubles(f64["loss"])).map { max($0, $1) }
        step1 = table(m["step1"]).merging(table(f64["step1"]), uniquingKeysWith: max)
        state = max(table(m["state"]).values.max()!, table(f64["state"]).values.max()!)
    }

    /// max(bound, 3 × the loss spread at step k (0-based)).
    func loss(_ k: Int, atLeast bound: Double) -> Double { max(bound, 3 * loss[k]) }
    /// max(bound, 3 × the first-update spread of `name`).
    func step1(_ name: String, atLeast bound: Double) -> Double { max(bound, 3 * (step1[name] ?? 0)) }
    /// max(bound, 3 × the largest final-state spread).
    func state(atLeast bound: Double) -> Double { max(bound, 3 * state) }
}
