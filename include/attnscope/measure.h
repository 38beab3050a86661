/* attnscope measure: information measures of attention heads.
 *
 * An attention head gives, for n tokens, an n×n row-stochastic matrix A: row i is the
 * distribution of token i over the keys it attends to (causal heads have zeros after the
 * diagonal; 0·log 0 = 0 throughout). This module turns such heads into numbers:
 *
 *   - entropy of every row, KL / Jensen–Shannon divergence and JS distance between every pair
 *     of rows of a head (ats_entropy_compute, ats_divergence_compute);
 *   - distances between whole heads over a corpus, streamed one document at a time
 *     (ats_headdist_*): the seed metric D(Ha,Hb) = Σ_docs Σ_tokens √JS(Ha(t), Hb(t)) and
 *     Clark et al.'s Σ JS with smoothing a' = 0.001/n + 0.999·a;
 *   - per-head statistics over a corpus, each an [L][H] table (ats_headstats_*);
 *   - cosine / Euclidean matrices between hidden-state vectors (ats_context_compute).
 *
 * Every function takes plain arrays, so attention computed anywhere else works too. Attention is
 * float32 or float64; every result is double. Nothing here prints, exits or keeps global state;
 * calls that can fail return an ats_status and describe the failure in `err` (may be NULL),
 * naming the array (ats_attn.source), the layer, head, row and column, and what was wrong.
 * Bad input is rejected before anything is written to an output array or accumulator.
 *
 * Numbers. Logarithms are base 2 by default (JS ∈ [0,1]) or base e on request (scipy's
 * default). The results agree with scipy.stats.entropy, scipy.special.rel_entr and
 * scipy.spatial.distance.jensenshannon on the same float64 arrays within 1e-12 absolute; JS
 * distances keep that accuracy even for nearly equal rows (see ats_divergence_compute).
 * Inner loops use a vectorised natural logarithm (fdlibm's algorithm without branches, max
 * error 0.81 ulp measured against logl over 4·10^7 random doubles) and exponential (Taylor
 * polynomial after reduction by ln 2, max error 1.1 ulp against expl; it serves the
 * --seed-compat softmax), on GCC vector types selected at run time for AVX-512, AVX2+FMA or
 * plain C; tests/unit/test_measure_kernels.c checks every variant. No -ffast-math.
 *
 * Threads: `n_threads` <= 0 means OpenMP's default (OMP_NUM_THREADS or the number of cores).
 * Results do not depend on the number of threads. */
#ifndef ATTNSCOPE_MEASURE_H
#define ATTNSCOPE_MEASURE_H

#include "attnscope/core.h"

