/* Loading tokenizers: tokenizer.json (HuggingFace's tokenizers format), or the vocabulary files
 * of the Python tokenizers (vocab.json + merges.txt, encoder.json + vocab.bpe, vocab.txt) with
 * tokenizer_config.json / config.json. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer_internal.h"
#include "attnscope/gguf.h"
#include "tok_unicode_tables.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define TOK_MAX_FILE  ((size_t)1 << 30)
#define TOK_MAX_ID    ((int32_t)1 << 22)
#define TOK_MAX_TOKEN 4096

/* GPT-2's pre-tokenizer pattern,
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * with its classes spelled out so that PCRE2 matches what transformers' Oniguruma matches:
 * \s is Unicode White_Space (PCRE2's \s lacks U+0085), \p{L} and \p{N} are the ranges measured
 * from tokenizers by tools/make_unicode_tables.py (their Unicode is newer than PCRE2's). */
#define WS                                                                                         \
    "\\t\\n\\x0B\\f\\r\\x20\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"           \
    "\\x{202F}\\x{205F}\\x{3000}"
static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?[" TOK_RE_LETTERS "]+| ?[" TOK_RE_NUMBERS
    "]+| ?[^" WS TOK_RE_LETTERS TOK_RE_NUMBERS "]+|[" WS "]+(?![^" WS "])|[" WS "]+";

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *s = malloc(a + b + 2);
    if (!s) return NULL;
    memcpy(s, dir, a);
    s[a] = '/';
    memcpy(s + a + 1, name, b + 1);
    return s;
}

/* line and column (1-based) of byte offset off in buf */
static void line_col(const char *buf, size_t off, size_t *line, size_t *col) {
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < off; i++) {
        if (buf[i] == '\n') {
            (*line)++;
            *col = 1;
        } else {
            (*col)++;
        }
    }
}

static ats_status read_json(const char *path, cJSON **out, ats_error *err) {
    char *buf;
    size_t len;
    *out = NULL;
    ats_status st = ats_file_read_regular(path, TOK_MAX_FILE, &buf, &len, err);
    if (st) return st;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!j) {
        size_t off = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : 0;
        size_t line, col;
        line_col(buf, off, &line, &col);
        free(buf);
        return ats_error_set(err, ATS_ERR_FORMAT, "%s:%zu:%zu: invalid JSON", path, line, col);
    }
    free(buf);
    *out = j;
    return ATS_OK;
}

/* ---- building the vocabulary */

static ats_status vocab_add(ats_tokenizer *t, const char *tok, size_t len, int32_t id,
                            const char *path, const char *what, ats_error *err) {
    if (id < 0 || id >= TOK_MAX_ID)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: %s: id %ld of token '%.40s' is out of range [0, %ld)", path, what,
                             (long)id, tok, (long)TOK_MAX_ID);
    if (len > TOK_MAX_TOKEN)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: %s: token %ld is longer than %d bytes", path,
                             what, (long)id, TOK_MAX_TOKEN);
    if (ats_utf8_check(tok, len) != len)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: %s: token %ld is not valid UTF-8", path,
                             what, (long)id);
    if ((size_t)id >= t->n_alloc) {
        size_t ncap = t->n_alloc ? t->n_alloc : 1024;
        while (ncap <= (size_t)id) ncap *= 2;
        char **v = realloc(t->vocab, ncap * sizeof *v);
        if (!v) return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
        for (size_t i = t->n_alloc; i < ncap; i++) v[i] = NULL;
        t->vocab = v;
        t->n_alloc = ncap;
    }
    if ((size_t)id >= t->n_ids) t->n_ids = (size_t)id + 1;
    if (t->vocab[id] && strlen(t->vocab[id]) == len && !memcmp(t->vocab[id], tok, len))
        return ATS_OK;
    char *s = malloc(len + 1);
    if (!s) return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    memcpy(s, tok, len);
    s[len] = 0;
    if (t->vocab[id]) { /* an id given twice: the later token owns the id, both stay keys */
        if (t->n_spare == t->cap_spare) {
            size_t nc = t->cap_spare ? t->cap_spare * 2 : 16;
            char **sp = realloc(t->spare, nc * sizeof *sp);
            if (!sp) {
                free(s);
                return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
            }
            t->spare = sp;
            t->cap_spare = nc;
        }
        t->spare[t->n_spare++] = t->vocab[id];
    }
    t->vocab[id] = s;
    if (!tok_strmap_put(&t->map, s, len, id))
        return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    if (len > t->max_token_bytes) t->max_token_bytes = len;
    return ATS_OK;
}

static ats_status added_add(ats_tokenizer *t, const char *content, int32_t id, int lstrip,
                            int rstrip, int single_word, int special, const char *path,
                            ats_error *err) {
    size_t len = strlen(content);
    if (len == 0) return ATS_OK; /* an empty added token never matches */
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].len == len && !memcmp(t->added[i].content, content, len)) return ATS_OK;
    tok_added *a = realloc(t->added, (t->n_added + 1) * sizeof *a);
    if (!a) return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    t->added = a;
    tok_added *x = &a[t->n_added];
    x->content = strdup(content);
    if (!x->content) return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    x->len = len;
    x->id = id;
    x->lstrip = (uint8_t)lstrip;
    x->rstrip = (uint8_t)rstrip;
    x->single_word = (uint8_t)single_word;
    x->special = (uint8_t)special;
    t->added_first[(unsigned char)content[0]] = 1;
    t->n_added++;
    return ATS_OK;
}

static ats_status compile_regex(ats_tokenizer *t, ats_error *err) {
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)GPT2_PATTERN, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &code, &off, NULL);
    if (!re) return ats_error_set(err, ATS_ERR_FORMAT, "tokenizer: cannot compile GPT-2 regex");
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* faster when available; fine without */
    t->regex = re;
    return ATS_OK;
}

/* GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves, the others for
 * U+0100 onwards in byte order. */
static void byte_level_table(ats_tokenizer *t) {
    uint32_t n = 0;
    for (int b = 0; b < 256; b++) {
        uint32_t cp;
        if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))
            cp = (uint32_t)b;
        else
            cp = 256 + n++;
        int k = tok_utf8_encode(cp, t->byte_chars[b]);
        t->byte_chars[b][k] = 0;
    }
}

static void byte_level_ids(ats_tokenizer *t) {
    for (int b = 0; b < 256; b++)
        t->byte_ids[b] = tok_strmap_get(&t->map, t->byte_chars[b], strlen(t->byte_chars[b]));
}

