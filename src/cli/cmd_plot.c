/* attnscope plot: figures of diagrams, barcodes and matrices from files. */
#include "cli.h"
#include "attnscope/render.h"
#include "attnscope/rips.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: attnscope plot diagram|barcode FILE --out FIG [--dims 0,1,2] [--title T]\n"
    "       attnscope plot heatmap M.npy --out FIG [--labels F | --row-labels F --col-labels F]\n"
    "                              [--layer L --head H] [--vmin A --vmax B] [--title T]\n"
    "       attnscope plot skeleton D.npy --out FIG (--scale S | --scales S1,S2,...) [--labels F]\n"
    "       attnscope plot graph A.npy --out FIG [--min-weight W] [--symmetrize] [--labels F]\n"
    "                              [--layer L --head H]\n"
    "\n"
    "FIG is .png, .svg or .pdf. Diagram files: attnscope JSON (all dimensions), Ripser's text\n"
    "output, DIPHA, or plain `birth death` pairs (one diagram; --dims names its dimension).\n"
    "A heatmap .npy is [n][m], or [L][H][n][m] for a grid of every head (or one head with\n"
    "--layer/--head). skeleton: the Rips 1-skeleton of the distance matrix D ([n][n]) at each\n"
    "scale, tokens coloured by H0 cluster. graph: attention A ([n][n] or [L][H][n][n]) as a graph\n"
    "on a circle, edges of weight >= W (default 0.05). Label files hold one label per line\n"
    "(UTF-8, any script).\n";

typedef struct plot_args {
    const char *kind, *file, *out, *title, *labels, *row_labels, *col_labels, *dims, *scales;
    long layer, head;
    double vmin, vmax, min_weight;
    int symmetrize;
} plot_args;

static int parse(int argc, char **argv, plot_args *a) {
    memset(a, 0, sizeof *a);
    a->layer = a->head = -1;
    a->min_weight = 0.05;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        const char **slot = NULL;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            fputs(USAGE, stdout);
            exit(ATS_EXIT_OK);
        } else if (!strcmp(s, "--out"))
            slot = &a->out;
        else if (!strcmp(s, "--title"))
            slot = &a->title;
        else if (!strcmp(s, "--labels"))
            slot = &a->labels;
        else if (!strcmp(s, "--row-labels"))
            slot = &a->row_labels;
        else if (!strcmp(s, "--col-labels"))
            slot = &a->col_labels;
        else if (!strcmp(s, "--dims"))
            slot = &a->dims;
        else if (!strcmp(s, "--scales") || !strcmp(s, "--scale"))
            slot = &a->scales;
        else if (!strcmp(s, "--symmetrize")) {
            a->symmetrize = 1;
            continue;
        } else if (!strcmp(s, "--min-weight")) {
            if (!ats_cli_parse_double(v, 0, &a->min_weight) || a->min_weight < 0)
                return ats_cli_usage_error("plot", "--min-weight needs a number >= 0");
            i++;
            continue;
        } else if (!strcmp(s, "--layer") || !strcmp(s, "--head")) {
            long x;
            if (!ats_cli_parse_long(v, 0, 1 << 20, &x))
                return ats_cli_usage_error("plot", "%s needs an integer >= 0", s);
            *(!strcmp(s, "--layer") ? &a->layer : &a->head) = x;
            i++;
            continue;
        } else if (!strcmp(s, "--vmin") || !strcmp(s, "--vmax")) {
            double x;
            if (!ats_cli_parse_double(v, 0, &x))
                return ats_cli_usage_error("plot", "%s needs a number", s);
            *(!strcmp(s, "--vmin") ? &a->vmin : &a->vmax) = x;
            i++;
            continue;
        } else if (s[0] == '-' && s[1] == '-') {
            return ats_cli_usage_error("plot", "unknown option '%s' (see --help)", s);
        } else if (!a->kind) {
            a->kind = s;
            continue;
        } else if (!a->file) {
            a->file = s;
            continue;
        } else {
            return ats_cli_usage_error("plot", "unexpected argument '%s'", s);
        }
        if (!v) return ats_cli_usage_error("plot", "%s needs a value", s);
        *slot = v;
        i++;
    }
    if (!a->kind || !a->file || !a->out)
        return ats_cli_usage_error("plot", "needs a kind, an input file and --out (see --help)");
    return 0;
}

