/* `attnscope`, the executable users run. The persistence and measure commands — the ones
 * scripts call thousands of times on small inputs — run here, in a binary that links nothing
 * but the C library, cJSON and OpenMP. Every other command (models, figures, the viewer, MPI)
 * is handed, with exec(), to `attnscope-full` beside this executable: linking cairo, pango,
 * OpenBLAS, libmicrohttpd and MPI costs every process about 10 ms and 10 MB before main(). */
#define _XOPEN_SOURCE 700 /* readlink */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct command {
    const char *name;
    int (*run)(int argc, char **argv);
} command;

static const command LEAN[] = {
    {"rips", ats_cmd_rips},
    {"bottleneck", ats_cmd_bottleneck},
    {"wasserstein", ats_cmd_wasserstein},
    {"measure", ats_cmd_measure},
};

/* The models run on attnscope's own kernels (src/model/gemm.c) and call OpenBLAS on one thread
 * only. OpenBLAS would still start a worker per core as it loads, and a worker spins for its
 * first ~0.1 s, taking a core from OpenMP's threads: a 2-thread `compare` then took 0.12 s
 * instead of 0.04 s. So, unless the user chose, OpenBLAS starts with one thread. */
static void blas_threads_choose(void) {
    if (!getenv("OPENBLAS_NUM_THREADS")) setenv("OPENBLAS_NUM_THREADS", "1", 0);
}

int main(int argc, char **argv) {
    if (ats_cli_kernel_check() != ATS_EXIT_OK) return ATS_EXIT_INPUT;
    ats_cli_remove_temporaries_on_signal();
    if (argc >= 2)
        for (size_t i = 0; i < sizeof LEAN / sizeof LEAN[0]; i++)
            if (!strcmp(argv[1], LEAN[i].name)) {
                if (ats_cli_take_max_memory(&argc, argv) != ATS_EXIT_OK) return ATS_EXIT_INPUT;
                return LEAN[i].run(argc - 1, argv + 1);
            }
    char self[PATH_MAX], full[PATH_MAX + 32];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    if (len <= 0) {
        fprintf(stderr, "attnscope: cannot find its own executable: %s\n", strerror(errno));
        return ATS_EXIT_FAIL;
    }
    self[len] = '\0';
    char *slash = strrchr(self, '/');
    if (slash) *slash = '\0';
    snprintf(full, sizeof full, "%s/attnscope-full", slash ? self : ".");
    blas_threads_choose();
    execv(full, argv);
    fprintf(stderr, "attnscope: cannot run %s: %s\n", full, strerror(errno));
    return ATS_EXIT_FAIL;
}
