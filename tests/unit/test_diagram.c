/* Diagram files (pairs, Ripser, JSON, DIPHA) and the bottleneck and Wasserstein distances:
 * hand-checked small cases, essential classes, brute-force comparisons, bad input. */
#include "attnscope/diagram.h"
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *TMP = "build-test-diagram.txt";

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    fputs(text, fp);
    fclose(fp);
}

static ats_diagram dg(size_t n, const double *pairs) {
    ats_diagram d = {n, (double *)pairs};
    return d;
}

/* Reads text written to TMP; returns the status and leaves the message in err. */
static ats_status read_text(const char *text, int dim, ats_diagram *out, ats_error *err) {
    write_text(TMP, text);
    return ats_diagram_read(TMP, dim, out, err);
}

static int has(const char *s, const char *sub) {
    return strstr(s, sub) != NULL;
}

static void test_pairs_io(void) {
    ats_error err;
    ats_diagram d;
    CHECK(read_text("# a comment\n0 1\n\n  0.5\t2.5  # trailing\n1 inf\n-inf 3\n2 +INF\r\n", -1, &d,
                    &err) == ATS_OK);
    CHECK(d.count == 5);
    if (d.count == 5) {
        CHECK(d.pairs[0] == 0 && d.pairs[1] == 1 && d.pairs[2] == 0.5 && d.pairs[3] == 2.5);
        CHECK(d.pairs[4] == 1 && isinf(d.pairs[5]) && d.pairs[5] > 0);
        CHECK(isinf(d.pairs[6]) && d.pairs[6] < 0 && d.pairs[7] == 3);
        CHECK(isinf(d.pairs[9]));
    }
    ats_diagram_free(&d);
    CHECK(d.pairs == NULL && d.count == 0);

    /* empty file, comments only: empty diagram */
    CHECK(read_text("", -1, &d, &err) == ATS_OK && d.count == 0);
    CHECK(read_text("# nothing\n\n", -1, &d, &err) == ATS_OK && d.count == 0);

    /* GUDHI's dim and field columns */
    CHECK(read_text("0 0 1\n1 0.5 0.7\n1 0.2 inf\n", 1, &d, &err) == ATS_OK && d.count == 2);
    if (d.count == 2) CHECK(d.pairs[0] == 0.5 && isinf(d.pairs[3]));
    ats_diagram_free(&d);
    CHECK(read_text("0 0 1\n1 0.5 0.7\n", -1, &d, &err) == ATS_OK && d.count == 2);
    ats_diagram_free(&d);
    CHECK(read_text("2 0 0 1\n2 1 0.5 0.7\n", 0, &d, &err) == ATS_OK && d.count == 1);
    ats_diagram_free(&d);

    /* points below the diagonal are accepted (superlevel filtrations, Hera, GUDHI) */
    CHECK(read_text("2 1\n", -1, &d, &err) == ATS_OK && d.count == 1);
    ats_diagram_free(&d);

    /* errors name the file and the line */
    CHECK(read_text("0 1\n0 abc\n", -1, &d, &err) == ATS_ERR_FORMAT);
    CHECK(has(err.message, "build-test-diagram.txt:2:") && has(err.message, "abc"));
    CHECK(d.count == 0 && d.pairs == NULL);
    CHECK(read_text("0 1\n\n0 nan\n", -1, &d, &err) == ATS_ERR_INVALID);
    CHECK(has(err.message, ":3:") && has(err.message, "NaN"));
    CHECK(read_text("0 1\n7\n", -1, &d, &err) == ATS_ERR_FORMAT);
    CHECK(has(err.message, ":2:") && has(err.message, "one column"));
    CHECK(read_text("0 1\n0 1 2\n", -1, &d, &err) == ATS_ERR_FORMAT);
    CHECK(has(err.message, ":2:") && has(err.message, "columns"));
    CHECK(read_text("1 2 3 4 5\n", -1, &d, &err) == ATS_ERR_FORMAT);
    CHECK(has(err.message, ":1:"));
    CHECK(read_text("0.5 0 1\n", -1, &d, &err) == ATS_ERR_FORMAT);
    CHECK(has(err.message, ":1:") && has(err.message, "dimension"));
    CHECK(read_text("0 1e999\n", -1, &d, &err) == ATS_ERR_FORMAT);
    CHECK(read_text("0x10 1\n", -1, &d, &err) == ATS_ERR_FORMAT);
    CHECK(ats_diagram_read("no-such-diagram-file.txt", -1, &d, &err) == ATS_ERR_IO);
    CHECK(has(err.message, "no-such-diagram-file.txt"));

    /* write and read back, infinities included */
    double pts[] = {0.1, 0.30000000000000004, 1, INFINITY, -INFINITY, 2, 1e-300, 1e300};
    ats_diagram w = dg(4, pts);
    CHECK(ats_diagram_write_pairs(TMP, &w, &err) == ATS_OK);
    CHECK(ats_diagram_read(TMP, -1, &d, &err) == ATS_OK && d.count == 4);
    if (d.count == 4) CHECK(memcmp(d.pairs, pts, sizeof pts) == 0);
    ats_diagram_free(&d);
}

