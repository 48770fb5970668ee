// Hand-written CPU kernels, built once per ISA tier (tier_avx512.c, tier_avx2.c, tier_portable.c) and
// dispatched at run time (isa.c): the GEMM micro-kernel and the NHWC convolution, depthwise, Winograd,
// pooling, BatchNorm and optimizer kernels built on it, plus packing and the naive GEMM the tests compare
// against (gemm.c).
#ifndef PTH2SWT_CKERNELS_H
#define PTH2SWT_CKERNELS_H

#ifdef __cplusplus
extern "C" {
#endif

/// Every tier's micro-kernel: columns per packed panel, and rows per pass (callers that choose how many rows
/// a GEMM gets make them a multiple of PTH2SWT_GEMM_MR where they can).
enum { PTH2SWT_GEMM_NR = 16, PTH2SWT_GEMM_MR = 6 };

/// Floats of a packed B for a K×N matrix: ceil(N/16) panels of K×16.
long pth2swt_packed_b_count(int k, int n);
/// Packs row-major B (K×N, row stride ldb): panel j holds columns 16j…16j+15, element (p, q) at p*16 + q;
/// columns past N are zero.
void pth2swt_pack_b(int k, int n, const float *b, int ldb, float *packed);
/// C (M×N, row stride ldc) = A · B from row-major operands, one sum at a time (the tests' twin).
void pth2swt_sgemm_reference(int m, int n, int k, const float *a, int lda, const float *b, int ldb, float *c, int ldc);
/// A spin-wait hint (x86 PAUSE), for threads waiting on a flag.
static inline void pth2swt_spin_pause(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

// ---- ISA tiers (isa.c). Tiers are numbered 0 … count−1, best first; the last is portable. ----

enum { PTH2SWT_ISA_ENV_UNSET = 0, PTH2SWT_ISA_ENV_HONOURED = 1, PTH2SWT_ISA_ENV_UNKNOWN = -1,
       PTH2SWT_ISA_ENV_UNSUPPORTED = -2 };
/// How many tiers this build registers.
int pth2swt_isa_count(void);
/// A tier's name ("avx512", "avx2", "portable"), or NULL out of range.
const char *pth2swt_isa_name(int tier);
/// The tier whose name is `name` (case-insensitive), or −1.
int pth2swt_isa_lookup(const char *name);
/// 1 when this CPU has the tier's instructions and the OS saves their registers (CPUID and XCR0).
int pth2swt_isa_supported(int tier);
/// The process's tier, picked at first use: PTH2SWT_ISA if it names a supported tier, else the best one.
int pth2swt_isa_process_tier(void);
/// What became of PTH2SWT_ISA: PTH2SWT_ISA_ENV_UNSET (unset, empty or "auto"), _HONOURED, _UNKNOWN or
/// _UNSUPPORTED (the last two fall back to the best supported tier).
int pth2swt_isa_environment_status(void);
/// Sets the process's tier; −1 (nothing changed) when this machine cannot run it.
int pth2swt_isa_set_process_tier(int tier);
/// Sets the calling thread's tier (−1: follow the process's); returns the previous override (−1 none), or
/// −2 (nothing changed) when this machine cannot run `tier`. The kernels' worker threads take their
/// caller's override for the region they run.
int pth2swt_isa_thread_override(int tier);
/// The calling thread's override, or −1.
int pth2swt_isa_thread_override_value(void);
/// The tier the calling thread's kernel calls run in.
int pth2swt_isa_current(void);

// ---- NHWC kernels (nhwc_body.h, one build per tier). Tensors are [N, H, W, C], contiguous. ----

/// A convolution's geometry (dilation 1, one group).
typedef struct {
    int batch, height, width, channels;
    int out_channels, kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
    int out_height, out_width;
} pth2swt_conv_shape;

/// C (M×N, row stride ldc) = A · B where row i of A starts at a + i*lda and B is packed by
/// pth2swt_pack_b (K×N). next_b (or null): the packed B of the product the caller runs next (same N and
/// K), whose first panels are prefetched while this one ends; it is only read by prefetches.
void pth2swt_gemm_rows(long m, int n, long k, const float *a, long lda, const float *packed_b, float *c, long ldc,
                       const float *next_b);

/// C (m×n, row stride ldc) = (acc ? C : 0) + Aᵀ·B for A k×m (row stride lda) and B k×n (row stride ldb), on
/// the micro-kernel: the weight gradients' product. scratch holds pth2swt_gemm_tn_scratch_count(n) floats.
void pth2swt_gemm_tn(long m, int n, long k, const float *a, long lda, const float *b, long ldb, float *c, long ldc,
                     int acc, float *scratch);
long pth2swt_gemm_tn_scratch_count(int n);
/// Scratch floats each thread of pth2swt_conv_nhwc needs.
long pth2swt_conv_nhwc_scratch_count(void);
/// Output rows [row_begin, row_end) (a row is one output position of one image; the output is
/// [rows][out_channels]) and output-channel panels [panel_begin, panel_end) of 16 of the convolution
/// y = x ⊛ w (+ bias) (+ residual) (then the activation: relu 0 none, 1 ReLU, 2 ReLU6). packed_w is pth2swt_pack_b of the
/// (kh·kw·C)×K matrix whose row (ky·kw + kx)·C + c holds w[·, c, ky, kx]. bias and residual may be NULL;
/// residual has y's layout.
void pth2swt_conv_nhwc(const pth2swt_conv_shape *g, const float *x, const float *packed_w, const float *bias,
                       const float *residual, int relu, float *y, long row_begin, long row_end, int panel_begin,
                       int panel_end, float *scratch);

/// Output rows [row_begin, row_end) (row = image · out_height + oy) of the depthwise convolution
/// y[·, c] = Σ x[window, c] · w[tap][c] (+ bias[c]), then the activation: act 0 none, 1 ReLU, 2 ReLU6.
/// g->channels == g->out_channels; w is [kh·kw][C], tap-major; bias may be NULL.
void pth2swt_depthwise_nhwc(const pth2swt_conv_shape *g, const float *x, const float *w, const float *bias, int act,
                            float *y, long row_begin, long row_end);

/// Rows [row_begin, row_begin + rows) of the convolution's im2col matrix: row r is output position r's
/// window, columns (ky, kx, c), zero where the window is in the padding. dst holds rows·kh·kw·C floats.
void pth2swt_im2col_nhwc(const pth2swt_conv_shape *g, const float *x, long row_begin, long rows, float *dst);
/// The adjoint of pth2swt_im2col_nhwc: dx[position of (r, ky, kx)][c] += cols[r][(ky, kx, c)] for the rows
/// given (padding dropped). Rows of different images touch different parts of dx.
void pth2swt_col2im_add_nhwc(const pth2swt_conv_shape *g, const float *cols, long row_begin, long rows, float *dx);

/// Winograd F(4×4, 3×3) input transform of tiles [p_begin, p_end) of a block of `tiles` tiles, the first
/// being tile_start (tiles are numbered image by image, row by row, tiles_h × tiles_w per image) into
/// v[36][tiles][channels]. channels % 8 == 0.
void pth2swt_winograd_input_nhwc(const float *x, int height, int width, int channels, int tiles_h, int tiles_w,
                                 long tile_start, int tiles, int p_begin, int p_end, float *v);
/// The output transform of m[36][tiles][channels] for tiles [p_begin, p_end): writes the tiles' output
/// (+ bias) (+ residual, y's layout) (then max(0, ·) if relu) to y. channels % 8 == 0.
void pth2swt_winograd_output_nhwc(const float *m, int tiles, int channels, int out_height, int out_width, int tiles_h,
                                  int tiles_w, long tile_start, int p_begin, int p_end, const float *bias,
                                  const float *residual, int relu, float *y);
/// Max pooling with -inf padding for output rows [row_begin, row_end) (row = image · out_height + oy);
/// a NaN in the window wins, as in torch.
void pth2swt_max_pool_nhwc(const float *x, int height, int width, int channels, int kernel, int stride, int padding,
                           int out_height, int out_width, long row_begin, long row_end, float *y);

/// Winograd F(4×4, 3×3) weights U = G g Gᵀ of w [K, C, 3, 3] for the output-channel panels [panel_begin,
/// panel_end) of PTH2SWT_GEMM_NR, packed for the GEMM: U[ξ] at packed + ξ·pth2swt_packed_b_count(C, K).
/// flipped: the filters of the input-gradient convolution of w [C, K, 3, 3] (w[i][o] turned 180°).
void pth2swt_winograd_weights_packed(const float *w, int out_channels, int in_channels, int flipped, int panel_begin,
                                     int panel_end, float *packed);
/// The weight gradient's transform of dY (NHWC, [n][out_height][out_width][channels]): dM = A dY Aᵀ for
/// each 4×4 tile in [p_begin, p_end) of the block starting at tile_start, zero beyond the output, written
/// as dM[36][tiles][channels]. channels % 8 == 0.
void pth2swt_winograd_grad_output_nhwc(const float *dy, int out_height, int out_width, int channels, int tiles_h,
                                       int tiles_w, long tile_start, int tiles, int p_begin, int p_end, float *dm);
/// dg = Gᵀ dU G: dU[36][C][K] (Σ over tiles of V[ξ]ᵀ dM[ξ]) to dw [K, C, 3, 3] for output channels
/// [k_begin, k_end).
void pth2swt_winograd_weights_grad(const float *du, int out_channels, int in_channels, int k_begin, int k_end,
                                   float *dw);

// Training kernels (train_body.h), on rows [row_begin, row_end) of [rows, channels] matrices.

/// sum[c] += Σ x[r, c]; with mean non-null: sum[c] += Σ (x[r, c] − mean[c])², in double.
void pth2swt_bn_sums(const float *x, long row_begin, long row_end, int channels, const double *mean, double *sum);
/// y = (x − mean) · scale + beta (+ residual) (then the activation: relu 0 none, 1 ReLU, 2 ReLU6; NaN kept).
void pth2swt_bn_apply(const float *x, long row_begin, long row_end, int channels, const float *mean, const float *scale,
                      const float *beta, const float *residual, int relu, float *y);
/// With output non-null, dy is first masked in place by the activation's gradient (act 1 ReLU: output > 0;
/// act 2 ReLU6: 0 < output < 6); then db[c] += Σ dy, dg[c] += Σ dy · (x − mean) · invstd, in double.
void pth2swt_bn_backward_sums(const float *x, float *dy, const float *output, int act, long row_begin, long row_end,
                              int channels, const float *mean, const float *invstd, double *db, double *dg);
/// dx = a · (dy − mb − (x − mean) · invstd · mg).
void pth2swt_bn_backward_apply(const float *x, const float *dy, long row_begin, long row_end, int channels,
                               const float *mean, const float *invstd, const float *a, const float *mb, const float *mg,
                               float *dx);
/// Max pooling with −inf padding that records each maximum's flat index into x (first maximum in window
/// order, or the last NaN). Indices must fit in int.
void pth2swt_max_pool_indices_nhwc(const float *x, int height, int width, int channels, int kernel, int stride,
                                   int padding, int out_height, int out_width, long row_begin, long row_end, float *y,
                                   int *indices);
/// Filters w [K, C, taps] rearranged: layout 0 as the depth×K matrix b[(t·C + i)·K + o], 1 as the K×depth
/// matrix b[o·depth + t·C + i].
void pth2swt_rearrange_filters(const float *w, int k, int c, int taps, int layout, float *b);
/// One torch.optim.SGD update (no fused multiply-adds); buffer null without momentum.
void pth2swt_sgd_update(float *w, const float *grad, float *buffer, long n, float wd, float mu, float keep, float neg_lr,
                        int nesterov, int first, int maximize);
/// One torch.optim.AdamW update (no fused multiply-adds); vmax null without amsgrad.
void pth2swt_adamw_update(float *w, const float *grad, float *m, float *v, float *vmax, long n, float decay, float b1,
                          float one_minus_b1, float b2, float one_minus_b2, float bc2_sqrt, float eps, float neg_step,
                          int maximize);
/// a[i] += b[i] for i in [begin, end).
void pth2swt_add_inplace(float *a, const float *b, long begin, long end);
/// y = f(x) elementwise over [begin, end): fn 1 Hardswish, 2 Hardsigmoid, 3 Sigmoid, 4 SiLU, 5 GELU (exact).
void pth2swt_pointwise(int fn, const float *x, float *y, long begin, long end);
/// dx = dL/dx of pth2swt_pointwise's fn over [begin, end), from its input x, output y and dy.
void pth2swt_pointwise_backward(int fn, const float *x, const float *y, const float *dy, float *dx, long begin,
                                long end);

#ifdef __cplusplus
}
#endif

#endif
