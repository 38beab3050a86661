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
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
        st = analysis_write_npy(a, name, ATS_F32, 4, shape, s->att, err);
        if (st) break;
        cJSON *in = cJSON_CreateObject();
        cJSON_AddStringToObject(in, "name", s->name);
        cJSON_AddItemToObject(in, "tokens", analysis_labels_json(s));
        cJSON_AddItemToArray(inputs, in);
        char *path = analysis_figure_path(
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
            analysis_title(title, sizeof title, a, s, "attention", a->layer, a->head);
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
    }
    if (!st) st = analysis_write_json(a, "attend", doc, err);
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
    int rc = analysis_prepare(&a, 0, src, &count, &err);
    if (rc) return rc;
    ats_status st = analysis_attend_write(&a, src, count, &err);
    for (size_t t = 0; t < count; t++) ats_attention_free(&src[t]);
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
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
        size_t n = s->n, hl, hh;
        analysis_held(a, &hl, &hh);
        double *m = attn_head(s, hl, hh);
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
        st = analysis_write_npy(a, name, ATS_F64, 2, shape, m, err);
        if (!st) { /* the edges the figure has, as the renderer chooses them */
            cJSON *in = cJSON_CreateObject(), *edges = cJSON_CreateArray();
            cJSON_AddStringToObject(in, "name", s->name);
            cJSON_AddItemToObject(in, "tokens", analysis_labels_json(s));
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
        analysis_title(title, sizeof title, a, s, "attention graph", a->layer, a->head);
        char *path = st ? NULL : analysis_figure_path(a, name, err);
        ats_graph_options go;
        ats_graph_options_init(&go);
        go.fig.title = title;
        go.labels = (const char *const *)s->labels;
        st = path ? ats_render_attention_graph(path, n, m, min_weight, sym, &go, err) : err->status;
        if (!st) printf("%s\n", path);
        free(path);
        free(m);
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
    int rc = analysis_prepare(&a, 1, src, &count, &err);
    if (rc) return rc;
    ats_status st = analysis_graph_write(&a, src, count, min_weight, directed, &err);
    for (size_t t = 0; t < count; t++) ats_attention_free(&src[t]);
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
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
        size_t hl, hh;
        analysis_held(a, &hl, &hh);
        ats_attn v = ats_attention_head(s, hl, hh);
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
            st = analysis_write_npy(a, name, ATS_F64, k == 0 ? 1 : 2, shape,
                                    k == 0   ? ent
                                    : k == 1 ? kl
                                             : js,
                                    err);
            if (st || k == 0) continue;
            analysis_title(title, sizeof title, a, s,
                           k == 1 ? "KL divergence" : "Jensen–Shannon divergence", a->layer,
                           a->head);
            ats_heatmap_options ho;
            ats_heatmap_options_init(&ho);
            ho.fig.title = title;
            ho.row_labels = ho.col_labels = (const char *const *)s->labels;
            ho.row_title = "token i";
            ho.col_title = "token j";
            ho.value_title = base_e ? "nats" : "bits";
            char *path = analysis_figure_path(a, name, err);
            st = path ? ats_render_heatmap(path, n, n, k == 1 ? kl : js, &ho, err) : err->status;
            if (!st) printf("%s\n", path);
            free(path);
        }
        if (!st) {
            /* entropy as a one-row heatmap over the tokens */
            char name[64], title[512];
            snprintf(name, sizeof name, "entropy_%zu_L%ld_H%ld", t + 1, a->layer, a->head);
            analysis_title(title, sizeof title, a, s, "entropy of each token's attention", a->layer,
                           a->head);
            ats_heatmap_options ho;
            ats_heatmap_options_init(&ho);
            ho.fig.title = title;
            ho.col_labels = (const char *const *)s->labels;
            ho.value_title = base_e ? "nats" : "bits";
            char *path = analysis_figure_path(a, name, err);
            st = path ? ats_render_heatmap(path, 1, n, ent, &ho, err) : err->status;
            if (!st) printf("%s\n", path);
            free(path);
        }
        if (!st) {
            cJSON *in = cJSON_CreateObject();
            cJSON_AddStringToObject(in, "name", s->name);
            cJSON_AddItemToObject(in, "tokens", analysis_labels_json(s));
            cJSON_AddItemToObject(in, "entropy", analysis_matrix_json(ent, 1, n));
            cJSON_AddItemToObject(in, "kl", analysis_matrix_json(kl, n, n));
            cJSON_AddItemToObject(in, "js", analysis_matrix_json(js, n, n));
            cJSON_AddItemToArray(inputs, in);
        }
        free(ent);
        free(kl);
        free(js);
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
    int rc = analysis_prepare(&a, 1, src, &count, &err);
    if (rc) return rc;
    ats_status st = analysis_divergence_write(&a, src, count, eps, base_e, &err);
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
