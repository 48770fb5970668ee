import NN

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

    /// The network for `sd`: as many classes as its head's last weight has rows when that weight fits the
    /// head's input (a fine-tuned model); otherwise 1000, so that loading reports the mismatch by name.
    public func sizedFor(_ weights: [String: [Int]]) -> Network {
        let probe = build(1000)
        let lastHead = probe.headNodes.last.map { probe.nodes[$0].name } ?? probe.head
        if let shape = weights[lastHead + ".weight"], shape.count == 2, shape[0] > 0,
           shape[1] == probe.headLinears.last!.inFeatures {
            return shape[0] == 1000 ? probe : build(shape[0])
        }
        return probe
    }
}
