/* The kernel path (see core.h): what the CPU supports, and the one choice every kernel table
 * reads. The choice is one process-wide value because the CPU is: each module's kernels
 * (src/model/gemm.c, src/model/kernels.c, src/measure/kernels.c) ask ats_kernel_path_get() and
 * pick their variant from it. */
#include "attnscope/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef ATS_VERSION_STRING
#error "the build defines ATS_VERSION_STRING (CMake's project version)"
#endif

static const char *const PATH_NAMES[ATS_KERNEL_PATH_COUNT] = {"generic", "avx2", "avx512", "neon"};

const char *ats_version(void) {
    return ATS_VERSION_STRING;
}

const char *ats_kernel_path_name(ats_kernel_path path) {
    return (unsigned)path < ATS_KERNEL_PATH_COUNT ? PATH_NAMES[path] : NULL;
}

int ats_kernel_path_supported(ats_kernel_path path) {
    switch (path) {
    case ATS_KERNEL_GENERIC:
        return 1;
#if defined(__x86_64__) && defined(__GNUC__)
    case ATS_KERNEL_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case ATS_KERNEL_AVX512:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") &&
               __builtin_cpu_supports("fma");
#endif
#if defined(__aarch64__)
    case ATS_KERNEL_NEON: /* Advanced SIMD is part of the aarch64 base architecture */
        return 1;
#endif
    default:
        return 0;
    }
}

static ats_kernel_path best_supported(void) {
    static const ats_kernel_path ORDER[] = {ATS_KERNEL_AVX512, ATS_KERNEL_AVX2, ATS_KERNEL_NEON};
    for (size_t i = 0; i < sizeof ORDER / sizeof ORDER[0]; i++)
        if (ats_kernel_path_supported(ORDER[i])) return ORDER[i];
    return ATS_KERNEL_GENERIC;
}

void ats_kernel_paths_supported(char *buf, size_t size) {
    static const ats_kernel_path ORDER[] = {ATS_KERNEL_GENERIC, ATS_KERNEL_NEON, ATS_KERNEL_AVX2,
                                            ATS_KERNEL_AVX512};
    size_t used = 0;
    if (!size) return;
    buf[0] = '\0';
    for (size_t i = 0; i < sizeof ORDER / sizeof ORDER[0]; i++) {
        if (!ats_kernel_path_supported(ORDER[i])) continue;
        const char *name = PATH_NAMES[ORDER[i]];
        size_t len = strlen(name) + (used > 0);
        if (used + len + 1 > size) break;
        if (used) buf[used++] = ' ';
        memcpy(buf + used, name, strlen(name) + 1);
        used += strlen(name);
    }
}

/* ATS_KERNEL's path; -1: unset or empty; -2: not a path name */
static int env_path(void) {
    const char *v = getenv("ATS_KERNEL");
    if (!v || !*v) return -1;
    for (int p = 0; p < ATS_KERNEL_PATH_COUNT; p++)
        if (!strcmp(v, PATH_NAMES[p])) return p;
    return -2;
}

/* -1 until the first ats_kernel_path_get or _set; read and written atomically so that threads
 * asking at once all see one value */
static int chosen = -1;

ats_kernel_path ats_kernel_path_get(void) {
    int p = __atomic_load_n(&chosen, __ATOMIC_ACQUIRE);
    if (p >= 0) return (ats_kernel_path)p;
    int e = env_path();
    p = e >= 0 && ats_kernel_path_supported((ats_kernel_path)e) ? e : (int)best_supported();
    int expected = -1;
    if (!__atomic_compare_exchange_n(&chosen, &expected, p, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        p = expected;
    return (ats_kernel_path)p;
}

static ats_status unsupported(ats_error *err, const char *what) {
    char have[64];
    ats_kernel_paths_supported(have, sizeof have);
    return ats_error_set(err, ATS_ERR_INVALID, "kernel path %s: this CPU and build support: %s",
                         what, have);
}

ats_status ats_kernel_path_set(ats_kernel_path path, ats_error *err) {
    if ((unsigned)path >= ATS_KERNEL_PATH_COUNT) return unsupported(err, "(not a path)");
    if (!ats_kernel_path_supported(path)) return unsupported(err, PATH_NAMES[path]);
    __atomic_store_n(&chosen, (int)path, __ATOMIC_RELEASE);
    return ATS_OK;
}

ats_status ats_kernel_path_check_env(ats_error *err) {
    int e = env_path();
    if (e == -1) return ATS_OK;
    if (e == -2) {
        char what[128];
        const char *v = getenv("ATS_KERNEL");
        snprintf(what, sizeof what, "'%.60s' (ATS_KERNEL) is not a path name", v ? v : "");
        return unsupported(err, what);
    }
    if (!ats_kernel_path_supported((ats_kernel_path)e)) return unsupported(err, PATH_NAMES[e]);
    return ATS_OK;
}
