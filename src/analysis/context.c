/* Context vectors (analysis.h, "context vectors"): a word's vectors in two texts compared at
 * every hidden state and head, and a phrase's vectors across the lines of a corpus, with their
 * distances, persistence and clusters at every unit (the seed's collocation study). */
#include "analysis_internal.h"
#include "attnscope/measure.h"
#include "attnscope/model.h"
#include "attnscope/rips.h"
#include "attnscope/tokenizer.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A byte range [s, e) of a text. */
typedef struct span {
    size_t s, e;
} span;

/* The first whole-word, case-insensitive occurrence of w in text: 1 and *out, or 0. */
static int find_word(const char *text, const char *w, span *out) {
    size_t n = strlen(text), m = strlen(w);
    if (m == 0) return 0;
    for (size_t i = 0; i + m <= n; i++) {
        size_t k = 0;
        while (k < m && tolower((unsigned char)text[i + k]) == tolower((unsigned char)w[k])) k++;
        if (k < m) continue;
        int left = i == 0 || !isalnum((unsigned char)text[i - 1]);
        int right = i + m == n || !isalnum((unsigned char)text[i + m]);
        if (left && right) {
            out->s = i;
            out->e = i + m;
            return 1;
        }
    }
    return 0;
}

/* The phrase's words as spans relative to its start into w (NULL: only count them). */
static size_t phrase_words(const char *p, span *w) {
    size_t k = 0, i = 0, n = strlen(p);
    while (i < n) {
        while (i < n && isspace((unsigned char)p[i])) i++;
        if (i == n) break;
        size_t s = i;
        while (i < n && !isspace((unsigned char)p[i])) i++;
        if (w) w[k] = (span){s, i};
        k++;
    }
    return k;
}

/* The vectors of n_sp spans of one text at every unit: hid [L+1][n_sp][d] and ctx
 * [L][H][n_sp][dh], each the mean of the span's tokens' vectors (float, in token order). */
static ats_status text_vectors(ats_session *s, const char *text, const span *sp, size_t n_sp,
                               const ats_context_options *o, float *hid, float *ctx,
                               ats_error *err) {
    const ats_model_info *mi = ats_model_info_get(ats_session_model(s));
    size_t L = (size_t)mi->n_layers, H = (size_t)mi->n_heads, d = (size_t)mi->d_model,
           dh = (size_t)mi->d_head, qd = H * dh;
    ats_encoding enc;
    ats_status st =
        ats_tokenizer_encode(ats_session_tokenizer(s), text, strlen(text), 1, &enc, err);
    if (st) return st;
    ats_forward_options fo;
    ats_forward_options_init(&fo);
    fo.capture = ATS_CAPTURE_HIDDEN | ATS_CAPTURE_CONTEXT;
    fo.truncate = o->truncate;
    fo.n_threads = o->n_threads;
    ats_model_input in = {enc.ids, NULL, NULL, enc.count};
    ats_forward_result res;
    st = ats_model_forward(ats_session_model(s), &in, &fo, &res, err);
    if (st) {
        ats_encoding_free(&enc);
        return st;
    }
    size_t n = res.n_tokens;
    memset(hid, 0, (L + 1) * n_sp * d * sizeof *hid);
    memset(ctx, 0, L * H * n_sp * dh * sizeof *ctx);
    for (size_t k = 0; k < n_sp && !st; k++) {
        size_t used = 0;
        for (size_t t = 0; t < n; t++) {
            size_t a = enc.offsets[2 * t], b = enc.offsets[2 * t + 1];
            if (enc.special[t] || b <= sp[k].s || a >= sp[k].e) continue;
            used++;
            for (size_t l = 0; l <= L; l++) {
                float *v = hid + (l * n_sp + k) * d;
                const float *x = res.hidden + (l * n + t) * d;
                for (size_t c = 0; c < d; c++) v[c] += x[c];
            }
            for (size_t l = 0; l < L; l++)
                for (size_t h = 0; h < H; h++) {
                    float *v = ctx + ((l * H + h) * n_sp + k) * dh;
                    const float *x = res.context + (l * n + t) * qd + h * dh;
                    for (size_t c = 0; c < dh; c++) v[c] += x[c];
                }
        }
        if (used == 0) {
            st = ats_error_set(err, ATS_ERR_INVALID,
                               "no token of the model covers the word in \"%.60s\"", text);
            break;
        }
        for (size_t l = 0; l <= L; l++)
            for (size_t c = 0; c < d; c++) hid[(l * n_sp + k) * d + c] /= (float)used;
        for (size_t u = 0; u < L * H; u++)
            for (size_t c = 0; c < dh; c++) ctx[(u * n_sp + k) * dh + c] /= (float)used;
    }
    ats_forward_result_free(&res);
    ats_encoding_free(&enc);
    return st;
}

