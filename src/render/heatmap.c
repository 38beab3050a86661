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

/* The colour bar's ticks: nice values in [lo, hi] and their labels. */
typedef struct bar_ticks {
    int n;
    double v[32];
    char lab[32][32];
    double label_w; /* the widest label */
} bar_ticks;

static void bar_ticks_make(canvas *probe, double lo, double hi, bar_ticks *t) {
    double step;
    t->n = nice_ticks(lo, hi, 5, t->v, 32, &step);
    t->label_w = 0;
    for (int i = 0; i < t->n; i++) {
        format_tick(t->v[i], step, t->lab[i], sizeof t->lab[i]);
        double tw, th;
        canvas_text_extent(probe, t->lab[i], 8, 0, &tw, &th);
        t->label_w = fmax(t->label_w, tw);
    }
}

/* Room right of the plot for a vertical colour bar: gap, bar, ticks, labels, and the title
 * turned to read upwards beside them (as matplotlib does), so that it can touch neither the
 * top tick nor the column labels above the plot. */
#define BAR_GAP 14.0
#define BAR_W   12.0
static double colour_bar_room(const bar_ticks *t, const char *title) {
    return BAR_GAP + BAR_W + 5 + t->label_w + (title ? 6 + 11 : 0) + 8;
}

/* One linear gradient with many stops rather than many thin rectangles, whose anti-aliased
 * seams show as stripes. */
static void bar_gradient(canvas *c, double x, double y, double w, double h, int horizontal) {
    cairo_t *cr = c->cr;
    cairo_pattern_t *pat = horizontal ? cairo_pattern_create_linear(x, 0, x + w, 0)
                                      : cairo_pattern_create_linear(0, y + h, 0, y);
    for (int s = 0; s <= 64; s++) {
        double r, g, b;
        ats_colormap_viridis(s / 64.0, &r, &g, &b);
        cairo_pattern_add_color_stop_rgb(pat, s / 64.0, r, g, b);
    }
    cairo_rectangle(cr, x, y, w, h);
    cairo_set_source(cr, pat);
    cairo_fill(cr);
    cairo_pattern_destroy(pat);
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 0.6);
    cairo_rectangle(cr, x, y, w, h);
    cairo_stroke(cr);
}

/* A vertical bar at (x, y, BAR_W, h) with ticks on its right and the title beside them. */
static void colour_bar(canvas *c, double x, double y, double h, double lo, double hi,
                       const bar_ticks *t, const char *title) {
    cairo_t *cr = c->cr;
    bar_gradient(c, x, y, BAR_W, h, 0);
    for (int i = 0; i < t->n; i++) {
        double ty = y + h - (t->v[i] - lo) / (hi - lo) * h;
        cairo_move_to(cr, x + BAR_W, ty);
        cairo_line_to(cr, x + BAR_W + 3, ty);
        cairo_stroke(cr);
        canvas_text(c, t->lab[i], x + BAR_W + 5, ty, 8, 0, 0.5, 0, 0);
    }
    if (title)
        canvas_text(c, title, x + BAR_W + 5 + t->label_w + 6, y + h / 2, 8.5, 0.5, 0, ATS_PI / 2,
                    0);
}

/* A horizontal bar at (x, y, w, 10) with ticks below it and the title at its right end: the
 * layout of a strip (one row of values, e.g. entropy per token), where a vertical bar would be
 * taller than the strip. */
