import Kernels

/// torch.cat(inputs, dim=1): the inputs' channels one after another (every input the same height and
/// width).
public struct Concatenation: LayerFunction {
    public init() {}

    public var summary: String { "concat" }

    public func outputShape(_ inputs: [NodeShape]) throws(FunctionShapeError) -> NodeShape {
        let first = inputs[0]
        guard inputs.allSatisfy({ $0.height == first.height && $0.width == first.width }) else {
            throw FunctionShapeError("concatenates \(inputs.map(\.description).joined(separator: ", ")) of other sizes")
        }
        return NodeShape(channels: inputs.reduce(0) { $0 + $1.channels }, height: first.height, width: first.width)
    }

    public func outputChannels(_ inputs: [Int?]) -> Int? {
        inputs.contains { $0 == nil } ? nil : inputs.reduce(0) { $0 + $1! }
    }

    public func forward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], batch: Int, output: UnsafeMutablePointer<Float>,
        threads: Int
    ) {
        let total = shapes.reduce(0) { $0 + $1.channels }, positions = batch * shapes[0].height * shapes[0].width
        var offset = 0
        for (x, s) in zip(inputs, shapes) {
            Channels.copy(
                from: x, stride: s.channels, to: output + offset, stride: total, channels: s.channels,
                positions: positions, threads: threads)
            offset += s.channels
        }
    }

    public func backward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], output: UnsafePointer<Float>,
        outputGradient: UnsafePointer<Float>, batch: Int, inputGradients: [UnsafeMutablePointer<Float>?],
        threads: Int
    ) {
        let total = shapes.reduce(0) { $0 + $1.channels }, positions = batch * shapes[0].height * shapes[0].width
        var offset = 0
        for (dx, s) in zip(inputGradients, shapes) {
            if let dx {
                Channels.copy(
                    from: outputGradient + offset, stride: total, to: dx, stride: s.channels, channels: s.channels,
                    positions: positions, threads: threads)
            }
            offset += s.channels
        }
    }
}

/// x[:, start ..< start + count] (one of `x.chunk(n, dim=1)`'s parts).
public struct ChannelSlice: LayerFunction {
    public let start: Int, count: Int
    public init(start: Int, count: Int) {
        precondition(start >= 0 && count > 0, "a slice of \(count) channels from \(start)")
        self.start = start
        self.count = count
    }

    public var summary: String { "channels \(start)..<\(start + count)" }

    public func outputShape(_ inputs: [NodeShape]) throws(FunctionShapeError) -> NodeShape {
        let x = inputs[0]
        guard start + count <= x.channels else {
            throw FunctionShapeError("takes channels \(start)..<\(start + count) of \(x.channels)")
        }
        return NodeShape(channels: count, height: x.height, width: x.width)
    }

    public func outputChannels(_ inputs: [Int?]) -> Int? { count }

    public func forward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], batch: Int, output: UnsafeMutablePointer<Float>,
        threads: Int
    ) {
        let x = shapes[0]
        Channels.copy(
            from: inputs[0] + start, stride: x.channels, to: output, stride: count, channels: count,
            positions: batch * x.height * x.width, threads: threads)
    }

    public func backward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], output: UnsafePointer<Float>,
        outputGradient: UnsafePointer<Float>, batch: Int, inputGradients: [UnsafeMutablePointer<Float>?],
        threads: Int
    ) {
        guard let dx = inputGradients[0] else { return }
        let x = shapes[0], positions = batch * x.height * x.width
        dx.update(repeating: 0, count: positions * x.channels)
        Channels.copy(
            from: outputGradient, stride: count, to: dx + start, stride: x.channels, channels: count,
            positions: positions, threads: threads)
    }
}

/// ShuffleNet's `channel_shuffle(x, groups)`: channel g·(C / groups) + i goes to i·groups + g.
public struct ChannelShuffle: LayerFunction {
    public let groups: Int
    public init(groups: Int) {
        precondition(groups > 0, "\(groups) groups")
        self.groups = groups
    }

    public var summary: String { "shuffle \(groups)" }

    public func outputShape(_ inputs: [NodeShape]) throws(FunctionShapeError) -> NodeShape {
        guard inputs[0].channels % groups == 0 else {
            throw FunctionShapeError("shuffles \(inputs[0].channels) channels in \(groups) groups")
        }
        return inputs[0]
    }

    /// For output channel o, the input channel it takes.
    func source(_ channels: Int) -> [Int] {
        let per = channels / groups
        return (0..<channels).map { o in (o % groups) * per + o / groups }
    }

    public func forward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], batch: Int, output: UnsafeMutablePointer<Float>,
        threads: Int
    ) {
        let x = shapes[0]
        Channels.permute(
            inputs[0], output, gather: source(x.channels), positions: batch * x.height * x.width, threads: threads)
    }

    public func backward(
        _ inputs: [UnsafePointer<Float>], shapes: [NodeShape], output: UnsafePointer<Float>,
        outputGradient: UnsafePointer<Float>, batch: Int, inputGradients: [UnsafeMutablePointer<Float>?],
        threads: Int
    ) {
        guard let dx = inputGradients[0] else { return }
        let x = shapes[0], from = source(x.channels)
        // The inverse permutation: input channel from[o] takes output channel o's gradient.
        var back = [Int](repeating: 0, count: x.channels)
        for (o, i) in from.enumerated() { back[i] = o }
        Channels.permute(outputGradient, dx, gather: back, positions: batch * x.height * x.width, threads: threads)
    }
}
