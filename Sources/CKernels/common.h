// What every tier's build of the kernel bodies shares: eight-float vectors (GCC/Clang vector extensions,
// so each tier lowers the same arithmetic to its own instructions), the activations, and the
// convolution's blocking constants. Included by each tier_*.c before the bodies.
#ifndef PTH2SWT_CKERNELS_COMMON_H
#define PTH2SWT_CKERNELS_COMMON_H

#include <math.h>
#include <string.h>
#include "ckernels.h"

// The tiers' static helpers take and return vectors by value. None crosses a translation unit, so the
// portable build's vector ABI (no AVX) never meets another's; clang's note about it is silenced.
#pragma clang diagnostic ignored "-Wpsabi"

typedef float v8 __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

#define splat8(x) ({ float f_ = (x); (v8){f_, f_, f_, f_, f_, f_, f_, f_}; })
#define ld8(p) ({ v8 v_; memcpy(&v_, (p), 32); v_; })
#define st8(p, v) do { v8 s_ = (v); memcpy((p), &s_, 32); } while (0)
#define select8(m, a, b) ({ v8i m_ = (m); (v8)(((v8i)(a) & m_) | ((v8i)(b) & ~m_)); })
/// max(0, x) that keeps NaN, as torch's relu does.
#define relu8(x) ({ v8 x_ = (x); (v8)((v8i)x_ & ~(v8i)(x_ < splat8(0))); })
/// e^x for a vector of floats (Cephes' expf: x = n·ln 2 + r, |r| ≤ ½ ln 2, a degree-6 polynomial for
/// e^r, 2^n from the exponent bits), within 2 ulps of expf over [−87.3, 88.4]; saturating outside; NaN
/// stays NaN. V is v8 or v16, VI its integer vector; written out without contraction, so every tier, every
/// width and the scalar exp1 give the same bits.
#define PTH2SWT_EXP(V, VI, SPLAT, SELECT, xin) ({                                                          \
    _Pragma("clang fp contract(off)")                                                                     \
    V ex_ = (xin), en_ = ex_;                                                                             \
    VI enan_ = ex_ != ex_;                                                                                \
    ex_ = SELECT(ex_ > SPLAT(88.3762626647949f), SPLAT(88.3762626647949f), ex_);                          \
    ex_ = SELECT(ex_ < SPLAT(-87.3365447505531f), SPLAT(-87.3365447505531f), ex_);                        \
    V efx_ = ex_ * SPLAT(1.44269504088896341f) + SPLAT(0.5f);                                             \
    VI en2_ = __builtin_convertvector(efx_, VI);                                                          \
    en2_ = en2_ + (VI)(__builtin_convertvector(en2_, V) > efx_);                                          \
    V efn_ = __builtin_convertvector(en2_, V);                                                            \
    ex_ = ex_ - efn_ * SPLAT(0.693359375f);                                                               \
    ex_ = ex_ - efn_ * SPLAT(-2.12194440e-4f);                                                            \
    V ez_ = ex_ * ex_, ey_ = SPLAT(1.9875691500e-4f);                                                     \
    ey_ = ey_ * ex_ + SPLAT(1.3981999507e-3f);                                                            \
    ey_ = ey_ * ex_ + SPLAT(8.3334519073e-3f);                                                            \
    ey_ = ey_ * ex_ + SPLAT(4.1665795894e-2f);                                                            \
    ey_ = ey_ * ex_ + SPLAT(1.6666665459e-1f);                                                            \
    ey_ = ey_ * ex_ + SPLAT(5.0000001201e-1f);                                                            \
    ey_ = ey_ * ez_ + ex_ + SPLAT(1.0f);                                                                  \
    ey_ = ey_ * (V)((en2_ + 127) << 23);                                                                  \
    SELECT(enan_, en_, ey_); })
#define exp8(x) PTH2SWT_EXP(v8, v8i, splat8, select8, x)
/// min(max(x + 3, 0), 6), NaN kept: Hardswish's and Hardsigmoid's clamp.
#define PTH2SWT_CLAMP3(V, SPLAT, SELECT, xin) ({                                                            \
    V cm_ = (xin) + SPLAT(3);                                                                             \
    cm_ = SELECT(cm_ < SPLAT(0), SPLAT(0), cm_);                                                          \
    SELECT(cm_ > SPLAT(6), SPLAT(6), cm_); })
/// Hardswish x·min(max(x + 3, 0), 6) / 6 and SiLU x / (1 + e^−x), as torch orders them.
#define PTH2SWT_HARDSWISH(V, SPLAT, SELECT, xin) ({                                                         \
    _Pragma("clang fp contract(off)")                                                                     \
    V hx_ = (xin);                                                                                        \
    hx_ * PTH2SWT_CLAMP3(V, SPLAT, SELECT, hx_) / SPLAT(6); })
