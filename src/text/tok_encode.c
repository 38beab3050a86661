/* Encoding: added tokens, normalisation, pre-tokenisation, BPE / WordPiece, post-processing.
 * Offsets follow HuggingFace's tokenizers: every normalised character remembers the byte range
 * of the original character it came from, and a token covers the original characters of its
 * first and last normalised characters. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer_internal.h"

#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

typedef struct nchar {
    uint32_t cp;
    size_t os, oe; /* original byte range */
} nchar;

typedef struct nvec {
    nchar *v;
    size_t n, cap;
} nvec;

static int nvec_push(nvec *a, uint32_t cp, size_t os, size_t oe) {
    if (a->n == a->cap) {
        size_t nc = a->cap ? a->cap * 2 : 64;
        nchar *v = realloc(a->v, nc * sizeof *v);
        if (!v) return 0;
        a->v = v;
        a->cap = nc;
    }
    a->v[a->n++] = (nchar){cp, os, oe};
    return 1;
}

typedef struct builder {
    const ats_tokenizer *t;
    size_t n, cap;
    int32_t *ids;
    size_t *offsets;
    uint8_t *special;
    int32_t *word_ids;
    int32_t word; /* index of the current pre-tokenized word */
} builder;

static int push(builder *b, int32_t id, size_t s, size_t e, int special, int32_t word) {
    if (b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 64;
        int32_t *ids = realloc(b->ids, nc * sizeof *ids);
        if (ids) b->ids = ids;
        size_t *off = realloc(b->offsets, 2 * nc * sizeof *off);
        if (off) b->offsets = off;
        uint8_t *sp = realloc(b->special, nc);
        if (sp) b->special = sp;
        int32_t *w = realloc(b->word_ids, nc * sizeof *w);
        if (w) b->word_ids = w;
        if (!ids || !off || !sp || !w) return 0;
        b->cap = nc;
    }
    b->ids[b->n] = id;
    b->offsets[2 * b->n] = s;
    b->offsets[2 * b->n + 1] = e;
    b->special[b->n] = (uint8_t)special;
    b->word_ids[b->n] = word;
    b->n++;
    return 1;
}

static void builder_free(builder *b) {
    free(b->ids);
    free(b->offsets);
    free(b->special);
    free(b->word_ids);
}

/* ---- normalisation */

static int normalize(const ats_tokenizer *t, const char *text, size_t s, size_t e, nvec *out,
                     nvec *tmp) {
    out->n = 0;
    for (size_t i = s; i < e;) {
        uint32_t cp;
        int k = tok_utf8_decode(text + i, &cp);
        if (!nvec_push(out, cp, i, i + (size_t)k)) return 0;
        i += (size_t)k;
    }
    for (int st = 0; st < t->n_norm_steps; st++) {
        int step = t->norm_steps[st];
        tmp->n = 0;
        for (size_t i = 0; i < out->n; i++) {
            nchar c = out->v[i];
            int ok = 1;
            switch (step) {
            case NORM_CLEAN:
                if (c.cp == 0 || c.cp == 0xFFFD || tok_is_control(c.cp)) break;
                ok = nvec_push(tmp, tok_is_whitespace(c.cp) ? ' ' : c.cp, c.os, c.oe);
                break;
            case NORM_CJK:
                if (tok_is_cjk(c.cp))
                    ok = nvec_push(tmp, ' ', c.os, c.oe) && nvec_push(tmp, c.cp, c.os, c.oe) &&
                         nvec_push(tmp, ' ', c.os, c.oe);
                else
                    ok = nvec_push(tmp, c.cp, c.os, c.oe);
                break;
            case NORM_NFD:
            case NORM_BERT_STRIP:
            case NORM_LOWER: {
                uint32_t d[TOK_MAX_EXPAND];
                int n = step == NORM_NFD          ? tok_nfd(c.cp, d)
                        : step == NORM_BERT_STRIP ? tok_bert_strip(c.cp, d)
                                                  : tok_lower(c.cp, d);
                for (int j = 0; j < n && ok; j++) ok = nvec_push(tmp, d[j], c.os, c.oe);
                break;
            }
            case NORM_DROP_MARKS:
                if (!tok_is_mark(c.cp)) ok = nvec_push(tmp, c.cp, c.os, c.oe);
                break;
            default:
                ok = nvec_push(tmp, c.cp, c.os, c.oe);
            }
            if (!ok) return 0;
        }
        nvec sw = *out;
        *out = *tmp;
        *tmp = sw;
    }
    return 1;
}

