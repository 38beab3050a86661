/* Progress of the analysis calls' phases, reported through the caller's ats_progress_fn. */
#include "analysis_internal.h"

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
