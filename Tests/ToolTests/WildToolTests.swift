import Checkpoint
import Checksums
import Foundation
import Tensors
import Testing

/// `inspect` and `convert` on the files from the wild (Tests/Fixtures/wild, written by
/// Tests/Reference/make_wild.py with torch 1.13), with and without --stub-classes, --key, --all-tensors.
@Suite(.enabled(if: Tool.available, Tool.skipReason))
struct WildToolTests {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures/wild").path

    static func fixture(_ name: String) -> String { folder + "/" + name }

    static func json(_ text: String) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(text.utf8)) as! [String: Any]
    }

    static func expected(_ stem: String) throws -> [String: Any] {
        try json(String(contentsOfFile: fixture("\(stem).expected.json"), encoding: .utf8))
    }

    @Test func refusalNamesTheGlobalAndTheFlag() throws {
        let r = try Tool.run(["inspect", Self.fixture("whole_resnet18.pth")])
        #expect(r.status == 1, "\(r.description)")
        #expect(r.stderr.contains("refused global torchvision.models.resnet.ResNet"))
        #expect(r.stderr.contains("--stub-classes"))
        #expect(r.stderr.contains("nothing in the file is ever imported or run"))
        #expect(r.stdout.isEmpty)
    }

    @Test func inspectListsStubbedClassesAndCandidates() throws {
        let r = try Tool.run(["inspect", Self.fixture("whole_resnet18.pth"), "--stub-classes", "--json"])
        #expect(r.status == 0, "\(r.description)")
        let j = try Self.json(r.stdout)
        let exp = try Self.expected("whole_resnet18")
        #expect(j["stubbed_classes"] as? [String] == exp["stubbed"] as? [String])
        let candidates = j["candidates"] as! [[String: Any]]
        #expect(candidates.count == 1)
        #expect(candidates.first?["kind"] as? String == "module")
        #expect(candidates.first?["tensors"] as? Int == 122)
        #expect(
            (j["tensors"] as! [[String: Any]]).map { $0["name"] as! String }
                == (exp["tensors"] as! [[String: Any]]).map { $0["name"] as! String })

        let text = try Tool.run(["inspect", Self.fixture("whole_resnet18.pth"), "--stub-classes"])
        #expect(
            text.stdout.contains(
                "stubbed classes (9), read as inert records, never imported or run: torchvision.models.resnet.ResNet"))
        #expect(
            text.stdout.contains("state dict at the root (a module, named as its state_dict() names them): 122 tensors")
        )
    }

    @Test func inspectMarksThePickedCandidate() throws {
        let r = try Tool.run(["inspect", Self.fixture("nest_model_state.pth")])
        #expect(r.status == 0, "\(r.description)")
        #expect(r.stdout.contains("  model_state  dict, 9 tensors  <- read"))
        #expect(r.stdout.contains("(root)  dict, 1 tensors"))
        #expect(r.stdout.contains("state dict under 'model_state': 9 tensors"))
        let keyed = try Tool.run(["inspect", Self.fixture("nest_net_ema.pth"), "--key", "ema", "--json"])
        #expect(try Self.json(keyed.stdout)["state_dict_path"] as? [String] == ["ema"])
        let wrong = try Tool.run(["inspect", Self.fixture("nest_net_ema.pth"), "--key", "nope"])
        #expect(wrong.status == 1)
        #expect(
            wrong.stderr.contains(
                "no state dict at 'nope'; the candidates are 'net' (dict, 9 tensors), 'ema' (dict, 9 tensors)"))
    }

    @Test func convertWholeModelWithStubsMatchesTorch() throws {
        let dir = try Scratch("wild-convert")
        let out = dir.file("resnet18.swt")
        let without = try Tool.run(["convert", Self.fixture("whole_resnet18.pth"), out, "-q"])
        #expect(without.status == 1 && without.stderr.contains("--stub-classes"), "\(without.description)")
        #expect(dir.contents.isEmpty)
        let r = try Tool.run(["convert", Self.fixture("whole_resnet18.pth"), out, "--stub-classes", "--json"])
        #expect(r.status == 0, "\(r.description)")
        let j = try Self.json(r.stdout)
        #expect(j["tensors"] as? Int == 122)
        #expect(j["state_dict_kind"] as? String == "module")
        // The .swt holds exactly torch's state_dict(): names and bytes.
        let sd = try Checkpoint(path: out).stateDict()
        let exp = try Self.expected("whole_resnet18")
        let want = (exp["tensors"] as! [[String: Any]]).map { "\($0["name"]!) \($0["sha256"]!)" }
        let got = try sd.tensors.map { "\($0.name) \(SHA256Hex.of(try $0.tensor.contiguousBytes()))" }
        #expect(got == want)
    }

    @Test func convertAllTensorsNamesByPath() throws {
        let dir = try Scratch("wild-all")
        let out = dir.file("all.swt")
        let r = try Tool.run(["convert", Self.fixture("numpy_values.pth"), out, "--all-tensors", "-q"])
        #expect(r.status == 0, "\(r.description)")
        let exp = try Self.expected("numpy_values")
        let names = try Checkpoint(path: out).stateDict().names
        // safetensors' layout keeps tensors sorted by offset, which the writer lays out in the order given.
        #expect(names == (exp["all_tensors"] as! [[String: Any]]).map { $0["name"] as! String })
        #expect(names.contains("config.fortran") && names.contains("config.big_endian"))
        let both = try Tool.run(["convert", Self.fixture("numpy_values.pth"), out, "--all-tensors", "--key", "x"])
        #expect(both.status != 0 && both.stderr.contains("--all-tensors and --key exclude each other"))
    }

    @Test func torchScriptNeedsNoFlag() throws {
        let r = try Tool.run(["inspect", Self.fixture("torchscript_small_resnet.pt"), "--json"])
        #expect(r.status == 0, "\(r.description)")
        let j = try Self.json(r.stdout)
        #expect(j["torchscript"] as? Bool == true)
        let exp = try Self.expected("torchscript_small_resnet")
        #expect(
            (j["tensors"] as! [[String: Any]]).map { $0["name"] as! String }
                == (exp["tensors"] as! [[String: Any]]).map { $0["name"] as! String })
    }
}

