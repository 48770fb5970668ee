/// What a model file says about itself, so that `predict` and `eval` need no `--arch` and can name the
/// classes: the architecture, the head, the class names and the preprocessing it was trained with.
///
/// `pth2swt finetune` writes it into a `.swt` header's `__metadata__` as plain strings under
/// `pth2swt.model.` (readable with `inspect`, and by any safetensors reader):
///
/// ```
/// pth2swt.model.arch           resnet18
/// pth2swt.model.head           linear | mlp:HIDDEN:DROPOUT
/// pth2swt.model.classes        10
/// pth2swt.model.class.0 …      T-shirt/top, Trouser, …   (one key per class, in index order)
/// pth2swt.model.resize         256        (Resize's shorter side)
/// pth2swt.model.crop           224        (CenterCrop's side)
/// pth2swt.model.interpolation  bilinear
/// pth2swt.model.mean           0.485,0.456,0.406
/// pth2swt.model.std            0.229,0.224,0.225
/// ```
public struct ModelCard: Sendable, Equatable {
    public var arch: String
    /// "linear", or "mlp:HIDDEN:DROPOUT".
    public var head: String
    public var classNames: [String]
    public var resize: Int
    public var crop: Int
    public var interpolation: String
    public var mean: [Double]
    public var std: [Double]

    public static let prefix = "pth2swt.model."
    /// The most classes a card may name (a bound on what a hostile header can make the reader build).
    public static let maxClasses = 100_000

    /// A card with torchvision's ImageNet evaluation preprocessing (`ImageNetEval`).
    public init(arch: String, head: String, classNames: [String], preprocessing: ImageNetEval = ImageNetEval()) {
        self.arch = arch
        self.head = head
        self.classNames = classNames
        resize = preprocessing.resizeSize
        crop = preprocessing.cropSize
        interpolation = preprocessing.interpolation.rawValue
        mean = ImageNetEval.mean
        std = ImageNetEval.std
    }

    /// The `__metadata__` entries, in order.
    public var metadata: [(key: String, value: String)] {
        func list(_ v: [Double]) -> String { v.map { "\($0)" }.joined(separator: ",") }
        var out: [(key: String, value: String)] = [
            (Self.prefix + "arch", arch), (Self.prefix + "head", head),
            (Self.prefix + "classes", String(classNames.count)),
        ]
        out += classNames.enumerated().map { (Self.prefix + "class.\($0.offset)", $0.element) }
        out += [
            (Self.prefix + "resize", String(resize)), (Self.prefix + "crop", String(crop)),
            (Self.prefix + "interpolation", interpolation), (Self.prefix + "mean", list(mean)),
            (Self.prefix + "std", list(std)),
        ]
        return out
    }

    /// Reads a card from `metadata`: nil when it holds no `pth2swt.model.arch`. Thrown
    /// (`ModelCardError`) when the card is there but incomplete or malformed.
    public init?(metadata: [(key: String, value: String)]) throws(ModelCardError) {
        var fields: [String: String] = [:]
        for (k, v) in metadata where k.hasPrefix(Self.prefix) { fields[String(k.dropFirst(Self.prefix.count))] = v }
        guard let arch = fields["arch"] else { return nil }
        func field(_ name: String) throws(ModelCardError) -> String {
            guard let v = fields[name] else { throw ModelCardError("no \(Self.prefix)\(name)") }
            return v
        }
        func int(_ name: String, _ range: ClosedRange<Int>) throws(ModelCardError) -> Int {
            let text = try field(name)
            guard let v = Int(text), range.contains(v) else {
                throw ModelCardError(
                    "\(Self.prefix)\(name) is '\(text)', not a whole number in \(range.lowerBound)…\(range.upperBound)")
            }
            return v
        }
        func triple(_ name: String) throws(ModelCardError) -> [Double] {
            let text = try field(name)
            let v = text.split(separator: ",").compactMap { Double($0) }
            guard v.count == 3, v.allSatisfy({ $0.isFinite }) else {
                throw ModelCardError("\(Self.prefix)\(name) is '\(text)', not three finite numbers")
            }
            return v
        }
        let count = try int("classes", 1...Self.maxClasses)
        var names: [String] = []
        names.reserveCapacity(count)
        for i in 0..<count { names.append(try field("class.\(i)")) }
        self.arch = arch
        head = try field("head")
        classNames = names
        resize = try int("resize", 1...65_536)
        crop = try int("crop", 1...65_536)
        interpolation = try field("interpolation")
        mean = try triple("mean")
        std = try triple("std")
    }

    /// Whether the runtime's eval transform (`ImageNetEval` with this card's sizes) is the card's
    /// preprocessing; nil when it is, else what differs.
    public var unsupportedPreprocessing: String? {
        if Resample.Interpolation(rawValue: interpolation) == nil {
            return "interpolation '\(interpolation)' (bilinear and bicubic are implemented)"
        }
        if mean != ImageNetEval.mean || std != ImageNetEval.std {
            return "mean \(mean) and std \(std) (only ImageNet's are implemented)"
        }
        return nil
    }

    /// The eval transform the card names.
    public var preprocessing: ImageNetEval {
        ImageNetEval(
            resizeSize: resize, cropSize: crop,
            interpolation: Resample.Interpolation(rawValue: interpolation) ?? .bilinear)
    }
}

/// Why a model card in a file's metadata cannot be read.
public struct ModelCardError: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
