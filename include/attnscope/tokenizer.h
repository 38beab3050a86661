/* attnscope tokenizer: the tokenizers of HuggingFace models, reimplemented exactly.
 *
 * Byte-level BPE (GPT-2, RoBERTa) from tokenizer.json or vocab.json + merges.txt, with GPT-2's
 * pre-tokenizer regex; WordPiece (BERT, DistilBERT, MiniLM, multilingual BERT) from
 * tokenizer.json or vocab.txt with BERT's basic tokenizer (lower-casing, accent stripping by NFD,
 * CJK splitting, punctuation, control characters) as tokenizer_config.json says. Special tokens
 * are added as the model expects (transformers' add_special_tokens=True).
 *
 * Exactness: ids, tokens and offsets equal transformers' (fast tokenizers, transformers 5) on the
 * tests' corpora. Character classes follow HuggingFace's tokenizers, not the Unicode version of
 * the system's libraries: where utf8proc or PCRE2 disagree with tokenizers' tables (characters
 * added to Unicode since), exception lists measured from tokenizers on every code point decide
 * (src/text/tok_unicode_tables.h, tools/make_unicode_tables.py). Added tokens (tokenizer.json's
 * added_tokens, with lstrip / rstrip / single_word) are matched in the raw text, also those
 * marked "normalized" (transformers matches those in the normalised text; they differ only when
 * the normaliser changes the token, e.g. a lower-casing BERT and an upper-case added token).
 *
 * A tokenizer handle is immutable after loading: one handle may encode from several threads. */
#ifndef ATTNSCOPE_TOKENIZER_H
#define ATTNSCOPE_TOKENIZER_H

#include "attnscope/core.h"

