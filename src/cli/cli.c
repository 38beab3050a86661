/* Plumbing shared by every subcommand, in both executables (see lean_main.c). */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ats_cli_fail(const ats_error *err) {
    fprintf(stderr, "attnscope: %s\n",
            err->message[0] ? err->message : ats_status_str(err->status));
    switch (err->status) {
    case ATS_ERR_FORMAT:
    case ATS_ERR_INVALID:
    case ATS_ERR_RANGE:
    case ATS_ERR_IO:
        return ATS_EXIT_INPUT;
    default:
        return ATS_EXIT_FAIL;
    }
}

int ats_cli_usage_error(const char *cmd, const char *fmt, ...) {
    fprintf(stderr, "attnscope %s: ", cmd);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return ATS_EXIT_INPUT;
}

int ats_cli_parse_double(const char *s, int allow_inf, double *out) {
    if (!s || !*s) return 0;
    errno = 0;
    char *end;
    double v = strtod(s, &end);
    if (*end != '\0' || errno == ERANGE || isnan(v)) return 0;
    if (isinf(v) && !allow_inf) return 0;
    *out = v;
    return 1;
}

int ats_cli_parse_long(const char *s, long lo, long hi, long *out) {
    if (!s || !*s) return 0;
    errno = 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || errno == ERANGE || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

int ats_cli_parse_image_size(const char *s, int *height, int *width) {
    char *end = NULL;
    long h = s ? strtol(s, &end, 10) : 0, w = h;
    if (end && *end == 'x') w = strtol(end + 1, &end, 10);
    if (!s || !end || *end || h < 1 || w < 1 || h > 16384 || w > 16384) return 0;
    *height = (int)h;
    *width = (int)w;
    return 1;
}

int ats_cli_kernel_check(void) {
    ats_error err;
    if (ats_kernel_path_check_env(&err) == ATS_OK) return ATS_EXIT_OK;
    fprintf(stderr, "attnscope: %s\n", err.message);
    return ATS_EXIT_INPUT;
}

void ats_cli_print_version(void) {
    char have[64];
    ats_kernel_paths_supported(have, sizeof have);
    printf("attnscope %s\nkernel: %s (this CPU supports: %s; ATS_KERNEL chooses)\n", ats_version(),
           ats_kernel_path_name(ats_kernel_path_get()), have);
}

static void remove_temporaries_and_die(int sig) {
    ats_outfile_remove_temporaries();
    signal(sig, SIG_DFL);
    raise(sig);
}

void ats_cli_remove_temporaries_on_signal(void) {
    static const int SIGNALS[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < sizeof SIGNALS / sizeof SIGNALS[0]; i++) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = remove_temporaries_and_die;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGNALS[i], &sa, NULL);
    }
}

int ats_cli_take_max_memory(int *argc, char **argv) {
    for (int i = 1; i < *argc; i++) {
        const char *v = NULL;
        int used = 0;
        if (!strcmp(argv[i], "--max-memory")) {
            v = i + 1 < *argc ? argv[i + 1] : NULL;
            used = 2;
        } else if (!strncmp(argv[i], "--max-memory=", 13)) {
            v = argv[i] + 13;
            used = 1;
        } else {
            continue;
        }
        size_t bytes = ats_memory_parse(v);
        if (!bytes) {
            fprintf(stderr,
                    "attnscope: --max-memory needs a size such as 8G, 512M or a number "
                    "of bytes (got '%s')\n",
                    v ? v : "nothing");
            return ATS_EXIT_INPUT;
        }
        ats_memory_limit_set(bytes);
        for (int k = i; k + used <= *argc; k++) argv[k] = argv[k + used]; /* argv[argc] is NULL */
        *argc -= used;
        i--;
    }
    return ATS_EXIT_OK;
}

void ats_cli_json_number(void *fp, double v, unsigned flags) {
    char buf[ATS_JSON_NUMBER_MAX];
    fwrite(buf, 1, ats_json_number_format(v, flags, buf), fp);
}

static const char *cli_adapter;

const char *ats_cli_adapter(void) {
    return cli_adapter;
}

int ats_cli_adapter_take(const char *cmd, int loads_models, int *argc, char **argv) {
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *s = argv[i], *v = NULL;
        if (!strcmp(s, "--adapter")) {
            if (i + 1 >= *argc) return ats_cli_usage_error(cmd, "--adapter needs a directory");
            v = argv[++i];
        } else if (!strncmp(s, "--adapter=", 10)) {
            v = s + 10;
        } else {
            argv[out++] = argv[i];
            continue;
        }
        if (!loads_models)
            return ats_cli_usage_error(cmd, "--adapter: this command loads no model");
        if (cli_adapter) return ats_cli_usage_error(cmd, "--adapter given twice");
        if (!*v) return ats_cli_usage_error(cmd, "--adapter needs a directory");
        cli_adapter = v;
    }
    for (int i = out; i < *argc; i++) argv[i] = NULL;
    *argc = out;
    return ATS_EXIT_OK;
}

const char *ats_cli_title(char *buf, size_t n, const char *prefix, const char *what) {
    if (!prefix) return what;
    snprintf(buf, n, "%s: %s", prefix, what);
    return buf;
}
