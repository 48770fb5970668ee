/// Two state dicts compared tensor by tensor, as `pth2swt verify` reports it.
///
/// With `rtol` and `atol` both 0 the comparison is bit for bit (dtypes must then be equal); otherwise
/// every element must satisfy `|a − b| ≤ atol + rtol·|b|`, torch.allclose's rule with `b` the
/// reference, in Double: NaN matches NaN, an infinity only itself.
public struct StateDictComparison: Sendable {
    public var rtol: Double
    public var atol: Double

    public init(rtol: Double = 0, atol: Double = 0) {
        self.rtol = rtol
        self.atol = atol
    }

    public var isExact: Bool { rtol == 0 && atol == 0 }

    /// One way the two differ.
    public struct Difference: Sendable, Equatable {
        /// The tensor, when the difference is about one.
        public var tensor: String?
        public var message: String
    }

    public struct Result: Sendable {
        public var differences: [Difference] = []
        /// Tensors present in both.
        public var tensorsCompared = 0
        /// Elements of the tensors whose shapes (and, bit for bit, dtypes) agreed.
        public var elements = 0
        /// The largest finite |a − b| over the elements compared with a tolerance (0 bit for bit).
        public var maxAbsDifference = 0.0
        public var match: Bool { differences.isEmpty }
    }

    /// Names only in `a`, then only in `b`, then each common tensor in `a`'s order.
    public func compare(_ a: StateDict, _ b: StateDict) throws -> Result {
        var r = Result()
        for name in a.names where b[name] == nil {
            r.differences.append(Difference(tensor: name, message: "only in A"))
        }
        for name in b.names where a[name] == nil {
            r.differences.append(Difference(tensor: name, message: "only in B"))
        }
        for name in a.names {
            guard let ta = a[name], let tb = b[name] else { continue }
            r.tensorsCompared += 1
            if ta.shape != tb.shape {
                r.differences.append(Difference(tensor: name, message: "shape \(ta.shape) vs \(tb.shape)"))
                continue
            }
            if ta.dtype != tb.dtype && isExact {
                r.differences.append(
                    Difference(tensor: name, message: "dtype \(ta.dtype.rawValue) vs \(tb.dtype.rawValue)"))
                continue
            }
            r.elements += ta.count
            if let d = try compare(ta, tb, maxAbs: &r.maxAbsDifference) {
                r.differences.append(Difference(tensor: name, message: d))
            }
        }
        return r
    }

    /// Nil when the tensors agree; otherwise how they differ: the count and the first element.
    public func compare(_ ta: Tensor, _ tb: Tensor, maxAbs: inout Double) throws -> String? {
        if isExact {
            let ba = try ta.contiguousBytes(), bb = try tb.contiguousBytes()
            if ba == bb { return nil }
            let size = ta.dtype.itemSize
            var first = -1, count = 0
            for i in 0..<ta.count where ba[(i * size)..<((i + 1) * size)] != bb[(i * size)..<((i + 1) * size)] {
                if first < 0 { first = i }
                count += 1
            }
            let va = try Self.doubles(ta)[first], vb = try Self.doubles(tb)[first]
            return "\(count) of \(ta.count) elements differ; first at \(Self.index(first, ta.shape)): "
                + "\(Self.show(va, ta.dtype)) vs \(Self.show(vb, tb.dtype))"
        }
        let da = try Self.doubles(ta), db = try Self.doubles(tb)
        var first = -1, count = 0, worst = 0.0
        for i in 0..<da.count {
            let x = da[i], y = db[i]
            // torch.isclose: equal values (equal infinities included) and NaN against NaN are close;
            // otherwise the difference must be finite and within atol + rtol·|b|.
            if x == y || (x.isNaN && y.isNaN) { continue }
            let diff = abs(x - y)
            if !(diff.isFinite && diff <= atol + rtol * abs(y)) {
                if first < 0 { first = i }
                count += 1
            }
            if diff.isFinite { worst = max(worst, diff) }
        }
        maxAbs = max(maxAbs, worst)
        if count == 0 { return nil }
        return "\(count) of \(ta.count) elements differ beyond tolerance (max |a-b| \(worst)); first at "
            + "\(Self.index(first, ta.shape)): \(da[first]) vs \(db[first])"
    }

    /// The elements as Doubles (floating dtypes through float64, integers exactly up to 2^53).
    public static func doubles(_ t: Tensor) throws -> [Double] {
        if t.dtype.isFloatingPoint {
            let raw = try t.contiguousBytes(as: .float64)
            return raw.withUnsafeBytes { r in
                (0..<t.count).map {
                    Double(bitPattern: UInt64(littleEndian: r.loadUnaligned(fromByteOffset: $0 * 8, as: UInt64.self)))
                }
            }
        }
        let raw = try t.contiguousBytes()
        return raw.withUnsafeBytes { r in
            (0..<t.count).map { i -> Double in
                switch t.dtype {
                case .int64: Double(Int64(littleEndian: r.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)))
                case .int32: Double(Int32(littleEndian: r.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))
                case .int16: Double(Int16(littleEndian: r.loadUnaligned(fromByteOffset: i * 2, as: Int16.self)))
                case .int8: Double(r.load(fromByteOffset: i, as: Int8.self))
                default: Double(r.load(fromByteOffset: i, as: UInt8.self))
                }
            }
        }
    }

    static func show(_ d: Double, _ dtype: DType) -> String { dtype.isFloatingPoint ? "\(d)" : String(Int64(d)) }

    /// A flat index as `[i, j, …]` in `shape`.
    public static func index(_ flat: Int, _ shape: [Int]) -> String {
        var rest = flat
        var idx = [Int](repeating: 0, count: shape.count)
        for d in stride(from: shape.count - 1, through: 0, by: -1) where shape[d] > 0 {
            idx[d] = rest % shape[d]
            rest /= shape[d]
        }
        return "[" + idx.map(String.init).joined(separator: ", ") + "]"
    }
}