static double cosine(const float *x, const float *y, size_t d) {
    double xy = 0, xx = 0, yy = 0;
    for (size_t k = 0; k < d; k++) {
        xy += (double)x[k] * y[k];
        xx += (double)x[k] * x[k];
        yy += (double)y[k] * y[k];
    }
    return (xx > 0 && yy > 0) ? xy / sqrt(xx * yy) : NAN;
}

void ats_context_options_init(ats_context_options *o) {
    memset(o, 0, sizeof *o);
    o->head = -1;
    o->max_contexts = 200;
    o->max_dim = 1;
}

static ats_status check_options(const ats_model_info *mi, const ats_context_options *o,
                                ats_error *err) {
    if (o->layer < ATS_CONTEXT_EMBEDDINGS || o->layer >= mi->n_layers)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "layer %ld: the model has layers 0..%d (or the embeddings)", o->layer,
                             mi->n_layers - 1);
    if (o->head < -1 || o->head >= mi->n_heads)
        return ats_error_set(err, ATS_ERR_INVALID, "head %ld: the model has heads 0..%d", o->head,
                             mi->n_heads - 1);
    if (o->head >= 0 && o->layer == ATS_CONTEXT_EMBEDDINGS)
        return ats_error_set(err, ATS_ERR_INVALID, "the embeddings have no heads");
    if (o->max_dim < 0 || o->max_dim > 2)
        return ats_error_set(err, ATS_ERR_INVALID, "max_dim is %d; context takes 0..2", o->max_dim);
    if (o->max_contexts < 2)
        return ats_error_set(err, ATS_ERR_INVALID, "max_contexts is %zu; it must be >= 2",
                             o->max_contexts);
    if (o->n_scales > ATS_TOPO_MAX_SCALES)
        return ats_error_set(err, ATS_ERR_INVALID, "%zu scales; at most %d", o->n_scales,
                             ATS_TOPO_MAX_SCALES);
    for (size_t q = 0; q < o->n_scales; q++)
        if (!(o->scales[q] >= 0) || isinf(o->scales[q]))
            return ats_error_set(err, ATS_ERR_INVALID, "scale %g: scales are finite and >= 0",
                                 o->scales[q]);
    return ATS_OK;
}

/* What both calls start with: res zeroed, the defaults for NULL options, a text model. */
static ats_status begin(ats_session *s, void *res, size_t size, const ats_context_options **o,
                        ats_context_options *dflt, ats_error *e) {
    ats_error_clear(e);
    memset(res, 0, size);
    if (!*o) {
        ats_context_options_init(dflt);
        *o = dflt;
    }
    return session_need_text(s, e);
}

void ats_context_similarity_result_free(ats_context_similarity_result *res) {
    if (!res) return;
    free(res->hidden);
    free(res->heads);
    memset(res, 0, sizeof *res);
}

