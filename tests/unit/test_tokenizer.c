/* Tokenizer C API: WordPiece and byte-level BPE on hand-made vocabularies, offsets in bytes and
 * characters, word ids, lookups, errors (invalid UTF-8, corrupt files), long words. The exact
 * comparisons with transformers are in tests/python/test_tokenizer.py. */
#include "check.h"
#include "attnscope/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static void write_file(const char *name, const char *content) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *fp = fopen(p, "wb");
    if (!fp) {
        perror(p);
        exit(1);
    }
    fputs(content, fp);
    fclose(fp);
}

static void remove_file(const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    remove(p);
}

static int tokens_are(const ats_encoding *e, const char *const *want, size_t n) {
    if (e->count != n) {
        fprintf(stderr, "  got %zu tokens, want %zu:", e->count, n);
        for (size_t i = 0; i < e->count; i++) fprintf(stderr, " '%s'", e->tokens[i]);
        fputc('\n', stderr);
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(e->tokens[i], want[i])) {
            fprintf(stderr, "  token %zu: got '%s', want '%s'\n", i, e->tokens[i], want[i]);
            return 0;
        }
    return 1;
}

static void test_wordpiece(void) {
    write_file("vocab.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\nhello\n,\nworld\n!\n東\n京\nun\n"
                            "##aff\n##able\ncafe\n");
    write_file("tokenizer_config.json", "{\"do_lower_case\": true, \"model_max_length\": 128}");
    ats_tokenizer *t = NULL;
    ats_error err = {0};
    CHECK(ats_tokenizer_load(dir, &t, &err) == ATS_OK);
    if (!t) {
        fprintf(stderr, "%s\n", err.message);
        return;
    }
    CHECK(ats_tokenizer_kind_of(t) == ATS_TOKENIZER_WORDPIECE);
    CHECK(ats_tokenizer_vocab_size(t) == 15);
    CHECK(ats_tokenizer_max_length(t) == 128);
    CHECK(ats_tokenizer_token_to_id(t, "world") == 7);
    CHECK(ats_tokenizer_token_to_id(t, "nope") == -1);
    CHECK(!strcmp(ats_tokenizer_id_to_token(t, 12), "##aff"));
    CHECK(ats_tokenizer_id_to_token(t, 99) == NULL);

    const char *text = "Héllo,\tWORLD!\x01 東京 unaffable Café xyz [MASK]";
    ats_encoding e;
    CHECK(ats_tokenizer_encode(t, text, strlen(text), 1, &e, &err) == ATS_OK);
    static const char *const want[] = {"[CLS]", "hello", ",",      "world", "!",
                                       "東",    "京",    "un",     "##aff", "##able",
                                       "cafe",  "[UNK]", "[MASK]", "[SEP]"};
    CHECK(tokens_are(&e, want, 14));
    if (e.count == 14) {
        CHECK(e.ids[0] == 2 && e.ids[13] == 3 && e.ids[11] == 1);
        CHECK(e.special[0] == 1 && e.special[13] == 1 && e.special[1] == 0);
        /* "Héllo" is bytes 0..6 (é is two bytes) */
        CHECK(e.offsets[2] == 0 && e.offsets[3] == 6);
        CHECK(e.offsets[0] == 0 && e.offsets[1] == 0);
        /* 東 starts after "Héllo,\tWORLD!\x01 " = 16 bytes */
        CHECK(e.offsets[10] == 16 && e.offsets[11] == 19);
        /* sub-words share a word id; specials have -1 */
        CHECK(e.word_ids[7] == e.word_ids[8] && e.word_ids[8] == e.word_ids[9]);
        CHECK(e.word_ids[0] == -1 && e.word_ids[13] == -1);
        CHECK(e.word_ids[1] == 0 && e.word_ids[2] == 1);
        size_t chars[28];
        CHECK(ats_encoding_char_offsets(&e, text, strlen(text), chars, &err) == ATS_OK);
        CHECK(chars[2] == 0 && chars[3] == 5);
        CHECK(chars[10] == 15 && chars[11] == 16);
    }
    ats_encoding_free(&e);

    /* no specials; empty text */
    CHECK(ats_tokenizer_encode(t, "", 0, 0, &e, &err) == ATS_OK && e.count == 0);
    ats_encoding_free(&e);
    CHECK(ats_tokenizer_encode(t, "", 0, 1, &e, &err) == ATS_OK && e.count == 2);
    ats_encoding_free(&e);

    /* invalid UTF-8 names the byte offset */
    CHECK(ats_tokenizer_encode(t, "ab\xe2\x82", 4, 1, &e, &err) == ATS_ERR_FORMAT);
    CHECK(strstr(err.message, "byte offset 2") != NULL);
    CHECK(e.count == 0 && e.ids == NULL);
    ats_encoding_free(&e);

    /* a word longer than 100 characters is one [UNK] */
    char longw[160];
    memset(longw, 'a', 150);
    longw[150] = 0;
    CHECK(ats_tokenizer_encode(t, longw, 150, 0, &e, &err) == ATS_OK);
    CHECK(e.count == 1 && e.ids[0] == 1 && e.offsets[1] == 150);
    ats_encoding_free(&e);
    ats_tokenizer_free(t);

    /* cased: no lower-casing, no accent stripping */
    write_file("tokenizer_config.json", "{\"do_lower_case\": false}");
    CHECK(ats_tokenizer_load(dir, &t, &err) == ATS_OK);
    if (t) {
        CHECK(ats_tokenizer_encode(t, "Café cafe", 10, 0, &e, &err) == ATS_OK);
        static const char *const w2[] = {"[UNK]", "cafe"};
        CHECK(tokens_are(&e, w2, 2));
        ats_encoding_free(&e);
        ats_tokenizer_free(t);
    }
    remove_file("vocab.txt");
    remove_file("tokenizer_config.json");
}

