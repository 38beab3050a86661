/* Rips engine through the C API: known diagrams, representatives, clusters, batch, errors. */
#include "attnscope/rips.h"
#include "check.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PI 3.14159265358979323846

/* Points on a circle, radius 1, n equally spaced: H1 is born at the side length 2 sin(pi/n) and
 * dies at the diameter of the largest inscribed triangle. */
static double *circle_metric(size_t n) {
    double *pts = malloc(2 * n * sizeof *pts);
    double *lower = malloc(n * (n - 1) / 2 * sizeof *lower);
    for (size_t i = 0; i < n; i++) {
        pts[2 * i] = cos(2 * PI * (double)i / (double)n);
        pts[2 * i + 1] = sin(2 * PI * (double)i / (double)n);
    }
    ats_error err;
    CHECK(ats_metric_from_points(n, 2, pts, lower, &err) == ATS_OK);
    free(pts);
    return lower;
}

static double dist_of(const double *lower, int a, int b) {
    return lower[ats_lower_index((size_t)a, (size_t)b)];
}

/* The cocycle z of an H1 pair [b, d) must vanish on the coboundary of every triangle of diameter
 * below d: z(bc) - z(ac) + z(ab) = 0 mod p for a > b > c. */
static int cocycle_ok(const double *lower, size_t n, const ats_representative *z, double death,
                      unsigned p) {
    long *val = calloc(n * n, sizeof *val);
    for (size_t s = 0; s < z->count; s++) {
        int a = z->vertices[2 * s], b = z->vertices[2 * s + 1];
        val[(size_t)a * n + (size_t)b] = z->coefs[s];
    }
    int ok = 1;
    for (int a = 2; a < (int)n; a++)
        for (int b = 1; b < a; b++)
            for (int c = 0; c < b; c++) {
                double d =
                    fmax(dist_of(lower, a, b), fmax(dist_of(lower, a, c), dist_of(lower, b, c)));
                if (d >= death) continue;
                long v = val[(size_t)b * n + (size_t)c] - val[(size_t)a * n + (size_t)c] +
                         val[(size_t)a * n + (size_t)b];
                if (((v % (long)p) + (long)p) % (long)p != 0) ok = 0;
            }
    free(val);
    return ok;
}

static void test_circle(unsigned modulus) {
    size_t n = 12;
    double *lower = circle_metric(n);
    ats_rips_options opt;
    ats_rips_options_init(&opt);
    opt.max_dim = 2;
    opt.modulus = modulus;
    opt.want_cocycles = 1;
    ats_rips_result res;
    ats_error err;
    CHECK(ats_rips_compute(n, lower, &opt, &res, &err) == ATS_OK);
    CHECK(res.dims[0].count == n); /* n-1 finite merges at the side length + 1 essential */
    CHECK(isinf(res.dims[0].pairs[2 * (n - 1) + 1]));
    CHECK_NEAR(res.dims[0].pairs[1], 2 * sin(PI / 12), 1e-12);
    CHECK(res.dims[1].count == 1);
    CHECK_NEAR(res.dims[1].pairs[0], 2 * sin(PI / 12), 1e-12);
    CHECK_NEAR(res.dims[1].pairs[1], 2 * sin(PI * 4 / 12), 1e-12); /* triangle 0,4,8 */
    CHECK(res.cocycles[1] != NULL && res.cocycles[1][0].count > 0);
    CHECK(cocycle_ok(lower, n, &res.cocycles[1][0], res.dims[1].pairs[1], modulus));
    /* the birth simplex is an edge of the birth length */
    int32_t v[2];
    ats_simplex_vertices(res.birth_simplex[1][0], 1, n, v);
    CHECK_NEAR(dist_of(lower, v[0], v[1]), res.dims[1].pairs[0], 0);
    ats_rips_result_free(&res);
    ats_rips_result_free(&res); /* idempotent */
    free(lower);
}