static void test_ripser_io(void) {
    ats_error err;
    ats_diagram d;
    const char *text = "distance matrix with 4 points\n"
                       "value range: [1,2]\n"
                       "persistence intervals in dim 0:\n"
                       " [0,1)\n"
                       " [0,1)\n"
                       " [0, )\n"
                       "persistence intervals in dim 1:\n"
                       " [1,1.5)\n";
    CHECK(read_text(text, 0, &d, &err) == ATS_OK && d.count == 3);
    if (d.count == 3) CHECK(d.pairs[1] == 1 && d.pairs[4] == 0 && isinf(d.pairs[5]));
    ats_diagram_free(&d);
    CHECK(read_text(text, 1, &d, &err) == ATS_OK && d.count == 1);
    if (d.count == 1) CHECK(d.pairs[0] == 1 && d.pairs[1] == 1.5);
    ats_diagram_free(&d);
    CHECK(read_text(text, -1, &d, &err) == ATS_OK && d.count == 4);
    ats_diagram_free(&d);
    CHECK(read_text(text, 2, &d, &err) == ATS_OK && d.count == 0);
    ats_diagram_format f;
    CHECK(ats_diagram_detect(TMP, &f, &err) == ATS_OK && f == ATS_DIAGRAM_RIPSER);
    CHECK(read_text("persistence intervals in dim 0:\n [0,x)\n", 0, &d, &err) == ATS_ERR_FORMAT);
    CHECK(has(err.message, ":2:"));
    CHECK(read_text("persistence intervals in dim 0:\n [0,1\n", 0, &d, &err) == ATS_ERR_FORMAT);
    CHECK(has(err.message, ":2:"));
    /* forced format without the header */
    CHECK(ats_diagram_parse("0 1\n", 4, "x", ATS_DIAGRAM_RIPSER, -1, &d, &err) == ATS_ERR_FORMAT);
    /* a header cut off at the end of a buffer that has no NUL after it (found by fuzzing: the
     * dimension was read past the end); the exact-size copy lets ASan see any overread */
    const char *cut[3] = {"persistence intervals in dim ", "persistence intervals in dim 12",
                          " persistence intervals in dim  3"};
    for (int i = 0; i < 3; i++) {
        size_t len = strlen(cut[i]);
        char *buf = malloc(len);
        memcpy(buf, cut[i], len);
        CHECK(ats_diagram_parse(buf, len, "cut", ATS_DIAGRAM_RIPSER, -1, &d, &err) ==
              ATS_ERR_FORMAT);
        CHECK(has(err.message, "cut:1:"));
        free(buf);
    }
    char ok[] = "persistence intervals in dim  1:\n [0.5,2)";
    CHECK(ats_diagram_parse(ok, sizeof ok - 1, "ok", ATS_DIAGRAM_RIPSER, 1, &d, &err) == ATS_OK &&
          d.count == 1);
    ats_diagram_free(&d);
}

