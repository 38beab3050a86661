/* The progress line (progress.h). */
#include "progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double cli_progress_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_init(cli_progress *p, const char *cmd, int forced, int quiet) {
    memset(p, 0, sizeof *p);
    p->cmd = cmd;
    p->tty = isatty(2);
    p->on = !quiet && (forced || p->tty);
}

void cli_progress_attach(cli_progress *p, const char *cmd, int forced, ats_progress_fn *fn,
                         void **ctx) {
    cli_progress_init(p, cmd, forced, 0);
    *fn = cli_progress_report;
    *ctx = p;
}

/* "12.3 s", "4 min 5 s", "2 h 3 min" */
static void duration(char *buf, size_t n, double s) {
    if (s < 60)
        snprintf(buf, n, "%.1f s", s);
    else if (s < 3600)
        snprintf(buf, n, "%.0f min %.0f s", (double)(long)(s / 60),
                 s - 60 * (double)(long)(s / 60));
    else
        snprintf(buf, n, "%.0f h %.0f min", (double)(long)(s / 3600),
                 (s - 3600 * (double)(long)(s / 3600)) / 60);
}

/* "12 lines", "3.5 lines"; bytes as "1.2 MiB" */
static void amount(char *buf, size_t n, double v, const char *unit) {
    if (strcmp(unit, "bytes")) {
        snprintf(buf, n, v == (double)(uint64_t)v ? "%.0f %s" : "%.1f %s", v, unit);
        return;
    }
    const char *u[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int k = 0;
    while (v >= 1024 && k < 4) v /= 1024, k++;
    snprintf(buf, n, k ? "%.1f %s" : "%.0f %s", v, u[k]);
}

void cli_progress_report(void *ctx, const char *phase, const char *unit, uint64_t done,
                         uint64_t total) {
    cli_progress *p = ctx;
    if (!p || !p->on) return;
    double t = cli_progress_now();
    if (strncmp(p->phase, phase, sizeof p->phase - 1) || done == 0) { /* a new phase */
        if (p->open) cli_progress_finish(p);
        snprintf(p->phase, sizeof p->phase, "%s", phase);
        p->phase_start = t;
        p->last = -1e9;
        p->ended = 0;
    }
    int end = total > 0 && done >= total;
    if (end && p->ended) return; /* said already */
    if (!end && t - p->last < (p->tty ? 0.5 : 1.0)) return;
    p->ended = end;
    p->last = t;
    double el = t - p->phase_start, rate = el > 0 ? (double)done / el : 0;
    char line[256], e[32], left[32] = "?";
    duration(e, sizeof e, el);
    if (total > 0 && done > 0) duration(left, sizeof left, el * ((double)total / done - 1.0));
    char d[32], tt[32], r[40];
    amount(d, sizeof d, (double)done, unit);
    amount(tt, sizeof tt, (double)total, unit);
    amount(r, sizeof r, rate, unit);
    if (total > 0 && strcmp(unit, "bytes"))
        snprintf(line, sizeof line, "%s %s: %llu/%llu %s (%.0f%%), %s/s, %s, ETA %s", p->cmd, phase,
                 (unsigned long long)done, (unsigned long long)total, unit,
                 100.0 * (double)done / (double)total, r, e, end ? "0 s" : left);
    else if (total > 0)
        snprintf(line, sizeof line, "%s %s: %s of %s (%.0f%%), %s/s, %s, ETA %s", p->cmd, phase, d,
                 tt, 100.0 * (double)done / (double)total, r, e, end ? "0 s" : left);
    else
        snprintf(line, sizeof line, "%s %s: %s, %s/s, %s", p->cmd, phase, d, r, e);
    if (p->tty) {
        fprintf(stderr, "\r%s\033[K", line);
        p->open = 1;
        if (end) cli_progress_finish(p);
    } else {
        fprintf(stderr, "%s\n", line);
    }
    fflush(stderr);
}

void cli_progress_finish(cli_progress *p) {
    if (p && p->open) {
        fputc('\n', stderr);
        fflush(stderr);
        p->open = 0;
    }
}
