/* Distances between heads over a corpus, streamed one line at a time: every line is encoded,
 * run and measured (ats_headdist) in parallel with other lines, and added to the sums in line
 * order; the corpus is cut into chunks whose sums are added in chunk order, so that processes
 * can share a corpus and D stays the same bit for bit. Also the head statistics of the same
 * lines and the importance of the heads by ablation. */
#include "analysis_internal.h"

#include <ctype.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int num_threads); /* OpenBLAS (linked by the model module) */

/* One model of the run. */
typedef struct hmodel {
    ats_model *m;
    ats_tokenizer *tok;
    const ats_model_info *mi;
    size_t L, H, N, max_n; /* layers, heads, L·H, longest input */
} hmodel;

typedef struct hrun {
    const ats_heads_options *o;
    const ats_corpus_source *src;
    const char *corpus; /* names the corpus in messages */
    hmodel models[2];
    int n_models;
    size_t N; /* heads in D */
    ats_measure_opts mopts;
    ats_forward_options fopts; /* n_threads 0, OpenBLAS at 1: lines run in parallel instead */
    int line_threads;          /* lines run at once */
    double *csum, *ccomp;      /* [N][N] the current chunk's sums (Neumaier) */
    ats_headstats *hs;
    double *freq_count; /* [V] token counts over the corpus (stats) */
    ats_heads_result *res;
} hrun;

/* Prefixes err's message with the corpus file and line number. */
static void prefix_error(ats_error *err, ats_status st, const char *corpus, size_t line_no) {
    if (!err) return;
    char msg[ATS_ERROR_MESSAGE_MAX];
    memcpy(msg, err->message, sizeof msg);
    msg[sizeof msg - 1] = '\0';
    ats_error_set(err, st, "%s:%zu: %s", corpus, line_no, msg);
}

/* Encodes a line and applies the length rule; *n_use is the number of tokens to run (0: skip),
 * *too_long whether the encoding exceeds the model's length. */
static ats_status encode_line(const hrun *r, const hmodel *hm, const char *text, size_t len,
                              size_t line_no, ats_encoding *enc, size_t *n_use, int *too_long,
                              ats_error *err) {
    ats_status st = ats_tokenizer_encode(hm->tok, text, len, 1, enc, err);
    if (st) {
        prefix_error(err, st, r->corpus, line_no);
        return st;
    }
    *n_use = enc->count;
    *too_long = enc->count > hm->max_n;
    if (!*too_long) return ATS_OK;
    if (r->o->skip_long || r->n_models == 2) {
        *n_use = 0;
        return ATS_OK;
    }
    /* as transformers' truncation=True (and attention --truncate): the text is cut, the closing
     * special tokens stay; they are swapped into place, so the encoding still owns every token */
    size_t n = enc->count, lim = hm->max_n, k = 0;
    while (k < n && k < lim && enc->special[n - 1 - k]) k++;
    for (size_t j = 0; j < k; j++) {
        size_t a = lim - k + j, b = n - k + j;
        int32_t id = enc->ids[a];
        enc->ids[a] = enc->ids[b];
        enc->ids[b] = id;
        char *t = enc->tokens[a];
        enc->tokens[a] = enc->tokens[b];
        enc->tokens[b] = t;
        uint8_t sp = enc->special[a];
        enc->special[a] = enc->special[b];
        enc->special[b] = sp;
        int32_t w = enc->word_ids[a];
        enc->word_ids[a] = enc->word_ids[b];
        enc->word_ids[b] = w;
        for (int e = 0; e < 2; e++) {
            size_t o = enc->offsets[2 * a + e];
            enc->offsets[2 * a + e] = enc->offsets[2 * b + e];
            enc->offsets[2 * b + e] = o;
        }
    }
    *n_use = lim;
    return ATS_OK;
}

