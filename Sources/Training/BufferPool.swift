import Kernels

/// `count` floats whose values are whatever the allocator left (every caller overwrites them all):
/// skips the zeroing pass that `Array(repeating:count:)` makes over tens of megabytes per layer.
func uninitializedFloats(_ count: Int) -> [Float] {
    [Float](unsafeUninitializedCapacity: count) { _, initialized in initialized = count }
}

/// Activation and gradient buffers kept from one training step for the next.
///
/// A step at batch 32 allocates and frees about two gigabytes of activations and gradients, many of
/// them larger than glibc's mmap threshold (32 MB at most): each would be mapped fresh, page-faulted in
/// and unmapped again every step, a fifth of the step's time. The step takes its buffers here and gives
/// them back when they die, so after the first step the same memory is reused. Contents are
/// uninitialised: every taker overwrites its whole buffer. A buffer still referenced elsewhere when it
/// is taken again is copied on write by Swift's arrays, so a missed hand-back costs speed, never
/// correctness.
final class BufferPool {
    private var free: [Int: [[Float]]] = [:]
    private var held = Set<UnsafeRawPointer>()

    func take(_ count: Int) -> [Float] {
        guard var list = free[count], let buffer = list.popLast() else { return uninitializedFloats(count) }
        free[count] = list
        held.remove(Self.address(buffer))
        return buffer
    }

    /// Keeps `buffer` for a later `take` (once per storage: a second hand-back of the same storage is ignored).
    func give(_ buffer: consuming [Float]) {
        guard !buffer.isEmpty else { return }
        let a = Self.address(buffer)
        guard held.insert(a).inserted else { return }
        free[buffer.count, default: []].append(buffer)
    }

    static func address(_ b: [Float]) -> UnsafeRawPointer {
        b.withUnsafeBufferPointer { UnsafeRawPointer($0.baseAddress!) }
    }
}
