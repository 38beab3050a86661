/* A corpus streamed one line at a time: plain text (one text a line) or JSONL (one object a
 * line with a string field "text"), from a file or from memory. Memory is one line. */
#include "analysis_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

void ats_corpus_source_init(ats_corpus_source *src) {
    memset(src, 0, sizeof *src);
    src->jsonl = -1;
}

ats_status ats_corpus_open(ats_corpus *c, const ats_corpus_source *src, size_t max_bytes,
                           ats_error *err) {
    memset(c, 0, sizeof *c);
    const char *path = src->path ? src->path : "corpus";
    int jsonl = src->jsonl;
    c->path = path;
    c->max_bytes = max_bytes;
    c->size = -1;
    if (src->data) {
        /* a stream over the caller's bytes, so that memory reads exactly as a file does; no
         * stream for no bytes (fmemopen refuses a size of 0) */
        c->fp = src->size ? fmemopen((void *)src->data, src->size, "rb") : NULL;
        if (src->size && !c->fp)
            return ats_error_set(err, ATS_ERR_NOMEM, "%s: cannot read the corpus: %s", path,
                                 strerror(errno));
        c->size = (long long)src->size;
    } else {
        c->fp = fopen(path, "rb");
        if (!c->fp)
            return ats_error_set(err, ATS_ERR_IO, "%s: cannot open the corpus: %s", path,
                                 strerror(errno));
        struct stat sb;
        if (fstat(fileno(c->fp), &sb) == 0) {
            if (S_ISDIR(sb.st_mode)) {
                fclose(c->fp);
                c->fp = NULL;
                return ats_error_set(err, ATS_ERR_IO, "%s: is a directory, not a corpus file",
                                     path);
            }
            if (S_ISREG(sb.st_mode)) c->size = (long long)sb.st_size;
        }
    }
    if (jsonl < 0) {
        jsonl = ends_with(path, ".jsonl") || ends_with(path, ".ndjson");
        if (!jsonl && c->size > 0) { /* peek at the first non-space byte */
            int ch;
            while ((ch = fgetc(c->fp)) != EOF &&
                   (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r'))
                ;
            jsonl = ch == '{';
            rewind(c->fp);
        }
    }
    c->jsonl = jsonl;
    return ATS_OK;
}

static int all_space(const char *s, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\f' && s[i] != '\v') return 0;
    return 1;
}

int ats_corpus_next(ats_corpus *c, ats_line_kind *kind, ats_error *err) {
    free(c->json_text);
    c->json_text = NULL;
    if (!c->fp) return 0;
    errno = 0;
    ssize_t got = getline(&c->line, &c->cap, c->fp);
    if (got < 0) {
        if (ferror(c->fp)) {
            ats_error_set(err, ATS_ERR_IO, "%s: read error after line %zu: %s", c->path, c->line_no,
                          strerror(errno));
            return -1;
        }
        return 0;
    }
    c->line_no++;
    c->position += got;
    size_t n = (size_t)got;
    while (n && (c->line[n - 1] == '\n' || c->line[n - 1] == '\r')) n--;
    c->line[n] = '\0';
    c->text = c->line;
    c->len = n;
    if (all_space(c->line, n)) {
        *kind = ATS_LINE_EMPTY;
        return 1;
    }
    if (n > c->max_bytes) {
        *kind = ATS_LINE_LONG;
        return 1;
    }
    size_t bad = ats_utf8_check(c->line, n);
    if (bad < n || memchr(c->line, '\0', n)) {
        c->bad_offset = bad < n ? bad : (size_t)((char *)memchr(c->line, '\0', n) - c->line);
        *kind = ATS_LINE_BADUTF;
        return 1;
    }
    if (c->jsonl) {
        cJSON *obj = cJSON_ParseWithLength(c->line, n);
        cJSON *t =
            obj && cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, "text") : NULL;
        if (!t || !cJSON_IsString(t) || !t->valuestring) {
            cJSON_Delete(obj);
            *kind = ATS_LINE_BADJSON;
            return 1;
        }
        c->json_text = strdup(t->valuestring);
        cJSON_Delete(obj);
        if (!c->json_text) {
            ats_error_set(err, ATS_ERR_NOMEM, "%s:%zu: out of memory", c->path, c->line_no);
            return -1;
        }
        c->text = c->json_text;
        c->len = strlen(c->json_text);
        if (all_space(c->text, c->len)) {
            *kind = ATS_LINE_EMPTY;
            return 1;
        }
        bad = ats_utf8_check(c->text, c->len);
        if (bad < c->len) {
            c->bad_offset = bad;
            *kind = ATS_LINE_BADUTF;
            return 1;
        }
    }
    *kind = ATS_LINE_TEXT;
    return 1;
}

void ats_corpus_close(ats_corpus *c) {
    if (c->fp) fclose(c->fp);
    free(c->line);
    free(c->json_text);
    memset(c, 0, sizeof *c);
}
