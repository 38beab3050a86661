/* Head importance from gradients (Michel et al. 2019): I_h = mean over texts of |∂L(x)/∂ξ_h|,
 * L the mean next-token cross-entropy of text x and ξ_h a gate on head h's output, from one
 * forward and one backward pass per text (ats_backward_run, model.h) instead of L·H ablated
 * passes. Texts run in parallel, each pass single-threaded, in batches; their gradients are
 * added in text order, so the result does not depend on the thread count. */
#include "analysis_internal.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int num_threads); /* OpenBLAS (linked by the model module) */

void ats_importance_options_init(ats_importance_options *o) {
    memset(o, 0, sizeof *o);
}

void ats_importance_result_free(ats_importance_result *res) {
    if (!res) return;
    free(res->importance);
    memset(res, 0, sizeof *res);
}

ats_status grad_importance(ats_backward *b, size_t N, size_t count, const int32_t *const *ids,
                           const size_t *n, int threads, double *imp, double *loss,
                           ats_error *err) {
    float *g = malloc((count ? count : 1) * N * sizeof *g);
    double *losses = malloc((count ? count : 1) * sizeof *losses);
    ats_status *sts = calloc(count ? count : 1, sizeof *sts);
    ats_error *errs = calloc(count ? count : 1, sizeof *errs);
    ats_status st = ATS_OK;
    if (!g || !losses || !sts || !errs) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        goto done;
    }
    long cnt = (long)count;
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads > 0 ? threads : 1)
    for (long i = 0; i < cnt; i++) {
        ats_model_input in = {ids[i], NULL, NULL, n[i]};
        sts[i] = ats_backward_run(b, &in, 0, g + (size_t)i * N, &losses[i], &errs[i]);
    }
    for (size_t i = 0; i < count; i++) {
        if (sts[i]) {
            st = sts[i];
            if (err) *err = errs[i];
            break;
        }
        for (size_t a = 0; a < N; a++) imp[a] += fabs((double)g[i * N + a]);
        *loss += losses[i];
    }
done:
    free(g);
    free(losses);
    free(sts);
    free(errs);
    return st;
}

/* Texts read and run at once: a few per thread keeps the threads busy while lines differ in
 * length, and bounds the memory to a batch's passes. */
#define BATCH_PER_THREAD 4

ats_status ats_head_importance(ats_session *s, const ats_corpus_source *src,
                               const ats_importance_options *o, ats_importance_result *res,
                               ats_error *err) {
    ats_importance_options def;
    if (!o) {
        ats_importance_options_init(&def);
        o = &def;
    }
    memset(res, 0, sizeof *res);
    ats_error e = {0};
    ats_status st = session_need_text(s, &e);
    if (st) return session_failed(s, st, &e, err);
    ats_model *m = ats_session_model(s);
    ats_tokenizer *tok = ats_session_tokenizer(s);
    const ats_model_info *mi = ats_model_info_get(m);
    size_t L = (size_t)mi->n_layers, H = (size_t)mi->n_heads, N = L * H;
    size_t max_n = (size_t)mi->max_positions;
    if (o->max_tokens > 0 && o->max_tokens < max_n) max_n = o->max_tokens;
    int threads = o->n_threads > 0 ? o->n_threads : omp_get_max_threads();
    if (threads < 1) threads = 1;
    size_t batch = (size_t)threads * BATCH_PER_THREAD;
    const char *corpus = src->path ? src->path : "corpus";
    ats_backward *b = NULL;
    ats_corpus c;
    int open = 0;
    ats_encoding *enc = calloc(batch, sizeof *enc);
    const int32_t **ids = calloc(batch, sizeof *ids);
    size_t *n = calloc(batch, sizeof *n), nb = 0;
    double *imp = calloc(N ? N : 1, sizeof *imp), loss = 0.0;
    if (!enc || !ids || !n || !imp) {
        st = ats_error_set(&e, ATS_ERR_NOMEM, "out of memory");
        goto done;
    }
    st = ats_backward_open(m, &b, &e);
    if (!st) st = ats_corpus_open(&c, src, ATS_CORPUS_MAX_LINE_BYTES, &e);
    if (st) goto done;
    open = 1;
    openblas_set_num_threads(1); /* texts run in parallel, each pass on one thread */
    ats_line_kind kind;
    int got = 1;
    progress_phase pg;
    corpus_progress_begin(&pg, &c, o->max_lines, o->progress, o->progress_ctx);
    while (!st && got == 1) {
        got = ats_corpus_next(&c, &kind, &e);
        if (got < 0) st = e.status ? e.status : ATS_ERR_IO;
        if (got == 1 && o->max_lines && c.line_no > o->max_lines) got = 0;
        if (got == 1 && kind == ATS_LINE_TEXT) {
            ats_encoding *en = &enc[nb];
            st = ats_tokenizer_encode(tok, c.text, c.len, 1, en, &e);
            if (st) {
                ats_error_set(&e, st, "%s:%zu: %.*s", corpus, c.line_no, 400, e.message);
                break;
            }
            if (en->count < 2) { /* no next token to predict */
                res->skipped++;
                ats_encoding_free(en);
                continue;
            }
            res->truncated += en->count > max_n;
            ids[nb] = en->ids;
            n[nb] = en->count < max_n ? en->count : max_n;
            nb++;
        } else if (got == 1) {
            res->skipped++;
        }
        if (nb == batch || (got != 1 && nb > 0)) {
            if (!st) st = grad_importance(b, N, nb, ids, n, threads, imp, &loss, &e);
            res->texts += st ? 0 : nb;
            for (size_t i = 0; i < nb; i++) ats_encoding_free(&enc[i]);
            nb = 0;
            corpus_progress(&pg, &c, o->max_lines);
        }
    }
    if (!st) {
        corpus_progress(&pg, &c, o->max_lines);
        progress_end(&pg);
    }
    if (!st && res->texts == 0)
        st = ats_error_set(&e, ATS_ERR_INVALID, "%s: no line with at least 2 tokens", corpus);
    if (st) goto done;
    res->L = L;
    res->H = H;
    res->loss = loss / (double)res->texts;
    for (size_t a = 0; a < N; a++) imp[a] /= (double)res->texts;
    if (o->normalize) /* Michel et al.: each layer's importances divided by their L2 norm */
        for (size_t l = 0; l < L; l++) {
            double norm = 0.0;
            for (size_t h = 0; h < H; h++) norm += imp[l * H + h] * imp[l * H + h];
            norm = sqrt(norm);
            for (size_t h = 0; h < H && norm > 0; h++) imp[l * H + h] /= norm;
        }
    res->importance = imp;
    imp = NULL;
done:
    for (size_t i = 0; enc && i < nb; i++) ats_encoding_free(&enc[i]);
    if (open) ats_corpus_close(&c);
    ats_backward_close(b);
    free(enc);
    free(ids);
    free(n);
    free(imp);
    if (st) {
        ats_importance_result_free(res);
        return session_failed(s, st, &e, err);
    }
    return ATS_OK;
}