static ats_status add_stats(hrun *r, const ats_encoding *enc, size_t n, const ats_attn *view,
                            ats_error *err) {
    size_t *buf = malloc(3 * n * sizeof *buf);
    double *freq = malloc(n * sizeof *freq);
    if (!buf || !freq) {
        free(buf);
        free(freq);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    ats_token_roles roles;
    ats_token_roles_find(n, (const char *const *)enc->tokens, enc->special, buf, &roles);
    for (size_t i = 0; i < n; i++) {
        int32_t id = enc->ids[i];
        freq[i] = (enc->special[i] || id < 0) ? INFINITY : r->freq_count[id];
    }
    roles.freq = freq;
    ats_status st = ats_headstats_add(r->hs, view, &roles, err);
    free(buf);
    free(freq);
    return st;
}

/* One line of the corpus: encoded and run in parallel with other lines (job_prepare), then
 * added to the sums in line order (job_consume), so the result does not depend on the number
 * of threads. Every forward pass runs single-threaded: OpenBLAS's results depend on its
 * thread count, the sums must not. */
typedef struct line_job {
    char *text;
    size_t len, line_no;
    ats_encoding enc[2];
    size_t n[2];
    int too_long;
    ats_forward_result res[2];
    double *dline; /* [N][N] this line's head distances */
    size_t words;  /* joint: words both models cover */
    ats_status st;
    ats_error err;
} line_job;

static ats_status pool_joint(const hrun *r, line_job *job, double **doc_out, size_t *w_out,
                             ats_error *err);

static void job_prepare(const hrun *r, line_job *j) {
    for (int k = 0; k < r->n_models; k++) {
        int tl;
        j->st = encode_line(r, &r->models[k], j->text, j->len, j->line_no, &j->enc[k], &j->n[k],
                            &tl, &j->err);
        if (j->st) return;
        j->too_long |= tl;
    }
    for (int k = 0; k < r->n_models; k++)
        if (j->n[k] == 0) return;
    for (int k = 0; k < r->n_models; k++) {
        ats_model_input in = {j->enc[k].ids, NULL, NULL, j->n[k]};
        j->st = ats_model_forward(r->models[k].m, &in, &r->fopts, &j->res[k], &j->err);
        if (j->st) {
            prefix_error(&j->err, j->st, r->corpus, j->line_no);
            return;
        }
    }
    /* this line's head distances, single-threaded (lines run in parallel) */
    double *doc = NULL;
    ats_attn view;
    if (r->n_models == 2) {
        j->st = pool_joint(r, j, &doc, &j->words, &j->err);
        if (j->st || j->words == 0) return;
        view = (ats_attn){ATS_F64, doc, 1, r->N, j->words, r->corpus};
    } else {
        const hmodel *hm = &r->models[0];
        view = (ats_attn){ATS_F32, j->res[0].attention, hm->L, hm->H, j->n[0], r->corpus};
    }
    ats_measure_opts o = r->mopts;
    o.n_threads = 1;
    ats_headdist *hd = NULL;
    j->dline = malloc(r->N * r->N * sizeof *j->dline);
    if (!j->dline)
        j->st = ats_error_set(&j->err, ATS_ERR_NOMEM, "out of memory");
    else
        j->st =
            ats_headdist_new(view.L, view.H, r->o->clark ? ATS_HEADDIST_CLARK : ATS_HEADDIST_SEED,
                             ATS_HEADDIST_ALL, &o, &hd, &j->err);
    if (!j->st) j->st = ats_headdist_add(hd, &view, &j->err);
    if (!j->st) j->st = ats_headdist_result(hd, j->dline, &j->err);
    if (j->st) prefix_error(&j->err, j->st, r->corpus, j->line_no);
    ats_headdist_free(hd);
    free(doc);
}

static void job_free(line_job *j) {
    for (int k = 0; k < 2; k++) {
        ats_forward_result_free(&j->res[k]);
        ats_encoding_free(&j->enc[k]);
    }
    free(j->text);
    free(j->dline);
    memset(j, 0, sizeof *j);
}

static void neumaier_add(double *sum, double *comp, const double *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double s0 = sum[i], u = s0 + v[i];
        comp[i] += fabs(s0) >= fabs(v[i]) ? (s0 - u) + v[i] : (v[i] - u) + s0;
        sum[i] = u;
    }
}

static ats_status job_consume(hrun *r, line_job *j, ats_error *err) {
    if (j->st) {
        if (err) *err = j->err;
        return j->st;
    }
    if (j->too_long) {
        if (r->o->skip_long || r->n_models == 2) {
            r->res->counts[ATS_HEADS_SKIPPED_LONG]++;
            return ATS_OK;
        }
        r->res->counts[ATS_HEADS_TRUNC_LINES]++;
        r->res->counts[ATS_HEADS_TRUNC_TOKENS] += j->enc[0].count - j->n[0];
    }
    if (j->n[0] == 0) return ATS_OK;
    if (r->n_models == 2 && j->words == 0) {
        r->res->counts[ATS_HEADS_NOWORDS]++;
        return ATS_OK;
    }
    neumaier_add(r->csum, r->ccomp, j->dline, r->N * r->N);
    r->res->counts[ATS_HEADS_TEXTS]++;
    r->res->counts[ATS_HEADS_TOKENS] += j->n[0] + j->n[1];
    r->res->counts[ATS_HEADS_WORDS] += j->words;
    ats_status st = ATS_OK;
    if (r->hs) {
        hmodel *hm = &r->models[0];
        ats_attn view = {ATS_F32, j->res[0].attention, hm->L, hm->H, j->n[0], r->corpus};
        st = add_stats(r, &j->enc[0], j->n[0], &view, err);
        if (st) prefix_error(err, st, r->corpus, j->line_no);
    }
    return st;
}

/* White-space words of text: word_of[i] for each token of enc (-1 for special tokens and
 * tokens outside any word). Returns the number of words. */
