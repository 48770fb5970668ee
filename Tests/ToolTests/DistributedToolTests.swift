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

    /// Data-parallel fine-tuning: N ranks of per-rank batch b train as one rank of batch N·b (same sampler
    /// order; a frozen backbone, so no per-rank BatchNorm statistics), up to the order of the sums; a run
    /// stopped on 2 ranks resumes on 3 with the same global batch; only rank 0 writes.
    @Test(.enabled(if: ShardTests.sharedAvailable, "../shared/weights/resnet18-zip.pth is absent; finetune needs it"))
    func finetuneOverRanksIsOneRunOfTheGlobalBatch() throws {
        let dir = try Scratch("dp")
        let flags = [
            "finetune", "--weights", ShardTests.sharedWeights, "--data", HostileUseTests.fashion, "--classes", "3",
            "--per-class", "6", "--no-augment", "--epochs", "2", "--threads", "1", "--json",
        ]
        func epochs(_ r: Tool.Outcome) throws -> [[String: Any]] {
            #expect(r.status == 0, "\(r.description)")
            let o = try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
            return o["epochs"] as! [[String: Any]]
        }
        func close(_ a: [[String: Any]], _ b: [[String: Any]], _ what: String) {
            #expect(a.count == b.count, "\(what)")
            for (x, y) in zip(a, b) {
                for key in ["train_loss", "test_loss"] {
                    let u = x[key] as! Double, v = y[key] as! Double
                    #expect(abs(u - v) <= 1e-5 * abs(u), "\(what) epoch \(x["epoch"]!): \(key) \(v) against \(u)")
                }
                #expect(x["test_accuracy"] as? Double == y["test_accuracy"] as? Double, "\(what)")
            }
        }
        let one = try epochs(try launch(1, flags + ["--batch-size", "6", "--out", dir.file("one.swt")]))
        let two = try epochs(try launch(2, tcp: true, flags + ["--batch-size", "3", "--out", dir.file("two.swt")]))
        close(one, two, "2 ranks")
        // Stopped after epoch 1 on 2 ranks, resumed on 3 (2 images each: the same global batch of 6).
        _ = try epochs(try launch(2, flags + ["--batch-size", "3", "--stop-after", "1", "--out", dir.file("r.swt")]))
        let resumed = try epochs(
            try launch(
                3, flags + ["--batch-size", "2", "--resume", dir.file("r.resume.swt"), "--out", dir.file("r.swt")]))
        close(Array(one.suffix(1)), resumed, "resumed on 3 ranks")
        // Rank 0 alone wrote, and nothing temporary is left.
        #expect(
            dir.contents == ["one.resume.swt", "one.swt", "r.resume.swt", "r.swt", "two.resume.swt", "two.swt"],
            "\(dir.contents)")
        // A data-parallel checkpoint resumes under a launcher only, with its global batch.
        let alone = try Tool.run(flags + ["--batch-size", "6", "--resume", dir.file("r.resume.swt")])
        #expect(alone.status == 1 && alone.stdout.contains("resume it under mpirun or srun"), "\(alone.description)")
        let other = try launch(3, flags + ["--batch-size", "3", "--resume", dir.file("r.resume.swt")])
        #expect(
            other.status != 0 && other.stdout.contains("not 3 ranks × 3 = 9; give --batch-size 2"),
            "\(other.description)")
    }

    /// With layer4 training and every BatchNorm on its running statistics (`--bn fixed`), 2 ranks of 2
    /// images train as one process of 4, overlapped or not, to the order of the sums (measured: 2.4e-6
    /// relative in the losses after 4 steps at lr 1e-4; at the default lr 0.01 this 8-image run is unstable
    /// and rounding grows about 100× a step), and `--json` reports the allreduce.
    @Test(.enabled(if: ShardTests.sharedAvailable, "../shared/weights/resnet18-zip.pth is absent; finetune needs it"))
    func aTrainingBackboneWithFixedBatchNormIsOneRunOverRanks() throws {
        let flags = [
            "finetune", "--weights", ShardTests.sharedWeights, "--data", HostileUseTests.fashion, "--classes", "2",
            "--per-class", "4", "--no-augment", "--epochs", "2", "--threads", "1", "--freeze", "layer3", "--bn",
            "fixed", "--lr", "1e-4", "--json",
        ]
        func run(_ r: Tool.Outcome) throws -> [String: Any] {
            #expect(r.status == 0, "\(r.description)")
            return try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as! [String: Any]
        }
        let one = try run(try launch(1, flags + ["--batch-size", "4"]))
        let runs = [
            try run(try launch(2, flags + ["--batch-size", "2"])),
            try run(try launch(2, flags + ["--batch-size", "2", "--allreduce", "after"])),
        ]
        let want = one["epochs"] as! [[String: Any]]
        for (i, o) in runs.enumerated() {
            let got = o["epochs"] as! [[String: Any]]
            #expect(got.count == 2)
            for (x, y) in zip(want, got) {
                for key in ["train_loss", "test_loss"] {
                    let u = x[key] as! Double, v = y[key] as! Double
                    #expect(abs(u - v) <= 1e-5 * abs(u), "run \(i): \(key) \(v) against \(u)")
                }
            }
            let a = o["allreduce"] as! [String: Any]
            #expect(a["ranks"] as? Int == 2 && a["overlapped"] as? Bool == (i == 0))
            // layer4 and a 2-class fc: 8,394,754 floats a step (torchvision 0.14: `python3 -c "import torch,
            // torchvision; m = torchvision.models.resnet18(); m.fc = torch.nn.Linear(512, 2); print(sum(p.numel()
            // for n, p in m.named_parameters() if n.startswith(('layer4', 'fc'))))"`).
            #expect(a["bytes_per_step"] as? Int == 8_394_754 * 4)
            #expect(a["steps"] as? Int == 4)
        }
        #expect(one["allreduce"] == nil)
        // Overlapped or not, the same bits.
        #expect(
            (runs[0]["epochs"] as! [[String: Any]]).map { $0["train_loss"] as! Double }
                == (runs[1]["epochs"] as! [[String: Any]]).map { $0["train_loss"] as! Double })
    }

    /// `kill -9` of one rank mid-epoch: mpirun ends the job, non-zero, within seconds; the other rank stops
    /// as on SIGTERM; no temporary file is left; the last resume file is whole and resumes on 1 and on 3
    /// ranks.
    @Test(.enabled(if: ShardTests.sharedAvailable, "../shared/weights/resnet18-zip.pth is absent; finetune needs it"))
    func aKilledRankEndsTheJobAndLeavesAResumableCheckpoint() throws {
        let dir = try Scratch("dp-kill")
        let flags = [
            "finetune", "--weights", ShardTests.sharedWeights, "--data", HostileUseTests.fashion, "--classes", "2",
            "--per-class", "12", "--epochs", "3", "--threads", "1", "--out", dir.file("m.swt"),
        ]
        let p = Process()
        p.executableURL = URL(fileURLWithPath: MPIRun.path!)
        p.arguments =
            ["--allow-run-as-root", "--oversubscribe", "-np", "2", Tool.path] + flags + ["--batch-size", "3"]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        // Epoch 1's files, then a moment into epoch 2.
        let deadline = Date().addingTimeInterval(240)
        while !FileManager.default.fileExists(atPath: dir.file("m.resume.swt")), Date() < deadline, p.isRunning {
            usleep(100_000)
        }
        #expect(FileManager.default.fileExists(atPath: dir.file("m.resume.swt")), "epoch 1 never finished")
        usleep(1_500_000)
        let ranks = Self.children(of: p.processIdentifier)
        #expect(ranks.count == 2, "ranks \(ranks)")
        let killed = Date()
        kill(ranks.last!, SIGKILL)
        p.waitUntilExit()
        let seconds = Date().timeIntervalSince(killed)
        #expect(p.terminationStatus != 0)
        #expect(seconds < 30, "mpirun took \(seconds) s to end the job")
        #expect(Self.children(of: p.processIdentifier).isEmpty)
        #expect(dir.contents == ["m.resume.swt", "m.swt"], "\(dir.contents)")
        let check = try Tool.run(["inspect", "--check", dir.file("m.resume.swt")])
        #expect(check.status == 0, "\(check.description)")
        // The same global batch of 6 on 1 rank and on 3.
        for (ranks, batch, out) in [(1, "6", "one.swt"), (3, "2", "three.swt")] {
            var args = flags
            args[args.count - 1] = dir.file(out)
            let r = try launch(ranks, args + ["--batch-size", batch, "--resume", dir.file("m.resume.swt")])
            #expect(r.status == 0 && r.stdout.contains("resumed"), "\(ranks) ranks: \(r.description)")
            #expect(r.stdout.contains("epoch 3/3"), "\(r.stdout)")
        }
    }

    /// SIGINT to mpirun (as Ctrl-C sends it): Open MPI passes it on to the ranks, each stops at its next step, the
    /// job ends non-zero within seconds and no file, partial or temporary, is left.
    @Test(.enabled(if: ShardTests.sharedAvailable, "../shared/weights/resnet18-zip.pth is absent; finetune needs it"))
    func anInterruptedJobStopsCleanly() throws {
        let dir = try Scratch("dp-int")
        let run =
            [MPIRun.path!, "--allow-run-as-root", "--oversubscribe", "-np", "2", Tool.path] + [
                "finetune", "--weights", ShardTests.sharedWeights, "--data", HostileUseTests.fashion, "--classes", "2",
                "--per-class", "200", "--epochs", "2", "--threads", "1", "--batch-size", "4", "--out",
                dir.file("m.swt"),
            ]
        // A shell starts the job, signals it 8 s in, and reports its status and how long it took to stop.
        // The test runner hands its children SIGINT and SIGTERM blocked (and a shell's background job
        // ignores SIGINT), which mpirun never undoes; python3 starts it as a terminal would.
        let script = """
            python3 -c 'import os, signal, sys
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.execvp(sys.argv[1], sys.argv[1:])' "$@" >/dev/null 2>&1 &
            job=$!
            sleep 8
            start=$(date +%s%N)
            kill -INT $job
            wait $job
            status=$?
            echo "status $status ms $(( ($(date +%s%N) - start) / 1000000 ))"
            """
        let r = try Tool.run(program: "/bin/sh", ["-c", script, "sh"] + run, timeout: 300)
        let words = r.stdout.split(separator: " ")
        #expect(words.count == 4 && words[0] == "status", "\(r.description)")
        guard words.count == 4, let status = Int(words[1]),
            let ms = Int(words[3].trimmingCharacters(in: .whitespacesAndNewlines))
        else { return }
        #expect(status != 0, "\(r.stdout)")
        #expect(ms < 30_000, "the job took \(ms) ms to stop")
        #expect(dir.contents.isEmpty, "\(dir.contents)")
    }

    /// An unreadable image that falls to one rank while training: that rank names it, with its rank, once;
    /// the job stops non-zero on every rank and writes nothing.
    @Test(.enabled(if: ShardTests.sharedAvailable, "../shared/weights/resnet18-zip.pth is absent; finetune needs it"))
    func anUnreadableImageOnOneRankStopsTheJob() throws {
        let dir = try Scratch("dp-bad")
        let fm = FileManager.default
        for split in ["train", "test"] {
            for (cls, image) in [("a", "geom_300x200.jpg"), ("b", "geom_256x300.jpg")] {
                try fm.createDirectory(atPath: dir.file("\(split)/\(cls)"), withIntermediateDirectories: true)
                for i in 1...(split == "train" ? 4 : 1) {
                    try fm.copyItem(
                        atPath: Fixtures.path("images/" + image), toPath: dir.file("\(split)/\(cls)/\(i).jpg"))
                }
            }
        }
        try Data("not a jpeg".utf8).write(to: URL(fileURLWithPath: dir.file("train/b/3.jpg")), options: .atomic)
        let out = try Scratch("dp-bad-out")
        let r = try launch(
            2,
            [
                "finetune", "--weights", ShardTests.sharedWeights, "--data", dir.path, "--classes", "2", "--epochs",
                "1", "--threads", "1", "--batch-size", "2", "--out", out.file("m.swt"),
            ])
        #expect(r.status != 0 && !r.signalled, "\(r.description)")
        #expect(r.stderr.components(separatedBy: "error: rank ").count == 2, "\(r.stderr)")
        #expect(r.stderr.contains("train/b/3.jpg: neither JPEG nor PNG"), "\(r.stderr)")
        #expect(out.contents.isEmpty, "\(out.contents)")
    }

    /// The processes whose parent is `pid` (mpirun starts the ranks it runs locally itself).
    static func children(of pid: Int32) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap(Int32.init).filter { child in
            guard let stat = try? String(contentsOfFile: "/proc/\(child)/stat", encoding: .utf8),
                let close = stat.lastIndex(of: ")")
            else { return false }
            let fields = stat[stat.index(after: close)...].split(separator: " ")
            return fields.count > 2 && Int32(fields[1]) == pid
        }.sorted()
    }

    @Test func anErrorOnTheRanksIsPrintedOnceWithItsRank() throws {
        let r = try launch(
            3, ["eval", "--weights", "/nonexistent/model.swt", "--data", HostileUseTests.fashion, "--threads", "1"])
        #expect(r.status != 0 && !r.signalled, "\(r.description)")
        #expect(r.stderr.components(separatedBy: "error: rank").count == 2, "\(r.stderr)")
        #expect(r.stderr.contains("error: rank 0 of 3: /nonexistent/model.swt: cannot open"), "\(r.stderr)")
        #expect(r.stdout.isEmpty, "\(r.stdout)")
    }

    /// What parsing the flags says is the same on every rank: rank 0 alone prints it, every rank exits
    /// with its status (64 for a usage error, 0 for --help).
    @Test func aFlagErrorAndTheHelpArePrintedOnce() throws {
        let bad = try launch(3, ["finetune", "--data", "x", "--classes", "2", "--per-class", "0"])
        #expect(bad.status == 64, "\(bad.description)")
        #expect(bad.stderr.components(separatedBy: "--per-class must be at least 1").count == 2, "\(bad.stderr)")
        let help = try launch(2, ["finetune", "--help"])
        #expect(help.status == 0, "\(help.description)")
        #expect(help.stdout.components(separatedBy: "USAGE: pth2swt finetune").count == 2, "\(help.stdout)")
    }
}

