/* attnscope rips: Vietoris–Rips persistence of a file, printed in Ripser's text format. */
#include "cli.h"
#include "attnscope/rips.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: attnscope rips FILE [options]\n"
    "\n"
    "Vietoris–Rips persistent homology of a finite metric. Prints Ripser's text format.\n"
    "\n"
    "  --format F          lower-distance (default; Ripser's), distance (full matrix),\n"
    "                      point-cloud (one point a line), npy ([n][n] or a batch [B][n][n]);\n"
    "                      a .npy file name implies npy\n"
    "  --dim K             compute H_0 .. H_K (default 1)\n"
    "  --threshold T       largest diameter in the filtration (default: enclosing radius)\n"
    "  --modulus P         coefficients in Z/P, P prime (default 2)\n"
    "  --ratio R           report only pairs with death > R * birth (default 1)\n"
    "  --min-persistence E report only pairs with death - birth > E (default 0)\n"
    "  --symmetrize        accept an asymmetric full matrix, using (A + A^T) / 2\n"
    "  --json OUT          also write {\"dims\":[{\"dim\":k,\"pairs\":[[b,d],...]},...]} to OUT\n"
    "                      (null death = essential class)\n"
    "  --cocycles          print a representative cocycle of every class in dim >= 1 (and\n"
    "                      include them in --json)\n"
    "  --cycles            print a representative cycle (its edges) of every H1 class (and\n"
    "                      include them in --json)\n"
    "  --collapse-edges    collapse dominated edges first (Boissonnat-Pritam): the same\n"
    "                      diagrams from fewer edges, intervals in another order; not with\n"
    "                      --cycles or --cocycles\n"
    "  --precision N       significant digits printed (default 6, as Ripser)\n"
    "  --threads N         threads (default: all cores): one matrix is computed on all\n"
    "                      of them, a batch one matrix a thread; the output is the same\n"
    "                      whatever N\n"
    "  --quiet             print only the intervals\n"
    "  --memory-limit GB   refuse a problem estimated to need more memory (default: the\n"
    "                      machine's physical memory; inf: never refuse)\n"
    "  --timings           print the CPU and wall seconds of each phase to stderr\n";

typedef struct rips_args {
    const char *file, *json;
    ats_metric_format format;
    int format_given, symmetrize, cocycles, cycles, precision, threads, quiet, timings;
    ats_rips_options opt;
} rips_args;

static void print_value(FILE *fp, double v, int precision) {
    fprintf(fp, "%.*g", precision, v);
}

/* {[v0,v1,...]:coef, ...}: the simplices of a representative and their coefficients */
static void print_rep(FILE *fp, const ats_representative *rep, int k) {
    fputs("{", fp);
    for (size_t s = 0; s < rep->count; s++) {
        fputs(s ? ", [" : "[", fp);
        for (int v = 0; v <= k; v++)
            fprintf(fp, v ? ",%d" : "%d", rep->vertices[s * (size_t)(k + 1) + (size_t)v]);
        fprintf(fp, "]:%u", rep->coefs[s]);
    }
    fputc('}', fp);
}

static void json_rep(FILE *fp, const ats_representative *rep, int k) {
    fputc('[', fp);
    for (size_t s = 0; s < rep->count; s++) {
        fputs(s ? ",[" : "[", fp);
        for (int v = 0; v <= k; v++)
            fprintf(fp, "%d,", rep->vertices[s * (size_t)(k + 1) + (size_t)v]);
        fprintf(fp, "%u]", rep->coefs[s]);
    }
    fputc(']', fp);
}

static void print_result(FILE *fp, const ats_rips_result *r, const rips_args *a, int eff_dim) {
    for (int k = 0; k <= eff_dim; k++) {
        fprintf(fp, "persistence intervals in dim %d:\n", k);
        const ats_diagram *d = &r->dims[k];
        for (size_t i = 0; i < d->count; i++) {
            fputs(" [", fp);
            print_value(fp, d->pairs[2 * i], a->precision);
            fputc(',', fp);
            if (isinf(d->pairs[2 * i + 1]))
                fputc(' ', fp);
            else
                print_value(fp, d->pairs[2 * i + 1], a->precision);
            fputc(')', fp);
            if (a->cocycles && k >= 1 && r->cocycles[k]) {
                fputs(" cocycle ", fp);
                print_rep(fp, &r->cocycles[k][i], k);
            }
            if (a->cycles && k == 1 && r->cycles) {
                fputs(" cycle ", fp);
                print_rep(fp, &r->cycles[i], 1);
            }
            fputc('\n', fp);
        }
    }
}

