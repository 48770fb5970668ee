import Tensors
import Testing

@testable import Checkpoint

/// `Value.summary` (inspect's table) and `Value.reportJSON` (inspect --json's values): total, unlike
/// `Value.json`, which is faithful or nil.
@Suite struct ValueReportTests {
    func tensor() throws -> Tensor {
        let s = try Storage(key: "0", dtype: .float16, count: 6, source: OwnedBytes([UInt8](repeating: 0, count: 12)))
        return try Tensor(storage: s, shape: [2, 3], strides: [3, 1], storageOffset: 0)
    }

    @Test func summaries() throws {
        #expect(Value.none.summary == "None")
        #expect(Value.bool(true).summary == "True")
        #expect(Value.string("x").summary == "'x'")
        #expect(Value.tuple([.int(1), .float(0.5)]).summary == "(1, 0.5)")
        #expect(Value.list([.int(1), .int(2)]).summary == "list(2)")
        #expect(Value.tensor(try tensor()).summary == "tensor float16 [2, 3]")
        let d = Value.dict(
            ValueDict(entries: [
                .init(key: .string("w"), value: .tensor(try tensor())), .init(key: .string("n"), value: .int(3)),
            ]))
        #expect(d.summary == "dict(2 entries, 1 tensors)")
        var call = ObjectRecord(kind: .call, module: "os", name: "system")
        call.args = [.string("id")]
        #expect(Value.object(call).summary == "<os.system('id')>")
        #expect(
            Value.object(ObjectRecord(kind: .cycle, module: "a", name: "B")).summary
                == "<a.B object, met again inside itself>")
    }

    @Test func reportJSONIsTotal() throws {
        #expect(
            Value.tensor(try tensor()).reportJSON.render(indent: nil)
                == #"{"tensor":{"dtype":"float16","shape":[2,3]}}"#)
        #expect(Value.bytes([1, 2, 3]).reportJSON.render(indent: nil) == #"{"bytes":3}"#)
        #expect(Value.complex(real: 1, imaginary: -2).reportJSON.render(indent: nil) == #"{"real":1.0,"imag":-2.0}"#)
        let pairs = Value.dict(ValueDict(entries: [.init(key: .int(1), value: .string("a"))]))
        #expect(pairs.reportJSON.render(indent: nil) == #"[[1,"a"]]"#)
        var rec = ObjectRecord(kind: .instance, module: "argparse", name: "Namespace")
        rec.states = [.dict(ValueDict(entries: [.init(key: .string("lr"), value: .float(0.1))]))]
        #expect(
            Value.object(rec).reportJSON.render(indent: nil)
                == #"{"object":{"class":"argparse.Namespace","kind":"instance","state":[{"lr":0.1}]}}"#)
        // Where `json` is faithful it is nil for these; the report never is.
        #expect(Value.tensor(try tensor()).json == nil)
    }
}
