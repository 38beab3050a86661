/* attnscope bottleneck / wasserstein: distances between two persistence diagrams. */
#include "attnscope/diagram.h"
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char BOTTLENECK_USAGE[] =
    "usage: attnscope bottleneck A B [--dim K] [--matching]\n"
    "       attnscope bottleneck --batch LIST [--dim K]\n"
    "\n"
    "Exact bottleneck distance (L-infinity ground metric) between two persistence diagrams.\n"
    "A and B hold one `birth death` pair a line (`inf` for an essential class); Ripser's text\n"
    "output, attnscope JSON, GUDHI .pers files (`[[field] dim] birth death`) and DIPHA binary\n"
    "diagrams are recognised too.\n"
    "\n"
    "  --dim K      use the points of dimension K of files holding several dimensions\n"
    "               (default: every point of the file)\n"
    "  --matching   print an optimal matching first: `i j cost` a line, i and j indices of\n"
    "               points of A and B in file order, -1 for the diagonal\n"
    "  --batch LIST compare many pairs: each line of LIST names two diagram files (further\n"
    "               columns and `#` comments are ignored); prints one distance a line\n"
    "\n"
    "The distance is the last line of the output (`inf` when the diagrams have different\n"
    "numbers of essential classes). Bad input: a message naming the file and line, status 2.\n";

static const char WASSERSTEIN_USAGE[] =
    "usage: attnscope wasserstein A B [--q Q] [--internal-p P] [--delta D] [--exact]\n"
    "                             [--dim K] [--matching]\n"
    "       attnscope wasserstein --batch LIST [options]\n"
    "\n"
    "q-Wasserstein distance between two persistence diagrams, with ground metric L_p.\n"
    "A and B hold one `birth death` pair a line (`inf` for an essential class); Ripser's text\n"
    "output, attnscope JSON, GUDHI .pers files and DIPHA binary diagrams are recognised too.\n"
    "\n"
    "  --q Q           order, Q >= 1 (default 1)\n"
    "  --internal-p P  ground metric L_P, 1 <= P <= inf (default inf)\n"
    "  --delta D       relative error allowed for large diagrams (default 0.01): the result\n"
    "                  is at most (1 + D) times the exact distance\n"
    "  --exact         always solve exactly (Hungarian method, cubic time); by default\n"
    "                  diagrams of up to 256 points together are solved exactly, larger ones\n"
    "                  by an auction algorithm\n"
    "  --dim K         use the points of dimension K of files holding several dimensions\n"
    "  --matching      print the matching first: `i j cost` a line, -1 for the diagonal\n"
    "  --batch LIST    compare many pairs: each line of LIST names two diagram files;\n"
    "                  prints one distance a line\n"
    "\n"
    "The distance is the last line of the output (`inf` when the diagrams have different\n"
    "numbers of essential classes). Bad input: a message naming the file and line, status 2.\n";

typedef struct dd_args {
    const char *files[2];
    const char *batch;
    long dim;
    int matching;
    ats_wasserstein_options wopt;
} dd_args;

