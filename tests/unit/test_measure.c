/* The measure module's public API: values on hand-made heads and against long double
 * references, head distances (sums, thread independence, per-layer blocks), head statistics,
 * context vectors, and bad input (errors that name the place, outputs left untouched). */
#include "attnscope/measure.h"
#include "check.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 12345;
static double rng_unit(void) {
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (double)((z ^ (z >> 31)) >> 11) * 0x1p-53;
}

/* heads [count][n][n] of random rows; causal: zeros after the diagonal */
static double *random_heads(size_t count, size_t n, int causal, double power) {
    double *A = malloc(count * n * n * sizeof(double));
    for (size_t r = 0; r < count * n; r++) {
        size_t i = r % n;
        double s = 0;
        for (size_t j = 0; j < n; j++) {
            double v = (causal && j > i) ? 0.0 : pow(rng_unit(), power) + 1e-3;
            A[r * n + j] = v;
            s += v;
        }
        for (size_t j = 0; j < n; j++) A[r * n + j] /= s;
    }
    return A;
}

/* JS in nats, long double, by the series form (accurate for nearly equal rows too) */
static long double ref_js(const double *p, const double *q, size_t n) {
    long double acc = 0;
    for (size_t k = 0; k < n; k++) {
        long double a = p[k], b = q[k], s = a + b;
        if (s == 0) continue;
        long double x = (a - b) / s, g = 0;
        if (fabsl(x) < 0.5L) {
            long double y = x * x, pw = y;
            for (int j = 1; j < 200; j++) {
                long double t = pw / ((2.0L * j) * (2.0L * j - 1));
                g += t;
                if (t < 1e-30L * g) break;
                pw *= y;
            }
        } else {
            g = 0.5L * ((x > -1 ? (1 + x) * log1pl(x) : 0) + (x < 1 ? (1 - x) * log1pl(-x) : 0));
        }
        acc += s * g;
    }
    return acc / 2;
}

static void test_hand_values(void) {
    ats_error err;
    ats_measure_opts o;
    ats_measure_opts_init(&o);
    /* uniform, one-hot, and two disjoint halves */
    double A[3 * 4] = {0.25, 0.25, 0.25, 0.25, 0, 0, 1, 0, 0.5, 0.5, 0, 0};
    double B[4 * 4] = {0.25, 0.25, 0.25, 0.25, 0, 0, 1, 0, 0.5, 0.5, 0, 0, 0, 0, 0.5, 0.5};
    ats_attn att = {ATS_F64, B, 1, 1, 4, "hand"};
    double H[4], D[16];
    CHECK(ats_entropy_compute(&att, &o, H, &err) == ATS_OK);
    CHECK_NEAR(H[0], 2.0, 1e-15);
    CHECK(H[1] == 0.0);
    CHECK_NEAR(H[2], 1.0, 1e-15);
    CHECK(ats_divergence_compute(&att, ATS_DIV_JSD, &o, D, &err) == ATS_OK);
    CHECK(D[0] == 0.0 && D[5] == 0.0);
    CHECK_NEAR(D[2 * 4 + 3], 1.0, 1e-15); /* disjoint supports: JS = 1 bit */
    CHECK_NEAR(D[1 * 4 + 2], 1.0, 1e-15);
    CHECK(D[1 * 4 + 3] == D[3 * 4 + 1]);
    CHECK(ats_divergence_compute(&att, ATS_DIV_KL, &o, D, &err) == ATS_OK);
    CHECK_NEAR(D[1 * 4 + 0], 2.0, 1e-15); /* one-hot vs uniform: log2 4 */
    CHECK(isinf(D[0 * 4 + 1]));           /* uniform vs one-hot: missing support */
    CHECK_NEAR(D[2 * 4 + 0], 1.0, 1e-15);
    o.base = ATS_BASE_E;
    CHECK(ats_entropy_compute(&att, &o, H, &err) == ATS_OK);
    CHECK_NEAR(H[0], log(4.0), 1e-15);
    (void)A;
}

