import Dispatch
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Every tensor of a state dict as contiguous Float32, in one allocation.
///
/// One anonymous mapping, advised for transparent huge pages, holds all tensors (each 64-byte aligned),
/// so loading ResNet-18's 46.8 MB takes a few dozen page faults instead of eleven thousand. This is the
/// form a model runtime wants its weights in; `Tensor.float32()` remains for one tensor at a time.
public final class Float32Arena: @unchecked Sendable {
    public let names: [String]
    private let index: [String: Int]
    private let offsets: [Int]  // in floats
    private let counts: [Int]
    private let base: UnsafeMutableRawPointer
    private let mappedBytes: Int

    /// Converts every tensor of `stateDict` on up to `threads` threads (largest first).
    public init(_ stateDict: StateDict, threads: Int = 1) throws {
        let tensors = stateDict.tensors
        var offsets: [Int] = []
        var total = 0
        for (_, t) in tensors {
            offsets.append(total)
            let (padded, overflow) = t.count.addingReportingOverflow(15)
            guard !overflow else { throw TensorError.elementCountOverflow([t.count]) }
            total += padded / 16 * 16  // 64-byte alignment
        }
        let huge = 2 << 20
        let bytes = max(total * 4, 1)
        let length = (bytes + huge - 1) / huge * huge
        guard let p = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), p != MAP_FAILED
        else {
            throw TensorError.elementCountOverflow([total])
        }
        _ = madvise(p, length, MADV_HUGEPAGE)
        base = p
        mappedBytes = length
        names = tensors.map(\.name)
        index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
        self.offsets = offsets
        counts = tensors.map(\.tensor.count)

        let order = tensors.indices.sorted { tensors[$0].tensor.count > tensors[$1].tensor.count }
        let floats = p.assumingMemoryBound(to: Float.self)
        let starts = offsets
        let next = Atomic<Int>(0)
        let failure = Mutex<(any Error)?>(nil)
        nonisolated(unsafe) let dst = floats
        DispatchQueue.concurrentPerform(iterations: max(1, min(threads, tensors.count))) { _ in
            while true {
                let k = next.add(1, ordering: .relaxed).oldValue
                guard k < order.count else { return }
                let i = order[k]
                do {
                    try tensors[i].tensor.writeFloat32(into: dst + starts[i])
                } catch {
                    failure.withLock { if $0 == nil { $0 = error } }
                    return
                }
            }
        }
        if let error = failure.withLock({ $0 }) {
            munmap(p, length)
            throw error
        }
    }

    deinit { munmap(base, mappedBytes) }

    public var count: Int { names.count }

    /// The tensor's elements, valid while the arena lives.
    public subscript(name: String) -> UnsafeBufferPointer<Float>? {
        index[name].map { self[$0] }
    }

    public subscript(i: Int) -> UnsafeBufferPointer<Float> {
        UnsafeBufferPointer(start: base.assumingMemoryBound(to: Float.self) + offsets[i], count: counts[i])
    }
}

extension Tensor {
    /// Writes the elements as Float32 in row-major order to `dst` (room for `count` floats).
    public func writeFloat32(into dst: UnsafeMutablePointer<Float>) throws {
        guard dtype.isReal else { throw TensorError.notReal(dtype) }
        let raw = try storage.bytes()
        var written = 0
        forEachRun { start, length, step in
            Conversion.toFloat32(
                dtype, from: raw.baseAddress!, start: start, step: step, count: length, into: dst + written)
            written += length
        }
    }
}
