/* Internal pieces of `attnscope heads`: the MPI layer and the analyses of the head matrix
 * (dendrogram, MDS, names). Only src/cli uses them; the corpus pass is the library's
 * (ats_heads_corpus, analysis.h). */
#ifndef ATS_CLI_HEADS_H
#define ATS_CLI_HEADS_H

#include "attnscope/core.h"

#include <stdio.h>

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

#endif