static ats_status template_add(ats_tokenizer *t, int is_seq, const int32_t *ids, size_t n,
                               ats_error *err) {
    tok_template_piece *p = realloc(t->tmpl, (t->n_tmpl + 1) * sizeof *p);
    if (!p) return ats_error_set(err, ATS_ERR_NOMEM, "tokenizer: out of memory");
    t->tmpl = p;
    p = &t->tmpl[t->n_tmpl];
    p->is_sequence = is_seq;
    p->n = n;
    p->ids = NULL;
    if (n) {
        p->ids = malloc(n * sizeof *p->ids);
        if (!p->ids) return ats_error_set(err, ATS_ERR_NOMEM, "tokenizer: out of memory");
        memcpy(p->ids, ids, n * sizeof *ids);
    }
    t->n_tmpl++;
    return ATS_OK;
}

static ats_status id_checked(const ats_tokenizer *t, int32_t id, const char *path, const char *what,
                             ats_error *err) {
    if (id < 0 || (size_t)id >= t->n_ids || !t->vocab[id])
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: %s: id %ld is not in the vocabulary", path,
                             what, (long)id);
    return ATS_OK;
}

/* [CLS] A [SEP]-like template from two token strings; absent tokens are an error */
static ats_status template_wrap(ats_tokenizer *t, const char *cls, const char *sep,
                                const char *path, ats_error *err) {
    int32_t c = tok_strmap_get(&t->map, cls, strlen(cls));
    int32_t s = tok_strmap_get(&t->map, sep, strlen(sep));
    if (c < 0 || s < 0)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: special token '%s' is not in the vocabulary",
                             path, c < 0 ? cls : sep);
    ats_status st = template_add(t, 0, &c, 1, err);
    if (!st) st = template_add(t, 1, NULL, 0, err);
    if (!st) st = template_add(t, 0, &s, 1, err);
    return st;
}

/* ---- JSON helpers */

static int json_bool(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsString(v)) return v->valuestring;
    /* AddedToken as a dict: {"content": "..."} */
    if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

static int json_int(const cJSON *v, int32_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0 && d < (double)TOK_MAX_ID) || d != (double)(int32_t)d) return 0;
    *out = (int32_t)d;
    return 1;
}

/* ---- tokenizer.json */

static ats_status parse_normalizer(ats_tokenizer *t, const cJSON *n, const char *path,
                                   ats_error *err) {
    if (!n || cJSON_IsNull(n)) return ATS_OK;
    const char *type = json_str(n, "type");
    if (!type) return ats_error_set(err, ATS_ERR_FORMAT, "%s: normalizer: no \"type\"", path);
    int steps[8], ns = 0;
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(list))
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: normalizer: Sequence without a \"normalizers\" list", path);
        const cJSON *e;
        cJSON_ArrayForEach(e, list) {
            ats_status st = parse_normalizer(t, e, path, err);
            if (st) return st;
        }
        return ATS_OK;
    } else if (!strcmp(type, "BertNormalizer")) {
        int lower = json_bool(n, "lowercase", 1);
        const cJSON *sa = cJSON_GetObjectItemCaseSensitive(n, "strip_accents");
        int strip = cJSON_IsBool(sa) ? cJSON_IsTrue(sa) : lower;
        if (json_bool(n, "clean_text", 1)) steps[ns++] = NORM_CLEAN;
        if (json_bool(n, "handle_chinese_chars", 1)) steps[ns++] = NORM_CJK;
        if (strip) steps[ns++] = NORM_BERT_STRIP;
        if (lower) steps[ns++] = NORM_LOWER;
    } else if (!strcmp(type, "Lowercase")) {
        steps[ns++] = NORM_LOWER;
    } else if (!strcmp(type, "NFD")) {
        steps[ns++] = NORM_NFD;
    } else if (!strcmp(type, "StripAccents")) {
        steps[ns++] = NORM_DROP_MARKS;
    } else {
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: normalizer: type \"%s\" is not supported (BertNormalizer, "
                             "Lowercase, NFD, StripAccents, Sequence are)",
                             path, type);
    }
    for (int i = 0; i < ns; i++) {
        if (t->n_norm_steps >= (int)(sizeof t->norm_steps / sizeof t->norm_steps[0]))
            return ats_error_set(err, ATS_ERR_FORMAT, "%s: normalizer: too many steps", path);
        t->norm_steps[t->n_norm_steps++] = steps[i];
    }
    return ATS_OK;
}

static ats_status parse_pre_tokenizer(ats_tokenizer *t, const cJSON *p, const char *path,
                                      ats_error *err) {
    if (!p || cJSON_IsNull(p)) return ATS_OK;
    const char *type = json_str(p, "type");
    if (!type) return ats_error_set(err, ATS_ERR_FORMAT, "%s: pre_tokenizer: no \"type\"", path);
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list) || cJSON_GetArraySize(list) != 1)
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: pre_tokenizer: only a Sequence of one pre-tokenizer is "
                                 "supported",
                                 path);
        return parse_pre_tokenizer(t, cJSON_GetArrayItem(list, 0), path, err);
    }
    if (!strcmp(type, "BertPreTokenizer")) {
        t->pre_bert = 1;
    } else if (!strcmp(type, "WhitespaceSplit")) {
        t->pre_whitespace = 1;
    } else if (!strcmp(type, "ByteLevel")) {
        t->pre_bytelevel = 1;
        t->add_prefix_space = json_bool(p, "add_prefix_space", 0);
        t->byte_regex = json_bool(p, "use_regex", 1);
    } else {
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: pre_tokenizer: type \"%s\" is not supported (BertPreTokenizer, "
                             "ByteLevel, WhitespaceSplit are)",
                             path, type);
    }
    return ATS_OK;
}

/* ["[CLS]", 101] */
static ats_status pair_token(const ats_tokenizer *t, const cJSON *v, const char *path,
                             const char *what, int32_t *id, ats_error *err) {
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) != 2 || !json_int(cJSON_GetArrayItem(v, 1), id))
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: post_processor: \"%s\" must be [token, id]",
                             path, what);
    return id_checked(t, *id, path, what, err);
}

