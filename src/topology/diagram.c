/* Persistence diagram files: plain pairs (GUDHI .pers), Ripser's text output, attnscope JSON and
 * DIPHA's binary persistence diagrams. */
#include "attnscope/diagram.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIPHA_MAGIC               8067171840LL
#define DIPHA_PERSISTENCE_DIAGRAM 2
#define DIAGRAM_FILE_MAX          ((size_t)1 << 40)

void ats_diagram_free(ats_diagram *d) {
    if (!d) return;
    free(d->pairs);
    d->pairs = NULL;
    d->count = 0;
}

void ats_matching_free(ats_matching *m) {
    if (!m) return;
    free(m->pairs);
    m->pairs = NULL;
    m->count = 0;
}

/* ---- a growing list of points */

typedef struct pair_list {
    size_t count, cap;
    double *pairs; /* [cap][2] */
} pair_list;

static ats_status pair_list_push(pair_list *l, double birth, double death, const char *name,
                                 ats_error *err) {
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap : 64, bytes;
        if (!ats_size_mul(cap, 2, &cap) || !ats_size_mul(cap, 2 * sizeof(double), &bytes))
            return ats_error_set(err, ATS_ERR_RANGE, "%s: too many points", name);
        double *p = realloc(l->pairs, bytes);
        if (!p) return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", name);
        l->pairs = p;
        l->cap = cap;
    }
    l->pairs[2 * l->count] = birth;
    l->pairs[2 * l->count + 1] = death;
    l->count++;
    return ATS_OK;
}

static void pair_list_finish(pair_list *l, ats_diagram *out) {
    out->count = l->count;
    out->pairs = l->pairs;
    if (l->count == 0) {
        free(l->pairs);
        out->pairs = NULL;
    }
    l->pairs = NULL;
    l->count = l->cap = 0;
}

ats_status ats_diagram_from_pairs(size_t count, const double *pairs, ats_diagram *out,
                                  ats_error *err) {
    out->count = 0;
    out->pairs = NULL;
    if (count == 0) return ATS_OK;
    size_t bytes;
    if (!ats_size_mul(count, 2 * sizeof(double), &bytes))
        return ats_error_set(err, ATS_ERR_RANGE, "diagram of %zu points is too large", count);
    for (size_t i = 0; i < count; i++)
        if (isnan(pairs[2 * i]) || isnan(pairs[2 * i + 1]))
            return ats_error_set(err, ATS_ERR_INVALID, "diagram point %zu is NaN", i);
    out->pairs = malloc(bytes);
    if (!out->pairs) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    memcpy(out->pairs, pairs, bytes);
    out->count = count;
    return ATS_OK;
}

/* ---- text helpers */

/* Parses one number token [s, e): decimal or inf/-inf/+inf/infinity. Returns 0 on failure. */
static int parse_number(const char *s, const char *e, double *out) {
    char buf[128];
    size_t len = (size_t)(e - s);
    if (len == 0 || len >= sizeof buf) return 0;
    memcpy(buf, s, len);
    buf[len] = '\0';
    /* strtod would take hexadecimal and "nan(...)"; diagrams are decimal. */
    for (size_t i = 0; i < len; i++)
        if (buf[i] == 'x' || buf[i] == 'X') return 0;
    errno = 0;
    char *end;
    double v = strtod(buf, &end);
    if (*end != '\0' || isnan(v)) return 0;
    if (errno == ERANGE && isinf(v)) return 0; /* overflow of a finite literal */
    *out = v;
    return 1;
}

static int is_nan_token(const char *s, const char *e) {
    if (s < e && (*s == '+' || *s == '-')) s++;
    return e - s >= 3 && tolower((unsigned char)s[0]) == 'n' &&
           tolower((unsigned char)s[1]) == 'a' && tolower((unsigned char)s[2]) == 'n';
}

static ats_status bad_token(const char *name, size_t line, const char *s, const char *e,
                            const char *what, ats_error *err) {
    int len = (int)(e - s > 40 ? 40 : e - s);
    if (is_nan_token(s, e))
        return ats_error_set(err, ATS_ERR_INVALID, "%s:%zu: %s is NaN", name, line, what);
    return ats_error_set(err, ATS_ERR_FORMAT, "%s:%zu: %s: expected a number, found '%.*s'", name,
                         line, what, len, s);
}

