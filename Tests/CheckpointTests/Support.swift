import Checkpoint
import Checksums
import Foundation
import Tensors
import Testing

/// Where the committed fixtures and the shared reference weights live.
enum Paths {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = root.appendingPathComponent("Tests/Fixtures")
    static let shared = root.deletingLastPathComponent().appendingPathComponent("shared/weights")

    static func fixture(_ name: String) -> String { fixtures.appendingPathComponent(name).path }
    static func sharedFile(_ name: String) -> String { shared.appendingPathComponent(name).path }

    /// True when ../shared/weights holds the reference checkpoints.
    static var sharedAvailable: Bool {
        ["resnet18-5c106cde.head.bin", "resnet18-tar.pth", "resnet18-legacy.pth", "resnet18-zip.pth"]
            .allSatisfy { FileManager.default.fileExists(atPath: sharedFile($0)) }
    }

    static let sharedSkipReason: Comment =
        "../shared/weights (resnet18-{tar,legacy,zip}.pth and the head) is absent; the full-size parity tests need it"

    /// Names of the expected-value files written by Tests/Reference/make_fixtures.py.
    static func expectedFiles(hostile: Bool) -> [String] {
        let all = (try? FileManager.default.contentsOfDirectory(atPath: fixtures.path)) ?? []
        // A fixture is a checkpoint NAME.pth with its NAME.expected.json (casts.expected.json and
        // resnet18-shared.expected.json describe other things).
        return all.filter { $0.hasSuffix(".expected.json") }
            .filter { all.contains(String($0.dropLast(".expected.json".count)) + ".pth") }
            .filter { $0.hasPrefix("hostile_") == hostile }
            .sorted()
    }

    static func json(_ name: String) throws -> [String: Any] {
        let data = try Data(contentsOf: fixtures.appendingPathComponent(name))
        return try JSONSerialization.jsonObject(with: data) as! [String: Any]
    }
}

func hex(_ bytes: [UInt8]) -> String { Checksums.hex(bytes) }

/// Encodes a `Value` exactly as Tests/Reference/refutil.py encodes what torch.load returned, so the two
/// can be compared field by field (see Tests/Fixtures/README.md for the encoding).
struct TaggedEncoder {
    private var labels: [ObjectIdentifier: String] = [:]

    mutating func encode(_ v: Value) throws -> Any {
        switch v {
        case .none: return NSNull()
        case .bool(let b): return b
        case .int(let i): return ["int": String(i)]
        case .bigInt(let s): return ["int": s]
        case .float(let d): return ["float": d]
        case .string(let s): return s
        case .bytes(let b): return ["bytes": hex(b)]
        case .list(let l): return ["list": try l.map { try encode($0) }]
        case .tuple(let t): return ["tuple": try t.map { try encode($0) }]
        case .dict(let d):
            var pairs: [Any] = []
            for e in d.entries { pairs.append([try encode(e.key), try encode(e.value)]) }
            var out: [String: Any] = ["dict": pairs]
            if let m = d.metadata { out["metadata"] = try encode(m) }
            return out
        case .tensor(let t):
            let base = t.storage.base
            let id = ObjectIdentifier(base)
            if labels[id] == nil { labels[id] = "s\(labels.count)" }
            let bytes = try t.contiguousBytes()
            var fields: [String: Any] = [
                "dtype": t.dtype.rawValue, "shape": t.shape, "stride": t.strides,
                "storage_offset": t.storage.rootOffset + t.storageOffset, "storage": labels[id]!,
                "storage_numel": base.count, "requires_grad": t.requiresGrad, "parameter": t.isParameter,
                "hex": hex(bytes), "sha256": SHA256.hex(bytes),
            ]
            if t.storage.root != nil {
                fields["storage_view"] = ["offset": t.storage.rootOffset, "numel": t.storage.count]
            }
            return ["tensor": fields]
        case .set, .complex, .dtype, .device, .object:
            throw EncodeError.unsupported(v.kindName)
        }
    }

    enum EncodeError: Error { case unsupported(String) }
}

/// The first place two JSON trees differ, as a path, or nil when they are equal.
func firstDifference(_ a: Any, _ b: Any, path: String = "$") -> String? {
    switch (a, b) {
    case (let x as [String: Any], let y as [String: Any]):
        if Set(x.keys) != Set(y.keys) { return "\(path): keys \(x.keys.sorted()) vs \(y.keys.sorted())" }
        for k in x.keys.sorted() {
            if let d = firstDifference(x[k]!, y[k]!, path: "\(path).\(k)") { return d }
        }
        return nil
    case (let x as [Any], let y as [Any]):
        if x.count != y.count { return "\(path): \(x.count) items vs \(y.count)" }
        for (i, (p, q)) in zip(x, y).enumerated() {
            if let d = firstDifference(p, q, path: "\(path)[\(i)]") { return d }
        }
        return nil
    case (is NSNull, is NSNull): return nil
    case (let x as NSNumber, let y as NSNumber):
        return x == y ? nil : "\(path): \(x) vs \(y)"
    case (let x as String, let y as String):
        return x == y ? nil : "\(path): '\(x.prefix(80))' vs '\(y.prefix(80))'"
    default:
        return "\(path): \(type(of: a)) \(a) vs \(type(of: b)) \(b)"
    }
}

/// Round-trips a tree through JSONSerialization so numbers and booleans compare as the parsed file's do.
func normalized(_ tree: Any) throws -> Any {
    let data = try JSONSerialization.data(withJSONObject: tree, options: [.fragmentsAllowed])
    return try JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])
}

/// Bit-level equality of float arrays (NaN payloads included).
func sameBits(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
}

/// This process's folder of temporary test files, removed when the process exits.
let temporaryFilesDirectory: URL = {
    atexit { try? FileManager.default.removeItem(atPath: NSTemporaryDirectory() + "pth2swt-tests-\(getpid())") }
    return URL(fileURLWithPath: NSTemporaryDirectory() + "pth2swt-tests-\(getpid())")
}()

/// Writes `bytes` to a fresh temporary file and returns its path (in `temporaryFilesDirectory`).
func temporaryFile(_ bytes: [UInt8], name: String = "case.pth") throws -> String {
    let dir = temporaryFilesDirectory
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let url = dir.appendingPathComponent(UUID().uuidString + "-" + name)
    try Data(bytes).write(to: url)
    return url.path
}

/// SHA-256 hex through CChecksum (fast even in debug builds).
enum SHA256 {
    static func hex(_ data: [UInt8]) -> String { data.withUnsafeBytes { Checksums.sha256Hex($0) } }
}

/// Reads the bytes of every tensor in `root` (iteratively), throwing the first error.
func readEveryTensor(_ root: Value) throws {
    var pending = [root]
    while let v = pending.popLast() {
        switch v {
        case .tensor(let t): _ = try t.contiguousBytes()
        case .list(let items), .tuple(let items), .set(let items): pending += items
        case .dict(let d): pending += d.entries.map(\.value)
        default: break
        }
    }
}