static ats_status parse_post_processor(ats_tokenizer *t, const cJSON *p, const char *path,
                                       ats_error *err) {
    if (!p || cJSON_IsNull(p)) return ATS_OK;
    const char *type = json_str(p, "type");
    if (!type) return ats_error_set(err, ATS_ERR_FORMAT, "%s: post_processor: no \"type\"", path);
    ats_status st;
    if (!strcmp(type, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "processors");
        if (!cJSON_IsArray(list))
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: post_processor: Sequence without \"processors\"", path);
        const cJSON *e;
        cJSON_ArrayForEach(e, list) {
            if ((st = parse_post_processor(t, e, path, err))) return st;
        }
        return ATS_OK;
    }
    if (!strcmp(type, "ByteLevel")) {
        if (json_bool(p, "trim_offsets", 1)) {
            t->trim_offsets = 1;
            t->trim_add_prefix_space = json_bool(p, "add_prefix_space", 1);
        }
        return ATS_OK;
    }
    if (t->n_tmpl)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: post_processor: more than one template",
                             path);
    if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        int32_t cls, sep;
        if ((st =
                 pair_token(t, cJSON_GetObjectItemCaseSensitive(p, "cls"), path, "cls", &cls, err)))
            return st;
        if ((st =
                 pair_token(t, cJSON_GetObjectItemCaseSensitive(p, "sep"), path, "sep", &sep, err)))
            return st;
        if ((st = template_add(t, 0, &cls, 1, err)) || (st = template_add(t, 1, NULL, 0, err)) ||
            (st = template_add(t, 0, &sep, 1, err)))
            return st;
        if (!strcmp(type, "RobertaProcessing") && json_bool(p, "trim_offsets", 1)) {
            t->trim_offsets = 1;
            t->trim_add_prefix_space = json_bool(p, "add_prefix_space", 1);
        }
        return ATS_OK;
    }
    if (!strcmp(type, "TemplateProcessing")) {
        const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
        const cJSON *specials = cJSON_GetObjectItemCaseSensitive(p, "special_tokens");
        if (!cJSON_IsArray(single))
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: post_processor: TemplateProcessing without \"single\"", path);
        const cJSON *e;
        int n_seq = 0;
        cJSON_ArrayForEach(e, single) {
            const cJSON *seq = cJSON_GetObjectItemCaseSensitive(e, "Sequence");
            const cJSON *sp = cJSON_GetObjectItemCaseSensitive(e, "SpecialToken");
            if (cJSON_IsObject(seq)) {
                if (n_seq++)
                    return ats_error_set(err, ATS_ERR_FORMAT,
                                         "%s: post_processor: \"single\" names the sequence twice",
                                         path);
                if ((st = template_add(t, 1, NULL, 0, err))) return st;
            } else if (cJSON_IsObject(sp)) {
                const char *name = json_str(sp, "id");
                const cJSON *def = name ? cJSON_GetObjectItemCaseSensitive(specials, name) : NULL;
                const cJSON *ids = cJSON_GetObjectItemCaseSensitive(def, "ids");
                if (!cJSON_IsArray(ids))
                    return ats_error_set(err, ATS_ERR_FORMAT,
                                         "%s: post_processor: special token '%s' has no ids in "
                                         "\"special_tokens\"",
                                         path, name ? name : "?");
                int32_t buf[16];
                size_t n = 0;
                const cJSON *x;
                cJSON_ArrayForEach(x, ids) {
                    if (n == 16 || !json_int(x, &buf[n]))
                        return ats_error_set(err, ATS_ERR_FORMAT,
                                             "%s: post_processor: bad ids of special token '%s'",
                                             path, name);
                    if ((st = id_checked(t, buf[n], path, "post_processor", err))) return st;
                    n++;
                }
                if ((st = template_add(t, 0, buf, n, err))) return st;
            } else {
                return ats_error_set(err, ATS_ERR_FORMAT,
                                     "%s: post_processor: \"single\" items must be Sequence or "
                                     "SpecialToken",
                                     path);
            }
        }
        if (!n_seq && (st = template_add(t, 1, NULL, 0, err))) return st;
        return ATS_OK;
    }
    return ats_error_set(err, ATS_ERR_FORMAT,
                         "%s: post_processor: type \"%s\" is not supported (TemplateProcessing, "
                         "BertProcessing, RobertaProcessing, ByteLevel, Sequence are)",
                         path, type);
}

static ats_status parse_vocab_object(ats_tokenizer *t, const cJSON *vocab, const char *path,
                                     const char *what, ats_error *err) {
    if (!cJSON_IsObject(vocab))
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: %s must be an object {token: id}", path,
                             what);
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab) {
        int32_t id;
        if (!json_int(e, &id))
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: %s: token '%.40s' has no valid id (an integer in [0, %ld))",
                                 path, what, e->string, (long)TOK_MAX_ID);
        ats_status st = vocab_add(t, e->string, strlen(e->string), id, path, what, err);
        if (st) return st;
    }
    return ATS_OK;
}

/* One merge (left, right): both and their concatenation must be tokens. */
static ats_status merge_add(ats_tokenizer *t, const char *a, size_t la, const char *b, size_t lb,
                            int32_t rank, const char *path, size_t line, ats_error *err) {
    int32_t ia = tok_strmap_get(&t->map, a, la), ib = tok_strmap_get(&t->map, b, lb);
    if (ia < 0 || ib < 0)
        return ats_error_set(
            err, ATS_ERR_FORMAT, "%s: merge %zu: token '%.*s' is not in the vocabulary", path, line,
            (int)(ia < 0 ? (la > 60 ? 60 : la) : (lb > 60 ? 60 : lb)), ia < 0 ? a : b);
    size_t skip = 0, pl = t->subword_prefix ? strlen(t->subword_prefix) : 0;
    if (pl && lb >= pl && !memcmp(b, t->subword_prefix, pl)) skip = pl;
    size_t n = la + lb - skip;
    if (n > TOK_MAX_TOKEN)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: merge %zu: merged token is too long", path,
                             line);
    char buf[2 * TOK_MAX_TOKEN + 1];
    memcpy(buf, a, la);
    memcpy(buf + la, b + skip, lb - skip);
    int32_t id = tok_strmap_get(&t->map, buf, n);
    if (id < 0)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: merge %zu: merged token '%.*s' is not in the vocabulary", path,
                             line, (int)(n > 60 ? 60 : n), buf);
    if (!tok_pairmap_put(&t->merges, ia, ib, rank, id))
        return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    return ATS_OK;
}

