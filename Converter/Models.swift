import ArgumentParser
import Checkpoint
import NN
import Tensors
import Vision

/// A network with its weights, as `predict`, `eval` and `bench infer` load it: the checkpoint's state
/// dict, the architecture (`--arch`, else the one the file records, else resnet18), the head sized from
/// the file, and the model card when the file has one.
struct LoadedModel {
    let network: Network
    let arch: String
    let card: ModelCard?
    let architecture: Architecture
    let checkpoint: Checkpoint
    let stateDict: StateDict

    /// The class names: the card's, ImageNet's for a 1000-class head, else "class N".
    func label(_ i: Int) -> String {
        if let card { return card.classNames[i] }
        return network.classes == ImageNet.labels.count ? ImageNet.labels[i] : "class \(i)"
    }

    /// The eval transform: the card's, else the architecture's (torchvision's weights' transform).
    var preprocessing: ImageNetEval { card?.preprocessing ?? architecture.preprocessing }

    /// Reads `weights` and loads it into the architecture. Thrown: `CheckpointError` for the file,
    /// `ModelMismatch` when the names or shapes do not fit (saying which architecture they fit), and
    /// `CommandError` when `--arch` contradicts the file's card or the card is unusable.
    init(weights: String, arch: String?, options: LoadOptions, key: String?, stripPrefix: String? = nil) throws {
        let ckpt = try Checkpoint(path: weights, options: options)
        let sd = try ckpt.stateDict(key: key, stripPrefix: stripPrefix)
        let card: ModelCard?
        do {
            card = try ModelCard(metadata: ckpt.textMetadata)
        } catch {
            throw CommandError("\(weights): its model card is unreadable: \(error)")
        }
        let name: String
        switch (arch, card?.arch) {
        case (let a?, let c?) where a != c:
            throw CommandError(
                "--arch \(a), but \(weights) records that it is a \(c) (fine-tuned by pth2swt); drop --arch")
        case (let a?, _): name = a
        case (nil, let c?): name = c
        case (nil, nil): name = "resnet18"
        }
        guard let architecture = Architecture.named(name) else {
            throw CommandError(
                "\(weights) records the architecture '\(name)', which this version does not know (\(Architecture.names))"
            )
        }
        if let card, let why = card.unsupportedPreprocessing {
            throw CommandError("\(weights) asks for preprocessing this version does not do: \(why)")
        }
        let network = architecture.sizedFor(sd)
        do {
            try network.load(sd)
        } catch let e as LoadError {
            throw ModelMismatch(
                file: weights, arch: name, archGiven: arch != nil, report: e.report, fits: Architecture.fits(sd))
        }
        if let card, card.classNames.count != network.classes {
            throw CommandError(
                "\(weights): its card names \(card.classNames.count) classes, its head has \(network.classes)")
        }
        self.network = network
        self.arch = name
        self.card = card
        self.architecture = architecture
        self.checkpoint = ckpt
        self.stateDict = sd
    }
}

/// A state dict that does not fit the architecture it was loaded into: the load report (capped), and
/// which registered architectures its names fit best.
struct ModelMismatch: Error, CustomStringConvertible {
    let file: String
    let arch: String
    let archGiven: Bool
    let report: LoadReport
    let fits: [Architecture.Fit]

    var description: String {
        var lines = [
            "\(file) does not fit \(arch)\(archGiven ? "" : " (the default; --arch chooses another)"):",
            report.description,
        ]
        let best = fits.prefix(3).filter { $0.matched > 0 }
        if let top = best.first {
            let list = best.map { "\($0.name) (\($0.matched) of \($0.fileKeys))" }.joined(separator: ", ")
            if top.name != arch && top.matched == top.fileKeys && top.matched == top.networkKeys {
                lines.append("its tensor names and shapes are those of \(top.name): give --arch \(top.name)")
            } else {
                lines.append("names and shapes that match, outside the head: \(list)")
            }
        } else {
            lines.append(
                "no architecture this version knows has any of its tensor names with the same shape (\(Architecture.names))"
            )
        }
        return lines.joined(separator: "\n")
    }
}

/// `--resize`, `--crop`, `--interpolation`: the eval transform's sizes and filter, over the default the
/// network or the file's model card gives.
struct PreprocessOptions: ParsableArguments {
    @Option(help: "Resize's shorter side (default: the architecture's, or the model card's).") var resize: Int?
    @Option(help: "CenterCrop's side: the network's input size (default: the architecture's, or the model card's).")
    var crop: Int?
    @Option(help: "Resize's filter: bilinear or bicubic (default: the architecture's, or the model card's).")
    var interpolation: String?

    func validate() throws {
        if let resize { try Bounds.check("--resize", resize, 1...65_536) }
        if let crop { try Bounds.check("--crop", crop, 1...65_536) }
        if let interpolation, Resample.Interpolation(rawValue: interpolation) == nil {
            throw ValidationError("--interpolation '\(interpolation)': bilinear or bicubic")
        }
    }

    /// `base` with what was given in its place.
    func applied(to base: ImageNetEval) -> ImageNetEval {
        ImageNetEval(
            resizeSize: resize ?? base.resizeSize, cropSize: crop ?? base.cropSize,
            interpolation: interpolation.flatMap(Resample.Interpolation.init(rawValue:)) ?? base.interpolation)
    }

    /// "Resize(256, bilinear), CenterCrop(224)".
    static func describe(_ p: ImageNetEval) -> String {
        "Resize(\(p.resizeSize), \(p.interpolation.rawValue)), CenterCrop(\(p.cropSize))"
    }
}
