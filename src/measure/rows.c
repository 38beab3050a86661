/* Validation and preparation of attention rows; the fast/accurate JS of one pair of rows. */
#include "measure_internal.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

void ats_measure_opts_init(ats_measure_opts *opts) {
    memset(opts, 0, sizeof *opts);
    opts->base = ATS_BASE_2;
    opts->eps = 0.0;
    opts->normalize = 0;
    opts->sum_tol = 1e-4;
    opts->seed_compat = 0;
    opts->n_threads = 0;
    opts->max_error = 0.0;
}

int atsm_threads(int n_threads) {
    if (n_threads > 0) return n_threads;
    int t = omp_get_max_threads();
    return t > 0 ? t : 1;
}

ats_status ats_attn_from_npy(const ats_npy *arr, const char *source, ats_attn *out,
                             ats_error *err) {
    memset(out, 0, sizeof *out);
    const char *name = source ? source : "attention";
    if (arr->dtype != ATS_F32 && arr->dtype != ATS_F64)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: attention must be float32 or float64, not an integer array",
                             name);
    if (arr->ndim == 2) {
        out->L = out->H = 1;
        out->n = arr->shape[0];
        if (arr->shape[1] != arr->shape[0])
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: attention of shape (%zu, %zu) is not square (expected "
                                 "[n][n] or [L][H][n][n])",
                                 name, arr->shape[0], arr->shape[1]);
    } else if (arr->ndim == 4) {
        out->L = arr->shape[0];
        out->H = arr->shape[1];
        out->n = arr->shape[2];
        if (arr->shape[3] != arr->shape[2])
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: attention of shape (%zu, %zu, %zu, %zu) has non-square "
                                 "heads (expected [L][H][n][n])",
                                 name, arr->shape[0], arr->shape[1], arr->shape[2], arr->shape[3]);
    } else {
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: attention has %d dimensions; expected [n][n] or [L][H][n][n]%s",
                             name, arr->ndim,
                             arr->ndim == 3 ? " (reshape [H][n][n] to [1][H][n][n])" : "");
    }
    out->dtype = arr->dtype;
    out->data = arr->data;
    out->source = source;
    return ATS_OK;
}

ats_status atsm_attn_check(const ats_attn *att, const ats_measure_opts *opts, size_t *count,
                           ats_error *err) {
    if (!att) return ats_error_set(err, ATS_ERR_INVALID, "attention: no array given");
    const char *name = atsm_attn_name(att);
    if (att->dtype != ATS_F32 && att->dtype != ATS_F64)
        return ats_error_set(err, ATS_ERR_INVALID, "%s: attention must be float32 or float64",
                             name);
    size_t heads, rows, total;
    if (!ats_size_mul(att->L, att->H, &heads) || !ats_size_mul(heads, att->n, &rows) ||
        !ats_size_mul(rows, att->n, &total) || !ats_size_mul(total, 8, &(size_t){0}))
        return ats_error_set(err, ATS_ERR_RANGE,
                             "%s: attention shape [%zu][%zu][%zu][%zu] is too large", name, att->L,
                             att->H, att->n, att->n);
    if (total && !att->data)
        return ats_error_set(err, ATS_ERR_INVALID, "%s: attention data is NULL", name);
    if (!(opts->sum_tol >= 0) || !(opts->eps >= 0) || !isfinite(opts->eps))
        return ats_error_set(err, ATS_ERR_INVALID,
                             "%s: options out of range (sum_tol %g, eps %g; both must be >= 0)",
                             name, opts->sum_tol, opts->eps);
    size_t n = att->n;
    for (size_t r = 0; r < rows; r++) {
        size_t off = r * n;
        double sum = 0;
        for (size_t j = 0; j < n; j++) {
            double v = atsm_attn_get(att, off + j);
            if (!(v >= 0) || isinf(v)) {
                size_t head = r / n, i = r % n;
                const char *what = isnan(v) ? "is NaN" : isinf(v) ? "is infinite" : "is negative";
                return ats_error_set(err, ATS_ERR_INVALID,
                                     "%s: layer %zu, head %zu, row %zu, column %zu: weight %s "
                                     "(%g); attention weights must be finite and >= 0",
                                     name, head / att->H, head % att->H, i, j, what, v);
            }
            sum += v;
        }
        size_t head = r / n, i = r % n;
        if (!isfinite(sum))
            return ats_error_set(err, ATS_ERR_INVALID,
                                 "%s: layer %zu, head %zu, row %zu: the weights' sum overflows",
                                 name, head / att->H, head % att->H, i);
        if (opts->normalize) {
            if (!(sum > 0))
                return ats_error_set(err, ATS_ERR_INVALID,
                                     "%s: layer %zu, head %zu, row %zu: all weights are zero, "
                                     "so the row cannot be normalised",
                                     name, head / att->H, head % att->H, i);
        } else if (!(fabs(sum - 1.0) <= opts->sum_tol)) {
            return ats_error_set(err, ATS_ERR_INVALID,
                                 "%s: layer %zu, head %zu, row %zu: weights sum to %.9g, not 1 "
                                 "(tolerance %g); rows must be distributions (the normalize "
                                 "option, --normalize, rescales them)",
                                 name, head / att->H, head % att->H, i, sum, opts->sum_tol);
        }
    }
    *count = total;
    return ATS_OK;
}

