/* Permutation equivariance of self-attention: Attn(PX) = P·Attn(X)·Pᵀ without positional
 * encodings; position embeddings (and a causal mask) break it. The model runs on a text and on
 * a permutation of its tokens, once as it is and once without its position embeddings
 * (ats_forward_options.no_positions). `attnscope equivariance` and attnscope.equivariance call
 * it. */
#include "analysis_internal.h"
#include "attnscope/render.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

void ats_equivariance_options_init(ats_equivariance_options *o) {
    memset(o, 0, sizeof *o);
    o->seed = 1;
    o->format = ATS_FIGURE_PNG;
}

void ats_equivariance_result_free(ats_equivariance_result *res) {
    if (!res) return;
    free(res->permutation);
    free(res->with_positions);
    free(res->without_positions);
    ats_figure_memory_free(&res->figure);
    memset(res, 0, sizeof *res);
}

/* max over heads and token pairs of |B[p(i)][p(j)] − A[i][j]| per layer, where B ran on the
 * permuted sequence (B's token k is A's token perm[k]; so A[i][j] ↔ B[inv[i]][inv[j]]). */
static void deviation(const ats_forward_result *a, const ats_forward_result *b, const size_t *inv,
                      double *out) {
    size_t L = a->n_layers, H = a->n_heads, n = a->n_tokens;
    for (size_t l = 0; l < L; l++) {
        double m = 0;
        for (size_t h = 0; h < H; h++) {
            const float *A = a->attention + (l * H + h) * n * n;
            const float *B = b->attention + (l * H + h) * n * n;
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n; j++)
                    m = fmax(m, fabs((double)B[inv[i] * n + inv[j]] - (double)A[i * n + j]));
        }
        out[l] = m;
    }
}

/* dev[l] ← the deviation of layer l between the text and its permutation */
static ats_status run_pair(ats_model *m, const int32_t *ids, const int32_t *pids, size_t n,
                           const size_t *inv, int positions, double *dev, ats_error *err) {
    ats_forward_options fo;
    ats_forward_options_init(&fo);
    fo.no_positions = !positions;
    ats_forward_result ra, rb;
    memset(&ra, 0, sizeof ra);
    memset(&rb, 0, sizeof rb);
    ats_model_input in = {ids, NULL, NULL, n}, pin = {pids, NULL, NULL, n};
    ats_status st = ats_model_forward(m, &in, &fo, &ra, err);
    if (!st) st = ats_model_forward(m, &pin, &fo, &rb, err);
    if (!st) deviation(&ra, &rb, inv, dev);
    ats_forward_result_free(&ra);
    ats_forward_result_free(&rb);
    return st;
}

/* Fisher–Yates with a 64-bit LCG: the same seed gives the same permutation. */
static void permutation(long seed, size_t n, size_t *perm) {
    uint64_t state = (uint64_t)seed * 2862933555777941757ull + 3037000493ull;
    for (size_t i = 0; i < n; i++) perm[i] = i;
    for (size_t i = n - 1; i > 0; i--) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        size_t j = (size_t)((state >> 33) % (i + 1));
        size_t t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
}

static ats_status chart(ats_equivariance_result *res, const ats_equivariance_options *o,
                        ats_error *err) {
    size_t L = res->L;
    double *x = malloc((L ? L : 1) * sizeof *x);
    if (!x) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    for (size_t l = 0; l < L; l++) x[l] = (double)l;
    ats_series series[2] = {{"with position embeddings", L, x, res->with_positions},
                            {"without position embeddings", L, x, res->without_positions}};
    ats_lines_options lo;
    ats_lines_options_init(&lo);
    lo.fig.title = o->title ? o->title : "max |Attn(PX) - P Attn(X) P^T| by layer";
    lo.x_title = "layer";
    lo.y_title = "largest deviation";
    lo.fig.width = 720;
    lo.x_integer = 1;
    lo.y_log = 1; /* the float-rounding level (1e-7) next to the O(1) deviations */
    res->figure.format = o->format;
    lo.fig.memory = &res->figure;
    ats_status st = ats_render_lines("equivariance", 2, series, &lo, err);
    free(x);
    return st;
}

ats_status ats_equivariance(ats_session *s, const char *text, const ats_equivariance_options *o,
                            ats_equivariance_result *res, ats_error *err) {
    memset(res, 0, sizeof *res);
    ats_error e;
    ats_error_clear(&e);
    ats_model *m = ats_session_model(s);
    const ats_model_info *info = ats_model_info_get(m);
    ats_status st = ATS_OK;
    if (info->arch == ATS_ARCH_VIT)
        st = ats_error_set(&e, ATS_ERR_INVALID, "%s: a vision model has no text", info->dir);
    if (!st && o->seed < 0)
        st = ats_error_set(&e, ATS_ERR_INVALID, "seed %ld: it is >= 0", o->seed);
    if (!st && o->figures && (o->format < ATS_FIGURE_PNG || o->format > ATS_FIGURE_PDF))
        st = ats_error_set(&e, ATS_ERR_INVALID, "unknown figure format %d", (int)o->format);
    ats_encoding enc;
    memset(&enc, 0, sizeof enc);
    if (!st) st = ats_tokenizer_encode(ats_session_tokenizer(s), text, strlen(text), 1, &enc, &e);
    size_t n = enc.count, L = (size_t)info->n_layers;
    int32_t *pids = NULL;
    size_t *inv = NULL;
    if (!st) {
        res->L = L;
        res->n = n;
        res->causal = info->causal;
        pids = malloc((n ? n : 1) * sizeof *pids);
        inv = malloc((n ? n : 1) * sizeof *inv);
        res->permutation = malloc((n ? n : 1) * sizeof *res->permutation);
        res->with_positions = calloc(L ? L : 1, sizeof(double));
        res->without_positions = calloc(L ? L : 1, sizeof(double));
        if (!pids || !inv || !res->permutation || !res->with_positions || !res->without_positions)
            st = ats_error_set(&e, ATS_ERR_NOMEM, "out of memory");
    }
    if (!st && n < 2) st = ats_error_set(&e, ATS_ERR_INVALID, "the text has fewer than 2 tokens");
    if (!st) {
        permutation(o->seed, n, res->permutation);
        for (size_t k = 0; k < n; k++) {
            pids[k] = enc.ids[res->permutation[k]];
            inv[res->permutation[k]] = k;
        }
        st = run_pair(m, enc.ids, pids, n, inv, 1, res->with_positions, &e);
    }
    if (!st) st = run_pair(m, enc.ids, pids, n, inv, 0, res->without_positions, &e);
    if (!st && o->figures) st = chart(res, o, &e);
    ats_encoding_free(&enc);
    free(pids);
    free(inv);
    if (st) {
        ats_equivariance_result_free(res);
        return session_failed(s, st, &e, err);
    }
    return ATS_OK;
}