#define PTH2SWT_SILU(V, SPLAT, EXP, xin) ({ V sx_ = (xin); sx_ / (SPLAT(1) + EXP(-sx_)); })
#define clamp3_8(x) PTH2SWT_CLAMP3(v8, splat8, select8, x)
#define hardswish8(x) PTH2SWT_HARDSWISH(v8, splat8, select8, x)
#define silu8(x) PTH2SWT_SILU(v8, splat8, exp8, x)
/// The epilogue activations by code: 1 ReLU (max(0, x), NaN kept), 2 ReLU6 (then min(·, 6)), 3 Hardswish,
/// 4 SiLU, 5 GELU (exact); 0 is no activation (callers test it before calling). Unoptimised and sanitized builds run
/// Hardswish and SiLU out of line in the tier's build (act_body.h): inlined into every unrolled epilogue
/// they make stack frames too large for the worker threads at -O0 and under AddressSanitizer's redzones.
/// Optimised builds inline them.
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define PTH2SWT_SANITIZED 1
#endif
#endif
#if defined(__OPTIMIZE__) && !defined(PTH2SWT_SANITIZED)
#define PTH2SWT_WIDE8(v, act) ((act) == 3 ? hardswish8(v) : (act) == 4 ? silu8(v) : gelu8(v))
#define PTH2SWT_WIDE16(v, act) ((act) == 3 ? hardswish16(v) : (act) == 4 ? silu16(v) : gelu16(v))
#else
#define PTH2SWT_WIDE8(v, act) NAME(act8_wide)(v, act)
#define PTH2SWT_WIDE16(v, act) NAME(act16_wide)(v, act)
#endif
#define act8(x, act) ({                                                                                       \
    v8 ar_ = (x);                                                                                         \
    int ac_ = (act);                                                                                      \
    if (ac_ >= 3) ar_ = PTH2SWT_WIDE8(ar_, ac_);                                                          \
    else {                                                                                                \
        ar_ = relu8(ar_);                                                                                 \
        if (ac_ == 2) ar_ = select8(ar_ > splat8(6), splat8(6), ar_);                                     \
    }                                                                                                     \
    ar_; })
/// Sixteen floats: one zmm in the AVX-512 tier, two ymm in AVX2, four xmm in the portable build. Used by
/// bodies whose tier sets VEC_WIDE 16 (a tier's choice, so the lower tiers keep their eight-wide code).
typedef float v16 __attribute__((vector_size(64)));
typedef int v16i __attribute__((vector_size(64)));
#define splat16(x) ({ float f_ = (x); (v16){f_, f_, f_, f_, f_, f_, f_, f_, f_, f_, f_, f_, f_, f_, f_, f_}; })
#define ld16(p) ({ v16 v_; memcpy(&v_, (p), 64); v_; })
#define st16(p, v) do { v16 s_ = (v); memcpy((p), &s_, 64); } while (0)
#define select16(m, a, b) ({ v16i m16_ = (m); (v16)(((v16i)(a) & m16_) | ((v16i)(b) & ~m16_)); })
#define exp16(x) PTH2SWT_EXP(v16, v16i, splat16, select16, x)
#define hardswish16(x) PTH2SWT_HARDSWISH(v16, splat16, select16, x)
#define silu16(x) PTH2SWT_SILU(v16, splat16, exp16, x)
#define gelu16(x) PTH2SWT_GELU(v16, splat16, select16, exp16, x)
#define act16(x, act) ({                                                                                      \
    v16 r_ = (x);                                                                                             \
    int c16_ = (act);                                                                                         \
    if (c16_ >= 3) r_ = PTH2SWT_WIDE16(r_, c16_);                                                             \
    else {                                                                                                    \
        r_ = (v16)((v16i)r_ & ~(v16i)(r_ < splat16(0)));                                                      \
        if (c16_ == 2) r_ = select16(r_ > splat16(6), splat16(6), r_);                                        \
    }                                                                                                         \
    r_; })
