#include "attnscope/core.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *ats_status_str(ats_status status) {
    switch (status) {
    case ATS_OK:
        return "ok";
    case ATS_ERR_NOMEM:
        return "out of memory";
    case ATS_ERR_IO:
        return "input/output error";
    case ATS_ERR_FORMAT:
        return "malformed input";
    case ATS_ERR_INVALID:
        return "invalid value";
    case ATS_ERR_RANGE:
        return "size out of range";
    case ATS_ERR_CANCELLED:
        return "cancelled";
    }
    return "unknown status";
}

ats_status ats_error_set(ats_error *err, ats_status status, const char *fmt, ...) {
    if (err) {
        err->status = status;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return status;
}

void ats_error_clear(ats_error *err) {
    if (err) {
        err->status = ATS_OK;
        err->message[0] = '\0';
    }
}

int ats_size_mul(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a) return 0;
    *out = a * b;
    return 1;
}

int ats_size_add(size_t a, size_t b, size_t *out) {
    if (b > SIZE_MAX - a) return 0;
    *out = a + b;
    return 1;
}