/* ---- WordPiece */

typedef struct scratch {
    char *buf; /* UTF-8 of a word (with room for the subword prefix) */
    size_t cap;
    size_t *cpos; /* [nchars + 1] byte position of each character in buf */
    size_t ccap;
} scratch;

static int scratch_reserve(scratch *s, size_t bytes, size_t chars) {
    if (bytes > s->cap) {
        char *b = realloc(s->buf, bytes);
        if (!b) return 0;
        s->buf = b;
        s->cap = bytes;
    }
    if (chars > s->ccap) {
        size_t *c = realloc(s->cpos, chars * sizeof *c);
        if (!c) return 0;
        s->cpos = c;
        s->ccap = chars;
    }
    return 1;
}

static int wordpiece_word(const ats_tokenizer *t, builder *b, const nchar *w, size_t n,
                          scratch *sc) {
    int32_t word = b->word++;
    if (n > t->max_chars_per_word) return push(b, t->unk_id, w[0].os, w[n - 1].oe, 0, word);
    size_t pl = strlen(t->subword_prefix);
    if (!scratch_reserve(sc, 2 * (pl + 4 * n + 1), n + 1)) return 0;
    memcpy(sc->buf, t->subword_prefix, pl);
    char *u = sc->buf + pl; /* the word's UTF-8 follows the prefix */
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        sc->cpos[i] = len;
        len += (size_t)tok_utf8_encode(w[i].cp, u + len);
    }
    sc->cpos[n] = len;
    size_t first = b->n;
    size_t start = 0;
    while (start < n) {
        size_t end = n;
        int32_t id = -1;
        while (end > start) {
            size_t bs = sc->cpos[start], blen = sc->cpos[end] - bs;
            if (blen + (start ? pl : 0) <= t->max_token_bytes) {
                if (start) { /* prefix + piece, assembled after the word */
                    char *key = u + len;
                    memcpy(key, t->subword_prefix, pl);
                    memcpy(key + pl, u + bs, blen);
                    id = tok_strmap_get(&t->map, key, pl + blen);
                } else {
                    id = tok_strmap_get(&t->map, u, blen);
                }
                if (id >= 0) break;
            }
            end--;
        }
        if (id < 0) { /* a piece is missing: the whole word is unknown */
            b->n = first;
            return push(b, t->unk_id, w[0].os, w[n - 1].oe, 0, word);
        }
        if (!push(b, id, w[start].os, w[end - 1].oe, 0, word)) return 0;
        start = end;
    }
    return 1;
}

/* ---- byte-level BPE */

typedef struct sym {
    int32_t id;
    int32_t prev, next; /* -1 at the ends */
    size_t bs, be;      /* byte range in the pre-token */
    int alive;
} sym;

typedef struct cand {
    int32_t rank, pos, left, right, merged;
} cand;

typedef struct bpe_work {
    sym *syms;
    size_t scap;
    cand *heap;
    size_t hn, hcap;
} bpe_work;

static int cand_less(const cand *a, const cand *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

static int heap_push(bpe_work *w, cand c) {
    if (w->hn == w->hcap) {
        size_t nc = w->hcap ? w->hcap * 2 : 64;
        cand *h = realloc(w->heap, nc * sizeof *h);
        if (!h) return 0;
        w->heap = h;
        w->hcap = nc;
    }
    size_t i = w->hn++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &w->heap[p])) break;
        w->heap[i] = w->heap[p];
        i = p;
    }
    w->heap[i] = c;
    return 1;
}

static cand heap_pop(bpe_work *w) {
    cand top = w->heap[0], last = w->heap[--w->hn];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *mc = &last;
        if (l < w->hn && cand_less(&w->heap[l], mc)) {
            m = l;
            mc = &w->heap[l];
        }
        if (r < w->hn && cand_less(&w->heap[r], mc)) m = r;
        if (m == i) break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (w->hn) w->heap[i] = last;
    return top;
}

static int pair_candidate(const ats_tokenizer *t, bpe_work *w, int32_t pos) {
    int32_t nx = w->syms[pos].next;
    if (pos < 0 || nx < 0) return 1;
    int32_t rank, merged;
    if (!tok_pairmap_get(&t->merges, w->syms[pos].id, w->syms[nx].id, &rank, &merged)) return 1;
    return heap_push(w, (cand){rank, pos, w->syms[pos].id, w->syms[nx].id, merged});
}

