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
    if (seed_compat < ATS_SEED_OFF || seed_compat > ATS_SEED_JSD)
        return ats_error_set(err, ATS_ERR_INVALID, "unknown seed distance %d", seed_compat);
    size_t n = a->n;
    double *own = full ? NULL : malloc((n ? n * n : 1) * sizeof *own);
    if (!full && !own) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    double *m = full ? full : own;
    ats_attn v = ats_attention_head(a, l, h);
    ats_measure_opts mo;
    ats_measure_opts_init(&mo);
    mo.normalize = !seed_compat; /* rows sum to 1 up to float rounding; scipy normalises too */
    mo.seed_compat = seed_compat != ATS_SEED_OFF;
    mo.max_error = max_error;
    mo.n_threads = n_threads;
    /* with seed_compat, ATS_DIV_JS is scipy's JS distance (the notebook's first distance cell)
     * and ATS_DIV_JSD its square root (the later one) */
    ats_status st = ats_divergence_compute(
        &v, seed_compat == ATS_SEED_JSD ? ATS_DIV_JS : ATS_DIV_JSD, &mo, m, err);
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

/* What both compare results own. */
static void free_parts(double *bott, double *wass, ats_attention inputs[2]) {
    free(bott);
    free(wass);
    ats_attention_free(&inputs[0]);
    ats_attention_free(&inputs[1]);
}

