import Tensors

/// How tensors that safetensors' layout cannot hold as they are go into a `.swt`.
public struct TensorKindOptions: Sendable, Equatable {
    /// Quantized tensors as float32 `dequantize()` values, instead of their integers with `NAME.scale`
    /// and `NAME.zero_point`.
    public var dequantize = false
    /// Sparse tensors as their components (`NAME.indices`, `NAME.values`, …), instead of dense values.
    public var keepSparse = false
    /// Leave out tensors saved without values (meta, wrapper subclasses), listed in the metadata,
    /// instead of refusing them.
    public var skipWithoutData = false

    public init(dequantize: Bool = false, keepSparse: Bool = false, skipWithoutData: Bool = false) {
        self.dequantize = dequantize
        self.keepSparse = keepSparse
        self.skipWithoutData = skipWithoutData
    }
}

/// Why a state dict cannot be written as asked.
public enum TensorKindError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A tensor has no values (meta, wrapper subclass) and `skipWithoutData` is off.
    case withoutData(tensor: String, what: String)
    /// Expanding a tensor gives a name the state dict already has.
    case nameTaken(String, by: String)

    public var description: String {
        switch self {
        case .withoutData(let t, let what):
            "'\(t)' is \(what), saved without values, so there are none to write; --skip-meta (Swift: skipWithoutData) leaves such tensors out"
        case .nameTaken(let n, let by):
            "writing '\(by)' needs the name '\(n)', which the state dict already uses"
        }
    }
}

/// Turns a state dict into one whose every tensor safetensors' layout holds as it is, with the
/// `__metadata__` entries that say what was done:
/// - a quantized tensor becomes its integers (packed types unpacked, one value per byte) under its
///   name, plus `NAME.scale` (float64) and `NAME.zero_point` (int64, or float for float zero points),
///   0-d per tensor and 1-D per channel; `pth2swt.quantized` records dtype, qscheme and axis. With
///   `dequantize`, it becomes float32 values equal to torch's `dequantize()`;
/// - a sparse tensor becomes its dense values, or with `keepSparse` its components under
///   `NAME.<component>`, recorded in `pth2swt.sparse` with the layout and dense shape;
/// - complex128 and complex32 become float64 and float16 with a trailing dimension of 2, recorded in
///   `pth2swt.dtypes`;
/// - a tensor without values is refused, or left out with `skipWithoutData` and listed in
///   `pth2swt.tensors_without_data`.
public enum SafetensorsPlan {
    public static func apply(_ sd: StateDict, _ options: TensorKindOptions) throws -> (
        StateDict, metadata: [(key: String, value: String)]
    ) {
        guard
            sd.tensors.contains(where: {
                !$0.tensor.hasData || $0.tensor.sparse != nil || $0.tensor.quantization != nil
                    || SWT.name(of: $0.tensor.dtype) == nil
            })
        else { return (sd, []) }
        var out = sd.withoutTensors()
        var quantized: [(String, JSON)] = []
        var sparse: [(String, JSON)] = []
        var standIns: [(String, JSON)] = []
        var skipped: [String] = []
        let taken = Set(sd.names)
        func add(_ t: Tensor, _ name: String, for owner: String) throws {
            if name != owner, taken.contains(name) { throw TensorKindError.nameTaken(name, by: owner) }
            do {
                try out.insert(t, named: name)
            } catch StateDictError.duplicateName(let n) {
                throw TensorKindError.nameTaken(n, by: owner)
            }
        }
        for (name, t) in sd.tensors {
            if !t.hasData {
                guard options.skipWithoutData else {
                    let what = (t.storage.source as? AbsentBytes)?.what ?? "a tensor without data"
                    throw TensorKindError.withoutData(tensor: name, what: what)
                }
                skipped.append(name)
                continue
            }
            if let q = t.quantization {
                if options.dequantize {
                    try add(try t.dequantized(), name, for: name)
                    continue
                }
                try add(try t.unpackedIntegers(), name, for: name)
                var info: [(String, JSON)] = [
                    ("dtype", .string(t.dtype.rawValue)), ("qscheme", .string(q.effectiveScheme.rawValue)),
                ]
                switch q.parameters {
                case .perTensor(let scale, let zeroPoint):
                    try add(try scalar(float64: scale), name + ".scale", for: name)
                    try add(try scalar(int64: zeroPoint), name + ".zero_point", for: name)
                case .perChannel(let scales, let zeros, let axis):
                    try add(scales, name + ".scale", for: name)
                    try add(zeros, name + ".zero_point", for: name)
                    info.append(("axis", .int(axis)))
                }
                quantized.append((name, .object(info)))
                continue
            }
            if let parts = t.sparse {
                guard options.keepSparse else {
                    var dense = t
                    dense.sparse = nil
                    try add(try standIn(dense, name, &standIns), name, for: name)
                    continue
                }
                for (component, c) in parts.components {
                    try add(try standIn(c, name + "." + component, &standIns), name + "." + component, for: name)
                }
                sparse.append(
                    (
                        name,
                        .object([("layout", .string(parts.layout.rawValue)), ("shape", .array(t.shape.map(JSON.int)))])
                    )
                )
                continue
            }
            try add(try standIn(t, name, &standIns), name, for: name)
        }
        var meta: [(key: String, value: String)] = []
        if !standIns.isEmpty { meta.append((SWT.MetadataKey.dtypes, JSON.object(standIns).render(indent: nil))) }
        if !quantized.isEmpty { meta.append((SWT.MetadataKey.quantized, JSON.object(quantized).render(indent: nil))) }
        if !sparse.isEmpty { meta.append((SWT.MetadataKey.sparse, JSON.object(sparse).render(indent: nil))) }
        if !skipped.isEmpty {
            meta.append((SWT.MetadataKey.withoutData, JSON.array(skipped.map(JSON.string)).render(indent: nil)))
        }
        return (out, meta)
    }