/* Looks up one pre-token symbol string with the model's prefix / suffix. */
static int32_t symbol_id(const ats_tokenizer *t, const char *s, size_t n, int first, int last) {
    const char *pre = !first && t->subword_prefix ? t->subword_prefix : "";
    const char *suf = last && t->end_of_word_suffix ? t->end_of_word_suffix : "";
    size_t pl = strlen(pre), sl = strlen(suf);
    if (pl + n + sl > 256) return -1;
    char buf[256];
    memcpy(buf, pre, pl);
    memcpy(buf + pl, s, n);
    memcpy(buf + pl + n, suf, sl);
    return tok_strmap_get(&t->map, buf, pl + n + sl);
}

static int syms_reserve(bpe_work *w, size_t n) {
    if (n <= w->scap) return 1;
    sym *s = realloc(w->syms, n * sizeof *s);
    if (!s) return 0;
    w->syms = s;
    w->scap = n;
    return 1;
}

/* The initial symbols of a BPE word, one character at a time, as tokenizers' BPE::merge_word
 * makes them: a character with a token is that token; one without becomes the <0xXX> tokens of
 * its UTF-8 bytes (byte_fallback, when all of them exist), else the unknown token, one for a run
 * of such characters (fuse_unk), or nothing without an unknown token. The unknown symbol waits
 * until the next character with a token (or the word's end): byte-fallback tokens met in the
 * meantime go before it, as in tokenizers. Symbols cover the units [bs, be) of the word. */
typedef struct sym_list {
    size_t ns;
    int pending; /* an unknown symbol waits */
    sym unk;
} sym_list;

static void sym_put(bpe_work *w, sym_list *l, int32_t id, size_t bs, size_t be) {
    w->syms[l->ns] = (sym){id, (int32_t)l->ns - 1, (int32_t)l->ns + 1, bs, be, 1};
    l->ns++;
}

static void sym_flush(bpe_work *w, sym_list *l) {
    if (l->pending) sym_put(w, l, l->unk.id, l->unk.bs, l->unk.be);
    l->pending = 0;
}

/* one character: id its token (-1 when none), utf8[k] its bytes; w->syms has room for k more */
static void sym_char(const ats_tokenizer *t, bpe_work *w, sym_list *l, int32_t id,
                     const unsigned char *utf8, int k, size_t bs, size_t be) {
    if (id >= 0) {
        sym_flush(w, l);
        sym_put(w, l, id, bs, be);
        return;
    }
    if (t->byte_fallback) {
        int all = 1;
        for (int j = 0; j < k; j++) all &= t->fallback_ids[utf8[j]] >= 0;
        if (all) {
            for (int j = 0; j < k; j++) sym_put(w, l, t->fallback_ids[utf8[j]], bs, be);
            return;
        }
    }
    if (t->unk_id < 0) return;
    if (l->pending && t->fuse_unk) {
        l->unk.be = be;
        return;
    }
    sym_flush(w, l);
    l->pending = 1;
    l->unk = (sym){t->unk_id, -1, -1, bs, be, 1};
}

/* Merges the symbols w->syms[0..ns) by rank and pushes the tokens; a symbol's units map to
 * normalised characters through cidx (NULL: the units are the characters). */
static int bpe_merge_emit(const ats_tokenizer *t, builder *b, bpe_work *w, size_t ns,
                          const size_t *cidx, const nchar *nc, int32_t wid) {
    if (ns == 0) return 1;
    w->syms[ns - 1].next = -1;
    w->hn = 0;
    for (size_t i = 0; i + 1 < ns; i++)
        if (!pair_candidate(t, w, (int32_t)i)) return 0;
    while (w->hn) {
        cand c = heap_pop(w);
        sym *l = &w->syms[c.pos];
        if (!l->alive || l->id != c.left || l->next < 0) continue;
        sym *r = &w->syms[l->next];
        if (r->id != c.right) continue;
        l->id = c.merged;
        l->be = r->be;
        r->alive = 0;
        l->next = r->next;
        if (r->next >= 0) w->syms[r->next].prev = c.pos;
        if (l->prev >= 0 && !pair_candidate(t, w, l->prev)) return 0;
        if (!pair_candidate(t, w, c.pos)) return 0;
    }
    for (int32_t i = 0; i >= 0; i = w->syms[i].next) {
        const sym *s = &w->syms[i];
        size_t first = cidx ? cidx[s->bs] : s->bs, last = cidx ? cidx[s->be - 1] : s->be - 1;
        if (!push(b, s->id, nc[first].os, nc[last].oe, 0, wid)) return 0;
    }
    return 1;
}

