import Foundation
import Tensors
import Testing

@testable import Checkpoint

/// The output format by extension, the rule convert, finetune --out and bench share.
@Suite struct OutputKindTests {
    @Test func extensionsNameKinds() {
        #expect(OutputKind(path: "a.swt") == .swt)
        #expect(OutputKind(path: "dir.pth/a.SAFETENSORS") == .swt)
        #expect(OutputKind(path: "a.pth") == .pth)
        #expect(OutputKind(path: "A.PT") == .pth)
        #expect(OutputKind(path: "a.pt.bak") == nil)
        #expect(OutputKind(path: "a.bin") == nil)
        #expect(OutputKind(path: "swt") == nil)
    }

    @Test func writesEachKindReadBackEqual() throws {
        let storage = try Storage(
            key: "0", dtype: .float32, count: 3, source: OwnedBytes([0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64]))
        var sd = StateDict()
        try sd.insert(try Tensor(storage: storage, shape: [3], strides: [1], storageOffset: 0), named: "w")
        let dir = NSTemporaryDirectory() + "pth2swt-outputkind-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for name in ["m.swt", "m.safetensors", "m.pth", "m.pt"] {
            let path = dir + "/" + name
            try OutputKind.write(sd, to: path, converter: "test")
            let back = try Checkpoint(path: path)
            #expect(back.format == (OutputKind(path: name) == .swt ? .swt : .zip), "\(name)")
            #expect(try back.stateDict()["w"]!.float32() == [1, 2, 3], "\(name)")
        }
        #expect { try OutputKind.write(sd, to: dir + "/m.bin", converter: "test") } throws: {
            "\($0)".contains("no format pth2swt writes")
        }
        #expect(!FileManager.default.fileExists(atPath: dir + "/m.bin"))
    }
}
