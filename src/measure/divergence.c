/* Entropy of every row and KL / JS / JS-distance matrices between the rows of every head. */
#include "measure_internal.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static ats_status no_memory(ats_error *err, const ats_attn *att) {
    return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory for %zu tokens",
                         atsm_attn_name(att), att->n);
}

ats_status ats_entropy_compute(const ats_attn *att, const ats_measure_opts *opts, double *out,
                               ats_error *err) {
    ats_measure_opts o;
    if (!opts)
        ats_measure_opts_init(&o);
    else
        o = *opts;
    size_t total;
    ats_status st = atsm_attn_check(att, &o, &total, err);
    if (st) return st;
    if (total == 0) return ATS_OK;
    const atsm_kernels *K = atsm_kernels_best();
    size_t n = att->n, stride = ats_kblock_round(n), rows = att->L * att->H * n;
    int nt = atsm_threads(o.n_threads);
    double *buf = malloc((size_t)nt * 2 * stride * sizeof(double));
    if (!buf) return no_memory(err, att);
    double unit =
        (o.base == ATS_BASE_2 && !o.seed_compat) ? ATSM_LN2 : 1.0; /* as scipy: / log(base) */
#pragma omp parallel num_threads(nt)
    {
        double *x = buf + (size_t)omp_get_thread_num() * 2 * stride, *y = x + stride;
#pragma omp for schedule(static)
        for (size_t r = 0; r < rows; r++) {
            size_t support = atsm_row_prepare(att, r / n, r % n, &o, o.eps, 1, x, stride, K);
            size_t lim = ats_kblock_round(support);
            K->xlogx_block(x, y, lim);
            double s = 0, c = 0; /* Neumaier */
            for (size_t k = 0; k < lim; k++) {
                double t = s + y[k];
                c += fabs(s) >= fabs(y[k]) ? (s - t) + y[k] : (y[k] - t) + s;
                s = t;
            }
            double h = -(s + c) / unit;
            out[r] = h > 0 ? h : 0.0; /* -0.0 for a one-hot row */
        }
    }
    free(buf);
    return ATS_OK;
}

/* JS, JS distance (and the seed's versions) of every head. */
static ats_status js_matrices(const ats_attn *att, ats_divergence kind, const ats_measure_opts *o,
                              double *out, ats_error *err) {
    const atsm_kernels *K = atsm_kernels_best();
    size_t n = att->n, stride = ats_kblock_round(n), heads = att->L * att->H;
    int nt = atsm_threads(o->n_threads);
    atsm_rowset rs;
    if (!atsm_rowset_init(&rs, n, stride)) return no_memory(err, att);
    double *scratch = malloc((size_t)nt * (stride + n) * sizeof(double));
    if (!scratch) {
        atsm_rowset_free(&rs);
        return no_memory(err, att);
    }
    atsm_sens sens;
    if (o->seed_compat)
        sens = kind == ATS_DIV_JS ? ATSM_SENS_SQRT : ATSM_SENS_ROOT4;
    else
        sens = kind == ATS_DIV_JS ? ATSM_SENS_LINEAR : ATSM_SENS_SQRT;
    double unit = (o->base == ATS_BASE_2 && !o->seed_compat) ? ATSM_LN2 : 1.0; /* / log(base) */
    for (size_t hd = 0; hd < heads; hd++) {
        double *D = out + hd * n * n;
#pragma omp parallel num_threads(nt)
        {
            double *xl = scratch + (size_t)omp_get_thread_num() * (stride + n);
            double *cross = xl + stride;
#pragma omp for schedule(static)
            for (size_t i = 0; i < n; i++) {
                size_t sup =
                    atsm_row_prepare(att, hd, i, o, o->eps, 1, rs.x + i * stride, stride, K);
                atsm_rowset_finish(&rs, i, sup, K, xl);
            }
#pragma omp for schedule(dynamic, 1)
            for (size_t i = 0; i < n; i++) {
                D[i * n + i] = 0.0;
                K->slog_rows(rs.x + i * stride, rs.lim[i], rs.x, stride, rs.lim, i + 1, n, cross);
                for (size_t j = i + 1; j < n; j++) {
                    double js = atsm_js_pair(&rs, i, j, cross[j - i - 1], sens, K) / unit;
                    double v;
                    if (o->seed_compat) /* scipy's distance √JS_e, and the seed's √ of it */
                        v = kind == ATS_DIV_JS ? sqrt(js) : sqrt(sqrt(js));
                    else
                        v = kind == ATS_DIV_JS ? js : sqrt(js);
                    D[i * n + j] = D[j * n + i] = v;
                }
            }
        }
    }
    free(scratch);
    atsm_rowset_free(&rs);
    return ATS_OK;
}

/* KL(P_i ‖ P_j) = Σ_k rel_entr(p_ik, p_jk) = Σ p_ik log p_ik − Σ p_ik log p_jk, the second sum a
 * product of the rows with the logs of the rows (all its terms have one sign, so it is
 * accurate); +inf where p_ik > 0 = p_jk for some k. */