static void test_clusters(void) {
    /* two tight pairs far apart */
    double pts[8] = {0, 0, 0.1, 0, 5, 5, 5.1, 5};
    double lower[6];
    ats_error err;
    CHECK(ats_metric_from_points(4, 2, pts, lower, &err) == ATS_OK);
    int32_t labels[4];
    size_t k;
    CHECK(ats_rips_clusters(4, lower, 0.2, labels, &k, &err) == ATS_OK);
    CHECK(k == 2 && labels[0] == 0 && labels[1] == 0 && labels[2] == 1 && labels[3] == 1);
    CHECK(ats_rips_clusters(4, lower, 0.05, labels, &k, &err) == ATS_OK);
    CHECK(k == 4 && labels[3] == 3);
    CHECK(ats_rips_clusters(4, lower, 100, labels, &k, &err) == ATS_OK);
    CHECK(k == 1);
}

static void test_simplex_vertices(void) {
    /* index of {7,4,1} = C(7,3)+C(4,2)+C(1,1) = 35+6+1 = 42 */
    int32_t v[4];
    ats_simplex_vertices(42, 2, 10, v);
    CHECK(v[0] == 7 && v[1] == 4 && v[2] == 1);
    ats_simplex_vertices(0, 3, 10, v);
    CHECK(v[0] == 3 && v[1] == 2 && v[2] == 1 && v[3] == 0);
    ats_simplex_vertices(0, 1, 10, v);
    CHECK(v[0] == 1 && v[1] == 0);
}

static void test_batch(void) {
    size_t n = 10;
    double *a = circle_metric(n), *b = circle_metric(n + 3);
    const double *ls[3] = {a, b, a};
    size_t ns[3] = {n, n + 3, n};
    ats_rips_result res[3], one;
    ats_error errs[3], err;
    ats_rips_options opt;
    ats_rips_options_init(&opt);
    CHECK(ats_rips_compute_batch(3, ns, ls, &opt, 2, res, errs) == ATS_OK);
    CHECK(ats_rips_compute(n + 3, b, &opt, &one, &err) == ATS_OK);
    CHECK(res[1].dims[1].count == one.dims[1].count);
    CHECK(memcmp(res[1].dims[1].pairs, one.dims[1].pairs, 2 * one.dims[1].count * sizeof(double)) ==
          0);
    CHECK(res[0].dims[0].count == res[2].dims[0].count);
    for (int i = 0; i < 3; i++) ats_rips_result_free(&res[i]);
    ats_rips_result_free(&one);
    /* an invalid metric in the batch is reported for its index */
    b[3] = NAN;
    CHECK(ats_rips_compute_batch(3, ns, ls, &opt, 2, res, errs) == ATS_ERR_INVALID);
    CHECK(errs[1].status == ATS_ERR_INVALID && errs[0].status == ATS_OK);
    for (int i = 0; i < 3; i++) ats_rips_result_free(&res[i]);
    free(a);
    free(b);
}

static void test_errors(void) {
    ats_rips_result res;
    ats_error err;
    double lower[3] = {1, 2, -1};
    CHECK(ats_rips_compute(3, lower, NULL, &res, &err) == ATS_ERR_INVALID);
    CHECK(strstr(err.message, "row 3, column 2") != NULL);
    CHECK(ats_rips_compute(0, lower, NULL, &res, &err) == ATS_ERR_INVALID);
    ats_rips_options opt;
    ats_rips_options_init(&opt);
    opt.modulus = 9;
    lower[2] = 1;
    CHECK(ats_rips_compute(3, lower, &opt, &res, &err) == ATS_ERR_INVALID);
    double full[4] = {0, 1, 2, 0};
    double l1[1];
    CHECK(ats_metric_from_full(2, full, 0, "m", l1, &err) == ATS_ERR_INVALID);
    CHECK(strstr(err.message, "symmetric") != NULL);
    CHECK(ats_metric_from_full(2, full, 1, "m", l1, &err) == ATS_OK && l1[0] == 1.5);
}

