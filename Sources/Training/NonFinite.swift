import NN

/// A training step's loss or gradient that is NaN or infinite. The step throws it before the optimizer
/// applies anything, so the weights stay those of the last good step; the trainer's epoch loop turns it
/// into `TrainingError.nonFinite` with the epoch and step.
public struct NonFiniteError: Error, Equatable, CustomStringConvertible {
    /// "the loss", "the gradient of layer4.1.conv2.weight".
    public var what: String
    public var description: String { "\(what) is not finite" }
}

/// Why a fine-tuning run stopped.
public enum TrainingError: Error, Equatable, CustomStringConvertible {
    /// The loss or a gradient became NaN or infinite at this step (1-based within the epoch); nothing of
    /// that step was applied. A lower learning rate is the usual cure.
    case nonFinite(what: String, epoch: Int, step: Int)
    /// A parameter holds NaN or infinite values after the epoch's last step (`step`): the update
    /// overflowed although its gradient was finite. The weights in memory are damaged.
    case nonFiniteWeights(parameter: String, epoch: Int, step: Int)

    public var description: String {
        switch self {
        case .nonFinite(let what, let epoch, let step):
            "\(what) became NaN or infinite at epoch \(epoch), step \(step); training stopped before applying that step "
                + "(a lower learning rate usually cures this)"
        case .nonFiniteWeights(let name, let epoch, let step):
            "\(name) became NaN or infinite after the update of epoch \(epoch), step \(step); training stopped and "
                + "this epoch is not saved (a lower learning rate usually cures this)"
        }
    }
}

enum NonFinite {
    /// True when every element of `values` is finite. `x · 0` is 0 for every finite x and NaN for an
    /// infinity or NaN, so one sum of those products answers for the whole buffer.
    static func allFinite(_ values: UnsafeBufferPointer<Float>) -> Bool {
        let n = values.count
        var acc = SIMD16<Float>()
        var i = 0
        let base = values.baseAddress
        while i + 16 <= n {
            acc += UnsafeRawPointer(base! + i).loadUnaligned(as: SIMD16<Float>.self) * 0
            i += 16
        }
        var tail: Float = 0
        while i < n {
            tail += values[i] * 0
            i += 1
        }
        return (acc.sum() + tail) == 0
    }

    static func allFinite(_ values: [Float]) -> Bool { values.withUnsafeBufferPointer { allFinite($0) } }

    /// Throws `TrainingError.nonFinite` when a parameter holds a non-finite value after the epoch's last
    /// step (an update with a huge learning rate overflows even when its gradient was finite).
    static func checkWeights(_ parameters: [(name: String, parameter: Parameter)], epoch: Int, step: Int) throws {
        for (name, p) in parameters where !allFinite(p.data) {
            throw TrainingError.nonFiniteWeights(parameter: name, epoch: epoch, step: step)
        }
    }

    /// Throws `NonFiniteError` for a non-finite loss, or for the first gradient (in name order) holding
    /// a non-finite element.
    static func check(loss: Double, gradients: [String: [Float]]) throws(NonFiniteError) {
        guard loss.isFinite else { throw NonFiniteError(what: "the loss") }
        for name in gradients.keys.sorted() where !allFinite(gradients[name]!) {
            throw NonFiniteError(what: "the gradient of \(name)")
        }
    }
}
