import Testing

@testable import Tensors

/// `StateDictComparison`, the rule `pth2swt verify` applies: bit for bit, or torch.allclose's.
@Suite struct CompareTests {
    func f32(_ values: [Float], shape: [Int]? = nil) throws -> Tensor {
        let bytes = values.flatMap { v in withUnsafeBytes(of: v.bitPattern.littleEndian) { Array($0) } }
        let s = try Storage(key: "t", dtype: .float32, count: values.count, source: OwnedBytes(bytes))
        let shape = shape ?? [values.count]
        return try Tensor(storage: s, shape: shape, strides: Tensor.contiguousStrides(shape), storageOffset: 0)
    }

    func i64(_ values: [Int64]) throws -> Tensor {
        let bytes = values.flatMap { v in withUnsafeBytes(of: v.littleEndian) { Array($0) } }
        let s = try Storage(key: "i", dtype: .int64, count: values.count, source: OwnedBytes(bytes))
        return try Tensor(storage: s, shape: [values.count], strides: [1], storageOffset: 0)
    }

    func sd(_ entries: [(String, Tensor)]) throws -> StateDict {
        var d = StateDict()
        for (n, t) in entries { try d.insert(t, named: n) }
        return d
    }

    @Test func identicalIsAMatch() throws {
        let a = try sd([("w", f32([1, 2, 3, 4], shape: [2, 2])), ("n", i64([7]))])
        let r = try StateDictComparison().compare(a, a)
        #expect(r.match && r.tensorsCompared == 2 && r.elements == 5 && r.maxAbsDifference == 0)
    }

    @Test func namesShapesAndDtypesAreReported() throws {
        let a = try sd([("w", f32([1, 2, 3, 4], shape: [2, 2])), ("only_a", f32([0])), ("n", i64([7]))])
        let b = try sd([("w", f32([1, 2, 3, 4], shape: [4])), ("only_b", f32([0])), ("n", f32([7]))])
        let r = try StateDictComparison().compare(a, b)
        #expect(
            r.differences == [
                .init(tensor: "only_a", message: "only in A"), .init(tensor: "only_b", message: "only in B"),
                .init(tensor: "w", message: "shape [2, 2] vs [4]"),
                .init(tensor: "n", message: "dtype int64 vs float32"),
            ])
        // With a tolerance, dtypes may differ: int64 7 and float32 7.0 agree.
        let loose = try StateDictComparison(rtol: 1e-6).compare(try sd([("n", i64([7]))]), try sd([("n", f32([7]))]))
        #expect(loose.match)
    }

    @Test func bitForBitNamesTheFirstDifference() throws {
        let a = try sd([("w", f32([1, 2, 3, 4, 5, 6], shape: [2, 3]))])
        let b = try sd([("w", f32([1, 2, 3, 4, 5.5, 6.5], shape: [2, 3]))])
        let r = try StateDictComparison().compare(a, b)
        #expect(r.differences.map(\.message) == ["2 of 6 elements differ; first at [1, 1]: 5.0 vs 5.5"])
        // -0 and +0 differ bit for bit but not by value.
        let z = try StateDictComparison().compare(try sd([("z", f32([0]))]), try sd([("z", f32([-0.0]))]))
        #expect(!z.match)
        #expect(
            try StateDictComparison(atol: 1e-30).compare(try sd([("z", f32([0]))]), try sd([("z", f32([-0.0]))])).match)
    }

    @Test func allcloseIsTorchs() throws {
        // |a − b| ≤ atol + rtol·|b|, b the reference; NaN matches NaN; infinities only themselves.
        let a = try sd([("w", f32([1.0, 100.0, .nan, .infinity]))])
        let b = try sd([("w", f32([1.001, 100.05, .nan, .infinity]))])
        #expect(try StateDictComparison(rtol: 1e-3).compare(a, b).match)
        let tight = try StateDictComparison(rtol: 1e-4, atol: 0).compare(a, b)
        #expect(tight.differences.map(\.message).first?.hasPrefix("2 of 4 elements differ beyond tolerance") == true)
        #expect(abs(tight.maxAbsDifference - 0.05) < 1e-5)
        let inf = try StateDictComparison(rtol: 1).compare(
            try sd([("x", f32([.infinity]))]), try sd([("x", f32([-.infinity]))]))
        #expect(!inf.match)
    }

    @Test func indexSpellsEveryAxis() {
        #expect(StateDictComparison.index(0, []) == "[]")
        #expect(StateDictComparison.index(5, [2, 3]) == "[1, 2]")
        #expect(StateDictComparison.index(23, [2, 3, 4]) == "[1, 2, 3]")
    }
}