/* The lower triangle is Ripser's layout, row by row, read in either order of the points. */
static void test_lower(void) {
    enum { N = 5 };
    double full[N * N], lower[N * (N - 1) / 2];
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++)
            full[i * N + j] = i == j ? 0 : (double)(i + j) + 0.1 * (i * j);
    ats_error err;
    CHECK(ats_metric_from_full(N, full, 0, "m", lower, &err) == ATS_OK);
    size_t k = 0;
    for (size_t i = 1; i < N; i++)
        for (size_t j = 0; j < i; j++, k++) {
            CHECK(ats_lower_index(i, j) == k && ats_lower_index(j, i) == k);
            CHECK(lower[k] == full[i * N + j]);
        }
    const ats_lower m = {N, lower};
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++) CHECK(ats_lower_at(&m, i, j) == full[i * N + j]);
}

/* ats_rips_compute_rows: rows of a full matrix from a callback. */
typedef struct rows_ctx {
    size_t n, fail_at, calls;
    const double *lower;
} rows_ctx;

static ats_status rows_of(void *ctx, size_t i, double *row, ats_error *err) {
    rows_ctx *c = ctx;
    __atomic_fetch_add(&c->calls, 1, __ATOMIC_RELAXED); /* rows come from several threads */
    if (i == c->fail_at) return ats_error_set(err, ATS_ERR_IO, "row %zu: gone", i);
    const ats_lower m = {c->n, c->lower};
    for (size_t j = 0; j < c->n; j++) row[j] = ats_lower_at(&m, i, j);
    return ATS_OK;
}

static void same_result(const ats_rips_result *a, const ats_rips_result *b, int dims) {
    CHECK(a->threshold == b->threshold && a->min_value == b->min_value &&
          a->max_value == b->max_value && a->n_points == b->n_points);
    for (int k = 0; k <= dims; k++) {
        CHECK(a->dims[k].count == b->dims[k].count);
        if (a->dims[k].count != b->dims[k].count) continue;
        size_t c = a->dims[k].count;
        if (!c) continue; /* empty diagrams may have NULL arrays: memcmp must not see them */
        CHECK(!memcmp(a->dims[k].pairs, b->dims[k].pairs, 2 * c * sizeof(double)));
        CHECK(!memcmp(a->birth_simplex[k], b->birth_simplex[k], c * sizeof(int64_t)));
        CHECK(!memcmp(a->death_simplex[k], b->death_simplex[k], c * sizeof(int64_t)));
    }
    if (a->cycles && b->cycles)
        for (size_t i = 0; i < a->dims[1].count; i++) {
            CHECK(a->cycles[i].count == b->cycles[i].count);
            if (a->cycles[i].count == b->cycles[i].count)
                CHECK(!memcmp(a->cycles[i].vertices, b->cycles[i].vertices,
                              2 * a->cycles[i].count * sizeof(int32_t)));
        }
}

/* count numbers uniform in [0, 1) from the generator state *x */
static void random_unit(double *out, int count, unsigned *x) {
    for (int i = 0; i < count; i++) {
        *x = *x * 1103515245u + 12345u;
        out[i] = (double)(*x >> 8) / (double)(1u << 24);
    }
}

