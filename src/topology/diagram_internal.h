/* Internal to the diagram distances: a diagram split into its finite off-diagonal points, its
 * points on the diagonal and its essential classes; matching output helpers; the 2-d tree that
 * both distances search. */
#ifndef ATS_DIAGRAM_INTERNAL_H
#define ATS_DIAGRAM_INTERNAL_H

#include "attnscope/diagram.h"

#include <stdint.h>

/* Essential classes by which coordinate is infinite. */
enum {
    DG_FIN_PINF = 0, /* (finite, +inf), key birth */
    DG_FIN_MINF = 1, /* (finite, -inf), key birth */
    DG_PINF_FIN = 2, /* (+inf, finite), key death */
    DG_MINF_FIN = 3, /* (-inf, finite), key death */
    DG_MINF_PINF = 4,
    DG_PINF_MINF = 5,
    DG_N_CLASSES = 6
};

typedef struct dg_ess {
    double key; /* the finite coordinate (0 for the two doubly infinite classes) */
    int cls;
    int32_t idx; /* index in the diagram */
} dg_ess;

typedef struct dg_split {
    size_t n;          /* finite points off the diagonal */
    double *xy;        /* [n][2] birth, death */
    int32_t *idx;      /* [n] index in the diagram */
    size_t n_diag;     /* points with birth == death (finite or not) */
    int32_t *diag_idx; /* [n_diag] */
    size_t n_ess;
    dg_ess *ess;                    /* [n_ess] sorted by class, then key */
    size_t cls_start[DG_N_CLASSES]; /* class c occupies ess[cls_start[c] .. cls_start[c+1]) */
    size_t cls_count[DG_N_CLASSES];
} dg_split;

/* Splits d; `which` ("first", "second") labels messages. NaN gives ATS_ERR_INVALID; more than
 * 2^31 - 1 points ATS_ERR_RANGE. */
ats_status dg_split_make(const ats_diagram *d, const char *which, dg_split *out, ats_error *err);
void dg_split_free(dg_split *s);

/* 1 when every essential class has as many points in a as in b. */
int dg_ess_compatible(const dg_split *a, const dg_split *b);

/* Allocates room for na + nb pairs in m (count 0). */
ats_status dg_matching_begin(ats_matching *m, size_t na, size_t nb, ats_error *err);
static inline void dg_matching_push(ats_matching *m, int64_t i, int64_t j) {
    m->pairs[2 * m->count] = i;
    m->pairs[2 * m->count + 1] = j;
    m->count++;
}
/* Adds the essential pairs (class by class, in sorted order) and the diagonal points of both. */
void dg_matching_add_ess_diag(ats_matching *m, const dg_split *a, const dg_split *b);

/* A 2-d tree over points with ids 0 .. n-1 (diagram_kdtree.c). A node is a range [lo, hi) of pt
 * whose median position mid = lo + (hi - lo) / 2 holds the node's point, the median along the
 * wider side of the range's bounding box; its children are [lo, mid) and [mid + 1, hi). The
 * bottleneck search (with deletion) and the Wasserstein auction (with weights) keep their own
 * per-node data beside it and walk it themselves. */
typedef struct dg_kd_pt {
    double x, y;
    int32_t id;
} dg_kd_pt;

typedef struct dg_kd_tree {
    size_t n;
    dg_kd_pt *pt; /* [n] tree order */
    double *box;  /* [n][4] bounding box (xmin, xmax, ymin, ymax) of the range of the node at mid */
    int32_t *pos; /* [n] position of an id in pt, -1 when absent */
} dg_kd_tree;

/* Room for n points, every pos -1. Returns 0 when out of memory (t is then empty). */
int dg_kd_alloc(dg_kd_tree *t, size_t n);
void dg_kd_free(dg_kd_tree *t);
/* Arranges pt[lo, hi) into one tree: its boxes, the pos of its ids and, unless size is NULL,
 * size[mid] = the number of points in the range of each node. */
void dg_kd_build(dg_kd_tree *t, size_t lo, size_t hi, int32_t *size);
/* Fills pt with the n points xy [n][2], id = index, and builds the tree over all of them. */
void dg_kd_build_xy(dg_kd_tree *t, const double *xy, int32_t *size);

#endif
