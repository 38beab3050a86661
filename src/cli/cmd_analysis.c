/* The seed notebooks' analyses as commands: attend, graph, divergence (topo and compare are in
 * cmd_topo.c and cmd_compare.c). Each writes its figures plus the JSON and NPY of what it drew
 * into --out DIR. */
#include "analysis.h"
#include "cli.h"
#include "attnscope/diagram.h"
#include "attnscope/measure.h"
#include "attnscope/render.h"
#include "attnscope/rips.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* ---- attend */

/* Input t's outputs: attention_<t+1>.npy (staged already in *npy, or written from s->att) and
 * its figure (one head: from head [n][n] when given, else from s->att); its entry in inputs. */
static ats_status attend_input(const analysis_args *a, const ats_attention *s, size_t t,
                               struct ats_outfile *npy, const char *npy_path, const float *head,
                               cJSON *inputs, ats_error *err) {
    char name[64], title[512];
    snprintf(name, sizeof name, "attention_%zu", t + 1);
    size_t shape[4] = {s->L, s->H, s->n, s->n};
    ats_status st = ATS_OK;
    if (npy) {
        st = ats_outfile_commit(npy, err);
        if (!st) printf("%s\n", npy_path);
    } else {
        st = analysis_write_npy(a, name, ATS_F32, 4, shape, s->att, err);
    }
    if (st) return st;
    cJSON *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "name", s->name);
    cJSON_AddItemToObject(in, "tokens", analysis_labels_json(s));
    cJSON_AddItemToArray(inputs, in);
    if (a->layer >= 0)
        snprintf(name, sizeof name, "heatmap_%zu_L%ld_H%ld", t + 1, a->layer, a->head);
    else
        snprintf(name, sizeof name, "heads_%zu", t + 1);
    char *path = analysis_figure_path(a, name, err);
    if (!path) return err->status;
    ats_heatmap_options ho;
    ats_heatmap_options_init(&ho);
    ho.value_title = "attention";
    if (a->layer >= 0) {
        analysis_title(title, sizeof title, a, s, "attention", a->layer, a->head);
        ho.fig.title = title;
        ho.row_labels = (const char *const *)s->labels;
        ho.col_labels = (const char *const *)s->labels;
        ho.row_title = "query";
        ho.col_title = "key";
        size_t nn = s->n * s->n;
        double *m = malloc((nn ? nn : 1) * sizeof *m);
        if (m && head)
            for (size_t i = 0; i < nn; i++) m[i] = head[i];
        else if (m)
            ats_attention_head_values(s, (size_t)a->layer, (size_t)a->head, m);
        st = m ? ats_render_heatmap(path, s->n, s->n, m, &ho, err)
               : ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        free(m);
    } else {
        analysis_title(title, sizeof title, a, s, "attention of every head", -1, -1);
        ho.fig.title = title;
        size_t total = s->L * s->H * s->n * s->n;
        double *m = malloc(total * sizeof *m);
        if (!m)
            st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        else {
            for (size_t i = 0; i < total; i++) m[i] = s->att[i];
            st = ats_render_heatmap_grid(path, s->L, s->H, s->n, s->n, m, NULL, &ho, err);
        }
        free(m);
    }
    if (!st) printf("%s\n", path);
    free(path);
    return st;
}

ats_status analysis_attend_write(const analysis_args *a, const ats_attention *src, size_t count,
                                 ats_error *err) {
    cJSON *doc = cJSON_CreateObject(), *inputs = cJSON_AddArrayToObject(doc, "inputs");
    ats_status st = ATS_OK;
    for (size_t t = 0; t < count && !st; t++)
        st = attend_input(a, &src[t], t, NULL, NULL, NULL, inputs, err);
    if (!st) st = analysis_write_json(a, "attend", doc, err);
    cJSON_Delete(doc);
    return st;
}

/* attend --model with one head: every layer goes to attention_<k>.npy as the pass hands it
 * over, and the drawn head is kept, so that the pass holds one layer of one text at a time
 * instead of every layer of every text (the files are the same bytes). */
typedef struct attend_stream {
    const analysis_args *a;
    size_t L; /* the model's layers */
    ats_outfile npy[ANALYSIS_MAX_INPUTS];
    char *path[ANALYSIS_MAX_INPUTS];
    float *head[ANALYSIS_MAX_INPUTS]; /* [n][n] head (--layer, --head) of each text */
} attend_stream;

