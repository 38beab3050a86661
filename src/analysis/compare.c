/* Two inputs compared head by head: each head's token metric, its persistence, and the
 * bottleneck and Wasserstein distances between the two inputs' diagrams. */
#include "analysis_internal.h"
#include "attnscope/diagram.h"
#include "attnscope/rips.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

ats_status ats_head_metric(const ats_attention *a, size_t l, size_t h, int seed_compat,
                           double max_error, int n_threads, double *full, double *lower,
                           ats_error *err) {
    size_t n = a->n;
    double *own = full ? NULL : malloc((n ? n * n : 1) * sizeof *own);
    if (!full && !own) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    double *m = full ? full : own;
    ats_attn v = ats_attention_head(a, l, h);
    ats_measure_opts mo;
    ats_measure_opts_init(&mo);
    mo.normalize = !seed_compat; /* rows sum to 1 up to float rounding; scipy normalises too */
    mo.seed_compat = seed_compat;
    mo.max_error = max_error;
    mo.n_threads = n_threads;
    ats_status st = ats_divergence_compute(&v, ATS_DIV_JSD, &mo, m, err);
    /* JS(i,j) and JS(j,i) are evaluated separately; their mean is the symmetric metric */
    if (!st) st = ats_metric_from_full(n, m, 1, a->name, lower, err);
    free(own);
    return st;
}

void ats_compare_options_init(ats_compare_options *o) {
    memset(o, 0, sizeof *o);
    o->layer = o->head = -1;
    o->max_dim = 1;
    o->q = 1.0;
    o->max_error = 1e-9;
}

void ats_compare_result_free(ats_compare_result *res) {
    if (!res) return;
    free(res->bottleneck);
    free(res->wasserstein);
    ats_attention_free(&res->inputs[0]);
    ats_attention_free(&res->inputs[1]);
    memset(res, 0, sizeof *res);
}

static ats_status check_options(const ats_compare_options *o, ats_error *err) {
    if (o->max_dim < 0 || o->max_dim > 2)
        return ats_error_set(err, ATS_ERR_INVALID, "max_dim is %d; compare takes 0..2", o->max_dim);
    if (!(o->q >= 1)) return ats_error_set(err, ATS_ERR_INVALID, "q is %g; it must be >= 1", o->q);
    if (!o->all_heads && (o->layer < 0 || o->head < 0))
        return ats_error_set(err, ATS_ERR_INVALID, "choose a head (layer, head) or all heads");
    return ATS_OK;
}

/* The chosen head must exist in every input. */
static ats_status check_head(const ats_attention *in, const ats_compare_options *o,
                             ats_error *err) {
    for (int t = 0; t < 2 && !o->all_heads; t++)
        if ((size_t)o->layer >= in[t].L || (size_t)o->head >= in[t].H)
            return ats_error_set(err, ATS_ERR_INVALID,
                                 "%s: layer %ld, head %ld is outside its %zu x %zu heads",
                                 in[t].name, o->layer, o->head, in[t].L, in[t].H);
    if (in[0].L != in[1].L || in[0].H != in[1].H)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "the two inputs have %zu x %zu and %zu x %zu heads", in[0].L, in[0].H,
                             in[1].L, in[1].H);
    return ATS_OK;
}

/* The metric of every chosen head of both inputs and their persistence in one parallel batch,
 * then the distances between the diagrams into res. */
static ats_status compare_core(const ats_compare_options *o, ats_compare_result *res,
                               ats_error *err_out) {
    const ats_attention *src = res->inputs;
    ats_status st = ATS_OK;
    ats_error err;
    ats_error_clear(&err);
    size_t L = src[0].L, H = src[0].H;
    size_t l0 = o->all_heads ? 0 : (size_t)o->layer, l1 = o->all_heads ? L : (size_t)o->layer + 1;
    size_t h0 = o->all_heads ? 0 : (size_t)o->head, h1 = o->all_heads ? H : (size_t)o->head + 1;
    size_t heads = (l1 - l0) * (h1 - h0), nd = (size_t)o->max_dim + 1;
    double **lowers = calloc(2 * heads, sizeof *lowers);
    const double **lp = calloc(2 * heads, sizeof *lp);
    size_t *ns = calloc(2 * heads, sizeof *ns);
    ats_rips_result *rr = calloc(2 * heads, sizeof *rr);
    ats_error *errs = calloc(2 * heads, sizeof *errs);
    double *bott = calloc(nd * L * H, sizeof *bott), *wass = calloc(nd * L * H, sizeof *wass);
    if (!lowers || !lp || !ns || !rr || !errs || !bott || !wass)
        st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nd * L * H && !st; i++) bott[i] = wass[i] = NAN;
    int threads = o->n_threads > 0 ? o->n_threads : omp_get_max_threads();
    long items = st ? 0 : (long)(2 * heads);
    /* item k: input k / heads, head k % heads (layer-major from (l0, h0)) */
