import CKernels
import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Splitting a loop across threads: the kernels' only threading.
///
/// A ResNet forward pass opens some sixty parallel regions of a millisecond or less each. Waking
/// sleeping threads for every one (GCD) costs more than the regions gain on two cores, so the regions
/// run on a small pool whose workers spin briefly between regions, then sleep. When the pool is busy
/// (another thread is running a region) the region falls back to GCD.
public enum Parallel {
    /// Runs `body(i)` for every i in 0..<count, in `min(threads, count)` contiguous chunks, one per
    /// thread (the calling thread runs the first). Callers give each index its own part of the output,
    /// so shared buffers are written without races.
    public static func run(_ count: Int, _ threads: Int, _ body: (Int) -> Void) {
        if threads <= 1 || count < 2 {
            for i in 0..<count { body(i) }
            return
        }
        let chunks = min(threads, count)
        // Kernel calls on the helper threads run in the caller's tier (ISA.with).
        let tier = pth2swt_isa_thread_override_value()
        withoutActuallyEscaping(body) { body in
            nonisolated(unsafe) let run = body
            let chunk: @Sendable (Int) -> Void = { c in
                let previous = pth2swt_isa_thread_override(tier)
                defer { _ = pth2swt_isa_thread_override(previous) }
                let lo = count * c / chunks, hi = count * (c + 1) / chunks
                for i in lo..<hi { run(i) }
            }
            if !SpinPool.shared.run(chunks: chunks, chunk) {
                DispatchQueue.concurrentPerform(iterations: chunks, execute: chunk)
            }
        }
    }
}

extension Parallel {
    /// Splits 0..<count into up to `threads` contiguous ranges of at least `grain` elements (one range
    /// when count < 2·grain) and runs `body` on each, one per thread: for elementwise passes.
    public static func ranges(_ count: Int, threads: Int, grain: Int, _ body: (Range<Int>) -> Void) {
        let parts = max(1, min(threads, count / max(grain, 1)))
        run(parts, parts) { part in body((count * part / parts)..<(count * (part + 1) / parts)) }
    }

    /// Runs `body(i, worker)` for every i in 0..<count on `min(threads, count)` workers that each take the
    /// next index until none are left (worker is 0..<workers, for per-worker scratch). On a shared
    /// machine a core that is briefly taken away delays only its current index, where fixed chunks make
    /// every other thread wait for its whole chunk.
    public static func dynamic(_ count: Int, _ threads: Int, _ body: (_ index: Int, _ worker: Int) -> Void) {
        let workers = min(threads, count)
        if workers <= 1 {
            for i in 0..<count { body(i, 0) }
            return
        }
        let next = Counter()
        run(workers, workers) { worker in
            while true {
                let i = next.value.wrappingAdd(1, ordering: .relaxed).oldValue
                if i >= count { break }
                body(i, worker)
            }
        }
    }

    final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    /// Stops the worker threads and joins them (a no-op if no region ever ran on them). For a program's
    /// last moments: later regions run on GCD's threads. The command-line tool calls it on every exit path.
    public static func shutdown() {
        if SpinPool.started.load(ordering: .acquiring) { SpinPool.shared.shutdown() }
    }
}

