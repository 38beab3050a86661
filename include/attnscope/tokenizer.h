/* attnscope tokenizer: the tokenizers of HuggingFace models, reimplemented exactly.
 *
 * Byte-level BPE (GPT-2, RoBERTa) from tokenizer.json or vocab.json + merges.txt, with GPT-2's
 * pre-tokenizer regex; WordPiece (BERT, DistilBERT, MiniLM, multilingual BERT) from
 * tokenizer.json or vocab.txt with BERT's basic tokenizer (lower-casing, accent stripping by NFD,
 * CJK splitting, punctuation, control characters) as tokenizer_config.json says. Special tokens
 * are added as the model expects (transformers' add_special_tokens=True).
 *
 * A tokenizer handle is immutable after loading: one handle may encode from several threads. */
#ifndef ATTNSCOPE_TOKENIZER_H
#define ATTNSCOPE_TOKENIZER_H

#include "attnscope/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ats_tokenizer ats_tokenizer;

typedef enum ats_tokenizer_kind { ATS_TOKENIZER_BPE = 1, ATS_TOKENIZER_WORDPIECE = 2 } ats_tokenizer_kind;

/* One encoded text. */
typedef struct ats_encoding {
    size_t count;
    int32_t *ids;     /* [count] vocabulary ids */
    char **tokens;    /* [count] tokens as the vocabulary spells them ("Ġthe", "##ing", "[CLS]") */
    size_t *offsets;  /* [count][2] byte range [start, end) of each token in the input text;
                         special tokens added by the tokenizer get [0, 0] */
    uint8_t *special; /* [count] 1 for a special token added by the tokenizer */
} ats_encoding;

/* Loads the tokenizer of a model directory (tokenizer.json, else vocab files, plus
 * tokenizer_config.json / special_tokens_map.json / config.json where present). */
ats_status ats_tokenizer_load(const char *model_dir, ats_tokenizer **out, ats_error *err);
void ats_tokenizer_free(ats_tokenizer *tok);

ats_tokenizer_kind ats_tokenizer_kind_of(const ats_tokenizer *tok);
size_t ats_tokenizer_vocab_size(const ats_tokenizer *tok);
/* Vocabulary lookups: -1 / NULL when absent. The string lives as long as the tokenizer. */
int32_t ats_tokenizer_token_to_id(const ats_tokenizer *tok, const char *token);
const char *ats_tokenizer_id_to_token(const ats_tokenizer *tok, int32_t id);

/* Encodes len bytes of UTF-8 text (invalid UTF-8 is an error naming the byte offset). With
 * add_special, adds the model's special tokens ([CLS] … [SEP], or none for GPT-2). */
ats_status ats_tokenizer_encode(const ats_tokenizer *tok, const char *text, size_t len,
                                int add_special, ats_encoding *out, ats_error *err);
void ats_encoding_free(ats_encoding *enc);

#ifdef __cplusplus
}
#endif
#endif