static int is_sep(char c) {
    return c == ' ' || c == '\t' || c == ',' || c == '\r' || c == '\v';
}

/* ---- PAIRS: [[field] dim] birth death */

static ats_status parse_pairs(const char *text, size_t len, const char *name, int dim,
                              ats_diagram *out, ats_error *err) {
    pair_list l = {0, 0, NULL};
    const char *p = text, *end = text + len;
    size_t line = 0, first_line = 0;
    int ncols = 0;
    static const char *const col_names[4][4] = {{"", "", "", ""},
                                                {"birth", "death", "", ""},
                                                {"dimension", "birth", "death", ""},
                                                {"field", "dimension", "birth", "death"}};
    ats_status st = ATS_OK;
    while (p < end) {
        line++;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *hash = memchr(p, '#', (size_t)(eol - p));
        const char *stop = hash ? hash : eol;
        const char *tok[5][2];
        int nt = 0;
        const char *q = p;
        while (q < stop) {
            while (q < stop && is_sep(*q)) q++;
            if (q >= stop) break;
            const char *s = q;
            while (q < stop && !is_sep(*q)) q++;
            if (nt == 4) {
                st = ats_error_set(err, ATS_ERR_FORMAT,
                                   "%s:%zu: more than 4 columns (expected `birth death`, "
                                   "`dim birth death` or `field dim birth death`)",
                                   name, line);
                goto fail;
            }
            tok[nt][0] = s;
            tok[nt][1] = q;
            nt++;
        }
        p = eol < end ? eol + 1 : end;
        if (nt == 0) continue;
        if (nt == 1) {
            st = ats_error_set(err, ATS_ERR_FORMAT,
                               "%s:%zu: one column; expected `birth death` on each line", name,
                               line);
            goto fail;
        }
        if (ncols == 0) {
            ncols = nt;
            first_line = line;
        } else if (nt != ncols) {
            st = ats_error_set(err, ATS_ERR_FORMAT,
                               "%s:%zu: %d columns, but line %zu has %d; every line must have "
                               "the same number",
                               name, line, nt, first_line, ncols);
            goto fail;
        }
        double v[4];
        for (int c = 0; c < nt; c++)
            if (!parse_number(tok[c][0], tok[c][1], &v[c])) {
                st = bad_token(name, line, tok[c][0], tok[c][1], col_names[nt - 1][c], err);
                goto fail;
            }
        for (int c = 0; c < nt - 2; c++)
            if (!isfinite(v[c]) || v[c] != floor(v[c]) || v[c] < 0 || v[c] > 1e9) {
                st = ats_error_set(
                    err, ATS_ERR_FORMAT, "%s:%zu: %s must be a non-negative integer, found '%.*s'",
                    name, line, col_names[nt - 1][c], (int)(tok[c][1] - tok[c][0]), tok[c][0]);
                goto fail;
            }
        if (nt >= 3 && dim >= 0 && (int)v[nt - 3] != dim) continue;
        st = pair_list_push(&l, v[nt - 2], v[nt - 1], name, err);
        if (st) goto fail;
    }
    pair_list_finish(&l, out);
    return ATS_OK;
fail:
    free(l.pairs);
    return st;
}

/* ---- RIPSER text output */

static const char RIPSER_HEADER[] = "persistence intervals in dim ";

