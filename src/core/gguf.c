/* GGUF, the single-file format of llama.cpp / ggml (docs/gguf.md of the ggml repository),
 * versions 2 and 3, little-endian:
 *
 *   "GGUF", u32 version, u64 tensor count, u64 metadata count,
 *   metadata: string key, u32 value type, value     (string = u64 length + bytes, no NUL;
 *                                                     array = u32 element type, u64 count,
 *                                                     elements),
 *   tensor infos: string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset,
 *   padding to general.alignment (default 32), the data section (offsets relative to it).
 *
 * ne[0] is the fastest-varying dimension (the reverse of numpy's shape); quantized types store
 * ne[0] as whole blocks. Everything read from the file is checked against its size before use,
 * sizes with ats_size_mul / ats_size_add. The dequantization follows ggml's dequantize_row_* in
 * float32 and in the same order of operations, so results are bit for bit ggml's (and the gguf
 * Python package's). */
#include "attnscope/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* ggml computes d * q + m as two rounded operations; a fused multiply-add would differ in the
 * last bit. GCC keeps contraction off in ISO C mode; clang needs to be told. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define GGUF_DEFAULT_ALIGNMENT 32
#define GGUF_MAX_NAME          64 /* the specification's limit on tensor names */

/* ---- tensor types: every id ggml knows, so that sizes of types we cannot convert still check */

typedef struct ttype_info {
    const char *name;
    uint32_t block; /* elements per block */
    uint32_t size;  /* bytes per block */
    int supported;
} ttype_info;

static const ttype_info TTYPES[] = {
    [0] = {"F32", 1, 4, 1},         [1] = {"F16", 1, 2, 1},         [2] = {"Q4_0", 32, 18, 1},
    [3] = {"Q4_1", 32, 20, 1},      [6] = {"Q5_0", 32, 22, 1},      [7] = {"Q5_1", 32, 24, 1},
    [8] = {"Q8_0", 32, 34, 1},      [9] = {"Q8_1", 32, 40, 0},      [10] = {"Q2_K", 256, 84, 0},
    [11] = {"Q3_K", 256, 110, 0},   [12] = {"Q4_K", 256, 144, 1},   [13] = {"Q5_K", 256, 176, 1},
    [14] = {"Q6_K", 256, 210, 1},   [15] = {"Q8_K", 256, 292, 0},   [16] = {"IQ2_XXS", 256, 66, 0},
    [17] = {"IQ2_XS", 256, 74, 0},  [18] = {"IQ3_XXS", 256, 98, 0}, [19] = {"IQ1_S", 256, 50, 0},
    [20] = {"IQ4_NL", 32, 18, 0},   [21] = {"IQ3_S", 256, 110, 0},  [22] = {"IQ2_S", 256, 82, 0},
    [23] = {"IQ4_XS", 256, 136, 0}, [24] = {"I8", 1, 1, 0},         [25] = {"I16", 1, 2, 0},
    [26] = {"I32", 1, 4, 0},        [27] = {"I64", 1, 8, 0},        [28] = {"F64", 1, 8, 0},
    [29] = {"IQ1_M", 256, 56, 0},   [30] = {"BF16", 1, 2, 1},       [34] = {"TQ1_0", 256, 54, 0},
    [35] = {"TQ2_0", 256, 66, 0},   [39] = {"MXFP4", 32, 17, 0},    [40] = {"NVFP4", 64, 36, 0},
    [41] = {"Q1_0", 128, 18, 0},    [42] = {"Q2_0", 64, 18, 0},
};
#define N_TTYPES (sizeof TTYPES / sizeof TTYPES[0])

static const ttype_info *ttype(uint32_t type) {
    return type < N_TTYPES && TTYPES[type].name ? &TTYPES[type] : NULL;
}

const char *ats_gguf_type_name(uint32_t type) {
    const ttype_info *ti = ttype(type);
    return ti ? ti->name : NULL;
}

int ats_gguf_type_supported(uint32_t type) {
    const ttype_info *ti = ttype(type);
    return ti && ti->supported;
}

/* ---- metadata value types */

static const struct {
    const char *name;
    size_t size; /* bytes of a fixed-size value; 0 for string and array */
} VTYPES[] = {
    {"uint8", 1},  {"int8", 1},    {"uint16", 2},  {"int16", 2},  {"uint32", 4},
    {"int32", 4},  {"float32", 4}, {"bool", 1},    {"string", 0}, {"array", 0},
    {"uint64", 8}, {"int64", 8},   {"float64", 8},
};
#define N_VTYPES (sizeof VTYPES / sizeof VTYPES[0])

const char *ats_gguf_vtype_name(gguf_vtype type) {
    return (unsigned)type < N_VTYPES ? VTYPES[type].name : "unknown";
}

/* The least number of bytes a value of the type takes: bounds element counts by the file. */
static size_t vtype_min_size(gguf_vtype type) {
    if (type == GGUF_V_STR) return 8;  /* the length */
    if (type == GGUF_V_ARR) return 12; /* element type + count */
    return VTYPES[type].size;
}

/* ---- little-endian reads */

static uint16_t le16(const uint8_t *p) {
    return (uint16_t)(p[0] | (unsigned)p[1] << 8);
}
static uint32_t le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t le64(const uint8_t *p) {
    return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32;
}

typedef struct cursor {
    const uint8_t *b;
    size_t len, pos;
} cursor;