static size_t words_of_tokens(const char *text, size_t len, const ats_encoding *enc, size_t n,
                              int32_t *word_of) {
    /* word index of each byte: -1 on white space */
    size_t words = 0;
    for (size_t i = 0; i < n; i++) word_of[i] = -1;
    int32_t *byte_word = malloc((len ? len : 1) * sizeof *byte_word);
    if (!byte_word) return 0;
    int in_word = 0;
    for (size_t b = 0; b < len; b++) {
        int space = isspace((unsigned char)text[b]);
        if (space) {
            byte_word[b] = -1;
            in_word = 0;
        } else {
            if (!in_word) words++;
            in_word = 1;
            byte_word[b] = (int32_t)(words - 1);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (enc->special[i]) continue;
        size_t s = enc->offsets[2 * i], e = enc->offsets[2 * i + 1];
        for (size_t b = s; b < e && b < len; b++)
            if (byte_word[b] >= 0) {
                word_of[i] = byte_word[b];
                break;
            }
    }
    free(byte_word);
    return words;
}

/* Joint: both models on one line, attention pooled to the words both models cover. */
static ats_status pool_joint(const hrun *r, line_job *job, double **doc_out, size_t *w_out,
                             ats_error *err) {
    double *doc = NULL;
    *doc_out = NULL;
    *w_out = 0;
    const ats_encoding *enc = job->enc;
    const ats_forward_result *res = job->res;
    const size_t *n = job->n;
    const char *text = job->text;
    size_t len = job->len, line_no = job->line_no;
    int32_t *word_of[2] = {NULL, NULL};
    int32_t *wmap = NULL;
    size_t *wtok = NULL;
    ats_status st = ATS_OK;
    size_t words = 0;
    for (int k = 0; k < 2; k++) {
        word_of[k] = malloc((n[k] ? n[k] : 1) * sizeof *word_of[k]);
        if (!word_of[k]) {
            st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
            goto done;
        }
        words = words_of_tokens(text, len, &enc[k], n[k], word_of[k]);
    }
    /* keep the words that have tokens in both models */
    wmap = malloc((words ? words : 1) * sizeof *wmap);
    wtok = calloc(2 * (words ? words : 1), sizeof *wtok);
    if (!wmap || !wtok) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < n[k]; i++)
            if (word_of[k][i] >= 0) wtok[2 * (size_t)word_of[k][i] + (size_t)k]++;
    size_t w = 0;
    for (size_t u = 0; u < words; u++)
        wmap[u] = (wtok[2 * u] && wtok[2 * u + 1]) ? (int32_t)w++ : -1;
    if (w == 0) goto done;
    size_t Ntot = r->N, need;
    if (!ats_size_mul(Ntot, w, &need) || !ats_size_mul(need, w, &need)) {
        st = ats_error_set(err, ATS_ERR_RANGE, "%s:%zu: too many words", r->corpus, line_no);
        goto done;
    }
    doc = calloc(need ? need : 1, sizeof *doc);
    if (!doc) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory for %zu words", w);
        goto done;
    }
    size_t base = 0;
    for (int k = 0; k < 2; k++) {
        const hmodel *hm = &r->models[k];
        size_t nk = n[k], ww = w * w;
        /* per word: number of query tokens */
        for (size_t a = 0; a < hm->N; a++) {
            const float *A = res[k].attention + a * nk * nk;
            double *W = doc + (base + a) * ww;
            for (size_t i = 0; i < nk; i++) {
                int32_t ui = word_of[k][i] >= 0 ? wmap[word_of[k][i]] : -1;
                if (ui < 0) continue;
                double qn = (double)wtok[2 * (size_t)word_of[k][i] + (size_t)k];
                for (size_t j = 0; j < nk; j++) {
                    int32_t vj = word_of[k][j] >= 0 ? wmap[word_of[k][j]] : -1;
                    if (vj < 0) continue;
                    W[(size_t)ui * w + (size_t)vj] += (double)A[i * nk + j] / qn;
                }
            }
        }
        base += hm->N;
    }
    *doc_out = doc;
    *w_out = w;
    doc = NULL;
done:
    free(doc);
    if (st) prefix_error(err, st, r->corpus, line_no);
    for (int k = 0; k < 2; k++) free(word_of[k]);
    free(wmap);
    free(wtok);
    return st;
}

/* ---- token frequencies for the rare-token statistic (a tokenizer-only pass) */

