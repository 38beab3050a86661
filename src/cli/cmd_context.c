/* attnscope context: context vectors of a word across texts and models, and of a phrase across
 * the lines of a corpus (ats_context_similarity, ats_context_run in analysis.h); this file
 * parses the options, calls the library and writes what it returns.
 *
 *  word mode    --text A --text B --word W [--model M]...: cosine similarity, layer by layer,
 *               of W's vector in A and in B (the seed's "cat" example, GPT-2 vs BERT);
 *  phrase mode  --phrase P --corpus FILE --layer L: P's vector in every line that contains it,
 *               their cosine distances and its persistent homology (how stable a collocation or
 *               key phrase is across contexts: one tight cluster, or several senses). */
#include "analysis.h"
#include "cli.h"
#include "attnscope/model.h"
#include "attnscope/render.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MODELS   8
#define MAX_CONTEXTS 2000

static const char USAGE[] =
    "usage: attnscope context --model M [--model M2 ...] --text A --text B --word W --out DIR\n"
    "       attnscope context --model M --phrase P --corpus FILE --layer L [--head H] --out DIR\n"
    "                         [--scale S ...] [--dim K] [--max-contexts N]\n"
    "       common: [--format png|svg|pdf] [--title T] [--threads N] [--truncate]\n"
    "\n"
    "A word's or phrase's vector is the mean over its sub-word tokens of the hidden state\n"
    "(or, with --head, of that head's context vector: softmax(Q K^T/sqrt(d_head)) V, the head's\n"
    "slice of the attention output before the output projection).\n"
    "Word mode: the cosine similarity of W's vector in text A and in text B at every hidden\n"
    "state (embeddings to the last layer; one line per model, similarity.png) and at every head\n"
    "(context.json).\n"
    "Phrase mode (collocations): P's vector in every corpus line containing it (up to N, default\n"
    "200) at transformer layer L (0..L-1, its output, as --layer in every other command;\n"
    "--layer embeddings: the embeddings) or at head H of layer L: the cosine distances between\n"
    "the contexts (distances.npy) and their persistence H0..HK (default K = 1; diagram, barcode),\n"
    "the H0 clusters of the contexts at each --scale (default: the 10/25/50 % quantiles of the\n"
    "distances), the distances between the phrase's words in each context (word_distances.npy)\n"
    "and, for every layer and every head, the mean similarity across contexts, the scale of a\n"
    "single cluster and the mean distance between the words (context.json, heads.png).\n";

/* The legend's name of each model: its type, and where two models share a type, the type with
 * the model's folder name (its whole argument when those are alike too). */
static void legend_names(const char **models, size_t n, char types[][64], char names[][320]) {
    for (size_t m = 0; m < n; m++) {
        int same_type = 0, same_base = 0;
        const char *base = strrchr(models[m], '/');
        base = base && base[1] ? base + 1 : models[m];
        for (size_t k = 0; k < n; k++) {
            if (k == m || strcmp(types[k], types[m])) continue;
            same_type = 1;
            const char *b = strrchr(models[k], '/');
            same_base |= !strcmp(b && b[1] ? b + 1 : models[k], base);
        }
        /* a legend entry longer than names[m] is cut (the return value says so; checking it
         * keeps GCC's truncation warning, an error under -Werror, quiet on every target) */
        int len = same_type ? snprintf(names[m], sizeof names[m], "%s (%s)", types[m],
                                       same_base ? models[m] : base)
                            : snprintf(names[m], sizeof names[m], "%s", types[m]);
        if (len < 0) names[m][0] = '\0';
    }
}

