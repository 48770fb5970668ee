import Tensors

/// What `load(_:strict:)` found, under torch's dotted names.
public struct LoadReport: Sendable, CustomStringConvertible {
    public struct Mismatch: Sendable, Equatable {
        public var name: String
        public var expected: [Int]
        public var found: [Int]
        public var dtype: DType
    }

    /// Model keys the state dict does not have.
    public var missing: [String] = []
    /// State-dict keys the model does not have.
    public var unexpected: [String] = []
    /// Keys whose shape differs (torch refuses these even when not strict).
    public var shapeMismatches: [Mismatch] = []
    /// Keys whose dtype cannot be copied into the model's (e.g. a float tensor into num_batches_tracked).
    public var dtypeMismatches: [Mismatch] = []
    /// Keys copied with a dtype conversion (float16 → float32 …), as torch's `copy_` converts.
    public var converted: [(name: String, from: DType)] = []
    /// `num_batches_tracked` buffers the file lacks, set to 0 as torch's BatchNorm does for state dicts
    /// saved before it existed (no `_metadata` version, or version < 2).
    public var filledNumBatchesTracked: [String] = []
    /// Keys left out on request (`excluding:`), from either side.
    public var excluded: [String] = []
    /// Keys under an older spelling, loaded under the current one (`Module.currentName(ofLegacy:)`).
    public var renamed: [(from: String, to: String)] = []
    /// File keys of parts the network leaves out, read and then dropped as torchvision's builder drops
    /// them (GoogLeNet's auxiliary classifiers: `Module.isDropped`).
    public var dropped: [String] = []
    /// Keys copied.
    public var loaded: [String] = []

    /// True when a strict load must refuse.
    public var isStrictFailure: Bool { !missing.isEmpty || !unexpected.isEmpty || isFailure }
    /// True when any load must refuse (as torch does for size mismatches).
    public var isFailure: Bool { !shapeMismatches.isEmpty || !dtypeMismatches.isEmpty }

    /// The most names each list of `description` shows; the rest are counted.
    public static let listedNames = 8

    public var description: String {
        var lines: [String] = []
        func listed(_ names: [String]) -> String {
            let shown = names.prefix(Self.listedNames).joined(separator: ", ")
            return names.count > Self.listedNames
                ? "\(names.count): \(shown), … and \(names.count - Self.listedNames) more" : shown
        }
        if !missing.isEmpty { lines.append("missing keys: " + listed(missing)) }
        if !unexpected.isEmpty { lines.append("unexpected keys: " + listed(unexpected)) }
        for m in shapeMismatches.prefix(Self.listedNames) {
            lines.append("size mismatch for \(m.name): the checkpoint has shape \(m.found), the model \(m.expected)")
        }
        if shapeMismatches.count > Self.listedNames {
            lines.append("… and \(shapeMismatches.count - Self.listedNames) more size mismatches")
        }
        for m in dtypeMismatches.prefix(Self.listedNames) {
            lines.append("dtype mismatch for \(m.name): cannot copy \(m.dtype.rawValue) into it")
        }
        if dtypeMismatches.count > Self.listedNames {
            lines.append("… and \(dtypeMismatches.count - Self.listedNames) more dtype mismatches")
        }
        if lines.isEmpty {
            lines.append(
                "loaded \(loaded.count) keys" + (excluded.isEmpty ? "" : ", excluded \(excluded.count)")
                    + (renamed.isEmpty
                        ? ""
                        : ", \(renamed.count) under their old names (\(renamed[0].from) as \(renamed[0].to)"
                            + (renamed.count > 1 ? ", …" : "") + ")")
                    + (filledNumBatchesTracked.isEmpty
                        ? "" : ", \(filledNumBatchesTracked.count) num_batches_tracked set to 0")
                    + (dropped.isEmpty
                        ? ""
                        : ", dropped \(dropped.count) the network leaves out (\(dropped[0])"
                            + (dropped.count > 1 ? ", …" : "") + ")"))
        }
        return lines.joined(separator: "\n")
    }
}

/// Thrown by `load` when the state dict does not fit: the report says every way it does not.
public struct LoadError: Error, CustomStringConvertible {
    public let report: LoadReport
    public var description: String { "cannot load the state dict:\n" + report.description }
}