static void test_against_long_double(void) {
    ats_error err;
    ats_measure_opts o;
    ats_measure_opts_init(&o);
    o.base = ATS_BASE_E;
    size_t sizes[] = {1, 2, 15, 16, 17, 70};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si];
        for (int causal = 0; causal < 2; causal++) {
            double *A = random_heads(2, n, causal, 1.0 + 4.0 * causal);
            /* make some rows nearly equal to row 0 of head 1 */
            for (size_t i = 1; i < n && i < 4; i++)
                for (size_t j = 0; j < n; j++)
                    A[n * n + i * n + j] =
                        A[n * n + j] * (1 + 1e-7 * (double)i * (rng_unit() - 0.5));
            for (size_t i = 1; i < n && i < 4; i++) { /* renormalise */
                double s = 0;
                for (size_t j = 0; j < n; j++) s += A[n * n + i * n + j];
                for (size_t j = 0; j < n; j++) A[n * n + i * n + j] /= s;
            }
            ats_attn att = {ATS_F64, A, 1, 2, n, "random"};
            double *J = malloc(2 * n * n * sizeof(double)), *D = malloc(2 * n * n * sizeof(double));
            CHECK(ats_divergence_compute(&att, ATS_DIV_JS, &o, J, &err) == ATS_OK);
            CHECK(ats_divergence_compute(&att, ATS_DIV_JSD, &o, D, &err) == ATS_OK);
            double worst_js = 0, worst_jsd = 0;
            for (size_t h = 0; h < 2; h++)
                for (size_t i = 0; i < n; i++)
                    for (size_t j = 0; j < n; j++) {
                        const double *p = A + (h * n + i) * n, *q = A + (h * n + j) * n;
                        long double r = i == j ? 0 : ref_js(p, q, n);
                        double ej = fabs(J[(h * n + i) * n + j] - (double)r);
                        double ed = fabs(D[(h * n + i) * n + j] - (double)sqrtl(r));
                        if (ej > worst_js) worst_js = ej;
                        if (ed > worst_jsd) worst_jsd = ed;
                        CHECK(J[(h * n + i) * n + j] == J[(h * n + j) * n + i]);
                    }
            CHECK(worst_js <= 1e-14);
            CHECK(worst_jsd <= 2e-13);
            free(A);
            free(J);
            free(D);
        }
    }
}

/* Big enough inputs to take the threaded paths: one head split between threads, and many
 * heads shared out whole. One and two threads must give the same bits. */
static void test_threaded_paths(void) {
    ats_error err;
    ats_measure_opts o;
    ats_measure_opts_init(&o);
    size_t shapes[2][2] = {{1, 170}, {8, 100}}; /* heads, n */
    for (int s = 0; s < 2; s++) {
        size_t heads = shapes[s][0], n = shapes[s][1];
        double *A = random_heads(heads, n, s == 1, 1.5);
        ats_attn att = {ATS_F64, A, 1, heads, n, "big"};
        size_t cnt = heads * n * n;
        double *one = malloc(cnt * sizeof(double)), *two = malloc(cnt * sizeof(double));
        for (int kind = 0; kind < 3; kind++) {
            o.n_threads = 1;
            CHECK(ats_divergence_compute(&att, kind, &o, one, &err) == ATS_OK);
            o.n_threads = 2;
            CHECK(ats_divergence_compute(&att, kind, &o, two, &err) == ATS_OK);
            CHECK(memcmp(one, two, cnt * sizeof(double)) == 0);
            if (kind == ATS_DIV_JSD) {
                for (size_t t = 0; t < 50; t++) {
                    size_t h = t % heads, i = (t * 7) % n, j = (t * 13 + 1) % n;
                    const double *p = A + (h * n + i) * n, *q = A + (h * n + j) * n;
                    double want = i == j ? 0 : (double)sqrtl(ref_js(p, q, n) / logl(2.0L));
                    CHECK_NEAR(two[(h * n + i) * n + j], want, 2e-13);
                }
            }
        }
        o.n_threads = 1;
        CHECK(ats_entropy_compute(&att, &o, one, &err) == ATS_OK);
        o.n_threads = 2;
        CHECK(ats_entropy_compute(&att, &o, two, &err) == ATS_OK);
        CHECK(memcmp(one, two, heads * n * sizeof(double)) == 0);
        free(A);
        free(one);
        free(two);
    }
}

