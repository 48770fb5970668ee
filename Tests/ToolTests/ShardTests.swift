import Foundation
import Testing

/// `--shard I/N`: the N shards of a list of inputs are disjoint and together give exactly what one run
/// over the whole list gives.
@Suite(.enabled(if: Tool.available, Tool.skipReason))
struct ShardTests {
    static let sharedWeights = Fixtures.folder + "/../../../shared/weights/resnet18-zip.pth"
    static var sharedAvailable: Bool { FileManager.default.fileExists(atPath: sharedWeights) }

    @Test func convertShardsCoverEveryFileOnce() throws {
        let inputs = ["zip_dtypes.pth", "zip_views.pth", "tar_small.pth", "legacy_dtypes.pth", "kinds/complex.pth"]
            .map(Fixtures.path)
        let all = try Scratch("shard-all")
        #expect(try Tool.run(["convert"] + inputs + ["--out-dir", all.path, "-q"]).status == 0)
        let parts = try Scratch("shard-parts")
        var counts: [Int] = []
        for i in 0..<3 {
            let r = try Tool.run(["convert"] + inputs + ["--out-dir", parts.path, "--shard", "\(i)/3", "--json"])
            #expect(r.status == 0, "\(r.description)")
            let list = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [[String: Any]]
            // Shard i takes the positions ≡ i (mod 3), in order.
            #expect(
                list.map { $0["input"] as! String } == inputs.enumerated().filter { $0.offset % 3 == i }.map(\.element))
            counts.append(list.count)
        }
        #expect(counts == [2, 2, 1])
        #expect(parts.contents == all.contents && all.contents.count == 5)
        for name in all.contents {
            // The same bytes but the recorded source digest's timing: compare the tensors' data digests.
            let a = try Tool.run(["inspect", all.file(name), "--json"]).stdout
            let b = try Tool.run(["inspect", parts.file(name), "--json"]).stdout
            #expect(
                a.replacingOccurrences(of: all.path, with: "") == b.replacingOccurrences(of: parts.path, with: ""),
                "\(name)")
        }
        for bad in ["3/3", "-1/2", "1/0", "a/b", "2"] {
            let r = try Tool.run(["convert"] + inputs + ["--out-dir", parts.path, "--shard", bad])
            #expect(r.status == 64 && r.stderr.contains("--shard"), "\(bad): \(r.description)")
        }
        let single = try Tool.run(["convert", inputs[0], parts.file("x.swt"), "--shard", "0/2"])
        #expect(single.status == 64 && single.stderr.contains("--shard shares out the paths of --out-dir"))
    }

    @Test(
        .enabled(if: sharedAvailable, "../shared/weights/resnet18-zip.pth is absent; the predict shards test needs it"))
    func predictShardsTogetherAreTheWholeRun() throws {
        let images = try FileManager.default.contentsOfDirectory(atPath: Fixtures.path("images")).filter {
            $0.hasSuffix(".jpg") || $0.hasSuffix(".png")
        }.sorted().map { Fixtures.path("images/" + $0) }
        #expect(images.count >= 6)
        func run(_ extra: [String]) throws -> [[String: Any]] {
            let r = try Tool.run(
                ["predict", "--weights", Self.sharedWeights, "--json", "--batch-size", "3"] + extra + images)
            #expect(r.status == 0, "\(r.description)")
            return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [[String: Any]]
        }
        let whole = try run([])
        var union: [String: [String: Any]] = [:]
        for i in 0..<4 {
            let part = try run(["--shard", "\(i)/4"])
            #expect(
                part.map { $0["source"] as! String } == images.enumerated().filter { $0.offset % 4 == i }.map(\.element)
            )
            for r in part { union[r["source"] as! String] = r }
        }
        #expect(union.count == whole.count)
        for r in whole {
            let s = r["source"] as! String
            let u = try #require(union[s])
            // The same logits, bit for bit: one image's result does not depend on its batch.
            #expect(
                (u["logits"] as! [NSNumber]).map(\.floatValue) == (r["logits"] as! [NSNumber]).map(\.floatValue), "\(s)"
            )
        }
    }
}
