/* The token topology of one head: the head's tokens as a metric space, its Vietoris–Rips
 * persistence, single-linkage clusters at a few scales and a 3-D layout. `attnscope topo`, the
 * report and the viewer all take it from here. */
#include "analysis_internal.h"
#include "attnscope/render.h"
#include "attnscope/rips.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ats_topo_options_init(ats_topo_options *o) {
    memset(o, 0, sizeof *o);
    o->layer = o->head = -1;
    o->distance = ATS_HEAD_JSD;
    o->max_dim = 2;
    o->threshold = INFINITY;
    o->layout_iters = 150;
    o->points = "tokens";
}

void ats_topo_result_free(ats_topo_result *res) {
    if (!res) return;
    free(res->full);
    free(res->lower);
    ats_rips_result_free(&res->rips);
    free(res->clusters);
    free(res->layout);
    memset(res, 0, sizeof *res);
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* The head's [n][n] matrix and its lower triangle. JS and KL are divergences, not metrics:
 * their symmetrised triangle is still what Rips takes (it needs no triangle inequality). */
static ats_status head_matrix(const ats_attention *a, const ats_topo_options *o, double *full,
                              double *lower, ats_error *err) {
    size_t l = (size_t)o->layer, h = (size_t)o->head;
    if (o->distance == ATS_HEAD_JSD || o->distance == ATS_HEAD_SEED ||
        o->distance == ATS_HEAD_SEED_JSD)
        return ats_head_metric(a, l, h,
                               o->distance == ATS_HEAD_SEED       ? ATS_SEED_SQRT_JSD
                               : o->distance == ATS_HEAD_SEED_JSD ? ATS_SEED_JSD
                                                                  : ATS_SEED_OFF,
                               0.0, o->n_threads, full, lower, err);
    ats_attn v = ats_attention_head(a, l, h);
    ats_measure_opts mo;
    ats_measure_opts_init(&mo);
    mo.normalize = 1; /* attention rows sum to 1 up to float rounding */
    mo.n_threads = o->n_threads;
    if (o->distance == ATS_HEAD_KL) mo.eps = 1e-9; /* as `attnscope divergence` */
    ats_status st = ats_divergence_compute(&v, o->distance == ATS_HEAD_KL ? ATS_DIV_KL : ATS_DIV_JS,
                                           &mo, full, err);
    if (!st) st = ats_metric_from_full(a->n, full, 1, "measure", lower, err);
    return st;
}

ats_status ats_topo_scales(const ats_lower *metric, double threshold, const double *given,
                           size_t n_given, const char *name, const char *points, double *scales,
                           size_t *n_scales, ats_error *err) {
    size_t n = metric->n, m = n * (n - 1) / 2;
    *n_scales = 0;
    if (n_given > ATS_TOPO_MAX_SCALES)
        return ats_error_set(err, ATS_ERR_INVALID, "%zu scales; at most %d", n_given,
                             ATS_TOPO_MAX_SCALES);
    if (n_given) {
        /* the scales must lie in the diagram's range: [0, min(largest distance, threshold)] */
        double top = 0;
        for (size_t q = 0; q < m; q++) top = fmax(top, metric->d[q]);
        top = fmin(top, threshold);
        for (size_t q = 0; q < n_given; q++)
            if (given[q] > top) {
                if (top < threshold)
                    return ats_error_set(err, ATS_ERR_INVALID,
                                         "%s: scale %g is outside the diagram's range [0, %.6g] "
                                         "(the largest distance between its %s)",
                                         name, given[q], top, points);
                return ats_error_set(err, ATS_ERR_INVALID,
                                     "%s: scale %g is outside the diagram's range [0, %.6g] (the "
                                     "threshold)",
                                     name, given[q], top);
            }
        memcpy(scales, given, n_given * sizeof *scales);
        *n_scales = n_given;
        return ATS_OK;
    }
    if (m == 0) {
        scales[0] = 0;
        *n_scales = 1;
        return ATS_OK;
    }
    double *c = malloc(m * sizeof *c);
    if (!c) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    memcpy(c, metric->d, m * sizeof *c);
    qsort(c, m, sizeof *c, cmp_double);
    scales[0] = c[m / 10];
    scales[1] = c[m / 4];
    scales[2] = c[m / 2];
    free(c);
    *n_scales = 3;
    return ATS_OK;
}

static ats_status check_options(const ats_attention *a, const ats_topo_options *o, ats_error *err) {
    if (o->layer < 0 || o->head < 0 || (size_t)o->layer >= a->L || (size_t)o->head >= a->H)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "%s: layer %ld, head %ld is outside its %zu x %zu heads", a->name,
                             o->layer, o->head, a->L, a->H);
    if (o->distance < ATS_HEAD_JSD || o->distance > ATS_HEAD_SEED_JSD)
        return ats_error_set(err, ATS_ERR_INVALID, "unknown head distance %d", o->distance);
    if (o->max_dim < 0 || o->max_dim > 3)
        return ats_error_set(err, ATS_ERR_INVALID, "max_dim is %d; topo takes 0..3", o->max_dim);
    if (!(o->threshold >= 0))
        return ats_error_set(err, ATS_ERR_INVALID, "threshold is %g; it must be >= 0",
                             o->threshold);
    for (size_t q = 0; q < o->n_scales; q++)
        if (!(o->scales[q] >= 0) || isinf(o->scales[q]))
            return ats_error_set(err, ATS_ERR_INVALID, "scale %g: scales are finite and >= 0",
                                 o->scales[q]);
    if (o->layout_iters < 0)
        return ats_error_set(err, ATS_ERR_INVALID, "layout_iters is %d; it must be >= 0",
                             o->layout_iters);
    return ATS_OK;
}

