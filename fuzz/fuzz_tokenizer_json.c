/* libFuzzer target: tokenizer.json parsing, then encoding.
 *
 * Input: the text of a tokenizer.json, optionally followed by a NUL byte and a text to encode
 * (any bytes: invalid UTF-8 must be refused cleanly). Any load or encode error is fine; a crash,
 * a leak, a sanitizer report or a hang is a bug. Built with -DATS_FUZZ=ON (tools/fuzz.sh). */
#include "attnscope/tokenizer.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *json = (const char *)data;
    const char *nul = memchr(json, 0, size);
    size_t jlen = nul ? (size_t)(nul - json) : size;
    const char *text = nul ? nul + 1 : "Hello, wörld! 東京 it's 123 😀 [MASK] <mask>";
    size_t tlen = nul ? size - jlen - 1 : strlen(text);

    ats_tokenizer *tok = NULL;
    ats_error err;
    if (ats_tokenizer_load_json(json, jlen, &tok, &err) != ATS_OK) return 0;
    for (int special = 0; special < 2; special++) {
        ats_encoding enc;
        if (ats_tokenizer_encode(tok, text, tlen, special, &enc, &err) == ATS_OK) {
            size_t *chars = malloc((2 * enc.count + 1) * sizeof *chars);
            if (chars) {
                if (ats_encoding_char_offsets(&enc, text, tlen, chars, &err) != ATS_OK) abort();
                for (size_t i = 0; i < enc.count; i++)
                    if (enc.offsets[2 * i] > enc.offsets[2 * i + 1] ||
                        enc.offsets[2 * i + 1] > tlen ||
                        ats_tokenizer_id_to_token(tok, enc.ids[i]) == NULL)
                        abort();
            }
            free(chars);
            ats_encoding_free(&enc);
        }
    }
    (void)ats_tokenizer_vocab_size(tok);
    (void)ats_tokenizer_token_to_id(tok, "[UNK]");
    ats_tokenizer_free(tok);
    return 0;
}
