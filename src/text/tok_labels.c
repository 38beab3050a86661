/* Display labels of tokens: what each covers in the text, the one rule for the commands, the
 * viewer and Python. */
#include "attnscope/tokenizer.h"

#include <stdlib.h>
#include <string.h>

static int blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* The blanks b[0..len) made visible: a label must never be empty or invisible. */
static char *visible_blanks(const char *b, size_t len) {
    char *out = malloc(3 * len + 1), *o = out;
    if (!out) return NULL;
    for (size_t k = 0; k < len; k++) {
        const char *v = b[k] == '\n'   ? "\xe2\x86\xb5"  /* ↵ */
                        : b[k] == '\t' ? "\xe2\x87\xa5"  /* ⇥ */
                        : b[k] == '\r' ? ""              /* \r\n is one line break */
                                       : "\xe2\x90\xa3"; /* ␣ */
        size_t m = strlen(v);
        memcpy(o, v, m);
        o += m;
    }
    if (o == out) { /* only \r */
        memcpy(o, "\xe2\x86\xb5", 3);
        o += 3;
    }
    *o = 0;
    return out;
}

/* The label of the text s[0..e): without surrounding blanks, or its blanks made visible. */
static char *label_of(const char *s, size_t e) {
    size_t a = 0, z = e;
    while (a < z && blank(s[a])) a++;
    while (z > a && blank(s[z - 1])) z--;
    return a < z ? strndup(s + a, z - a) : visible_blanks(s, e);
}

char *ats_token_label(const char *token) {
    /* the blanks spelled as letters: byte-level BPE's bytes 0x20, 0x0A, 0x09 (U+0120, U+010A,
     * U+0109) and SentencePiece's U+2581 */
    size_t len = strlen(token);
    char *t = malloc(len + 1);
    if (!t) return NULL;
    size_t m = 0;
    for (size_t k = 0; k < len;) {
        const unsigned char *u = (const unsigned char *)token + k;
        if (u[0] == 0xc4 && (u[1] == 0xa0 || u[1] == 0x8a || u[1] == 0x89)) {
            t[m++] = u[1] == 0xa0 ? ' ' : u[1] == 0x8a ? '\n' : '\t';
            k += 2;
        } else if (u[0] == 0xe2 && u[1] == 0x96 && u[2] == 0x81) {
            t[m++] = ' ';
            k += 3;
        } else {
            t[m++] = token[k++];
        }
    }
    char *out = m ? label_of(t, m) : strdup(token);
    free(t);
    return out;
}

ats_status ats_token_labels(const ats_encoding *enc, const char *text, char **labels,
                            ats_error *err) {
    for (size_t i = 0; i < enc->count; i++) {
        size_t s = enc->offsets[2 * i], e = enc->offsets[2 * i + 1];
        if (enc->special[i])
            labels[i] = strdup(enc->tokens[i]);
        else if (e > s)
            labels[i] = label_of(text + s, e - s);
        else
            labels[i] = ats_token_label(enc->tokens[i]);
        if (!labels[i]) {
            for (size_t j = 0; j < i; j++) free(labels[j]);
            return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        }
    }
    return ATS_OK;
}
