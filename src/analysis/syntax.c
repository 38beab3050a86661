/* Syntactic heads (Clark et al. 2019, section 4): gold dependency arcs from a CoNLL-U file, the
 * attention of every head pooled to words, and for every relation how often each head's most
 * attended word is the dependent's gold head, next to the best fixed-offset baseline. The
 * definitions are in analysis.h. Sentences run in parallel; every sum is an integer count, so
 * the result does not depend on the number of threads or the order sentences finish in. */
#include "analysis_internal.h"

#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void openblas_set_num_threads(int num_threads); /* OpenBLAS (linked by the model module) */

/* ---- CoNLL-U: the whole file is read; words point into it */

typedef struct sx_word {
    const char *form;
    size_t form_len;
    long head;   /* 1-based gold head, 0 for the root */
    int32_t rel; /* relation index */
    size_t line; /* for messages */
} sx_word;

typedef struct sx_sentence {
    size_t first, n; /* words[first .. first + n) */
    size_t line;     /* the sentence's first line */
} sx_sentence;

typedef struct sx_treebank {
    char *buf;
    size_t len;
    sx_word *words;
    size_t n_words, cap_words;
    sx_sentence *sents;
    size_t n_sents, cap_sents;
    char **rels; /* relation names, in order of first appearance */
    size_t n_rels, cap_rels;
    size_t max_n; /* most words in a sentence */
} sx_treebank;

static void treebank_free(sx_treebank *tb) {
    free(tb->buf);
    free(tb->words);
    free(tb->sents);
    for (size_t i = 0; i < tb->n_rels; i++) free(tb->rels[i]);
    free(tb->rels);
    memset(tb, 0, sizeof *tb);
}

/* Grows *p (of *cap elements of size sz) to hold at least need elements. */
static int grow(void **p, size_t *cap, size_t need, size_t sz) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 64, bytes;
    while (c < need)
        if (!ats_size_mul(c, 2, &c)) return 0;
    if (!ats_size_mul(c, sz, &bytes)) return 0;
    void *q = realloc(*p, bytes);
    if (!q) return 0;
    *p = q;
    *cap = c;
    return 1;
}

/* Parses a whole decimal number of at most 9 digits (no sign): 1 and *v, or 0. */
static int parse_small(const char *s, size_t len, long *v) {
    if (len == 0 || len > 9) return 0;
    long x = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return 0;
        x = x * 10 + (s[i] - '0');
    }
    *v = x;
    return 1;
}

/* The kind of a CoNLL-U ID: 1 a word "7", 0 a range "3-4" or an empty node "5.1", -1 bad. */
static int id_kind(const char *s, size_t len, long *v) {
    if (parse_small(s, len, v)) return *v >= 1 ? 1 : -1;
    const char *sep = NULL;
    for (size_t i = 0; i < len; i++)
        if (s[i] == '-' || s[i] == '.') {
            sep = s + i;
            break;
        }
    long a, b;
    if (!sep || !parse_small(s, (size_t)(sep - s), &a) ||
        !parse_small(sep + 1, len - (size_t)(sep - s) - 1, &b))
        return -1;
    return 0;
}

static ats_status rel_index(sx_treebank *tb, const char *s, size_t len, int32_t *out) {
    for (size_t i = 0; i < tb->n_rels; i++)
        if (strlen(tb->rels[i]) == len && !memcmp(tb->rels[i], s, len)) {
            *out = (int32_t)i;
            return ATS_OK;
        }
    if (tb->n_rels >= INT32_MAX ||
        !grow((void **)&tb->rels, &tb->cap_rels, tb->n_rels + 1, sizeof *tb->rels))
        return ATS_ERR_NOMEM;
    if (!(tb->rels[tb->n_rels] = strndup(s, len))) return ATS_ERR_NOMEM;
    *out = (int32_t)tb->n_rels++;
    return ATS_OK;
}