static int cur_u32(cursor *c, uint32_t *v) {
    if (c->len - c->pos < 4) return 0;
    *v = le32(c->b + c->pos);
    c->pos += 4;
    return 1;
}

static int cur_u64(cursor *c, uint64_t *v) {
    if (c->len - c->pos < 8) return 0;
    *v = le64(c->b + c->pos);
    c->pos += 8;
    return 1;
}

/* A string: 0 when its length is missing, 2 when the length goes past the end (len set). */
static int cur_str(cursor *c, gguf_str *s, uint64_t *len) {
    if (!cur_u64(c, len)) return 0;
    if (*len > c->len - c->pos) return 2;
    s->p = (const char *)c->b + c->pos;
    s->len = (size_t)*len;
    c->pos += (size_t)*len;
    return 1;
}

/* A name from the file, fit for a message: at most 64 bytes, control bytes shown as '?'. */
static const char *show(char *buf, size_t size, const char *s, size_t len) {
    size_t n = 0, max = size - 4;
    for (size_t i = 0; i < len && n < max; i++) {
        unsigned char ch = (unsigned char)s[i];
        buf[n++] = ch < 0x20 || ch == 0x7f ? '?' : (char)ch;
    }
    if (len > n) buf[n++] = '.', buf[n++] = '.', buf[n++] = '.';
    buf[n] = '\0';
    return buf;
}

#define SHOW_MAX 72

/* ---- open / close */

void ats_gguf_close(ats_gguf *g) {
    if (!g) return;
    if (g->kv)
        for (size_t i = 0; i < g->n_kv; i++) free(g->kv[i].strs);
    free(g->kv);
    free(g->kv_sorted);
    free(g->tensors);
    free(g->tensors_sorted);
    free(g->names);
    if (g->map) munmap(g->map, g->map_len);
    free(g->path);
    free(g);
}

static int key_cmp(const gguf_str *a, const char *b, size_t blen) {
    size_t n = a->len < blen ? a->len : blen;
    int c = n ? memcmp(a->p, b, n) : 0;
    if (c) return c;
    return a->len < blen ? -1 : a->len > blen ? 1 : 0;
}

/* qsort has no context argument in C11: sort (key, index) pairs. */
typedef struct key_ix {
    gguf_str key;
    size_t i;
} key_ix;

static int key_ix_cmp(const void *a, const void *b) {
    const key_ix *x = a, *y = b;
    return key_cmp(&x->key, y->key.p, y->key.len);
}

static int tensor_name_cmp(const void *a, const void *b) {
    return strcmp((*(const ats_gguf_tensor *const *)a)->name,
                  (*(const ats_gguf_tensor *const *)b)->name);
}

static int tensor_offset_cmp(const void *a, const void *b) {
    const ats_gguf_tensor *x = *(const ats_gguf_tensor *const *)a,
                          *y = *(const ats_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset ? 1 : 0;
}

/* Reads one metadata entry at c (its key already read into kv->key). */
static ats_status parse_value(cursor *c, const char *name, gguf_kv *kv, ats_error *err) {
    char kb[SHOW_MAX];
    const char *kn = show(kb, sizeof kb, kv->key.p, kv->key.len);
    size_t at = c->pos;
    uint32_t type;
    if (!cur_u32(c, &type))
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: truncated: metadata key '%s' has no value type (file ends at "
                             "byte %zu)",
                             name, kn, c->len);
    if (type >= N_VTYPES)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: metadata key '%s': unknown value type %u at byte %zu", name, kn,
                             type, at);
    kv->type = (gguf_vtype)type;
    kv->elem_type = kv->type;
    kv->n = 1;
    gguf_vtype et = kv->type;
    uint64_t n = 1;
    if (kv->type == GGUF_V_ARR) {
        uint32_t t2;
        if (!cur_u32(c, &t2) || !cur_u64(c, &n))
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: truncated: metadata key '%s': the array's element type and "
                                 "count go past the end of the file (%zu bytes)",
                                 name, kn, c->len);
        if (t2 == GGUF_V_ARR)
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: metadata key '%s': arrays of arrays are not supported", name,
                                 kn);
        if (t2 >= N_VTYPES)
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: metadata key '%s': unknown array element type %u", name, kn,
                                 t2);
        et = (gguf_vtype)t2;
        /* every element takes at least min_size bytes: bound the count by the file first */
        if (n > (c->len - c->pos) / vtype_min_size(et))
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: metadata key '%s': array of %llu %s values cannot fit in "
                                 "the %zu bytes left of the file",
                                 name, kn, (unsigned long long)n, VTYPES[et].name, c->len - c->pos);
        kv->elem_type = et;
        kv->n = (size_t)n;
    }
    kv->val = c->b + c->pos;
    if (et == GGUF_V_STR) {
        gguf_str *strs = NULL;
        if (kv->type == GGUF_V_ARR) {
            strs = calloc(n ? (size_t)n : 1, sizeof *strs);
            if (!strs) return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", name);
            kv->strs = strs;
        }
        for (size_t i = 0; i < (size_t)n; i++) {
            uint64_t slen = 0;
            gguf_str s;
            size_t sat = c->pos;
            int r = cur_str(c, &s, &slen);
            if (r == 0)
                return ats_error_set(err, ATS_ERR_FORMAT,
                                     "%s: truncated: metadata key '%s': string %zu's length goes "
                                     "past the end of the file (%zu bytes)",
                                     name, kn, i, c->len);
            if (r == 2)
                return ats_error_set(err, ATS_ERR_FORMAT,
                                     "%s: metadata key '%s': string %zu at byte %zu has length "
                                     "%llu, past the end of the file (%zu bytes)",
                                     name, kn, i, sat, (unsigned long long)slen, c->len);
            if (strs)
                strs[i] = s;
            else
                kv->str = s;
        }
        return ATS_OK;
    }
    size_t bytes = VTYPES[et].size * (size_t)n; /* n ≤ bytes left / size: no overflow */
    if (bytes > c->len - c->pos)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: truncated: metadata key '%s': its %s value%s (%zu bytes) go%s "
                             "past the end of the file (%zu bytes)",
                             name, kn, VTYPES[et].name, n == 1 ? "" : "s", bytes,
                             n == 1 ? "es" : "", c->len);
    if (et == GGUF_V_BOOL)
        for (size_t i = 0; i < bytes; i++)
            if (c->b[c->pos + i] > 1)
                return ats_error_set(err, ATS_ERR_FORMAT,
                                     "%s: metadata key '%s': bool %zu is %u (0 or 1 expected)",
                                     name, kn, i, c->b[c->pos + i]);
    c->pos += bytes;
    return ATS_OK;
}

