/* attnscope measure stats: head statistics over documents (ats_headstats), with token roles
 * from token files or positions, and word frequencies; moved out of cmd_measure.c unchanged. */
#include "measure_cli.h"
#include "attnscope/measure.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- stats */

/* Parses "P,P,..." (negative P counts from the end) for a document of n tokens into pos. */
static int parse_positions(const char *opt, const char *s, size_t n, size_t *pos, size_t *count,
                           const char *doc) {
    *count = 0;
    const char *p = s;
    while (*p) {
        errno = 0;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || errno || (*end && *end != ','))
            return usage_error("%s needs comma-separated integer positions, not '%s'", opt, s);
        long idx = v < 0 ? (long)n + v : v;
        if (idx < 0 || (size_t)idx >= n) {
            fprintf(stderr,
                    "attnscope measure: %s: position %ld of %s is outside the document's %zu "
                    "tokens\n",
                    doc, v, opt, n);
            return ATS_EXIT_INPUT;
        }
        if (*count < n) pos[(*count)++] = (size_t)idx;
        p = *end ? end + 1 : end;
    }
    return 0;
}

typedef struct token_file {
    char *text; /* file contents, lines NUL-terminated in place */
    char **tok; /* [n] */
    size_t n;
} token_file;

static void token_file_free(token_file *t) {
    free(t->text);
    free(t->tok);
    memset(t, 0, sizeof *t);
}

static int token_file_read(const char *path, token_file *t) {
    memset(t, 0, sizeof *t);
    ats_error err;
    size_t len;
    if (ats_file_read_all(path, (size_t)1 << 30, &t->text, &len, &err) != ATS_OK)
        return ats_cli_fail(&err);
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += t->text[i] == '\n';
    if (len && t->text[len - 1] != '\n') lines++;
    t->tok = malloc((lines ? lines : 1) * sizeof(char *));
    if (!t->tok) {
        token_file_free(t);
        ats_error_set(&err, ATS_ERR_NOMEM, "%s: out of memory", path);
        return ats_cli_fail(&err);
    }
    char *p = t->text, *end = t->text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        if (e > p && e[-1] == '\r') e[-1] = '\0';
        *e = '\0';
        t->tok[t->n++] = p;
        p = e + 1;
    }
    return 0;
}

/* A tiny string → count table (open addressing) for corpus token frequencies. */
typedef struct freq_table {
    char **key;
    double *count;
    size_t cap, used;
} freq_table;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

static int freq_grow(freq_table *f) {
    size_t cap = f->cap ? 2 * f->cap : 1024;
    char **key = calloc(cap, sizeof(char *));
    double *count = calloc(cap, sizeof(double));
    if (!key || !count) {
        free(key);
        free(count);
        return 0;
    }
    for (size_t i = 0; i < f->cap; i++) {
        if (!f->key[i]) continue;
        size_t h = (size_t)hash_str(f->key[i]) & (cap - 1);
        while (key[h]) h = (h + 1) & (cap - 1);
        key[h] = f->key[i];
        count[h] = f->count[i];
    }
    free(f->key);
    free(f->count);
    f->key = key;
    f->count = count;
    f->cap = cap;
    return 1;
}

/* Adds v to the count of s (s must outlive the table). Returns 0 on allocation failure. */
static int freq_add(freq_table *f, char *s, double v) {
    if ((f->used + 1) * 2 > f->cap && !freq_grow(f)) return 0;
    size_t h = (size_t)hash_str(s) & (f->cap - 1);
    while (f->key[h] && strcmp(f->key[h], s)) h = (h + 1) & (f->cap - 1);
    if (!f->key[h]) {
        f->key[h] = s;
        f->used++;
    }
    f->count[h] += v;
    return 1;
}

static double freq_get(const freq_table *f, const char *s) {
    if (!f->cap) return 0;
    size_t h = (size_t)hash_str(s) & (f->cap - 1);
    while (f->key[h]) {
        if (!strcmp(f->key[h], s)) return f->count[h];
        h = (h + 1) & (f->cap - 1);
    }
    return 0;
}

