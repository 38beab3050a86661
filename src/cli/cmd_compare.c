/* attnscope compare: two inputs compared head by head (ats_compare): bottleneck and Wasserstein
 * distances between their diagrams, as JSON, NPY and heatmaps. */
#include "analysis.h"
#include "cli.h"
#include "progress.h"
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

/* ---- compare */

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* {"0": v, "1": v, ...} with each v a number (one head) or an [L][H] array. */
static cJSON *per_dim_json(const double *vals, size_t nd, size_t L, size_t H, int all_heads,
                           size_t l0, size_t h0) {
    cJSON *o = cJSON_CreateObject();
    for (size_t d = 0; d < nd; d++) {
        char key[32];
        snprintf(key, sizeof key, "%zu", d);
        if (all_heads)
            cJSON_AddItemToObject(o, key, analysis_matrix_json(vals + d * L * H, L, H));
        else {
            double v = vals[(d * L + l0) * H + h0];
            cJSON_AddItemToObject(o, key, analysis_json_number(v, 0));
        }
    }
    return o;
}

/* --out DIR's bottleneck.npy and wasserstein.npy ([nd][rows][cols]) and compare.json, for two
 * texts (rows x cols = L x H) and for two models (heads of A x heads of B). */
static ats_status distances_write(const analysis_args *a, cJSON *doc, size_t nd, size_t rows,
                                  size_t cols, const double *bott, const double *wass,
                                  ats_error *err) {
    size_t shape[3] = {nd, rows, cols};
    ats_status st = analysis_write_npy(a, "bottleneck", ATS_F64, 3, shape, bott, err);
    if (!st) st = analysis_write_npy(a, "wasserstein", ATS_F64, 3, shape, wass, err);
    if (!st) st = analysis_write_json(a, "compare", doc, err);
    return st;
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
    cJSON_AddItemToObject(doc, "tokens_a", analysis_labels_json(&src[0]));
    cJSON_AddItemToObject(doc, "tokens_b", analysis_labels_json(&src[1]));
    if (json_out) st = analysis_json_write(json_out, doc, err);
    if (!st && a->out_dir) {
        st = distances_write(a, doc, nd, L, H, bott, wass, err);
        for (size_t d = 0; d < nd && !st && all_heads; d++)
            for (int which = 0; which < 2 && !st; which++) {
                char name[64], title[512];
                snprintf(name, sizeof name, "%s_H%zu", which ? "wasserstein" : "bottleneck", d);
                snprintf(title, sizeof title, "%s%s%s distance of H%zu diagrams, %s vs %s",
                         a->title ? a->title : "", a->title ? ": " : "",
                         which ? "Wasserstein" : "bottleneck", d, src[0].name, src[1].name);
                st = analysis_heads_heatmap(a, name, title, which ? "W" : "d_B", L, H,
                                            (which ? wass : bott) + d * L * H, err);
            }
    }
    if (!st && !all_heads)
        for (size_t d = 0; d < nd; d++)
            printf("H%zu bottleneck %.17g wasserstein %.17g\n", d, bott[(d * L + l0) * H + h0],
                   wass[(d * L + l0) * H + h0]);
    cJSON_Delete(doc);
    return st;
}

/* ---- compare --model A --model B: every head of A against every head of B */

/* {"0": v, ...} with v the [rows][cols] matrix, or the one pair's number. */
static cJSON *models_dim_json(const double *vals, size_t nd, size_t rows, size_t cols, long one) {
    cJSON *o = cJSON_CreateObject();
    for (size_t d = 0; d < nd; d++) {
        char key[32];
        snprintf(key, sizeof key, "%zu", d);
        cJSON_AddItemToObject(o, key,
                              one >= 0
                                  ? analysis_json_number(vals[d * rows * cols + (size_t)one], 0)
                                  : analysis_matrix_json(vals + d * rows * cols, rows, cols));
    }
    return o;
}

/* "L0 H0", "L0 H1", ...: the heads of an L x H model, layer-major. */
static char **head_labels(size_t L, size_t H) {
    char **lab = calloc(L * H + 1, sizeof *lab);
    for (size_t i = 0; lab && i < L * H; i++) {
        char buf[48];
        snprintf(buf, sizeof buf, "L%zu H%zu", i / H, i % H);
        lab[i] = strdup(buf);
    }
    return lab;
}

