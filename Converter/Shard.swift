import ArgumentParser

/// `--shard I/N`: this job's share of a list of inputs, the ones whose position (from 0) is I modulo N.
/// For Slurm array jobs (`--shard $SLURM_ARRAY_TASK_ID/$SLURM_ARRAY_TASK_COUNT` with `--array=0-(N-1)`)
/// and Kubernetes indexed jobs (`--shard $JOB_COMPLETION_INDEX/N`). The N shards of a list are disjoint
/// and together are the whole list, each in the list's order.
struct Shard: ExpressibleByArgument, Equatable, CustomStringConvertible {
    let index: Int
    let count: Int

    init(index: Int, count: Int) {
        self.index = index
        self.count = count
    }

    init?(argument: String) {
        let parts = argument.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let i = Int(parts[0]), let n = Int(parts[1]), n >= 1, n <= Bounds.shards.upperBound,
            i >= 0, i < n
        else { return nil }
        self.init(index: i, count: n)
    }

    static var defaultCompletionKind: CompletionKind { .default }

    var description: String { "\(index)/\(count)" }

    /// Whether the item at `position` is this shard's.
    func takes(_ position: Int) -> Bool { position % count == index }

    /// This shard's items, with their positions in the whole list.
    func pick<T>(_ items: [T]) -> [(position: Int, item: T)] {
        items.enumerated().filter { takes($0.offset) }.map { ($0.offset, $0.element) }
    }
}

extension Shard {
    static let help = ArgumentHelp(
        "Take only the inputs whose position (from 0) is I modulo N, 0 ≤ I < N: job I's share of N (Slurm arrays, Kubernetes indexed jobs).",
        valueName: "I/N")
}
