/* Names of heads for `attnscope heads`. */
#include "heads.h"
#include "attnscope/rips.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void heads_name(char *buf, size_t n, const char *prefix, size_t l, size_t h) {
    snprintf(buf, n, "%sL%zuH%zu", prefix ? prefix : "", l, h);
}
