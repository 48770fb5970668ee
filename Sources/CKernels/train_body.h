// Training kernels, channels-last: BatchNorm's statistics, normalisation (fused with the residual and
// ReLU), its backward pass (fused with ReLU's mask), a vector add, SGD's update and filter
// rearrangements (max pooling with indices shares nhwc_body.h's max pool). Included twice by nhwc.c (AVX2+FMA and portable); NAME and TARGET name each build. Every
// function works on rows [row_begin, row_end) of a [rows, channels] matrix so callers can split rows
// across threads; sums are in double and per caller-provided accumulator, so a split changes nothing
// but the order of the partial sums' final addition, which the caller fixes.

typedef double v4d __attribute__((vector_size(32)));

#define ld4d(p) ({ v4d v_; memcpy(&v_, (p), 32); v_; })
#define st4d(p, v) do { v4d s_ = (v); memcpy((p), &s_, 32); } while (0)
/// The low and high halves of eight floats, widened to double.
#define lo4d(x) __builtin_convertvector(__builtin_shufflevector((x), (x), 0, 1, 2, 3), v4d)
#define hi4d(x) __builtin_convertvector(__builtin_shufflevector((x), (x), 4, 5, 6, 7), v4d)

/// sum[c] += Σ_rows x[r, c]; with mean: sum[c] += Σ (x[r, c] − mean[c])² (both in double).
TARGET static void NAME(bn_sums_tile)(const float *x, long row_begin, long row_end, int channels, const double *mean,
                                      double *sum) {
    int c = 0;
    for (; c + 8 <= channels; c += 8) {
        v4d a = ld4d(sum + c), b = ld4d(sum + c + 4);
        if (mean) {
            v4d ma = ld4d(mean + c), mb = ld4d(mean + c + 4);
            for (long r = row_begin; r < row_end; r++) {
                v8 v = ld8(x + r * channels + c);
                v4d da = lo4d(v) - ma, db = hi4d(v) - mb;
                a += da * da;
                b += db * db;
            }
        } else {
            for (long r = row_begin; r < row_end; r++) {
                v8 v = ld8(x + r * channels + c);
                a += lo4d(v);
                b += hi4d(v);
            }
        }
        st4d(sum + c, a);
        st4d(sum + c + 4, b);
    }
    for (; c < channels; c++) {
        double s = sum[c];
        for (long r = row_begin; r < row_end; r++) {
            double v = x[r * channels + c];
            if (mean) {
                double d = v - mean[c];
                s += d * d;
            } else {
                s += v;
            }
        }
        sum[c] = s;
    }
}

/// Rows per tile of the sums: each eight-channel block runs down a tile of rows (about 32 KB of each
/// tensor, so the tile stays in cache while every block passes over it) rather than down the whole range,
/// which read every cache line once per block that shares it and strided through memory. Each channel
/// still adds its rows in order into the same double, so the sums are the same bits.
static inline long NAME(sum_tile_rows)(int channels) {
    const long rows = 8192 / (channels > 0 ? channels : 1);
    return rows < 8 ? 8 : rows;
}

TARGET static void NAME(bn_sums)(const float *x, long row_begin, long row_end, int channels, const double *mean,
                                 double *sum) {
    const long tile = NAME(sum_tile_rows)(channels);
    for (long r0 = row_begin; r0 < row_end; r0 += tile)
        NAME(bn_sums_tile)(x, r0, row_end - r0 < tile ? row_end : r0 + tile, channels, mean, sum);
}

/// y = (x − mean) · scale + beta (+ residual) (then the activation: relu 1 ReLU, 2 ReLU6; NaN kept) in
/// torch's order of operations.
TARGET static void NAME(bn_apply)(const float *x, long row_begin, long row_end, int channels, const float *mean,
                                  const float *scale, const float *beta, const float *residual, int relu, float *y) {
    for (long r = row_begin; r < row_end; r++) {
        const float *xr = x + r * channels;
        float *yr = y + r * channels;
        const float *rr = residual ? residual + r * channels : 0;
        int c = 0;
        for (; c + 8 <= channels; c += 8) {
            v8 v = (ld8(xr + c) - ld8(mean + c)) * ld8(scale + c) + ld8(beta + c);
            if (rr) v += ld8(rr + c);
            if (relu) v = act8(v, relu);
            st8(yr + c, v);
        }
        for (; c < channels; c++) {
            float v = (xr[c] - mean[c]) * scale[c] + beta[c];
            if (rr) v += rr[c];
            if (relu) v = act1(v, relu);
            yr[c] = v;
        }
    }
}

