import Foundation
import Testing

@testable import Checkpoint
@testable import Tensors

/// Every committed fixture read to exactly what torch 1.13's torch.load returned.
/// Expected values: Tests/Reference/make_fixtures.py (Debian python3-torch 1.13), see each JSON's
/// "generator" and "torch_version".
@Suite struct FixtureTests {
    static let expected = Paths.expectedFiles(hostile: false)

    @Test func fixturesArePresent() {
        // Guards the parameterised tests below against passing on an empty list.
        #expect(FixtureTests.expected.count >= 11, "Tests/Fixtures lost its fixtures: \(FixtureTests.expected)")
    }

    @Test(arguments: expected)
    func readsLikeTorch(_ name: String) throws {
        let exp = try Paths.json(name)
        #expect(exp["generator"] as? String == "Tests/Reference/make_fixtures.py")
        let ckpt = try Checkpoint(path: Paths.fixture(exp["file"] as! String))
        #expect(ckpt.format.rawValue == exp["format"] as? String)
        #expect(ckpt.pickleProtocol == exp["pickle_protocol"] as? Int)
        #expect(Set(ckpt.globals) == Set(exp["globals"] as! [String]), "globals")

        var encoder = TaggedEncoder()
        let mine = try normalized(try encoder.encode(ckpt.root))
        let diff = firstDifference(mine, exp["object"]!)
        #expect(diff == nil, "object differs from torch.load at \(diff ?? "")")

        let sd = try ckpt.stateDict()
        #expect(sd.path == exp["state_dict_path"] as! [String])
        let listed = (exp["tensors"] as! [[String: Any]]).map {
            "\($0["name"]!) \($0["dtype"]!) \($0["shape"]!)"
        }
        #expect(sd.tensors.map { "\($0.name) \($0.tensor.dtype.rawValue) \($0.tensor.shape)" } == listed)
    }

    @Test(arguments: expected)
    func float32MatchesReferenceTwin(_ name: String) throws {
        let exp = try Paths.json(name)
        let ckpt = try Checkpoint(path: Paths.fixture(exp["file"] as! String))
        var checked = 0
        func visit(_ v: Value) throws {
            switch v {
            case .tensor(let t):
                let fast = try t.float32(), slow = try t.float32Reference()
                #expect(
                    sameBits(fast, slow), "float32() and float32Reference() differ for a \(t.dtype) \(t.shape) tensor")
                #expect(fast.count == t.count)
                checked += 1
            case .dict(let d): for e in d.entries { try visit(e.value) }
            case .list(let l), .tuple(let l): for x in l { try visit(x) }
            default: break
            }
        }
        try visit(ckpt.root)
        #expect(checked > 0)
    }

    @Test func bigEndianZipIsSwappedOnRead() throws {
        let big = try Checkpoint(path: Paths.fixture("zip_bigendian.pth"))
        let little = try Checkpoint(path: Paths.fixture("zip_dtypes.pth"))
        #expect(!big.littleEndian && little.littleEndian)
        let a = try big.stateDict(), b = try little.stateDict()
        #expect(a.names == b.names)
        for (name, t) in a.tensors {
            #expect(try t.contiguousBytes() == b[name]!.contiguousBytes(), "\(name)")
        }
    }

    @Test func viewsShareStorage() throws {
        for file in ["zip_views.pth", "legacy_views.pth", "tar_small.pth"] {
            let sd = try Checkpoint(path: Paths.fixture(file)).stateDict()
            var byStorage: [ObjectIdentifier: Int] = [:]
            for (_, t) in sd.tensors { byStorage[ObjectIdentifier(t.storage.base), default: 0] += 1 }
            #expect(byStorage.values.contains { $0 >= 2 }, "\(file) should have two tensors on one storage")
            #expect(sd.tensors.contains { !$0.tensor.isContiguous }, "\(file) should have a non-contiguous tensor")
        }
    }

    @Test func stripsModulePrefixAndMetadata() throws {
        for file in ["zip_nested.pth", "legacy_nested.pth", "zip_proto5.pth"] {
            let ckpt = try Checkpoint(path: Paths.fixture(file))
            let raw = try ckpt.stateDict()
            #expect(raw.path == ["state_dict"])
            #expect(raw.names.allSatisfy { $0.hasPrefix("module.") })
            let sd = try ckpt.stateDict(stripPrefix: "module.")
            #expect(sd.names == raw.names.map { String($0.dropFirst("module.".count)) })
            let metaKeys = sd.metadata?.dict?.entries.compactMap { $0.key.string } ?? []
            #expect(metaKeys.contains(""))
            #expect(!metaKeys.contains { $0.hasPrefix("module") }, "\(metaKeys)")
            // Non-tensor entries of the wrapper stay typed.
            #expect(ckpt.root.dict?["epoch"]?.int == 3)
        }
    }

    @Test func inspectFindsWrappedStateDicts() throws {
        // {'model': {...}} and {'model_state_dict': {...}} are found too.
        let sd = try Checkpoint(path: Paths.fixture("zip_dtypes.pth")).stateDict()
        var inner = ValueDict(isOrdered: true)
        for (n, t) in sd.tensors { inner.entries.append(.init(key: .string(n), value: .tensor(t))) }
        for key in StateDict.wrapperKeys {
            let root = Value.dict(
                ValueDict(entries: [
                    .init(key: .string("epoch"), value: .int(1)), .init(key: .string(key), value: .dict(inner)),
                ]))
            let found = try StateDict(from: root)
            #expect(found.path == [key])
            #expect(found.names == sd.names)
        }
        #expect(throws: StateDictError.self) { try StateDict(from: .dict(ValueDict())) }
    }
}
