/* Reading and building finite metrics: Ripser's text formats, NumPy arrays, point clouds.
 * Every value is checked and every error names the file, the row and the column. */
#include "attnscope/rips.h"
#include "lower.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define METRIC_MAX_POINTS ((size_t)1 << 20)

size_t ats_lower_index(size_t i, size_t j) {
    return lower_index(i, j);
}

double ats_lower_at(const ats_lower *m, size_t i, size_t j) {
    return i == j ? 0.0 : m->d[lower_index(i, j)];
}

static int is_sep(char c) {
    return c == ',' || c == ' ' || c == '\t' || c == ';' || c == '\r';
}

/* A parsed text: numbers with the line and field they came from. */
typedef struct numbers {
    double *v;
    size_t len, cap;
    size_t *line_start; /* index in v of the first number of each non-empty line... */
    size_t *line_count; /* numbers on each line */
    size_t *line_no;    /* 1-based line number in the file */
    size_t lines, lines_cap;
} numbers;

static void numbers_free(numbers *nb) {
    free(nb->v);
    free(nb->line_start);
    free(nb->line_count);
    free(nb->line_no);
    memset(nb, 0, sizeof *nb);
}

/* Reads one line (without the newline) into a growable buffer; returns 0 at end of file. */
static int read_line(FILE *fp, char **buf, size_t *cap, size_t *len, int *nul) {
    size_t n = 0;
    int c, any = 0;
    while ((c = getc(fp)) != EOF) {
        any = 1;
        if (c == '\n') break;
        if (c == '\0') *nul = 1;
        if (n + 1 >= *cap) {
            size_t nc = *cap ? *cap * 2 : 4096;
            char *nb = realloc(*buf, nc);
            if (!nb) return -1;
            *buf = nb;
            *cap = nc;
        }
        (*buf)[n++] = (char)c;
    }
    if (!any) return 0;
    if (!*buf) {
        *buf = malloc(1);
        if (!*buf) return -1;
        *cap = 1;
    }
    (*buf)[n] = '\0';
    *len = n;
    return 1;
}

/* Parses the numbers of a text file line by line (the file is streamed, never held whole). */
static ats_status parse_numbers(const char *path, numbers *nb, ats_error *err) {
    memset(nb, 0, sizeof *nb);
    FILE *fp = fopen(path, "rb");
    if (!fp) return ats_error_set(err, ATS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *buf = NULL;
    size_t cap = 0, llen = 0, line = 0;
    int nul = 0, got;
    ats_status st = ATS_OK;
    while (!st && (got = read_line(fp, &buf, &cap, &llen, &nul)) != 0) {
        line++;
        if (got < 0) {
            st = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
            break;
        }
        if (nul) {
            st = ats_error_set(err, ATS_ERR_FORMAT, "%s: line %zu: binary data (NUL byte)", path,
                               line);
            break;
        }
        const char *p = buf;
        size_t first = nb->len, cnt = 0, field = 0;
        while (*p && !st) {
            if (is_sep(*p)) {
                p++;
                continue;
            }
            field++;
            char *end;
            double x = strtod(p, &end);
            if (end == p || (*end && !is_sep(*end))) {
                const char *q = p;
                while (*q && !is_sep(*q) && q - p < 24) q++;
                st = ats_error_set(err, ATS_ERR_FORMAT,
                                   "%s: line %zu, field %zu: '%.*s' is not a number", path, line,
                                   field, (int)(q - p), p);
                break;
            }
            if (nb->len == nb->cap) {
                size_t nc = nb->cap ? nb->cap + nb->cap / 2 : 1024;
                double *nv = realloc(nb->v, nc * sizeof *nv);
                if (!nv) {
                    st = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
                    break;
                }
                nb->v = nv;
                nb->cap = nc;
            }
            nb->v[nb->len++] = x;
            cnt++;
            p = end;
        }
        if (cnt && !st) {
            if (nb->lines == nb->lines_cap) {
                size_t nc = nb->lines_cap ? nb->lines_cap * 2 : 256;
                size_t *a = realloc(nb->line_start, nc * sizeof *a);
                if (a) nb->line_start = a;
                size_t *b = realloc(nb->line_count, nc * sizeof *b);
                if (b) nb->line_count = b;
                size_t *c = realloc(nb->line_no, nc * sizeof *c);
                if (c) nb->line_no = c;
                if (!a || !b || !c) {
                    st = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
                    break;
                }
                nb->lines_cap = nc;
            }
            nb->line_start[nb->lines] = first;
            nb->line_count[nb->lines] = cnt;
            nb->line_no[nb->lines] = line;
            nb->lines++;
        }
    }
    if (!st && ferror(fp)) st = ats_error_set(err, ATS_ERR_IO, "%s: read error", path);
    free(buf);
    fclose(fp);
    if (st) numbers_free(nb);
    return st;
}

static ats_status check_value(const char *name, size_t row, size_t col, double d, ats_error *err) {
    if (isnan(d) || isinf(d) || d < 0)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "%s: row %zu, column %zu: distance %g is not a finite non-negative "
                             "number",
                             name, row, col, d);
    return ATS_OK;
}

