/* Embeddings of a finite metric: its single-linkage dendrogram and classical MDS. The heads
 * analysis and the force layout of the figures take them from here (one copy each). */
#include "attnscope/rips.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct edge {
    double w;
    size_t a, b;
} edge;

static int edge_cmp(const void *x, const void *y) {
    const edge *p = x, *q = y;
    if (p->w != q->w) return p->w < q->w ? -1 : 1;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return p->b < q->b ? -1 : p->b > q->b;
}

static size_t uf_find(size_t *parent, size_t x) {
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    return x;
}

ats_status ats_metric_single_linkage(const ats_lower *metric, double *merges, ats_error *err) {
    size_t N = metric->n;
    if (N < 2) return ATS_OK;
    /* Prim's minimum spanning tree (O(N²)), then its edges in order of weight. */
    edge *mst = malloc((N - 1) * sizeof *mst);
    double *best = malloc(N * sizeof *best);
    size_t *from = malloc(N * sizeof *from), *parent = malloc(N * sizeof *parent),
           *label = malloc(N * sizeof *label), *size = malloc(N * sizeof *size);
    unsigned char *in = calloc(N, 1);
    ats_status st = ATS_OK;
    if (!mst || !best || !from || !parent || !label || !size || !in) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "dendrogram: out of memory for %zu points", N);
        goto done;
    }
    for (size_t i = 0; i < N; i++) {
        best[i] = INFINITY;
        from[i] = 0;
    }
    size_t cur = 0;
    in[0] = 1;
    for (size_t k = 0; k + 1 < N; k++) {
        size_t next = N;
        for (size_t i = 0; i < N; i++) {
            if (in[i]) continue;
            double d = ats_lower_at(metric, cur, i);
            if (d < best[i]) {
                best[i] = d;
                from[i] = cur;
            }
            if (next == N || best[i] < best[next]) next = i;
        }
        in[next] = 1;
        mst[k].w = best[next];
        mst[k].a = from[next] < next ? from[next] : next;
        mst[k].b = from[next] < next ? next : from[next];
        cur = next;
    }
    qsort(mst, N - 1, sizeof *mst, edge_cmp);
    for (size_t i = 0; i < N; i++) {
        parent[i] = i;
        label[i] = i;
        size[i] = 1;
    }
    for (size_t k = 0; k + 1 < N; k++) {
        size_t ra = uf_find(parent, mst[k].a), rb = uf_find(parent, mst[k].b);
        size_t la = label[ra], lb = label[rb];
        merges[4 * k] = (double)(la < lb ? la : lb);
        merges[4 * k + 1] = (double)(la < lb ? lb : la);
        merges[4 * k + 2] = mst[k].w;
        merges[4 * k + 3] = (double)(size[ra] + size[rb]);
        parent[rb] = ra;
        size[ra] += size[rb];
        label[ra] = N + k;
    }
done:
    free(mst);
    free(best);
    free(from);
    free(parent);
    free(label);
    free(size);
    free(in);
    return st;
}

ats_status ats_metric_mds(const ats_lower *metric, int dim, int max_iter, double *xy,
                          ats_error *err) {
    size_t N = metric->n;
    if (dim < 1)
        return ats_error_set(err, ATS_ERR_INVALID, "MDS: dimension %d; it must be >= 1", dim);
    if (max_iter < 0)
        return ats_error_set(err, ATS_ERR_INVALID, "MDS: max_iter %d; it must be >= 0", max_iter);
    int iters = max_iter ? max_iter : 3000;
    size_t NN;
    if (!ats_size_mul(N, N, &NN))
        return ats_error_set(err, ATS_ERR_RANGE, "MDS: %zu points is too many", N);
    double *B = malloc(NN * sizeof *B), *v = malloc(N * sizeof *v), *w = malloc(N * sizeof *w);
    double *vecs = malloc((size_t)dim * N * sizeof *vecs), *vals = malloc(dim * sizeof *vals);
    if (!B || !v || !w || !vecs || !vals) {
        free(B);
        free(v);
        free(w);
        free(vecs);
        free(vals);
        return ats_error_set(err, ATS_ERR_NOMEM, "MDS: out of memory for %zu points", N);
    }
    /* B = -1/2 J D² J (double centring) */
    double total = 0;
    for (size_t i = 0; i < N; i++) {
        double r = 0;
        for (size_t j = 0; j < N; j++) {
            double d = ats_lower_at(metric, i, j);
            B[i * N + j] = d * d;
            r += d * d;
        }
        w[i] = r / (double)N;
        total += r;
    }
    total /= (double)N * (double)N;
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++) B[i * N + j] = -0.5 * (B[i * N + j] - w[i] - w[j] + total);
    for (int k = 0; k < dim; k++) {
        double *e = vecs + (size_t)k * N;
        for (size_t i = 0; i < N; i++) v[i] = 1.0 + 0.5 * sin(1.0 + 0.7 * (double)i * (k + 1));
        double lam = 0;
        for (int it = 0; it < iters; it++) {
            for (int p = 0; p < k; p++) { /* deflate: keep v orthogonal to earlier vectors */
                const double *u = vecs + (size_t)p * N;
                double dot = 0;
                for (size_t i = 0; i < N; i++) dot += u[i] * v[i];
                for (size_t i = 0; i < N; i++) v[i] -= dot * u[i];
            }
            double nv = 0;
            for (size_t i = 0; i < N; i++) nv += v[i] * v[i];
            nv = sqrt(nv);
            if (nv == 0) break;
            for (size_t i = 0; i < N; i++) v[i] /= nv;
            /* shifted power iteration on B + s I keeps the largest (not largest |.|) */
            double shift = 0;
            for (size_t i = 0; i < N; i++) shift += fabs(B[i * N + i]);
            double lam_new = 0, change = 0;
            for (size_t i = 0; i < N; i++) {
                double s = 0;
                for (size_t j = 0; j < N; j++) s += B[i * N + j] * v[j];
                lam_new += v[i] * s;
                w[i] = s + shift * v[i];
            }
            for (size_t i = 0; i < N; i++) {
                double diff = w[i] / (lam_new + shift) - v[i];
                change += diff * diff;
            }
            memcpy(v, w, N * sizeof *v);
            lam = lam_new;
            if (it > 10 && change < 1e-24) break;
        }
        double nv = 0;
        for (size_t i = 0; i < N; i++) nv += v[i] * v[i];
        nv = sqrt(nv);
        size_t big = 0;
        for (size_t i = 0; i < N; i++) {
            e[i] = nv > 0 ? v[i] / nv : 0;
            if (fabs(e[i]) > fabs(e[big])) big = i;
        }
        if (e[big] < 0)
            for (size_t i = 0; i < N; i++) e[i] = -e[i];
        vals[k] = lam > 0 ? lam : 0;
    }
    for (size_t i = 0; i < N; i++)
        for (int k = 0; k < dim; k++) xy[i * dim + k] = vecs[(size_t)k * N + i] * sqrt(vals[k]);
    free(B);
    free(v);
    free(w);
    free(vecs);
    free(vals);
    return ATS_OK;
}
