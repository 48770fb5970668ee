// The hot kernels every ISA tier provides, as one X-macro list: X(public entry point, body function,
// (parameters), (arguments)). tier_*.c builds a pth2swt_kernel_table from it; isa.c generates each
// public entry point, which calls the body of the calling thread's tier. Adding a kernel is a line here
// and its body in nhwc_body.h or train_body.h.
#ifndef PTH2SWT_KERNEL_LIST_H
#define PTH2SWT_KERNEL_LIST_H

#include "ckernels.h"

#define PTH2SWT_KERNELS(X)                                                                                        \
    X(pth2swt_gemm_rows, gemm_rows,                                                                               \
      (long m, int n, long k, const float *a, long lda, const float *packed_b, float *c, long ldc,                \
       const float *next_b),                                                                                      \
      (m, n, k, a, lda, packed_b, c, ldc, next_b))                                                                \
    X(pth2swt_gemm_tn, gemm_tn,                                                                                   \
      (long m, int n, long k, const float *a, long lda, const float *b, long ldb, float *c, long ldc, int acc,    \
       float *scratch),                                                                                           \
      (m, n, k, a, lda, b, ldb, c, ldc, acc, scratch))                                                            \
    X(pth2swt_conv_nhwc, conv_nhwc,                                                                               \
      (const pth2swt_conv_shape *g, const float *x, const float *packed_w, const float *bias,                     \
       const float *residual, int relu, float *y, long row_begin, long row_end, int panel_begin, int panel_end,   \
       float *scratch),                                                                                           \
      (g, x, packed_w, bias, residual, relu, y, row_begin, row_end, panel_begin, panel_end, scratch))             \
    X(pth2swt_depthwise_nhwc, depthwise,                                                                          \
      (const pth2swt_conv_shape *g, const float *x, const float *w, const float *bias, int act, float *y,         \
       long row_begin, long row_end),                                                                             \
      (g, x, w, bias, act, y, row_begin, row_end))                                                                \
    X(pth2swt_im2col_nhwc, im2col_rows, (const pth2swt_conv_shape *g, const float *x, long row_begin, long rows,  \
                                         float *dst),                                                             \
      (g, x, row_begin, rows, dst))                                                                               \
    X(pth2swt_col2im_add_nhwc, col2im_add,                                                                        \
      (const pth2swt_conv_shape *g, const float *cols, long row_begin, long rows, float *dx),                     \
      (g, cols, row_begin, rows, dx))                                                                             \
    X(pth2swt_winograd_input_nhwc, winograd_input,                                                                \
      (const float *x, int height, int width, int channels, int tiles_h, int tiles_w, long tile_start, int tiles, \
       int p_begin, int p_end, float *v),                                                                         \
      (x, height, width, channels, tiles_h, tiles_w, tile_start, tiles, p_begin, p_end, v))                       \
    X(pth2swt_winograd_output_nhwc, winograd_output,                                                              \
      (const float *m, int tiles, int channels, int out_height, int out_width, int tiles_h, int tiles_w,          \
       long tile_start, int p_begin, int p_end, const float *bias, const float *residual, int relu, float *y),    \
      (m, tiles, channels, out_height, out_width, tiles_h, tiles_w, tile_start, p_begin, p_end, bias, residual,   \
       relu, y))                                                                                                  \
    X(pth2swt_winograd_weights_packed, winograd_weights_packed,                                                   \
      (const float *w, int out_channels, int in_channels, int flipped, int panel_begin, int panel_end,            \
       float *packed),                                                                                            \
      (w, out_channels, in_channels, flipped, panel_begin, panel_end, packed))                                    \
    X(pth2swt_winograd_grad_output_nhwc, winograd_grad_output,                                                    \
      (const float *dy, int out_height, int out_width, int channels, int tiles_h, int tiles_w, long tile_start,   \
       int tiles, int p_begin, int p_end, float *dm),                                                             \
      (dy, out_height, out_width, channels, tiles_h, tiles_w, tile_start, tiles, p_begin, p_end, dm))             \
    X(pth2swt_winograd_weights_grad, winograd_weights_grad,                                                       \
      (const float *du, int out_channels, int in_channels, int k_begin, int k_end, float *dw),                    \
      (du, out_channels, in_channels, k_begin, k_end, dw))                                                        \
    X(pth2swt_max_pool_nhwc, max_pool,                                                                            \
      (const float *x, int height, int width, int channels, int kernel, int stride, int padding, int out_height,  \
       int out_width, long row_begin, long row_end, float *y),                                                    \
      (x, height, width, channels, kernel, stride, padding, out_height, out_width, row_begin, row_end, y))        \
    X(pth2swt_max_pool_indices_nhwc, max_pool_indices,                                                            \
      (const float *x, int height, int width, int channels, int kernel, int stride, int padding, int out_height,  \
       int out_width, long row_begin, long row_end, float *y, int *indices),                                      \
      (x, height, width, channels, kernel, stride, padding, out_height, out_width, row_begin, row_end, y,         \
       indices))                                                                                                  \
    X(pth2swt_bn_sums, bn_sums,                                                                                   \
      (const float *x, long row_begin, long row_end, int channels, const double *mean, double *sum),              \
      (x, row_begin, row_end, channels, mean, sum))                                                               \
    X(pth2swt_bn_apply, bn_apply,                                                                                 \
      (const float *x, long row_begin, long row_end, int channels, const float *mean, const float *scale,         \
       const float *beta, const float *residual, int relu, float *y),                                             \
      (x, row_begin, row_end, channels, mean, scale, beta, residual, relu, y))                                    \
    X(pth2swt_bn_backward_sums, bn_backward_sums,                                                                 \
      (const float *x, float *dy, const float *output, int act, long row_begin, long row_end, int channels,       \
       const float *mean, const float *invstd, double *db, double *dg),                                           \
      (x, dy, output, act, row_begin, row_end, channels, mean, invstd, db, dg))                                   \
    X(pth2swt_bn_backward_apply, bn_backward_apply,                                                               \
      (const float *x, const float *dy, long row_begin, long row_end, int channels, const float *mean,            \
       const float *invstd, const float *a, const float *mb, const float *mg, float *dx),                         \
      (x, dy, row_begin, row_end, channels, mean, invstd, a, mb, mg, dx))                                         \
    X(pth2swt_rearrange_filters, rearrange_filters, (const float *w, int k, int c, int taps, int layout, float *b), \
      (w, k, c, taps, layout, b))                                                                                 \
    X(pth2swt_sgd_update, sgd_update,                                                                             \
      (float *w, const float *grad, float *buffer, long n, float wd, float mu, float keep, float neg_lr,          \
       int nesterov, int first, int maximize),                                                                    \
      (w, grad, buffer, n, wd, mu, keep, neg_lr, nesterov, first, maximize))                                      \
    X(pth2swt_adamw_update, adamw_update,                                                                         \
      (float *w, const float *grad, float *m, float *v, float *vmax, long n, float decay, float b1,                \
       float one_minus_b1, float b2, float one_minus_b2, float bc2_sqrt, float eps, float neg_step, int maximize), \
      (w, grad, m, v, vmax, n, decay, b1, one_minus_b1, b2, one_minus_b2, bc2_sqrt, eps, neg_step, maximize))    \
    X(pth2swt_add_inplace, add_inplace, (float *a, const float *b, long begin, long end), (a, b, begin, end))        \
    X(pth2swt_pointwise, pointwise, (int fn, const float *x, float *y, long begin, long end),                      \
      (fn, x, y, begin, end))                                                                                     \
    X(pth2swt_pointwise_backward, pointwise_backward,                                                             \
      (int fn, const float *x, const float *y, const float *dy, float *dx, long begin, long end),                 \
      (fn, x, y, dy, dx, begin, end))

/// One tier: its name, whether this CPU and OS can run it, and its build of every kernel.
typedef struct {
    const char *name;
    int (*supported)(void);
#define PTH2SWT_TABLE_MEMBER(pub, body, params, args) void(*body) params;
    PTH2SWT_KERNELS(PTH2SWT_TABLE_MEMBER)
#undef PTH2SWT_TABLE_MEMBER
} pth2swt_kernel_table;

/// Defines `const pth2swt_kernel_table pth2swt_tier_<tier>` from the NAME(...) builds in scope.
#define PTH2SWT_TABLE_ENTRY(pub, body, params, args) .body = NAME(body),
#define PTH2SWT_DEFINE_TIER(tier, supported_fn)                                                                  \
    const pth2swt_kernel_table pth2swt_tier_##tier = {.name = #tier, .supported = supported_fn,                  \
                                                      PTH2SWT_KERNELS(PTH2SWT_TABLE_ENTRY)};

/// CPU features the tiers ask for (cpu.c): CPUID's bits and the OS's XSAVE state (XCR0) together.
int pth2swt_cpu_has_avx2_fma(void);
int pth2swt_cpu_has_avx512(void);

#endif
