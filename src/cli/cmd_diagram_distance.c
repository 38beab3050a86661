/* attnscope bottleneck / wasserstein: distances between two persistence diagrams. */
#include "attnscope/diagram.h"
#include "cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char BOTTLENECK_USAGE[] =
    "usage: attnscope bottleneck A B [--dim K] [--matching]\n"
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
    "\n"
    "The distance is the last line of the output (`inf` when the diagrams have different\n"
    "numbers of essential classes). Bad input: a message naming the file and line, status 2.\n";

static const char WASSERSTEIN_USAGE[] =
    "usage: attnscope wasserstein A B [--q Q] [--internal-p P] [--delta D] [--exact]\n"
    "                             [--dim K] [--matching]\n"
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
    "\n"
    "The distance is the last line of the output (`inf` when the diagrams have different\n"
    "numbers of essential classes). Bad input: a message naming the file and line, status 2.\n";

typedef struct dd_args {
    const char *files[2];
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
        int known = !strcmp(name, "--dim") ||
                    (wasserstein && (!strcmp(name, "--q") || !strcmp(name, "--internal-p") ||
                                     !strcmp(name, "--delta")));
        if (!known) return ats_cli_usage_error(cmd, "unknown option '%s' (see --help)", arg);
        if (!val) {
            if (i + 1 >= argc) return ats_cli_usage_error(cmd, "%s needs a value", name);
            val = argv[++i];
        }
        if (!strcmp(name, "--dim")) {
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

static int run(int argc, char **argv, int wasserstein) {
    dd_args args;
    int rc = parse_args(argc, argv, wasserstein, &args);
    if (rc >= 0) return rc;
    ats_error err;
    ats_error_clear(&err);
    ats_diagram d[2] = {{0, NULL}, {0, NULL}};
    for (int k = 0; k < 2; k++)
        if (ats_diagram_read(args.files[k], (int)args.dim, &d[k], &err)) {
            ats_diagram_free(&d[0]);
            return ats_cli_fail(&err);
        }
    double dist;
    ats_matching m = {0, NULL};
    ats_status st;
    if (wasserstein)
        st = ats_wasserstein_distance(&d[0], &d[1], &args.wopt, &dist, args.matching ? &m : NULL,
                                      &err);
    else
        st = ats_bottleneck_distance(&d[0], &d[1], &dist, args.matching ? &m : NULL, &err);
    if (st) {
        ats_diagram_free(&d[0]);
        ats_diagram_free(&d[1]);
        return ats_cli_fail(&err);
    }
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