#pragma omp parallel for schedule(dynamic) num_threads(threads) if (threads > 1 && items > 1)
    for (long kk = 0; kk < items; kk++) {
        size_t k = (size_t)kk, t = k / heads, j = k % heads;
        size_t l = l0 + j / (h1 - h0), h = h0 + j % (h1 - h0), n = src[t].n;
        ats_error_clear(&errs[k]);
        lowers[k] = malloc((n * (n - 1) / 2 + 1) * sizeof *lowers[k]);
        if (!lowers[k])
            ats_error_set(&errs[k], ATS_ERR_NOMEM, "out of memory");
        else
            ats_head_metric(&src[t], l, h, o->seed_compat, o->max_error, 1, NULL, lowers[k],
                            &errs[k]);
        lp[k] = lowers[k];
        ns[k] = n;
    }
    for (long k = 0; k < items && !st; k++)
        if (errs[k].status) err = errs[k], st = err.status;
    if (!st) {
        ats_rips_options ro;
        ats_rips_options_init(&ro);
        ro.max_dim = o->max_dim;
        st = ats_rips_compute_batch(2 * heads, ns, lp, &ro, o->n_threads, rr, errs);
        for (size_t k = 0; st && k < 2 * heads; k++)
            if (errs[k].status) {
                err = errs[k];
                break;
            }
    }
    ats_wasserstein_options wo;
    ats_wasserstein_options_init(&wo);
    wo.q = o->q;
    long pairs = st ? 0 : (long)(heads * nd);
    ats_error *perr = pairs ? calloc((size_t)pairs, sizeof *perr) : NULL;
    if (pairs && !perr) st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory"), pairs = 0;
        /* item k·nd + d: head k, dimension d */
#pragma omp parallel for schedule(dynamic) num_threads(threads) if (threads > 1 && pairs > 1)
    for (long kd = 0; kd < pairs; kd++) {
        size_t k = (size_t)kd / nd, d = (size_t)kd % nd;
        size_t l = l0 + k / (h1 - h0), h = h0 + k % (h1 - h0);
        double b = NAN, w = NAN;
        ats_error *e = &perr[kd];
        if (!ats_bottleneck_distance(&rr[k].dims[d], &rr[heads + k].dims[d], &b, NULL, e))
            ats_wasserstein_distance(&rr[k].dims[d], &rr[heads + k].dims[d], &wo, &w, NULL, e);
        bott[(d * L + l) * H + h] = b;
        wass[(d * L + l) * H + h] = w;
    }
    for (long kd = 0; kd < pairs && !st; kd++)
        if (perr[kd].status) err = perr[kd], st = err.status;
    free(perr);
    for (size_t k = 0; rr && lowers && k < 2 * heads; k++) {
        ats_rips_result_free(&rr[k]);
        free(lowers[k]);
    }
    free(lowers);
    free(lp);
    free(ns);
    free(rr);
    free(errs);
    if (st) {
        free(bott);
        free(wass);
        if (err_out) *err_out = err;
        return st;
    }
    res->L = L;
    res->H = H;
    res->n_dims = nd;
    res->bottleneck = bott;
    res->wasserstein = wass;
    return ATS_OK;
}

ats_status ats_compare_attention(ats_attention *a, ats_attention *b, const ats_compare_options *o,
                                 ats_compare_result *res, ats_error *err) {
    memset(res, 0, sizeof *res);
    res->inputs[0] = *a;
    res->inputs[1] = *b;
    memset(a, 0, sizeof *a);
    memset(b, 0, sizeof *b);
    ats_status st = check_options(o, err);
    if (!st) st = check_head(res->inputs, o, err);
    if (!st) st = compare_core(o, res, err);
    if (st) ats_compare_result_free(res);
    return st;
}

ats_status ats_compare(ats_session *s, const char *const texts[2], const ats_compare_options *o,
                       ats_compare_result *res, ats_error *err) {
    ats_error e = {0};
    ats_attention in[2];
    memset(res, 0, sizeof *res);
    ats_status st = check_options(o, &e);
    if (!st) {
        ats_run_options ro;
        ats_run_options_init(&ro);
        ro.n_threads = o->n_threads;
        ro.truncate = o->truncate;
        /* one head: the model runs up to its layer only */
        if (!o->all_heads && o->layer < ats_model_info_get(ats_session_model(s))->n_layers)
            ro.n_layers = (int)o->layer + 1;
        st = session_run(s, 2, texts, &ro, in, &e);
    }
    if (!st) st = ats_compare_attention(&in[0], &in[1], o, res, &e);
    return st ? session_failed(s, st, &e, err) : ATS_OK;
}