/* Reads tensor info i at c into t (name not yet copied: t->name is left NULL, *nm set). */
static ats_status parse_tensor_info(cursor *c, const char *name, size_t i, size_t alignment,
                                    ats_gguf_tensor *t, gguf_str *nm, ats_error *err) {
    uint64_t slen = 0;
    int r = cur_str(c, nm, &slen);
    if (r == 0)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: truncated: tensor info %zu's name goes past the end of the "
                             "file (%zu bytes)",
                             name, i, c->len);
    if (r == 2)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: tensor info %zu: name length %llu goes past the end of the file "
                             "(%zu bytes)",
                             name, i, (unsigned long long)slen, c->len);
    char nb[SHOW_MAX];
    const char *tn = show(nb, sizeof nb, nm->p, nm->len);
    if (nm->len > GGUF_MAX_NAME)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: tensor '%s': name of %zu bytes (GGUF allows at most %d)", name,
                             tn, nm->len, GGUF_MAX_NAME);
    if (nm->len == 0 || memchr(nm->p, '\0', nm->len))
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: tensor info %zu: the name is empty or contains a NUL byte", name,
                             i);
    uint32_t nd;
    if (!cur_u32(c, &nd))
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: truncated: tensor '%s': n_dims goes past the end of the file "
                             "(%zu bytes)",
                             name, tn, c->len);
    if (nd > GGUF_MAX_DIMS)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: tensor '%s': %u dimensions (at most %d)",
                             name, tn, nd, GGUF_MAX_DIMS);
    t->n_dims = (int)nd;
    size_t count = 1;
    int overflow = 0;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) {
        uint64_t v = 1;
        if (d < (int)nd && !cur_u64(c, &v))
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: truncated: tensor '%s': dimension %d goes past the end of "
                                 "the file (%zu bytes)",
                                 name, tn, d, c->len);
        if (v > (uint64_t)INT64_MAX || v > (uint64_t)SIZE_MAX) overflow = 1;
        t->ne[d] = (size_t)v;
        if (!overflow && !ats_size_mul(count, t->ne[d], &count)) overflow = 1;
    }
    if (overflow)
        return ats_error_set(err, ATS_ERR_RANGE,
                             "%s: tensor '%s': dimensions [%zu, %zu, %zu, %zu] overflow", name, tn,
                             t->ne[0], t->ne[1], t->ne[2], t->ne[3]);
    for (int d = 0; d < (int)nd; d++) t->shape[d] = t->ne[nd - 1 - (unsigned)d];
    for (int d = (int)nd; d < GGUF_MAX_DIMS; d++) t->shape[d] = 1;
    t->count = count;
    uint32_t type;
    uint64_t off;
    if (!cur_u32(c, &type) || !cur_u64(c, &off))
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: truncated: tensor '%s': type and offset go past the end of the "
                             "file (%zu bytes)",
                             name, tn, c->len);
    const ttype_info *ti = ttype(type);
    if (!ti)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: tensor '%s': unknown tensor type %u", name,
                             tn, type);
    t->type = type;
    t->type_name = ti->name;
    if (t->ne[0] % ti->block)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: tensor '%s': row length ne[0] = %zu is not a multiple of %s's "
                             "block size %u",
                             name, tn, t->ne[0], ti->name, ti->block);
    if (!ats_size_mul(count / ti->block, ti->size, &t->nbytes))
        return ats_error_set(err, ATS_ERR_RANGE, "%s: tensor '%s': byte size overflows", name, tn);
    if (off > (uint64_t)SIZE_MAX || off % alignment)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: tensor '%s': offset %llu is not a multiple of the alignment %zu",
                             name, tn, (unsigned long long)off, alignment);
    t->offset = (size_t)off;
    return ATS_OK;
}

