#if canImport(Glibc)
    import Glibc
#endif

/// A learning-rate schedule, one of torch.optim.lr_scheduler's, stepped once per epoch (or per step,
/// as the caller chooses), exactly as PyTorch 1.13 steps it.
public indirect enum LRSchedule: Sendable, Equatable {
    /// StepLR(step_size, gamma): lr·gamma every `size` steps.
    case step(size: Int, gamma: Double)
    /// CosineAnnealingLR(T_max, eta_min).
    case cosine(tMax: Int, etaMin: Double)
    /// LinearLR(start_factor, end_factor, total_iters): linear warmup.
    case linear(startFactor: Double, endFactor: Double, iterations: Int)
    /// SequentialLR(schedulers, milestones): `schedules[i]` from `milestones[i − 1]` on.
    case sequential([LRSchedule], milestones: [Int])

    /// Linear warmup from `startFactor`·lr over `warmup` steps, then cosine annealing to `etaMin` over
    /// the remaining `total − warmup`: SequentialLR(LinearLR, CosineAnnealingLR, milestones=[warmup]).
    public static func warmupCosine(warmup: Int, total: Int, startFactor: Double = 0.1, etaMin: Double = 0)
        -> LRSchedule
    {
        .sequential(
            [
                .linear(startFactor: startFactor, endFactor: 1, iterations: warmup),
                .cosine(tMax: total - warmup, etaMin: etaMin),
            ], milestones: [warmup])
    }
}

/// Steps an `LRSchedule` over an optimizer's groups. torch's schedulers are "chainable": each step
/// computes the new lr from the group's current lr (not from a closed form), except where torch uses
/// the closed form (`step(epoch)`, which SequentialLR calls at each milestone). This class follows
/// the same recurrences in Double, so its learning rates equal torch's `get_last_lr()` to the last bit
/// or within a few ulps of libm's cos.
///
/// Construction applies the schedule's step 0 to the optimizer, as constructing a torch scheduler does.
public final class LRScheduler {
    final class Node {
        let kind: LRSchedule
        var lastEpoch = -1
        var stepCount = 0
        var baseLRs: [Double]
        let children: [Node]
        init(_ kind: LRSchedule, base: [Double]) {
            self.kind = kind
            baseLRs = base
            if case .sequential(let s, _) = kind { children = s.map { Node($0, base: base) } } else { children = [] }
        }
    }

    let optimizer: any Optimizer
    let root: Node
    /// The optimizer's learning rates when the scheduler was made (torch's `initial_lr`).
    public let baseLRs: [Double]

    public init(_ schedule: LRSchedule, optimizer: any Optimizer) {
        self.optimizer = optimizer
        baseLRs = optimizer.groups.map(\.options.lr)
        root = Node(schedule, base: baseLRs)
        construct(root)
    }

    /// The learning rates in force, per group.
    public var lastLR: [Double] { optimizer.groups.map(\.options.lr) }
    /// Steps taken since construction.
    public var epoch: Int { root.lastEpoch }

    var current: [Double] { optimizer.groups.map(\.options.lr) }
    func set(_ lrs: [Double]) { for (i, lr) in lrs.enumerated() { optimizer.setLR(lr, group: i) } }

    /// `_LRScheduler.__init__` (or SequentialLR's).
    private func construct(_ n: Node) {
        if case .sequential(_, _) = n.kind {
            for c in n.children { construct(c) }
            set(baseLRs)
            for c in n.children { c.lastEpoch -= 1 }
            initialStep(n.children[0])
            n.lastEpoch = 0
        } else {
            initialStep(n)
        }
    }

    private func initialStep(_ n: Node) {
        n.stepCount = 0
        step(n, epoch: nil)
    }

    /// One `scheduler.step()`.
    public func step() {
        if case .sequential = root.kind { stepSequential(root) } else { step(root, epoch: nil) }
    }

    private func stepSequential(_ n: Node) {
        guard case .sequential(_, let milestones) = n.kind else { return }
        n.lastEpoch += 1
        let index = milestones.filter { $0 <= n.lastEpoch }.count  // bisect_right
        let child = n.children[index]
        if index > 0 && milestones[index - 1] == n.lastEpoch {
            step(child, epoch: 0)
        } else {
            step(child, epoch: nil)
        }
    }

    private func step(_ n: Node, epoch: Int?) {
        n.stepCount += 1
        if let epoch {
            n.lastEpoch = epoch
            set(closedForm(n))
        } else {
            n.lastEpoch += 1
            set(chained(n))
        }
    }

    private func chained(_ n: Node) -> [Double] {
        let e = n.lastEpoch
        switch n.kind {
        case .step(let size, let gamma):
            return (e == 0 || e % size != 0) ? current : current.map { $0 * gamma }
        case .cosine(let tMax, let etaMin):
            let t = Double(tMax)
            if e == 0 { return current }
            if n.stepCount == 1 && e > 0 {
                return n.baseLRs.map { etaMin + ($0 - etaMin) * (1 + cos(Double(e) * Double.pi / t)) / 2 }
            }
            if (e - 1 - tMax) % (2 * tMax) == 0 {
                return zip(current, n.baseLRs).map { $0 + ($1 - etaMin) * (1 - cos(Double.pi / t)) / 2 }
            }
            return current.map {
                (1 + cos(Double.pi * Double(e) / t)) / (1 + cos(Double.pi * Double(e - 1) / t)) * ($0 - etaMin) + etaMin
            }
        case .linear(let start, let end, let total):
            if e == 0 { return current.map { $0 * start } }
            if e > total { return current }
            return current.map { $0 * (1 + (end - start) / (Double(total) * start + Double(e - 1) * (end - start))) }
        case .sequential:
            preconditionFailure("a SequentialLR inside a SequentialLR")
        }
    }

    private func closedForm(_ n: Node) -> [Double] {
        let e = n.lastEpoch
        switch n.kind {
        case .step(let size, let gamma):
            return n.baseLRs.map { $0 * pow(gamma, Double(e / size)) }
        case .cosine(let tMax, let etaMin):
            return n.baseLRs.map { etaMin + ($0 - etaMin) * (1 + cos(Double.pi * Double(e) / Double(tMax))) / 2 }
        case .linear(let start, let end, let total):
            return n.baseLRs.map { $0 * (start + (end - start) * Double(min(total, e)) / Double(total)) }
        case .sequential:
            preconditionFailure("a SequentialLR inside a SequentialLR")
        }
    }
}
