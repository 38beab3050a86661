#define _DEFAULT_SOURCE /* madvise */
/* NumPy .npy reader and writer. The header is a Python dict literal; we parse only the three
 * keys the format defines and check that the data size it implies matches the file exactly. */
#include "attnscope/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t dtype_size(ats_dtype t) {
    return (t == ATS_F32 || t == ATS_I32) ? 4 : 8;
}

static const char *dtype_descr(ats_dtype t) {
    switch (t) {
    case ATS_F32:
        return "<f4";
    case ATS_F64:
        return "<f8";
    case ATS_I32:
        return "<i4";
    case ATS_I64:
        return "<i8";
    }
    return "?";
}

/* Finds 'key' in the header dict and returns a pointer just past the colon, or NULL. */
static const char *header_value(const char *hdr, const char *key) {
    char quoted[32];
    const char *quotes[2] = {"'", "\""};
    for (int q = 0; q < 2; q++) {
        snprintf(quoted, sizeof quoted, "%s%s%s", quotes[q], key, quotes[q]);
        const char *p = strstr(hdr, quoted);
        if (p) {
            p += strlen(quoted);
            while (*p == ' ') p++;
            if (*p != ':') return NULL;
            p++;
            while (*p == ' ') p++;
            return p;
        }
    }
    return NULL;
}

void ats_npy_free(ats_npy *arr) {
    if (!arr) return;
    if (arr->map) {
        ats_file_unmap(arr->map, arr->map_len);
        close(arr->fd);
    } else
        free(arr->data);
    memset(arr, 0, sizeof *arr);
}

/* Reads and checks the header of the .npy file open as fp: out receives dtype, ndim, shape and
 * count (data NULL), *data_off the offset of the data and *bytes its size, which must be exactly
 * the rest of the file (every size overflow-checked). */
