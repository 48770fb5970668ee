import Foundation
import Tensors
import Testing

@testable import Checkpoint

/// Hand-built `.swt` files: one valid, then one per rule the header can break, each refused with its
/// own error (ZIPFoundation-style: the bytes are written here, the exact error is asserted).
@Suite struct SWTHeaderTests {
    /// An 8-byte length, the header text, then `data` bytes.
    static func file(_ header: String, data: Int) -> [UInt8] {
        let h = Array(header.utf8)
        var out: [UInt8] = (0..<8).map { UInt8(truncatingIfNeeded: UInt64(h.count) >> (8 * $0)) }
        out += h
        out += (0..<data).map { UInt8(truncatingIfNeeded: $0) }
        return out
    }

    static func parse(_ bytes: [UInt8]) throws(SWTHeaderError) -> SWTHeader {
        let result: Result<SWTHeader, SWTHeaderError> = bytes.withUnsafeBytes { raw in
            do throws(SWTHeaderError) { return .success(try SWTHeader.parse(raw)) } catch { return .failure(error) }
        }
        return try result.get()
    }

    static func error(_ header: String, data: Int) -> SWTHeaderError? {
        do {
            _ = try parse(file(header, data: data))
            return nil
        } catch {
            return error
        }
    }

    let a = #""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#
    let b = #""b":{"dtype":"I64","shape":[1],"data_offsets":[8,16]}"#

    @Test func validHeaderParses() throws {
        let h = try Self.parse(Self.file("{\"__metadata__\":{\"k\":\"v\"},\(b),\(a)}", data: 16))
        #expect(h.entries.map(\.name) == ["b", "a"])
        #expect(h.entries[1] == SWTEntry(name: "a", dtype: .float32, shape: [2], begin: 0, end: 8))
        #expect(h.metadata.map(\.key) == ["k"])
        // Zero-size tensors may sit anywhere in the tiling.
        let z = #""z":{"dtype":"F16","shape":[0,3],"data_offsets":[8,8]}"#
        #expect(throws: Never.self) { try Self.parse(Self.file("{\(a),\(z),\(b)}", data: 16)) }
    }

    @Test func lengthOutOfRange() {
        var bytes = Self.file("{\(a)}", data: 8)
        bytes.replaceSubrange(0..<8, with: [0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0])
        #expect((try? Self.parse(bytes)) == nil)
        do { _ = try Self.parse(bytes) } catch {
            guard case .headerLength(let n, _) = error else {
                Issue.record("got \(error)")
                return
            }
            #expect(n == 0xFFFF_FFFF)
        }
        #expect(Self.error("", data: 0) == .headerLength(declared: 0, fileBytes: 8))
    }

    @Test func notJSON() {
        guard case .notJSON(let e)? = Self.error("{\"a\":", data: 0) else {
            Issue.record("not refused as JSON")
            return
        }
        #expect(e.offset == 13)  // the end of the text, counted from the file's start
        #expect(Self.error("[1, 2]", data: 0) == .notAnObject(kind: "array"))
    }

    @Test func duplicateName() {
        #expect(Self.error("{\(a),\(a)}", data: 8) == .duplicateName("a"))
    }

    @Test func badMetadata() {
        guard case .badMetadata? = Self.error("{\"__metadata__\":{\"k\":3},\(a)}", data: 8) else {
            Issue.record("accepted")
            return
        }
        guard case .badMetadata? = Self.error("{\"__metadata__\":[],\(a)}", data: 8) else {
            Issue.record("accepted")
            return
        }
    }

