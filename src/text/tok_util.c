/* Hash maps, UTF-8 and the Unicode character classes of HuggingFace's tokenizers. */
#include "tokenizer_internal.h"
#include "tok_unicode_tables.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

uint64_t tok_hash(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h ^ (h >> 29);
}

static int strmap_grow(tok_strmap *m) {
    size_t ncap = m->cap ? m->cap * 2 : 64;
    const char **keys = calloc(ncap, sizeof *keys);
    uint32_t *lens = calloc(ncap, sizeof *lens);
    int32_t *vals = calloc(ncap, sizeof *vals);
    if (!keys || !lens || !vals) {
        free(keys);
        free(lens);
        free(vals);
        return 0;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = (size_t)tok_hash(m->keys[i], m->lens[i]) & (ncap - 1);
        while (keys[j]) j = (j + 1) & (ncap - 1);
        keys[j] = m->keys[i];
        lens[j] = m->lens[i];
        vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->lens);
    free(m->vals);
    m->keys = keys;
    m->lens = lens;
    m->vals = vals;
    m->cap = ncap;
    return 1;
}

int tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t val) {
    if (len > UINT32_MAX) return 0;
    if ((m->count + 1) * 2 > m->cap && !strmap_grow(m)) return 0;
    size_t j = (size_t)tok_hash(key, len) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->lens[j] == len && !memcmp(m->keys[j], key, len)) {
            m->vals[j] = val;
            return 1;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = key;
    m->lens[j] = (uint32_t)len;
    m->vals[j] = val;
    m->count++;
    return 1;
}

int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len) {
    if (!m->cap) return -1;
    size_t j = (size_t)tok_hash(key, len) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->lens[j] == len && !memcmp(m->keys[j], key, len)) return m->vals[j];
        j = (j + 1) & (m->cap - 1);
    }
    return -1;
}

void tok_strmap_free(tok_strmap *m) {
    free(m->keys);
    free(m->lens);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static uint64_t mix64(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static int pairmap_grow(tok_pairmap *m) {
    size_t ncap = m->cap ? m->cap * 2 : 64;
    uint64_t *keys = calloc(ncap, sizeof *keys);
    int32_t *rank = calloc(ncap, sizeof *rank);
    int32_t *id = calloc(ncap, sizeof *id);
    if (!keys || !rank || !id) {
        free(keys);
        free(rank);
        free(id);
        return 0;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = (size_t)mix64(m->keys[i]) & (ncap - 1);
        while (keys[j]) j = (j + 1) & (ncap - 1);
        keys[j] = m->keys[i];
        rank[j] = m->rank[i];
        id[j] = m->id[i];
    }
    free(m->keys);
    free(m->rank);
    free(m->id);
    m->keys = keys;
    m->rank = rank;
    m->id = id;
    m->cap = ncap;
    return 1;
}

static uint64_t pair_key(int32_t a, int32_t b) {
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

int tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id) {
    if ((m->count + 1) * 2 > m->cap && !pairmap_grow(m)) return 0;
    uint64_t k = pair_key(a, b);
    size_t j = (size_t)mix64(k) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->keys[j] == k) return 1;
        j = (j + 1) & (m->cap - 1);
    }
    m->keys[j] = k;
    m->rank[j] = rank;
    m->id[j] = id;
    m->count++;
    return 1;
}

int tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *id) {
    if (!m->cap) return 0;
    uint64_t k = pair_key(a, b);
    size_t j = (size_t)mix64(k) & (m->cap - 1);
    while (m->keys[j]) {
        if (m->keys[j] == k) {
            *rank = m->rank[j];
            *id = m->id[j];
            return 1;
        }
        j = (j + 1) & (m->cap - 1);
    }
    return 0;
}

void tok_pairmap_free(tok_pairmap *m) {
    free(m->keys);
    free(m->rank);
    free(m->id);
    memset(m, 0, sizeof *m);
}

size_t ats_utf8_check(const char *str, size_t len) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 2;
            cp = c & 0x1F;
            min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 3;
            cp = c & 0x0F;
            min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 4;
            cp = c & 0x07;
            min = 0x10000;
        } else {
            return i;
        }
        if (len - i < n) return i;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += n;
    }
    return len;
}

int tok_utf8_decode(const char *str, uint32_t *cp) {
    const unsigned char *s = (const unsigned char *)str;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] < 0xE0) {
        *cp = ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
        return 2;
    }
    if (s[0] < 0xF0) {
        *cp = ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
        return 3;
    }
    *cp = ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) |
          ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
}