static ats_status write_stats(const char *path, const double *tab, size_t L, size_t H, size_t docs,
                              ats_error *err) {
    size_t len = strlen(path), N = L * H;
    if (len >= 4 && !strcmp(path + len - 4, ".npy")) {
        size_t shape[3] = {ATS_STAT_COUNT, L, H};
        return ats_npy_write(path, ATS_F64, 3, shape, tab, err);
    }
    int json = len >= 5 && !strcmp(path + len - 5, ".json");
    ats_outfile of;
    ats_status st = ats_outfile_open(&of, path, err);
    if (st) return st;
    FILE *fp = of.fp;
    if (json) {
        fprintf(fp, "{\n  \"layers\": %zu,\n  \"heads\": %zu,\n  \"documents\": %zu,\n", L, H,
                docs);
        fprintf(fp, "  \"stats\": {\n");
        for (int s = 0; s < ATS_STAT_COUNT; s++) {
            fprintf(fp, "    \"%s\": [", ats_head_stat_name((ats_head_stat)s));
            for (size_t l = 0; l < L; l++) {
                fputs(l ? ", [" : "[", fp);
                for (size_t h = 0; h < H; h++) {
                    if (h) fputs(", ", fp);
                    ats_cli_json_number(fp, tab[(size_t)s * N + l * H + h], 0);
                }
                fputc(']', fp);
            }
            fprintf(fp, "]%s\n", s + 1 < ATS_STAT_COUNT ? "," : "");
        }
        fprintf(fp, "  }\n}\n");
    } else {
        fputs("layer,head", fp);
        for (int s = 0; s < ATS_STAT_COUNT; s++)
            fprintf(fp, ",%s", ats_head_stat_name((ats_head_stat)s));
        fputc('\n', fp);
        for (size_t a = 0; a < N; a++) {
            fprintf(fp, "%zu,%zu", a / H, a % H);
            for (int s = 0; s < ATS_STAT_COUNT; s++) {
                double v = tab[(size_t)s * N + a];
                if (isnan(v))
                    fputs(",nan", fp);
                else
                    fprintf(fp, ",%.17g", v);
            }
            fputc('\n', fp);
        }
    }
    return ats_outfile_commit(&of, err);
}