/// The backward pass's sums, with the activation's mask first when `output` is given: dy[r, c] = 0 where
/// output[r, c] is not > 0 (act 2, ReLU6: not strictly between 0 and 6), written back into dy; then
/// db[c] += Σ dy, dg[c] += Σ dy · (x − mean) · invstd.
TARGET static void NAME(bn_backward_sums_tile)(const float *x, float *dy, const float *output, int act, long row_begin,
                                               long row_end, int channels, const float *mean, const float *invstd,
                                               double *db, double *dg) {
    int c = 0;
    for (; c + 8 <= channels; c += 8) {
        v4d ba = ld4d(db + c), bb = ld4d(db + c + 4), ga = ld4d(dg + c), gb = ld4d(dg + c + 4);
        v8 m = ld8(mean + c), s = ld8(invstd + c);
        for (long r = row_begin; r < row_end; r++) {
            v8 g = ld8(dy + r * channels + c);
            if (output) {
                v8 o = ld8(output + r * channels + c);
                v8i keep = (v8i)(o > splat8(0));
                if (act == 2) keep &= (v8i)(o < splat8(6));
                g = (v8)((v8i)g & keep);
                st8(dy + r * channels + c, g);
            }
            v8 xhat = (ld8(x + r * channels + c) - m) * s;
            ba += lo4d(g);
            bb += hi4d(g);
            ga += lo4d(g) * lo4d(xhat);
            gb += hi4d(g) * hi4d(xhat);
        }
        st4d(db + c, ba);
        st4d(db + c + 4, bb);
        st4d(dg + c, ga);
        st4d(dg + c + 4, gb);
    }
    for (; c < channels; c++) {
        double sb = db[c], sg = dg[c];
        for (long r = row_begin; r < row_end; r++) {
            float g = dy[r * channels + c];
            if (output) {
                float o = output[r * channels + c];
                if (!(o > 0) || (act == 2 && !(o < 6))) g = 0;
                dy[r * channels + c] = g;
            }
            float xhat = (x[r * channels + c] - mean[c]) * invstd[c];
            sb += g;
            sg += (double)g * (double)xhat;
        }
        db[c] = sb;
        dg[c] = sg;
    }
}

TARGET static void NAME(bn_backward_sums)(const float *x, float *dy, const float *output, int act, long row_begin, long row_end,
                                          int channels, const float *mean, const float *invstd, double *db,
                                          double *dg) {
    const long tile = NAME(sum_tile_rows)(channels);
    for (long r0 = row_begin; r0 < row_end; r0 += tile)
        NAME(bn_backward_sums_tile)(x, dy, output, act, r0, row_end - r0 < tile ? row_end : r0 + tile, channels, mean,
                                    invstd, db, dg);
}

/// dx = a · (dy − mb − x̂ · mg), x̂ = (x − mean) · invstd.
TARGET static void NAME(bn_backward_apply)(const float *x, const float *dy, long row_begin, long row_end, int channels,
                                           const float *mean, const float *invstd, const float *a, const float *mb,
                                           const float *mg, float *dx) {
    for (long r = row_begin; r < row_end; r++) {
        const float *xr = x + r * channels, *gr = dy + r * channels;
        float *out = dx + r * channels;
        int c = 0;
        for (; c + 8 <= channels; c += 8) {
            v8 xhat = (ld8(xr + c) - ld8(mean + c)) * ld8(invstd + c);
            st8(out + c, ld8(a + c) * (ld8(gr + c) - ld8(mb + c) - xhat * ld8(mg + c)));
        }
        for (; c < channels; c++) {
            float xhat = (xr[c] - mean[c]) * invstd[c];
            out[c] = a[c] * (gr[c] - mb[c] - xhat * mg[c]);
        }
    }
}

/// a[i] += b[i] for i in [begin, end).
TARGET static void NAME(add_inplace)(float *a, const float *b, long begin, long end) {
    long i = begin;
    for (; i + 8 <= end; i += 8) st8(a + i, ld8(a + i) + ld8(b + i));
    for (; i < end; i++) a[i] += b[i];
}

/// One SGD update of n elements, torch.optim.SGD's order of operations with no fused multiply-adds:
/// d = −g if maximize; d += wd·w; b = d (first step) or b·mu + keep·d; d = d + mu·b (nesterov) or b;
/// w += neg_lr·d. buffer is null without momentum.
TARGET static void NAME(sgd_update)(float *w, const float *grad, float *buffer, long n, float wd, float mu, float keep,
                                    float neg_lr, int nesterov, int first, int maximize) {
#pragma clang fp contract(off)
    for (long i = 0; i < n; i++) {
        float d = maximize ? -grad[i] : grad[i];
        if (wd != 0) d = d + wd * w[i];
        if (buffer) {
            float b = first ? d : buffer[i] * mu + keep * d;
            buffer[i] = b;
            d = nesterov ? d + mu * b : b;
        }
        w[i] = w[i] + neg_lr * d;
    }
}