static ats_status parse_ripser(const char *text, size_t len, const char *name, int dim,
                               ats_diagram *out, ats_error *err) {
    pair_list l = {0, 0, NULL};
    const char *p = text, *end = text + len;
    size_t line = 0;
    long cur = -1;
    int seen_header = 0;
    ats_status st = ATS_OK;
    const size_t hlen = sizeof RIPSER_HEADER - 1;
    while (p < end) {
        line++;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        const char *q = p;
        p = eol < end ? eol + 1 : end;
        while (q < eol && (*q == ' ' || *q == '\t')) q++;
        if ((size_t)(eol - q) >= hlen && !memcmp(q, RIPSER_HEADER, hlen)) {
            /* the digits of K within the line (the text need not end in a NUL, so no strtol) */
            const char *s = q + hlen, *e;
            while (s < eol && (*s == ' ' || *s == '\t')) s++;
            long k = 0;
            for (e = s; e < eol && *e >= '0' && *e <= '9' && k <= 1000000; e++)
                k = 10 * k + (*e - '0');
            if (e == s || k > 1000000 || e >= eol || *e != ':') {
                st = ats_error_set(err, ATS_ERR_FORMAT,
                                   "%s:%zu: malformed header; expected 'persistence intervals "
                                   "in dim K:'",
                                   name, line);
                goto fail;
            }
            cur = k;
            seen_header = 1;
            continue;
        }
        if (cur < 0 || q >= eol || *q != '[') continue;
        /* [b,d) or [b, ) possibly followed by representatives, which are ignored */
        const char *s = q + 1, *c = memchr(s, ',', (size_t)(eol - s));
        const char *close = c ? memchr(c, ')', (size_t)(eol - c)) : NULL;
        if (!c || !close) {
            st = ats_error_set(err, ATS_ERR_FORMAT,
                               "%s:%zu: malformed interval; expected ' [birth,death)' or "
                               "' [birth, )'",
                               name, line);
            goto fail;
        }
        const char *bs = s, *be = c;
        while (bs < be && isspace((unsigned char)*bs)) bs++;
        while (be > bs && isspace((unsigned char)be[-1])) be--;
        const char *ds = c + 1, *de = close;
        while (ds < de && isspace((unsigned char)*ds)) ds++;
        while (de > ds && isspace((unsigned char)de[-1])) de--;
        double b, d = INFINITY;
        if (!parse_number(bs, be, &b)) {
            st = bad_token(name, line, bs, be, "birth", err);
            goto fail;
        }
        if (ds < de && !parse_number(ds, de, &d)) {
            st = bad_token(name, line, ds, de, "death", err);
            goto fail;
        }
        if (dim >= 0 && cur != dim) continue;
        st = pair_list_push(&l, b, d, name, err);
        if (st) goto fail;
    }
    if (!seen_header) {
        st =
            ats_error_set(err, ATS_ERR_FORMAT,
                          "%s: no line 'persistence intervals in dim K:'; not Ripser output", name);
        goto fail;
    }
    pair_list_finish(&l, out);
    return ATS_OK;
fail:
    free(l.pairs);
    return st;
}

/* ---- JSON */

static size_t line_of(const char *text, const char *pos) {
    size_t line = 1;
    for (const char *p = text; p < pos; p++)
        if (*p == '\n') line++;
    return line;
}

/* A coordinate: number, null (only for a death: +inf), or "inf"/"-inf" strings. */
static int json_coord(const cJSON *v, int is_death, double *out) {
    if (cJSON_IsNumber(v)) {
        if (isnan(v->valuedouble)) return 0;
        *out = v->valuedouble;
        return 1;
    }
    if (cJSON_IsNull(v) && is_death) {
        *out = INFINITY;
        return 1;
    }
    if (cJSON_IsString(v) && v->valuestring) {
        const char *s = v->valuestring;
        const char *e = s + strlen(s);
        double d;
        if (parse_number(s, e, &d) && isinf(d)) {
            *out = d;
            return 1;
        }
    }
    return 0;
}

static ats_status json_pairs(const cJSON *arr, const char *name, const char *where, pair_list *l,
                             ats_error *err) {
    if (!cJSON_IsArray(arr))
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: %s: expected an array of [birth, death]",
                             name, where);
    size_t i = 0;
    for (const cJSON *pt = arr->child; pt; pt = pt->next, i++) {
        double b, d;
        if (!cJSON_IsArray(pt) || cJSON_GetArraySize(pt) != 2 || !json_coord(pt->child, 0, &b) ||
            !json_coord(pt->child->next, 1, &d))
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: %s[%zu]: expected [birth, death] with numbers (null "
                                 "death for an essential class)",
                                 name, where, i);
        ats_status st = pair_list_push(l, b, d, name, err);
        if (st) return st;
    }
    return ATS_OK;
}