ats_status ats_gguf_parse(const uint8_t *buf, size_t len, const char *name, ats_gguf **out,
                          ats_error *err) {
    *out = NULL;
    if (len < 4 || memcmp(buf, "GGUF", 4) != 0) {
        if (len < 4)
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: %zu bytes, too short for a GGUF file (magic 'GGUF')", name,
                                 len);
        char mb[SHOW_MAX];
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: not a GGUF file (magic '%s', expected 'GGUF')", name,
                             show(mb, sizeof mb, (const char *)buf, 4));
    }
    if (len < 24)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: truncated header: %zu bytes, a GGUF header needs 24", name, len);
    uint32_t version = le32(buf + 4);
    if (version != 2 && version != 3) {
        if (version == 1)
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: GGUF version 1 is not supported (versions 2 and 3 are; "
                                 "convert the model again)",
                                 name);
        if ((version & 0xFFFFu) == 0 && (version >> 16) != 0)
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: GGUF version %u: a big-endian file? only little-endian GGUF "
                                 "is supported",
                                 name, version);
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: unsupported GGUF version %u (versions 2 and 3 are supported)",
                             name, version);
    }
    uint64_t n_tensors = le64(buf + 8), n_kv = le64(buf + 16);
    cursor c = {buf, len, 24};
    /* a metadata entry takes at least a key length, a type and one byte; a tensor info a name
     * length, n_dims, a type and an offset: bound the counts by the file before allocating */
    if (n_kv > (len - c.pos) / 13)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: metadata count %llu cannot fit in a file of %zu bytes", name,
                             (unsigned long long)n_kv, len);
    if (n_tensors > (len - c.pos) / 24)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: tensor count %llu cannot fit in a file of %zu bytes", name,
                             (unsigned long long)n_tensors, len);
    ats_gguf *g = calloc(1, sizeof *g);
    if (!g) return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", name);
    ats_status rc = ATS_OK;
    key_ix *keys = NULL;
    g->path = strdup(name);
    g->version = version;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    g->n_kv = (size_t)n_kv;
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    g->kv_sorted = malloc((g->n_kv ? g->n_kv : 1) * sizeof *g->kv_sorted);
    keys = malloc((g->n_kv ? g->n_kv : 1) * sizeof *keys);
    if (!g->path || !g->kv || !g->kv_sorted || !keys) {
        rc = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", name);
        goto fail;
    }

    /* ---- metadata */
    for (size_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        uint64_t klen = 0;
        size_t at = c.pos;
        int r = cur_str(&c, &kv->key, &klen);
        if (r == 0) {
            rc = ats_error_set(err, ATS_ERR_FORMAT,
                               "%s: truncated: metadata entry %zu of %zu: its key length goes "
                               "past the end of the file (%zu bytes)",
                               name, i, g->n_kv, len);
            goto fail;
        }
        if (r == 2) {
            rc = ats_error_set(err, ATS_ERR_FORMAT,
                               "%s: metadata entry %zu at byte %zu: key length %llu goes past "
                               "the end of the file (%zu bytes)",
                               name, i, at, (unsigned long long)klen, len);
            goto fail;
        }
        if ((rc = parse_value(&c, name, kv, err))) goto fail;
        keys[i].key = kv->key;
        keys[i].i = i;
    }
    qsort(keys, g->n_kv, sizeof *keys, key_ix_cmp);
    for (size_t i = 0; i < g->n_kv; i++) {
        g->kv_sorted[i] = keys[i].i;
        if (i && !key_cmp(&keys[i - 1].key, keys[i].key.p, keys[i].key.len)) {
            char kb[SHOW_MAX];
            rc = ats_error_set(err, ATS_ERR_FORMAT, "%s: metadata key '%s' appears twice", name,
                               show(kb, sizeof kb, keys[i].key.p, keys[i].key.len));
            goto fail;
        }
    }
    free(keys);
    keys = NULL;
    const gguf_kv *al = ats_gguf_find_kv(g, "general.alignment");
    if (al) {
        uint32_t a = al->type == GGUF_V_U32 ? le32(al->val) : 0;
        if (al->type != GGUF_V_U32 || a == 0 || (a & (a - 1))) {
            rc = ats_error_set(err, ATS_ERR_FORMAT,
                               "%s: general.alignment must be a uint32 power of two (it is %s %u)",
                               name, VTYPES[al->type].name, a);
            goto fail;
        }
        g->alignment = a;
    }

    /* ---- tensor infos */
    g->n_tensors = (size_t)n_tensors;
    g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof *g->tensors);
    g->tensors_sorted = malloc((g->n_tensors ? g->n_tensors : 1) * sizeof *g->tensors_sorted);
    gguf_str *names = malloc((g->n_tensors ? g->n_tensors : 1) * sizeof *names);
    if (!g->tensors || !g->tensors_sorted || !names) {
        free(names);
        rc = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    size_t name_bytes = 0;
    for (size_t i = 0; i < g->n_tensors; i++) {
        rc = parse_tensor_info(&c, name, i, g->alignment, &g->tensors[i], &names[i], err);
        if (rc) {
            free(names);
            goto fail;
        }
        name_bytes += names[i].len + 1; /* ≤ 65 per info of ≥ 24 bytes: no overflow */
        g->tensors_sorted[i] = &g->tensors[i];
    }
    g->names = malloc(name_bytes ? name_bytes : 1);
    if (!g->names) {
        free(names);
        rc = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    for (size_t i = 0, p = 0; i < g->n_tensors; i++) {
        memcpy(g->names + p, names[i].p, names[i].len);
        g->names[p + names[i].len] = '\0';
        g->tensors[i].name = g->names + p;
        p += names[i].len + 1;
    }
    free(names);

    /* ---- the data section */
    size_t pad = (g->alignment - c.pos % g->alignment) % g->alignment;
    if (!ats_size_add(c.pos, pad, &g->data_offset)) {
        rc = ats_error_set(err, ATS_ERR_RANGE, "%s: data section offset overflows", name);
        goto fail;
    }
    size_t data_len = g->data_offset <= len ? len - g->data_offset : 0;
    const uint8_t *data = buf + (g->data_offset <= len ? g->data_offset : len);
    for (size_t i = 0; i < g->n_tensors; i++) {
        ats_gguf_tensor *t = &g->tensors[i];
        if (t->offset > data_len || t->nbytes > data_len - t->offset) {
            rc = ats_error_set(err, ATS_ERR_FORMAT,
                               "%s: tensor '%s': data [%zu, +%zu bytes) goes past the end of the "
                               "file (the data section starts at byte %zu, the file has %zu)",
                               name, t->name, t->offset, t->nbytes, g->data_offset, len);
            goto fail;
        }
        t->data = data + t->offset;
    }
    qsort(g->tensors_sorted, g->n_tensors, sizeof *g->tensors_sorted, tensor_name_cmp);
    for (size_t i = 1; i < g->n_tensors; i++)
        if (!strcmp(g->tensors_sorted[i - 1]->name, g->tensors_sorted[i]->name)) {
            rc = ats_error_set(err, ATS_ERR_FORMAT, "%s: tensor '%s' appears twice", name,
                               g->tensors_sorted[i]->name);
            goto fail;
        }
    /* overlap: neighbours by offset (empty tensors overlap nothing) */
    ats_gguf_tensor **order = malloc((g->n_tensors ? g->n_tensors : 1) * sizeof *order);
    if (!order) {
        rc = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", name);
        goto fail;
    }
    size_t m = 0;
    for (size_t i = 0; i < g->n_tensors; i++)
        if (g->tensors[i].nbytes) order[m++] = &g->tensors[i];
    qsort(order, m, sizeof *order, tensor_offset_cmp);
    for (size_t i = 1; i < m; i++)
        if (order[i]->offset < order[i - 1]->offset + order[i - 1]->nbytes) {
            rc = ats_error_set(err, ATS_ERR_FORMAT,
                               "%s: tensors '%s' [%zu, %zu) and '%s' [%zu, %zu) overlap", name,
                               order[i - 1]->name, order[i - 1]->offset,
                               order[i - 1]->offset + order[i - 1]->nbytes, order[i]->name,
                               order[i]->offset, order[i]->offset + order[i]->nbytes);
            break;
        }
    free(order);
    if (rc) goto fail;
    *out = g;
    return ATS_OK;
fail:
    free(keys);
    ats_gguf_close(g);
    return rc;
}

ats_status ats_gguf_open(const char *path, ats_gguf **out, ats_error *err) {
    *out = NULL;
    void *map;
    size_t len;
    ats_status st = ats_file_map(path, &map, &len, err);
    if (st) return st;
    static const uint8_t empty[1];
    ats_gguf *g = NULL;
    ats_status rc = ats_gguf_parse(map ? map : empty, len, path, &g, err);
    if (rc) {
        ats_file_unmap(map, len);
        return rc;
    }
    g->map = map;
    g->map_len = len;
    *out = g;
    return ATS_OK;
}

/* ---- metadata lookup */

static const char *gname(const ats_gguf *g) {
    return g->path;
}

const gguf_kv *ats_gguf_find_kv(const ats_gguf *g, const char *key) {
    size_t klen = strlen(key), lo = 0, hi = g->n_kv;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const gguf_kv *kv = &g->kv[g->kv_sorted[mid]];
        int c = key_cmp(&kv->key, key, klen);
        if (c == 0) return kv;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static ats_status find(const ats_gguf *g, const char *key, const gguf_kv **kv, ats_error *err) {
    *kv = ats_gguf_find_kv(g, key);
    if (!*kv)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: metadata key '%s' is missing", gname(g),
                             key);
    return ATS_OK;
}

static ats_status wrong_type(const ats_gguf *g, const char *key, const gguf_kv *kv,
                             const char *expected, ats_error *err) {
    if (kv->type == GGUF_V_ARR)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: metadata key '%s' is an array of %s, expected %s", gname(g), key,
                             VTYPES[kv->elem_type].name, expected);
    return ats_error_set(err, ATS_ERR_FORMAT, "%s: metadata key '%s' is %s, expected %s", gname(g),
                         key, VTYPES[kv->type].name, expected);
}