/* exported from the shared library (see core.h) */
#pragma GCC visibility push(default)
#ifdef __cplusplus
extern "C" {
#endif

/* ---- attention arrays */

/* A borrowed view of attention weights; the data must outlive the calls that use the view. */
typedef struct ats_attn {
    ats_dtype dtype;    /* ATS_F32 or ATS_F64 */
    const void *data;   /* [L][H][n][n], C order: data[((l*H + h)*n + i)*n + j] is the weight
                           of query token i on key token j in head h of layer l */
    size_t L, H, n;     /* layers, heads per layer, tokens */
    const char *source; /* names the array in error messages (e.g. its file); NULL: "attention" */
} ats_attn;

/* Views an NPY array as attention: shape [n][n] (L = H = 1) or [L][H][n][n], dtype f4 or f8.
 * The view borrows arr->data. Other shapes and dtypes: ATS_ERR_FORMAT. */
ats_status ats_attn_from_npy(const ats_npy *arr, const char *source, ats_attn *out, ats_error *err);

/* ---- options shared by the attention measures */

typedef enum ats_log_base {
    ATS_BASE_2 = 0, /* bits (default): JS ∈ [0, 1] */
    ATS_BASE_E = 1  /* nats, scipy's default */
} ats_log_base;

typedef struct ats_measure_opts {
    ats_log_base base; /* default ATS_BASE_2 (seed_compat fixes it: e for entropy and JS, 2
                          for KL, as the notebook's scipy calls and its log2) */
    double eps;        /* smoothing ε >= 0 added to each of the n weights of a row before
                          measuring (default 0; the seed notebook's KL uses 1e-9) */
    int normalize;     /* 0 (default): a row whose sum is not within sum_tol of 1 is an error;
                          1: every row is divided by its sum first (all-zero rows are errors) */
    double sum_tol;    /* default 1e-4 */
    int seed_compat;   /* 1: reproduce the seed notebook (see below); default 0 */
    int n_threads;     /* <= 0: OpenMP's default */
    double max_error;  /* 0 (default): a JS distance (or the seed's JS^¼) is within 2e-13 of its
                          exact value, for any rows; > 0: an absolute error up to this is
                          allowed, which spares nearly equal rows the exact evaluation (float32
                          attention carries ~1e-7 already; compare uses 1e-9) */
} ats_measure_opts;

/* Fills the defaults above. */
void ats_measure_opts_init(ats_measure_opts *opts);

/* Every weight must be finite and >= 0 (NaN, ±inf or a negative weight is ATS_ERR_INVALID,
 * whatever the options). A row is then prepared as follows:
 *   1. normalize: r ← r / Σr;
 *   2. seed_compat: r ← softmax(r) = exp(r − max r) / Σ exp(r − max r), as the notebook does to
 *      attention that is already a probability;
 *   3. eps: r ← r + ε on each of the n entries (seed_compat's KL: see below);
 *   4. entropy and JS normalise their argument again, p = r / Σr, exactly as scipy.stats.entropy
 *      and jensenshannon do; KL uses r as it is, exactly as Σ scipy.special.rel_entr(p, q) does.
 *
 * seed_compat reproduces the notebook's functions on the softmaxed rows p, q: entropy and JS in
 * nats (scipy's default base); ATS_DIV_JS returns scipy's JS *distance* √JS_e (the notebook's
 * first distance cell, which it calls the divergence) and ATS_DIV_JSD its square root JS_e^(1/4)
 * (its later cell); KL is the notebook's Σ_k p_k·(log2(p_k + ε) − log2(q_k + ε)) in bits, ε =
 * 1e-9 unless eps > 0, smoothed inside the logarithms only (so always finite). */

/* ---- token measures, one head at a time */

/* Shannon entropy of every row: out[l][h][i] = −Σ_j p_ij log p_ij.
 * out: double [L][H][n]. */
ats_status ats_entropy_compute(const ats_attn *att, const ats_measure_opts *opts, double *out,
                               ats_error *err);

typedef enum ats_divergence {
    ATS_DIV_KL = 0, /* KL(P_i ‖ P_j) = Σ_k rel_entr(p_ik, p_jk); +inf where P_j has a zero that
                       P_i does not (use eps to smooth); not symmetric */
    ATS_DIV_JS = 1, /* JS(P_i, P_j) = ½KL(P_i‖M) + ½KL(P_j‖M), M = ½(P_i + P_j) */
    ATS_DIV_JSD = 2 /* √JS, a metric */
} ats_divergence;

/* The matrix of a divergence between every pair of rows of every head:
 * out[l][h][i][j] = div(row i, row j) of head (l, h); the diagonal is exactly 0.
 * out: double [L][H][n][n].
 *
 * JS is evaluated as log 2 + ½(Σp log p + Σq log q − Σ s log s), s = p + q (one vectorised
 * log per term, compensated sums); a bound on its absolute error, 4u(|Σp log p| + |Σq log q| +
 * |Σ s log s| + 3) with u = 2^-52, is checked for every pair, and where it could make the
 * returned √JS (or the seed's JS^¼) wrong by more than 2e-13 — nearly equal rows, JS ≲ 1e-2 —
 * or JS wrong by more than 1e-6 relative, the pair is recomputed as ½ Σ s·g((p−q)/s),
 * g(x) = ½[(1+x)ln(1+x) + (1−x)ln(1−x)] (its series in x² for |x| <= ¼), a sum of
 * non-negative terms accurate to ~1e-14 relative. So JS distances agree with exact values
 * within 2e-13 for any pair, JS is exactly 0 only for identical rows, and JS ∈ [0, 1] in base 2. */
ats_status ats_divergence_compute(const ats_attn *att, ats_divergence kind,
                                  const ats_measure_opts *opts, double *out, ats_error *err);

/* Bytes of the working buffers ats_entropy_compute and ats_divergence_compute allocate on att
 * with these options (besides `out`, which the caller provides: [L][H][n] and [L][H][n][n]
 * doubles); SIZE_MAX when the count overflows. The calls check this against the memory limit
 * (ats_memory_check, --max-memory) before allocating, and refuse with ATS_ERR_RANGE naming the
 * estimate; a caller adds the size of `out` to check the whole before allocating that. */
size_t ats_entropy_work_bytes(const ats_attn *att, const ats_measure_opts *opts);
size_t ats_divergence_work_bytes(const ats_attn *att, ats_divergence kind,
                                 const ats_measure_opts *opts);

/* ---- distances between heads over a corpus (streamed) */

typedef enum ats_headdist_metric {
    ATS_HEADDIST_SEED = 0, /* D(a,b) = Σ_docs Σ_t √JS(A_a[t], A_b[t]) (the seed's metric; with
                              seed_compat: Σ √(scipy JS distance) of softmaxed rows) */
    ATS_HEADDIST_CLARK = 1 /* D(a,b) = Σ_docs Σ_t JS(A'_a[t], A'_b[t]), A' = 0.001/n + 0.999·A
                              (Clark et al. 2019, §6) */
} ats_headdist_metric;

typedef enum ats_headdist_scope {
    ATS_HEADDIST_ALL = 0,      /* every pair of the L·H heads: result [L·H][L·H] */
    ATS_HEADDIST_PER_LAYER = 1 /* only heads of the same layer: result [L][H][H] (cheaper) */
} ats_headdist_scope;

/* Accumulates head distances document by document; memory is O((L·H)² + L·H·n) for the
 * longest document n, independent of the number of documents. Row t of head (l, h) is the
 * distribution A_{l,h}[t] of token t; head index a = l·H + h. Options: base (default 2), eps,
 * normalize, sum_tol, seed_compat (metric SEED only), n_threads. The sums are compensated
 * (Neumaier) and their order does not depend on the number of threads. */
typedef struct ats_headdist ats_headdist;

ats_status ats_headdist_new(size_t L, size_t H, ats_headdist_metric metric,
                            ats_headdist_scope scope, const ats_measure_opts *opts,
                            ats_headdist **out, ats_error *err);
/* Adds one document, doc: [L][H][n][n] (n may differ between documents; n = 0 adds nothing).
 * A document that fails validation leaves the accumulator unchanged. */
ats_status ats_headdist_add(ats_headdist *hd, const ats_attn *doc, ats_error *err);
/* The distances so far: scope ALL: double [L·H][L·H], out[a][b] with a = l·H + h;
 * scope PER_LAYER: double [L][H][H]. Symmetric, zero diagonal. */
ats_status ats_headdist_result(const ats_headdist *hd, double *out, ats_error *err);
size_t ats_headdist_docs(const ats_headdist *hd);   /* documents added */
size_t ats_headdist_tokens(const ats_headdist *hd); /* tokens added (rows per head) */
void ats_headdist_free(ats_headdist *hd);

/* ---- head statistics over a corpus (Clark et al. 2019 §3–4, Voita et al. 2019,
 *      Kushnareva et al. 2021) */

/* Roles of the tokens of one document of n tokens. A NULL array means "not known" (the
 * statistics that need it are NaN unless another document supplied it); a non-NULL array with
 * count 0 means "none in this document". Positions are < n. */
typedef struct ats_token_roles {
    const size_t *cls; /* [n_cls] positions of [CLS] / <s> */
    size_t n_cls;
    const size_t *sep; /* [n_sep] positions of [SEP] / </s> (the "end token") */
    size_t n_sep;
    const size_t *punct; /* [n_punct] positions of punctuation tokens */
    size_t n_punct;
    const size_t *cols; /* [n_cols] chosen key columns for the TPL_COLS template */
    size_t n_cols;
    const double *freq; /* [n] corpus frequency of each token (any positive scale; +inf excludes
                           a token); the rarest token of the document has the smallest value */
} ats_token_roles;

/* The roles of n tokens as the vocabulary spells them: [CLS] / <s> / <cls>, [SEP] / </s> /
 * <sep> / <|endoftext|>, and punctuation (after a word-piece marker ##, GPT-2's Ġ or
 * SentencePiece's ▁, only ASCII punctuation and the common Unicode marks “ ” ‘ ’ … – — « » ¿ ¡ ·).
 * special[n] (or NULL) marks the tokens the tokenizer added, never punctuation. positions: size_t
 * [3n], which roles->cls, sep and punct point into; cols and freq are left NULL. */
void ats_token_roles_find(size_t n, const char *const *tokens, const uint8_t *special,
                          size_t *positions, ats_token_roles *roles);

/* The statistics, in the order of the result table. Means over rows run over every query row
 * of every document that has the needed roles, except where stated. */
typedef enum ats_head_stat {
    ATS_STAT_ENTROPY = 0, /* mean row entropy (opts base) */
    ATS_STAT_CLS,         /* mean attention to the [CLS] positions (sum over them) */
    ATS_STAT_SEP,         /* mean attention to the [SEP] positions */
    ATS_STAT_PUNCT,       /* mean attention to punctuation */
    ATS_STAT_SELF,        /* mean A[i][i] */
    ATS_STAT_PREV,        /* mean A[i][i-1] over rows i >= 1 */
    ATS_STAT_NEXT,        /* mean A[i][i+1] over rows i < n-1 */
    ATS_STAT_CONFIDENCE,  /* mean of max_j A[i][j] over rows that are not [SEP] (Voita) */
    ATS_STAT_POS_OFFSET,  /* the relative offset j − i most often holding the row's argmax */
    ATS_STAT_POS_SHARE,   /* share of rows whose argmax is at that offset */
    ATS_STAT_POSITIONAL,  /* 1 if POS_SHARE >= 0.9 (a positional head), else 0 */
    ATS_STAT_RARE,        /* share of rows whose argmax is a rarest token (needs freq) */
    ATS_STAT_TPL_IDENTITY, /* mean over documents of ‖A−T‖_F / √(‖A‖²_F + ‖T‖²_F), T = I */
    ATS_STAT_TPL_PREV,  /* ... T[i][i-1] = 1 (row 0 of T is zero) */
    ATS_STAT_TPL_NEXT,  /* ... T[i][i+1] = 1 (row n-1 of T is zero) */
    ATS_STAT_TPL_FIRST, /* ... T[i][0] = 1 (first-token column) */
    ATS_STAT_TPL_SEP,   /* ... T[i][c] = 1/|C| for the [SEP] columns c */
    ATS_STAT_TPL_PUNCT, /* ... T[i][c] = 1/|C| for the punctuation columns */
    ATS_STAT_TPL_COLS,  /* ... T[i][c] = 1/|C| for the chosen columns */
    ATS_STAT_COUNT
} ats_head_stat;

/* "entropy", "cls", "sep", "punct", "self", "prev", "next", "confidence", "pos_offset",
 * "pos_share", "positional", "rare", "tpl_identity", "tpl_prev", "tpl_next", "tpl_first",
 * "tpl_sep", "tpl_punct", "tpl_cols"; NULL for an invalid value. */
const char *ats_head_stat_name(ats_head_stat stat);

typedef struct ats_headstats ats_headstats;

/* Options used: base, normalize, sum_tol, n_threads (eps and seed_compat must be 0). */
ats_status ats_headstats_new(size_t L, size_t H, const ats_measure_opts *opts, ats_headstats **out,
                             ats_error *err);
/* Adds one document: doc [L][H][n][n]; roles may be NULL (no roles known). A document that
 * fails validation leaves the accumulator unchanged. */
ats_status ats_headstats_add(ats_headstats *hs, const ats_attn *doc, const ats_token_roles *roles,
                             ats_error *err);
/* out: double [ATS_STAT_COUNT][L][H]; NaN where a statistic had no data. */
ats_status ats_headstats_result(const ats_headstats *hs, double *out, ats_error *err);
void ats_headstats_free(ats_headstats *hs);

/* ---- context vectors (hidden states) */

typedef enum ats_vector_metric {
    ATS_COSINE_SIMILARITY = 0, /* x·y / (‖x‖‖y‖) */
    ATS_COSINE_DISTANCE = 1,   /* 1 − cosine similarity (scipy's "cosine") */
    ATS_EUCLIDEAN = 2          /* ‖x − y‖ */
} ats_vector_metric;

/* A borrowed batch of vectors: data is [batch][m][d] of dtype ATS_F32 or ATS_F64. */
typedef struct ats_vectors {
    ats_dtype dtype;
    const void *data; /* [batch][m][d] */
    size_t batch, m, d;
    const char *source; /* names the array in error messages; NULL: "vectors" */
} ats_vectors;

/* For every batch b: out[b][i][j] = metric(x[b][i], y[b][j]); y may be NULL for y = x (then the
 * matrix is symmetric with an exact diagonal). y must have the same batch and d as x.
 * out: double [batch][x.m][y.m]. A zero vector under a cosine metric, or a non-finite
 * component, is ATS_ERR_INVALID naming the vector. */
ats_status ats_context_compute(const ats_vectors *x, const ats_vectors *y, ats_vector_metric metric,
                               int n_threads, double *out, ats_error *err);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop
#endif
