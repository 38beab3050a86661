/* Heatmaps: one matrix with token labels, or a grid of them (all heads of a model). The cells
 * are drawn as one image scaled without smoothing, so a 512×512 map stays a small, exact SVG. */
#include "canvas.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ats_heatmap_options_init(ats_heatmap_options *opt) {
    memset(opt, 0, sizeof *opt);
    ats_figure_options_init(&opt->fig);
}

static void value_range(size_t count, const double *v, const ats_heatmap_options *opt, double *lo,
                        double *hi) {
    if (opt && opt->vmax > opt->vmin) {
        *lo = opt->vmin;
        *hi = opt->vmax;
        return;
    }
    *lo = INFINITY;
    *hi = -INFINITY;
    for (size_t i = 0; i < count; i++)
        if (isfinite(v[i])) {
            if (v[i] < *lo) *lo = v[i];
            if (v[i] > *hi) *hi = v[i];
        }
    if (!isfinite(*lo)) *lo = 0, *hi = 1;
    if (*hi <= *lo) *hi = *lo + 1.0;
}

/* Paints values [rows][cols] into the rectangle (x, y, w, h). Vector output of a moderate
 * matrix gets one rectangle per cell: browsers smooth an embedded raster when they scale it,
 * which blurs the cells. */
static int paint_cells(canvas *c, size_t rows, size_t cols, const double *v, double lo, double hi,
                       double x, double y, double w, double h) {
    if (c->format != ATS_FIGURE_PNG && rows * cols <= 16384) {
        double cw = w / (double)cols, ch = h / (double)rows;
        for (size_t i = 0; i < rows; i++)
            for (size_t j = 0; j < cols; j++) {
                double t = v[i * cols + j], r = 0.75, g = 0.75, b = 0.75;
                if (!isnan(t)) ats_colormap_viridis((t - lo) / (hi - lo), &r, &g, &b);
                cairo_set_source_rgb(c->cr, r, g, b);
                /* a hair of overlap hides the seams anti-aliasing would leave */
                cairo_rectangle(c->cr, x + cw * (double)j, y + ch * (double)i, cw + 0.05,
                                ch + 0.05);
                cairo_fill(c->cr);
            }
        return 1;
    }
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, (int)cols, (int)rows);
    if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS) {
        cairo_surface_destroy(img);
        return 0;
    }
    cairo_surface_flush(img);
    unsigned char *data = cairo_image_surface_get_data(img);
    int stride = cairo_image_surface_get_stride(img);
    for (size_t i = 0; i < rows; i++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)stride * i);
        for (size_t j = 0; j < cols; j++) {
            double t = v[i * cols + j], r = 0.75, g = 0.75, b = 0.75;
            if (!isnan(t)) ats_colormap_viridis((t - lo) / (hi - lo), &r, &g, &b);
            row[j] = ((uint32_t)lround(r * 255) << 16) | ((uint32_t)lround(g * 255) << 8) |
                     (uint32_t)lround(b * 255);
        }
    }
    cairo_surface_mark_dirty(img);
    cairo_save(c->cr);
    cairo_rectangle(c->cr, x, y, w, h);
    cairo_clip(c->cr);
    cairo_translate(c->cr, x, y);
    cairo_scale(c->cr, w / (double)cols, h / (double)rows);
    cairo_set_source_surface(c->cr, img, 0, 0);
    cairo_pattern_set_filter(cairo_get_source(c->cr), CAIRO_FILTER_NEAREST);
    cairo_paint(c->cr);
    cairo_restore(c->cr);
    cairo_surface_destroy(img);
    return 1;
}

static void colour_bar(canvas *c, double x, double y, double w, double h, double lo, double hi,
                       const char *title) {
    cairo_t *cr = c->cr;
    int steps = 128;
    for (int s = 0; s < steps; s++) {
        double r, g, b;
        ats_colormap_viridis((s + 0.5) / steps, &r, &g, &b);
        cairo_set_source_rgb(cr, r, g, b);
        double y1 = y + h - h * (s + 1) / steps;
        cairo_rectangle(cr, x, y1, w, h / steps + 0.3);
        cairo_fill(cr);
    }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 0.6);
    cairo_rectangle(cr, x, y, w, h);
    cairo_stroke(cr);
    double ticks[32], step;
    int nt = nice_ticks(lo, hi, 5, ticks, 32, &step);
    for (int i = 0; i < nt; i++) {
        char lab[64];
        format_tick(ticks[i], step, lab, sizeof lab);
        double ty = y + h - (ticks[i] - lo) / (hi - lo) * h;
        cairo_move_to(cr, x + w, ty);
        cairo_line_to(cr, x + w + 3, ty);
        cairo_stroke(cr);
        canvas_text(c, lab, x + w + 5, ty, 8, 0, 0.5, 0, 0);
    }
    if (title) canvas_text(c, title, x + w / 2, y - 8, 8.5, 0.5, 1, 0, 0);
}

