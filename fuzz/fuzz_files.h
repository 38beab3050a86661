/* Helpers of the fuzz targets that read a folder of files: one scratch folder per process, and
 * the fuzz input cut at NUL bytes into the files' contents. */
#ifndef ATS_FUZZ_FILES_H
#define ATS_FUZZ_FILES_H

#include "attnscope/tokenizer.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fresh folder under /tmp for this process (created once; NULL when it cannot be). */
static inline const char *fuzz_dir(void) {
    static char dir[64];
    if (!dir[0]) {
        snprintf(dir, sizeof dir, "/tmp/ats_fuzz.XXXXXX");
        if (!mkdtemp(dir)) return NULL;
    }
    return dir;
}

/* Writes data[len] as dir/name; len == SIZE_MAX removes the file instead. */
static inline void fuzz_put(const char *dir, const char *name, const void *data, size_t len) {
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    if (len == (size_t)-1) return;
    FILE *fp = fopen(path, "wb");
    if (!fp) return;
    if (len) fwrite(data, 1, len, fp);
    fclose(fp);
}

/* Links dir/name to the repository file `target` (relative to the working folder, the
 * repository's root under tools/fuzz.sh). */
static inline void fuzz_link(const char *dir, const char *name, const char *target) {
    char path[PATH_MAX], abs[PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    unlink(path);
    if (realpath(target, abs)) (void)!symlink(abs, path);
}

/* The k-th NUL-separated field of data[size] (k from 0): *len, or SIZE_MAX when there are fewer
 * fields. */
static inline const char *fuzz_field(const char *data, size_t size, int k, size_t *len) {
    const char *p = data, *end = data + size;
    for (int i = 0; i < k; i++) {
        const char *nul = memchr(p, 0, (size_t)(end - p));
        if (!nul) {
            *len = (size_t)-1;
            return NULL;
        }
        p = nul + 1;
    }
    const char *nul = memchr(p, 0, (size_t)(end - p));
    *len = nul ? (size_t)(nul - p) : (size_t)(end - p);
    return p;
}

/* Encodes text[len] with tok, with and without the special tokens, and aborts on an encoding
 * whose offsets leave the text or whose ids have no token (a failed encoding is fine). */
static inline void fuzz_encode_check(const ats_tokenizer *tok, const char *text, size_t len) {
    for (int special = 0; special < 2; special++) {
        ats_encoding enc;
        ats_error err;
        if (ats_tokenizer_encode(tok, text, len, special, &enc, &err) != ATS_OK) continue;
        for (size_t i = 0; i < enc.count; i++)
            if (enc.offsets[2 * i] > enc.offsets[2 * i + 1] || enc.offsets[2 * i + 1] > len ||
                ats_tokenizer_id_to_token(tok, enc.ids[i]) == NULL)
                abort();
        ats_encoding_free(&enc);
    }
}

#endif