static void test_bad_input(void) {
    ats_error err;
    ats_measure_opts o;
    ats_measure_opts_init(&o);
    double A[2 * 3 * 3];
    for (int i = 0; i < 18; i++) A[i] = 1.0 / 3;
    A[9 + 3 + 1] = 0.5; /* head 1, row 1 sums to 7/6 */
    ats_attn att = {ATS_F64, A, 1, 2, 3, "bad.npy"};
    double out[18];
    for (int i = 0; i < 18; i++) out[i] = -7;
    CHECK(ats_divergence_compute(&att, ATS_DIV_JS, &o, out, &err) == ATS_ERR_INVALID);
    CHECK(strstr(err.message, "bad.npy: layer 0, head 1, row 1") != NULL);
    CHECK(out[0] == -7 && out[17] == -7);
    o.normalize = 1;
    CHECK(ats_divergence_compute(&att, ATS_DIV_JS, &o, out, &err) == ATS_OK);
    o.normalize = 0;
    A[9 + 3 + 1] = NAN;
    CHECK(ats_entropy_compute(&att, &o, out, &err) == ATS_ERR_INVALID);
    CHECK(strstr(err.message, "row 1, column 1") && strstr(err.message, "NaN"));
    A[9 + 3 + 1] = -1;
    CHECK(ats_divergence_compute(&att, ATS_DIV_KL, &o, out, &err) == ATS_ERR_INVALID);
    CHECK(strstr(err.message, "negative") != NULL);
    A[9 + 3 + 1] = 1.0 / 3;
    o.eps = -1;
    CHECK(ats_divergence_compute(&att, ATS_DIV_KL, &o, out, &err) == ATS_ERR_INVALID);
    ats_measure_opts_init(&o);
    o.normalize = 1;
    for (int j = 0; j < 3; j++) A[j] = 0;
    CHECK(ats_divergence_compute(&att, ATS_DIV_JSD, &o, out, &err) == ATS_ERR_INVALID);
    CHECK(strstr(err.message, "all weights are zero") != NULL);

    double huge[4] = {1e308, 1e308, 0.5, 0.5};
    ats_attn big = {ATS_F64, huge, 1, 1, 2, "huge.npy"};
    CHECK(ats_divergence_compute(&big, ATS_DIV_JSD, &o, out, &err) == ATS_ERR_INVALID);
    CHECK(strstr(err.message, "huge.npy: layer 0, head 0, row 0: the weights' sum overflows"));
    CHECK(ats_divergence_compute(NULL, ATS_DIV_JSD, &o, out, &err) == ATS_ERR_INVALID);

    ats_npy arr = {ATS_F64, 3, {2, 3, 3}, 18, A, NULL, 0, -1};
    ats_attn v;
    CHECK(ats_attn_from_npy(&arr, "x.npy", &v, &err) == ATS_ERR_FORMAT);
    CHECK(strstr(err.message, "[1][H][n][n]") != NULL);
    arr.ndim = 2;
    arr.shape[0] = 3;
    arr.shape[1] = 6;
    CHECK(ats_attn_from_npy(&arr, "x.npy", &v, &err) == ATS_ERR_FORMAT);
    arr.ndim = 4;
    arr.shape[0] = 1;
    arr.shape[1] = 2;
    arr.shape[2] = 3;
    arr.shape[3] = 3;
    CHECK(ats_attn_from_npy(&arr, "x.npy", &v, &err) == ATS_OK && v.L == 1 && v.H == 2 && v.n == 3);
    arr.dtype = ATS_I32;
    CHECK(ats_attn_from_npy(&arr, "x.npy", &v, &err) == ATS_ERR_FORMAT);
}