static void json_result(FILE *fp, const ats_rips_result *r, int cocycles) {
    fprintf(fp, "{\"n_points\":%zu,\"threshold\":", r->n_points);
    ats_cli_json_number(fp, r->threshold, 0);
    fputs(",\"dims\":[", fp);
    for (int k = 0; k <= r->max_dim; k++) {
        const ats_diagram *d = &r->dims[k];
        fprintf(fp, "%s{\"dim\":%d,\"pairs\":[", k ? "," : "", k);
        for (size_t i = 0; i < d->count; i++) {
            fputs(i ? ",[" : "[", fp);
            ats_cli_json_number(fp, d->pairs[2 * i], 0);
            fputc(',', fp);
            ats_cli_json_number(fp, d->pairs[2 * i + 1], ATS_JSON_DEATH);
            fputc(']', fp);
        }
        fputc(']', fp);
        if (cocycles && k >= 1 && r->cocycles[k]) {
            fputs(",\"cocycles\":[", fp);
            for (size_t i = 0; i < d->count; i++) {
                if (i) fputc(',', fp);
                json_rep(fp, &r->cocycles[k][i], k);
            }
            fputc(']', fp);
        }
        if (k == 1 && r->cycles) {
            fputs(",\"cycles\":[", fp);
            for (size_t i = 0; i < d->count; i++) {
                if (i) fputc(',', fp);
                json_rep(fp, &r->cycles[i], 1);
            }
            fputc(']', fp);
        }
        fputc('}', fp);
    }
    fputs("]}", fp);
}

static int parse_args(int argc, char **argv, rips_args *a) {
    memset(a, 0, sizeof *a);
    ats_rips_options_init(&a->opt);
    a->format = ATS_METRIC_LOWER_DISTANCE;
    a->precision = 6;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
        long l;
        double d;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            fputs(USAGE, stdout);
            exit(ATS_EXIT_OK);
        } else if (!strcmp(s, "--format")) {
            if (!v) return ats_cli_usage_error("rips", "--format needs a value");
            if (!strcmp(v, "distance"))
                a->format = ATS_METRIC_DISTANCE;
            else if (!strcmp(v, "lower-distance"))
                a->format = ATS_METRIC_LOWER_DISTANCE;
            else if (!strcmp(v, "point-cloud"))
                a->format = ATS_METRIC_POINT_CLOUD;
            else if (!strcmp(v, "npy"))
                a->format = ATS_METRIC_NPY;
            else
                return ats_cli_usage_error("rips", "unknown --format '%s'", v);
            a->format_given = 1;
            i++;
        } else if (!strcmp(s, "--dim")) {
            if (!ats_cli_parse_long(v, 0, ATS_RIPS_MAX_DIM, &l))
                return ats_cli_usage_error("rips", "--dim needs an integer in 0..%d",
                                           ATS_RIPS_MAX_DIM);
            a->opt.max_dim = (int)l;
            i++;
        } else if (!strcmp(s, "--threshold")) {
            if (!ats_cli_parse_double(v, 1, &d) || d < 0)
                return ats_cli_usage_error("rips", "--threshold needs a number >= 0");
            a->opt.threshold = d;
            i++;
        } else if (!strcmp(s, "--modulus")) {
            if (!ats_cli_parse_long(v, 2, 65535, &l))
                return ats_cli_usage_error("rips", "--modulus needs a prime below 65536");
            a->opt.modulus = (unsigned)l;
            i++;
        } else if (!strcmp(s, "--ratio")) {
            if (!ats_cli_parse_double(v, 0, &d) || d < 0)
                return ats_cli_usage_error("rips", "--ratio needs a number >= 0");
            a->opt.ratio = d;
            i++;
        } else if (!strcmp(s, "--min-persistence")) {
            if (!ats_cli_parse_double(v, 0, &d))
                return ats_cli_usage_error("rips", "--min-persistence needs a number");
            a->opt.min_persistence = d;
            i++;
        } else if (!strcmp(s, "--json")) {
            if (!v) return ats_cli_usage_error("rips", "--json needs a file name");
            a->json = v;
            i++;
        } else if (!strcmp(s, "--precision")) {
            if (!ats_cli_parse_long(v, 1, 17, &l))
                return ats_cli_usage_error("rips", "--precision needs an integer in 1..17");
            a->precision = (int)l;
            i++;
        } else if (!strcmp(s, "--threads")) {
            if (!ats_cli_parse_long(v, 0, 4096, &l))
                return ats_cli_usage_error("rips", "--threads needs an integer >= 0");
            a->threads = (int)l;
            i++;
        } else if (!strcmp(s, "--symmetrize")) {
            a->symmetrize = 1;
        } else if (!strcmp(s, "--cocycles")) {
            a->cocycles = 1;
            a->opt.want_cocycles = 1;
        } else if (!strcmp(s, "--cycles")) {
            a->cycles = 1;
            a->opt.want_cycles = 1;
        } else if (!strcmp(s, "--collapse-edges")) {
            a->opt.collapse_edges = 1;
        } else if (!strcmp(s, "--quiet")) {
            a->quiet = 1;
        } else if (!strcmp(s, "--memory-limit")) {
            if (!ats_cli_parse_double(v, 1, &d) || !(d > 0))
                return ats_cli_usage_error("rips",
                                           "--memory-limit needs a number of GB > 0 or inf");
            a->opt.memory_limit_gb = d;
            i++;
        } else if (!strcmp(s, "--timings")) {
            a->timings = 1;
        } else if (s[0] == '-' && s[1] == '-') {
            return ats_cli_usage_error("rips", "unknown option '%s' (see --help)", s);
        } else if (!a->file) {
            a->file = s;
        } else {
            return ats_cli_usage_error("rips", "more than one input file ('%s', '%s')", a->file, s);
        }
    }
    if (!a->file) return ats_cli_usage_error("rips", "no input file (see --help)");
    size_t len = strlen(a->file);
    if (!a->format_given && len > 4 && !strcmp(a->file + len - 4, ".npy"))
        a->format = ATS_METRIC_NPY;
    return ATS_EXIT_OK;
}

