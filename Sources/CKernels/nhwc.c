// NHWC convolution (im2col by row blocks into a 6×16 micro-kernel), Winograd F(4×4, 3×3) transforms and
// max pooling, each vectorised over eight channels. nhwc_body.h holds the bodies; this file compiles them
// for AVX2+FMA and portably and picks one at run time.

#include <math.h>
#include "ckernels.h"

#include <string.h>

typedef float v8 __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));

#define splat8(x) ({ float f_ = (x); (v8){f_, f_, f_, f_, f_, f_, f_, f_}; })
#define ld8(p) ({ v8 v_; memcpy(&v_, (p), 32); v_; })
#define st8(p, v) do { v8 s_ = (v); memcpy((p), &s_, 32); } while (0)
/// max(0, x) that keeps NaN, as torch's relu does.
#define relu8(x) ({ v8 x_ = (x); (v8)((v8i)x_ & ~(v8i)(x_ < splat8(0))); })
/// relu8, then for act 2 (ReLU6) min(·, 6); NaN kept.
#define act8(x, act) ({ v8 r_ = relu8(x); (act) == 2 ? select8(r_ > splat8(6), splat8(6), r_) : r_; })
static inline float act1(float v, int act) {
    if (v < 0) v = 0;
    if (act == 2 && v > 6) v = 6;
    return v;
}
#define select8(m, a, b) ({ v8i m_ = (m); (v8)(((v8i)(a) & m_) | ((v8i)(b) & ~m_)); })

/// Convolution blocking: rows (output positions) per im2col block, and the depth of a chunk when the
/// whole depth (kh·kw·C) is more than CONV_KC_WHOLE.
/// CONV_MAX_SEGMENTS: the tallest kernel whose rows the micro-kernel reads in place.
enum { CONV_MC = 96, CONV_KC = 512, CONV_KC_WHOLE = 640, CONV_MAX_SEGMENTS = 11 };

static int is_pointwise(const pth2swt_conv_shape *g) {
    return g->kernel_h == 1 && g->kernel_w == 1 && g->stride_h == 1 && g->stride_w == 1 && g->pad_h == 0 &&
           g->pad_w == 0;
}

#define NAME(x) x##_generic
#define TARGET
#include "nhwc_body.h"
#include "train_body.h"
#undef NAME
#undef TARGET

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_AVX2_VARIANT 1
#define NAME(x) x##_avx2
#define TARGET __attribute__((target("avx2,fma")))
#include "nhwc_body.h"
#include "train_body.h"
#undef NAME
#undef TARGET
#endif

static int use_avx2(void) {
#ifdef HAVE_AVX2_VARIANT
    return pth2swt_gemm_accelerated();
#else
    return 0;
#endif
}

long pth2swt_conv_nhwc_scratch_count(void) { return (long)CONV_MC * CONV_KC_WHOLE; }

// ---------------------------------------------------------------------------------------------------
// Entry points: the AVX2+FMA build of each body function where the CPU has it, else the portable one.

#ifdef HAVE_AVX2_VARIANT
#define DISPATCH(fn, ...)                      \
    do {                                       \
        if (use_avx2()) fn##_avx2(__VA_ARGS__); \
        else fn##_generic(__VA_ARGS__);        \
    } while (0)
#else
#define DISPATCH(fn, ...) fn##_generic(__VA_ARGS__)
#endif

void pth2swt_winograd_input_nhwc(const float *x, int height, int width, int channels, int tiles_h, int tiles_w,
                                 long tile_start, int tiles, int p_begin, int p_end, float *v) {
    DISPATCH(winograd_input, x, height, width, channels, tiles_h, tiles_w, tile_start, tiles, p_begin, p_end, v);
}

void pth2swt_winograd_output_nhwc(const float *m, int tiles, int channels, int out_height, int out_width, int tiles_h,
                                  int tiles_w, long tile_start, int p_begin, int p_end, const float *bias,
                                  const float *residual, int relu, float *y) {
    DISPATCH(winograd_output, m, tiles, channels, out_height, out_width, tiles_h, tiles_w, tile_start, p_begin, p_end,
             bias, residual, relu, y);
}

void pth2swt_max_pool_nhwc(const float *x, int height, int width, int channels, int kernel, int stride, int padding,
                           int out_height, int out_width, long row_begin, long row_end, float *y) {
    DISPATCH(max_pool, x, height, width, channels, kernel, stride, padding, out_height, out_width, row_begin, row_end, y);
}

void pth2swt_im2col_nhwc(const pth2swt_conv_shape *g, const float *x, long row_begin, long rows, float *dst) {
    DISPATCH(im2col_rows, g, x, row_begin, rows, dst);
}

