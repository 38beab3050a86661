/* The roles of tokens (first token, end token, punctuation) that the head statistics need, from
 * the tokens' spelling: one rule for every caller, whatever tokenizer made them. */
#include "attnscope/measure.h"

#include <ctype.h>
#include <string.h>

static int is_cls_token(const char *s) {
    return !strcmp(s, "[CLS]") || !strcmp(s, "<s>") || !strcmp(s, "<cls>");
}

static int is_sep_token(const char *s) {
    return !strcmp(s, "[SEP]") || !strcmp(s, "</s>") || !strcmp(s, "<sep>") ||
           !strcmp(s, "<|endoftext|>");
}

/* After a word-piece marker, every character is ASCII punctuation or a common Unicode mark:
 * "##," and "Ġ." are punctuation, "##" alone is not a marker but two '#'. */
static int is_punct_token(const char *s) {
    static const char *const marks[] = {"\xe2\x80\x9c", "\xe2\x80\x9d", "\xe2\x80\x98",
                                        "\xe2\x80\x99", "\xe2\x80\xa6", "\xe2\x80\x93",
                                        "\xe2\x80\x94", "\xc2\xab",     "\xc2\xbb",
                                        "\xc2\xbf",     "\xc2\xa1",     "\xc2\xb7"};
    if (!strncmp(s, "##", 2) && s[2])
        s += 2;
    else if (!strncmp(s, "\xc4\xa0", 2))
        s += 2;
    else if (!strncmp(s, "\xe2\x96\x81", 3))
        s += 3;
    if (!*s) return 0;
    while (*s) {
        if ((unsigned char)*s < 0x80) {
            if (!ispunct((unsigned char)*s)) return 0;
            s++;
            continue;
        }
        size_t m = 0;
        for (size_t k = 0; k < sizeof marks / sizeof marks[0] && !m; k++)
            if (!strncmp(s, marks[k], strlen(marks[k]))) m = strlen(marks[k]);
        if (!m) return 0;
        s += m;
    }
    return 1;
}

void ats_token_roles_find(size_t n, const char *const *tokens, const uint8_t *special,
                          size_t *positions, ats_token_roles *roles) {
    memset(roles, 0, sizeof *roles);
    size_t *cls = positions, *sep = positions + n, *punct = positions + 2 * n;
    for (size_t i = 0; i < n; i++) {
        const char *t = tokens[i];
        int c = is_cls_token(t), e = is_sep_token(t);
        if (c) cls[roles->n_cls++] = i;
        if (e) sep[roles->n_sep++] = i;
        if (!c && !e && !(special && special[i]) && is_punct_token(t)) punct[roles->n_punct++] = i;
    }
    roles->cls = cls;
    roles->sep = sep;
    roles->punct = punct;
}