/* Reads one label per line; *count must match `expect`. */
static int read_labels(const char *path, size_t expect, char ***labels, char **buf,
                       ats_error *err) {
    size_t len;
    if (ats_file_read_all(path, (size_t)1 << 26, buf, &len, err)) return 0;
    char **l = calloc(expect ? expect : 1, sizeof *l);
    if (!l) {
        ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
        return 0;
    }
    size_t n = 0;
    char *p = *buf;
    while (*p && n < expect) {
        char *e = strchr(p, '\n');
        if (e) *e = '\0';
        size_t k = strlen(p);
        if (k && p[k - 1] == '\r') p[k - 1] = '\0';
        l[n++] = p;
        if (!e) break;
        p = e + 1;
    }
    if (n != expect) {
        free(l);
        ats_error_set(err, ATS_ERR_FORMAT, "%s: %zu labels for %zu rows/columns", path, n, expect);
        return 0;
    }
    *labels = l;
    return 1;
}

static int plot_diagrams(const plot_args *a) {
    ats_error err;
    ats_error_clear(&err);
    ats_diagram dgms[ATS_RIPS_MAX_DIM + 1];
    int dims[ATS_RIPS_MAX_DIM + 1];
    size_t count = 0;
    ats_diagram_format fmt;
    if (ats_diagram_detect(a->file, &fmt, &err)) return ats_cli_fail(&err);
    if (a->dims) {
        const char *p = a->dims;
        while (*p && count <= ATS_RIPS_MAX_DIM) {
            char *e;
            long d = strtol(p, &e, 10);
            if (e == p || d < 0 || d > ATS_RIPS_MAX_DIM)
                return ats_cli_usage_error("plot", "--dims needs a list like 0,1,2");
            dims[count++] = (int)d;
            p = *e == ',' ? e + 1 : e;
            if (*e && *e != ',')
                return ats_cli_usage_error("plot", "--dims needs a list like 0,1,2");
        }
    }
    int multi = fmt != ATS_DIAGRAM_PAIRS;
    if (!a->dims) {
        if (multi)
            for (int d = 0; d <= ATS_RIPS_MAX_DIM; d++) dims[count++] = d;
        else
            dims[count++] = 0;
    }
    size_t kept = 0;
    for (size_t k = 0; k < count; k++) {
        ats_diagram d;
        ats_error e2;
        if (ats_diagram_read(a->file, multi ? dims[k] : -1, &d, &e2)) {
            if (a->dims || k == 0) {
                for (size_t j = 0; j < kept; j++) ats_diagram_free(&dgms[j]);
                return ats_cli_fail(&e2);
            }
            continue;
        }
        dims[kept] = dims[k];
        dgms[kept++] = d;
    }
    /* without --dims, trailing empty dimensions are not worth a legend entry */
    while (!a->dims && kept > 1 && dgms[kept - 1].count == 0) ats_diagram_free(&dgms[--kept]);
    ats_figure_options opt;
    ats_figure_options_init(&opt);
    opt.title = a->title;
    ats_status st = !strcmp(a->kind, "diagram")
                        ? ats_render_diagram(a->out, kept, dgms, dims, &opt, &err)
                        : ats_render_barcode(a->out, kept, dgms, dims, &opt, &err);
    for (size_t j = 0; j < kept; j++) ats_diagram_free(&dgms[j]);
    if (st) return ats_cli_fail(&err);
    printf("%s\n", a->out);
    return ATS_EXIT_OK;
}

