import NN
import Vision

/// The ranks of a data-parallel run, as training needs them. The tool implements it over MPI
/// (`Distributed.Communicator`); tests implement it with threads in one process. Every rank calls the
/// same methods in the same order, with buffers of the same sizes.
public protocol DataParallelGroup: AnyObject {
    var rank: Int { get }
    var size: Int { get }
    /// Every rank's `buffer`, summed element by element, in place on every rank.
    func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    /// Every rank's `values`, summed, on every rank.
    func allreduceSum(_ values: inout [Double]) throws
    /// Rank `root`'s `buffer` on every rank.
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws
}

/// torch's DistributedDataParallel semantics over a `DataParallelGroup`.
public enum DataParallel {
    /// Rank 0's parameters and float buffers on every rank, as DDP does when it wraps a model.
    public static func broadcastState(_ network: Network, group: any DataParallelGroup) throws {
        guard group.size > 1 else { return }
        for (_, entry) in network.stateEntries {
            switch entry {
            case .parameter(let p), .buffer(let p):
                try p.data.withUnsafeMutableBufferPointer { try group.broadcast($0, root: 0) }
            case .int64(let b):
                var v = [Float(b.value)]
                try v.withUnsafeMutableBufferPointer { try group.broadcast($0, root: 0) }
                b.value = Int64(v[0])
            }
        }
    }

    /// Rank 0's float buffers (BatchNorm running statistics) on every rank: DDP's `broadcast_buffers`,
    /// done before an evaluation so that every rank evaluates the weights rank 0 writes.
    public static func broadcastBuffers(_ network: Network, group: any DataParallelGroup) throws {
        guard group.size > 1 else { return }
        for (_, entry) in network.stateEntries {
            if case .buffer(let p) = entry {
                try p.data.withUnsafeMutableBufferPointer { try group.broadcast($0, root: 0) }
            }
        }
    }

    /// The evaluation reports of every rank's share as one, on every rank: counts and confusion summed
    /// (exactly: they are integers far below 2^53), the loss as Σ loss·count over the count.
    public static func combine(_ report: EvalReport, group: any DataParallelGroup) throws -> EvalReport {
        guard group.size > 1 else { return report }
        var values = [Double(report.count), Double(report.correct), report.loss * Double(report.count)]
        values += report.confusion.flatMap { $0.map(Double.init) }
        try group.allreduceSum(&values)
        var out = report
        out.count = Int(values[0])
        out.correct = Int(values[1])
        out.loss = out.count == 0 ? 0 : values[2] / Double(out.count)
        let k = report.confusion.count
        out.confusion = (0..<k).map { i in (0..<k).map { j in Int(values[3 + i * k + j]) } }
        return out
    }

    /// An epoch's training numbers over every rank: images summed, loss and accuracy as means over them.
    public static func combine(_ report: EpochReport, group: any DataParallelGroup) throws -> EpochReport {
        guard group.size > 1 else { return report }
        let n = Double(report.images)
        var values = [n, report.loss * n, report.accuracy * n]
        try group.allreduceSum(&values)
        var out = report
        out.images = Int(values[0])
        out.loss = values[0] == 0 ? 0 : values[1] / values[0]
        out.accuracy = values[0] == 0 ? 0 : values[2] / values[0]
        return out
    }

    /// This rank's indices of an epoch: torch's `DistributedSampler(shuffle=True, seed=seed)` after
    /// `set_epoch(epoch − 1)` (epochs count from 1 here, from 0 in a torch loop).
    public static func order(count: Int, seed: UInt64, epoch: Int, rank: Int, ranks: Int) -> [Int] {
        DistributedSampler(count: count, replicas: ranks, rank: rank, seed: seed).indices(epoch: epoch - 1)
    }
}
