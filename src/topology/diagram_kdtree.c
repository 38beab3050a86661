/* The 2-d tree of the diagram distances: median splits along the wider side of each node's
 * bounding box, so that a search prunes whole boxes. */
#include "diagram_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static inline double key_of(const dg_kd_pt *p, int axis) {
    return axis ? p->y : p->x;
}

static inline void pt_swap(dg_kd_pt *a, dg_kd_pt *b) {
    dg_kd_pt t = *a;
    *a = *b;
    *b = t;
}

/* Puts the k-th smallest (by axis) of a[0..n) at a[k], smaller ones before, larger after.
 * Three-way partition around a median of three, so that runs of equal keys (common in
 * diagrams) cost no more than distinct ones. */
static void kd_select(dg_kd_pt *a, size_t n, size_t k, int axis) {
    size_t lo = 0, hi = n;
    while (hi - lo > 1) {
        double x = key_of(&a[lo], axis), y = key_of(&a[lo + (hi - lo) / 2], axis),
               z = key_of(&a[hi - 1], axis);
        double p = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        size_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            double v = key_of(&a[i], axis);
            if (v < p)
                pt_swap(&a[lt++], &a[i++]);
            else if (v > p)
                pt_swap(&a[i], &a[--gt]);
            else
                i++;
        }
        if (k < lt)
            hi = lt;
        else if (k >= gt)
            lo = gt;
        else
            return;
    }
}

/* Recurses on the left child and loops on the right, so the stack grows with the depth of
 * left descents only (log2 n). */
static void kd_split(dg_kd_tree *t, size_t lo, size_t hi, int32_t *size) {
    while (lo < hi) {
        /* comparisons, not fmin/fmax: a plain compare is inlined where fmin is a libm call,
         * and for the finite, NaN-free points of a dg_split both keep the same bound on a
         * tie (even between -0 and +0) */
        double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
        for (size_t i = lo; i < hi; i++) {
            const dg_kd_pt *p = &t->pt[i];
            if (p->x < x0) x0 = p->x;
            if (p->x > x1) x1 = p->x;
            if (p->y < y0) y0 = p->y;
            if (p->y > y1) y1 = p->y;
        }
        size_t mid = lo + (hi - lo) / 2;
        kd_select(t->pt + lo, hi - lo, mid - lo, x1 - x0 >= y1 - y0 ? 0 : 1);
        double *b = &t->box[4 * mid];
        b[0] = x0, b[1] = x1, b[2] = y0, b[3] = y1;
        if (size) size[mid] = (int32_t)(hi - lo);
        kd_split(t, lo, mid, size);
        lo = mid + 1;
    }
}

void dg_kd_build(dg_kd_tree *t, size_t lo, size_t hi, int32_t *size) {
    kd_split(t, lo, hi, size);
    for (size_t i = lo; i < hi; i++) t->pos[t->pt[i].id] = (int32_t)i;
}

void dg_kd_build_xy(dg_kd_tree *t, const double *xy, int32_t *size) {
    for (size_t j = 0; j < t->n; j++) {
        t->pt[j].x = xy[2 * j];
        t->pt[j].y = xy[2 * j + 1];
        t->pt[j].id = (int32_t)j;
    }
    dg_kd_build(t, 0, t->n, size);
}

void dg_kd_free(dg_kd_tree *t) {
    free(t->pt);
    free(t->box);
    free(t->pos);
    memset(t, 0, sizeof *t);
}

int dg_kd_alloc(dg_kd_tree *t, size_t n) {
    memset(t, 0, sizeof *t);
    /* ids and positions are int32_t */
    if (n > (size_t)INT32_MAX || n > SIZE_MAX / (4 * sizeof(double))) return 0;
    t->n = n;
    size_t nn = n ? n : 1;
    t->pt = malloc(nn * sizeof(dg_kd_pt));
    t->box = malloc(nn * 4 * sizeof(double));
    t->pos = malloc(nn * sizeof(int32_t));
    if (!t->pt || !t->box || !t->pos) {
        dg_kd_free(t);
        return 0;
    }
    for (size_t i = 0; i < n; i++) t->pos[i] = -1;
    return 1;
}