static void test_rows(void) {
    /* random points in the plane: thresholds keeping few edges (neighbour lists), most edges
       (the triangle) and the enclosing radius */
    enum { N = 60 };
    double pts[2 * N];
    unsigned x = 12345;
    random_unit(pts, 2 * N, &x);
    double *lower = malloc(N * (N - 1) / 2 * sizeof *lower);
    ats_error err;
    CHECK(ats_metric_from_points(N, 2, pts, lower, &err) == ATS_OK);
    double thresholds[4] = {0.12, 0.2, 0.6, INFINITY};
    for (int t = 0; t < 4; t++)
        for (int threads = 1; threads <= 2; threads++) {
            ats_rips_options opt;
            ats_rips_options_init(&opt);
            opt.max_dim = 2;
            opt.threshold = thresholds[t];
            opt.want_cycles = 1;
            opt.n_threads = threads;
            ats_rips_result dense, rows;
            rows_ctx c = {N, (size_t)-1, 0, lower};
            CHECK(ats_rips_compute(N, lower, &opt, &dense, &err) == ATS_OK);
            CHECK(ats_rips_compute_rows(N, rows_of, &c, "m", &opt, &rows, &err) == ATS_OK);
            same_result(&dense, &rows, 2);
            ats_rips_result_free(&dense);
            ats_rips_result_free(&rows);
        }
    /* the callback's error ends it, as it is */
    ats_rips_options opt;
    ats_rips_options_init(&opt);
    opt.threshold = 0.1;
    ats_rips_result res;
    rows_ctx c = {N, 17, 0, lower};
    CHECK(ats_rips_compute_rows(N, rows_of, &c, "m", &opt, &res, &err) == ATS_ERR_IO);
    CHECK(strstr(err.message, "row 17: gone") != NULL);
    /* ... also when the rows go to the dense engine, read on several threads */
    for (int threads = 1; threads <= 3; threads++) {
        opt.threshold = INFINITY;
        opt.n_threads = threads;
        ats_error_clear(&err);
        CHECK(ats_rips_compute_rows(N, rows_of, &c, "m", &opt, &res, &err) == ATS_ERR_IO);
        CHECK(strstr(err.message, "row 17: gone") != NULL);
    }
    opt.threshold = 0.1;
    opt.n_threads = 1;
    /* one point; a memory limit below the neighbour lists */
    c.fail_at = (size_t)-1;
    c.n = 1;
    CHECK(ats_rips_compute_rows(1, rows_of, &c, "m", &opt, &res, &err) == ATS_OK);
    CHECK(res.dims[0].count == 1 && isinf(res.dims[0].pairs[1]));
    ats_rips_result_free(&res);
    c.n = N;
    opt.memory_limit_gb = 1e-6;
    CHECK(ats_rips_compute_rows(N, rows_of, &c, "m", &opt, &res, &err) == ATS_ERR_RANGE);
    CHECK(strstr(err.message, "--memory-limit") != NULL);
    free(lower);
}

/* ---- edge collapse: the same diagrams (as multisets: the order differs) from fewer edges */

static int pair_order(const void *pa, const void *pb) {
    const double *a = pa, *b = pb;
    if (a[0] != b[0]) return a[0] < b[0] ? -1 : 1;
    if (a[1] != b[1]) return a[1] < b[1] ? -1 : 1;
    return 0;
}

static int same_diagrams(ats_rips_result *a, ats_rips_result *b, int dims) {
    int same = 1;
    for (int k = 0; k <= dims; k++) {
        size_t c = a->dims[k].count;
        if (c != b->dims[k].count) return 0;
        if (!c) continue;
        qsort(a->dims[k].pairs, c, 2 * sizeof(double), pair_order);
        qsort(b->dims[k].pairs, c, 2 * sizeof(double), pair_order);
        same &= !memcmp(a->dims[k].pairs, b->dims[k].pairs, 2 * c * sizeof(double));
    }
    return same;
}

