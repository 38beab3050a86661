/* Private to src/measure: validation and preparation of attention rows, and the JS evaluation
 * shared by the divergence matrices and the head distances. */
#ifndef ATS_MEASURE_INTERNAL_H
#define ATS_MEASURE_INTERNAL_H

#include "attnscope/measure.h"
#include "kernels.h"

#include <stddef.h>

#define ATSM_LN2 0.693147180559945309417232121458176568

/* Weight (flat index off) of an attention tensor as a double. */
static inline double atsm_attn_get(const ats_attn *a, size_t off) {
    return a->dtype == ATS_F32 ? (double)((const float *)a->data)[off]
                               : ((const double *)a->data)[off];
}

static inline const char *atsm_attn_name(const ats_attn *a) {
    return a->source ? a->source : "attention";
}

/* Checks the view (dtype, data, sizes that do not overflow) and every weight: finite, >= 0,
 * rows summing to 1 within opts->sum_tol unless opts->normalize (then: not all zero).
 * On success *count = L·H·n·n. */
ats_status atsm_attn_check(const ats_attn *att, const ats_measure_opts *opts, size_t *count,
                           ats_error *err);

/* Row i of head `head` (= l·H + h) prepared as ats_measure_opts describes: normalize, seed
 * softmax, + eps on the n entries, then divided by its sum if renorm. Written to dst[0..stride)
 * with zeros after n (stride a multiple of ATS_KBLOCK). Returns the support length (1 + the last
 * index with a nonzero). */
size_t atsm_row_prepare(const ats_attn *att, size_t head, size_t i, const ats_measure_opts *opts,
                        double eps, int renorm, double *dst, size_t stride, const atsm_kernels *K);

/* Prepared rows with what the fast JS needs. Buffers are allocated by atsm_rowset_init for at
 * most m_max rows of stride doubles. */
typedef struct atsm_rowset {
    size_t m_max, stride, nblk; /* nblk = stride / ATS_KBLOCK */
    double *x;                  /* [m_max][stride] rows */
    double *a;                  /* [m_max] Σ x log x */
    double *mass;               /* [m_max] Σ x */
    size_t *lim;                /* [m_max] support length rounded up to ATS_KBLOCK */
    double *tail;               /* [m_max][nblk + 1]: Σ_{k >= b·KBLOCK} x log x */
} atsm_rowset;

/* Returns 0 on allocation failure or overflow (everything freed). */
int atsm_rowset_init(atsm_rowset *rs, size_t m_max, size_t stride);
void atsm_rowset_free(atsm_rowset *rs);

/* Fills a[r], mass[r], lim[r] and tail[r] from x[r], given its support length;
 * scratch: [stride] doubles. */
void atsm_rowset_finish(atsm_rowset *rs, size_t r, size_t support, const atsm_kernels *K,
                        double *scratch);

/* How the caller transforms JS (nats) into its output; decides when the fast JS is not accurate
 * enough and the pair is recomputed with the accurate form. */
typedef enum atsm_sens {
    ATSM_SENS_LINEAR = 0, /* output ∝ JS: recompute if the relative error could exceed 1e-6 */
    ATSM_SENS_SQRT = 1,   /* output ∝ √JS: recompute if its error could exceed 2e-13 */
    ATSM_SENS_ROOT4 = 2,  /* output ∝ JS^¼ (seed compat): the same 2e-13 budget */
    ATSM_SENS_NONE = 3    /* sums of JS (Clark): never recompute */
} atsm_sens;

/* The default error budget of a √JS or JS^¼ output (scipy comparisons allow 1e-12). */
#define ATSM_ROOT_BUDGET 1.6e-13 /* 2e-13 after the base-2 conversion (× 1/√ln 2) */
/* The budget for ats_measure_opts.max_error: 0.8 < √ln 2 covers the base-2 conversion */
static inline double atsm_budget(const ats_measure_opts *o) {
    return o->max_error > 0 ? 0.8 * o->max_error : ATSM_ROOT_BUDGET;
}

/* JS in nats between rows i and j of rs, given cross = slog_rows' value for the pair; an
 * output of sensitivity sens is recomputed exactly when its error could exceed budget. Never
 * negative; exactly 0 for identical rows. */
double atsm_js_pair(const atsm_rowset *rs, size_t i, size_t j, double cross, atsm_sens sens,
                    double budget, const atsm_kernels *K);

/* Number of threads to use for n_threads (<= 0: OpenMP's default). */
int atsm_threads(int n_threads);

#endif
