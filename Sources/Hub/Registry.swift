import Foundation

/// One torchvision weight file on download.pytorch.org.
public struct WeightFile: Sendable, Hashable {
    /// The torchvision builder it belongs to, e.g. `resnet18`.
    public let model: String
    /// The file name on the server and on disk, e.g. `resnet18-5c106cde.pth`.
    public let fileName: String
    /// Which torchvision versions point at it, and its serialization format where known.
    public let note: String
    /// Whether the bare model name picks this file.
    public let isDefault: Bool

    public init(model: String, fileName: String, note: String, isDefault: Bool) {
        self.model = model
        self.fileName = fileName
        self.note = note
        self.isDefault = isDefault
    }

    /// The file name without its extension, e.g. `resnet18-5c106cde`.
    public var stem: String {
        guard let dot = fileName.lastIndex(of: ".") else { return fileName }
        return String(fileName[..<dot])
    }

    /// The SHA-256 prefix torch.hub checks, taken from the file name by ``torchHubHashPrefix(_:)``.
    public var hashPrefix: String? { torchHubHashPrefix(fileName) }

    /// `Registry.baseURL` followed by the file name.
    public var url: URL { Registry.baseURL.appendingPathComponent(fileName) }
}

/// torchvision's ImageNet weight files for every network the runtime builds: the ResNets' 2017 files of
/// `model_urls` (torchvision ≤ 0.9) and the 2021 re-saves that replaced them (torchvision 0.10–0.12
/// `model_urls`, then `IMAGENET1K_V1` from 0.13); ResNeXt, Wide ResNet, AlexNet, VGG and MobileNetV2,
/// whose `IMAGENET1K_V1` file never changed (resnext101_64x4d exists from 0.13). The `IMAGENET1K_V2`
/// retrains are not listed. File names are as torchvision 0.14's `models/*.py` give them.
///
/// A bare model name picks torchvision's current `IMAGENET1K_V1` file, except `resnet18`, which picks
/// `resnet18-5c106cde.pth`: the PyTorch 0.1 tar file this project is built around.
public enum Registry {
    /// Where torchvision publishes its weights.
    public static let baseURL = URL(string: "https://download.pytorch.org/models/")!

    private static let legacy = "torchvision ≤0.9 model_urls; legacy (pre-zip) format"
    private static let resaved =
        "torchvision 0.10–0.12 model_urls, ≥0.13 IMAGENET1K_V1; zip format (2021 re-save, same weights)"
    private static let unchanged = "torchvision model_urls (≤0.12) and ≥0.13 IMAGENET1K_V1; the same file throughout"

    /// Every known file, grouped by model, the older file first.
    public static let files: [WeightFile] = [
        WeightFile(
            model: "resnet18", fileName: "resnet18-5c106cde.pth",
            note: "torchvision ≤0.9 model_urls; tar format (PyTorch 0.1)", isDefault: true),
        WeightFile(model: "resnet18", fileName: "resnet18-f37072fd.pth", note: resaved, isDefault: false),
        WeightFile(model: "resnet34", fileName: "resnet34-333f7ec4.pth", note: legacy, isDefault: false),
        WeightFile(model: "resnet34", fileName: "resnet34-b627a593.pth", note: resaved, isDefault: true),
        WeightFile(model: "resnet50", fileName: "resnet50-19c8e357.pth", note: legacy, isDefault: false),
        WeightFile(model: "resnet50", fileName: "resnet50-0676ba61.pth", note: resaved, isDefault: true),
        WeightFile(model: "resnet101", fileName: "resnet101-5d3b4d8f.pth", note: legacy, isDefault: false),
        WeightFile(model: "resnet101", fileName: "resnet101-63fe2227.pth", note: resaved, isDefault: true),
        WeightFile(model: "resnet152", fileName: "resnet152-b121ed2d.pth", note: legacy, isDefault: false),
        WeightFile(model: "resnet152", fileName: "resnet152-394f9c45.pth", note: resaved, isDefault: true),
        WeightFile(
            model: "resnext50_32x4d", fileName: "resnext50_32x4d-7cdf4587.pth", note: unchanged, isDefault: true),
        WeightFile(
            model: "resnext101_32x8d", fileName: "resnext101_32x8d-8ba56ff5.pth", note: unchanged, isDefault: true),
        WeightFile(
            model: "wide_resnet50_2", fileName: "wide_resnet50_2-95faca4d.pth", note: unchanged, isDefault: true),
        WeightFile(
            model: "resnext101_64x4d", fileName: "resnext101_64x4d-173b62eb.pth",
            note: "torchvision ≥0.13 IMAGENET1K_V1", isDefault: true),
        WeightFile(
            model: "wide_resnet101_2", fileName: "wide_resnet101_2-32ee1156.pth", note: unchanged, isDefault: true),
        WeightFile(model: "alexnet", fileName: "alexnet-owt-7be5be79.pth", note: unchanged, isDefault: true),
        WeightFile(model: "vgg11", fileName: "vgg11-8a719046.pth", note: unchanged, isDefault: true),
        WeightFile(model: "vgg11_bn", fileName: "vgg11_bn-6002323d.pth", note: unchanged, isDefault: true),
        WeightFile(model: "vgg13", fileName: "vgg13-19584684.pth", note: unchanged, isDefault: true),
        WeightFile(model: "vgg13_bn", fileName: "vgg13_bn-abd245e5.pth", note: unchanged, isDefault: true),
        WeightFile(model: "vgg16", fileName: "vgg16-397923af.pth", note: unchanged, isDefault: true),
        WeightFile(model: "vgg16_bn", fileName: "vgg16_bn-6c64b313.pth", note: unchanged, isDefault: true),
        WeightFile(model: "vgg19", fileName: "vgg19-dcbb9e9d.pth", note: unchanged, isDefault: true),
        WeightFile(model: "vgg19_bn", fileName: "vgg19_bn-c79401a0.pth", note: unchanged, isDefault: true),
        WeightFile(model: "mobilenet_v2", fileName: "mobilenet_v2-b0353104.pth", note: unchanged, isDefault: true),
    ]

    /// The model names, in registry order.
    public static var models: [String] {
        var seen = Set<String>()
        return files.map(\.model).filter { seen.insert($0).inserted }
    }

    /// Finds the file for an exact file name (`resnet18-5c106cde.pth`), a stem (`resnet18-5c106cde`) or
    /// a model name (`resnet18`, which picks the model's default file).
    ///
    /// - Throws: ``HubError/unknownModel(name:known:)`` listing the model names and their stems.
    public static func resolve(_ name: String) throws -> WeightFile {
        if let file = files.first(where: { $0.fileName == name || $0.stem == name }) { return file }
        if let file = files.first(where: { $0.model == name && $0.isDefault }) { return file }
        let known = models.map { model in
            "\(model) (\(files.filter { $0.model == model }.map(\.stem).joined(separator: ", ")))"
        }
        throw HubError.unknownModel(name: name, known: known)
    }
}
