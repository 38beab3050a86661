/* Internal pieces of `attnscope heads`: the corpus reader, the MPI layer and the analyses of
 * the head matrix (persistence, dendrogram, MDS, clusters). Only src/cli uses them. */
#ifndef ATS_CLI_HEADS_H
#define ATS_CLI_HEADS_H

#include "attnscope/core.h"

#include <stdio.h>

/* ---- corpus: one text per line, or JSONL objects with a "text" field */

typedef enum heads_line_kind {
    HEADS_LINE_TEXT = 0,   /* a text to run */
    HEADS_LINE_EMPTY = 1,  /* empty or only white space */
    HEADS_LINE_BADUTF = 2, /* invalid UTF-8 (offset in bad_offset) */
    HEADS_LINE_LONG = 3,   /* longer than the byte limit */
    HEADS_LINE_BADJSON = 4 /* JSONL line that is not an object with a string "text" */
} heads_line_kind;

typedef struct heads_corpus {
    FILE *fp;
    const char *path;
    int jsonl;        /* 1: every non-empty line is a JSON object with "text" */
    size_t max_bytes; /* longer lines are HEADS_LINE_LONG */
    char *line;       /* getline buffer */
    size_t cap;
    char *text; /* the text of the current line (points into line or owned json_text) */
    size_t len;
    char *json_text;
    size_t line_no;     /* 1-based number of the current line */
    size_t bad_offset;  /* byte offset of invalid UTF-8 in the line's text */
    long long size;     /* file size in bytes (-1 when unknown) */
    long long position; /* bytes read so far */
} heads_corpus;

/* Opens path; jsonl: -1 detect (.jsonl/.ndjson or a first non-empty line starting with '{'),
 * 0 plain lines, 1 JSONL. */
ats_status heads_corpus_open(heads_corpus *c, const char *path, int jsonl, size_t max_bytes,
                             ats_error *err);
/* Reads the next line: returns 1 and sets *kind, 0 at the end of the file, -1 on a read error
 * (err set). */
int heads_corpus_next(heads_corpus *c, heads_line_kind *kind, ats_error *err);
void heads_corpus_close(heads_corpus *c);

/* Byte offset of the first invalid UTF-8 sequence in s[0..len), or len when valid. */
size_t heads_utf8_check(const char *s, size_t len);

/* ---- MPI (heads_mpi.c; without MPI every rank call is the single process) */

typedef struct heads_mpi {
    int rank, size, active;
} heads_mpi;

/* Starts MPI when the process was launched by mpirun/mpiexec (Open MPI or PMIx environment);
 * otherwise rank 0 of 1. */
void heads_mpi_start(heads_mpi *m, int *argc, char ***argv);
void heads_mpi_stop(heads_mpi *m);
/* Ends every rank at once after a fatal error on one of them. */
void heads_mpi_abort(heads_mpi *m, int code);
/* Root receives n doubles of chunk `chunk` from rank `from`; other ranks send theirs to 0. */
void heads_mpi_recv(heads_mpi *m, int from, size_t chunk, double *buf, size_t n);
void heads_mpi_send(heads_mpi *m, size_t chunk, const double *buf, size_t n);
/* Sums n counters over the ranks into every rank's array (exact: integers). */
void heads_mpi_sum_counts(heads_mpi *m, unsigned long long *counts, size_t n);
/* Broadcasts n doubles from rank 0. */
void heads_mpi_bcast(heads_mpi *m, double *buf, size_t n);
/* 1 when the build has MPI. */
int heads_mpi_available(void);

/* ---- analyses of a head matrix */

/* Head names "L3H7" for N = L·H heads (prefix e.g. "gpt2:" for joint runs). */
void heads_name(char *buf, size_t n, const char *prefix, size_t l, size_t h);

/* Single-linkage dendrogram of the metric lower [N(N-1)/2]: merges [N-1][4] = (cluster a,
 * cluster b, height, size) in SciPy's linkage convention (new cluster N+k for merge k). */
ats_status heads_single_linkage(size_t N, const double *lower, double *merges, ats_error *err);

/* Classical MDS of lower [N(N-1)/2] into dim coordinates, xy [N][dim] (deterministic: power
 * iteration from a fixed start, signs fixed so the largest |coordinate| is positive). */
ats_status heads_mds(size_t N, const double *lower, int dim, double *xy, ats_error *err);

#endif