static ats_status check_values(const char *path, size_t count, const double *v, ats_error *err) {
    for (size_t i = 0; i < count; i++)
        if (isinf(v[i]))
            return ats_error_set(err, ATS_ERR_INVALID, "%s: value %zu is infinite", path, i);
    return ATS_OK;
}

/* The same heatmap with rows and columns labelled by their indices where no labels were
 * given: one block holds the pointers and the digits. */
static ats_status render_index_labelled(const char *path, size_t rows, size_t cols,
                                        const double *values, const ats_heatmap_options *opt,
                                        ats_error *err) {
    enum { DIGITS = 8 }; /* "16383" and its NUL */
    size_t count = rows + cols;
    char **names = malloc(count * (sizeof *names + DIGITS));
    if (!names) return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    char *digits = (char *)(names + count);
    for (size_t i = 0; i < count; i++) {
        names[i] = digits + i * DIGITS;
        snprintf(names[i], DIGITS, "%zu", i < rows ? i : i - rows);
    }
    ats_heatmap_options own = *opt;
    own.index_labels = 0;
    if (!own.row_labels) own.row_labels = (const char *const *)names;
    if (!own.col_labels) own.col_labels = (const char *const *)(names + rows);
    ats_status st = ats_render_heatmap(path, rows, cols, values, &own, err);
    free(names);
    return st;
}

ats_status ats_render_heatmap(const char *path, size_t rows, size_t cols, const double *values,
                              const ats_heatmap_options *opt, ats_error *err) {
    if (opt && opt->index_labels && rows <= 16384 && cols <= 16384 &&
        (!opt->row_labels || !opt->col_labels))
        return render_index_labelled(path, rows, cols, values, opt, err);
    if (rows == 0 || cols == 0 || rows > 16384 || cols > 16384)
        return ats_error_set(err, ATS_ERR_RANGE, "%s: a %zux%zu heatmap is out of range", path,
                             rows, cols);
    ats_status st = check_values(path, rows * cols, values, err);
    if (st) return st;
    ats_heatmap_options defaults;
    if (!opt) {
        ats_heatmap_options_init(&defaults);
        opt = &defaults;
    }
    int labels = opt->row_labels || opt->col_labels;
    size_t big = rows > cols ? rows : cols;
    double cs = fmax(1.0, fmin(22.0, 560.0 / (double)big));
    if (labels && cs < 7.0) cs = 7.0; /* token labels stay legible at 512 tokens */
    double fs = fmin(10.0, cs * 0.8);
    canvas probe;
    memset(&probe, 0, sizeof probe);
    /* measure labels on a scratch surface */
    probe.surface = cairo_image_surface_create(CAIRO_FORMAT_A8, 1, 1);
    probe.cr = cairo_create(probe.surface);
    probe.font = opt->fig.font ? opt->fig.font : "DejaVu Sans";
    double lw = 0, lh = 0, tw, th;
    for (size_t i = 0; opt->row_labels && i < rows; i++) {
        canvas_text_extent(&probe, opt->row_labels[i] ? opt->row_labels[i] : "", fs, 0, &tw, &th);
        if (tw > lw) lw = tw;
    }
    for (size_t j = 0; opt->col_labels && j < cols; j++) {
        canvas_text_extent(&probe, opt->col_labels[j] ? opt->col_labels[j] : "", fs, 0, &tw, &th);
        if (tw > lh) lh = tw;
    }
    cairo_destroy(probe.cr);
    cairo_surface_destroy(probe.surface);
    lw = fmin(lw, 160);
    lh = fmin(lh, 160);
    double title_h = opt->fig.title ? 24 : 6;
    double ml = 14 + lw + (opt->row_title ? 16 : 0);
    double mt = title_h + lh + 8 + (opt->col_title ? 16 : 0);
    double mr = 70, mb = 14;
    double pw = cs * (double)cols, ph = cs * (double)rows;
    /* the colour bar needs some height even for a single row (e.g. entropy per token) */
    double bar_h = fmax(80.0, fmin(ph, 240.0) - 12);
    double w = ml + pw + mr, h = fmax(mt + ph + mb, mt + 12 + bar_h + 20);
    if (opt->fig.title) { /* wide enough for the title */
        probe.surface = cairo_image_surface_create(CAIRO_FORMAT_A8, 1, 1);
        probe.cr = cairo_create(probe.surface);
        canvas_text_extent(&probe, opt->fig.title, 12, 1, &tw, &th);
        cairo_destroy(probe.cr);
        cairo_surface_destroy(probe.surface);
        if (w < tw + 24) w = tw + 24;
    }
    ats_figure_options fig = opt->fig;
    if (fig.png_scale <= 0) fig.png_scale = 2.0;
    while (w * h * fig.png_scale * fig.png_scale > 3e8 && fig.png_scale > 0.5) fig.png_scale /= 2;
    canvas c;
    st = canvas_open(&c, path, w, h, &fig, err);
    if (st) return st;
    double lo, hi;
    value_range(rows * cols, values, opt, &lo, &hi);
    if (opt->fig.title) canvas_text(&c, opt->fig.title, w / 2, 12, 12, 0.5, 0.5, 0, 1);
    if (!paint_cells(&c, rows, cols, values, lo, hi, ml, mt, pw, ph)) {
        canvas_abort(&c);
        return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    }
    cairo_set_source_rgb(c.cr, 0.1, 0.1, 0.1);
    for (size_t i = 0; opt->row_labels && i < rows; i++)
        if (opt->row_labels[i])
            canvas_text(&c, opt->row_labels[i], ml - 4, mt + cs * ((double)i + 0.5), fs, 1, 0.5, 0,
                        0);
    for (size_t j = 0; opt->col_labels && j < cols; j++)
        if (opt->col_labels[j])
            canvas_text(&c, opt->col_labels[j], ml + cs * ((double)j + 0.5), mt - 4, fs, 0, 0.5,
                        ATS_PI / 2, 0);
    if (opt->row_title)
        canvas_text(&c, opt->row_title, 8, mt + ph / 2, 10, 0.5, 0.5, ATS_PI / 2, 0);
    if (opt->col_title) canvas_text(&c, opt->col_title, ml + pw / 2, title_h, 10, 0.5, 0, 0, 0);
    colour_bar(&c, ml + pw + 14, mt + 12, 12, bar_h, lo, hi, opt->value_title);
    return canvas_close(&c, err);
}