extension Module {
    /// Copies `stateDict` into the model, following `torch.nn.Module.load_state_dict`'s rules:
    ///
    /// - Keys are matched by dotted name. With `strict`, a missing or unexpected key is an error; a
    ///   shape mismatch always is. Nothing is copied unless everything fits (torch may copy part).
    /// - Floating tensors of any dtype are converted to Float32, as `copy_` does.
    /// - A BatchNorm's `num_batches_tracked` that the file lacks is set to 0 when the file's `_metadata`
    ///   has no version ≥ 2 for that module (resnet18-5c106cde.pth predates the buffer).
    /// - Names starting with any of `excluding` (e.g. `["fc."]` to keep a replaced head) are skipped on
    ///   both sides and listed in the report as excluded, never silently.
    /// - A file key the model does not have but knows under a newer spelling
    ///   (`currentName(ofLegacy:)`) loads under that name, listed in the report as renamed.
    /// - A file key of a part the model leaves out (`isDropped`: GoogLeNet's `aux1.`) is read and
    ///   dropped, listed in the report as dropped.
    ///
    /// Throws `LoadError` with the full report; returns the report otherwise.
    @discardableResult
    public func load(_ stateDict: StateDict, strict: Bool = true, excluding: [String] = []) throws -> LoadReport {
        var report = LoadReport()
        let entries = stateEntries
        let names = Set(entries.map(\.name))
        func isExcluded(_ name: String) -> Bool { excluding.contains { name.hasPrefix($0) } }
        var plan: [(String, StateEntry, Tensor?)] = []
        // Model name → the file's older spelling of it, where the file has only that.
        var legacy: [String: String] = [:]
        for name in stateDict.names where !names.contains(name) {
            if let current = currentName(ofLegacy: name), names.contains(current), stateDict[current] == nil,
                legacy[current] == nil
            {
                legacy[current] = name
                report.renamed.append((name, current))
            }
        }
        let renamedFrom = Set(legacy.values)
        for (name, entry) in entries {
            if isExcluded(name) {
                report.excluded.append(name)
                continue
            }
            guard let t = stateDict[legacy[name] ?? name] else {
                if case .int64 = entry, name.hasSuffix("num_batches_tracked"), bnVersion(stateDict, name) < 2 {
                    report.filledNumBatchesTracked.append(name)
                    plan.append((name, entry, nil))
                } else {
                    report.missing.append(name)
                }
                continue
            }
            switch entry {
            case .parameter(let p), .buffer(let p):
                if t.shape != p.shape {
                    report.shapeMismatches.append(.init(name: name, expected: p.shape, found: t.shape, dtype: t.dtype))
                    continue
                }
                if t.dtype != .float32 { report.converted.append((name, t.dtype)) }
            case .int64:
                if t.count != 1 || t.dtype.isFloatingPoint {
                    if t.count != 1 {
                        report.shapeMismatches.append(.init(name: name, expected: [], found: t.shape, dtype: t.dtype))
                    } else {
                        report.dtypeMismatches.append(.init(name: name, expected: [], found: t.shape, dtype: t.dtype))
                    }
                    continue
                }
            }
            plan.append((name, entry, t))
        }
        for name in stateDict.names where !names.contains(name) && !renamedFrom.contains(name) {
            if isExcluded(name) {
                report.excluded.append(name)
            } else if isDropped(name) {
                report.dropped.append(name)
            } else {
                report.unexpected.append(name)
            }
        }
        if report.isFailure || (strict && report.isStrictFailure) { throw LoadError(report: report) }
        for (name, entry, tensor) in plan {
            switch entry {
            case .parameter(let p), .buffer(let p):
                p.data = try tensor!.float32()
            case .int64(let b):
                if let t = tensor {
                    let raw = try t.contiguousBytes()
                    b.value = integer(raw, t.dtype)
                } else {
                    b.value = 0
                }
            }
            report.loaded.append(name)
        }
        return report
    }
}

/// The `_metadata` version of the module that owns `name` (`layer1.0.bn1.num_batches_tracked` →
/// `layer1.0.bn1`), or 0 when the file has none.
func bnVersion(_ sd: StateDict, _ name: String) -> Int64 {
    guard let meta = sd.metadata?.dict else { return 0 }
    let module = name.split(separator: ".").dropLast().joined(separator: ".")
    guard let entry = meta[module]?.dict, let v = entry["version"]?.int else { return 0 }
    return v
}

/// A one-element integer tensor's value.
func integer(_ raw: [UInt8], _ dtype: DType) -> Int64 {
    raw.withUnsafeBytes { r in
        switch dtype {
        case .int64: Int64(littleEndian: r.loadUnaligned(as: Int64.self))
        case .int32: Int64(Int32(littleEndian: r.loadUnaligned(as: Int32.self)))
        case .int16: Int64(Int16(littleEndian: r.loadUnaligned(as: Int16.self)))
        case .int8: Int64(r.load(as: Int8.self))
        default: Int64(r.load(as: UInt8.self))
        }
    }
}