/* BPE over the bytes word[0..n) of a pre-token; cidx maps each byte to its normalised char. */
static int bpe_word(const ats_tokenizer *t, builder *b, const unsigned char *word, size_t n,
                    const size_t *cidx, const nchar *nc, bpe_work *w, char *mapped) {
    int32_t wid = b->word++;
    if (n == 0) return 1;
    int plain = !t->subword_prefix && !t->end_of_word_suffix;
    if (t->ignore_merges) {
        size_t ml = 0;
        for (size_t i = 0; i < n; i++) {
            size_t k = strlen(t->byte_chars[word[i]]);
            memcpy(mapped + ml, t->byte_chars[word[i]], k);
            ml += k;
        }
        int32_t id = tok_strmap_get(&t->map, mapped, ml);
        if (id >= 0) return push(b, id, nc[cidx[0]].os, nc[cidx[n - 1]].oe, 0, wid);
    }
    /* a byte-level character is at most 2 bytes of UTF-8: at most 2 fallback symbols */
    if (!syms_reserve(w, 2 * n)) return 0;
    sym_list l = {0};
    for (size_t i = 0; i < n; i++) {
        const char *ch = t->byte_chars[word[i]];
        int k = (int)strlen(ch);
        int32_t id = plain ? t->byte_ids[word[i]] : symbol_id(t, ch, (size_t)k, i == 0, i == n - 1);
        sym_char(t, w, &l, id, (const unsigned char *)ch, k, i, i + 1);
    }
    sym_flush(w, &l);
    return bpe_merge_emit(t, b, w, l.ns, cidx, nc, wid);
}

/* A piece of text between added tokens of a SentencePiece-style BPE: ' ' as U+2581, a U+2581
 * before it (spm_prefix; it stands for the first character in offsets), then one BPE word of
 * characters. */
static int spm_segment(const ats_tokenizer *t, builder *b, nvec *nv, bpe_work *w) {
    int32_t wid = b->word++;
    if (nv->n == 0) return 1;
    if (t->spm_prefix) {
        if (!nvec_push(nv, 0, 0, 0)) return 0;
        memmove(nv->v + 1, nv->v, (nv->n - 1) * sizeof *nv->v);
        nv->v[0] = (nchar){' ', nv->v[1].os, nv->v[1].oe};
    }
    if (!syms_reserve(w, 4 * nv->n)) return 0;
    sym_list l = {0};
    for (size_t i = 0; i < nv->n; i++) {
        unsigned char u[4];
        int k = tok_utf8_encode(nv->v[i].cp == ' ' ? 0x2581 : nv->v[i].cp, (char *)u);
        int32_t id = tok_strmap_get(&t->map, (const char *)u, (size_t)k);
        sym_char(t, w, &l, id, u, k, i, i + 1);
    }
    sym_flush(w, &l);
    return bpe_merge_emit(t, b, w, l.ns, NULL, nv->v, wid);
}

typedef struct bl_work {
    char *u;      /* UTF-8 of the normalised segment */
    size_t *cidx; /* [bytes] normalised char of each byte */
    size_t cap;
    char *mapped;
    size_t mcap;
} bl_work;

