import Checksums
import Foundation
import Tensors
import Testing

@testable import Checkpoint

/// Checkpoints of the kinds found in the wild (Tests/Fixtures/wild), read to what torch 1.13 says is in
/// them. Expected values: Tests/Reference/make_wild.py (Debian python3-torch 1.13, torchvision 0.14):
/// torch.load, model.state_dict() for a whole model, torch.jit.load(f).state_dict() for TorchScript.
@Suite struct WildTests {
    static let folder = Paths.fixtures.appendingPathComponent("wild")
    static let expected: [String] = {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []
        return all.filter { $0.hasSuffix(".expected.json") }.sorted()
    }()

    static func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: folder.appendingPathComponent(name))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }

    static func path(_ exp: [String: Any]) -> String { folder.appendingPathComponent(exp["file"] as! String).path }

    static func options(stub: Bool) -> LoadOptions {
        var o = LoadOptions()
        o.stubClasses = stub
        return o
    }

    /// name dtype shape sha256, one per tensor, as the JSON lists them.
    static func rows(_ list: Any?) -> [String] {
        (list as! [[String: Any]]).map { "\($0["name"]!) \($0["dtype"]!) \($0["shape"]!) \($0["sha256"]!)" }
    }

    static func rows(_ sd: StateDict) throws -> [String] {
        try sd.tensors.map { name, t in
            "\(name) \(t.dtype.rawValue) \(t.shape) \(SHA256.hex(try t.contiguousBytes()))"
        }
    }

    @Test func everyKindIsPresent() {
        // Guards the parameterised tests against an empty folder: one file per kind of checkpoint read.
        for stem in [
            "legacy_v03_lists", "legacy_rebuilds", "nest_model_state", "nest_model_state_dict", "nest_net_ema",
            "nest_deep", "bare_tensor", "bare_parameter", "numpy_values", "numpy_root", "namespace_args",
            "whole_resnet18", "whole_legacy_sequential", "lightning_like", "ultralytics_like", "omegaconf_hparams",
            "torchscript_small_resnet", "torchscript_traced",
        ] {
            #expect(WildTests.expected.contains("\(stem).expected.json"), "missing \(stem)")
        }
    }

    @Test(arguments: expected)
    func readsWhatTorchReads(_ name: String) throws {
        let exp = try WildTests.json(name)
        #expect(exp["generator"] as? String == "Tests/Reference/make_wild.py")
        let needsStubs = exp["stub_classes"] as! Bool
        if needsStubs {
            // The default mode refuses, naming the global and the flag that reads it as data.
            do {
                _ = try Checkpoint(path: WildTests.path(exp))
                Issue.record("\(name): read without --stub-classes")
            } catch let e as CheckpointError {
                let refused = exp["refused_global"] as! String
                guard case .refusedGlobal(let m, let n) = e.kind else {
                    Issue.record("\(name): \(e)")
                    return
                }
                #expect("\(m).\(n)" == refused)
                #expect(e.description.contains("--stub-classes"))
                #expect(e.description.contains("nothing in the file is ever imported or run"))
            }
        }
        let ckpt = try Checkpoint(path: WildTests.path(exp), options: WildTests.options(stub: needsStubs))
        #expect(ckpt.isTorchScript == exp["torchscript"] as! Bool)
        #expect(ckpt.stubbedClasses == exp["stubbed"] as! [String])
        let sd = try ckpt.stateDict()
        #expect(sd.path.joined(separator: ".") == exp["state_dict_path"] as! String)
        #expect(sd.kind.rawValue == exp["state_dict_kind"] as! String)
        #expect(try WildTests.rows(sd) == WildTests.rows(exp["tensors"]))
        // --key with the same path gives the same state dict.
        let keyed = try ckpt.stateDict(key: exp["state_dict_path"] as? String)
        #expect(try WildTests.rows(keyed) == WildTests.rows(exp["tensors"]))
        if let all = exp["all_tensors"] {
            #expect(try WildTests.rows(try ckpt.allTensors()) == WildTests.rows(all))
        }
        if let locations = exp["storage_locations"] as? [String] {
            #expect(Set(ckpt.storages.map(\.location)) == Set(locations))
        }
    }

    @Test func rebuildsKeepRequiresGrad() throws {
        let exp = try WildTests.json("legacy_rebuilds.expected.json")
        let sd = try Checkpoint(path: WildTests.path(exp)).stateDict()
        let want = exp["requires_grad"] as! [String: Bool]
        for (name, t) in sd.tensors { #expect(t.requiresGrad == want[name], "\(name)") }
        #expect(sd["param04"]!.isParameter)
    }

    @Test func numpyScalarsAreNumbers() throws {
        let exp = try WildTests.json("numpy_values.expected.json")
        let ckpt = try Checkpoint(path: WildTests.path(exp))
        let config = ckpt.root.dict!["config"]!.dict!
        for (key, typed) in exp["values"] as! [String: [String: Any]] {
            let v = config[key]
            switch (typed.first!.key, v) {
            case ("bool", .bool(let x)?): #expect(x == typed["bool"] as! Bool, "\(key)")
            case ("int", .int(let x)?): #expect(x == (typed["int"] as! NSNumber).int64Value, "\(key)")
            case ("float", .float(let x)?): #expect(x == (typed["float"] as! NSNumber).doubleValue, "\(key)")
            default: Issue.record("\(key): expected \(typed), read \(String(describing: v))")
            }
        }
        if case .dtype(let dt)? = config["dtype"] {
            #expect(dt == .float32)
        } else {
            Issue.record("dtype: \(String(describing: config["dtype"]))")
        }
    }

    @Test func candidatesAreListedAndPicked() throws {
        let ckpt = try Checkpoint(path: WildTests.path(try WildTests.json("nest_model_state.expected.json")))
        let paths = ckpt.candidates.map(\.dottedPath)
        // The root holds one stray tensor (step); the optimizer's per-parameter moments are candidates too.
        #expect(paths.first == "")
        #expect(paths.contains("model_state"))
        #expect(paths.contains { $0.hasPrefix("optimizer_state.state.") })
        #expect(try ckpt.stateDict().path == ["model_state"])
        // A name that is no candidate lists the candidates.
        #expect { try ckpt.stateDict(key: "model_state.nope") } throws: { e in
            "\(e)".contains("no state dict at 'model_state.nope'") && "\(e)".contains("'model_state' (dict, 9 tensors)")
        }
    }

    @Test func ambiguousFilesAskForKey() throws {
        // Two unranked state dicts of equal standing: nothing is obvious, so nothing is guessed.
        let a = Value.dict(ValueDict(entries: [.init(key: .string("w"), value: .tensor(try tiny()))]))
        let root = Value.dict(
            ValueDict(entries: [.init(key: .string("generator"), value: a), .init(key: .string("critic"), value: a)]))
        #expect { try StateDict(from: root) } throws: { e in
            "\(e)".contains("none is the obvious one") && "\(e)".contains("'generator'") && "\(e)".contains("'critic'")
        }
        #expect(try StateDict(from: root, key: "critic").path == ["critic"])
    }

    func tiny() throws -> Tensor {
        let s = try Storage(key: "0", dtype: .float32, count: 1, source: OwnedBytes([0, 0, 128, 63]))
        return try Tensor(storage: s, shape: [], strides: [], storageOffset: 0)
    }

    /// omegaconf's nodes point back at their parent: the cycle is cut at the second meeting, which keeps
    /// only the class, and the rest of the tree is read.
    @Test func cyclesThroughRecordsAreCut() throws {
        let exp = try WildTests.json("omegaconf_hparams.expected.json")
        let ckpt = try Checkpoint(path: WildTests.path(exp), options: WildTests.options(stub: true))
        var cycles: [String] = []
        var pending = [ckpt.root]
        while let v = pending.popLast() {
            switch v {
            case .dict(let d): pending += d.entries.map(\.value)
            case .list(let l), .tuple(let l): pending += l
            case .object(let o):
                if o.kind == .cycle { cycles.append(o.qualifiedName) }
                pending += o.attributes.map(\.value) + o.dictItems.map(\.value) + o.listItems + o.args
            default: break
            }
        }
        #expect(cycles.contains("omegaconf.dictconfig.DictConfig"), "\(cycles)")
        // A dict that holds itself is still refused: a state dict never does.
        #expect(try ckpt.stateDict().count == 9)
    }

    @Test func wholeModelRecordsItsClasses() throws {
        let exp = try WildTests.json("whole_resnet18.expected.json")
        let ckpt = try Checkpoint(path: WildTests.path(exp), options: WildTests.options(stub: true))
        guard case .object(let model) = ckpt.root else {
            Issue.record("root is a \(ckpt.root.kindName)")
            return
        }
        #expect(model.qualifiedName == "torchvision.models.resnet.ResNet")
        #expect(model.kind == .instance)
        #expect(model.isModule)
        #expect(model.attribute("inplanes")?.int == 512)
    }
}

