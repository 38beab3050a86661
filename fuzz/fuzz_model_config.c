/* libFuzzer target: a model folder's JSON files, config.json, preprocessor_config.json and
 * model.safetensors.index.json, then the model load that reads them against real tensors.
 *
 * Input: byte 0 picks the fixture whose tensors are used (even: tests/fixtures/models/bert,
 * odd: tests/fixtures/models/vit); the rest is config.json, NUL, preprocessor_config.json, NUL,
 * model.safetensors.index.json (an empty or missing field: no such file; the index may name
 * "model.safetensors", the fixture's). Any load error is fine; a crash, a leak, a sanitizer
 * report or a hang is a bug. Built with -DATS_FUZZ=ON (tools/fuzz.sh, from the repository). */
#define _DEFAULT_SOURCE /* realpath, mkdtemp, symlink */
#include "attnscope/model.h"

#include "fuzz_files.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *dir = fuzz_dir();
    if (!dir || size < 1) return 0;
    const char *fixture = data[0] % 2 ? "tests/fixtures/models/vit/model.safetensors"
                                      : "tests/fixtures/models/bert/model.safetensors";
    fuzz_link(dir, "model.safetensors", fixture);
    const char *in = (const char *)data + 1;
    static const char *const FILES[] = {"config.json", "preprocessor_config.json",
                                        "model.safetensors.index.json"};
    for (int k = 0; k < 3; k++) {
        size_t len;
        const char *f = fuzz_field(in, size - 1, k, &len);
        fuzz_put(dir, FILES[k], f, len ? len : (size_t)-1); /* empty: no file */
    }
    ats_model *m = NULL;
    ats_error err;
    if (ats_model_load(dir, &m, &err) == ATS_OK) {
        const ats_model_info *info = ats_model_info_get(m);
        (void)info;
        ats_model_free(m);
    }
    return 0;
}
