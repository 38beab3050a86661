/* Finite-number scans and the memory limit: the checks made before input is trusted (weights,
 * NPY arrays) and before large buffers are allocated (dense readers, persistence). */
#include "attnscope/core.h"

#include <math.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The exponent bits all ones: NaN or ±inf. Integer tests, so that -ffast-math could not fold
 * them away and the loop vectorises. */
#define SCAN_BLOCK 1024

size_t ats_f32_find_nonfinite(const float *x, size_t n) {
    for (size_t b = 0; b < n; b += SCAN_BLOCK) {
        size_t e = n - b < SCAN_BLOCK ? n : b + SCAN_BLOCK;
        uint32_t any = 0;
        for (size_t i = b; i < e; i++) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            any |= (uint32_t)((u & 0x7f800000u) == 0x7f800000u);
        }
        if (any)
            for (size_t i = b; i < e; i++)
                if (!isfinite(x[i])) return i;
    }
    return n;
}

size_t ats_f64_find_nonfinite(const double *x, size_t n) {
    for (size_t b = 0; b < n; b += SCAN_BLOCK) {
        size_t e = n - b < SCAN_BLOCK ? n : b + SCAN_BLOCK;
        uint64_t any = 0;
        for (size_t i = b; i < e; i++) {
            uint64_t u;
            memcpy(&u, &x[i], 8);
            any |= (uint64_t)((u & 0x7ff0000000000000ull) == 0x7ff0000000000000ull);
        }
        if (any)
            for (size_t i = b; i < e; i++)
                if (!isfinite(x[i])) return i;
    }
    return n;
}

static _Atomic size_t memory_limit; /* 0: the available memory */

void ats_memory_limit_set(size_t bytes) {
    atomic_store(&memory_limit, bytes);
}

size_t ats_memory_available(void) {
    size_t lim = atomic_load(&memory_limit);
    if (lim) return lim;
    FILE *fp = fopen("/proc/meminfo", "r");
    if (!fp) return SIZE_MAX;
    char line[256];
    size_t avail = SIZE_MAX;
    while (fgets(line, sizeof line, fp)) {
        unsigned long long kb;
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) {
            avail = kb > SIZE_MAX / 1024 ? SIZE_MAX : (size_t)kb * 1024;
            break;
        }
    }
    fclose(fp);
    return avail;
}

/* "1.50 GiB", "12.0 MiB": sizes in messages */
static void size_text(size_t bytes, char buf[32]) {
    double v = (double)bytes;
    if (v >= (double)(1ull << 30))
        snprintf(buf, 32, "%.2f GiB", v / (double)(1ull << 30));
    else
        snprintf(buf, 32, "%.1f MiB", v / (double)(1ull << 20));
}

ats_status ats_memory_check(size_t bytes, const char *what, ats_error *err) {
    size_t avail = ats_memory_available();
    if (bytes <= avail) return ATS_OK;
    char need[32], have[32];
    size_text(bytes, need);
    size_text(avail, have);
    if (atomic_load(&memory_limit))
        return ats_error_set(err, ATS_ERR_RANGE,
                             "%s needs about %s of memory, more than --max-memory allows (%s)",
                             what, need, have);
    return ats_error_set(err, ATS_ERR_RANGE,
                         "%s needs about %s of memory, more than the %s available "
                         "(--max-memory SIZE allows it anyway)",
                         what, need, have);
}

size_t ats_memory_parse(const char *s) {
    if (!s || !*s) return 0;
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v > 0) || !isfinite(v)) return 0;
    double unit = 1;
    switch (*end) {
    case 'K':
    case 'k':
        unit = 1024.0;
        end++;
        break;
    case 'M':
    case 'm':
        unit = 1024.0 * 1024;
        end++;
        break;
    case 'G':
    case 'g':
        unit = 1024.0 * 1024 * 1024;
        end++;
        break;
    case 'T':
    case 't':
        unit = 1024.0 * 1024 * 1024 * 1024;
        end++;
        break;
    default:
        break;
    }
    if (*end == 'B' || *end == 'b') end++;
    if (*end || v * unit >= 1.8e19) return 0;
    return (size_t)(v * unit);
}
