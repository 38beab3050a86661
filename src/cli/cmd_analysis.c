/* The seed notebooks' analyses as commands: attend, graph, divergence, topo, compare.
 * Each writes its figures plus the JSON and NPY of what it drew into --out DIR. */
#include "analysis.h"
#include "cli.h"
#include "attnscope/diagram.h"
#include "attnscope/measure.h"
#include "attnscope/render.h"
#include "attnscope/rips.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- small helpers */

static int fail(ats_error *err) {
    return ats_cli_fail(err);
}

/* Writes a cJSON document atomically to DIR/name.json. */
static ats_status write_json(const analysis_args *a, const char *name, cJSON *doc, ats_error *err) {
    char *path = analysis_path(a, name, "json", err);
    if (!path) return err->status;
    ats_status st = analysis_json_write(path, doc, err);
    free(path);
    return st;
}

static ats_status write_npy(const analysis_args *a, const char *name, ats_dtype dtype, int ndim,
                            const size_t *shape, const void *data, ats_error *err) {
    char *path = analysis_path(a, name, "npy", err);
    if (!path) return err->status;
    ats_status st = ats_npy_write(path, dtype, ndim, shape, data, err);
    if (!st) printf("%s\n", path);
    free(path);
    return st;
}

static char *figure_path(const analysis_args *a, const char *name, ats_error *err) {
    return analysis_path(a, name, a->format, err);
}

static cJSON *labels_json(const ats_attention *s) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < s->n; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(s->labels[i]));
    return arr;
}

static cJSON *matrix_json(const double *m, size_t rows, size_t cols) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < rows; i++) {
        cJSON *row = cJSON_CreateArray();
        for (size_t j = 0; j < cols; j++) {
            double v = m[i * cols + j];
            cJSON_AddItemToArray(row, analysis_json_number(v, 0));
        }
        cJSON_AddItemToArray(arr, row);
    }
    return arr;
}

static void title_for(char *buf, size_t n, const analysis_args *a, const ats_attention *s,
                      const char *what, long l, long h) {
    if (l >= 0)
        snprintf(buf, n, "%s%s%s — %s, layer %ld head %ld", a->title ? a->title : "",
                 a->title ? ": " : "", what, s->name, l, h);
    else
        snprintf(buf, n, "%s%s%s — %s", a->title ? a->title : "", a->title ? ": " : "", what,
                 s->name);
}

/* Checks the shared options and loads the inputs; returns the exit code of a failure, or 0. */
static int prepare(const analysis_args *a, int need_head, ats_attention *src, size_t *count,
                   ats_error *err) {
    int rc = analysis_check(a, need_head);
    if (rc) return rc;
    ats_error_clear(err);
    return analysis_load(a, src, count, err) ? fail(err) : 0;
}

/* ---- attend */