size_t atsm_row_prepare(const ats_attn *att, size_t head, size_t i, const ats_measure_opts *opts,
                        double eps, int renorm, double *dst, size_t stride, const atsm_kernels *K) {
    size_t n = att->n;
    size_t off = (head * n + i) * n;
    for (size_t j = 0; j < n; j++) dst[j] = atsm_attn_get(att, off + j);
    for (size_t j = n; j < stride; j++) dst[j] = 0.0;
    if (opts->normalize) {
        double sum = 0;
        for (size_t j = 0; j < n; j++) sum += dst[j];
        for (size_t j = 0; j < n; j++) dst[j] /= sum;
    }
    if (opts->seed_compat && n > 0) { /* scipy.special.softmax: exp(x − max) / Σ */
        double mx = -INFINITY;
        for (size_t j = 0; j < n; j++)
            if (dst[j] > mx) mx = dst[j];
        for (size_t j = 0; j < n; j++) dst[j] -= mx;
        K->exp_block(dst, dst, stride);
        double sum = 0;
        for (size_t j = 0; j < n; j++) sum += dst[j];
        for (size_t j = 0; j < n; j++) dst[j] /= sum;
        for (size_t j = n; j < stride; j++) dst[j] = 0.0;
    }
    if (eps > 0)
        for (size_t j = 0; j < n; j++) dst[j] += eps;
    if (renorm) {
        double sum = 0;
        for (size_t j = 0; j < n; j++) sum += dst[j];
        if (sum > 0)
            for (size_t j = 0; j < n; j++) dst[j] /= sum;
    }
    size_t support = n;
    while (support > 0 && dst[support - 1] == 0.0) support--;
    return support;
}

int atsm_rowset_init(atsm_rowset *rs, size_t m_max, size_t stride) {
    memset(rs, 0, sizeof *rs);
    rs->m_max = m_max;
    rs->stride = stride;
    rs->nblk = stride / ATS_KBLOCK;
    size_t nx, nt;
    if (!ats_size_mul(m_max, stride, &nx) || !ats_size_mul(nx, sizeof(double), &(size_t){0}) ||
        !ats_size_mul(m_max, rs->nblk + 1, &nt) || !ats_size_mul(nt, sizeof(double), &(size_t){0}))
        return 0;
    size_t m1 = m_max ? m_max : 1;
    rs->x = malloc((nx ? nx : 1) * sizeof(double));
    rs->a = malloc(m1 * sizeof(double));
    rs->mass = malloc(m1 * sizeof(double));
    rs->lim = malloc(m1 * sizeof(size_t));
    rs->tail = malloc((nt ? nt : 1) * sizeof(double));
    if (!rs->x || !rs->a || !rs->mass || !rs->lim || !rs->tail) {
        atsm_rowset_free(rs);
        return 0;
    }
    return 1;
}

void atsm_rowset_free(atsm_rowset *rs) {
    free(rs->x);
    free(rs->a);
    free(rs->mass);
    free(rs->lim);
    free(rs->tail);
    memset(rs, 0, sizeof *rs);
}