static int plot_heatmap(const plot_args *a) {
    ats_error err;
    ats_error_clear(&err);
    ats_npy arr;
    if (ats_npy_read(a->file, &arr, &err)) return ats_cli_fail(&err);
    int rc = ATS_EXIT_OK;
    double *v = NULL;
    char **rl = NULL, **cl = NULL, *rb = NULL, *cb = NULL;
    if ((arr.ndim != 2 && arr.ndim != 4) || (arr.dtype != ATS_F32 && arr.dtype != ATS_F64) ||
        arr.count == 0) {
        ats_error_set(&err, ATS_ERR_FORMAT,
                      "%s: expected a non-empty float array [n][m] or [L][H][n][m]", a->file);
        rc = ats_cli_fail(&err);
        goto done;
    }
    v = malloc(arr.count * sizeof *v);
    if (!v) {
        ats_error_set(&err, ATS_ERR_NOMEM, "%s: out of memory", a->file);
        rc = ats_cli_fail(&err);
        goto done;
    }
    for (size_t i = 0; i < arr.count; i++)
        v[i] = arr.dtype == ATS_F64 ? ((double *)arr.data)[i] : ((float *)arr.data)[i];
    size_t rows = arr.shape[arr.ndim - 2], cols = arr.shape[arr.ndim - 1];
    ats_heatmap_options opt;
    ats_heatmap_options_init(&opt);
    opt.fig.title = a->title;
    opt.vmin = a->vmin;
    opt.vmax = a->vmax;
    opt.row_title = "query";
    opt.col_title = "key";
    const char *rlp = a->row_labels ? a->row_labels : a->labels;
    const char *clp = a->col_labels ? a->col_labels : a->labels;
    if ((rlp && !read_labels(rlp, rows, &rl, &rb, &err)) ||
        (clp && !read_labels(clp, cols, &cl, &cb, &err))) {
        rc = ats_cli_fail(&err);
        goto done;
    }
    opt.row_labels = (const char *const *)rl;
    opt.col_labels = (const char *const *)cl;
    ats_status st;
    if (arr.ndim == 2) {
        st = ats_render_heatmap(a->out, rows, cols, v, &opt, &err);
    } else if (a->layer >= 0 || a->head >= 0) {
        if (a->layer < 0 || a->head < 0 || (size_t)a->layer >= arr.shape[0] ||
            (size_t)a->head >= arr.shape[1]) {
            ats_error_set(&err, ATS_ERR_INVALID, "%s: layer %ld head %ld is outside [%zu][%zu]",
                          a->file, a->layer, a->head, arr.shape[0], arr.shape[1]);
            rc = ats_cli_fail(&err);
            goto done;
        }
        st = ats_render_heatmap(
            a->out, rows, cols,
            v + ((size_t)a->layer * arr.shape[1] + (size_t)a->head) * rows * cols, &opt, &err);
    } else {
        st = ats_render_heatmap_grid(a->out, arr.shape[0], arr.shape[1], rows, cols, v, NULL, &opt,
                                     &err);
    }
    if (st) {
        rc = ats_cli_fail(&err);
        goto done;
    }
    printf("%s\n", a->out);
done:
    free(v);
    free(rl);
    free(cl);
    free(rb);
    free(cb);
    ats_npy_free(&arr);
    return rc;
}

