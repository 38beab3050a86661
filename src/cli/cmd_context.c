/* attnscope context: context vectors (hidden states) of a word across sentences and models.
 *
 *  word mode    --text A --text B --word W [--model M]...: cosine similarity, layer by layer,
 *               of W's vector in A and in B (the seed's "cat" example, GPT-2 vs BERT);
 *  phrase mode  --phrase P --corpus FILE --layer L: P's vector in every line that contains it,
 *               their cosine distances and its persistent homology (how stable a collocation or
 *               key phrase is across contexts: one tight cluster, or several senses).
 * A word's vector is the mean of its sub-word tokens' hidden states. */
#include "analysis.h"
#include "cli.h"
#include "attnscope/measure.h"
#include "attnscope/model.h"
#include "attnscope/render.h"
#include "attnscope/rips.h"
#include "attnscope/tokenizer.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_MODELS   8
#define MAX_CONTEXTS 2000

static const char USAGE[] =
    "usage: attnscope context --model M [--model M2 ...] --text A --text B --word W --out DIR\n"
    "       attnscope context --model M --phrase P --corpus FILE --layer L --out DIR\n"
    "                         [--max-contexts N] [--format png|svg|pdf] [--title T]\n"
    "\n"
    "Word mode: the cosine similarity of W's context vector (hidden state; the mean over its\n"
    "sub-word tokens) in text A and in text B at every layer, one line per model\n"
    "(similarity.png, context.json). Phrase mode: P's vector in every corpus line containing\n"
    "it (up to N, default 200), the cosine-distance matrix between them (distances.npy) and its\n"
    "persistence (diagram, barcode, context.json with the lines of each H0 cluster).\n";

/* Byte range [s, e) of the first whole-word, case-insensitive occurrence of w in text. */
static int find_word(const char *text, const char *w, size_t *s, size_t *e) {
    size_t n = strlen(text), m = strlen(w);
    if (m == 0) return 0;
    for (size_t i = 0; i + m <= n; i++) {
        size_t k = 0;
        while (k < m && tolower((unsigned char)text[i + k]) == tolower((unsigned char)w[k])) k++;
        if (k < m) continue;
        int left = i == 0 || !isalnum((unsigned char)text[i - 1]);
        int right = i + m == n || !isalnum((unsigned char)text[i + m]);
        if (left && right) {
            *s = i;
            *e = i + m;
            return 1;
        }
    }
    return 0;
}

typedef struct loaded {
    ats_model *model;
    ats_tokenizer *tok;
    const ats_model_info *info;
} loaded;

static ats_status load(const char *name, loaded *out, ats_error *err) {
    memset(out, 0, sizeof *out);
    ats_status st = ats_model_load_adapted(name, ats_cli_adapter(), &out->model, err);
    if (st) return st;
    out->info = ats_model_info_get(out->model);
    if (out->info->arch == ATS_ARCH_VIT) {
        ats_model_free(out->model);
        return ats_error_set(err, ATS_ERR_INVALID, "%s: a vision model has no text", name);
    }
    st = ats_tokenizer_load(out->info->dir, &out->tok, err);
    if (st) ats_model_free(out->model);
    return st;
}

static void unload(loaded *l) {
    ats_tokenizer_free(l->tok);
    ats_model_free(l->model);
}

/* The word's vector at every layer: vec [L+1][d], the mean of the hidden states of the tokens
 * overlapping bytes [s, e) of the text. */