static void test_collapse(void) {
    enum { N = 48 };
    double pts[3 * N];
    unsigned x = 777;
    random_unit(pts, 3 * N, &x);
    /* points in the plane and in space; a metric of small integers (ties everywhere); a circle */
    double *metrics[4];
    ats_error err;
    for (int d = 2; d <= 3; d++) {
        metrics[d - 2] = malloc(N * (N - 1) / 2 * sizeof(double));
        CHECK(ats_metric_from_points(N, (size_t)d, pts, metrics[d - 2], &err) == ATS_OK);
    }
    metrics[2] = malloc(N * (N - 1) / 2 * sizeof(double));
    for (size_t e = 0; e < N * (N - 1) / 2; e++) {
        x = x * 1103515245u + 12345u;
        metrics[2][e] = 1.0 + (double)((x >> 16) % 4);
    }
    double *circle = circle_metric(N);
    metrics[3] = circle;
    const char *bits[2] = {"1", "0"}; /* the bit rows, and the path of larger n */
    double thresholds[3] = {0.25, 0.6, INFINITY};
    size_t cases = 0, with_classes = 0;
    for (int m = 0; m < 4; m++)
        for (int t = 0; t < 3; t++)
            for (int dim = 1; dim <= 3; dim++)
                for (unsigned p = 2; p <= 3; p++)
                    for (int b = 0; b < 2; b++) {
                        setenv("ATS_RIPS_COLLAPSE_BITS", bits[b], 1);
                        ats_rips_options opt;
                        ats_rips_options_init(&opt);
                        opt.max_dim = dim;
                        opt.modulus = p;
                        opt.threshold = m == 2 ? 1.0 + 3.0 * thresholds[t] : thresholds[t];
                        ats_rips_result plain, collapsed, rows;
                        CHECK(ats_rips_compute(N, metrics[m], &opt, &plain, &err) == ATS_OK);
                        opt.collapse_edges = 1;
                        opt.n_threads = 1 + b;
                        CHECK(ats_rips_compute(N, metrics[m], &opt, &collapsed, &err) == ATS_OK);
                        rows_ctx c = {N, (size_t)-1, 0, metrics[m]};
                        CHECK(ats_rips_compute_rows(N, rows_of, &c, "m", &opt, &rows, &err) ==
                              ATS_OK);
                        CHECK(same_diagrams(&plain, &rows, dim));
                        CHECK(same_diagrams(&plain, &collapsed, dim));
                        size_t intervals = 0;
                        for (int k = 1; k <= dim; k++) intervals += plain.dims[k].count;
                        with_classes += intervals > 0;
                        cases++;
                        ats_rips_result_free(&plain);
                        ats_rips_result_free(&collapsed);
                        ats_rips_result_free(&rows);
                    }
    unsetenv("ATS_RIPS_COLLAPSE_BITS");
    CHECK(cases == 4 * 3 * 3 * 2 * 2 && with_classes > cases / 2); /* most have H1+ to compare */
    /* representatives need the edges the collapse removes */
    ats_rips_options opt;
    ats_rips_options_init(&opt);
    opt.collapse_edges = 1;
    opt.want_cocycles = 1;
    ats_rips_result res;
    CHECK(ats_rips_compute(N, circle, &opt, &res, &err) == ATS_ERR_INVALID);
    CHECK(strstr(err.message, "no cycles or cocycles") != NULL);
    opt.want_cocycles = 0;
    opt.want_cycles = 1;
    CHECK(ats_rips_compute(N, circle, &opt, &res, &err) == ATS_ERR_INVALID);
    for (int m = 0; m < 4; m++) free(metrics[m]);
}

/* ---- cancellation: a flag set from another thread stops a large computation quickly */

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

typedef struct cancel_ctx {
    int flag;          /* set by the other thread */
    double set_at;     /* when */
    unsigned delay_us; /* after how long */
    pthread_t caller;  /* the thread that called ats_rips_compute */
    long polls, foreign_polls;
} cancel_ctx;

static int cancel_asked(void *ctx) {
    cancel_ctx *c = ctx;
    c->polls++;
    if (!pthread_equal(pthread_self(), c->caller)) c->foreign_polls++;
    return __atomic_load_n(&c->flag, __ATOMIC_ACQUIRE);
}

static void *cancel_later(void *ctx) {
    cancel_ctx *c = ctx;
    struct timespec ts = {c->delay_us / 1000000, (long)(c->delay_us % 1000000) * 1000};
    nanosleep(&ts, NULL);
    c->set_at = now_s();
    __atomic_store_n(&c->flag, 1, __ATOMIC_RELEASE);
    return NULL;
}