/// e^x for one float, the same operations as PTH2SWT_EXP's lanes.
static inline float exp1(float x) {
#pragma clang fp contract(off)
    if (x != x) return x;
    x = x > 88.3762626647949f ? 88.3762626647949f : x;
    x = x < -87.3365447505531f ? -87.3365447505531f : x;
    float fx = x * 1.44269504088896341f + 0.5f;
    int n = (int)fx;
    if ((float)n > fx) n -= 1;
    float fn = (float)n;
    x = x - fn * 0.693359375f;
    x = x - fn * -2.12194440e-4f;
    float z = x * x, y = 1.9875691500e-4f;
    y = y * x + 1.3981999507e-3f;
    y = y * x + 8.3334519073e-3f;
    y = y * x + 4.1665795894e-2f;
    y = y * x + 1.6666665459e-1f;
    y = y * x + 5.0000001201e-1f;
    y = y * z + x + 1.0f;
    union { int i; float f; } p = {.i = (n + 127) << 23};
    return y * p.f;
}
/// Φ(x) = ½·erfc(−x/√2), the standard normal CDF, from erfc's Chebyshev fit with an exponential
/// (Numerical Recipes' erfcc, relative error under 1.2e-7 for every argument): with z = |x|/√2 and
/// t = 1 / (1 + z/2), ½·erfc(z) = ½·t·e^(P(t) − z²); Φ is that for x < 0 and 1 minus it otherwise, so
/// the negative tail keeps its relative accuracy where 1 + erf(x/√2) would cancel. NaN propagates.
#define PTH2SWT_PHI(V, SPLAT, SELECT, EXP, xin) ({                                                         \
    _Pragma("clang fp contract(off)")                                                                     \
    V px_ = (xin);                                                                                        \
    V pz_ = SELECT(px_ < SPLAT(0), -px_, px_) * SPLAT((float)M_SQRT1_2);                                  \
    V pt_ = SPLAT(1) / (SPLAT(1) + SPLAT(0.5f) * pz_);                                                    \
    V pp_ = pt_ * SPLAT(0.17087277f) + SPLAT(-0.82215223f);                                               \
    pp_ = pt_ * pp_ + SPLAT(1.48851587f);                                                                 \
    pp_ = pt_ * pp_ + SPLAT(-1.13520398f);                                                                \
    pp_ = pt_ * pp_ + SPLAT(0.27886807f);                                                                 \
    pp_ = pt_ * pp_ + SPLAT(-0.18628806f);                                                                \
    pp_ = pt_ * pp_ + SPLAT(0.09678418f);                                                                 \
    pp_ = pt_ * pp_ + SPLAT(0.37409196f);                                                                 \
    pp_ = pt_ * pp_ + SPLAT(1.00002368f);                                                                 \
    pp_ = pt_ * pp_ + SPLAT(-1.26551223f);                                                                \
    V ph_ = SPLAT(0.5f) * pt_ * EXP(pp_ - pz_ * pz_);                                                     \
    SELECT(px_ < SPLAT(0), ph_, SPLAT(1) - ph_); })
/// GELU (exact) x·Φ(x), and its derivative Φ(x) + x·φ(x).
#define PTH2SWT_GELU(V, SPLAT, SELECT, EXP, xin) ({                                                        \
    _Pragma("clang fp contract(off)")                                                                     \
    V gx_ = (xin);                                                                                        \
    gx_ * PTH2SWT_PHI(V, SPLAT, SELECT, EXP, gx_); })
#define PTH2SWT_GELU_DERIVATIVE(V, SPLAT, SELECT, EXP, xin) ({                                             \
    _Pragma("clang fp contract(off)")                                                                     \
    V dx_ = (xin);                                                                                        \
    V pdf_ = EXP(dx_ * dx_ * SPLAT(-0.5f)) * SPLAT((float)(M_2_SQRTPI * M_SQRT1_2 * 0.5));                 \
    PTH2SWT_PHI(V, SPLAT, SELECT, EXP, dx_) + dx_ * pdf_; })
#define PTH2SWT_SPLAT1(x) ((float)(x))
#define PTH2SWT_SELECT1(m, a, b) ((m) ? (a) : (b))
#define gelu8(x) PTH2SWT_GELU(v8, splat8, select8, exp8, x)
#define gelu_derivative8(x) PTH2SWT_GELU_DERIVATIVE(v8, splat8, select8, exp8, x)
/// GELU and its derivative for one float: the same operations as gelu8's lanes.
static inline float gelu1(float v) { return PTH2SWT_GELU(float, PTH2SWT_SPLAT1, PTH2SWT_SELECT1, exp1, v); }
static inline float gelu_derivative1(float v) {
    return PTH2SWT_GELU_DERIVATIVE(float, PTH2SWT_SPLAT1, PTH2SWT_SELECT1, exp1, v);
}
/// min(max(v + 3, 0), 6), NaN kept: clamp3_8's lanes.
static inline float clamp3_1(float v) {
    float m = v + 3;
    m = m < 0 ? 0 : m;
    return m > 6 ? 6 : m;
}
static inline float act1(float v, int act) {
#pragma clang fp contract(off)
    if (act == 3) return v * clamp3_1(v) / 6;
    if (act == 4) return v / (1 + exp1(-v));
    if (act == 5) return gelu1(v);
    if (v < 0) v = 0;
    if (act == 2 && v > 6) v = 6;
    return v;
}