static ats_status parse_json(const char *text, size_t len, const char *name, int dim,
                             ats_diagram *out, ats_error *err) {
    const char *parse_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len, &parse_end, 0);
    if (!root) {
        size_t line = parse_end ? line_of(text, parse_end) : 0;
        return ats_error_set(err, ATS_ERR_FORMAT, "%s:%zu: malformed JSON", name, line);
    }
    /* Anything but whitespace after the value is an error. */
    for (const char *p = parse_end; p && p < text + len; p++)
        if (!isspace((unsigned char)*p)) {
            cJSON_Delete(root);
            return ats_error_set(err, ATS_ERR_FORMAT, "%s:%zu: text after the JSON value", name,
                                 line_of(text, p));
        }
    pair_list l = {0, 0, NULL};
    ats_status st = ATS_OK;
    if (cJSON_IsArray(root)) {
        st = json_pairs(root, name, "pairs", &l, err);
    } else {
        const cJSON *dims = cJSON_GetObjectItemCaseSensitive(root, "dims");
        /* topo's result.json and the viewer's analysis hold the same object as "diagrams" */
        const cJSON *nested = cJSON_GetObjectItemCaseSensitive(root, "diagrams");
        if (!dims && cJSON_IsObject(nested))
            dims = cJSON_GetObjectItemCaseSensitive(nested, "dims");
        if (!cJSON_IsObject(root) || !cJSON_IsArray(dims)) {
            st = ats_error_set(err, ATS_ERR_FORMAT,
                               "%s: expected {\"dims\":[{\"dim\":K,\"pairs\":[[b,d],...]},...]} "
                               "(or topo's result.json, which holds it as \"diagrams\")",
                               name);
        } else {
            size_t i = 0;
            for (const cJSON *e = dims->child; e && !st; e = e->next, i++) {
                const cJSON *k = cJSON_GetObjectItemCaseSensitive(e, "dim");
                const cJSON *pairs = cJSON_GetObjectItemCaseSensitive(e, "pairs");
                char where[64];
                snprintf(where, sizeof where, "dims[%zu]", i);
                if (!cJSON_IsObject(e) || !cJSON_IsNumber(k) || k->valuedouble < 0 ||
                    k->valuedouble != floor(k->valuedouble) || k->valuedouble > 1e9) {
                    st = ats_error_set(err, ATS_ERR_FORMAT,
                                       "%s: %s: expected an object with an integer \"dim\" >= 0",
                                       name, where);
                    break;
                }
                if (dim >= 0 && (int)k->valuedouble != dim) continue;
                snprintf(where, sizeof where, "dims[%zu].pairs", i);
                st = json_pairs(pairs, name, where, &l, err);
            }
        }
    }
    cJSON_Delete(root);
    if (st) {
        free(l.pairs);
        return st;
    }
    pair_list_finish(&l, out);
    return ATS_OK;
}

/* ---- DIPHA */

static int64_t le_i64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return (int64_t)v;
}

static double le_f64(const unsigned char *p) {
    uint64_t v = (uint64_t)le_i64(p);
    double d;
    memcpy(&d, &v, sizeof d);
    return d;
}

static ats_status parse_dipha(const unsigned char *buf, size_t len, const char *name, int dim,
                              ats_diagram *out, ats_error *err) {
    if (len < 24 || le_i64(buf) != DIPHA_MAGIC)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: not a DIPHA file (no magic number 8067171840)", name);
    int64_t type = le_i64(buf + 8), count = le_i64(buf + 16);
    if (type != DIPHA_PERSISTENCE_DIAGRAM)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: DIPHA file of type %lld, not a persistence diagram (type 2)",
                             name, (long long)type);
    size_t need;
    if (count < 0 || !ats_size_mul((size_t)count, 24, &need) || !ats_size_add(need, 24, &need))
        return ats_error_set(err, ATS_ERR_RANGE, "%s: DIPHA header: absurd point count %lld", name,
                             (long long)count);
    if (need != len)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: DIPHA header promises %lld points (%zu bytes) but the file has "
                             "%zu bytes",
                             name, (long long)count, need, len);
    pair_list l = {0, 0, NULL};
    for (size_t i = 0; i < (size_t)count; i++) {
        const unsigned char *r = buf + 24 + 24 * i;
        int64_t d = le_i64(r);
        double b = le_f64(r + 8), de = le_f64(r + 16);
        if (d < -1000000000LL || d > 1000000000LL) {
            free(l.pairs);
            return ats_error_set(err, ATS_ERR_FORMAT, "%s: DIPHA point %zu: absurd dimension %lld",
                                 name, i, (long long)d);
        }
        if (d < 0) {
            d = -d - 1;
            de = INFINITY;
        }
        if (isnan(b) || isnan(de)) {
            free(l.pairs);
            return ats_error_set(err, ATS_ERR_INVALID, "%s: DIPHA point %zu is NaN", name, i);
        }
        if (dim >= 0 && d != dim) continue;
        ats_status st = pair_list_push(&l, b, de, name, err);
        if (st) {
            free(l.pairs);
            return st;
        }
    }
    pair_list_finish(&l, out);
    return ATS_OK;
}

