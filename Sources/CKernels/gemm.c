#include "ckernels.h"

long pth2swt_packed_b_count(int k, int n) { return (long)((n + PTH2SWT_GEMM_NR - 1) / PTH2SWT_GEMM_NR) * PTH2SWT_GEMM_NR * k; }

void pth2swt_pack_b(int k, int n, const float *b, int ldb, float *packed) {
    enum { NR = PTH2SWT_GEMM_NR };
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
