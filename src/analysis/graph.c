/* One head as a weighted graph on its tokens, and the entropy, KL and JS between its tokens'
 * attention rows: what `attnscope graph` and `attnscope divergence` write, the report shows and
 * Python returns, with their figures. */
#include "analysis_internal.h"
#include "attnscope/render.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static ats_status check_head(const ats_attention *a, long l, long h, ats_error *err) {
    if (l < 0 || h < 0 || (size_t)l >= a->L || (size_t)h >= a->H)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "%s: layer %ld, head %ld is outside its %zu x %zu heads", a->name, l,
                             h, a->L, a->H);
    return ATS_OK;
}

/* ---- graph */

void ats_head_graph_options_init(ats_head_graph_options *o) {
    memset(o, 0, sizeof *o);
    o->layer = o->head = -1;
    o->min_weight = 0.05;
    ats_figure_options_init(&o->fig);
}

void ats_head_graph_result_free(ats_head_graph_result *res) {
    if (!res) return;
    free(res->weights);
    free(res->edges);
    memset(res, 0, sizeof *res);
}

ats_status ats_head_graph(const ats_attention *a, const ats_head_graph_options *o,
                          ats_head_graph_result *res, ats_error *err) {
    memset(res, 0, sizeof *res);
    ats_status st = check_head(a, o->layer, o->head, err);
    if (st) return st;
    if (!(o->min_weight >= 0) || isinf(o->min_weight))
        return ats_error_set(err, ATS_ERR_INVALID, "min_weight is %g; it must be finite and >= 0",
                             o->min_weight);
    if (o->seed_compat && o->directed)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "the seed's symmetrisation and a directed graph exclude each other");
    size_t n = a->n;
    double *m = malloc((n ? n * n : 1) * sizeof *m);
    if (!m) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    ats_attention_head_values(a, (size_t)o->layer, (size_t)o->head, m);
    res->n = n;
    res->weights = m;
    int causal = 1;
    for (size_t i = 0; i < n && causal; i++)
        for (size_t j = i + 1; j < n; j++)
            if (m[i * n + j] != 0) {
                causal = 0;
                break;
            }
    int sym = causal && !o->directed;
    /* what is drawn: the head itself, or for a causal head a symmetric W whose graph is
     * undirected: (A + Aᵀ)/2, or as the seed notebook its lower triangle copied up */
    if (sym)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < i; j++)
                m[i * n + j] = m[j * n + i] =
                    o->seed_compat ? m[i * n + j] : 0.5 * (m[i * n + j] + m[j * n + i]);
    res->symmetrized = sym;
    /* the edges the figure has, as the renderer chooses them */
    size_t cap = 0;
    for (int pass = 0; pass < 2; pass++) {
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                double w = m[i * n + j];
                if (i == j || (sym && j > i) || !(w >= o->min_weight && w > 0)) continue;
                if (pass) {
                    res->edges[2 * k] = i;
                    res->edges[2 * k + 1] = j;
                }
                k++;
            }
        if (!pass) {
            cap = k;
            res->edges = malloc((cap ? 2 * cap : 1) * sizeof *res->edges);
            if (!res->edges) {
                ats_head_graph_result_free(res);
                return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
            }
        }
    }
    res->n_edges = cap;
    if (o->figure) {
        ats_graph_options go;
        ats_graph_options_init(&go);
        go.fig = o->fig;
        go.labels = (const char *const *)a->labels;
        st = ats_render_attention_graph(o->figure, n, m, o->min_weight, sym, &go, err);
    }
    if (st) ats_head_graph_result_free(res);
    return st;
}

/* ---- divergences */

void ats_head_divergences_options_init(ats_head_divergences_options *o) {
    memset(o, 0, sizeof *o);
    o->layer = o->head = -1;
    o->base = ATS_BASE_2;
    o->eps = 1e-9;
    for (int k = 0; k < ATS_DIVFIG_COUNT; k++) ats_figure_options_init(&o->fig[k]);
}