/* ---- detection and entry points */

static ats_diagram_format detect(const char *buf, size_t len) {
    if (len >= 8 && le_i64((const unsigned char *)buf) == DIPHA_MAGIC) return ATS_DIAGRAM_DIPHA;
    size_t i = 0;
    if (len >= 3 && !memcmp(buf, "\xEF\xBB\xBF", 3)) i = 3; /* UTF-8 byte order mark */
    while (i < len && isspace((unsigned char)buf[i])) i++;
    if (i < len && (buf[i] == '{' || buf[i] == '[')) return ATS_DIAGRAM_JSON;
    /* Ripser output: a header line somewhere (it may follow other header lines). */
    const size_t hlen = sizeof RIPSER_HEADER - 1;
    for (const char *p = buf; p + hlen <= buf + len;) {
        const char *q = p;
        while (q < buf + len && (*q == ' ' || *q == '\t')) q++;
        if ((size_t)(buf + len - q) >= hlen && !memcmp(q, RIPSER_HEADER, hlen))
            return ATS_DIAGRAM_RIPSER;
        const char *nl = memchr(p, '\n', (size_t)(buf + len - p));
        if (!nl) break;
        p = nl + 1;
    }
    return ATS_DIAGRAM_PAIRS;
}

static ats_status parse_any(const char *text, size_t len, const char *name,
                            ats_diagram_format format, int dim, ats_diagram *out, ats_error *err) {
    out->count = 0;
    out->pairs = NULL;
    if (dim < -1)
        return ats_error_set(err, ATS_ERR_INVALID, "%s: dimension %d (expected >= 0, or -1)", name,
                             dim);
    if (format == ATS_DIAGRAM_AUTO) format = detect(text, len);
    const char *t = text;
    size_t n = len;
    if (format != ATS_DIAGRAM_DIPHA && n >= 3 && !memcmp(t, "\xEF\xBB\xBF", 3)) t += 3, n -= 3;
    switch (format) {
    case ATS_DIAGRAM_PAIRS:
        return parse_pairs(t, n, name, dim, out, err);
    case ATS_DIAGRAM_RIPSER:
        return parse_ripser(t, n, name, dim, out, err);
    case ATS_DIAGRAM_JSON:
        return parse_json(t, n, name, dim, out, err);
    case ATS_DIAGRAM_DIPHA:
        return parse_dipha((const unsigned char *)text, len, name, dim, out, err);
    default:
        return ats_error_set(err, ATS_ERR_INVALID, "%s: unknown diagram format", name);
    }
}

ats_status ats_diagram_parse(const char *text, size_t len, const char *name,
                             ats_diagram_format format, int dim, ats_diagram *out, ats_error *err) {
    return parse_any(text, len, name ? name : "<diagram>", format, dim, out, err);
}

ats_status ats_diagram_read_format(const char *path, ats_diagram_format format, int dim,
                                   ats_diagram *out, ats_error *err) {
    out->count = 0;
    out->pairs = NULL;
    char *buf;
    size_t len;
    ats_status st = ats_file_read_all(path, DIAGRAM_FILE_MAX, &buf, &len, err);
    if (st) return st;
    st = parse_any(buf, len, path, format, dim, out, err);
    free(buf);
    return st;
}

ats_status ats_diagram_read(const char *path, int dim, ats_diagram *out, ats_error *err) {
    return ats_diagram_read_format(path, ATS_DIAGRAM_AUTO, dim, out, err);
}

