import Testing

@testable import Tensors

/// Quantized, sparse, data-less and float8 tensors built by hand: every check a hostile file could
/// trip, and the arithmetic the fixtures of Tests/Reference/make_tensor_kinds.py check against torch.
@Suite struct TensorKindsTests {
    func tensor(_ dtype: DType, _ bytes: [UInt8], shape: [Int], strides: [Int]? = nil, offset: Int = 0) throws -> Tensor
    {
        let s = try Storage(key: "t", dtype: dtype, count: bytes.count / dtype.itemSize, source: OwnedBytes(bytes))
        return try Tensor(
            storage: s, shape: shape, strides: strides ?? Tensor.contiguousStrides(shape), storageOffset: offset)
    }

    func i64(_ values: [Int64], shape: [Int]? = nil) throws -> Tensor {
        try tensor(
            .int64, values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } },
            shape: shape ?? [values.count])
    }

    func f32(_ values: [Float], shape: [Int]? = nil) throws -> Tensor {
        try tensor(
            .float32, values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } },
            shape: shape ?? [values.count])
    }

    func f64(_ values: [Double]) throws -> Tensor {
        try tensor(
            .float64, values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } },
            shape: [values.count])
    }

    func sparseError(_ parts: SparseParts, _ shape: [Int]) -> String? {
        do {
            _ = try Tensor.sparse(parts, shape: shape, key: "s")
            return nil
        } catch {
            return "\(error)"
        }
    }

    // MARK: float8

    /// Landmarks of each format (its largest finite value, smallest subnormal, infinity and NaN codes);
    /// the fixture v3_dtypes.pth checks all 256 codes of each against ml_dtypes.
    @Test func float8Landmarks() {
        #expect(Float8.value(0x7E, .float8_e4m3fn) == 448)
        #expect(Float8.value(0x01, .float8_e4m3fn) == 0x1p-9)
        #expect(Float8.value(0x7F, .float8_e4m3fn).isNaN && Float8.value(0xFF, .float8_e4m3fn).isNaN)
        #expect(Float8.value(0x80, .float8_e4m3fn) == 0 && Float8.value(0x80, .float8_e4m3fn).sign == .minus)
        #expect(Float8.value(0x7B, .float8_e5m2) == 57344)
        #expect(Float8.value(0x7C, .float8_e5m2) == .infinity && Float8.value(0xFC, .float8_e5m2) == -.infinity)
        #expect(Float8.value(0x7D, .float8_e5m2).isNaN && Float8.value(0x01, .float8_e5m2) == 0x1p-16)
        #expect(Float8.value(0x80, .float8_e4m3fnuz).isNaN && Float8.value(0x7F, .float8_e4m3fnuz) == 240)
        #expect(Float8.value(0x01, .float8_e4m3fnuz) == 0x1p-10)
        #expect(Float8.value(0x80, .float8_e5m2fnuz).isNaN && Float8.value(0x7F, .float8_e5m2fnuz) == 57344)
        #expect(Float8.value(0x7F, .float8_e8m0fnu) == 1 && Float8.value(0x00, .float8_e8m0fnu) == 0x1p-127)
        #expect(Float8.value(0xFE, .float8_e8m0fnu) == 0x1p127 && Float8.value(0xFF, .float8_e8m0fnu).isNaN)
    }

    // MARK: quantized

    @Test func perChannelParametersMustFitTheAxis() throws {
        let q = try tensor(.qint8, [1, 2, 3, 4, 5, 6], shape: [2, 3])
        let three = try f64([0.1, 0.2, 0.3])
        let zeros3 = try i64([0, 1, 2])
        func check(_ p: Quantization.Parameters, _ scheme: Quantization.Scheme = .perChannelAffine) -> String? {
            do {
                try Quantization(scheme: scheme, parameters: p).check(shape: q.shape, dtype: q.dtype)
                return nil
            } catch {
                return "\(error)"
            }
        }
        #expect(check(.perChannel(scales: three, zeroPoints: zeros3, axis: 1)) == nil)
        #expect(check(.perChannel(scales: three, zeroPoints: zeros3, axis: 0))?.contains("3 scales") == true)
        #expect(
            check(.perChannel(scales: three, zeroPoints: try i64([0, 1]), axis: 1))?.contains("zero points") == true)
        #expect(check(.perChannel(scales: three, zeroPoints: zeros3, axis: 2))?.contains("axis 2") == true)
        #expect(check(.perChannel(scales: three, zeroPoints: zeros3, axis: -1))?.contains("axis -1") == true)
        #expect(check(.perChannel(scales: zeros3, zeroPoints: zeros3, axis: 1))?.contains("not a floating") == true)
        #expect(check(.perTensor(scale: .nan, zeroPoint: 0), .perTensorAffine)?.contains("not finite") == true)
        #expect(check(.perTensor(scale: 1, zeroPoint: 0), .perChannelAffine)?.contains("per-channel") == true)
        #expect(check(.perChannel(scales: three, zeroPoints: zeros3, axis: 1), .perTensorAffine) != nil)
    }

    /// torch's formulas, per tensor in float32 and per channel in float64 (Tests/Reference/make_tensor_kinds.py
    /// checks the same on torch 1.13's own output).
    @Test func dequantizeFollowsTorchsArithmetic() throws {
        var q = try tensor(.quint8, [0, 3, 255, 7], shape: [2, 2])
        q.quantization = Quantization(scheme: .perTensorAffine, parameters: .perTensor(scale: 0.1, zeroPoint: 3))
        let s = Float(0.1)
        #expect(try q.dequantized().float32() == [(0 - 3) * s, 0, (255 - 3) * s, (7 - 3) * s])
        var c = try tensor(.qint8, [1, 0xFF, 3, 4], shape: [2, 2])
        c.quantization = Quantization(
            scheme: .perChannelAffine,
            parameters: .perChannel(scales: try f64([0.01, 0.5]), zeroPoints: try i64([1, -2]), axis: 0))
        #expect(
            try c.dequantized().float32() == [0, Float((-1 - 1) * 0.01), Float((3 + 2) * 0.5), Float((4 + 2) * 0.5)])
        var f = try tensor(.quint8, [2, 4], shape: [2, 1])
        f.quantization = Quantization(
            scheme: .perChannelAffine,
            parameters: .perChannel(scales: try f32([0.5, 0.25]), zeroPoints: try f32([-1, 1]), axis: 0))
        #expect(f.quantization!.effectiveScheme == .perChannelAffineFloatQParams)
        #expect(try f.dequantized().float32() == [(2 + 1) * 0.5, (4 - 1) * 0.25])
        #expect(throws: TensorError.self) { try q.float32() }
    }

    @Test func packedValuesUnpackLowBitsFirst() throws {
        var q = try tensor(.quint4x2, [0xA3, 0x0F], shape: [3])
        #expect(q.byteCount == 2)
        #expect(try q.contiguousBytes() == [0xA3, 0x0F])
        #expect(try q.unpackedIntegers().int64Values() == [3, 10, 15])
        q.quantization = Quantization(scheme: .perTensorAffine, parameters: .perTensor(scale: 1, zeroPoint: 0))
        #expect(try q.dequantized().float32() == [3, 10, 15])
        let two = try tensor(.quint2x4, [0b1110_0100], shape: [4])
        #expect(try two.unpackedIntegers().int64Values() == [0, 1, 2, 3])
    }

    @Test func packedViewsMustBeWholeBytesInside() throws {
        let s = try Storage(key: "p", dtype: .quint4x2, count: 2, source: OwnedBytes([1, 2]))
        for (shape, strides, offset) in [([5], [1], 0), ([2, 2], [1, 2], 0), ([2], [1], 1), ([2], [1], 4)] {
            #expect(throws: TensorError.self) {
                try Tensor(storage: s, shape: shape, strides: strides, storageOffset: offset)
            }
        }
        #expect(try Tensor(storage: s, shape: [2], strides: [1], storageOffset: 2).contiguousBytes() == [2])
    }

    // MARK: sparse

    @Test func cooIndicesAreCheckedAgainstTheShape() throws {
        let values = try f32([1, 2, 3])
        func coo(_ idx: [Int64], dims: Int = 2) throws -> SparseParts {
            SparseParts(
                layout: .coo,
                components: [("indices", try i64(idx, shape: [dims, idx.count / dims])), ("values", values)])
        }
        #expect(sparseError(try coo([0, 1, 2, 0, 3, 1]), [3, 4]) == nil)
        #expect(sparseError(try coo([0, 1, 3, 0, 3, 1]), [3, 4])?.contains("index 3 at [0, 2]") == true)
        #expect(sparseError(try coo([0, 1, 2, 0, -1, 1]), [3, 4])?.contains("index -1") == true)
        #expect(sparseError(try coo([0, 1, 2, 0, 4, 1]), [3, 4])?.contains("dimension 1 of size 4") == true)
        #expect(sparseError(try coo([0, 1, 2, 0, 3, 1]), [3, 4, 5]) != nil)
        let f32Indices = SparseParts(
            layout: .coo, components: [("indices", try f32([0, 1, 2, 0, 3, 1], shape: [2, 3])), ("values", values)])
        #expect(sparseError(f32Indices, [3, 4])?.contains("int64") == true)
        let fewer = SparseParts(
            layout: .coo, components: [("indices", try i64([0, 1, 0, 1], shape: [2, 2])), ("values", values)])
        #expect(sparseError(fewer, [3, 4])?.contains("2 index columns but 3 values") == true)
    }

    @Test func cooDuplicatesAreSummed() throws {
        let parts = SparseParts(
            layout: .coo,
            components: [("indices", try i64([0, 1, 0, 2, 0, 2], shape: [2, 3])), ("values", try f32([1, 2, 4]))])
        #expect(try Tensor.sparse(parts, shape: [2, 3], key: "s").float32() == [0, 0, 5, 2, 0, 0])
    }

    @Test func compressedIndicesAreCheckedAsTorchChecksThem() throws {
        let values = try f32([1, 2, 3])
        func csr(_ crow: [Int64], _ col: [Int64], _ layout: SparseParts.Layout = .csr) throws -> SparseParts {
            SparseParts(
                layout: layout,
                components: [
                    (layout.componentNames[0], try i64(crow)), (layout.componentNames[1], try i64(col)),
                    ("values", values),
                ])
        }
        #expect(sparseError(try csr([0, 2, 3], [0, 2, 1]), [2, 3]) == nil)
        #expect(
            try Tensor.sparse(try csr([0, 2, 3], [0, 2, 1]), shape: [2, 3], key: "s").float32() == [1, 0, 2, 0, 3, 0])
        #expect(
            try Tensor.sparse(try csr([0, 2, 3], [0, 2, 1], .csc), shape: [3, 2], key: "s").float32() == [
                1, 0, 0, 3, 2, 0,
            ])
        #expect(sparseError(try csr([1, 2, 3], [0, 2, 1]), [2, 3])?.contains("[0] is 1") == true)
        #expect(sparseError(try csr([0, 2, 2], [0, 2, 1]), [2, 3])?.contains("not the 3 values") == true)
        #expect(sparseError(try csr([0, 3, 2, 3], [0, 1, 2]), [3, 3])?.contains("goes from 3 to 2") == true)
        #expect(sparseError(try csr([0, 2, 3], [0, 3, 1]), [2, 3])?.contains("outside [0, 3)") == true)
        #expect(sparseError(try csr([0, 2, 3], [2, 0, 1]), [2, 3])?.contains("not strictly increasing") == true)
        #expect(sparseError(try csr([0, 2, 3], [1, 1, 1]), [2, 3])?.contains("not strictly increasing") == true)
        #expect(sparseError(try csr([0, 2, 3], [0, 2, 1]), [3, 3])?.contains("3 entries, not 4") == true)
        let blocks = SparseParts(
            layout: .bsr,
            components: [
                ("crow_indices", try i64([0, 1])), ("col_indices", try i64([0])),
                ("values", try f32([1, 2, 3, 4], shape: [1, 2, 2])),
            ])
        #expect(sparseError(blocks, [2, 3])?.contains("do not tile") == true)
        #expect(try Tensor.sparse(blocks, shape: [2, 4], key: "s").float32() == [1, 2, 0, 0, 3, 4, 0, 0])
    }

    // MARK: without data

    @Test func metaTensorsHaveShapeButNoValues() throws {
        let t = try Tensor.withoutData(dtype: .float32, shape: [2, 3], strides: [1, 2], what: "a meta tensor")
        #expect(!t.hasData && t.count == 6 && t.storage.location == "meta")
        #expect(throws: TensorError.noData("a meta tensor")) { try t.contiguousBytes() }
        let huge = try Tensor.withoutData(
            dtype: .float32, shape: [1 << 40, 1 << 20], strides: [1 << 20, 1], what: "m")
        #expect(huge.count == 1 << 60 && !huge.hasData)
        #expect(throws: TensorError.self) {
            try Tensor.withoutData(dtype: .float32, shape: [1 << 62, 4], strides: [4, 1], what: "m")
        }
    }
}

/// Found by the hostile corpus: shapes with a zero dimension beside huge ones have no elements, and
/// strides or contiguity of them must not overflow.
@Suite struct EmptyHugeShapeTests {
    @Test func zeroDimensionBesideHugeOnesIsAnEmptyTensor() throws {
        let shape = [0, 1 << 40, 1 << 40]
        let strides = Tensor.contiguousStrides(shape)
        #expect(strides[2] == 1 && strides[1] == 1 << 40 && strides[0] == Int.max)
        let s = try Storage(key: "e", dtype: .float32, count: 0, source: OwnedBytes([]))
        let t = try Tensor(storage: s, shape: shape, strides: strides, storageOffset: 0)
        #expect(t.count == 0 && t.isContiguous && t.byteCount == 0)
        #expect(try t.contiguousBytes().isEmpty)
    }
}
