import NN
import Tensors

/// A torchvision classification network by its builder's name (`resnet18`, `vgg16_bn`, `mobilenet_v2`):
/// how to build its description for a number of classes. Each family adds its builders in its own file
/// (`ResNets.swift`, `VGG.swift`, …) and lists them once in `all`.
public struct Architecture: Sendable {
    /// torchvision's function name.
    public let name: String
    /// The family, for listings ("ResNet", "VGG", …).
    public let family: String
    /// The description with `classes` outputs, parameters at their initial values (load weights after).
    public let build: @Sendable (_ classes: Int) -> Network
    /// The eval transform of torchvision's ImageNet weights for this builder (the original, V1 files:
    /// resize, crop and interpolation of `weights.transforms()`).
    public let preprocessing: ImageNetEval
    /// The description a given state dict needs, where a builder has had more than one layout under the
    /// same name (MNASNet's version-1 files); nil: `build`.
    public let variant: (@Sendable (_ sd: StateDict, _ classes: Int) -> Network?)?

    public init(
        _ name: String, family: String, preprocessing: ImageNetEval = ImageNetEval(),
        variant: (@Sendable (_ sd: StateDict, _ classes: Int) -> Network?)? = nil,
        build: @escaping @Sendable (_ classes: Int) -> Network
    ) {
        self.name = name
        self.family = family
        self.preprocessing = preprocessing
        self.variant = variant
        self.build = build
    }

    /// Every network the runtime knows, in the order `--help` lists them.
    public static let all: [Architecture] =
        resnets + [alexnet] + vggs + [mobilenetV2] + mobilenetV3 + efficientNets + mnasnets
        + regnets + shuffleNets + denseNets + squeezeNets + [googLeNet, inceptionV3] + convNeXts

    public static func named(_ name: String) -> Architecture? { all.first { $0.name == name } }

    /// "resnet18, resnet34, …" for `--help` and errors.
    public static var names: String { all.map(\.name).joined(separator: ", ") }

    /// How well a state dict's names fit one architecture.
    public struct Fit: Sendable, Equatable {
        public var name: String
        /// Names that both the file and the network have, with the same shape.
        public var matched: Int
        /// Names of the network's state dict (parameters, buffers).
        public var networkKeys: Int
        /// Tensor names of the file.
        public var fileKeys: Int
    }

    /// Every registered architecture with how many of `sd`'s tensor names (and shapes) it has, best
    /// first: for an error that says which network a file holds. Heads are left out on both sides, so a
    /// fine-tuned model fits its backbone, and so are `num_batches_tracked` buffers. Builds each network in turn (one at a time).
    public static func fits(_ sd: StateDict) -> [Fit] {
        var fits: [Fit] = []
        for a in all {
            let net = a.build(1000)
            // BatchNorm's num_batches_tracked is left out too: files saved before torch 0.4.1 lack it.
            let head = net.head + "."
            func counted(_ name: String) -> Bool { !name.hasPrefix(head) && !name.hasSuffix("num_batches_tracked") }
            let shapes = Dictionary(
                net.stateEntries.filter { counted($0.name) }.map { ($0.name, $0.entry.shape) },
                uniquingKeysWith: { a, _ in a })
            let file = sd.tensors.filter { counted($0.name) }
            // A key under the family's older spelling (DenseNet's published files) counts under its current one.
            let matched = file.filter {
                shapes[$0.name] == $0.tensor.shape
                    || shapes[net.currentName(ofLegacy: $0.name) ?? ""] == $0.tensor.shape
            }.count
            fits.append(Fit(name: a.name, matched: matched, networkKeys: shapes.count, fileKeys: file.count))
        }
        // Best: most names matched, then fewest left over on either side.
        return fits.sorted {
            ($0.matched, -($0.networkKeys + $0.fileKeys)) > ($1.matched, -($1.networkKeys + $1.fileKeys))
        }
    }

    /// The network for `sd`, its head shaped like the file's:
    /// - a linear head (`fc.weight` [classes, features]) with as many classes as that weight has rows (a
    ///   fine-tuned model);
    /// - an MLP head (`fc.0.weight`, `fc.3.weight`, as `--head mlp:…` writes it) with its hidden width;
    /// - otherwise torchvision's 1000 classes, so that loading reports the mismatch by name.
    public func sizedFor(_ sd: StateDict) -> Network {
        let build = { (classes: Int) in variant?(sd, classes) ?? self.build(classes) }
        let net = build(1000)
        let head = net.head, features = net.headInputFeatures
        if let w = sd[head + ".weight"]?.shape, w.count == 2, w[0] > 0, w[1] == features {
            return w[0] == 1000 ? net : build(w[0])
        }
        // A convolution head (SqueezeNet's classifier.1, [classes, features, 1, 1]).
        if net.headConvolution != nil, let w = sd[head + ".weight"]?.shape, w.count == 4, w[0] > 0, w[1] == features,
            w[2] == 1, w[3] == 1
        {
            return w[0] == 1000 ? net : build(w[0])
        }
        if let w0 = sd[head + ".0.weight"]?.shape, let w3 = sd[head + ".3.weight"]?.shape, w0.count == 2, w3.count == 2,
            w0[1] == features, w0[0] > 0, w3[1] == w0[0], w3[0] > 0
        {
            net.replaceHead(classes: w3[0], kind: .mlp(hidden: w0[0], dropout: 0.5))
        }
        return net
    }
}
