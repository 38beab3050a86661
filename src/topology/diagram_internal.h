/* Internal to the diagram distances: a diagram split into its finite off-diagonal points, its
 * points on the diagonal and its essential classes; matching output helpers. */
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

#endif