void ats_compare_result_free(ats_compare_result *res) {
    if (!res) return;
    free_parts(res->bottleneck, res->wasserstein, res->inputs);
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

/* One head of one input. */
typedef struct head_ref {
    size_t t, l, h; /* input, layer, head */
} head_ref;

/* The token metric of each of the count heads refs and its persistence H0..o->max_dim into
 * rr[count], in one parallel batch, the heads done added to pg; on failure rr holds nothing. */
static ats_status heads_persistence(const ats_attention *src, size_t count, const head_ref *refs,
                                    const ats_compare_options *o, progress_phase *pg,
                                    ats_rips_result *rr, ats_error *err_out) {
    ats_status st = ATS_OK;
    ats_error err;
    ats_error_clear(&err);
    double **lowers = calloc(count ? count : 1, sizeof *lowers);
    const double **lp = calloc(count ? count : 1, sizeof *lp);
    size_t *ns = calloc(count ? count : 1, sizeof *ns);
    ats_error *errs = calloc(count ? count : 1, sizeof *errs);
    if (!lowers || !lp || !ns || !errs) st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
    int threads = o->n_threads > 0 ? o->n_threads : omp_get_max_threads();
    long items = st ? 0 : (long)count;
#pragma omp parallel for schedule(dynamic) num_threads(threads) if (threads > 1 && items > 1)
    for (long kk = 0; kk < items; kk++) {
        size_t k = (size_t)kk, n = src[refs[k].t].n;
        ats_error_clear(&errs[k]);
        lowers[k] = malloc((n * (n - 1) / 2 + 1) * sizeof *lowers[k]);
        if (!lowers[k])
            ats_error_set(&errs[k], ATS_ERR_NOMEM, "out of memory");
        else
            ats_head_metric(&src[refs[k].t], refs[k].l, refs[k].h, o->seed_compat, o->max_error, 1,
                            NULL, lowers[k], &errs[k]);
        lp[k] = lowers[k];
        ns[k] = n;
    }
    for (long k = 0; k < items && !st; k++)
        if (errs[k].status) err = errs[k], st = err.status;
    if (!st) {
        ats_rips_options ro;
        ats_rips_options_init(&ro);
        ro.max_dim = o->max_dim;
        /* in slices of a few problems a thread, so that progress can be told between them */
        size_t slice = o->progress ? 4 * (size_t)threads : count;
        for (size_t k0 = 0; k0 < count && !st; k0 += slice) {
            size_t m = count - k0 < slice ? count - k0 : slice;
            st = ats_rips_compute_batch(m, ns + k0, lp + k0, &ro, o->n_threads, rr + k0, errs + k0);
            for (size_t k = k0; st && k < k0 + m; k++)
                if (errs[k].status) {
                    err = errs[k];
                    break;
                }
            progress_add(pg, m);
        }
    }
    for (size_t k = 0; lowers && k < count; k++) free(lowers[k]);
    if (st)
        for (size_t k = 0; k < count; k++) ats_rips_result_free(&rr[k]);
    free(lowers);
    free(lp);
    free(ns);
    free(errs);
    if (st && err_out) *err_out = err;
    return st;
}

/* The bottleneck and q-Wasserstein distances of each dimension d between the diagrams rr[a[p]]
 * and rr[b[p]] of the n_pairs pairs p, into bott/wass[d * plane + pos[p]]. */
static ats_status diagram_distances(const ats_rips_result *rr, size_t n_pairs, const size_t *a,
                                    const size_t *b, const size_t *pos, size_t plane,
                                    const ats_compare_options *o, double *bott, double *wass,
                                    ats_error *err) {
    size_t nd = (size_t)o->max_dim + 1;
    int threads = o->n_threads > 0 ? o->n_threads : omp_get_max_threads();
    ats_wasserstein_options wo;
    ats_wasserstein_options_init(&wo);
    wo.q = o->q;
    long pairs = (long)(n_pairs * nd);
    ats_error *perr = calloc(pairs ? (size_t)pairs : 1, sizeof *perr);
    if (!perr) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    progress_phase pd;
    if (pairs)
        progress_begin(&pd, o->progress, o->progress_ctx, "diagram distances", "heads", n_pairs);
        /* item p·nd + d: pair p, dimension d */
#pragma omp parallel for schedule(dynamic) num_threads(threads) if (threads > 1 && pairs > 1)
    for (long kd = 0; kd < pairs; kd++) {
        size_t p = (size_t)kd / nd, d = (size_t)kd % nd;
        double bd = NAN, wd = NAN;
        ats_error *e = &perr[kd];
        if (!ats_bottleneck_distance(&rr[a[p]].dims[d], &rr[b[p]].dims[d], &bd, NULL, e))
            ats_wasserstein_distance(&rr[a[p]].dims[d], &rr[b[p]].dims[d], &wo, &wd, NULL, e);
        bott[d * plane + pos[p]] = bd;
        wass[d * plane + pos[p]] = wd;
    }
    ats_status st = ATS_OK;
    for (long kd = 0; kd < pairs && !st; kd++)
        if (perr[kd].status) {
            if (err) *err = perr[kd];
            st = perr[kd].status;
        }
    if (pairs && !st) progress_add(&pd, n_pairs);
    free(perr);
    return st;
}

/* The diagrams of the count heads refs (rr given: computed already, as the pass handed the
 * layers over; NULL: from src's attention), then the distances of the n_pairs pairs (indices
 * into refs) into fresh [nd][plane] arrays, NaN where no pair lands. */
static ats_status compare_heads(const ats_attention *src, size_t count, const head_ref *refs,
                                const ats_rips_result *given, size_t n_pairs, const size_t *a,
                                const size_t *b, const size_t *pos, size_t plane,
                                const ats_compare_options *o, double **bott_out, double **wass_out,
                                ats_error *err) {
    size_t nd = (size_t)o->max_dim + 1;
    ats_rips_result *rr = given ? NULL : calloc(count ? count : 1, sizeof *rr);
    double *bott = calloc(nd * plane + 1, sizeof *bott);
    double *wass = calloc(nd * plane + 1, sizeof *wass);
    ats_status st =
        (rr || given) && bott && wass ? ATS_OK : ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nd * plane && !st; i++) bott[i] = wass[i] = NAN;
    if (!st && rr) {
        progress_phase pg;
        progress_begin(&pg, o->progress, o->progress_ctx, "persistence", "heads", count);
        st = heads_persistence(src, count, refs, o, &pg, rr, err);
        if (!st) progress_end(&pg);
    }
    if (!st)
        st = diagram_distances(given ? given : rr, n_pairs, a, b, pos, plane, o, bott, wass, err);
    for (size_t k = 0; rr && k < count; k++) ats_rips_result_free(&rr[k]);
    free(rr);
    if (st) {
        free(bott);
        free(wass);
        return st;
    }
    *bott_out = bott;
    *wass_out = wass;
    return ATS_OK;
}

/* Every chosen head of input 0 against the same head of input 1, into res; rr: their diagrams
 * (stream_layer's order), or NULL to compute them from the inputs' attention. */