static ats_status count_frequencies(hrun *r, ats_error *err) {
    hmodel *hm = &r->models[0];
    size_t V = ats_tokenizer_vocab_size(hm->tok);
    if ((size_t)hm->mi->vocab_size > V) V = (size_t)hm->mi->vocab_size;
    r->freq_count = calloc(V ? V : 1, sizeof *r->freq_count);
    if (!r->freq_count) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    ats_corpus c;
    ats_status st = ats_corpus_open(&c, r->src, ATS_CORPUS_MAX_LINE_BYTES, err);
    if (st) return st;
    ats_line_kind kind;
    int got;
    while ((got = ats_corpus_next(&c, &kind, err)) == 1) {
        if (r->o->max_lines && c.line_no > r->o->max_lines) break;
        if (kind != ATS_LINE_TEXT) continue;
        ats_encoding enc = {0};
        if (ats_tokenizer_encode(hm->tok, c.text, c.len, 1, &enc, NULL) == ATS_OK)
            for (size_t i = 0; i < enc.count; i++)
                if (enc.ids[i] >= 0 && (size_t)enc.ids[i] < V) r->freq_count[enc.ids[i]] += 1;
        ats_encoding_free(&enc);
    }
    ats_corpus_close(&c);
    return got < 0 ? ATS_ERR_IO : ATS_OK;
}

/* ---- the corpus pass: D summed chunk by chunk in chunk order */

/* Runs the batched lines (forward passes in parallel, one per thread) and adds them in order. */
static ats_status flush_jobs(hrun *r, line_job *jobs, size_t *nb, ats_error *err) {
    size_t count = *nb;
    *nb = 0;
    int nt = r->line_threads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (size_t i = 0; i < count; i++) job_prepare(r, &jobs[i]);
    ats_status st = ATS_OK;
    for (size_t i = 0; i < count; i++) {
        if (!st) st = job_consume(r, &jobs[i], err);
        job_free(&jobs[i]);
    }
    return st;
}

static ats_status corpus_pass(hrun *r, double *D, ats_error *err) {
    const ats_heads_options *o = r->o;
    size_t N = r->N, NN = N * N;
    double *sum = calloc(NN, sizeof *sum), *comp = calloc(NN, sizeof *comp),
           *part = calloc(NN, sizeof *part);
    r->csum = calloc(NN, sizeof *r->csum);
    r->ccomp = calloc(NN, sizeof *r->ccomp);
    if (!sum || !comp || !part || !r->csum || !r->ccomp) {
        free(sum);
        free(comp);
        free(part);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory for %zu heads", N);
    }
    ats_corpus c;
    ats_status st = ats_corpus_open(&c, r->src, ATS_CORPUS_MAX_LINE_BYTES, err);
    if (st) {
        free(sum);
        free(comp);
        free(part);
        return st;
    }
    size_t chunk_lines = o->chunk_lines, chunk = 0, in_chunk = 0;
    size_t procs = (size_t)o->n_procs;
    int mine = 1; /* this process owns the current chunk */
    int open = 0; /* a chunk has started */
    ats_line_kind kind;
    int got;
    size_t nb = 0, batch = (size_t)r->line_threads;
    progress_phase pg;
    corpus_progress_begin(&pg, &c, o->max_lines, o->progress, o->progress_ctx);
    line_job *jobs = calloc(batch, sizeof *jobs);
    if (!jobs) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    while (!st) {
        got = ats_corpus_next(&c, &kind, err);
        int at_end = got != 1 || (o->max_lines && c.line_no > o->max_lines);
        if (open && (at_end || in_chunk == chunk_lines)) { /* close the chunk */
            if (nb) st = flush_jobs(r, jobs, &nb, err);
            if (st) break;
            int owner = (int)(chunk % procs);
            if (o->rank == 0) {
                if (owner == 0)
                    for (size_t i = 0; i < NN; i++) part[i] = r->csum[i] + r->ccomp[i];
                else
                    o->exchange(o->exchange_ctx, chunk, owner, part, NN);
                neumaier_add(sum, comp, part, NN);
            } else if (owner == o->rank) {
                for (size_t i = 0; i < NN; i++) part[i] = r->csum[i] + r->ccomp[i];
                o->exchange(o->exchange_ctx, chunk, owner, part, NN);
            }
            open = 0;
            chunk++;
            in_chunk = 0;
            if (st) break;
        }
        if (got < 0) {
            st = ATS_ERR_IO;
            break;
        }
        if (at_end) break;
        if (!open) {
            mine = (int)(chunk % procs) == o->rank;
            if (mine) {
                memset(r->csum, 0, NN * sizeof *r->csum);
                memset(r->ccomp, 0, NN * sizeof *r->ccomp);
            }
            open = 1;
        }
        in_chunk++;
        if (!mine) continue;
        r->res->counts[ATS_HEADS_LINES]++;
        switch (kind) {
        case ATS_LINE_EMPTY:
            r->res->counts[ATS_HEADS_EMPTY]++;
            if (!r->res->first_empty) r->res->first_empty = c.line_no;
            continue;
        case ATS_LINE_BADUTF:
            r->res->counts[ATS_HEADS_BADUTF]++;
            if (!r->res->first_badutf) r->res->first_badutf = c.line_no;
            continue;
        case ATS_LINE_BADJSON:
            r->res->counts[ATS_HEADS_BADJSON]++;
            if (!r->res->first_badjson) r->res->first_badjson = c.line_no;
            continue;
        case ATS_LINE_LONG:
            r->res->counts[ATS_HEADS_HUGE]++;
            if (!r->res->first_huge) r->res->first_huge = c.line_no;
            continue;
        case ATS_LINE_TEXT:
            break;
        }
        line_job *j = &jobs[nb];
        j->text = malloc(c.len + 1);
        if (!j->text) {
            st = ats_error_set(err, ATS_ERR_NOMEM, "%s:%zu: out of memory", r->corpus, c.line_no);
            break;
        }
        memcpy(j->text, c.text, c.len + 1);
        j->len = c.len;
        j->line_no = c.line_no;
        if (++nb == batch) {
            st = flush_jobs(r, jobs, &nb, err);
            if (st) break;
            corpus_progress(&pg, &c, o->max_lines);
        }
    }
    for (size_t i = 0; jobs && i < nb; i++) job_free(&jobs[i]);
    free(jobs);
    if (!st) {
        corpus_progress(&pg, &c, o->max_lines);
        progress_end(&pg);
    }
    ats_corpus_close(&c);
    if (!st)
        for (size_t i = 0; i < NN; i++) D[i] = sum[i] + comp[i];
    free(sum);
    free(comp);
    free(part);
    return st;
}

