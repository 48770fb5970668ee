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
/// whose `IMAGENET1K_V1` file never changed (resnext101_64x4d exists from 0.13); and the `IMAGENET1K_V1`
/// file of every other family the runtime builds (regnet_y_128gf: its SWAG file). The `IMAGENET1K_V2`
/// retrains are not listed. File names are as torchvision 0.14's `models/*.py` give them, some under
/// another spelling than the builder's (`shufflenetv2_x0.5-f707e7126e.pth`).
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
    private static let v1 = "torchvision 0.14 IMAGENET1K_V1"
    private static let swag = "torchvision 0.14 IMAGENET1K_SWAG_E2E_V1 (its only weights; evaluated at 384)"

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
        WeightFile(model: "mobilenet_v3_large", fileName: "mobilenet_v3_large-8738ca79.pth", note: v1, isDefault: true),
        WeightFile(model: "mobilenet_v3_small", fileName: "mobilenet_v3_small-047dcff4.pth", note: v1, isDefault: true),
        WeightFile(
            model: "efficientnet_b0", fileName: "efficientnet_b0_rwightman-3dd342df.pth", note: v1, isDefault: true),
        WeightFile(
            model: "efficientnet_b1", fileName: "efficientnet_b1_rwightman-533bc792.pth", note: v1, isDefault: true),
        WeightFile(
            model: "efficientnet_b2", fileName: "efficientnet_b2_rwightman-bcdf34b7.pth", note: v1, isDefault: true),
        WeightFile(
            model: "efficientnet_b3", fileName: "efficientnet_b3_rwightman-cf984f9c.pth", note: v1, isDefault: true),
        WeightFile(
            model: "efficientnet_b4", fileName: "efficientnet_b4_rwightman-7eb33cd5.pth", note: v1, isDefault: true),
        WeightFile(
            model: "efficientnet_b5", fileName: "efficientnet_b5_lukemelas-b6417697.pth", note: v1, isDefault: true),
        WeightFile(
            model: "efficientnet_b6", fileName: "efficientnet_b6_lukemelas-c76e70fd.pth", note: v1, isDefault: true),
        WeightFile(
            model: "efficientnet_b7", fileName: "efficientnet_b7_lukemelas-dcc49843.pth", note: v1, isDefault: true),
        WeightFile(model: "efficientnet_v2_s", fileName: "efficientnet_v2_s-dd5fe13b.pth", note: v1, isDefault: true),
        WeightFile(model: "efficientnet_v2_m", fileName: "efficientnet_v2_m-dc08266a.pth", note: v1, isDefault: true),
        WeightFile(model: "efficientnet_v2_l", fileName: "efficientnet_v2_l-59c71312.pth", note: v1, isDefault: true),
        WeightFile(model: "mnasnet0_5", fileName: "mnasnet0.5_top1_67.823-3ffadce67e.pth", note: v1, isDefault: true),
        WeightFile(model: "mnasnet0_75", fileName: "mnasnet0_75-7090bc5f.pth", note: v1, isDefault: true),
        WeightFile(model: "mnasnet1_0", fileName: "mnasnet1.0_top1_73.512-f206786ef8.pth", note: v1, isDefault: true),
        WeightFile(model: "mnasnet1_3", fileName: "mnasnet1_3-a4c69d6f.pth", note: v1, isDefault: true),
        WeightFile(model: "regnet_y_400mf", fileName: "regnet_y_400mf-c65dace8.pth", note: v1, isDefault: true),
        WeightFile(model: "regnet_y_800mf", fileName: "regnet_y_800mf-1b27b58c.pth", note: v1, isDefault: true),
        WeightFile(model: "regnet_y_1_6gf", fileName: "regnet_y_1_6gf-b11a554e.pth", note: v1, isDefault: true),
        WeightFile(model: "regnet_y_3_2gf", fileName: "regnet_y_3_2gf-b5a9779c.pth", note: v1, isDefault: true),
        WeightFile(model: "regnet_y_8gf", fileName: "regnet_y_8gf-d0d0e4a8.pth", note: v1, isDefault: true),
        WeightFile(model: "regnet_y_16gf", fileName: "regnet_y_16gf-9e6ed7dd.pth", note: v1, isDefault: true),
        WeightFile(model: "regnet_y_32gf", fileName: "regnet_y_32gf-4dee3f7a.pth", note: v1, isDefault: true),
        WeightFile(model: "regnet_y_128gf", fileName: "regnet_y_128gf_swag-c8ce3e52.pth", note: swag, isDefault: true),
        WeightFile(model: "regnet_x_400mf", fileName: "regnet_x_400mf-adf1edd5.pth", note: v1, isDefault: true),
        WeightFile(model: "regnet_x_800mf", fileName: "regnet_x_800mf-ad17e45c.pth", note: v1, isDefault: true),
        WeightFile(model: "regnet_x_1_6gf", fileName: "regnet_x_1_6gf-e3633e7f.pth", note: v1, isDefault: true),
        WeightFile(model: "regnet_x_3_2gf", fileName: "regnet_x_3_2gf-f342aeae.pth", note: v1, isDefault: true),
        WeightFile(model: "regnet_x_8gf", fileName: "regnet_x_8gf-03ceed89.pth", note: v1, isDefault: true),
        WeightFile(model: "regnet_x_16gf", fileName: "regnet_x_16gf-2007eb11.pth", note: v1, isDefault: true),
        WeightFile(model: "regnet_x_32gf", fileName: "regnet_x_32gf-9d47f8d0.pth", note: v1, isDefault: true),
        WeightFile(
            model: "shufflenet_v2_x0_5", fileName: "shufflenetv2_x0.5-f707e7126e.pth", note: v1, isDefault: true),
        WeightFile(model: "shufflenet_v2_x1_0", fileName: "shufflenetv2_x1-5666bf0f80.pth", note: v1, isDefault: true),
        WeightFile(model: "shufflenet_v2_x1_5", fileName: "shufflenetv2_x1_5-3c479a10.pth", note: v1, isDefault: true),
        WeightFile(model: "shufflenet_v2_x2_0", fileName: "shufflenetv2_x2_0-8be3c8ee.pth", note: v1, isDefault: true),
        WeightFile(model: "densenet121", fileName: "densenet121-a639ec97.pth", note: v1, isDefault: true),
        WeightFile(model: "densenet161", fileName: "densenet161-8d451a50.pth", note: v1, isDefault: true),
        WeightFile(model: "densenet169", fileName: "densenet169-b2777c0a.pth", note: v1, isDefault: true),
        WeightFile(model: "densenet201", fileName: "densenet201-c1103571.pth", note: v1, isDefault: true),
        WeightFile(model: "squeezenet1_0", fileName: "squeezenet1_0-b66bff10.pth", note: v1, isDefault: true),
        WeightFile(model: "squeezenet1_1", fileName: "squeezenet1_1-b8a52dc0.pth", note: v1, isDefault: true),
        WeightFile(model: "googlenet", fileName: "googlenet-1378be20.pth", note: v1, isDefault: true),
        WeightFile(model: "inception_v3", fileName: "inception_v3_google-0cc3c7bd.pth", note: v1, isDefault: true),
        WeightFile(model: "convnext_tiny", fileName: "convnext_tiny-983f1562.pth", note: v1, isDefault: true),
        WeightFile(model: "convnext_small", fileName: "convnext_small-0c510722.pth", note: v1, isDefault: true),
        WeightFile(model: "convnext_base", fileName: "convnext_base-6075fbad.pth", note: v1, isDefault: true),
        WeightFile(model: "convnext_large", fileName: "convnext_large-ea097f82.pth", note: v1, isDefault: true),
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
