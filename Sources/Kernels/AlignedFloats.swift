/// Floats that start on a cache line (64 bytes): packed weights, and the buffers the kernels run over.
///
/// The AVX-512 micro-kernel loads its B operand 64 bytes at a time. A Swift array's elements start 32
/// bytes into its allocation, and glibc's large allocations start 16 bytes into a page, so a packed
/// weight held in an array starts 48 bytes past a line and every one of those loads reads two lines.
/// On ResNet-18's 7×7 stage that cost 5–12 % per convolution (scripts/harness, the weights at offsets 0
/// and 48). Storage here is allocated at a line and freed with the object.
public final class AlignedFloats: @unchecked Sendable {
    /// The bytes every allocation here starts on.
    public static let alignment = 64

    public let count: Int
    /// Valid for the life of this object. Written only while it is being filled, before it is shared.
    public let baseAddress: UnsafeMutablePointer<Float>

    /// `count` zeros.
    public convenience init(zeros count: Int) {
        self.init(uninitializedCount: count)
        baseAddress.initialize(repeating: 0, count: count)
    }

    /// `count` floats of whatever the allocator left, for buffers that every user overwrites before
    /// reading (scratch).
    public init(uninitializedCount count: Int) {
        precondition(count >= 0, "a negative count of floats")
        self.count = count
        baseAddress = UnsafeMutableBufferPointer<Float>.allocateLineAligned(capacity: count).baseAddress!
    }

    /// A copy of `values`.
    public convenience init(_ values: [Float]) {
        self.init(uninitializedCount: values.count)
        values.withUnsafeBufferPointer { if let b = $0.baseAddress { baseAddress.initialize(from: b, count: count) } }
    }

    /// `count` floats that `fill` writes (it gets them zeroed).
    public convenience init(count: Int, _ fill: (UnsafeMutableBufferPointer<Float>) -> Void) {
        self.init(zeros: count)
        fill(UnsafeMutableBufferPointer(start: baseAddress, count: count))
    }

    public func withUnsafeBufferPointer<R, E: Error>(_ body: (UnsafeBufferPointer<Float>) throws(E) -> R) throws(E) -> R
    {
        try body(UnsafeBufferPointer(start: baseAddress, count: count))
    }

    public func withUnsafeMutableBufferPointer<R, E: Error>(_ body: (UnsafeMutableBufferPointer<Float>) throws(E) -> R)
        throws(E) -> R
    {
        try body(UnsafeMutableBufferPointer(start: baseAddress, count: count))
    }

    /// The values as an array (a copy).
    public var array: [Float] { Array(UnsafeBufferPointer(start: baseAddress, count: count)) }

    deinit { baseAddress.deallocate() }
}

extension UnsafeMutableBufferPointer where Element == Float {
    /// `capacity` uninitialised floats (at least one) starting on a cache line, for activation and scratch
    /// buffers that vector loads and stores run over. Free with `deallocate()`.
    public static func allocateLineAligned(capacity: Int) -> UnsafeMutableBufferPointer<Float> {
        precondition(capacity >= 0, "a negative count of floats")
        let n = Swift.max(capacity, 1)
        let (bytes, overflow) = n.multipliedReportingOverflow(by: MemoryLayout<Float>.stride)
        precondition(!overflow, "\(capacity) floats do not fit in memory")
        let raw = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: AlignedFloats.alignment)
        return UnsafeMutableBufferPointer(start: raw.bindMemory(to: Float.self, capacity: n), count: capacity)
    }
}
