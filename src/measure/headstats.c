/* Per-head statistics over a corpus (Clark et al. 2019 §3–4, Voita et al. 2019, Kushnareva et
 * al. 2021), accumulated one document at a time; see measure.h for each statistic. */
#include "measure_internal.h"

#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Means: per head a sum and a count, for every statistic that is a mean. */
enum {
    M_ENTROPY,
    M_CLS,
    M_SEP,
    M_PUNCT,
    M_SELF,
    M_PREV,
    M_NEXT,
    M_CONF,
    M_RARE,
    M_TPL_IDENTITY,
    M_TPL_PREV,
    M_TPL_NEXT,
    M_TPL_FIRST,
    M_TPL_SEP,
    M_TPL_PUNCT,
    M_TPL_COLS,
    M_COUNT
};

struct ats_headstats {
    size_t L, H, N;
    ats_measure_opts opts;
    double *sum;    /* [M_COUNT][N] */
    double *cnt;    /* [M_COUNT][N] */
    size_t cap;     /* offsets −(cap−1) .. cap−1 are counted */
    uint64_t *hist; /* [N][2·cap − 1], offset o at index o + cap − 1 */
    uint64_t *rows; /* [N] rows seen by the positional histogram */
};

static const char *const STAT_NAMES[ATS_STAT_COUNT] = {
    "entropy",    "cls",        "sep",       "punct",      "self",    "prev",         "next",
    "confidence", "pos_offset", "pos_share", "positional", "rare",    "tpl_identity", "tpl_prev",
    "tpl_next",   "tpl_first",  "tpl_sep",   "tpl_punct",  "tpl_cols"};

const char *ats_head_stat_name(ats_head_stat stat) {
    return ((int)stat >= 0 && stat < ATS_STAT_COUNT) ? STAT_NAMES[stat] : NULL;
}

ats_status ats_headstats_new(size_t L, size_t H, const ats_measure_opts *opts, ats_headstats **out,
                             ats_error *err) {
    *out = NULL;
    ats_measure_opts o;
    if (!opts)
        ats_measure_opts_init(&o);
    else
        o = *opts;
    if (o.eps != 0 || o.seed_compat)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "head statistics: eps smoothing and seed compatibility do not apply");
    if (!(o.sum_tol >= 0))
        return ats_error_set(err, ATS_ERR_INVALID, "head statistics: sum_tol must be >= 0");
    size_t N, MN;
    if (!ats_size_mul(L, H, &N) || !ats_size_mul(N, M_COUNT, &MN) ||
        !ats_size_mul(MN, sizeof(double), &(size_t){0}))
        return ats_error_set(err, ATS_ERR_RANGE, "head statistics: %zu×%zu heads is too many", L,
                             H);
    ats_headstats *hs = calloc(1, sizeof *hs);
    if (!hs) return ats_error_set(err, ATS_ERR_NOMEM, "head statistics: out of memory");
    hs->L = L;
    hs->H = H;
    hs->N = N;
    hs->opts = o;
    hs->sum = calloc(MN ? MN : 1, sizeof(double));
    hs->cnt = calloc(MN ? MN : 1, sizeof(double));
    hs->rows = calloc(N ? N : 1, sizeof(uint64_t));
    if (!hs->sum || !hs->cnt || !hs->rows) {
        ats_headstats_free(hs);
        return ats_error_set(err, ATS_ERR_NOMEM, "head statistics: out of memory");
    }
    *out = hs;
    return ATS_OK;
}

void ats_headstats_free(ats_headstats *hs) {
    if (!hs) return;
    free(hs->sum);
    free(hs->cnt);
    free(hs->hist);
    free(hs->rows);
    free(hs);
}

/* Grows the offset histograms to cover documents of n tokens. Returns 0 on failure. */
static int hist_reserve(ats_headstats *hs, size_t n) {
    if (n <= hs->cap) return 1;
    size_t w_old = hs->cap ? 2 * hs->cap - 1 : 0, w_new, total;
    if (!ats_size_mul(n, 2, &w_new)) return 0;
    w_new -= 1;
    if (!ats_size_mul(hs->N, w_new, &total) || !ats_size_mul(total, sizeof(uint64_t), &(size_t){0}))
        return 0;
    uint64_t *h = calloc(total ? total : 1, sizeof(uint64_t));
    if (!h) return 0;
    for (size_t a = 0; a < hs->N && w_old; a++)
        memcpy(h + a * w_new + (n - hs->cap), hs->hist + a * w_old, w_old * sizeof(uint64_t));
    free(hs->hist);
    hs->hist = h;
    hs->cap = n;
    return 1;
}

static ats_status check_positions(const char *name, const char *what, const size_t *pos,
                                  size_t count, size_t n, ats_error *err) {
    for (size_t i = 0; i < count; i++)
        if (pos[i] >= n)
            return ats_error_set(err, ATS_ERR_INVALID,
                                 "%s: %s position %zu (entry %zu) is outside the document's %zu "
                                 "tokens",
                                 name, what, pos[i], i, n);
    return ATS_OK;
}

