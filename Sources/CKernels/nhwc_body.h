// The NHWC kernels' bodies, compiled once per ISA tier by tier_*.c, which defines NAME(x) (the tier's
// suffix), TARGET (its target attribute) and the micro-kernel (ukernel_v8.h or ukernel_avx512.h, with
// UK_MR rows × UK_NP panels) before including this. Eight-float vectors are GCC/Clang vector extensions,
// so the arithmetic is written once and each tier lowers it to its own instructions.
//
// Activations: `relu`/`act` is 0 (none), 1 (ReLU) or 2 (ReLU6, clamp to [0, 6]); NaN passes through both,
// as torch's relu and hardtanh keep it.

/// C (m×n) = A · B with row i of A at a + i·lda and B packed in panels of NR (pth2swt_gemm_rows). While a
/// panel group's row blocks run, the next group's slice of B is prefetched, in even shares across the
/// blocks; during the last group, next_b's first group (the product the caller runs next, packed for the
/// same n and k; null for none). At batch 1 Winograd's 36 products read U from memory (9.4 MB a layer in
/// ResNet's 14×14 stage): those layers 0.87–0.90 of the time without it, the 28×28 ones 0.88–0.94 (bench
/// infer --layers, old and new binaries alternating, one thread).
TARGET static void NAME(gemm_rows)(long m, int n, long k, const float *a, long lda, const float *packed_b, float *c,
                                   long ldc, const float *next_b) {
    const float *rows[UK_MR];
    const int all = (n + NR - 1) / NR;
    const long blocks = (m + UK_MR - 1) / UK_MR;
    for (int j = 0; j < all; j += UK_NP) {
        const float *b = packed_b + (long)j * NR * k;
        int nc = n - j * NR < NR * UK_NP ? n - j * NR : NR * UK_NP;
        // The next group's panels (or next_b's first group) are consecutive in memory: one run of lines.
        const float *next = j + UK_NP < all ? b + (long)UK_NP * NR * k : next_b;
        const int left = j + UK_NP < all ? all - j - UK_NP : next_b ? all : 0;
        const long lines = (left < UK_NP ? left : UK_NP) * k;
        for (long i0 = 0, blk = 0; i0 < m; i0 += UK_MR, blk++) {
            int mr = m - i0 < UK_MR ? (int)(m - i0) : UK_MR;
            for (int t = 0; t < UK_MR; t++) rows[t] = a + (i0 + (t < mr ? t : mr - 1)) * lda;
            const long lo = lines * blk / blocks, hi = lines * (blk + 1) / blocks;
            const uk_prefetch plan = {{next ? next + lo * NR : 0}, {hi - lo}, 1};
            NAME(ukernel)(1, k, rows, b, (long)NR * k, c + i0 * ldc + j * NR, ldc, mr, nc, 0, 0, 0, 0,
                          hi > lo ? &plan : 0);
        }
    }
}