static int word_mode(const analysis_args *a, const char **models, size_t n_models,
                     const char *word) {
    ats_error err;
    ats_error_clear(&err);
    ats_series series[MAX_MODELS];
    char types[MAX_MODELS][64], names[MAX_MODELS][320]; /* they outlive the models */
    double *xs[MAX_MODELS] = {0}, *ys[MAX_MODELS] = {0};
    cJSON *doc = cJSON_CreateObject(), *arr = cJSON_AddArrayToObject(doc, "models");
    cJSON_AddStringToObject(doc, "word", word);
    cJSON_AddStringToObject(doc, "text_a", a->texts[0]);
    cJSON_AddStringToObject(doc, "text_b", a->texts[1]);
    ats_context_options o;
    ats_context_options_init(&o);
    o.truncate = a->truncate;
    o.n_threads = a->threads;
    ats_status st = ATS_OK;
    for (size_t m = 0; m < n_models && !st; m++) {
        ats_session *s;
        st = ats_session_open_adapted(models[m], ats_cli_adapter(), &s, &err);
        if (st) break;
        const ats_model_info *mi = ats_model_info_get(ats_session_model(s));
        ats_context_similarity_result r;
        st = ats_context_similarity(s, a->texts, word, &o, &r, &err);
        size_t L1 = r.L + 1;
        if (!st) {
            xs[m] = malloc(L1 * sizeof *xs[m]);
            ys[m] = malloc(L1 * sizeof *ys[m]);
            if (!xs[m] || !ys[m]) st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
        }
        if (!st) {
            cJSON *mj = cJSON_CreateObject();
            cJSON_AddStringToObject(mj, "model", models[m]);
            cJSON_AddStringToObject(mj, "model_type", mi->model_type);
            cJSON *sim = cJSON_AddArrayToObject(mj, "cosine_similarity_by_layer");
            for (size_t l = 0; l < L1; l++) {
                /* x: depth as a fraction, so models of different depth share the axis */
                xs[m][l] = L1 > 1 ? (double)l / (double)(L1 - 1) : 0;
                ys[m][l] = r.hidden[l];
                cJSON_AddItemToArray(sim, analysis_json_number(ys[m][l], 0));
            }
            cJSON_AddItemToObject(mj, "cosine_similarity_by_head",
                                  analysis_matrix_json(r.heads, r.L, r.H));
            cJSON_AddItemToArray(arr, mj);
            snprintf(types[m], sizeof types[m], "%s", mi->model_type);
            series[m].label = names[m];
            series[m].count = L1;
            series[m].x = xs[m];
            series[m].y = ys[m];
            fprintf(stderr, "%s: cosine similarity of '%s' from embeddings to the last layer:",
                    mi->model_type, word);
            for (size_t l = 0; l < L1; l++) fprintf(stderr, " %.3f", ys[m][l]);
            fputc('\n', stderr);
        }
        ats_context_similarity_result_free(&r);
        ats_session_close(s);
    }
    if (!st) st = analysis_write_json(a, "context", doc, &err);
    legend_names(models, n_models, types, names);
    if (!st) {
        char *path = analysis_figure_path(a, "similarity", &err);
        char title[512];
        snprintf(title, sizeof title, "%s%scosine similarity of \"%s\" across the two texts",
                 a->title ? a->title : "", a->title ? ": " : "", word);
        ats_lines_options lo;
        ats_lines_options_init(&lo);
        lo.fig.title = title;
        lo.x_title = "depth (embeddings = 0, last layer = 1)";
        lo.y_title = "cosine similarity";
        st = path ? ats_render_lines(path, n_models, series, &lo, &err) : err.status;
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

/* "layer 3", "layer 3, head 1" or "the embeddings" */
static void unit_name(char *buf, size_t n, const ats_context_options *o) {
    if (o->layer == ATS_CONTEXT_EMBEDDINGS)
        snprintf(buf, n, "the embeddings");
    else if (o->head >= 0)
        snprintf(buf, n, "layer %ld, head %ld", o->layer, o->head);
    else
        snprintf(buf, n, "layer %ld", o->layer);
}

static cJSON *numbers_json(const double *v, size_t count) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < count; i++) cJSON_AddItemToArray(arr, analysis_json_number(v[i], 0));
    return arr;
}