/* Returns -1 to go on, else an exit status. */
static int parse_args(int argc, char **argv, int wasserstein, dd_args *a) {
    const char *cmd = argv[0];
    int nfiles = 0;
    a->dim = -1;
    a->matching = 0;
    a->batch = NULL;
    ats_wasserstein_options_init(&a->wopt);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            fputs(wasserstein ? WASSERSTEIN_USAGE : BOTTLENECK_USAGE, stdout);
            return ATS_EXIT_OK;
        }
        if (arg[0] != '-' || arg[1] == '\0') {
            if (nfiles == 2)
                return ats_cli_usage_error(cmd, "expected two diagram files, got a third: '%s'",
                                           arg);
            a->files[nfiles++] = arg;
            continue;
        }
        if (!strcmp(arg, "--matching")) {
            a->matching = 1;
            continue;
        }
        if (wasserstein && !strcmp(arg, "--exact")) {
            a->wopt.exact = 1;
            continue;
        }
        /* options with a value: --opt V or --opt=V */
        const char *name = arg, *val = NULL;
        char buf[32];
        const char *eq = strchr(arg, '=');
        if (eq) {
            size_t len = (size_t)(eq - arg);
            if (len >= sizeof buf) return ats_cli_usage_error(cmd, "unknown option '%s'", arg);
            memcpy(buf, arg, len);
            buf[len] = '\0';
            name = buf;
            val = eq + 1;
        }
        int known = !strcmp(name, "--dim") || !strcmp(name, "--batch") ||
                    (wasserstein && (!strcmp(name, "--q") || !strcmp(name, "--internal-p") ||
                                     !strcmp(name, "--delta")));
        if (!known) return ats_cli_usage_error(cmd, "unknown option '%s' (see --help)", arg);
        if (!val) {
            if (i + 1 >= argc) return ats_cli_usage_error(cmd, "%s needs a value", name);
            val = argv[++i];
        }
        if (!strcmp(name, "--batch")) {
            a->batch = val;
        } else if (!strcmp(name, "--dim")) {
            if (!ats_cli_parse_long(val, 0, 1000000, &a->dim))
                return ats_cli_usage_error(cmd, "--dim: expected an integer >= 0, got '%s'", val);
        } else if (!strcmp(name, "--q")) {
            if (!ats_cli_parse_double(val, 0, &a->wopt.q) || !(a->wopt.q >= 1))
                return ats_cli_usage_error(cmd, "--q: expected a finite number >= 1, got '%s'",
                                           val);
        } else if (!strcmp(name, "--internal-p")) {
            if (!ats_cli_parse_double(val, 1, &a->wopt.internal_p) || !(a->wopt.internal_p >= 1))
                return ats_cli_usage_error(
                    cmd, "--internal-p: expected a number >= 1 or inf, got '%s'", val);
        } else {
            if (!ats_cli_parse_double(val, 0, &a->wopt.delta) || !(a->wopt.delta > 0))
                return ats_cli_usage_error(cmd, "--delta: expected a number > 0, got '%s'", val);
        }
    }
    if (a->batch) {
        if (nfiles != 0)
            return ats_cli_usage_error(cmd, "--batch takes the files from LIST, not '%s'",
                                       a->files[0]);
        if (a->matching) return ats_cli_usage_error(cmd, "--matching does not go with --batch");
        return -1;
    }
    if (nfiles != 2) {
        fputs(wasserstein ? WASSERSTEIN_USAGE : BOTTLENECK_USAGE, stderr);
        return ATS_EXIT_INPUT;
    }
    return -1;
}

/* Ground distance of a matched pair: L_p between points (coordinates that are infinite in both
 * count 0), or a point's L_p distance to the diagonal. */
static double pair_cost(const double *x, const double *y, double p) {
    double dx, dy;
    if (x && y) {
        dx = x[0] == y[0] ? 0.0 : fabs(x[0] - y[0]);
        dy = x[1] == y[1] ? 0.0 : fabs(x[1] - y[1]);
    } else {
        const double *z = x ? x : y;
        if (z[0] == z[1]) return 0.0;
        double mid = (z[0] + z[1]) / 2;
        dx = fabs(z[0] - mid);
        dy = fabs(z[1] - mid);
    }
    if (isinf(p)) return dx > dy ? dx : dy;
    if (p == 1) return dx + dy;
    if (p == 2) return sqrt(dx * dx + dy * dy);
    return pow(pow(dx, p) + pow(dy, p), 1.0 / p);
}

static void print_distance(double d) {
    if (isinf(d))
        printf("inf\n");
    else
        printf("%.17g\n", d);
}

/* Reads two diagrams and computes their distance (and matching when m is not NULL). */
static ats_status compare(const dd_args *args, int wasserstein, const char *fa, const char *fb,
                          ats_diagram d[2], double *dist, ats_matching *m, ats_error *err) {
    const char *files[2] = {fa, fb};
    for (int k = 0; k < 2; k++) {
        ats_status st = ats_diagram_read(files[k], (int)args->dim, &d[k], err);
        if (st) {
            ats_diagram_free(&d[0]);
            return st;
        }
    }
    ats_status st = wasserstein ? ats_wasserstein_distance(&d[0], &d[1], &args->wopt, dist, m, err)
                                : ats_bottleneck_distance(&d[0], &d[1], dist, m, err);
    if (st) {
        ats_diagram_free(&d[0]);
        ats_diagram_free(&d[1]);
    }
    return st;
}