/* Entry t of a full matrix of doubles or floats (a mapped .npy is read in place). */
static inline double full_at(const void *full, int is_f32, size_t t) {
    return is_f32 ? (double)((const float *)full)[t] : ((const double *)full)[t];
}

static ats_status from_full(size_t n, const void *full, int is_f32, int symmetrize,
                            const char *name, double *lower, ats_error *err) {
    if (!name) name = "distance matrix";
    for (size_t i = 0; i < n; i++) {
        double d = full_at(full, is_f32, i * n + i);
        if (d != 0.0)
            return ats_error_set(err, ATS_ERR_INVALID,
                                 "%s: row %zu, column %zu: diagonal entry %g is not 0", name, i + 1,
                                 i + 1, d);
        for (size_t j = 0; j < i; j++) {
            double a = full_at(full, is_f32, i * n + j), b = full_at(full, is_f32, j * n + i);
            ats_status st = check_value(name, i + 1, j + 1, a, err);
            if (!st) st = check_value(name, j + 1, i + 1, b, err);
            if (st) return st;
            double scale = fabs(a) > 1.0 ? fabs(a) : 1.0;
            if (!symmetrize && fabs(a - b) > 1e-12 * scale)
                return ats_error_set(err, ATS_ERR_INVALID,
                                     "%s: row %zu, column %zu: matrix is not symmetric (%.17g vs "
                                     "%.17g at row %zu, column %zu); use --symmetrize",
                                     name, i + 1, j + 1, a, b, j + 1, i + 1);
            lower[lower_index(i, j)] = symmetrize ? 0.5 * (a + b) : a;
        }
    }
    return ATS_OK;
}

ats_status ats_metric_from_full(size_t n, const double *full, int symmetrize, const char *name,
                                double *lower, ats_error *err) {
    return from_full(n, full, 0, symmetrize, name, lower, err);
}

ats_status ats_metric_from_points(size_t n, size_t dim, const double *points, double *lower,
                                  ats_error *err) {
    for (size_t i = 0; i < n * dim; i++)
        if (!isfinite(points[i]))
            return ats_error_set(err, ATS_ERR_INVALID,
                                 "point cloud: point %zu, coordinate %zu is not finite",
                                 i / dim + 1, i % dim + 1);
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++) {
            double s = 0.0;
            for (size_t k = 0; k < dim; k++) {
                double t = points[i * dim + k] - points[j * dim + k];
                s += t * t;
            }
            if (!isfinite(s)) /* coordinates near 1e154 and beyond: the square overflows */
                return ats_error_set(err, ATS_ERR_RANGE,
                                     "point cloud: the distance between points %zu and %zu "
                                     "overflows a double",
                                     j + 1, i + 1);
            lower[lower_index(i, j)] = sqrt(s);
        }
    return ATS_OK;
}

static ats_status alloc_lower(const char *path, size_t count, size_t n, double **out,
                              ats_error *err) {
    size_t m, total;
    if (n > METRIC_MAX_POINTS || !ats_size_mul(n, n - (n > 0), &m) ||
        !ats_size_mul(m / 2, count, &total) || !ats_size_mul(total, sizeof(double), &total))
        return ats_error_set(err, ATS_ERR_RANGE, "%s: %zu points is too many", path, n);
    char what[600];
    snprintf(what, sizeof what, "%s: the distances of %zu points", path, n);
    ats_status st = ats_memory_check(total, what, err);
    if (st) return st;
    *out = malloc(total ? total : 1);
    if (!*out) return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    return ATS_OK;
}

static ats_status read_npy(const char *path, int symmetrize, size_t *count, size_t *n,
                           double **lowers, ats_error *err) {
    ats_npy a;
    /* mapped: each matrix is read in place into its lower triangle, never copied whole */
    ats_status st = ats_npy_map(path, &a, err);
    if (st) return st;
    if ((a.ndim != 2 && a.ndim != 3) || a.shape[a.ndim - 1] != a.shape[a.ndim - 2] ||
        (a.dtype != ATS_F32 && a.dtype != ATS_F64)) {
        ats_npy_free(&a);
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: expected a float32/float64 array of shape [n][n] or [B][n][n]",
                             path);
    }
    size_t b = a.ndim == 3 ? a.shape[0] : 1, nn = a.shape[a.ndim - 1];
    if (nn == 0 || b == 0) {
        ats_npy_free(&a);
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: empty distance matrix", path);
    }
    st = alloc_lower(path, b, nn, lowers, err);
    size_t m = nn * (nn - 1) / 2, es = a.dtype == ATS_F32 ? sizeof(float) : sizeof(double);
    char name[600];
    for (size_t k = 0; k < b && !st; k++) {
        if (b > 1)
            snprintf(name, sizeof name, "%s: matrix %zu", path, k);
        else
            snprintf(name, sizeof name, "%s", path);
        st = from_full(nn, (const char *)a.data + k * nn * nn * es, a.dtype == ATS_F32, symmetrize,
                       name, *lowers + k * m, err);
        ats_npy_release(&a, k * nn * nn, nn * nn);
    }
    ats_npy_free(&a);
    if (st) {
        free(*lowers);
        *lowers = NULL;
        return st;
    }
    *count = b;
    *n = nn;
    return ATS_OK;
}