    @Test func badEntries() {
        guard case .badEntry(let n, _)? = Self.error(#"{"a":{"shape":[2],"data_offsets":[0,8]}}"#, data: 8) else {
            Issue.record("missing dtype accepted")
            return
        }
        #expect(n == "a")
        guard case .badEntry? = Self.error(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}"#, data: 8)
        else {
            Issue.record("extra field accepted")
            return
        }
        guard case .badEntry? = Self.error(#"{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#, data: 8) else {
            Issue.record("fractional dimension accepted")
            return
        }
        guard case .badEntry? = Self.error(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0]}}"#, data: 8) else {
            Issue.record("one offset accepted")
            return
        }
    }

    @Test func unknownDType() {
        #expect(
            Self.error(#"{"a":{"dtype":"C128","shape":[2],"data_offsets":[0,2]}}"#, data: 2)
                == .unknownDType(name: "a", dtype: "C128"))
    }

    @Test func badShape() {
        #expect(
            Self.error(#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,0]}}"#, data: 0)
                == .badShape(name: "a", shape: [-2]))
        #expect(
            Self.error(#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,0]}}"#, data: 0)
                == .badShape(name: "a", shape: [4_294_967_296, 4_294_967_296]))
    }

    @Test func shapeAndOffsetsDisagree() {
        #expect(
            Self.error(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, data: 8)
                == .sizeMismatch(name: "a", expectedBytes: 12, begin: 0, end: 8))
    }

    @Test func offsetsOutOfRange() {
        #expect(Self.error("{\(a)}", data: 4) == .offsetOutOfRange(name: "a", begin: 0, end: 8, dataBytes: 4))
        #expect(
            Self.error(#"{"a":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}}"#, data: 8)
                == .offsetOutOfRange(name: "a", begin: 8, end: 0, dataBytes: 8))
    }

    @Test func overlap() {
        let c = #""c":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}"#
        #expect(Self.error("{\(a),\(c)}", data: 12) == .overlap(name: "c", other: "a", at: 4))
    }

    @Test func holes() {
        let c = #""c":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}"#
        #expect(Self.error("{\(a),\(c)}", data: 16) == .hole(after: "a", from: 8, to: 12))
        #expect(Self.error("{\(a)}", data: 12) == .hole(after: "a", from: 8, to: 12))
        let d = #""d":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}"#
        #expect(Self.error("{\(d)}", data: 8) == .hole(after: nil, from: 0, to: 4))
    }

    @Test func checkpointReportsHeaderErrorsWithFile() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("dup.swt").path
        try Data(Self.file("{\(a),\(a)}", data: 8)).write(to: URL(fileURLWithPath: path))
        let e = #expect(throws: CheckpointError.self) { try Checkpoint(path: path) }
        #expect(e?.kind == .swtHeader(.duplicateName("a")))
        #expect(e?.file == path)
    }

    @Test func everyTruncationIsRefused() throws {
        // A real converted file, cut at every length up to the end of its header and at a sample of
        // lengths in its data: an error each time, never a crash or a tensor.
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sd = try Checkpoint(path: Paths.fixture("zip_dtypes.pth")).stateDict()
        let path = dir.appendingPathComponent("t.swt").path
        let report = try SWTWriter.write(sd, to: path, converter: "test")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let cuts = Array(0..<report.dataStart) + Array(stride(from: report.dataStart, to: bytes.count, by: 7))
        for n in cuts {
            #expect(throws: (any Error).self, "cut at \(n)") { _ = try Self.parse(Array(bytes.prefix(n))) }
        }
        #expect(throws: Never.self) { _ = try Self.parse(bytes) }
    }
}

@Suite struct JSONParserTests {
    @Test func values() throws {
        let j = try JSON.parse(#" {"a": [1, -2.5e3, true, null, "x\"\u00e9\ud83d\ude00"], "b": {}} "#)
        #expect(
            j
                == .object([
                    ("a", .array([.int(1), .double(-2500), .bool(true), .null, .string("x\"é😀")])),
                    ("b", .object([])),
                ]))
        #expect(try JSON.parse("9223372036854775807") == .int(Int.max))
        #expect(try JSON.parse("9223372036854775808") == .double(9_223_372_036_854_775_808))
    }

    @Test func refusals() {
        for bad in [
            "", "{", "[1,]", "{\"a\":1,}", "01", "1.", "\"\\x\"", "\"\\ud800\"", "\"a\u{01}\"", "tru", "{} x",
            "{\"a\":1,\"a\":2}",
        ] {
            #expect(throws: JSONParseError.self, "\(bad)") { try JSON.parse(bad) }
        }
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: JSONParseError.self) { try JSON.parse(deep) }
        let invalidUTF8: [UInt8] = [0x22, 0xC3, 0x28, 0x22]
        #expect(throws: JSONParseError.self) { try invalidUTF8.withUnsafeBytes { try JSON.parse($0) } }
    }

    @Test func renderThenParse() throws {
        let j: JSON = .object([("k\n", .array([.int(-1), .double(0.25), .string("\u{7}")])), ("e", .null)])
        #expect(try JSON.parse(j.render(indent: nil)) == j)
        #expect(try JSON.parse(j.render()) == j)
    }
}

@Suite struct NamePatternTests {
    @Test func matching() {
        let cases: [(String, String, Bool)] = [
            ("fc.*", "fc.weight", true), ("fc.*", "layer1.fc.weight", false), ("*.bias", "layer1.0.bn1.bias", true),
            ("layer?.0.*", "layer4.0.conv1.weight", true), ("layer[12].*", "layer3.0.conv1.weight", false),
            ("layer[!12].*", "layer3.0.conv1.weight", true), ("*", "", true), ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false), ("conv1.weight", "conv1.weight", true), ("[", "[", true),
        ]
        for (p, name, want) in cases {
            #expect(NamePattern(p).matches(name) == want, "\(p) vs \(name)")
        }
    }

    @Test func filteredKeepsOrderAndValues() throws {
        let sd = try Checkpoint(path: Paths.fixture("zip_dtypes.pth")).stateDict()
        let some = sd.filtered(select: [NamePattern("*")], exclude: [NamePattern(sd.names[0])])
        #expect(some.names == Array(sd.names.dropFirst()))
        #expect(sd.filtered(select: [NamePattern("no such")]).isEmpty)
    }
}