static void test_json_io(void) {
    ats_error err;
    ats_diagram d;
    const char *text = "{\"dims\":[{\"dim\":0,\"pairs\":[[0,1],[0,null]]},\n"
                       "{\"dim\":1,\"pairs\":[[0.25,0.5],[\"-inf\",2]]}]}";
    CHECK(read_text(text, 0, &d, &err) == ATS_OK && d.count == 2);
    if (d.count == 2) CHECK(d.pairs[1] == 1 && isinf(d.pairs[3]));
    ats_diagram_free(&d);
    CHECK(read_text(text, 1, &d, &err) == ATS_OK && d.count == 2);
    if (d.count == 2) CHECK(d.pairs[0] == 0.25 && isinf(d.pairs[2]) && d.pairs[2] < 0);
    ats_diagram_free(&d);
    CHECK(read_text(text, -1, &d, &err) == ATS_OK && d.count == 4);
    ats_diagram_free(&d);
    CHECK(read_text("[[0, 1], [2, 3]]", -1, &d, &err) == ATS_OK && d.count == 2);
    ats_diagram_free(&d);

    CHECK(read_text("{\"dims\":[{\"dim\":0,\"pairs\":[[0,1],\n[0]]}]}", 0, &d, &err) ==
          ATS_ERR_FORMAT);
    CHECK(has(err.message, "dims[0].pairs[1]"));
    CHECK(read_text("{\"dims\":[{\"dim\":0,\n\"pairs\":[[0,1],]}]}", 0, &d, &err) ==
          ATS_ERR_FORMAT);
    CHECK(has(err.message, ":2:"));
    CHECK(read_text("{\"dims\":[{\"dim\":-1,\"pairs\":[]}]}", 0, &d, &err) == ATS_ERR_FORMAT);
    CHECK(read_text("{\"dims\":[{\"dim\":0,\"pairs\":[[null,1]]}]}", 0, &d, &err) ==
          ATS_ERR_FORMAT);
    CHECK(read_text("{\"pairs\":[]}", 0, &d, &err) == ATS_ERR_FORMAT);
    /* topo's result.json: the same object under "diagrams", beside the tokens and the rest */
    const char *topo = "{\"tokens\":[\"a\",\"b\"],\"layer\":3,\"diagrams\":{\"n_points\":2,"
                       "\"dims\":[{\"dim\":0,\"pairs\":[[0,0.5],[0,null]]},{\"dim\":1,"
                       "\"pairs\":[]}]},\"h1_cycles\":[]}";
    CHECK(read_text(topo, 0, &d, &err) == ATS_OK && d.count == 2);
    if (d.count == 2) CHECK(d.pairs[1] == 0.5 && isinf(d.pairs[3]));
    ats_diagram_free(&d);
    CHECK(read_text(topo, 1, &d, &err) == ATS_OK && d.count == 0);
    CHECK(read_text("{\"diagrams\":{\"pairs\":[]}}", 0, &d, &err) == ATS_ERR_FORMAT);
    CHECK(has(err.message, "topo's result.json"));

    /* writer: null for an essential death, strings for other infinities */
    double p0[] = {0, 1, 0, INFINITY}, p1[] = {0.1, 0.7, -INFINITY, 3};
    ats_diagram ds[2] = {dg(2, p0), dg(2, p1)};
    int dims[2] = {0, 1};
    CHECK(ats_diagram_write_json(TMP, 2, ds, dims, &err) == ATS_OK);
    for (int k = 0; k < 2; k++) {
        CHECK(ats_diagram_read(TMP, k, &d, &err) == ATS_OK && d.count == 2);
        if (d.count == 2) CHECK(memcmp(d.pairs, k ? p1 : p0, sizeof p0) == 0);
        ats_diagram_free(&d);
    }
    char *buf;
    size_t len;
    CHECK(ats_file_read_all(TMP, 1 << 20, &buf, &len, &err) == ATS_OK);
    CHECK(has(buf, "[0,null]") && has(buf, "[\"-inf\",3]") && has(buf, "\"dim\":1"));
    free(buf);
}