static void test_seed_compat(void) {
    /* seed: softmax of the rows, then scipy's JS distance; jsd = its square root */
    double A[4] = {1, 0, 0.5, 0.5};
    ats_attn att = {ATS_F64, A, 1, 1, 2, "s"};
    ats_measure_opts o;
    ats_measure_opts_init(&o);
    o.seed_compat = 1;
    ats_error err;
    double J[4], D[4], K[4];
    CHECK(ats_divergence_compute(&att, ATS_DIV_JS, &o, J, &err) == ATS_OK);
    CHECK(ats_divergence_compute(&att, ATS_DIV_JSD, &o, D, &err) == ATS_OK);
    CHECK(ats_divergence_compute(&att, ATS_DIV_KL, &o, K, &err) == ATS_OK);
    long double e = expl(1.0L), p0 = e / (e + 1), p1 = 1 / (e + 1);
    double p[2] = {(double)p0, (double)p1}, q[2] = {0.5, 0.5};
    long double js = ref_js(p, q, 2);
    CHECK_NEAR(J[1], (double)sqrtl(js), 1e-15);
    CHECK_NEAR(D[1], (double)sqrtl(sqrtl(js)), 1e-15);
    /* the notebook's KL: Σ p (log2(p + 1e-9) − log2(q + 1e-9)), the 1e-9 inside the logs */
    long double kl = (p0 * (logl(p0 + 1e-9L) - logl(0.5L + 1e-9L)) +
                      p1 * (logl(p1 + 1e-9L) - logl(0.5L + 1e-9L))) /
                     logl(2.0L);
    CHECK_NEAR(K[1], (double)kl, 1e-15);
}

/* max_error: the seed's JS^¼ of softmaxed (nearly uniform) rows stays within the allowed error
 * of the exact evaluation, and of a long-double reference */
static void test_max_error(void) {
    size_t n = 40, heads = 3;
    double *A = random_heads(heads, n, 1, 1.0);
    ats_attn att = {ATS_F64, A, 1, heads, n, "m"};
    ats_measure_opts o;
    ats_measure_opts_init(&o);
    o.seed_compat = 1;
    ats_error err;
    double *exact = malloc(heads * n * n * sizeof *exact),
           *loose = malloc(heads * n * n * sizeof *loose);
    CHECK(ats_divergence_compute(&att, ATS_DIV_JSD, &o, exact, &err) == ATS_OK);
    o.max_error = 1e-9;
    CHECK(ats_divergence_compute(&att, ATS_DIV_JSD, &o, loose, &err) == ATS_OK);
    double worst = 0, worst_ref = 0;
    int differ = 0;
    for (size_t hd = 0; hd < heads; hd++)
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                size_t e = (hd * n + i) * n + j;
                worst = fmax(worst, fabs(exact[e] - loose[e]));
                differ += exact[e] != loose[e];
                /* the reference: softmax of both rows, then (JS_e)^¼ */
                double p[40], q[40], sp = 0, sq = 0;
                for (size_t k = 0; k < n; k++) {
                    p[k] = exp(A[(hd * n + i) * n + k]), sp += p[k];
                    q[k] = exp(A[(hd * n + j) * n + k]), sq += q[k];
                }
                for (size_t k = 0; k < n; k++) p[k] /= sp, q[k] /= sq;
                double ref = (double)sqrtl(sqrtl(ref_js(p, q, n)));
                worst_ref = fmax(worst_ref, fabs(loose[e] - ref));
            }
    CHECK(worst <= 1e-9 && worst_ref <= 1e-9);
    CHECK(differ > 0); /* the loose path was taken somewhere: the option is not a no-op */
    free(A), free(exact), free(loose);
}

