/* The vectorised kernels of src/measure, every variant this CPU has, against libm / long double:
 * the log within 1 ulp of logl; the JS cross term, the accurate JS form and the dot products
 * against long double sums. */
#include "check.h"
#include "kernels.h"

#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static uint64_t rng_u64(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double rng_unit(void) {
    return (double)(rng_u64() >> 11) * 0x1p-53;
}

/* ulps of |got − ref| measured in ulp(ref) */
static double ulps(double got, long double ref) {
    double r = (double)ref;
    double ulp = nextafter(fabs(r), INFINITY) - fabs(r);
    if (r == 0) ulp = DBL_MIN;
    return (double)fabsl((long double)got - ref) / ulp;
}

/* a random distribution over n entries, zero after `support`, of varied peakedness */
static void random_row(double *x, size_t n, size_t stride, size_t support, double power) {
    double s = 0;
    for (size_t k = 0; k < stride; k++) {
        x[k] = k < support ? pow(rng_unit(), power) : 0.0;
        s += x[k];
    }
    for (size_t k = 0; k < n; k++) x[k] /= s;
}

static long double ref_slog(const double *p, const double *q, size_t n) {
    long double acc = 0;
    for (size_t k = 0; k < n; k++) {
        long double s = (long double)p[k] + q[k];
        if (s > 0) acc += s * logl(s);
    }
    return acc;
}

/* ½ Σ s·g((p−q)/s) in long double, g(x) = Σ_{j>=1} x^{2j}/(2j(2j−1)) summed to convergence for
 * |x| < ½ (no cancellation however close p and q are), ½[(1+x)ln(1+x) + (1−x)ln(1−x)] else. */
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