ats_status ats_context_similarity(ats_session *s, const char *const texts[2], const char *word,
                                  const ats_context_options *o, ats_context_similarity_result *res,
                                  ats_error *err) {
    ats_error e;
    ats_context_options dflt;
    ats_status st = begin(s, res, sizeof *res, &o, &dflt, &e);
    const ats_model_info *mi = ats_model_info_get(ats_session_model(s));
    size_t L = (size_t)mi->n_layers, H = (size_t)mi->n_heads, d = (size_t)mi->d_model,
           dh = (size_t)mi->d_head;
    span sp[2];
    for (int t = 0; t < 2 && !st; t++)
        if (!find_word(texts[t], word, &sp[t]))
            st = ats_error_set(&e, ATS_ERR_INVALID, "the word '%s' is not in text %d", word, t + 1);
    float *hid = NULL, *ctx = NULL;
    if (!st) {
        hid = malloc(2 * (L + 1) * d * sizeof *hid);
        ctx = malloc(2 * (L ? L * H * dh : 1) * sizeof *ctx);
        res->hidden = malloc((L + 1) * sizeof *res->hidden);
        res->heads = malloc((L ? L * H : 1) * sizeof *res->heads);
        if (!hid || !ctx || !res->hidden || !res->heads)
            st = ats_error_set(&e, ATS_ERR_NOMEM, "out of memory");
    }
    for (int t = 0; t < 2 && !st; t++)
        st = text_vectors(s, texts[t], &sp[t], 1, o, hid + t * (L + 1) * d, ctx + t * L * H * dh,
                          &e);
    if (!st) {
        res->L = L;
        res->H = H;
        for (size_t l = 0; l <= L; l++)
            res->hidden[l] = cosine(hid + l * d, hid + ((L + 1) + l) * d, d);
        for (size_t u = 0; u < L * H; u++)
            res->heads[u] = cosine(ctx + u * dh, ctx + (L * H + u) * dh, dh);
    }
    free(hid);
    free(ctx);
    if (st) {
        ats_context_similarity_result_free(res);
        return session_failed(s, st, &e, err);
    }
    return ATS_OK;
}

void ats_context_result_free(ats_context_result *res) {
    if (!res) return;
    for (size_t i = 0; res->lines && i < res->contexts; i++) free(res->lines[i]);
    free(res->lines);
    free(res->line_no);
    free(res->hidden_vectors);
    free(res->head_vectors);
    free(res->hidden_word_vectors);
    free(res->head_word_vectors);
    free(res->hidden_similarity);
    free(res->hidden_merge);
    free(res->hidden_word_distance);
    free(res->head_similarity);
    free(res->head_merge);
    free(res->head_word_distance);
    free(res->distances);
    free(res->word_distances);
    ats_rips_result_free(&res->rips);
    free(res->clusters);
    memset(res, 0, sizeof *res);
}

/* Cosine distances between the C vectors [C][D] of each of `units` units into dist
 * [units][C][C], clamped at 0 (rounding can take them a hair below) with an exact diagonal. */
static ats_status cosine_distances(const float *v, size_t units, size_t C, size_t D,
                                   const char *name, int n_threads, double *dist, ats_error *err) {
    ats_vectors x;
    memset(&x, 0, sizeof x);
    x.dtype = ATS_F32;
    x.data = v;
    x.batch = units;
    x.m = C;
    x.d = D;
    x.source = name;
    ats_status st = ats_context_compute(&x, NULL, ATS_COSINE_DISTANCE, n_threads, dist, err);
    for (size_t u = 0; !st && u < units; u++) {
        double *m = dist + u * C * C;
        for (size_t i = 0; i < C * C; i++)
            if (m[i] < 0) m[i] = 0;
        for (size_t i = 0; i < C; i++) m[i * C + i] = 0;
    }
    return st;
}

/* The mean cosine similarity of the C(C-1)/2 pairs of a distance matrix [C][C]. */
static double mean_similarity(const double *dist, size_t C) {
    double mean = 0;
    for (size_t i = 1; i < C; i++)
        for (size_t j = 0; j < i; j++) mean += 1.0 - dist[i * C + j];
    return mean / (double)(C * (C - 1) / 2);
}

