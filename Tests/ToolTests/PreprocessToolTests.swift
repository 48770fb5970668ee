import Foundation
import Testing

/// `--resize`, `--crop` and `--interpolation` as a user meets them: finetune records them in the model
/// card, predict reads them from it, and the flags override it.
@Suite(
    .enabled(if: Tool.available, Tool.skipReason),
    .enabled(if: HostileUseTests.fashionAvailable, HostileUseTests.fashionSkip))
struct PreprocessToolTests {
    @Test func theCardsTransformIsUsedAndTheFlagsOverrideIt() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pth2swt-preprocess-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = dir.appendingPathComponent("m.swt").path
        let train = try Tool.run([
            "finetune", "--arch", "mobilenet_v3_small", "--data", HostileUseTests.fashion, "--classes", "2",
            "--per-class", "4", "--no-augment", "--epochs", "1", "--freeze", "none", "--resize", "72", "--crop", "64",
            "--interpolation", "bicubic", "--out", model,
        ])
        #expect(train.status == 0, "\(train.description)")
        #expect(train.stdout.contains("Resize(72, bicubic), CenterCrop(64)"), "\(train.stdout)")
        let photo = Fixtures.path("images/photo_grace_hopper.jpg")
        func logits(_ extra: [String]) throws -> String {
            let r = try Tool.run(["predict", "--weights", model, "--json"] + extra + [photo])
            #expect(r.status == 0, "\(r.description)")
            return r.stdout
        }
        let fromCard = try logits([])
        // The card's transform, spelled out, is the same run; another size or filter is not.
        #expect(try logits(["--resize", "72", "--crop", "64", "--interpolation", "bicubic"]) == fromCard)
        #expect(try logits(["--interpolation", "bilinear"]) != fromCard)
        #expect(try logits(["--crop", "48"]) != fromCard)
        let bad = try Tool.run(["predict", "--weights", model, "--crop", "-3", photo])
        #expect(bad.status == 64 && bad.stderr.contains("--crop"), "\(bad.description)")
    }
}
