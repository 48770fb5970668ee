import Checkpoint
import Foundation
import Tensors
import Testing

/// The tool used as a careless or hostile user would use it: outputs that are inputs, bad numbers,
/// empty or degenerate data, corrupt resume files. Each case ends in a clear error (never a signal),
/// damages no file, and claims nothing that did not happen.
@Suite(.enabled(if: Tool.available, Tool.skipReason), .serialized)
struct HostileUseTests {
    static let fashion = "/usr/share/datasets/fashion-mnist"
    static var fashionAvailable: Bool { FileManager.default.fileExists(atPath: fashion + "/t10k-labels-idx1-ubyte.gz") }
    static let fashionSkip: Comment =
        "no Fashion-MNIST at /usr/share/datasets/fashion-mnist (Debian's dataset-fashion-mnist; bash scripts/bootstrap.sh)"

    /// Flags of a small, quick fine-tuning run on Fashion-MNIST (two classes, four images each).
    static let small = ["--data", fashion, "--classes", "2", "--per-class", "4", "--no-augment", "--batch-size", "8"]

    /// One seeded ResNet-18 fine-tuned for one epoch, made once: `model.swt` and `model.resume.swt`
    /// (stop-after 1 of 2 epochs), in a folder removed when the tests exit.
    static let trained: Result<String, any Error> = Result {
        let dir = NSTemporaryDirectory() + "pth2swt-hostile-\(getpid())"
        atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "pth2swt-hostile-\(getpid())") }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let r = try Tool.run(
            ["finetune"] + small + ["--epochs", "2", "--stop-after", "1", "--out", dir + "/model.swt"], timeout: 600)
        guard r.status == 0, !r.signalled else { throw ToolFailure(outcome: r) }
        return dir
    }

    struct ToolFailure: Error, CustomStringConvertible {
        let outcome: Tool.Outcome
        var description: String { outcome.description }
    }

    static func sha(_ path: String) throws -> String {
        SHA256Hex.of([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))))
    }

    /// Copies the `.swt` at `source` to `destination`, with `change` applied to its bytes; `change` is
    /// given the range of the data region (after the header).
    static func copy(_ source: String, to destination: String, change: (inout [UInt8], Range<Int>) -> Void) throws {
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: source)))
        let headerLength = bytes.withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self).littleEndian) }
        change(&bytes, (8 + headerLength)..<bytes.count)
        try Data(bytes).write(to: URL(fileURLWithPath: destination))
    }

    /// Expects a clean failure: the exit status, no signal, and the message in stderr or stdout.
    func expectError(
        _ r: Tool.Outcome, status: Int32 = 1, _ text: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        #expect(!r.signalled && r.status == status, "\(r.description)", sourceLocation: sourceLocation)
        #expect(
            (r.stderr + r.stdout).contains(text), "wanted '\(text)' in \(r.description)", sourceLocation: sourceLocation
        )
    }

    // MARK: - Outputs that are inputs

    @Test(.enabled(if: fashionAvailable, fashionSkip))
    func finetuneRefusesToWriteOverItsWeightsOrResumeFile() throws {
        let trained = try Self.trained.get()
        let dir = try Scratch("overwrite")
        let weights = dir.file("w.swt"), resume = dir.file("r.resume.swt")
        try FileManager.default.copyItem(atPath: trained + "/model.swt", toPath: weights)
        try FileManager.default.copyItem(atPath: trained + "/model.resume.swt", toPath: resume)
        try FileManager.default.createSymbolicLink(atPath: dir.file("link.swt"), withDestinationPath: weights)
        try FileManager.default.linkItem(atPath: weights, toPath: dir.file("hard.swt"))
        let before = (try Self.sha(weights), try Self.sha(resume))
        for out in [weights, dir.path + "/./w.swt", dir.file("link.swt"), dir.file("hard.swt")] {
            let r = try Tool.run(["finetune", "--weights", weights] + Self.small + ["--epochs", "1", "--out", out])
            expectError(r, "refusing to write --out \(out): it is --weights \(weights)")
            #expect(!r.stdout.contains("epoch 1"), "trained before refusing: \(r.stdout)")
        }
        let r = try Tool.run(
            ["finetune", "--weights", weights, "--resume", resume] + Self.small + ["--epochs", "2", "--out", resume])
        expectError(r, "it is --resume \(resume)")
        #expect((try Self.sha(weights), try Self.sha(resume)) == before, "an input was changed")
    }

    @Test func convertRefusesToWriteOverItsInput() throws {
        let dir = try Scratch("convert-overwrite")
        let input = dir.file("in.swt")
        try FileManager.default.copyItem(atPath: Fixtures.path("swt_small.swt"), toPath: input)
        try FileManager.default.createSymbolicLink(atPath: dir.file("link.swt"), withDestinationPath: input)
        let before = try Self.sha(input)
        for out in [input, dir.file("link.swt")] {
            expectError(try Tool.run(["convert", input, out]), "refusing to write OUT \(out): it is IN \(input)")
        }
        expectError(
            try Tool.run(["bench", "convert", input, input, "--repeat", "1", "--warmup", "0"]), "refusing to write OUT")
        #expect(try Self.sha(input) == before)
    }

    @Test func replacedOutputKeepsItsMode() throws {
        let dir = try Scratch("mode")
        let out = dir.file("out.swt")
        #expect(try Tool.run(["convert", Fixtures.path("zip_dtypes.pth"), out, "-q"]).status == 0)
        chmod(out, 0o600)
        #expect(try Tool.run(["convert", Fixtures.path("zip_dtypes.pth"), out, "-q"]).status == 0)
        var st = stat()
        #expect(stat(out, &st) == 0 && st.st_mode & 0o777 == 0o600, "mode \(String(st.st_mode & 0o777, radix: 8))")
    }

    // MARK: - Resume files

    @Test(.enabled(if: fashionAvailable, fashionSkip))
    func corruptResumeFileIsRefusedAndInspectCheckFindsIt() throws {
        let trained = try Self.trained.get()
        let dir = try Scratch("flipped")
        let bad = dir.file("bad.resume.swt")
        try Self.copy(trained + "/model.resume.swt", to: bad) { bytes, data in
            // A NaN inside a tensor.
            bytes.replaceSubrange((data.lowerBound + 4096)..<(data.lowerBound + 4100), with: [0xFF, 0xFF, 0xFF, 0x7F])
        }
        let r = try Tool.run(
            ["finetune", "--resume", bad] + Self.small + ["--epochs", "2", "--out", dir.file("out.swt")])
        expectError(r, "the tensor data was changed after the file was written")
        #expect(!FileManager.default.fileExists(atPath: dir.file("out.swt")))
        expectError(try Tool.run(["inspect", "--check", bad]), "pth2swt.data_sha256")
        let good = try Tool.run(["inspect", "--check", trained + "/model.resume.swt"])
        #expect(
            good.status == 0 && good.stdout.contains("check: the data's SHA-256 is the one the header records"),
            "\(good.description)")
    }

    @Test(.enabled(if: fashionAvailable, fashionSkip))
    func resumeWithOtherWeightsIsRefused() throws {
        let trained = try Self.trained.get()
        let dir = try Scratch("other-weights")
        // The run started from a seeded backbone; the same backbone rounded to float16 is other weights.
        let other = dir.file("other.swt")
        #expect(try Tool.run(["convert", trained + "/model.swt", other, "--dtype", "float16", "-q"]).status == 0)
        let r = try Tool.run(
            ["finetune", "--weights", other, "--resume", trained + "/model.resume.swt"] + Self.small
                + ["--epochs", "2", "--out", dir.file("out.swt")])
        expectError(r, "continues a run that started from other weights than --weights")
        #expect(dir.contents == ["other.swt"], "\(dir.contents)")
    }

    @Test(.enabled(if: fashionAvailable, fashionSkip))
    func resumeThatWouldTrainNothingSaysSo() throws {
        let trained = try Self.trained.get()
        let dir = try Scratch("nothing-to-do")
        let r = try Tool.run(
            ["finetune", "--resume", trained + "/model.resume.swt"] + Self.small + [
                "--epochs", "1", "--out", dir.file("out.swt"),
            ])
        expectError(r, "already holds epoch 1; --epochs 1 must be above it")
        #expect(!r.stdout.contains("wrote"), "\(r.stdout)")
        #expect(dir.contents.isEmpty, "\(dir.contents)")
    }

    @Test(.enabled(if: fashionAvailable, fashionSkip))
    func unwritableOutputDirectoryIsFoundBeforeTraining() throws {
        let r = try Tool.run(["finetune"] + Self.small + ["--epochs", "1", "--out", "/nonexistent-dir/x.swt"])
        expectError(r, "cannot write --out /nonexistent-dir/x.swt")
        #expect(!r.stdout.contains("epoch 1"), "\(r.stdout)")
    }

    // MARK: - Numbers

    @Test func nonFiniteAndNegativeHyperparametersAreRefused() throws {
        for (flag, value, message) in [
            ("--lr", "inf", "must be a finite number"), ("--lr", "nan", "must be a finite number"),
            ("--lr", "-1", "--lr -1.0: must be ≥ 0"), ("--momentum", "-0.5", "--momentum -0.5: must be ≥ 0"),
            ("--weight-decay", "1e400", "must be a finite number"),
        ] {
            let r = try Tool.run(["finetune", "--data", "/nonexistent", "--classes", "2", flag, value])
            expectError(r, status: 64, message)
            #expect(!r.stderr.contains("Missing value"), "\(r.description)")
        }
        for value in ["nan", "-1", "inf"] {
            expectError(try Tool.run(["verify", "a.pth", "b.pth", "--rtol", value]), status: 64, "--rtol")
        }
    }

    @Test(.enabled(if: fashionAvailable, fashionSkip))
    func divergingTrainingStopsWithTheEpochAndStepAndWritesNothing() throws {
        let dir = try Scratch("diverge")
        let r = try Tool.run(
            ["finetune"] + Self.small + ["--epochs", "2", "--lr", "1e308", "--out", dir.file("out.swt")])
        expectError(r, "became NaN or infinite after the update of epoch 1, step 1")
        #expect(dir.contents.isEmpty, "\(dir.contents)")
    }

    @Test func sizeFlagsAreBoundedWithTheirNames() throws {
        for (args, flag) in [
            (["bench", "infer", "--size", "100000"], "--size 100000"),
            (["bench", "infer", "--batch", "100000"], "--batch 100000"),
            (["predict", "--weights", "x.pth", "--threads", "100000", "a.jpg"], "--threads 100000"),
            (["finetune", "--data", "d", "--classes", "100000000"], "--classes 100000000"),
            (["finetune", "--data", "d", "--classes", "2", "--head", "mlp:1000000000"], "HIDDEN 1000000000"),
        ] {
            expectError(try Tool.run(args), status: 64, flag)
        }
        expectError(
            try Tool.run(["bench", "infer", "--batch", "64", "--size", "8192", "--repeat", "1"]),
            "buffers; the limit is")
    }

    @Test(.enabled(if: fashionAvailable, fashionSkip))
    func aTrainingBatchThatCannotFitIsRefusedByName() throws {
        let r = try Tool.run([
            "finetune", "--data", Self.fashion, "--classes", "2", "--per-class", "3000", "--freeze", "none",
            "--batch-size", "4096", "--epochs", "1",
        ])
        expectError(r, "--batch-size 4096: a training step at this batch size needs about")
    }

    // MARK: - Empty and degenerate data

    /// An IDX directory whose images are `rows`×`columns` (`count` of each split, all label 0).
    static func idx(_ dir: Scratch, count: Int, rows: Int, columns: Int) throws -> String {
        func header(_ dims: [Int]) -> [UInt8] {
            [0, 0, 8, UInt8(dims.count)] + dims.flatMap { d in [24, 16, 8, 0].map { UInt8((d >> $0) & 255) } }
        }
        for split in ["train", "t10k"] {
            try Data(header([count, rows, columns]) + [UInt8](repeating: 7, count: count * rows * columns))
                .write(to: URL(fileURLWithPath: dir.file("\(split)-images-idx3-ubyte")))
            try Data(header([count]) + [UInt8](repeating: 0, count: count)).write(
                to: URL(fileURLWithPath: dir.file("\(split)-labels-idx1-ubyte")))
        }
        return dir.path
    }

    @Test func emptyImagesAndSplitsAreErrors() throws {
        for (rows, columns) in [(0, 0), (1, 0)] {
            let scratch = try Scratch("idx\(rows)x\(columns)")
            let data = try Self.idx(scratch, count: 2, rows: rows, columns: columns)
            expectError(
                try Tool.run(["finetune", "--data", data, "--classes", "2", "--epochs", "1"]),
                "images of \(rows)×\(columns) pixels")
        }
        let empty = try Scratch("idx-empty")
        let none = try Self.idx(empty, count: 0, rows: 28, columns: 28)
        expectError(
            try Tool.run(["finetune", "--data", none, "--classes", "2", "--epochs", "1"]), "split holds no image")
        let dir = try Scratch("npy")
        for shape in [[1, 3, 0, 0], [0, 3, 8, 8]] {
            let path = dir.file("x.npy")
            try NPY.float32(shape: shape, values: []).write(to: URL(fileURLWithPath: path))
            expectError(
                try Tool.run(["predict", "--weights", Fixtures.path("swt_small.swt"), "--input", path]),
                "holds no image")
        }
    }

    @Test(.enabled(if: fashionAvailable, fashionSkip))
    func evalReadsNoTrainSplit() throws {
        let trained = try Self.trained.get()
        let dir = try Scratch("eval-test-only")
        _ = try Self.idx(dir, count: 3, rows: 28, columns: 28)
        // A train split that is not even IDX: eval must not open it.
        try Data([1, 2, 3]).write(to: URL(fileURLWithPath: dir.file("train-images-idx3-ubyte")))
        let r = try Tool.run(["eval", "--weights", trained + "/model.swt", "--data", dir.path])
        #expect(r.status == 0 && r.stdout.contains("(3/3)"), "\(r.description)")
    }

    // MARK: - Messages

    @Test(.enabled(if: fashionAvailable, fashionSkip))
    func wrongArchitectureSaysWhichOneFitsInFewLines() throws {
        let trained = try Self.trained.get()
        let dir = try Scratch("wrong-arch")
        // A .pth has no model card: the architecture comes from --arch alone.
        let plain = dir.file("plain.pth")
        #expect(try Tool.run(["convert", trained + "/model.swt", plain, "-q"]).status == 0)
        for arch in ["vgg11", "resnet34", "mobilenet_v2"] {
            let r = try Tool.run(["predict", "--arch", arch, "--weights", plain, Fixtures.path("images/png_rgb.png")])
            expectError(r, "does not fit \(arch)")
            #expect(r.stderr.utf8.count < 2000, "\(r.stderr.utf8.count) bytes: \(r.stderr)")
            #expect(
                r.stderr.contains("its tensor names and shapes are those of resnet18: give --arch resnet18"),
                "\(r.stderr)")
        }
    }

    @Test(.enabled(if: fashionAvailable, fashionSkip))
    func evalNamesNoFlagItDoesNotHave() throws {
        let trained = try Self.trained.get()
        // The two-class model against a three-class ImageFolder.
        let dir = try Scratch("eval-classes")
        for c in ["a", "b", "c"] {
            try FileManager.default.createDirectory(atPath: dir.file("test/\(c)"), withIntermediateDirectories: true)
            try FileManager.default.copyItem(
                atPath: Fixtures.path("images/png_rgb.png"), toPath: dir.file("test/\(c)/x.png"))
        }
        try FileManager.default.createDirectory(atPath: dir.file("train"), withIntermediateDirectories: true)
        for c in ["a", "b", "c"] {
            try FileManager.default.copyItem(atPath: dir.file("test/\(c)"), toPath: dir.file("train/\(c)"))
        }
        let r = try Tool.run(["eval", "--weights", trained + "/model.swt", "--data", dir.path])
        expectError(r, "has 2 classes, but the data has 3 classes: a, b, c")
        #expect(!r.stderr.contains("--classes"), "\(r.description)")
    }

    // MARK: - What a fine-tuned model knows

    @Test(.enabled(if: fashionAvailable, fashionSkip))
    func fineTunedModelNeedsNoArchAndNamesItsClasses() throws {
        let trained = try Self.trained.get()
        let inspect = try Tool.run(["inspect", trained + "/model.swt", "--json"])
        #expect(inspect.stdout.contains("\"pth2swt.model.arch\": \"resnet18\""), "\(inspect.stdout)")
        #expect(inspect.stdout.contains("\"pth2swt.model.class.1\": \"Trouser\""), "\(inspect.stdout)")
        let dir = try Scratch("card")
        let npy = dir.file("x.npy")
        try NPY.float32(shape: [1, 3, 32, 32], values: [Float](repeating: 0.5, count: 3 * 32 * 32)).write(
            to: URL(fileURLWithPath: npy))
        let r = try Tool.run(["predict", "--weights", trained + "/model.swt", "--input", npy])
        #expect(r.status == 0, "\(r.description)")
        #expect(r.stdout.contains("T-shirt/top (0)") && r.stdout.contains("Trouser (1)"), "\(r.stdout)")
        expectError(
            try Tool.run(["predict", "--arch", "resnet34", "--weights", trained + "/model.swt", "--input", npy]),
            "records that it is a resnet18")
    }

    @Test(.enabled(if: fashionAvailable, fashionSkip))
    func predictOnAModelWithNaNIsAnError() throws {
        let trained = try Self.trained.get()
        let dir = try Scratch("nan-model")
        let path = dir.file("nan.swt")
        try Self.copy(trained + "/model.swt", to: path) { bytes, data in
            // Every float of the data region NaN: whatever tensor comes first, the output is NaN.
            for i in stride(from: data.lowerBound, to: data.upperBound - 3, by: 4) {
                bytes.replaceSubrange(i..<(i + 4), with: [0, 0, 0xC0, 0x7F])
            }
        }
        let npy = dir.file("x.npy")
        try NPY.float32(shape: [2, 3, 32, 32], values: [Float](repeating: 0.5, count: 2 * 3 * 32 * 32)).write(
            to: URL(fileURLWithPath: npy))
        let r = try Tool.run(["predict", "--weights", path, "--input", npy])
        expectError(r, "NaN or infinite")
        #expect(!r.stdout.contains("nan"), "\(r.stdout)")
    }

    @Test(.enabled(if: fashionAvailable, fashionSkip))
    func oneUnreadableImageAmongManyIsReportedAndTheOthersClassified() throws {
        let trained = try Self.trained.get()
        let good = Fixtures.path("images/png_rgb.png")
        let args = [
            "predict", "--weights", trained + "/model.swt", "--batch-size", "2", good, "/nonexistent.jpg", good, good,
        ]
        let r = try Tool.run(args)
        expectError(r, "/nonexistent.jpg")
        #expect(r.stdout.components(separatedBy: "png_rgb.png:").count - 1 == 3, "\(r.stdout)")
        #expect(r.stderr.contains("1 of 4 inputs could not be classified"), "\(r.stderr)")
        // --json: one array, in input order, the failure in its place.
        let j = try Tool.run(args + ["--json"])
        let array = try JSONSerialization.jsonObject(with: Data(j.stdout.utf8)) as? [[String: Any]]
        #expect(array?.map { $0["source"] as? String } == [good, "/nonexistent.jpg", good, good], "\(j.stdout)")
        #expect(array?[1]["error"] != nil && j.status == 1, "\(j.description)")
    }
}

/// Files under Tests/Fixtures.
enum Fixtures {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures").path
    static func path(_ name: String) -> String { folder + "/" + name }
}

/// A float32 `.npy` file's bytes (version 1.0 header), for the tests that need one.
enum NPY {
    static func float32(shape: [Int], values: [Float]) -> Data {
        let dims = shape.map(String.init).joined(separator: ", ") + (shape.count == 1 ? "," : "")
        var header = "{'descr': '<f4', 'fortran_order': False, 'shape': (\(dims)), }"
        while (10 + header.utf8.count + 1) % 64 != 0 { header += " " }
        header += "\n"
        var out = Data(
            [0x93] + Array("NUMPY".utf8) + [1, 0, UInt8(header.utf8.count & 255), UInt8(header.utf8.count >> 8)])
        out.append(contentsOf: Array(header.utf8))
        values.withUnsafeBytes { out.append(contentsOf: $0) }
        return out
    }
}