/* context.json of phrase mode */
static cJSON *phrase_json(const char *phrase, const ats_context_options *o,
                          const ats_context_result *r) {
    size_t C = r->contexts, k = r->words;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "phrase", phrase);
    if (o->layer == ATS_CONTEXT_EMBEDDINGS)
        cJSON_AddStringToObject(doc, "layer", "embeddings");
    else
        cJSON_AddNumberToObject(doc, "layer", (double)o->layer);
    if (o->head >= 0)
        cJSON_AddNumberToObject(doc, "head", (double)o->head);
    else
        cJSON_AddNullToObject(doc, "head");
    cJSON_AddNumberToObject(doc, "contexts", (double)C);
    cJSON_AddItemToObject(doc, "mean_cosine_similarity",
                          analysis_json_number(r->mean_similarity, 0));
    cJSON_AddItemToObject(doc, "single_cluster_scale",
                          analysis_json_number(r->single_cluster_scale, 0));
    cJSON *ctx = cJSON_AddArrayToObject(doc, "lines");
    for (size_t i = 0; i < C; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "line", (double)r->line_no[i]);
        cJSON_AddStringToObject(c, "text", r->lines[i]);
        cJSON_AddItemToArray(ctx, c);
    }
    cJSON *dj = cJSON_AddArrayToObject(doc, "dims");
    for (int d = 0; d <= r->rips.max_dim; d++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "dim", d);
        cJSON_AddItemToObject(e, "pairs", analysis_pairs_json(&r->rips.dims[d]));
        cJSON_AddItemToArray(dj, e);
    }
    /* the H0 clusters at each scale, as lists of line numbers */
    cJSON *cl = cJSON_AddArrayToObject(doc, "clusters");
    for (size_t q = 0; q < r->n_scales; q++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToObject(e, "scale", analysis_json_number(r->scales[q], 0));
        cJSON_AddNumberToObject(e, "count", (double)r->n_clusters[q]);
        cJSON *groups = cJSON_AddArrayToObject(e, "lines");
        for (size_t g = 0; g < r->n_clusters[q]; g++) {
            cJSON *lines = cJSON_CreateArray();
            for (size_t i = 0; i < C; i++)
                if ((size_t)r->clusters[q * C + i] == g)
                    cJSON_AddItemToArray(lines, cJSON_CreateNumber((double)r->line_no[i]));
            cJSON_AddItemToArray(groups, lines);
        }
        cJSON_AddItemToArray(cl, e);
    }
    /* the phrase's words and, at the chosen unit, their mean distance in each context */
    cJSON *words = cJSON_AddArrayToObject(doc, "words");
    const char *p = phrase;
    while (*p) {
        p += strspn(p, " \t\n\v\f\r");
        size_t len = strcspn(p, " \t\n\v\f\r");
        char *w = len ? strndup(p, len) : NULL;
        if (w) cJSON_AddItemToArray(words, cJSON_CreateString(w));
        free(w);
        p += len;
    }
    cJSON *wd = cJSON_AddArrayToObject(doc, "word_distance_by_context");
    for (size_t c = 0; c < C && k > 1; c++) {
        double sum = 0;
        for (size_t i = 1; i < k; i++)
            for (size_t j = 0; j < i; j++) sum += r->word_distances[(c * k + i) * k + j];
        cJSON_AddItemToArray(wd, analysis_json_number(sum / (double)(k * (k - 1) / 2), 0));
    }
    cJSON *bl = cJSON_AddObjectToObject(doc, "by_hidden_state");
    cJSON_AddItemToObject(bl, "mean_cosine_similarity",
                          numbers_json(r->hidden_similarity, r->L + 1));
    cJSON_AddItemToObject(bl, "single_cluster_scale", numbers_json(r->hidden_merge, r->L + 1));
    cJSON_AddItemToObject(bl, "word_distance", numbers_json(r->hidden_word_distance, r->L + 1));
    cJSON *bh = cJSON_AddObjectToObject(doc, "by_head");
    cJSON_AddItemToObject(bh, "mean_cosine_similarity",
                          analysis_matrix_json(r->head_similarity, r->L, r->H));
    cJSON_AddItemToObject(bh, "single_cluster_scale",
                          analysis_matrix_json(r->head_merge, r->L, r->H));
    cJSON_AddItemToObject(bh, "word_distance",
                          analysis_matrix_json(r->head_word_distance, r->L, r->H));
    return doc;
}

