// Winograd F(4×4, 3×3)'s weight gradient at batch 32, the two schedules of WinogradBackward.weight
// written out in C over the same kernels: "shared" (blocks of about 8 MB of V and dM one after another,
// the threads splitting each block's transforms by tile and its 36 products by ξ into one dU) and "per
// thread" (each thread every threads-th block of 512 KB into its own V, dM and dU, the dU added at the
// end). The caches are flushed (300 MB written) before each run, and the two schedules alternate.
//
//   swift build -c release && bash scripts/harness/run.sh winograd_dw HEIGHT CHANNELS THREADS
//
// e.g. 56 64 2 (ResNet's layer1), 28 128 2 (layer2), 14 256 2 (layer3). Prints each run's time and the
// largest difference between the two schedules' dU (their sums are grouped differently).
#define _GNU_SOURCE
#include "ckernels.h"
#include "harness.h"
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { BATCH = 32, SHARED_FLOATS = 2000000, THREAD_FLOATS = 131072 };
static int H, C, K, T, tiles_h, shared_tiles, thread_tiles;
static long total;
static float *x, *dy, *du, *v, *m, *pack[2], *own_u[2], *own_v[2], *own_m[2];
static pthread_barrier_t barrier;

static void transforms(long start, int p, int lo, int hi, float *vv, float *mm) {
    pth2swt_winograd_input_nhwc(x, H, H, C, tiles_h, tiles_h, start, p, lo, hi, vv);
    pth2swt_winograd_grad_output_nhwc(dy, H, H, K, tiles_h, tiles_h, start, p, lo, hi, mm);
}

static void *shared(void *arg) {
    const int me = (int)(long)arg;
    for (long s = 0; s < total; s += shared_tiles) {
        const int p = total - s < shared_tiles ? (int)(total - s) : shared_tiles;
        const int half = T == 1 ? p : (p / 2 + 7) / 8 * 8;
        transforms(s, p, me ? half : 0, me ? p : half, v, m);
        pthread_barrier_wait(&barrier);
        for (int xi = me; xi < 36; xi += T)
            pth2swt_gemm_tn(C, K, p, v + (long)xi * p * C, C, m + (long)xi * p * K, K, du + (long)xi * C * K, K,
                            s > 0, pack[me]);
        pthread_barrier_wait(&barrier);
    }
    return 0;
}

static void *per_thread(void *arg) {
    const int me = (int)(long)arg;
    const long blocks = (total + thread_tiles - 1) / thread_tiles;
    int first = 1;
    for (long b = me; b < blocks; b += T, first = 0) {
        const long s = b * thread_tiles;
        const int p = total - s < thread_tiles ? (int)(total - s) : thread_tiles;
        transforms(s, p, 0, p, own_v[me], own_m[me]);
        for (int xi = 0; xi < 36; xi++)
            pth2swt_gemm_tn(C, K, p, own_v[me] + (long)xi * p * C, C, own_m[me] + (long)xi * p * K, K,
                            own_u[me] + (long)xi * C * K, K, !first, pack[me]);
    }
    pthread_barrier_wait(&barrier);
    const long n = 36L * C * K, lo = n * me / T, hi = n * (me + 1) / T;
    for (long i = lo; i < hi; i++) du[i] = T == 2 ? own_u[0][i] + own_u[1][i] : own_u[0][i];
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: winograd_dw HEIGHT CHANNELS THREADS(1|2)\n");
        return 2;
    }
    H = atoi(argv[1]), C = K = atoi(argv[2]), T = atoi(argv[3]);
    if (H < 1 || C < 8 || C % 8 || T < 1 || T > 2) {
        fprintf(stderr, "HEIGHT ≥ 1, CHANNELS a multiple of 8, THREADS 1 or 2\n");
        return 2;
    }
    tiles_h = (H + 3) / 4;
    total = (long)BATCH * tiles_h * tiles_h;
    shared_tiles = SHARED_FLOATS / (36 * (C + K));
    thread_tiles = THREAD_FLOATS / (36 * (C + K));
    if (shared_tiles < 8) shared_tiles = 8;
    if (thread_tiles < 8) thread_tiles = 8;
    if (shared_tiles > total) shared_tiles = (int)total;
    if (thread_tiles > total) thread_tiles = (int)total;
    const long image = (long)BATCH * H * H * C;
    x = malloc(4 * image), dy = malloc(4 * image);
    for (long i = 0; i < image; i++) x[i] = (float)(i % 7) * 0.1f, dy[i] = (float)(i % 5) * 0.1f;
    du = malloc(4L * 36 * C * K);
    v = malloc(4L * 36 * shared_tiles * C), m = malloc(4L * 36 * shared_tiles * K);
    for (int i = 0; i < 2; i++) {
        pack[i] = malloc(4 * pth2swt_gemm_tn_scratch_count(K));
        own_u[i] = malloc(4L * 36 * C * K);
        own_v[i] = malloc(4L * 36 * thread_tiles * C), own_m[i] = malloc(4L * 36 * thread_tiles * K);
    }
    float *reference = malloc(4L * 36 * C * K);
    char *flush = malloc(300 << 20);
    pthread_barrier_init(&barrier, 0, T);
    printf("%d×%d×%d, batch %d, %d thread%s: blocks of %d tiles (shared) and %d (per thread), %ld tiles\n", H, H, C,
           BATCH, T, T > 1 ? "s" : "", shared_tiles, thread_tiles, total);
    for (int round = 1; round <= 6; round++) {
        double took[2];
        for (int mode = 0; mode < 2; mode++) {
            memset(flush, round + mode, 300 << 20);
            double t0 = now();
            pthread_t threads[2];
            for (long i = 0; i < T; i++) pthread_create(&threads[i], 0, mode ? per_thread : shared, (void *)i);
            for (int i = 0; i < T; i++) pthread_join(threads[i], 0);
            took[mode] = now() - t0;
            if (mode == 0) memcpy(reference, du, 4L * 36 * C * K);
        }
        double worst = 0, largest = 0;
        for (long i = 0; i < 36L * C * K; i++) {
            worst = fmax(worst, fabs((double)du[i] - reference[i]));
            largest = fmax(largest, fabs((double)reference[i]));
        }
        printf("round %d: shared %.1f ms, per thread %.1f ms (%.2f×); max |Δ dU| %.3g of %.3g\n", round,
               took[0] * 1e3, took[1] * 1e3, took[1] / took[0], worst, largest);
    }
    return 0;
}