void pth2swt_col2im_add_nhwc(const pth2swt_conv_shape *g, const float *cols, long row_begin, long rows, float *dx) {
    DISPATCH(col2im_add, g, cols, row_begin, rows, dx);
}

void pth2swt_gemm_rows(long m, int n, long k, const float *a, long lda, const float *packed_b, float *c, long ldc) {
    DISPATCH(gemm_rows, m, n, k, a, lda, packed_b, c, ldc);
}

void pth2swt_conv_nhwc(const pth2swt_conv_shape *g, const float *x, const float *packed_w, const float *bias,
                       const float *residual, int relu, float *y, long row_begin, long row_end, int panel_begin,
                       int panel_end, float *scratch) {
    DISPATCH(conv_nhwc, g, x, packed_w, bias, residual, relu, y, row_begin, row_end, panel_begin, panel_end, scratch);
}

// Training (train_body.h).

void pth2swt_bn_sums(const float *x, long row_begin, long row_end, int channels, const double *mean, double *sum) {
    DISPATCH(bn_sums, x, row_begin, row_end, channels, mean, sum);
}

void pth2swt_bn_apply(const float *x, long row_begin, long row_end, int channels, const float *mean, const float *scale,
                      const float *beta, const float *residual, int relu, float *y) {
    DISPATCH(bn_apply, x, row_begin, row_end, channels, mean, scale, beta, residual, relu, y);
}

void pth2swt_bn_backward_sums(const float *x, float *dy, const float *output, int act, long row_begin, long row_end,
                              int channels, const float *mean, const float *invstd, double *db, double *dg) {
    DISPATCH(bn_backward_sums, x, dy, output, act, row_begin, row_end, channels, mean, invstd, db, dg);
}

void pth2swt_bn_backward_apply(const float *x, const float *dy, long row_begin, long row_end, int channels,
                               const float *mean, const float *invstd, const float *a, const float *mb, const float *mg,
                               float *dx) {
    DISPATCH(bn_backward_apply, x, dy, row_begin, row_end, channels, mean, invstd, a, mb, mg, dx);
}

void pth2swt_max_pool_indices_nhwc(const float *x, int height, int width, int channels, int kernel, int stride,
                                   int padding, int out_height, int out_width, long row_begin, long row_end, float *y,
                                   int *indices) {
    DISPATCH(max_pool_indices, x, height, width, channels, kernel, stride, padding, out_height, out_width, row_begin,
             row_end, y, indices);
}

void pth2swt_add_inplace(float *a, const float *b, long begin, long end) { DISPATCH(add_inplace, a, b, begin, end); }

void pth2swt_winograd_weights_packed(const float *w, int out_channels, int in_channels, int flipped, int panel_begin,
                                     int panel_end, float *packed) {
    DISPATCH(winograd_weights_packed, w, out_channels, in_channels, flipped, panel_begin, panel_end, packed);
}

void pth2swt_sgd_update(float *w, const float *grad, float *buffer, long n, float wd, float mu, float keep, float neg_lr,
                        int nesterov, int first, int maximize) {
    DISPATCH(sgd_update, w, grad, buffer, n, wd, mu, keep, neg_lr, nesterov, first, maximize);
}

void pth2swt_adamw_update(float *w, const float *grad, float *m, float *v, float *vmax, long n, float decay, float b1,
                          float one_minus_b1, float b2, float one_minus_b2, float bc2_sqrt, float eps, float neg_step,
                          int maximize) {
    DISPATCH(adamw_update, w, grad, m, v, vmax, n, decay, b1, one_minus_b1, b2, one_minus_b2, bc2_sqrt, eps, neg_step,
             maximize);
}

void pth2swt_rearrange_filters(const float *w, int k, int c, int taps, int layout, float *b) {
    DISPATCH(rearrange_filters, w, k, c, taps, layout, b);
}

void pth2swt_winograd_grad_output_nhwc(const float *dy, int out_height, int out_width, int channels, int tiles_h,
                                       int tiles_w, long tile_start, int tiles, int p_begin, int p_end, float *dm) {
    DISPATCH(winograd_grad_output, dy, out_height, out_width, channels, tiles_h, tiles_w, tile_start, tiles, p_begin,
             p_end, dm);
}

void pth2swt_winograd_weights_grad(const float *du, int out_channels, int in_channels, int k_begin, int k_end,
                                   float *dw) {
    DISPATCH(winograd_weights_grad, du, out_channels, in_channels, k_begin, k_end, dw);
}

void pth2swt_depthwise_nhwc(const pth2swt_conv_shape *g, const float *x, const float *w, const float *bias, int act,
                            float *y, long row_begin, long row_end) {
    DISPATCH(depthwise, g, x, w, bias, act, y, row_begin, row_end);
}