static ats_status parse_model(ats_tokenizer *t, const cJSON *m, const char *path, ats_error *err) {
    if (!cJSON_IsObject(m)) return ats_error_set(err, ATS_ERR_FORMAT, "%s: no \"model\"", path);
    const char *type = json_str(m, "type");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(m, "merges");
    if (!type) type = merges ? "BPE" : "WordPiece";
    ats_status st;
    if (!strcmp(type, "WordPiece")) {
        t->kind = ATS_TOKENIZER_WORDPIECE;
        if ((st = parse_vocab_object(t, cJSON_GetObjectItemCaseSensitive(m, "vocab"), path,
                                     "model.vocab", err)))
            return st;
        const char *unk = json_str(m, "unk_token");
        if (!unk) unk = "[UNK]";
        t->unk_id = tok_strmap_get(&t->map, unk, strlen(unk));
        if (t->unk_id < 0)
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: model.unk_token '%s' is not in the vocabulary", path, unk);
        const char *pre = json_str(m, "continuing_subword_prefix");
        t->subword_prefix = strdup(pre ? pre : "##");
        if (!t->subword_prefix) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        const cJSON *mx = cJSON_GetObjectItemCaseSensitive(m, "max_input_chars_per_word");
        t->max_chars_per_word = 100;
        if (cJSON_IsNumber(mx)) {
            if (!(mx->valuedouble >= 0 && mx->valuedouble < 1e9))
                return ats_error_set(err, ATS_ERR_FORMAT,
                                     "%s: model.max_input_chars_per_word is out of range", path);
            t->max_chars_per_word = (size_t)mx->valuedouble;
        }
        return ATS_OK;
    }
    if (strcmp(type, "BPE"))
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: model.type \"%s\" is not supported (BPE, WordPiece are)", path,
                             type);
    t->kind = ATS_TOKENIZER_BPE;
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(m, "dropout");
    if (cJSON_IsNumber(dropout) && dropout->valuedouble > 0)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: model.dropout is not supported", path);
    if (json_bool(m, "byte_fallback", 0))
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: model.byte_fallback is not supported", path);
    if ((st = parse_vocab_object(t, cJSON_GetObjectItemCaseSensitive(m, "vocab"), path,
                                 "model.vocab", err)))
        return st;
    const char *unk = json_str(m, "unk_token");
    t->unk_id = unk ? tok_strmap_get(&t->map, unk, strlen(unk)) : -1;
    const char *pre = json_str(m, "continuing_subword_prefix");
    if (pre && *pre && !(t->subword_prefix = strdup(pre)))
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    const char *suf = json_str(m, "end_of_word_suffix");
    if (suf && *suf && !(t->end_of_word_suffix = strdup(suf)))
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    t->ignore_merges = json_bool(m, "ignore_merges", 0);
    t->fuse_unk = json_bool(m, "fuse_unk", 0);
    if (!cJSON_IsArray(merges))
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: model.merges must be a list", path);
    const cJSON *e;
    int32_t rank = 0;
    cJSON_ArrayForEach(e, merges) {
        size_t line = (size_t)rank;
        if (cJSON_IsString(e)) {
            const char *s = e->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return ats_error_set(err, ATS_ERR_FORMAT,
                                     "%s: model.merges[%zu]: \"%.60s\" is not two tokens "
                                     "separated by one space",
                                     path, line, s);
            st = merge_add(t, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), rank, path, line, err);
        } else if (cJSON_IsArray(e) && cJSON_GetArraySize(e) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(e, 1))) {
            const char *a = cJSON_GetArrayItem(e, 0)->valuestring;
            const char *b = cJSON_GetArrayItem(e, 1)->valuestring;
            st = merge_add(t, a, strlen(a), b, strlen(b), rank, path, line, err);
        } else {
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: model.merges[%zu] must be \"a b\" or [\"a\", \"b\"]", path,
                                 line);
        }
        if (st) return st;
        if (rank == INT32_MAX)
            return ats_error_set(err, ATS_ERR_FORMAT, "%s: too many merges", path);
        rank++;
    }
    return ATS_OK;
}

static ats_status parse_added_tokens(ats_tokenizer *t, const cJSON *list, const char *path,
                                     ats_error *err) {
    if (!list || cJSON_IsNull(list)) return ATS_OK;
    if (!cJSON_IsArray(list))
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: added_tokens must be a list", path);
    const cJSON *e;
    size_t i = 0;
    cJSON_ArrayForEach(e, list) {
        int32_t id;
        const char *content = json_str(e, "content");
        if (!content || !json_int(cJSON_GetObjectItemCaseSensitive(e, "id"), &id))
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: added_tokens[%zu] needs \"id\" and \"content\"", path, i);
        ats_status st = vocab_add(t, content, strlen(content), id, path, "added_tokens", err);
        if (!st)
            st = added_add(t, content, id, json_bool(e, "lstrip", 0), json_bool(e, "rstrip", 0),
                           json_bool(e, "single_word", 0), json_bool(e, "special", 0), path, err);
        if (st) return st;
        i++;
    }
    return ATS_OK;
}

static ats_status parse_tokenizer_json(ats_tokenizer *t, const char *buf, size_t len,
                                       const char *path, ats_error *err) {
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!j) {
        size_t off = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : 0;
        size_t line, col;
        line_col(buf, off, &line, &col);
        return ats_error_set(err, ATS_ERR_FORMAT, "%s:%zu:%zu: invalid JSON", path, line, col);
    }
    ats_status st;
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: not a JSON object", path);
    }
    /* the model first: normalizer, pre-tokenizer and post-processor refer to its vocabulary */
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer");
    if ((st = parse_model(t, model, path, err)) ||
        (st = parse_added_tokens(t, cJSON_GetObjectItemCaseSensitive(j, "added_tokens"), path,
                                 err)) ||
        (st = parse_normalizer(t, cJSON_GetObjectItemCaseSensitive(j, "normalizer"), path, err)) ||
        (st = parse_pre_tokenizer(t, pre, path, err)) ||
        (st = parse_post_processor(t, cJSON_GetObjectItemCaseSensitive(j, "post_processor"), path,
                                   err))) {
        cJSON_Delete(j);
        return st;
    }
    cJSON_Delete(j);
    return ATS_OK;
}

static ats_status load_tokenizer_json(ats_tokenizer *t, const char *path, ats_error *err) {
    char *buf;
    size_t len;
    ats_status st = ats_file_read_regular(path, TOK_MAX_FILE, &buf, &len, err);
    if (st) return st;
    st = parse_tokenizer_json(t, buf, len, path, err);
    free(buf);
    return st;
}

/* checks the combination and builds the byte-level tables and the regex */
static ats_status finish(ats_tokenizer *t, const char *name, ats_error *err) {
    if (t->kind == ATS_TOKENIZER_BPE && !t->pre_bytelevel && !t->spm)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: a BPE tokenizer without the ByteLevel pre-tokenizer is not "
                             "supported",
                             name);
    if (t->kind == ATS_TOKENIZER_WORDPIECE && t->pre_bytelevel)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: WordPiece with the ByteLevel pre-tokenizer is not supported",
                             name);
    if (t->pre_bytelevel) {
        byte_level_table(t);
        byte_level_ids(t);
        if (t->byte_regex) return compile_regex(t, err);
    }
    return ATS_OK;
}

/* ---- vocabulary files */