static void test_headdist(void) {
    ats_error err;
    ats_measure_opts o;
    ats_measure_opts_init(&o);
    size_t L = 2, H = 3, N = 6;
    double *d1 = random_heads(L * H, 9, 0, 2.0), *d2 = random_heads(L * H, 5, 1, 1.0);
    ats_attn a1 = {ATS_F64, d1, L, H, 9, "d1"}, a2 = {ATS_F64, d2, L, H, 5, "d2"};
    ats_headdist *hd1, *hd2, *hd12, *hl;
    double R1[36], R2[36], R12[36], RL[18], R12b[36];
    for (int metric = 0; metric < 2; metric++) {
        o.n_threads = 1;
        CHECK(ats_headdist_new(L, H, metric, ATS_HEADDIST_ALL, &o, &hd1, &err) == ATS_OK);
        CHECK(ats_headdist_new(L, H, metric, ATS_HEADDIST_ALL, &o, &hd2, &err) == ATS_OK);
        o.n_threads = 2;
        CHECK(ats_headdist_new(L, H, metric, ATS_HEADDIST_ALL, &o, &hd12, &err) == ATS_OK);
        CHECK(ats_headdist_new(L, H, metric, ATS_HEADDIST_PER_LAYER, &o, &hl, &err) == ATS_OK);
        CHECK(ats_headdist_add(hd1, &a1, &err) == ATS_OK);
        CHECK(ats_headdist_add(hd2, &a2, &err) == ATS_OK);
        CHECK(ats_headdist_add(hd12, &a1, &err) == ATS_OK);
        CHECK(ats_headdist_add(hd12, &a2, &err) == ATS_OK);
        CHECK(ats_headdist_result(hd12, R12b, &err) == ATS_OK);
        /* a bad document leaves the sums alone */
        double keep = d2[7];
        d2[7] = NAN;
        CHECK(ats_headdist_add(hd12, &a2, &err) == ATS_ERR_INVALID);
        d2[7] = keep;
        ats_attn wrong = {ATS_F64, d1, 3, 2, 9, "wrong"};
        CHECK(ats_headdist_add(hd12, &wrong, &err) == ATS_ERR_FORMAT);
        CHECK(strstr(err.message, "wrong") != NULL);
        CHECK(ats_headdist_add(hl, &a1, &err) == ATS_OK);
        CHECK(ats_headdist_docs(hd12) == 2 && ats_headdist_tokens(hd12) == 14);
        CHECK(ats_headdist_result(hd1, R1, &err) == ATS_OK);
        CHECK(ats_headdist_result(hd2, R2, &err) == ATS_OK);
        CHECK(ats_headdist_result(hd12, R12, &err) == ATS_OK);
        CHECK(ats_headdist_result(hl, RL, &err) == ATS_OK);
        CHECK(memcmp(R12, R12b, sizeof R12) == 0);
        for (size_t a = 0; a < N; a++)
            for (size_t b = 0; b < N; b++) {
                CHECK_NEAR(R12[a * N + b], R1[a * N + b] + R2[a * N + b], 1e-13);
                CHECK(R1[a * N + b] == R1[b * N + a]);
                if (a / H == b / H)
                    CHECK(RL[(a / H) * H * H + (a % H) * H + (b % H)] == R1[a * N + b]);
            }
        /* the same values as pairwise JS of the rows, token by token */
        double want = 0;
        for (size_t t = 0; t < 9; t++) {
            const double *p = d1 + (0 * 9 + t) * 9, *q = d1 + (4 * 9 + t) * 9;
            double pc[9], qc[9];
            for (int k = 0; k < 9; k++) {
                pc[k] = metric ? 0.001 / 9 + 0.999 * p[k] : p[k];
                qc[k] = metric ? 0.001 / 9 + 0.999 * q[k] : q[k];
            }
            long double js = ref_js(pc, qc, 9) / logl(2.0L);
            want += metric ? (double)js : (double)sqrtl(js);
        }
        CHECK_NEAR(R1[0 * N + 4], want, 1e-13);
        ats_headdist_free(hd1);
        ats_headdist_free(hd2);
        ats_headdist_free(hd12);
        ats_headdist_free(hl);
        free(d2);
        d2 = random_heads(L * H, 5, 1, 1.0);
        a2.data = d2;
    }
    o.seed_compat = 1;
    CHECK(ats_headdist_new(L, H, ATS_HEADDIST_CLARK, ATS_HEADDIST_ALL, &o, &hd1, &err) ==
          ATS_ERR_INVALID);
    CHECK(hd1 == NULL);
    free(d1);
    free(d2);
}