/* DIR/name.<format>: the heads-by-heads heatmap of one measure and dimension. */
static ats_status models_heatmap(const analysis_args *a, const char *const *names, const char *name,
                                 const char *title, const char *value_title,
                                 const ats_compare_models_result *r, const double *v,
                                 ats_error *err) {
    size_t rows = r->L[0] * r->H[0], cols = r->L[1] * r->H[1];
    char **rl = head_labels(r->L[0], r->H[0]), **cl = head_labels(r->L[1], r->H[1]);
    char rt[300], ct[300];
    snprintf(rt, sizeof rt, "%s head", names[0]);
    snprintf(ct, sizeof ct, "%s head", names[1]);
    ats_heatmap_options ho;
    ats_heatmap_options_init(&ho);
    ho.fig.title = title;
    ho.row_labels = (const char *const *)rl;
    ho.col_labels = (const char *const *)cl;
    ho.row_title = rt;
    ho.col_title = ct;
    ho.value_title = value_title;
    char *path = rl && cl ? analysis_figure_path(a, name, err) : NULL;
    ats_status st = !rl || !cl ? ats_error_set(err, ATS_ERR_NOMEM, "out of memory")
                    : path     ? ats_render_heatmap(path, rows, cols, v, &ho, err)
                               : err->status;
    if (!st) printf("%s\n", path);
    free(path);
    for (size_t i = 0; rl && i < rows; i++) free(rl[i]);
    for (size_t i = 0; cl && i < cols; i++) free(cl[i]);
    free(rl);
    free(cl);
    return st;
}

/* The last part of a model path, for titles ("bert" rather than a whole path). */
static const char *model_short(const char *m) {
    size_t n = strlen(m);
    while (n > 1 && m[n - 1] == '/') n--;
    const char *s = m + n;
    while (s > m && s[-1] != '/') s--;
    static char buf[2][256];
    static int k;
    k ^= 1;
    snprintf(buf[k], sizeof buf[k], "%.*s", (int)(m + n - s), s);
    return buf[k];
}

/* compare --model A --model B's outputs: --json OUT, and with --out DIR bottleneck.npy,
 * wasserstein.npy ([K+1][L_A·H_A][L_B·H_B]), compare.json and, for all heads, a heatmap per
 * measure and dimension; one head's distances on stdout. */
static ats_status compare_models_write(const analysis_args *a, const char *const models[2],
                                       const char *const dirs[2],
                                       const ats_compare_models_result *r, const char *json_out,
                                       int all_heads, double q, ats_error *err) {
    size_t rows = r->L[0] * r->H[0], cols = r->L[1] * r->H[1], nd = r->n_dims;
    long one = all_heads ? -1
                         : (long)(((size_t)a->layer * r->H[0] + (size_t)a->head) * cols +
                                  (size_t)a->layer * r->H[1] + (size_t)a->head);
    const char *names[2] = {model_short(models[0]), model_short(models[1])};
    ats_status st = ATS_OK;
    cJSON *doc = cJSON_CreateObject(), *ms = cJSON_AddArrayToObject(doc, "models");
    for (int t = 0; t < 2; t++) {
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "model", dirs[t]);
        cJSON_AddNumberToObject(m, "layers", (double)r->L[t]);
        cJSON_AddNumberToObject(m, "heads", (double)r->H[t]);
        cJSON_AddItemToArray(ms, m);
    }
    cJSON_AddItemToObject(doc, "bottleneck", models_dim_json(r->bottleneck, nd, rows, cols, one));
    cJSON_AddItemToObject(doc, "wasserstein", models_dim_json(r->wasserstein, nd, rows, cols, one));
    cJSON_AddItemToObject(doc, "q", analysis_json_number(q, 0));
    if (!all_heads) {
        cJSON_AddNumberToObject(doc, "layer", (double)a->layer);
        cJSON_AddNumberToObject(doc, "head", (double)a->head);
    }
    cJSON_AddItemToObject(doc, "tokens_a", analysis_labels_json(&r->inputs[0]));
    cJSON_AddItemToObject(doc, "tokens_b", analysis_labels_json(&r->inputs[1]));
    if (json_out) st = analysis_json_write(json_out, doc, err);
    if (!st && a->out_dir) {
        st = distances_write(a, doc, nd, rows, cols, r->bottleneck, r->wasserstein, err);
        for (size_t d = 0; d < nd && !st && all_heads; d++)
            for (int which = 0; which < 2 && !st; which++) {
                char name[64], title[1024];
                snprintf(name, sizeof name, "%s_H%zu", which ? "wasserstein" : "bottleneck", d);
                snprintf(title, sizeof title, "%s%s%s distance of H%zu diagrams, %s vs %s heads",
                         a->title ? a->title : "", a->title ? ": " : "",
                         which ? "Wasserstein" : "bottleneck", d, names[0], names[1]);
                st =
                    models_heatmap(a, names, name, title, which ? "W" : "d_B", r,
                                   (which ? r->wasserstein : r->bottleneck) + d * rows * cols, err);
            }
    }
    if (!st && !all_heads)
        for (size_t d = 0; d < nd; d++)
            printf("H%zu bottleneck %.17g wasserstein %.17g\n", d,
                   r->bottleneck[d * rows * cols + (size_t)one],
                   r->wasserstein[d * rows * cols + (size_t)one]);
    cJSON_Delete(doc);
    return st;
}