/* vocab.json + merges.txt (or GPT-2's original encoder.json + vocab.bpe) */
static ats_status load_bpe_files(ats_tokenizer *t, const char *vocab_path, const char *merges_path,
                                 ats_error *err) {
    cJSON *j;
    ats_status st = read_json(vocab_path, &j, err);
    if (st) return st;
    t->kind = ATS_TOKENIZER_BPE;
    st = parse_vocab_object(t, j, vocab_path, "vocabulary", err);
    cJSON_Delete(j);
    if (st) return st;
    char *buf;
    size_t len;
    if ((st = ats_file_read_regular(merges_path, TOK_MAX_FILE, &buf, &len, err))) return st;
    if (ats_utf8_check(buf, len) != len) {
        size_t line, col;
        line_col(buf, ats_utf8_check(buf, len), &line, &col);
        free(buf);
        return ats_error_set(err, ATS_ERR_FORMAT, "%s:%zu:%zu: invalid UTF-8", merges_path, line,
                             col);
    }
    size_t pos = 0, line = 0;
    int32_t rank = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && buf[end] != '\n') end++;
        line++;
        size_t e = end;
        if (e > pos && buf[e - 1] == '\r') e--;
        const char *s = buf + pos;
        size_t n = e - pos;
        pos = end + 1;
        if (n == 0 || (line == 1 && n >= 8 && !memcmp(s, "#version", 8))) continue;
        const char *sp = memchr(s, ' ', n);
        if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp + 1 - s))) {
            st = ats_error_set(err, ATS_ERR_FORMAT,
                               "%s:%zu: a merge is two tokens separated by one space, got "
                               "\"%.*s\"",
                               merges_path, line, (int)(n > 60 ? 60 : n), s);
            break;
        }
        st = merge_add(t, s, (size_t)(sp - s), sp + 1, n - (size_t)(sp + 1 - s), rank, merges_path,
                       line, err);
        if (st) break;
        rank++;
    }
    free(buf);
    return st;
}

static ats_status load_vocab_txt(ats_tokenizer *t, const char *path, ats_error *err) {
    char *buf;
    size_t len;
    ats_status st = ats_file_read_regular(path, TOK_MAX_FILE, &buf, &len, err);
    if (st) return st;
    size_t bad = ats_utf8_check(buf, len);
    if (bad != len) {
        size_t line, col;
        line_col(buf, bad, &line, &col);
        free(buf);
        return ats_error_set(err, ATS_ERR_FORMAT, "%s:%zu:%zu: invalid UTF-8", path, line, col);
    }
    t->kind = ATS_TOKENIZER_WORDPIECE;
    size_t pos = 0;
    int32_t id = 0;
    while (pos < len) {
        size_t end = pos;
        while (end < len && buf[end] != '\n') end++;
        if ((st = vocab_add(t, buf + pos, end - pos, id, path, "vocabulary", err))) break;
        id++;
        pos = end + 1;
    }
    free(buf);
    if (!st && id == 0) st = ats_error_set(err, ATS_ERR_FORMAT, "%s: empty vocabulary", path);
    return st;
}

/* ---- the directory */

typedef struct tok_config {
    cJSON *config, *tok_config, *special_map;
} tok_config;

/* a special-token name ("unk_token") from tokenizer_config.json, special_tokens_map.json */
static const char *special_name(const tok_config *c, const char *key, const char *dflt) {
    const char *v = json_str(c->tok_config, key);
    if (!v) v = json_str(c->special_map, key);
    return v ? v : dflt;
}

static ats_status add_specials(ats_tokenizer *t, const tok_config *c, const char *const *keys,
                               const char *const *dflts, size_t n, const char *path,
                               ats_error *err) {
    for (size_t i = 0; i < n; i++) {
        const char *name = special_name(c, keys[i], dflts[i]);
        if (!name) continue;
        int32_t id = tok_strmap_get(&t->map, name, strlen(name));
        if (id < 0) continue;
        /* as transformers 5 builds them from vocabulary files: no lstrip / rstrip */
        ats_status st = added_add(t, name, id, 0, 0, 0, 1, path, err);
        if (st) return st;
    }
    return ATS_OK;
}

static int is_roberta(const tok_config *c) {
    const char *mt = json_str(c->config, "model_type");
    const char *tc = json_str(c->tok_config, "tokenizer_class");
    if (mt && (!strcmp(mt, "roberta") || !strcmp(mt, "camembert") || !strcmp(mt, "longformer") ||
               !strcmp(mt, "bart")))
        return 1;
    if (tc &&
        (!strncmp(tc, "Roberta", 7) || !strncmp(tc, "Longformer", 10) || !strncmp(tc, "Bart", 4)))
        return 1;
    return 0;
}

static ats_status load_dir(ats_tokenizer *t, const char *dir, tok_config *c, ats_error *err) {
    static const char *const names[] = {"config.json", "tokenizer_config.json",
                                        "special_tokens_map.json"};
    cJSON **slots[] = {&c->config, &c->tok_config, &c->special_map};
    ats_status st = ATS_OK;
    for (int i = 0; i < 3; i++) {
        char *p = path_join(dir, names[i]);
        if (!p) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        if (file_exists(p)) st = read_json(p, slots[i], err);
        free(p);
        if (st) return st;
    }
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(c->tok_config, "model_max_length");
    if (cJSON_IsNumber(ml) && ml->valuedouble > 0 && ml->valuedouble < 1e9)
        t->max_length = (size_t)ml->valuedouble;

    char *tj = path_join(dir, "tokenizer.json");
    char *vj = path_join(dir, "vocab.json"), *mt = path_join(dir, "merges.txt");
    char *ej = path_join(dir, "encoder.json"), *vb = path_join(dir, "vocab.bpe");
    char *vt = path_join(dir, "vocab.txt");
    if (!tj || !vj || !mt || !ej || !vb || !vt) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    } else if (file_exists(tj)) {
        st = load_tokenizer_json(t, tj, err);
    } else if ((file_exists(vj) && file_exists(mt)) || (file_exists(ej) && file_exists(vb))) {
        int hf = file_exists(vj) && file_exists(mt);
        const char *vp = hf ? vj : ej, *mp = hf ? mt : vb;
        st = load_bpe_files(t, vp, mp, err);
        if (!st) {
            t->pre_bytelevel = 1;
            t->byte_regex = 1;
            t->add_prefix_space = json_bool(c->tok_config, "add_prefix_space", 0);
            if (is_roberta(c)) {
                static const char *const k[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                                "pad_token", "cls_token", "mask_token"};
                static const char *const d[] = {"<s>",   "</s>", "<unk>", "</s>",
                                                "<pad>", "<s>",  "<mask>"};
                st = add_specials(t, c, k, d, 7, vp, err);
                if (!st)
                    st = template_wrap(t, special_name(c, "cls_token", "<s>"),
                                       special_name(c, "sep_token", "</s>"), vp, err);
                t->trim_offsets = 1;
                t->trim_add_prefix_space = t->add_prefix_space;
            } else {
                static const char *const k[] = {"bos_token", "eos_token", "unk_token", "pad_token"};
                static const char *const d[] = {"<|endoftext|>", "<|endoftext|>", "<|endoftext|>",
                                                NULL};
                st = add_specials(t, c, k, d, 4, vp, err);
            }
        }
    } else if (file_exists(vt)) {
        st = load_vocab_txt(t, vt, err);
        if (!st) {
            const char *unk = special_name(c, "unk_token", "[UNK]");
            t->unk_id = tok_strmap_get(&t->map, unk, strlen(unk));
            if (t->unk_id < 0)
                st = ats_error_set(err, ATS_ERR_FORMAT, "%s: unknown token '%s' is not in it", vt,
                                   unk);
        }
        if (!st) {
            t->subword_prefix = strdup("##");
            if (!t->subword_prefix) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
            t->max_chars_per_word = 100;
            int lower = json_bool(c->tok_config, "do_lower_case", 1);
            const cJSON *sa = cJSON_GetObjectItemCaseSensitive(c->tok_config, "strip_accents");
            int strip = cJSON_IsBool(sa) ? cJSON_IsTrue(sa) : lower;
            t->norm_steps[t->n_norm_steps++] = NORM_CLEAN;
            if (json_bool(c->tok_config, "tokenize_chinese_chars", 1))
                t->norm_steps[t->n_norm_steps++] = NORM_CJK;
            if (strip) t->norm_steps[t->n_norm_steps++] = NORM_BERT_STRIP;
            if (lower) t->norm_steps[t->n_norm_steps++] = NORM_LOWER;
            t->pre_bert = 1;
        }
        if (!st) {
            static const char *const k[] = {"unk_token", "sep_token", "pad_token", "cls_token",
                                            "mask_token"};
            static const char *const d[] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};
            st = add_specials(t, c, k, d, 5, vt, err);
        }
        if (!st)
            st = template_wrap(t, special_name(c, "cls_token", "[CLS]"),
                               special_name(c, "sep_token", "[SEP]"), vt, err);
    } else {
        st = ats_error_set(err, ATS_ERR_IO,
                           "%s: no tokenizer found (looked for tokenizer.json, vocab.json + "
                           "merges.txt, encoder.json + vocab.bpe, vocab.txt)",
                           dir);
    }
    free(tj);
    free(vj);
    free(mt);
    free(ej);
    free(vb);
    free(vt);
    if (st) return st;
    if ((st = finish(t, dir, err))) return st;
    if (!t->max_length) {
        const cJSON *mp = cJSON_GetObjectItemCaseSensitive(c->config, "max_position_embeddings");
        if (!mp) mp = cJSON_GetObjectItemCaseSensitive(c->config, "n_positions");
        if (cJSON_IsNumber(mp) && mp->valuedouble > 0 && mp->valuedouble < 1e9) {
            t->max_length = (size_t)mp->valuedouble;
            if (is_roberta(c) && t->max_length > 2) t->max_length -= 2; /* position offset */
        }
    }
    return ATS_OK;
}

