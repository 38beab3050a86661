/* safetensors: an 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
 * then the data section; offsets are relative to its start. Everything read from the file is
 * checked before use. */
#include "model_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    size_t size;
    st_dtype dtype;
} DTYPES[] = {
    {"F32", 4, ST_F32},   {"F16", 2, ST_F16},       {"BF16", 2, ST_BF16},     {"F64", 8, ST_OTHER},
    {"I64", 8, ST_OTHER}, {"I32", 4, ST_OTHER},     {"I16", 2, ST_OTHER},     {"I8", 1, ST_OTHER},
    {"U8", 1, ST_OTHER},  {"BOOL", 1, ST_OTHER},    {"U16", 2, ST_OTHER},     {"U32", 4, ST_OTHER},
    {"U64", 8, ST_OTHER}, {"F8_E4M3", 1, ST_OTHER}, {"F8_E5M2", 1, ST_OTHER},
};

/* A JSON number that is an exact non-negative integer below 2^53. */
static int json_size(const cJSON *item, size_t *out) {
    if (!cJSON_IsNumber(item)) return 0;
    double v = item->valuedouble;
    if (!(v >= 0.0) || v > 9007199254740992.0 || v != (double)(uint64_t)v) return 0;
    if ((uint64_t)v > (uint64_t)SIZE_MAX) return 0;
    *out = (size_t)v;
    return 1;
}

int st_tensor_cmp_name(const void *a, const void *b) {
    return strcmp(((const st_tensor *)a)->name, ((const st_tensor *)b)->name);
}

static int by_begin(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : 0;
}

void ats_safetensors_close(ats_safetensors *st) {
    if (!st) return;
    for (size_t i = 0; i < st->count; i++) free(st->tensors[i].name);
    free(st->tensors);
    if (st->map) munmap(st->map, st->map_len);
    free(st->path);
    memset(st, 0, sizeof *st);
}

static ats_status parse_entry(const cJSON *e, const char *name, size_t data_len, st_tensor *t,
                              ats_error *err) {
    const char *nm = e->string;
    if (!cJSON_IsObject(e))
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: tensor '%s': header entry is not an object",
                             name, nm);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off))
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: tensor '%s': header entry needs \"dtype\" (string), \"shape\" "
                             "and \"data_offsets\" (arrays)",
                             name, nm);
    size_t esize = 0;
    for (size_t i = 0; i < sizeof DTYPES / sizeof DTYPES[0]; i++)
        if (!strcmp(dt->valuestring, DTYPES[i].name)) {
            esize = DTYPES[i].size;
            t->dtype = DTYPES[i].dtype;
            snprintf(t->dtype_name, sizeof t->dtype_name, "%s", DTYPES[i].name);
        }
    if (!esize)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: tensor '%s': unknown dtype '%.20s'", name,
                             nm, dt->valuestring);
    int nd = cJSON_GetArraySize(sh);
    if (nd > ST_MAX_DIMS)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: tensor '%s': %d dimensions (at most %d)",
                             name, nm, nd, ST_MAX_DIMS);
    t->ndim = nd;
    size_t count = 1;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh) {
        if (!json_size(d, &t->shape[i]))
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: tensor '%s': shape[%d] is not a non-negative integer", name,
                                 nm, i);
        if (!ats_size_mul(count, t->shape[i], &count))
            return ats_error_set(err, ATS_ERR_RANGE, "%s: tensor '%s': shape overflows", name, nm);
        i++;
    }
    t->count = count;
    if (cJSON_GetArraySize(off) != 2 || !json_size(cJSON_GetArrayItem(off, 0), &t->begin) ||
        !json_size(cJSON_GetArrayItem(off, 1), &t->end))
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: tensor '%s': data_offsets must be [begin, end] integers", name,
                             nm);
    if (t->begin > t->end || t->end > data_len)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: tensor '%s': data_offsets [%zu, %zu] outside the data section "
                             "(%zu bytes)",
                             name, nm, t->begin, t->end, data_len);
    size_t bytes;
    if (!ats_size_mul(count, esize, &bytes))
        return ats_error_set(err, ATS_ERR_RANGE, "%s: tensor '%s': size overflows", name, nm);
    if (bytes != t->end - t->begin)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: tensor '%s': dtype %s and shape need %zu bytes, data_offsets "
                             "give %zu",
                             name, nm, t->dtype_name, bytes, t->end - t->begin);
    return ATS_OK;
}

