/* libFuzzer target: the safetensors header parser on arbitrary bytes (the whole file image).
 * Build: cmake -DATS_FUZZ=ON with clang (tools/fuzz.sh). Every input must either parse or fail
 * with a message; a parsed header must describe tensors inside the buffer. */
#include "model_internal.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ats_safetensors st;
    ats_error err;
    if (ats_safetensors_parse(data, size, "fuzz", &st, &err) == ATS_OK) {
        for (size_t i = 0; i < st.count; i++) {
            const st_tensor *t = &st.tensors[i];
            if (t->data < data || t->data + (t->end - t->begin) > data + size) abort();
            if (ats_safetensors_find(&st, t->name) == NULL) abort();
            /* touch the first and last byte of every tensor */
            if (t->end > t->begin) {
                volatile uint8_t x = t->data[0];
                x = t->data[t->end - t->begin - 1];
                (void)x;
            }
        }
        ats_safetensors_close(&st);
    } else if (err.message[0] == '\0') {
        abort();
    }
    return 0;
}