ats_status analysis_attend_write(const analysis_args *a, const ats_attention *src, size_t count,
                                 ats_error *err) {
    cJSON *doc = cJSON_CreateObject(), *inputs = cJSON_AddArrayToObject(doc, "inputs");
    ats_status st = ATS_OK;
    for (size_t t = 0; t < count && !st; t++) {
        const ats_attention *s = &src[t];
        char name[64], title[512];
        snprintf(name, sizeof name, "attention_%zu", t + 1);
        size_t shape[4] = {s->L, s->H, s->n, s->n};
        st = write_npy(a, name, ATS_F32, 4, shape, s->att, err);
        if (st) break;
        cJSON *in = cJSON_CreateObject();
        cJSON_AddStringToObject(in, "name", s->name);
        cJSON_AddItemToObject(in, "tokens", labels_json(s));
        cJSON_AddItemToArray(inputs, in);
        char *path = figure_path(
            a,
            a->layer >= 0
                ? (snprintf(name, sizeof name, "heatmap_%zu_L%ld_H%ld", t + 1, a->layer, a->head),
                   name)
                : (snprintf(name, sizeof name, "heads_%zu", t + 1), name),
            err);
        if (!path) {
            st = err->status;
            break;
        }
        ats_heatmap_options ho;
        ats_heatmap_options_init(&ho);
        ho.value_title = "attention";
        if (a->layer >= 0) {
            title_for(title, sizeof title, a, s, "attention", a->layer, a->head);
            ho.fig.title = title;
            ho.row_labels = (const char *const *)s->labels;
            ho.col_labels = (const char *const *)s->labels;
            ho.row_title = "query";
            ho.col_title = "key";
            double *m = attn_head(s, (size_t)a->layer, (size_t)a->head);
            st = m ? ats_render_heatmap(path, s->n, s->n, m, &ho, err)
                   : ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
            free(m);
        } else {
            title_for(title, sizeof title, a, s, "attention of every head", -1, -1);
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
    }
    if (!st) st = write_json(a, "attend", doc, err);
    cJSON_Delete(doc);
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
    ats_attention src[ANALYSIS_MAX_INPUTS];
    size_t count;
    ats_error err;
    int rc = prepare(&a, 0, src, &count, &err);
    if (rc) return rc;
    ats_status st = analysis_attend_write(&a, src, count, &err);
    for (size_t t = 0; t < count; t++) ats_attention_free(&src[t]);
    return st ? fail(&err) : ATS_EXIT_OK;
}

/* ---- graph */

ats_status analysis_graph_write(const analysis_args *a, const ats_attention *src, size_t count,
                                double min_weight, int directed, ats_error *err) {
    ats_status st = ATS_OK;
    cJSON *doc = cJSON_CreateObject(), *inputs = cJSON_AddArrayToObject(doc, "inputs");
    cJSON_AddNumberToObject(doc, "layer", (double)a->layer);
    cJSON_AddNumberToObject(doc, "head", (double)a->head);
    cJSON_AddItemToObject(doc, "min_weight", analysis_json_number(min_weight, 0));
    for (size_t t = 0; t < count && !st; t++) {
        const ats_attention *s = &src[t];
        size_t n = s->n;
        double *m = attn_head(s, (size_t)a->layer, (size_t)a->head);
        if (!m) {
            st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
            break;
        }
        int causal = 1;
        for (size_t i = 0; i < n && causal; i++)
            for (size_t j = i + 1; j < n; j++)
                if (m[i * n + j] != 0) {
                    causal = 0;
                    break;
                }
        int sym = causal && !directed;
        /* what is drawn: m [n][n] itself, or (A + Aᵀ)/2, whose graph is undirected */
        if (sym)
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < i; j++)
                    m[i * n + j] = m[j * n + i] = 0.5 * (m[i * n + j] + m[j * n + i]);
        char name[64], title[512];
        snprintf(name, sizeof name, "graph_%zu_L%ld_H%ld", t + 1, a->layer, a->head);
        size_t shape[2] = {n, n};
        st = write_npy(a, name, ATS_F64, 2, shape, m, err);
        if (!st) { /* the edges the figure has, as the renderer chooses them */
            cJSON *in = cJSON_CreateObject(), *edges = cJSON_CreateArray();
            cJSON_AddStringToObject(in, "name", s->name);
            cJSON_AddItemToObject(in, "tokens", labels_json(s));
            cJSON_AddBoolToObject(in, "symmetrized", sym);
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n; j++) {
                    double w = m[i * n + j];
                    if (i == j || (sym && j > i) || !(w >= min_weight && w > 0)) continue;
                    cJSON *e = cJSON_CreateArray();
                    cJSON_AddItemToArray(e, cJSON_CreateNumber((double)i));
                    cJSON_AddItemToArray(e, cJSON_CreateNumber((double)j));
                    cJSON_AddItemToArray(e, analysis_json_number(w, 0));
                    cJSON_AddItemToArray(edges, e);
                }
            cJSON_AddItemToObject(in, "edges", edges);
            cJSON_AddItemToArray(inputs, in);
        }
        title_for(title, sizeof title, a, s, "attention graph", a->layer, a->head);
        char *path = st ? NULL : figure_path(a, name, err);
        ats_graph_options go;
        ats_graph_options_init(&go);
        go.fig.title = title;
        go.labels = (const char *const *)s->labels;
        st = path ? ats_render_attention_graph(path, n, m, min_weight, sym, &go, err) : err->status;
        if (!st) printf("%s\n", path);
        free(path);
        free(m);
    }
    if (!st) st = write_json(a, "graph", doc, err);
    cJSON_Delete(doc);
    return st;
}

