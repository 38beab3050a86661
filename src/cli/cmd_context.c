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
    "       attnscope context --model M --phrase P --corpus FILE --layer L --out DIR\n"
    "                         [--max-contexts N] [--format png|svg|pdf]\n"
    "\n"
    "Word mode: the cosine similarity of W's context vector (hidden state; the mean over its\n"
    "sub-word tokens) in text A and in text B at every layer, one line per model\n"
    "(similarity.png, context.json). Phrase mode: P's vector in every corpus line containing\n"
    "it (up to N, default 200), the cosine-distance matrix between them (distances.npy) and its\n"
    "persistence (diagram, barcode, context.json with the lines of each H0 cluster).\n";

static int word_mode(const analysis_args *a, const char **models, size_t n_models,
                     const char *word) {
    ats_error err;
    ats_error_clear(&err);
    ats_series series[MAX_MODELS];
    char names[MAX_MODELS][64]; /* the models' types outlive the models */
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
            cJSON_AddItemToArray(arr, mj);
            snprintf(names[m], sizeof names[m], "%s", mi->model_type);
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
    if (!st) {
        char *path = analysis_figure_path(a, "similarity", &err);
        char title[256];
        snprintf(title, sizeof title, "cosine similarity of \"%s\" across the two texts", word);
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

/* context.json of phrase mode */
static cJSON *phrase_json(const char *phrase, long layer, const ats_context_result *r) {
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "phrase", phrase);
    cJSON_AddNumberToObject(doc, "layer", (double)layer);
    cJSON_AddNumberToObject(doc, "contexts", (double)r->contexts);
    cJSON_AddItemToObject(doc, "mean_cosine_similarity",
                          analysis_json_number(r->mean_similarity, 0));
    cJSON_AddItemToObject(doc, "single_cluster_scale",
                          analysis_json_number(r->single_cluster_scale, 0));
    cJSON *ctx = cJSON_AddArrayToObject(doc, "lines");
    for (size_t i = 0; i < r->contexts; i++) {
        cJSON *c = cJSON_CreateObject();
        cJSON_AddNumberToObject(c, "line", (double)r->line_no[i]);
        cJSON_AddStringToObject(c, "text", r->lines[i]);
        cJSON_AddItemToArray(ctx, c);
    }
    cJSON *dj = cJSON_AddArrayToObject(doc, "dims");
    for (int k = 0; k <= r->rips.max_dim; k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "dim", (double)k);
        cJSON_AddItemToObject(e, "pairs", analysis_pairs_json(&r->rips.dims[k]));
        cJSON_AddItemToArray(dj, e);
    }
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
    size_t C = r.contexts;
    size_t shape[2] = {C, C};
    st = analysis_write_npy(a, "distances", ATS_F64, 2, shape, r.distances, &err);
    int dims[2] = {0, 1};
    for (int k = 0; k < 2 && !st; k++) {
        char *fp = analysis_figure_path(a, k ? "barcode" : "diagram", &err);
        char title[256];
        snprintf(title, sizeof title, "\"%s\" across %zu contexts, layer %ld", phrase, C,
                 o->layer + 1);
        ats_figure_options fo;
        ats_figure_options_init(&fo);
        fo.title = title;
        st = !fp ? err.status
             : k ? ats_render_barcode(fp, 2, r.rips.dims, dims, &fo, &err)
                 : ats_render_diagram(fp, 2, r.rips.dims, dims, &fo, &err);
        if (!st) printf("%s\n", fp);
        free(fp);
    }
    if (!st) {
        cJSON *doc = phrase_json(phrase, o->layer + 1, &r);
        st = analysis_write_json(a, "context", doc, &err);
        cJSON_Delete(doc);
        fprintf(stderr,
                "'%s' in %zu contexts at layer %ld: mean cosine similarity %.3f, one cluster "
                "from cosine distance %.3f, %zu H1 classes\n",
                phrase, C, o->layer + 1, r.mean_similarity, r.single_cluster_scale,
                r.rips.dims[1].count);
    }
    ats_context_result_free(&r);
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}

int ats_cmd_context(int argc, char **argv) {
    const char *models[MAX_MODELS], *word = NULL, *phrase = NULL, *corpus = NULL;
    size_t n_models = 0;
    long layer = -1, max_contexts = 200;
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
    if (!n_models || !a.out_dir) return ats_cli_usage_error("context", "needs --model and --out");
    {
        ats_error derr;
        if (ats_dir_create(a.out_dir, &derr)) return ats_cli_fail(&derr);
    }
    if (word) {
        if (a.n_texts != 2 || phrase || corpus)
            return ats_cli_usage_error("context", "--word needs two --text (and no --phrase)");
        return word_mode(&a, models, n_models, word);
    }
    if (phrase) {
        if (!corpus || layer < 0 || n_models != 1 || a.n_texts)
            return ats_cli_usage_error("context",
                                       "--phrase needs one --model, --corpus and --layer");
        a.model = models[0];
        ats_context_options o;
        ats_context_options_init(&o);
        o.layer = layer - 1; /* hidden state `layer` */
        o.max_contexts = (size_t)max_contexts;
        o.truncate = a.truncate;
        return phrase_mode(&a, phrase, corpus, &o);
    }
    return ats_cli_usage_error("context", "give --word W (two texts) or --phrase P --corpus F");
}