static ats_status npy_header(FILE *fp, const char *path, ats_npy *out, size_t *data_off,
                             size_t *bytes, ats_error *err) {
    ats_status st = ATS_OK;
    char *hdr = NULL;
    unsigned char pre[12];
    if (fread(pre, 1, 10, fp) != 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        st = ats_error_set(err, ATS_ERR_FORMAT, "%s: not a .npy file (bad magic)", path);
        goto done;
    }
    int major = pre[6];
    size_t hlen, off;
    if (major == 1) {
        hlen = (size_t)pre[8] | ((size_t)pre[9] << 8);
        off = 10;
    } else if (major == 2 || major == 3) {
        if (fread(pre + 10, 1, 2, fp) != 2) {
            st = ats_error_set(err, ATS_ERR_FORMAT, "%s: truncated .npy header", path);
            goto done;
        }
        hlen = (size_t)pre[8] | ((size_t)pre[9] << 8) | ((size_t)pre[10] << 16) |
               ((size_t)pre[11] << 24);
        off = 12;
    } else {
        st = ats_error_set(err, ATS_ERR_FORMAT, "%s: unsupported .npy version %d", path, major);
        goto done;
    }
    if (hlen > (1u << 20)) {
        st = ats_error_set(err, ATS_ERR_FORMAT, "%s: .npy header of %zu bytes is absurd", path,
                           hlen);
        goto done;
    }
    hdr = malloc(hlen + 1);
    if (!hdr) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    if (fread(hdr, 1, hlen, fp) != hlen) {
        st = ats_error_set(err, ATS_ERR_FORMAT, "%s: truncated .npy header", path);
        goto done;
    }
    hdr[hlen] = '\0';

    const char *d = header_value(hdr, "descr");
    if (!d || (*d != '\'' && *d != '"')) {
        st = ats_error_set(err, ATS_ERR_FORMAT, "%s: .npy header has no 'descr'", path);
        goto done;
    }
    d++;
    if (!strncmp(d, "<f4", 3))
        out->dtype = ATS_F32;
    else if (!strncmp(d, "<f8", 3))
        out->dtype = ATS_F64;
    else if (!strncmp(d, "<i4", 3))
        out->dtype = ATS_I32;
    else if (!strncmp(d, "<i8", 3))
        out->dtype = ATS_I64;
    else {
        st = ats_error_set(err, ATS_ERR_FORMAT,
                           "%s: unsupported .npy dtype '%.8s' (expected <f4, <f8, <i4 or <i8)",
                           path, d);
        goto done;
    }
    const char *f = header_value(hdr, "fortran_order");
    if (!f || strncmp(f, "False", 5) != 0) {
        st = ats_error_set(err, ATS_ERR_FORMAT,
                           "%s: .npy array must be in C order (fortran_order False)", path);
        goto done;
    }
    const char *s = header_value(hdr, "shape");
    if (!s || *s != '(') {
        st = ats_error_set(err, ATS_ERR_FORMAT, "%s: .npy header has no 'shape'", path);
        goto done;
    }
    s++;
    out->ndim = 0;
    size_t count = 1;
    for (;;) {
        while (*s == ' ' || *s == ',') s++;
        if (*s == ')') break;
        if (*s < '0' || *s > '9') {
            st = ats_error_set(err, ATS_ERR_FORMAT, "%s: malformed .npy shape", path);
            goto done;
        }
        if (out->ndim == ATS_NPY_MAX_DIMS) {
            st = ats_error_set(err, ATS_ERR_RANGE, "%s: more than %d dimensions", path,
                               ATS_NPY_MAX_DIMS);
            goto done;
        }
        errno = 0;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || v > SIZE_MAX || !ats_size_mul(count, (size_t)v, &count)) {
            st = ats_error_set(err, ATS_ERR_RANGE, "%s: .npy shape overflows", path);
            goto done;
        }
        out->shape[out->ndim++] = (size_t)v;
        s = end;
    }
    out->count = count;
    if (!ats_size_mul(count, dtype_size(out->dtype), bytes) || !ats_size_add(off, hlen, data_off)) {
        st = ats_error_set(err, ATS_ERR_RANGE, "%s: .npy data size overflows", path);
        goto done;
    }
    /* The data must be exactly the rest of the file: check before allocating or mapping. */
    if (fseek(fp, 0, SEEK_END) != 0) {
        st = ats_error_set(err, ATS_ERR_IO, "%s: cannot seek", path);
        goto done;
    }
    long fsize = ftell(fp);
    if (fsize < 0 || (size_t)fsize < *data_off || (size_t)fsize - *data_off != *bytes) {
        st =
            ats_error_set(err, ATS_ERR_FORMAT, "%s: .npy data is %ld bytes but its shape needs %zu",
                          path, fsize < 0 ? -1L : (long)((size_t)fsize - *data_off), *bytes);
        goto done;
    }
    if (fseek(fp, (long)*data_off, SEEK_SET) != 0)
        st = ats_error_set(err, ATS_ERR_IO, "%s: cannot seek", path);
done:
    free(hdr);
    return st;
}

ats_status ats_npy_read(const char *path, ats_npy *out, ats_error *err) {
    memset(out, 0, sizeof *out);
    FILE *fp = fopen(path, "rb");
    if (!fp) return ats_error_set(err, ATS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t off, bytes;
    ats_status st = npy_header(fp, path, out, &off, &bytes, err);
    if (st) goto done;
    if ((st = ats_memory_check(bytes, path, err))) goto done;
    out->data = malloc(bytes ? bytes : 1);
    if (!out->data) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory for %zu bytes", path, bytes);
        goto done;
    }
    if (fread(out->data, 1, bytes, fp) != bytes) {
        st = ats_error_set(err, ATS_ERR_IO, "%s: short read", path);
        goto done;
    }
done:
    fclose(fp);
    if (st != ATS_OK) ats_npy_free(out);
    return st;
}