static ats_status word_vectors(loaded *lm, const char *text, size_t s, size_t e, int truncate,
                               float **vec, size_t *layers, size_t *d, ats_error *err) {
    ats_encoding enc;
    ats_status st = ats_tokenizer_encode(lm->tok, text, strlen(text), 1, &enc, err);
    if (st) return st;
    ats_forward_options fo;
    ats_forward_options_init(&fo);
    fo.capture = ATS_CAPTURE_HIDDEN;
    fo.truncate = truncate;
    ats_model_input in = {enc.ids, NULL, NULL, enc.count};
    ats_forward_result res;
    st = ats_model_forward(lm->model, &in, &fo, &res, err);
    if (st) {
        ats_encoding_free(&enc);
        return st;
    }
    size_t L1 = res.n_layers + 1, n = res.n_tokens, dd = res.d_model, used = 0;
    *vec = calloc(L1 * dd, sizeof **vec);
    if (!*vec) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    for (size_t t = 0; t < n && !st; t++) {
        size_t a = enc.offsets[2 * t], b = enc.offsets[2 * t + 1];
        if (enc.special[t] || b <= s || a >= e) continue;
        used++;
        for (size_t l = 0; l < L1; l++)
            for (size_t k = 0; k < dd; k++) (*vec)[l * dd + k] += res.hidden[(l * n + t) * dd + k];
    }
    if (!st && used == 0)
        st = ats_error_set(err, ATS_ERR_INVALID,
                           "no token of the model covers the word in \"%.60s\"", text);
    for (size_t i = 0; !st && i < L1 * dd; i++) (*vec)[i] /= (float)used;
    if (st) {
        free(*vec);
        *vec = NULL;
    }
    *layers = L1;
    *d = dd;
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

static char *path_in(const char *dir, const char *name, const char *ext) {
    size_t len = strlen(dir) + strlen(name) + strlen(ext) + 3;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s/%s.%s", dir, name, ext);
    return p;
}

static ats_status write_doc(const char *dir, cJSON *doc, ats_error *err) {
    char *path = path_in(dir, "context", "json");
    ats_status st = path ? analysis_json_write(path, doc, err)
                         : ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    free(path);
    return st;
}

static int word_mode(const char **models, size_t n_models, const char **texts, const char *word,
                     const char *out, const char *fmt, const char *prefix, int truncate) {
    ats_error err;
    ats_error_clear(&err);
    size_t s0, e0, s1, e1;
    for (int t = 0; t < 2; t++) {
        size_t s, e;
        if (!find_word(texts[t], word, &s, &e))
            return ats_cli_usage_error("context", "the word '%s' is not in text %d", word, t + 1);
    }
    find_word(texts[0], word, &s0, &e0);
    find_word(texts[1], word, &s1, &e1);
    ats_series series[MAX_MODELS];
    char names[MAX_MODELS][64]; /* the models' types outlive the models */
    double *xs[MAX_MODELS] = {0}, *ys[MAX_MODELS] = {0};
    cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "models");
    cJSON_AddStringToObject(doc, "word", word);
    cJSON_AddStringToObject(doc, "text_a", texts[0]);
    cJSON_AddStringToObject(doc, "text_b", texts[1]);
    ats_status st = ATS_OK;
    for (size_t m = 0; m < n_models && !st; m++) {
        loaded lm;
        st = load(models[m], &lm, &err);
        if (st) break;
        float *va = NULL, *vb = NULL;
        size_t L1, d, L1b, db;
        st = word_vectors(&lm, texts[0], s0, e0, truncate, &va, &L1, &d, &err);
        if (!st) st = word_vectors(&lm, texts[1], s1, e1, truncate, &vb, &L1b, &db, &err);
        if (!st) {
            xs[m] = malloc(L1 * sizeof *xs[m]);
            ys[m] = malloc(L1 * sizeof *ys[m]);
            if (!xs[m] || !ys[m]) st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
        }
        if (!st) {
            cJSON *mj = cJSON_CreateObject();
            cJSON_AddStringToObject(mj, "model", models[m]);
            cJSON_AddStringToObject(mj, "model_type", lm.info->model_type);
            cJSON *sim = cJSON_AddArrayToObject(mj, "cosine_similarity_by_layer");
            for (size_t l = 0; l < L1; l++) {
                /* x: depth as a fraction, so models of different depth share the axis */
                xs[m][l] = L1 > 1 ? (double)l / (double)(L1 - 1) : 0;
                ys[m][l] = cosine(va + l * d, vb + l * d, d);
                cJSON_AddItemToArray(sim, analysis_json_number(ys[m][l], 0));
            }
            cJSON_AddItemToArray(arr, mj);
            snprintf(names[m], sizeof names[m], "%s", lm.info->model_type);
            series[m].label = names[m];
            series[m].count = L1;
            series[m].x = xs[m];
            series[m].y = ys[m];
            fprintf(stderr, "%s: cosine similarity of '%s' from embeddings to the last layer:",
                    lm.info->model_type, word);
            for (size_t l = 0; l < L1; l++) fprintf(stderr, " %.3f", ys[m][l]);
            fputc('\n', stderr);
        }
        free(va);
        free(vb);
        unload(&lm);
    }
    if (!st) st = write_doc(out, doc, &err);
    if (!st) {
        char *path = path_in(out, "similarity", fmt);
        char what[256], title[512];
        snprintf(what, sizeof what, "cosine similarity of \"%s\" across the two texts", word);
        ats_lines_options lo;
        ats_lines_options_init(&lo);
        lo.fig.title = ats_cli_title(title, sizeof title, prefix, what);
        lo.x_title = "depth (embeddings = 0, last layer = 1)";
        lo.y_title = "cosine similarity";
        st = path ? ats_render_lines(path, n_models, series, &lo, &err)
                  : ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
        if (!st) printf("%s\n", path);
        free(path);
    }
    cJSON_Delete(doc);
    for (size_t m = 0; m < n_models; m++) {
        free(xs[m]);
        free(ys[m]);
    }
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}

