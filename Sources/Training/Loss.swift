#if canImport(Glibc)
    import Glibc
#endif

/// torch.nn.CrossEntropyLoss() with its defaults (no weights, no label smoothing, reduction "mean"):
/// the mean over the batch of `logsumexp(x[n]) − x[n, y[n]]`, and its gradient with respect to the
/// logits, `(softmax(x[n]) − onehot(y[n])) / N`.
public enum CrossEntropy {
    /// Loss and gradient for `logits` [batch, classes] and `labels` [batch] (each in 0..<classes).
    /// Each row's log-sum-exp subtracts the row's maximum and sums in Double.
    public static func forward(_ logits: [Float], labels: [Int], classes: Int) -> (loss: Float, gradient: [Float]) {
        let batch = labels.count
        precondition(batch > 0 && logits.count == batch * classes, "logits are not [\(batch), \(classes)]")
        var gradient = [Float](repeating: 0, count: logits.count)
        var total = 0.0
        let scale = 1 / Double(batch)
        logits.withUnsafeBufferPointer { x in
            gradient.withUnsafeMutableBufferPointer { g in
                for n in 0..<batch {
                    let y = labels[n]
                    precondition(y >= 0 && y < classes, "label \(y) is not in 0..<\(classes)")
                    let row = x.baseAddress! + n * classes, out = g.baseAddress! + n * classes
                    var m = row[0]
                    for c in 1..<classes where row[c] > m { m = row[c] }
                    var sum = 0.0
                    for c in 0..<classes {
                        let e = exp(Double(row[c] - m))
                        out[c] = Float(e)
                        sum += e
                    }
                    total += Double(m) + log(sum) - Double(row[y])
                    let inverse = 1 / sum
                    for c in 0..<classes { out[c] = Float(Double(out[c]) * inverse * scale) }
                    out[y] -= Float(scale)
                }
            }
        }
        return (Float(total * scale), gradient)
    }

    /// The naive twin: every step in Double, straight from the definition.
    static func reference(_ logits: [Float], labels: [Int], classes: Int) -> (loss: Double, gradient: [Double]) {
        let batch = labels.count
        var loss = 0.0
        var gradient = [Double](repeating: 0, count: logits.count)
        for n in 0..<batch {
            let row = (0..<classes).map { Double(logits[n * classes + $0]) }
            let m = row.max()!
            let sum = row.reduce(0) { $0 + exp($1 - m) }
            loss += (m + log(sum) - row[labels[n]]) / Double(batch)
            for c in 0..<classes {
                gradient[n * classes + c] = (exp(row[c] - m) / sum - (c == labels[n] ? 1 : 0)) / Double(batch)
            }
        }
        return (loss, gradient)
    }

    /// Per row, the index of the largest logit (the first on ties, as torch.argmax).
    public static func argmax(_ logits: [Float], classes: Int) -> [Int] {
        stride(from: 0, to: logits.count, by: classes).map { start in
            var best = start
            for i in start..<(start + classes) where logits[i] > logits[best] { best = i }
            return best - start
        }
    }
}
