import Foundation
import Training

/// N ranks of a data-parallel run as N threads of one process: the collectives through shared memory.
/// For tests of `DataParallel` without MPI; every rank must call the same collectives in the same order.
final class ThreadGroup: @unchecked Sendable {
    let size: Int
    private let condition = NSCondition()
    private var arrived = 0
    private var generation = 0
    private var floats: [[Float]]
    private var doubles: [[Double]]

    init(size: Int) {
        self.size = size
        floats = Array(repeating: [], count: size)
        doubles = Array(repeating: [], count: size)
    }

    /// Waits until every rank has called it (a reusable barrier).
    func barrier() {
        condition.lock()
        let g = generation
        arrived += 1
        if arrived == size {
            arrived = 0
            generation += 1
            condition.broadcast()
        } else {
            while g == generation { condition.wait() }
        }
        condition.unlock()
    }

    func rank(_ r: Int) -> Rank { Rank(group: self, rank: r) }

    /// Runs `body(rank)` on `size` threads and returns their results in rank order (rethrowing the first error).
    func run<T>(_ body: @escaping @Sendable (Rank) throws -> T) throws -> [T] {
        nonisolated(unsafe) var results = [Result<T, any Error>?](repeating: nil, count: size)
        let done = DispatchGroup()
        for r in 0..<size {
            let thread = Thread {
                results[r] = Result { try body(self.rank(r)) }
                done.leave()
            }
            thread.stackSize = 64 << 20
            done.enter()
            thread.start()
        }
        done.wait()
        return try results.map { try $0!.get() }
    }

    final class Rank: DataParallelGroup, @unchecked Sendable {
        let group: ThreadGroup
        let rank: Int
        var size: Int { group.size }
        init(group: ThreadGroup, rank: Int) {
            self.group = group
            self.rank = rank
        }

        func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
            group.floats[rank] = Array(buffer)
            group.barrier()
            // Summed in rank order on every rank: the same bits everywhere, as a fixed MPI reduction gives.
            for i in 0..<buffer.count {
                var s: Float = 0
                for r in 0..<size { s += group.floats[r][i] }
                buffer[i] = s
            }
            group.barrier()
        }

        func allreduceSum(_ values: inout [Double]) throws {
            group.doubles[rank] = values
            group.barrier()
            for i in values.indices {
                var s = 0.0
                for r in 0..<size { s += group.doubles[r][i] }
                values[i] = s
            }
            group.barrier()
        }

        func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
            if rank == root { group.floats[root] = Array(buffer) }
            group.barrier()
            if rank != root { for i in 0..<buffer.count { buffer[i] = group.floats[root][i] } }
            group.barrier()
        }
    }
}