/* flags[j] |= bit for the given positions */
static void mark(unsigned char *flags, const size_t *pos, size_t count, unsigned char bit) {
    for (size_t i = 0; i < count; i++) flags[pos[i]] |= bit;
}

enum { F_CLS = 1, F_SEP = 2, F_PUNCT = 4, F_COLS = 8, F_RARE = 16 };

ats_status ats_headstats_add(ats_headstats *hs, const ats_attn *doc, const ats_token_roles *roles,
                             ats_error *err) {
    const char *name = atsm_attn_name(doc);
    if (doc->L != hs->L || doc->H != hs->H)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: attention has %zu layers × %zu heads, but the statistics were "
                             "started with %zu × %zu",
                             name, doc->L, doc->H, hs->L, hs->H);
    size_t total;
    ats_status st = atsm_attn_check(doc, &hs->opts, &total, err);
    if (st) return st;
    size_t n = doc->n, N = hs->N;
    ats_token_roles none = {0};
    const ats_token_roles *R = roles ? roles : &none;
    if ((st = check_positions(name, "[CLS]", R->cls, R->cls ? R->n_cls : 0, n, err)) ||
        (st = check_positions(name, "[SEP]", R->sep, R->sep ? R->n_sep : 0, n, err)) ||
        (st = check_positions(name, "punctuation", R->punct, R->punct ? R->n_punct : 0, n, err)) ||
        (st = check_positions(name, "chosen column", R->cols, R->cols ? R->n_cols : 0, n, err)))
        return st;
    double fmin = INFINITY;
    if (R->freq) {
        for (size_t j = 0; j < n; j++) {
            if (!(R->freq[j] >= 0))
                return ats_error_set(err, ATS_ERR_INVALID,
                                     "%s: token %zu has frequency %g; frequencies must be >= 0 "
                                     "(+inf excludes a token)",
                                     name, j, R->freq[j]);
            if (R->freq[j] < fmin) fmin = R->freq[j];
        }
    }
    if (n == 0) return ATS_OK;
    if (!hist_reserve(hs, n))
        return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory for %zu tokens", name, n);
    unsigned char *flags = calloc(n, 1);
    int nt = atsm_threads(hs->opts.n_threads);
    size_t stride = ats_kblock_round(n);
    double *scratch = malloc((size_t)nt * 2 * stride * sizeof(double));
    if (!flags || !scratch) {
        free(flags);
        free(scratch);
        return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory for %zu tokens", name, n);
    }
    if (R->cls) mark(flags, R->cls, R->n_cls, F_CLS);
    if (R->sep) mark(flags, R->sep, R->n_sep, F_SEP);
    if (R->punct) mark(flags, R->punct, R->n_punct, F_PUNCT);
    if (R->cols) mark(flags, R->cols, R->n_cols, F_COLS);
    int have_rare = R->freq && isfinite(fmin);
    if (have_rare)
        for (size_t j = 0; j < n; j++)
            if (R->freq[j] == fmin) flags[j] |= F_RARE;
    /* templates over columns: weight 1/|C| on each chosen column */
    size_t n_sep = 0, n_punct = 0, n_cols = 0;
    for (size_t j = 0; j < n; j++) {
        n_sep += (flags[j] & F_SEP) != 0;
        n_punct += (flags[j] & F_PUNCT) != 0;
        n_cols += (flags[j] & F_COLS) != 0;
    }
    double w_sep = n_sep ? 1.0 / (double)n_sep : 0, w_punct = n_punct ? 1.0 / (double)n_punct : 0;
    double w_cols = n_cols ? 1.0 / (double)n_cols : 0;
    const atsm_kernels *K = atsm_kernels_in_use();
    double unit = hs->opts.base == ATS_BASE_2 ? ATSM_LN2 : 1.0;
    const ats_measure_opts *o = &hs->opts;
    size_t w_hist = 2 * hs->cap - 1;

