/* Head-to-head distances over a corpus, one document at a time.
 *
 * For every token t of a document, the rows A_a[t] of all N = L·H heads form N distributions of
 * n entries; the pairwise JS among them is exactly the per-head JS-matrix problem with the
 * roles of rows and heads exchanged, so it runs on the same kernels: the N rows of token t
 * (N·n doubles, 74 KB for BERT-base at n = 64) are prepared once, with their x log x sums and
 * tail sums, and every pair costs one vectorised log per entry. Threads take whole tokens (one
 * rowset each, no synchronisation inside a token); the values are added to the sums in token
 * order afterwards, so the result does not depend on the number of threads. */
#include "measure_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

/* tokens whose values are buffered before they are added to the sums */
#define ATSM_TOKEN_BLOCK 32

struct ats_headdist {
    size_t L, H, N;
    ats_headdist_metric metric;
    ats_headdist_scope scope;
    ats_measure_opts opts;
    double *sum;  /* [N][N], upper triangle used */
    double *comp; /* Neumaier compensation of sum */
    size_t docs, tokens;
};

ats_status ats_headdist_new(size_t L, size_t H, ats_headdist_metric metric,
                            ats_headdist_scope scope, const ats_measure_opts *opts,
                            ats_headdist **out, ats_error *err) {
    *out = NULL;
    ats_measure_opts o;
    if (!opts)
        ats_measure_opts_init(&o);
    else
        o = *opts;
    if (metric != ATS_HEADDIST_SEED && metric != ATS_HEADDIST_CLARK)
        return ats_error_set(err, ATS_ERR_INVALID, "head distance: unknown metric %d", (int)metric);
    if (scope != ATS_HEADDIST_ALL && scope != ATS_HEADDIST_PER_LAYER)
        return ats_error_set(err, ATS_ERR_INVALID, "head distance: unknown scope %d", (int)scope);
    if (metric == ATS_HEADDIST_CLARK && o.seed_compat)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "head distance: seed compatibility applies to the seed metric "
                             "(Σ √JS), not to Clark et al.'s");
    if (!(o.eps >= 0) || !isfinite(o.eps) || !(o.sum_tol >= 0))
        return ats_error_set(err, ATS_ERR_INVALID,
                             "head distance: eps and sum_tol must be finite and >= 0");
    size_t N, NN, bytes;
    if (!ats_size_mul(L, H, &N) || !ats_size_mul(N, N, &NN) ||
        !ats_size_mul(NN, sizeof(double), &bytes))
        return ats_error_set(err, ATS_ERR_RANGE, "head distance: %zu×%zu heads is too many", L, H);
    ats_headdist *hd = calloc(1, sizeof *hd);
    if (!hd) return ats_error_set(err, ATS_ERR_NOMEM, "head distance: out of memory");
    hd->L = L;
    hd->H = H;
    hd->N = N;
    hd->metric = metric;
    hd->scope = scope;
    hd->opts = o;
    hd->sum = calloc(NN ? NN : 1, sizeof(double));
    hd->comp = calloc(NN ? NN : 1, sizeof(double));
    if (!hd->sum || !hd->comp) {
        ats_headdist_free(hd);
        return ats_error_set(err, ATS_ERR_NOMEM, "head distance: out of memory for %zu heads", N);
    }
    *out = hd;
    return ATS_OK;
}

void ats_headdist_free(ats_headdist *hd) {
    if (!hd) return;
    free(hd->sum);
    free(hd->comp);
    free(hd);
}

size_t ats_headdist_docs(const ats_headdist *hd) {
    return hd->docs;
}
size_t ats_headdist_tokens(const ats_headdist *hd) {
    return hd->tokens;
}

