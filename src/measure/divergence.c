/* Entropy of every row and KL / JS / JS-distance matrices between the rows of every head. */
#include "measure_internal.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Work (log evaluations) below which a head is not split between threads (a fork and join costs
 * microseconds on an idle machine and a scheduler time slice on a busy one): such heads are shared
 * out whole, and a small enough input runs on one thread. */
#define ATSM_SPLIT_WORK 2e6

static ats_status no_memory(ats_error *err, const ats_attn *att) {
    return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory for %zu tokens",
                         atsm_attn_name(att), att->n);
}

/* The working buffers checked against the memory limit (ats_memory_check) before they are
 * allocated. */
static ats_status work_check(size_t bytes, const ats_attn *att, ats_error *err) {
    char what[320];
    snprintf(what, sizeof what, "%s: the working buffers for %zu tokens", atsm_attn_name(att),
             att->n);
    return ats_memory_check(bytes, what, err);
}

/* a * b + c in bytes, saturating at SIZE_MAX (an estimate that overflows is refused anyway) */
static size_t sat_mad(size_t a, size_t b, size_t c) {
    size_t p, s;
    return ats_size_mul(a, b, &p) && ats_size_add(p, c, &s) ? s : SIZE_MAX;
}

ats_status ats_entropy_compute(const ats_attn *att, const ats_measure_opts *opts, double *out,
                               ats_error *err) {
    ats_measure_opts o;
    if (!opts)
        ats_measure_opts_init(&o);
    else
        o = *opts;
    size_t total;
    ats_status st = atsm_attn_check(att, &o, &total, err);
    if (st) return st;
    if (total == 0) return ATS_OK;
    const atsm_kernels *K = atsm_kernels_in_use();
    size_t n = att->n, stride = ats_kblock_round(n), rows = att->L * att->H * n;
    int nt = atsm_threads(o.n_threads);
    if ((double)rows * (double)n < ATSM_SPLIT_WORK) nt = 1;
    if ((st = work_check(ats_entropy_work_bytes(att, &o), att, err))) return st;
    double *buf = malloc((size_t)nt * 2 * stride * sizeof(double));
    if (!buf) return no_memory(err, att);
    double unit =
        (o.base == ATS_BASE_2 && !o.seed_compat) ? ATSM_LN2 : 1.0; /* as scipy: / log(base) */
#pragma omp parallel num_threads(nt)
    {
        double *x = buf + (size_t)omp_get_thread_num() * 2 * stride, *y = x + stride;
#pragma omp for schedule(static)
        for (size_t r = 0; r < rows; r++) {
            size_t support = atsm_row_prepare(att, r / n, r % n, &o, o.eps, 1, x, stride, K);
            size_t lim = ats_kblock_round(support);
            K->xlogx_block(x, y, lim);
            double s = 0, c = 0; /* Neumaier */
            for (size_t k = 0; k < lim; k++) {
                double t = s + y[k];
                c += fabs(s) >= fabs(y[k]) ? (s - t) + y[k] : (y[k] - t) + s;
                s = t;
            }
            double h = -(s + c) / unit;
            out[r] = h > 0 ? h : 0.0; /* -0.0 for a one-hot row */
        }
    }
    free(buf);
    return ATS_OK;
}

/* How to use nt threads for `heads` heads of per-head work w: 1 = split each head between the
 * threads, 0 = give whole heads to threads. *nt is lowered where threads would idle. */
static int split_heads(size_t heads, double w, int *nt) {
    if (w >= ATSM_SPLIT_WORK) return 1;
    if (heads < 2 || w * (double)heads < ATSM_SPLIT_WORK)
        *nt = 1;
    else if ((size_t)*nt > heads)
        *nt = (int)heads;
    return 0;
}

