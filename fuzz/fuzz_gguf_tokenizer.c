/* libFuzzer target: the tokenizer inside a GGUF file (tokenizer.ggml.*: byte-level BPE or
 * SentencePiece-style vocabularies, scores, token types, merges built from scores) loaded from
 * arbitrary bytes written as a .gguf file, then encodings of a fixed multilingual text (spaces,
 * special tokens, characters that need byte fallback). Any error is fine; a crash, a leak, a
 * sanitizer report or a hang is a bug. Built with -DATS_FUZZ=ON (tools/fuzz.sh). */
#define _DEFAULT_SOURCE /* mkdtemp */
#include "attnscope/tokenizer.h"

#include "fuzz_files.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = fuzz_dir();
    if (!dir) return 0;
    fuzz_put(dir, "model.gguf", data, size);
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/model.gguf", dir);
    static const char text[] = " Hello  wörld <s>東京</s> <unk>\t🍕\n it's 123 ▁x";
    ats_tokenizer *tok = NULL;
    ats_error err;
    if (ats_tokenizer_load(path, &tok, &err) != ATS_OK) return 0;
    size_t tlen = sizeof text - 1;
    fuzz_encode_check(tok, text, tlen);
    ats_tokenizer_free(tok);
    return 0;
}
