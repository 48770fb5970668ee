// ResNet-18's layer4 3×3 convolution (7×7×512 → 512, batch 1) with its weights coming from memory, as
// they do inside the network: pth2swt_conv_nhwc against a plain C kernel of the same blocking (6 rows ×
// 64 columns of zmm accumulators, depth chunks of 128, panel groups of 4, the next group's slice
// prefetched one line a step) whose im2col rows were laid out beforehand, the same plain kernel without
// prefetching, and the same plain kernel reading bf16 weights that it widens into an L1 buffer once per
// group (half the bytes from memory: would bf16 weight storage pay?). One and two threads
// (the output channels split, as ConvNHWC does for few rows), modes alternating round by round.
//
//   swift build -c release && bash scripts/harness/run.sh conv_7x7x512
//
// AVX-512 only (F, BW, VL). Prints each mode's median and minimum over 60 calls; 40 copies of the weights
// (376 MB) are cycled so that none is in any cache when it is read.
#define _GNU_SOURCE
#include "ckernels.h"
#include "harness.h"
#include <immintrin.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { M = 49, D = 4608, K = 512, PANELS = 32, KC = 128, COPIES = 40, REPS = 60 };
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl")))

static float *A;                         // im2col rows, M × D
static float *X;                         // the input, 7 × 7 × 512 (NHWC)
static float *W32[COPIES];               // packed weights: [panel][D][16]
static uint16_t *W16[COPIES];            // the same, bf16
static float *Y[2], *SCRATCH[2];
static const pth2swt_conv_shape G = {1, 7, 7, 512, 512, 3, 3, 1, 1, 1, 1, 7, 7};

// Rows [0, mr) × 64 columns over one depth chunk; prefetch `lines` lines from pf, one a step.
#define STEP                                                                                                    \
    __m512 b0 = _mm512_loadu_ps(b + p * 16), b1 = _mm512_loadu_ps(b + ps + p * 16);                             \
    __m512 b2 = _mm512_loadu_ps(b + 2 * ps + p * 16), b3 = _mm512_loadu_ps(b + 3 * ps + p * 16);                \
    FMA(0) FMA(1) FMA(2) FMA(3) FMA(4) FMA(5)
TGT static inline __attribute__((always_inline)) void block(const int mr, const float *a, const float *b, long ps,
                                                            float *c, int acc, const char *pf, int lines) {
    ROW(0) ROW(1) ROW(2) ROW(3) ROW(4) ROW(5)
    int p = 0;
    for (; p < lines && p < KC; p++) {
        _mm_prefetch(pf + 64L * p, _MM_HINT_T1);
        STEP
    }
    for (; p < KC; p++) { STEP }
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5)
}
TGT static void kernel(int mr, const float *a, const float *b, long ps, float *c, int acc, const char *pf, int lines) {
    if (mr == 6) block(6, a, b, ps, c, acc, pf, lines);
    else if (mr == 1) block(1, a, b, ps, c, acc, pf, lines);
    else block(mr, a, b, ps, c, acc, pf, lines);
}

enum { PLAIN = 0, PLAIN_NO_PREFETCH = 1, PLAIN_BF16 = 2, OURS = 3, MODES = 4 };
static const char *names[MODES] = {"plain, prefetch", "plain, no prefetch", "plain, bf16 weights", "pth2swt_conv_nhwc"};