static int is_int(gguf_vtype t) {
    return t <= GGUF_V_I32 || t == GGUF_V_U64 || t == GGUF_V_I64;
}

/* An integer value at p of type t; *big set when an unsigned 64-bit value exceeds
 * INT64_MAX. */
static int64_t int_at(const uint8_t *p, gguf_vtype t, int *big) {
    *big = 0;
    switch (t) {
    case GGUF_V_U8:
        return p[0];
    case GGUF_V_I8:
        return (int8_t)p[0];
    case GGUF_V_U16:
        return le16(p);
    case GGUF_V_I16:
        return (int16_t)le16(p);
    case GGUF_V_U32:
        return le32(p);
    case GGUF_V_I32:
        return (int32_t)le32(p);
    case GGUF_V_U64: {
        uint64_t v = le64(p);
        if (v > (uint64_t)INT64_MAX) *big = 1;
        return (int64_t)(v & (uint64_t)INT64_MAX);
    }
    case GGUF_V_I64:
        return (int64_t)le64(p);
    default:
        return 0;
    }
}

static float f32_at(const uint8_t *p, gguf_vtype t) {
    if (t == GGUF_V_F32) {
        uint32_t u = le32(p);
        float f;
        memcpy(&f, &u, 4);
        return f;
    }
    uint64_t u = le64(p);
    double d;
    memcpy(&d, &u, 8);
    return (float)d;
}

