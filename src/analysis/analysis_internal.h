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