/* exported from the shared library (see core.h) */
#pragma GCC visibility push(default)
#ifdef __cplusplus
extern "C" {
#endif

typedef struct ats_tokenizer ats_tokenizer;

typedef enum ats_tokenizer_kind {
    ATS_TOKENIZER_BPE = 1,
    ATS_TOKENIZER_WORDPIECE = 2
} ats_tokenizer_kind;

/* One encoded text. */
typedef struct ats_encoding {
    size_t count;
    int32_t *ids;     /* [count] vocabulary ids */
    char **tokens;    /* [count] tokens as the vocabulary spells them ("Ġthe", "##ing", "[CLS]") */
    size_t *offsets;  /* [count][2] byte range [start, end) of each token in the input text,
                         always on character boundaries (the original characters the token's
                         normalised characters came from, as transformers computes them, but in
                         bytes where transformers counts characters); special tokens added by
                         the tokenizer get [0, 0] */
    uint8_t *special; /* [count] 1 for a special token added by the tokenizer */
    int32_t *word_ids; /* [count] index of the pre-tokenized word each token belongs to (0, 1,
                          ...; an added token such as "<|endoftext|>" in the text is a word of
                          its own), -1 for special tokens added by the tokenizer. Sub-words of
                          one word share the index, so per-token values can be pooled to words.
                          For BERT a word is a run of non-space, non-punctuation characters or
                          one punctuation character; for GPT-2 a piece of its regex (" world"). */
} ats_encoding;

/* Loads the tokenizer of a model directory (tokenizer.json, else vocab files, plus
 * tokenizer_config.json / special_tokens_map.json / config.json where present).
 *
 * tokenizer.json: model BPE or WordPiece; normalizer BertNormalizer, Lowercase, NFD,
 * StripAccents or a Sequence of them; pre_tokenizer BertPreTokenizer, ByteLevel (GPT-2's regex),
 * WhitespaceSplit; post_processor TemplateProcessing, BertProcessing, RobertaProcessing,
 * ByteLevel (trim_offsets) or a Sequence; added_tokens (lstrip, rstrip, single_word) are
 * matched in the raw text first. Anything else is an ATS_ERR_FORMAT naming the file and field.
 * Without tokenizer.json: vocab.json + merges.txt, or GPT-2's original encoder.json + vocab.bpe
 * (byte-level BPE; RoBERTa's <s> ... </s> when config.json's model_type or
 * tokenizer_config.json's tokenizer_class says RoBERTa), else vocab.txt (WordPiece with BERT's
 * basic tokenizer as tokenizer_config.json's do_lower_case, strip_accents,
 * tokenize_chinese_chars say; [CLS] ... [SEP]). Errors name the file and what is wrong in it
 * (line and column for JSON syntax, line for merges.txt). */
ats_status ats_tokenizer_load(const char *model_dir, ats_tokenizer **out, ats_error *err);
/* Loads a tokenizer from the text of a tokenizer.json held in memory (len bytes, need not be
 * NUL-terminated); no other file is read, so model_max_length is unknown. Errors name
 * "tokenizer.json". */
ats_status ats_tokenizer_load_json(const char *json, size_t len, ats_tokenizer **out,
                                   ats_error *err);
void ats_tokenizer_free(ats_tokenizer *tok);

ats_tokenizer_kind ats_tokenizer_kind_of(const ats_tokenizer *tok);
size_t ats_tokenizer_vocab_size(const ats_tokenizer *tok);
/* Vocabulary lookups: -1 / NULL when absent. The string lives as long as the tokenizer. */
int32_t ats_tokenizer_token_to_id(const ats_tokenizer *tok, const char *token);
const char *ats_tokenizer_id_to_token(const ats_tokenizer *tok, int32_t id);

/* The model's maximum sequence length in tokens (tokenizer_config.json's model_max_length, else
 * config.json's max_position_embeddings / n_positions, less RoBERTa's position offset of 2);
 * 0 when unknown. The tokenizer does not truncate: callers check count against it. */
size_t ats_tokenizer_max_length(const ats_tokenizer *tok);

/* Offset of the first invalid byte of s[0..len), or len when s is valid UTF-8 (no overlongs,
 * surrogates or code points beyond U+10FFFF). */
size_t ats_utf8_check(const char *s, size_t len);

/* Encodes len bytes of UTF-8 text (invalid UTF-8 is an error naming the byte offset). With
 * add_special, adds the model's special tokens ([CLS] … [SEP], or none for GPT-2). */
ats_status ats_tokenizer_encode(const ats_tokenizer *tok, const char *text, size_t len,
                                int add_special, ats_encoding *out, ats_error *err);
void ats_encoding_free(ats_encoding *enc);

/* The display label of every token of an encoding of text: the text the token covers without
 * surrounding blanks (GPT-2's "Ġthe" reads "the", WordPiece's "##ing" reads "ing"), a special
 * token by its name, a token that covers only blanks as those blanks made visible ("␣" a
 * space, "↵" a line break, "⇥" a tab), a token that covers nothing as ats_token_label of its
 * name. labels[enc->count] receive malloc'd strings. */
ats_status ats_token_labels(const ats_encoding *enc, const char *text, char **labels,
                            ats_error *err);

/* The display label of a token known only by its spelling (a line of a label file, a token
 * without text of its own), by the rule of ats_token_labels: the blanks that byte-level BPE
 * ("Ġ" space, "Ċ" line break, "ĉ" tab) and SentencePiece ("▁" space) write as letters read as
 * blanks, surrounding blanks are dropped, and a token of blanks only shows them visible
 * ("Ġ" reads "␣", "▁the" reads "the"). Returns a malloc'd string, NULL when out of memory. */
char *ats_token_label(const char *token);

/* Offsets in characters (Unicode code points) instead of bytes, as transformers' fast tokenizers
 * report them in offset_mapping: out is [count][2]; text and len are the encoded text. A token
 * that holds only some bytes of a character (byte-level BPE splits an emoji into several tokens)
 * covers that whole character, in bytes and in characters, exactly as transformers does. */
ats_status ats_encoding_char_offsets(const ats_encoding *enc, const char *text, size_t len,
                                     size_t *out, ats_error *err);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop
#endif
