/* Labelled scatter plot: points coloured by group (e.g. heads by layer in an MDS embedding, as
 * Clark et al. 2019, Fig. 6), optional marker shapes (e.g. one per model) and a legend. */
#include "canvas.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ats_scatter_options_init(ats_scatter_options *opt) {
    memset(opt, 0, sizeof *opt);
    ats_figure_options_init(&opt->fig);
}

static void group_colour(size_t g, size_t n_groups, double *r, double *gr, double *b) {
    /* ordinal groups (layers) along viridis, stopping short of the pale yellow end */
    double t = n_groups > 1 ? 0.9 * (double)g / (double)(n_groups - 1) : 0.3;
    ats_colormap_viridis(t, r, gr, b);
}

static void marker(cairo_t *cr, int shape, double x, double y, double s) {
    switch (shape) {
    case 1:
        cairo_rectangle(cr, x - s, y - s, 2 * s, 2 * s);
        break;
    case 2:
        cairo_move_to(cr, x, y - 1.25 * s);
        cairo_line_to(cr, x + 1.15 * s, y + 0.85 * s);
        cairo_line_to(cr, x - 1.15 * s, y + 0.85 * s);
        cairo_close_path(cr);
        break;
    default:
        cairo_new_sub_path(cr);
        cairo_arc(cr, x, y, s, 0, 2 * ATS_PI);
    }
}

ats_status ats_render_scatter(const char *path, size_t n, const double *xy,
                              const ats_scatter_options *opt, ats_error *err) {
    ats_scatter_options dflt;
    if (!opt) {
        ats_scatter_options_init(&dflt);
        opt = &dflt;
    }
    if (n == 0) return ats_error_set(err, ATS_ERR_INVALID, "%s: a scatter plot needs points", path);
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        double x = xy[2 * i], y = xy[2 * i + 1];
        if (!isfinite(x) || !isfinite(y))
            return ats_error_set(err, ATS_ERR_INVALID, "%s: point %zu is not finite", path, i);
        if (opt->groups && (opt->groups[i] < 0 || (size_t)opt->groups[i] >= opt->n_groups))
            return ats_error_set(err, ATS_ERR_INVALID, "%s: point %zu has group %d of %zu", path, i,
                                 opt->groups[i], opt->n_groups);
        xlo = fmin(xlo, x);
        xhi = fmax(xhi, x);
        ylo = fmin(ylo, y);
        yhi = fmax(yhi, y);
    }
    double sx = fmax(fmax(xhi - xlo, yhi - ylo), 1e-12), sy = sx; /* equal scales */
    double cx = (xlo + xhi) / 2, cy = (ylo + yhi) / 2;
    xlo = cx - 0.55 * sx;
    xhi = cx + 0.62 * sx; /* room for the labels right of the points */
    ylo = cy - 0.55 * sy;
    yhi = cy + 0.55 * sy;
    double ml = 50, mt = opt->fig.title ? 34 : 14, mb = opt->labels ? 54 : 44; /* room for a note */
    double legend_w = (opt->groups || (opt->shapes && opt->shape_names)) ? 120 : 24;
    double pw = 460, ph = 460; /* plot area */
    double w = opt->fig.width > 0 ? opt->fig.width : ml + pw + legend_w;
    double h = opt->fig.height > 0 ? opt->fig.height : mt + ph + mb;
    pw = w - ml - legend_w;
    ph = h - mt - mb;
    pw = ph = fmin(pw, ph);
    if (pw < 60 || ph < 60) return ats_error_set(err, ATS_ERR_RANGE, "%s: figure too small", path);
    canvas c;
    ats_status st = canvas_open(&c, path, w, h, &opt->fig, err);
    if (st) return st;
    cairo_t *cr = c.cr;
    double x0 = ml, y0 = mt + ph;