static int run_graph(int argc, char **argv) {
    analysis_args a;
    analysis_args_init(&a, "graph");
    double min_weight = 0.05;
    int directed = 0;
    for (int i = 1; i < argc; i++) {
        int r = analysis_parse_common(&a, argc, argv, &i);
        if (r < 0) return ATS_EXIT_INPUT;
        if (r) continue;
        if (!strcmp(argv[i], "--min-weight") && i + 1 < argc) {
            if (!ats_cli_parse_double(argv[++i], 0, &min_weight) || min_weight < 0)
                return ats_cli_usage_error("graph", "--min-weight needs a number >= 0");
        } else if (!strcmp(argv[i], "--directed")) {
            directed = 1;
        } else if (!strcmp(argv[i], "--help")) {
            printf(
                "usage: attnscope graph (input) --layer L --head H --out DIR [--min-weight W]"
                " [--directed]\n\nThe head's attention as a weighted graph on a circle, "
                "edges of weight >= W\n(default 0.05). Causal attention is symmetrised, "
                "(A + A^T)/2, as the seed does,\nunless --directed. Writes graph_<k>_L<l>_H<h>.npy "
                "(the [n][n] weights drawn) and\ngraph.json (tokens, edges [i, j, weight]).\n\n%s",
                ANALYSIS_COMMON_USAGE);
            return ATS_EXIT_OK;
        } else {
            return ats_cli_usage_error("graph", "unknown option '%s' (see --help)", argv[i]);
        }
    }
    ats_attention src[ANALYSIS_MAX_INPUTS];
    size_t count;
    ats_error err;
    int rc = prepare(&a, 1, src, &count, &err);
    if (rc) return rc;
    ats_status st = analysis_graph_write(&a, src, count, min_weight, directed, &err);
    for (size_t t = 0; t < count; t++) ats_attention_free(&src[t]);
    return st ? fail(&err) : ATS_EXIT_OK;
}

/* ---- divergence */

ats_status analysis_divergence_write(const analysis_args *a, const ats_attention *src, size_t count,
                                     double eps, int base_e, ats_error *err) {
    ats_status st = ATS_OK;
    cJSON *doc = cJSON_CreateObject(), *inputs = cJSON_AddArrayToObject(doc, "inputs");
    cJSON_AddNumberToObject(doc, "layer", (double)a->layer);
    cJSON_AddNumberToObject(doc, "head", (double)a->head);
    cJSON_AddStringToObject(doc, "base", base_e ? "e" : "2");
    for (size_t t = 0; t < count && !st; t++) {
        const ats_attention *s = &src[t];
        size_t n = s->n;
        double *ent = malloc(n * sizeof *ent), *kl = malloc(n * n * sizeof *kl),
               *js = malloc(n * n * sizeof *js);
        if (!ent || !kl || !js) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        ats_attn v = ats_attention_head(s, (size_t)a->layer, (size_t)a->head);
        ats_measure_opts mo;
        ats_measure_opts_init(&mo);
        mo.base = base_e ? ATS_BASE_E : ATS_BASE_2;
        mo.normalize = 1;
        if (!st) st = ats_entropy_compute(&v, &mo, ent, err);
        if (!st) st = ats_divergence_compute(&v, ATS_DIV_JS, &mo, js, err);
        mo.eps = eps;
        if (!st) st = ats_divergence_compute(&v, ATS_DIV_KL, &mo, kl, err);
        const char *names[3] = {"entropy", "kl", "js"};
        for (int k = 0; k < 3 && !st; k++) {
            char name[64], title[512];
            snprintf(name, sizeof name, "%s_%zu_L%ld_H%ld", names[k], t + 1, a->layer, a->head);
            size_t shape[2] = {n, n};
            st = write_npy(a, name, ATS_F64, k == 0 ? 1 : 2, shape,
                           k == 0   ? ent
                           : k == 1 ? kl
                                    : js,
                           err);
            if (st || k == 0) continue;
            title_for(title, sizeof title, a, s,
                      k == 1 ? "KL divergence" : "Jensen–Shannon divergence", a->layer, a->head);
            ats_heatmap_options ho;
            ats_heatmap_options_init(&ho);
            ho.fig.title = title;
            ho.row_labels = ho.col_labels = (const char *const *)s->labels;
            ho.row_title = "token i";
            ho.col_title = "token j";
            ho.value_title = base_e ? "nats" : "bits";
            char *path = figure_path(a, name, err);
            st = path ? ats_render_heatmap(path, n, n, k == 1 ? kl : js, &ho, err) : err->status;
            if (!st) printf("%s\n", path);
            free(path);
        }
        if (!st) {
            /* entropy as a one-row heatmap over the tokens */
            char name[64], title[512];
            snprintf(name, sizeof name, "entropy_%zu_L%ld_H%ld", t + 1, a->layer, a->head);
            title_for(title, sizeof title, a, s, "entropy of each token's attention", a->layer,
                      a->head);
            ats_heatmap_options ho;
            ats_heatmap_options_init(&ho);
            ho.fig.title = title;
            ho.col_labels = (const char *const *)s->labels;
            ho.value_title = base_e ? "nats" : "bits";
            char *path = figure_path(a, name, err);
            st = path ? ats_render_heatmap(path, 1, n, ent, &ho, err) : err->status;
            if (!st) printf("%s\n", path);
            free(path);
        }
        if (!st) {
            cJSON *in = cJSON_CreateObject();
            cJSON_AddStringToObject(in, "name", s->name);
            cJSON_AddItemToObject(in, "tokens", labels_json(s));
            cJSON_AddItemToObject(in, "entropy", matrix_json(ent, 1, n));
            cJSON_AddItemToObject(in, "kl", matrix_json(kl, n, n));
            cJSON_AddItemToObject(in, "js", matrix_json(js, n, n));
            cJSON_AddItemToArray(inputs, in);
        }
        free(ent);
        free(kl);
        free(js);
    }
    if (!st) st = write_json(a, "divergence", doc, err);
    cJSON_Delete(doc);
    return st;
}