/// `--stub-classes` on the hostile corpus: every global that default mode refuses becomes a record or a
/// typed error, never a crash, and a payload that would touch a file leaves no file.
@Suite struct StubSafetyTests {
    @Test(arguments: HostileCorpusTests.files)
    func hostileFileInStubMode(_ file: String) throws {
        let path = HostileCorpusTests.directory.appendingPathComponent(file).path
        var options = LoadOptions()
        options.stubClasses = true
        let entry = try #require(HostileCorpusTests.manifest.first { $0["file"] as? String == file })
        let want = entry["expect"] as! [String: Any]
        do {
            let ckpt = try Checkpoint(path: path, options: options)
            // Read as data: the refused global is now a record, and nothing else changed kind.
            if want["kind"] as? String == "refusedGlobal" {
                let name = "\(want["module"]!).\(want["name"]!)"
                #expect(
                    ckpt.stubbedClasses.contains(name == "__builtin__.eval" ? "__builtin__.eval" : name),
                    "\(file): \(ckpt.stubbedClasses)")
            }
            _ = ckpt.candidates
            _ = try? ckpt.allTensors()
        } catch let e as CheckpointError {
            // A typed error, never a crash; no global is refused in stub mode (a file built to be refused
            // may still be malformed past its global, or break a cap).
            if case .refusedGlobal = e.kind { Issue.record("\(file): refused in stub mode: \(e)") }
        }
    }

    /// Pickles that would run a command or write a file when unpickled by Python, read with stubs: they
    /// become records of the call, and the file they would create is not there.
    @Test func payloadsBecomeRecordsAndNothingRuns() throws {
        let canary = FileManager.default.temporaryDirectory.appendingPathComponent("pth2swt-canary-\(getpid())").path
        try? FileManager.default.removeItem(atPath: canary)
        let payloads: [(String, String, String)] = [
            ("os", "system", "touch \(canary)"),
            ("posix", "system", "touch \(canary)"),
            ("builtins", "exec", "open('\(canary)', 'w').close()"),
            ("subprocess", "check_output", "touch \(canary)"),
        ]
        for (module, name, arg) in payloads {
            // protocol 0: GLOBAL module name, MARK, UNICODE arg, TUPLE, REDUCE, STOP
            let pickle = Array("c\(module)\n\(name)\n(V\(arg)\ntR.".utf8)
            let host = TorchHost()
            host.stubClasses = true
            let value = try pickle.withUnsafeBytes { raw in
                var reader = ByteReader(raw)
                return try PickleMachine(host: host).load(&reader) {
                    try TorchHost.value($0, maxDepth: 64, stubClasses: true)
                }
            }
            guard case .object(let record) = value else {
                Issue.record("\(module).\(name): read as \(value.kindName)")
                continue
            }
            #expect(record.kind == .call)
            #expect(record.qualifiedName == "\(module).\(name)")
            #expect(record.args.first?.string == arg)
            #expect(host.stubbed.map(\.qualifiedName) == ["\(module).\(name)"])
        }
        #expect(!FileManager.default.fileExists(atPath: canary), "a payload ran: \(canary) exists")
    }
}