/* Neumaier's compensated addition: (*s, *c) += v */
static inline void neumaier_add(double *s, double *c, double v) {
    double t = *s + v;
    if (fabs(*s) >= fabs(v))
        *c += (*s - t) + v;
    else
        *c += (v - t) + *s;
    *s = t;
}

void atsm_rowset_finish(atsm_rowset *rs, size_t r, size_t support, const atsm_kernels *K,
                        double *scratch) {
    const double *x = rs->x + r * rs->stride;
    size_t lim = ats_kblock_round(support);
    K->xlogx_block(x, scratch, lim);
    double *tail = rs->tail + r * (rs->nblk + 1);
    double s = 0, c = 0, ms = 0, mc = 0;
    for (size_t b = rs->nblk; b > lim / ATS_KBLOCK; b--) tail[b] = 0.0;
    tail[lim / ATS_KBLOCK] = 0.0;
    for (size_t b = lim / ATS_KBLOCK; b-- > 0;) {
        for (size_t k = (b + 1) * ATS_KBLOCK; k-- > b * ATS_KBLOCK;) {
            neumaier_add(&s, &c, scratch[k]);
            neumaier_add(&ms, &mc, x[k]);
        }
        tail[b] = s + c;
    }
    rs->a[r] = s + c;
    rs->mass[r] = ms + mc;
    rs->lim[r] = lim;
}

double atsm_js_pair(const atsm_rowset *rs, size_t i, size_t j, double cross, atsm_sens sens,
                    double budget, const atsm_kernels *K) {
    size_t li = rs->lim[i], lj = rs->lim[j];
    size_t lo = li < lj ? li : lj, hi = li < lj ? lj : li;
    size_t b = lo / ATS_KBLOCK, nb1 = rs->nblk + 1;
    /* Beyond the shorter support one row is zero, so s log s is the other row's x log x. */
    double S = cross + rs->tail[i * nb1 + b] + rs->tail[j * nb1 + b];
    double ai = rs->a[i], aj = rs->a[j];
    double js = 0.5 * (ai + aj - S) + 0.5 * ATSM_LN2 * (rs->mass[i] + rs->mass[j]);
    if (sens == ATSM_SENS_NONE) return js > 0 ? (js < ATSM_LN2 ? js : ATSM_LN2) : 0.0;
    /* A bound on the absolute error of js. With u = DBL_EPSILON: the log is within 1 ulp, so a
     * term t = s log s carries ≤ u|t| from the log, u/2·|t| from the product, u/2·(|t| + s) from
     * rounding s = p + q and u|t| from adding two vectors of terms; the Kahan sums add ≤ 2u|Σ|.
     * With Σ|t| ≤ |S| + 2.8 (only s ∈ (1, 2] give positive terms) and Σ s ≤ 2, S is within
     * u(5|S| + 9.4) and A_i within u(4|A_i| + 2); the final combination adds
     * u(|A_i| + |A_j| + |S| + 2). Hence |error| ≤ u(3|A_i| + 3|A_j| + 3.5|S| + 8.7), which
     * 4u(|A_i| + |A_j| + |S| + 3) covers. */
    double e = 4.0 * DBL_EPSILON * (fabs(ai) + fabs(aj) + fabs(S) + 3.0);
    int redo;
    switch (sens) {
    case ATSM_SENS_LINEAR:
        redo = !(js * 1e-6 > e);
        break;
    case ATSM_SENS_SQRT: {
        double t = e / (2.0 * budget);
        redo = !(js > t * t);
        break;
    }
    default: {
        double t = e / (4.0 * budget);
        redo = !(js * js * js > (t * t) * (t * t)); /* js > t^(4/3), without cbrt */
        break;
    }
    }
    if (redo) js = 0.5 * K->jsacc_pair(rs->x + i * rs->stride, rs->x + j * rs->stride, hi);
    /* JS <= ln 2 for distributions; rounding must not push a base-2 JS above 1 */
    return js > 0 ? (js < ATSM_LN2 ? js : ATSM_LN2) : 0.0;
}