static ats_status attend_layer(void *ctx, size_t t, size_t l, size_t H, size_t n, const float *att,
                               ats_error *err) {
    attend_stream *as = ctx;
    const analysis_args *a = as->a;
    if (t >= ANALYSIS_MAX_INPUTS) return ats_error_set(err, ATS_ERR_INVALID, "too many texts");
    if (l == 0) {
        char name[64];
        snprintf(name, sizeof name, "attention_%zu", t + 1);
        if (!(as->path[t] = analysis_path(a, name, "npy", err))) return err->status;
        size_t shape[4] = {as->L, H, n, n};
        ats_status st = ats_npy_stage(as->path[t], ATS_F32, 4, shape, NULL, &as->npy[t], err);
        if (st) return st;
    }
    if (!as->npy[t].fp) return ats_error_set(err, ATS_ERR_INVALID, "text %zu: no layer 0", t + 1);
    size_t count = H * n * n;
    if (fwrite(att, sizeof *att, count, (FILE *)as->npy[t].fp) != count)
        return ats_error_set(err, ATS_ERR_IO, "%s: write failed: %s", as->path[t], strerror(errno));
    if (l == (size_t)a->layer && (size_t)a->head < H) {
        if (!(as->head[t] = malloc(n * n * sizeof *att)))
            return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        memcpy(as->head[t], att + (size_t)a->head * n * n, n * n * sizeof *att);
    }
    return ATS_OK;
}

static ats_status attend_streamed(analysis_args *a, ats_error *err) {
    ats_session *s = NULL;
    ats_status st = analysis_session_open(a, &s, err);
    if (st) return st;
    attend_stream as;
    memset(&as, 0, sizeof as);
    as.a = a;
    const ats_model_info *mi = ats_model_info_get(ats_session_model(s));
    as.L = (size_t)mi->n_layers;
    if (a->layer >= mi->n_layers || a->head >= mi->n_heads) { /* before --out is made */
        ats_session_close(s);
        return ats_error_set(err, ATS_ERR_INVALID,
                             "text 1: layer %ld, head %ld is outside its %d x %d heads", a->layer,
                             a->head, mi->n_layers, mi->n_heads);
    }
    a->on_layer = attend_layer;
    a->on_layer_ctx = &as;
    ats_attention src[ANALYSIS_MAX_INPUTS];
    size_t count = 0;
    st = analysis_load_with(a, s, src, &count, err);
    cJSON *doc = cJSON_CreateObject(), *inputs = cJSON_AddArrayToObject(doc, "inputs");
    for (size_t t = 0; t < count && !st; t++)
        st = attend_input(a, &src[t], t, &as.npy[t], as.path[t], as.head[t], inputs, err);
    if (!st) st = analysis_write_json(a, "attend", doc, err);
    cJSON_Delete(doc);
    for (size_t t = 0; t < ANALYSIS_MAX_INPUTS; t++) {
        ats_outfile_abort(&as.npy[t]); /* those not committed */
        free(as.path[t]);
        free(as.head[t]);
    }
    for (size_t t = 0; t < count; t++) ats_attention_free(&src[t]);
    ats_session_close(s);
    return st;
}

static int run_attend(int argc, char **argv) {
    analysis_args a;
    analysis_args_init(&a, "attend");
    for (int i = 1; i < argc; i++) {
        int r = analysis_parse_common(&a, argc, argv, &i);
        if (r < 0) return ATS_EXIT_INPUT;
        if (r) continue;
        if (!strcmp(argv[i], "--help")) {
            printf("usage: attnscope attend (input) --out DIR [--layer L --head H]\n\n"
                   "Attention heatmaps: one head, or without --layer/--head the grid of all "
                   "heads.\nWrites attention_<k>.npy ([L][H][n][n] float32) and "
                   "attend.json (tokens).\n\n%s",
                   ANALYSIS_COMMON_USAGE);
            return ATS_EXIT_OK;
        }
        return ats_cli_usage_error("attend", "unknown option '%s' (see --help)", argv[i]);
    }
    if ((a.layer >= 0) != (a.head >= 0))
        return ats_cli_usage_error("attend", "give both --layer and --head, or neither");
    ats_error err;
    if (a.model && a.layer >= 0 && !a.want_hidden) {
        /* one head drawn: the layers go to the files as the pass computes them */
        int rc = analysis_check(&a, 0);
        if (rc) return rc;
        ats_error_clear(&err);
        return attend_streamed(&a, &err) ? ats_cli_fail(&err) : ATS_EXIT_OK;
    }
    ats_attention src[ANALYSIS_MAX_INPUTS];
    size_t count;
    int rc = analysis_prepare(&a, 0, src, &count, &err);
    if (rc) return rc;
    ats_status st = analysis_attend_write(&a, src, count, &err);
    for (size_t t = 0; t < count; t++) ats_attention_free(&src[t]);
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}

