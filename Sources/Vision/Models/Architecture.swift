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

    public init(_ name: String, family: String, build: @escaping @Sendable (_ classes: Int) -> Network) {
        self.name = name
        self.family = family
        self.build = build
    }

    /// Every network the runtime knows, in the order `--help` lists them.
    public static let all: [Architecture] = resnets + [alexnet] + vggs + [mobilenetV2]

    public static func named(_ name: String) -> Architecture? { all.first { $0.name == name } }

    /// "resnet18, resnet34, …" for `--help` and errors.
    public static var names: String { all.map(\.name).joined(separator: ", ") }

    /// The network for `sd`, its head shaped like the file's:
    /// - a linear head (`fc.weight` [classes, features]) with as many classes as that weight has rows (a
    ///   fine-tuned model);
    /// - an MLP head (`fc.0.weight`, `fc.3.weight`, as `--head mlp:…` writes it) with its hidden width;
    /// - otherwise torchvision's 1000 classes, so that loading reports the mismatch by name.
    public func sizedFor(_ sd: StateDict) -> Network {
        let net = build(1000)
        let head = net.head, features = net.headInputFeatures
        if let w = sd[head + ".weight"]?.shape, w.count == 2, w[0] > 0, w[1] == features {
            return w[0] == 1000 ? net : build(w[0])
        }
        if let w0 = sd[head + ".0.weight"]?.shape, let w3 = sd[head + ".3.weight"]?.shape, w0.count == 2, w3.count == 2,
           w0[1] == features, w0[0] > 0, w3[1] == w0[0], w3[0] > 0 {
            net.replaceHead(classes: w3[0], kind: .mlp(hidden: w0[0], dropout: 0.5))
        }
        return net
    }
}