/// C (m×n, row stride ldc) = (acc ? C : 0) + Aᵀ·B, where A is k×m (row r at a + r·lda) and B is k×n (row r
/// at b + r·ldb): the weight gradient's product, whose reduction runs over output positions or tiles. Per
/// chunk of TN_KC rows of A and B: B's chunk packed into panels, then the strided micro-kernel reading A's
/// chunk in place (UK_MR adjacent columns, one row per step) and accumulating into C, by blocks of CONV_MC
/// columns. scratch: pth2swt_gemm_tn_scratch_count(n) floats.
TARGET static void NAME(gemm_tn)(long m, int n, long k, const float *a, long lda, const float *b, long ldb, float *c,
                                 long ldc, int acc, float *scratch) {
    const int panels = (n + NR - 1) / NR;
    float *packed = scratch;  // [panel][p][NR]
    if (k == 0 && !acc)
        for (long i = 0; i < m; i++) memset(c + i * ldc, 0, sizeof(float) * (size_t)n);
    for (long p0 = 0; p0 < k; p0 += TN_KC) {
        const int kc = k - p0 < TN_KC ? (int)(k - p0) : TN_KC;
        for (int q = 0; q < panels; q++) {
            float *panel = packed + (long)q * NR * kc;
            const int cols = n - q * NR < NR ? n - q * NR : NR;
            for (int p = 0; p < kc; p++) {
                const float *src = b + (p0 + p) * ldb + q * NR;
                float *dst = panel + (long)p * NR;
                if (cols == NR) {
                    st8(dst, ld8(src));
                    st8(dst + 8, ld8(src + 8));
                } else {
                    for (int j = 0; j < NR; j++) dst[j] = j < cols ? src[j] : 0;
                }
            }
        }
        const int accumulate = acc || p0 > 0;
        for (long i0 = 0; i0 < m; i0 += CONV_MC) {
            const int mc = m - i0 < CONV_MC ? (int)(m - i0) : CONV_MC;
            for (int j = 0; j < panels; j += UK_NP) {
                const int np = panels - j < UK_NP ? panels - j : UK_NP;
                const int nc = n - j * NR < np * NR ? n - j * NR : np * NR;
                for (int t0 = 0; t0 < mc; t0 += UK_MR) {
                    const int mr = mc - t0 < UK_MR ? mc - t0 : UK_MR;
                    NAME(ukernel_strided)(kc, a + p0 * lda + i0 + t0, lda, packed + (long)j * NR * kc, (long)NR * kc,
                                          c + (i0 + t0) * ldc + j * NR, ldc, mr, nc, accumulate);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Convolution: im2col by blocks of CONV_MC output positions into scratch, then the micro-kernel over
// every NR-channel panel, UK_NP panels per micro-kernel call; a depth over CONV_KC_WHOLE goes in chunks of CONV_KC accumulated in y (the
// epilogue runs with the last chunk).

/// Inline copies: the stem's runs are 21 floats, too short for a call to memcpy to pay.
TARGET static inline void NAME(copy_floats_)(float *dst, const float *src, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) st8(dst + i, ld8(src + i));
    for (; i < n; i++) dst[i] = src[i];
}
TARGET static inline void NAME(zero_floats_)(float *dst, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) st8(dst + i, splat8(0));
    for (; i < n; i++) dst[i] = 0;
}
#define copy_floats NAME(copy_floats_)
#define zero_floats NAME(zero_floats_)

/// Row r of the im2col matrix (output position r; columns (ky, kx, c)), columns [p0, p0 + kc).
TARGET static void NAME(im2col_row)(const pth2swt_conv_shape *g, const float *x, long r, long p0, long kc, float *dst) {
    const int C = g->channels, W = g->width, H = g->height;
    const long plane = (long)g->out_height * g->out_width;
    const long n = r / plane, rem = r % plane;
    const int oy = (int)(rem / g->out_width), ox = (int)(rem % g->out_width);
    const float *image = x + n * H * W * C;
    const int y0 = oy * g->stride_h - g->pad_h, x0 = ox * g->stride_w - g->pad_w;
    const long depth = (long)g->kernel_h * g->kernel_w * C;
    if (p0 == 0 && kc == depth) {
        // Whole rows of the window at once: for one ky, the taps kx inside the image are adjacent in
        // NHWC memory (this is what makes a 3-channel stem cheap).
        int kxlo = x0 < 0 ? -x0 : 0, kxhi = W - x0 < g->kernel_w ? W - x0 : g->kernel_w;
        if (kxhi < kxlo) kxhi = kxlo;
        for (int ky = 0; ky < g->kernel_h; ky++) {
            float *row = dst + (long)ky * g->kernel_w * C;
            int iy = y0 + ky;
            if (iy < 0 || iy >= H || kxlo == kxhi) {
                zero_floats(row, (long)g->kernel_w * C);
                continue;
            }
            if (kxlo > 0) zero_floats(row, (long)kxlo * C);
            copy_floats(row + (long)kxlo * C, image + ((long)iy * W + x0 + kxlo) * C, (long)(kxhi - kxlo) * C);
            if (kxhi < g->kernel_w) zero_floats(row + (long)kxhi * C, (long)(g->kernel_w - kxhi) * C);
        }
        return;
    }
    for (long d = p0, end = p0 + kc; d < end;) {
        int tap = (int)(d / C), c = (int)(d % C);
        int iy = y0 + tap / g->kernel_w, ix = x0 + tap % g->kernel_w;
        long count = C - c < end - d ? C - c : end - d;
        if (iy >= 0 && iy < H && ix >= 0 && ix < W)
            copy_floats(dst, image + ((long)iy * W + ix) * C + c, count);
        else
            zero_floats(dst, count);
        dst += count;
        d += count;
    }
}

_Static_assert(CONV_KC <= CONV_KC_WHOLE, "a chunk outside the image reads the zeros array");
_Static_assert(UK_MR == PTH2SWT_GEMM_MR, "PTH2SWT_GEMM_MR tells Swift every tier's micro-kernel height");
_Static_assert(UK_NP <= 4, "a prefetch plan holds one run per panel of a group (uk_prefetch, common.h)");

TARGET static void NAME(conv_nhwc)(const pth2swt_conv_shape *g, const float *x, const float *packed_w,
                                   const float *bias, const float *residual, int relu, float *y, long row_begin,
                                   long row_end, int panel_begin, int panel_end, float *scratch) {
    static const float zeros[CONV_KC_WHOLE];
    const int K = g->out_channels, C = g->channels, W = g->width, H = g->height;
    const long depth = (long)g->kernel_h * g->kernel_w * C;
    const long chunk = depth <= CONV_KC_WHOLE ? depth : CONV_KC;
    const int pointwise = is_pointwise(g);
    // When the depth is one chunk, a row of A is kernel_h segments of kernel_w·C floats, and for output
    // positions whose window lies inside the image horizontally each segment is a run of the input
    // itself (or zeros above and below it): only the horizontal edges are copied.
    const int segmented = !pointwise && chunk == depth && g->kernel_h <= CONV_MAX_SEGMENTS;
    // When the depth goes in chunks that each lie inside one tap (C a multiple of the chunk: ResNet's 3×3
    // convolutions from 128 channels in the AVX-512 tier, 512 in the others), a chunk of row r is a run of
    // the input pixel under that tap, or zeros outside the image, and is read in place as well (with two
    // threads splitting the channels, each thread used to copy every row of every chunk). With one
    // prefetch a step (UK_SEGMENT_STEPS) this brought 7×7×512 on two threads from 8–14 % behind a plain C
    // kernel of the same blocking with its rows laid out beforehand to 3–7 % behind it.
    const int in_tap = !pointwise && chunk < depth && C % chunk == 0;
    const int nseg = segmented ? g->kernel_h : 1;
    const long seglen = segmented ? (long)g->kernel_w * C : 0;
    const long plane = (long)g->out_height * g->out_width;
    const float *rows[CONV_MC * CONV_MAX_SEGMENTS];  // [segment][row]
    const float *block[UK_MR * CONV_MAX_SEGMENTS];   // [segment][UK_MR]
    // Depth chunks outermost: one chunk of the weights (up to CONV_KC × K) stays in cache while every
    // row block passes over it, so the weights are read from memory once per call, not once per block.
    for (long p0 = 0; p0 < depth; p0 += chunk) {
        long kc = depth - p0 < chunk ? depth - p0 : chunk;
        int last = p0 + kc == depth;
        for (long r0 = row_begin; r0 < row_end; r0 += CONV_MC) {
            int mc = row_end - r0 < CONV_MC ? (int)(row_end - r0) : CONV_MC;
            for (int i = 0; i < mc; i++) {
                long r = r0 + i;
                if (pointwise) {
                    rows[i] = x + r * C + p0;
                    continue;
                }
                if (in_tap || segmented) {
                    // The window of output position r: image n, top-left corner (y0, x0).
                    long n = r / plane, rem = r % plane;
                    int oy = (int)(rem / g->out_width), ox = (int)(rem % g->out_width);
                    int y0 = oy * g->stride_h - g->pad_h, x0 = ox * g->stride_w - g->pad_w;
                    if (in_tap) {
                        int tap = (int)(p0 / C);
                        int iy = y0 + tap / g->kernel_w, ix = x0 + tap % g->kernel_w;
                        rows[i] = iy >= 0 && iy < H && ix >= 0 && ix < W
                                      ? x + ((n * H + iy) * W + ix) * C + p0 % C
                                      : zeros;
                        continue;
                    }
                    if (x0 >= 0 && x0 + g->kernel_w <= W) {
                        const float *image = x + n * H * W * C;
                        for (int ky = 0; ky < g->kernel_h; ky++) {
                            int iy = y0 + ky;
                            rows[ky * CONV_MC + i] = iy >= 0 && iy < H ? image + ((long)iy * W + x0) * C : zeros;
                        }
                        continue;
                    }
                }
                NAME(im2col_row)(g, x, r, p0, kc, scratch + (long)i * kc);
                for (int s = 0; s < nseg; s++) rows[s * CONV_MC + i] = scratch + (long)i * kc + s * seglen;
            }
            for (int j = panel_begin; j < panel_end; j += UK_NP) {
                const float *b = packed_w + (long)j * NR * depth + p0 * NR;
                int panels = panel_end - j < UK_NP ? panel_end - j : UK_NP;
                int nc = K - j * NR < NR * panels ? K - j * NR : NR * panels;
                // While this panel group's row blocks run, the next group's slice of the chunk (or the
                // next chunk's first group) is prefetched into L2 in even shares, one share per row
                // block, spread over the block's steps by the micro-kernel: the first row block to touch
                // a slice otherwise waits on memory for all of it (ResNet's 7×7 and 14×14 stride-2
                // layers at batch 1: 0.85–0.9×; a fully-connected layer at batch 1, one block for all
                // of B: 0.82–0.86× against issuing its lines all at once). Only on the first pass over
                // the chunk (later passes find it in L2), and the next chunk only on the last pass.
                const float *next = 0;
                int next_panels = 0;
                long lines = 0;  // per panel: one 64-byte line per row of the slice
                if (j + UK_NP < panel_end) {
                    if (r0 == row_begin) {
                        next = b + (long)UK_NP * NR * depth;
                        next_panels = panel_end - j - UK_NP < UK_NP ? panel_end - j - UK_NP : UK_NP;
                        lines = kc;
                    }
                } else if (!last && r0 + CONV_MC >= row_end) {
                    next = packed_w + (long)panel_begin * NR * depth + (p0 + kc) * NR;
                    next_panels = panel_end - panel_begin < UK_NP ? panel_end - panel_begin : UK_NP;
                    lines = depth - p0 - kc < chunk ? depth - p0 - kc : chunk;
                }
                const long blocks = (mc + UK_MR - 1) / UK_MR, total = lines * next_panels;
                for (int i0 = 0, blk = 0; i0 < mc; i0 += UK_MR, blk++) {
                    int mr = mc - i0 < UK_MR ? mc - i0 : UK_MR;
                    // This block's share [lo, hi) of the slice's lines, panel by panel (one run each).
                    uk_prefetch plan = {{0}, {0}, 0};
                    for (long lo = total * blk / blocks, hi = total * (blk + 1) / blocks; lo < hi;) {
                        long q = lo / lines, end = (q + 1) * lines < hi ? (q + 1) * lines : hi;
                        plan.base[plan.runs] = next + q * NR * depth + (lo - q * lines) * NR;
                        plan.lines[plan.runs++] = end - lo;
                        lo = end;
                    }
                    for (int s = 0; s < nseg; s++)
                        for (int t = 0; t < UK_MR; t++)
                            block[s * UK_MR + t] = rows[s * CONV_MC + i0 + (t < mr ? t : mr - 1)];
                    long at = (r0 + i0) * K + j * NR;
                    NAME(ukernel)(nseg, segmented ? seglen : kc, block, b, (long)NR * depth, y + at, K, mr, nc, p0 > 0,
                                  last && bias ? bias + j * NR : 0, last && residual ? residual + at : 0,
                                  last ? relu : 0, plan.runs ? &plan : 0);
                }
            }
        }
    }
}

/// Rows [row_begin, row_begin + rows) of the full im2col matrix (depth = kh·kw·C columns) into dst.
TARGET static void NAME(im2col_rows)(const pth2swt_conv_shape *g, const float *x, long row_begin, long rows,
                                     float *dst) {
    const long depth = (long)g->kernel_h * g->kernel_w * g->channels;
    for (long i = 0; i < rows; i++) NAME(im2col_row)(g, x, row_begin + i, 0, depth, dst + i * depth);
}

/// The adjoint of im2col_rows: adds each row's columns back onto the input positions they came from
/// (padding positions are dropped).
TARGET static void NAME(col2im_add)(const pth2swt_conv_shape *g, const float *cols, long row_begin, long rows,
                                    float *dx) {
    const int C = g->channels, W = g->width, H = g->height;
    const long plane = (long)g->out_height * g->out_width;
    const long depth = (long)g->kernel_h * g->kernel_w * C;
    for (long i = 0; i < rows; i++) {
        long r = row_begin + i, n = r / plane, rem = r % plane;
        int oy = (int)(rem / g->out_width), ox = (int)(rem % g->out_width);
        int y0 = oy * g->stride_h - g->pad_h, x0 = ox * g->stride_w - g->pad_w;
        float *image = dx + n * H * W * C;
        const float *row = cols + i * depth;
        for (int ky = 0; ky < g->kernel_h; ky++) {
            int iy = y0 + ky;
            if (iy < 0 || iy >= H) continue;
            for (int kx = 0; kx < g->kernel_w; kx++) {
                int ix = x0 + kx;
                if (ix < 0 || ix >= W) continue;
                float *d = image + ((long)iy * W + ix) * C;
                const float *s = row + ((long)ky * g->kernel_w + kx) * C;
                int c = 0;
                for (; c + 8 <= C; c += 8) st8(d + c, ld8(d + c) + ld8(s + c));
                for (; c < C; c++) d[c] += s[c];
            }
        }
    }
}

#undef copy_floats
#undef zero_floats

// ---------------------------------------------------------------------------------------------------
// Winograd F(4×4, 3×3) transforms, eight channels at a time. Bᵀ and Aᵀ use the interpolation points
// 0, ±1, ±2, ∞ (the same matrices as the reference in Winograd.swift).

// One block of channels (VT: v8, or v16 where the tier is sixteen wide) of one tile's input transform.
// The arithmetic per lane is the same at either width, so the bits are too.
#define WINO_IN_BLOCK(VT, LD, ST, SPLAT)                                                                      \
    do {                                                                                                      \
        VT d[36];                                                                                             \
        for (int i = 0; i < 6; i++) {                                                                         \
            int iy = y0 + i;                                                                                  \
            for (int j = 0; j < 6; j++) {                                                                     \
                int ix = x0 + j;                                                                              \
                if (inside || (iy >= 0 && iy < height && ix >= 0 && ix < width))                            \
                    d[i * 6 + j] = LD(image + ((long)iy * width + ix) * channels + c);                        \
                else                                                                                          \
                    d[i * 6 + j] = SPLAT(0);                                                                  \
            }                                                                                                 \
        }                                                                                                     \
        for (int j = 0; j < 6; j++) { /* columns: d ← Bᵀ d */                                                 \
            VT d0 = d[j], d1 = d[6 + j], d2 = d[12 + j], d3 = d[18 + j], d4 = d[24 + j], d5 = d[30 + j];     \
            d[j] = 4 * d0 - 5 * d2 + d4;                                                                      \
            d[6 + j] = -4 * (d1 + d2) + d3 + d4;                                                              \
            d[12 + j] = 4 * (d1 - d2) - d3 + d4;                                                              \
            d[18 + j] = 2 * (d3 - d1) - d2 + d4;                                                              \
            d[24 + j] = 2 * (d1 - d3) - d2 + d4;                                                              \
            d[30 + j] = 4 * d1 - 5 * d3 + d5;                                                                 \
        }                                                                                                     \
        float *out = v + (long)p * channels + c;                                                              \
        for (int i = 0; i < 6; i++) { /* rows: (Bᵀ d) B, to V[ξ = 6i + s][p][c] */                            \
            VT a0 = d[i * 6], a1 = d[i * 6 + 1], a2 = d[i * 6 + 2], a3 = d[i * 6 + 3], a4 = d[i * 6 + 4],     \
               a5 = d[i * 6 + 5];                                                                             \
            float *o = out + (long)(i * 6) * plane;                                                           \
            ST(o, 4 * a0 - 5 * a2 + a4);                                                                      \
            ST(o + plane, -4 * (a1 + a2) + a3 + a4);                                                          \
            ST(o + 2 * plane, 4 * (a1 - a2) - a3 + a4);                                                       \
            ST(o + 3 * plane, 2 * (a3 - a1) - a2 + a4);                                                       \
            ST(o + 4 * plane, 2 * (a1 - a3) - a2 + a4);                                                       \
            ST(o + 5 * plane, 4 * a1 - 5 * a3 + a5);                                                          \
        }                                                                                                     \
    } while (0)

TARGET static void NAME(winograd_input)(const float *x, int height, int width, int channels, int tiles_h, int tiles_w,
                                        long tile_start, int tiles, int p_begin, int p_end, float *v) {
    const long per_image = (long)tiles_h * tiles_w;
    const long plane = (long)tiles * channels;
    for (int p = p_begin; p < p_end; p++) {
        long t = tile_start + p, n = t / per_image, r = t % per_image;
        int y0 = (int)(r / tiles_w) * 4 - 1, x0 = (int)(r % tiles_w) * 4 - 1;
        const float *image = x + n * height * width * channels;
        int inside = y0 >= 0 && x0 >= 0 && y0 + 6 <= height && x0 + 6 <= width;
        int c = 0;
#if VEC_WIDE == 16
        for (; c + 16 <= channels; c += 16) WINO_IN_BLOCK(v16, ld16, st16, splat16);
#endif
        for (; c < channels; c += 8) WINO_IN_BLOCK(v8, ld8, st8, splat8);
    }
}

// One block of channels of one tile's output transform, bias, residual and activation.
#define WINO_OUT_BLOCK(VT, LD, ST, SPLAT, ACT)                                                                \
    do {                                                                                                      \
        const float *src = m + (long)p * channels + k;                                                        \
        VT s[24];                                                                                             \
        for (int j = 0; j < 6; j++) { /* columns: s (4×6) = Aᵀ M */                                           \
            VT q0 = LD(src + (0 * 6 + j) * plane), q1 = LD(src + (1 * 6 + j) * plane);                        \
            VT q2 = LD(src + (2 * 6 + j) * plane), q3 = LD(src + (3 * 6 + j) * plane);                        \
            VT q4 = LD(src + (4 * 6 + j) * plane), q5 = LD(src + (5 * 6 + j) * plane);                        \
            s[j] = q0 + q1 + q2 + q3 + q4;                                                                    \
            s[6 + j] = q1 - q2 + 2 * (q3 - q4);                                                               \
            s[12 + j] = q1 + q2 + 4 * (q3 + q4);                                                              \
            s[18 + j] = q1 - q2 + 8 * (q3 - q4) + q5;                                                         \
        }                                                                                                     \
        VT b = bias ? LD(bias + k) : SPLAT(0);                                                                \
        for (int i = 0; i < rows; i++) {                                                                      \
            VT a0 = s[i * 6], a1 = s[i * 6 + 1], a2 = s[i * 6 + 2], a3 = s[i * 6 + 3], a4 = s[i * 6 + 4],     \
               a5 = s[i * 6 + 5];                                                                             \
            VT out[4] = {a0 + a1 + a2 + a3 + a4 + b, a1 - a2 + 2 * (a3 - a4) + b, a1 + a2 + 4 * (a3 + a4) + b, \
                         a1 - a2 + 8 * (a3 - a4) + a5 + b};                                                   \
            long at = image + ((long)(y0 + i) * out_width + x0) * channels + k;                               \
            for (int j = 0; j < cols; j++) {                                                                  \
                VT o = out[j];                                                                                \
                if (residual) o += LD(residual + at + (long)j * channels);                                    \
                if (relu) o = ACT(o, relu);                                                                   \
                ST(y + at + (long)j * channels, o);                                                           \
            }                                                                                                 \
        }                                                                                                     \
    } while (0)

TARGET static void NAME(winograd_output)(const float *m, int tiles, int channels, int out_height, int out_width,
                                         int tiles_h, int tiles_w, long tile_start, int p_begin, int p_end,
                                         const float *bias, const float *residual, int relu, float *y) {
    const long per_image = (long)tiles_h * tiles_w;
    const long plane = (long)tiles * channels;
    for (int p = p_begin; p < p_end; p++) {
        long t = tile_start + p, n = t / per_image, r = t % per_image;
        int y0 = (int)(r / tiles_w) * 4, x0 = (int)(r % tiles_w) * 4;
        int rows = out_height - y0 < 4 ? out_height - y0 : 4, cols = out_width - x0 < 4 ? out_width - x0 : 4;
        long image = n * out_height * out_width * channels;
        int k = 0;
#if VEC_WIDE == 16
        for (; k + 16 <= channels; k += 16) WINO_OUT_BLOCK(v16, ld16, st16, splat16, act16);
#endif
        for (; k < channels; k += 8) WINO_OUT_BLOCK(v8, ld8, st8, splat8, act8);
    }
}

// ---------------------------------------------------------------------------------------------------
// Max pooling, NHWC, -inf padding, eight channels at a time, then one at a time. With indices (training)
// it also records each maximum's flat index into x: the first maximum in window order, or the last NaN,
// as torch's max_pool2d_with_indices. `with_indices` is a constant at each call, so each entry point
// compiles to its own loop.

TARGET static inline __attribute__((always_inline)) void NAME(max_pool_body)(
    const float *x, int height, int width, int channels, int kernel, int stride, int padding, int out_height,
    int out_width, long row_begin, long row_end, float *y, int *indices, const int with_indices) {
    // Rows are (image, output row) pairs.
    for (long r = row_begin; r < row_end; r++) {
        long n = r / out_height;
        int oy = (int)(r % out_height);
        long base = n * height * width * channels;
        int ylo = oy * stride - padding, yhi = ylo + kernel;
        if (ylo < 0) ylo = 0;
        if (yhi > height) yhi = height;
        for (int ox = 0; ox < out_width; ox++) {
            int xlo = ox * stride - padding, xhi = xlo + kernel;
            if (xlo < 0) xlo = 0;
            if (xhi > width) xhi = width;
            long out = ((n * out_height + oy) * (long)out_width + ox) * channels;
            int c = 0;
            for (; c + 8 <= channels; c += 8) {
                v8 best = splat8(-__builtin_inff());
                v8i at = {-1, -1, -1, -1, -1, -1, -1, -1};
                for (int iy = ylo; iy < yhi; iy++)
                    for (int ix = xlo; ix < xhi; ix++) {
                        long off = base + ((long)iy * width + ix) * channels + c;
                        v8 v = ld8(x + off);
                        // torch propagates NaN: v wins when it is NaN or larger (or, for the index, first).
                        v8i take = (v > best) | (v != v);
                        if (with_indices) {
                            take |= at < 0;
                            int i = (int)off;  // the caller checks that indices fit in int
                            v8i idx = (v8i){i, i + 1, i + 2, i + 3, i + 4, i + 5, i + 6, i + 7};
                            at = (at & ~take) | (idx & take);
                        }
                        best = select8(take, v, best);
                    }
                st8(y + out + c, best);
                if (with_indices) memcpy(indices + out + c, &at, 32);
            }
            for (; c < channels; c++) {
                float best = -__builtin_inff();
                int at = -1;
                for (int iy = ylo; iy < yhi; iy++)
                    for (int ix = xlo; ix < xhi; ix++) {
                        long off = base + ((long)iy * width + ix) * channels + c;
                        float v = x[off];
                        if (v > best || v != v || (with_indices && at < 0)) {
                            best = v;
                            at = (int)off;
                        }
                    }
                y[out + c] = best;
                if (with_indices) indices[out + c] = at;
            }
        }
    }
}

TARGET static void NAME(max_pool)(const float *x, int height, int width, int channels, int kernel, int stride,
                                  int padding, int out_height, int out_width, long row_begin, long row_end, float *y) {
    NAME(max_pool_body)(x, height, width, channels, kernel, stride, padding, out_height, out_width, row_begin, row_end, y,
                        0, 0);
}

TARGET static void NAME(max_pool_indices)(const float *x, int height, int width, int channels, int kernel, int stride,
                                          int padding, int out_height, int out_width, long row_begin, long row_end,
                                          float *y, int *indices) {
    NAME(max_pool_body)(x, height, width, channels, kernel, stride, padding, out_height, out_width, row_begin, row_end, y,
                        indices, 1);
}

// ---------------------------------------------------------------------------------------------------
// Winograd F(4×4, 3×3) weight transform U = G g Gᵀ, written straight into the GEMM's packed B layout:
// for each ξ, at packed + ξ·each, [⌈K/NR⌉ panels][C][NR] (zero past K), for panels [panel_begin, panel_end).
// A panel's NR filters are transformed together, so each ξ's output is written NR floats at a time and
// each filter is read in order. With `flipped` the filters are the input-gradient convolution's: of w
// [in_channels][out_channels][3][3], g(o, i) = w[i][o] turned 180°.

TARGET static void NAME(winograd_weights_packed)(const float *w, int out_channels, int in_channels, int flipped,
                                                 int panel_begin, int panel_end, float *packed) {
    enum { NR = PTH2SWT_GEMM_NR };
    const long each = (long)((out_channels + NR - 1) / NR) * NR * in_channels;
    for (int pn = panel_begin; pn < panel_end; pn++)
        for (int i = 0; i < in_channels; i++) {
            float u[36][NR];
            for (int q = 0; q < NR; q++) {
                int o = pn * NR + q;
                if (o >= out_channels) {
                    for (int x = 0; x < 36; x++) u[x][q] = 0;
                    continue;
                }
                float g[9];
                if (flipped) {
                    const float *f = w + ((long)i * out_channels + o) * 9;
                    for (int t = 0; t < 9; t++) g[t] = f[8 - t];
                } else {
                    const float *f = w + ((long)o * in_channels + i) * 9;
                    for (int t = 0; t < 9; t++) g[t] = f[t];
                }
                float t6[6][3];  // G g
                for (int col = 0; col < 3; col++) {
                    float g0 = g[col], g1 = g[3 + col], g2 = g[6 + col];
                    t6[0][col] = g0 / 4;
                    t6[1][col] = -(g0 + g1 + g2) / 6;
                    t6[2][col] = -(g0 - g1 + g2) / 6;
                    t6[3][col] = g0 / 24 + g1 / 12 + g2 / 6;
                    t6[4][col] = g0 / 24 - g1 / 12 + g2 / 6;
                    t6[5][col] = g2;
                }
                for (int r = 0; r < 6; r++) {  // (G g) Gᵀ
                    float g0 = t6[r][0], g1 = t6[r][1], g2 = t6[r][2];
                    u[r * 6 + 0][q] = g0 / 4;
                    u[r * 6 + 1][q] = -(g0 + g1 + g2) / 6;
                    u[r * 6 + 2][q] = -(g0 - g1 + g2) / 6;
                    u[r * 6 + 3][q] = g0 / 24 + g1 / 12 + g2 / 6;
                    u[r * 6 + 4][q] = g0 / 24 - g1 / 12 + g2 / 6;
                    u[r * 6 + 5][q] = g2;
                }
            }
            for (int x = 0; x < 36; x++)
                memcpy(packed + x * each + ((long)pn * in_channels + i) * NR, u[x], sizeof u[x]);
        }
}

// ---------------------------------------------------------------------------------------------------
// Winograd F(4×4, 3×3) weight gradient: the backward pass of y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A with respect
// to g. Per tile dM = A dY Aᵀ (dY's 4×4 tile, zero beyond the output), dU[ξ] = Σ_tiles V[ξ]ᵀ dM[ξ] (the
// GEMMs, in Swift), and dg = Gᵀ dU G. The forward's input transform gives V.

// dM[ξ = 6a + b][p][k] for tiles [p_begin, p_end) of dy (NHWC, [n][out_h][out_w][channels]).
// One block of channels of one tile's output-gradient transform.
#define WINO_GRAD_BLOCK(VT, LD, ST, SPLAT)                                                                    \
    do {                                                                                                      \
        VT q[16];                                                                                             \
        for (int i = 0; i < 4; i++)                                                                           \
            for (int j = 0; j < 4; j++)                                                                       \
                q[i * 4 + j] = i < rows && j < cols                                                           \
                                   ? LD(image + ((long)(y0 + i) * out_width + x0 + j) * channels + k)         \
                                   : SPLAT(0);                                                                \
        VT s[24]; /* s (6×4) = A q: column j of q to six values */                                            \
        for (int j = 0; j < 4; j++) {                                                                         \
            VT q0 = q[j], q1 = q[4 + j], q2 = q[8 + j], q3 = q[12 + j];                                       \
            s[j] = q0;                                                                                        \
            s[4 + j] = q0 + q1 + q2 + q3;                                                                     \
            s[8 + j] = q0 - q1 + q2 - q3;                                                                     \
            s[12 + j] = q0 + 2 * q1 + 4 * q2 + 8 * q3;                                                        \
            s[16 + j] = q0 - 2 * q1 + 4 * q2 - 8 * q3;                                                        \
            s[20 + j] = q3;                                                                                   \
        }                                                                                                     \
        float *out = dm + (long)p * channels + k;                                                             \
        for (int a = 0; a < 6; a++) { /* rows: (A q) Aᵀ, to dM[6a + b][p][k] */                               \
            VT a0 = s[a * 4], a1 = s[a * 4 + 1], a2 = s[a * 4 + 2], a3 = s[a * 4 + 3];                        \
            float *o = out + (long)(a * 6) * plane;                                                           \
            ST(o, a0);                                                                                        \
            ST(o + plane, a0 + a1 + a2 + a3);                                                                 \
            ST(o + 2 * plane, a0 - a1 + a2 - a3);                                                             \
            ST(o + 3 * plane, a0 + 2 * a1 + 4 * a2 + 8 * a3);                                                 \
            ST(o + 4 * plane, a0 - 2 * a1 + 4 * a2 - 8 * a3);                                                 \
            ST(o + 5 * plane, a3);                                                                            \
        }                                                                                                     \
    } while (0)

TARGET static void NAME(winograd_grad_output)(const float *dy, int out_height, int out_width, int channels,
                                              int tiles_h, int tiles_w, long tile_start, int tiles, int p_begin,
                                              int p_end, float *dm) {
    const long per_image = (long)tiles_h * tiles_w;
    const long plane = (long)tiles * channels;
    for (int p = p_begin; p < p_end; p++) {
        long t = tile_start + p, n = t / per_image, r = t % per_image;
        int y0 = (int)(r / tiles_w) * 4, x0 = (int)(r % tiles_w) * 4;
        int rows = out_height - y0 < 4 ? out_height - y0 : 4, cols = out_width - x0 < 4 ? out_width - x0 : 4;
        const float *image = dy + n * out_height * out_width * channels;
        int k = 0;
#if VEC_WIDE == 16
        for (; k + 16 <= channels; k += 16) WINO_GRAD_BLOCK(v16, ld16, st16, splat16);
#endif
        for (; k < channels; k += 8) WINO_GRAD_BLOCK(v8, ld8, st8, splat8);
    }
}

// dg = Gᵀ dU G from dU[36][C][K] into dw [K][C][3][3] (torch's layout), for output channels [k_begin, k_end).
// Per input channel and block of up to WG_OB output channels, the 36 runs of dU are first copied one after
// another into a local buffer whose rows are padded by a cache line: read in place, the 36 planes lie
// C·K floats apart (a multiple of 4 KB), so their lines fall in the same cache sets and evict each other
// (ResNet-18's layer3 shape took 15 ms this way). Then eight output channels at a time as vectors, each lane
// computing what the scalar tail computes in the same order (the same bits), and each lane's nine results
// go to its own row of dw.
#define WINO_WGRAD_COLUMN(U0, U1, U2, U3, U4, U5, R0, R1, R2)                                                \
    do {                                                                                                      \
        R0 = U0 / 4 - U1 / 6 - U2 / 6 + U3 / 24 + U4 / 24;                                                    \
        R1 = -U1 / 6 + U2 / 6 + U3 / 12 - U4 / 12;                                                            \
        R2 = -U1 / 6 - U2 / 6 + U3 / 6 + U4 / 6 + U5;                                                         \
    } while (0)
enum { WG_OB = 256, WG_ROW = WG_OB + 16 };
TARGET static void NAME(winograd_weights_grad)(const float *du, int out_channels, int in_channels, int k_begin,
                                               int k_end, float *dw) {
    const long ck = (long)in_channels * out_channels;
    float buf[36 * WG_ROW];
    for (int i = 0; i < in_channels; i++)
        for (int ob = k_begin; ob < k_end; ob += WG_OB) {
            const int on = k_end - ob < WG_OB ? k_end - ob : WG_OB;
            for (int x = 0; x < 36; x++)
                memcpy(buf + x * WG_ROW, du + x * ck + (long)i * out_channels + ob, sizeof(float) * (size_t)on);
            int o = 0;
            for (; o + 8 <= on; o += 8) {
                v8 t[3][6];  // t = Gᵀ dU (columns b)
                for (int b = 0; b < 6; b++) {
                    v8 u[6];
                    for (int a = 0; a < 6; a++) u[a] = ld8(buf + (a * 6 + b) * WG_ROW + o);
                    WINO_WGRAD_COLUMN(u[0], u[1], u[2], u[3], u[4], u[5], t[0][b], t[1][b], t[2][b]);
                }
                v8 g[9];
                for (int r = 0; r < 3; r++) {
                    const v8 *u = t[r];
                    WINO_WGRAD_COLUMN(u[0], u[1], u[2], u[3], u[4], u[5], g[r * 3], g[r * 3 + 1], g[r * 3 + 2]);
                }
                for (int l = 0; l < 8; l++) {
                    float *d = dw + ((long)(ob + o + l) * in_channels + i) * 9;
                    for (int q = 0; q < 9; q++) d[q] = g[q][l];
                }
            }
            for (; o < on; o++) {
                float t[3][6];
                for (int b = 0; b < 6; b++) {
                    float u[6];
                    for (int a = 0; a < 6; a++) u[a] = buf[(a * 6 + b) * WG_ROW + o];
                    WINO_WGRAD_COLUMN(u[0], u[1], u[2], u[3], u[4], u[5], t[0][b], t[1][b], t[2][b]);
                }
                float *g = dw + ((long)(ob + o) * in_channels + i) * 9;
                for (int r = 0; r < 3; r++) {
                    const float *u = t[r];
                    WINO_WGRAD_COLUMN(u[0], u[1], u[2], u[3], u[4], u[5], g[r * 3], g[r * 3 + 1], g[r * 3 + 2]);
                }
            }
        }
}
#undef WINO_WGRAD_COLUMN

// ---------------------------------------------------------------------------------------------------
// Depthwise convolution (groups = channels = out_channels), NHWC: each output channel is one input
// channel's kh×kw window, so the work is eight channels at a time with the taps in an inner loop, and
// the input is read in place. w is [kh·kw][C] (tap-major). Rows are (image, output row) pairs. Interior
// positions (the whole window inside the image horizontally) go four at a time so each tap's weights
// are loaded once per four outputs; the edges one at a time with their windows clipped.

#if VEC_WIDE == 16
#define DW_V v16
#define DW_LD ld16
#define DW_ST st16
#define DW_SPLAT splat16
#define DW_ACT act16
#else
#define DW_V v8
#define DW_LD ld8
#define DW_ST st8
#define DW_SPLAT splat8
#define DW_ACT act8
#endif

TARGET static inline __attribute__((always_inline)) void NAME(depthwise_one)(
    const pth2swt_conv_shape *g, const float *image, const float *w, const float *bias, int act, int ylo, int yhi,
    int y0, int ox, float *out) {
    const int C = g->channels, W = g->width, kw = g->kernel_w;
    int x0 = ox * g->stride_w - g->pad_w, xlo = x0 < 0 ? 0 : x0, xhi = x0 + kw > W ? W : x0 + kw;
    int c = 0;
    // Four channel blocks at once: four independent sums, so the FMA latency overlaps.
    for (; c + 4 * VEC_WIDE <= C; c += 4 * VEC_WIDE) {
        DW_V a0, a1, a2, a3;
        if (bias)
            a0 = DW_LD(bias + c), a1 = DW_LD(bias + c + VEC_WIDE), a2 = DW_LD(bias + c + 2 * VEC_WIDE),
            a3 = DW_LD(bias + c + 3 * VEC_WIDE);
        else
            a0 = a1 = a2 = a3 = DW_SPLAT(0);
        for (int iy = ylo; iy < yhi; iy++)
            for (int ix = xlo; ix < xhi; ix++) {
                const float *s = image + ((long)iy * W + ix) * C + c;
                const float *t = w + (long)((iy - y0) * kw + ix - x0) * C + c;
                a0 += DW_LD(s) * DW_LD(t);
                a1 += DW_LD(s + VEC_WIDE) * DW_LD(t + VEC_WIDE);
                a2 += DW_LD(s + 2 * VEC_WIDE) * DW_LD(t + 2 * VEC_WIDE);
                a3 += DW_LD(s + 3 * VEC_WIDE) * DW_LD(t + 3 * VEC_WIDE);
            }
        if (act) a0 = DW_ACT(a0, act), a1 = DW_ACT(a1, act), a2 = DW_ACT(a2, act), a3 = DW_ACT(a3, act);
        DW_ST(out + c, a0);
        DW_ST(out + c + VEC_WIDE, a1);
        DW_ST(out + c + 2 * VEC_WIDE, a2);
        DW_ST(out + c + 3 * VEC_WIDE, a3);
    }
    for (; c + 8 <= C; c += 8) {
        v8 acc = bias ? ld8(bias + c) : splat8(0);
        for (int iy = ylo; iy < yhi; iy++)
            for (int ix = xlo; ix < xhi; ix++)
                acc += ld8(image + ((long)iy * W + ix) * C + c) * ld8(w + (long)((iy - y0) * kw + ix - x0) * C + c);
        if (act) acc = act8(acc, act);
        st8(out + c, acc);
    }
    for (; c < C; c++) {
        float acc = bias ? bias[c] : 0;
        for (int iy = ylo; iy < yhi; iy++)
            for (int ix = xlo; ix < xhi; ix++)
                acc += image[((long)iy * W + ix) * C + c] * w[(long)((iy - y0) * kw + ix - x0) * C + c];
        if (act) acc = act1(acc, act);
        out[c] = acc;
    }
}

// The 3×3 interior: a tier-wide channel block (VEC_WIDE floats) at a time, eight outputs at once so eight
// independent accumulators hide the FMA latency, the block's nine weights loaded once per row. Each
// output sums bias, then its rows top to bottom and taps left to right, as depthwise_one does.
#define DW_TAPS8(s, wv)                                                                                        \
    do {                                                                                                       \
        a0 += DW_LD((s)) * (wv);                                                                               \
        a1 += DW_LD((s) + step) * (wv);                                                                        \
        a2 += DW_LD((s) + 2 * step) * (wv);                                                                    \
        a3 += DW_LD((s) + 3 * step) * (wv);                                                                    \
        a4 += DW_LD((s) + 4 * step) * (wv);                                                                    \
        a5 += DW_LD((s) + 5 * step) * (wv);                                                                    \
        a6 += DW_LD((s) + 6 * step) * (wv);                                                                    \
        a7 += DW_LD((s) + 7 * step) * (wv);                                                                    \
    } while (0)
#define DW_ROW8(s, u0, u1, u2)                                                                                 \
    do {                                                                                                       \
        DW_TAPS8((s), u0);                                                                                     \
        DW_TAPS8((s) + C, u1);                                                                                 \
        DW_TAPS8((s) + 2 * C, u2);                                                                             \
    } while (0)
#define DW_ROW1(s, u0, u1, u2) (a0 += DW_LD((s)) * (u0), a0 += DW_LD((s) + C) * (u1), a0 += DW_LD((s) + 2 * C) * (u2))

/// Channels [0, returned) of output row oy's interior columns [in_lo, in_hi) of a 3×3 depthwise
/// convolution; the caller does the channels past the last full block.
TARGET static inline __attribute__((always_inline)) int NAME(depthwise3_interior)(
    const pth2swt_conv_shape *g, const float *image, const float *w, const float *bias, int act, int ylo,
    int yhi, int y0, int in_lo, int in_hi, float *row) {
    const int C = g->channels, W = g->width, sw = g->stride_w, rows = yhi - ylo;
    const long step = (long)sw * C, rowstride = (long)W * C;
    const float *wr = w + (long)(ylo - y0) * 3 * C;
    int c = 0;
    for (; c + VEC_WIDE <= C; c += VEC_WIDE) {
        const DW_V zero = DW_SPLAT(0), b = bias ? DW_LD(bias + c) : zero;
        const DW_V u0 = DW_LD(wr + c), u1 = DW_LD(wr + C + c), u2 = DW_LD(wr + 2 * C + c);
        DW_V v0 = zero, v1 = zero, v2 = zero, t0 = zero, t1 = zero, t2 = zero;
        if (rows > 1) v0 = DW_LD(wr + 3 * C + c), v1 = DW_LD(wr + 4 * C + c), v2 = DW_LD(wr + 5 * C + c);
        if (rows > 2) t0 = DW_LD(wr + 6 * C + c), t1 = DW_LD(wr + 7 * C + c), t2 = DW_LD(wr + 8 * C + c);
        const float *src = image + (long)ylo * rowstride + c;
        // Groups of eight; a ragged end is one more group ending at in_hi (it recomputes a few outputs
        // with the same sums), so only interiors narrower than eight go one output at a time.
        int ox = in_lo;
        for (; ox < in_hi && in_hi - in_lo >= 8; ox += 8) {
            if (ox + 8 > in_hi) ox = in_hi - 8;
            const float *s = src + (long)(ox * sw - g->pad_w) * C;
            DW_V a0 = b, a1 = b, a2 = b, a3 = b, a4 = b, a5 = b, a6 = b, a7 = b;
            DW_ROW8(s, u0, u1, u2);
            if (rows > 1) DW_ROW8(s + rowstride, v0, v1, v2);
            if (rows > 2) DW_ROW8(s + 2 * rowstride, t0, t1, t2);
            if (act) {
                a0 = DW_ACT(a0, act), a1 = DW_ACT(a1, act), a2 = DW_ACT(a2, act), a3 = DW_ACT(a3, act);
                a4 = DW_ACT(a4, act), a5 = DW_ACT(a5, act), a6 = DW_ACT(a6, act), a7 = DW_ACT(a7, act);
            }
            float *o = row + (long)ox * C + c;
            DW_ST(o, a0); DW_ST(o + C, a1); DW_ST(o + 2 * C, a2); DW_ST(o + 3 * C, a3);
            DW_ST(o + 4 * C, a4); DW_ST(o + 5 * C, a5); DW_ST(o + 6 * C, a6); DW_ST(o + 7 * C, a7);
        }
        for (; ox < in_hi; ox++) {
            const float *s = src + (long)(ox * sw - g->pad_w) * C;
            DW_V a0 = b;
            DW_ROW1(s, u0, u1, u2);
            if (rows > 1) DW_ROW1(s + rowstride, v0, v1, v2);
            if (rows > 2) DW_ROW1(s + 2 * rowstride, t0, t1, t2);
            if (act) a0 = DW_ACT(a0, act);
            DW_ST(row + (long)ox * C + c, a0);
        }
    }
    return c;
}

TARGET static void NAME(depthwise)(const pth2swt_conv_shape *g, const float *x, const float *w, const float *bias,
                                   int act, float *y, long row_begin, long row_end) {
    const int C = g->channels, H = g->height, W = g->width, kw = g->kernel_w, sw = g->stride_w;
    const int oW = g->out_width;
    // Interior columns: x0 = ox·s − pad ≥ 0 and x0 + kw ≤ W.
    int in_lo = (g->pad_w + sw - 1) / sw, in_hi = W - kw + g->pad_w < 0 ? 0 : (W - kw + g->pad_w) / sw + 1;
    if (in_hi > oW) in_hi = oW;
    if (in_lo > in_hi) in_lo = in_hi;
    for (long r = row_begin; r < row_end; r++) {
        long n = r / g->out_height;
        int oy = (int)(r % g->out_height);
        const float *image = x + n * H * W * C;
        float *row = y + r * oW * C;
        int y0 = oy * g->stride_h - g->pad_h, ylo = y0 < 0 ? 0 : y0, yhi = y0 + g->kernel_h > H ? H : y0 + g->kernel_h;
        for (int ox = 0; ox < in_lo; ox++) NAME(depthwise_one)(g, image, w, bias, act, ylo, yhi, y0, ox, row + (long)ox * C);
        int c_done = 0;
        if (g->kernel_h == 3 && kw == 3 && yhi > ylo)
            c_done = NAME(depthwise3_interior)(g, image, w, bias, act, ylo, yhi, y0, in_lo, in_hi, row);
        int ox = c_done == C ? in_hi : in_lo;
        for (; ox + 4 <= in_hi; ox += 4) {
            int c = c_done;
            const float *base = image + (long)(ox * sw - g->pad_w) * C;
            for (; c + 8 <= C; c += 8) {
                v8 b = bias ? ld8(bias + c) : splat8(0);
                v8 a0 = b, a1 = b, a2 = b, a3 = b;
                for (int iy = ylo; iy < yhi; iy++) {
                    const float *src = base + (long)iy * W * C + c;
                    const float *wt = w + (long)(iy - y0) * kw * C + c;
                    for (int kx = 0; kx < kw; kx++) {
                        v8 wv = ld8(wt + (long)kx * C);
                        const float *s = src + (long)kx * C;
                        a0 += ld8(s) * wv;
                        a1 += ld8(s + (long)sw * C) * wv;
                        a2 += ld8(s + (long)2 * sw * C) * wv;
                        a3 += ld8(s + (long)3 * sw * C) * wv;
                    }
                }
                if (act) {
                    a0 = act8(a0, act);
                    a1 = act8(a1, act);
                    a2 = act8(a2, act);
                    a3 = act8(a3, act);
                }
                float *o = row + (long)ox * C + c;
                st8(o, a0);
                st8(o + C, a1);
                st8(o + 2 * C, a2);
                st8(o + 3 * C, a3);
            }
            if (c < C)
                for (int j = 0; j < 4; j++) {
                    // The channels past the last eight, one at a time.
                    int x0 = (ox + j) * sw - g->pad_w;
                    for (int cc = c; cc < C; cc++) {
                        float acc = bias ? bias[cc] : 0;
                        for (int iy = ylo; iy < yhi; iy++)
                            for (int kx = 0; kx < kw; kx++)
                                acc += image[((long)iy * W + x0 + kx) * C + cc] * w[(long)((iy - y0) * kw + kx) * C + cc];
                        if (act) acc = act1(acc, act);
                        row[(long)(ox + j) * C + cc] = acc;
                    }
                }
        }
        for (; ox < oW; ox++) NAME(depthwise_one)(g, image, w, bias, act, ylo, yhi, y0, ox, row + (long)ox * C);
    }
}
