// The portable and AVX2+FMA tiers' micro-kernel: UK_MR (6) rows × one packed panel of 16 columns, in
// twelve eight-float accumulators. The tier file defines NAME, TARGET, UK_MR = 6 and UK_NP = 1 and
// includes this before nhwc_body.h.
//
// The micro-kernel contract (every tier's ukernel keeps it): an mr×n block (mr ≤ UK_MR, n ≤ 16·UK_NP)
// of C = A · B, where row t of A is nseg segments of seglen floats, segment s at segments[s·UK_MR + t]
// (any pointers: rows of an im2col copy, or runs of the input itself), and B is packed panels (nseg·seglen
// rows of 16 each), panel q at b + q·pstride. acc: add the block to what C holds. Then + bias[0..<n] if
// given, + residual (C's layout) if given, then the activation act (0 none, 1 ReLU, 2 ReLU6; NaN kept).
// Each mr has its own compiled loop, so a ragged last block does only its own rows' work. pf (or null):
// lines of the next product's B to prefetch while the call runs (uk_prefetch, common.h); the
// arithmetic does not depend on it.
// The strided form (ukernel_strided, one segment): row t of A is at + t and its element p is at
// at + t + p·lda, so a k×m matrix stored row by row is read as its transpose without being copied
// (gemm_tn, whose reduction runs down the rows of both operands). Same sums in the same order.

TARGET static inline __attribute__((always_inline)) void NAME(ukernel_rows)(
    const int MR, const long AS, int nseg, long seglen, const float *const *segments, const float *b, float *c,
    long ldc, int nr, int acc, const float *bias, const float *residual, int relu, const uk_prefetch *pf) {
    // MR is a constant at each call site below, so the row loops unroll and acc stays in registers.
    v8 acc0[6], acc1[6];
    for (int t = 0; t < MR; t++) acc0[t] = acc1[t] = splat8(0);
    for (int s = 0; s < nseg; s++) {
        const float *a[UK_MR];
        for (int t = 0; t < MR; t++) a[t] = segments[s * UK_MR + t];
#define UKV8_STEP                                                                                                \
    v8 b0 = ld8(b), b1 = ld8(b + 8);                                                                             \
    for (int t = 0; t < MR; t++) {                                                                               \
        v8 x = splat8(a[t][p * AS]);                                                                             \
        acc0[t] += x * b0;                                                                                       \
        acc1[t] += x * b1;                                                                                       \
    }
        UK_SEGMENT_STEPS(pf, s == 0, seglen, b, 16, UKV8_STEP);
#undef UKV8_STEP
    }
    if (nr == 16) {
        v8 bias0 = bias ? ld8(bias) : splat8(0), bias1 = bias ? ld8(bias + 8) : splat8(0);
        for (int t = 0; t < MR; t++) {
            float *row = c + t * ldc;
            v8 r0 = acc0[t], r1 = acc1[t];
            if (acc) { r0 += ld8(row); r1 += ld8(row + 8); }
            r0 += bias0; r1 += bias1;
            if (residual) { r0 += ld8(residual + t * ldc); r1 += ld8(residual + t * ldc + 8); }
            if (relu) {
                r0 = act8(r0, relu);
                r1 = act8(r1, relu);
            }
            st8(row, r0);
            st8(row + 8, r1);
        }
        return;
    }
    float block[96];
    for (int t = 0; t < MR; t++) {
        st8(block + 16 * t, acc0[t]);
        st8(block + 16 * t + 8, acc1[t]);
    }
    for (int i = 0; i < MR; i++)
        for (int j = 0; j < nr; j++) {
            float v = block[i * 16 + j];
            if (acc) v += c[i * ldc + j];
            if (bias) v += bias[j];
            if (residual) v += residual[i * ldc + j];
            if (relu) v = act1(v, relu);
            c[i * ldc + j] = v;
        }
}

/// Each row count's loop, for A's element stride AS (a constant 1 from `ukernel`).
TARGET static inline __attribute__((always_inline)) void NAME(ukernel_dispatch)(
    const long AS, int nseg, long seglen, const float *const *a, const float *b, float *c, long ldc, int mr, int n,
    int acc, const float *bias, const float *residual, int relu, const uk_prefetch *pf) {
    switch (mr) {
    case 6: NAME(ukernel_rows)(6, AS, nseg, seglen, a, b, c, ldc, n, acc, bias, residual, relu, pf); break;
    case 5: NAME(ukernel_rows)(5, AS, nseg, seglen, a, b, c, ldc, n, acc, bias, residual, relu, pf); break;
    case 4: NAME(ukernel_rows)(4, AS, nseg, seglen, a, b, c, ldc, n, acc, bias, residual, relu, pf); break;
    case 3: NAME(ukernel_rows)(3, AS, nseg, seglen, a, b, c, ldc, n, acc, bias, residual, relu, pf); break;
    case 2: NAME(ukernel_rows)(2, AS, nseg, seglen, a, b, c, ldc, n, acc, bias, residual, relu, pf); break;
    default: NAME(ukernel_rows)(1, AS, nseg, seglen, a, b, c, ldc, n, acc, bias, residual, relu, pf); break;
    }
}

TARGET static void NAME(ukernel)(int nseg, long seglen, const float *const *a, const float *b, long pstride, float *c,
                                 long ldc, int mr, int n, int acc, const float *bias, const float *residual, int relu,
                                 const uk_prefetch *pf) {
    (void)pstride;  // one panel per call
    if (pf)  // without a plan the loops compile with no trace of it
        NAME(ukernel_dispatch)(1, nseg, seglen, a, b, c, ldc, mr, n, acc, bias, residual, relu, pf);
    else
        NAME(ukernel_dispatch)(1, nseg, seglen, a, b, c, ldc, mr, n, acc, bias, residual, relu, 0);
}

TARGET static void NAME(ukernel_strided)(long k, const float *at, long lda, const float *b, long pstride, float *c,
                                         long ldc, int mr, int n, int acc) {
    (void)pstride;
    const float *a[UK_MR];
    for (int t = 0; t < UK_MR; t++) a[t] = at + t;
    NAME(ukernel_dispatch)(lda, 1, k, a, b, c, ldc, mr, n, acc, 0, 0, 0, 0);
}