/// SHA-256 through the library the tool itself uses.
enum SHA256Hex {
    static func of(_ bytes: [UInt8]) -> String {
        bytes.withUnsafeBytes { Checksums.sha256Hex($0) }
    }
}

/// Every wild fixture through the tool: inspect lists the candidates and the stubbed classes and marks
/// the state dict torch's names say; convert refuses without --stub-classes when the file needs it and
/// otherwise writes exactly torch's tensors.
@Suite(.enabled(if: Tool.available, Tool.skipReason))
struct WildFixtureToolTests {
    static let stems: [String] = {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: WildToolTests.folder)) ?? []
        return all.filter { $0.hasSuffix(".expected.json") }.map { String($0.dropLast(".expected.json".count)) }
            .sorted()
    }()

    @Test func everyFixtureIsHere() { #expect(Self.stems.count >= 18, "\(Self.stems)") }

    @Test(arguments: stems)
    func inspectAndConvert(_ stem: String) throws {
        let exp = try WildToolTests.expected(stem)
        let input = WildToolTests.fixture(exp["file"] as! String)
        let stub = exp["stub_classes"] as! Bool
        let flags = stub ? ["--stub-classes"] : []

        let r = try Tool.run(["inspect", input, "--json"] + flags)
        #expect(r.status == 0, "\(r.description)")
        let j = try WildToolTests.json(r.stdout)
        let path = exp["state_dict_path"] as! String
        let candidates = j["candidates"] as! [[String: Any]]
        let picked = candidates.filter { $0["picked"] as? Bool == true }
        #expect(picked.count == 1 && picked.first?["path"] as? String == path, "\(candidates)")
        #expect(picked.first?["kind"] as? String == exp["state_dict_kind"] as? String)
        #expect(j["stubbed_classes"] as? [String] == exp["stubbed"] as? [String])
        #expect(
            (j["tensors"] as! [[String: Any]]).map { $0["name"] as! String }
                == (exp["tensors"] as! [[String: Any]]).map { $0["name"] as! String })

        let dir = try Scratch("wild-\(stem)")
        let out = dir.file("out.swt")
        if stub {
            let refused = try Tool.run(["convert", input, out, "-q"])
            #expect(
                refused.status == 1 && refused.stderr.contains("refused global \(exp["refused_global"]!)"),
                "\(refused.description)")
            #expect(dir.contents.isEmpty)
        }
        let c = try Tool.run(["convert", input, out, "-q", "--json"] + flags)
        #expect(c.status == 0, "\(c.description)")
        let written = try Checkpoint(path: out).stateDict()
        let want = (exp["tensors"] as! [[String: Any]]).map {
            "\($0["name"]!) \($0["dtype"]!) \($0["shape"]!) \($0["sha256"]!)"
        }
        let got = try written.tensors.map {
            "\($0.name) \($0.tensor.dtype.rawValue) \($0.tensor.shape) \(SHA256Hex.of(try $0.tensor.contiguousBytes()))"
        }
        #expect(got == want)
    }
}