int tok_utf8_encode(uint32_t cp, char *buf) {
    unsigned char *b = (unsigned char *)buf;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        b[0] = (unsigned char)(0xC0 | (cp >> 6));
        b[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (unsigned char)(0xE0 | (cp >> 12));
        b[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (unsigned char)(0xF0 | (cp >> 18));
    b[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

static int in_list(const uint32_t *xs, size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (xs[mid] == c) return 1;
        if (xs[mid] < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return 0;
}

static const tok_cp_map *in_map(const tok_cp_map *xs, size_t n, uint32_t c) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (xs[mid].cp == c) return &xs[mid];
        if (xs[mid].cp < c)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static int from_map(const tok_cp_map *m, uint32_t *out) {
    for (int i = 0; i < m->n; i++) out[i] = m->to[i];
    return m->n;
}

int tok_is_whitespace(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Unassigned code points (Cn) are kept, as HuggingFace's tokenizers do. */
int tok_is_control(uint32_t c) {
    int base = 0;
    if (c != '\t' && c != '\n' && c != '\r') {
        switch (utf8proc_category((utf8proc_int32_t)c)) {
        case UTF8PROC_CATEGORY_CC:
        case UTF8PROC_CATEGORY_CF:
        case UTF8PROC_CATEGORY_CS:
        case UTF8PROC_CATEGORY_CO:
            base = 1;
            break;
        default:
            break;
        }
    }
    return base ^ in_list(tok_control_flip, TOK_CONTROL_FLIP_N, c);
}

static int punct_base(uint32_t c) {
    if ((c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
        (c >= 123 && c <= 126))
        return 1;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_PC:
    case UTF8PROC_CATEGORY_PD:
    case UTF8PROC_CATEGORY_PS:
    case UTF8PROC_CATEGORY_PE:
    case UTF8PROC_CATEGORY_PI:
    case UTF8PROC_CATEGORY_PF:
    case UTF8PROC_CATEGORY_PO:
        return 1;
    default:
        return 0;
    }
}

int tok_is_punctuation(uint32_t c) {
    return punct_base(c) ^ in_list(tok_punct_flip, TOK_PUNCT_FLIP_N, c);
}

int tok_is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

int tok_is_mark(uint32_t c) {
    int k = utf8proc_category((utf8proc_int32_t)c);
    int base = k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC || k == UTF8PROC_CATEGORY_ME;
    return base ^ in_list(tok_marks_flip, TOK_MARKS_FLIP_N, c);
}

static int utf8proc_nfd(uint32_t c, uint32_t *out) {
    utf8proc_int32_t d[TOK_MAX_EXPAND];
    int bound = 0;
    utf8proc_ssize_t n =
        utf8proc_decompose_char((utf8proc_int32_t)c, d, TOK_MAX_EXPAND, UTF8PROC_DECOMPOSE, &bound);
    if (n <= 0 || n > TOK_MAX_EXPAND) {
        out[0] = c;
        return 1;
    }
    for (utf8proc_ssize_t i = 0; i < n; i++) out[i] = (uint32_t)d[i];
    return (int)n;
}

int tok_nfd(uint32_t c, uint32_t *out) {
    const tok_cp_map *m = in_map(tok_nfd_map, TOK_NFD_MAP_N, c);
    return m ? from_map(m, out) : utf8proc_nfd(c, out);
}

int tok_bert_strip(uint32_t c, uint32_t *out) {
    const tok_cp_map *m = in_map(tok_strip_map, TOK_STRIP_MAP_N, c);
    if (m) return from_map(m, out);
    int n = utf8proc_nfd(c, out), k = 0;
    for (int i = 0; i < n; i++)
        if (utf8proc_category((utf8proc_int32_t)out[i]) != UTF8PROC_CATEGORY_MN) out[k++] = out[i];
    return k;
}

int tok_lower(uint32_t c, uint32_t *out) {
    const tok_cp_map *m = in_map(tok_lower_map, TOK_LOWER_MAP_N, c);
    if (m) return from_map(m, out);
    if (c == 0x130) { /* the one code point whose lower case is two */
        out[0] = 'i';
        out[1] = 0x307;
        return 2;
    }
    out[0] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)c);
    return 1;
}

/* Unicode \w as the regex crate has it (what tokenizers uses for single_word added tokens):
 * Alphabetic (letters, Nl, circled letters), marks, decimal digits, connector punctuation and
 * the join controls. */
int tok_is_word_char(uint32_t c) {
    if (c == 0x200C || c == 0x200D || (c >= 0x24B6 && c <= 0x24E9)) return 1;
    switch (utf8proc_category((utf8proc_int32_t)c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}
