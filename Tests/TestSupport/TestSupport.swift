/// What the test targets share: one seeded generator and one way to compare float arrays. Not a
/// product; only test targets depend on it.

import NN

/// TestRandom: NN.SplitMix64's stream, for the random tests, so a failing case reproduces from its seed.
/// Its floats are 24-bit uniforms in [-1, 1).
public struct TestRandom: RandomNumberGenerator, Sendable {
    private var source: SplitMix64
    public init(s: UInt64) { source = SplitMix64(seed: s) }
    public init(seed: UInt64) { source = SplitMix64(seed: seed) }

    public mutating func next() -> UInt64 { source.next() }

    /// Uniform in `r` (modulo bias below 2⁻⁵⁰ for the ranges tests use).
    public mutating func int(_ r: ClosedRange<Int>) -> Int { r.lowerBound + Int(next() % UInt64(r.count)) }
    /// Uniform in [-1, 1).
    public mutating func float() -> Float { Float(next() >> 40) / Float(1 << 24) * 2 - 1 }
    public mutating func floats(_ n: Int) -> [Float] { (0..<n).map { _ in float() } }
    /// `n` bytes, eight per draw, low byte first.
    public mutating func bytes(_ n: Int) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(n)
        while out.count < n {
            var word = next()
            for _ in 0..<8 where out.count < n {
                out.append(UInt8(truncatingIfNeeded: word))
                word >>= 8
            }
        }
        return out
    }
}

/// max |a − b| over max |b| (b is the reference; at least 1e-6), so sums of many terms compare fairly.
/// A NaN on one side only counts as infinitely far.
public func relativeError(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "\(a.count) vs \(b.count) values")
    let scale = max(b.map(abs).max() ?? 0, 1e-6)
    return zip(a, b).map { $0.isNaN != $1.isNaN ? .infinity : abs($0 - $1) }.max().map { $0 / scale } ?? 0
}

/// Whether every value has the same bits (NaN payloads aside: NaN matches NaN).
public func sameBits(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern || ($0.isNaN && $1.isNaN) }
}