size_t ats_entropy_work_bytes(const ats_attn *att, const ats_measure_opts *opts) {
    ats_measure_opts o;
    if (!opts)
        ats_measure_opts_init(&o);
    else
        o = *opts;
    size_t n = att->n, rows = att->L * att->H * n;
    int nt = atsm_threads(o.n_threads);
    if ((double)rows * (double)n < ATSM_SPLIT_WORK) nt = 1;
    return sat_mad((size_t)nt * 2, sat_mad(ats_kblock_round(n), sizeof(double), 0), 0);
}

size_t ats_divergence_work_bytes(const ats_attn *att, ats_divergence kind,
                                 const ats_measure_opts *opts) {
    ats_measure_opts o;
    if (!opts)
        ats_measure_opts_init(&o);
    else
        o = *opts;
    size_t n = att->n, n1 = n ? n : 1, stride = ats_kblock_round(n), heads = att->L * att->H;
    int nt = atsm_threads(o.n_threads);
    double w = (double)n * (double)n * (double)n;
    if (kind == ATS_DIV_KL) {
        int split = split_heads(heads, w, &nt);
        size_t words = (n + 63) / 64;
        /* kl_buf: P and Lg [n][stride], A, lim [n], cross [4][n], two bit sets [n][words] */
        size_t per = sat_mad(sat_mad(2 * n1, stride, 6 * n1), sizeof(double),
                             sat_mad(2 * n1, words * sizeof(uint64_t), 0));
        return sat_mad(split ? 1 : (size_t)nt, per, sat_mad((size_t)nt * 4 * n1, 8, 0));
    }
    int split = split_heads(heads, 0.5 * w, &nt);
    /* atsm_rowset: x [n][stride], a, mass, lim [n], tail [n][stride/KBLOCK + 1] */
    size_t per = sat_mad(sat_mad(n1, stride + 3 + stride / ATS_KBLOCK + 1, 0), sizeof(double), 0);
    return sat_mad(split ? 1 : (size_t)nt, per,
                   sat_mad((size_t)nt, sat_mad(stride + n, sizeof(double), 0), 0));
}

typedef struct js_ctx {
    const ats_attn *att;
    const ats_measure_opts *o;
    const atsm_kernels *K;
    ats_divergence kind;
    atsm_sens sens;
    double unit;
    size_t n, stride;
    double budget; /* atsm_budget */
} js_ctx;

static void js_prep_row(const js_ctx *c, size_t hd, size_t i, atsm_rowset *rs, double *xl) {
    size_t sup =
        atsm_row_prepare(c->att, hd, i, c->o, c->o->eps, 1, rs->x + i * c->stride, c->stride, c->K);
    atsm_rowset_finish(rs, i, sup, c->K, xl);
}

static void js_pair_row(const js_ctx *c, size_t i, const atsm_rowset *rs, double *cross,
                        double *D) {
    size_t n = c->n;
    D[i * n + i] = 0.0;
    c->K->slog_rows(rs->x + i * c->stride, rs->lim[i], rs->x, c->stride, rs->lim, i + 1, n, cross);
    for (size_t j = i + 1; j < n; j++) {
        double js = atsm_js_pair(rs, i, j, cross[j - i - 1], c->sens, c->budget, c->K) / c->unit;
        double v;
        if (c->o->seed_compat) /* scipy's distance √JS_e, and the seed's √ of it */
            v = c->kind == ATS_DIV_JS ? sqrt(js) : sqrt(sqrt(js));
        else
            v = c->kind == ATS_DIV_JS ? js : sqrt(js);
        D[i * n + j] = D[j * n + i] = v;
    }
}