/* A mapped [n][n] .npy read a row at a time (ats_rips_compute_rows), from any thread: each row
 * is read from the file (ats_npy_get_f64), so none of it stays resident. */
typedef struct npy_rows {
    const ats_npy *arr;
    const char *path;
} npy_rows;

static ats_status npy_row(void *ctx, size_t i, double *row, ats_error *err) {
    const npy_rows *q = ctx;
    size_t n = q->arr->shape[0];
    return ats_npy_get_f64(q->arr, q->path, i * n, n, row, err);
}

/* A single [n][n] float .npy matrix: persistence streamed from the mapped file (memory grows
 * with the edges within the threshold, not with n²). *done is 0 when the file is something
 * else (a batch, other dtypes), for ats_metric_read. */
static ats_status rips_npy_streamed(const rips_args *a, ats_rips_result *res, size_t *n, int *done,
                                    ats_error *err) {
    *done = 0;
    ats_npy arr;
    ats_status st = ats_npy_map(a->file, &arr, err);
    if (st) return st;
    if (arr.ndim != 2 || arr.shape[0] != arr.shape[1] || arr.shape[0] == 0 ||
        (arr.dtype != ATS_F32 && arr.dtype != ATS_F64)) {
        ats_npy_free(&arr);
        return ATS_OK;
    }
    *done = 1;
    *n = arr.shape[0];
    npy_rows q = {&arr, a->file};
    ats_rips_options opt = a->opt;
    opt.n_threads = a->threads;
    st = ats_rips_compute_rows(arr.shape[0], npy_row, &q, a->file, &opt, res, err);
    ats_npy_free(&arr);
    return st;
}