static ats_status kl_matrices(const ats_attn *att, const ats_measure_opts *o, double *out,
                              ats_error *err) {
    const atsm_kernels *K = atsm_kernels_best();
    size_t n = att->n, stride = ats_kblock_round(n), heads = att->L * att->H;
    size_t words = (n + 63) / 64;
    int nt = atsm_threads(o->n_threads);
    double eps = o->eps > 0 ? o->eps : (o->seed_compat ? 1e-9 : 0.0);
    double unit = (o->base == ATS_BASE_2 && !o->seed_compat) ? ATSM_LN2 : 1.0; /* / log(base) */
    size_t nn = n * stride;
    double *P = malloc(nn * sizeof(double));
    double *Lg = malloc(nn * sizeof(double));
    double *A = malloc((n ? n : 1) * sizeof(double));
    size_t *lim = malloc((n ? n : 1) * sizeof(size_t));
    size_t nw = n * words;
    if (nw == 0) nw = 1;
    uint64_t *nzbits = malloc(nw * sizeof(uint64_t));
    uint64_t *zbits = malloc(nw * sizeof(uint64_t));
    double *scratch = malloc((size_t)nt * 4 * (n ? n : 1) * sizeof(double));
    ats_status st = ATS_OK;
    if (!P || !Lg || !A || !lim || !nzbits || !zbits || !scratch) {
        st = no_memory(err, att);
        goto done;
    }
    for (size_t hd = 0; hd < heads; hd++) {
        double *D = out + hd * n * n;
        int any_zero = 0;
#pragma omp parallel for num_threads(nt) schedule(static) reduction(| : any_zero)
        for (size_t i = 0; i < n; i++) {
            double *p = P + i * stride, *lg = Lg + i * stride;
            size_t sup = atsm_row_prepare(att, hd, i, o, eps, 0, p, stride, K);
            lim[i] = ats_kblock_round(sup);
            for (size_t k = 0; k < stride; k++) lg[k] = p[k] > DBL_MIN ? p[k] : DBL_MIN;
            K->log_block(lg, lg, stride);
            uint64_t *nz = nzbits + i * words, *z = zbits + i * words;
            memset(nz, 0, words * sizeof(uint64_t));
            memset(z, 0, words * sizeof(uint64_t));
            double s = 0, c = 0;
            for (size_t k = 0; k < n; k++) {
                if (p[k] == 0.0) {
                    lg[k] = 0.0; /* 0·log 0 = 0; p_ik > 0 = p_jk is caught by the bits */
                    z[k / 64] |= (uint64_t)1 << (k % 64);
                    any_zero = 1;
                    continue;
                }
                if (p[k] < DBL_MIN) lg[k] = log(p[k]); /* subnormal */
                nz[k / 64] |= (uint64_t)1 << (k % 64);
                double t = p[k] * lg[k], u = s + t;
                c += fabs(s) >= fabs(t) ? (s - u) + t : (t - u) + s;
                s = u;
            }
            for (size_t k = n; k < stride; k++) lg[k] = 0.0;
            A[i] = s + c;
        }
#pragma omp parallel num_threads(nt)
        {
#pragma omp for schedule(dynamic, 1)
            for (size_t i0 = 0; i0 < n; i0 += 4) {
                double *cross = scratch + (size_t)omp_get_thread_num() * 4 * n;
                const double *rows[4];
                size_t l = 0;
                for (size_t r = 0; r < 4; r++) {
                    size_t i = i0 + r < n ? i0 + r : n - 1;
                    rows[r] = P + i * stride;
                    if (lim[i] > l) l = lim[i];
                }
                K->dot4_rows(rows, l, Lg, stride, 0, n, cross, n);
                for (size_t r = 0; r < 4 && i0 + r < n; r++) {
                    size_t i = i0 + r;
                    for (size_t j = 0; j < n; j++) {
                        double v = (A[i] - cross[r * n + j]) / unit;
                        if (any_zero && j != i) {
                            const uint64_t *nz = nzbits + i * words, *z = zbits + j * words;
                            for (size_t w = 0; w < words; w++)
                                if (nz[w] & z[w]) {
                                    v = INFINITY;
                                    break;
                                }
                        }
                        D[i * n + j] = j == i ? 0.0 : v;
                    }
                }
            }
        }
    }
done:
    free(P);
    free(Lg);
    free(A);
    free(lim);
    free(nzbits);
    free(zbits);
    free(scratch);
    return st;
}

ats_status ats_divergence_compute(const ats_attn *att, ats_divergence kind,
                                  const ats_measure_opts *opts, double *out, ats_error *err) {
    ats_measure_opts o;
    if (!opts)
        ats_measure_opts_init(&o);
    else
        o = *opts;
    if (kind != ATS_DIV_KL && kind != ATS_DIV_JS && kind != ATS_DIV_JSD)
        return ats_error_set(err, ATS_ERR_INVALID, "unknown divergence %d", (int)kind);
    size_t total;
    ats_status st = atsm_attn_check(att, &o, &total, err);
    if (st) return st;
    if (total == 0) return ATS_OK;
    return kind == ATS_DIV_KL ? kl_matrices(att, &o, out, err)
                              : js_matrices(att, kind, &o, out, err);
}
