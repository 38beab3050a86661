/* Internal pieces of `attnscope heads`: the MPI layer and the analyses of the head matrix
 * (dendrogram, MDS, names). Only src/cli uses them; the corpus pass is the library's
 * (ats_heads_corpus, analysis.h). */
#ifndef ATS_CLI_HEADS_H
#define ATS_CLI_HEADS_H

#include "attnscope/analysis.h"
#include "attnscope/core.h"
#include "attnscope/diagram.h"
#include "progress.h"

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

/* ---- the command's state, shared by cmd_heads.c and heads_output.c */

typedef void (*writer_fn)(FILE *fp, const void *ctx);

typedef struct hargs {
    const char *models[2];
    int n_models;
    const char *corpus, *output, *out_dir;
    const char *format, *title; /* --format (NULL: png), --title (NULL: none) */
    int clark, stats, ablation, skip_long, quiet, progress, scale_given;
    long max_tokens, max_lines, ablation_lines, chunk_lines, threads;
    double scale;
} hargs;

typedef struct hmodel {
    ats_session *s;
    const ats_model_info *mi;
    size_t L, H, N;
    char name[128]; /* short name for labels */
} hmodel;

typedef struct hrun {
    const hargs *a;
    heads_mpi *mpi;
    hmodel models[2];
    int n_models;
    size_t N;    /* heads in D */
    int threads; /* this process's share of the cores */
    cli_progress pg;
    ats_heads_result res;
} hrun;

/* Persistence, dendrogram, MDS and clusters of the N heads whose distances are lower
 * (mean per token). prefix names the files ("" or "joint_"). dg receives H0 and H1 (owned by the
 * caller) when not NULL. */
typedef struct analysis_in {
    const char *dir, *prefix, *title;
    size_t N;
    const double *lower;
    char **names;
    const int *layer;  /* [N] */
    size_t n_layers;   /* colour groups */
    const int *shapes; /* [N] or NULL */
    const char *const *shape_names;
    size_t n_shapes;
    int scale_given;
    double scale;
} analysis_in;

typedef struct analysis_out {
    ats_diagram dg[2];
    double scale;
    size_t n_clusters;
    int32_t *labels;
} analysis_out;

/* The library's options of the run (cmd_heads.c) */
void heads_options(hrun *r, ats_heads_options *o);
/* The figures' extension (--format; NULL: png) and a prefix of their titles (--title). */
void heads_figure_style(const char *ext, const char *title);
/* dir/name (malloc'd) */
char *heads_path_join(const char *dir, const char *name);
/* dir/name written atomically by fn */
ats_status heads_write_text(const char *dir, const char *name, writer_fn fn, const void *ctx,
                            ats_error *err);
/* dir/name as a float64 .npy */
ats_status heads_write_npy(const char *dir, const char *name, int ndim, const size_t *shape,
                           const double *data, ats_error *err);
/* Persistence, dendrogram, MDS and clusters of the heads in `in`, with their files */
ats_status heads_analyse(const analysis_in *in, analysis_out *out, ats_error *err);
void heads_analysis_out_free(analysis_out *o);
/* stats.csv and the statistics' heatmaps */
ats_status heads_write_stats(hrun *r, ats_error *err);
/* the ablation (ats_heads_ablation) and its files and figures */
ats_status heads_run_ablation(hrun *r, char **names, ats_error *err);

#endif
