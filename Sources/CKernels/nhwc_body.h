// The NHWC kernels' bodies, compiled twice by nhwc.c: once for AVX2+FMA (SUFFIX _avx2, TARGET the
// target attribute) and once portable (SUFFIX _generic). Eight-float vectors are GCC/Clang vector
// extensions, so the arithmetic is written once and each build lowers it to its own instructions.
//
// Requires: v8, ld8, st8, splat8, relu8, select8 and NAME(x) from nhwc.c.

// ---------------------------------------------------------------------------------------------------
// Micro-kernel: a 6×16 block of C = A · B, where row t of A is a6[t][0..<k] (any six pointers) and B is
// one packed panel (k rows of 16). acc: add the block to what C holds. Then, if given, + bias[0..<16],
// + residual (same layout as C), max(0, ·).

TARGET static void NAME(ukernel)(long k, const float *const *a6, const float *b, float *c, long ldc, int mr, int nr,
                                 int acc, const float *bias, const float *residual, int relu) {
    const float *a0 = a6[0], *a1 = a6[1], *a2 = a6[2], *a3 = a6[3], *a4 = a6[4], *a5 = a6[5];
    v8 c00 = splat8(0), c01 = splat8(0), c10 = splat8(0), c11 = splat8(0), c20 = splat8(0), c21 = splat8(0);
    v8 c30 = splat8(0), c31 = splat8(0), c40 = splat8(0), c41 = splat8(0), c50 = splat8(0), c51 = splat8(0);
    for (long p = 0; p < k; p++, b += 16) {
        v8 b0 = ld8(b), b1 = ld8(b + 8), x;
        x = splat8(a0[p]); c00 += x * b0; c01 += x * b1;
        x = splat8(a1[p]); c10 += x * b0; c11 += x * b1;
        x = splat8(a2[p]); c20 += x * b0; c21 += x * b1;
        x = splat8(a3[p]); c30 += x * b0; c31 += x * b1;
        x = splat8(a4[p]); c40 += x * b0; c41 += x * b1;
        x = splat8(a5[p]); c50 += x * b0; c51 += x * b1;
    }
    v8 rows[12] = {c00, c01, c10, c11, c20, c21, c30, c31, c40, c41, c50, c51};
    if (nr == 16) {
        v8 bias0 = bias ? ld8(bias) : splat8(0), bias1 = bias ? ld8(bias + 8) : splat8(0);
        for (int i = 0; i < mr; i++) {
            float *row = c + i * ldc;
            v8 r0 = rows[2 * i], r1 = rows[2 * i + 1];
            if (acc) { r0 += ld8(row); r1 += ld8(row + 8); }
            r0 += bias0; r1 += bias1;
            if (residual) { r0 += ld8(residual + i * ldc); r1 += ld8(residual + i * ldc + 8); }
            if (relu) {
                r0 = relu8(r0);
                r1 = relu8(r1);
            }
            st8(row, r0);
            st8(row + 8, r1);
        }
        return;
    }
    float block[96];
    for (int i = 0; i < 12; i++) st8(block + 8 * i, rows[i]);
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float v = block[i * 16 + j];
            if (acc) v += c[i * ldc + j];
            if (bias) v += bias[j];
            if (residual) v += residual[i * ldc + j];
            if (relu && v < 0) v = 0;
            c[i * ldc + j] = v;
        }
}

// ---------------------------------------------------------------------------------------------------
// Winograd F(4×4, 3×3) transforms, eight channels at a time. Bᵀ and Aᵀ use the interpolation points
// 0, ±1, ±2, ∞ (the same matrices as the reference in Winograd.swift).