static void test_variant(const atsm_kernels *K) {
    fprintf(stderr, "variant %s\n", K->name);
    /* log: random bit patterns over all normal doubles, plus [0.5, 2] and near 1 */
    enum { B = 4096 };
    double x[B], y[B];
    double worst = 0;
    for (int rep = 0; rep < 300; rep++) {
        for (int k = 0; k < B; k++) {
            double v;
            if (rep % 3 == 0) {
                uint64_t b = rng_u64() & 0x7fefffffffffffffULL;
                memcpy(&v, &b, sizeof v);
                if (v < DBL_MIN) v = DBL_MIN;
            } else if (rep % 3 == 1) {
                v = 0.5 + 1.5 * rng_unit();
            } else {
                v = 1.0 + (rng_unit() - 0.5) * 1e-6;
            }
            x[k] = v;
        }
        K->log_block(x, y, B);
        for (int k = 0; k < B; k++) {
            double u = ulps(y[k], logl((long double)x[k]));
            if (u > worst) worst = u;
        }
    }
    fprintf(stderr, "  log: max error %.3f ulp\n", worst);
    CHECK(worst <= 1.0);
    double special[16] = {1.0,
                          2.0,
                          0.5,
                          DBL_MIN,
                          DBL_MAX,
                          2.718281828459045,
                          0x1p-1000,
                          0x1p1000,
                          0.7071067811865476,
                          1.4142135623730951,
                          1.0 + DBL_EPSILON,
                          1.0 - DBL_EPSILON / 2,
                          3.0,
                          10.0,
                          1e-300,
                          1e300};
    K->log_block(special, y, 16);
    CHECK(y[0] == 0.0);
    for (int k = 0; k < 16; k++) CHECK(ulps(y[k], logl((long double)special[k])) <= 1.0);

    /* exp: within 2 ulp of expl over [−708, 709], exact at 0, 0 below −708.39 */
    worst = 0;
    for (int rep = 0; rep < 100; rep++) {
        for (int k = 0; k < B; k++) {
            double u = rng_unit();
            x[k] = rep % 2 ? -708.0 + 1417.0 * u : (u - 0.5) * 2.0; /* wide, and near 0 */
        }
        K->exp_block(x, y, B);
        for (int k = 0; k < B; k++) {
            double e = ulps(y[k], expl((long double)x[k]));
            if (e > worst) worst = e;
        }
    }
    fprintf(stderr, "  exp: max error %.3f ulp\n", worst);
    CHECK(worst <= 2.0);
    double ex[16] = {0.0, -800.0, -708.39, 1.0, -1.0, 0x1p-60, -0x1p-60, 709.0, -745.0};
    K->exp_block(ex, y, 16);
    CHECK(y[0] == 1.0 && y[1] == 0.0 && y[8] == 0.0 && y[15] == 1.0);
    CHECK(ulps(y[3], expl(1.0L)) <= 2 && ulps(y[7], expl(709.0L)) <= 2);
    CHECK(ulps(y[2], expl((long double)ex[2])) <= 2);

    /* x log x: exact zero at zero */
    double z[16] = {0, 1, 0.5, 0, 1e-300, 0.25};
    K->xlogx_block(z, y, 16);
    CHECK(y[0] == 0.0 && y[1] == 0.0 && y[3] == 0.0 && y[15] == 0.0);
    CHECK_NEAR(y[2], 0.5 * log(0.5), 1e-17);
    CHECK_NEAR(y[5], 0.25 * log(0.25), 1e-17);

    /* cross term and accurate JS over rows of different supports and shapes */
    size_t sizes[] = {1, 5, 16, 37, 64, 200, 512};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        size_t n = sizes[si], stride = ats_kblock_round(n);
        size_t rows = 6;
        double *X = calloc(rows * stride, sizeof(double));
        size_t lim[6];
        for (size_t r = 0; r < rows; r++) {
            size_t support = r < 3 ? n : 1 + (n - 1) * r / rows;
            random_row(X + r * stride, n, stride, support, 1.0 + 3.0 * (double)r);
            lim[r] = ats_kblock_round(support);
        }
        /* a near copy of row 0: JS ~ 1e-20 */
        for (size_t k = 0; k < n; k++) X[5 * stride + k] = X[k] * (1 + 1e-10 * (rng_unit() - 0.5));
        lim[5] = lim[0];
        double out[6];
        for (size_t i = 0; i < rows; i++) {
            K->slog_rows(X + i * stride, lim[i], X, stride, lim, 0, rows, out);
            for (size_t j = 0; j < rows; j++) {
                size_t l = lim[i] < lim[j] ? lim[i] : lim[j];
                long double ref = ref_slog(X + i * stride, X + j * stride, l);
                CHECK_NEAR(out[j], (double)ref, 8 * DBL_EPSILON * (fabsl(ref) + 1));
                size_t h = lim[i] > lim[j] ? lim[i] : lim[j];
                double acc = 0.5 * K->jsacc_pair(X + i * stride, X + j * stride, h);
                long double rj = ref_js(X + i * stride, X + j * stride, n);
                /* relative accuracy, whatever the size of JS */
                CHECK_NEAR(acc, (double)rj, 1e-14 * (double)rj + 1e-300);
                if (i == j) CHECK(acc == 0.0);
            }
        }
        /* dot products */
        const double *P[4] = {X, X + stride, X + 2 * stride, X + 3 * stride};
        double dots[4 * 6];
        K->dot4_rows(P, stride, X, stride, 0, rows, dots, rows);
        for (int r = 0; r < 4; r++)
            for (size_t j = 0; j < rows; j++) {
                long double ref = 0;
                for (size_t k = 0; k < n; k++) ref += (long double)P[r][k] * X[j * stride + k];
                CHECK_NEAR(dots[r * rows + j], (double)ref, 1e-15);
            }
        free(X);
    }
}

int main(void) {
    int tested = 0;
    for (int v = 0; v < 3; v++) {
        const atsm_kernels *K = atsm_kernels_variant(v);
        if (!K) {
            fprintf(stderr, "variant %d not supported here\n", v);
            continue;
        }
        test_variant(K);
        tested++;
    }
    CHECK(tested >= 1);
    CHECK(atsm_kernels_in_use() != NULL);
    return check_report("test_measure_kernels");
}
