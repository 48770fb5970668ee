import Testing

@testable import Tensors

/// A storage of `count` elements of `dtype` with the given little-endian bytes.
func storage(_ dtype: DType, _ bytes: [UInt8]) throws -> Storage {
    try Storage(key: "t", dtype: dtype, count: bytes.count / dtype.itemSize, source: OwnedBytes(bytes))
}

func le<T: FixedWidthInteger>(_ values: [T]) -> [UInt8] {
    values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
}

@Suite struct TensorTests {
    /// Known bit patterns and what torch's `.float()` gives for them (IEEE; bf16 is the top half of f32).
    @Test func dtypeConversions() throws {
        let cases: [(DType, [UInt8], [Float])] = [
            (.float16, le([UInt16(0x3C00), 0xC000, 0x7BFF, 0x0001]), [1, -2, 65504, 5.9604645e-08]),
            (.bfloat16, le([UInt16(0x3F80), 0xC040, 0x0001]), [1, -3, Float(bitPattern: 0x0001_0000)]),
            (.float64, le([Double(0.1).bitPattern, Double(-1e300).bitPattern]), [0.1, -.infinity]),
            (.int64, le([Int64.max, -7]), [9.223372e18, -7]),
            (.int32, le([Int32.min, 5]), [-2_147_483_648, 5]),
            (.int16, le([Int16(-32768), 300]), [-32768, 300]),
            (.int8, [0x80, 0x7F], [-128, 127]),
            (.uint8, [0xFF, 0x00], [255, 0]),
            (.bool, [0x00, 0x01, 0x02], [0, 1, 1]),
            (.float32, le([Float(1.5).bitPattern, Float(-0.0).bitPattern]), [1.5, -0.0]),
        ]
        for (dtype, bytes, want) in cases {
            let s = try storage(dtype, bytes)
            let t = try Tensor(storage: s, shape: [s.count], strides: [1], storageOffset: 0)
            let got = try t.float32()
            #expect(got.map(\.bitPattern) == want.map(\.bitPattern), "\(dtype): \(got) vs \(want)")
            #expect(try t.float32Reference().map(\.bitPattern) == want.map(\.bitPattern))
        }
    }

    /// The run-based gather against the per-element reference on random shapes, strides and offsets.
    @Test func stridedGatherMatchesReference() throws {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let rank = Int.random(in: 0...4, using: &rng)
            let shape = (0..<rank).map { _ in Int.random(in: 0...4, using: &rng) }
            var strides = (0..<rank).map { _ in Int.random(in: 0...7, using: &rng) }
            if Bool.random(using: &rng) { strides = Tensor.contiguousStrides(shape) }
            let offset = Int.random(in: 0...5, using: &rng)
            var last = offset
            for (n, st) in zip(shape, strides) where n > 0 { last += (n - 1) * st }
            // Every dtype with one real value per element (quantized and complex ones have no float32()).
            let dtype = DType.allCases.filter(\.isReal).randomElement(using: &rng)!
            let count = last + 1 + Int.random(in: 0...3, using: &rng)
            let bytes = (0..<(count * dtype.itemSize)).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let s = try storage(dtype, bytes)
            let t = try Tensor(storage: s, shape: shape, strides: strides, storageOffset: offset)
            #expect(
                try t.float32().map(\.bitPattern) == t.float32Reference().map(\.bitPattern),
                "\(dtype) \(shape) \(strides) +\(offset)")
            // contiguousBytes: element i of the C-order walk equals the reference's bytes.
            let cb = try t.contiguousBytes()
            #expect(cb.count == t.count * dtype.itemSize)
        }
    }

    @Test func contiguity() throws {
        let s = try storage(.float32, [UInt8](repeating: 0, count: 4 * 24))
        #expect(try Tensor(storage: s, shape: [2, 3, 4], strides: [12, 4, 1], storageOffset: 0).isContiguous)
        #expect(try !Tensor(storage: s, shape: [3, 2], strides: [1, 3], storageOffset: 0).isContiguous)
        #expect(try Tensor(storage: s, shape: [1, 5], strides: [99, 1], storageOffset: 0).isContiguous)
        #expect(try Tensor(storage: s, shape: [0, 5], strides: [1, 1], storageOffset: 0).isContiguous)
    }

    @Test func storageViewsShareTheirRoot() throws {
        let root = try storage(.int32, le([Int32(0), 1, 2, 3, 4, 5]))
        let view = try Storage(key: "v", viewOf: root, offset: 2, count: 3)
        let nested = try Storage(key: "w", viewOf: view, offset: 1, count: 2)
        #expect(nested.base === root && nested.rootOffset == 3)
        let t = try Tensor(storage: nested, shape: [2], strides: [1], storageOffset: 0)
        #expect(try t.float32() == [3, 4])
        #expect(throws: TensorError.self) { try Storage(key: "x", viewOf: root, offset: 4, count: 3) }
    }

    @Test func bigEndianSourceIsSwapped() throws {
        let be: [UInt8] = [0x3F, 0x80, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00]  // 1.0, -2.0 big-endian
        let s = try Storage(key: "b", dtype: .float32, count: 2, source: ByteSwappedSource(OwnedBytes(be), itemSize: 4))
        #expect(try Tensor(storage: s, shape: [2], strides: [1], storageOffset: 0).float32() == [1, -2])
    }
}