static int bytelevel_segment(const ats_tokenizer *t, builder *b, nvec *nv, bl_work *bw, bpe_work *w,
                             pcre2_match_data *md) {
    if (nv->n == 0) return 1;
    if (t->add_prefix_space && nv->v[0].cp != ' ') {
        if (!nvec_push(nv, 0, 0, 0)) return 0;
        memmove(nv->v + 1, nv->v, (nv->n - 1) * sizeof *nv->v);
        nv->v[0] = (nchar){' ', nv->v[1].os, nv->v[1].oe};
    }
    size_t need = 4 * nv->n + 1;
    if (need > bw->cap) {
        char *u = realloc(bw->u, need);
        if (u) bw->u = u;
        size_t *ci = realloc(bw->cidx, need * sizeof *ci);
        if (ci) bw->cidx = ci;
        if (!u || !ci) return 0;
        bw->cap = need;
    }
    size_t len = 0;
    for (size_t i = 0; i < nv->n; i++) {
        int k = tok_utf8_encode(nv->v[i].cp, bw->u + len);
        for (int j = 0; j < k; j++) bw->cidx[len + (size_t)j] = i;
        len += (size_t)k;
    }
    if (t->ignore_merges && 2 * len + 1 > bw->mcap) {
        char *m = realloc(bw->mapped, 2 * len + 1);
        if (!m) return 0;
        bw->mapped = m;
        bw->mcap = 2 * len + 1;
    }
    const unsigned char *u = (const unsigned char *)bw->u;
    if (!t->regex) return bpe_word(t, b, u, len, bw->cidx, nv->v, w, bw->mapped);
    size_t pos = 0;
    while (pos < len) {
        int rc = pcre2_match((const pcre2_code *)t->regex, (PCRE2_SPTR)u, len, pos,
                             PCRE2_NO_UTF_CHECK, md, NULL);
        size_t ms = len, me = len;
        if (rc >= 0) {
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            ms = ov[0];
            me = ov[1];
        } else if (rc != PCRE2_ERROR_NOMATCH) {
            return -1;
        }
        if (ms > pos && !bpe_word(t, b, u + pos, ms - pos, bw->cidx + pos, nv->v, w, bw->mapped))
            return 0; /* text the pattern skipped stays a piece of its own */
        if (ms == len) break;
        if (me == ms) { /* an empty match: step over one character */
            size_t k = 1;
            while (ms + k < len && (u[ms + k] & 0xC0) == 0x80) k++;
            pos = ms + k;
            continue;
        }
        if (!bpe_word(t, b, u + ms, me - ms, bw->cidx + ms, nv->v, w, bw->mapped)) return 0;
        pos = me;
    }
    return 1;
}

/* ---- added tokens */

/* Longest added token matching at text[i], or -1. */
static int added_at(const ats_tokenizer *t, const char *text, size_t len, size_t i) {
    int best = -1;
    size_t blen = 0;
    for (size_t k = 0; k < t->n_added; k++) {
        const tok_added *a = &t->added[k];
        if (a->len <= blen || a->len > len - i || text[i] != a->content[0] ||
            memcmp(text + i, a->content, a->len))
            continue;
        if (a->single_word) {
            uint32_t cp;
            if (i > 0) {
                size_t p = i - 1;
                while (p > 0 && ((unsigned char)text[p] & 0xC0) == 0x80) p--;
                tok_utf8_decode(text + p, &cp);
                if (tok_is_word_char(cp)) continue;
            }
            if (i + a->len < len) {
                tok_utf8_decode(text + i + a->len, &cp);
                if (tok_is_word_char(cp)) continue;
            }
        }
        best = (int)k;
        blen = a->len;
    }
    return best;
}

static size_t ws_len_at(const char *text, size_t len, size_t i) {
    uint32_t cp;
    if (i >= len) return 0;
    int k = tok_utf8_decode(text + i, &cp);
    return tok_is_whitespace(cp) ? (size_t)k : 0;
}

static size_t ws_len_before(const char *text, size_t i) {
    if (i == 0) return 0;
    size_t p = i - 1;
    while (p > 0 && ((unsigned char)text[p] & 0xC0) == 0x80) p--;
    uint32_t cp;
    tok_utf8_decode(text + p, &cp);
    return tok_is_whitespace(cp) ? i - p : 0;
}

/* ---- post-processing */

static int is_space_char(uint32_t cp) {
    return cp == 0x120 || tok_is_whitespace(cp);
}

/* HuggingFace's ByteLevel trim_offsets: leading / trailing 'Ġ' of a token are removed from its
 * offsets, counted in characters of the original text. */
