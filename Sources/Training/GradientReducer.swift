import Foundation
import Kernels
import Lifetime

/// torch DistributedDataParallel's gradient averaging over a `DataParallelGroup`, optionally overlapped
/// with the backward pass.
///
/// Buckets are DDP's: the trainable parameters in reverse order (the order the backward pass finishes
/// them), cut after the parameter that brings a bucket to `firstBucketBytes` (the first bucket) or
/// `bucketBytes` (the others). Each gradient is scaled by 1/N as it is copied into its bucket (DDP's
/// reducer multiplies by 1/N, as a float, before the allreduce), and each bucket is summed over the
/// ranks with one allreduce, in bucket order. The buckets and the calls are the same at every step, so a
/// run is reproducible for a given N, and the result does not depend on `overlaps`.
///
/// With `overlaps`, a communication thread started for the step sends each bucket as soon as the
/// backward pass has finished its last gradient, while the backward pass goes on with the layers before
/// it. Open MPI 4 makes no progress between MPI calls, so the overlap comes from that thread sitting in
/// a blocking allreduce; it needs a core of its own to be worth it (`statistics` shows what it hides).
/// Only that thread calls the group while the backward pass runs, and the step waits for it before the
/// optimizer runs, so a group that allows one caller at a time (MPI_THREAD_SERIALIZED) is enough.
public final class GradientReducer: @unchecked Sendable {
    /// One allreduce: parameters (names, in bucket order) at offsets of one buffer.
    public struct Bucket: Sendable, Equatable {
        public var names: [String]
        public var offsets: [Int]
        public var counts: [Int]
        public var floats: Int
    }

    /// Where time went over the steps reduced so far.
    public struct Statistics: Sendable, Equatable {
        public var steps = 0
        /// Floats allreduced per step.
        public var floatsPerStep = 0
        /// Seconds spent inside the group's allreduce calls.
        public var communicationSeconds = 0.0
        /// Seconds the step waited for the allreduces after its backward pass (all of
        /// `communicationSeconds` when nothing overlaps).
        public var exposedSeconds = 0.0
        /// Seconds of the backward passes the allreduces overlapped.
        public var backwardSeconds = 0.0
        /// The share of the communication time the backward pass hid (0 … 1).
        public var hiddenFraction: Double {
            communicationSeconds > 0 ? max(0, 1 - exposedSeconds / communicationSeconds) : 0
        }
    }

    /// DDP's default first bucket, `dist._DEFAULT_FIRST_BUCKET_BYTES` (1 MiB).
    public static let firstBucketBytes = 1 << 20
    /// DDP's default `bucket_cap_mb` of 25.
    public static let bucketBytes = 25 << 20

    public let buckets: [Bucket]
    public let overlaps: Bool
    public let group: any DataParallelGroup
    public private(set) var statistics = Statistics()

    private let place: [String: (bucket: Int, slot: Int)]
    private let storage: [UnsafeMutableBufferPointer<Float>]
    private let scale: Float
    // Per step, under `condition`.
    private let condition = NSCondition()
    private var missing: [Int] = []
    private var ready: [Bool] = []
    private var abandoned = false
    private var received: Set<String> = []

    /// `parameters`: the trainable parameters in the model's order with their element counts.
    public init(
        parameters: [(name: String, count: Int)], group: any DataParallelGroup, overlaps: Bool,
        firstBucketBytes: Int = GradientReducer.firstBucketBytes, bucketBytes: Int = GradientReducer.bucketBytes
    ) {
        buckets = Self.assign(parameters, firstBucketBytes: firstBucketBytes, bucketBytes: bucketBytes)
        self.group = group
        self.overlaps = overlaps
        scale = 1 / Float(group.size)
        var place: [String: (bucket: Int, slot: Int)] = [:]
        for (b, bucket) in buckets.enumerated() {
            for (s, name) in bucket.names.enumerated() { place[name] = (b, s) }
        }
        self.place = place
        storage = buckets.map { b in
            let p = UnsafeMutableBufferPointer<Float>.allocate(capacity: b.floats)
            p.initialize(repeating: 0)
            return p
        }
        statistics.floatsPerStep = buckets.reduce(0) { $0 + $1.floats }
    }

    deinit { for s in storage { s.deallocate() } }

    /// DDP's bucket assignment (`_compute_bucket_assignment_by_size` for dense float32 tensors): the
    /// parameters in reverse, a bucket closed once it holds at least its cap.
    public static func assign(
        _ parameters: [(name: String, count: Int)], firstBucketBytes: Int, bucketBytes: Int
    ) -> [Bucket] {
        var out: [Bucket] = []
        var current = Bucket(names: [], offsets: [], counts: [], floats: 0)
        for p in parameters.reversed() {
            current.names.append(p.name)
            current.offsets.append(current.floats)
            current.counts.append(p.count)
            current.floats += p.count
            if current.floats * 4 >= (out.isEmpty ? firstBucketBytes : bucketBytes) {
                out.append(current)
                current = Bucket(names: [], offsets: [], counts: [], floats: 0)
            }
        }
        if !current.names.isEmpty { out.append(current) }
        return out
    }

