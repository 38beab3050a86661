/* Splitting a diagram into finite points, diagonal points and essential classes. */
#include "diagram_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int ess_cmp(const void *pa, const void *pb) {
    const dg_ess *a = pa, *b = pb;
    if (a->cls != b->cls) return a->cls < b->cls ? -1 : 1;
    if (a->key != b->key) return a->key < b->key ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

void dg_split_free(dg_split *s) {
    if (!s) return;
    free(s->xy);
    free(s->idx);
    free(s->diag_idx);
    free(s->ess);
    memset(s, 0, sizeof *s);
}

ats_status dg_split_make(const ats_diagram *d, const char *which, dg_split *out, ats_error *err) {
    memset(out, 0, sizeof *out);
    size_t count = d->count;
    if (count > (size_t)INT32_MAX - 1)
        return ats_error_set(err, ATS_ERR_RANGE, "%s diagram: %zu points is more than supported",
                             which, count);
    size_t n = 0, nd = 0, ne = 0;
    for (size_t i = 0; i < count; i++) {
        double b = d->pairs[2 * i], e = d->pairs[2 * i + 1];
        if (isnan(b) || isnan(e))
            return ats_error_set(err, ATS_ERR_INVALID, "%s diagram: point %zu is NaN", which, i);
        if (b == e)
            nd++;
        else if (isfinite(b) && isfinite(e))
            n++;
        else
            ne++;
    }
    out->xy = malloc((n ? n : 1) * 2 * sizeof(double));
    out->idx = malloc((n ? n : 1) * sizeof(int32_t));
    out->diag_idx = malloc((nd ? nd : 1) * sizeof(int32_t));
    out->ess = malloc((ne ? ne : 1) * sizeof(dg_ess));
    if (!out->xy || !out->idx || !out->diag_idx || !out->ess) {
        dg_split_free(out);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < count; i++) {
        double b = d->pairs[2 * i], e = d->pairs[2 * i + 1];
        if (b == e) {
            out->diag_idx[out->n_diag++] = (int32_t)i;
        } else if (isfinite(b) && isfinite(e)) {
            out->xy[2 * out->n] = b;
            out->xy[2 * out->n + 1] = e;
            out->idx[out->n++] = (int32_t)i;
        } else {
            dg_ess *s = &out->ess[out->n_ess++];
            s->idx = (int32_t)i;
            if (isfinite(b)) {
                s->cls = e > 0 ? DG_FIN_PINF : DG_FIN_MINF;
                s->key = b;
            } else if (isfinite(e)) {
                s->cls = b > 0 ? DG_PINF_FIN : DG_MINF_FIN;
                s->key = e;
            } else {
                s->cls = b < 0 ? DG_MINF_PINF : DG_PINF_MINF;
                s->key = 0;
            }
            out->cls_count[s->cls]++;
        }
    }
    qsort(out->ess, out->n_ess, sizeof(dg_ess), ess_cmp);
    size_t start = 0;
    for (int c = 0; c < DG_N_CLASSES; c++) {
        out->cls_start[c] = start;
        start += out->cls_count[c];
    }
    return ATS_OK;
}

int dg_ess_compatible(const dg_split *a, const dg_split *b) {
    for (int c = 0; c < DG_N_CLASSES; c++)
        if (a->cls_count[c] != b->cls_count[c]) return 0;
    return 1;
}

ats_status dg_matching_begin(ats_matching *m, size_t na, size_t nb, ats_error *err) {
    m->count = 0;
    m->pairs = NULL;
    size_t total, bytes;
    if (!ats_size_add(na, nb, &total) ||
        !ats_size_mul(total ? total : 1, 2 * sizeof(int64_t), &bytes))
        return ats_error_set(err, ATS_ERR_RANGE, "matching too large");
    m->pairs = malloc(bytes);
    if (!m->pairs) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    return ATS_OK;
}

void dg_matching_add_ess_diag(ats_matching *m, const dg_split *a, const dg_split *b) {
    for (size_t k = 0; k < a->n_ess; k++) dg_matching_push(m, a->ess[k].idx, b->ess[k].idx);
    for (size_t k = 0; k < a->n_diag; k++) dg_matching_push(m, a->diag_idx[k], -1);
    for (size_t k = 0; k < b->n_diag; k++) dg_matching_push(m, -1, b->diag_idx[k]);
}