/* Closes the sentence of words[first..]: every HEAD must name one of its words. */
static ats_status end_sentence(sx_treebank *tb, const char *path, size_t first, size_t line,
                               ats_error *err) {
    size_t n = tb->n_words - first;
    if (n == 0) return ATS_OK;
    for (size_t i = first; i < tb->n_words; i++)
        if ((size_t)tb->words[i].head > n)
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s:%zu: HEAD %ld is not a word of this sentence (it has %zu)",
                                 path, tb->words[i].line, tb->words[i].head, n);
    if (!grow((void **)&tb->sents, &tb->cap_sents, tb->n_sents + 1, sizeof *tb->sents))
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    tb->sents[tb->n_sents++] = (sx_sentence){first, n, line};
    if (n > tb->max_n) tb->max_n = n;
    return ATS_OK;
}

/* One word line: 10 tab-separated fields, ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS MISC. */
static ats_status parse_word_line(sx_treebank *tb, const char *path, size_t line_no, const char *s,
                                  size_t len, size_t first, ats_error *err) {
    const char *f[10];
    size_t fl[10], k = 0;
    const char *p = s, *end = s + len;
    int more = 1; /* a tab follows the last field read */
    while (k < 10 && more) {
        const char *t = memchr(p, '\t', (size_t)(end - p));
        f[k] = p;
        fl[k] = (size_t)((t ? t : end) - p);
        k++;
        more = t != NULL;
        if (t) p = t + 1;
    }
    if (k != 10 || more)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s:%zu: a word line has 10 tab-separated fields (ID FORM LEMMA UPOS "
                             "XPOS FEATS HEAD DEPREL DEPS MISC)",
                             path, line_no);
    long id;
    int kind = id_kind(f[0], fl[0], &id);
    if (kind < 0)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s:%zu: ID '%.*s' is not a word number, a range (3-4) or an empty "
                             "node (5.1)",
                             path, line_no, (int)(fl[0] > 40 ? 40 : fl[0]), f[0]);
    if (kind == 0) return ATS_OK; /* ranges and empty nodes carry no basic arc */
    size_t n = tb->n_words - first;
    if ((size_t)id != n + 1)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s:%zu: ID %ld where %zu was expected", path,
                             line_no, id, n + 1);
    if (fl[1] == 0)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s:%zu: word %ld has an empty FORM", path,
                             line_no, id);
    long head;
    if (!parse_small(f[6], fl[6], &head))
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s:%zu: HEAD '%.*s' of word %ld is not a word number (0 for the "
                             "root)",
                             path, line_no, (int)(fl[6] > 40 ? 40 : fl[6]), f[6], id);
    if (head == id)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s:%zu: word %ld is its own HEAD", path, line_no,
                             id);
    size_t rl = 0;
    while (rl < fl[7] && f[7][rl] != ':') rl++;
    if (rl == 0 || (fl[7] == 1 && f[7][0] == '_'))
        return ats_error_set(err, ATS_ERR_FORMAT, "%s:%zu: word %ld has no DEPREL", path, line_no,
                             id);
    int32_t rel;
    if (rel_index(tb, f[7], rl, &rel) ||
        !grow((void **)&tb->words, &tb->cap_words, tb->n_words + 1, sizeof *tb->words))
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    tb->words[tb->n_words++] = (sx_word){f[1], fl[1], head, rel, line_no};
    return ATS_OK;
}

