/* What the files of the analysis module share. */
#ifndef ATS_ANALYSIS_INTERNAL_H
#define ATS_ANALYSIS_INTERNAL_H

#include "attnscope/analysis.h"

/* Records the failure st, explained by e, on the session (its errmsg) and in err; returns st. */
ats_status session_failed(ats_session *s, ats_status st, const ats_error *e, ats_error *err);
/* ATS_ERR_INVALID naming the model when the session has no tokenizer. */
ats_status session_need_text(const ats_session *s, ats_error *err);
/* ats_session_run without recording the failure on the session. */
ats_status session_run(ats_session *s, size_t count, const char *const *texts,
                       const ats_run_options *o, ats_attention *out, ats_error *err);
/* What session_run_layers hands each layer to, instead of keeping it. */
typedef struct session_layers {
    /* layer l of text t as a view: L = 1, H, n, att [1][H][n][n] borrowed for the call, name
     * names[t] or "text t+1", no labels */
    ats_status (*fn)(void *ctx, size_t t, size_t l, const ats_attention *layer, ats_error *err);
    /* bytes fn needs for texts of at most max_n tokens on a model of H heads (NULL: none), for
     * the pass's memory estimate (ats_forward_options.on_layer_bytes) */
    size_t (*bytes)(void *ctx, size_t max_n, size_t H);
    void *ctx;
    const char *const *names; /* [count] the views' names, or NULL for "text 1", ... */
} session_layers;
/* session_run with each layer's attention handed to ly->fn as the pass computes it (one
 * layer of one text held at a time, ats_forward_options.on_layer) instead of kept: out[t] has
 * L, H, n, the labels and the name, att NULL. An error of fn is returned as fn gave it. */
ats_status session_run_layers(ats_session *s, size_t count, const char *const *texts,
                              const ats_run_options *o, const session_layers *ly,
                              ats_attention *out, ats_error *err);
/* Adds |∂L/∂ξ| of count token sequences ids[i][n[i]] to imp[N] and their losses to *loss, in
 * sequence order; the sequences run on `threads` threads (src/analysis/importance.c). */
ats_status grad_importance(ats_backward *b, size_t N, size_t count, const int32_t *const *ids,
                           const size_t *n, int threads, double *imp, double *loss, ats_error *err);

/* One phase of progress reported through an ats_progress_fn (core.h); fn NULL: silent. */
typedef struct progress_phase {
    ats_progress_fn fn;
    void *ctx;
    const char *phase, *unit;
    uint64_t done, total;
} progress_phase;

/* Starts a phase of total units (reports 0 of total). */
void progress_begin(progress_phase *p, ats_progress_fn fn, void *ctx, const char *phase,
                    const char *unit, uint64_t total);
/* k more units done. */
void progress_add(progress_phase *p, uint64_t k);
/* The phase ended: done == total (the total becomes what was done when it stopped early). */
void progress_end(progress_phase *p);

/* A corpus pass's progress: lines of max_lines when given, else bytes of a corpus of known
 * size, else lines of an unknown total. corpus_progress reports where c is now. */
void corpus_progress_begin(progress_phase *p, const ats_corpus *c, size_t max_lines,
                           ats_progress_fn fn, void *ctx);
void corpus_progress(progress_phase *p, const ats_corpus *c, size_t max_lines);

#endif
