import NN

/// L2-SP regularisation (Li, Grandvalet, Davoine 2018): the penalty
///
///     α/2 · Σ_backbone ‖w − w⁰‖²  +  β/2 · Σ_head ‖w‖²
///
/// added to the loss, where w⁰ are the backbone's pretrained values. Its gradient, α(w − w⁰) or βw, is
/// added to each trainable parameter's gradient before the optimizer step (autograd adds it to the
/// loss's gradient the same way). Unlike weight decay it pulls the backbone toward where it started,
/// not toward zero. Only parameters that have a gradient are penalised, so a frozen backbone adds
/// nothing.
public struct L2SP: Sendable {
    public var alpha: Double
    public var beta: Double
    /// Names starting with one of these are the head (β); the rest are the backbone (α).
    public var headPrefixes: [String]
    /// w⁰ by name, for the backbone parameters.
    public var start: [String: [Float]]

    /// Records w⁰ from `parameters` (those not under `headPrefixes`).
    public init(
        alpha: Double, beta: Double, parameters: [(name: String, parameter: Parameter)],
        headPrefixes: [String] = ["fc."]
    ) {
        self.alpha = alpha
        self.beta = beta
        self.headPrefixes = headPrefixes
        var start: [String: [Float]] = [:]
        if alpha != 0 {
            for (name, p) in parameters where !headPrefixes.contains(where: { name.hasPrefix($0) }) {
                start[name] = p.data
            }
        }
        self.start = start
    }

    func isHead(_ name: String) -> Bool { headPrefixes.contains { name.hasPrefix($0) } }

    /// The penalty over `parameters` that have an entry in `gradients`, in Double, and the gradients
    /// with its derivative added (in Float32: grad + coefficient·(w − w⁰)).
    public func apply(_ parameters: [(name: String, parameter: Parameter)], to gradients: inout [String: [Float]])
        -> Double
    {
        var penalty = 0.0
        for (name, p) in parameters {
            guard var g = gradients[name] else { continue }
            let head = isHead(name)
            let coefficient = head ? beta : alpha
            guard coefficient != 0 else { continue }
            let w0 = head ? nil : start[name]
            precondition(head || w0 != nil, "L2-SP has no starting value for \(name)")
            let c = Float(coefficient)
            var sum = 0.0
            g.withUnsafeMutableBufferPointer { g in
                p.data.withUnsafeBufferPointer { w in
                    if let w0 {
                        w0.withUnsafeBufferPointer { s in
                            for i in 0..<w.count {
                                let d = w[i] - s[i]
                                sum += Double(d) * Double(d)
                                g[i] += c * d
                            }
                        }
                    } else {
                        for i in 0..<w.count {
                            sum += Double(w[i]) * Double(w[i])
                            g[i] += c * w[i]
                        }
                    }
                }
            }
            gradients[name] = g
            penalty += coefficient / 2 * sum
        }
        return penalty
    }
}