ats_status ats_gguf_get_str(const ats_gguf *g, const char *key, const char **s, size_t *len,
                            ats_error *err) {
    const gguf_kv *kv;
    ats_status rc = find(g, key, &kv, err);
    if (rc) return rc;
    if (kv->type != GGUF_V_STR) return wrong_type(g, key, kv, "string", err);
    *s = kv->str.p;
    *len = kv->str.len;
    return ATS_OK;
}

ats_status ats_gguf_get_int(const ats_gguf *g, const char *key, int64_t *out, ats_error *err) {
    const gguf_kv *kv;
    ats_status rc = find(g, key, &kv, err);
    if (rc) return rc;
    if (!is_int(kv->type)) return wrong_type(g, key, kv, "an integer", err);
    int big;
    *out = int_at(kv->val, kv->type, &big);
    if (big)
        return ats_error_set(err, ATS_ERR_RANGE, "%s: metadata key '%s' = %llu is out of range",
                             gname(g), key, (unsigned long long)le64(kv->val));
    return ATS_OK;
}

ats_status ats_gguf_get_u32(const ats_gguf *g, const char *key, uint32_t *out, ats_error *err) {
    int64_t v;
    ats_status rc = ats_gguf_get_int(g, key, &v, err);
    if (rc) return rc;
    if (v < 0 || v > (int64_t)UINT32_MAX)
        return ats_error_set(err, ATS_ERR_RANGE,
                             "%s: metadata key '%s' = %lld is out of range (0 to 4294967295)",
                             gname(g), key, (long long)v);
    *out = (uint32_t)v;
    return ATS_OK;
}

ats_status ats_gguf_get_f32(const ats_gguf *g, const char *key, float *out, ats_error *err) {
    const gguf_kv *kv;
    ats_status rc = find(g, key, &kv, err);
    if (rc) return rc;
    if (kv->type != GGUF_V_F32 && kv->type != GGUF_V_F64)
        return wrong_type(g, key, kv, "float32", err);
    *out = f32_at(kv->val, kv->type);
    return ATS_OK;
}

ats_status ats_gguf_get_bool(const ats_gguf *g, const char *key, int *out, ats_error *err) {
    const gguf_kv *kv;
    ats_status rc = find(g, key, &kv, err);
    if (rc) return rc;
    if (kv->type != GGUF_V_BOOL) return wrong_type(g, key, kv, "bool", err);
    *out = kv->val[0];
    return ATS_OK;
}

static ats_status find_arr(const ats_gguf *g, const char *key, const char *expected,
                           const gguf_kv **kv, ats_error *err) {
    ats_status rc = find(g, key, kv, err);
    if (rc) return rc;
    if ((*kv)->type != GGUF_V_ARR)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: metadata key '%s' is %s, expected %s",
                             gname(g), key, VTYPES[(*kv)->type].name, expected);
    return ATS_OK;
}

ats_status ats_gguf_get_arr_len(const ats_gguf *g, const char *key, gguf_vtype elem_type, size_t *n,
                                ats_error *err) {
    const gguf_kv *kv;
    char want[40];
    snprintf(want, sizeof want, "an array of %s",
             elem_type == GGUF_V_ARR ? "values" : ats_gguf_vtype_name(elem_type));
    ats_status rc = find_arr(g, key, want, &kv, err);
    if (rc) return rc;
    if (elem_type != GGUF_V_ARR && kv->elem_type != elem_type)
        return wrong_type(g, key, kv, want, err);
    *n = kv->n;
    return ATS_OK;
}

static int is_str(gguf_vtype t) {
    return t == GGUF_V_STR;
}

static int is_float(gguf_vtype t) {
    return t == GGUF_V_F32 || t == GGUF_V_F64;
}

/* Element i of the array at key, whose elements must pass elem_ok; `what` names the array
 * type expected in messages. */
static ats_status arr_elem(const ats_gguf *g, const char *key, const char *what,
                           int (*elem_ok)(gguf_vtype), size_t i, const gguf_kv **kv,
                           ats_error *err) {
    ats_status rc = find_arr(g, key, what, kv, err);
    if (rc) return rc;
    if (!elem_ok((*kv)->elem_type)) return wrong_type(g, key, *kv, what, err);
    if (i >= (*kv)->n)
        return ats_error_set(err, ATS_ERR_RANGE,
                             "%s: metadata key '%s': index %zu is past the array's %zu elements",
                             gname(g), key, i, (*kv)->n);
    return ATS_OK;
}

ats_status ats_gguf_get_arr_str(const ats_gguf *g, const char *key, size_t i, const char **s,
                                size_t *len, ats_error *err) {
    const gguf_kv *kv;
    ats_status rc = arr_elem(g, key, "an array of string", is_str, i, &kv, err);
    if (rc) return rc;
    *s = kv->strs[i].p;
    *len = kv->strs[i].len;
    return ATS_OK;
}

