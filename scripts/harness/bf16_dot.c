// Whether a bf16 path would pay: would AVX512_BF16's vdpbf16ps,
// which rounds both operands to bf16 and does two multiply-adds per fp32 lane, make ResNet-18's layer4
// 3×3 convolution (im2col 49·N × 4608 by 4608 × 512) faster, and by how much does it move the output?
//
//   swift build -c release && bash scripts/harness/run.sh bf16_dot [BATCH]
//
// Two plain kernels of the same blocking (6 rows × 64 columns of zmm accumulators, depth chunks, panel
// groups of four, the next group prefetched one line a step), on rows laid out beforehand, with the
// weights hot in cache (one copy) so that the arithmetic is what is timed:
//   f32   vfmadd231ps over fp32 A and B: our kernel's arithmetic;
//   bf16  vdpbf16ps over bf16 pairs: B packed [panel][depth/2][16][2], A rounded to bf16 once (the row
//         layout a bf16 path would write instead of its fp32 rows), fp32 accumulators;
// and pth2swt_conv_nhwc itself for scale. One thread; modes alternate within each round. Prints each
// mode's median and minimum and the bf16 result's largest difference from the fp32 one.
#define _GNU_SOURCE
#include "ckernels.h"
#include "harness.h"
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { D = 4608, K = 512, PANELS = 32, KC = 128, REPS = 40, ROUNDS = 4 };
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

static int N, M;         // images, rows (49 per image)
static float *A;         // im2col rows, M × D (fp32)
static uint32_t *A16;    // the same rows as bf16 pairs: M × D/2
static float *X;         // the input, N × 7 × 7 × 512 (NHWC)
static float *W32;       // packed [panel][D][16]
static uint32_t *W16;    // packed [panel][D/2][16] bf16 pairs (k even in the low half)
static float *Y32, *Y16, *YOURS, *SCRATCH;

// fp32: rows [0, mr) × 64 columns over KC depth steps.
TGT static inline __attribute__((always_inline)) void block32(const int mr, const float *a, const float *b, long ps,
                                                              float *c, int acc, const char *pf, int lines) {
    ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
    for (int p = 0; p < KC; p++) {
        if (p < lines) _mm_prefetch(pf + 64L * p, _MM_HINT_T1);
        __m512 b0 = _mm512_loadu_ps(b + p * 16), b1 = _mm512_loadu_ps(b + ps + p * 16);
        __m512 b2 = _mm512_loadu_ps(b + 2 * ps + p * 16), b3 = _mm512_loadu_ps(b + 3 * ps + p * 16);
        FMA(0) FMA(1) FMA(2) FMA(3) FMA(4) FMA(5)
    }
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5)
}

// bf16: the same over KC/2 steps of two depths each; a and b are bf16 pairs.
#define DOT(i)                                                                                                  \
    if (mr > i) {                                                                                               \
        __m512bh x = (__m512bh)_mm512_set1_epi32((int)a[i * (D / 2) + p]);                                      \
        r##i##0 = _mm512_dpbf16_ps(r##i##0, x, b0);                                                             \
        r##i##1 = _mm512_dpbf16_ps(r##i##1, x, b1);                                                             \
        r##i##2 = _mm512_dpbf16_ps(r##i##2, x, b2);                                                             \
        r##i##3 = _mm512_dpbf16_ps(r##i##3, x, b3);                                                             \
    }
TGT static inline __attribute__((always_inline)) void block16(const int mr, const uint32_t *a, const uint32_t *b,
                                                              long ps, float *c, int acc, const char *pf, int lines) {
    ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
    for (int p = 0; p < KC / 2; p++) {
        if (p < lines) _mm_prefetch(pf + 64L * p, _MM_HINT_T1);
        __m512bh b0 = (__m512bh)_mm512_loadu_si512(b + p * 16), b1 = (__m512bh)_mm512_loadu_si512(b + ps + p * 16);
        __m512bh b2 = (__m512bh)_mm512_loadu_si512(b + 2 * ps + p * 16);
        __m512bh b3 = (__m512bh)_mm512_loadu_si512(b + 3 * ps + p * 16);
        DOT(0) DOT(1) DOT(2) DOT(3) DOT(4) DOT(5)
    }
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5)
}