static void test_dipha_io(void) {
    ats_error err;
    ats_diagram d;
    double p0[] = {0, 1, 0, INFINITY}, p1[] = {0.5, 0.75};
    ats_diagram ds[2] = {dg(2, p0), dg(1, p1)};
    int dims[2] = {0, 1};
    CHECK(ats_diagram_write_dipha(TMP, 2, ds, dims, &err) == ATS_OK);
    ats_diagram_format f;
    CHECK(ats_diagram_detect(TMP, &f, &err) == ATS_OK && f == ATS_DIAGRAM_DIPHA);
    CHECK(ats_diagram_read(TMP, 0, &d, &err) == ATS_OK && d.count == 2);
    if (d.count == 2) CHECK(d.pairs[1] == 1 && isinf(d.pairs[3]));
    ats_diagram_free(&d);
    CHECK(ats_diagram_read(TMP, 1, &d, &err) == ATS_OK && d.count == 1);
    if (d.count == 1) CHECK(d.pairs[0] == 0.5 && d.pairs[1] == 0.75);
    ats_diagram_free(&d);

    /* truncated file: the header promises more than there is */
    char *buf;
    size_t len;
    CHECK(ats_file_read_all(TMP, 1 << 20, &buf, &len, &err) == ATS_OK && len == 24 + 3 * 24);
    FILE *fp = fopen(TMP, "wb");
    fwrite(buf, 1, len - 5, fp);
    fclose(fp);
    CHECK(ats_diagram_read(TMP, 0, &d, &err) == ATS_ERR_FORMAT && has(err.message, "DIPHA"));
    /* absurd count */
    memset(buf + 16, 0x7f, 8);
    fp = fopen(TMP, "wb");
    fwrite(buf, 1, len, fp);
    fclose(fp);
    CHECK(ats_diagram_read(TMP, 0, &d, &err) == ATS_ERR_RANGE);
    /* wrong type */
    buf[16] = 3, memset(buf + 17, 0, 7);
    buf[8] = 7;
    fp = fopen(TMP, "wb");
    fwrite(buf, 1, len, fp);
    fclose(fp);
    CHECK(ats_diagram_read(TMP, 0, &d, &err) == ATS_ERR_FORMAT && has(err.message, "type 7"));
    free(buf);
}

/* ---- brute force references */

static double linf(const double *x, const double *y) {
    return fmax(fabs(x[0] - y[0]), fabs(x[1] - y[1]));
}

static double diag_linf(const double *x) {
    double m = (x[0] + x[1]) / 2;
    return fmax(fabs(x[0] - m), fabs(x[1] - m));
}

/* Kuhn's augmenting paths on the dense augmented graph at radius r (finite points only). */
static int bf_try(int u, int N, const unsigned char *adj, int *mate, unsigned char *seen) {
    for (int v = 0; v < N; v++) {
        if (!adj[u * N + v] || seen[v]) continue;
        seen[v] = 1;
        if (mate[v] < 0 || bf_try(mate[v], N, adj, mate, seen)) {
            mate[v] = u;
            return 1;
        }
    }
    return 0;
}

static double brute_bottleneck(int n, const double *a, int m, const double *b) {
    int N = n + m;
    if (N == 0) return 0;
    double *cand = malloc((size_t)(n * m + N + 1) * sizeof(double));
    int nc = 0;
    for (int i = 0; i < n; i++) cand[nc++] = diag_linf(a + 2 * i);
    for (int j = 0; j < m; j++) cand[nc++] = diag_linf(b + 2 * j);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < m; j++) cand[nc++] = linf(a + 2 * i, b + 2 * j);
    cand[nc++] = 0;
    unsigned char *adj = malloc((size_t)(N * N)), *seen = malloc((size_t)N);
    int *mate = malloc((size_t)N * sizeof(int));
    double best = INFINITY;
    for (int c = 0; c < nc; c++) {
        double r = cand[c];
        if (r >= best) continue;
        for (int u = 0; u < N; u++)
            for (int v = 0; v < N; v++) {
                double cost;
                if (u < n && v < m)
                    cost = linf(a + 2 * u, b + 2 * v);
                else if (u < n)
                    cost = v - m == u ? diag_linf(a + 2 * u) : INFINITY;
                else if (v < m)
                    cost = u - n == v ? diag_linf(b + 2 * v) : INFINITY;
                else
                    cost = 0;
                adj[u * N + v] = cost <= r;
            }
        for (int v = 0; v < N; v++) mate[v] = -1;
        int ok = 1;
        for (int u = 0; u < N && ok; u++) {
            memset(seen, 0, (size_t)N);
            ok = bf_try(u, N, adj, mate, seen);
        }
        if (ok) best = r;
    }
    free(cand), free(adj), free(seen), free(mate);
    return best;
}