/* ---- graph */

ats_status analysis_graph_write(const analysis_args *a, const ats_attention *src, size_t count,
                                double min_weight, int directed, int seed_compat, ats_error *err) {
    ats_status st = ATS_OK;
    cJSON *doc = cJSON_CreateObject(), *inputs = cJSON_AddArrayToObject(doc, "inputs");
    cJSON_AddNumberToObject(doc, "layer", (double)a->layer);
    cJSON_AddNumberToObject(doc, "head", (double)a->head);
    cJSON_AddItemToObject(doc, "min_weight", analysis_json_number(min_weight, 0));
    if (seed_compat) cJSON_AddBoolToObject(doc, "seed_compat", 1);
    for (size_t t = 0; t < count && !st; t++) {
        const ats_attention *s = &src[t];
        char name[64], title[512];
        snprintf(name, sizeof name, "graph_%zu_L%ld_H%ld", t + 1, a->layer, a->head);
        analysis_title(title, sizeof title, a, s, "attention graph", a->layer, a->head);
        ats_head_graph_options go;
        ats_head_graph_options_init(&go);
        /* the head's place in s: (0, 0) when the pass kept it alone */
        analysis_held(a, &go.layer, &go.head);
        go.min_weight = min_weight;
        go.directed = directed;
        go.seed_compat = seed_compat;
        go.fig.title = title;
        char *path = analysis_figure_path(a, name, err);
        go.figure = path;
        ats_head_graph_result r = {0};
        st = path ? ats_head_graph(s, &go, &r, err) : err->status;
        size_t n = r.n, shape[2] = {n, n};
        if (!st) st = analysis_write_npy(a, name, ATS_F64, 2, shape, r.weights, err);
        if (!st) printf("%s\n", path);
        if (!st) {
            cJSON *in = cJSON_CreateObject(), *edges = cJSON_CreateArray();
            cJSON_AddStringToObject(in, "name", s->name);
            cJSON_AddItemToObject(in, "tokens", analysis_labels_json(s));
            cJSON_AddBoolToObject(in, "symmetrized", r.symmetrized);
            for (size_t k = 0; k < r.n_edges; k++) {
                size_t i = r.edges[2 * k], j = r.edges[2 * k + 1];
                cJSON *e = cJSON_CreateArray();
                cJSON_AddItemToArray(e, cJSON_CreateNumber((double)i));
                cJSON_AddItemToArray(e, cJSON_CreateNumber((double)j));
                cJSON_AddItemToArray(e, analysis_json_number(r.weights[i * n + j], 0));
                cJSON_AddItemToArray(edges, e);
            }
            cJSON_AddItemToObject(in, "edges", edges);
            cJSON_AddItemToArray(inputs, in);
        }
        ats_head_graph_result_free(&r);
        free(path);
    }
    if (!st) st = analysis_write_json(a, "graph", doc, err);
    cJSON_Delete(doc);
    return st;
}