static int run_divergence(int argc, char **argv) {
    analysis_args a;
    analysis_args_init(&a, "divergence");
    double eps = 1e-9;
    int base_e = 0;
    for (int i = 1; i < argc; i++) {
        int r = analysis_parse_common(&a, argc, argv, &i);
        if (r < 0) return ATS_EXIT_INPUT;
        if (r) continue;
        if (!strcmp(argv[i], "--eps") && i + 1 < argc) {
            if (!ats_cli_parse_double(argv[++i], 0, &eps) || eps < 0)
                return ats_cli_usage_error("divergence", "--eps needs a number >= 0");
        } else if (!strcmp(argv[i], "--base") && i + 1 < argc) {
            const char *b = argv[++i];
            if (!strcmp(b, "e"))
                base_e = 1;
            else if (!strcmp(b, "2"))
                base_e = 0;
            else
                return ats_cli_usage_error("divergence", "--base is 2 or e");
        } else if (!strcmp(argv[i], "--help")) {
            printf("usage: attnscope divergence (input) --layer L --head H --out DIR [--eps E]"
                   " [--base 2|e]\n\nEntropy of every token's attention, and the KL (smoothed "
                   "by E, default 1e-9, as the seed)\nand Jensen–Shannon matrices between "
                   "tokens, as heatmaps, NPY and JSON.\n\n%s",
                   ANALYSIS_COMMON_USAGE);
            return ATS_EXIT_OK;
        } else {
            return ats_cli_usage_error("divergence", "unknown option '%s' (see --help)", argv[i]);
        }
    }
    ats_attention src[ANALYSIS_MAX_INPUTS];
    size_t count;
    ats_error err;
    int rc = prepare(&a, 1, src, &count, &err);
    if (rc) return rc;
    ats_status st = analysis_divergence_write(&a, src, count, eps, base_e, &err);
    for (size_t t = 0; t < count; t++) ats_attention_free(&src[t]);
    return st ? fail(&err) : ATS_EXIT_OK;
}

/* ---- topo */

