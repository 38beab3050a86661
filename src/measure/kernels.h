/* Private to src/measure: the vectorised inner loops of the measures, one table per instruction
 * set (plain C with GCC vector extensions, AVX2+FMA, AVX-512), chosen at run time.
 *
 * All row buffers are padded with zeros to a multiple of ATS_KBLOCK doubles, and every length
 * passed to a kernel (`lim`) is a multiple of ATS_KBLOCK, so kernels have no remainder loops.
 *
 * The logarithm is fdlibm's __ieee754_log without branches: x = 2^k·m, m ∈ [√½, √2),
 * s = (m−1)/(m+1), log m = 2s + s·R(s²) with fdlibm's degree-7 minimax R. Valid for normal
 * positive x (callers clamp to DBL_MIN, which makes x·log x exact 0 at x = 0 and changes it by
 * less than 1e-305 for subnormal x). Measured error: at most 0.84 ulp against logl over 4·10^7
 * random doubles (test_measure_kernels.c asserts <= 1 ulp for every variant). */
#ifndef ATS_MEASURE_KERNELS_H
#define ATS_MEASURE_KERNELS_H

#include <stddef.h>

#define ATS_KBLOCK 16

/* Rounds n up to a multiple of ATS_KBLOCK. */
static inline size_t ats_kblock_round(size_t n) {
    return (n + ATS_KBLOCK - 1) / ATS_KBLOCK * ATS_KBLOCK;
}

typedef struct atsm_kernels {
    const char *name; /* "generic", "avx2", "avx512" */

    /* y[k] = log x[k] for k < count (count a multiple of ATS_KBLOCK); x[k] normal, > 0. */
    void (*log_block)(const double *x, double *y, size_t count);

    /* y[k] = exp x[k] for k < count, x[k] <= 709 (0 below −708.39); within 2 ulp. */
    void (*exp_block)(const double *x, double *y, size_t count);

    /* y[k] = x[k]·log x[k] (0 for x[k] == 0), x[k] >= 0, k < count. */
    void (*xlogx_block)(const double *x, double *y, size_t count);

    /* The cross term of JS for row xi against rows j0 <= j < j1 of X ([rows][stride]):
     *   out[j - j0] = Σ_{k < min(lim_i, lim[j])} s_k log s_k,  s_k = xi[k] + X[j][k],
     * summed with compensation (Kahan) in every vector lane. */
    void (*slog_rows)(const double *xi, size_t lim_i, const double *X, size_t stride,
                      const size_t *lim, size_t j0, size_t j1, double *out);

    /* The accurate form of JS: Σ_{k < lim} s_k g(x_k), s = p + q, x = (p − q)/s,
     * g(x) = ½[(1+x)ln(1+x) + (1−x)ln(1−x)] (series in x² for |x| <= ¼). JS = ½ of it. */
    double (*jsacc_pair)(const double *p, const double *q, size_t lim);

    /* Dot products of 4 rows P[0..3] with rows j0 <= j < j1 of Y ([rows][stride]):
     *   out[r*out_stride + (j - j0)] = Σ_{k < lim} P[r][k]·Y[j][k]. */
    void (*dot4_rows)(const double *const P[4], size_t lim, const double *Y, size_t stride,
                      size_t j0, size_t j1, double *out, size_t out_stride);
} atsm_kernels;

/* The table of the kernel path in use (ats_kernel_path_get: ATS_KERNEL, or the fastest this
 * CPU supports). */
const atsm_kernels *atsm_kernels_in_use(void);
/* Variant 0 generic, 1 AVX2+FMA, 2 AVX-512; NULL if this CPU or build lacks it (for tests). */
const atsm_kernels *atsm_kernels_variant(int variant);

#endif
