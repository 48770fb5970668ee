import Foundation
import Testing

@testable import Hub

@Suite("Registry")
struct RegistryTests {
    @Test("a bare name picks the documented default file")
    func bareNames() throws {
        #expect(try Registry.resolve("resnet18").fileName == "resnet18-5c106cde.pth")
        #expect(try Registry.resolve("resnet34").fileName == "resnet34-b627a593.pth")
        #expect(try Registry.resolve("resnet50").fileName == "resnet50-0676ba61.pth")
        #expect(try Registry.resolve("resnet101").fileName == "resnet101-63fe2227.pth")
        #expect(try Registry.resolve("resnet152").fileName == "resnet152-394f9c45.pth")
        #expect(try Registry.resolve("wide_resnet101_2").fileName == "wide_resnet101_2-32ee1156.pth")
    }

    @Test("a stem or a file name picks exactly that file")
    func stemsAndFileNames() throws {
        #expect(try Registry.resolve("resnet18-f37072fd").fileName == "resnet18-f37072fd.pth")
        #expect(try Registry.resolve("resnet18-f37072fd.pth").fileName == "resnet18-f37072fd.pth")
        #expect(try Registry.resolve("resnet50-19c8e357.pth").fileName == "resnet50-19c8e357.pth")
        let entry = try Registry.resolve("resnet18-5c106cde.pth")
        #expect(entry.url.absoluteString == "https://download.pytorch.org/models/resnet18-5c106cde.pth")
        #expect(entry.hashPrefix == "5c106cde")
        #expect(entry.stem == "resnet18-5c106cde")
    }

    @Test("an unknown name is a typed error listing the known names")
    func unknown() {
        let error = #expect(throws: HubError.self) { try Registry.resolve("resnet19") }
        guard case .unknownModel(let name, let known) = error else {
            Issue.record("expected unknownModel, got \(String(describing: error))")
            return
        }
        #expect(name == "resnet19")
        #expect(known.count == Registry.models.count)
        #expect(known.first == "resnet18 (resnet18-5c106cde, resnet18-f37072fd)")
        let message = String(describing: error!)
        #expect(message.contains("'resnet19'"))
        #expect(message.contains("wide_resnet50_2"))
    }

    @Test("every entry: unique name, one default per model, an 8+ hex prefix that is the name's last '-' part")
    func entriesAreConsistent() {
        #expect(Set(Registry.files.map(\.fileName)).count == Registry.files.count)
        for model in Registry.models {
            #expect(Registry.files.filter { $0.model == model && $0.isDefault }.count == 1, "\(model)")
        }
        for file in Registry.files {
            let lastPart = file.stem.split(separator: "-").last.map(String.init)
            #expect(file.hashPrefix == lastPart, "\(file.fileName)")
            #expect((file.hashPrefix?.count ?? 0) >= 8, "\(file.fileName)")
            // torchvision names a few files otherwise than their builders: EfficientNet's by their
            // origin, MNASNet's and ShuffleNetV2's by their width and accuracy, RegNetY-128GF's SWAG,
            // Inception v3's by Google's original.
            let spelling = [
                "mnasnet0_5": "mnasnet0.5_top1_67.823", "mnasnet1_0": "mnasnet1.0_top1_73.512",
                "shufflenet_v2_x0_5": "shufflenetv2_x0.5", "shufflenet_v2_x1_0": "shufflenetv2_x1",
                "shufflenet_v2_x1_5": "shufflenetv2_x1_5", "shufflenet_v2_x2_0": "shufflenetv2_x2_0",
                "regnet_y_128gf": "regnet_y_128gf_swag", "inception_v3": "inception_v3_google",
            ][file.model]
            let origin = file.model.hasPrefix("efficientnet_b") ? ["_rwightman", "_lukemelas"] : [""]
            #expect(
                origin.contains { file.fileName.hasPrefix((spelling ?? file.model) + $0 + "-") }, "\(file.fileName)")
            #expect(file.url.absoluteString == "https://download.pytorch.org/models/" + file.fileName)
        }
    }
}

@Suite("torch.hub hash prefix")
struct HashPrefixTests {
    @Test(
        "mirrors HASH_REGEX = r'-([a-f0-9]*)\\.' with re.search",
        arguments: [
            ("resnet18-5c106cde.pth", "5c106cde"),
            ("wide_resnet50_2-95faca4d.pth", "95faca4d"),
            ("resnext50_32x4d-7cdf4587.pth", "7cdf4587"),
            // Several dashes: '-model' is not followed by hex and '.', so the next '-' matches.
            ("my-model-1a2b3c4d.pth", "1a2b3c4d"),
            ("resnet18-extra-5c106cde.pth", "5c106cde"),
            // The first match wins, as with re.search, even when later parts look more like a hash.
            ("a-b1.c-d2.pth", "b1"),
            ("model-1234.tar.gz", "1234"),
            // An empty group matches too; torch then compares digest[:0] == '', which always passes.
            ("x-.pth", ""),
        ])
    func prefixes(name: String, prefix: String) {
        #expect(torchHubHashPrefix(name) == prefix)
    }

    @Test(
        "no match: no dash, uppercase hex, no dot after the digits",
        arguments: [
            "resnet18.pth", "Model-ABCDEF12.pth", "resnet18-5c106cde", "resnet18-5c106cdz.pth",
        ])
    func noPrefix(name: String) {
        #expect(torchHubHashPrefix(name) == nil)
    }

    @Test("an empty prefix accepts every digest; nil means no check")
    func acceptance() {
        let url = URL(string: "https://example.com/x.pth")!
        #expect(FetchTarget(url: url, fileName: "x-.pth", hashPrefix: "").accepts(sha256: "ff00"))
        #expect(FetchTarget(url: url, fileName: "x.pth", hashPrefix: nil).accepts(sha256: "ff00"))
        #expect(FetchTarget(url: url, fileName: "x-ff.pth", hashPrefix: "ff").accepts(sha256: "ff00"))
        #expect(!FetchTarget(url: url, fileName: "x-fe.pth", hashPrefix: "fe").accepts(sha256: "ff00"))
    }

    @Test("sha256Hex(ofFile:) streams the same digest as the one-shot call, and 'abc' gives the FIPS vector")
    func fileDigest() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let bytes = testBytes(9 << 20, seed: 3)  // more than two 4 MiB chunks
        try write(bytes, to: dir.file("big"))
        #expect(try sha256Hex(ofFile: dir.file("big")) == sha256(bytes))
        try write(Array("abc".utf8), to: dir.file("abc"))
        #expect(
            try sha256Hex(ofFile: dir.file("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        )
        #expect(throws: HubError.self) { try sha256Hex(ofFile: dir.file("absent")) }
    }

    @Test(
        "Content-Range parsing",
        arguments: [
            ("bytes 100-999/1000", 100, 1000),
            ("bytes */1000", nil, 1000),
            ("bytes 0-9/*", 0, nil),
        ] as [(String, Int64?, Int64?)])
    func contentRange(header: String, start: Int64?, total: Int64?) throws {
        let range = try #require(ContentRange(header))
        #expect(range.start == start)
        #expect(range.total == total)
    }

    @Test("malformed Content-Range", arguments: ["items 0-9/10", "bytes 12", "bytes x-9/10"])
    func badContentRange(header: String) {
        #expect(ContentRange(header) == nil)
    }
}
