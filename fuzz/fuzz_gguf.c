/* libFuzzer target: the GGUF reader on arbitrary bytes (the whole file image): header, metadata,
 * tensor infos, then every getter on every key and the conversion of every tensor the reader
 * accepted. Any error is fine if it has a message; a crash, leak, sanitizer report, hang, or a
 * tensor outside the buffer is a bug. */
#include "attnscope/gguf.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ats_gguf *g = NULL;
    ats_error err;
    if (ats_gguf_parse(data, size, "fuzz", &g, &err) != ATS_OK) {
        if (g != NULL || err.message[0] == '\0') abort();
        return 0;
    }
    for (size_t i = 0; i < g->n_kv; i++) {
        const gguf_kv *kv = &g->kv[i];
        char key[128];
        if (kv->key.len >= sizeof key || memchr(kv->key.p, '\0', kv->key.len)) continue;
        memcpy(key, kv->key.p, kv->key.len);
        key[kv->key.len] = '\0';
        if (ats_gguf_find_kv(g, key) != kv) abort();
        const char *s;
        size_t len, n = 0;
        int64_t v;
        uint32_t u;
        float f;
        int b;
        (void)ats_gguf_get_str(g, key, &s, &len, &err);
        (void)ats_gguf_get_int(g, key, &v, &err);
        (void)ats_gguf_get_u32(g, key, &u, &err);
        (void)ats_gguf_get_f32(g, key, &f, &err);
        (void)ats_gguf_get_bool(g, key, &b, &err);
        if (ats_gguf_get_arr_len(g, key, GGUF_V_ARR, &n, &err) == ATS_OK)
            for (size_t j = 0; j < n && j < 64; j++) {
                if (ats_gguf_get_arr_str(g, key, j, &s, &len, &err) == ATS_OK &&
                    ((const uint8_t *)s < data || (const uint8_t *)s + len > data + size))
                    abort();
                (void)ats_gguf_get_arr_int(g, key, j, &v, &err);
                (void)ats_gguf_get_arr_f32(g, key, j, &f, &err);
            }
    }
    for (size_t i = 0; i < g->n_tensors; i++) {
        const ats_gguf_tensor *t = &g->tensors[i];
        if (t->data < data || t->nbytes > size || t->data + t->nbytes > data + size) abort();
        if (ats_gguf_find_tensor(g, t->name) != t) abort();
        /* the byte size bounds the element count: converting is bounded by the input */
        if (t->count > (1u << 22)) continue;
        float *out = malloc((t->count ? t->count : 1) * sizeof *out);
        if (!out) continue;
        (void)ats_gguf_tensor_to_f32(g, t, out, t->count, &err);
        free(out);
    }
    ats_gguf_close(g);
    return 0;
}