static int phrase_mode(const analysis_args *a, const char *phrase, const char *corpus,
                       const ats_context_options *o) {
    ats_error err;
    ats_error_clear(&err);
    ats_session *s;
    if (ats_session_open_adapted(a->model, ats_cli_adapter(), &s, &err)) return ats_cli_fail(&err);
    ats_corpus_source src;
    ats_corpus_source_init(&src);
    src.path = corpus;
    ats_context_result r;
    ats_status st = ats_context_run(s, &src, phrase, o, &r, &err);
    ats_session_close(s);
    if (st) return ats_cli_fail(&err);
    size_t C = r.contexts, k = r.words;
    size_t shape[3] = {C, C, 0}, wshape[3] = {C, k, k};
    char unit[64];
    unit_name(unit, sizeof unit, o);
    st = analysis_write_npy(a, "distances", ATS_F64, 2, shape, r.distances, &err);
    if (!st)
        st = analysis_write_npy(a, "word_distances", ATS_F64, 3, wshape, r.word_distances, &err);
    int dims[3] = {0, 1, 2}, nd = r.rips.max_dim + 1;
    for (int f = 0; f < 2 && !st; f++) {
        char *fp = analysis_figure_path(a, f ? "barcode" : "diagram", &err);
        char title[512];
        snprintf(title, sizeof title, "%s%s\"%s\" across %zu contexts, %s",
                 a->title ? a->title : "", a->title ? ": " : "", phrase, C, unit);
        ats_figure_options fo;
        ats_figure_options_init(&fo);
        fo.title = title;
        st = !fp ? err.status
             : f ? ats_render_barcode(fp, (size_t)nd, r.rips.dims, dims, &fo, &err)
                 : ats_render_diagram(fp, (size_t)nd, r.rips.dims, dims, &fo, &err);
        if (!st) printf("%s\n", fp);
        free(fp);
    }
    if (!st) {
        char title[512];
        snprintf(title, sizeof title, "%s%s\"%s\" across %zu contexts: mean cosine similarity",
                 a->title ? a->title : "", a->title ? ": " : "", phrase, C);
        st = analysis_heads_heatmap(a, "heads", title, "cos", r.L, r.H, r.head_similarity, &err);
    }
    if (!st) {
        cJSON *doc = phrase_json(phrase, o, &r);
        st = analysis_write_json(a, "context", doc, &err);
        cJSON_Delete(doc);
        fprintf(stderr,
                "'%s' in %zu contexts at %s: mean cosine similarity %.3f, one cluster from cosine "
                "distance %.3f, %zu H1 classes\n",
                phrase, C, unit, r.mean_similarity, r.single_cluster_scale,
                r.rips.max_dim >= 1 ? r.rips.dims[1].count : 0);
        for (size_t q = 0; q < r.n_scales; q++)
            fprintf(stderr, "  at scale %.4g: %zu cluster(s)\n", r.scales[q], r.n_clusters[q]);
    }
    ats_context_result_free(&r);
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}

