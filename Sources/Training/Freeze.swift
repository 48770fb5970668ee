import NN

/// What a fine-tuning run freezes, by the names of the network's stages: nothing, every stage up to
/// and including one, or the whole backbone (everything but the head).
///
/// A network names its stages in order (`StageList`); ResNet's are `stem` (conv1, bn1), `layer1` …
/// `layer4`, and its head `fc`. `--freeze` takes a stage name, `backbone` or `none`; the older
/// spellings `through:STAGE` read the same. A resume checkpoint records the freeze in `spelling`.
public enum Freeze: Sendable, Equatable, Hashable {
    case none
    /// Every stage up to and including this one.
    case through(String)
    case backbone

    /// Reads `none`, `backbone`, a stage name or `through:STAGE`, checked against `stages`; the last
    /// stage is the backbone.
    public init?(parsing text: String, stages: StageList) {
        let name = text.hasPrefix("through:") ? String(text.dropFirst("through:".count)) : text
        switch name {
        case "none": self = .none
        case "backbone": self = .backbone
        case stages.names.last: self = .backbone
        default:
            if stages.names.contains(name) {
                self = .through(name)
            } else if let last = stages.names.last(where: { $0.hasPrefix(name + ".") }) {
                // A family prefix (`features`) means its last stage.
                self = last == stages.names.last ? .backbone : .through(last)
            } else {
                return nil
            }
        }
    }

    /// `none`, `backbone` or the stage's name: what `--freeze` takes and a checkpoint records.
    public var spelling: String {
        switch self {
        case .none: "none"
        case .backbone: "backbone"
        case .through(let s): s
        }
    }

    /// How many stages are frozen, in `stages`' order.
    public func frozenCount(in stages: StageList) -> Int {
        switch self {
        case .none: 0
        case .backbone: stages.names.count
        case .through(let s): (stages.names.firstIndex(of: s) ?? stages.names.count - 1) + 1
        }
    }

    /// The freeze that leaves the first `count` stages frozen.
    public init(frozenCount count: Int, in stages: StageList) {
        if count <= 0 {
            self = .none
        } else if count >= stages.names.count {
            self = .backbone
        } else {
            self = .through(stages.names[count - 1])
        }
    }
}

/// A network's stages in order, each with the state-dict prefixes it owns, and its head.
public struct StageList: Sendable, Equatable {
    public var names: [String]
    /// Per stage, the parameter-name prefixes it owns (`conv1.`, `bn1.` for ResNet's stem).
    public var prefixes: [[String]]
    /// The head's prefix (`fc.`), which no freeze covers.
    public var head: String

    public init(names: [String], prefixes: [[String]], head: String) {
        precondition(names.count == prefixes.count, "a prefix list per stage")
        self.names = names
        self.prefixes = prefixes
        self.head = head
    }

    /// A network's own stages (`Network.stages`) and head.
    public init(_ network: Network) {
        self.init(names: network.stages.map(\.name), prefixes: network.stages.map(\.prefixes), head: network.head + ".")
    }

    /// torchvision's ResNets: the stem (conv1, bn1), layer1 … layer4; the head is fc.
    public static let resnet = StageList(
        names: ["stem", "layer1", "layer2", "layer3", "layer4"],
        prefixes: [["conv1.", "bn1."], ["layer1."], ["layer2."], ["layer3."], ["layer4."]],
        head: "fc.")

    /// For `--help` and errors: "none, stem, layer1, …, backbone".
    public var choices: String { (["none"] + names.dropLast() + ["backbone"]).joined(separator: ", ") }

    /// The parameter prefixes `freeze` freezes.
    public func frozenPrefixes(_ freeze: Freeze) -> [String] {
        Array(prefixes.prefix(freeze.frozenCount(in: self)).joined())
    }
}