/// One torch.optim.AdamW update of n elements (torch 1.13's `_single_tensor_adamw`), its order of
/// operations with no fused multiply-adds: g = −g if maximize; w *= decay (1 − lr·wd); m = m·b1 + (1 − b1)·g;
/// v = v·b2 + (1 − b2)·g·g; vmax = max(vmax, v) with amsgrad (vmax null without);
/// w += neg_step · m / (sqrt(v or vmax) / bc2_sqrt + eps).
TARGET static void NAME(adamw_update)(float *w, const float *grad, float *m, float *v, float *vmax, long n, float decay,
                                      float b1, float one_minus_b1, float b2, float one_minus_b2, float bc2_sqrt,
                                      float eps, float neg_step, int maximize) {
#pragma clang fp contract(off)
    for (long i = 0; i < n; i++) {
        float g = maximize ? -grad[i] : grad[i];
        float p = w[i] * decay;
        float mi = m[i] * b1 + one_minus_b1 * g;
        float vi = v[i] * b2 + one_minus_b2 * g * g;
        m[i] = mi;
        v[i] = vi;
        float s = vi;
        if (vmax) {
            s = vmax[i] > vi ? vmax[i] : vi;
            vmax[i] = s;
        }
        float denom = sqrtf(s) / bc2_sqrt + eps;
        w[i] = p + neg_step * mi / denom;
    }
}

/// Rearranges filters w [K, C, taps] (taps = kh·kw): layout 0 writes the depth×K matrix
/// b[(t·C + i)·K + o] (the forward GEMM's B), 1 the K×depth matrix b[o·depth + t·C + i] (the input
/// gradient's).
TARGET static void NAME(rearrange_filters)(const float *w, int k, int c, int taps, int layout, float *b) {
    long depth = (long)taps * c;
    for (int o = 0; o < k; o++)
        for (int i = 0; i < c; i++) {
            const float *f = w + ((long)o * c + i) * taps;
            for (int t = 0; t < taps; t++) {
                long at = layout == 0 ? ((long)t * c + i) * k + o : (long)o * depth + (long)t * c + i;
                b[at] = f[t];
            }
        }
}

/// y[i] = f(x[i]) for i in [begin, end), each function in the operation order of torch's CPU kernel
/// (no contraction): fn 1 Hardswish x·min(max(x + 3, 0), 6) / 6; 2 Hardsigmoid min(max(x + 3, 0), 6) / 6;
/// 3 Sigmoid 1 / (1 + e^−x); 4 SiLU x / (1 + e^−x); 5 GELU (exact) x·½·(1 + erf(x·√½)). NaN propagates.
/// Eight at a time (e^x by common.h's exp8, erf by its rational fit), the scalar forms in the tail: the
/// same bits.
TARGET static void NAME(pointwise)(int fn, const float *x, float *y, long begin, long end) {
#pragma clang fp contract(off)
    long i = begin;
    // The epilogues' Hardswish and SiLU (common.h), so a fused and a separate pass give the same bits.
    for (; i + 8 <= end; i += 8) {
        v8 v = ld8(x + i);
        switch (fn) {
        case 1: st8(y + i, hardswish8(v)); break;
        case 2: st8(y + i, clamp3_8(v) / splat8(6)); break;
        case 3: st8(y + i, splat8(1) / (splat8(1) + exp8(-v))); break;
        case 4: st8(y + i, silu8(v)); break;
        default: st8(y + i, gelu8(v)); break;
        }
    }
    for (; i < end; i++) {
        float v = x[i];
        switch (fn) {
        case 1: y[i] = act1(v, 3); break;
        case 2: y[i] = clamp3_1(v) / 6; break;
        case 3: y[i] = 1 / (1 + exp1(-v)); break;
        case 4: y[i] = act1(v, 4); break;
        default: y[i] = gelu1(v); break;
        }
    }
}

/// dx[i] = dL/dx for i in [begin, end), given the input x, the output y and dy, as torch's backward
/// kernels compute it: Hardswish 0 below −3, dy·(x / 3 + ½) up to 3, dy above; Hardsigmoid dy·⅙ strictly
/// inside (−3, 3), else 0; Sigmoid dy·(1 − y)·y; SiLU dy·σ·(1 + x·(1 − σ)); GELU dy·(Φ(x) + x·φ(x)).
TARGET static void NAME(pointwise_backward)(int fn, const float *x, const float *y, const float *dy, float *dx,
                                            long begin, long end) {
#pragma clang fp contract(off)
    long i = begin;
    if (fn == 4) {
        for (; i + 8 <= end; i += 8) {
            v8 v = ld8(x + i), s = splat8(1) / (splat8(1) + exp8(-v));
            st8(dx + i, ld8(dy + i) * s * (splat8(1) + v * (splat8(1) - s)));
        }
    } else if (fn == 5) {
        for (; i + 8 <= end; i += 8) st8(dx + i, ld8(dy + i) * gelu_derivative8(ld8(x + i)));
    }
    for (; i < end; i++) {
        float v = x[i], g = dy[i];
        switch (fn) {
        case 1: dx[i] = v < -3 ? 0 : v <= 3 ? g * (v / 3 + 0.5f) : g; break;
        case 2: dx[i] = v > -3 && v < 3 ? g * (1.0f / 6) : 0; break;
        case 3: dx[i] = g * (1 - y[i]) * y[i]; break;
        case 4: {
            float s = 1 / (1 + exp1(-v));
            dx[i] = g * s * (1 + v * (1 - s));
            break;
        }
        default: dx[i] = g * gelu_derivative1(v); break;
        }
    }
}