TGT static void kernel32(int mr, const float *a, const float *b, long ps, float *c, int acc, const char *pf, int lines) {
    if (mr == 6) block32(6, a, b, ps, c, acc, pf, lines);
    else block32(mr, a, b, ps, c, acc, pf, lines);
}
TGT static void kernel16(int mr, const uint32_t *a, const uint32_t *b, long ps, float *c, int acc, const char *pf,
                         int lines) {
    if (mr == 6) block16(6, a, b, ps, c, acc, pf, lines);
    else block16(mr, a, b, ps, c, acc, pf, lines);
}

enum { F32 = 0, BF16 = 1, OURS = 2, MODES = 3 };
static const char *names[MODES] = {"f32 (vfmadd231ps)", "bf16 (vdpbf16ps)", "pth2swt_conv_nhwc"};

TGT static void run(int mode) {
    if (mode == OURS) {
        pth2swt_conv_shape g = {N, 7, 7, 512, 512, 3, 3, 1, 1, 1, 1, 7, 7};
        pth2swt_conv_nhwc(&g, X, W32, 0, 0, 0, YOURS, 0, M, 0, PANELS, SCRATCH);
        return;
    }
    // Per row block of up to 96 rows (our CONV_MC), depth chunks outermost, panel groups inside.
    for (int m0 = 0; m0 < M; m0 += 96) {
        const int mc = M - m0 < 96 ? M - m0 : 96;
        for (int k0 = 0; k0 < D; k0 += KC)
            for (int j = 0; j < PANELS; j += 4) {
                const int last = k0 + KC >= D && j + 4 >= PANELS;
                const long per_panel = (long)KC * 16 * 4 / 64 / (mode == BF16 ? 2 : 1);
                const long blocks = (mc + 5) / 6;
                for (int i0 = 0, blk = 0; i0 < mc; i0 += 6, blk++) {
                    const int mr = mc - i0 < 6 ? mc - i0 : 6;
                    long lo = 4 * per_panel * blk / blocks, hi = 4 * per_panel * (blk + 1) / blocks, q = lo / per_panel;
                    if (hi > (q + 1) * per_panel) hi = (q + 1) * per_panel;
                    const int lines = last ? 0 : (int)(hi - lo);
                    if (mode == F32) {
                        const float *b = W32 + (long)j * D * 16 + (long)k0 * 16;
                        const float *next = j + 4 < PANELS ? b + 4L * D * 16 : W32 + (long)(k0 + KC) * 16;
                        kernel32(mr, A + (long)(m0 + i0) * D + k0, b, (long)D * 16, Y32 + (long)(m0 + i0) * K + j * 16,
                                 k0 > 0, (const char *)next + q * D * 64 + (lo - q * per_panel) * 64, lines);
                    } else {
                        const uint32_t *b = W16 + (long)j * (D / 2) * 16 + (long)(k0 / 2) * 16;
                        const uint32_t *next = j + 4 < PANELS ? b + 4L * (D / 2) * 16 : W16 + (long)((k0 + KC) / 2) * 16;
                        kernel16(mr, A16 + (long)(m0 + i0) * (D / 2) + k0 / 2, b, (long)(D / 2) * 16,
                                 Y16 + (long)(m0 + i0) * K + j * 16, k0 > 0,
                                 (const char *)next + q * (D / 2) * 64 + (lo - q * per_panel) * 64, lines);
                    }
                }
            }
    }
}