TARGET static void NAME(winograd_input)(const float *x, int height, int width, int channels, int tiles_h, int tiles_w,
                                        long tile_start, int tiles, int p_begin, int p_end, float *v) {
    const long per_image = (long)tiles_h * tiles_w;
    const long plane = (long)tiles * channels;
    for (int p = p_begin; p < p_end; p++) {
        long t = tile_start + p, n = t / per_image, r = t % per_image;
        int y0 = (int)(r / tiles_w) * 4 - 1, x0 = (int)(r % tiles_w) * 4 - 1;
        const float *image = x + n * height * width * channels;
        int inside = y0 >= 0 && x0 >= 0 && y0 + 6 <= height && x0 + 6 <= width;
        for (int c = 0; c < channels; c += 8) {
            v8 d[36];
            for (int i = 0; i < 6; i++) {
                int iy = y0 + i;
                for (int j = 0; j < 6; j++) {
                    int ix = x0 + j;
                    if (inside || (iy >= 0 && iy < height && ix >= 0 && ix < width))
                        d[i * 6 + j] = ld8(image + ((long)iy * width + ix) * channels + c);
                    else
                        d[i * 6 + j] = splat8(0);
                }
            }
            for (int j = 0; j < 6; j++) {  // columns: d ← Bᵀ d
                v8 d0 = d[j], d1 = d[6 + j], d2 = d[12 + j], d3 = d[18 + j], d4 = d[24 + j], d5 = d[30 + j];
                d[j] = 4 * d0 - 5 * d2 + d4;
                d[6 + j] = -4 * (d1 + d2) + d3 + d4;
                d[12 + j] = 4 * (d1 - d2) - d3 + d4;
                d[18 + j] = 2 * (d3 - d1) - d2 + d4;
                d[24 + j] = 2 * (d1 - d3) - d2 + d4;
                d[30 + j] = 4 * d1 - 5 * d3 + d5;
            }
            float *out = v + (long)p * channels + c;
            for (int i = 0; i < 6; i++) {  // rows: (Bᵀ d) B, to V[ξ = 6i + s][p][c]
                v8 a0 = d[i * 6], a1 = d[i * 6 + 1], a2 = d[i * 6 + 2], a3 = d[i * 6 + 3], a4 = d[i * 6 + 4],
                   a5 = d[i * 6 + 5];
                float *o = out + (long)(i * 6) * plane;
                st8(o, 4 * a0 - 5 * a2 + a4);
                st8(o + plane, -4 * (a1 + a2) + a3 + a4);
                st8(o + 2 * plane, 4 * (a1 - a2) - a3 + a4);
                st8(o + 3 * plane, 2 * (a3 - a1) - a2 + a4);
                st8(o + 4 * plane, 2 * (a1 - a3) - a2 + a4);
                st8(o + 5 * plane, 4 * a1 - 5 * a3 + a5);
            }
        }
    }
}

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
        for (int k = 0; k < channels; k += 8) {
            const float *src = m + (long)p * channels + k;
            v8 s[24];
            for (int j = 0; j < 6; j++) {  // columns: s (4×6) = Aᵀ M
                v8 q0 = ld8(src + (0 * 6 + j) * plane), q1 = ld8(src + (1 * 6 + j) * plane);
                v8 q2 = ld8(src + (2 * 6 + j) * plane), q3 = ld8(src + (3 * 6 + j) * plane);
                v8 q4 = ld8(src + (4 * 6 + j) * plane), q5 = ld8(src + (5 * 6 + j) * plane);
                s[j] = q0 + q1 + q2 + q3 + q4;
                s[6 + j] = q1 - q2 + 2 * (q3 - q4);
                s[12 + j] = q1 + q2 + 4 * (q3 + q4);
                s[18 + j] = q1 - q2 + 8 * (q3 - q4) + q5;
            }
            v8 b = bias ? ld8(bias + k) : splat8(0);
            for (int i = 0; i < rows; i++) {
                v8 a0 = s[i * 6], a1 = s[i * 6 + 1], a2 = s[i * 6 + 2], a3 = s[i * 6 + 3], a4 = s[i * 6 + 4],
                   a5 = s[i * 6 + 5];
                v8 out[4] = {a0 + a1 + a2 + a3 + a4 + b, a1 - a2 + 2 * (a3 - a4) + b, a1 + a2 + 4 * (a3 + a4) + b,
                             a1 - a2 + 8 * (a3 - a4) + a5 + b};
                long at = image + ((long)(y0 + i) * out_width + x0) * channels + k;
                for (int j = 0; j < cols; j++) {
                    v8 o = out[j];
                    if (residual) o += ld8(residual + at + (long)j * channels);
                    if (relu) o = relu8(o);
                    st8(y + at + (long)j * channels, o);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------
// Max pooling, NHWC, -inf padding, eight channels at a time, then one at a time.

TARGET static void NAME(max_pool)(const float *x, int height, int width, int channels, int kernel, int stride,
                                  int padding, int out_height, int out_width, long row_begin, long row_end, float *y) {
    // Rows are (image, output row) pairs.
    for (long r = row_begin; r < row_end; r++) {
        long n = r / out_height;
        int oy = (int)(r % out_height);
        const float *image = x + n * height * width * channels;
        int ylo = oy * stride - padding, yhi = ylo + kernel;
        if (ylo < 0) ylo = 0;
        if (yhi > height) yhi = height;
        for (int ox = 0; ox < out_width; ox++) {
            int xlo = ox * stride - padding, xhi = xlo + kernel;
            if (xlo < 0) xlo = 0;
            if (xhi > width) xhi = width;
            float *out = y + ((n * out_height + oy) * (long)out_width + ox) * channels;
            int c = 0;
            for (; c + 8 <= channels; c += 8) {
                v8 best = splat8(-__builtin_inff());
                for (int iy = ylo; iy < yhi; iy++)
                    for (int ix = xlo; ix < xhi; ix++) {
                        v8 v = ld8(image + ((long)iy * width + ix) * channels + c);
                        // torch propagates NaN: v wins when it is NaN or larger.
                        best = select8((v > best) | (v != v), v, best);
                    }
                st8(out + c, best);
            }
            for (; c < channels; c++) {
                float best = -__builtin_inff();
                for (int iy = ylo; iy < yhi; iy++)
                    for (int ix = xlo; ix < xhi; ix++) {
                        float v = image[((long)iy * width + ix) * channels + c];
                        if (v > best || v != v) best = v;
                    }
                out[c] = best;
            }
        }
    }
}