static void trim_offsets(const ats_tokenizer *t, builder *b, const char *text) {
    for (size_t i = 0; i < b->n; i++) {
        /* a model token counts its 'Ġ'; an added token matched in the text (special == 2)
         * counts the whitespace its lstrip / rstrip took in, as HuggingFace's tokenizers do */
        const char *tok = b->special[i] == 2 ? text + b->offsets[2 * i] : t->vocab[b->ids[i]];
        size_t tl = b->special[i] == 2 ? b->offsets[2 * i + 1] - b->offsets[2 * i] : strlen(tok);
        size_t lead = 0, trail = 0, p = 0;
        uint32_t cp;
        while (p < tl) {
            int k = tok_utf8_decode(tok + p, &cp);
            if (!is_space_char(cp)) break;
            lead++;
            p += (size_t)k;
        }
        p = tl;
        while (p > 0) {
            size_t q = p - 1;
            while (q > 0 && ((unsigned char)tok[q] & 0xC0) == 0x80) q--;
            tok_utf8_decode(tok + q, &cp);
            if (!is_space_char(cp)) break;
            trail++;
            p = q;
        }
        if (!lead && !trail) continue;
        size_t *s = &b->offsets[2 * i], *e = &b->offsets[2 * i + 1];
        if (lead) {
            int is_first = i == 0 || *s == 0;
            if (is_first && t->trim_add_prefix_space && lead == 1) lead = 0;
            size_t q = *s;
            for (size_t k = 0; k < lead && q < *e; k++) {
                q++;
                while (q < *e && ((unsigned char)text[q] & 0xC0) == 0x80) q++;
            }
            *s = q;
        }
        if (trail) {
            /* offsets.1 >= trailing (in characters): there are that many characters before */
            size_t q = *e, k = 0;
            while (k < trail && q > 0) {
                q--;
                while (q > 0 && ((unsigned char)text[q] & 0xC0) == 0x80) q--;
                k++;
            }
            if (k == trail) *e = q > *s ? q : *s;
        }
    }
}

/* ---- encode */

ats_status ats_tokenizer_encode(const ats_tokenizer *t, const char *text, size_t len,
                                int add_special, ats_encoding *out, ats_error *err) {
    memset(out, 0, sizeof *out);
    if (!text && len) return ats_error_set(err, ATS_ERR_INVALID, "text: NULL");
    if (!text) text = "";
    size_t bad = ats_utf8_check(text, len);
    if (bad != len)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "text: invalid UTF-8 at byte offset %zu (byte 0x%02X)", bad,
                             (unsigned)(unsigned char)text[bad]);
    builder b = {.t = t};
    nvec nv = {0}, tmp = {0};
    scratch sc = {0};
    bpe_work bw = {0};
    bl_work blw = {0};
    pcre2_match_data *md = NULL;
    ats_status st = ATS_OK;
    int ok = 1;
    if (t->regex) {
        md = pcre2_match_data_create_from_pattern((const pcre2_code *)t->regex, NULL);
        if (!md) ok = 0;
    }
    size_t seg = 0; /* start of the text not yet tokenized */
    size_t i = 0;
    while (ok && seg <= len) {
        /* next added token at or after i */
        int a = -1;
        size_t as = len, ae = len;
        if (t->n_added) {
            for (; i < len; i++) {
                if (!t->added_first[(unsigned char)text[i]]) continue;
                a = added_at(t, text, len, i);
                if (a >= 0) break;
            }
            if (a >= 0) {
                as = i;
                ae = i + t->added[a].len;
                if (t->added[a].lstrip) {
                    size_t k;
                    while (as > seg && (k = ws_len_before(text, as))) as -= k;
                }
                if (t->added[a].rstrip) {
                    size_t k;
                    while ((k = ws_len_at(text, len, ae))) ae += k;
                }
            }
        }
        if (as > seg) {
            if (!normalize(t, text, seg, as, &nv, &tmp)) {
                ok = 0;
                break;
            }
            if (t->spm) {
                ok = spm_segment(t, &b, &nv, &bw);
            } else if (t->kind == ATS_TOKENIZER_BPE) {
                int r = bytelevel_segment(t, &b, &nv, &blw, &bw, md);
                if (r < 0) {
                    st = ats_error_set(err, ATS_ERR_FORMAT, "text: regular expression failed");
                    break;
                }
                if (!r) ok = 0;
            } else {
                size_t ws = 0;
                for (size_t k = 0; k <= nv.n && ok; k++) {
                    uint32_t cp = k < nv.n ? nv.v[k].cp : ' ';
                    int split = tok_is_whitespace(cp) && (t->pre_bert || t->pre_whitespace);
                    int punct = k < nv.n && t->pre_bert && tok_is_punctuation(cp);
                    if (k == nv.n || split || punct) {
                        if (k > ws) ok = wordpiece_word(t, &b, nv.v + ws, k - ws, &sc);
                        if (ok && punct) ok = wordpiece_word(t, &b, nv.v + k, 1, &sc);
                        ws = k + 1;
                    }
                }
            }
        }
        if (!ok || a < 0) break;
        if (!push(&b, t->added[a].id, as, ae, 2, b.word++)) {
            ok = 0;
            break;
        }
        seg = i = ae;
    }
    if (!ok && !st) st = ats_error_set(err, ATS_ERR_NOMEM, "tokenizer: out of memory");
    if (!st && t->trim_offsets) trim_offsets(t, &b, text);
    free(nv.v);
    free(tmp.v);
    free(sc.buf);
    free(sc.cpos);
    free(bw.syms);
    free(bw.heap);
    free(blw.u);
    free(blw.cidx);
    free(blw.mapped);
    if (md) pcre2_match_data_free(md);
    if (st) {
        builder_free(&b);
        return st;
    }

    /* template: special tokens around the text's tokens */
    size_t total = b.n;
    if (add_special)
        for (size_t k = 0; k < t->n_tmpl; k++)
            if (!t->tmpl[k].is_sequence) total += t->tmpl[k].n;
    size_t alloc = total ? total : 1;
    out->ids = malloc(alloc * sizeof *out->ids);
    out->tokens = calloc(alloc, sizeof *out->tokens);
    out->offsets = malloc(2 * alloc * sizeof *out->offsets);
    out->special = malloc(alloc);
    out->word_ids = malloc(alloc * sizeof *out->word_ids);
    if (!out->ids || !out->tokens || !out->offsets || !out->special || !out->word_ids) {
        builder_free(&b);
        ats_encoding_free(out);
        return ats_error_set(err, ATS_ERR_NOMEM, "tokenizer: out of memory");
    }
    size_t n = 0;
    for (size_t k = 0; k < (add_special && t->n_tmpl ? t->n_tmpl : 1); k++) {
        if (add_special && t->n_tmpl && !t->tmpl[k].is_sequence) {
            for (size_t j = 0; j < t->tmpl[k].n; j++) {
                out->ids[n] = t->tmpl[k].ids[j];
                out->offsets[2 * n] = out->offsets[2 * n + 1] = 0;
                out->special[n] = 1;
                out->word_ids[n] = -1;
                n++;
            }
            continue;
        }
        if (!b.n) continue;
        memcpy(out->ids + n, b.ids, b.n * sizeof *b.ids);
        memcpy(out->offsets + 2 * n, b.offsets, 2 * b.n * sizeof *b.offsets);
        for (size_t j = 0; j < b.n; j++) out->special[n + j] = 0;
        memcpy(out->word_ids + n, b.word_ids, b.n * sizeof *b.word_ids);
        n += b.n;
    }
    builder_free(&b);
    out->count = n;
    for (size_t k = 0; k < n; k++) {
        const char *s = t->vocab[out->ids[k]];
        out->tokens[k] = strdup(s ? s : "");
        if (!out->tokens[k]) {
            ats_encoding_free(out);
            return ats_error_set(err, ATS_ERR_NOMEM, "tokenizer: out of memory");
        }
    }
    return ATS_OK;
}