/* compare with two --model: checks, both sessions, ats_compare_models, the outputs. */
static int run_compare_models(const analysis_args *a, const char *const *models, size_t n_models,
                              ats_compare_options *co, const char *json_out, long repeat) {
    if (n_models > 2) return ats_cli_usage_error("compare", "at most two --model");
    if (a->n_attention)
        return ats_cli_usage_error("compare", "two --model compare the models on a text: give "
                                              "--text T, not --attention");
    if (!a->n_texts || a->n_texts > 2)
        return ats_cli_usage_error("compare", "two --model need --text T (run by both) or two "
                                              "--text (the first for model A, the second for B)");
    if (repeat) return ats_cli_usage_error("compare", "--repeat takes one model");
    if ((a->layer >= 0) != (a->head >= 0))
        return ats_cli_usage_error("compare", "give both --layer L and --head H, or neither");
    co->all_heads = a->layer < 0;
    co->layer = a->layer;
    co->head = a->head;
    if (co->all_heads && !a->out_dir && !json_out)
        return ats_cli_usage_error("compare", "all heads need --json OUT or --out DIR");
    analysis_args check = *a;
    if (!check.out_dir) check.out_dir = ".";
    int rc = analysis_check(&check, 0);
    if (rc) return rc;
    ats_error err;
    ats_error_clear(&err);
    ats_session *s[2] = {NULL, NULL};
    for (int t = 0; t < 2; t++) {
        analysis_args one = *a;
        one.model = models[t];
        if (analysis_session_open(&one, &s[t], &err)) {
            ats_session_close(s[0]);
            return ats_cli_fail(&err);
        }
    }
    const char *texts[2] = {a->texts[0], a->texts[a->n_texts - 1]};
    ats_compare_models_result r;
    ats_status st = ats_compare_models(s[0], s[1], texts, co, &r, &err);
    const char *dirs[2] = {ats_model_info_get(ats_session_model(s[0]))->dir,
                           ats_model_info_get(ats_session_model(s[1]))->dir};
    if (!st) st = compare_models_write(a, models, dirs, &r, json_out, co->all_heads, co->q, &err);
    ats_compare_models_result_free(&r);
    ats_session_close(s[0]);
    ats_session_close(s[1]);
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}