static int parse_list(const char *s, double *out, size_t max, size_t *count) {
    *count = 0;
    while (*s && *count < max) {
        char *e;
        double v = strtod(s, &e);
        if (e == s || !(v >= 0) || isinf(v) || (*e && *e != ',')) return 0;
        out[(*count)++] = v;
        s = *e ? e + 1 : e;
    }
    return *count > 0;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* "" for the first input, "_2", "_3", ... for the others. */
static void input_suffix(char *buf, size_t n, size_t t) {
    if (t == 0)
        buf[0] = '\0';
    else
        snprintf(buf, n, "_%zu", t + 1);
}

/* {"n_points", "threshold", "dims":[{"dim", "pairs", "cycles"?}]}: the format of rips --json */
static cJSON *persistence_json(const ats_rips_result *res, int max_dim) {
    cJSON *d = cJSON_CreateObject();
    cJSON_AddNumberToObject(d, "n_points", (double)res->n_points);
    cJSON_AddItemToObject(d, "threshold", analysis_json_number(res->threshold, 0));
    cJSON *dims = cJSON_AddArrayToObject(d, "dims");
    for (int k = 0; k <= max_dim; k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddNumberToObject(e, "dim", k);
        cJSON_AddItemToObject(e, "pairs", analysis_pairs_json(&res->dims[k]));
        if (k == 1 && res->cycles) {
            cJSON *cyc = cJSON_AddArrayToObject(e, "cycles");
            for (size_t i = 0; i < res->dims[1].count; i++) {
                const ats_representative *rep = &res->cycles[i];
                cJSON *edges = cJSON_CreateArray();
                for (size_t q = 0; q < rep->count; q++) {
                    cJSON *edge = cJSON_CreateArray();
                    cJSON_AddItemToArray(edge, cJSON_CreateNumber(rep->vertices[2 * q]));
                    cJSON_AddItemToArray(edge, cJSON_CreateNumber(rep->vertices[2 * q + 1]));
                    cJSON_AddItemToArray(edge, cJSON_CreateNumber(rep->coefs[q]));
                    cJSON_AddItemToArray(edges, edge);
                }
                cJSON_AddItemToArray(cyc, edges);
            }
        }
        cJSON_AddItemToArray(dims, e);
    }
    return d;
}

void analysis_cycle_vertices(const ats_rips_result *res, size_t i, size_t n, unsigned char *on) {
    const ats_representative *rep = &res->cycles[i];
    memset(on, 0, n);
    for (size_t q = 0; q < 2 * rep->count; q++) on[rep->vertices[q]] = 1;
}

/* The outputs of topo for input t: js.npy, the figures, result.json; a line on stderr. */
ats_status analysis_topo_write(const analysis_args *a, const ats_attention *s,
                               const ats_topo_result *res, size_t t, int max_dim, int seed_compat,
                               ats_error *err) {
    size_t n = s->n;
    char suffix[32], name[96], title[512];
    input_suffix(suffix, sizeof suffix, t);
    snprintf(name, sizeof name, "js%s", suffix);
    size_t shape[2] = {n, n};
    ats_status st = write_npy(a, name, ATS_F64, 2, shape, res->full, err);
    int dims[4] = {0, 1, 2, 3};
    ats_figure_options fo;
    ats_figure_options_init(&fo);
    fo.title = title;
    const char *kinds[3] = {"diagram", "barcode", "skeleton"};
    const char *what[3] = {"persistence diagram", "barcode", "Rips 1-skeleton"};
    for (int k = 0; k < 3 && !st; k++) {
        snprintf(name, sizeof name, "%s%s", kinds[k], suffix);
        title_for(title, sizeof title, a, s, what[k], a->layer, a->head);
        char *path = figure_path(a, name, err);
        if (!path) return err->status;
        if (k == 0)
            st = ats_render_diagram(path, (size_t)max_dim + 1, res->rips.dims, dims, &fo, err);
        else if (k == 1)
            st = ats_render_barcode(path, (size_t)max_dim + 1, res->rips.dims, dims, &fo, err);
        else {
            ats_graph_options go;
            ats_graph_options_init(&go);
            go.fig.title = title;
            go.labels = (const char *const *)s->labels;
            st =
                ats_render_skeleton_grid(path, n, res->lower, res->n_scales, res->scales, &go, err);
        }
        if (!st) printf("%s\n", path);
        free(path);
    }
    if (st) return st;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "tokens", labels_json(s));
    cJSON_AddStringToObject(doc, "input", s->name);
    cJSON_AddNumberToObject(doc, "layer", (double)a->layer);
    cJSON_AddNumberToObject(doc, "head", (double)a->head);
    cJSON_AddStringToObject(doc, "metric",
                            seed_compat ? "seed notebook: sqrt of scipy JS distance (base e) "
                                          "of softmaxed rows"
                                        : "Jensen-Shannon distance, base 2");
    cJSON_AddItemToObject(doc, "diagrams", persistence_json(&res->rips, max_dim));
    cJSON *ct = cJSON_AddArrayToObject(doc, "cycle_tokens");
    for (size_t i = 0; res->rips.cycles && i < res->rips.dims[1].count; i++) {
        /* the distinct tokens on the cycle, in token order */
        cJSON *toks = cJSON_CreateArray();
        unsigned char *on = calloc(n, 1);
        if (on) analysis_cycle_vertices(&res->rips, i, n, on);
        for (size_t v = 0; on && v < n; v++)
            if (on[v]) cJSON_AddItemToArray(toks, cJSON_CreateString(s->labels[v]));
        free(on);
        cJSON_AddItemToArray(ct, toks);
    }
    cJSON *cl = cJSON_AddArrayToObject(doc, "clusters");
    for (size_t q = 0; q < res->n_scales; q++) {
        const int32_t *labels = res->clusters + q * n;
        cJSON *c = cJSON_CreateObject();
        cJSON_AddItemToObject(c, "scale", analysis_json_number(res->scales[q], 0));
        cJSON *groups = cJSON_AddArrayToObject(c, "groups");
        for (size_t g = 0; g < res->n_clusters[q]; g++) {
            cJSON *grp = cJSON_CreateArray();
            for (size_t v = 0; v < n; v++)
                if ((size_t)labels[v] == g)
                    cJSON_AddItemToArray(grp, cJSON_CreateString(s->labels[v]));
            cJSON_AddItemToArray(groups, grp);
        }
        cJSON_AddItemToArray(cl, c);
    }
    cJSON_AddItemToObject(doc, "layout3d", matrix_json(res->layout, n, 3));
    snprintf(name, sizeof name, "result%s", suffix);
    st = write_json(a, name, doc, err);
    cJSON_Delete(doc);
    fprintf(stderr, "%s: %zu tokens;", s->name, n);
    for (int k = 0; k <= max_dim; k++) fprintf(stderr, " H%d: %zu", k, res->rips.dims[k].count);
    fputc('\n', stderr);
    return st;
}