/* JS, JS distance (and the seed's versions) of every head. */
static ats_status js_matrices(const ats_attn *att, ats_divergence kind, const ats_measure_opts *o,
                              double *out, ats_error *err) {
    js_ctx c = {att, o,      atsm_kernels_in_use(),    kind,          ATSM_SENS_SQRT,
                1.0, att->n, ats_kblock_round(att->n), atsm_budget(o)};
    if (o->seed_compat)
        c.sens = kind == ATS_DIV_JS ? ATSM_SENS_SQRT : ATSM_SENS_ROOT4;
    else
        c.sens = kind == ATS_DIV_JS ? ATSM_SENS_LINEAR : ATSM_SENS_SQRT;
    c.unit = (o->base == ATS_BASE_2 && !o->seed_compat) ? ATSM_LN2 : 1.0; /* / log(base) */
    size_t n = c.n, stride = c.stride, heads = att->L * att->H;
    int nt = atsm_threads(o->n_threads);
    ats_status st = work_check(ats_divergence_work_bytes(att, kind, o), att, err);
    if (st) return st;
    int split = split_heads(heads, 0.5 * (double)n * (double)n * (double)n, &nt);
    int nsets = split ? 1 : nt;
    atsm_rowset *rs = calloc((size_t)nsets, sizeof *rs);
    double *scratch = malloc((size_t)nt * (stride + n) * sizeof(double));
    int ok = rs && scratch;
    for (int t = 0; ok && t < nsets; t++) ok = atsm_rowset_init(&rs[t], n, stride);
    if (!ok) {
        for (int t = 0; rs && t < nsets; t++) atsm_rowset_free(&rs[t]);
        free(rs);
        free(scratch);
        return no_memory(err, att);
    }
    if (split) {
        for (size_t hd = 0; hd < heads; hd++) {
            double *D = out + hd * n * n;
#pragma omp parallel num_threads(nt)
            {
                double *xl = scratch + (size_t)omp_get_thread_num() * (stride + n);
#pragma omp for schedule(static)
                for (size_t i = 0; i < n; i++) js_prep_row(&c, hd, i, &rs[0], xl);
#pragma omp for schedule(dynamic, 1)
                for (size_t i = 0; i < n; i++) js_pair_row(&c, i, &rs[0], xl + stride, D);
            }
        }
    } else {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (size_t hd = 0; hd < heads; hd++) {
            int me = omp_get_thread_num();
            double *xl = scratch + (size_t)me * (stride + n);
            for (size_t i = 0; i < n; i++) js_prep_row(&c, hd, i, &rs[me], xl);
            for (size_t i = 0; i < n; i++)
                js_pair_row(&c, i, &rs[me], xl + stride, out + hd * n * n);
        }
    }
    for (int t = 0; t < nsets; t++) atsm_rowset_free(&rs[t]);
    free(rs);
    free(scratch);
    return ATS_OK;
}

/* Buffers for the KL of one head. */
typedef struct kl_buf {
    double *P, *Lg, *A, *cross; /* [n][stride], [n][stride], [n], [4][n] */
    size_t *lim;                /* [n] */
    uint64_t *nzbits, *zbits;   /* [n][words] */
} kl_buf;

static void kl_buf_free(kl_buf *b) {
    free(b->P);
    free(b->Lg);
    free(b->A);
    free(b->cross);
    free(b->lim);
    free(b->nzbits);
    free(b->zbits);
    memset(b, 0, sizeof *b);
}

static int kl_buf_init(kl_buf *b, size_t n, size_t stride, size_t words) {
    size_t n1 = n ? n : 1, nw = n * words;
    if (nw == 0) nw = 1;
    b->P = malloc(n1 * stride * sizeof(double));
    b->Lg = malloc(n1 * stride * sizeof(double));
    b->A = malloc(n1 * sizeof(double));
    b->cross = malloc(4 * n1 * sizeof(double));
    b->lim = malloc(n1 * sizeof(size_t));
    b->nzbits = malloc(nw * sizeof(uint64_t));
    b->zbits = malloc(nw * sizeof(uint64_t));
    if (b->P && b->Lg && b->A && b->cross && b->lim && b->nzbits && b->zbits) return 1;
    kl_buf_free(b);
    return 0;
}

