/* attnscope rips: Vietoris–Rips persistent homology of a finite metric space.
 *
 * The algorithm is persistent cohomology with clearing over an implicit coboundary matrix
 * (simplices are integers in the combinatorial number system, never objects), with apparent and
 * emergent pairs short-circuited and union–find for H0, as in Bauer's Ripser. Above a threshold
 * below the largest distance the coboundaries are enumerated from sparse neighbour lists.
 *
 * A metric is given as its strict lower triangle, row by row:
 *   lower[i*(i-1)/2 + j] = d(i, j) for 0 <= j < i < n          (double [n*(n-1)/2])
 * which is Ripser's "lower-distance" layout (its compressed_lower_distance_matrix). Helpers build
 * it from full matrices and points; ats_lower_index and ats_lower_at (below) read and write it,
 * so that no caller writes the index arithmetic again. */
#ifndef ATTNSCOPE_RIPS_H
#define ATTNSCOPE_RIPS_H

#include "attnscope/core.h"
#include "attnscope/diagram.h"

/* exported from the shared library (see core.h) */
#pragma GCC visibility push(default)
#ifdef __cplusplus
extern "C" {
#endif

#define ATS_RIPS_MAX_DIM 8

typedef struct ats_rips_options {
    int max_dim;            /* highest homology dimension, 0..ATS_RIPS_MAX_DIM (default 1) */
    double threshold;       /* largest diameter in the filtration; INFINITY (default) means the
                               enclosing radius, beyond which the complex is a cone (Ripser) */
    unsigned modulus;       /* coefficients in Z/p, p prime < 2^16 (default 2) */
    double min_persistence; /* report only pairs with death - birth > this (default 0) */
    double ratio;           /* report only pairs with death > ratio * birth (default 1, Ripser's
                               --ratio); essential classes are always reported */
    int want_cocycles;      /* 1: representative cocycles for every reported pair, dims >= 1 */
    int want_cycles;        /* 1: representative cycles for the reported H1 pairs */
    int n_threads;          /* threads for this one problem, 0 = all cores (default 1); the
                               result is the same, byte for byte, whatever the count */
    double memory_limit_gb; /* refuse (ATS_ERR_RANGE, with the estimate) a problem estimated to
                               need more; 0 (default) = the machine's physical memory,
                               INFINITY = never refuse */
    ats_cancel_fn cancel;   /* polled (core.h) about every millisecond in every phase: non-zero
                               stops the computation, ATS_ERR_CANCELLED; NULL (default): never */
    void *cancel_ctx;       /* handed to cancel */
    int collapse_edges;     /* 1: first collapse the edges (Boissonnat & Pritam's edge collapse):
                               the same diagrams, in every dimension, from fewer edges; in the
                               order the smaller complex finds them, and without representatives
                               (ATS_ERR_INVALID with want_cocycles or want_cycles). Serial, in
                               the SETUP phase; pays off when many edges are dominated (points
                               in low dimension), not always on attention (measure). Default 0 */
} ats_rips_options;

/* Fills the defaults above. */
void ats_rips_options_init(ats_rips_options *opt);

/* A representative of one class: `count` simplices of dimension k, each given by its k+1
 * vertices (descending), with a coefficient in Z/p. */
typedef struct ats_representative {
    size_t count;
    int32_t *vertices; /* [count][k+1] */
    uint32_t *coefs;   /* [count] */
} ats_representative;

/* Phases of ats_rips_compute. Serial: EDGES, REDUCE_COMMIT, SETUP's neighbour lists and edge
 * collapse; SORT
 * runs on the threads above 64 Ki columns; the others run on opt->n_threads threads. Dense
 * EDGES (Prim's forest) runs on the calling thread while the others run EDGE_APPARENT, and
 * REDUCE_COMMIT beside REDUCE_AHEAD: their wall seconds overlap, and the seconds of the
 * overlapped phase are counted out of the other's. */
typedef enum ats_rips_phase {
    ATS_RIPS_PHASE_SETUP,         /* checks, enclosing radius, distance rows or neighbour lists,
                                     and the edge collapse (collapse_edges) */
    ATS_RIPS_PHASE_EDGES,         /* H0: dense, Prim's spanning forest (O(n²)) and the union-find
                                     on its edges, then the edge list when dimension 2 needs it;
                                     sparse, the edge list, its sort and the union-find */
    ATS_RIPS_PHASE_EDGE_APPARENT, /* apparent-pair tests of the edges */
    ATS_RIPS_PHASE_REDUCE_AHEAD,  /* column reduction against the pivots recorded so far */
    ATS_RIPS_PHASE_REDUCE_COMMIT, /* finishing each column and recording its pivot, in order
                                     (one thread at a time, beside the others' reduction) */
    ATS_RIPS_PHASE_ASSEMBLE,      /* enumerating the next dimension's columns */
    ATS_RIPS_PHASE_SORT,          /* sorting them */
    ATS_RIPS_PHASES
} ats_rips_phase;

typedef struct ats_rips_result {
    int max_dim;
    size_t n_points;
    double threshold;                       /* the threshold actually used */
    double min_value, max_value;            /* range of the off-diagonal distances */
    ats_diagram dims[ATS_RIPS_MAX_DIM + 1]; /* dims[k]: pairs of H_k, k = 0..max_dim */
    /* Birth and death simplices of every reported pair, as (dimension-k simplex index,
       dimension-(k+1) simplex index) in the combinatorial number system; death -1 if essential. */
    int64_t *birth_simplex[ATS_RIPS_MAX_DIM + 1]; /* [dims[k].count] */
    int64_t *death_simplex[ATS_RIPS_MAX_DIM + 1]; /* [dims[k].count] */
    /* Filled when want_cocycles: cocycles[k][i] represents dims[k].pairs[i] (k >= 1). */
    ats_representative *cocycles[ATS_RIPS_MAX_DIM + 1];
    /* Filled when want_cycles: cycles[i] is a cycle of edges (coefficient ±1 mod p) representing
       dims[1].pairs[i]; for essential classes it is a cycle born at the birth edge. */
    ats_representative *cycles;
    /* CPU seconds of the process (all threads) by phase, ATS_RIPS_PHASE_*: where the time goes
       and which part of it runs on one thread only. */
    double phase_cpu_seconds[ATS_RIPS_PHASES];
    /* Wall-clock seconds by phase: against phase_cpu_seconds, how well each phase used the
       threads (on a machine not shared with other work). */
    double phase_wall_seconds[ATS_RIPS_PHASES];
} ats_rips_result;

/* Computes persistence of the metric `lower` on n points. The metric is validated first: NaN,
 * negative or infinite entries give ATS_ERR_INVALID naming the row and column. Dimensions whose
 * simplex count would overflow 64-bit indices give ATS_ERR_RANGE. n == 0 is an error. */
ats_status ats_rips_compute(size_t n, const double *lower, const ats_rips_options *opt,
                            ats_rips_result *out, ats_error *err);

/* A distance matrix given a row at a time: writes d(i, 0), ..., d(i, n-1) of the full
 * symmetric matrix into row (double [n]). A call may return an error, which ends the
 * computation with it. With opt->n_threads other than 1, ats_rips_compute_rows may call it from
 * several threads at once (for different rows, into different buffers): it must allow that. */
typedef ats_status (*ats_metric_row_fn)(void *ctx, size_t i, double *row, ats_error *err);

/* The same as ats_rips_compute on the metric whose rows `row` gives (n rows of n), in memory
 * that grows with the edges within the threshold instead of with n²: the rows are read in
 * order, a few times over (each entry checked as ats_metric_from_full checks it; the range and
 * enclosing radius; the edges within the threshold into neighbour lists; the upper half
 * compared with the lower for every pair within the threshold — a pair beyond it is not used,
 * and not compared), and no n×n or triangular array is allocated. Only the strict lower
 * triangle (row i, columns j < i) enters the computation, so the result is the one
 * ats_rips_compute gives on ats_metric_from_full's triangle, byte for byte. When the
 * threshold (or the enclosing radius, opt->threshold INFINITY) keeps a quarter of the edges or
 * more, neighbour lists would be as large as the dense rows: the rows are read (on every
 * thread) into the dense engine's [n][n] array instead. The memory estimate is made after the edges
 * are counted and before anything of their size is allocated (ATS_ERR_RANGE with the estimate,
 * opt->memory_limit_gb). name labels messages (a file name; NULL: "distance matrix"). */
ats_status ats_rips_compute_rows(size_t n, ats_metric_row_fn row, void *ctx, const char *name,
                                 const ats_rips_options *opt, ats_rips_result *out, ats_error *err);

/* Computes `count` independent problems, metric i on ns[i] points, in parallel with n_threads
 * OpenMP threads (0: all cores); a single problem gets all n_threads (opt->n_threads is
 * ignored). outs[i] and errs[i] (errs may be NULL) receive each result;
 * returns the first non-OK status in index order, or ATS_OK. */
ats_status ats_rips_compute_batch(size_t count, const size_t *ns, const double *const *lowers,
                                  const ats_rips_options *opt, int n_threads, ats_rips_result *outs,
                                  ats_error *errs);

/* Releases everything inside r and zeroes it; NULL is a no-op. */
void ats_rips_result_free(ats_rips_result *r);

/* Decodes a simplex index of dimension k into its k+1 vertices (descending). */
void ats_simplex_vertices(int64_t index, int k, size_t n, int32_t *vertices);

/* H0 at a scale: labels[i] = cluster of point i in the graph of edges with d <= scale
 * (single-linkage clusters), numbered 0.. in order of their smallest point. */
ats_status ats_rips_clusters(size_t n, const double *lower, double scale, int32_t *labels,
                             size_t *n_clusters, ats_error *err);

/* ---- the lower triangle */

/* n points and their strict lower triangle d ([n*(n-1)/2], as above): what the calls below take
 * as (n, lower), named together for reading a metric. ats_metric_from_full builds d. */
typedef struct ats_lower {
    size_t n;
    const double *d;
} ats_lower;

/* The position of d(i, j) in a lower triangle, i != j, in either order of i and j. */
size_t ats_lower_index(size_t i, size_t j);

/* d(i, j) of m: 0 on the diagonal. */
double ats_lower_at(const ats_lower *m, size_t i, size_t j);

/* ---- embeddings of a metric */

/* The single-linkage dendrogram of m: merges [n-1][4] = (cluster a, cluster b, height, size)
 * in SciPy's linkage convention (a < b; merge k makes cluster n+k; equal heights in order of
 * the minimum spanning tree's edges (height, then smaller, then larger point)). Nothing for
 * n < 2. ats_rips_clusters cuts the same tree at one scale. */
ats_status ats_metric_single_linkage(const ats_lower *m, double *merges, ats_error *err);

/* Classical (Torgerson) MDS of m into dim coordinates, xy [n][dim]: the top dim eigenvectors
 * of -1/2 J D² J scaled by the square roots of their eigenvalues (0 for a negative one), by
 * shifted power iteration with deflation from a fixed start, each vector's sign chosen so its
 * largest |coordinate| is positive. Deterministic. Each vector iterates until its direction
 * moves less than 1e-12, or max_iter times (0: 3000; a layout's starting point needs far
 * fewer). */
ats_status ats_metric_mds(const ats_lower *m, int dim, int max_iter, double *xy, ats_error *err);

/* ---- building metrics */

/* Full symmetric matrix [n][n] -> lower triangle. The diagonal must be 0 and the matrix
 * symmetric (|a_ij - a_ji| <= 1e-12 * max(1,|a_ij|)) unless symmetrize, which takes the
 * mean (A + A^T)/2. Entries must be finite and >= 0. `name` labels
 * messages (a file name). */
ats_status ats_metric_from_full(size_t n, const double *full, int symmetrize, const char *name,
                                double *lower, ats_error *err);

/* Euclidean distances between n points of dimension dim ([n][dim]) -> lower triangle. */
ats_status ats_metric_from_points(size_t n, size_t dim, const double *points, double *lower,
                                  ats_error *err);

/* Checks a lower triangle: finite, non-negative. */
ats_status ats_metric_check(size_t n, const double *lower, const char *name, ats_error *err);

typedef enum ats_metric_format {
    ATS_METRIC_DISTANCE = 0,       /* full matrix, one row a line */
    ATS_METRIC_LOWER_DISTANCE = 1, /* strict or full lower triangle, Ripser's default */
    ATS_METRIC_POINT_CLOUD = 2,    /* one point a line, coordinates separated by , or space */
    ATS_METRIC_NPY = 3             /* .npy [n][n] or [B][n][n] distance matrices, f4 or f8 */
} ats_metric_format;

/* Reads metrics from a file. Text numbers may be separated by any of ", \t;" (Ripser's
 * inputs). An npy file of shape [B][n][n] yields B metrics. On success *count metrics of *n
 * points each are stored back to back in *lowers ([count][n*(n-1)/2], free with free()). */
ats_status ats_metric_read(const char *path, ats_metric_format format, int symmetrize,
                           size_t *count, size_t *n, double **lowers, ats_error *err);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop
#endif