void ats_head_divergences_result_free(ats_head_divergences_result *res) {
    if (!res) return;
    free(res->entropy);
    free(res->kl);
    free(res->js);
    memset(res, 0, sizeof *res);
}

/* The figures asked for: the two matrices as heatmaps over the tokens, the entropy as a row. */
static ats_status divergence_figures(const ats_attention *a, const ats_head_divergences_options *o,
                                     const ats_head_divergences_result *res, ats_error *err) {
    ats_status st = ATS_OK;
    size_t n = res->n;
    for (int k = 0; k < ATS_DIVFIG_COUNT && !st; k++) {
        if (!o->figures[k]) continue;
        ats_heatmap_options ho;
        ats_heatmap_options_init(&ho);
        ho.fig = o->fig[k];
        ho.col_labels = (const char *const *)a->labels;
        ho.value_title = res->units[k];
        if (k == ATS_DIVFIG_ENTROPY) {
            st = ats_render_heatmap(o->figures[k], 1, n, res->entropy, &ho, err);
            continue;
        }
        ho.row_labels = (const char *const *)a->labels;
        ho.row_title = "token i";
        ho.col_title = "token j";
        st = ats_render_heatmap(o->figures[k], n, n, k == ATS_DIVFIG_KL ? res->kl : res->js, &ho,
                                err);
    }
    return st;
}

ats_status ats_head_divergences(const ats_attention *a, const ats_head_divergences_options *o,
                                ats_head_divergences_result *res, ats_error *err) {
    memset(res, 0, sizeof *res);
    ats_status st = check_head(a, o->layer, o->head, err);
    if (st) return st;
    if (o->base != ATS_BASE_2 && o->base != ATS_BASE_E)
        return ats_error_set(err, ATS_ERR_INVALID, "unknown logarithm base %d", o->base);
    if (!(o->eps >= 0) || isinf(o->eps))
        return ats_error_set(err, ATS_ERR_INVALID, "eps is %g; it must be finite and >= 0", o->eps);
    size_t n = a->n;
    res->n = n;
    res->entropy = malloc((n ? n : 1) * sizeof *res->entropy);
    res->kl = malloc((n ? n * n : 1) * sizeof *res->kl);
    res->js = malloc((n ? n * n : 1) * sizeof *res->js);
    if (!res->entropy || !res->kl || !res->js) {
        ats_head_divergences_result_free(res);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    const char *unit = o->base == ATS_BASE_E ? "nats" : "bits";
    res->units[ATS_DIVFIG_KL] = o->seed_compat ? "bits" : unit;
    res->units[ATS_DIVFIG_JS] = o->seed_compat ? "nats" : unit;
    res->units[ATS_DIVFIG_ENTROPY] = o->seed_compat ? "nats" : unit;
    ats_attn v = ats_attention_head(a, (size_t)o->layer, (size_t)o->head);
    ats_measure_opts mo;
    ats_measure_opts_init(&mo);
    mo.base = o->base == ATS_BASE_E ? ATS_BASE_E : ATS_BASE_2;
    /* float attention sums to 1 only up to rounding; the notebook takes the rows as they are */
    mo.normalize = !o->seed_compat;
    mo.seed_compat = o->seed_compat;
    mo.n_threads = o->n_threads;
    st = ats_entropy_compute(&v, &mo, res->entropy, err);
    if (!st) st = ats_divergence_compute(&v, ATS_DIV_JS, &mo, res->js, err);
    mo.eps = o->seed_compat ? 0.0 : o->eps; /* seed_compat: the notebook's 1e-9 */
    if (!st) st = ats_divergence_compute(&v, ATS_DIV_KL, &mo, res->kl, err);
    if (!st) st = divergence_figures(a, o, res, err);
    if (st) ats_head_divergences_result_free(res);
    return st;
}