static void test_headstats(void) {
    ats_error err;
    size_t n = 6;
    double heads[2 * 36] = {0};
    for (size_t i = 0; i < n; i++) {
        heads[i * n + (i + 1 < n ? i + 1 : i)] = 1.0; /* head 0: next token */
        heads[36 + i * n + 0] = 1.0;                  /* head 1: first token */
    }
    ats_attn att = {ATS_F64, heads, 1, 2, n, "stats"};
    ats_headstats *hs;
    CHECK(ats_headstats_new(1, 2, NULL, &hs, &err) == ATS_OK);
    size_t cls[1] = {0}, sep[1] = {5}, punct[1] = {3};
    double freq[6] = {INFINITY, 5, 1, 2, 1, INFINITY};
    ats_token_roles roles = {cls, 1, sep, 1, punct, 1, NULL, 0, freq};
    CHECK(ats_headstats_add(hs, &att, &roles, &err) == ATS_OK);
    size_t badpos[1] = {6};
    ats_token_roles bad = {badpos, 1, NULL, 0, NULL, 0, NULL, 0, NULL};
    CHECK(ats_headstats_add(hs, &att, &bad, &err) == ATS_ERR_INVALID);
    CHECK(strstr(err.message, "outside the document's 6 tokens") != NULL);
    double out[ATS_STAT_COUNT * 2];
    CHECK(ats_headstats_result(hs, out, &err) == ATS_OK);
#define STAT(s, h) out[(size_t)(s)*2 + (h)]
    CHECK(STAT(ATS_STAT_ENTROPY, 0) == 0.0);
    CHECK(STAT(ATS_STAT_POS_OFFSET, 0) == 1.0);
    CHECK_NEAR(STAT(ATS_STAT_POS_SHARE, 0), 5.0 / 6, 1e-15);
    CHECK(STAT(ATS_STAT_POSITIONAL, 0) == 0.0); /* 83 % < 90 % */
    CHECK(STAT(ATS_STAT_NEXT, 0) == 1.0);
    CHECK(STAT(ATS_STAT_CLS, 1) == 1.0 && STAT(ATS_STAT_TPL_FIRST, 1) == 0.0);
    CHECK_NEAR(STAT(ATS_STAT_CONFIDENCE, 0), 1.0, 0);
    CHECK_NEAR(STAT(ATS_STAT_PUNCT, 0), 1.0 / 6, 1e-15);
    /* rarest tokens: positions 2 and 4 (freq 1); head 0 points at them from rows 1 and 3 */
    CHECK_NEAR(STAT(ATS_STAT_RARE, 0), 2.0 / 6, 1e-15);
    CHECK(isnan(STAT(ATS_STAT_TPL_COLS, 0)));
    /* ‖A − I‖ / √(‖A‖² + ‖I‖²) for the next-token head: rows 0..4 differ in two places */
    CHECK_NEAR(STAT(ATS_STAT_TPL_IDENTITY, 0), sqrt(10.0 / 12.0), 1e-15);
    CHECK_NEAR(STAT(ATS_STAT_TPL_NEXT, 0), sqrt(1.0 / 11.0), 1e-15);
#undef STAT
    ats_headstats_free(hs);
    ats_measure_opts o;
    ats_measure_opts_init(&o);
    o.eps = 1e-9;
    CHECK(ats_headstats_new(1, 2, &o, &hs, &err) == ATS_ERR_INVALID);
}

static void test_context(void) {
    ats_error err;
    float X[3 * 2] = {3, 4, 0, 1, -3, -4};
    ats_vectors x = {ATS_F32, X, 1, 3, 2, "x"};
    double S[9], D[9];
    CHECK(ats_context_compute(&x, NULL, ATS_COSINE_SIMILARITY, 1, S, &err) == ATS_OK);
    CHECK(S[0] == 1.0 && S[4] == 1.0);
    CHECK_NEAR(S[1], 0.8, 1e-16);
    CHECK_NEAR(S[2], -1.0, 1e-16);
    CHECK(ats_context_compute(&x, NULL, ATS_EUCLIDEAN, 2, D, &err) == ATS_OK);
    CHECK(D[2] == 10.0 && D[6] == 10.0 && D[0] == 0.0);
    double Y[2 * 3] = {1, 0, 0, 0, 1, 0};
    ats_vectors y = {ATS_F64, Y, 1, 2, 3, "y"};
    CHECK(ats_context_compute(&x, &y, ATS_EUCLIDEAN, 1, D, &err) == ATS_ERR_FORMAT);
    X[2] = X[3] = 0;
    for (int i = 0; i < 9; i++) S[i] = -5;
    CHECK(ats_context_compute(&x, NULL, ATS_COSINE_DISTANCE, 1, S, &err) == ATS_ERR_INVALID);
    CHECK(strstr(err.message, "vector 1 is zero") != NULL && S[0] == -5);
    X[0] = NAN;
    CHECK(ats_context_compute(&x, NULL, ATS_EUCLIDEAN, 1, S, &err) == ATS_ERR_INVALID);
}

int main(void) {
    test_hand_values();
    test_against_long_double();
    test_threaded_paths();
    test_bad_input();
    test_seed_compat();
    test_max_error();
    test_headdist();
    test_headstats();
    test_context();
    return check_report("test_measure");
}