/* Reads the first max_sentences sentences (0: all) of a CoNLL-U file. */
static ats_status treebank_read(sx_treebank *tb, const char *path, size_t max_sentences,
                                ats_error *err) {
    memset(tb, 0, sizeof *tb);
    ats_status st = ats_file_read_regular(path, (size_t)1 << 32, &tb->buf, &tb->len, err);
    if (st) return st;
    size_t line_no = 0, first = 0, sent_line = 0;
    int in_block = 0; /* a word, range or empty-node line has been seen since the last blank */
    const char *p = tb->buf, *end = tb->buf + tb->len;
    while (p < end && (!max_sentences || tb->n_sents < max_sentences)) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        line_no++;
        size_t bad = ats_utf8_check(p, len);
        if (bad != len)
            return ats_error_set(err, ATS_ERR_FORMAT, "%s:%zu: invalid UTF-8 at byte %zu", path,
                                 line_no, bad + 1);
        if (memchr(p, '\0', len))
            return ats_error_set(err, ATS_ERR_FORMAT, "%s:%zu: a NUL byte", path, line_no);
        if (len && p[len - 1] == '\r') len--;
        if (len && !sent_line) sent_line = line_no;
        if (len == 0) {
            if (in_block && tb->n_words == first)
                return ats_error_set(err, ATS_ERR_FORMAT,
                                     "%s:%zu: the sentence that ends here has no word lines", path,
                                     line_no);
            st = end_sentence(tb, path, first, sent_line, err);
            first = tb->n_words;
            in_block = 0;
            sent_line = 0;
        } else if (p[0] != '#') {
            in_block = 1;
            st = parse_word_line(tb, path, line_no, p, len, first, err);
        }
        if (st) return st;
        p = nl ? nl + 1 : end;
    }
    if (!max_sentences || tb->n_sents < max_sentences) /* no blank line after the last one */
        st = end_sentence(tb, path, first, sent_line, err);
    return st;
}

/* ---- one sentence through the model */

/* What a thread adds up (merged when it is done). */
typedef struct sx_sums {
    size_t *count;   /* [R] */
    size_t *correct; /* [R][N] */
    size_t *offsets; /* [R][2·max_n + 1] arcs by head − dependent */
    size_t sentences, skipped, unmapped;
} sx_sums;

typedef struct sx_run {
    const sx_treebank *tb;
    ats_model *m;
    const ats_tokenizer *tok;
    size_t L, H, N, R, max_tokens, n_off;
    ats_forward_options fopts;
    const char *path;
} sx_run;

static int sums_alloc(const sx_run *r, sx_sums *s) {
    memset(s, 0, sizeof *s);
    size_t rn = r->R * r->N, ro = r->R * r->n_off; /* checked by syntax_run */
    s->count = calloc(r->R + 1, sizeof *s->count);
    s->correct = calloc(rn + 1, sizeof *s->correct);
    s->offsets = calloc(ro + 1, sizeof *s->offsets);
    return s->count && s->correct && s->offsets;
}

static void sums_free(sx_sums *s) {
    free(s->count);
    free(s->correct);
    free(s->offsets);
}

/* The word of each token: the one whose FORM holds the token's bytes without the spaces around
 * them (byte-level BPE's "Ġword" starts on the space before the word); -1 for special tokens
 * and tokens in no single word. span[2w], span[2w+1]: word w's bytes in the text. */
static void map_tokens(const ats_encoding *enc, size_t n_tok, const char *text, const size_t *span,
                       size_t n_words, int32_t *word_of, size_t *pieces) {
    memset(pieces, 0, n_words * sizeof *pieces);
    for (size_t t = 0; t < n_tok; t++) {
        word_of[t] = -1;
        if (enc->special[t]) continue;
        size_t s = enc->offsets[2 * t], e = enc->offsets[2 * t + 1];
        while (s < e && text[s] == ' ') s++;
        while (e > s && text[e - 1] == ' ') e--;
        if (s == e) continue;
        size_t lo = 0, hi = n_words; /* the last word starting at or before s */
        while (hi - lo > 1) {
            size_t mid = (lo + hi) / 2;
            if (span[2 * mid] <= s)
                lo = mid;
            else
                hi = mid;
        }
        if (s >= span[2 * lo] && e <= span[2 * lo + 1]) {
            word_of[t] = (int32_t)lo;
            pieces[lo]++;
        }
    }
}