/* ---- GGUF files */

/* 1 when the GGUF string s[len] (no NUL) is want */
static int gguf_str_is(const char *s, size_t len, const char *want) {
    return len == strlen(want) && !memcmp(s, want, len);
}

/* The id stored under key, which must name a token of the n. */
static ats_status gguf_token_id(const ats_gguf *g, const char *key, size_t n, int32_t *id,
                                ats_error *err) {
    int64_t v;
    ats_status st = ats_gguf_get_int(g, key, &v, err);
    if (st) return st;
    if (v < 0 || (uint64_t)v >= n)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: metadata key '%s' = %lld is not a token id (the vocabulary has "
                             "%zu tokens)",
                             g->path, key, (long long)v, n);
    *id = (int32_t)v;
    return ATS_OK;
}

/* One merge that transformers derives from a SentencePiece vocabulary without merges. */
typedef struct spm_merge {
    float score, score_l, score_r; /* of the merged token and of its two pieces */
    uint32_t pos, split;           /* the merged token's place among distinct tokens; where */
    int32_t left, right, merged;
} spm_merge;

/* transformers' order (GGUFTokenizerSkeleton): by the merged token's score, descending; a
 * stable sort over the tokens in vocabulary order, each token's merges sorted (stably, by split
 * position) by the two pieces' scores, descending */
static int spm_merge_cmp(const void *pa, const void *pb) {
    const spm_merge *a = pa, *b = pb;
    if (a->score != b->score) return a->score > b->score ? -1 : 1;
    if (a->pos != b->pos) return a->pos < b->pos ? -1 : 1;
    if (a->score_l != b->score_l) return a->score_l > b->score_l ? -1 : 1;
    if (a->score_r != b->score_r) return a->score_r > b->score_r ? -1 : 1;
    return a->split < b->split ? -1 : a->split > b->split;
}

/* The merges of a SentencePiece vocabulary that has scores and no merges, as transformers
 * builds them: every split of every token (at character boundaries) whose two pieces are
 * tokens, ranked by spm_merge_cmp. A token string given twice counts once, at its first
 * place, with its last id and score (a Python dict built from the list). */
static ats_status spm_merges(ats_tokenizer *t, const float *scores, size_t n, const char *path,
                             ats_error *err) {
    tok_strmap first = {0};
    spm_merge *m = NULL;
    size_t nm = 0, cap = 0;
    ats_status st = ATS_OK;
    for (size_t i = n; i-- > 0;)
        if (!tok_strmap_put(&first, t->vocab[i], strlen(t->vocab[i]), (int32_t)i)) goto nomem;
    uint32_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = t->vocab[i];
        size_t len = strlen(s);
        if (tok_strmap_get(&first, s, len) != (int32_t)i) continue;
        int32_t id = tok_strmap_get(&t->map, s, len);
        uint32_t split = 0;
        for (size_t k = 1; k < len; k++) {
            if (((unsigned char)s[k] & 0xC0) == 0x80) continue; /* inside a character */
            int32_t l = tok_strmap_get(&t->map, s, k), r = tok_strmap_get(&t->map, s + k, len - k);
            split++;
            if (l < 0 || r < 0) continue;
            if (nm == cap) {
                size_t nc = cap ? 2 * cap : 1024;
                spm_merge *x = realloc(m, nc * sizeof *x);
                if (!x) goto nomem;
                m = x;
                cap = nc;
            }
            m[nm++] = (spm_merge){scores[id], scores[l], scores[r], pos, split, l, r, id};
        }
        pos++;
    }
    if (nm >= (size_t)INT32_MAX) {
        st = ats_error_set(err, ATS_ERR_FORMAT, "%s: tokenizer.ggml.tokens: too many merges", path);
        goto done;
    }
    if (nm) qsort(m, nm, sizeof *m, spm_merge_cmp);
    for (size_t i = 0; i < nm; i++)
        if (!tok_pairmap_put(&t->merges, m[i].left, m[i].right, (int32_t)i, m[i].merged))
            goto nomem;
    goto done;
nomem:
    st = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
done:
    tok_strmap_free(&first);
    free(m);
    return st;
}