static int run_topo(int argc, char **argv) {
    analysis_args a;
    analysis_args_init(&a, "topo");
    double scales[16], threshold = INFINITY;
    size_t n_scales = 0;
    long max_dim = 2;
    int seed_compat = 0;
    for (int i = 1; i < argc; i++) {
        int r = analysis_parse_common(&a, argc, argv, &i);
        if (r < 0) return ATS_EXIT_INPUT;
        if (r) continue;
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if ((!strcmp(s, "--scale") || !strcmp(s, "--scales")) && v) {
            if (!parse_list(v, scales, 16, &n_scales))
                return ats_cli_usage_error("topo", "%s needs numbers >= 0 like 0.3,0.4", s);
            i++;
        } else if (!strcmp(s, "--dim") && v) {
            if (!ats_cli_parse_long(v, 0, 3, &max_dim))
                return ats_cli_usage_error("topo", "--dim needs 0..3");
            i++;
        } else if (!strcmp(s, "--threshold") && v) {
            if (!ats_cli_parse_double(v, 1, &threshold) || threshold < 0)
                return ats_cli_usage_error("topo", "--threshold needs a number >= 0");
            i++;
        } else if (!strcmp(s, "--seed-compat")) {
            seed_compat = 1;
        } else if (!strcmp(s, "--help")) {
            printf("usage: attnscope topo (input) --layer L --head H --out DIR [--dim K]\n"
                   "       [--scale S | --scales S1,S2,...] [--threshold T] [--seed-compat]\n\n"
                   "The head's tokens as a metric space — the Jensen–Shannon distance (base 2) "
                   "between\ntheir attention distributions — and its Vietoris–Rips persistence "
                   "H0..HK (default 2).\nWrites DIR/result.json ({\"tokens\", \"diagrams\" in the "
                   "format of rips --json with\nH1 cycles, \"cycle_tokens\", \"clusters\" at each "
                   "scale, \"layout3d\"}), DIR/js.npy (the\ndistance matrix), and the diagram, "
                   "barcode and skeleton figures at each scale (default:\nthe 10%%, 25%% and "
                   "50%% quantiles of the distances). Further inputs get _2, _3 ... names.\n"
                   "--seed-compat uses the seed notebook's distance: sqrt of scipy's JS distance "
                   "(base e)\nof softmaxed attention rows.\n\n%s",
                   ANALYSIS_COMMON_USAGE);
            return ATS_EXIT_OK;
        } else {
            return ats_cli_usage_error("topo", "unknown option '%s' (see --help)", s);
        }
    }
    ats_attention src[ANALYSIS_MAX_INPUTS];
    size_t count;
    ats_error err;
    int rc = prepare(&a, 1, src, &count, &err);
    if (rc) return rc;
    ats_topo_options to;
    ats_topo_options_init(&to);
    to.layer = a.layer;
    to.head = a.head;
    to.distance = seed_compat ? ATS_HEAD_SEED : ATS_HEAD_JSD;
    to.max_dim = (int)max_dim;
    to.threshold = threshold;
    to.n_scales = n_scales;
    memcpy(to.scales, scales, n_scales * sizeof *scales);
    /* every input's topology first: a scale outside any input's range is an error before
     * anything is written */
    ats_topo_result res[ANALYSIS_MAX_INPUTS];
    memset(res, 0, sizeof res);
    ats_status st = ATS_OK;
    for (size_t t = 0; t < count && !st; t++) st = ats_topo(&src[t], &to, &res[t], &err);
    for (size_t t = 0; t < count && !st; t++)
        st = analysis_topo_write(&a, &src[t], &res[t], t, (int)max_dim, seed_compat, &err);
    for (size_t t = 0; t < count; t++) {
        ats_topo_result_free(&res[t]);
        ats_attention_free(&src[t]);
    }
    return st ? fail(&err) : ATS_EXIT_OK;
}

/* ---- compare */

/* {"0": v, "1": v, ...} with each v a number (one head) or an [L][H] array. */
static cJSON *per_dim_json(const double *vals, size_t nd, size_t L, size_t H, int all_heads,
                           size_t l0, size_t h0) {
    cJSON *o = cJSON_CreateObject();
    for (size_t d = 0; d < nd; d++) {
        char key[32];
        snprintf(key, sizeof key, "%zu", d);
        if (all_heads)
            cJSON_AddItemToObject(o, key, matrix_json(vals + d * L * H, L, H));
        else {
            double v = vals[(d * L + l0) * H + h0];
            cJSON_AddItemToObject(o, key, analysis_json_number(v, 0));
        }
    }
    return o;
}