static int run_graph(int argc, char **argv) {
    analysis_args a;
    analysis_args_init(&a, "graph");
    a.one_head = 1; /* one head: a long input holds that head alone */
    double min_weight = 0.05;
    int directed = 0, seed_compat = 0;
    for (int i = 1; i < argc; i++) {
        int r = analysis_parse_common(&a, argc, argv, &i);
        if (r < 0) return ATS_EXIT_INPUT;
        if (r) continue;
        if (!strcmp(argv[i], "--min-weight") && i + 1 < argc) {
            if (!ats_cli_parse_double(argv[++i], 0, &min_weight) || min_weight < 0)
                return ats_cli_usage_error("graph", "--min-weight needs a number >= 0");
        } else if (!strcmp(argv[i], "--directed")) {
            directed = 1;
        } else if (!strcmp(argv[i], "--seed-compat")) {
            seed_compat = 1;
        } else if (!strcmp(argv[i], "--help")) {
            printf("usage: attnscope graph (input) --layer L --head H --out DIR [--min-weight W]"
                   " [--directed | --seed-compat]\n\n"
                   "The head's attention as a weighted graph on a circle, edges of weight >= W\n"
                   "(default 0.05). A causal head (all weights above the diagonal 0) is drawn\n"
                   "undirected: symmetrised as (A + A^T)/2, or with --seed-compat as the seed\n"
                   "notebook does, its lower triangle copied up (W[j][i] = W[i][j] = A[i][j],\n"
                   "i > j); --directed draws it as it is. Other heads are drawn directed.\n"
                   "Writes graph_<k>_L<l>_H<h>.npy (the [n][n] weights drawn) and graph.json\n"
                   "(tokens, edges [i, j, weight]).\n\n%s",
                   ANALYSIS_COMMON_USAGE);
            return ATS_EXIT_OK;
        } else {
            return ats_cli_usage_error("graph", "unknown option '%s' (see --help)", argv[i]);
        }
    }
    if (directed && seed_compat)
        return ats_cli_usage_error("graph", "--seed-compat symmetrises a causal head as the seed "
                                            "does; it does not combine with --directed");
    ats_attention src[ANALYSIS_MAX_INPUTS];
    size_t count;
    ats_error err;
    int rc = analysis_prepare(&a, 1, src, &count, &err);
    if (rc) return rc;
    ats_status st = analysis_graph_write(&a, src, count, min_weight, directed, seed_compat, &err);
    for (size_t t = 0; t < count; t++) ats_attention_free(&src[t]);
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}

/* ---- divergence */

ats_status analysis_divergence_write(const analysis_args *a, const ats_attention *src, size_t count,
                                     double eps, int base_e, int seed_compat, ats_error *err) {
    static const char *const names[ATS_DIVFIG_COUNT] = {"kl", "js", "entropy"};
    static const char *const what[ATS_DIVFIG_COUNT] = {"KL divergence", "Jensen–Shannon divergence",
                                                       "entropy of each token's attention"};
    ats_status st = ATS_OK;
    cJSON *doc = cJSON_CreateObject(), *inputs = cJSON_AddArrayToObject(doc, "inputs");
    cJSON_AddNumberToObject(doc, "layer", (double)a->layer);
    cJSON_AddNumberToObject(doc, "head", (double)a->head);
    cJSON_AddStringToObject(doc, "base", base_e ? "e" : "2");
    if (seed_compat) cJSON_AddBoolToObject(doc, "seed_compat", 1);
    for (size_t t = 0; t < count && !st; t++) {
        const ats_attention *s = &src[t];
        ats_head_divergences_options o;
        ats_head_divergences_options_init(&o);
        /* the head's place in s: (0, 0) when the pass kept it alone */
        analysis_held(a, &o.layer, &o.head);
        o.base = base_e ? ATS_BASE_E : ATS_BASE_2;
        o.eps = eps;
        o.seed_compat = seed_compat;
        o.n_threads = a->threads;
        char stem[ATS_DIVFIG_COUNT][64], title[ATS_DIVFIG_COUNT][512];
        char *paths[ATS_DIVFIG_COUNT] = {NULL};
        for (int k = 0; k < ATS_DIVFIG_COUNT && !st; k++) {
            snprintf(stem[k], sizeof stem[k], "%s_%zu_L%ld_H%ld", names[k], t + 1, a->layer,
                     a->head);
            analysis_title(title[k], sizeof title[k], a, s,
                           seed_compat && k == ATS_DIVFIG_JS ? "seed JS (scipy JS distance)"
                                                             : what[k],
                           a->layer, a->head);
            o.fig[k].title = title[k];
            o.figures[k] = paths[k] = analysis_figure_path(a, stem[k], err);
            if (!paths[k]) st = err->status;
        }
        ats_head_divergences_result r = {0};
        if (!st) st = ats_head_divergences(s, &o, &r, err);
        size_t n = r.n, shape[2] = {n, n};
        /* the files in the order the command has always listed them */
        if (!st)
            st = analysis_write_npy(a, stem[ATS_DIVFIG_ENTROPY], ATS_F64, 1, shape, r.entropy, err);
        if (!st) st = analysis_write_npy(a, stem[ATS_DIVFIG_KL], ATS_F64, 2, shape, r.kl, err);
        if (!st) printf("%s\n", paths[ATS_DIVFIG_KL]);
        if (!st) st = analysis_write_npy(a, stem[ATS_DIVFIG_JS], ATS_F64, 2, shape, r.js, err);
        if (!st) printf("%s\n%s\n", paths[ATS_DIVFIG_JS], paths[ATS_DIVFIG_ENTROPY]);
        if (!st) {
            cJSON *in = cJSON_CreateObject();
            cJSON_AddStringToObject(in, "name", s->name);
            cJSON_AddItemToObject(in, "tokens", analysis_labels_json(s));
            cJSON_AddItemToObject(in, "entropy", analysis_matrix_json(r.entropy, 1, n));
            cJSON_AddItemToObject(in, "kl", analysis_matrix_json(r.kl, n, n));
            cJSON_AddItemToObject(in, "js", analysis_matrix_json(r.js, n, n));
            cJSON_AddItemToArray(inputs, in);
        }
        ats_head_divergences_result_free(&r);
        for (int k = 0; k < ATS_DIVFIG_COUNT; k++) free(paths[k]);
    }
    if (!st) st = analysis_write_json(a, "divergence", doc, err);
    cJSON_Delete(doc);
    return st;
}

