/* libFuzzer target: the older tokenizer files of a model folder — vocab.txt (WordPiece),
 * vocab.json + merges.txt (byte-level BPE), tokenizer_config.json and special_tokens_map.json —
 * loaded as a folder without tokenizer.json, then an encoding.
 *
 * Input: vocab.txt, NUL, vocab.json, NUL, merges.txt, NUL, tokenizer_config.json, NUL,
 * special_tokens_map.json, NUL, a text to encode (an empty or missing field: no such file; default
 * text). Any error is fine; a crash, a leak, a sanitizer report or a hang is a bug. Built with
 * -DATS_FUZZ=ON (tools/fuzz.sh). */
#define _DEFAULT_SOURCE /* realpath, mkdtemp, symlink */
#include "attnscope/tokenizer.h"

#include "fuzz_files.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = fuzz_dir();
    if (!dir) return 0;
    static const char *const FILES[] = {"vocab.txt", "vocab.json", "merges.txt",
                                        "tokenizer_config.json", "special_tokens_map.json"};
    const char *in = (const char *)data;
    for (int k = 0; k < 5; k++) {
        size_t len;
        const char *f = fuzz_field(in, size, k, &len);
        fuzz_put(dir, FILES[k], f, len ? len : (size_t)-1); /* empty: no file */
    }
    size_t tlen;
    const char *text = fuzz_field(in, size, 5, &tlen);
    if (!text) {
        text = "Hello, wörld! 東京 it's 123 [MASK] <mask>";
        tlen = strlen(text);
    }
    ats_tokenizer *tok = NULL;
    ats_error err;
    if (ats_tokenizer_load(dir, &tok, &err) != ATS_OK) return 0;
    fuzz_encode_check(tok, text, tlen);
    ats_tokenizer_free(tok);
    return 0;
}
