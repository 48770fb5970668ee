import NN
import Testing

/// GoogLeNet's and Inception v3's `transform_input` (`ChannelAffine.imageNetToHalfRange`): torchvision's
/// constants rounded once to float32, a product then a sum per value, and dy · scale back.
@Suite struct ChannelAffineTests {
    @Test func forwardAndBackwardPerChannel() {
        let f = ChannelAffine.imageNetToHalfRange
        #expect(f.scale == [Float(0.458), Float(0.448), Float(0.45)])
        #expect(f.shift == [Float(-0.03), Float(-0.088), Float(-0.188)])
        let shape = NodeShape(channels: 3, height: 2, width: 3)
        let x = (0..<36).map { Float($0) * 0.37 - 5 }
        var y = [Float](repeating: .nan, count: 36)
        x.withUnsafeBufferPointer { f.forward([$0.baseAddress!], shapes: [shape], batch: 2, output: &y, threads: 2) }
        for i in 0..<36 {
            let product = x[i] * f.scale[i % 3]
            #expect(y[i] == product + f.shift[i % 3], "y[\(i)]")
        }
        let dy = (0..<36).map { Float($0 % 5) - 2 }
        var dx = [Float](repeating: .nan, count: 36)
        x.withUnsafeBufferPointer { xp in
            dy.withUnsafeBufferPointer { g in
                dx.withUnsafeMutableBufferPointer { d in
                    f.backward(
                        [xp.baseAddress!], shapes: [shape], output: xp.baseAddress!, outputGradient: g.baseAddress!,
                        batch: 2, inputGradients: [d.baseAddress!], threads: 1)
                }
            }
        }
        #expect(dx == (0..<36).map { dy[$0] * f.scale[$0 % 3] })
    }

    @Test func anotherChannelCountIsRefused() {
        #expect(throws: FunctionShapeError.self) {
            try ChannelAffine.imageNetToHalfRange.outputShape([NodeShape(channels: 1, height: 4, width: 4)])
        }
    }
}