typedef struct abl_line {
    int32_t *ids, *input, *labels;
    size_t n;
    float *hidden; /* [n][d] final hidden states of the full model (no LM head) */
} abl_line;

/* A head and its sort key: the pruning order sorts these, ties by head, so that the order is
 * the same on every run (and needs no global for qsort's comparison). */
typedef struct keyed {
    double key;
    size_t head;
} keyed;

static int cmp_keyed(const void *x, const void *y) {
    const keyed *a = x, *b = y;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return a->head < b->head ? -1 : a->head > b->head;
}

/* The measure over the ablation lines with a head mask: mean LM loss over all labelled
 * positions, or the mean relative change of the final hidden states. Lines run in parallel
 * (single-threaded forward passes); their sums are added in line order. */
static ats_status abl_measure(hrun *r, abl_line *lines, size_t count, const float *mask, int lm,
                              double *out, ats_error *err) {
    hmodel *hm = &r->models[0];
    ats_forward_options fo = r->fopts;
    fo.capture = lm ? 0 : ATS_CAPTURE_HIDDEN;
    fo.head_mask = mask;
    double *tot = calloc(count, sizeof *tot);
    size_t *pos = calloc(count, sizeof *pos);
    ats_status *sts = calloc(count, sizeof *sts);
    ats_error *errs = calloc(count, sizeof *errs);
    if (!tot || !pos || !sts || !errs) {
        free(tot);
        free(pos);
        free(sts);
        free(errs);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(r->line_threads)
    for (size_t i = 0; i < count; i++) {
        ats_model_input in = {lines[i].input, NULL, lm ? lines[i].labels : NULL, lines[i].n};
        ats_forward_result res = {0};
        sts[i] = ats_model_forward(hm->m, &in, &fo, &res, &errs[i]);
        if (sts[i]) continue;
        if (lm) {
            if (res.loss_count) {
                tot[i] = res.loss * (double)res.loss_count;
                pos[i] = res.loss_count;
            }
        } else {
            size_t n = res.n_tokens, d = res.d_model;
            const float *h = res.hidden + hm->L * n * d;
            if (!mask) memcpy(lines[i].hidden, h, n * d * sizeof(float));
            for (size_t t = 0; t < n; t++) {
                double diff = 0, norm = 0;
                for (size_t k = 0; k < d; k++) {
                    double x = lines[i].hidden[t * d + k], y = h[t * d + k];
                    diff += (x - y) * (x - y);
                    norm += x * x;
                }
                tot[i] += norm > 0 ? sqrt(diff / norm) : 0;
            }
            pos[i] = n;
        }
        ats_forward_result_free(&res);
    }
    ats_status st = ATS_OK;
    double total = 0;
    size_t positions = 0;
    for (size_t i = 0; i < count; i++) {
        if (sts[i] && !st) {
            st = sts[i];
            if (err) *err = errs[i];
        }
        total += tot[i];
        positions += pos[i];
    }
    free(tot);
    free(pos);
    free(sts);
    free(errs);
    *out = positions ? total / (double)positions : NAN;
    return st;
}

/* The pruning curve by gradient importance: *grad[N] ← mean |∂L/∂ξ| over the lines (causal
 * LMs, as ats_head_importance), *order[N] the heads by increasing gradient importance, *loss[steps]
 * the measure with the first removed[k] of them masked. A model the backward pass does not
 * cover leaves the three NULL. */
static ats_status grad_pruning(hrun *r, abl_line *lines, size_t count, const size_t *removed,
                               size_t steps, double **grad, size_t **order, double **loss,
                               progress_phase *pg, ats_error *err) {
    hmodel *hm = &r->models[0];
    size_t N = hm->N;
    ats_backward *b = NULL;
    ats_error e;
    if (ats_backward_open(hm->m, &b, &e)) return e.status == ATS_ERR_INVALID ? ATS_OK : e.status;
    double *g = calloc(N, sizeof *g), *gl = malloc(steps * sizeof *gl), mean_loss = 0.0;
    size_t *go = malloc(N * sizeof *go), *n = malloc(count * sizeof *n);
    const int32_t **ids = malloc(count * sizeof *ids);
    float *mask = malloc(N * sizeof *mask);
    keyed *by_key = malloc(N * sizeof *by_key);
    ats_status st = ATS_OK;
    if (!g || !gl || !go || !n || !ids || !mask || !by_key) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t used = 0;
    for (size_t i = 0; i < count; i++)
        if (lines[i].n >= 2) { /* a one-token line has no next token: no gradient */
            ids[used] = lines[i].input;
            n[used++] = lines[i].n;
        }
    st = grad_importance(b, N, used, ids, n, r->line_threads, g, &mean_loss, err);
    if (st) goto done;
    progress_add(pg, 1);
    for (size_t a = 0; a < N; a++) by_key[a] = (keyed){g[a] / (double)(used ? used : 1), a};
    for (size_t a = 0; a < N; a++) g[a] = by_key[a].key;
    qsort(by_key, N, sizeof *by_key, cmp_keyed);
    for (size_t a = 0; a < N; a++) go[a] = by_key[a].head;
    for (size_t s = 0; !st && s < steps; s++) {
        for (size_t a = 0; a < N; a++) mask[a] = 1.0f;
        for (size_t j = 0; j < removed[s]; j++) mask[go[j]] = 0.0f;
        st = abl_measure(r, lines, count, mask, 1, &gl[s], err);
        progress_add(pg, 1);
    }
    if (st) goto done;
    *grad = g;
    *order = go;
    *loss = gl;
    g = gl = NULL;
    go = NULL;
done:
    ats_backward_close(b);
    free(g);
    free(gl);
    free(go);
    free(n);
    free(ids);
    free(mask);
    free(by_key);
    return st;
}

static ats_status run_ablation(hrun *r, size_t cap, ats_ablation_result *res, ats_error *err) {
    hmodel *hm = &r->models[0];
    size_t H = hm->H, N = hm->N, d = (size_t)hm->mi->d_model;
    int32_t mask_id = ats_tokenizer_token_to_id(hm->tok, "[MASK]");
    if (mask_id < 0) mask_id = ats_tokenizer_token_to_id(hm->tok, "<mask>");
    int lm = hm->mi->has_lm_head && (hm->mi->causal || mask_id >= 0);
    size_t count = 0;
    abl_line *lines = calloc(cap, sizeof *lines);
    float *mask = malloc(N * sizeof *mask);
    double *single = malloc(N * sizeof *single), *keep = malloc(N * sizeof *keep);
    size_t *order = malloc(N * sizeof *order);
    size_t step = (N + 19) / 20, steps_cap = N / step + 2; /* about 20 points, both ends */
    double *order_loss = malloc(steps_cap * sizeof *order_loss);
    size_t *order_k = malloc(steps_cap * sizeof *order_k);
    keyed *by_key = malloc(N * sizeof *by_key);
    double *grad = NULL, *grad_loss = NULL;
    size_t *grad_order = NULL;
    ats_status st = ATS_OK;
    if (!lines || !mask || !single || !keep || !order || !order_loss || !order_k || !by_key) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* the first ablation_lines usable lines, tokenized once */
    ats_corpus c;
    st = ats_corpus_open(&c, r->src, ATS_CORPUS_MAX_LINE_BYTES, err);
    if (st) goto done;
    ats_line_kind kind;
    int got;
    while (count < cap && (got = ats_corpus_next(&c, &kind, err)) == 1) {
        if (r->o->max_lines && c.line_no > r->o->max_lines) break;
        if (kind != ATS_LINE_TEXT) continue;
        ats_encoding enc = {0};
        size_t n;
        int too_long;
        st = encode_line(r, hm, c.text, c.len, c.line_no, &enc, &n, &too_long, err);
        if (st) break;
        if (n > 0) {
            abl_line *ln = &lines[count];
            ln->n = n;
            ln->ids = malloc(n * sizeof *ln->ids);
            ln->input = malloc(n * sizeof *ln->input);
            ln->labels = malloc(n * sizeof *ln->labels);
            ln->hidden = lm ? NULL : malloc(n * d * sizeof *ln->hidden);
            if (!ln->ids || !ln->input || !ln->labels || (!lm && !ln->hidden)) {
                ats_encoding_free(&enc);
                count++;
                st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
                break;
            }
            memcpy(ln->ids, enc.ids, n * sizeof *ln->ids);
            memcpy(ln->input, enc.ids, n * sizeof *ln->input);
            if (hm->mi->causal) {
                memcpy(ln->labels, enc.ids, n * sizeof *ln->labels);
            } else { /* masked LM: every 6th ordinary token, offset by the line number */
                size_t ord = count % 6, picked = 0;
                for (size_t i = 0; i < n; i++) {
                    ln->labels[i] = -100;
                    if (enc.special[i]) continue;
                    if (ord++ % 6 == 0 && mask_id >= 0) {
                        ln->labels[i] = enc.ids[i];
                        ln->input[i] = mask_id;
                        picked++;
                    }
                }
                (void)picked;
            }
            count++;
        }
        ats_encoding_free(&enc);
    }
    ats_corpus_close(&c);
    if (st) goto done;
    if (count == 0) {
        st = ats_error_set(err, ATS_ERR_INVALID, "%s: no usable line for the ablation", r->corpus);
        goto done;
    }
    /* the passes over the lines: the full model, each head masked, all but each head of its
     * layer, the pruning curve (ceil(N/step) + 1 points) and, for a causal LM, the gradient
     * pass and its own pruning curve */
    size_t curve = (N + step - 1) / step + 1;
    int grad_too = lm && hm->mi->causal;
    progress_phase pg;
    progress_begin(&pg, r->o->progress, r->o->progress_ctx, "ablation", "passes",
                   1 + 2 * (uint64_t)N + curve + (grad_too ? 1 + curve : 0));
    double base;
    st = abl_measure(r, lines, count, NULL, lm, &base, err);
    progress_add(&pg, 1);
    for (size_t a = 0; !st && a < N; a++) { /* each head masked */
        for (size_t b = 0; b < N; b++) mask[b] = b == a ? 0.0f : 1.0f;
        st = abl_measure(r, lines, count, mask, lm, &single[a], err);
        progress_add(&pg, 1);
    }
    for (size_t a = 0; !st && a < N; a++) { /* all but head a of its layer masked */
        size_t l = a / H;
        for (size_t b = 0; b < N; b++) mask[b] = (b / H == l && b != a) ? 0.0f : 1.0f;
        st = abl_measure(r, lines, count, mask, lm, &keep[a], err);
        progress_add(&pg, 1);
    }
    if (st) goto done;
    /* pruning: remove heads in order of increasing importance */
    for (size_t a = 0; a < N; a++) by_key[a] = (keyed){single[a], a};
    qsort(by_key, N, sizeof *by_key, cmp_keyed);
    for (size_t a = 0; a < N; a++) order[a] = by_key[a].head;
    size_t steps = 0;
    for (size_t k = 0; !st && steps < steps_cap; k += step) {
        if (k > N) k = N;
        for (size_t b = 0; b < N; b++) mask[b] = 1.0f;
        for (size_t j = 0; j < k; j++) mask[order[j]] = 0.0f;
        order_k[steps] = k;
        st = abl_measure(r, lines, count, mask, lm, &order_loss[steps], err);
        progress_add(&pg, 1);
        steps++;
        if (k == N) break;
    }
    if (st) goto done;
    if (grad_too)
        st =
            grad_pruning(r, lines, count, order_k, steps, &grad, &grad_order, &grad_loss, &pg, err);
    if (st) goto done;
    progress_end(&pg);
    *res = (ats_ablation_result){N,     count,   lm,         base, single,     keep,     order,
                                 steps, order_k, order_loss, grad, grad_order, grad_loss};
    single = keep = order_loss = grad = grad_loss = NULL;
    order = order_k = grad_order = NULL;
done:
    for (size_t i = 0; lines && i < count; i++) {
        free(lines[i].ids);
        free(lines[i].input);
        free(lines[i].labels);
        free(lines[i].hidden);
    }
    free(lines);
    free(mask);
    free(single);
    free(keep);
    free(order);
    free(order_loss);
    free(order_k);
    free(by_key);
    free(grad);
    free(grad_order);
    free(grad_loss);
    return st;
}

void ats_heads_options_init(ats_heads_options *o) {
    memset(o, 0, sizeof *o);
    o->chunk_lines = 64;
    o->n_procs = 1;
}

void ats_heads_result_free(ats_heads_result *res) {
    if (!res) return;
    free(res->D);
    free(res->stats);
    memset(res, 0, sizeof *res);
}

void ats_ablation_result_free(ats_ablation_result *res) {
    if (!res) return;
    free(res->single);
    free(res->keep);
    free(res->order);
    free(res->removed);
    free(res->pruned);
    free(res->grad);
    free(res->grad_order);
    free(res->grad_pruned);
    memset(res, 0, sizeof *res);
}

/* The run's models, threads and options. */
static ats_status hrun_setup(hrun *r, ats_session *const *sessions, size_t n_sessions,
                             const ats_corpus_source *src, const ats_heads_options *o,
                             ats_heads_result *res, ats_error *err) {
    memset(r, 0, sizeof *r);
    r->o = o;
    r->src = src;
    r->corpus = src->path ? src->path : "corpus";
    r->res = res;
    if (n_sessions < 1 || n_sessions > 2)
        return ats_error_set(err, ATS_ERR_INVALID, "heads takes one or two models, not %zu",
                             n_sessions);
    if (o->chunk_lines < 1 || o->n_procs < 1 || o->rank < 0 || o->rank >= o->n_procs ||
        (o->n_procs > 1 && !o->exchange))
        return ats_error_set(err, ATS_ERR_INVALID,
                             "heads options: chunk_lines >= 1, 0 <= rank < n_procs, and an "
                             "exchange function for several processes");
    if (o->stats && n_sessions == 2)
        return ats_error_set(err, ATS_ERR_INVALID, "head statistics take one model");
    r->n_models = (int)n_sessions;
    for (size_t k = 0; k < n_sessions; k++) {
        hmodel *hm = &r->models[k];
        hm->m = ats_session_model(sessions[k]);
        hm->tok = ats_session_tokenizer(sessions[k]);
        hm->mi = ats_model_info_get(hm->m);
        if (!hm->tok)
            return ats_error_set(err, ATS_ERR_INVALID,
                                 "%s: heads over a text corpus needs a text model, not ViT",
                                 hm->mi->dir);
        hm->L = (size_t)hm->mi->n_layers;
        hm->H = (size_t)hm->mi->n_heads;
        hm->N = hm->L * hm->H;
        hm->max_n = (size_t)hm->mi->max_positions;
        if (o->max_tokens > 0 && o->max_tokens < hm->max_n) hm->max_n = o->max_tokens;
        r->N += hm->N;
    }
    size_t NN;
    if (!ats_size_mul(r->N, r->N, &NN) || r->N == 0)
        return ats_error_set(err, ATS_ERR_RANGE, "%zu heads is out of range", r->N);
    ats_measure_opts_init(&r->mopts);
    int threads = o->n_threads > 0 ? o->n_threads : omp_get_max_threads();
    if (threads < 1) threads = 1;
    r->mopts.n_threads = threads;
    r->line_threads = threads;
    if (n_sessions == 2) r->mopts.normalize = 1; /* word rows lose the special tokens' mass */
    ats_forward_options_init(&r->fopts);
    /* lines run in parallel, each pass single-threaded: OpenBLAS's thread count is set once
     * here (it is process-global) and the passes leave it alone */
    openblas_set_num_threads(1);
    r->fopts.n_threads = 0;
    return ATS_OK;
}

static void hrun_free(hrun *r) {
    free(r->freq_count);
    free(r->csum);
    free(r->ccomp);
    ats_headstats_free(r->hs);
}

ats_status ats_heads_corpus(ats_session *const *sessions, size_t n_sessions,
                            const ats_corpus_source *src, const ats_heads_options *o,
                            ats_heads_result *res, ats_error *err) {
    hrun r;
    ats_error e = {0};
    ats_heads_options def;
    if (!o) {
        ats_heads_options_init(&def);
        o = &def;
    }
    memset(res, 0, sizeof *res);
    ats_status st = hrun_setup(&r, sessions, n_sessions, src, o, res, &e);
    if (!st && o->stats) {
        st = count_frequencies(&r, &e);
        if (!st) st = ats_headstats_new(r.models[0].L, r.models[0].H, &r.mopts, &r.hs, &e);
    }
    if (!st) {
        res->N = r.N;
        res->D = malloc(r.N * r.N * sizeof *res->D);
        if (!res->D) st = ats_error_set(&e, ATS_ERR_NOMEM, "out of memory for %zu heads", r.N);
    }
    if (!st) st = corpus_pass(&r, res->D, &e);
    if (!st && r.hs) {
        size_t count = ATS_STAT_COUNT * r.models[0].N;
        res->stats = malloc(count * sizeof *res->stats);
        st = res->stats ? ats_headstats_result(r.hs, res->stats, &e)
                        : ats_error_set(&e, ATS_ERR_NOMEM, "out of memory");
    }
    hrun_free(&r);
    if (st) {
        ats_heads_result_free(res);
        return session_failed(sessions && n_sessions ? sessions[0] : NULL, st, &e, err);
    }
    return ATS_OK;
}

ats_status ats_heads_ablation(ats_session *s, const ats_corpus_source *src,
                              const ats_heads_options *o, size_t lines, ats_ablation_result *res,
                              ats_error *err) {
    hrun r;
    ats_error e = {0};
    ats_heads_result counts;
    ats_heads_options def;
    if (!o) {
        ats_heads_options_init(&def);
        o = &def;
    }
    memset(res, 0, sizeof *res);
    memset(&counts, 0, sizeof counts);
    ats_status st = hrun_setup(&r, &s, 1, src, o, &counts, &e);
    if (!st && lines == 0)
        st = ats_error_set(&e, ATS_ERR_INVALID, "the ablation needs at least one line");
    if (!st) st = run_ablation(&r, lines, res, &e);
    hrun_free(&r);
    if (st) {
        ats_ablation_result_free(res);
        return session_failed(s, st, &e, err);
    }
    return ATS_OK;
}
