/// Why a tensor or storage description was refused. Every case carries the numbers that were wrong.
public enum TensorError: Error, Equatable, Sendable, CustomStringConvertible {
    /// Thrown when a size or count is negative.
    case negativeSize(Int)
    /// Thrown when a stride is negative (torch never writes one).
    case negativeStride([Int])
    /// Thrown when a storage offset is negative.
    case negativeOffset(Int)
    /// Thrown when shape and strides have different lengths.
    case rankMismatch(shape: [Int], strides: [Int])
    /// Thrown when the product of the given numbers overflows Int.
    case elementCountOverflow([Int])
    /// Thrown when a tensor reaches past the end of its storage.
    case viewOutOfRange(shape: [Int], strides: [Int], offset: Int, storageCount: Int)
    /// Thrown when a storage window reaches past its root storage.
    case storageViewOutOfRange(key: String, rootKey: String, offset: Int, count: Int, rootCount: Int)
    /// Thrown when the bytes behind a storage are not `count × itemSize`.
    case storageSizeMismatch(key: String, expectedBytes: Int, actualBytes: Int)

    public var description: String {
        switch self {
        case .negativeSize(let n): "negative size \(n)"
        case .negativeStride(let s): "negative stride in \(s)"
        case .negativeOffset(let o): "negative storage offset \(o)"
        case .rankMismatch(let shape, let strides): "shape \(shape) and strides \(strides) differ in rank"
        case .elementCountOverflow(let dims): "element count of \(dims) overflows a 64-bit integer"
        case .viewOutOfRange(let shape, let strides, let offset, let count):
            "a tensor of shape \(shape), strides \(strides) and offset \(offset) reaches past its storage of \(count) elements"
        case .storageViewOutOfRange(let key, let rootKey, let offset, let count, let rootCount):
            "storage view \(key) [\(offset), +\(count)) reaches past root storage \(rootKey) of \(rootCount) elements"
        case .storageSizeMismatch(let key, let expected, let actual):
            "storage \(key) should hold \(expected) bytes but has \(actual)"
        }
    }
}
