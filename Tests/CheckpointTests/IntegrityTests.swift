import Foundation
import Tensors
import Testing

@testable import Checkpoint

/// What keeps damage from passing silently: repeated JSON keys at any depth of a `.swt` header, the
/// cap on its entries, the SHA-256 of the data that pth2swt records and checks, the refusal to write
/// an output over an input, tar members that are links, and names a stripped prefix would empty.
@Suite struct IntegrityTests {
    let a = #""a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#

    @Test func repeatedKeysInsideEntriesAndMetadataAreRefused() {
        // Python's json keeps the last value, our parser used to keep the first: refused, whichever.
        let twice = #""a":{"dtype":"F32","dtype":"I32","shape":[2],"data_offsets":[0,8]}"#
        guard case .notJSON(let e)? = SWTHeaderTests.error("{\(twice)}", data: 8) else {
            Issue.record("accepted")
            return
        }
        #expect(e.reason == "duplicate key \"dtype\"")
        guard case .notJSON(let m)? = SWTHeaderTests.error("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"},\(a)}", data: 8)
        else {
            Issue.record("accepted")
            return
        }
        #expect(m.reason == "duplicate key \"k\"")
        #expect(
            SWTHeaderTests.error("{\"__metadata__\":{},\"__metadata__\":{},\(a)}", data: 8)
                == .duplicateName("__metadata__"))
    }

    @Test func headerEntriesAreCapped() throws {
        let n = 50
        let entries = (0..<n).map { #""t\#($0)":{"dtype":"U8","shape":[1],"data_offsets":[\#($0),\#($0 + 1)]}"# }
        let bytes = SWTHeaderTests.file("{" + entries.joined(separator: ",") + "}", data: n)
        let path = try temporaryFile(bytes, name: "many.swt")
        var options = LoadOptions()
        options.maxHeaderEntries = n - 1
        let e = #expect(throws: CheckpointError.self) { try Checkpoint(path: path, options: options) }
        guard case .limitExceeded(.maxHeaderEntries, let limit, _)? = e?.kind else {
            Issue.record("\(String(describing: e))")
            return
        }
        #expect(limit == n - 1)
        options.maxHeaderEntries = n
        #expect(try Checkpoint(path: path, options: options).stateDict().count == n)
        #expect(LoadOptions().maxHeaderEntries == 200_000)
    }

    /// Converts a fixture to `.swt` and returns the file's bytes and the data region's start.
    func written() throws -> (path: String, bytes: [UInt8], dataStart: Int) {
        let sd = try Checkpoint(path: Paths.fixture("zip_dtypes.pth")).stateDict()
        let path = try temporaryFile([], name: "digest.swt")
        try SWTWriter.write(sd, to: path, converter: "test")
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        let n = bytes.withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self).littleEndian) }
        return (path, bytes, 8 + n)
    }

    @Test func writtenFilesRecordTheDataDigestAndItIsChecked() throws {
        let (path, bytes, start) = try written()
        let digest = SHA256.hex(Array(bytes[start...]))
        let plain = try Checkpoint(path: path)
        #expect(plain.textMetadata.first { $0.key == SWT.MetadataKey.dataSHA256 }?.value == digest)
        #expect(plain.dataDigest == .unchecked(digest))
        var options = LoadOptions()
        options.verifyDataDigest = true
        #expect(try Checkpoint(path: path, options: options).dataDigest == .verified(digest))
        // One byte of data changed: refused, with both digests and the data's offset.
        var bad = bytes
        bad[start + 3] ^= 0x40
        let badPath = try temporaryFile(bad, name: "flipped.swt")
        #expect(
            try Checkpoint(path: badPath).dataDigest == .unchecked(digest), "without the option nothing is read twice")
        let e = #expect(throws: CheckpointError.self) { try Checkpoint(path: badPath, options: options) }
        #expect(e?.kind == .dataDigestMismatch(recorded: digest, computed: SHA256.hex(Array(bad[start...]))))
        #expect(e?.offset == start)
        // Formats that record no digest say so.
        #expect(try Checkpoint(path: Paths.fixture("zip_dtypes.pth"), options: options).dataDigest == .absent)
    }

    @Test func outputsThatAreInputsAreRefused() throws {
        let dir = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in.pth").path
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: input))
        try FileManager.default.createSymbolicLink(
            atPath: dir.appendingPathComponent("sym.pth").path, withDestinationPath: input)
        try FileManager.default.linkItem(atPath: input, toPath: dir.appendingPathComponent("hard.pth").path)
        for (out, how) in [
            (input, "the same path"), (dir.appendingPathComponent("sym.pth").path, "a symbolic link"),
            (dir.path + "/./in.pth", "by another path"), (dir.appendingPathComponent("hard.pth").path, "a hard link"),
        ] {
            let e = #expect(throws: CheckpointError.self) {
                try OutputGuard.refuseOverwrite(.init("OUT", out), inputs: [.init("IN", "x"), .init("IN", input)])
            }
            #expect(e?.description.contains(how) == true, "\(String(describing: e))")
        }
        #expect(throws: Never.self) {
            try OutputGuard.refuseOverwrite(
                .init("OUT", dir.appendingPathComponent("new.pth").path), inputs: [.init("IN", input)])
        }
        #expect(throws: CheckpointError.self) { try OutputGuard.refuseOverwrite(.init("OUT", dir.path), inputs: []) }
        #expect(throws: CheckpointError.self) {
            try OutputGuard.checkWritable(.init("OUT", dir.path + "/missing/x.swt"))
        }
        #expect(throws: Never.self) { try OutputGuard.checkWritable(.init("OUT", dir.path + "/x.swt")) }
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["hard.pth", "in.pth", "sym.pth"])
    }

    /// A one-member ustar archive whose member is a symbolic link.
    static func tarWithSymlink(name: String, target: String) -> [UInt8] {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ at: Int) { for (i, b) in s.utf8.enumerated() { h[at + i] = b } }
        put(name, 0)
        put("0000644", 100)
        put("0000000", 108)
        put("0000000", 116)
        put("00000000000", 124)
        put("00000000000", 136)
        h[156] = UInt8(ascii: "2")
        put(target, 157)
        put("ustar", 257)
        put("00", 263)
        for i in 148..<156 { h[i] = 0x20 }
        let sum = h.reduce(0) { $0 + Int($1) }
        put(String(sum, radix: 8).leftPadded(6) + "\0 ", 148)
        return h + [UInt8](repeating: 0, count: 1024)
    }

    @Test func linkMembersAreNamedNotCalledTruncated() throws {
        for name in ["pickle", "storages"] {
            let bytes = Self.tarWithSymlink(name: name, target: "/etc/passwd")
            try bytes.withUnsafeBytes { raw in
                let tar = try TarArchive(raw)
                let m = try tar.member(named: name)
                for read in [{ try tar.data(of: m) }, { try tar.availableData(of: m) }] {
                    let e = #expect(throws: CheckpointError.self) { _ = try read() }
                    #expect(
                        e?.description.contains("is a symbolic link to '/etc/passwd'") == true,
                        "\(String(describing: e))")
                    #expect(e?.description.contains("truncated") == false)
                }
            }
        }
    }

    /// A global that current torch's safe loader accepts and pth2swt does not read (legacy sparse classes,
    /// bit dtypes, nested tensors) is refused with what it is, never with a claim that torch refuses it;
    /// the rest of torch's list is read; an unknown global keeps the allowlist message.
    @Test func refusalsNeverClaimTorchRefusesWhatItAccepts() throws {
        func refusal(_ module: String, _ name: String) -> String {
            var p: [UInt8] = [0x80, 0x02]
            p += Array("c\(module)\n\(name)\n".utf8) + [0x2E]
            let machine = PickleMachine(host: TorchHost())
            do {
                try p.withUnsafeBytes { raw in
                    var r = ByteReader(raw, part: "test.pkl")
                    _ = try machine.load(&r) { _ in 0 }
                }
                return "accepted"
            } catch {
                return "\(error)"
            }
        }
        for (module, name, what) in [
            ("torch.sparse", "FloatTensor", "sparse tensors"),
            ("torch.cuda.sparse", "LongTensor", "sparse tensors"), ("torch", "bits8", "dtype bits8"),
            ("torch", "float4_e2m1fn_x2", "dtype float4_e2m1fn_x2"), ("torch.storage", "TypedStorage", "TypedStorage"),
            ("torch", "int4", "dtype int4"),
        ] {
            let message = refusal(module, name)
            #expect(
                message.contains("torch's weights_only unpickler accepts it, but pth2swt does not read"), "\(message)")
            #expect(message.contains(what) && !message.contains("not in the allowlist"), "\(message)")
        }
        // What is now read: quantized and complex storages, qschemes, the later dtypes, the rebuild
        // functions of quantized, sparse, meta, wrapper-subclass and device tensors, Counter.
        for (module, name) in [
            ("torch", "QInt8Storage"), ("torch", "QUInt4x2Storage"), ("torch", "QUInt2x4Storage"),
            ("torch", "QInt32Storage"), ("torch", "ComplexFloatStorage"), ("torch.cuda", "ComplexDoubleStorage"),
            ("torch", "per_channel_affine"), ("torch", "per_tensor_symmetric"), ("torch", "float8_e4m3fn"),
            ("torch", "float8_e8m0fnu"), ("torch", "uint16"), ("torch", "uint64"), ("torch", "complex32"),
            ("torch", "sparse_coo"), ("torch._utils", "_rebuild_qtensor"), ("torch._utils", "_rebuild_sparse_tensor"),
            ("torch._utils", "_rebuild_sparse_csr_tensor"), ("torch._utils", "_rebuild_meta_tensor_no_storage"),
            ("torch._utils", "_rebuild_wrapper_subclass"), ("torch._utils", "_rebuild_device_tensor_from_cpu_tensor"),
            ("torch.serialization", "_get_layout"), ("collections", "Counter"),
        ] {
            #expect(refusal(module, name) == "accepted", "\(module).\(name)")
        }
        #expect(refusal("os", "system").contains("not in the allowlist of torch's weights_only unpickler"))
        // The name torch pickles its untyped storage class under is read, as its public name is.
        #expect(refusal("torch.storage", "UntypedStorage") == "accepted")
        #expect(TorchGlobal(PickleGlobal(module: "torch.storage", name: "UntypedStorage")) == .storageClass(.uint8))
        #expect(refusal("torch", "NotAStorage").contains("not in the allowlist"))
    }

    @Test func strippingAPrefixToNothingIsRefused() throws {
        let t = try Tensor(
            storage: Storage(key: "0", dtype: .float32, count: 1, source: OwnedBytes([0, 0, 0, 0])), shape: [1],
            strides: [1], storageOffset: 0)
        var d = ValueDict(isOrdered: true)
        d.entries = [
            .init(key: .string("module."), value: .tensor(t)), .init(key: .string("module.w"), value: .tensor(t)),
        ]
        #expect(throws: StateDictError.emptyName(original: "module.", prefix: "module.")) {
            try StateDict(from: .dict(d), stripPrefix: "module.")
        }
        #expect(try StateDict(from: .dict(d), stripPrefix: "mod").count == 2)
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { String(repeating: "0", count: max(0, width - count)) + self }
}