/* --batch LIST: all distances are computed before anything is printed. */
static int run_batch(const dd_args *args, int wasserstein) {
    ats_error err;
    ats_error_clear(&err);
    char *text;
    size_t len;
    if (ats_file_read_all(args->batch, (size_t)1 << 30, &text, &len, &err))
        return ats_cli_fail(&err);
    size_t cap = 64, count = 0, line = 0;
    double *dist = malloc(cap * sizeof(double));
    int rc = ATS_EXIT_OK, oom = !dist;
    char *p = text, *end = text + len;
    while (p < end && rc == ATS_EXIT_OK && !oom) {
        line++;
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        *eol = '\0';
        char *hash = strchr(p, '#');
        if (hash) *hash = '\0';
        char *save = NULL;
        const char *fa = strtok_r(p, " \t\r", &save);
        const char *fb = fa ? strtok_r(NULL, " \t\r", &save) : NULL;
        p = eol < end ? eol + 1 : end;
        if (!fa) continue;
        if (!fb) {
            ats_error_set(&err, ATS_ERR_FORMAT, "%s:%zu: expected two diagram files", args->batch,
                          line);
            rc = ats_cli_fail(&err);
            break;
        }
        ats_diagram d[2] = {{0, NULL}, {0, NULL}};
        if (count == cap) {
            double *nd = realloc(dist, 2 * cap * sizeof(double));
            if (!nd) {
                oom = 1;
                break;
            }
            dist = nd;
            cap *= 2;
        }
        if (compare(args, wasserstein, fa, fb, d, &dist[count], NULL, &err)) {
            ats_error e2 = err;
            ats_error_set(&e2, err.status, "%s:%zu: %s", args->batch, line, err.message);
            rc = ats_cli_fail(&e2);
            break;
        }
        count++;
        ats_diagram_free(&d[0]);
        ats_diagram_free(&d[1]);
    }
    free(text);
    if (oom) {
        free(dist);
        fprintf(stderr, "attnscope: out of memory\n");
        return ATS_EXIT_FAIL;
    }
    if (rc == ATS_EXIT_OK)
        for (size_t i = 0; i < count; i++) print_distance(dist[i]);
    free(dist);
    if (rc == ATS_EXIT_OK && fflush(stdout) != 0) {
        fprintf(stderr, "attnscope: cannot write the output\n");
        return ATS_EXIT_FAIL;
    }
    return rc;
}

static int run(int argc, char **argv, int wasserstein) {
    dd_args args;
    int rc = parse_args(argc, argv, wasserstein, &args);
    if (rc >= 0) return rc;
    if (args.batch) return run_batch(&args, wasserstein);
    ats_error err;
    ats_error_clear(&err);
    ats_diagram d[2] = {{0, NULL}, {0, NULL}};
    double dist;
    ats_matching m = {0, NULL};
    if (compare(&args, wasserstein, args.files[0], args.files[1], d, &dist,
                args.matching ? &m : NULL, &err))
        return ats_cli_fail(&err);
    if (args.matching) {
        double p = wasserstein ? args.wopt.internal_p : INFINITY;
        printf("# matching: index in %s, index in %s (-1: the diagonal), L_%s cost\n",
               args.files[0], args.files[1], isinf(p) ? "inf" : "p");
        for (size_t k = 0; k < m.count; k++) {
            int64_t i = m.pairs[2 * k], j = m.pairs[2 * k + 1];
            double c = pair_cost(i >= 0 ? d[0].pairs + 2 * i : NULL,
                                 j >= 0 ? d[1].pairs + 2 * j : NULL, p);
            printf("%lld %lld %.17g\n", (long long)i, (long long)j, c);
        }
    }
    print_distance(dist);
    ats_matching_free(&m);
    ats_diagram_free(&d[0]);
    ats_diagram_free(&d[1]);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "attnscope %s: cannot write the output\n", argv[0]);
        return ATS_EXIT_FAIL;
    }
    return ATS_EXIT_OK;
}

int ats_cmd_bottleneck(int argc, char **argv) {
    return run(argc, argv, 0);
}

int ats_cmd_wasserstein(int argc, char **argv) {
    return run(argc, argv, 1);
}
