/* libFuzzer target: pytorch_model.bin parsing (zip directory, pickle state dict, storages) on
 * arbitrary bytes. Any error is fine; a crash, leak, sanitizer report or hang is a bug. */
#include "model_internal.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ats_safetensors st;
    ats_error err;
    if (ats_torchbin_parse(data, size, "fuzz", &st, &err) == ATS_OK) {
        for (size_t i = 0; i < st.count; i++) {
            const st_tensor *t = &st.tensors[i];
            if (t->data < data || t->end > size || t->data + (t->end - t->begin) > data + size)
                abort();
        }
        ats_safetensors_close(&st);
    } else if (err.message[0] == '\0') {
        abort();
    }
    return 0;
}