static double lp(double dx, double dy, double p) {
    if (isinf(p)) return fmax(dx, dy);
    return pow(pow(dx, p) + pow(dy, p), 1 / p);
}

/* Minimum over all permutations of the augmented problem (N <= 8). */
static double bf_perm(int k, int N, int *perm, const double *C) {
    if (k == N) {
        double s = 0;
        for (int i = 0; i < N; i++) s += C[i * N + perm[i]];
        return s;
    }
    double best = INFINITY;
    for (int i = k; i < N; i++) {
        int t = perm[k];
        perm[k] = perm[i], perm[i] = t;
        best = fmin(best, bf_perm(k + 1, N, perm, C));
        t = perm[k], perm[k] = perm[i], perm[i] = t;
    }
    return best;
}

static double brute_wasserstein(int n, const double *a, int m, const double *b, double q,
                                double p) {
    int N = n + m;
    double *C = malloc((size_t)(N * N + 1) * sizeof(double));
    int perm[16];
    for (int u = 0; u < N; u++) {
        perm[u] = u;
        for (int v = 0; v < N; v++) {
            double c;
            if (u < n && v < m)
                c = lp(fabs(a[2 * u] - b[2 * v]), fabs(a[2 * u + 1] - b[2 * v + 1]), p);
            else if (u < n) {
                double h = fabs(a[2 * u + 1] - a[2 * u]) / 2;
                c = lp(h, h, p);
            } else if (v < m) {
                double h = fabs(b[2 * v + 1] - b[2 * v]) / 2;
                c = lp(h, h, p);
            } else
                c = 0;
            C[u * N + v] = pow(c, q);
        }
    }
    double s = bf_perm(0, N, perm, C);
    free(C);
    return pow(s, 1 / q);
}

