import Foundation
import Tensors
import Testing

@testable import Checkpoint

/// Each cap of `LoadOptions` / `PickleLimits`: lowered, it refuses a valid file with an error naming it;
/// at its default, real checkpoints pass (the fixtures here, the full-size files in SharedWeightsTests).
@Suite struct ResourceLimitTests {
    /// Opens `file` with `change` applied to the default options; the cap and limit of the error.
    static func refusal(_ file: String, _ change: (inout LoadOptions) -> Void) -> (
        CheckpointLimit, Int, CheckpointError
    )? {
        var options = LoadOptions()
        change(&options)
        do {
            let ckpt = try Checkpoint(path: Paths.fixture(file), options: options)
            try readEveryTensor(ckpt.root)
            return nil
        } catch let e as CheckpointError {
            guard case .limitExceeded(let cap, let limit, _) = e.kind else { return nil }
            return (cap, limit, e)
        } catch {
            return nil
        }
    }

    @Test func defaultsReadEveryFixture() throws {
        for name in Paths.expectedFiles(hostile: false) {
            let file = String(name.dropLast(".expected.json".count)) + ".pth"
            try readEveryTensor(try Checkpoint(path: Paths.fixture(file)).root)
        }
        try readEveryTensor(try Checkpoint(path: Paths.fixture("swt_small.swt")).root)
    }

    @Test func eachPickleCapNamesItself() throws {
        let cases: [(CheckpointLimit, Int, String, (inout LoadOptions) -> Void)] = [
            (.maxStack, 3, "zip_nested.pth", { $0.limits.maxStack = 3 }),
            (.maxMarks, 0, "zip_nested.pth", { $0.limits.maxMarks = 0 }),
            (.maxMemo, 5, "zip_nested.pth", { $0.limits.maxMemo = 5 }),
            (.maxIntegerBytes, 8, "legacy_dtypes.pth", { $0.limits.maxIntegerBytes = 8 }),  // the 10-byte magic
            (.maxDepth, 2, "zip_nested.pth", { $0.limits.maxDepth = 2 }),
            (.maxHeaderBytes, 64, "swt_small.swt", { $0.maxHeaderBytes = 64 }),
            (.maxHeaderBytes, 100, "zip_nested.pth", { $0.maxHeaderBytes = 100 }),
        ]
        for (cap, limit, file, change) in cases {
            let got = Self.refusal(file, change)
            #expect(got?.0 == cap && got?.1 == limit, "\(file) with \(cap) = \(limit): \(String(describing: got?.2))")
            if let e = got?.2 {
                #expect(e.description.contains("limit exceeded: \(cap.qualifiedName) = \(limit)"), "\(e)")
                #expect(e.file == Paths.fixture(file))
            }
        }
    }

