import ArgumentParser
import Checkpoint
import Kernels
import NN
import Tensors
import Vision

struct Predict: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Classify images with a torchvision network and its weights.",
        discussion: """
            --weights may be any checkpoint pth2swt reads (tar, legacy, zip) or a .swt. The state dict is \
            loaded strictly into --arch, under torchvision's names; a head with other than 1000 classes \
            (a fine-tuned model, linear or --head mlp) is sized from the file's head weights (fc, \
            classifier.6, classifier.1). Images (JPEG, PNG) go through \
            torchvision's eval transform: Resize(256) with Pillow's bilinear antialiasing, CenterCrop(224), \
            ToTensor, Normalize(ImageNet mean and std). --input takes a float32 NCHW .npy that is already \
            preprocessed instead.

            Examples:
              pth2swt predict --weights resnet18-5c106cde.pth cat.jpg dog.png
              pth2swt predict --weights resnet18.swt --input batch.npy --json
              pth2swt predict --arch mobilenet_v2 --weights mobilenet_v2-b0353104.pth cat.jpg
            """
    )

    @Option(help: "The weights (tar, legacy, zip, .swt).") var weights: String
    @Option(help: "\(Architecture.names).") var arch = "resnet18"
    @Option(help: "Threads for the kernels.") var threads = 1
    @Option(help: "How many classes to show per input.") var top = 5
    @Option(name: .customLong("strip-prefix"), help: "Remove this prefix from the weights' names (e.g. 'module.').")
    var stripPrefix: String?
    @Option(help: "A float32 .npy of shape [N, 3, H, W], already normalised, instead of images.") var input: String?
    @Flag(help: "Print a JSON array: one {source, top, logits} per input.") var json = false
    @Flag(help: "No Winograd: the direct GEMM for every convolution (slower; for comparing accuracy).") var direct = false
    @Argument(help: "JPEG or PNG files.") var images: [String] = []
    @OptionGroup var caps: CapOptions
    @OptionGroup var source: SourceOptions

    func validate() throws {
        guard Architecture.named(arch) != nil else {
            throw ValidationError("unknown --arch '\(arch)'; one of \(Architecture.names)")
        }
        guard (input == nil) != images.isEmpty else { throw ValidationError("give image files or --input X.npy (one of the two)") }
        guard threads >= 1, top >= 1 else { throw ValidationError("--threads and --top must be at least 1") }
    }

    func run() throws {
        do {
            let options = source.loadOptions(try caps.loadOptions())
            let sd = try Checkpoint(path: weights, options: options).stateDict(key: source.key, stripPrefix: stripPrefix)
            if let note = placeNote(sd) {
                var err = StandardError()
                print("weights: \(weights): \(note)", to: &err)
            }
            let model = Architecture.named(arch)!.sizedFor(sd)
            try model.load(sd)
            let net = Inference(model)
            net.threads = threads
            net.useWinograd = !direct

            var sources: [String] = []
            var batch: [Float] = []
            var n = 0, h = 224, w = 224
            if let input {
                let array = try NPYArray(path: input)
                guard array.shape.count == 4, array.shape[1] == 3 else {
                    throw ValidationError("\(input): shape \(array.shape) is not [N, 3, H, W]")
                }
                (n, h, w) = (array.shape[0], array.shape[2], array.shape[3])
                batch = try array.float32()
                sources = (0..<n).map { "\(input)[\($0)]" }
            } else {
                for path in images {
                    batch += try ImageNetEval().tensor(from: path)
                    sources.append(path)
                }
                n = images.count
            }
            let logits = try net.logits(batch, batch: n, height: h, width: w)
            let classes = net.classes
            let probabilities = Elementwise.softmax(logits, rows: n, columns: classes)
            func label(_ i: Int) -> String { classes == ImageNet.labels.count ? ImageNet.labels[i] : "class \(i)" }
            var results: [JSON] = []
            for r in 0..<n {
                let row = Array(probabilities[(r * classes)..<((r + 1) * classes)])
                let best = row.enumerated().sorted { $0.element > $1.element }.prefix(min(top, classes))
                if json {
                    results.append(.object([
                        ("source", .string(sources[r])),
                        ("top", .array(best.map { .object([("index", .int($0.offset)), ("label", .string(label($0.offset))),
                                                            ("probability", .double(Double($0.element)))]) })),
                        ("logits", .array(logits[(r * classes)..<((r + 1) * classes)].map { .double(Double($0)) })),
                    ]))
                } else {
                    print("\(sources[r]):")
                    for (rank, (i, p)) in best.enumerated() {
                        let percent = (Double(p) * 10000).rounded() / 100
                        print("  \(rank + 1). \(label(i)) (\(i)): \(percent)%")
                    }
                }
            }
            if json { print(JSON.array(results).render()) }
        } catch let e as ValidationError {
            throw e
        } catch {
            throw fail(error, json: json)
        }
    }
}