int measure_run_stats(margs *a) {
    int rc =
        measure_check_allowed(a, " --base --normalize --sum-tol --tokens --freq-table --cls --sep "
                                 "--punct --cols --freq ");
    if (rc) return rc;
    size_t olen = strlen(a->output);
    if (!((olen >= 5 && !strcmp(a->output + olen - 5, ".json")) ||
          (olen >= 4 && !strcmp(a->output + olen - 4, ".csv")) ||
          (olen >= 4 && !strcmp(a->output + olen - 4, ".npy"))))
        return usage_error("stats --output must end in .json, .csv or .npy, not '%s'", a->output);
    int tok_mode = a->n_tokens > 0;
    if (tok_mode && (a->cls || a->sep || a->punct || a->freq))
        return usage_error("--tokens finds the roles itself; it does not combine with --cls, "
                           "--sep, --punct or --freq");
    if (tok_mode && a->n_tokens != a->n_inputs)
        return usage_error(
            "--tokens needs one token file per --input document (%zu files for %zu documents)",
            a->n_tokens, a->n_inputs);
    if (a->freq_table && !tok_mode) return usage_error("--freq-table needs --tokens");
    if (a->freq && a->n_inputs != 1)
        return usage_error("--freq applies to a single --input document; use --tokens for "
                           "several");
    if ((rc = measure_check_output(a->output))) return rc;

    ats_error err;
    ats_status st = ATS_OK;
    token_file *tf = NULL;
    freq_table ft = {0};
    char *table_text = NULL;
    ats_headstats *hs = NULL;
    ats_npy freq_arr = {0};
    size_t L = 0, H = 0;
    rc = 0;
    if (tok_mode) {
        tf = calloc(a->n_tokens, sizeof *tf);
        if (!tf) {
            st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (size_t d = 0; d < a->n_tokens && !rc; d++) rc = token_file_read(a->tokens[d], &tf[d]);
        if (rc) goto done;
        if (a->freq_table) { /* token<TAB or space>count per line */
            size_t len;
            if ((st = ats_file_read_all(a->freq_table, (size_t)1 << 31, &table_text, &len, &err)))
                goto done;
            char *p = table_text;
            size_t line = 0;
            while (*p) {
                line++;
                char *nl = strchr(p, '\n');
                if (nl) *nl = '\0';
                char *sp = strrchr(p, '\t');
                if (!sp) sp = strrchr(p, ' ');
                if (*p) {
                    double v;
                    if (!sp || (*sp = '\0', !ats_cli_parse_double(sp + 1, 0, &v)) || v < 0) {
                        st = ats_error_set(&err, ATS_ERR_FORMAT,
                                           "%s:%zu: expected 'token<TAB>count' with a count >= 0",
                                           a->freq_table, line);
                        goto done;
                    }
                    if (!freq_add(&ft, p, v)) {
                        st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
                        goto done;
                    }
                }
                if (!nl) break;
                p = nl + 1;
            }
        } else {
            for (size_t d = 0; d < a->n_tokens; d++)
                for (size_t i = 0; i < tf[d].n; i++)
                    if (!freq_add(&ft, tf[d].tok[i], 1.0)) {
                        st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
                        goto done;
                    }
        }
    }
    if (a->freq) {
        if ((st = ats_npy_read(a->freq, &freq_arr, &err))) goto done;
        if (freq_arr.ndim != 1 || (freq_arr.dtype != ATS_F64 && freq_arr.dtype != ATS_F32 &&
                                   freq_arr.dtype != ATS_I64 && freq_arr.dtype != ATS_I32)) {
            st = ats_error_set(&err, ATS_ERR_FORMAT, "%s: --freq must be a 1-D array [n]", a->freq);
            goto done;
        }
    }
    for (size_t d = 0; d < a->n_inputs && st == ATS_OK && !rc; d++) {
        ats_npy arr;
        ats_attn att;
        if ((rc = measure_load_attention(a->inputs[d], &arr, &att))) break;
        size_t n = att.n;
        size_t *buf = malloc(4 * (n ? n : 1) * sizeof(size_t));
        double *freq = malloc((n ? n : 1) * sizeof(double));
        ats_token_roles roles = {0};
        if (!buf || !freq) {
            st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
        } else if (tok_mode) {
            if (tf[d].n != n) {
                st = ats_error_set(&err, ATS_ERR_FORMAT,
                                   "%s has %zu tokens but %s has attention over %zu tokens",
                                   a->tokens[d], tf[d].n, a->inputs[d], n);
            } else {
                ats_token_roles_find(n, (const char *const *)tf[d].tok, NULL, buf, &roles);
                /* the first and end tokens are excluded from the rare-token statistic */
                for (size_t i = 0; i < n; i++) freq[i] = freq_get(&ft, tf[d].tok[i]);
                for (size_t i = 0; i < roles.n_cls; i++) freq[roles.cls[i]] = INFINITY;
                for (size_t i = 0; i < roles.n_sep; i++) freq[roles.sep[i]] = INFINITY;
                roles.freq = freq;
            }
        } else {
            const char *names[3] = {"--cls", "--sep", "--punct"};
            const char *vals[3] = {a->cls, a->sep, a->punct};
            const size_t **ptrs[3] = {&roles.cls, &roles.sep, &roles.punct};
            size_t *counts[3] = {&roles.n_cls, &roles.n_sep, &roles.n_punct};
            for (int r = 0; r < 3 && !rc; r++) {
                if (!vals[r]) continue;
                rc = parse_positions(names[r], vals[r], n, buf + (size_t)r * n, counts[r],
                                     a->inputs[d]);
                *ptrs[r] = buf + (size_t)r * n;
            }
            if (a->freq && !rc) {
                if (freq_arr.shape[0] != n) {
                    st = ats_error_set(&err, ATS_ERR_FORMAT,
                                       "%s has %zu frequencies but %s has %zu tokens", a->freq,
                                       freq_arr.shape[0], a->inputs[d], n);
                } else {
                    for (size_t i = 0; i < n; i++) {
                        switch (freq_arr.dtype) {
                        case ATS_F64:
                            freq[i] = ((const double *)freq_arr.data)[i];
                            break;
                        case ATS_F32:
                            freq[i] = ((const float *)freq_arr.data)[i];
                            break;
                        case ATS_I64:
                            freq[i] = (double)((const int64_t *)freq_arr.data)[i];
                            break;
                        default:
                            freq[i] = ((const int32_t *)freq_arr.data)[i];
                            break;
                        }
                    }
                    roles.freq = freq;
                }
            }
        }
        if (a->cols && st == ATS_OK && !rc) {
            rc = parse_positions("--cols", a->cols, n, buf + 3 * n, &roles.n_cols, a->inputs[d]);
            roles.cols = buf + 3 * n;
        }
        if (st == ATS_OK && !rc && !hs) {
            L = att.L;
            H = att.H;
            st = ats_headstats_new(L, H, &a->opts, &hs, &err);
        }
        if (st == ATS_OK && !rc) st = ats_headstats_add(hs, &att, &roles, &err);
        free(buf);
        free(freq);
        ats_npy_free(&arr);
    }
    if (st == ATS_OK && !rc) {
        size_t count = (size_t)ATS_STAT_COUNT * L * H;
        double *tab = malloc((count ? count : 1) * sizeof(double));
        if (!tab)
            st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
        else {
            st = ats_headstats_result(hs, tab, &err);
            if (st == ATS_OK) st = write_stats(a->output, tab, L, H, a->n_inputs, &err);
            free(tab);
        }
    }
done:
    if (tf)
        for (size_t d = 0; d < a->n_tokens; d++) token_file_free(&tf[d]);
    free(tf);
    free(ft.key);
    free(ft.count);
    free(table_text);
    ats_npy_free(&freq_arr);
    ats_headstats_free(hs);
    if (rc) return rc;
    return st == ATS_OK ? ATS_EXIT_OK : ats_cli_fail(&err);
}