/// Worker threads that wait for regions by spinning (about 50 µs), then on a condition variable.
///
/// Each worker has its own mailbox: the caller writes the job into an idle worker's slot, then bumps
/// that worker's ticket (release); the worker reads the job after it sees the new ticket (acquire),
/// runs it and bumps its `done` counter (release), which the caller waits for (acquire). Workers that a
/// region does not need are not woken, and a slot is only written while its worker is idle.
final class SpinPool: @unchecked Sendable {
    static let shared: SpinPool = {
        let pool = SpinPool(workers: max(1, min(7, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))) - 1)))
        started.store(true, ordering: .releasing)
        return pool
    }()
    /// Set once `shared` exists, so `shutdown` does not start a pool only to stop it.
    static let started = Atomic<Bool>(false)
    /// This pool's worker threads that have not ended.
    let live = Atomic<Int>(0)

    final class Worker: @unchecked Sendable {
        let ticket = Atomic<Int>(0)
        let done = Atomic<Int>(0)
        let stop = Atomic<Bool>(false)
        var job: (@Sendable (Int) -> Void)?
        let index: Int
        var mutex = pthread_mutex_t()
        var condition = pthread_cond_t()

        init(index: Int) {
            self.index = index
            pthread_mutex_init(&mutex, nil)
            pthread_cond_init(&condition, nil)
        }

        func loop() {
            var seen = 0
            while true {
                var spins = 0
                while ticket.load(ordering: .acquiring) == seen {
                    if spins < 20_000 {
                        spins += 1
                        pth2swt_spin_pause()
                    } else {
                        pthread_mutex_lock(&mutex)
                        while ticket.load(ordering: .acquiring) == seen { pthread_cond_wait(&condition, &mutex) }
                        pthread_mutex_unlock(&mutex)
                    }
                }
                seen += 1
                if stop.load(ordering: .acquiring) { return }
                job?(index)
                job = nil
                done.add(1, ordering: .releasing)
            }
        }

        /// Gives the idle worker `body`; it runs `body(index)`.
        func post(_ body: (@Sendable (Int) -> Void)?) {
            job = body
            ticket.add(1, ordering: .releasing)
            pthread_mutex_lock(&mutex)
            pthread_cond_signal(&condition)
            pthread_mutex_unlock(&mutex)
        }
    }

    /// What a worker thread is started with.
    final class WorkerStart {
        let worker: Worker
        let pool: SpinPool
        init(worker: Worker, pool: SpinPool) {
            self.worker = worker
            self.pool = pool
        }
    }

    private let workers: [Worker]
    private var threads: [pthread_t] = []
    private let busy = Atomic<Bool>(false)
    private let stopped = Atomic<Bool>(false)

    init(workers count: Int) {
        workers = (0..<count).map { Worker(index: $0 + 1) }
        for w in workers {
            let box = Unmanaged.passRetained(WorkerStart(worker: w, pool: self)).toOpaque()
            var tid = pthread_t()
            live.add(1, ordering: .relaxed)
            let rc = pthread_create(
                &tid, nil,
                { arg in
                    let start = Unmanaged<WorkerStart>.fromOpaque(arg!).takeRetainedValue()
                    start.worker.loop()
                    start.pool.live.subtract(1, ordering: .releasing)
                    return nil
                }, box)
            precondition(rc == 0, "cannot start a kernel thread")
            threads.append(tid)
        }
    }

    /// Takes the pool for good (waiting for a region in flight to end), wakes every worker with the
    /// stop flag set and joins it. Later `run` calls answer false, so regions fall back to GCD.
    func shutdown() {
        guard !stopped.exchange(true, ordering: .acquiringAndReleasing) else { return }
        while !busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            pth2swt_spin_pause()
        }
        for w in workers {
            w.stop.store(true, ordering: .releasing)
            w.post(nil)
        }
        for t in threads { pthread_join(t, nil) }
        threads = []
    }

    /// Runs chunk 0 on the caller and chunks 1… on workers; false (nothing run) when the pool is in use
    /// by another thread or has too few workers.
    func run(chunks: Int, _ body: @escaping @Sendable (Int) -> Void) -> Bool {
        guard chunks - 1 <= workers.count,
            busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged
        else { return false }
        let helpers = workers.prefix(chunks - 1)
        let targets = helpers.map { $0.done.load(ordering: .relaxed) + 1 }
        for w in helpers { w.post(body) }
        body(0)
        for (w, target) in zip(helpers, targets) {
            while w.done.load(ordering: .acquiring) < target { pth2swt_spin_pause() }
        }
        busy.store(false, ordering: .releasing)
        return true
    }
}