ats_status ats_topo(const ats_attention *a, const ats_topo_options *o, ats_topo_result *res,
                    ats_error *err) {
    memset(res, 0, sizeof *res);
    ats_status st = check_options(a, o, err);
    if (st) return st;
    size_t n = a->n, m = n * (n - 1) / 2;
    res->n = n;
    res->full = malloc((n ? n * n : 1) * sizeof *res->full);
    res->lower = malloc((m ? m : 1) * sizeof *res->lower);
    double *sorted = malloc((m ? m : 1) * sizeof *sorted);
    if (!res->full || !res->lower || !sorted)
        st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    if (!st) st = head_matrix(a, o, res->full, res->lower, err);
    if (!st) {
        memcpy(sorted, res->lower, m * sizeof *sorted);
        qsort(sorted, m, sizeof *sorted, cmp_double);
        res->dmin = m ? sorted[0] : 0;
        res->dmax = m ? sorted[m - 1] : 0;
        res->median = m ? sorted[m / 2] : 0;
    }
    free(sorted);
    if (!st) {
        const ats_lower metric = {n, res->lower};
        st = ats_topo_scales(&metric, o->threshold, o->scales, o->n_scales, a->name, o->points,
                             res->scales, &res->n_scales, err);
    }
    if (!st) {
        ats_rips_options ro;
        ats_rips_options_init(&ro);
        ro.max_dim = o->max_dim;
        ro.threshold = o->threshold;
        ro.want_cycles = o->max_dim >= 1;
        ro.cancel = o->cancel;
        ro.cancel_ctx = o->cancel_ctx;
        ro.memory_limit_gb = o->memory_limit_gb;
        st = ats_rips_compute(n, res->lower, &ro, &res->rips, err);
    }
    if (!st && o->cancel && o->cancel(o->cancel_ctx))
        st = ats_error_set(err, ATS_ERR_CANCELLED, "topology of %zu %s: cancelled", n,
                           o->points ? o->points : "points");
    if (!st) {
        res->clusters = malloc((n ? n : 1) * res->n_scales * sizeof *res->clusters);
        if (!res->clusters) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    for (size_t q = 0; q < res->n_scales && !st; q++)
        st = ats_rips_clusters(n, res->lower, res->scales[q], res->clusters + q * n,
                               &res->n_clusters[q], err);
    if (!st && o->layout_iters > 0) {
        double big = 0;
        for (size_t q = 0; q < res->n_scales; q++) big = fmax(big, res->scales[q]);
        res->layout = malloc((n ? n : 1) * 3 * sizeof *res->layout);
        st = res->layout
                 ? ats_layout_force(n, res->lower, big, 3, o->layout_iters, res->layout, err)
                 : ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    if (st) ats_topo_result_free(res);
    return st;
}