static void test_cancel(void) {
    /* 600 random points in 6-D to dimension 2: about 3 s of work uncancelled (dense engine),
       1 s with the threshold 0.9 (neighbour lists) */
    enum { N = 600, D = 6 };
    double *pts = malloc(N * D * sizeof *pts), *lower = malloc(N * (N - 1) / 2 * sizeof *lower);
    unsigned x = 777;
    for (int i = 0; i < N * D; i++) {
        x = x * 1103515245u + 12345u;
        pts[i] = (double)(x >> 8) / (double)(1u << 24);
    }
    ats_error err;
    CHECK(ats_metric_from_points(N, D, pts, lower, &err) == ATS_OK);
    double worst = 0;
    unsigned delays_us[3] = {0, 30000, 300000}; /* setup and H0, dimension 1, dimension 2 */
    for (int sparse = 0; sparse <= 1; sparse++)
        for (int threads = 1; threads <= 2; threads++)
            for (int d = 0; d < 3; d++) {
                ats_rips_options opt;
                ats_rips_options_init(&opt);
                opt.max_dim = 2;
                opt.want_cycles = 1;
                opt.n_threads = threads;
                opt.threshold = sparse ? 0.9 : INFINITY;
                cancel_ctx c = {0, 0, delays_us[d], pthread_self(), 0, 0};
                opt.cancel = cancel_asked;
                opt.cancel_ctx = &c;
                pthread_t th;
                CHECK(pthread_create(&th, NULL, cancel_later, &c) == 0);
                ats_rips_result res;
                ats_status st = ats_rips_compute(N, lower, &opt, &res, &err);
                double done = now_s();
                pthread_join(th, NULL);
                CHECK(st == ATS_ERR_CANCELLED);
                if (st == ATS_ERR_CANCELLED) {
                    CHECK(strstr(err.message, "cancelled") != NULL);
                    /* stopped within 0.1 s of the flag (0.5 s: a loaded machine, sanitizers) */
                    double late = done - c.set_at;
                    if (late > worst) worst = late;
                    if (late > 0.1)
                        fprintf(stderr,
                                "test_cancel: stopped %.3f s after the flag (sparse %d, "
                                "%d threads, delay %u us)\n",
                                late, sparse, threads, delays_us[d]);
                    CHECK(late < 0.5);
                    CHECK(res.dims[0].count == 0 && res.dims[0].pairs == NULL);
                } else {
                    ats_rips_result_free(&res);
                }
                CHECK(c.polls > 0 && c.foreign_polls == 0);
            }
    fprintf(stderr, "test_cancel: stopped at most %.1f ms after the flag\n", 1e3 * worst);
    /* never asked to stop: the same result as without a cancel function */
    ats_rips_options opt;
    ats_rips_options_init(&opt);
    opt.max_dim = 1;
    opt.n_threads = 2;
    ats_rips_result a, b;
    CHECK(ats_rips_compute(N, lower, &opt, &a, &err) == ATS_OK);
    cancel_ctx c = {0, 0, 0, pthread_self(), 0, 0};
    opt.cancel = cancel_asked;
    opt.cancel_ctx = &c;
    CHECK(ats_rips_compute(N, lower, &opt, &b, &err) == ATS_OK);
    CHECK(a.dims[1].count == b.dims[1].count && a.dims[1].count > 0);
    if (a.dims[1].count == b.dims[1].count)
        CHECK(!memcmp(a.dims[1].pairs, b.dims[1].pairs, 2 * a.dims[1].count * sizeof(double)));
    ats_rips_result_free(&a);
    ats_rips_result_free(&b);
    /* the streamed metric, cancelled while it reads the rows */
    c.flag = 1;
    opt.threshold = 0.5;
    ats_rips_result res;
    rows_ctx rc = {N, (size_t)-1, 0, lower};
    CHECK(ats_rips_compute_rows(N, rows_of, &rc, "m", &opt, &res, &err) == ATS_ERR_CANCELLED);
    free(pts);
    free(lower);
}

int main(void) {
    test_cancel();
    test_lower();
    test_rows();
    test_collapse();
    test_circle(2);
    test_circle(3);
    test_circle(5);
    test_clusters();
    test_simplex_vertices();
    test_batch();
    test_errors();
    return check_report("test_rips");
}
