/* attnscope topo: one head's token topology (ats_topo) as figures, JSON and NPY in --out DIR. */
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
    ats_status st = analysis_write_npy(a, name, ATS_F64, 2, shape, res->full, err);
    int dims[4] = {0, 1, 2, 3};
    ats_figure_options fo;
    ats_figure_options_init(&fo);
    fo.title = title;
    const char *kinds[3] = {"diagram", "barcode", "skeleton"};
    const char *what[3] = {"persistence diagram", "barcode", "Rips 1-skeleton"};
    for (int k = 0; k < 3 && !st; k++) {
        snprintf(name, sizeof name, "%s%s", kinds[k], suffix);
        analysis_title(title, sizeof title, a, s, what[k], a->layer, a->head);
        char *path = analysis_figure_path(a, name, err);
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
    cJSON_AddItemToObject(doc, "tokens", analysis_labels_json(s));
    cJSON_AddStringToObject(doc, "input", s->name);
    cJSON_AddNumberToObject(doc, "layer", (double)a->layer);
    cJSON_AddNumberToObject(doc, "head", (double)a->head);
    cJSON_AddStringToObject(
        doc, "metric",
        seed_compat == ATS_SEED_SQRT_JSD ? "seed notebook: sqrt of scipy JS distance (base e) "
                                           "of softmaxed rows"
        : seed_compat == ATS_SEED_JSD    ? "seed notebook, first distance cell: scipy JS distance "
                                           "(base e) of softmaxed rows"
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
    cJSON_AddItemToObject(doc, "layout3d", analysis_matrix_json(res->layout, n, 3));
    snprintf(name, sizeof name, "result%s", suffix);
    st = analysis_write_json(a, name, doc, err);
    cJSON_Delete(doc);
    fprintf(stderr, "%s: %zu tokens;", s->name, n);
    for (int k = 0; k <= max_dim; k++) fprintf(stderr, " H%d: %zu", k, res->rips.dims[k].count);
    fputc('\n', stderr);
    return st;
}

static int run_topo(int argc, char **argv) {
    analysis_args a;
    analysis_args_init(&a, "topo");
    a.one_head = 1; /* one head: a long input holds that head alone */
    double scales[16], threshold = INFINITY;
    size_t n_scales = 0;
    long max_dim = 2;
    int seed_compat = 0;
    for (int i = 1; i < argc; i++) {
        int r = analysis_parse_common(&a, argc, argv, &i);
        if (r < 0) return ATS_EXIT_INPUT;
        if (r) continue;
        if ((r = analysis_parse_seed("topo", argc, argv, &i, &seed_compat)) < 0)
            return ATS_EXIT_INPUT;
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
        } else if (!strcmp(s, "--help")) {
            printf("usage: attnscope topo (input) --layer L --head H --out DIR [--dim K]\n"
                   "       [--scale S | --scales S1,S2,...] [--threshold T] [--seed-compat]\n"
                   "       [--seed-distance sqrt-jsd|jsd]\n\n"
                   "The head's tokens as a metric space — the Jensen–Shannon distance (base 2) "
                   "between\ntheir attention distributions — and its Vietoris–Rips persistence "
                   "H0..HK (default 2).\nWrites DIR/result.json ({\"tokens\", \"diagrams\" in the "
                   "format of rips --json with\nH1 cycles, \"cycle_tokens\", \"clusters\" at each "
                   "scale, \"layout3d\"}), DIR/js.npy (the\ndistance matrix), and the diagram, "
                   "barcode and skeleton figures at each scale (default:\nthe 10%%, 25%% and "
                   "50%% quantiles of the distances). Further inputs get _2, _3 ... names.\n"
                   "\n%s%s",
                   ANALYSIS_SEED_USAGE, ANALYSIS_COMMON_USAGE);
            return ATS_EXIT_OK;
        } else {
            return ats_cli_usage_error("topo", "unknown option '%s' (see --help)", s);
        }
    }
    ats_attention src[ANALYSIS_MAX_INPUTS];
    size_t count;
    ats_error err;
    int rc = analysis_prepare(&a, 1, src, &count, &err);
    if (rc) return rc;
    ats_topo_options to;
    ats_topo_options_init(&to);
    analysis_held(&a, &to.layer, &to.head);
    to.distance = seed_compat == ATS_SEED_SQRT_JSD ? ATS_HEAD_SEED
                  : seed_compat == ATS_SEED_JSD    ? ATS_HEAD_SEED_JSD
                                                   : ATS_HEAD_JSD;
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
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}

int ats_cmd_topo(int argc, char **argv) {
    return run_topo(argc, argv);
}
