import CMPI

#if canImport(Glibc)
    import Glibc
#endif

/// What the launcher said about this process, from the environment alone (no MPI call): Open MPI's
/// `mpirun` (and the MPI Operator, which runs it) sets `OMPI_COMM_WORLD_RANK/SIZE`; Slurm's `srun` with
/// PMI-2 or PMIx sets `PMI_RANK/PMI_SIZE` or `PMIX_RANK` (with `SLURM_NTASKS`). A process that none of
/// them started runs alone, exactly as without MPI.
public struct Launch: Sendable, Equatable {
    public var rank: Int
    public var size: Int

    /// The launcher's rank and size, or nil when no launcher started this process.
    public static func fromEnvironment(_ env: [String: String] = Launch.environment()) -> Launch? {
        func int(_ key: String) -> Int? { env[key].flatMap { Int($0) } }
        if let size = int("OMPI_COMM_WORLD_SIZE"), let rank = int("OMPI_COMM_WORLD_RANK") {
            return Launch(rank: rank, size: size)
        }
        if let size = int("PMI_SIZE"), let rank = int("PMI_RANK") { return Launch(rank: rank, size: size) }
        if let rank = int("PMIX_RANK"), let size = int("SLURM_NTASKS") ?? int("OMPI_COMM_WORLD_SIZE") {
            return Launch(rank: rank, size: size)
        }
        return nil
    }

    /// This process's environment.
    public static func environment() -> [String: String] {
        var out: [String: String] = [:]
        var p = environ
        while let entry = p.pointee {
            let s = String(cString: entry)
            if let eq = s.firstIndex(of: "=") { out[String(s[..<eq])] = String(s[s.index(after: eq)...]) }
            p += 1
        }
        return out
    }
}

/// An MPI call that failed, with Open MPI's own words for the code.
public struct MPIError: Error, CustomStringConvertible, Sendable {
    public var call: String
    public var code: Int32
    public var message: String
    public var description: String { "\(call) failed: \(message) (MPI error \(code))" }
}

/// This process as one rank of an MPI job: the collectives pth2swt needs, over MPI_COMM_WORLD.
///
/// Errors come back as `MPIError` (MPI_ERRORS_RETURN) instead of aborting the job. Calls are made from
/// one thread at a time (MPI_THREAD_SERIALIZED is required).
public final class Communicator: @unchecked Sendable {
    public let rank: Int
    public let size: Int
    public var isRoot: Bool { rank == 0 }
    private var finished = false

    /// Initialises MPI when a launcher started this process (`Launch.fromEnvironment()`), else nil: a
    /// process run alone never calls MPI.
    public static func joinIfLaunched() throws -> Communicator? {
        guard Launch.fromEnvironment() != nil else { return nil }
        return try Communicator()
    }

    /// Initialises MPI (MPI_Init_thread, serialized) and reads rank and size.
    public init() throws {
        var provided: Int32 = 0
        try Communicator.check("MPI_Init_thread", MPI_Init_thread(nil, nil, pth2swt_mpi_thread_serialized(), &provided))
        MPI_Comm_set_errhandler(pth2swt_mpi_comm_world(), pth2swt_mpi_errors_return())
        guard provided >= pth2swt_mpi_thread_serialized() else {
            MPI_Finalize()
            throw MPIError(
                call: "MPI_Init_thread", code: provided,
                message: "this MPI library gives thread level \(provided), and pth2swt needs MPI_THREAD_SERIALIZED")
        }
        var r: Int32 = 0
        var s: Int32 = 0
        try Communicator.check("MPI_Comm_rank", MPI_Comm_rank(pth2swt_mpi_comm_world(), &r))
        try Communicator.check("MPI_Comm_size", MPI_Comm_size(pth2swt_mpi_comm_world(), &s))
        rank = Int(r)
        size = Int(s)
    }

    static func check(_ call: String, _ code: Int32) throws {
        guard code != pth2swt_mpi_success() else { return }
        var buffer = [CChar](repeating: 0, count: Int(MPI_MAX_ERROR_STRING) + 1)
        var length: Int32 = 0
        MPI_Error_string(code, &buffer, &length)
        throw MPIError(call: call, code: code, message: String(cString: buffer))
    }