#define HBAR_H 10.0
static void colour_bar_horizontal(canvas *c, double x, double y, double w, double lo, double hi,
                                  const bar_ticks *t, const char *title) {
    cairo_t *cr = c->cr;
    bar_gradient(c, x, y, w, HBAR_H, 1);
    for (int i = 0; i < t->n; i++) {
        double tx = x + (t->v[i] - lo) / (hi - lo) * w;
        cairo_move_to(cr, tx, y + HBAR_H);
        cairo_line_to(cr, tx, y + HBAR_H + 3);
        cairo_stroke(cr);
        canvas_text(c, t->lab[i], tx, y + HBAR_H + 4, 8, 0.5, 0, 0, 0);
    }
    if (title) canvas_text(c, title, x + w + 8, y + HBAR_H / 2, 8.5, 0, 0.5, 0, 0);
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
    double lo, hi;
    value_range(rows * cols, values, opt, &lo, &hi);
    canvas probe;
    canvas_probe_open(&probe, &opt->fig); /* measures labels */
    double lw = 0, lh = 0, tw, th, title_w = 0;
    for (size_t i = 0; opt->row_labels && i < rows; i++) {
        canvas_text_extent(&probe, opt->row_labels[i] ? opt->row_labels[i] : "", fs, 0, &tw, &th);
        if (tw > lw) lw = tw;
    }
    for (size_t j = 0; opt->col_labels && j < cols; j++) {
        canvas_text_extent(&probe, opt->col_labels[j] ? opt->col_labels[j] : "", fs, 0, &tw, &th);
        if (tw > lh) lh = tw;
    }
    if (opt->fig.title) canvas_text_extent(&probe, opt->fig.title, 12, 1, &title_w, &th);
    double vt_w = 0; /* the horizontal bar's title */
    if (opt->value_title) canvas_text_extent(&probe, opt->value_title, 8.5, 0, &vt_w, &th);
    bar_ticks ticks;
    bar_ticks_make(&probe, lo, hi, &ticks);
    canvas_probe_close(&probe);
    lw = fmin(lw, 160);
    lh = fmin(lh, 160);
    double title_h = opt->fig.title ? 24 : 6;
    double ml = 14 + lw + (opt->row_title ? 16 : 0);
    double mt = title_h + lh + 8 + (opt->col_title ? 16 : 0);
    double mb = 14;
    double pw = cs * (double)cols, ph = cs * (double)rows;
    /* a strip (e.g. entropy per token) is lower than a readable vertical colour bar: its bar
     * lies under it instead, so the figure is no taller than the strip needs */
    int strip = ph < 72.0;
    double bar_h = fmin(ph, 240.0), hbar_w = fmin(pw, 240.0), w, h;
    if (strip) {
        w = fmax(ml + pw + 14, ml + hbar_w + 8 + vt_w + 10);
        h = mt + ph + 12 + HBAR_H + 16 + mb;
    } else {
        w = ml + pw + colour_bar_room(&ticks, opt->value_title);
        h = mt + ph + mb;
    }
    if (opt->fig.title && w < title_w + 24) w = title_w + 24; /* wide enough for the title */
    ats_figure_options fig = opt->fig;
    if (fig.png_scale <= 0) fig.png_scale = 2.0;
    while (w * h * fig.png_scale * fig.png_scale > 3e8 && fig.png_scale > 0.5) fig.png_scale /= 2;
    canvas c;
    st = canvas_open(&c, path, w, h, &fig, err);
    if (st) return st;
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
    cairo_set_source_rgb(c.cr, 0.2, 0.2, 0.2);
    if (strip)
        colour_bar_horizontal(&c, ml, mt + ph + 12, hbar_w, lo, hi, &ticks, opt->value_title);
    else /* level with the cells: top and bottom of the bar are the plot's */
        colour_bar(&c, ml + pw + BAR_GAP, mt + (ph - bar_h) / 2, bar_h, lo, hi, &ticks,
                   opt->value_title);
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
    double lo, hi;
    value_range(total, values, opt, &lo, &hi);
    canvas probe;
    canvas_probe_open(&probe, &opt->fig);
    bar_ticks ticks;
    bar_ticks_make(&probe, lo, hi, &ticks);
    canvas_probe_close(&probe);
    double gap = 6, tt = 11, title_h = opt->fig.title ? 26 : 8;
    double mr = colour_bar_room(&ticks, opt->value_title);
    double w = 12 + (double)grid_cols * (cw + gap) - gap + mr;
    double h = title_h + (double)grid_rows * (ch + gap + tt) + 10;
    ats_figure_options fig = opt->fig;
    canvas c;
    st = canvas_open(&c, path, w, h, &fig, err);
    if (st) return st;
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
    /* level with the first row of panels, at most as tall as the grid */
    double grid_h = (double)grid_rows * (ch + gap + tt) - gap - tt;
    cairo_set_source_rgb(c.cr, 0.2, 0.2, 0.2);
    colour_bar(&c, w - mr + BAR_GAP, title_h + tt, fmin(grid_h, 240), lo, hi, &ticks,
               opt->value_title);
    return canvas_close(&c, err);
}