    /// Runs `backward`, which hands each final gradient to the `ready` it is given, then returns every
    /// rank's gradients averaged: the bucketed ones replaced by their averages. A trainable parameter the
    /// backward pass gave no gradient is sent as zeros (every rank runs the same network, so none has
    /// one) and left out of the result.
    public func reduce(
        _ backward: (_ ready: (String, [Float]) -> Void) -> [String: [Float]]
    ) throws -> [String: [Float]] {
        condition.lock()
        missing = buckets.map(\.names.count)
        ready = [Bool](repeating: false, count: buckets.count)
        abandoned = false
        received = []
        condition.unlock()
        if group.size == 1 || buckets.isEmpty { return backward { _, _ in } }

        var gradients: [String: [Float]] = [:]
        var communication = 0.0
        var backwardSeconds = 0.0
        var exposed = 0.0
        if overlaps {
            try BackgroundScope.with { scope in
                let job = try scope.start { _ in try self.communicate() }
                defer {
                    // Whatever happens, the thread must not wait for buckets that will never come.
                    condition.lock()
                    abandoned = true
                    condition.broadcast()
                    condition.unlock()
                }
                let t0 = Timing.now()
                gradients = backward(accept)
                completeMissing()
                let t1 = Timing.now()
                communication = try job.value()
                exposed = Timing.now() - t1
                backwardSeconds = t1 - t0
            }
        } else {
            gradients = backward(accept)
            completeMissing()
            let t1 = Timing.now()
            communication = try communicate()
            exposed = Timing.now() - t1
        }
        for (b, bucket) in buckets.enumerated() {
            let buffer = storage[b]
            for (s, name) in bucket.names.enumerated() where received.contains(name) {
                let at = bucket.offsets[s]
                gradients[name] = Array(buffer[at..<(at + bucket.counts[s])])
            }
        }
        statistics.steps += 1
        statistics.communicationSeconds += communication
        statistics.exposedSeconds += exposed
        statistics.backwardSeconds += backwardSeconds
        return gradients
    }

    /// Every rank's `gradients` averaged, on the calling thread (a step whose backward pass has already
    /// run): the same buckets, scaling and calls as `reduce`.
    public func average(_ gradients: inout [String: [Float]]) throws {
        let given = gradients
        gradients = try reduce { ready in
            for b in buckets { for n in b.names { if let g = given[n] { ready(n, g) } } }
            return given
        }
    }

    /// Copies a final gradient, scaled by 1/N, into its bucket; a bucket whose last gradient arrives is
    /// handed to the communication thread.
    private func accept(_ name: String, _ gradient: [Float]) {
        guard let (b, s) = place[name] else { return }
        let bucket = buckets[b]
        precondition(
            gradient.count == bucket.counts[s], "\(name): \(gradient.count) gradient values, not \(bucket.counts[s])")
        let target = storage[b].baseAddress! + bucket.offsets[s]
        let scale = scale
        gradient.withUnsafeBufferPointer { g in
            for i in 0..<g.count { target[i] = g[i] * scale }
        }
        condition.lock()
        if received.insert(name).inserted {
            missing[b] -= 1
            if missing[b] == 0 {
                ready[b] = true
                condition.broadcast()
            }
        }
        condition.unlock()
    }

    /// Zeros for the parameters the backward pass gave nothing, so every bucket goes out.
    private func completeMissing() {
        condition.lock()
        defer { condition.unlock() }
        for (b, bucket) in buckets.enumerated() where !ready[b] {
            for (s, name) in bucket.names.enumerated() where !received.contains(name) {
                (storage[b].baseAddress! + bucket.offsets[s]).update(repeating: 0, count: bucket.counts[s])
            }
            missing[b] = 0
            ready[b] = true
        }
        condition.broadcast()
    }

    /// The allreduces, bucket after bucket as each becomes ready; the seconds spent inside them.
    private func communicate() throws -> Double {
        var seconds = 0.0
        for b in buckets.indices {
            condition.lock()
            while !ready[b] && !abandoned { condition.wait() }
            let go = ready[b]
            condition.unlock()
            guard go else { return seconds }
            let t0 = Timing.now()
            try group.allreduceSum(storage[b])
            seconds += Timing.now() - t0
        }
        return seconds
    }
}
