// The AVX-512 tier's micro-kernel: UK_MR (6) rows × four packed panels (64 columns) in 24 zmm
// accumulators, so each step loads four B vectors and broadcasts six A floats for 24 FMAs, and the six
// row pointers stay in general registers. Column tails are masked loads and stores, not scalar loops.
// Same contract as ukernel_v8.h; the tier file defines NAME, TARGET, UK_MR = 6 and UK_NP = 4. Each
// (rows, panels) pair has its own compiled loop.

#include <immintrin.h>

/// max(0, v) then, for act 2, min(·, 6). VMAXPS/VMINPS return their second operand when either is NaN,
/// so NaN is kept, and −0 stays −0, as relu8 does. Hardswish and SiLU (3, 4) are common.h's act16.
TARGET static inline __attribute__((always_inline)) __m512 NAME(act16)(__m512 v, int act) {
    if (act >= 3) return (__m512)PTH2SWT_WIDE16((v16)v, act);
    v = _mm512_max_ps(_mm512_setzero_ps(), v);
    if (act == 2) v = _mm512_min_ps(_mm512_set1_ps(6), v);
    return v;
}

// The accumulators are named scalars (r<row><panel>), not an array: with an array clang keeps a copy in
// memory and stores every accumulator after each FMA, which halves the kernel's speed.
#define UK512_DECLARE_ROW(t)                                                                                      \
    __m512 r##t##0 = _mm512_setzero_ps(), r##t##1 = r##t##0, r##t##2 = r##t##0, r##t##3 = r##t##0;           \
    const float *a##t = 0;