ats_status ats_render_heatmap_grid(const char *path, size_t grid_rows, size_t grid_cols,
                                   size_t rows, size_t cols, const double *values,
                                   const char *const *panel_titles, const ats_heatmap_options *opt,
                                   ats_error *err) {
    if (grid_rows == 0 || grid_cols == 0 || rows == 0 || cols == 0 || grid_rows > 256 ||
        grid_cols > 256 || rows > 16384 || cols > 16384)
        return ats_error_set(err, ATS_ERR_RANGE,
                             "%s: a %zux%zu grid of %zux%zu maps is out of range", path, grid_rows,
                             grid_cols, rows, cols);
    size_t per = rows * cols, total = per * grid_rows * grid_cols;
    ats_status st = check_values(path, total, values, err);
    if (st) return st;
    ats_heatmap_options defaults;
    if (!opt) {
        ats_heatmap_options_init(&defaults);
        opt = &defaults;
    }
    size_t big = rows > cols ? rows : cols;
    double side =
        fmax(48.0, fmin(140.0, 1400.0 / (double)(grid_cols > grid_rows ? grid_cols : grid_rows)));
    double cw = side * (double)cols / (double)big, ch = side * (double)rows / (double)big;
    double gap = 6, tt = 11, title_h = opt->fig.title ? 26 : 8, mr = 70;
    double w = 12 + (double)grid_cols * (cw + gap) + mr;
    double h = title_h + (double)grid_rows * (ch + gap + tt) + 10;
    ats_figure_options fig = opt->fig;
    canvas c;
    st = canvas_open(&c, path, w, h, &fig, err);
    if (st) return st;
    double lo, hi;
    value_range(total, values, opt, &lo, &hi);
    if (opt->fig.title) canvas_text(&c, opt->fig.title, w / 2, 13, 12, 0.5, 0.5, 0, 1);
    for (size_t a = 0; a < grid_rows; a++)
        for (size_t b = 0; b < grid_cols; b++) {
            double x = 12 + (double)b * (cw + gap), y = title_h + (double)a * (ch + gap + tt) + tt;
            char lab[64];
            const char *t = panel_titles ? panel_titles[a * grid_cols + b] : NULL;
            if (!t) {
                snprintf(lab, sizeof lab, "L%zu H%zu", a, b);
                t = lab;
            }
            cairo_set_source_rgb(c.cr, 0.15, 0.15, 0.15);
            canvas_text(&c, t, x + cw / 2, y - 1.5, 7.5, 0.5, 1, 0, 0);
            if (!paint_cells(&c, rows, cols, values + (a * grid_cols + b) * per, lo, hi, x, y, cw,
                             ch)) {
                canvas_abort(&c);
                return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
            }
        }
    colour_bar(&c, w - mr + 14, title_h + tt + 12, 12, fmin(h - title_h - 40, 240), lo, hi,
               opt->value_title);
    return canvas_close(&c, err);
}