ats_status ats_npy_map(const char *path, ats_npy *out, ats_error *err) {
    memset(out, 0, sizeof *out);
    const char *env = getenv("ATS_NPY_MMAP");
    struct stat sb;
    /* Only regular files are mapped (a FIFO or device reads as ats_npy_read does). */
    if ((env && !strcmp(env, "0")) || stat(path, &sb) != 0 || !S_ISREG(sb.st_mode))
        return ats_npy_read(path, out, err);
    /* One open file for the header, the mapping and ats_npy_get_f64: all three see the same
       file even if path is replaced meanwhile. */
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) return ats_error_set(err, ATS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    int hfd = dup(fd);
    FILE *fp = hfd >= 0 ? fdopen(hfd, "rb") : NULL;
    if (!fp) {
        if (hfd >= 0) close(hfd);
        close(fd);
        return ats_error_set(err, ATS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    }
    size_t off, bytes;
    ats_status st = npy_header(fp, path, out, &off, &bytes, err);
    fclose(fp);
    if (st) {
        close(fd);
        ats_npy_free(out);
        return st;
    }
    /* Integers, and data the header leaves misaligned for its type, are read. */
    if ((out->dtype != ATS_F32 && out->dtype != ATS_F64) || off % dtype_size(out->dtype) != 0 ||
        bytes == 0) {
        close(fd);
        return ats_npy_read(path, out, err);
    }
    void *map;
    size_t len;
    if ((st = ats_file_map_fd(fd, path, &map, &len, err))) {
        close(fd);
        ats_npy_free(out);
        return st;
    }
    if (len != off + bytes) { /* the file changed since its header was read */
        ats_file_unmap(map, len);
        close(fd);
        ats_npy_free(out);
        return ats_error_set(err, ATS_ERR_IO, "%s: the file changed while it was opened", path);
    }
    out->map = map;
    out->map_len = len;
    out->fd = fd;
    out->data = (char *)map + off;
    return ATS_OK;
}

void ats_npy_release(const ats_npy *arr, size_t first, size_t count) {
    if (!arr || !arr->map || first >= arr->count) return;
    if (count > arr->count - first) count = arr->count - first;
    size_t es = dtype_size(arr->dtype);
    long ps = sysconf(_SC_PAGESIZE);
    uintptr_t page = ps > 0 ? (uintptr_t)ps : 4096;
    uintptr_t a = (uintptr_t)arr->data + first * es, b = a + count * es;
    a = (a + page - 1) / page * page; /* whole pages inside the range only */
    b = b / page * page;
    if (b > a) madvise((void *)a, (size_t)(b - a), MADV_DONTNEED);
}

ats_status ats_npy_get_f64(const ats_npy *arr, const char *path, size_t first, size_t count,
                           double *out, ats_error *err) {
    if (arr->dtype != ATS_F32 && arr->dtype != ATS_F64)
        return ats_error_set(err, ATS_ERR_INVALID, "%s: not a float array", path);
    if (first > arr->count || count > arr->count - first)
        return ats_error_set(err, ATS_ERR_INVALID, "%s: elements %zu..%zu are outside its %zu",
                             path, first, first + count, arr->count);
    size_t es = dtype_size(arr->dtype);
    if (!arr->map) {
        if (arr->dtype == ATS_F64)
            memcpy(out, (const double *)arr->data + first, count * sizeof *out);
        else
            for (size_t j = 0; j < count; j++) out[j] = ((const float *)arr->data)[first + j];
        return ATS_OK;
    }
    /* No overflow: the elements lie inside the mapped file. */
    size_t at = (size_t)((const char *)arr->data - (const char *)arr->map) + first * es;
    char *to = (char *)out;
    for (size_t done = 0, want = count * es; done < want;) {
        ssize_t got = pread(arr->fd, to + done, want - done, (off_t)(at + done));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0)
            return ats_error_set(err, ATS_ERR_IO, "%s: cannot read: %s", path, strerror(errno));
        if (got == 0)
            return ats_error_set(err, ATS_ERR_IO, "%s: the file became shorter while it was read",
                                 path);
        done += (size_t)got;
    }
    /* float32 was read into the first half of out: widen from the end, where out[j] covers
       floats 2j and 2j+1, both already widened once j > 0. */
    if (arr->dtype == ATS_F32)
        for (size_t j = count; j-- > 0;) {
            float f;
            memcpy(&f, to + j * sizeof f, sizeof f);
            out[j] = f;
        }
    return ATS_OK;
}

