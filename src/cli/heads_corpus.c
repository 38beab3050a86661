/* The corpus of `attnscope heads`, streamed one line at a time: plain text (one text a line) or
 * JSONL (one object a line with a string field "text"). Memory is one line. */
#include "heads.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

size_t heads_utf8_check(const char *s, size_t len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        size_t k;
        unsigned min;
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xC2 && c <= 0xDF) {
            k = 1;
            min = 0x80;
        } else if (c >= 0xE0 && c <= 0xEF) {
            k = 2;
            min = 0x800;
        } else if (c >= 0xF0 && c <= 0xF4) {
            k = 3;
            min = 0x10000;
        } else {
            return i;
        }
        if (len - i <= k) return i;
        unsigned cp = c & (0x3Fu >> k);
        for (size_t j = 1; j <= k; j++) {
            if ((p[i + j] & 0xC0) != 0x80) return i;
            cp = (cp << 6) | (p[i + j] & 0x3Fu);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
        i += k + 1;
    }
    return len;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

ats_status heads_corpus_open(heads_corpus *c, const char *path, int jsonl, size_t max_bytes,
                             ats_error *err) {
    memset(c, 0, sizeof *c);
    c->path = path;
    c->max_bytes = max_bytes;
    c->size = -1;
    c->fp = fopen(path, "rb");
    if (!c->fp)
        return ats_error_set(err, ATS_ERR_IO, "%s: cannot open the corpus: %s", path,
                             strerror(errno));
    struct stat sb;
    if (fstat(fileno(c->fp), &sb) == 0) {
        if (S_ISDIR(sb.st_mode)) {
            fclose(c->fp);
            c->fp = NULL;
            return ats_error_set(err, ATS_ERR_IO, "%s: is a directory, not a corpus file", path);
        }
        if (S_ISREG(sb.st_mode)) c->size = (long long)sb.st_size;
    }
    if (jsonl < 0) {
        jsonl = ends_with(path, ".jsonl") || ends_with(path, ".ndjson");
        if (!jsonl && c->size >= 0) { /* peek at the first non-space byte */
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

int heads_corpus_next(heads_corpus *c, heads_line_kind *kind, ats_error *err) {
    free(c->json_text);
    c->json_text = NULL;
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
        *kind = HEADS_LINE_EMPTY;
        return 1;
    }
    if (n > c->max_bytes) {
        *kind = HEADS_LINE_LONG;
        return 1;
    }
    size_t bad = heads_utf8_check(c->line, n);
    if (bad < n || memchr(c->line, '\0', n)) {
        c->bad_offset = bad < n ? bad : (size_t)((char *)memchr(c->line, '\0', n) - c->line);
        *kind = HEADS_LINE_BADUTF;
        return 1;
    }
    if (c->jsonl) {
        cJSON *obj = cJSON_ParseWithLength(c->line, n);
        cJSON *t =
            obj && cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, "text") : NULL;
        if (!t || !cJSON_IsString(t) || !t->valuestring) {
            cJSON_Delete(obj);
            *kind = HEADS_LINE_BADJSON;
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
            *kind = HEADS_LINE_EMPTY;
            return 1;
        }
        bad = heads_utf8_check(c->text, c->len);
        if (bad < c->len) {
            c->bad_offset = bad;
            *kind = HEADS_LINE_BADUTF;
            return 1;
        }
    }
    *kind = HEADS_LINE_TEXT;
    return 1;
}

void heads_corpus_close(heads_corpus *c) {
    if (c->fp) fclose(c->fp);
    free(c->line);
    free(c->json_text);
    memset(c, 0, sizeof *c);
}