/// Convolution blocking: rows (output positions) per im2col block, and the depth of a chunk when the
/// whole depth (kh·kw·C) is more than CONV_KC_WHOLE.
/// CONV_MAX_SEGMENTS: the tallest kernel whose rows the micro-kernel reads in place.
/// CONV_MC is a multiple of every tier's micro-kernel height (UK_MR).
#ifndef TIER_CONV_KC
#define TIER_CONV_KC 512
#endif
enum { CONV_MC = 96, CONV_KC = TIER_CONV_KC, CONV_KC_WHOLE = 640, CONV_MAX_SEGMENTS = 11 };
enum { NR = PTH2SWT_GEMM_NR };
/// gemm_tn's reduction chunk: rows of A and B packed at a time.
#ifndef TIER_TN_KC
#define TIER_TN_KC 256
#endif
enum { TN_KC = TIER_TN_KC };

/// Lines of packed B the micro-kernel prefetches into L2 while it runs, for the product that comes next:
/// up to four runs (a convolution's slice of a depth chunk is one run per panel; gemm_rows' next group is
/// one run), run r being lines[r] consecutive 64-byte lines from base[r]. The micro-kernel takes them in
/// order from the start of its reduction, one per step, or two per step when there are more lines than
/// steps (prefetches never fault, so an odd run's extra line is harmless). At batch 1 the weights come
/// from memory (other tenants' traffic evicts them from the shared last-level cache between two passes),
/// and a product that waits for its slice of B stalls on every slice's first row block.
typedef struct {
    const float *base[4];
    long lines[4];
    int runs;
} uk_prefetch;

/// One segment's reduction steps p = 0 ..< seglen of a micro-kernel: the variadic argument is one step's
/// arithmetic at p, and b (B's row pointer) advances BSTEP floats a step. With a plan (pf not null, first
/// segment only), its runs' lines go one per step over the first steps (two per step if the plan has more
/// lines than the segment has steps), in loops of their own, so the loop after them, which every call
/// without a plan runs alone, keeps every pointer in a register. One line a step rather than two spreads
/// the misses over twice the steps: ResNet's 7×7×512 3×3 convolution with its weights from memory went
/// from 10–25 % behind a plain C kernel of the same blocking (one line a step) to −1 to +10 % on one
/// thread, and at batch 1 on two threads every convolution of ResNet-18 gained (0.85–0.97 per layer,
/// bench_ab.py --layers).
#define UK_SEGMENT_STEPS(pf, first, seglen, b, BSTEP, ...)                                                      \
    do {                                                                                                      \
        long p = 0;                                                                                           \
        if ((pf) && (first)) {                                                                                \
            long all_ = 0;                                                                                    \
            for (int r_ = 0; r_ < (pf)->runs; r_++) all_ += (pf)->lines[r_];                                  \
            const int two_ = all_ > (seglen);                                                                 \
            for (int r_ = 0; r_ < (pf)->runs; r_++) {                                                         \
                const float *pfb_ = (pf)->base[r_];                                                           \
                long end_ = p + (two_ ? ((pf)->lines[r_] + 1) / 2 : (pf)->lines[r_]);                         \
                if (end_ > (seglen)) end_ = (seglen);                                                         \
                if (two_)                                                                                     \
                    for (; p < end_; p++, b += (BSTEP), pfb_ += 32) {                                         \
                        __VA_ARGS__                                                                           \
                        __builtin_prefetch(pfb_, 0, 2);                                                       \
                        __builtin_prefetch(pfb_ + 16, 0, 2);                                                  \
                    }                                                                                         \
                else                                                                                          \
                    for (; p < end_; p++, b += (BSTEP), pfb_ += 16) {                                         \
                        __VA_ARGS__                                                                           \
                        __builtin_prefetch(pfb_, 0, 2);                                                       \
                    }                                                                                         \
            }                                                                                                 \
        }                                                                                                     \
        for (; p < (seglen); p++, b += (BSTEP)) {                                                             \
            __VA_ARGS__                                                                                       \
        }                                                                                                     \
    } while (0)

static inline int is_pointwise(const pth2swt_conv_shape *g) {
    return g->kernel_h == 1 && g->kernel_w == 1 && g->stride_h == 1 && g->stride_w == 1 && g->pad_h == 0 &&
           g->pad_w == 0;
}

#endif
