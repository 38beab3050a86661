/* The element-wise kernels of the forward pass, instantiated once per kernel path by
 * kernels.c: KE(name) names the variant's function, KE_ATTR its target attribute. No include
 * guard: included once per variant. */

/* out[n][d] = (x[n][d] - mean) / sqrt(var + eps) · w[d] + b[d] per row; out may be x */
static KE_ATTR void KE(layernorm)(float *out, const float *x, const float *w, const float *b,
                                  size_t n, size_t d, float eps) {
    long rows = (long)n;
    /* the sums in double over fixed lanes (sum_lanes_d), the same bits on every path */
#pragma omp parallel for if (n * d > 32768) schedule(static)
    for (long r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * d;
        float *yr = out + (size_t)r * d;
        double mean = sum_lanes_d(xr, d, 0.0, 0) / (double)d;
        double var = sum_lanes_d(xr, d, mean, 1) / (double)d;
        float inv = (float)(1.0 / sqrt(var + (double)eps));
        float fm = (float)mean;
#pragma omp simd
        for (size_t c = 0; c < d; c++) yr[c] = (xr[c] - fm) * inv * w[c] + b[c];
    }
}

/* x[count] = act(x), in blocks of 4096 spread over the threads when there are many */
static KE_ATTR void KE(activation)(float *x, size_t count, act_kind act) {
    long nb = (long)((count + 4095) / 4096);
#pragma omp parallel for if (count > 32768) schedule(static)
    for (long b = 0; b < nb; b++) {
        long lo = b * 4096, m = (long)count - lo < 4096 ? (long)count - lo : 4096;
        act_block(x + lo, m, act);
    }
}

/* x[rows][n]: each row = exp(row - max) / Σ exp(row - max); -inf entries become 0. Rows go in
 * blocks of about 1024 entries so that the exponentials of short rows (a 13-token head) run as
 * one long vector loop instead of many masked remainders. */
static KE_ATTR void KE(softmax_rows)(float *x, size_t rows, size_t n) {
    size_t per = n >= 1024 ? 1 : 1024 / (n ? n : 1);
    long nb = (long)((rows + per - 1) / per);
#pragma omp parallel for if (rows * n > 32768) schedule(static)
    for (long bi = 0; bi < nb; bi++) {
        size_t r0 = (size_t)bi * per, r1 = r0 + per < rows ? r0 + per : rows;
        float *blk = x + r0 * n;
        for (size_t r = r0; r < r1; r++) {
            float *row = x + r * n;
            float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
            for (size_t j = 0; j < n; j++) mx = row[j] > mx ? row[j] : mx;
#pragma omp simd
            for (size_t j = 0; j < n; j++) row[j] -= mx;
        }
        size_t cnt = (r1 - r0) * n;
#pragma omp simd
        for (size_t k = 0; k < cnt; k++) blk[k] = exp_v(blk[k]);
        for (size_t r = r0; r < r1; r++) {
            float *row = x + r * n;
            float inv = 1.0f / sum_lanes_f(row, n);
            for (size_t j = 0; j < n; j++) row[j] *= inv;
        }
    }
}

/* out[n][d] = x[n][d] / sqrt(mean(x²) + eps) · w[d] per row (RMSNorm: no mean, no bias); out
 * may be x. The product in transformers' order, w · (x · inv). */
static KE_ATTR void KE(rmsnorm)(float *out, const float *x, const float *w, size_t n, size_t d,
                                float eps) {
    long rows = (long)n;
    /* the sum of squares in double over fixed lanes, as layernorm's: the same bits on every
     * path */
#pragma omp parallel for if (n * d > 32768) schedule(static)
    for (long r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * d;
        float *yr = out + (size_t)r * d;
        double ms = sum_lanes_d(xr, d, 0.0, 1) / (double)d;
        float inv = (float)(1.0 / sqrt(ms + (double)eps));
#pragma omp simd
        for (size_t c = 0; c < d; c++) yr[c] = w[c] * (xr[c] * inv);
    }
}

/* x[n][ld]: for each row r and head h < heads, the head's floats xh = x[r][h·dh ..] rotate in
 * pairs (i, i + rot/2), i < rot/2, by cos, sin [n][rot/2] at row r:
 *   xh[i] = xh[i]·cos − xh[i + rot/2]·sin,  xh[i + rot/2] = xh[i + rot/2]·cos + xh[i]·sin
 * (transformers' rotate_half); dimensions rot..dh-1 stay as they are. */
static KE_ATTR void KE(rotary)(float *x, size_t ld, size_t n, size_t heads, size_t dh, size_t rot,
                               const float *cos, const float *sin) {
    size_t half = rot / 2;
    long rows = (long)n;
#pragma omp parallel for if (n * heads * rot > 32768) schedule(static)
    for (long r = 0; r < rows; r++) {
        const float *c = cos + (size_t)r * half, *s = sin + (size_t)r * half;
        for (size_t h = 0; h < heads; h++) {
            float *a = x + (size_t)r * ld + h * dh, *b = a + half;
#pragma omp simd
            for (size_t i = 0; i < half; i++) {
                float ai = a[i], bi = b[i];
                a[i] = ai * c[i] - bi * s[i];
                b[i] = bi * c[i] + ai * s[i];
            }
        }
    }
}

/* gu[n][2f], each row gate[f] | up[f]: gate ← act(gate) · up (SwiGLU with silu) */
static KE_ATTR void KE(gated)(float *gu, size_t n, size_t f, act_kind act) {
    long rows = (long)n;
#pragma omp parallel for if (n * f > 32768) schedule(static)
    for (long r = 0; r < rows; r++) {
        float *g = gu + (size_t)r * 2 * f, *u = g + f;
        act_block(g, (long)f, act);
#pragma omp simd
        for (size_t c = 0; c < f; c++) g[c] = g[c] * u[c];
    }
}
