/* The forward pass's kernels: plain loops over plain arrays, matrix products through OpenBLAS.
 * Each says its shapes. OpenMP splits rows; BLAS is never called inside a parallel region, so
 * OpenBLAS's and OpenMP's threads never run at the same time. */
#include "model_internal.h"

/* The element-wise loops below are written to vectorize. GCC needs to know that float
 * comparisons may be if-converted (no FP exceptions are observed: -fno-trapping-math changes no
 * result, unlike -ffast-math, which stays off), and gets AVX-512 and AVX2 clones picked at load
 * time. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math", "vect-cost-model=dynamic")
#define VEC_CLONES __attribute__((target_clones("avx512f", "avx2,fma", "default")))
#else
#define VEC_CLONES
#endif

#include <cblas.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

/* out[n][o] (row stride ldo) = in[n][i] · Wᵀ + b, W Linear [o][i] (torch.nn.Linear)
 *                          or = in[n][i] · W + b,  W Conv1D [i][o'] with row stride ldw ≥ o
 * (GPT-2; o < ldw takes the first o columns); b [o] or NULL. The bias is written first and
 * the product accumulated onto it (beta = 1), one pass over out. */
void k_linear_ld(float *out, size_t ldo, const float *in, const float *w, size_t ldw,
                 const float *b, size_t n, size_t i, size_t o, int conv1d) {
    for (size_t r = 0; r < n; r++) {
        if (b)
            memcpy(out + r * ldo, b, o * sizeof *out);
        else
            memset(out + r * ldo, 0, o * sizeof *out);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, conv1d ? CblasNoTrans : CblasTrans, (int)n, (int)o,
                (int)i, 1.0f, in, (int)i, w, (int)ldw, 1.0f, out, (int)ldo);
}

void k_linear(float *out, const float *in, const float *w, const float *b, size_t n, size_t i,
              size_t o, int conv1d) {
    k_linear_ld(out, o, in, w, conv1d ? o : i, b, n, i, o, conv1d);
}

/* out[n][d] = (x[n][d] - mean) / sqrt(var + eps) · w[d] + b[d] per row; out may be x */
VEC_CLONES void k_layernorm(float *out, const float *x, const float *w, const float *b, size_t n,
                            size_t d, float eps) {
    long rows = (long)n;
    /* the sums in double, in simd lanes (their order is the only change from a plain loop) */
#pragma omp parallel for if (n * d > 32768) schedule(static)
    for (long r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * d;
        float *yr = out + (size_t)r * d;
        double mean = 0.0, var = 0.0;
#pragma omp simd reduction(+ : mean)
        for (size_t c = 0; c < d; c++) mean += xr[c];
        mean /= (double)d;
#pragma omp simd reduction(+ : var)
        for (size_t c = 0; c < d; c++) {
            double t = xr[c] - mean;
            var += t * t;
        }
        var /= (double)d;
        float inv = (float)(1.0 / sqrt(var + (double)eps));
        float fm = (float)mean;
#pragma omp simd
        for (size_t c = 0; c < d; c++) yr[c] = (xr[c] - fm) * inv * w[c] + b[c];
    }
}

/* e^x for x ≤ 88, written so that the compiler vectorizes it (no libm call): Cody–Waite
 * range reduction x = k·ln2 + r and a degree-6 polynomial for e^r on |r| ≤ ln2/2 (Cephes'
 * expf coefficients), about 1 ulp; x < -87 (including -inf) gives exactly 0. */
static inline float exp_v(float x) {
    float xc = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    float k = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = xc - k * 0.693359375f;
    r = r - k * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    union {
        int32_t i;
        float f;
    } scale = {((int32_t)k + 127) << 23};
    y *= scale.f;
    return x < -87.0f ? 0.0f : y;
}

/* erf(x) by Abramowitz & Stegun 7.1.26 (|error| ≤ 1.5e-7), vectorizable */
static inline float erf_v(float x) {
    float ax = x < 0.0f ? -x : x;
    float t = 1.0f / (1.0f + 0.3275911f * ax);
    float p = 1.061405429f;
    p = p * t - 1.453152027f;
    p = p * t + 1.421413741f;
    p = p * t - 0.284496736f;
    p = p * t + 0.254829592f;
    float y = 1.0f - p * t * exp_v(-ax * ax);
    return x < 0.0f ? -y : y;
}

/* tanh(u) = 1 - 2 / (e^{2u} + 1), saturating */
static inline float tanh_v(float u) {
    float uc = u > 20.0f ? 20.0f : u < -20.0f ? -20.0f : u;
    return 1.0f - 2.0f / (exp_v(2.0f * uc) + 1.0f);
}

/* One activation on y[m] = act(y): gelu = ½x(1 + erf(x/√2)),
 * gelu_new = ½x(1 + tanh(√(2/π)(x + 0.044715x³))), relu, silu = x·σ(x), quick_gelu = x·σ(1.702x).
 * Each case is its own simd loop. */
static inline __attribute__((always_inline)) void act_block(float *y, long m, act_kind act) {
    switch (act) {
    case ACT_GELU:
#pragma omp simd
        for (long k = 0; k < m; k++)
            y[k] = 0.5f * y[k] * (1.0f + erf_v(y[k] * 0.70710678118654752f));
        break;
    case ACT_GELU_TANH:
#pragma omp simd
        for (long k = 0; k < m; k++)
            y[k] = 0.5f * y[k] *
                   (1.0f + tanh_v(0.79788456080286536f * (y[k] + 0.044715f * y[k] * y[k] * y[k])));
        break;
    case ACT_RELU:
#pragma omp simd
        for (long k = 0; k < m; k++) y[k] = y[k] > 0.0f ? y[k] : 0.0f;
        break;
    case ACT_SILU:
#pragma omp simd
        for (long k = 0; k < m; k++) y[k] = y[k] / (1.0f + exp_v(-y[k]));
        break;
    case ACT_GELU_QUICK:
#pragma omp simd
        for (long k = 0; k < m; k++) y[k] = y[k] / (1.0f + exp_v(-1.702f * y[k]));
        break;
    }
}

/* x[count] = act(x), in blocks of 4096 spread over the threads when there are many */
VEC_CLONES void k_activation(float *x, size_t count, act_kind act) {
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
VEC_CLONES void k_softmax_rows(float *x, size_t rows, size_t n) {
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
            float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
            for (size_t j = 0; j < n; j++) sum += row[j];
            float inv = 1.0f / sum;
            for (size_t j = 0; j < n; j++) row[j] *= inv;
        }
    }
}

/* x[count] += y[count] */
void k_add(float *x, const float *y, size_t count) {
    long cnt = (long)count;
    for (long k = 0; k < cnt; k++) x[k] += y[k];
}
