/* The progress line of long commands on stderr: the library reports phases through an
 * ats_progress_fn (core.h), this prints them with their rate and an ETA from the phase's real
 * total. On a terminal the line redraws itself (about twice a second); elsewhere it is silent
 * unless --progress is given, and then prints a line at most every second and one when each
 * phase ends. */
#ifndef ATS_CLI_PROGRESS_H
#define ATS_CLI_PROGRESS_H

#include "attnscope/core.h"

#include <stdint.h>

typedef struct cli_progress {
    const char *cmd; /* prefixes the line ("heads") */
    int on, tty;
    double phase_start, last;
    char phase[64];
    int open;  /* a terminal line is drawn and not yet ended */
    int ended; /* the phase's last line (done == total) is printed */
} cli_progress;

/* forced: --progress was given; quiet: --quiet (wins). */
void cli_progress_init(cli_progress *p, const char *cmd, int forced, int quiet);
/* cli_progress_init, and points an options struct's progress callback (*fn, *ctx) at p. */
void cli_progress_attach(cli_progress *p, const char *cmd, int forced, ats_progress_fn *fn,
                         void **ctx);
/* An ats_progress_fn; ctx is a cli_progress. */
void cli_progress_report(void *ctx, const char *phase, const char *unit, uint64_t done,
                         uint64_t total);
/* Seconds on the monotonic clock. */
double cli_progress_now(void);
/* Ends a line left open on a terminal (before other output, or when a phase failed). */
void cli_progress_finish(cli_progress *p);

#endif