/* tokenizer.ggml.scores: one finite float per token */
static ats_status gguf_scores(const ats_gguf *g, size_t n, float **out, ats_error *err) {
    const char *key = "tokenizer.ggml.scores";
    size_t ns;
    *out = NULL;
    if (!ats_gguf_find_kv(g, key))
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: metadata key '%s' is missing (a SentencePiece vocabulary without "
                             "tokenizer.ggml.merges needs its scores to build them)",
                             g->path, key);
    ats_status st = ats_gguf_get_arr_len(g, key, GGUF_V_ARR, &ns, err);
    if (st) return st;
    if (ns != n)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: %s has %zu entries for %zu tokens", g->path,
                             key, ns, n);
    float *sc = malloc((n ? n : 1) * sizeof *sc);
    if (!sc) return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", g->path);
    for (size_t i = 0; i < n && !st; i++) {
        st = ats_gguf_get_arr_f32(g, key, i, &sc[i], err);
        if (!st && !isfinite(sc[i]))
            st = ats_error_set(err, ATS_ERR_FORMAT, "%s: %s[%zu] is not a finite number", g->path,
                               key, i);
    }
    if (st) {
        free(sc);
        return st;
    }
    *out = sc;
    return ATS_OK;
}

/* tokenizer.ggml.merges ("a b", in rank order) */
static ats_status gguf_merges(ats_tokenizer *t, const ats_gguf *g, size_t nm, ats_error *err) {
    const char *path = g->path;
    if (nm >= (size_t)INT32_MAX)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: tokenizer.ggml.merges: too many merges",
                             path);
    ats_status st = ATS_OK;
    for (size_t i = 0; i < nm && !st; i++) {
        const char *s, *sp;
        size_t len;
        if ((st = ats_gguf_get_arr_str(g, "tokenizer.ggml.merges", i, &s, &len, err))) break;
        sp = memchr(s, ' ', len);
        if (!sp || memchr(sp + 1, ' ', len - (size_t)(sp + 1 - s)))
            st = ats_error_set(err, ATS_ERR_FORMAT,
                               "%s: tokenizer.ggml.merges[%zu]: \"%.*s\" is not two tokens "
                               "separated by one space",
                               path, i, (int)(len > 60 ? 60 : len), s);
        else
            st = merge_add(t, s, (size_t)(sp - s), sp + 1, len - (size_t)(sp + 1 - s), (int32_t)i,
                           path, i, err);
    }
    return st;
}

/* llama.cpp's token types: 0 undefined, 1 normal, 2 unknown, 3 control, 4 user-defined,
 * 5 unused, 6 byte. The control tokens become special added tokens. */
static ats_status gguf_token_types(ats_tokenizer *t, const ats_gguf *g, size_t n, ats_error *err) {
    const char *key = "tokenizer.ggml.token_type";
    size_t nt;
    ats_status st = ats_gguf_get_arr_len(g, key, GGUF_V_ARR, &nt, err);
    if (st) return st;
    if (nt != n)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: %s has %zu entries for %zu tokens", g->path,
                             key, nt, n);
    for (size_t i = 0; i < n && !st; i++) {
        int64_t ty;
        st = ats_gguf_get_arr_int(g, key, i, &ty, err);
        if (!st && (ty < 0 || ty > 6))
            st = ats_error_set(err, ATS_ERR_FORMAT,
                               "%s: %s[%zu] = %lld is not a token type (0 to 6: undefined, "
                               "normal, unknown, control, user-defined, unused, byte)",
                               g->path, key, i, (long long)ty);
        if (!st && ty == 3) st = added_add(t, t->vocab[i], (int32_t)i, 0, 0, 0, 1, g->path, err);
    }
    return st;
}

/* The tokenizer inside a GGUF file, as transformers builds it (integrations/ggml.py,
 * GGUFLlamaConverter, for general.architecture "llama", and LlamaTokenizerFast around it):
 * BPE over tokenizer.ggml.tokens (the id is the index) with byte_fallback and fuse_unk, and
 * - tokenizer.ggml.model "gpt2": byte-level BPE with tokenizer.ggml.merges ("a b", in rank
 *   order) and GPT-2's regex whatever tokenizer.ggml.pre names (transformers ignores that key),
 *   no normaliser;
 * - tokenizer.ggml.model "llama" (SentencePiece): the merges of the file, or without them merges
 *   built from tokenizer.ggml.scores (spm_merges); ' ' as U+2581 and, unless
 *   tokenizer.ggml.add_space_prefix is false, a U+2581 before each piece of text between added
 *   tokens; BPE over characters, a character without a token as its <0xXX> byte tokens.
 * Special added tokens: those whose tokenizer.ggml.token_type is 3 (control), without token
 * types the unknown and BOS tokens; the unknown and BOS tokens are special in any case (they
 * are LlamaTokenizerFast's unk_token and bos_token). The BOS token,
 * tokens[tokenizer.ggml.bos_token_id], goes before the text and no EOS after it:
 * LlamaTokenizerFast's defaults, whatever tokenizer.ggml.add_bos_token / add_eos_token say
 * (SmolLM2's file says add_bos_token false, and llama.cpp adds none). attnscope follows
 * transformers, the reference; add_special = 0 (tokenize --no-special) drops the BOS token. */
