/// The arithmetic both banded executors share (`InvertedResidualNHWC`, `ConvPoolNHWC`): a producer writes
/// rows of a map (the expanded tensor, a convolution's output), a windowed consumer (a depthwise
/// convolution, a max pool) reads them, and bands of the consumer's output rows run one after another
/// with the producer's rows they need held at the front of a buffer.
struct Bands {
    /// The consumer's window: kernel, stride and padding along the rows.
    let kernel: Int, stride: Int, padding: Int
    /// The producer's rows and the consumer's output rows.
    let rows: Int, outRows: Int

    /// Output rows per band: the producer rows a band needs fill about `bandBytes`.
    func bandRows(rowBytes: Int, bandBytes: Int) -> Int {
        let fit = max(kernel, bandBytes / max(1, rowBytes))
        return max(1, min(outRows, (fit - kernel) / stride + 1))
    }

    /// Producer rows a band of `band` output rows reads at most.
    func bufferRows(_ band: Int) -> Int { min(rows, (band - 1) * stride + kernel) }

    /// Producer rows [lo, hi) that output rows [first, end) read.
    func needed(_ first: Int, _ end: Int) -> (lo: Int, hi: Int) {
        (max(0, first * stride - padding), min(rows, (end - 1) * stride - padding + kernel))
    }

    /// Slices per image: one, or with fewer images than threads, enough for every thread.
    func slices(batch: Int, threads: Int) -> Int { max(1, min(outRows, (threads + batch - 1) / batch)) }

    /// Producer rows [lo, hi) held at the front of a buffer of `rowFloats`-float rows.
    struct Window {
        let buffer: UnsafeMutablePointer<Float>, rowFloats: Int
        private(set) var lo = 0, hi = 0

        init(buffer: UnsafeMutablePointer<Float>, rowFloats: Int) {
            self.buffer = buffer
            self.rowFloats = rowFloats
        }

        /// Where row r sits for r in [lo, hi) is origin + r·rowFloats (kernels that address rows by
        /// their place in the whole map take this; it points before the buffer when lo > 0).
        var origin: UnsafeMutablePointer<Float> { buffer - lo * rowFloats }

        /// Makes the window hold rows [needLo, needHi): rows it already holds are moved to the front,
        /// and `produce(from, to, origin)` writes the rest, row r at `origin + r·rowFloats`. Bands move
        /// down, so needLo and needHi never decrease.
        mutating func hold(
            _ needLo: Int, _ needHi: Int,
            produce: (_ from: Int, _ to: Int, _ origin: UnsafeMutablePointer<Float>) -> Void
        ) {
            if needLo >= lo && needLo < hi {
                buffer.update(from: buffer + (needLo - lo) * rowFloats, count: (hi - needLo) * rowFloats)
                lo = needLo
            } else {
                (lo, hi) = (needLo, needLo)
            }
            if needHi > hi {
                produce(hi, needHi, origin)
                hi = needHi
            }
        }
    }
}
