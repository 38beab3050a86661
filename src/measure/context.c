/* Cosine similarity / cosine distance / Euclidean distance matrices between hidden states. */
#include "measure_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static size_t nonzero(size_t v) {
    return v ? v : 1;
}

static const char *vec_name(const ats_vectors *v) {
    return v->source ? v->source : "vectors";
}

static double vec_get(const ats_vectors *v, size_t off) {
    return v->dtype == ATS_F32 ? (double)((const float *)v->data)[off]
                               : ((const double *)v->data)[off];
}

/* Checks shape, dtype and values; every component finite. */
static ats_status vec_check(const ats_vectors *v, ats_error *err) {
    if (v->dtype != ATS_F32 && v->dtype != ATS_F64)
        return ats_error_set(err, ATS_ERR_INVALID, "%s: vectors must be float32 or float64",
                             vec_name(v));
    size_t bm, total;
    if (!ats_size_mul(v->batch, v->m, &bm) || !ats_size_mul(bm, v->d, &total) ||
        !ats_size_mul(total, sizeof(double), &(size_t){0}))
        return ats_error_set(err, ATS_ERR_RANGE, "%s: [%zu][%zu][%zu] vectors are too many",
                             vec_name(v), v->batch, v->m, v->d);
    if (total && !v->data)
        return ats_error_set(err, ATS_ERR_INVALID, "%s: vector data is NULL", vec_name(v));
    for (size_t r = 0; r < bm; r++)
        for (size_t k = 0; k < v->d; k++) {
            double x = vec_get(v, r * v->d + k);
            if (!isfinite(x))
                return ats_error_set(err, ATS_ERR_INVALID,
                                     "%s: batch %zu, vector %zu, component %zu is %s", vec_name(v),
                                     r / (v->m ? v->m : 1), r % (v->m ? v->m : 1), k,
                                     isnan(x) ? "NaN" : "infinite");
        }
    return ATS_OK;
}

ats_status ats_context_compute(const ats_vectors *x, const ats_vectors *y, ats_vector_metric metric,
                               int n_threads, double *out, ats_error *err) {
    if (metric != ATS_COSINE_SIMILARITY && metric != ATS_COSINE_DISTANCE && metric != ATS_EUCLIDEAN)
        return ats_error_set(err, ATS_ERR_INVALID, "context: unknown metric %d", (int)metric);
    ats_status st = vec_check(x, err);
    if (st) return st;
    int same = y == NULL;
    if (same)
        y = x;
    else {
        if ((st = vec_check(y, err))) return st;
        if (y->batch != x->batch || y->d != x->d)
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: [%zu][%zu][%zu] vectors cannot be compared with %s's "
                                 "[%zu][%zu][%zu] (batch and dimension must agree)",
                                 vec_name(y), y->batch, y->m, y->d, vec_name(x), x->batch, x->m,
                                 x->d);
    }
    size_t B = x->batch, m = x->m, k = y->m, d = x->d;
    int cosine = metric != ATS_EUCLIDEAN;
    double *nx = malloc(nonzero(m) * sizeof(double)), *ny = malloc(nonzero(k) * sizeof(double));
    double *X = malloc(nonzero(m * d) * sizeof(double));
    double *Y = same ? X : malloc(nonzero(k * d) * sizeof(double));
    if (!nx || !ny || !X || !Y) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "context: out of memory for %zu×%zu vectors", m, d);
        goto done;
    }
    /* Check all norms first, so that nothing is written on a zero vector. */
    if (cosine) {
        const ats_vectors *sets[2] = {x, y};
        for (int s = 0; s < (same ? 1 : 2); s++) {
            const ats_vectors *v = sets[s];
            for (size_t r = 0; r < B * v->m; r++) {
                int zero = 1;
                for (size_t c = 0; c < d && zero; c++) zero = vec_get(v, r * d + c) == 0.0;
                if (zero) {
                    st = ats_error_set(err, ATS_ERR_INVALID,
                                       "%s: batch %zu, vector %zu is zero, so its cosine "
                                       "similarity is undefined",
                                       vec_name(v), r / v->m, r % v->m);
                    goto done;
                }
            }
        }
    }
    int nt = atsm_threads(n_threads);
    for (size_t b = 0; b < B; b++) {
        for (size_t i = 0; i < m * d; i++) X[i] = vec_get(x, b * m * d + i);
        if (!same)
            for (size_t i = 0; i < k * d; i++) Y[i] = vec_get(y, b * k * d + i);
        for (size_t i = 0; i < m; i++) {
            double s = 0;
            for (size_t c = 0; c < d; c++) s += X[i * d + c] * X[i * d + c];
            nx[i] = sqrt(s);
        }
        for (size_t j = 0; j < k; j++) {
            double s = 0;
            for (size_t c = 0; c < d; c++) s += Y[j * d + c] * Y[j * d + c];
            ny[j] = sqrt(s);
        }
        double *O = out + b * m * k;
#pragma omp parallel for num_threads(nt) schedule(dynamic, 4)
        for (size_t i = 0; i < m; i++) {
            const double *xi = X + i * d;
            for (size_t j = same ? i : 0; j < k; j++) {
                const double *yj = Y + j * d;
                double v;
                if (same && j == i) {
                    v = metric == ATS_COSINE_SIMILARITY ? 1.0 : 0.0;
                } else if (cosine) {
                    double dot = 0;
                    for (size_t c = 0; c < d; c++) dot += xi[c] * yj[c];
                    double cs = dot / (nx[i] * ny[j]);
                    v = metric == ATS_COSINE_SIMILARITY ? cs : 1.0 - cs;
                } else {
                    double s = 0;
                    for (size_t c = 0; c < d; c++) {
                        double t = xi[c] - yj[c];
                        s += t * t;
                    }
                    v = sqrt(s);
                }
                O[i * k + j] = v;
                if (same) O[j * k + i] = v;
            }
        }
    }
done:
    free(nx);
    free(ny);
    if (Y != X) free(Y);
    free(X);
    return st;
}