void ats_encoding_free(ats_encoding *enc) {
    if (!enc) return;
    if (enc->tokens)
        for (size_t i = 0; i < enc->count; i++) free(enc->tokens[i]);
    free(enc->tokens);
    free(enc->ids);
    free(enc->offsets);
    free(enc->special);
    free(enc->word_ids);
    memset(enc, 0, sizeof *enc);
}

ats_status ats_encoding_char_offsets(const ats_encoding *enc, const char *text, size_t len,
                                     size_t *out, ats_error *err) {
    /* characters before each byte position, counted on the fly (offsets are non-decreasing
     * within the text's tokens, but specials and trims may go back: count per offset) */
    size_t *prefix = malloc((len + 1) * sizeof *prefix);
    if (!prefix) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    size_t c = 0;
    for (size_t i = 0; i < len; i++) {
        prefix[i] = c;
        if (((unsigned char)text[i] & 0xC0) != 0x80) c++;
    }
    prefix[len] = c;
    for (size_t i = 0; i < 2 * enc->count; i++) {
        if (enc->offsets[i] > len) {
            free(prefix);
            return ats_error_set(err, ATS_ERR_INVALID,
                                 "encoding: offset %zu is beyond the text (%zu bytes)",
                                 enc->offsets[i], len);
        }
        out[i] = prefix[enc->offsets[i]];
    }
    free(prefix);
    return ATS_OK;
}