#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
    for (size_t a = 0; a < N; a++) {
        double *x = scratch + (size_t)omp_get_thread_num() * 2 * stride, *xl = x + stride;
        double s[M_COUNT] = {0};
        double c[M_COUNT] = {0};
        double tpl[7] = {0}; /* Σ (A − T)² per template */
        double tnorm[7] = {(double)n,         (double)(n - 1),     (double)(n - 1),   (double)n,
                           (double)n * w_sep, (double)n * w_punct, (double)n * w_cols};
        double anorm = 0;
        uint64_t *hist = hs->hist + a * w_hist;
        for (size_t i = 0; i < n; i++) {
            size_t sup = atsm_row_prepare(doc, a, i, o, 0.0, 0, x, stride, K);
            /* entropy of the row (normalised, as scipy.stats.entropy) */
            double mass = 0;
            for (size_t j = 0; j < n; j++) mass += x[j];
            K->xlogx_block(x, xl, ats_kblock_round(sup));
            double plogp = 0;
            for (size_t j = 0; j < sup; j++) plogp += xl[j];
            /* Σ p/m log(p/m) = (Σ p log p)/m − log m */
            double h = -(plogp / mass - log(mass)) / unit;
            s[M_ENTROPY] += h > 0 ? h : 0.0;
            c[M_ENTROPY] += 1;
            size_t arg = 0;
            double mx = x[0], to_cls = 0, to_sep = 0, to_punct = 0;
            for (size_t j = 0; j < n; j++) {
                double v = x[j];
                if (v > mx) {
                    mx = v;
                    arg = j;
                }
                unsigned char f = flags[j];
                if (f & F_CLS) to_cls += v;
                if (f & F_SEP) to_sep += v;
                if (f & F_PUNCT) to_punct += v;
                anorm += v * v;
                double d;
                d = v - (j == i);
                tpl[0] += d * d;
                d = v - (i >= 1 && j == i - 1);
                tpl[1] += d * d;
                d = v - (j == i + 1);
                tpl[2] += d * d;
                d = v - (j == 0);
                tpl[3] += d * d;
                d = v - ((f & F_SEP) ? w_sep : 0);
                tpl[4] += d * d;
                d = v - ((f & F_PUNCT) ? w_punct : 0);
                tpl[5] += d * d;
                d = v - ((f & F_COLS) ? w_cols : 0);
                tpl[6] += d * d;
            }
            if (R->cls) s[M_CLS] += to_cls, c[M_CLS] += 1;
            if (R->sep) s[M_SEP] += to_sep, c[M_SEP] += 1;
            if (R->punct) s[M_PUNCT] += to_punct, c[M_PUNCT] += 1;
            s[M_SELF] += x[i], c[M_SELF] += 1;
            if (i >= 1) s[M_PREV] += x[i - 1], c[M_PREV] += 1;
            if (i + 1 < n) s[M_NEXT] += x[i + 1], c[M_NEXT] += 1;
            if (!(flags[i] & F_SEP)) s[M_CONF] += mx, c[M_CONF] += 1;
            if (have_rare) s[M_RARE] += (flags[arg] & F_RARE) != 0, c[M_RARE] += 1;
            hist[arg + hs->cap - 1 - i]++;
        }
        /* ‖A−T‖_F / √(‖A‖²_F + ‖T‖²_F) per template; the identity, previous, next and first
         * templates exist for every document, the column ones where their columns do */
        int have_tpl[7] = {1, 1, 1, 1, R->sep && n_sep, R->punct && n_punct, R->cols && n_cols};
        if (n == 1) tnorm[1] = tnorm[2] = 0;
        for (int t = 0; t < 7; t++) {
            if (!have_tpl[t]) continue;
            double den = anorm + tnorm[t];
            s[M_TPL_IDENTITY + t] += den > 0 ? sqrt(tpl[t] / den) : 0.0;
            c[M_TPL_IDENTITY + t] += 1;
        }
        for (int m = 0; m < M_COUNT; m++) {
            hs->sum[(size_t)m * N + a] += s[m];
            hs->cnt[(size_t)m * N + a] += c[m];
        }
        hs->rows[a] += n;
    }
    free(flags);
    free(scratch);
    return ATS_OK;
}

ats_status ats_headstats_result(const ats_headstats *hs, double *out, ats_error *err) {
    (void)err;
    size_t N = hs->N;
    static const int mean_of[ATS_STAT_COUNT] = {
        M_ENTROPY,  M_CLS,       M_SEP,     M_PUNCT,     M_SELF,    M_PREV,         M_NEXT,
        M_CONF,     -1,          -1,        -1,          M_RARE,    M_TPL_IDENTITY, M_TPL_PREV,
        M_TPL_NEXT, M_TPL_FIRST, M_TPL_SEP, M_TPL_PUNCT, M_TPL_COLS};
    for (int st = 0; st < ATS_STAT_COUNT; st++) {
        double *o = out + (size_t)st * N;
        int m = mean_of[st];
        if (m < 0) continue;
        for (size_t a = 0; a < N; a++) {
            double c = hs->cnt[(size_t)m * N + a];
            o[a] = c > 0 ? hs->sum[(size_t)m * N + a] / c : NAN;
        }
    }
    size_t w = hs->cap ? 2 * hs->cap - 1 : 0;
    for (size_t a = 0; a < N; a++) {
        double off = NAN, share = NAN, flag = NAN;
        if (hs->rows[a] > 0) {
            const uint64_t *h = hs->hist + a * w;
            size_t best = 0;
            long best_abs = -1;
            for (size_t k = 0; k < w; k++) {
                long ofs = (long)k - (long)(hs->cap - 1), ao = ofs < 0 ? -ofs : ofs;
                /* most rows; ties to the smaller |offset|, then the negative one */
                if (best_abs < 0 || h[k] > h[best] || (h[k] == h[best] && ao < best_abs)) {
                    best = k;
                    best_abs = ao;
                }
            }
            off = (double)((long)best - (long)(hs->cap - 1));
            share = (double)h[best] / (double)hs->rows[a];
            flag = share >= 0.9 ? 1.0 : 0.0;
        }
        out[(size_t)ATS_STAT_POS_OFFSET * N + a] = off;
        out[(size_t)ATS_STAT_POS_SHARE * N + a] = share;
        out[(size_t)ATS_STAT_POSITIONAL * N + a] = flag;
    }
    return ATS_OK;
}