/* The mean distance between the k words over the C contexts of wd [C][k][k]; NaN for k < 2. */
static double mean_word_distance(const double *wd, size_t C, size_t k) {
    if (k < 2) return NAN;
    double sum = 0;
    for (size_t c = 0; c < C; c++)
        for (size_t i = 1; i < k; i++)
            for (size_t j = 0; j < i; j++) sum += wd[(c * k + i) * k + j];
    return sum / (double)(C * k * (k - 1) / 2);
}

/* Summaries of `units` units from their vectors v [units][C][D] and word vectors w
 * [units][C][k][D]: sim, merge, wdist [units]. */
static ats_status summarise(const float *v, const float *w, size_t units, size_t C, size_t k,
                            size_t D, const char *name, int n_threads, double *sim, double *merge,
                            double *wdist, ats_error *err) {
    double *dist = malloc(C * C * sizeof *dist), *lower = malloc(C * (C - 1) / 2 * sizeof *lower);
    double *merges = malloc((C - 1) * 4 * sizeof *merges), *wd = malloc(C * k * k * sizeof *wd);
    ats_status st = (!dist || !lower || !merges || !wd)
                        ? ats_error_set(err, ATS_ERR_NOMEM, "out of memory")
                        : ATS_OK;
    for (size_t u = 0; u < units && !st; u++) {
        st = cosine_distances(v + u * C * D, 1, C, D, name, n_threads, dist, err);
        if (!st) st = ats_metric_from_full(C, dist, 1, name, lower, err);
        const ats_lower m = {C, lower};
        if (!st) st = ats_metric_single_linkage(&m, merges, err);
        if (!st && k > 1)
            st = cosine_distances(w + u * C * k * D, C, k, D, name, n_threads, wd, err);
        if (st) break;
        sim[u] = mean_similarity(dist, C);
        merge[u] = 0;
        for (size_t i = 0; i + 1 < C; i++)
            if (isfinite(merges[4 * i + 2])) merge[u] = fmax(merge[u], merges[4 * i + 2]);
        wdist[u] = mean_word_distance(wd, C, k);
    }
    free(dist);
    free(lower);
    free(merges);
    free(wd);
    return st;
}

/* Appends a context's vectors (hid [L+1][1+k][d], ctx [L][H][1+k][dh]: the phrase, then its
 * words) as context c of the result's arrays. */
static void keep_context(ats_context_result *r, size_t cap, size_t c, const float *hid,
                         const float *ctx) {
    size_t L = r->L, H = r->H, d = r->d, dh = r->d_head, k = r->words, sp = 1 + k;
    for (size_t l = 0; l <= L; l++) {
        memcpy(r->hidden_vectors + (l * cap + c) * d, hid + l * sp * d, d * sizeof *hid);
        memcpy(r->hidden_word_vectors + ((l * cap + c) * k) * d, hid + (l * sp + 1) * d,
               k * d * sizeof *hid);
    }
    for (size_t u = 0; u < L * H; u++) {
        memcpy(r->head_vectors + (u * cap + c) * dh, ctx + u * sp * dh, dh * sizeof *ctx);
        memcpy(r->head_word_vectors + ((u * cap + c) * k) * dh, ctx + (u * sp + 1) * dh,
               k * dh * sizeof *ctx);
    }
}

/* The arrays were filled with room for cap contexts per unit; close the gaps to C. */
static void pack_units(float *a, size_t units, size_t cap, size_t C, size_t row) {
    for (size_t u = 1; u < units && cap != C; u++)
        memmove(a + u * C * row, a + u * cap * row, C * row * sizeof *a);
}