static void test_bpe(void) {
    /* byte-level: a b Ġ and merges a+b, ab+ab, Ġ+ab */
    write_file("tokenizer.json",
               "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"b\": 1, \"\\u0120\": 2, "
               "\"ab\": 3, \"abab\": 4, \"\\u0120ab\": 5, \"<|endoftext|>\": 6, \"c\": 7}, "
               "\"merges\": [\"a b\", \"ab ab\", [\"\\u0120\", \"ab\"]]},"
               "\"added_tokens\": [{\"id\": 6, \"content\": \"<|endoftext|>\", \"special\": true}],"
               "\"pre_tokenizer\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false},"
               "\"post_processor\": null, \"normalizer\": null}");
    ats_tokenizer *t = NULL;
    ats_error err = {0};
    CHECK(ats_tokenizer_load(dir, &t, &err) == ATS_OK);
    if (!t) {
        fprintf(stderr, "%s\n", err.message);
        return;
    }
    CHECK(ats_tokenizer_kind_of(t) == ATS_TOKENIZER_BPE);
    ats_encoding e;
    const char *text = "ababab ab<|endoftext|>abc";
    CHECK(ats_tokenizer_encode(t, text, strlen(text), 1, &e, &err) == ATS_OK);
    static const char *const want[] = {"abab",
                                       "ab",
                                       "\xc4\xa0"
                                       "ab",
                                       "<|endoftext|>",
                                       "ab",
                                       "c"};
    CHECK(tokens_are(&e, want, 6));
    if (e.count == 6) {
        CHECK(e.offsets[6] == 9 && e.offsets[7] == 22);
        CHECK(e.word_ids[0] == e.word_ids[1] && e.word_ids[2] != e.word_ids[1]);
        CHECK(e.special[3] == 0);
    }
    ats_encoding_free(&e);

    /* a 400 000-byte word: merges by rank with a heap, not quadratic */
    size_t n = 400000;
    char *big = malloc(n + 1);
    for (size_t i = 0; i < n; i += 2) memcpy(big + i, "ab", 2);
    big[n] = 0;
    CHECK(ats_tokenizer_encode(t, big, n, 0, &e, &err) == ATS_OK);
    CHECK(e.count == n / 4);
    ats_encoding_free(&e);
    free(big);
    ats_tokenizer_free(t);

    /* corrupt files: the message names the file and the problem */
    write_file("tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, "
                                 "\"merges\": [\"a z\"]}}");
    CHECK(ats_tokenizer_load(dir, &t, &err) == ATS_ERR_FORMAT && t == NULL);
    CHECK(strstr(err.message, "tokenizer.json") && strstr(err.message, "'z'"));
    write_file("tokenizer.json",
               "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0},\n \"merges\": [");
    CHECK(ats_tokenizer_load(dir, &t, &err) == ATS_ERR_FORMAT);
    CHECK(strstr(err.message, "tokenizer.json:2:") != NULL);
    write_file("tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 99999999}, "
                                 "\"merges\": []}}");
    CHECK(ats_tokenizer_load(dir, &t, &err) == ATS_ERR_FORMAT);
    CHECK(strstr(err.message, "model.vocab") != NULL);
    /* cJSON passes raw bytes through: a token must still be valid UTF-8 (found by fuzzing) */
    write_file("tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\xff\": 0}, "
                                 "\"merges\": []}}");
    CHECK(ats_tokenizer_load(dir, &t, &err) == ATS_ERR_FORMAT);
    CHECK(strstr(err.message, "not valid UTF-8") != NULL);
    remove_file("tokenizer.json");
    CHECK(ats_tokenizer_load(dir, &t, &err) == ATS_ERR_IO);
    CHECK(strstr(err.message, "no tokenizer found") != NULL);
}

/* One label rule for tokens known by spelling only: the blanks BPE and SentencePiece spell as
 * letters read as blanks, outer blanks go, blanks alone show visibly. */
static void test_token_label(void) {
    static const char *const cases[][2] = {{"\xc4\xa0the", "the"},
                                           {"\xe2\x96\x81"
                                            "cat",
                                            "cat"},
                                           {"\xc4\xa0", "\xe2\x90\xa3"},
                                           {"\xc4\xa0\xc4\xa0", "\xe2\x90\xa3\xe2\x90\xa3"},
                                           {"\xc4\x8a", "\xe2\x86\xb5"},
                                           {"##ing", "##ing"},
                                           {"[CLS]", "[CLS]"},
                                           {"new york", "new york"},
                                           {"a\xc4\xa0"
                                            "b",
                                            "a b"},
                                           {"", ""}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *l = ats_token_label(cases[i][0]);
        CHECK(l && !strcmp(l, cases[i][1]));
        free(l);
    }
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/ats_tok_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_wordpiece();
    test_bpe();
    test_token_label();
    rmdir(dir);
    return check_report("test_tokenizer");
}