ats_status ats_headdist_add(ats_headdist *hd, const ats_attn *doc, ats_error *err) {
    const char *name = atsm_attn_name(doc);
    if (doc->L != hd->L || doc->H != hd->H)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: attention has %zu layers × %zu heads, but the head distance "
                             "was started with %zu × %zu",
                             name, doc->L, doc->H, hd->L, hd->H);
    size_t total;
    ats_status st = atsm_attn_check(doc, &hd->opts, &total, err);
    if (st) return st;
    size_t n = doc->n, N = hd->N, H = hd->H;
    if (n == 0 || N < 2) {
        hd->docs++;
        hd->tokens += n;
        return ATS_OK;
    }
    const atsm_kernels *K = atsm_kernels_in_use();
    size_t stride = ats_kblock_round(n);
    int nt = atsm_threads(hd->opts.n_threads);
    /* Tokens are processed ATSM_TOKEN_BLOCK at a time, each by one thread with its own rows;
     * their values go to vals[t][a·N + b] and are then added to the sums in token order, so the
     * result does not depend on which thread did what. */
    size_t tblk = n < ATSM_TOKEN_BLOCK ? n : ATSM_TOKEN_BLOCK, NN = N * N;
    size_t nvals;
    if (!ats_size_mul(tblk, NN, &nvals) || !ats_size_mul(nvals, sizeof(double), &(size_t){0}))
        return ats_error_set(err, ATS_ERR_RANGE, "%s: %zu heads are too many", name, N);
    atsm_rowset *rs = calloc((size_t)nt, sizeof *rs);
    double *scratch = malloc((size_t)nt * (stride + N) * sizeof(double));
    double *vals = malloc(nvals * sizeof(double));
    int ok = rs && scratch && vals;
    for (int i = 0; ok && i < nt; i++) ok = atsm_rowset_init(&rs[i], N, stride);
    if (!ok) {
        for (int i = 0; rs && i < nt; i++) atsm_rowset_free(&rs[i]);
        free(rs);
        free(scratch);
        free(vals);
        return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory for %zu tokens", name, n);
    }
    const ats_measure_opts *o = &hd->opts;
    int clark = hd->metric == ATS_HEADDIST_CLARK;
    atsm_sens sens = clark ? ATSM_SENS_NONE : o->seed_compat ? ATSM_SENS_ROOT4 : ATSM_SENS_SQRT;
    double unit = (o->base == ATS_BASE_2 && !o->seed_compat) ? ATSM_LN2 : 1.0; /* / log(base) */
    double budget = atsm_budget(o);
    double floor_w = 0.001 / (double)n;
    int all = hd->scope == ATS_HEADDIST_ALL;
    for (size_t t0 = 0; t0 < n; t0 += tblk) {
        size_t t1 = t0 + tblk < n ? t0 + tblk : n;
#pragma omp parallel num_threads(nt)
        {
            int me = omp_get_thread_num();
            atsm_rowset *r = &rs[me];
            double *xl = scratch + (size_t)me * (stride + N), *cross = xl + stride;
#pragma omp for schedule(dynamic, 1)
            for (size_t t = t0; t < t1; t++) {
                for (size_t a = 0; a < N; a++) {
                    double *x = r->x + a * stride;
                    size_t sup = atsm_row_prepare(doc, a, t, o, o->eps, 1, x, stride, K);
                    if (clark) {
                        for (size_t k = 0; k < n; k++) x[k] = floor_w + 0.999 * x[k];
                        sup = n;
                    }
                    atsm_rowset_finish(r, a, sup, K, xl);
                }
                double *v = vals + (t - t0) * NN;
                for (size_t a = 0; a + 1 < N; a++) {
                    size_t end = all ? N : (a / H + 1) * H;
                    if (a + 1 >= end) continue;
                    K->slog_rows(r->x + a * stride, r->lim[a], r->x, stride, r->lim, a + 1, end,
                                 cross);
                    for (size_t b = a + 1; b < end; b++) {
                        double js = atsm_js_pair(r, a, b, cross[b - a - 1], sens, budget, K) / unit;
                        v[a * N + b] = clark ? js : o->seed_compat ? sqrt(sqrt(js)) : sqrt(js);
                    }
                }
            }
#pragma omp for schedule(static)
            for (size_t a = 0; a < N; a++) {
                size_t end = all ? N : (a / H + 1) * H;
                double *sum = hd->sum + a * N, *comp = hd->comp + a * N;
                for (size_t t = 0; t < t1 - t0; t++) {
                    const double *v = vals + t * NN + a * N;
                    for (size_t b = a + 1; b < end; b++) { /* Neumaier */
                        double s0 = sum[b], u = s0 + v[b];
                        comp[b] += fabs(s0) >= fabs(v[b]) ? (s0 - u) + v[b] : (v[b] - u) + s0;
                        sum[b] = u;
                    }
                }
            }
        }
    }
    for (int i = 0; i < nt; i++) atsm_rowset_free(&rs[i]);
    free(rs);
    free(scratch);
    free(vals);
    hd->docs++;
    hd->tokens += n;
    return ATS_OK;
}

ats_status ats_headdist_result(const ats_headdist *hd, double *out, ats_error *err) {
    size_t N = hd->N, H = hd->H;
    (void)err;
    if (hd->scope == ATS_HEADDIST_ALL) {
        for (size_t a = 0; a < N; a++) {
            out[a * N + a] = 0.0;
            for (size_t b = a + 1; b < N; b++)
                out[a * N + b] = out[b * N + a] = hd->sum[a * N + b] + hd->comp[a * N + b];
        }
    } else {
        for (size_t l = 0; l < hd->L; l++) {
            double *blk = out + l * H * H;
            for (size_t h1 = 0; h1 < H; h1++) {
                blk[h1 * H + h1] = 0.0;
                for (size_t h2 = h1 + 1; h2 < H; h2++) {
                    size_t a = l * H + h1, b = l * H + h2;
                    blk[h1 * H + h2] = blk[h2 * H + h1] = hd->sum[a * N + b] + hd->comp[a * N + b];
                }
            }
        }
    }
    return ATS_OK;
}
