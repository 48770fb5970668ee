// A small packed single-precision GEMM for Winograd's 36 products, where both operands can be laid out
// in advance: A (the transformed weights) once at load time, B (the transformed input) by the input
// transform as it writes. The AVX2+FMA micro-kernel computes 6×16 blocks; a portable loop computes the
// same sums where AVX2/FMA are missing. pth2swt_sgemm_reference is the naive twin for tests.
#ifndef PTH2SWT_CKERNELS_H
#define PTH2SWT_CKERNELS_H

#ifdef __cplusplus
extern "C" {
#endif

enum { PTH2SWT_GEMM_MR = 6, PTH2SWT_GEMM_NR = 16 };

/// Floats of a packed A for an M×K matrix: ceil(M/6) panels of K×6.
long pth2swt_packed_a_count(int m, int k);
/// Floats of a packed B for a K×N matrix: ceil(N/16) panels of K×16.
long pth2swt_packed_b_count(int k, int n);
/// Packs row-major A (M×K, row stride lda): panel r holds rows 6r…6r+5, element (i, p) at p*6 + i;
/// rows past M are zero.
void pth2swt_pack_a(int m, int k, const float *a, int lda, float *packed);
/// Packs row-major B (K×N, row stride ldb): panel j holds columns 16j…16j+15, element (p, q) at p*16 + q;
/// columns past N are zero.
void pth2swt_pack_b(int k, int n, const float *b, int ldb, float *packed);
/// C (M×N, row stride ldc) = A · B from packed operands (C is overwritten).
void pth2swt_sgemm_packed(int m, int n, int k, const float *packed_a, const float *packed_b, float *c, int ldc);
/// The same product from row-major operands, one sum at a time.
void pth2swt_sgemm_reference(int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c, int ldc);
/// A spin-wait hint (x86 PAUSE), for threads waiting on a flag.
static inline void pth2swt_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}
/// 1 when the AVX2+FMA micro-kernel runs on this CPU.
int pth2swt_gemm_accelerated(void);

#ifdef __cplusplus
}
#endif

#endif
