import COpenBLAS
import Kernels

/// The NCHW convolution on OpenBLAS's sgemm that `pth2swt bench conv` prints beside ours as a
/// comparison column. Nothing else uses it: inference and training run on CKernels, and no library
/// product links OpenBLAS.
extension ConvKernel {
    /// The comparison convolution: im2col (skipped for 1×1, stride-1 convolutions) then OpenBLAS sgemm per
    /// image and group, then the epilogue in one pass over the output.
    ///
    /// `input` [N, C, H, W], `weight` [O, C/groups, kH, kW], `output` [N, O, oH, oW], all contiguous.
    /// `scratch` holds at least `scratchCount(g)` floats.
    public static func forward(
        _ g: Conv2dGeometry, input: UnsafePointer<Float>, weight: UnsafePointer<Float>,
        output: UnsafeMutablePointer<Float>, epilogue: Epilogue = Epilogue(), scratch: UnsafeMutablePointer<Float>?,
        threads: Int = 1
    ) {
        precondition(g.isValid, "invalid convolution: \(g)")
        let cg = g.inChannels / g.groups, og = g.outChannels / g.groups
        let oHW = g.outHeight * g.outWidth, HW = g.height * g.width
        let k = cg * g.kernelH * g.kernelW
        let pointwise = ConvKernel.isPointwise(g)
        for n in 0..<g.batch {
            for grp in 0..<g.groups {
                let x = input + (n * g.inChannels + grp * cg) * HW
                let b: UnsafePointer<Float>
                if pointwise {
                    b = x
                } else {
                    im2col(g, x, scratch!, threads: threads)
                    b = UnsafePointer(scratch!)
                }
                let w = weight + grp * og * k
                let y = output + (n * g.outChannels + grp * og) * oHW
                // y[og, oHW] = w[og, k] · b[k, oHW], output channels split across threads.
                let parts = min(threads, og)
                Parallel.run(parts, parts) { part in
                    let lo = og * part / parts, hi = og * (part + 1) / parts
                    guard hi > lo else { return }
                    cblas_sgemm(
                        CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(hi - lo), Int32(oHW), Int32(k),
                        1, w + lo * k, Int32(k), b, Int32(oHW), 0, y + lo * oHW, Int32(oHW))
                    apply(epilogue, y + lo * oHW, channels: hi - lo, firstChannel: grp * og + lo, plane: oHW)
                }
            }
        }
    }

    /// Rows (c, ky, kx), columns (oy, ox); zero where the window falls in the padding.
    static func im2col(
        _ g: Conv2dGeometry, _ x: UnsafePointer<Float>, _ col: UnsafeMutablePointer<Float>, threads: Int = 1
    ) {
        let cg = g.inChannels / g.groups
        let oH = g.outHeight, oW = g.outWidth
        Parallel.run(cg, threads) { c in
            var row = c * g.kernelH * g.kernelW
            let plane = x + c * g.height * g.width
            for ky in 0..<g.kernelH {
                for kx in 0..<g.kernelW {
                    let dst = col + row * oH * oW
                    let dy = ky * g.dilationH - g.padH, dx = kx * g.dilationW - g.padW
                    // Columns ox whose input x = ox·s + dx lies in [0, W).
                    let oxLo = max(0, (-dx + g.strideW - 1) / g.strideW)
                    let oxHi = min(oW, (g.width - dx + g.strideW - 1) / g.strideW)
                    for oy in 0..<oH {
                        let iy = oy * g.strideH + dy
                        let d = dst + oy * oW
                        if iy < 0 || iy >= g.height || oxLo >= oxHi {
                            d.update(repeating: 0, count: oW)
                            continue
                        }
                        if oxLo > 0 { d.update(repeating: 0, count: oxLo) }
                        if oxHi < oW { (d + oxHi).update(repeating: 0, count: oW - oxHi) }
                        let src = plane + iy * g.width + dx
                        if g.strideW == 1 {
                            (d + oxLo).update(from: src + oxLo, count: oxHi - oxLo)
                        } else {
                            for ox in oxLo..<oxHi { d[ox] = src[ox * g.strideW] }
                        }
                    }
                    row += 1
                }
            }
        }
    }

    @inline(__always)
    static func apply(_ e: Epilogue, _ y: UnsafeMutablePointer<Float>, channels: Int, firstChannel: Int, plane: Int) {
        guard e.bias != nil || e.relu else { return }
        typealias V8 = SIMD8<Float>
        let zero = V8()
        for c in 0..<channels {
            let bias = e.bias.map { $0[firstChannel + c] } ?? 0
            let vb = V8(repeating: bias)
            let p = y + c * plane
            let raw = UnsafeMutableRawPointer(p)
            var i = 0
            while i + 8 <= plane {
                var v = raw.loadUnaligned(fromByteOffset: i * 4, as: V8.self) + vb
                if e.relu { v.replace(with: zero, where: v .< zero) }
                raw.storeBytes(of: v, toByteOffset: i * 4, as: V8.self)
                i += 8
            }
            while i < plane {
                let v = p[i] + bias
                p[i] = e.relu && v < 0 ? 0 : v
                i += 1
            }
        }
    }

}

/// OpenBLAS's own thread pool, kept at one thread: the comparison splits output channels across
/// threads itself, as our kernels do.
public enum KernelThreads {
    /// Keeps OpenBLAS's own pool at one thread. Call once before running the comparison.
    public static func singleThreadedBLAS() { openblas_set_num_threads(1) }
    /// The CPU core OpenBLAS detected and runs its kernels for ("Haswell", "SkylakeX", "Prescott" …).
    public static var coreName: String { String(cString: openblas_get_corename()) }
}
