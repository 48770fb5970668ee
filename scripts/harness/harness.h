// What the harnesses of scripts/harness/ share: a monotonic clock, a comparison for qsort over times,
// fp32 → bf16 rounding, and the 6 × 64 accumulator block (six rows of four zmm) of the plain AVX-512
// kernels. FMA(i) expects `mr` (rows in use), `a` (rows of D floats), the step `p` and the four B
// vectors `b0`…`b3` in scope; STORE(i) expects `mr`, `acc` (add to what c holds), `c` and `K` (its row
// stride).
#ifndef PTH2SWT_HARNESS_H
#define PTH2SWT_HARNESS_H

#include <stdint.h>
#include <string.h>
#include <time.h>

static inline double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static inline int by_value(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/// Round to nearest even, as vcvtneps2bf16 does for finite values.
static inline uint16_t to_bf16(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

#define ROW(i) __m512 r##i##0 = _mm512_setzero_ps(), r##i##1 = r##i##0, r##i##2 = r##i##0, r##i##3 = r##i##0;
#define FMA(i)                                                                                                  \
    if (mr > i) {                                                                                               \
        __m512 x = _mm512_set1_ps(a[i * D + p]);                                                                \
        r##i##0 = _mm512_fmadd_ps(x, b0, r##i##0);                                                              \
        r##i##1 = _mm512_fmadd_ps(x, b1, r##i##1);                                                              \
        r##i##2 = _mm512_fmadd_ps(x, b2, r##i##2);                                                              \
        r##i##3 = _mm512_fmadd_ps(x, b3, r##i##3);                                                              \
    }
#define STORE(i)                                                                                                \
    if (mr > i) {                                                                                               \
        __m512 v[4] = {r##i##0, r##i##1, r##i##2, r##i##3};                                                     \
        for (int j = 0; j < 4; j++) {                                                                           \
            __m512 o = acc ? _mm512_add_ps(v[j], _mm512_loadu_ps(c + i * K + j * 16)) : v[j];                   \
            _mm512_storeu_ps(c + i * K + j * 16, o);                                                            \
        }                                                                                                       \
    }

#endif