static int run_divergence(int argc, char **argv) {
    analysis_args a;
    analysis_args_init(&a, "divergence");
    a.one_head = 1; /* one head: a long input holds that head alone */
    double eps = 1e-9;
    int base_e = 0, base_given = 0, eps_given = 0, seed_compat = 0;
    for (int i = 1; i < argc; i++) {
        int r = analysis_parse_common(&a, argc, argv, &i);
        if (r < 0) return ATS_EXIT_INPUT;
        if (r) continue;
        if (!strcmp(argv[i], "--eps") && i + 1 < argc) {
            if (!ats_cli_parse_double(argv[++i], 0, &eps) || eps < 0)
                return ats_cli_usage_error("divergence", "--eps needs a number >= 0");
            eps_given = 1;
        } else if (!strcmp(argv[i], "--seed-compat")) {
            seed_compat = 1;
        } else if (!strcmp(argv[i], "--base") && i + 1 < argc) {
            base_given = 1;
            const char *b = argv[++i];
            if (!strcmp(b, "e"))
                base_e = 1;
            else if (!strcmp(b, "2"))
                base_e = 0;
            else
                return ats_cli_usage_error("divergence", "--base is 2 or e");
        } else if (!strcmp(argv[i], "--help")) {
            printf("usage: attnscope divergence (input) --layer L --head H --out DIR [--eps E]"
                   " [--base 2|e]\n                            [--seed-compat]\n\n"
                   "Entropy of every token's attention, and the KL (smoothed by E, default 1e-9,\n"
                   "as the seed) and Jensen–Shannon matrices between tokens, as heatmaps, NPY\n"
                   "and JSON. --seed-compat computes them as the seed notebook does (as\n"
                   "`attnscope measure --seed-compat`): softmax of each row first; entropy in\n"
                   "nats; KL sum p (log2(p + 1e-9) - log2(q + 1e-9)) in bits; js = scipy's JS\n"
                   "distance in nats (the notebook's first distance cell). It fixes --base and\n"
                   "--eps.\n\n%s",
                   ANALYSIS_COMMON_USAGE);
            return ATS_EXIT_OK;
        } else {
            return ats_cli_usage_error("divergence", "unknown option '%s' (see --help)", argv[i]);
        }
    }
    if (seed_compat && (base_given || eps_given))
        return ats_cli_usage_error("divergence", "--seed-compat fixes the base and eps, as the "
                                                 "notebook's; drop --base/--eps");
    ats_attention src[ANALYSIS_MAX_INPUTS];
    size_t count;
    ats_error err;
    int rc = analysis_prepare(&a, 1, src, &count, &err);
    if (rc) return rc;
    ats_status st = analysis_divergence_write(&a, src, count, eps, base_e, seed_compat, &err);
    for (size_t t = 0; t < count; t++) ats_attention_free(&src[t]);
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}

int ats_cmd_attend(int argc, char **argv) {
    return run_attend(argc, argv);
}
int ats_cmd_graph(int argc, char **argv) {
    return run_graph(argc, argv);
}
int ats_cmd_divergence(int argc, char **argv) {
    return run_divergence(argc, argv);
}