ats_status ats_gguf_get_arr_int(const ats_gguf *g, const char *key, size_t i, int64_t *out,
                                ats_error *err) {
    const gguf_kv *kv;
    ats_status rc = arr_elem(g, key, "an array of integers", is_int, i, &kv, err);
    if (rc) return rc;
    int big;
    const uint8_t *p = kv->val + i * VTYPES[kv->elem_type].size;
    *out = int_at(p, kv->elem_type, &big);
    if (big)
        return ats_error_set(err, ATS_ERR_RANGE,
                             "%s: metadata key '%s': element %zu = %llu is out of range", gname(g),
                             key, i, (unsigned long long)le64(p));
    return ATS_OK;
}

ats_status ats_gguf_get_arr_f32(const ats_gguf *g, const char *key, size_t i, float *out,
                                ats_error *err) {
    const gguf_kv *kv;
    ats_status rc = arr_elem(g, key, "an array of float32", is_float, i, &kv, err);
    if (rc) return rc;
    *out = f32_at(kv->val + i * VTYPES[kv->elem_type].size, kv->elem_type);
    return ATS_OK;
}

/* ---- tensors */

const ats_gguf_tensor *ats_gguf_find_tensor(const ats_gguf *g, const char *name) {
    size_t lo = 0, hi = g->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(g->tensors_sorted[mid]->name, name);
        if (c == 0) return g->tensors_sorted[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

ats_status ats_gguf_get_tensor(const ats_gguf *g, const char *name, const ats_gguf_tensor **t,
                               ats_error *err) {
    *t = ats_gguf_find_tensor(g, name);
    if (!*t)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: tensor '%s' is missing", gname(g), name);
    return ATS_OK;
}

/* ---- dequantization: one function per block layout; y receives the block's elements in
 * order. Scales are IEEE half precision; integer × float products are exact conversions
 * followed by one rounding, in the order ggml writes them. */

static float half(const uint8_t *p) {
    uint16_t h = le16(p);
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, exp = (h >> 10) & 0x1Fu, man = h & 0x3FFu;
    uint32_t bits;
    if (exp == 0x1F) {
        bits = sign | 0x7F800000u | man << 13; /* inf, NaN with its payload */
    } else if (exp == 0) {
        float v = (float)man * 0x1p-24f; /* zero or subnormal: exact in float */
        return sign ? -v : v;
    } else {
        bits = sign | (exp + 112u) << 23 | man << 13; /* rebias 15 → 127 */
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static void deq_q4_0(const uint8_t *b, float *y) {
    float d = half(b);
    const uint8_t *qs = b + 2;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)((qs[j] & 0xF) - 8) * d;
        y[j + 16] = (float)((qs[j] >> 4) - 8) * d;
    }
}

static void deq_q4_1(const uint8_t *b, float *y) {
    float d = half(b), m = half(b + 2);
    const uint8_t *qs = b + 4;
    for (int j = 0; j < 16; j++) {
        y[j] = (float)(qs[j] & 0xF) * d + m;
        y[j + 16] = (float)(qs[j] >> 4) * d + m;
    }
}

/* Q5: the fifth bit of element j is bit j of the little-endian word qh */
static void deq_q5_0(const uint8_t *b, float *y) {
    float d = half(b);
    uint32_t qh = le32(b + 2);
    const uint8_t *qs = b + 6;
    for (int j = 0; j < 16; j++) {
        int lo = (int)((qs[j] & 0xF) | ((qh >> j) & 1u) << 4);
        int hi = (int)((qs[j] >> 4) | ((qh >> (j + 16)) & 1u) << 4);
        y[j] = (float)(lo - 16) * d;
        y[j + 16] = (float)(hi - 16) * d;
    }
}

static void deq_q5_1(const uint8_t *b, float *y) {
    float d = half(b), m = half(b + 2);
    uint32_t qh = le32(b + 4);
    const uint8_t *qs = b + 8;
    for (int j = 0; j < 16; j++) {
        int lo = (int)((qs[j] & 0xF) | ((qh >> j) & 1u) << 4);
        int hi = (int)((qs[j] >> 4) | ((qh >> (j + 16)) & 1u) << 4);
        y[j] = (float)lo * d + m;
        y[j + 16] = (float)hi * d + m;
    }
}

static void deq_q8_0(const uint8_t *b, float *y) {
    float d = half(b);
    for (int j = 0; j < 32; j++) y[j] = (float)(int8_t)b[2 + j] * d;
}

/* K-quants: the 12 scale bytes hold eight 6-bit scales and eight 6-bit mins. Sub-blocks 0..3
 * keep them in the low 6 bits of bytes j and j + 4; sub-blocks 4..7 keep their low 4 bits in
 * byte j + 4's nibbles and their top 2 bits in the spare top bits of bytes j - 4 and j. */
static void k_scale_min(const uint8_t *s, int j, int *sc, int *mn) {
    if (j < 4) {
        *sc = s[j] & 63;
        *mn = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | (s[j - 4] >> 6) << 4;
        *mn = (s[j + 4] >> 4) | (s[j] >> 6) << 4;
    }
}

/* Q4_K block: d, dmin (f16), scales[12], qs[128]; 4 chunks of 64 elements, each 32 bytes of qs
 * whose low nibbles are sub-block 2c and high nibbles sub-block 2c + 1. */
static void deq_q4_k(const uint8_t *b, float *y) {
    float d = half(b), dmin = half(b + 2);
    const uint8_t *s = b + 4, *q = b + 16;
    for (int c = 0; c < 4; c++, q += 32) {
        int sc, mn;
        k_scale_min(s, 2 * c, &sc, &mn);
        float d1 = d * (float)sc, m1 = dmin * (float)mn;
        k_scale_min(s, 2 * c + 1, &sc, &mn);
        float d2 = d * (float)sc, m2 = dmin * (float)mn;
        for (int l = 0; l < 32; l++) *y++ = d1 * (float)(q[l] & 0xF) - m1;
        for (int l = 0; l < 32; l++) *y++ = d2 * (float)(q[l] >> 4) - m2;
    }
}

/* Q5_K block: d, dmin, scales[12], qh[32], qs[128]: as Q4_K, the fifth bit of sub-block k's
 * element l being bit k of qh[l]. */
static void deq_q5_k(const uint8_t *b, float *y) {
    float d = half(b), dmin = half(b + 2);
    const uint8_t *s = b + 4, *qh = b + 16, *q = b + 48;
    for (int c = 0; c < 4; c++, q += 32) {
        int sc, mn;
        k_scale_min(s, 2 * c, &sc, &mn);
        float d1 = d * (float)sc, m1 = dmin * (float)mn;
        k_scale_min(s, 2 * c + 1, &sc, &mn);
        float d2 = d * (float)sc, m2 = dmin * (float)mn;
        unsigned b1 = 2u * (unsigned)c, b2 = b1 + 1;
        for (int l = 0; l < 32; l++)
            *y++ = d1 * (float)((q[l] & 0xF) | ((qh[l] >> b1) & 1u) << 4) - m1;
        for (int l = 0; l < 32; l++)
            *y++ = d2 * (float)((q[l] >> 4) | ((qh[l] >> b2) & 1u) << 4) - m2;
    }
}

/* Q6_K block: ql[128], qh[64], scales[16] (int8), d (f16); two halves of 128 elements, each
 * from 64 bytes of ql (low 4 bits), 32 of qh (2 bits each) and 8 scales, one per 16 elements.
 * ggml multiplies (d · scale) · q. */
static void deq_q6_k(const uint8_t *b, float *y) {
    float d = half(b + 208);
    const uint8_t *ql = b, *qh = b + 128;
    const int8_t *sc = (const int8_t *)(b + 192);
    for (int h = 0; h < 2; h++, ql += 64, qh += 32, sc += 8, y += 128)
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((ql[l] & 0xF) | ((qh[l] >> 0) & 3u) << 4) - 32;
            int q2 = (int)((ql[l + 32] & 0xF) | ((qh[l] >> 2) & 3u) << 4) - 32;
            int q3 = (int)((ql[l] >> 4) | ((qh[l] >> 4) & 3u) << 4) - 32;
            int q4 = (int)((ql[l + 32] >> 4) | ((qh[l] >> 6) & 3u) << 4) - 32;
            y[l] = d * (float)sc[is] * (float)q1;
            y[l + 32] = d * (float)sc[is + 2] * (float)q2;
            y[l + 64] = d * (float)sc[is + 4] * (float)q3;
            y[l + 96] = d * (float)sc[is + 6] * (float)q4;
        }
}

static void deq_f32(const uint8_t *b, float *y) {
    uint32_t u = le32(b);
    memcpy(y, &u, 4);
}

static void deq_f16(const uint8_t *b, float *y) {
    *y = half(b);
}

static void deq_bf16(const uint8_t *b, float *y) {
    uint32_t u = (uint32_t)le16(b) << 16;
    memcpy(y, &u, 4);
}

typedef void (*deq_fn)(const uint8_t *block, float *y);

static deq_fn deq_for(uint32_t type) {
    switch (type) {
    case GGUF_T_F32:
        return deq_f32;
    case GGUF_T_F16:
        return deq_f16;
    case GGUF_T_BF16:
        return deq_bf16;
    case GGUF_T_Q4_0:
        return deq_q4_0;
    case GGUF_T_Q4_1:
        return deq_q4_1;
    case GGUF_T_Q5_0:
        return deq_q5_0;
    case GGUF_T_Q5_1:
        return deq_q5_1;
    case GGUF_T_Q8_0:
        return deq_q8_0;
    case GGUF_T_Q4_K:
        return deq_q4_k;
    case GGUF_T_Q5_K:
        return deq_q5_k;
    case GGUF_T_Q6_K:
        return deq_q6_k;
    default:
        return NULL;
    }
}

int ats_gguf_dequantize(uint32_t type, const uint8_t *src, size_t n, float *dst) {
    deq_fn f = deq_for(type);
    if (!f) return 0;
    const ttype_info *ti = ttype(type);
    if (n % ti->block) return 0;
    size_t nb = n / ti->block, bs = ti->size, be = ti->block;
    /* blocks are independent: the split over threads changes no bit */
#pragma omp parallel for schedule(static) if (n >= (1u << 20))
    for (size_t i = 0; i < nb; i++) f(src + i * bs, dst + i * be);
    return 1;
}

ats_status ats_gguf_tensor_to_f32(const ats_gguf *g, const ats_gguf_tensor *t, float *out,
                                  size_t count, ats_error *err) {
    if (!ats_gguf_type_supported(t->type))
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: tensor '%s': unsupported tensor type %s (%u)", gname(g), t->name,
                             t->type_name ? t->type_name : "?", t->type);
    if (count != t->count)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "%s: tensor '%s' has %zu elements, the output %zu", gname(g), t->name,
                             t->count, count);
    ats_gguf_dequantize(t->type, t->data, t->count, out);
    return ATS_OK;
}