#define UK512_FMA_ROW(t)                                                                                          \
    if (MR > t) {                                                                                                \
        __m512 x = _mm512_set1_ps(a##t[p * AS]);                                                                      \
        r##t##0 = _mm512_fmadd_ps(x, b0, r##t##0);                                                               \
        if (NP > 1) r##t##1 = _mm512_fmadd_ps(x, b1, r##t##1);                                                   \
        if (NP > 2) r##t##2 = _mm512_fmadd_ps(x, b2, r##t##2);                                                   \
        if (NP > 3) r##t##3 = _mm512_fmadd_ps(x, b3, r##t##3);                                                   \
    }
#define UK512_STORE_ROW(t)                                                                                        \
    if (MR > t) {                                                                                                \
        NAME(ukernel_store)(c + t * ldc, residual ? residual + t * ldc : 0, acc, act, r##t##0, m0, bias0);        \
        if (NP > 1) NAME(ukernel_store)(c + t * ldc + NR, residual ? residual + t * ldc + NR : 0, acc, act, r##t##1, m1, bias1); \
        if (NP > 2) NAME(ukernel_store)(c + t * ldc + 2 * NR, residual ? residual + t * ldc + 2 * NR : 0, acc, act, r##t##2, m2, bias2); \
        if (NP > 3) NAME(ukernel_store)(c + t * ldc + 3 * NR, residual ? residual + t * ldc + 3 * NR : 0, acc, act, r##t##3, m3, bias3); \
    }

/// One vector of the epilogue: (+ C if acc) + bias (+ residual), the activation, a masked store. The
/// order of the additions is ukernel_v8.h's.
TARGET static inline __attribute__((always_inline)) void NAME(ukernel_store)(float *out, const float *residual, int acc,
                                                                             int act, __m512 v, __mmask16 m,
                                                                             __m512 bias) {
    if (acc) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, out));
    v = _mm512_add_ps(v, bias);
    if (residual) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, residual));
    if (act) v = NAME(act16)(v, act);
    _mm512_mask_storeu_ps(out, m, v);
}

TARGET static inline __mmask16 NAME(ukernel_mask)(int left) {
    return left >= NR ? (__mmask16)0xFFFF : left <= 0 ? (__mmask16)0 : (__mmask16)((1u << left) - 1);
}

TARGET static inline __attribute__((always_inline)) void NAME(ukernel_block)(
    const int MR, const int NP, const long AS, int nseg, long seglen, const float *const *segments, const float *b,
    long pstride, float *c, long ldc, int n, int acc, const float *bias, const float *residual, int act,
    const uk_prefetch *pf) {
    UK512_DECLARE_ROW(0) UK512_DECLARE_ROW(1) UK512_DECLARE_ROW(2)
    UK512_DECLARE_ROW(3) UK512_DECLARE_ROW(4) UK512_DECLARE_ROW(5)
    for (int s = 0; s < nseg; s++) {
        const float *const *seg = segments + s * UK_MR;
        a0 = seg[0];
        if (MR > 1) a1 = seg[1];
        if (MR > 2) a2 = seg[2];
        if (MR > 3) a3 = seg[3];
        if (MR > 4) a4 = seg[4];
        if (MR > 5) a5 = seg[5];
#define UK512_STEP                                                                                               \
    __m512 b0 = _mm512_loadu_ps(b), b1 = b0, b2 = b0, b3 = b0;                                                   \
    if (NP > 1) b1 = _mm512_loadu_ps(b + pstride);                                                               \
    if (NP > 2) b2 = _mm512_loadu_ps(b + 2 * pstride);                                                           \
    if (NP > 3) b3 = _mm512_loadu_ps(b + 3 * pstride);                                                           \
    UK512_FMA_ROW(0) UK512_FMA_ROW(1) UK512_FMA_ROW(2) UK512_FMA_ROW(3) UK512_FMA_ROW(4) UK512_FMA_ROW(5)
        UK_SEGMENT_STEPS(pf, s == 0, seglen, b, NR, UK512_STEP);
#undef UK512_STEP
    }
    const __mmask16 m0 = NAME(ukernel_mask)(n), m1 = NAME(ukernel_mask)(n - NR), m2 = NAME(ukernel_mask)(n - 2 * NR),
                    m3 = NAME(ukernel_mask)(n - 3 * NR);
    const __m512 zero = _mm512_setzero_ps();
    const __m512 bias0 = bias ? _mm512_maskz_loadu_ps(m0, bias) : zero;
    const __m512 bias1 = bias && NP > 1 ? _mm512_maskz_loadu_ps(m1, bias + NR) : zero;
    const __m512 bias2 = bias && NP > 2 ? _mm512_maskz_loadu_ps(m2, bias + 2 * NR) : zero;
    const __m512 bias3 = bias && NP > 3 ? _mm512_maskz_loadu_ps(m3, bias + 3 * NR) : zero;
    UK512_STORE_ROW(0) UK512_STORE_ROW(1) UK512_STORE_ROW(2) UK512_STORE_ROW(3) UK512_STORE_ROW(4) UK512_STORE_ROW(5)
}
#undef UK512_DECLARE_ROW
#undef UK512_FMA_ROW
#undef UK512_STORE_ROW

#define UK512_ROWS(M)                                                                                             \
    case M:                                                                                                      \
        switch ((n + NR - 1) / NR) {                                                                             \
        case 4: NAME(ukernel_block)(M, 4, AS, nseg, seglen, a, b, pstride, c, ldc, n, acc, bias, residual, act, pf); break; \
        case 3: NAME(ukernel_block)(M, 3, AS, nseg, seglen, a, b, pstride, c, ldc, n, acc, bias, residual, act, pf); break; \
        case 2: NAME(ukernel_block)(M, 2, AS, nseg, seglen, a, b, pstride, c, ldc, n, acc, bias, residual, act, pf); break; \
        default: NAME(ukernel_block)(M, 1, AS, nseg, seglen, a, b, pstride, c, ldc, n, acc, bias, residual, act, pf); break; \
        }                                                                                                        \
        break;

/// Each (rows, panels) pair's loop, for A's element stride AS (a constant 1 from `ukernel`).
TARGET static inline __attribute__((always_inline)) void NAME(ukernel_dispatch)(
    const long AS, int nseg, long seglen, const float *const *a, const float *b, long pstride, float *c, long ldc,
    int mr, int n, int acc, const float *bias, const float *residual, int act, const uk_prefetch *pf) {
    switch (mr) {
        UK512_ROWS(6) UK512_ROWS(5) UK512_ROWS(4) UK512_ROWS(3) UK512_ROWS(2)
    default:
        UK512_ROWS(1)
    }
}
#undef UK512_ROWS

TARGET static void NAME(ukernel)(int nseg, long seglen, const float *const *a, const float *b, long pstride, float *c,
                                 long ldc, int mr, int n, int acc, const float *bias, const float *residual, int act,
                                 const uk_prefetch *pf) {
    // Without a plan the loops compile with no trace of it (the convolutions' path, whose pointers fill
    // every register).
    if (pf)
        NAME(ukernel_dispatch)(1, nseg, seglen, a, b, pstride, c, ldc, mr, n, acc, bias, residual, act, pf);
    else
        NAME(ukernel_dispatch)(1, nseg, seglen, a, b, pstride, c, ldc, mr, n, acc, bias, residual, act, 0);
}

/// The contract's strided form (see ukernel_v8.h): row t of A is at + t, its element p at at + t + p·lda.
TARGET static void NAME(ukernel_strided)(long k, const float *at, long lda, const float *b, long pstride, float *c,
                                         long ldc, int mr, int n, int acc) {
    const float *a[UK_MR];
    for (int t = 0; t < UK_MR; t++) a[t] = at + t;
    NAME(ukernel_dispatch)(lda, 1, k, a, b, pstride, c, ldc, mr, n, acc, 0, 0, 0, 0);
}
