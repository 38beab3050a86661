/* attnscope analysis: the workflows that combine the modules — a model with its tokenizer, the
 * attention of texts with their token labels, the topology of two texts compared head by head,
 * and the distances between heads over a streamed corpus — as library calls, so that the
 * command-line tool, the viewer and Python compute the same numbers by construction.
 *
 * Conventions (as everywhere in attnscope): every call returns ats_status and explains a failure
 * in an optional ats_error; an options struct is filled with its _init function and then
 * changed field by field, so that fields added later get their defaults; a result struct is
 * owned by the caller and released with its _free function (safe on a zeroed or freed result).
 * Layers and heads are 0-based, as transformers' outputs.attentions. */
#ifndef ATTNSCOPE_ANALYSIS_H
#define ATTNSCOPE_ANALYSIS_H

#include "attnscope/core.h"
#include "attnscope/measure.h"
#include "attnscope/model.h"
#include "attnscope/tokenizer.h"

#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- a session: a model and its tokenizer, loaded once and used for many calls */

typedef struct ats_session ats_session;

/* Loads a model (directory in HuggingFace layout or cached hub name, as ats_model_load) and,
 * for a text model, its tokenizer. A vision model opens without a tokenizer: the calls that take
 * texts then fail with ATS_ERR_INVALID. */
ats_status ats_session_open(const char *name_or_path, ats_session **out, ats_error *err);
void ats_session_close(ats_session *s);
/* The session's model and tokenizer (NULL for a vision model); they live as long as it. */
ats_model *ats_session_model(const ats_session *s);
ats_tokenizer *ats_session_tokenizer(const ats_session *s);
/* The message of the last failed call on this session ("" when none yet), as ats_model_errmsg:
 * for callers that do not pass an ats_error. */
const char *ats_session_errmsg(const ats_session *s);

/* ---- the attention of one input, with its token labels */

typedef struct ats_attention {
    size_t L, H, n; /* layers, heads, tokens */
    float *att;     /* [L][H][n][n] attention weights; layers the pass did not run are NaN */
    float *hidden;  /* [L+1][n][d] hidden states, or NULL */
    size_t d;       /* hidden width (0 without hidden states) */
    char **labels;  /* [n] display labels: the text each token covers (ats_token_labels), or the
                       lines of a label file, or "0", "1", ... */
    char *name;     /* "text 1", or the file the attention was read from */
} ats_attention;

typedef struct ats_run_options {
    int n_threads;   /* threads of the forward pass; 0: all cores */
    int truncate;    /* 1: cut texts longer than the model's maximum (default: an error) */
    int want_hidden; /* 1: keep the hidden states too */
    int n_layers;    /* > 0: stop after this many layers (the others are NaN); default 0: all */
} ats_run_options;

void ats_run_options_init(ats_run_options *o);

/* Runs count texts (UTF-8, not empty) through the session's model in one batched pass (each
 * result bit for bit its own pass) and fills out[count]; the inputs are named "text 1", ...,
 * and an error of text k names it. On failure nothing is left allocated in out. */
ats_status ats_session_run(ats_session *s, size_t count, const char *const *texts,
                           const ats_run_options *o, ats_attention *out, ats_error *err);
/* Reads attention computed elsewhere: an .npy of float32 or float64, [L][H][n][n] or [n][n]
 * (narrowed to float), and labels_path (one label a line, exactly n lines) or NULL for "0",
 * "1", ... . The input is named after the file. */
ats_status ats_attention_read(const char *npy_path, const char *labels_path, ats_attention *out,
                              ats_error *err);
void ats_attention_free(ats_attention *a);
/* The head (l, h) as a measure-module view [1][1][n][n] borrowing a->att. */
ats_attn ats_attention_head(const ats_attention *a, size_t l, size_t h);

/* The token metric of head (l, h): the Jensen–Shannon distance (base 2) between the tokens'
 * attention rows, or with seed_compat the seed notebook's √(scipy JS distance, base e) of
 * softmaxed rows; max_error as ats_measure_opts.max_error (0: exact). full: double [n][n] or NULL
 * when not wanted; lower: double [n(n-1)/2], the symmetric metric's lower triangle as
 * ats_rips_compute takes it. */
ats_status ats_head_metric(const ats_attention *a, size_t l, size_t h, int seed_compat,
                           double max_error, double *full, double *lower, ats_error *err);

/* The display label of every token of an encoding of text: the text the token covers without
 * surrounding blanks (GPT-2's "Ġthe" reads "the", WordPiece's "##ing" reads "ing"), a special
 * or empty token by its name. labels[enc->count] receive malloc'd strings. */
ats_status ats_token_labels(const ats_encoding *enc, const char *text, char **labels,
                            ats_error *err);

/* ---- two texts compared head by head */

typedef struct ats_compare_options {
    int all_heads;    /* 1: every head; 0 (default): the head (layer, head) */
    long layer, head; /* the head compared without all_heads */
    int seed_compat;  /* 1: the seed notebook's distance, √(scipy JS distance) of softmaxed rows;
                         0 (default): the Jensen–Shannon distance, base 2 */
    int max_dim;      /* diagrams H0..max_dim (0..2, default 1) */
    double q;         /* Wasserstein order q >= 1 (internal L∞; default 1) */
    double max_error; /* error allowed in the token distances (ats_measure_opts.max_error;
                         default 1e-9: float32 attention carries errors near 1e-7 already) */
    int n_threads;    /* threads (model, distances, persistence); 0: all cores */
    int truncate;     /* as ats_run_options.truncate */
} ats_compare_options;

typedef struct ats_compare_result {
    size_t L, H;             /* heads of both inputs */
    size_t n_dims;           /* max_dim + 1 */
    double *bottleneck;      /* [n_dims][L][H] bottleneck distance between the two inputs' diagrams
                                of each head and dimension; NaN for heads not compared; +inf where
                                the diagrams have different numbers of essential classes */
    double *wasserstein;     /* [n_dims][L][H] q-Wasserstein distance, the same way */
    ats_attention inputs[2]; /* the attention compared, with the token labels */
} ats_compare_result;

void ats_compare_options_init(ats_compare_options *o);
/* Runs both texts through the model in one pass (up to the compared layer only, for one head),
 * turns every compared head of each into the token metric and its Vietoris–Rips persistence,
 * and measures the distances between the two texts' diagrams. */
ats_status ats_compare(ats_session *s, const char *const texts[2], const ats_compare_options *o,
                       ats_compare_result *res, ats_error *err);
/* The same on attention already computed; the result takes over a and b (on success and on
 * failure they are left zeroed). */
ats_status ats_compare_attention(ats_attention *a, ats_attention *b, const ats_compare_options *o,
                                 ats_compare_result *res, ats_error *err);
void ats_compare_result_free(ats_compare_result *res);

#ifdef __cplusplus
}
#endif
#endif