ats_status ats_diagram_detect(const char *path, ats_diagram_format *format, ats_error *err) {
    char *buf;
    size_t len;
    ats_status st = ats_file_read_all(path, DIAGRAM_FILE_MAX, &buf, &len, err);
    if (st) return st;
    *format = detect(buf, len);
    free(buf);
    return ATS_OK;
}

/* ---- writers */

static void put_number(FILE *fp, double v) {
    if (isinf(v))
        fputs(v > 0 ? "inf" : "-inf", fp);
    else
        fprintf(fp, "%.17g", v);
}

ats_status ats_diagram_write_pairs(const char *path, const ats_diagram *d, ats_error *err) {
    ats_outfile of;
    ats_status st = ats_outfile_open(&of, path, err);
    if (st) return st;
    FILE *fp = of.fp;
    for (size_t i = 0; i < d->count; i++) {
        put_number(fp, d->pairs[2 * i]);
        fputc(' ', fp);
        put_number(fp, d->pairs[2 * i + 1]);
        fputc('\n', fp);
    }
    return ats_outfile_commit(&of, err);
}

static void put_json_coord(FILE *fp, double v, int is_death) {
    char buf[ATS_JSON_NUMBER_MAX];
    fwrite(buf, 1, ats_json_number_format(v, is_death ? ATS_JSON_DEATH : 0, buf), fp);
}

ats_status ats_diagram_write_json(const char *path, size_t count, const ats_diagram *diagrams,
                                  const int *dims, ats_error *err) {
    ats_outfile of;
    ats_status st = ats_outfile_open(&of, path, err);
    if (st) return st;
    FILE *fp = of.fp;
    fputs("{\"dims\":[", fp);
    for (size_t k = 0; k < count; k++) {
        fprintf(fp, "%s\n{\"dim\":%d,\"pairs\":[", k ? "," : "", dims[k]);
        const ats_diagram *d = &diagrams[k];
        for (size_t i = 0; i < d->count; i++) {
            fputs(i ? ",[" : "[", fp);
            put_json_coord(fp, d->pairs[2 * i], 0);
            fputc(',', fp);
            put_json_coord(fp, d->pairs[2 * i + 1], 1);
            fputc(']', fp);
        }
        fputs("]}", fp);
    }
    fputs("\n]}\n", fp);
    return ats_outfile_commit(&of, err);
}

static void put_le64(FILE *fp, uint64_t v) {
    unsigned char b[8];
    for (int i = 0; i < 8; i++) b[i] = (unsigned char)(v >> (8 * i));
    fwrite(b, 1, 8, fp);
}

static void put_f64(FILE *fp, double d) {
    uint64_t v;
    memcpy(&v, &d, sizeof v);
    put_le64(fp, v);
}

ats_status ats_diagram_write_dipha(const char *path, size_t count, const ats_diagram *diagrams,
                                   const int *dims, ats_error *err) {
    size_t total = 0;
    for (size_t k = 0; k < count; k++)
        if (!ats_size_add(total, diagrams[k].count, &total))
            return ats_error_set(err, ATS_ERR_RANGE, "%s: too many points", path);
    for (size_t k = 0; k < count; k++)
        if (dims[k] < 0)
            return ats_error_set(err, ATS_ERR_INVALID, "%s: dimension %d < 0", path, dims[k]);
    ats_outfile of;
    ats_status st = ats_outfile_open(&of, path, err);
    if (st) return st;
    FILE *fp = of.fp;
    put_le64(fp, (uint64_t)DIPHA_MAGIC);
    put_le64(fp, DIPHA_PERSISTENCE_DIAGRAM);
    put_le64(fp, (uint64_t)total);
    for (size_t k = 0; k < count; k++) {
        const ats_diagram *d = &diagrams[k];
        for (size_t i = 0; i < d->count; i++) {
            double b = d->pairs[2 * i], de = d->pairs[2 * i + 1];
            int64_t dm = dims[k];
            if (isinf(de) && de > 0) dm = -dm - 1;
            put_le64(fp, (uint64_t)dm);
            put_f64(fp, b);
            put_f64(fp, de);
        }
    }
    return ats_outfile_commit(&of, err);
}
