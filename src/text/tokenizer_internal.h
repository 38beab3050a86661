/* Internals of the tokenizers (src/text): hash maps, UTF-8 and Unicode helpers, the tokenizer
 * handle. Not part of the public API. */
#ifndef ATS_TOKENIZER_INTERNAL_H
#define ATS_TOKENIZER_INTERNAL_H

#include "attnscope/tokenizer.h"

#include <stddef.h>
#include <stdint.h>

/* ---- string -> id map (open addressing; keys are borrowed, they must outlive the map) */
typedef struct tok_strmap {
    size_t cap; /* power of two, 0 when empty */
    size_t count;
    const char **keys; /* [cap] NULL = empty slot */
    uint32_t *lens;    /* [cap] */
    int32_t *vals;     /* [cap] */
} tok_strmap;

uint64_t tok_hash(const char *s, size_t len);
/* Inserts or overwrites. Returns 0 on out of memory. */
int tok_strmap_put(tok_strmap *m, const char *key, size_t len, int32_t val);
/* -1 when absent. */
int32_t tok_strmap_get(const tok_strmap *m, const char *key, size_t len);
void tok_strmap_free(tok_strmap *m);

/* ---- (left id, right id) -> (rank, merged id) map for BPE merges */
typedef struct tok_pairmap {
    size_t cap, count;
    uint64_t *keys; /* [cap] (left << 32 | right) + 1; 0 = empty */
    int32_t *rank;  /* [cap] */
    int32_t *id;    /* [cap] */
} tok_pairmap;

/* Keeps the first insertion of a pair (the lower rank). Returns 0 on out of memory. */
int tok_pairmap_put(tok_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t id);
/* Returns 1 and fills rank/id when present. */
int tok_pairmap_get(const tok_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *id);
void tok_pairmap_free(tok_pairmap *m);

/* ---- UTF-8 and Unicode */

/* ats_utf8_check (tokenizer.h) validates. */
/* Decodes one code point of valid UTF-8 at s; returns its length in bytes. */
int tok_utf8_decode(const char *s, uint32_t *cp);
/* Encodes cp into buf (at least 4 bytes); returns the length. */
int tok_utf8_encode(uint32_t cp, char *buf);

int tok_is_whitespace(uint32_t cp);  /* Rust's char::is_whitespace (Unicode White_Space) */
int tok_is_control(uint32_t cp);     /* BERT: Cc Cf Co Cs except \t \n \r */
int tok_is_punctuation(uint32_t cp); /* BERT: ASCII 33-47, 58-64, 91-96, 123-126 or P* */
int tok_is_cjk(uint32_t cp);         /* BERT's CJK ideograph blocks */
/* The character classes and mappings below follow HuggingFace's tokenizers exactly: utf8proc's
 * answer, corrected by the exception lists of tok_unicode_tables.h where their Unicode
 * versions differ. */
int tok_is_mark(uint32_t cp); /* the StripAccents normalizer: a combining mark (M*) */
#define TOK_MAX_EXPAND 32
/* One character's NFD / BERT accent stripping (NFD, Mn dropped) / lower case into out
 * [TOK_MAX_EXPAND]; returns the count (0 when stripping drops it). */
int tok_nfd(uint32_t cp, uint32_t *out);
int tok_bert_strip(uint32_t cp, uint32_t *out);
int tok_lower(uint32_t cp, uint32_t *out);
int tok_is_word_char(uint32_t cp); /* Unicode \w: single_word added tokens */

/* ---- the handle */

/* normalizer steps */
enum { NORM_CLEAN = 1, NORM_CJK, NORM_NFD, NORM_BERT_STRIP, NORM_DROP_MARKS, NORM_LOWER };

typedef struct tok_added {
    char *content;
    size_t len;
    int32_t id;
    uint8_t lstrip, rstrip, single_word, special;
} tok_added;

typedef struct tok_template_piece {
    int is_sequence; /* 1: the text's tokens; 0: special tokens */
    int32_t *ids;    /* [n] for a special piece */
    size_t n;
} tok_template_piece;

struct ats_tokenizer {
    ats_tokenizer_kind kind;
    char **vocab; /* [n_ids] token strings; NULL for unused ids */
    size_t n_ids; /* 1 + the largest id */
    size_t n_alloc;
    char **spare; /* strings that share an id with a later token (still keys of map) */
    size_t n_spare, cap_spare;
    tok_strmap map;

    /* normalizer: a list of steps applied in order */
    int norm_steps[16];
    int n_norm_steps;

    /* pre-tokenizer */
    int pre_bert;       /* BertPreTokenizer: split on whitespace, isolate punctuation */
    int pre_whitespace; /* WhitespaceSplit */
    int pre_bytelevel;  /* ByteLevel: GPT-2 regex (if byte_regex) + bytes-to-unicode */
    int byte_regex;
    int add_prefix_space;
    void *regex;             /* pcre2_code * */
    int32_t byte_ids[256];   /* BPE: id of the byte-level character of each byte, -1 if none */
    char byte_chars[256][3]; /* UTF-8 of the byte-level character of each byte */

    /* WordPiece */
    int32_t unk_id;
    char *subword_prefix; /* "##" */
    size_t max_chars_per_word;
    size_t max_token_bytes;

    /* BPE */
    tok_pairmap merges;
    char *end_of_word_suffix;
    int ignore_merges;
    int fuse_unk; /* consecutive bytes without a token become one unknown token */
    /* byte_fallback: a character without a token becomes the <0xXX> tokens of its UTF-8 bytes
     * when the vocabulary has all of them (fallback_ids[byte], -1 when absent) */
    int byte_fallback;
    int32_t fallback_ids[256];
    /* SentencePiece-style BPE (GGUF tokenizer.ggml.model "llama", as transformers converts
     * it): no pre-tokenizer, ' ' becomes U+2581 and, when spm_prefix, a U+2581 starts each
     * piece of text between added tokens; BPE over characters, not bytes */
    int spm, spm_prefix;

    /* added tokens, matched on the raw text before anything else */
    tok_added *added;
    size_t n_added;
    uint8_t added_first[256]; /* 1 for a byte that starts some added token */

    /* post-processing */
    int trim_offsets, trim_add_prefix_space;
    tok_template_piece *tmpl;
    size_t n_tmpl;

    size_t max_length;
};

#endif