static ats_status compare_core(const ats_compare_options *o, ats_compare_result *res,
                               const ats_rips_result *rr, ats_error *err) {
    const ats_attention *src = res->inputs;
    size_t L = src[0].L, H = src[0].H;
    size_t l0 = o->all_heads ? 0 : (size_t)o->layer, l1 = o->all_heads ? L : (size_t)o->layer + 1;
    size_t h0 = o->all_heads ? 0 : (size_t)o->head, h1 = o->all_heads ? H : (size_t)o->head + 1;
    size_t heads = (l1 - l0) * (h1 - h0);
    head_ref *refs = calloc(2 * heads, sizeof *refs);
    size_t *idx = calloc(3 * heads, sizeof *idx);
    if (!refs || !idx) {
        free(refs);
        free(idx);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    /* ref k and heads + k: head k (layer-major from (l0, h0)) of input 0 and 1 */
    for (size_t k = 0; k < heads; k++) {
        size_t l = l0 + k / (h1 - h0), h = h0 + k % (h1 - h0);
        refs[k] = (head_ref){0, l, h};
        refs[heads + k] = (head_ref){1, l, h};
        idx[k] = k;
        idx[heads + k] = heads + k;
        idx[2 * heads + k] = l * H + h;
    }
    double *bott = NULL, *wass = NULL;
    ats_status st = compare_heads(src, 2 * heads, refs, rr, heads, idx, idx + heads,
                                  idx + 2 * heads, L * H, o, &bott, &wass, err);
    free(refs);
    free(idx);
    if (st) return st;
    res->L = L;
    res->H = H;
    res->n_dims = (size_t)o->max_dim + 1;
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
    if (!st) st = compare_core(o, res, NULL, err);
    if (st) ats_compare_result_free(res);
    return st;
}

/* The diagrams of the compared heads, computed as the forward pass hands each layer over
 * (session_run_layers), so that no input's attention is held beyond one layer. */
typedef struct stream {
    const ats_compare_options *o;
    size_t input0;       /* the input the run's text 0 is (compare_models: one run a model) */
    size_t first[2];     /* rr index of each input's first head: its heads follow layer-major
                            (all heads), or the one head (o->layer, o->head) */
    ats_rips_result *rr; /* [first[1] + input 1's heads] */
    progress_phase pg;   /* "persistence" over both inputs' heads */
    int failed;          /* 1: stream_layer failed (its error is not the run's) */
} stream;

/* session_layers.fn: the compared heads of layer l of the run's text t. */
static ats_status stream_layer(void *ctx, size_t t, size_t l, const ats_attention *v,
                               ats_error *err) {
    stream *sm = ctx;
    const ats_compare_options *o = sm->o;
    size_t in = sm->input0 + t, H = v->H, h0 = 0, h1 = H, at = sm->first[in] + l * H;
    if (!o->all_heads) { /* a head outside the model is refused after the run (check_head) */
        if (l != (size_t)o->layer || (size_t)o->head >= H) return ATS_OK;
        h0 = (size_t)o->head;
        h1 = h0 + 1;
        at = sm->first[in];
    }
    head_ref *refs = malloc((h1 - h0) * sizeof *refs);
    if (!refs) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    for (size_t h = h0; h < h1; h++) refs[h - h0] = (head_ref){0, 0, h};
    ats_status st = heads_persistence(v, h1 - h0, refs, o, &sm->pg, sm->rr + at, err);
    free(refs);
    sm->failed |= st != ATS_OK;
    return st;
}

/* session_layers.bytes: what stream_layer holds for a layer of H heads of n tokens at most:
 * the compared heads' metrics (n(n-1)/2 doubles each), and per head in work at once the full
 * [n][n] JS matrix or the Rips computation. The Rips share is what the peak grew by, per n²
 * and head in work, on SmolLM2 (two threads): about 20 bytes for H0 (32 counted); with H1
 * 150 at n = 565 and 190 at n = 1 040 (200 counted), part of it memory malloc keeps after the
 * Rips work frees it (rips alone on one such head: 20 to 30) */
static size_t stream_bytes(void *ctx, size_t n, size_t H) {
    const stream *sm = ctx;
    size_t heads = sm->o->all_heads ? H : 1;
    size_t threads =
        sm->o->n_threads > 0 ? (size_t)sm->o->n_threads : (size_t)omp_get_max_threads();
    double nn = (double)n * (double)n, busy = (double)(threads < heads ? threads : heads);
    double rips = sm->o->max_dim > 0 ? 200 : 32;
    double b = (double)heads * ((double)n * (double)(n ? n - 1 : 0) / 2 + 1) * 8 + busy * rips * nn;
    return b >= 0.9 * (double)SIZE_MAX ? SIZE_MAX : (size_t)b;
}

/* Frees the count diagrams of sm and the array. */
static void stream_free(stream *sm, size_t count) {
    for (size_t k = 0; sm->rr && k < count; k++) ats_rips_result_free(&sm->rr[k]);
    free(sm->rr);
    sm->rr = NULL;
}

ats_status ats_compare(ats_session *s, const char *const texts[2], const ats_compare_options *o,
                       ats_compare_result *res, ats_error *err) {
    ats_error e = {0};
    memset(res, 0, sizeof *res);
    ats_status st = check_options(o, &e);
    const ats_model_info *mi = ats_model_info_get(ats_session_model(s));
    size_t heads = o->all_heads ? (size_t)mi->n_layers * (size_t)mi->n_heads : 1;
    stream sm = {o, 0, {0, heads}, NULL, {0}, 0};
    if (!st && !(sm.rr = calloc(2 * heads, sizeof *sm.rr)))
        st = ats_error_set(&e, ATS_ERR_NOMEM, "out of memory");
    if (!st) {
        ats_run_options ro;
        ats_run_options_init(&ro);
        ro.n_threads = o->n_threads;
        ro.truncate = o->truncate;
        /* one head: the model runs up to its layer only */
        if (!o->all_heads && o->layer < mi->n_layers) ro.n_layers = (int)o->layer + 1;
        progress_begin(&sm.pg, o->progress, o->progress_ctx, "persistence", "heads", 2 * heads);
        session_layers ly = {stream_layer, stream_bytes, &sm, NULL};
        st = session_run_layers(s, 2, texts, &ro, &ly, res->inputs, &e);
        if (!st) st = check_head(res->inputs, o, &e);
        if (!st) progress_end(&sm.pg);
    }
    if (!st) st = compare_core(o, res, sm.rr, &e);
    stream_free(&sm, 2 * heads);
    if (st) ats_compare_result_free(res);
    return st ? session_failed(s, st, &e, err) : ATS_OK;
}

void ats_compare_models_result_free(ats_compare_models_result *res) {
    if (!res) return;
    free_parts(res->bottleneck, res->wasserstein, res->inputs);
    memset(res, 0, sizeof *res);
}

/* Every chosen head of model A's attention against every chosen head of model B's, into res,
 * from their diagrams rr (A's heads, then B's, as stream_layer leaves them). */
static ats_status compare_models_core(const ats_compare_options *o, ats_compare_models_result *res,
                                      const ats_rips_result *rr, ats_error *err) {
    const ats_attention *src = res->inputs;
    size_t cnt[2], rows = src[0].L * src[0].H, cols = src[1].L * src[1].H;
    for (int t = 0; t < 2; t++) {
        if (!o->all_heads && ((size_t)o->layer >= src[t].L || (size_t)o->head >= src[t].H))
            return ats_error_set(err, ATS_ERR_INVALID,
                                 "%s: layer %ld, head %ld is outside its %zu x %zu heads",
                                 src[t].name, o->layer, o->head, src[t].L, src[t].H);
        cnt[t] = o->all_heads ? src[t].L * src[t].H : 1;
    }
    size_t count = cnt[0] + cnt[1], n_pairs = cnt[0] * cnt[1];
    head_ref *refs = calloc(count, sizeof *refs);
    size_t *idx = calloc(3 * n_pairs, sizeof *idx);
    if (!refs || !idx) {
        free(refs);
        free(idx);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    /* refs: A's heads (layer-major), then B's; with one head, (layer, head) of each */
    for (int t = 0; t < 2; t++)
        for (size_t k = 0; k < cnt[t]; k++) {
            size_t H = src[t].H;
            refs[(t ? cnt[0] : 0) + k] =
                o->all_heads ? (head_ref){(size_t)t, k / H, k % H}
                             : (head_ref){(size_t)t, (size_t)o->layer, (size_t)o->head};
        }
    for (size_t i = 0; i < cnt[0]; i++)
        for (size_t j = 0; j < cnt[1]; j++) {
            size_t p = i * cnt[1] + j;
            size_t row = refs[i].l * src[0].H + refs[i].h;
            size_t col = refs[cnt[0] + j].l * src[1].H + refs[cnt[0] + j].h;
            idx[p] = i;
            idx[n_pairs + p] = cnt[0] + j;
            idx[2 * n_pairs + p] = row * cols + col;
        }
    double *bott = NULL, *wass = NULL;
    ats_status st = compare_heads(src, count, refs, rr, n_pairs, idx, idx + n_pairs,
                                  idx + 2 * n_pairs, rows * cols, o, &bott, &wass, err);
    free(refs);
    free(idx);
    if (st) return st;
    for (int t = 0; t < 2; t++) {
        res->L[t] = src[t].L;
        res->H[t] = src[t].H;
    }
    res->n_dims = (size_t)o->max_dim + 1;
    res->bottleneck = bott;
    res->wasserstein = wass;
    return ATS_OK;
}

ats_status ats_compare_models(ats_session *a, ats_session *b, const char *const texts[2],
                              const ats_compare_options *o, ats_compare_models_result *res,
                              ats_error *err) {
    ats_error e = {0};
    ats_session *s[2] = {a, b};
    memset(res, 0, sizeof *res);
    ats_status st = check_options(o, &e);
    if (!st && (!a || !b || !texts || !texts[0] || !texts[1]))
        st = ats_error_set(&e, ATS_ERR_INVALID, "compare_models needs two models and a text each");
    /* each model's heads' diagrams as its pass hands the layers over: A's, then B's */
    size_t cnt[2] = {1, 1};
    for (int t = 0; t < 2 && !st && o->all_heads; t++) {
        const ats_model_info *mi = ats_model_info_get(ats_session_model(s[t]));
        cnt[t] = (size_t)mi->n_layers * (size_t)mi->n_heads;
    }
    stream sm = {o, 0, {0, cnt[0]}, NULL, {0}, 0};
    if (!st && !(sm.rr = calloc(cnt[0] + cnt[1], sizeof *sm.rr)))
        st = ats_error_set(&e, ATS_ERR_NOMEM, "out of memory");
    if (!st)
        progress_begin(&sm.pg, o->progress, o->progress_ctx, "persistence", "heads",
                       cnt[0] + cnt[1]);
    int failed = -1; /* the session whose run failed, to record the message on */
    for (int t = 0; t < 2 && !st; t++) {
        ats_run_options ro;
        ats_run_options_init(&ro);
        ro.n_threads = o->n_threads;
        ro.truncate = o->truncate;
        /* one head: each model runs up to that layer only */
        if (!o->all_heads && o->layer < ats_model_info_get(ats_session_model(s[t]))->n_layers)
            ro.n_layers = (int)o->layer + 1;
        const char *dir = ats_model_info_get(ats_session_model(s[t]))->dir;
        /* named after the model: the two inputs' errors and titles say which model */
        char buf[1024];
        snprintf(buf, sizeof buf, "model %c (%s)", "AB"[t], dir);
        const char *names[1] = {buf};
        session_layers ly = {stream_layer, stream_bytes, &sm, names};
        sm.input0 = (size_t)t;
        st = session_run_layers(s[t], 1, &texts[t], &ro, &ly, &res->inputs[t], &e);
        if (st && !sm.failed) {
            /* session_run names its one text "text 1" whichever model ran it */
            char msg[sizeof e.message];
            snprintf(msg, sizeof msg, "%s", e.message);
            ats_error_set(&e, st, "model %c (%s): %s", "AB"[t], dir, msg);
            failed = t;
            break;
        }
        char *name = st ? NULL : strdup(buf);
        if (!st && !name) st = ats_error_set(&e, ATS_ERR_NOMEM, "out of memory");
        if (st) break;
        free(res->inputs[t].name);
        res->inputs[t].name = name;
    }
    if (!st) progress_end(&sm.pg);
    if (!st) st = compare_models_core(o, res, sm.rr, &e);
    stream_free(&sm, cnt[0] + cnt[1]);
    if (!st) return ATS_OK;
    ats_compare_models_result_free(res);
    return session_failed(failed >= 0 ? s[failed] : a, st, &e, err);
}