int main(int argc, char **argv) {
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512bf16")) {
        printf("skipped: this CPU has no AVX-512 F/BW/VL with BF16\n");
        return 0;
    }
    N = argc > 1 ? atoi(argv[1]) : 1;
    if (N < 1 || N > 64) {
        fprintf(stderr, "usage: bf16_dot [BATCH 1…64]\n");
        return 2;
    }
    M = 49 * N;
    X = aligned_alloc(64, 4L * M * 512);
    for (long i = 0; i < (long)M * 512; i++) X[i] = (float)((i * 7) % 23) * 0.05f - 0.4f;
    A = aligned_alloc(64, 4L * M * D);
    A16 = aligned_alloc(64, 2L * M * D);
    for (int r = 0; r < M; r++) {
        const int n = r / 49, oy = r % 49 / 7, ox = r % 7;
        for (int t = 0; t < 9; t++) {
            const int iy = oy - 1 + t / 3, ix = ox - 1 + t % 3;
            for (int c = 0; c < 512; c++)
                A[(long)r * D + t * 512 + c] =
                    iy >= 0 && iy < 7 && ix >= 0 && ix < 7 ? X[((long)n * 49 + iy * 7 + ix) * 512 + c] : 0;
        }
        for (int d = 0; d < D; d += 2)
            A16[(long)r * (D / 2) + d / 2] = to_bf16(A[(long)r * D + d]) | (uint32_t)to_bf16(A[(long)r * D + d + 1]) << 16;
    }
    float *raw = malloc(4L * D * K);  // [depth][K], values like a trained layer's (|w| up to 0.08)
    for (long i = 0; i < (long)D * K; i++) raw[i] = (float)((i * 11) % 17 - 8) * 0.01f;
    W32 = aligned_alloc(64, 4L * PANELS * D * 16);
    pth2swt_pack_b(D, K, raw, K, W32);
    W16 = aligned_alloc(64, 4L * PANELS * (D / 2) * 16);
    for (int j = 0; j < PANELS; j++)
        for (int d = 0; d < D; d += 2)
            for (int col = 0; col < 16; col++)
                W16[((long)j * (D / 2) + d / 2) * 16 + col] =
                    to_bf16(W32[((long)j * D + d) * 16 + col]) | (uint32_t)to_bf16(W32[((long)j * D + d + 1) * 16 + col]) << 16;
    Y32 = aligned_alloc(64, 4L * M * K);
    Y16 = aligned_alloc(64, 4L * M * K);
    YOURS = aligned_alloc(64, 4L * M * K);
    SCRATCH = aligned_alloc(64, 4 * pth2swt_conv_nhwc_scratch_count());

    for (int mode = 0; mode < MODES; mode++) run(mode);
    double worst32 = 0, worst16 = 0, largest = 0, sum16 = 0;
    for (long i = 0; i < (long)M * K; i++) {
        worst32 = fmax(worst32, fabs((double)Y32[i] - YOURS[i]));
        worst16 = fmax(worst16, fabs((double)Y16[i] - YOURS[i]));
        sum16 += fabs((double)Y16[i] - YOURS[i]);
        largest = fmax(largest, fabs(YOURS[i]));
    }
    printf("batch %d (%d rows): max |f32 - ours| %.3g; max |bf16 - ours| %.3g, mean %.3g, of max |y| %.3g\n", N, M,
           worst32, worst16, sum16 / ((double)M * K), largest);
    const double gflop = 2.0 * M * D * K * 1e-9;
    for (int round = 0; round < ROUNDS; round++)
        for (int mode = 0; mode < MODES; mode++) {
            double t[REPS];
            for (int r = 0; r < REPS; r++) {
                const double t0 = now();
                run(mode);
                t[r] = now() - t0;
            }
            qsort(t, REPS, sizeof t[0], by_value);
            printf("round %d, %-20s median %.3f ms, min %.3f (%.0f GFLOP/s at the minimum)\n", round + 1, names[mode],
                   t[REPS / 2] * 1e3, t[0] * 1e3, gflop / t[0]);
        }
    return 0;
}
