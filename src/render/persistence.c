/* Persistence diagrams and barcodes. */
#include "canvas.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The finite range of all points: births and finite deaths. */
static void diagram_range(size_t count, const ats_diagram *dgms, double *lo, double *hi) {
    *lo = 0.0;
    *hi = -INFINITY;
    for (size_t k = 0; k < count; k++)
        for (size_t i = 0; i < dgms[k].count; i++) {
            double b = dgms[k].pairs[2 * i], d = dgms[k].pairs[2 * i + 1];
            if (isfinite(b)) {
                if (b < *lo) *lo = b;
                if (b > *hi) *hi = b;
            }
            if (isfinite(d)) {
                if (d < *lo) *lo = d;
                if (d > *hi) *hi = d;
            }
        }
    if (!isfinite(*hi) || *hi <= *lo) *hi = *lo + 1.0;
}

static ats_status check_diagrams(const char *path, size_t count, const ats_diagram *dgms,
                                 ats_error *err) {
    for (size_t k = 0; k < count; k++)
        for (size_t i = 0; i < dgms[k].count; i++) {
            double b = dgms[k].pairs[2 * i], d = dgms[k].pairs[2 * i + 1];
            if (isnan(b) || isnan(d) || isinf(b))
                return ats_error_set(err, ATS_ERR_INVALID,
                                     "%s: diagram %zu, point %zu has a NaN or infinite birth", path,
                                     k, i);
        }
    return ATS_OK;
}

static void draw_title(canvas *c, const ats_figure_options *opt, double y) {
    if (opt && opt->title && *opt->title)
        canvas_text(c, opt->title, c->width / 2, y, 12, 0.5, 0.5, 0, 1);
}

ats_status ats_render_diagram(const char *path, size_t count, const ats_diagram *dgms,
                              const int *dims, const ats_figure_options *opt, ats_error *err) {
    ats_status st = check_diagrams(path, count, dgms, err);
    if (st) return st;
    double side = 340, ml = 58, mr = 18, mt = (opt && opt->title) ? 34 : 16, mb = 46;
    double w = opt && opt->width > 0 ? opt->width : ml + side + mr;
    double h = opt && opt->height > 0 ? opt->height : mt + side + mb;
    side = fmin(w - ml - mr, h - mt - mb);
    if (side < 40) return ats_error_set(err, ATS_ERR_RANGE, "%s: figure too small", path);
    canvas c;
    st = canvas_open(&c, path, w, h, opt, err);
    if (st) return st;
    cairo_t *cr = c.cr;
    double lo, hi;
    diagram_range(count, dgms, &lo, &hi);
    int has_inf = 0;
    for (size_t k = 0; k < count; k++)
        for (size_t i = 0; i < dgms[k].count; i++) has_inf |= isinf(dgms[k].pairs[2 * i + 1]);
    double span = hi - lo, vlo = lo - 0.04 * span, vhi = hi + 0.04 * span;
    double inf_y = vhi + (has_inf ? 0.08 * span : 0), top = inf_y + (has_inf ? 0.04 * span : 0);
    double x0 = ml, y0 = mt + side; /* bottom-left of the plot area */
#define PX(v) (x0 + ((v)-vlo) / (top - vlo) * side)
#define PY(v) (y0 - ((v)-vlo) / (top - vlo) * side)
    draw_title(&c, opt, mt / 2);
    /* frame, ticks and grid */
    canvas_axis(&c, 0, vlo, vhi, 6, vlo, top, x0, x0 + side, y0, y0 - side, y0 + 4);
    canvas_axis(&c, 1, vlo, vhi, 6, vlo, top, y0, y0 - side, x0, x0 + side, x0 - 5);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 0.8);
    cairo_rectangle(cr, x0, y0 - side, side, side);
    cairo_stroke(cr);
    canvas_text(&c, "birth", x0 + side / 2, y0 + 22, 10, 0.5, 0, 0, 0);
    canvas_text(&c, "death", x0 - 42, y0 - side / 2, 10, 0.5, 0.5, ATS_PI / 2, 0);
    /* diagonal and the line of essential classes */
    cairo_save(cr);
    cairo_rectangle(cr, x0, y0 - side, side, side);
    cairo_clip(cr);
    cairo_set_source_rgb(cr, 0.45, 0.45, 0.45);
    cairo_set_line_width(cr, 0.8);
    cairo_move_to(cr, PX(vlo), PY(vlo));
    cairo_line_to(cr, PX(top), PY(top));
    cairo_stroke(cr);
    if (has_inf) {
        double dash[2] = {4, 3};
        cairo_set_dash(cr, dash, 2, 0);
        cairo_move_to(cr, x0, PY(inf_y));
        cairo_line_to(cr, x0 + side, PY(inf_y));
        cairo_stroke(cr);
        cairo_set_dash(cr, NULL, 0, 0);
    }
    /* points, higher dimensions on top */
    for (size_t k = 0; k < count; k++) {
        double r, g, b;
        dim_colour(dims ? dims[k] : (int)k, &r, &g, &b);
        cairo_set_source_rgba(cr, r, g, b, 0.75);
        for (size_t i = 0; i < dgms[k].count; i++) {
            double bx = dgms[k].pairs[2 * i], dy = dgms[k].pairs[2 * i + 1];
            cairo_new_sub_path(cr);
            cairo_arc(cr, PX(bx), PY(isinf(dy) ? inf_y : dy), 2.8, 0, 2 * ATS_PI);
        }
        cairo_fill(cr);
    }
    cairo_restore(cr);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    if (has_inf) canvas_text(&c, "∞", x0 - 5, PY(inf_y), 11, 1, 0.5, 0, 0);
    /* legend in the bottom-right corner: below the diagonal, where no point can be */
    double ly = y0 - 10 - 14.0 * (double)(count ? count - 1 : 0);
    for (size_t k = 0; k < count; k++) {
        double r, g, b;
        char lab[64];
        int dim = dims ? dims[k] : (int)k;
        dim_colour(dim, &r, &g, &b);
        cairo_set_source_rgba(cr, r, g, b, 0.9);
        cairo_arc(cr, x0 + side - 78, ly, 3.2, 0, 2 * ATS_PI);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        snprintf(lab, sizeof lab, "H%d  (%zu)", dim, dgms[k].count);
        canvas_text(&c, lab, x0 + side - 70, ly, 9, 0, 0.5, 0, 0);
        ly += 14;
    }