/* Reads the corpus and keeps the vectors of every context of the phrase. */
static ats_status collect(ats_session *s, const ats_corpus_source *src, const char *phrase,
                          const ats_context_options *o, ats_context_result *r, ats_error *err) {
    size_t L = r->L, H = r->H, d = r->d, dh = r->d_head, k = r->words, sp = 1 + k,
           cap = o->max_contexts;
    span *spans = malloc(sp * sizeof *spans), *rel = malloc(k * sizeof *rel);
    float *hid = malloc((L + 1) * sp * d * sizeof *hid);
    float *ctx = malloc((L ? L * H * sp * dh : 1) * sizeof *ctx);
    r->line_no = malloc(cap * sizeof *r->line_no);
    r->lines = calloc(cap, sizeof *r->lines);
    r->hidden_vectors = malloc((L + 1) * cap * d * sizeof(float));
    r->hidden_word_vectors = malloc((L + 1) * cap * k * d * sizeof(float));
    r->head_vectors = malloc((L ? L * H * cap * dh : 1) * sizeof(float));
    r->head_word_vectors = malloc((L ? L * H * cap * k * dh : 1) * sizeof(float));
    if (!spans || !rel || !hid || !ctx || !r->line_no || !r->lines || !r->hidden_vectors ||
        !r->hidden_word_vectors || !r->head_vectors || !r->head_word_vectors) {
        free(spans), free(rel), free(hid), free(ctx);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    phrase_words(phrase, rel);
    ats_corpus c;
    memset(&c, 0, sizeof c);
    ats_status st = ats_corpus_open(&c, src, ATS_CORPUS_MAX_LINE_BYTES, err);
    ats_line_kind kind;
    int got;
    while (!st && r->contexts < cap && (got = ats_corpus_next(&c, &kind, err)) != 0) {
        if (got < 0) {
            st = err ? err->status : ATS_ERR_IO;
            break;
        }
        if (kind != ATS_LINE_TEXT || !find_word(c.text, phrase, &spans[0])) continue;
        for (size_t w = 0; w < k; w++)
            spans[1 + w] = (span){spans[0].s + rel[w].s, spans[0].s + rel[w].e};
        ats_error e;
        ats_error_clear(&e);
        st = text_vectors(s, c.text, spans, sp, o, hid, ctx, &e);
        if (st) {
            ats_error_set(err, st, "%s: line %zu: %.400s", c.path, c.line_no, e.message);
            break;
        }
        keep_context(r, cap, r->contexts, hid, ctx);
        r->line_no[r->contexts] = c.line_no;
        r->lines[r->contexts] = strdup(c.text);
        if (!r->lines[r->contexts]) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        r->contexts++;
    }
    const char *name = src->path ? src->path : "corpus";
    if (!st && r->contexts < 2)
        st = ats_error_set(err, ATS_ERR_INVALID, "%s: '%s' occurs in %zu line(s); need at least 2",
                           name, phrase, r->contexts);
    ats_corpus_close(&c);
    if (!st) {
        size_t C = r->contexts;
        pack_units(r->hidden_vectors, L + 1, cap, C, d);
        pack_units(r->hidden_word_vectors, L + 1, cap, C, k * d);
        pack_units(r->head_vectors, L * H, cap, C, dh);
        pack_units(r->head_word_vectors, L * H, cap, C, k * dh);
    }
    free(spans);
    free(rel);
    free(hid);
    free(ctx);
    return st;
}

/* The chosen unit: its distances, persistence and clusters. */
static ats_status chosen_unit(const ats_context_options *o, const char *name, ats_context_result *r,
                              ats_error *err) {
    size_t C = r->contexts, k = r->words, L = r->L, H = r->H;
    int head = o->head >= 0;
    size_t u = head ? (size_t)o->layer * H + (size_t)o->head : (size_t)(o->layer + 1);
    r->dim = head ? r->d_head : r->d;
    r->vectors = (head ? r->head_vectors : r->hidden_vectors) + u * C * r->dim;
    const float *wv = (head ? r->head_word_vectors : r->hidden_word_vectors) + u * C * k * r->dim;
    (void)L;
    r->distances = malloc(C * C * sizeof *r->distances);
    r->word_distances = malloc(C * k * k * sizeof *r->word_distances);
    double *lower = malloc(C * (C - 1) / 2 * sizeof *lower);
    ats_status st = (!r->distances || !r->word_distances || !lower)
                        ? ats_error_set(err, ATS_ERR_NOMEM, "out of memory")
                        : ATS_OK;
    if (!st) st = cosine_distances(r->vectors, 1, C, r->dim, name, o->n_threads, r->distances, err);
    if (!st) st = cosine_distances(wv, C, k, r->dim, name, o->n_threads, r->word_distances, err);
    if (!st) st = ats_metric_from_full(C, r->distances, 1, name, lower, err);
    if (!st) {
        ats_rips_options ro;
        ats_rips_options_init(&ro);
        ro.max_dim = o->max_dim;
        st = ats_rips_compute(C, lower, &ro, &r->rips, err);
    }
    if (!st) {
        r->mean_similarity = mean_similarity(r->distances, C);
        r->single_cluster_scale = 0;
        const ats_diagram *h0 = &r->rips.dims[0];
        for (size_t i = 0; i < h0->count; i++)
            if (isfinite(h0->pairs[2 * i + 1]))
                r->single_cluster_scale = fmax(r->single_cluster_scale, h0->pairs[2 * i + 1]);
        const ats_lower m = {C, lower};
        st = ats_topo_scales(&m, INFINITY, o->scales, o->n_scales, name, "contexts", r->scales,
                             &r->n_scales, err);
    }
    if (!st) {
        r->clusters = malloc(r->n_scales * C * sizeof *r->clusters);
        if (!r->clusters) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    for (size_t q = 0; q < r->n_scales && !st; q++)
        st = ats_rips_clusters(C, lower, r->scales[q], r->clusters + q * C, &r->n_clusters[q], err);
    free(lower);
    return st;
}

ats_status ats_context_run(ats_session *s, const ats_corpus_source *src, const char *phrase,
                           const ats_context_options *o, ats_context_result *res, ats_error *err) {
    ats_error e;
    ats_context_options dflt;
    ats_status st = begin(s, res, sizeof *res, &o, &dflt, &e);
    const ats_model_info *mi = ats_model_info_get(ats_session_model(s));
    if (!st) st = check_options(mi, o, &e);
    if (!st && (!phrase || phrase_words(phrase, NULL) == 0))
        st = ats_error_set(&e, ATS_ERR_INVALID, "the phrase is empty");
    if (!st) {
        res->L = (size_t)mi->n_layers;
        res->H = (size_t)mi->n_heads;
        res->d = (size_t)mi->d_model;
        res->d_head = (size_t)mi->d_head;
        res->words = phrase_words(phrase, NULL);
        st = collect(s, src, phrase, o, res, &e);
    }
    const char *name = src->path ? src->path : "corpus";
    size_t L = res->L, H = res->H, C = res->contexts, k = res->words;
    if (!st) {
        res->hidden_similarity = malloc((L + 1) * sizeof(double));
        res->hidden_merge = malloc((L + 1) * sizeof(double));
        res->hidden_word_distance = malloc((L + 1) * sizeof(double));
        res->head_similarity = malloc((L ? L * H : 1) * sizeof(double));
        res->head_merge = malloc((L ? L * H : 1) * sizeof(double));
        res->head_word_distance = malloc((L ? L * H : 1) * sizeof(double));
        if (!res->hidden_similarity || !res->hidden_merge || !res->hidden_word_distance ||
            !res->head_similarity || !res->head_merge || !res->head_word_distance)
            st = ats_error_set(&e, ATS_ERR_NOMEM, "out of memory");
    }
    if (!st)
        st = summarise(res->hidden_vectors, res->hidden_word_vectors, L + 1, C, k, res->d, name,
                       o->n_threads, res->hidden_similarity, res->hidden_merge,
                       res->hidden_word_distance, &e);
    if (!st)
        st = summarise(res->head_vectors, res->head_word_vectors, L * H, C, k, res->d_head, name,
                       o->n_threads, res->head_similarity, res->head_merge, res->head_word_distance,
                       &e);
    if (!st) st = chosen_unit(o, name, res, &e);
    if (st) {
        ats_context_result_free(res);
        return session_failed(s, st, &e, err);
    }
    return ATS_OK;
}