ats_status ats_metric_read(const char *path, ats_metric_format format, int symmetrize,
                           size_t *count, size_t *n, double **lowers, ats_error *err) {
    *lowers = NULL;
    *count = 0;
    *n = 0;
    if (format == ATS_METRIC_NPY) return read_npy(path, symmetrize, count, n, lowers, err);
    numbers nb;
    ats_status st = parse_numbers(path, &nb, err);
    if (st) return st;
    if (nb.len == 0 && format != ATS_METRIC_LOWER_DISTANCE) {
        numbers_free(&nb);
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: no numbers in the file", path);
    }
    size_t pts = 0;
    if (format == ATS_METRIC_LOWER_DISTANCE) {
        /* Ripser: the strict lower triangle, read as one stream of numbers. */
        size_t m = nb.len;
        double root = floor((1.0 + sqrt(1.0 + 8.0 * (double)m)) / 2.0 + 0.5);
        pts = (size_t)root;
        if (m == 0 && nb.lines == 0) {
            /* An empty file is a one-point space in Ripser; here it is an error: almost always
               a mistake. */
            numbers_free(&nb);
            return ats_error_set(err, ATS_ERR_FORMAT, "%s: empty file", path);
        }
        if (pts * (pts - 1) / 2 != m) {
            numbers_free(&nb);
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: %zu values do not form a strict lower triangle "
                                 "(n(n-1)/2 values for n points)",
                                 path, m);
        }
        for (size_t i = 1, t = 0; i < pts && !st; i++)
            for (size_t j = 0; j < i && !st; j++, t++)
                st = check_value(path, i + 1, j + 1, nb.v[t], err);
        if (!st) {
            /* the numbers are the lower triangle already: hand the array over */
            *lowers = nb.v ? nb.v : malloc(sizeof(double));
            nb.v = NULL;
            if (!*lowers) st = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
        }
    } else if (format == ATS_METRIC_DISTANCE) {
        pts = nb.lines;
        for (size_t i = 0; i < nb.lines && !st; i++)
            if (nb.line_count[i] != pts)
                st = ats_error_set(err, ATS_ERR_FORMAT,
                                   "%s: line %zu (row %zu) has %zu values but the matrix has %zu "
                                   "rows; a distance matrix must be square",
                                   path, nb.line_no[i], i + 1, nb.line_count[i], pts);
        if (!st) st = alloc_lower(path, 1, pts, lowers, err);
        if (!st) st = ats_metric_from_full(pts, nb.v, symmetrize, path, *lowers, err);
    } else if (format == ATS_METRIC_POINT_CLOUD) {
        pts = nb.lines;
        size_t dim = nb.line_count[0];
        for (size_t i = 1; i < nb.lines && !st; i++)
            if (nb.line_count[i] != dim)
                st = ats_error_set(err, ATS_ERR_FORMAT,
                                   "%s: line %zu has %zu coordinates, line %zu has %zu; every "
                                   "point needs the same dimension",
                                   path, nb.line_no[i], nb.line_count[i], nb.line_no[0], dim);
        for (size_t t = 0; t < nb.len && !st; t++)
            if (!isfinite(nb.v[t]))
                st = ats_error_set(err, ATS_ERR_INVALID,
                                   "%s: line %zu, coordinate %zu is not finite", path,
                                   nb.line_no[t / dim], t % dim + 1);
        if (!st) st = alloc_lower(path, 1, pts, lowers, err);
        if (!st && (st = ats_metric_from_points(pts, dim, nb.v, *lowers, err)) && err) {
            char why[sizeof err->message];
            snprintf(why, sizeof why, "%s", err->message);
            ats_error_set(err, st, "%s: %s", path, why); /* the file, then what is wrong */
        }
    } else {
        st = ats_error_set(err, ATS_ERR_INVALID, "%s: unknown metric format", path);
    }
    numbers_free(&nb);
    if (st) {
        free(*lowers);
        *lowers = NULL;
        return st;
    }
    *count = 1;
    *n = pts;
    return ATS_OK;
}