#undef PX
#undef PY
    return canvas_close(&c, err);
}

typedef struct bar {
    int dim;
    double birth, death;
} bar;

static int bar_cmp(const void *a, const void *b) {
    const bar *x = a, *y = b;
    if (x->dim != y->dim) return x->dim < y->dim ? -1 : 1;
    if (x->birth != y->birth) return x->birth < y->birth ? -1 : 1;
    double dx = x->death - x->birth, dy = y->death - y->birth;
    return dx > dy ? -1 : dx < dy;
}

ats_status ats_render_barcode(const char *path, size_t count, const ats_diagram *dgms,
                              const int *dims, const ats_figure_options *opt, ats_error *err) {
    ats_status st = check_diagrams(path, count, dgms, err);
    if (st) return st;
    size_t total = 0;
    for (size_t k = 0; k < count; k++) total += dgms[k].count;
    bar *bars = malloc((total ? total : 1) * sizeof *bars);
    if (!bars) return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    size_t m = 0;
    for (size_t k = 0; k < count; k++)
        for (size_t i = 0; i < dgms[k].count; i++)
            bars[m++] =
                (bar){dims ? dims[k] : (int)k, dgms[k].pairs[2 * i], dgms[k].pairs[2 * i + 1]};
    qsort(bars, m, sizeof *bars, bar_cmp);
    /* Bars thin out with the count, so that L·H heads or hundreds of tokens stay a page: a
     * wall of thick bars (72 at 7 pt) read as one block. Each dimension gets a header with
     * its count, and every k-th bar its rank at the left, k as small as the labels allow. */
    size_t groups = 0;
    for (size_t i = 0; i < m; i++) groups += i == 0 || bars[i].dim != bars[i - 1].dim;
    double pitch = m ? fmax(0.5, fmin(7.0, 360.0 / (double)m)) : 7.0, head_h = 16;
    double ml = 46, mr = 24, mt = (opt && opt->title) ? 34 : 14, mb = 40;
    double pw = 440, ph = fmax(60.0, pitch * (double)m + head_h * (double)groups + 6);
    double w = opt && opt->width > 0 ? opt->width : ml + pw + mr;
    double h = opt && opt->height > 0 ? opt->height : mt + ph + mb;
    pw = w - ml - mr;
    ph = h - mt - mb;
    if (pw < 40 || ph < 20) {
        free(bars);
        return ats_error_set(err, ATS_ERR_RANGE, "%s: figure too small", path);
    }
    canvas c;
    st = canvas_open(&c, path, w, h, opt, err);
    if (st) {
        free(bars);
        return st;
    }
    cairo_t *cr = c.cr;
    double lo, hi;
    diagram_range(count, dgms, &lo, &hi);
    double span = hi - lo, vlo = lo, vhi = hi + 0.06 * span; /* room for essential arrows */
#define PX(v) (ml + ((v)-vlo) / (vhi - vlo) * pw)
    draw_title(&c, opt, mt / 2);
    canvas_axis(&c, 0, lo, hi, 7, vlo, vhi, ml, ml + pw, mt, mt + ph, mt + ph + 4);
    canvas_text(&c, "filtration value", ml + pw / 2, mt + ph + 20, 10, 0.5, 0, 0, 0);
    double y = mt + 2;
    double scale = (ph - head_h * (double)groups - 6) / (m ? (double)m : 1.0);
    if (scale > pitch) scale = pitch;
    size_t every = 1, mag = 1; /* rank labels at least 9 pt apart: 1, 2, 5, 10, 20, 50, ... */
    for (int k = 0; (double)every * scale < 9.0 && every < ((size_t)1 << 40); k++) {
        if (k % 3 == 2) mag *= 10;
        every = (size_t)(k % 3 == 0 ? 2 : k % 3 == 1 ? 5 : 1) * mag;
    }
    size_t rank = 0;
    for (size_t i = 0; i < m; i++) {
        if (i == 0 || bars[i].dim != bars[i - 1].dim) {
            size_t in_dim = 0;
            while (i + in_dim < m && bars[i + in_dim].dim == bars[i].dim) in_dim++;
            char lab[64];
            snprintf(lab, sizeof lab, "H%d  \u00b7  %zu bar%s", bars[i].dim, in_dim,
                     in_dim == 1 ? "" : "s");
            cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
            canvas_text(&c, lab, ml, y + head_h - 3, 9.5, 0, 1, 0, 1);
            y += head_h;
            rank = 0;
        }
        double r, g, b;
        dim_colour(bars[i].dim, &r, &g, &b);
        double th = fmax(0.4, scale * (scale >= 4 ? 0.7 : 0.6));
        if (++rank % every == 0 || (rank == 1 && every >= 5)) {
            char lab[32];
            snprintf(lab, sizeof lab, "%zu", rank);
            cairo_set_source_rgb(cr, 0.45, 0.45, 0.45);
            canvas_text(&c, lab, ml - 5, y + th / 2, 7, 1, 0.5, 0, 0);
            cairo_set_line_width(cr, 0.5);
            cairo_move_to(cr, ml - 3, y + th / 2);
            cairo_line_to(cr, ml, y + th / 2);
            cairo_stroke(cr);
        }
        cairo_set_source_rgb(cr, r, g, b);
        double x1 = PX(bars[i].birth);
        int ess = isinf(bars[i].death);
        double x2 = ess ? ml + pw - 2 : PX(bars[i].death);
        cairo_rectangle(cr, x1, y, fmax(x2 - x1, 0.6), th);
        cairo_fill(cr);
        if (ess) {
            double a = fmax(2.5, th);
            cairo_move_to(cr, x2, y + th / 2 - a);
            cairo_line_to(cr, x2 + a * 1.4, y + th / 2);
            cairo_line_to(cr, x2, y + th / 2 + a);
            cairo_close_path(cr);
            cairo_fill(cr);
        }
        y += scale;
    }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 0.8);
    cairo_move_to(cr, ml, mt + ph);
    cairo_line_to(cr, ml + pw, mt + ph);
    cairo_stroke(cr);
#undef PX
    free(bars);
    return canvas_close(&c, err);
}