ats_status ats_safetensors_parse(const uint8_t *buf, size_t len, const char *name,
                                 ats_safetensors *st, ats_error *err) {
    memset(st, 0, sizeof *st);
    if (len < 8)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: %zu bytes, too short for a safetensors header", name, len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | buf[i];
    if (hlen > len - 8)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: header length %llu goes beyond the end of the file (%zu bytes)",
                             name, (unsigned long long)hlen, len);
    if (hlen < 2) return ats_error_set(err, ATS_ERR_FORMAT, "%s: empty safetensors header", name);
    const uint8_t *data = buf + 8 + hlen;
    size_t data_len = len - 8 - (size_t)hlen;
    cJSON *root = cJSON_ParseWithLength((const char *)buf + 8, (size_t)hlen);
    if (!root)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: the safetensors header is not valid JSON",
                             name);
    ats_status rc = ATS_OK;
    if (!cJSON_IsObject(root)) {
        rc = ats_error_set(err, ATS_ERR_FORMAT, "%s: the safetensors header is not a JSON object",
                           name);
        goto done;
    }
    size_t n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__")) n++;
    }
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    if (!st->tensors) {
        rc = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    cJSON_ArrayForEach(e, root) {
        if (!strcmp(e->string, "__metadata__")) continue;
        st_tensor *t = &st->tensors[st->count];
        rc = parse_entry(e, name, data_len, t, err);
        if (rc) goto done;
        t->name = strdup(e->string);
        if (!t->name) {
            rc = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", name);
            goto done;
        }
        t->data = data + t->begin;
        st->count++;
    }
    qsort(st->tensors, st->count, sizeof *st->tensors, st_tensor_cmp_name);
    for (size_t i = 1; i < st->count; i++)
        if (!strcmp(st->tensors[i - 1].name, st->tensors[i].name)) {
            rc = ats_error_set(err, ATS_ERR_FORMAT, "%s: tensor '%s' appears twice in the header",
                               name, st->tensors[i].name);
            goto done;
        }
    /* overlap: sort pointers by begin, compare neighbours (empty tensors overlap nothing) */
    st_tensor **order = malloc((st->count ? st->count : 1) * sizeof *order);
    if (!order) {
        rc = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", name);
        goto done;
    }
    size_t m = 0;
    for (size_t i = 0; i < st->count; i++)
        if (st->tensors[i].end > st->tensors[i].begin) order[m++] = &st->tensors[i];
    qsort(order, m, sizeof *order, by_begin);
    for (size_t i = 1; i < m; i++)
        if (order[i]->begin < order[i - 1]->end) {
            rc = ats_error_set(err, ATS_ERR_FORMAT,
                               "%s: tensors '%s' [%zu, %zu] and '%s' [%zu, %zu] overlap", name,
                               order[i - 1]->name, order[i - 1]->begin, order[i - 1]->end,
                               order[i]->name, order[i]->begin, order[i]->end);
            break;
        }
    free(order);
done:
    cJSON_Delete(root);
    if (rc) ats_safetensors_close(st);
    return rc;
}

ats_status ats_safetensors_open(const char *path, ats_safetensors *st, ats_error *err) {
    memset(st, 0, sizeof *st);
    void *map;
    size_t len;
    ats_status ms = ats_file_map(path, &map, &len, err);
    if (ms) return ms;
    static const uint8_t empty[1];
    ats_status rc = ats_safetensors_parse(map ? map : empty, len, path, st, err);
    if (rc) {
        ats_file_unmap(map, len);
        return rc;
    }
    st->map = map;
    st->map_len = len;
    st->path = strdup(path);
    if (!st->path) {
        ats_safetensors_close(st);
        return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    }
    return ATS_OK;
}

const st_tensor *ats_safetensors_find(const ats_safetensors *st, const char *name) {
    size_t lo = 0, hi = st->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(st->tensors[mid].name, name);
        if (c == 0) return &st->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}
