import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A flag a background job polls to stop early. Setting it is a request; the job decides where it
/// can stop.
public final class CancellationFlag: Sendable {
    private let flag = Atomic<Bool>(false)
    public init() {}
    public func cancel() { flag.store(true, ordering: .relaxed) }
    public var isCancelled: Bool { flag.load(ordering: .relaxed) }
}

/// The owner of background threads: `BackgroundScope.with(_:)` runs a body that may start jobs, and
/// does not return (or rethrow) until every job it started has ended. On the error path the jobs are
/// cancelled first, so a failed conversion does not wait for a whole file to be hashed. Nothing a job
/// does can outlive the call, so no exit path can tear the process down under it.
///
/// The scope and its jobs are used from the thread that called `with` (the owner); each job's work runs
/// on a thread of its own.
public final class BackgroundScope {
    private var jobs: [any Joinable] = []

    private init() {}

    public static func with<R>(_ body: (BackgroundScope) throws -> R) throws -> R {
        let scope = BackgroundScope()
        var succeeded = false
        defer {
            if !succeeded { for j in scope.jobs { j.cancellation.cancel() } }
            for j in scope.jobs { j.join() }
        }
        let r = try body(scope)
        succeeded = true
        return r
    }

    /// Starts `work` on a new thread, owned by this scope.
    public func start<T: Sendable>(_ work: @escaping @Sendable (CancellationFlag) throws -> T) throws -> BackgroundJob<
        T
    > {
        jobs.removeAll { $0.isJoined }
        let job = BackgroundJob(work)
        try job.start()
        jobs.append(job)
        return job
    }

    /// Live background threads started by scopes on the calling thread: what a test checks is back to
    /// zero after a call returns, while other threads of the process run jobs of their own.
    static var liveStartedHere: Int { BackgroundCount.owned.withLock { $0[pthread_self(), default: 0] } }
}

protocol Joinable: AnyObject {
    var cancellation: CancellationFlag { get }
    var isJoined: Bool { get }
    func join()
}

/// One job of a `BackgroundScope`: its work's result, once the thread has ended.
public final class BackgroundJob<T: Sendable>: Joinable, @unchecked Sendable {
    public let cancellation = CancellationFlag()
    private let work: @Sendable (CancellationFlag) throws -> T
    private var result: Result<T, any Error>?
    private var thread: pthread_t?
    private(set) var isJoined = false

    fileprivate init(_ work: @escaping @Sendable (CancellationFlag) throws -> T) {
        self.work = work
    }

    /// Waits for the job and hands over its result (or rethrows its error). Once: the job lets go of
    /// the result, so a scope that runs many jobs does not keep them all.
    public func value() throws -> T {
        join()
        guard let r = result else { preconditionFailure("a background job's value was taken twice") }
        result = nil
        return try r.get()
    }

    fileprivate func start() throws {
        let owner = pthread_self()
        BackgroundCount.owned.withLock { $0[owner, default: 0] += 1 }
        do {
            thread = try startThread { [self] in
                result = Result { try work(cancellation) }
                BackgroundCount.owned.withLock { $0[owner]! -= 1 }
            }
        } catch {
            BackgroundCount.owned.withLock { $0[owner]! -= 1 }
            throw error
        }
    }

    func join() {
        guard let t = thread else { return }
        thread = nil
        pthread_join(t, nil)
        isJoined = true
    }
}

/// A thread could not be started (pthread_create's error).
public struct BackgroundError: Error, CustomStringConvertible {
    public let code: Int32
    public var description: String { "cannot start a thread: \(String(cString: strerror(code)))" }
}

enum BackgroundCount {
    /// Running jobs by the thread that started them.
    static let owned = Mutex<[pthread_t: Int]>([:])
}

/// What a new thread runs (a class, so its address can cross pthread_create's `void *`).
private final class ThreadBody {
    let run: () -> Void
    init(_ run: @escaping () -> Void) { self.run = run }
}

/// Starts a joinable thread running `body`.
private func startThread(_ body: @escaping () -> Void) throws -> pthread_t {
    let box = Unmanaged.passRetained(ThreadBody(body)).toOpaque()
    var tid = pthread_t()
    let rc = pthread_create(
        &tid, nil,
        { arg in
            Unmanaged<ThreadBody>.fromOpaque(arg!).takeRetainedValue().run()
            return nil
        }, box)
    guard rc == 0 else {
        Unmanaged<ThreadBody>.fromOpaque(box).release()
        throw BackgroundError(code: rc)
    }
    return tid
}