static ats_status run_sentence(const sx_run *r, size_t k, sx_sums *sums, ats_error *err) {
    const sx_sentence *se = &r->tb->sents[k];
    const sx_word *w = r->tb->words + se->first;
    size_t n = se->n, len = 0;
    for (size_t i = 0; i < n; i++) len += w[i].form_len + 1; /* each fits in the file */
    char *text = malloc(len ? len : 1);
    size_t *span = malloc(2 * n * sizeof *span), *pieces = malloc(n * sizeof *pieces);
    double *row = malloc(n * sizeof *row);
    int32_t *word_of = NULL;
    ats_encoding enc = {0};
    ats_forward_result res = {0};
    ats_status st = ATS_OK;
    if (!text || !span || !pieces || !row) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        goto done;
    }
    size_t b = 0;
    for (size_t i = 0; i < n; i++) {
        if (i) text[b++] = ' ';
        span[2 * i] = b;
        memcpy(text + b, w[i].form, w[i].form_len);
        b += w[i].form_len;
        span[2 * i + 1] = b;
    }
    text[b] = '\0';
    st = ats_tokenizer_encode(r->tok, text, b, 1, &enc, err);
    if (st) goto done;
    if (enc.count > r->max_tokens) {
        sums->skipped++;
        goto done;
    }
    ats_model_input in = {enc.ids, NULL, NULL, enc.count};
    st = ats_model_forward(r->m, &in, &r->fopts, &res, err);
    if (st) goto done;
    size_t nt = enc.count;
    word_of = malloc((nt ? nt : 1) * sizeof *word_of);
    if (!word_of) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        goto done;
    }
    map_tokens(&enc, nt, text, span, n, word_of, pieces);
    sums->sentences++;
    for (size_t i = 0; i < n; i++) {
        if (w[i].head == 0) continue;
        size_t g = (size_t)w[i].head - 1, rel = (size_t)w[i].rel;
        if (!pieces[i] || !pieces[g]) {
            sums->unmapped++;
            continue;
        }
        sums->count[rel]++;
        sums->offsets[rel * r->n_off + (r->n_off / 2) + g - i]++; /* k = g − i */
        for (size_t a = 0; a < r->N; a++) {
            /* row i of the head's word-level attention: pieces of i (rows) averaged, pieces of
             * each word (columns) summed; A is [n_tok][n_tok] */
            const float *A = res.attention + a * nt * nt;
            memset(row, 0, n * sizeof *row);
            for (size_t t = 0; t < nt; t++) {
                if (word_of[t] != (int32_t)i) continue;
                for (size_t u = 0; u < nt; u++)
                    if (word_of[u] >= 0) row[word_of[u]] += (double)A[t * nt + u];
            }
            size_t best = SIZE_MAX;
            for (size_t j = 0; j < n; j++) {
                if (j == i) continue;
                row[j] /= (double)pieces[i];
                if (best == SIZE_MAX || row[j] > row[best]) best = j;
            }
            if (best == g) sums->correct[rel * r->N + a]++;
        }
    }
done:
    if (st) {
        char msg[ATS_ERROR_MESSAGE_MAX];
        snprintf(msg, sizeof msg, "%s", err ? err->message : "");
        ats_error_set(err, st, "%s:%zu: sentence %zu: %s", r->path, se->line, k + 1, msg);
    }
    ats_forward_result_free(&res);
    ats_encoding_free(&enc);
    free(text);
    free(span);
    free(pieces);
    free(row);
    free(word_of);
    return st;
}

/* ---- the result */

typedef struct rel_order {
    size_t count;
    const char *name;
    size_t index;
} rel_order;

static int cmp_rel(const void *x, const void *y) {
    const rel_order *a = x, *b = y;
    if (a->count != b->count) return a->count > b->count ? -1 : 1;
    return strcmp(a->name, b->name);
}