    /// 1,111 values from a 3-level memo fan-out of 68 bytes: refused under maxValues 1,000, read at
    /// the default. (The effective cap is max(maxValues, 2 × pickle bytes).)
    @Test func maxValuesCountsSharedContainersEachTime() throws {
        var p: [UInt8] = [0x80, 0x02, 0x5D, 0x28] + [UInt8](repeating: 0x4E, count: 10) + [0x65, 0x71, 0x00, 0x30]
        p += [0x5D, 0x28] + Array([[UInt8]](repeating: [0x68, 0x00], count: 10).joined()) + [0x65, 0x71, 0x01, 0x30]
        p += [0x5D, 0x28] + Array([[UInt8]](repeating: [0x68, 0x01], count: 10).joined()) + [0x65, 0x2E]
        func load(_ maxValues: Int) throws -> Value {
            var options = LoadOptions()
            options.limits.maxValues = maxValues
            var log = GlobalLog()
            return try p.withUnsafeBytes { raw in
                var r = ByteReader(raw, part: "laughs.pkl")
                return try runPickle(&r, host: TorchHost(), options: options, log: &log).result
            }
        }
        guard case .list(let top) = try load(PickleLimits().maxValues) else {
            Issue.record("not a list")
            return
        }
        #expect(top.count == 10)
        let error = #expect(throws: CheckpointError.self) { try load(1000) }
        #expect(
            error?.kind
                == .limitExceeded(
                    .maxValues, limit: 1000,
                    "the pickle's result holds more values (containers referenced many times through the memo)"))
        // The same budget bounds hashing: a dict key of 30 nested (t, t) pairs is 2^30 tuples.
        var k: [UInt8] = [0x80, 0x02, 0x7D, 0x4E, 0x85, 0x71, 0x00, 0x30]
        for level in 1...30 { k += [0x68, UInt8(level - 1), 0x68, UInt8(level - 1), 0x86, 0x71, UInt8(level), 0x30] }
        k += [0x68, 30, 0x4E, 0x73, 0x2E]
        let keyError = #expect(throws: CheckpointError.self) {
            try k.withUnsafeBytes { raw in
                var r = ByteReader(raw, part: "key.pkl")
                var log = GlobalLog()
                var options = LoadOptions()
                options.limits.maxValues = 1000
                _ = try runPickle(&r, host: TorchHost(), options: options, log: &log)
            }
        }
        guard case .limitExceeded(.maxValues, limit: 1000, _)? = keyError?.kind else {
            Issue.record("got \(String(describing: keyError))")
            return
        }
        #expect(keyError?.offset == k.count - 2)  // the SETITEM
        #expect(error?.part == "laughs.pkl")
    }

    /// The bytes tensors span, at the boundary: exactly the cap passes, one element more is refused and
    /// names the tensor that crossed it.
    @Test func maxTensorBytesRatioIsExact() throws {
        let storage = try Storage(key: "0", dtype: .float32, count: 1, source: OwnedBytes([0, 0, 128, 63]))
        let fileBytes = 1000
        let cap = 16 * fileBytes + (64 << 20)
        func tree(_ elements: Int) throws -> Value {
            let t = try Tensor(storage: storage, shape: [elements], strides: [0], storageOffset: 0)
            return .dict(ValueDict(entries: [.init(key: .string("a"), value: .tensor(t))], isOrdered: true))
        }
        try Checkpoint.checkTensorBytes(try tree(cap / 4), fileBytes: fileBytes, options: LoadOptions())
        let error = #expect(throws: CheckpointError.self) {
            try Checkpoint.checkTensorBytes(try tree(cap / 4 + 1), fileBytes: fileBytes, options: LoadOptions())
        }
        guard case .limitExceeded(.maxTensorBytesRatio, limit: 16, _)? = error?.kind else {
            Issue.record("got \(String(describing: error))")
            return
        }
        #expect(error?.tensor == "a")
        var lax = LoadOptions()
        lax.maxTensorBytesRatio = 17
        try Checkpoint.checkTensorBytes(try tree(cap / 4 + 1), fileBytes: fileBytes, options: lax)
    }

    /// The corpus's zip bomb is refused only by the cap: raised, the same file reads (40 MiB of zeros).
    @Test func maxInflationRatioIsTheOnlyThingRefusingTheBomb() throws {
        let path = Paths.fixture("hostile/zip_bomb.pth")
        let error = #expect(throws: CheckpointError.self) { try Checkpoint(path: path) }
        guard case .limitExceeded(.maxInflationRatio, limit: 32, _)? = error?.kind else {
            Issue.record("got \(String(describing: error))")
            return
        }
        var lax = LoadOptions()
        lax.maxInflationRatio = 2000
        lax.maxTensorBytesRatio = 2000
        let w = try #require(try Checkpoint(path: path, options: lax).stateDict()["w"])
        #expect(w.count == 10 << 20)
        let bytes = try w.storage.bytes()
        #expect(bytes.count == 40 << 20 && bytes.allSatisfy { $0 == 0 })
    }

    /// The CLI prints a cap's refusal on one line with the file, the part, the offset and the cap's name,
    /// and `--json` gives the same fields. Skipped when the pth2swt executable has not been built.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: ResourceLimitTests.tool), "pth2swt is not built"))
    func cliNamesTheCap() throws {
        let file = Paths.fixture("hostile/memo_flood.pth")
        let (status, output) = try ReferenceScript.run(Self.tool, ["inspect", file])
        #expect(status == 1)
        #expect(
            output
                == "error: \(file): archive/data.pkl: byte 1048579: limit exceeded: PickleLimits.maxMemo = 1048576: the pickle memo would hold more entries\n",
            "\(output)")
        let (jsonStatus, json) = try ReferenceScript.run(Self.tool, ["inspect", "--json", file])
        #expect(jsonStatus == 1)
        let object = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
        #expect(object?["limit"] as? String == "PickleLimits.maxMemo")
        #expect(object?["offset"] as? Int == 1_048_579)
        #expect(object?["part"] as? String == "archive/data.pkl")
        // --cap raises a cap: the zip bomb, inflated, is 40 MiB of zeros.
        let bomb = Paths.fixture("hostile/zip_bomb.pth")
        let (raised, table) = try ReferenceScript.run(
            Self.tool,
            [
                "inspect", "--cap", "maxInflationRatio=2000", "--cap", "maxTensorBytesRatio=2000", bomb,
            ])
        #expect(raised == 0, "\(table)")
        #expect(table.contains("1 tensors, 10,485,760 elements"), "\(table)")
        let (bad, usage) = try ReferenceScript.run(Self.tool, ["inspect", "--cap", "maxFoo=1", bomb])
        #expect(bad != 0 && usage.contains("--cap maxFoo=1: the name must be one of"), "\(usage)")
    }

    static var tool: String { ReferenceScript.productsDirectory.appendingPathComponent("pth2swt").path }
}