/* Reads an [n][n] (or [L][H][n][n] with --layer/--head) float array into doubles. */
static int read_square(const plot_args *a, double **out, size_t *n, ats_error *err) {
    ats_npy arr;
    if (ats_npy_read(a->file, &arr, err)) return 0;
    int ok = 0;
    size_t off = 0;
    if ((arr.dtype != ATS_F32 && arr.dtype != ATS_F64) || (arr.ndim != 2 && arr.ndim != 4) ||
        arr.shape[arr.ndim - 1] != arr.shape[arr.ndim - 2] || arr.count == 0) {
        ats_error_set(err, ATS_ERR_FORMAT, "%s: expected a float array [n][n] or [L][H][n][n]",
                      a->file);
        goto done;
    }
    *n = arr.shape[arr.ndim - 1];
    if (arr.ndim == 4) {
        if (a->layer < 0 || a->head < 0 || (size_t)a->layer >= arr.shape[0] ||
            (size_t)a->head >= arr.shape[1]) {
            ats_error_set(err, ATS_ERR_INVALID,
                          "%s: a [L][H][n][n] array needs --layer and --head within [%zu][%zu]",
                          a->file, arr.shape[0], arr.shape[1]);
            goto done;
        }
        off = ((size_t)a->layer * arr.shape[1] + (size_t)a->head) * *n * *n;
    }
    *out = malloc(*n * *n * sizeof **out);
    if (!*out) {
        ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", a->file);
        goto done;
    }
    for (size_t i = 0; i < *n * *n; i++)
        (*out)[i] =
            arr.dtype == ATS_F64 ? ((double *)arr.data)[off + i] : ((float *)arr.data)[off + i];
    ok = 1;
done:
    ats_npy_free(&arr);
    return ok;
}

static int plot_graph(const plot_args *a, int skeleton) {
    ats_error err;
    ats_error_clear(&err);
    double *m = NULL, *lower = NULL, scales[64];
    char **labels = NULL, *lbuf = NULL;
    size_t n = 0, ns = 0;
    int rc = ATS_EXIT_OK;
    if (skeleton) {
        const char *p = a->scales;
        if (!p) return ats_cli_usage_error("plot", "skeleton needs --scale or --scales");
        while (*p && ns < 64) {
            char *e;
            scales[ns] = strtod(p, &e);
            if (e == p || !(scales[ns] >= 0) || isinf(scales[ns]) || (*e && *e != ','))
                return ats_cli_usage_error("plot", "--scales needs numbers >= 0 like 0.2,0.3");
            ns++;
            p = *e ? e + 1 : e;
        }
    }
    if (!read_square(a, &m, &n, &err)) return ats_cli_fail(&err);
    if (a->labels && !read_labels(a->labels, n, &labels, &lbuf, &err)) {
        rc = ats_cli_fail(&err);
        goto done;
    }
    ats_graph_options opt;
    ats_graph_options_init(&opt);
    opt.fig.title = a->title;
    opt.labels = (const char *const *)labels;
    ats_status st;
    if (skeleton) {
        lower = malloc((n * (n - 1) / 2 + 1) * sizeof *lower);
        if (!lower) {
            ats_error_set(&err, ATS_ERR_NOMEM, "%s: out of memory", a->file);
            rc = ats_cli_fail(&err);
            goto done;
        }
        st = ats_metric_from_full(n, m, a->symmetrize, a->file, lower, &err);
        if (!st) st = ats_render_skeleton_grid(a->out, n, lower, ns, scales, &opt, &err);
    } else {
        st = ats_render_attention_graph(a->out, n, m, a->min_weight, a->symmetrize, &opt, &err);
    }
    if (st) {
        rc = ats_cli_fail(&err);
        goto done;
    }
    printf("%s\n", a->out);
done:
    free(m);
    free(lower);
    free(labels);
    free(lbuf);
    return rc;
}

int ats_cmd_plot(int argc, char **argv) {
    plot_args a;
    int rc = parse(argc, argv, &a);
    if (rc) return rc;
    if (!strcmp(a.kind, "diagram") || !strcmp(a.kind, "barcode")) return plot_diagrams(&a);
    if (!strcmp(a.kind, "heatmap")) return plot_heatmap(&a);
    if (!strcmp(a.kind, "skeleton")) return plot_graph(&a, 1);
    if (!strcmp(a.kind, "graph")) return plot_graph(&a, 0);
    return ats_cli_usage_error(
        "plot", "unknown figure '%s' (diagram, barcode, heatmap, skeleton, graph)", a.kind);
}
