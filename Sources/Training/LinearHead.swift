import CKernels
import Kernels
import NN

/// The classifier head, `torch.nn.Linear(in, out)`: y = x·Wᵀ + b, and its backward pass.
public enum LinearHead {
    /// y [batch, out] for x [batch, in] (LinearKernel: OpenBLAS sgemm, then the bias).
    public static func forward(_ x: [Float], _ layer: Linear, batch: Int) -> [Float] {
        precondition(x.count == batch * layer.inFeatures, "x is not [\(batch), \(layer.inFeatures)]")
        var y = [Float](repeating: 0, count: batch * layer.outFeatures)
        x.withUnsafeBufferPointer { xp in
            layer.weight.data.withUnsafeBufferPointer { w in
                layer.bias.data.withUnsafeBufferPointer { b in
                    y.withUnsafeMutableBufferPointer { yp in
                        LinearKernel.forward(
                            xp.baseAddress!, weight: w.baseAddress!, bias: b.baseAddress!, yp.baseAddress!,
                            batch: batch, inFeatures: layer.inFeatures, outFeatures: layer.outFeatures)
                    }
                }
            }
        }
        return y
    }

    /// The gradients of a Linear layer given dL/dy `dy` [batch, out], its input `x` [batch, in] and its
    /// weight `weight` [out, in]:
    ///
    ///     dW [out, in] = dyᵀ · x      db [out] = Σₙ dy[n]      dx [batch, in] = dy · W
    ///
    /// dx only when `inputGradient` (a frozen backbone does not need it).
    public static func backward(
        dy: [Float], x: [Float], weight: [Float], batch: Int, inFeatures: Int, outFeatures: Int,
        inputGradient: Bool = false
    ) -> (weight: [Float], bias: [Float], input: [Float]?) {
        precondition(
            dy.count == batch * outFeatures && x.count == batch * inFeatures && weight.count == outFeatures * inFeatures
        )
        var dW = [Float](repeating: 0, count: outFeatures * inFeatures)
        var db = [Float](repeating: 0, count: outFeatures)
        var dx: [Float]? = inputGradient ? [Float](repeating: 0, count: batch * inFeatures) : nil
        // dW = dyᵀ · x and dx = dy · W = (dyᵀ)ᵀ · W on the micro-kernel (pth2swt_gemm_tn).
        var pack = [Float](repeating: 0, count: pth2swt_gemm_tn_scratch_count(Int32(inFeatures)))
        dy.withUnsafeBufferPointer { g in
            pth2swt_gemm_tn(
                outFeatures, Int32(inFeatures), batch, g.baseAddress!, outFeatures, x, inFeatures, &dW, inFeatures,
                0, &pack)
            db.withUnsafeMutableBufferPointer { b in
                for r in 0..<batch { for c in 0..<outFeatures { b[c] += g[r * outFeatures + c] } }
            }
            if dx != nil {
                var dyT = [Float](repeating: 0, count: outFeatures * batch)  // [out, batch]
                for r in 0..<batch { for c in 0..<outFeatures { dyT[c * batch + r] = g[r * outFeatures + c] } }
                pth2swt_gemm_tn(
                    batch, Int32(inFeatures), outFeatures, dyT, batch, weight, inFeatures, &dx!, inFeatures, 0, &pack)
            }
        }
        return (dW, db, dx)
    }

    /// The naive twin of `backward`, accumulating in Double.
    static func backwardReference(
        dy: [Float], x: [Float], weight: [Float], batch: Int, inFeatures: Int, outFeatures: Int
    ) -> (weight: [Double], bias: [Double], input: [Double]) {
        var dW = [Double](repeating: 0, count: outFeatures * inFeatures)
        var db = [Double](repeating: 0, count: outFeatures)
        var dx = [Double](repeating: 0, count: batch * inFeatures)
        for r in 0..<batch {
            for o in 0..<outFeatures {
                let g = Double(dy[r * outFeatures + o])
                db[o] += g
                for k in 0..<inFeatures {
                    dW[o * inFeatures + k] += g * Double(x[r * inFeatures + k])
                    dx[r * inFeatures + k] += g * Double(weight[o * inFeatures + k])
                }
            }
        }
        return (dW, db, dx)
    }
}