static ats_status load_gguf(ats_tokenizer *t, const char *path, ats_error *err) {
    ats_gguf *g;
    ats_status st = ats_gguf_open(path, &g, err);
    if (st) return st;
    const char *arch = "", *model = "";
    size_t alen = 0, mlen = 0, n = 0, nm = 0;
    int32_t bos = -1, unk = -1;
    float *scores = NULL;
    if ((st = ats_gguf_get_str(g, "general.architecture", &arch, &alen, err)) ||
        (st = ats_gguf_get_str(g, "tokenizer.ggml.model", &model, &mlen, err)))
        goto done;
    int spm = gguf_str_is(model, mlen, "llama");
    if (!spm && !gguf_str_is(model, mlen, "gpt2")) {
        st = ats_error_set(err, ATS_ERR_FORMAT,
                           "%s: tokenizer.ggml.model \"%.*s\" is not supported (\"gpt2\", "
                           "byte-level BPE, and \"llama\", SentencePiece, are)",
                           path, (int)(mlen > 40 ? 40 : mlen), model);
        goto done;
    }
    /* transformers picks the converter by architecture: other ones build other tokenizers
     * (Qwen2's regex, GPT-2's post-processor) */
    if (!gguf_str_is(arch, alen, "llama")) {
        st = ats_error_set(err, ATS_ERR_FORMAT,
                           "%s: the tokenizer of a general.architecture \"%.*s\" file is not "
                           "supported (a \"llama\" file's is)",
                           path, (int)(alen > 40 ? 40 : alen), arch);
        goto done;
    }
    t->kind = ATS_TOKENIZER_BPE;
    if ((st = ats_gguf_get_arr_len(g, "tokenizer.ggml.tokens", GGUF_V_STR, &n, err))) goto done;
    if (n == 0 || n >= (size_t)TOK_MAX_ID) {
        st = ats_error_set(err, ATS_ERR_FORMAT,
                           "%s: tokenizer.ggml.tokens has %zu tokens (1 to %ld are supported)",
                           path, n, (long)TOK_MAX_ID - 1);
        goto done;
    }
    for (size_t i = 0; i < n && !st; i++) {
        const char *s;
        size_t len;
        st = ats_gguf_get_arr_str(g, "tokenizer.ggml.tokens", i, &s, &len, err);
        if (!st && memchr(s, 0, len))
            st = ats_error_set(err, ATS_ERR_FORMAT, "%s: tokenizer.ggml.tokens[%zu] holds a NUL",
                               path, i);
        if (!st) st = vocab_add(t, s, len, (int32_t)i, path, "tokenizer.ggml.tokens", err);
    }
    if (st) goto done;
    if ((st = gguf_token_id(g, "tokenizer.ggml.bos_token_id", n, &bos, err))) goto done;
    if (ats_gguf_find_kv(g, "tokenizer.ggml.unknown_token_id") &&
        (st = gguf_token_id(g, "tokenizer.ggml.unknown_token_id", n, &unk, err)))
        goto done;
    /* transformers passes tokens, not ids: a duplicated token string means its last id */
    t->unk_id = unk < 0 ? -1 : tok_strmap_get(&t->map, t->vocab[unk], strlen(t->vocab[unk]));
    int32_t bos_id = tok_strmap_get(&t->map, t->vocab[bos], strlen(t->vocab[bos]));
    if (ats_gguf_find_kv(g, "tokenizer.ggml.token_type") && (st = gguf_token_types(t, g, n, err)))
        goto done;
    if (unk >= 0) st = added_add(t, t->vocab[unk], unk, 0, 0, 0, 1, path, err);
    if (!st) st = added_add(t, t->vocab[bos], bos, 0, 0, 0, 1, path, err);
    if (st) goto done;
    if (ats_gguf_find_kv(g, "tokenizer.ggml.merges") || !spm) {
        if ((st = ats_gguf_get_arr_len(g, "tokenizer.ggml.merges", GGUF_V_STR, &nm, err)) ||
            (st = gguf_merges(t, g, nm, err)))
            goto done;
    } else if ((st = gguf_scores(g, n, &scores, err)) || (st = spm_merges(t, scores, n, path, err)))
        goto done;
    if ((st = template_add(t, 0, &bos_id, 1, err)) || (st = template_add(t, 1, NULL, 0, err)))
        goto done;
    if (spm) {
        t->spm = 1;
        t->spm_prefix = 1;
        if (ats_gguf_find_kv(g, "tokenizer.ggml.add_space_prefix") &&
            (st = ats_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &t->spm_prefix, err)))
            goto done;
    } else {
        t->pre_bytelevel = 1;
        t->byte_regex = 1;
    }
    const gguf_kv *ctx = ats_gguf_find_kv(g, "llama.context_length");
    int64_t cl;
    if (ctx && !ats_gguf_get_int(g, "llama.context_length", &cl, NULL) && cl > 0 && cl < 1000000000)
        t->max_length = (size_t)cl;
    if ((st = finish(t, path, err))) goto done;
    t->fuse_unk = 1;
    t->byte_fallback = 1;
    for (int c = 0; c < 256; c++) {
        char hex[8];
        snprintf(hex, sizeof hex, "<0x%02X>", c);
        t->fallback_ids[c] = tok_strmap_get(&t->map, hex, strlen(hex));
    }
done:
    free(scores);
    ats_gguf_close(g);
    return st;
}

ats_status ats_tokenizer_load(const char *model_dir, ats_tokenizer **out, ats_error *err) {
    *out = NULL;
    if (!model_dir) return ats_error_set(err, ATS_ERR_INVALID, "tokenizer: no model directory");
    ats_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return ats_error_set(err, ATS_ERR_NOMEM, "tokenizer: out of memory");
    t->unk_id = -1;
    tok_config c = {0};
    /* a file, not a directory: a GGUF model with its tokenizer inside */
    ats_status st =
        file_exists(model_dir) ? load_gguf(t, model_dir, err) : load_dir(t, model_dir, &c, err);
    cJSON_Delete(c.config);
    cJSON_Delete(c.tok_config);
    cJSON_Delete(c.special_map);
    if (st) {
        ats_tokenizer_free(t);
        return st;
    }
    *out = t;
    return ATS_OK;
}

ats_status ats_tokenizer_load_json(const char *json, size_t len, ats_tokenizer **out,
                                   ats_error *err) {
    *out = NULL;
    if (!json && len) return ats_error_set(err, ATS_ERR_INVALID, "tokenizer.json: NULL buffer");
    ats_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return ats_error_set(err, ATS_ERR_NOMEM, "tokenizer: out of memory");
    t->unk_id = -1;
    ats_status st = parse_tokenizer_json(t, json ? json : "", len, "tokenizer.json", err);
    if (!st) st = finish(t, "tokenizer.json", err);
    if (st) {
        ats_tokenizer_free(t);
        return st;
    }
    *out = t;
    return ATS_OK;
}

void ats_tokenizer_free(ats_tokenizer *t) {
    if (!t) return;
    for (size_t i = 0; i < t->n_ids; i++) free(t->vocab[i]);
    free(t->vocab);
    for (size_t i = 0; i < t->n_spare; i++) free(t->spare[i]);
    free(t->spare);
    tok_strmap_free(&t->map);
    tok_pairmap_free(&t->merges);
    if (t->regex) pcre2_code_free((pcre2_code *)t->regex);
    free(t->subword_prefix);
    free(t->end_of_word_suffix);
    for (size_t i = 0; i < t->n_added; i++) free(t->added[i].content);
    free(t->added);
    for (size_t i = 0; i < t->n_tmpl; i++) free(t->tmpl[i].ids);
    free(t->tmpl);
    free(t);
}

ats_tokenizer_kind ats_tokenizer_kind_of(const ats_tokenizer *t) {
    return t->kind;
}

size_t ats_tokenizer_vocab_size(const ats_tokenizer *t) {
    return t->n_ids;
}

size_t ats_tokenizer_max_length(const ats_tokenizer *t) {
    return t->max_length;
}

int32_t ats_tokenizer_token_to_id(const ats_tokenizer *t, const char *token) {
    if (!token) return -1;
    return tok_strmap_get(&t->map, token, strlen(token));
}

const char *ats_tokenizer_id_to_token(const ats_tokenizer *t, int32_t id) {
    if (id < 0 || (size_t)id >= t->n_ids) return NULL;
    return t->vocab[id];
}