// Panels [p0, p1) of copy `cp`.
TGT static void conv(int mode, int cp, int p0, int p1, int part) {
    float *C = Y[part];
    if (mode == OURS) {
        pth2swt_conv_nhwc(&G, X, W32[cp], 0, 0, 0, C, 0, M, p0, p1, SCRATCH[part]);
        return;
    }
    static _Thread_local float widened[4 * KC * 16] __attribute__((aligned(64)));
    const int bytes = mode == PLAIN_BF16 ? 2 : 4;
    for (int k0 = 0; k0 < D; k0 += KC)
        for (int j = p0; j < p1; j += 4) {
            const float *b;
            long ps;
            const char *next;  // the next group's slice, or the next chunk's first group
            const long panel_bytes = (long)D * 16 * bytes;
            if (mode == PLAIN_BF16) {
                const uint16_t *s = W16[cp] + (long)j * D * 16 + (long)k0 * 16;
                for (int q = 0; q < 4; q++)
                    for (int p = 0; p < KC; p++) {
                        __m256i h = _mm256_loadu_si256((const __m256i *)(s + (long)q * D * 16 + p * 16));
                        _mm512_store_ps(widened + q * KC * 16 + p * 16,
                                        _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
                    }
                b = widened, ps = KC * 16;
                next = (const char *)(j + 4 < p1 ? s + 4L * D * 16 : W16[cp] + (long)p0 * D * 16 + (long)(k0 + KC) * 16);
            } else {
                b = W32[cp] + (long)j * D * 16 + (long)k0 * 16, ps = (long)D * 16;
                next = (const char *)(j + 4 < p1 ? b + 4L * D * 16 : W32[cp] + (long)p0 * D * 16 + (long)(k0 + KC) * 16);
            }
            const long per_panel = (long)KC * 16 * bytes / 64;  // lines of one panel's slice
            const int last = k0 + KC >= D && j + 4 >= p1;
            for (int i0 = 0, blk = 0; i0 < M; i0 += 6, blk++) {
                const int mr = M - i0 < 6 ? M - i0 : 6;
                // This block's share of the next slice's lines, within one panel's run.
                long lo = 4 * per_panel * blk / 9, hi = 4 * per_panel * (blk + 1) / 9, q = lo / per_panel;
                if (hi > (q + 1) * per_panel) hi = (q + 1) * per_panel;
                const char *pf = next + q * panel_bytes + (lo - q * per_panel) * 64;
                int lines = mode == PLAIN_NO_PREFETCH || last ? 0 : (int)(hi - lo);
                kernel(mr, A + (long)i0 * D + k0, b, ps, C + (long)i0 * K + j * 16, k0 > 0, pf, lines);
            }
        }
}

static atomic_int go, done;
static int MODE, COPY;
static void *worker(void *arg) {
    (void)arg;
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(1, &s);
    sched_setaffinity(0, sizeof s, &s);
    for (int seen = 0;;) {
        int v;
        while ((v = atomic_load(&go)) == seen) _mm_pause();
        if (v < 0) return 0;
        seen = v;
        conv(MODE, COPY, PANELS / 2, PANELS, 1);
        atomic_fetch_add(&done, 1);
    }
}

int main(void) {
    if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
        !__builtin_cpu_supports("avx512vl")) {
        printf("skipped: this CPU has no AVX-512 F/BW/VL\n");
        return 0;
    }
    X = malloc(4L * 49 * 512);
    for (int i = 0; i < 49 * 512; i++) X[i] = (float)(i % 9) * 0.1f;
    A = aligned_alloc(64, 4L * M * D);  // im2col of X: row (oy, ox), column (ky, kx, c)
    for (int r = 0; r < M; r++)
        for (int t = 0; t < 9; t++) {
            int iy = r / 7 - 1 + t / 3, ix = r % 7 - 1 + t % 3;
            for (int c = 0; c < 512; c++)
                A[(long)r * D + t * 512 + c] = iy >= 0 && iy < 7 && ix >= 0 && ix < 7 ? X[(iy * 7 + ix) * 512 + c] : 0;
        }
    float *raw = malloc(4L * D * K);
    for (long i = 0; i < (long)D * K; i++) raw[i] = (float)((i * 11) % 17 - 8) * 0.01f;
    for (int c = 0; c < COPIES; c++) {
        W32[c] = aligned_alloc(64, 4L * PANELS * D * 16);
        pth2swt_pack_b(D, K, raw, K, W32[c]);
        W16[c] = aligned_alloc(64, 2L * PANELS * D * 16);
        for (long i = 0; i < (long)PANELS * D * 16; i++) W16[c][i] = to_bf16(W32[c][i]);
    }
    for (int i = 0; i < 2; i++) {
        Y[i] = aligned_alloc(64, 4L * M * K);
        SCRATCH[i] = aligned_alloc(64, 4 * pth2swt_conv_nhwc_scratch_count());
    }
    // The plain kernel computes what pth2swt_conv_nhwc does (f32), and bf16 weights move it this much.
    float *want = malloc(4L * M * K);
    conv(OURS, 0, 0, PANELS, 0);
    memcpy(want, Y[0], 4L * M * K);
    double worst[MODES] = {0}, largest = 0;
    for (int mode = 0; mode < OURS; mode++) {
        conv(mode, 0, 0, PANELS, 0);
        for (long i = 0; i < (long)M * K; i++) {
            double d = fabs((double)Y[0][i] - want[i]);
            if (d > worst[mode]) worst[mode] = d;
            if (fabs(want[i]) > largest) largest = fabs(want[i]);
        }
    }
    printf("max |plain - ours| %.3g, max |bf16 weights - ours| %.3g, of max |y| %.3g\n", worst[PLAIN],
           worst[PLAIN_BF16], largest);

    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(0, &s);
    sched_setaffinity(0, sizeof s, &s);
    pthread_t thread;
    pthread_create(&thread, 0, worker, 0);
    for (int round = 0; round < 4; round++)
        for (int threads = 1; threads <= 2; threads++)
            for (int mode = 0; mode < MODES; mode++) {
                double t[REPS];
                MODE = mode;
                for (int r = 0; r < REPS; r++) {
                    COPY = (COPY + 1) % COPIES;
                    double t0 = now();
                    if (threads == 2) {
                        atomic_store(&done, 0);
                        atomic_fetch_add(&go, 1);
                        conv(mode, COPY, 0, PANELS / 2, 0);
                        while (atomic_load(&done) < 1) _mm_pause();
                    } else {
                        conv(mode, COPY, 0, PANELS, 0);
                    }
                    t[r] = now() - t0;
                }
                qsort(t, REPS, sizeof t[0], by_value);
                printf("round %d, %d thread%s, %-20s median %.3f ms, min %.3f\n", round + 1, threads,
                       threads > 1 ? "s" : " ", names[mode], t[REPS / 2] * 1e3, t[0] * 1e3);
            }
    atomic_store(&go, -1);
    pthread_join(thread, 0);
    return 0;
}
