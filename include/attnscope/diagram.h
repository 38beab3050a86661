/* attnscope diagrams: persistence diagrams of one homology dimension, their files, and the
 * distances between two diagrams (bottleneck, q-Wasserstein).
 *
 * Points. A point is (birth, death). Finite points off the diagonal are the usual classes;
 * death == +INFINITY marks an essential class. The distances also accept what GUDHI and Hera
 * accept: points below the diagonal (death < birth, as from superlevel-set filtrations; their
 * distance to the diagonal uses |death - birth|), points on the diagonal (ignored: they cost
 * nothing to match to the diagonal), and points with an infinite coordinate, which fall into
 * six essential classes: (finite, +inf), (finite, -inf), (+inf, finite), (-inf, finite),
 * (-inf, +inf), (+inf, -inf). Essential points are matched only within their class, on their
 * finite coordinate; when two diagrams have different numbers of points in some class their
 * distance is +INFINITY, as in GUDHI and Hera. NaN is never accepted. */
#ifndef ATTNSCOPE_DIAGRAM_H
#define ATTNSCOPE_DIAGRAM_H

#include "attnscope/core.h"

/* exported from the shared library (see core.h) */
#pragma GCC visibility push(default)
#ifdef __cplusplus
extern "C" {
#endif

/* One persistence diagram: points (birth, death) with birth <= death; death == INFINITY for an
 * essential class. */
typedef struct ats_diagram {
    size_t count;
    double *pairs; /* [count][2] birth, death; owned */
} ats_diagram;

/* Releases d->pairs and zeroes d; NULL is a no-op. */
void ats_diagram_free(ats_diagram *d);

/* Copies count pairs ([count][2] birth, death) into a new diagram. NaN gives ATS_ERR_INVALID
 * naming the pair. Free with ats_diagram_free. */
ats_status ats_diagram_from_pairs(size_t count, const double *pairs, ats_diagram *out,
                                  ats_error *err);

/* ---- files
 *
 * Formats (ats_diagram_read detects them from the content):
 *  - PAIRS: text, one point a line. A line holds `birth death`, or `dim birth death`, or
 *    `field dim birth death` (GUDHI's .pers files); every line of a file has the same number of
 *    columns. Numbers are decimal; `inf`, `+inf`, `-inf` (any case, also `infinity`) are
 *    accepted for either coordinate. Blank lines and everything after `#` are ignored.
 *  - RIPSER: Ripser's text output: a line `persistence intervals in dim k:` opens dimension k,
 *    then one interval a line, ` [b,d)` or ` [b, )` for an essential class; other lines
 *    (headers, `value range: ...`) are ignored.
 *  - JSON: attnscope's `{"dims":[{"dim":0,"pairs":[[b,d],...]},...]}`, death `null` for an
 *    essential class (the strings "inf", "-inf" are also accepted for either coordinate); the
 *    same object under a "diagrams" key is read too (topo's result.json, the viewer's
 *    /api/analyze).
 *  - DIPHA: DIPHA's binary persistence diagram: little-endian int64 magic 8067171840, int64
 *    type 2, int64 count, then count times (int64 dim, double birth, double death); a negative
 *    dim d marks an essential class of dimension -d-1 (its stored death is ignored).
 *
 * `dim` selects one homology dimension in the files that hold several (RIPSER, JSON, DIPHA and
 * PAIRS with a dim column); dim == -1 takes every point of the file. A dimension the file does
 * not mention gives an empty diagram. Errors name the file and the line (or the JSON position,
 * or the DIPHA record) and what was wrong. */

typedef enum ats_diagram_format {
    ATS_DIAGRAM_AUTO = 0, /* detect: DIPHA magic, then `{` for JSON, then a Ripser header */
    ATS_DIAGRAM_PAIRS = 1,
    ATS_DIAGRAM_RIPSER = 2,
    ATS_DIAGRAM_JSON = 3,
    ATS_DIAGRAM_DIPHA = 4
} ats_diagram_format;

/* Reads one diagram from path, detecting the format. Free with ats_diagram_free. */
ats_status ats_diagram_read(const char *path, int dim, ats_diagram *out, ats_error *err);

/* Same with the format given (ATS_DIAGRAM_AUTO detects). */
ats_status ats_diagram_read_format(const char *path, ats_diagram_format format, int dim,
                                   ats_diagram *out, ats_error *err);

/* Detects the format of a file from its first bytes (see ATS_DIAGRAM_AUTO). */
ats_status ats_diagram_detect(const char *path, ats_diagram_format *format, ats_error *err);

/* Parses text (len bytes, need not be NUL-terminated) in a text format (PAIRS, RIPSER, JSON or
 * AUTO); `name` labels error messages. */
ats_status ats_diagram_parse(const char *text, size_t len, const char *name,
                             ats_diagram_format format, int dim, ats_diagram *out, ats_error *err);

/* Writes `birth death` lines (%.17g, `inf`/`-inf` for infinities) atomically. */
ats_status ats_diagram_write_pairs(const char *path, const ats_diagram *d, ats_error *err);

/* Writes count diagrams, diagrams[i] being dimension dims[i], as attnscope JSON
 * {"dims":[{"dim":dims[0],"pairs":[[b,d],...]},...]} atomically, numbers as
 * ats_json_number_format (core.h) writes them: a death of +inf as null, any other infinite
 * coordinate as the string "inf" or "-inf". */
ats_status ats_diagram_write_json(const char *path, size_t count, const ats_diagram *diagrams,
                                  const int *dims, ats_error *err);

/* Writes count diagrams (dimensions dims[i]) as a DIPHA persistence diagram atomically; points
 * with death +inf are written as essential (negative dimension -dim-1). */
ats_status ats_diagram_write_dipha(const char *path, size_t count, const ats_diagram *diagrams,
                                   const int *dims, ats_error *err);

/* ---- distances
 *
 * Both distances match every point of A either to a point of B or to the diagonal. A matching
 * is reported as index pairs into a->pairs and b->pairs, -1 standing for the diagonal: every
 * point of A and of B appears in exactly one pair. Points on the diagonal appear matched to the
 * diagonal. When the distance is +INFINITY the matching is empty. */

typedef struct ats_matching {
    size_t count;
    int64_t *pairs; /* [count][2] index in A or -1, index in B or -1; owned */
} ats_matching;

/* Releases m->pairs and zeroes m; NULL is a no-op. */
void ats_matching_free(ats_matching *m);

/* Exact bottleneck distance with the L-infinity ground metric: the smallest r such that a
 * matching moves every point by at most r, a point costing (|death - birth|)/2 to reach the
 * diagonal. The result is exactly one of the candidate values (an L-infinity distance between
 * two points, or a distance to the diagonal); it is found by a search over the candidates with
 * Hopcroft–Karp matching over a k-d tree (no quadratic edge lists). Essential classes are
 * matched in sorted order of their finite coordinate. matching may be NULL. ATS_ERR_INVALID for
 * NaN coordinates. */
ats_status ats_bottleneck_distance(const ats_diagram *a, const ats_diagram *b, double *distance,
                                   ats_matching *matching, ats_error *err);

typedef struct ats_wasserstein_options {
    double q;          /* order, q >= 1 (default 1) */
    double internal_p; /* ground metric L_p, 1 <= p <= INFINITY (default INFINITY) */
    double delta;      /* relative error allowed to the auction, > 0 (default 0.01): the result
                          W satisfies W_exact <= W <= (1 + delta) W_exact */
    int exact;         /* 1: always the exact solver (default 0) */
    size_t exact_max;  /* when exact == 0, diagrams with at most this many finite off-diagonal
                          points in A and B together use the exact solver (default 256) */
} ats_wasserstein_options;

/* Fills the defaults above. */
void ats_wasserstein_options_init(ats_wasserstein_options *opt);

/* q-Wasserstein distance with internal L_p: (min over matchings of sum of cost)^(1/q), where
 * matching x to y costs ||x - y||_p^q and x to the diagonal ||x - proj(x)||_p^q, proj(x) the
 * L_p-nearest point of the diagonal (distance |death - birth|/2 * 2^(1/p)). Essential classes
 * add sum |delta|^q over their sorted finite coordinates. Exact: shortest augmenting paths
 * (Hungarian) on the (|A|+|B|)-square augmented problem, O((|A|+|B|)^3). Otherwise: forward
 * auction with epsilon-scaling (Bertsekas) over a k-d tree with subtree price minima, stopped
 * when the primal cost is within (1+delta)^q of the dual bound. opt may be NULL (defaults);
 * matching may be NULL. */
ats_status ats_wasserstein_distance(const ats_diagram *a, const ats_diagram *b,
                                    const ats_wasserstein_options *opt, double *distance,
                                    ats_matching *matching, ats_error *err);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop
#endif
