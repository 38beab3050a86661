/* attnscope GGUF: llama.cpp's single-file model format (versions 2 and 3), read without
 * copying: the file's metadata with typed getters, its tensor table, and every supported tensor
 * type dequantized to float32 exactly as the reference (gguf-py's gguf.quants, ggml's
 * dequantize_row_*) does. The model loader (model.h) and the tokenizer (tokenizer.h) read GGUF
 * files through it; it is public so that other tools can read a GGUF file's metadata too. */
#ifndef ATTNSCOPE_GGUF_H
#define ATTNSCOPE_GGUF_H

#include "attnscope/core.h"

#include <stddef.h>
#include <stdint.h>

/* exported from the shared library (see core.h) */
#pragma GCC visibility push(default)
#ifdef __cplusplus
extern "C" {
#endif

/* ---- GGUF (src/core/gguf.c): llama.cpp's single-file format, versions 2 and 3
 * (little-endian). The file is memory-mapped once; metadata strings, string arrays and tensor
 * data stay in the map (pointers + lengths, never copied), only the tensor names are copied so
 * that they end in NUL. Every count, length, dimension and offset is checked against the file
 * size before anything is allocated or read. */

/* Metadata value types, as stored in the file. */
typedef enum gguf_vtype {
    GGUF_V_U8 = 0,
    GGUF_V_I8 = 1,
    GGUF_V_U16 = 2,
    GGUF_V_I16 = 3,
    GGUF_V_U32 = 4,
    GGUF_V_I32 = 5,
    GGUF_V_F32 = 6,
    GGUF_V_BOOL = 7,
    GGUF_V_STR = 8,
    GGUF_V_ARR = 9,
    GGUF_V_U64 = 10,
    GGUF_V_I64 = 11,
    GGUF_V_F64 = 12
} gguf_vtype;

/* Tensor types (ggml's type ids); those ats_gguf_tensor_to_f32 reads. Other ids ggml knows
 * (Q2_K, IQ*, ...) parse, so that their sizes are checked, but do not convert. */
typedef enum gguf_ttype {
    GGUF_T_F32 = 0,
    GGUF_T_F16 = 1,
    GGUF_T_Q4_0 = 2,
    GGUF_T_Q4_1 = 3,
    GGUF_T_Q5_0 = 6,
    GGUF_T_Q5_1 = 7,
    GGUF_T_Q8_0 = 8,
    GGUF_T_Q4_K = 12,
    GGUF_T_Q5_K = 13,
    GGUF_T_Q6_K = 14,
    GGUF_T_BF16 = 30
} gguf_ttype;

#define GGUF_MAX_DIMS 4

/* A string inside the map: not NUL-terminated. */
typedef struct gguf_str {
    const char *p;
    size_t len;
} gguf_str;

typedef struct gguf_kv {
    gguf_str key;
    gguf_vtype type;
    gguf_vtype elem_type; /* arrays: the elements' type (never an array) */
    size_t n;             /* arrays: element count */
    const uint8_t *val;   /* the value's bytes in the map (arrays: the first element) */
    gguf_str str;         /* a string value */
    gguf_str *strs;       /* [n] an array of strings (pointers into the map), else NULL */
} gguf_kv;

typedef struct ats_gguf_tensor {
    char *name;            /* NUL-terminated copy */
    uint32_t type;         /* ggml type id (gguf_ttype for the supported ones) */
    const char *type_name; /* "Q4_K", ... */
    int n_dims;
    size_t ne[GGUF_MAX_DIMS];    /* GGUF order: ne[0] varies fastest (1 past n_dims) */
    size_t shape[GGUF_MAX_DIMS]; /* numpy order: shape[i] = ne[n_dims - 1 - i] */
    size_t count;                /* elements */
    size_t offset, nbytes;       /* within the data section */
    const uint8_t *data;         /* points into the map */
} ats_gguf_tensor;

typedef struct ats_gguf {
    char *path; /* for messages */
    void *map;  /* the whole file, mmap'd (NULL when parsed from a caller's buffer) */
    size_t map_len;
    uint32_t version;
    size_t alignment;   /* general.alignment, default 32 */
    size_t data_offset; /* where the data section starts in the file */
    size_t n_kv;
    gguf_kv *kv;       /* [n_kv] in file order */
    size_t *kv_sorted; /* [n_kv] indices into kv, by key */
    size_t n_tensors;
    ats_gguf_tensor *tensors;         /* [n_tensors] in file order */
    ats_gguf_tensor **tensors_sorted; /* [n_tensors] by name */
    char *names;                      /* the tensor names, one allocation */
} ats_gguf;

/* Parses a GGUF image buf[len] (the whole file); everything points into buf, which must outlive
 * *out. name is used in error messages. Checks: magic, version 2 or 3, every count and length
 * against the bytes left, value types and bools, no arrays of arrays, no duplicate keys,
 * general.alignment (a power of two, uint32), at most 4 dimensions whose product fits, known
 * tensor types, rows a whole number of blocks, aligned offsets, every tensor inside the file,
 * no two overlapping, no duplicate names. Free with ats_gguf_close. */
ats_status ats_gguf_parse(const uint8_t *buf, size_t len, const char *name, ats_gguf **out,
                          ats_error *err);
/* Maps and parses a file. */
ats_status ats_gguf_open(const char *path, ats_gguf **out, ats_error *err);
void ats_gguf_close(ats_gguf *g);

/* The entry of a metadata key, or NULL. */
const gguf_kv *ats_gguf_find_kv(const ats_gguf *g, const char *key);
/* Typed getters. A missing key, or a value of another type, is ATS_ERR_FORMAT naming the file,
 * the key and the types; a value out of the requested range is ATS_ERR_RANGE. */
ats_status ats_gguf_get_str(const ats_gguf *g, const char *key, const char **s, size_t *len,
                            ats_error *err);
/* Any integer type whose value fits. */
ats_status ats_gguf_get_int(const ats_gguf *g, const char *key, int64_t *out, ats_error *err);
ats_status ats_gguf_get_u32(const ats_gguf *g, const char *key, uint32_t *out, ats_error *err);
/* float32, or float64 rounded to float. */
ats_status ats_gguf_get_f32(const ats_gguf *g, const char *key, float *out, ats_error *err);
ats_status ats_gguf_get_bool(const ats_gguf *g, const char *key, int *out, ats_error *err);
/* An array: its element count, and that its elements are elem_type (GGUF_V_ARR: any type). */
ats_status ats_gguf_get_arr_len(const ats_gguf *g, const char *key, gguf_vtype elem_type, size_t *n,
                                ats_error *err);
/* Element i of an array of strings / integers / floats (float32 or float64). */
ats_status ats_gguf_get_arr_str(const ats_gguf *g, const char *key, size_t i, const char **s,
                                size_t *len, ats_error *err);
ats_status ats_gguf_get_arr_int(const ats_gguf *g, const char *key, size_t i, int64_t *out,
                                ats_error *err);
ats_status ats_gguf_get_arr_f32(const ats_gguf *g, const char *key, size_t i, float *out,
                                ats_error *err);
/* "uint32", "string", "array of string", ... */
const char *ats_gguf_vtype_name(gguf_vtype type);

/* The tensor of that name, or NULL. */
const ats_gguf_tensor *ats_gguf_find_tensor(const ats_gguf *g, const char *name);
/* The same, a missing tensor being ATS_ERR_FORMAT naming it and the file. */
ats_status ats_gguf_get_tensor(const ats_gguf *g, const char *name, const ats_gguf_tensor **t,
                               ats_error *err);
/* "Q4_K", ...; NULL for an id ggml does not know. */
const char *ats_gguf_type_name(uint32_t type);
/* 1 when ats_gguf_tensor_to_f32 converts the type. */
int ats_gguf_type_supported(uint32_t type);
/* out[count] (row-major, numpy shape t->shape) = t dequantized to float32 as ggml's
 * dequantize_row_* (bit for bit). count must be t->count. An unsupported type is ATS_ERR_FORMAT
 * "unsupported tensor type NAME (id)". */
ats_status ats_gguf_tensor_to_f32(const ats_gguf *g, const ats_gguf_tensor *t, float *out,
                                  size_t count, ats_error *err);
/* dst[n] = the n elements at src (whole blocks: n a multiple of the type's block size) of a
 * supported type; returns 0 (and writes nothing) otherwise. For converting a row at a time. */
int ats_gguf_dequantize(uint32_t type, const uint8_t *src, size_t n, float *dst);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop
#endif
