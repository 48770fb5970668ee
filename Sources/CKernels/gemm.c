#include "ckernels.h"

#include <string.h>

enum { MR = PTH2SWT_GEMM_MR, NR = PTH2SWT_GEMM_NR };

long pth2swt_packed_a_count(int m, int k) { return (long)((m + MR - 1) / MR) * MR * k; }
long pth2swt_packed_b_count(int k, int n) { return (long)((n + NR - 1) / NR) * NR * k; }

void pth2swt_pack_a(int m, int k, const float *a, int lda, float *packed) {
    for (int r0 = 0; r0 < m; r0 += MR) {
        float *panel = packed + (long)(r0 / MR) * MR * k;
        for (int p = 0; p < k; p++)
            for (int i = 0; i < MR; i++)
                panel[p * MR + i] = r0 + i < m ? a[(long)(r0 + i) * lda + p] : 0.0f;
    }
}

void pth2swt_pack_b(int k, int n, const float *b, int ldb, float *packed) {
    for (int c0 = 0; c0 < n; c0 += NR) {
        float *panel = packed + (long)(c0 / NR) * NR * k;
        for (int p = 0; p < k; p++)
            for (int q = 0; q < NR; q++)
                panel[p * NR + q] = c0 + q < n ? b[(long)p * ldb + c0 + q] : 0.0f;
    }
}

void pth2swt_sgemm_reference(int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c, int ldc) {
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = 0;
            for (int p = 0; p < k; p++) s += a[(long)i * lda + p] * b[(long)p * ldb + j];
            c[(long)i * ldc + j] = s;
        }
}

/// Writes an mr×nr corner of a full MR×NR block.
static void store_partial(const float *block, int mr, int nr, float *c, int ldc) {
    for (int i = 0; i < mr; i++) memcpy(c + (long)i * ldc, block + i * NR, sizeof(float) * nr);
}

static void kernel_portable(int k, const float *a, const float *b, float *c, int ldc, int mr, int nr) {
    float acc[MR * NR] = {0};
    for (int p = 0; p < k; p++, a += MR, b += NR)
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i * NR + j] += a[i] * b[j];
    store_partial(acc, mr, nr, c, ldc);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

__attribute__((target("avx2,fma")))
static void kernel_avx2(int k, const float *a, const float *b, float *c, int ldc, int mr, int nr) {
    __m256 c00 = _mm256_setzero_ps(), c01 = _mm256_setzero_ps(), c10 = _mm256_setzero_ps(), c11 = _mm256_setzero_ps();
    __m256 c20 = _mm256_setzero_ps(), c21 = _mm256_setzero_ps(), c30 = _mm256_setzero_ps(), c31 = _mm256_setzero_ps();
    __m256 c40 = _mm256_setzero_ps(), c41 = _mm256_setzero_ps(), c50 = _mm256_setzero_ps(), c51 = _mm256_setzero_ps();
    for (int p = 0; p < k; p++, a += MR, b += NR) {
        __m256 b0 = _mm256_loadu_ps(b), b1 = _mm256_loadu_ps(b + 8);
        __m256 x = _mm256_broadcast_ss(a + 0);
        c00 = _mm256_fmadd_ps(x, b0, c00); c01 = _mm256_fmadd_ps(x, b1, c01);
        x = _mm256_broadcast_ss(a + 1);
        c10 = _mm256_fmadd_ps(x, b0, c10); c11 = _mm256_fmadd_ps(x, b1, c11);
        x = _mm256_broadcast_ss(a + 2);
        c20 = _mm256_fmadd_ps(x, b0, c20); c21 = _mm256_fmadd_ps(x, b1, c21);
        x = _mm256_broadcast_ss(a + 3);
        c30 = _mm256_fmadd_ps(x, b0, c30); c31 = _mm256_fmadd_ps(x, b1, c31);
        x = _mm256_broadcast_ss(a + 4);
        c40 = _mm256_fmadd_ps(x, b0, c40); c41 = _mm256_fmadd_ps(x, b1, c41);
        x = _mm256_broadcast_ss(a + 5);
        c50 = _mm256_fmadd_ps(x, b0, c50); c51 = _mm256_fmadd_ps(x, b1, c51);
    }
    if (mr == MR && nr == NR) {
        _mm256_storeu_ps(c, c00); _mm256_storeu_ps(c + 8, c01); c += ldc;
        _mm256_storeu_ps(c, c10); _mm256_storeu_ps(c + 8, c11); c += ldc;
        _mm256_storeu_ps(c, c20); _mm256_storeu_ps(c + 8, c21); c += ldc;
        _mm256_storeu_ps(c, c30); _mm256_storeu_ps(c + 8, c31); c += ldc;
        _mm256_storeu_ps(c, c40); _mm256_storeu_ps(c + 8, c41); c += ldc;
        _mm256_storeu_ps(c, c50); _mm256_storeu_ps(c + 8, c51);
        return;
    }
    float block[MR * NR];
    _mm256_storeu_ps(block + 0 * NR, c00); _mm256_storeu_ps(block + 0 * NR + 8, c01);
    _mm256_storeu_ps(block + 1 * NR, c10); _mm256_storeu_ps(block + 1 * NR + 8, c11);
    _mm256_storeu_ps(block + 2 * NR, c20); _mm256_storeu_ps(block + 2 * NR + 8, c21);
    _mm256_storeu_ps(block + 3 * NR, c30); _mm256_storeu_ps(block + 3 * NR + 8, c31);
    _mm256_storeu_ps(block + 4 * NR, c40); _mm256_storeu_ps(block + 4 * NR + 8, c41);
    _mm256_storeu_ps(block + 5 * NR, c50); _mm256_storeu_ps(block + 5 * NR + 8, c51);
    store_partial(block, mr, nr, c, ldc);
}

int pth2swt_gemm_accelerated(void) {
    static int cached = -1;
    int v = __atomic_load_n(&cached, __ATOMIC_RELAXED);
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        __atomic_store_n(&cached, v, __ATOMIC_RELAXED);
    }
    return v;
}
#else
int pth2swt_gemm_accelerated(void) { return 0; }
#endif

void pth2swt_sgemm_packed(int m, int n, int k, const float *packed_a, const float *packed_b, float *c, int ldc) {
    int fast = pth2swt_gemm_accelerated();
    // Each B panel (k×16) stays in cache while every A panel passes over it.
    for (int j0 = 0; j0 < n; j0 += NR) {
        const float *b = packed_b + (long)(j0 / NR) * NR * k;
        int nr = n - j0 < NR ? n - j0 : NR;
        for (int i0 = 0; i0 < m; i0 += MR) {
            const float *a = packed_a + (long)(i0 / MR) * MR * k;
            int mr = m - i0 < MR ? m - i0 : MR;
            float *cc = c + (long)i0 * ldc + j0;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
            if (fast) {
                kernel_avx2(k, a, b, cc, ldc, mr, nr);
                continue;
            }
#endif
            kernel_portable(k, a, b, cc, ldc, mr, nr);
        }
    }
}