static ats_status fill_result(const sx_run *r, const sx_sums *s, ats_syntax_result *res,
                              ats_error *err) {
    rel_order *ord = malloc((r->R ? r->R : 1) * sizeof *ord);
    if (!ord) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    size_t R = 0;
    for (size_t i = 0; i < r->R; i++)
        if (s->count[i]) ord[R++] = (rel_order){s->count[i], r->tb->rels[i], i};
    qsort(ord, R, sizeof *ord, cmp_rel);
    size_t RN = R * r->N;
    res->R = R;
    res->names = calloc(R ? R : 1, sizeof *res->names);
    res->count = malloc((R ? R : 1) * sizeof *res->count);
    res->correct = malloc((RN ? RN : 1) * sizeof *res->correct);
    res->best_head = malloc((R ? R : 1) * sizeof *res->best_head);
    res->accuracy = malloc((R ? R : 1) * sizeof *res->accuracy);
    res->baseline_offset = malloc((R ? R : 1) * sizeof *res->baseline_offset);
    res->baseline_accuracy = malloc((R ? R : 1) * sizeof *res->baseline_accuracy);
    if (!res->names || !res->count || !res->correct || !res->best_head || !res->accuracy ||
        !res->baseline_offset || !res->baseline_accuracy) {
        free(ord);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    long half = (long)(r->n_off / 2);
    for (size_t q = 0; q < R; q++) {
        size_t i = ord[q].index, c = ord[q].count;
        if (!(res->names[q] = strdup(ord[q].name))) {
            free(ord);
            return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        }
        res->count[q] = c;
        const size_t *cr = s->correct + i * r->N;
        memcpy(res->correct + q * r->N, cr, r->N * sizeof *cr);
        size_t best = 0;
        for (size_t a = 1; a < r->N; a++)
            if (cr[a] > cr[best]) best = a;
        res->best_head[q] = best;
        res->accuracy[q] = (double)cr[best] / (double)c;
        /* offsets by increasing |k|, the negative one first: the first maximum wins ties */
        const size_t *off = s->offsets + i * r->n_off;
        long bk = 0;
        size_t bc = 0;
        for (long m = 1; m <= half; m++)
            for (int sg = -1; sg <= 1; sg += 2) {
                long k = sg * m;
                size_t v = off[k + half];
                if (bk == 0 || v > bc) {
                    bk = k;
                    bc = v;
                }
            }
        res->baseline_offset[q] = bk;
        res->baseline_accuracy[q] = (double)bc / (double)c;
    }
    free(ord);
    for (size_t i = 0; i < r->R; i++) res->arcs += s->count[i];
    res->sentences = s->sentences;
    res->skipped = s->skipped;
    res->unmapped = s->unmapped;
    return ATS_OK;
}

void ats_syntax_options_init(ats_syntax_options *o) {
    memset(o, 0, sizeof *o);
}

void ats_syntax_result_free(ats_syntax_result *res) {
    if (!res) return;
    for (size_t i = 0; res->names && i < res->R; i++) free(res->names[i]);
    free(res->names);
    free(res->count);
    free(res->correct);
    free(res->best_head);
    free(res->accuracy);
    free(res->baseline_offset);
    free(res->baseline_accuracy);
    memset(res, 0, sizeof *res);
}

static ats_status syntax_run(ats_session *s, const char *path, const ats_syntax_options *o,
                             ats_syntax_result *res, ats_error *err) {
    ats_status st = session_need_text(s, err);
    if (st) return st;
    sx_treebank tb;
    st = treebank_read(&tb, path, o->max_sentences, err);
    if (!st && tb.n_sents == 0)
        st = ats_error_set(err, ATS_ERR_FORMAT, "%s: no sentence (no word lines)", path);
    if (st) {
        treebank_free(&tb);
        return st;
    }
    sx_run r;
    memset(&r, 0, sizeof r);
    r.tb = &tb;
    r.path = path;
    r.m = ats_session_model(s);
    r.tok = ats_session_tokenizer(s);
    const ats_model_info *mi = ats_model_info_get(r.m);
    r.L = (size_t)mi->n_layers;
    r.H = (size_t)mi->n_heads;
    r.N = r.L * r.H;
    r.R = tb.n_rels;
    r.max_tokens = (size_t)mi->max_positions;
    r.n_off = 2 * tb.max_n + 1;
    res->L = r.L;
    res->H = r.H;
    size_t need;
    if (!ats_size_mul(r.R, r.N, &need) || !ats_size_mul(r.R, r.n_off, &need)) {
        treebank_free(&tb);
        return ats_error_set(err, ATS_ERR_RANGE, "%s: %zu relations are too many", path, r.R);
    }
    ats_forward_options_init(&r.fopts);
    /* sentences run in parallel, each pass single-threaded: OpenBLAS's thread count is
     * process-global, so it is set once here; OpenMP's is per thread, and a pass inside a team
     * of one thread would otherwise start a team of its own (its spinning workers then compete
     * with the other passes) */
    openblas_set_num_threads(1);
    r.fopts.n_threads = 1;
    int threads = o->n_threads > 0 ? o->n_threads : omp_get_max_threads();
    if (threads < 1) threads = 1;
    sx_sums total;
    if (!sums_alloc(&r, &total)) {
        sums_free(&total);
        treebank_free(&tb);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    size_t first_bad = SIZE_MAX; /* the first failing sentence reports */
    ats_error bad_err = {0};
    progress_phase pg;
    progress_begin(&pg, o->progress, o->progress_ctx, "sentences", "sentences", tb.n_sents);
    size_t finished = 0; /* sentences done by every thread; the calling thread reports them */
#pragma omp parallel num_threads(threads)
    {
        sx_sums mine;
        ats_error e = {0};
        size_t my_bad = SIZE_MAX;
        int ok = sums_alloc(&r, &mine);
#pragma omp for schedule(dynamic, 1)
        for (size_t k = 0; k < tb.n_sents; k++) {
            if (my_bad != SIZE_MAX) continue;
            if (!ok) {
                ats_error_set(&e, ATS_ERR_NOMEM, "out of memory");
                my_bad = k;
            } else if (run_sentence(&r, k, &mine, &e)) {
                my_bad = k;
            }
#pragma omp atomic
            finished++;
            if (omp_get_thread_num() == 0) {
                size_t now;
#pragma omp atomic read
                now = finished;
                if (now > pg.done) progress_add(&pg, now - pg.done);
            }
        }
#pragma omp critical(ats_syntax_merge)
        {
            if (my_bad < first_bad) {
                first_bad = my_bad;
                bad_err = e;
            }
            if (ok) {
                for (size_t i = 0; i < r.R; i++) total.count[i] += mine.count[i];
                for (size_t i = 0; i < r.R * r.N; i++) total.correct[i] += mine.correct[i];
                for (size_t i = 0; i < r.R * r.n_off; i++) total.offsets[i] += mine.offsets[i];
                total.sentences += mine.sentences;
                total.skipped += mine.skipped;
                total.unmapped += mine.unmapped;
            }
        }
        sums_free(&mine);
    }
    if (first_bad != SIZE_MAX) {
        st = bad_err.status ? bad_err.status : ATS_ERR_INVALID;
        if (err) *err = bad_err;
    }
    if (!st) {
        if (finished > pg.done) progress_add(&pg, finished - pg.done);
        progress_end(&pg);
    }
    if (!st) st = fill_result(&r, &total, res, err);
    sums_free(&total);
    treebank_free(&tb);
    return st;
}

ats_status ats_syntax_run(ats_session *s, const char *conllu_path, const ats_syntax_options *o,
                          ats_syntax_result *res, ats_error *err) {
    ats_error e = {0};
    ats_syntax_options def;
    if (!o) {
        ats_syntax_options_init(&def);
        o = &def;
    }
    memset(res, 0, sizeof *res);
    ats_status st = syntax_run(s, conllu_path, o, res, &e);
    if (st) {
        ats_syntax_result_free(res);
        return session_failed(s, st, &e, err);
    }
    return ATS_OK;
}