typedef struct kl_ctx {
    const ats_attn *att;
    const ats_measure_opts *o;
    const atsm_kernels *K;
    double eps, unit;
    size_t n, stride, words;
} kl_ctx;

/* Row i of head hd: the smoothed row, its logs (0 where the row is 0), Σ p log p, and bit sets
 * of its nonzeros and zeros. Returns 1 if the row has a zero. */
static int kl_prep_row(const kl_ctx *c, size_t hd, size_t i, kl_buf *b) {
    size_t n = c->n, stride = c->stride, words = c->words;
    double *p = b->P + i * stride, *lg = b->Lg + i * stride;
    int seed = c->o->seed_compat;
    /* the seed notebook smooths inside the logarithms only, Σ p·(log(p + ε) − log(q + ε)): its
     * rows stay unsmoothed and every log is of a positive number, so no KL is infinite */
    size_t sup = atsm_row_prepare(c->att, hd, i, c->o, seed ? 0.0 : c->eps, 0, p, stride, c->K);
    b->lim[i] = ats_kblock_round(sup);
    for (size_t k = 0; k < stride; k++)
        lg[k] = seed ? p[k] + c->eps : p[k] > DBL_MIN ? p[k] : DBL_MIN;
    c->K->log_block(lg, lg, stride);
    uint64_t *nz = b->nzbits + i * words, *z = b->zbits + i * words;
    memset(nz, 0, words * sizeof(uint64_t));
    memset(z, 0, words * sizeof(uint64_t));
    int any_zero = 0;
    double s = 0, cc = 0;
    if (seed) {
        for (size_t k = 0; k < n; k++) {
            if (p[k] + c->eps < DBL_MIN) lg[k] = log(p[k] + c->eps); /* subnormal */
            double t = p[k] * lg[k], u = s + t;
            cc += fabs(s) >= fabs(t) ? (s - u) + t : (t - u) + s;
            s = u;
        }
        for (size_t k = n; k < stride; k++) lg[k] = 0.0;
        b->A[i] = s + cc;
        return 0;
    }
    for (size_t k = 0; k < n; k++) {
        if (p[k] == 0.0) {
            lg[k] = 0.0; /* 0·log 0 = 0; p_ik > 0 = p_jk is caught by the bits */
            z[k / 64] |= (uint64_t)1 << (k % 64);
            any_zero = 1;
            continue;
        }
        if (p[k] < DBL_MIN) lg[k] = log(p[k]); /* subnormal */
        nz[k / 64] |= (uint64_t)1 << (k % 64);
        double t = p[k] * lg[k], u = s + t;
        cc += fabs(s) >= fabs(t) ? (s - u) + t : (t - u) + s;
        s = u;
    }
    for (size_t k = n; k < stride; k++) lg[k] = 0.0;
    b->A[i] = s + cc;
    return any_zero;
}

/* Rows i0 .. i0+3 of the KL matrix D of a prepared head. */
static void kl_rows4(const kl_ctx *c, size_t i0, const kl_buf *b, double *cross, int any_zero,
                     double *D) {
    size_t n = c->n, stride = c->stride, words = c->words;
    const double *rows[4];
    size_t l = 0;
    for (size_t r = 0; r < 4; r++) {
        size_t i = i0 + r < n ? i0 + r : n - 1;
        rows[r] = b->P + i * stride;
        if (b->lim[i] > l) l = b->lim[i];
    }
    c->K->dot4_rows(rows, l, b->Lg, stride, 0, n, cross, n);
    for (size_t r = 0; r < 4 && i0 + r < n; r++) {
        size_t i = i0 + r;
        for (size_t j = 0; j < n; j++) {
            double v = (b->A[i] - cross[r * n + j]) / c->unit;
            if (any_zero && j != i) {
                const uint64_t *nz = b->nzbits + i * words, *z = b->zbits + j * words;
                for (size_t w = 0; w < words; w++)
                    if (nz[w] & z[w]) {
                        v = INFINITY;
                        break;
                    }
            }
            D[i * n + j] = j == i ? 0.0 : v;
        }
    }
}

