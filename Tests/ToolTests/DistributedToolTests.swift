import Foundation
import Testing

/// The tool as the ranks of an Open MPI job (`mpirun -np N pth2swt …`): each rank takes its share,
/// rank 0 prints the one-process result, an error is printed once with its rank.
@Suite(
    .enabled(if: Tool.available, Tool.skipReason),
    .enabled(if: MPIRun.path != nil, "no mpirun (Debian's openmpi-bin; bash scripts/bootstrap.sh)"),
    .enabled(if: HostileUseTests.fashionAvailable, HostileUseTests.fashionSkip),
    .serialized)
struct DistributedToolTests {
    /// mpirun's flags for a test machine: as root it needs --allow-run-as-root, and with fewer cores than
    /// ranks --oversubscribe; `tcp` forces the TCP transport that ranks on other machines use.
    func launch(_ ranks: Int, tcp: Bool = false, _ arguments: [String]) throws -> Tool.Outcome {
        // Components stay loaded at exit, so a sanitizer's leak report can name Open MPI's own allocations.
        var flags = [
            "--allow-run-as-root", "--oversubscribe", "--mca", "mca_base_component_disable_dlclose", "1", "-np",
            String(ranks),
        ]
        if tcp { flags += ["--mca", "btl", "tcp,self"] }
        // Under scripts/sanitize.sh: the ranks get the leak suppressions, and unwind slowly on malloc so that
        // Open MPI's allocations (its libraries keep no frame pointers) are traced to the library.
        let env = ProcessInfo.processInfo.environment
        if env["LSAN_OPTIONS"] != nil { flags += ["-x", "LSAN_OPTIONS"] }
        flags += ["-x", "ASAN_OPTIONS=fast_unwind_on_malloc=0" + (env["ASAN_OPTIONS"].map { ":" + $0 } ?? "")]
        return try Tool.run(program: MPIRun.path!, flags + [Tool.path] + arguments, timeout: 300)
    }

    @Test func evalOverRanksIsTheOneProcessResult() throws {
        let trained = try HostileUseTests.trained.get()
        let args = [
            "eval", "--weights", trained + "/model.swt", "--data", HostileUseTests.fashion, "--per-class", "5",
            "--threads", "1", "--batch-size", "4", "--json",
        ]
        let alone = try Tool.run(args, timeout: 300)
        #expect(alone.status == 0, "\(alone.description)")
        let one = try JSONSerialization.jsonObject(with: Data(alone.stdout.utf8)) as! [String: Any]
        for (ranks, tcp) in [(2, true), (3, false)] {
            let r = try launch(ranks, tcp: tcp, args)
            #expect(r.status == 0, "\(r.description)")
            // Rank 0 alone prints: one JSON object.
            let many = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            #expect(many["ranks"] as? Int == ranks)
            #expect(many["count"] as? Int == one["count"] as? Int && (one["count"] as? Int ?? 0) == 10)
            #expect((many["confusion"] as! [[Int]]) == (one["confusion"] as! [[Int]]))
            #expect(many["accuracy"] as? Double == one["accuracy"] as? Double)
            let a = one["loss"] as! Double, b = many["loss"] as! Double
            #expect(abs(a - b) <= 1e-6 * max(1, abs(a)), "loss \(b) against \(a) alone")
        }
    }

    @Test(
        .enabled(
            if: ShardTests.sharedAvailable, "../shared/weights/resnet18-zip.pth is absent; the predict test needs it"))
    func predictOverRanksPrintsTheOneProcessOutput() throws {
        let images = try FileManager.default.contentsOfDirectory(atPath: Fixtures.path("images")).filter {
            $0.hasSuffix(".jpg") || $0.hasSuffix(".png")
        }.sorted().prefix(7).map { Fixtures.path("images/" + $0) }
        // An unreadable input among them: reported in its place, and the run exits 1.
        let inputs = Array(images.prefix(3)) + ["/nonexistent.jpg"] + Array(images.dropFirst(3))
        let args = ["predict", "--weights", ShardTests.sharedWeights, "--json", "--batch-size", "2", "--threads", "1"]
        let alone = try Tool.run(args + inputs, timeout: 300)
        #expect(alone.status == 1, "\(alone.description)")
        let ranks = try launch(3, args + inputs)
        #expect(ranks.status != 0 && !ranks.signalled, "\(ranks.description)")
        // The same bytes: input order kept, each image's logits bit for bit.
        #expect(ranks.stdout == alone.stdout)
        let parsed = try JSONSerialization.jsonObject(with: Data(ranks.stdout.utf8)) as! [[String: Any]]
        #expect(parsed.map { $0["source"] as! String } == inputs)
        #expect(parsed[3]["error"] != nil)
        let text = try launch(2, ["predict", "--weights", ShardTests.sharedWeights, "--threads", "1"] + images)
        let textAlone = try Tool.run(["predict", "--weights", ShardTests.sharedWeights, "--threads", "1"] + images)
        #expect(text.status == 0 && text.stdout == textAlone.stdout, "\(text.description)")
    }

    @Test func anErrorOnTheRanksIsPrintedOnceWithItsRank() throws {
        let r = try launch(
            3, ["eval", "--weights", "/nonexistent/model.swt", "--data", HostileUseTests.fashion, "--threads", "1"])
        #expect(r.status != 0 && !r.signalled, "\(r.description)")
        #expect(r.stderr.components(separatedBy: "error: rank").count == 2, "\(r.stderr)")
        #expect(r.stderr.contains("error: rank 0 of 3: /nonexistent/model.swt: cannot open"), "\(r.stderr)")
        #expect(r.stdout.isEmpty, "\(r.stdout)")
    }
}

/// Open MPI's launcher, when installed.
enum MPIRun {
    static let path: String? = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
}
