/* The one writer of numbers into JSON; the rule is in core.h. */
#include "attnscope/core.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

size_t ats_json_number_format(double v, unsigned flags, char buf[ATS_JSON_NUMBER_MAX]) {
    const char *word = NULL;
    if (isnan(v) || (v == INFINITY && (flags & ATS_JSON_DEATH)))
        word = "null";
    else if (isinf(v))
        word = v > 0 ? "\"inf\"" : "\"-inf\"";
    if (word) {
        size_t n = strlen(word);
        memcpy(buf, word, n + 1);
        return n;
    }
    /* at most 24 characters ("-2.2250738585072014e-308"), so snprintf never truncates */
    int n = snprintf(buf, ATS_JSON_NUMBER_MAX, (flags & ATS_JSON_FLOAT) ? "%.9g" : "%.17g", v);
    return (size_t)n;
}
