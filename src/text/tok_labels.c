/* Display labels of tokens: what each covers in the text, the one rule for the commands, the
 * viewer and Python. */
#include "attnscope/tokenizer.h"

#include <stdlib.h>
#include <string.h>

static int blank(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

ats_status ats_token_labels(const ats_encoding *enc, const char *text, char **labels,
                            ats_error *err) {
    for (size_t i = 0; i < enc->count; i++) {
        size_t s = enc->offsets[2 * i], e = enc->offsets[2 * i + 1];
        if (!enc->special[i] && e > s) {
            while (s < e && blank(text[s])) s++;
            while (e > s && blank(text[e - 1])) e--;
        }
        labels[i] = !enc->special[i] && e > s ? strndup(text + s, e - s) : strdup(enc->tokens[i]);
        if (!labels[i]) {
            for (size_t j = 0; j < i; j++) free(labels[j]);
            return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        }
    }
    return ATS_OK;
}
