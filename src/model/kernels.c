/* The forward pass's kernels: plain loops over plain arrays, matrix products through OpenBLAS.
 * Each says its shapes. OpenMP splits rows; BLAS is never called inside a parallel region, so
 * OpenBLAS's and OpenMP's threads never run at the same time. */
#include "model_internal.h"

/* The element-wise loops are written to vectorize. GCC needs to know that float comparisons
 * may be if-converted (no FP exceptions are observed: -fno-trapping-math changes no result,
 * unlike -ffast-math, which stays off). They are compiled once per kernel path (x86: for
 * AVX2 + FMA and AVX-512 beside portable C; aarch64: portable C, which GCC vectorizes for
 * Advanced SIMD, its base architecture) and the path in use picks one. Contraction stays off
 * (ISO C mode), so the variants differ only in the order of the sums reduced in simd lanes. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math", "vect-cost-model=dynamic")
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

void k_linear_strided(float *out, size_t ldo, const float *in, size_t ldi, const float *w,
                      const float *b, size_t n, size_t i, size_t o) {
    for (size_t r = 0; r < n; r++) {
        if (b)
            memcpy(out + r * ldo, b, o * sizeof *out);
        else
            memset(out + r * ldo, 0, o * sizeof *out);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)o, (int)i, 1.0f, in, (int)ldi,
                w, (int)i, 1.0f, out, (int)ldo);
}

void k_linear(float *out, const float *in, const float *w, const float *b, size_t n, size_t i,
              size_t o, int conv1d) {
    k_linear_ld(out, o, in, w, conv1d ? o : i, b, n, i, o, conv1d);
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
        uint32_t i;
        float f;
    } scale = {(uint32_t)((int32_t)k + 127) << 23}; /* 2^k: k + 127 is in 1..215 */
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

/* Sums whose order does not depend on the vector width: fixed lanes (8 doubles, 16 floats), each
 * summing every 8th (16th) element in order, then combined pairwise. Every variant, portable C
 * included, computes the same bits, so the element-wise kernels agree across kernel paths and
 * machines; only the matrix products' fused or separate multiply-adds differ. */
static inline __attribute__((always_inline)) double sum_lanes_d(const float *x, size_t n,
                                                                double shift, int squares) {
    double s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t c = 0;
    for (; c + 8 <= n; c += 8)
#pragma omp simd
        for (int j = 0; j < 8; j++) {
            double t = x[c + (size_t)j] - shift;
            s[j] += squares ? t * t : t;
        }
    for (int j = 0; c + (size_t)j < n; j++) {
        double t = x[c + (size_t)j] - shift;
        s[j] += squares ? t * t : t;
    }
    return ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
}

static inline __attribute__((always_inline)) float sum_lanes_f(const float *x, size_t n) {
    float s[16] = {0};
    size_t c = 0;
    for (; c + 16 <= n; c += 16)
#pragma omp simd
        for (int j = 0; j < 16; j++) s[j] += x[c + (size_t)j];
    for (int j = 0; c + (size_t)j < n; j++) s[j] += x[c + (size_t)j];
    for (int w = 8; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) s[j] += s[j + w];
    return s[0];
}

#define KE(name) name##_generic
#define KE_ATTR  /* none */
#include "kernels_elementwise.h"
#undef KE
#undef KE_ATTR

#if K_HAVE_X86
#define KE(name) name##_avx2
#define KE_ATTR  __attribute__((target("avx2,fma")))
#include "kernels_elementwise.h"
#undef KE
#undef KE_ATTR

#define KE(name) name##_avx512
#define KE_ATTR  __attribute__((target("avx512f,avx512dq,avx512vl,avx2,fma")))
#include "kernels_elementwise.h"
#undef KE
#undef KE_ATTR
#endif

/* The variant of the path in use: 0 portable C (also aarch64's neon path), 1 AVX2, 2 AVX-512 */
static int elementwise_variant(void) {
#if K_HAVE_X86
    switch (ats_kernel_path_get()) {
    case ATS_KERNEL_AVX512:
        return 2;
    case ATS_KERNEL_AVX2:
        return 1;
    default:
        return 0;
    }
#else
    return 0;
#endif
}

#if K_HAVE_X86
#define DISPATCH(name, ...)                                                                        \
    do {                                                                                           \
        switch (elementwise_variant()) {                                                           \
        case 2:                                                                                    \
            name##_avx512(__VA_ARGS__);                                                            \
            break;                                                                                 \
        case 1:                                                                                    \
            name##_avx2(__VA_ARGS__);                                                              \
            break;                                                                                 \
        default:                                                                                   \
            name##_generic(__VA_ARGS__);                                                           \
        }                                                                                          \
    } while (0)
#else
#define DISPATCH(name, ...) ((void)elementwise_variant(), name##_generic(__VA_ARGS__))
#endif

void k_layernorm(float *out, const float *x, const float *w, const float *b, size_t n, size_t d,
                 float eps) {
    DISPATCH(layernorm, out, x, w, b, n, d, eps);
}

void k_activation(float *x, size_t count, act_kind act) {
    DISPATCH(activation, x, count, act);
}

void k_softmax_rows(float *x, size_t rows, size_t n) {
    DISPATCH(softmax_rows, x, rows, n);
}

void k_rmsnorm(float *out, const float *x, const float *w, size_t n, size_t d, float eps) {
    DISPATCH(rmsnorm, out, x, w, n, d, eps);
}

void k_rotary(float *x, size_t ld, size_t n, size_t heads, size_t dh, size_t rot, const float *cos,
              const float *sin) {
    DISPATCH(rotary, x, ld, n, heads, dh, rot, cos, sin);
}

void k_gated(float *gu, size_t n, size_t f, act_kind act) {
    DISPATCH(gated, gu, n, f, act);
}

/* x[count] += y[count] */
void k_add(float *x, const float *y, size_t count) {
    long cnt = (long)count;
    for (long k = 0; k < cnt; k++) x[k] += y[k];
}