int ats_cmd_context(int argc, char **argv) {
    const char *models[MAX_MODELS], *word = NULL, *phrase = NULL, *corpus = NULL;
    size_t n_models = 0;
    long layer = -2, head = -1, max_contexts = 200, max_dim = 1;
    size_t n_scales = 0;
    double scales[ATS_TOPO_MAX_SCALES];
    analysis_args a;
    analysis_args_init(&a, "context");
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--help")) {
            fputs(USAGE, stdout);
            return ATS_EXIT_OK;
        }
        if (!strcmp(s, "--truncate")) {
            a.truncate = 1;
            continue;
        }
        if (!v) return ats_cli_usage_error("context", "%s needs a value (see --help)", s);
        if (!strcmp(s, "--model")) {
            if (n_models == MAX_MODELS)
                return ats_cli_usage_error("context", "at most %d models", MAX_MODELS);
            models[n_models++] = v;
        } else if (!strcmp(s, "--text")) {
            if (a.n_texts == 2) return ats_cli_usage_error("context", "exactly two --text");
            a.texts[a.n_texts++] = v;
        } else if (!strcmp(s, "--word"))
            word = v;
        else if (!strcmp(s, "--phrase"))
            phrase = v;
        else if (!strcmp(s, "--corpus"))
            corpus = v;
        else if (!strcmp(s, "--out"))
            a.out_dir = v;
        else if (!strcmp(s, "--format")) {
            if (strcmp(v, "png") && strcmp(v, "svg") && strcmp(v, "pdf"))
                return ats_cli_usage_error("context", "--format is png, svg or pdf");
            a.format = v;
        } else if (!strcmp(s, "--layer")) {
            if (!strcmp(v, "embeddings"))
                layer = ATS_CONTEXT_EMBEDDINGS;
            else if (!ats_cli_parse_long(v, 0, 1 << 16, &layer))
                return ats_cli_usage_error("context",
                                           "--layer needs a layer 0..L-1 or 'embeddings'");
        } else if (!strcmp(s, "--head")) {
            if (!ats_cli_parse_long(v, 0, 1 << 16, &head))
                return ats_cli_usage_error("context", "--head needs an integer >= 0");
        } else if (!strcmp(s, "--scale")) {
            if (n_scales == ATS_TOPO_MAX_SCALES)
                return ats_cli_usage_error("context", "at most %d --scale", ATS_TOPO_MAX_SCALES);
            if (!ats_cli_parse_double(v, 0, &scales[n_scales]) || scales[n_scales] < 0)
                return ats_cli_usage_error("context", "--scale needs a number >= 0");
            n_scales++;
        } else if (!strcmp(s, "--dim")) {
            if (!ats_cli_parse_long(v, 0, 2, &max_dim))
                return ats_cli_usage_error("context", "--dim needs 0..2");
        } else if (!strcmp(s, "--title"))
            a.title = v;
        else if (!strcmp(s, "--threads")) {
            long t;
            if (!ats_cli_parse_long(v, 1, 4096, &t))
                return ats_cli_usage_error("context", "--threads needs 1..4096");
            a.threads = (int)t;
        } else if (!strcmp(s, "--max-contexts")) {
            if (!ats_cli_parse_long(v, 2, MAX_CONTEXTS, &max_contexts))
                return ats_cli_usage_error("context", "--max-contexts needs 2..%d", MAX_CONTEXTS);
        } else {
            return ats_cli_usage_error("context", "unknown option '%s' (see --help)", s);
        }
        i++;
    }
    if (!n_models || !a.out_dir) return ats_cli_usage_error("context", "needs --model and --out");
    {
        ats_error derr;
        if (ats_dir_create(a.out_dir, &derr)) return ats_cli_fail(&derr);
    }
    if (word) {
        if (layer != -2 || head >= 0 || n_scales)
            return ats_cli_usage_error("context", "--layer, --head and --scale are for --phrase "
                                                  "(--word compares every layer and head)");
        if (a.n_texts != 2 || phrase || corpus)
            return ats_cli_usage_error("context", "--word needs two --text (and no --phrase)");
        return word_mode(&a, models, n_models, word);
    }
    if (phrase) {
        if (!corpus || layer == -2 || n_models != 1 || a.n_texts)
            return ats_cli_usage_error("context",
                                       "--phrase needs one --model, --corpus and --layer");
        a.model = models[0];
        ats_context_options o;
        ats_context_options_init(&o);
        o.layer = layer;
        o.head = head;
        o.max_contexts = (size_t)max_contexts;
        o.max_dim = (int)max_dim;
        o.n_scales = n_scales;
        memcpy(o.scales, scales, n_scales * sizeof *scales);
        o.truncate = a.truncate;
        o.n_threads = a.threads;
        return phrase_mode(&a, phrase, corpus, &o);
    }
    return ats_cli_usage_error("context", "give --word W (two texts) or --phrase P --corpus F");
}
