/* libFuzzer target: the corpus reader (`heads`, `context`): plain lines and JSONL, from memory
 * and from a file, every line classified.
 *
 * Input: the corpus; byte 0 (when present) also picks the format: 0 plain, 1 JSONL, else
 * detected. Any error is fine; a crash, a leak, a sanitizer report, a hang, or a text line that
 * is not valid UTF-8 or overruns its buffer is a bug. Built with -DATS_FUZZ=ON (tools/fuzz.sh). */
#define _DEFAULT_SOURCE /* realpath, mkdtemp, symlink */
#include "attnscope/analysis.h"
#include "attnscope/tokenizer.h"

#include "fuzz_files.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_all(const ats_corpus_source *src) {
    ats_corpus c;
    ats_error err;
    if (ats_corpus_open(&c, src, 4096, &err) != ATS_OK) return;
    ats_line_kind kind;
    int r;
    while ((r = ats_corpus_next(&c, &kind, &err)) == 1) {
        if (kind == ATS_LINE_TEXT) {
            if (c.len > 4096 || memchr(c.text, 0, c.len)) abort();
            volatile char sum = 0;
            for (size_t i = 0; i < c.len; i++) sum ^= c.text[i];
            (void)sum;
        }
    }
    ats_corpus_close(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ats_corpus_source src;
    ats_corpus_source_init(&src);
    if (size && data[0] < 2) src.jsonl = data[0];
    src.path = "fuzz corpus";
    src.data = (const char *)data;
    src.size = size;
    read_all(&src);
    const char *dir = fuzz_dir();
    if (!dir) return 0;
    fuzz_put(dir, "corpus.jsonl", data, size);
    char path[128];
    snprintf(path, sizeof path, "%s/corpus.jsonl", dir);
    ats_corpus_source_init(&src);
    src.path = path;
    read_all(&src);
    return 0;
}
