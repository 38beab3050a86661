/* Progress of the analysis calls' phases, reported through the caller's ats_progress_fn. */
#include "analysis_internal.h"

#include <string.h>

void progress_begin(progress_phase *p, ats_progress_fn fn, void *ctx, const char *phase,
                    const char *unit, uint64_t total) {
    *p = (progress_phase){fn, ctx, phase, unit, 0, total};
    if (fn) fn(ctx, phase, unit, 0, total);
}

void progress_add(progress_phase *p, uint64_t k) {
    p->done += k;
    if (p->total && p->done > p->total) p->total = p->done;
    if (p->fn) p->fn(p->ctx, p->phase, p->unit, p->done, p->total);
}

void progress_end(progress_phase *p) {
    p->total = p->done;
    if (p->fn) p->fn(p->ctx, p->phase, p->unit, p->done, p->total);
}

void corpus_progress_begin(progress_phase *p, const ats_corpus *c, size_t max_lines,
                           ats_progress_fn fn, void *ctx) {
    int by_bytes = !max_lines && c->size > 0;
    progress_begin(p, fn, ctx, "corpus", by_bytes ? "bytes" : "lines",
                   by_bytes ? (uint64_t)c->size : max_lines);
}

void corpus_progress(progress_phase *p, const ats_corpus *c, size_t max_lines) {
    uint64_t now;
    if (!strcmp(p->unit, "bytes"))
        now = (uint64_t)c->position;
    else /* the line past max_lines that ended the pass is not counted */
        now = max_lines && c->line_no > max_lines ? max_lines : c->line_no;
    if (now > p->done) progress_add(p, now - p->done);
}