/// Slurm's `srun` with a running controller (`sinfo` answers), when there is one: CI machines have none, so
/// this is for a machine set up as docs/distributed.md's "Slurm on one machine" says.
@Suite(
    .enabled(if: Tool.available, Tool.skipReason),
    .enabled(if: SlurmRun.usable, "no Slurm controller answers (sinfo); srun is checked where Slurm runs"),
    .enabled(if: MPIRun.path != nil, "no mpirun to compare srun with"),
    .enabled(if: HostileUseTests.fashionAvailable, HostileUseTests.fashionSkip),
    .enabled(if: ShardTests.sharedAvailable, "../shared/weights/resnet18-zip.pth is absent; finetune needs it"),
    .serialized)
struct SlurmToolTests {
    /// `srun -n 2 --mpi=pmix` (PMIx, no OMPI_ variables) is the same job as `mpirun -np 2`: the same
    /// losses, accuracy and confusion, bit for bit.
    @Test func srunIsMpirun() throws {
        let flags = [
            Tool.path, "finetune", "--weights", ShardTests.sharedWeights, "--data", HostileUseTests.fashion,
            "--classes", "2", "--per-class", "4", "--no-augment", "--epochs", "1", "--threads", "1", "--batch-size",
            "2", "--freeze", "layer3", "--json",
        ]
        let srun = try Tool.run(program: SlurmRun.path!, ["-n", "2", "--mpi=pmix"] + flags, timeout: 300)
        let mpirun = try Tool.run(
            program: MPIRun.path!, ["--allow-run-as-root", "--oversubscribe", "-np", "2"] + flags, timeout: 300)
        #expect(srun.status == 0 && mpirun.status == 0, "\(srun.description)\n\(mpirun.description)")
        let a = try JSONSerialization.jsonObject(with: Data(srun.stdout.utf8)) as! [String: Any]
        let b = try JSONSerialization.jsonObject(with: Data(mpirun.stdout.utf8)) as! [String: Any]
        for key in ["loss", "accuracy"] { #expect(a[key] as? Double == b[key] as? Double, "\(key)") }
        #expect((a["confusion"] as? [[Int]]) == (b["confusion"] as? [[Int]]))
        let ea = (a["epochs"] as! [[String: Any]])[0], eb = (b["epochs"] as! [[String: Any]])[0]
        #expect(ea["train_loss"] as? Double == eb["train_loss"] as? Double)
        #expect((a["allreduce"] as? [String: Any])?["ranks"] as? Int == 2)
    }
}

enum SlurmRun {
    static let path: String? = ["/usr/bin/srun", "/usr/local/bin/srun"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
    /// Whether a controller answers: `sinfo` succeeds within a few seconds.
    static let usable: Bool = {
        guard path != nil,
            let sinfo = ["/usr/bin/sinfo", "/usr/local/bin/sinfo"].first(where: {
                FileManager.default.isExecutableFile(atPath: $0)
            })
        else { return false }
        return (try? Tool.run(program: sinfo, ["--noheader"], timeout: 10))?.status == 0
    }()
}

/// Open MPI's launcher, when installed.
enum MPIRun {
    static let path: String? = ["/usr/bin/mpirun", "/usr/local/bin/mpirun"].first {
        FileManager.default.isExecutableFile(atPath: $0)
    }
}
