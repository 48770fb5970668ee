import Foundation
import Tensors
import Testing

@testable import Checkpoint

/// One object pickled by CPython at protocols 0–5 (Tests/Reference/make_pickles.py, Python 3.11):
/// every protocol must decode to the encoding CPython's own unpickler gave.
@Suite struct PickleProtocolTests {
    @Test(arguments: 0...5)
    func decodesLikeCPython(_ proto: Int) throws {
        let exp = try Paths.json("pickles/pickles.expected.json")
        #expect(exp["generator"] as? String == "Tests/Reference/make_pickles.py")
        let bytes = [UInt8](try Data(contentsOf: Paths.fixtures.appendingPathComponent("pickles/proto\(proto).pkl")))
        let value = try bytes.withUnsafeBytes { raw -> Value in
            var r = ByteReader(raw, part: "proto\(proto).pkl")
            let v = try PickleMachine(host: TorchHost()).load(&r) { try TorchHost.value($0, maxDepth: 64) }
            #expect(r.isAtEnd)
            return v
        }
        var encoder = TaggedEncoder()
        let diff = firstDifference(try normalized(try encoder.encode(value)), exp["object"]!)
        #expect(diff == nil, "protocol \(proto): \(diff ?? "")")
    }
}