static char **index_names(size_t n) {
    char **names = calloc(n ? n : 1, sizeof *names);
    for (size_t i = 0; names && i < n; i++) {
        names[i] = malloc(24);
        if (names[i]) snprintf(names[i], 24, "%zu", i);
    }
    return names;
}

static void free_names(char **names, size_t n) {
    for (size_t i = 0; names && i < n; i++) free(names[i]);
    free(names);
}

/* Both inputs compared: the texts through the session, or the attention files. */
static ats_status compare_inputs(const analysis_args *a, ats_session *s,
                                 const ats_compare_options *co, ats_compare_result *r,
                                 ats_error *err) {
    if (s) return ats_compare(s, a->texts, co, r, err);
    ats_attention src[ANALYSIS_MAX_INPUTS];
    size_t count;
    ats_status st = analysis_load_with(a, NULL, src, &count, err);
    return st ? st : ats_compare_attention(&src[0], &src[1], co, r, err);
}

/* compare's outputs: --json OUT, and with --out DIR bottleneck.npy, wasserstein.npy,
 * compare.json and, for all heads, the heatmaps; one head's distances on stdout. */
ats_status analysis_compare_write(const analysis_args *a, const ats_compare_result *r,
                                  const char *json_out, int all_heads, double q, ats_error *err) {
    const ats_attention *src = r->inputs;
    size_t L = r->L, H = r->H, nd = r->n_dims;
    size_t l0 = all_heads ? 0 : (size_t)a->layer, h0 = all_heads ? 0 : (size_t)a->head;
    const double *bott = r->bottleneck, *wass = r->wasserstein;
    ats_status st = ATS_OK;
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddItemToObject(doc, "bottleneck", per_dim_json(bott, nd, L, H, all_heads, l0, h0));
    cJSON_AddItemToObject(doc, "wasserstein", per_dim_json(wass, nd, L, H, all_heads, l0, h0));
    cJSON_AddItemToObject(doc, "q", analysis_json_number(q, 0));
    if (!all_heads) {
        cJSON_AddNumberToObject(doc, "layer", (double)a->layer);
        cJSON_AddNumberToObject(doc, "head", (double)a->head);
    }
    cJSON_AddItemToObject(doc, "tokens_a", labels_json(&src[0]));
    cJSON_AddItemToObject(doc, "tokens_b", labels_json(&src[1]));
    if (json_out) st = analysis_json_write(json_out, doc, err);
    if (!st && a->out_dir) {
        size_t shape[3] = {nd, L, H};
        st = write_npy(a, "bottleneck", ATS_F64, 3, shape, bott, err);
        if (!st) st = write_npy(a, "wasserstein", ATS_F64, 3, shape, wass, err);
        if (!st) st = write_json(a, "compare", doc, err);
        char **layer_names = index_names(L), **head_names = index_names(H);
        for (size_t d = 0; d < nd && !st && all_heads; d++)
            for (int which = 0; which < 2 && !st; which++) {
                char name[64], title[512];
                snprintf(name, sizeof name, "%s_H%zu", which ? "wasserstein" : "bottleneck", d);
                snprintf(title, sizeof title, "%s%s%s distance of H%zu diagrams, %s vs %s",
                         a->title ? a->title : "", a->title ? ": " : "",
                         which ? "Wasserstein" : "bottleneck", d, src[0].name, src[1].name);
                ats_heatmap_options ho;
                ats_heatmap_options_init(&ho);
                ho.fig.title = title;
                ho.row_title = "layer";
                ho.col_title = "head";
                ho.row_labels = (const char *const *)layer_names;
                ho.col_labels = (const char *const *)head_names;
                ho.value_title = which ? "W" : "d_B";
                char *path = figure_path(a, name, err);
                st = path ? ats_render_heatmap(path, L, H, (which ? wass : bott) + d * L * H, &ho,
                                               err)
                          : err->status;
                if (!st) printf("%s\n", path);
                free(path);
            }
        free_names(layer_names, L);
        free_names(head_names, H);
    }
    if (!st && !all_heads)
        for (size_t d = 0; d < nd; d++)
            printf("H%zu bottleneck %.17g wasserstein %.17g\n", d, bott[(d * L + l0) * H + h0],
                   wass[(d * L + l0) * H + h0]);
    cJSON_Delete(doc);
    return st;
}

