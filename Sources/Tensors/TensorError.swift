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
    /// Thrown when a packed quantized tensor (quint4x2, quint2x4) is not a contiguous view that starts on a
    /// byte and fits its storage (`storageBytes` bytes).
    case packedView(dtype: DType, shape: [Int], strides: [Int], offset: Int, storageBytes: Int)
    /// Thrown when float values are asked of a complex or quantized tensor.
    case notReal(DType)
    /// Thrown when the elements of a tensor saved without data (meta, wrapper subclass) are read.
    case noData(String)
    /// Thrown when a quantized tensor's parameters do not fit it (scale count against the axis length, …).
    case quantization(String)
    /// Thrown when a sparse tensor's components do not describe a valid tensor (indices out of bounds, …).
    case sparse(String)

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
        case .packedView(let dtype, let shape, let strides, let offset, let bytes):
            "a \(dtype) tensor of shape \(shape), strides \(strides) and offset \(offset) is not a contiguous run of whole bytes inside its storage of \(bytes) bytes"
        case .notReal(let dtype):
            dtype.isQuantized
                ? "a \(dtype) tensor holds quantized integers; read them as they are, or dequantize them"
                : "a \(dtype) tensor has no single real value per element"
        case .noData(let what): "\(what) has no values to read"
        case .quantization(let why): "invalid quantized tensor: \(why)"
        case .sparse(let why): "invalid sparse tensor: \(why)"
        }
    }
}