static int run_compare(int argc, char **argv) {
    analysis_args a;
    analysis_args_init(&a, "compare");
    long max_dim = 1;
    double q = 1.0;
    int all_heads = 0, seed_compat = 0, progress = 0;
    long repeat = 0;
    const char *json_out = NULL;
    const char *models[3];
    size_t n_models = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc && n_models < 3)
            models[n_models++] = argv[i + 1]; /* two: the models compared (run_compare_models) */
        int r = analysis_parse_common(&a, argc, argv, &i);
        if (r < 0) return ATS_EXIT_INPUT;
        if (r) continue;
        if ((r = analysis_parse_seed("compare", argc, argv, &i, &seed_compat)) < 0)
            return ATS_EXIT_INPUT;
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
        } else if (!strcmp(s, "--progress")) {
            progress = 1;
        } else if (!strcmp(s, "--help")) {
            printf(
                "usage: attnscope compare (two inputs) (--layer L --head H | --all-heads)\n"
                "       [--json OUT] [--out DIR] [--dim K] [--q Q] [--seed-compat]\n"
                "       [--seed-distance sqrt-jsd|jsd] [--progress]\n"
                "       attnscope compare --model A --model B --text T [--text T2]\n"
                "       [--layer L --head H] [--json OUT] [--out DIR] [--dim K] [--q Q]\n\n"
                "Bottleneck and q-Wasserstein (internal L-inf, default q = 1) distances "
                "between the\npersistence diagrams H0..HK (default K = 1) of the two texts' "
                "Jensen–Shannon token\nmetrics. --json OUT writes {\"bottleneck\":{\"0\":x,"
                "\"1\":y},\"wasserstein\":{...}}, each value\nan [L][H] array with --all-heads. "
                "--out DIR also writes bottleneck.npy / wasserstein.npy\n([K+1][L][H]) and, "
                "for all heads, an L x H heatmap per measure and dimension.\n--repeat N times "
                "N runs of the whole pipeline (tokens, model, metric, persistence,\n"
                "distances) with the model loaded once, and prints the median.\n"
                "--progress prints the progress line (persistence, distances) on stderr even "
                "off a\nterminal.\n\n"
                "Two models: T runs through both (or T through A, T2 through B) and every "
                "head of A is\ncompared with every head of B (the models may differ in "
                "layers, heads and tokenizer:\ndiagrams compare whatever the tokens). Head i "
                "= layer * H + head. --json OUT writes\n{\"models\":[{\"model\",\"layers\","
                "\"heads\"},...],\"bottleneck\":{\"0\":[[...]],...},\"wasserstein\":"
                "{...}}, each value\nan [L_A*H_A][L_B*H_B] matrix; --out DIR also writes "
                "bottleneck.npy / wasserstein.npy\n([K+1][L_A*H_A][L_B*H_B]) and a heads x heads "
                "heatmap per measure and dimension.\n--layer L --head H compares that one head "
                "of each model (both must have it): numbers\nin the JSON and on stdout.\n\n%s%s",
                ANALYSIS_SEED_USAGE, ANALYSIS_COMMON_USAGE);
            return ATS_EXIT_OK;
        } else {
            return ats_cli_usage_error("compare", "unknown option '%s' (see --help)", s);
        }
    }
    ats_compare_options co;
    ats_compare_options_init(&co);
    co.seed_compat = seed_compat;
    co.max_dim = (int)max_dim;
    co.q = q;
    co.n_threads = a.threads;
    co.truncate = a.truncate;
    cli_progress pg;
    if (n_models > 1) {
        if (all_heads && a.layer >= 0)
            return ats_cli_usage_error("compare", "choose --layer L --head H, or --all-heads");
        cli_progress_attach(&pg, "compare", progress, &co.progress, &co.progress_ctx);
        int rc = run_compare_models(&a, models, n_models, &co, json_out, repeat);
        cli_progress_finish(&pg);
        return rc;
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
    co.all_heads = all_heads;
    co.layer = a.layer;
    co.head = a.head;
    ats_error err;
    ats_error_clear(&err);
    ats_session *session;
    if (analysis_session_open(&a, &session, &err)) return ats_cli_fail(&err);
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
                return ats_cli_fail(&err);
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
    cli_progress_attach(&pg, "compare", progress, &co.progress, &co.progress_ctx);
    ats_status st = compare_inputs(&a, session, &co, &r, &err);
    cli_progress_finish(&pg);
    ats_session_close(session);
    if (st) return ats_cli_fail(&err);
    st = analysis_compare_write(&a, &r, json_out, all_heads, q, &err);
    ats_compare_result_free(&r);
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}

int ats_cmd_compare(int argc, char **argv) {
    return run_compare(argc, argv);
}
