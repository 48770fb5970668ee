import ArgumentParser
import Checkpoint
import Distributed
import Lifetime
import Training

/// A command run by every rank of an MPI job (`mpirun`, `srun`, the MPI Operator), or alone.
///
/// The work is in two phases so that an error never leaves ranks waiting in different collectives:
/// `local` uses no MPI (each rank's share of the work), then the ranks agree whether any failed, then
/// `combine` runs the collectives and prints (on rank 0). When ranks fail, the lowest of them prints its
/// error once, as `rank R of N: …`, and every rank exits with status 1 (130 or 143 for an interrupt).
/// A process no launcher started runs `local` and `combine` alone, exactly as without MPI.
enum Job {
    static func run<T>(
        json: Bool, local: (Communicator?) throws -> T, combine: (Communicator?, T) throws -> Void
    ) throws {
        let comm: Communicator?
        do {
            comm = try Communicator.joinIfLaunched()
        } catch {
            throw fail(error, json: json)
        }
        guard let comm else {
            let part: T
            do { part = try local(nil) } catch let e as ValidationError { throw e } catch {
                throw fail(error, json: json)
            }
            do { try combine(nil, part) } catch let e as ValidationError { throw e } catch {
                throw fail(error, json: json)
            }
            return
        }
        defer { comm.finish() }
        var failure: (any Error)?
        var part: T?
        do { part = try local(comm) } catch { failure = error }
        try agree(comm, failure, json: json)
        do {
            try combine(comm, part!)
        } catch let e as ExitCode {
            throw e
        } catch {
            // An error in the collectives' phase is the same on every rank (MPI's, or the same data):
            // rank 0 reports it.
            if comm.isRoot { _ = fail(RankError(rank: comm.rank, size: comm.size, error: error), json: json) }
            throw ExitCode(1)
        }
    }

    /// Every rank learns whether any failed; the lowest failing rank prints its error.
    static func agree(_ comm: Communicator, _ failure: (any Error)?, json: Bool) throws {
        let code: Int64 = failure == nil ? -1 : Int64(comm.size - comm.rank)
        let worst: Int64
        do {
            worst = try comm.allreduceMax(code)
        } catch {
            throw fail(RankError(rank: comm.rank, size: comm.size, error: error), json: json)
        }
        guard worst >= 0 else { return }
        let lowest = comm.size - Int(worst)
        if comm.rank == lowest, let failure {
            let exit = fail(
                failure is Interrupted ? failure : RankError(rank: comm.rank, size: comm.size, error: failure),
                json: json)
            throw exit
        }
        if let i = failure as? Interrupted { throw ExitCode(i.exitCode) }
        throw ExitCode(1)
    }
}

/// An error on one rank, named by it.
struct RankError: Error, CustomStringConvertible {
    var rank: Int
    var size: Int
    var error: any Error
    var description: String {
        "rank \(rank) of \(size): \((error as? CheckpointError)?.description ?? "\(error)")"
    }
}

extension Communicator {
    /// This rank's share of `count` items: positions ≡ rank (mod size), in order.
    func share(_ count: Int) -> [Int] { Array(stride(from: rank, to: count, by: size)) }
}

/// What this process does as a rank of the command it runs.
enum Rank {
    /// Whether this process prints and writes: alone, or rank 0 of a job.
    nonisolated(unsafe) static var prints = true
    /// Whether the ranks have agreed that every one of them set up, after which they train in step.
    nonisolated(unsafe) static var agreed = false
}

extension Communicator: DataParallelGroup {}