static int phrase_mode(const char *model, const char *phrase, const char *corpus, long layer,
                       long max_contexts, const char *out, const char *fmt, const char *prefix,
                       int truncate) {
    ats_error err;
    ats_error_clear(&err);
    char *text;
    size_t len;
    if (ats_file_read_all(corpus, (size_t)1 << 30, &text, &len, &err)) return ats_cli_fail(&err);
    loaded lm;
    if (load(model, &lm, &err)) {
        free(text);
        return ats_cli_fail(&err);
    }
    if (layer > lm.info->n_layers) {
        unload(&lm);
        free(text);
        return ats_cli_usage_error("context", "--layer %ld: the model has hidden states 0..%d",
                                   layer, lm.info->n_layers);
    }
    size_t d = (size_t)lm.info->d_model, count = 0;
    float *vecs = malloc((size_t)max_contexts * d * sizeof *vecs);
    long *line_no = malloc((size_t)max_contexts * sizeof *line_no);
    char **lines = calloc((size_t)max_contexts, sizeof *lines);
    ats_status st = (!vecs || !line_no || !lines)
                        ? ats_error_set(&err, ATS_ERR_NOMEM, "out of memory")
                        : ATS_OK;
    char *p = text;
    long ln = 0;
    while (!st && *p && count < (size_t)max_contexts) {
        char *nl = strchr(p, '\n');
        if (nl) *nl = '\0';
        ln++;
        size_t s, e;
        if (find_word(p, phrase, &s, &e)) {
            float *v;
            size_t L1, dd;
            st = word_vectors(&lm, p, s, e, truncate, &v, &L1, &dd, &err);
            if (st) {
                char msg[ATS_ERROR_MESSAGE_MAX];
                snprintf(msg, sizeof msg, "%s", err.message);
                ats_error_set(&err, st, "%s: line %ld: %.400s", corpus, ln, msg);
                break;
            }
            memcpy(vecs + count * d, v + (size_t)layer * d, d * sizeof *vecs);
            free(v);
            line_no[count] = ln;
            lines[count] = strdup(p);
            count++;
        }
        if (!nl) break;
        p = nl + 1;
    }
    if (!st && count < 2)
        st = ats_error_set(&err, ATS_ERR_INVALID, "%s: '%s' occurs in %zu line(s); need at least 2",
                           corpus, phrase, count);
    double *dist = NULL, *lower = NULL;
    ats_rips_result res;
    memset(&res, 0, sizeof res);
    if (!st) {
        dist = malloc(count * count * sizeof *dist);
        lower = malloc(count * (count - 1) / 2 * sizeof *lower);
        if (!dist || !lower) st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
    }
    if (!st) {
        ats_vectors x;
        memset(&x, 0, sizeof x);
        x.dtype = ATS_F32;
        x.data = vecs;
        x.batch = 1;
        x.m = count;
        x.d = d;
        x.source = corpus;
        st = ats_context_compute(&x, NULL, ATS_COSINE_DISTANCE, 0, dist, &err);
    }
    if (!st) {
        /* cosine distance can round a hair below 0 on the diagonal's neighbours */
        for (size_t i = 0; i < count * count; i++)
            if (dist[i] < 0) dist[i] = 0;
        for (size_t i = 0; i < count; i++) dist[i * count + i] = 0;
        st = ats_metric_from_full(count, dist, 1, corpus, lower, &err);
    }
    if (!st) {
        ats_rips_options ro;
        ats_rips_options_init(&ro);
        ro.max_dim = 1;
        st = ats_rips_compute(count, lower, &ro, &res, &err);
    }
    if (!st) {
        char *np = path_in(out, "distances", "npy");
        size_t shape[2] = {count, count};
        st = np ? ats_npy_write(np, ATS_F64, 2, shape, dist, &err)
                : ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
        if (!st) printf("%s\n", np);
        free(np);
    }
    int dims[2] = {0, 1};
    for (int k = 0; k < 2 && !st; k++) {
        char *fp = path_in(out, k ? "barcode" : "diagram", fmt);
        char what[256], title[512];
        snprintf(what, sizeof what, "\"%s\" across %zu contexts, layer %ld", phrase, count, layer);
        ats_figure_options fo;
        ats_figure_options_init(&fo);
        fo.title = ats_cli_title(title, sizeof title, prefix, what);
        st = !fp ? ats_error_set(&err, ATS_ERR_NOMEM, "out of memory")
             : k ? ats_render_barcode(fp, 2, res.dims, dims, &fo, &err)
                 : ats_render_diagram(fp, 2, res.dims, dims, &fo, &err);
        if (!st) printf("%s\n", fp);
        free(fp);
    }
    if (!st) {
        double mean = 0;
        for (size_t i = 1; i < count; i++)
            for (size_t j = 0; j < i; j++) mean += 1.0 - dist[i * count + j];
        mean /= (double)(count * (count - 1) / 2);
        /* the scale at which H0 is down to one component: the longest finite H0 bar */
        double merge = 0;
        for (size_t i = 0; i < res.dims[0].count; i++)
            if (isfinite(res.dims[0].pairs[2 * i + 1]))
                merge = fmax(merge, res.dims[0].pairs[2 * i + 1]);
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "phrase", phrase);
        cJSON_AddNumberToObject(doc, "layer", (double)layer);
        cJSON_AddNumberToObject(doc, "contexts", (double)count);
        cJSON_AddItemToObject(doc, "mean_cosine_similarity", analysis_json_number(mean, 0));
        cJSON_AddItemToObject(doc, "single_cluster_scale", analysis_json_number(merge, 0));
        cJSON *ctx = cJSON_AddArrayToObject(doc, "lines");
        for (size_t i = 0; i < count; i++) {
            cJSON *c = cJSON_CreateObject();
            cJSON_AddNumberToObject(c, "line", (double)line_no[i]);
            cJSON_AddStringToObject(c, "text", lines[i]);
            cJSON_AddItemToArray(ctx, c);
        }
        cJSON *dj = cJSON_AddArrayToObject(doc, "dims");
        for (int k = 0; k < 2; k++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddNumberToObject(e, "dim", k);
            cJSON_AddItemToObject(e, "pairs", analysis_pairs_json(&res.dims[k]));
            cJSON_AddItemToArray(dj, e);
        }
        st = write_doc(out, doc, &err);
        cJSON_Delete(doc);
        fprintf(stderr,
                "'%s' in %zu contexts at layer %ld: mean cosine similarity %.3f, one cluster "
                "from cosine distance %.3f, %zu H1 classes\n",
                phrase, count, layer, mean, merge, res.dims[1].count);
    }
    ats_rips_result_free(&res);
    for (size_t i = 0; lines && i < count; i++) free(lines[i]);
    free(lines);
    free(line_no);
    free(vecs);
    free(dist);
    free(lower);
    free(text);
    unload(&lm);
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}