/* KL(P_i ‖ P_j) = Σ_k rel_entr(p_ik, p_jk) = Σ p_ik log p_ik − Σ p_ik log p_jk, the second sum a
 * product of the rows with the logs of the rows (all its terms have one sign, so it is
 * accurate); +inf where p_ik > 0 = p_jk for some k. */
static ats_status kl_matrices(const ats_attn *att, const ats_measure_opts *o, double *out,
                              ats_error *err) {
    kl_ctx c = {att, o,      atsm_kernels_in_use(),    0,
                1,   att->n, ats_kblock_round(att->n), (att->n + 63) / 64};
    c.eps = o->eps > 0 ? o->eps : (o->seed_compat ? 1e-9 : 0.0);
    /* / log(base); the seed notebook's KL takes log2 */
    c.unit = (o->base == ATS_BASE_2 || o->seed_compat) ? ATSM_LN2 : 1.0;
    size_t n = c.n, heads = att->L * att->H;
    int nt = atsm_threads(o->n_threads);
    ats_status st = work_check(ats_divergence_work_bytes(att, ATS_DIV_KL, o), att, err);
    if (st) return st;
    int split = split_heads(heads, (double)n * (double)n * (double)n, &nt);
    int nbufs = split ? 1 : nt;
    kl_buf *bufs = calloc((size_t)nbufs, sizeof *bufs);
    double *scratch = malloc((size_t)nt * 4 * (n ? n : 1) * sizeof(double));
    int ok = bufs && scratch;
    for (int t = 0; ok && t < nbufs; t++) ok = kl_buf_init(&bufs[t], n, c.stride, c.words);
    if (!ok) {
        for (int t = 0; bufs && t < nbufs; t++) kl_buf_free(&bufs[t]);
        free(bufs);
        free(scratch);
        return no_memory(err, att);
    }
    if (split) {
        for (size_t hd = 0; hd < heads; hd++) {
            int any_zero = 0;
#pragma omp parallel for num_threads(nt) schedule(static) reduction(| : any_zero)
            for (size_t i = 0; i < n; i++) any_zero |= kl_prep_row(&c, hd, i, &bufs[0]);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
            for (size_t i0 = 0; i0 < n; i0 += 4)
                kl_rows4(&c, i0, &bufs[0], scratch + (size_t)omp_get_thread_num() * 4 * n, any_zero,
                         out + hd * n * n);
        }
    } else {
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (size_t hd = 0; hd < heads; hd++) {
            int me = omp_get_thread_num(), any_zero = 0;
            for (size_t i = 0; i < n; i++) any_zero |= kl_prep_row(&c, hd, i, &bufs[me]);
            for (size_t i0 = 0; i0 < n; i0 += 4)
                kl_rows4(&c, i0, &bufs[me], scratch + (size_t)me * 4 * n, any_zero,
                         out + hd * n * n);
        }
    }
    for (int t = 0; t < nbufs; t++) kl_buf_free(&bufs[t]);
    free(bufs);
    free(scratch);
    return ATS_OK;
}

ats_status ats_divergence_compute(const ats_attn *att, ats_divergence kind,
                                  const ats_measure_opts *opts, double *out, ats_error *err) {
    ats_measure_opts o;
    if (!opts)
        ats_measure_opts_init(&o);
    else
        o = *opts;
    if (kind != ATS_DIV_KL && kind != ATS_DIV_JS && kind != ATS_DIV_JSD)
        return ats_error_set(err, ATS_ERR_INVALID, "unknown divergence %d", (int)kind);
    size_t total;
    ats_status st = atsm_attn_check(att, &o, &total, err);
    if (st) return st;
    if (total == 0) return ATS_OK;
    return kind == ATS_DIV_KL ? kl_matrices(att, &o, out, err)
                              : js_matrices(att, kind, &o, out, err);
}
