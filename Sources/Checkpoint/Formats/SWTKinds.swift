import Tensors

/// Reading back what `SafetensorsPlan` wrote: complex tensors stored as float pairs, quantized tensors
/// stored as integers beside `NAME.scale` and `NAME.zero_point`, and sparse tensors stored as their
/// components become what they were, so a `.swt` from pth2swt converts back to the same `.pth`.
///
/// The header's claims are checked like any other input: each names tensors that exist with the dtypes
/// and shapes the claim needs, quantization parameters must fit the axis, sparse indices the shape. A
/// file whose claims do not hold is refused, naming the tensor.
enum SWTKinds {
    static func restore(_ entries: inout [ValueDict.Entry], metadata: [(key: String, value: String)]) throws {
        func claims(_ key: String) throws -> [(String, JSON)] {
            guard let text = metadata.first(where: { $0.key == key })?.value else { return [] }
            guard case .object(let fields)? = try? JSON.parse(text) else {
                throw CheckpointError(.swtHeader(.badMetadata("value of '\(key)' is not a JSON object")))
            }
            return fields
        }
        var index: [String: Int] = [:]
        for (i, e) in entries.enumerated() { if let k = e.key.string { index[k] = i } }
        var removed = Set<Int>()
        func tensor(_ name: String, for owner: String, _ key: String) throws -> (Int, Tensor) {
            guard let i = index[name], !removed.contains(i), let t = entries[i].value.tensor else {
                throw bad(owner, key, "names '\(name)', which the file does not hold")
            }
            return (i, t)
        }
        func bad(_ name: String, _ key: String, _ why: String) -> CheckpointError {
            CheckpointError(.swtHeader(.badMetadata("\(key) for '\(name)' \(why)")), tensor: name)
        }
        func checked<T>(_ name: String, _ body: () throws -> T) throws -> T {
            do {
                return try body()
            } catch let e as TensorError {
                throw CheckpointError(.invalidTensor(e), tensor: name)
            }
        }

        for (name, claim) in try claims(SWT.MetadataKey.dtypes) {
            let key = SWT.MetadataKey.dtypes
            guard case .string(let spelling) = claim, let dtype = DType(rawValue: spelling),
                let part = SWT.standIn(for: dtype)
            else { throw bad(name, key, "is not a complex dtype written as pairs") }
            let (i, t) = try tensor(name, for: name, key)
            guard t.dtype == part, t.shape.last == 2 else {
                throw bad(name, key, "says \(dtype), but the tensor is \(t.dtype) \(t.shape), not \(part) pairs")
            }
            entries[i].value = .tensor(
                try checked(name) {
                    let storage = try Storage(
                        key: t.storage.key, dtype: dtype, count: t.count / 2, source: t.storage.source)
                    let shape = Array(t.shape.dropLast())
                    return try Tensor(
                        storage: storage, shape: shape, strides: Tensor.contiguousStrides(shape), storageOffset: 0)
                })
        }

        for (name, claim) in try claims(SWT.MetadataKey.quantized) {
            let key = SWT.MetadataKey.quantized
            guard case .object(let f) = claim, case .string(let d)? = f.first(where: { $0.0 == "dtype" })?.1,
                let dtype = DType(rawValue: d), let intType = dtype.integerRepresentation,
                case .string(let s)? = f.first(where: { $0.0 == "qscheme" })?.1,
                var scheme = Quantization.Scheme(rawValue: s)
            else { throw bad(name, key, "is not {\"dtype\": a quantized dtype, \"qscheme\": a qscheme}") }
            let (i, ints) = try tensor(name, for: name, key)
            guard ints.dtype == intType else { throw bad(name, key, "says \(dtype), but the values are \(ints.dtype)") }
            let (si, scales) = try tensor(name + ".scale", for: name, key)
            let (zi, zeros) = try tensor(name + ".zero_point", for: name, key)
            let parameters: Quantization.Parameters
            if scheme.isPerChannel {
                guard case .int(let axis)? = f.first(where: { $0.0 == "axis" })?.1 else {
                    throw bad(name, key, "is per channel but gives no axis")
                }
                parameters = .perChannel(scales: scales, zeroPoints: zeros, axis: axis)
                // torch pickles float zero points under per_channel_affine; their dtype says the rest.
                if scheme == .perChannelAffineFloatQParams { scheme = .perChannelAffine }
            } else {
                guard scales.count == 1, scales.dtype == .float64, zeros.count == 1, zeros.dtype == .int64 else {
                    throw bad(
                        name, key, "is per tensor, but its scale and zero point are not one float64 and one int64")
                }
                parameters = .perTensor(
                    scale: try checked(name) { try scales.float64Values()[0] },
                    zeroPoint: try checked(name) { try zeros.int64Values()[0] })
            }
            let q = Quantization(scheme: scheme, parameters: parameters)
            var restored = try checked(name) { try packed(ints, as: dtype) }
            try checked(name) { try q.check(shape: restored.shape, dtype: dtype) }
            restored.quantization = q
            entries[i].value = .tensor(restored)
            removed.formUnion([si, zi])
        }

        for (name, claim) in try claims(SWT.MetadataKey.sparse) {
            let key = SWT.MetadataKey.sparse
            guard case .object(let f) = claim, case .string(let l)? = f.first(where: { $0.0 == "layout" })?.1,
                let layout = SparseParts.Layout(rawValue: l),
                case .array(let dims)? = f.first(where: { $0.0 == "shape" })?.1
            else { throw bad(name, key, "is not {\"layout\": a sparse layout, \"shape\": [sizes]}") }
            let shape = try dims.map { d -> Int in
                guard case .int(let n) = d else { throw bad(name, key, "has a shape that is not a list of integers") }
                return n
            }
            guard index[name] == nil else { throw bad(name, key, "is also the name of a dense tensor") }
            var components: [(name: String, tensor: Tensor)] = []
            var places: [Int] = []
            for c in layout.componentNames {
                let (ci, t) = try tensor("\(name).\(c)", for: name, key)
                components.append((c, t))
                places.append(ci)
            }
            let t = try checked(name) {
                try Tensor.sparse(SparseParts(layout: layout, components: components), shape: shape, key: name)
            }
            entries[places[0]] = .init(key: .string(name), value: .tensor(t))
            removed.formUnion(places.dropFirst())
        }
        for (name, claim) in try claims(SWT.MetadataKey.tuples) {
            let key = SWT.MetadataKey.tuples
            guard case .array(let items) = claim, !items.isEmpty else { throw bad(name, key, "is not a list of names") }
            var values: [Value] = []
            var places: [Int] = []
            for item in items {
                switch item {
                case .null: values.append(.none)
                case .string(let member):
                    let (i, t) = try tensor(member, for: name, key)
                    values.append(.tensor(t))
                    places.append(i)
                default: throw bad(name, key, "holds an item that is neither a name nor null")
                }
            }
            guard let first = places.min(), index[name] == nil else {
                throw bad(name, key, "names no tensor, or is also the name of a tensor")
            }
            entries[first] = .init(key: .string(name), value: .tuple(values))
            removed.formUnion(places.filter { $0 != first })
        }
        if !removed.isEmpty {
            entries = entries.enumerated().filter { !removed.contains($0.offset) }.map(\.element)
        }
    }

    /// The integers of a quantized tensor as its own dtype: as they are, or packed two or four to a byte
    /// (first value in the lowest bits) for quint4x2 and quint2x4, each checked to fit.
    static func packed(_ ints: Tensor, as dtype: DType) throws -> Tensor {
        let per = dtype.valuesPerElement
        let raw = try ints.contiguousBytes()
        let bytes: [UInt8]
        if per == 1 {
            bytes = raw
        } else {
            let bits = 8 / per
            var out = [UInt8](repeating: 0, count: (ints.count + per - 1) / per)
            for (i, v) in raw.enumerated() {
                guard v < 1 << bits else {
                    throw TensorError.quantization("the value \(v) at \(i) does not fit the \(bits) bits of \(dtype)")
                }
                out[i / per] |= v << UInt8((i % per) * bits)
            }
            bytes = out
        }
        let storage = try Storage(
            key: ints.storage.key, dtype: dtype, count: bytes.count / dtype.itemSize, source: OwnedBytes(bytes))
        return try Tensor(
            storage: storage, shape: ints.shape, strides: Tensor.contiguousStrides(ints.shape), storageOffset: 0)
    }
}
