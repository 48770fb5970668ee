import Foundation
import NN
import Testing
import Vision
@testable import Training

/// `NetworkStep` (any Network) against `BackboneStep` (ResNet, written out by hand) on the same seeded
/// small ResNet: the same kernels in the same order, so the weights, BatchNorm statistics and losses
/// agree bit for bit after several steps, in every freezing mode.
@Suite struct NetworkStepTests {
    @Test(arguments: [0, 2, 3, 5])
    func matchesBackboneStepBitForBit(_ frozenThrough: Int) throws {
        for bnTrains in frozenThrough == 0 ? [false] : [false, true] {
            let a = smallResNet(), b = smallResNet()
            let options = SGDOptions(lr: 0.05, momentum: 0.9, weightDecay: 1e-3)
            let old = try BackboneStep(model: a, frozenThrough: frozenThrough, options: options, frozenBatchNormTrains: bnTrains,
                                       threads: 2)
            let prefixes = StageList(b.network).frozenPrefixes(Freeze(frozenCount: frozenThrough, in: StageList(b.network)))
            let new = try NetworkStep(network: b.network, frozen: prefixes, options: options, frozenBatchNormTrains: bnTrains,
                                      threads: 2)
            let data = seededInputs(count: 8, size: 32, classes: 3)
            for k in 0..<3 {
                let idx = (0..<4).map { (3 * k + $0) % 8 }
                let x = idx.flatMap { data.inputs[$0] }, y = idx.map { data.labels[$0] }
                let la = try old.step(x, labels: y, height: 32, width: 32)
                let lb = try new.step(x, labels: y, height: 32, width: 32)
                #expect(la.loss == lb.loss && la.correct == lb.correct, "frozen \(frozenThrough), bn trains \(bnTrains), step \(k)")
            }
            let sa = a.stateEntries, sb = b.stateEntries
            #expect(sa.map(\.name) == sb.map(\.name))
            for (ea, eb) in zip(sa, sb) {
                switch (ea.entry, eb.entry) {
                case (.parameter(let p), .parameter(let q)), (.buffer(let p), .buffer(let q)):
                    #expect(p.data == q.data, "frozen \(frozenThrough), bn trains \(bnTrains): \(ea.name)")
                case (.int64(let p), .int64(let q)):
                    #expect(p.value == q.value, "\(ea.name)")
                default:
                    Issue.record("\(ea.name): different kinds")
                }
            }
        }
    }
}