    /// `t` itself, or for complex128 / complex32 the same bytes seen as float64 / float16 pairs.
    static func standIn(_ t: Tensor, _ name: String, _ record: inout [(String, JSON)]) throws -> Tensor {
        guard let part = SWT.standIn(for: t.dtype) else { return t }
        record.append((name, .string(t.dtype.rawValue)))
        let storage = try Storage(
            key: t.storage.key, dtype: part, count: t.storage.count * 2, source: t.storage.source,
            location: t.storage.location)
        var out = try Tensor(
            storage: storage, shape: t.shape + [2], strides: t.strides.map { $0 * 2 } + [1],
            storageOffset: t.storageOffset * 2)
        out.requiresGrad = t.requiresGrad
        out.isParameter = t.isParameter
        return out
    }

    static func scalar(float64 v: Double) throws -> Tensor {
        let b = OwnedBytes(uninitializedCount: 8)
        b.pointer.storeBytes(of: v.bitPattern.littleEndian, as: UInt64.self)
        return try Tensor(
            storage: try Storage(key: "scale", dtype: .float64, count: 1, source: b), shape: [], strides: [],
            storageOffset: 0)
    }

    static func scalar(int64 v: Int64) throws -> Tensor {
        let b = OwnedBytes(uninitializedCount: 8)
        b.pointer.storeBytes(of: v.littleEndian, as: Int64.self)
        return try Tensor(
            storage: try Storage(key: "zero_point", dtype: .int64, count: 1, source: b), shape: [], strides: [],
            storageOffset: 0)
    }
}

extension StateDict {
    /// The same state dict with every quantized tensor replaced by its float32 `dequantize()` values.
    public func dequantized() throws -> StateDict {
        guard tensors.contains(where: { $0.tensor.quantization != nil }) else { return self }
        var out = withoutTensors()
        for (name, t) in tensors {
            do {
                try out.insert(t.quantization != nil ? try t.dequantized() : t, named: name)
            } catch let e as TensorError {
                throw CheckpointError(.invalidTensor(e), tensor: name)
            }
        }
        return out
    }
}
