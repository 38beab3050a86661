/* attnscope compare: two inputs compared head by head (ats_compare): bottleneck and Wasserstein
 * distances between their diagrams, as JSON, NPY and heatmaps. */
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
        size_t shape[3] = {nd, L, H};
        st = analysis_write_npy(a, "bottleneck", ATS_F64, 3, shape, bott, err);
        if (!st) st = analysis_write_npy(a, "wasserstein", ATS_F64, 3, shape, wass, err);
        if (!st) st = analysis_write_json(a, "compare", doc, err);
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
    ats_status st = compare_inputs(&a, session, &co, &r, &err);
    ats_session_close(session);
    if (st) return ats_cli_fail(&err);
    st = analysis_compare_write(&a, &r, json_out, all_heads, q, &err);
    ats_compare_result_free(&r);
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}

int ats_cmd_compare(int argc, char **argv) {
    return run_compare(argc, argv);
}