static unsigned long long rng_state = 88172645463325252ULL;
static double rnd(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static void random_diagram(int n, double *p, int integer) {
    for (int i = 0; i < n; i++) {
        if (integer) {
            p[2 * i] = floor(rnd() * 5);
            p[2 * i + 1] = p[2 * i] + 1 + floor(rnd() * 4);
        } else {
            p[2 * i] = rnd() * 4;
            p[2 * i + 1] = p[2 * i] + rnd() * 2;
        }
    }
}

/* Every index once, -1 only as a partner. */
static int matching_valid(const ats_matching *m, size_t na, size_t nb) {
    int ok = 1;
    unsigned char *sa = calloc(na + 1, 1), *sb = calloc(nb + 1, 1);
    for (size_t k = 0; k < m->count; k++) {
        int64_t i = m->pairs[2 * k], j = m->pairs[2 * k + 1];
        if (i < -1 || j < -1 || (i == -1 && j == -1) || i >= (int64_t)na || j >= (int64_t)nb) {
            ok = 0;
            continue;
        }
        if (i >= 0) ok &= !sa[i]++;
        if (j >= 0) ok &= !sb[j]++;
    }
    for (size_t i = 0; i < na; i++) ok &= sa[i] == 1;
    for (size_t j = 0; j < nb; j++) ok &= sb[j] == 1;
    free(sa), free(sb);
    return ok;
}

static void test_bottleneck_small(void) {
    ats_error err;
    double d;
    ats_matching m;
    double a1[] = {1, 2}, b1[] = {4, 6};
    ats_diagram A = dg(1, a1), B = dg(1, b1), E = dg(0, NULL);
    CHECK(ats_bottleneck_distance(&A, &B, &d, &m, &err) == ATS_OK && d == 1);
    CHECK(matching_valid(&m, 1, 1) && m.count == 2);
    ats_matching_free(&m);
    CHECK(ats_bottleneck_distance(&A, &E, &d, NULL, &err) == ATS_OK && d == 0.5);
    CHECK(ats_bottleneck_distance(&E, &E, &d, &m, &err) == ATS_OK && d == 0 && m.count == 0);
    ats_matching_free(&m);
    double a2[] = {0, 2}, b2[] = {0, 2.5};
    A = dg(1, a2), B = dg(1, b2);
    CHECK(ats_bottleneck_distance(&A, &B, &d, &m, &err) == ATS_OK && d == 0.5);
    CHECK(m.count == 1 && m.pairs[0] == 0 && m.pairs[1] == 0);
    ats_matching_free(&m);
    /* identical diagrams, and points on the diagonal, are at distance 0 */
    double a3[] = {0, 1, 2, 3, 5, 5}, b3[] = {2, 3, 7, 7, 0, 1};
    A = dg(3, a3), B = dg(3, b3);
    CHECK(ats_bottleneck_distance(&A, &B, &d, &m, &err) == ATS_OK && d == 0);
    CHECK(matching_valid(&m, 3, 3));
    ats_matching_free(&m);
    /* below the diagonal: |death - birth| / 2 */
    double a4[] = {1.5, 0.5};
    A = dg(1, a4);
    CHECK(ats_bottleneck_distance(&A, &E, &d, NULL, &err) == ATS_OK && d == 0.5);
}

static void test_essential(void) {
    ats_error err;
    double d;
    ats_matching m;
    double a[] = {1, 2, 2, INFINITY, 3, INFINITY, 10, INFINITY, INFINITY, 21, INFINITY, 44};
    double b[] = {1.1, 2.2, 4, INFINITY, 4, INFINITY, 12, INFINITY, INFINITY, 20, INFINITY, 40};
    ats_diagram A = dg(6, a), B = dg(6, b);
    CHECK(ats_bottleneck_distance(&A, &B, &d, &m, &err) == ATS_OK && d == 4);
    CHECK(matching_valid(&m, 6, 6));
    ats_matching_free(&m);
    ats_wasserstein_options o;
    ats_wasserstein_options_init(&o);
    /* essential: 2+1+2 (births) + 1+4 (deaths) = 10; finite (1,2)-(1.1,2.2): 0.2 */
    CHECK(ats_wasserstein_distance(&A, &B, &o, &d, NULL, &err) == ATS_OK);
    CHECK_NEAR(d, 10.2, 1e-12);
    o.q = 2;
    CHECK(ats_wasserstein_distance(&A, &B, &o, &d, NULL, &err) == ATS_OK);
    CHECK_NEAR(d, sqrt(4 + 1 + 4 + 1 + 16 + 0.04), 1e-12);
    /* different counts in a class: +inf, empty matching */
    ats_diagram B5 = dg(5, b);
    CHECK(ats_bottleneck_distance(&A, &B5, &d, &m, &err) == ATS_OK && isinf(d) && m.count == 0);
    ats_matching_free(&m);
    CHECK(ats_wasserstein_distance(&A, &B5, &o, &d, &m, &err) == ATS_OK && isinf(d));
    ats_matching_free(&m);
    /* (-inf, +inf) classes count only; (inf, inf) is on the diagonal */
    double c[] = {-INFINITY, INFINITY, 2, 1}, e[] = {-INFINITY, INFINITY, INFINITY, INFINITY, 4, 9};
    ats_diagram C = dg(2, c), D = dg(3, e);
    o.q = 1;
    CHECK(ats_wasserstein_distance(&C, &D, &o, &d, &m, &err) == ATS_OK && d == 3);
    CHECK(matching_valid(&m, 2, 3));
    ats_matching_free(&m);
    CHECK(ats_bottleneck_distance(&C, &D, &d, NULL, &err) == ATS_OK && d == 2.5);
    double f[] = {INFINITY, -INFINITY};
    ats_diagram F = dg(1, f);
    CHECK(ats_bottleneck_distance(&C, &F, &d, NULL, &err) == ATS_OK && isinf(d));
    /* NaN is refused */
    double g[] = {0, NAN};
    ats_diagram G = dg(1, g);
    CHECK(ats_bottleneck_distance(&G, &C, &d, NULL, &err) == ATS_ERR_INVALID);
    CHECK(has(err.message, "first diagram"));
    CHECK(ats_wasserstein_distance(&C, &G, &o, &d, NULL, &err) == ATS_ERR_INVALID);
    CHECK(has(err.message, "second diagram"));
    CHECK(ats_diagram_from_pairs(1, g, &F, &err) == ATS_ERR_INVALID);
}

static void test_bottleneck_random(void) {
    ats_error err;
    double a[2 * 14], b[2 * 14];
    int bad = 0;
    for (int it = 0; it < 300; it++) {
        int n = (int)(rnd() * 7), m = (int)(rnd() * 7), integer = it % 2;
        random_diagram(n, a, integer);
        random_diagram(m, b, integer);
        if (it % 5 == 0 && n > 1 && m > 1) memcpy(b, a, 2 * sizeof(double)); /* duplicate */
        ats_diagram A = dg((size_t)n, a), B = dg((size_t)m, b);
        double d;
        ats_matching mt;
        CHECK(ats_bottleneck_distance(&A, &B, &d, &mt, &err) == ATS_OK);
        double ref = brute_bottleneck(n, a, m, b);
        if (d != ref) {
            bad++;
            fprintf(stderr, "bottleneck n=%d m=%d: %.17g, brute force %.17g\n", n, m, d, ref);
        }
        /* the matching achieves the distance */
        double worst = 0;
        for (size_t k = 0; k < mt.count; k++) {
            int64_t i = mt.pairs[2 * k], j = mt.pairs[2 * k + 1];
            double c = i >= 0 && j >= 0 ? linf(a + 2 * i, b + 2 * j)
                                        : diag_linf(i >= 0 ? a + 2 * i : b + 2 * j);
            worst = fmax(worst, c);
        }
        CHECK(matching_valid(&mt, (size_t)n, (size_t)m) && worst == d);
        ats_matching_free(&mt);
    }
    CHECK(bad == 0);
}

static void test_wasserstein_small(void) {
    ats_error err;
    double d;
    ats_wasserstein_options o;
    ats_wasserstein_options_init(&o);
    CHECK(o.q == 1 && isinf(o.internal_p) && o.delta == 0.01 && o.exact == 0);
    double a[] = {0, 2, 0, 4};
    ats_diagram A = dg(1, a), E = dg(0, NULL);
    CHECK(ats_wasserstein_distance(&A, &E, &o, &d, NULL, &err) == ATS_OK && d == 1);
    o.internal_p = 1;
    CHECK(ats_wasserstein_distance(&A, &E, &o, &d, NULL, &err) == ATS_OK && d == 2);
    o.internal_p = 2;
    CHECK(ats_wasserstein_distance(&A, &E, &o, &d, NULL, &err) == ATS_OK);
    CHECK_NEAR(d, sqrt(2), 1e-15);
    A = dg(2, a);
    o.internal_p = INFINITY, o.q = 2;
    CHECK(ats_wasserstein_distance(&A, &E, &o, &d, NULL, &err) == ATS_OK);
    CHECK_NEAR(d, sqrt(5), 1e-15);
    CHECK(ats_wasserstein_distance(&E, &E, NULL, &d, NULL, &err) == ATS_OK && d == 0);
    /* (0,2) vs (0,2.5): moving costs 0.5, both to the diagonal 1 + 1.25 */
    double b[] = {0, 2.5};
    ats_diagram B = dg(1, b);
    A = dg(1, a);
    o.q = 1;
    CHECK(ats_wasserstein_distance(&A, &B, &o, &d, NULL, &err) == ATS_OK && d == 0.5);
    /* bad options */
    o.q = 0.5;
    CHECK(ats_wasserstein_distance(&A, &B, &o, &d, NULL, &err) == ATS_ERR_INVALID);
    o.q = INFINITY;
    CHECK(ats_wasserstein_distance(&A, &B, &o, &d, NULL, &err) == ATS_ERR_INVALID);
    o.q = 1, o.internal_p = 0.5;
    CHECK(ats_wasserstein_distance(&A, &B, &o, &d, NULL, &err) == ATS_ERR_INVALID);
    o.internal_p = NAN;
    CHECK(ats_wasserstein_distance(&A, &B, &o, &d, NULL, &err) == ATS_ERR_INVALID);
    o.internal_p = 2, o.delta = 0;
    CHECK(ats_wasserstein_distance(&A, &B, &o, &d, NULL, &err) == ATS_ERR_INVALID);
}

/* Exact solver against all permutations; the auction (forced) within its stated error. */
static void test_wasserstein_random(void) {
    ats_error err;
    double a[2 * 8], b[2 * 8];
    const double qs[] = {1, 2, 1.5, 3}, ps[] = {INFINITY, 1, 2, 3.5};
    int bad = 0;
    for (int it = 0; it < 120; it++) {
        int n = (int)(rnd() * 5), m = (int)(rnd() * 5);
        random_diagram(n, a, it % 3 == 0);
        random_diagram(m, b, it % 3 == 0);
        ats_diagram A = dg((size_t)n, a), B = dg((size_t)m, b);
        ats_wasserstein_options o;
        ats_wasserstein_options_init(&o);
        o.q = qs[it % 4];
        o.internal_p = ps[(it / 4) % 4];
        double ref = brute_wasserstein(n, a, m, b, o.q, o.internal_p);
        double d, d2;
        ats_matching mt;
        o.exact = 1;
        CHECK(ats_wasserstein_distance(&A, &B, &o, &d, &mt, &err) == ATS_OK);
        CHECK(matching_valid(&mt, (size_t)n, (size_t)m));
        ats_matching_free(&mt);
        o.exact = 0, o.exact_max = 0;
        CHECK(ats_wasserstein_distance(&A, &B, &o, &d2, &mt, &err) == ATS_OK);
        CHECK(matching_valid(&mt, (size_t)n, (size_t)m));
        ats_matching_free(&mt);
        if (!(fabs(d - ref) <= 1e-12 * fmax(1, ref)) ||
            !(d2 >= ref * (1 - 1e-12) && d2 <= (1 + o.delta) * ref + 1e-12)) {
            bad++;
            fprintf(stderr,
                    "wasserstein n=%d m=%d q=%g p=%g: exact %.17g auction %.17g ref %.17g\n", n, m,
                    o.q, o.internal_p, d, d2, ref);
        }
    }
    CHECK(bad == 0);
}

/* Larger diagrams: auction against the exact solver, for several deltas. */
static void test_auction_vs_exact(void) {
    ats_error err;
    enum { N = 90 };
    double a[2 * N], b[2 * N];
    const double deltas[] = {0.01, 0.1, 0.001};
    for (int it = 0; it < 9; it++) {
        int n = N - 10 * (it % 3), m = N - 7 * (it % 2);
        random_diagram(n, a, it % 4 == 0);
        random_diagram(m, b, it % 4 == 0);
        ats_diagram A = dg((size_t)n, a), B = dg((size_t)m, b);
        ats_wasserstein_options o;
        ats_wasserstein_options_init(&o);
        o.q = it % 2 ? 2 : 1;
        o.internal_p = it % 3 == 2 ? 2 : INFINITY;
        o.delta = deltas[it % 3];
        double ex, ap;
        o.exact = 1;
        CHECK(ats_wasserstein_distance(&A, &B, &o, &ex, NULL, &err) == ATS_OK);
        o.exact = 0, o.exact_max = 0;
        ats_matching mt;
        CHECK(ats_wasserstein_distance(&A, &B, &o, &ap, &mt, &err) == ATS_OK);
        CHECK(ap >= ex * (1 - 1e-12) && ap <= (1 + o.delta) * ex);
        /* the matching's cost is the reported distance */
        double s = 0;
        for (size_t k = 0; k < mt.count; k++) {
            int64_t i = mt.pairs[2 * k], j = mt.pairs[2 * k + 1];
            double c;
            if (i >= 0 && j >= 0)
                c = lp(fabs(a[2 * i] - b[2 * j]), fabs(a[2 * i + 1] - b[2 * j + 1]), o.internal_p);
            else {
                const double *x = i >= 0 ? a + 2 * i : b + 2 * j;
                double h = fabs(x[1] - x[0]) / 2;
                c = lp(h, h, o.internal_p);
            }
            s += pow(c, o.q);
        }
        CHECK_NEAR(pow(s, 1 / o.q), ap, 1e-9 * ap);
        ats_matching_free(&mt);
    }
}

int main(void) {
    test_pairs_io();
    test_ripser_io();
    test_json_io();
    test_dipha_io();
    test_bottleneck_small();
    test_essential();
    test_bottleneck_random();
    test_wasserstein_small();
    test_wasserstein_random();
    test_auction_vs_exact();
    remove(TMP);
    return check_report("test_diagram");
}