ats_status ats_npy_check_finite(const ats_npy *arr, const char *path, ats_error *err) {
    size_t bad = arr->count;
    double v = 0;
    if (arr->dtype == ATS_F32) {
        bad = ats_f32_find_nonfinite(arr->data, arr->count);
        if (bad < arr->count) v = ((const float *)arr->data)[bad];
    } else if (arr->dtype == ATS_F64) {
        bad = ats_f64_find_nonfinite(arr->data, arr->count);
        if (bad < arr->count) v = ((const double *)arr->data)[bad];
    }
    if (bad == arr->count) return ATS_OK;
    char at[ATS_NPY_MAX_DIMS * 24 + 1] = "";
    size_t len = 0, rest = bad, idx[ATS_NPY_MAX_DIMS];
    for (int d = arr->ndim - 1; d >= 0; d--) {
        idx[d] = arr->shape[d] ? rest % arr->shape[d] : 0;
        rest = arr->shape[d] ? rest / arr->shape[d] : 0;
    }
    for (int d = 0; d < arr->ndim; d++)
        len += (size_t)snprintf(at + len, sizeof at - len, "[%zu]", idx[d]);
    return ats_error_set(err, ATS_ERR_INVALID, "%s: element %s is %g; the values must be finite",
                         path, at, v);
}

ats_status ats_npy_write(const char *path, ats_dtype dtype, int ndim, const size_t *shape,
                         const void *data, ats_error *err) {
    ats_outfile of;
    ats_status st = ats_npy_stage(path, dtype, ndim, shape, data, &of, err);
    return st ? st : ats_outfile_commit(&of, err);
}

ats_status ats_npy_stage(const char *path, ats_dtype dtype, int ndim, const size_t *shape,
                         const void *data, ats_outfile *of, ats_error *err) {
    memset(of, 0, sizeof *of);
    if (ndim < 0 || ndim > ATS_NPY_MAX_DIMS)
        return ats_error_set(err, ATS_ERR_INVALID, "%s: cannot write %d dimensions", path, ndim);
    char dict[512];
    int len = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': (",
                       dtype_descr(dtype));
    size_t count = 1;
    for (int i = 0; i < ndim; i++) {
        len += snprintf(dict + len, sizeof dict - (size_t)len, "%zu,%s", shape[i],
                        (i + 1 < ndim) ? " " : "");
        if (!ats_size_mul(count, shape[i], &count))
            return ats_error_set(err, ATS_ERR_RANGE, "%s: shape overflows", path);
    }
    if (ndim >= 2) len--; /* "(3, 4)" not "(3, 4,)"; a 1-tuple keeps its comma */
    len += snprintf(dict + len, sizeof dict - (size_t)len, "), }");
    /* Pad with spaces so that the data starts on a 64-byte boundary, as NumPy does. */
    size_t total = 10 + (size_t)len + 1;
    size_t pad = (64 - total % 64) % 64;
    size_t hlen = (size_t)len + pad + 1;
    unsigned char pre[10] = {0x93,
                             'N',
                             'U',
                             'M',
                             'P',
                             'Y',
                             1,
                             0,
                             (unsigned char)(hlen & 0xff),
                             (unsigned char)(hlen >> 8)};
    size_t bytes;
    if (!ats_size_mul(count, dtype_size(dtype), &bytes))
        return ats_error_set(err, ATS_ERR_RANGE, "%s: data size overflows", path);
    ats_status st = ats_outfile_open(of, path, err);
    if (st) return st;
    FILE *fp = of->fp;
    fwrite(pre, 1, 10, fp);
    fwrite(dict, 1, (size_t)len, fp);
    for (size_t i = 0; i < pad; i++) fputc(' ', fp);
    fputc('\n', fp);
    if (bytes && data) fwrite(data, 1, bytes, fp);
    /* flushed now, so that a full disk is found here and not at commit */
    if (fflush(fp) != 0 || ferror(fp)) {
        st = ats_error_set(err, ATS_ERR_IO, "%s: write failed: %s", path, strerror(errno));
        ats_outfile_abort(of);
    }
    return st;
}