    /// Every rank's `buffer`, summed element by element, in place on every rank.
    public func allreduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        try sumInPlace(UnsafeMutableRawPointer(base), count: buffer.count, stride: 4, type: pth2swt_mpi_float())
    }

    /// Every rank's `values`, summed, on every rank.
    public func allreduceSum(_ values: inout [Double]) throws {
        try values.withUnsafeMutableBufferPointer { b in
            guard let base = b.baseAddress, b.count > 0 else { return }
            try sumInPlace(UnsafeMutableRawPointer(base), count: b.count, stride: 8, type: pth2swt_mpi_double())
        }
    }

    /// Every rank's `values`, summed, on every rank.
    public func allreduceSum(_ values: inout [Int64]) throws {
        try values.withUnsafeMutableBufferPointer { b in
            guard let base = b.baseAddress, b.count > 0 else { return }
            try sumInPlace(UnsafeMutableRawPointer(base), count: b.count, stride: 8, type: pth2swt_mpi_int64())
        }
    }

    /// MPI_Allreduce(MPI_IN_PLACE, …, MPI_SUM) over `count` elements of `stride` bytes at `base`.
    private func sumInPlace(_ base: UnsafeMutableRawPointer, count: Int, stride: Int, type: MPI_Datatype) throws {
        try chunks(count) { start, n in
            try Communicator.check(
                "MPI_Allreduce",
                MPI_Allreduce(
                    pth2swt_mpi_in_place(), base + start * stride, n, type, pth2swt_mpi_sum(), pth2swt_mpi_comm_world())
            )
        }
    }

    /// The largest of every rank's `value`.
    public func allreduceMax(_ value: Int64) throws -> Int64 {
        var v = value
        try Communicator.check(
            "MPI_Allreduce",
            MPI_Allreduce(
                pth2swt_mpi_in_place(), &v, 1, pth2swt_mpi_int64(), pth2swt_mpi_max(), pth2swt_mpi_comm_world()))
        return v
    }

    /// Root's `buffer` on every rank.
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int = 0) throws {
        guard let base = buffer.baseAddress, buffer.count > 0 else { return }
        try chunks(buffer.count) { start, n in
            try Communicator.check(
                "MPI_Bcast", MPI_Bcast(base + start, n, pth2swt_mpi_float(), Int32(root), pth2swt_mpi_comm_world()))
        }
    }

    /// Root's bytes on every rank (the others' `bytes` are replaced, whatever their length).
    public func broadcast(_ bytes: inout [UInt8], root: Int = 0) throws {
        var count = Int64(bytes.count)
        try Communicator.check(
            "MPI_Bcast", MPI_Bcast(&count, 1, pth2swt_mpi_int64(), Int32(root), pth2swt_mpi_comm_world()))
        if rank != root { bytes = [UInt8](repeating: 0, count: Int(count)) }
        guard count > 0 else { return }
        try bytes.withUnsafeMutableBufferPointer { b in
            try chunks(b.count) { start, n in
                try Communicator.check(
                    "MPI_Bcast",
                    MPI_Bcast(b.baseAddress! + start, n, pth2swt_mpi_byte(), Int32(root), pth2swt_mpi_comm_world()))
            }
        }
    }

    /// Every rank's bytes at `root`, in rank order (nil on the other ranks).
    public func gather(_ bytes: [UInt8], root: Int = 0) throws -> [[UInt8]]? {
        // Lengths first, then each rank's bytes from the root, one message per rank: no 2 GiB limit
        // on the total, and no displacement arithmetic in Int32.
        var lengths = [Int64](repeating: 0, count: size)
        lengths[rank] = Int64(bytes.count)
        try allreduceSum(&lengths)
        if rank == root {
            var out: [[UInt8]] = []
            for r in 0..<size {
                if r == root {
                    out.append(bytes)
                    continue
                }
                var part = [UInt8](repeating: 0, count: Int(lengths[r]))
                try part.withUnsafeMutableBufferPointer { b in
                    try chunks(b.count) { start, n in
                        try Communicator.check(
                            "MPI_Recv",
                            MPI_Recv(
                                b.baseAddress! + start, n, pth2swt_mpi_byte(), Int32(r), 7, pth2swt_mpi_comm_world(),
                                pth2swt_mpi_status_ignore()))
                    }
                }
                out.append(part)
            }
            return out
        }
        var copy = bytes
        try copy.withUnsafeMutableBufferPointer { b in
            try chunks(b.count) { start, n in
                try Communicator.check(
                    "MPI_Send",
                    MPI_Send(b.baseAddress! + start, n, pth2swt_mpi_byte(), Int32(root), 7, pth2swt_mpi_comm_world()))
            }
        }
        return nil
    }

    /// Waits for every rank.
    public func barrier() throws {
        try Communicator.check("MPI_Barrier", MPI_Barrier(pth2swt_mpi_comm_world()))
    }

    /// Ends the whole job with `code` on every rank (MPI_Abort): for an error one rank cannot share.
    public func abort(_ code: Int32) -> Never {
        MPI_Abort(pth2swt_mpi_comm_world(), code)
        exit(code)
    }

    /// MPI_Finalize, once; every rank must call it before it exits normally.
    public func finish() {
        guard !finished else { return }
        finished = true
        MPI_Finalize()
    }

    /// Runs `body` over `[0, count)` in pieces of at most Int32.max elements (MPI's count is an int).
    private func chunks(_ count: Int, _ body: (_ start: Int, _ n: Int32) throws -> Void) throws {
        var start = 0
        repeat {
            let n = min(count - start, Int(Int32.max))
            try body(start, Int32(n))
            start += n
        } while start < count
    }
}
