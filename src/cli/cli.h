/* Shared plumbing of the attnscope subcommands. The CLI is the only place that prints to
 * stdout and decides exit codes: 0 success, 2 bad input or usage, 1 anything else. */
#ifndef ATS_CLI_H
#define ATS_CLI_H

#include "attnscope/core.h"

#define ATS_EXIT_OK    0
#define ATS_EXIT_FAIL  1
#define ATS_EXIT_INPUT 2

/* Each subcommand: argv[0] is the subcommand's name. Returns the process exit code. */
int ats_cmd_rips(int argc, char **argv);
int ats_cmd_tokenize(int argc, char **argv);
int ats_cmd_attention(int argc, char **argv);
int ats_cmd_measure(int argc, char **argv);
int ats_cmd_bottleneck(int argc, char **argv);
int ats_cmd_wasserstein(int argc, char **argv);
int ats_cmd_plot(int argc, char **argv);
int ats_cmd_attend(int argc, char **argv);
int ats_cmd_graph(int argc, char **argv);
int ats_cmd_divergence(int argc, char **argv);
int ats_cmd_topo(int argc, char **argv);
int ats_cmd_compare(int argc, char **argv);
int ats_cmd_heads(int argc, char **argv);
int ats_cmd_serve(int argc, char **argv);
int ats_cmd_report(int argc, char **argv);
int ats_cmd_context(int argc, char **argv);
int ats_cmd_vision(int argc, char **argv);
int ats_cmd_equivariance(int argc, char **argv);
int ats_cmd_syntax(int argc, char **argv);
int ats_cmd_importance(int argc, char **argv);

/* Prints "attnscope: <message>" to stderr and returns the exit code for the status. */
int ats_cli_fail(const ats_error *err);
/* Prints "attnscope <cmd>: <message>" (printf-style) to stderr and returns ATS_EXIT_INPUT. */
int ats_cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Checks ATS_KERNEL before any command runs: ATS_EXIT_OK, or ATS_EXIT_INPUT after printing
 * which paths this CPU supports. */
int ats_cli_kernel_check(void);
/* SIGINT, SIGTERM and SIGHUP remove the temporary files of outputs not yet complete, then end
 * the process as the signal would have. */
void ats_cli_remove_temporaries_on_signal(void);
/* Takes `--max-memory SIZE` (or --max-memory=SIZE; "8G", "512M", bytes) out of argv[1..]
 * wherever it is, for every command, and sets the limit large work and dense reads are checked
 * against (ats_memory_check; default: the available memory). ATS_EXIT_OK, or ATS_EXIT_INPUT
 * after printing what was wrong with SIZE. */
int ats_cli_take_max_memory(int *argc, char **argv);
/* Prints `attnscope --version`: the version, the kernel path in use and the supported ones. */
void ats_cli_print_version(void);

/* Parses a whole string as a finite or infinite double ("inf" allowed when allow_inf).
   Returns 1 on success. */
int ats_cli_parse_double(const char *s, int allow_inf, double *out);
/* Parses a whole string as a long in [lo, hi]. Returns 1 on success. */
int ats_cli_parse_long(const char *s, long lo, long hi, long *out);
/* Parses --image-size: "H" (a square) or "HxW", each 1..16384 pixels. Returns 1 on success. */
int ats_cli_parse_image_size(const char *s, int *height, int *width);

/* --adapter DIR, an option of every command that loads a model (main.c takes it out of argv
 * before the command parses its own options): the PEFT LoRA adapter directory to merge into
 * every model the command loads (ats_model_load_adapted), or NULL. */
const char *ats_cli_adapter(void);
/* Takes "--adapter DIR" (or "--adapter=DIR") out of argv[1..argc) for command cmd, which loads
 * models when loads_models is 1 (else the option is refused). Returns ATS_EXIT_OK or, after
 * printing why, ATS_EXIT_INPUT (no value, given twice, a command that loads no model). */
int ats_cli_adapter_take(const char *cmd, int loads_models, int *argc, char **argv);

/* A figure's title with --title T: "T: what" in buf (n bytes), or what itself when prefix is
 * NULL. Returns the title to draw. */
const char *ats_cli_title(char *buf, size_t n, const char *prefix, const char *what);

/* Writes v into a JSON file as ats_json_number_format does (core.h); fp is a FILE *. */
void ats_cli_json_number(void *fp, double v, unsigned flags);

#endif