static int run_compare(int argc, char **argv) {
    analysis_args a;
    analysis_args_init(&a, "compare");
    long max_dim = 1;
    double q = 1.0;
    int all_heads = 0, seed_compat = 0;
    long repeat = 0;
    const char *json_out = NULL;
    for (int i = 1; i < argc; i++) {
        int r = analysis_parse_common(&a, argc, argv, &i);
        if (r < 0) return ATS_EXIT_INPUT;
        if (r) continue;
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--dim") && v) {
            if (!ats_cli_parse_long(v, 0, 2, &max_dim))
                return ats_cli_usage_error("compare", "--dim needs 0..2");
            i++;
        } else if (!strcmp(s, "--q") && v) {
            if (!ats_cli_parse_double(v, 0, &q) || q < 1)
                return ats_cli_usage_error("compare", "--q needs a number >= 1");
            i++;
        } else if (!strcmp(s, "--json") && v) {
            json_out = v;
            i++;
        } else if (!strcmp(s, "--repeat") && v) {
            if (!ats_cli_parse_long(v, 1, 100000, &repeat))
                return ats_cli_usage_error("compare", "--repeat needs an integer >= 1");
            i++;
        } else if (!strcmp(s, "--all-heads")) {
            all_heads = 1;
        } else if (!strcmp(s, "--seed-compat")) {
            seed_compat = 1;
        } else if (!strcmp(s, "--help")) {
            printf("usage: attnscope compare (two inputs) (--layer L --head H | --all-heads)\n"
                   "       [--json OUT] [--out DIR] [--dim K] [--q Q] [--seed-compat]\n\n"
                   "Bottleneck and q-Wasserstein (internal L-inf, default q = 1) distances "
                   "between the\npersistence diagrams H0..HK (default K = 1) of the two texts' "
                   "Jensen–Shannon token\nmetrics. --json OUT writes {\"bottleneck\":{\"0\":x,"
                   "\"1\":y},\"wasserstein\":{...}}, each value\nan [L][H] array with --all-heads. "
                   "--out DIR also writes bottleneck.npy / wasserstein.npy\n([K+1][L][H]) and, "
                   "for all heads, an L x H heatmap per measure and dimension.\n--repeat N times "
                   "N runs of the whole pipeline (tokens, model, metric, persistence,\n"
                   "distances) with the model loaded once, and prints the median.\n\n%s",
                   ANALYSIS_COMMON_USAGE);
            return ATS_EXIT_OK;
        } else {
            return ats_cli_usage_error("compare", "unknown option '%s' (see --help)", s);
        }
    }
    if (all_heads && !a.out_dir && !json_out)
        return ats_cli_usage_error("compare", "--all-heads needs --json OUT or --out DIR");
    analysis_args check = a;
    if (!check.out_dir) check.out_dir = "."; /* --out is optional here */
    int rc = analysis_check(&check, 0);
    if (rc) return rc;
    if (a.n_texts + a.n_attention != 2)
        return ats_cli_usage_error("compare",
                                   "needs exactly two inputs (two --text or two --attention)");
    if (all_heads == (a.layer >= 0) || (a.layer >= 0) != (a.head >= 0))
        return ats_cli_usage_error("compare", "choose --layer L --head H, or --all-heads");
    ats_compare_options co;
    ats_compare_options_init(&co);
    co.all_heads = all_heads;
    co.layer = a.layer;
    co.head = a.head;
    co.seed_compat = seed_compat;
    co.max_dim = (int)max_dim;
    co.q = q;
    co.n_threads = a.threads;
    co.truncate = a.truncate;
    ats_error err;
    ats_error_clear(&err);
    ats_session *session;
    if (analysis_session_open(&a, &session, &err)) return fail(&err);
    ats_compare_result r;
    if (repeat > 0) {
        /* the pipeline as a live session runs it: model in memory, everything else per run */
        double *ms = malloc((size_t)repeat * sizeof *ms);
        for (long k = 0; ms && k < repeat; k++) {
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            ats_status rs = compare_inputs(&a, session, &co, &r, &err);
            clock_gettime(CLOCK_MONOTONIC, &t1);
            ats_compare_result_free(&r);
            if (rs) {
                free(ms);
                ats_session_close(session);
                return fail(&err);
            }
            ms[k] = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
        }
        if (ms) {
            qsort(ms, (size_t)repeat, sizeof *ms, cmp_double);
            fprintf(stderr, "compare: median %.3f ms over %ld runs (model loaded once)\n",
                    ms[repeat / 2], repeat);
        }
        free(ms);
    }
    ats_status st = compare_inputs(&a, session, &co, &r, &err);
    ats_session_close(session);
    if (st) return fail(&err);
    st = analysis_compare_write(&a, &r, json_out, all_heads, q, &err);
    ats_compare_result_free(&r);
    return st ? fail(&err) : ATS_EXIT_OK;
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
int ats_cmd_topo(int argc, char **argv) {
    return run_topo(argc, argv);
}
int ats_cmd_compare(int argc, char **argv) {
    return run_compare(argc, argv);
}
