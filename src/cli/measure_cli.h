/* What the parts of `attnscope measure` share (cmd_measure.c, cmd_measure_stats.c). */
#ifndef ATS_CLI_MEASURE_H
#define ATS_CLI_MEASURE_H

#include "attnscope/measure.h"
#include "cli.h"

typedef struct margs {
    const char *what;
    const char **inputs; /* [argc]: values are argv entries */
    size_t n_inputs;
    const char **tokens; /* [argc] */
    size_t n_tokens;
    const char *output, *against, *metric, *freq, *freq_table;
    const char *cls, *sep, *punct, *cols;
    ats_measure_opts opts;
    int base_given, eps_given, clark, per_layer;
} margs;

#define usage_error(...) ats_cli_usage_error("measure", __VA_ARGS__)

/* The exit code of a usage error when an option not in `allowed` (" --a --b ") was given, or
 * --input or --output is missing; else 0. */
int measure_check_allowed(const margs *a, const char *allowed);
/* The exit code of a failure when path cannot be opened for writing (nothing is left), else 0. */
int measure_check_output(const char *path);
/* Reads attention from path into arr and its view att; an exit code on failure, else 0. */
int measure_load_attention(const char *path, ats_npy *arr, ats_attn *att);
/* measure stats (cmd_measure_stats.c) */
int measure_run_stats(margs *a);

#endif