int ats_cmd_rips(int argc, char **argv) {
    rips_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc) return rc;
    ats_error err;
    ats_error_clear(&err);
    size_t count = 1, n = 0;
    double *lowers = NULL;
    int streamed = 0;
    ats_rips_result one;
    ats_status st = ATS_OK;
    if (a.format == ATS_METRIC_NPY && !a.symmetrize) {
        st = rips_npy_streamed(&a, &one, &n, &streamed, &err);
        if (st) return ats_cli_fail(&err);
    }
    if (!streamed) {
        st = ats_metric_read(a.file, a.format, a.symmetrize, &count, &n, &lowers, &err);
        if (st) return ats_cli_fail(&err);
    }
    size_t m = n * (n - 1) / 2;
    const double **ptrs = malloc(count * sizeof *ptrs);
    size_t *ns = malloc(count * sizeof *ns);
    ats_rips_result *res = calloc(count, sizeof *res);
    ats_error *errs = calloc(count, sizeof *errs);
    if (streamed && res) res[0] = one;
    if (!ptrs || !ns || !res || !errs) {
        if (streamed) ats_rips_result_free(res ? res : &one);
        free(lowers);
        free(ptrs);
        free(ns);
        free(res);
        free(errs);
        ats_error_set(&err, ATS_ERR_NOMEM, "rips: out of memory");
        return ats_cli_fail(&err);
    }
    for (size_t i = 0; i < count; i++) {
        ptrs[i] = lowers + i * m;
        ns[i] = n;
    }
    if (!streamed) st = ats_rips_compute_batch(count, ns, ptrs, &a.opt, a.threads, res, errs);
    if (st) {
        for (size_t i = 0; i < count; i++)
            if (errs[i].status) {
                err = errs[i];
                if (count > 1) {
                    snprintf(err.message, sizeof err.message, "%.200s: matrix %zu: %.280s", a.file,
                             i, errs[i].message);
                }
                break;
            }
        rc = ats_cli_fail(&err);
        goto done;
    }
    /* JSON first: if it cannot be written, print nothing. */
    if (a.json) {
        ats_outfile of;
        if ((st = ats_outfile_open(&of, a.json, &err)) != ATS_OK) {
            rc = ats_cli_fail(&err);
            goto done;
        }
        if (count == 1)
            json_result(of.fp, &res[0], a.cocycles);
        else {
            fputs("{\"batch\":[", of.fp);
            for (size_t i = 0; i < count; i++) {
                if (i) fputc(',', of.fp);
                json_result(of.fp, &res[i], a.cocycles);
            }
            fputs("]}", of.fp);
        }
        fputc('\n', of.fp);
        if ((st = ats_outfile_commit(&of, &err)) != ATS_OK) {
            rc = ats_cli_fail(&err);
            goto done;
        }
    }
    for (size_t i = 0; i < count; i++) {
        const ats_rips_result *r = &res[i];
        /* Ripser prints dimensions up to min(K, n-2). */
        int eff = a.opt.max_dim;
        if ((long)eff > (long)n - 2) eff = n >= 2 ? (int)n - 2 : 0;
        if (count > 1) printf("matrix %zu:\n", i);
        if (!a.quiet) {
            printf("value range: [%g,%g]\n", r->min_value, r->max_value);
            if (isinf(a.opt.threshold))
                printf("distance matrix with %zu points, using threshold at enclosing radius %g\n",
                       n, r->threshold);
            else
                printf("distance matrix with %zu points, using threshold %g\n", n, r->threshold);
        }
        print_result(stdout, r, &a, eff);
        if (a.timings) {
            static const char *names[ATS_RIPS_PHASES] = {
                "setup",         "edges+H0", "edge apparent", "reduce ahead",
                "reduce commit", "assemble", "sort"};
            for (int w = 0; w < 2; w++) {
                const double *sec = w ? r->phase_wall_seconds : r->phase_cpu_seconds;
                double total = 0;
                fputs(w ? "rips wall seconds:" : "rips CPU seconds:", stderr);
                for (int k = 0; k < ATS_RIPS_PHASES; k++) {
                    fprintf(stderr, " %s %.3f,", names[k], sec[k]);
                    total += sec[k];
                }
                fprintf(stderr, " total %.3f\n", total);
            }
        }
    }
    rc = ATS_EXIT_OK;
done:
    for (size_t i = 0; i < count; i++) ats_rips_result_free(&res[i]);
    free(res);
    free(errs);
    free(ptrs);
    free(ns);
    free(lowers);
    return rc;
}