#define PX(v) (x0 + ((v)-xlo) / (xhi - xlo) * pw)
#define PY(v) (y0 - ((v)-ylo) / (yhi - ylo) * ph)
    if (opt->fig.title) canvas_text(&c, opt->fig.title, w / 2, mt / 2, 12, 0.5, 0.5, 0, 1);
    canvas_axis(&c, 0, xlo, xhi, 6, xlo, xhi, x0, x0 + pw, y0 - ph, y0, y0 + 4);
    canvas_axis(&c, 1, ylo, yhi, 6, ylo, yhi, y0, y0 - ph, x0, x0 + pw, x0 - 5);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 0.8);
    cairo_rectangle(cr, x0, y0 - ph, pw, ph);
    cairo_stroke(cr);
    if (opt->x_title) canvas_text(&c, opt->x_title, x0 + pw / 2, y0 + 22, 10, 0.5, 0, 0, 0);
    if (opt->y_title)
        canvas_text(&c, opt->y_title, x0 - 38, y0 - ph / 2, 10, 0.5, 0.5, ATS_PI / 2, 0);
    /* points, then labels on top */
    double s = n > 200 ? 3.0 : 4.0;
    for (size_t i = 0; i < n; i++) {
        double r = 0.2, g = 0.4, b = 0.7;
        if (opt->groups) group_colour((size_t)opt->groups[i], opt->n_groups, &r, &g, &b);
        marker(cr, opt->shapes ? opt->shapes[i] : 0, PX(xy[2 * i]), PY(xy[2 * i + 1]), s);
        cairo_set_source_rgba(cr, r, g, b, 0.85);
        cairo_fill_preserve(cr);
        cairo_set_source_rgba(cr, 0, 0, 0, 0.5);
        cairo_set_line_width(cr, 0.4);
        cairo_stroke(cr);
    }
    if (opt->labels) {
        /* labels where they overlap nothing; the rest are left out, and the figure says so */
        double fs = n > 100 ? 5.0 : 6.5;
        double *lx = malloc(4 * n * sizeof *lx);
        label_box *box = malloc(n * sizeof *box);
        unsigned char *placed = malloc(n);
        if (!lx || !box || !placed) {
            free(lx);
            free(box);
            free(placed);
            canvas_abort(&c);
            return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
        }
        double *ly = lx + n, *lw = lx + 2 * n, *lh = lx + 3 * n;
        size_t wanted = 0;
        for (size_t i = 0; i < n; i++) {
            lx[i] = PX(xy[2 * i]);
            ly[i] = PY(xy[2 * i + 1]);
            lw[i] = lh[i] = -1;
            if (opt->labels[i]) {
                canvas_text_extent(&c, opt->labels[i], fs, 0, &lw[i], &lh[i]);
                wanted++;
            }
        }
        size_t shown = labels_place(n, lx, ly, lw, lh, s + 0.5, x0 + 1, y0 - ph + 1, x0 + pw - 1,
                                    y0 - 1, box, placed);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        for (size_t i = 0; i < n; i++)
            if (placed[i]) canvas_text(&c, opt->labels[i], box[i].x, box[i].y, fs, 0, 0, 0, 0);
        if (shown < wanted) {
            char note[128];
            snprintf(note, sizeof note, "%zu of %zu labels shown (the others would overlap)", shown,
                     wanted);
            cairo_set_source_rgb(cr, 0.4, 0.4, 0.4);
            canvas_text(&c, note, x0 + pw, y0 + 36, 7.5, 1, 0, 0, 0);
        }
        free(lx);
        free(box);
        free(placed);
    }
    /* legend: groups, then shapes */
    double lx = x0 + pw + 14, ly = mt + 8;
    if (opt->groups && opt->legend_title) {
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        canvas_text(&c, opt->legend_title, lx, ly, 9.5, 0, 0.5, 0, 1);
        ly += 14;
    }
    for (size_t k = 0; opt->groups && k < opt->n_groups && ly < h - 10; k++) {
        double r, g, b;
        group_colour(k, opt->n_groups, &r, &g, &b);
        marker(cr, 0, lx + 4, ly, 3.5);
        cairo_set_source_rgb(cr, r, g, b);
        cairo_fill(cr);
        char lab[64];
        const char *name = opt->group_names ? opt->group_names[k] : NULL;
        if (!name) {
            snprintf(lab, sizeof lab, "%zu", k);
            name = lab;
        }
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        canvas_text(&c, name, lx + 12, ly, 9, 0, 0.5, 0, 0);
        ly += 13;
    }
    if (opt->shapes && opt->shape_names) {
        ly += 8;
        for (size_t k = 0; k < opt->n_shapes && ly < h - 10; k++) {
            marker(cr, (int)k, lx + 4, ly, 3.5);
            cairo_set_source_rgb(cr, 0.5, 0.5, 0.5);
            cairo_fill(cr);
            cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
            canvas_text(&c, opt->shape_names[k] ? opt->shape_names[k] : "?", lx + 12, ly, 9, 0, 0.5,
                        0, 0);
            ly += 13;
        }
    }
#undef PX
#undef PY
    return canvas_close(&c, err);
}