int ats_cmd_context(int argc, char **argv) {
    const char *models[MAX_MODELS], *texts[2] = {NULL, NULL}, *word = NULL, *phrase = NULL,
                                    *corpus = NULL, *out = NULL, *fmt = "png", *title = NULL;
    size_t n_models = 0, n_texts = 0;
    long layer = -1, max_contexts = 200;
    int truncate = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--help")) {
            fputs(USAGE, stdout);
            return ATS_EXIT_OK;
        }
        if (!strcmp(s, "--truncate")) {
            truncate = 1;
            continue;
        }
        if (!v) return ats_cli_usage_error("context", "%s needs a value (see --help)", s);
        if (!strcmp(s, "--model")) {
            if (n_models == MAX_MODELS)
                return ats_cli_usage_error("context", "at most %d models", MAX_MODELS);
            models[n_models++] = v;
        } else if (!strcmp(s, "--text")) {
            if (n_texts == 2) return ats_cli_usage_error("context", "exactly two --text");
            texts[n_texts++] = v;
        } else if (!strcmp(s, "--word"))
            word = v;
        else if (!strcmp(s, "--phrase"))
            phrase = v;
        else if (!strcmp(s, "--corpus"))
            corpus = v;
        else if (!strcmp(s, "--out"))
            out = v;
        else if (!strcmp(s, "--title"))
            title = v;
        else if (!strcmp(s, "--format")) {
            if (strcmp(v, "png") && strcmp(v, "svg") && strcmp(v, "pdf"))
                return ats_cli_usage_error("context", "--format is png, svg or pdf");
            fmt = v;
        } else if (!strcmp(s, "--layer")) {
            if (!ats_cli_parse_long(v, 0, 1 << 16, &layer))
                return ats_cli_usage_error("context", "--layer needs an integer >= 0");
        } else if (!strcmp(s, "--max-contexts")) {
            if (!ats_cli_parse_long(v, 2, MAX_CONTEXTS, &max_contexts))
                return ats_cli_usage_error("context", "--max-contexts needs 2..%d", MAX_CONTEXTS);
        } else {
            return ats_cli_usage_error("context", "unknown option '%s' (see --help)", s);
        }
        i++;
    }
    if (!n_models || !out) return ats_cli_usage_error("context", "needs --model and --out");
    {
        ats_error derr;
        if (ats_dir_create(out, &derr)) return ats_cli_fail(&derr);
    }
    if (word) {
        if (n_texts != 2 || phrase || corpus)
            return ats_cli_usage_error("context", "--word needs two --text (and no --phrase)");
        return word_mode(models, n_models, texts, word, out, fmt, title, truncate);
    }
    if (phrase) {
        if (!corpus || layer < 0 || n_models != 1 || n_texts)
            return ats_cli_usage_error("context",
                                       "--phrase needs one --model, --corpus and --layer");
        return phrase_mode(models[0], phrase, corpus, layer, max_contexts, out, fmt, title,
                           truncate);
    }
    return ats_cli_usage_error("context", "give --word W (two texts) or --phrase P --corpus F");
}
