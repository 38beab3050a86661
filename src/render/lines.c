/* Line charts and the patch skeleton over an image. */
#include "canvas.h"
#include "attnscope/rips.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The decades lo..hi (exponents) of a logarithmic y axis, labelled 10⁻⁷ etc., at most 8. */
static void log_axis(canvas *c, double lo, double hi, double p0, double p1, double g0, double g1,
                     double label) {
    static const char *const sup[10] = {"⁰", "¹", "²", "³", "⁴", "⁵", "⁶", "⁷", "⁸", "⁹"};
    int step = (int)ceil((hi - lo) / 8);
    cairo_set_line_width(c->cr, 0.5);
    for (double e = lo; e <= hi + 1e-9; e += step) {
        double pos = p0 + (e - lo) / (hi - lo) * (p1 - p0);
        cairo_set_source_rgb(c->cr, 0.9, 0.9, 0.9);
        cairo_move_to(c->cr, g0, pos);
        cairo_line_to(c->cr, g1, pos);
        cairo_stroke(c->cr);
        char lab[160] = "10", digits[24];
        long k = lround(e);
        if (k < 0) strcat(lab, "⁻");
        snprintf(digits, sizeof digits, "%ld", labs(k));
        for (const char *d = digits; *d; d++) strcat(lab, sup[*d - '0']);
        cairo_set_source_rgb(c->cr, 0.2, 0.2, 0.2);
        canvas_text(c, lab, label, pos, 8.5, 1, 0.5, 0, 0);
    }
}

void ats_lines_options_init(ats_lines_options *opt) {
    memset(opt, 0, sizeof *opt);
    ats_figure_options_init(&opt->fig);
}

ats_status ats_render_lines(const char *path, size_t count, const ats_series *series,
                            const ats_lines_options *opt, ats_error *err) {
    ats_lines_options defaults;
    if (!opt) {
        ats_lines_options_init(&defaults);
        opt = &defaults;
    }
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY, ypos = INFINITY;
    for (size_t s = 0; s < count; s++)
        for (size_t i = 0; i < series[s].count; i++) {
            double x = series[s].x[i], y = series[s].y[i];
            if (isinf(x) || isnan(x) || isinf(y))
                return ats_error_set(err, ATS_ERR_INVALID,
                                     "%s: series %zu, point %zu is not finite", path, s, i);
            if (isnan(y)) continue;
            xlo = fmin(xlo, x);
            xhi = fmax(xhi, x);
            ylo = fmin(ylo, y);
            yhi = fmax(yhi, y);
            if (y > 0) ypos = fmin(ypos, y);
        }
    if (!isfinite(xlo)) xlo = 0, xhi = 1, ylo = 0, yhi = 1;
    if (opt->y_max > opt->y_min) ylo = opt->y_min, yhi = opt->y_max;
    if (xhi <= xlo) xhi = xlo + 1;
    if (yhi <= ylo) yhi = ylo + 1;
    int log_y = opt->y_log;
    if (log_y) {
        /* whole decades: from the one below the smallest positive value to the one above the
         * largest */
        double lo = opt->y_min > 0 ? opt->y_min : isfinite(ypos) ? ypos : 1e-9;
        double hi = yhi > lo ? yhi : lo * 10;
        ylo = floor(log10(lo) - 0.05); /* a value on a decade gets room too */
        yhi = ceil(log10(hi) + 0.05);
        if (yhi <= ylo) yhi = ylo + 1;
    } else {
        double ypad = 0.05 * (yhi - ylo);
        ylo -= ypad;
        yhi += ypad;
    }
    /* an integer axis has room for the markers at its ends */
    double xtlo = xlo, xthi = xhi, xpad = opt->x_integer ? 0.5 : 0;
    xlo -= xpad;
    xhi += xpad;
    /* the legend as wide as its longest label */
    double legend_w = 0;
    {
        canvas probe;
        canvas_probe_open(&probe, &opt->fig);
        for (size_t s = 0; s < count; s++) {
            double tw, th;
            canvas_text_extent(&probe, series[s].label ? series[s].label : "", 9, 0, &tw, &th);
            legend_w = fmax(legend_w, tw);
        }
        canvas_probe_close(&probe);
    }
    double ml = 62, mr = fmax(150, 35 + legend_w + 12), mt = opt->fig.title ? 34 : 14, mb = 46,
           pw = 440, ph = 280;
    double w = opt->fig.width > 0 ? opt->fig.width : ml + pw + mr;
    double h = opt->fig.height > 0 ? opt->fig.height : mt + ph + mb;
    pw = w - ml - mr;
    ph = h - mt - mb;
    if (pw < 40 || ph < 40)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "%s: a %gx%g figure leaves no room for the plot beside its legend",
                             path, w, h);
    canvas c;
    ats_status st = canvas_open(&c, path, w, h, &opt->fig, err);
    if (st) return st;
    cairo_t *cr = c.cr;
#define PX(v) (ml + ((v)-xlo) / (xhi - xlo) * pw)
#define YV(v) (log_y ? ((v) > 0 ? fmax(log10(v), ylo) : ylo) : (v))
#define PY(v) (mt + ph - (YV(v) - ylo) / (yhi - ylo) * ph)
    if (opt->fig.title) canvas_text(&c, opt->fig.title, w / 2, mt / 2, 12, 0.5, 0.5, 0, 1);
    if (log_y)
        log_axis(&c, ylo, yhi, mt + ph, mt, ml, ml + pw, ml - 5);
    else
        canvas_axis(&c, 1, ylo, yhi, 6, ylo, yhi, mt + ph, mt, ml, ml + pw, ml - 5);
    /* integer ticks: a target of at most one tick a unit keeps the step >= 1 */
    int xt = opt->x_integer ? (int)fmin(8, fmax(1, xthi - xtlo)) : 8;
    canvas_axis(&c, 0, xtlo, xthi, xt, xlo, xhi, ml, ml + pw, mt, mt + ph, mt + ph + 4);
    cairo_set_line_width(cr, 0.8);
    cairo_rectangle(cr, ml, mt, pw, ph);
    cairo_stroke(cr);
    if (opt->x_title) canvas_text(&c, opt->x_title, ml + pw / 2, mt + ph + 22, 10, 0.5, 0, 0, 0);
    if (opt->y_title)
        canvas_text(&c, opt->y_title, ml - 46, mt + ph / 2, 10, 0.5, 0.5, ATS_PI / 2, 0);
    for (size_t s = 0; s < count; s++) {
        double r, g, b;
        dim_colour((int)s, &r, &g, &b);
        cairo_set_source_rgb(cr, r, g, b);
        cairo_set_line_width(cr, 1.8);
        int pen = 0;
        for (size_t i = 0; i < series[s].count; i++) {
            double y = series[s].y[i];
            if (isnan(y)) {
                pen = 0;
                continue;
            }
            if (pen)
                cairo_line_to(cr, PX(series[s].x[i]), PY(y));
            else
                cairo_move_to(cr, PX(series[s].x[i]), PY(y));
            pen = 1;
        }
        cairo_stroke(cr);
        for (size_t i = 0; i < series[s].count; i++) {
            if (isnan(series[s].y[i])) continue;
            cairo_arc(cr, PX(series[s].x[i]), PY(series[s].y[i]), 2.6, 0, 2 * ATS_PI);
            cairo_fill(cr);
        }
        /* legend on the right */
        double ly = mt + 10 + 16.0 * (double)s;
        cairo_move_to(cr, ml + pw + 12, ly);
        cairo_line_to(cr, ml + pw + 30, ly);
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        canvas_text(&c, series[s].label ? series[s].label : "", ml + pw + 35, ly, 9, 0, 0.5, 0, 0);
    }
#undef PX
#undef YV
#undef PY
    return canvas_close(&c, err);
}

ats_status ats_render_patch_skeleton(const char *path, const uint8_t *rgb, int width, int height,
                                     int grid_rows, int grid_cols, const double *lower,
                                     size_t n_scales, const double *scales,
                                     const ats_figure_options *opt, ats_error *err) {
    if (width <= 0 || height <= 0 || width > 8192 || height > 8192 || grid_rows <= 0 ||
        grid_rows > 256 || grid_cols <= 0 || grid_cols > 256)
        return ats_error_set(err, ATS_ERR_RANGE,
                             "%s: image %dx%d with a %dx%d patch grid is out of range", path, width,
                             height, grid_rows, grid_cols);
    if (n_scales == 0 || n_scales > 16)
        return ats_error_set(err, ATS_ERR_INVALID, "%s: between 1 and 16 scales", path);
    size_t n = (size_t)grid_rows * (size_t)grid_cols;
    ats_status st = ats_metric_check(n, lower, path, err);
    if (st) return st;
    for (size_t s = 0; s < n_scales; s++)
        if (!(scales[s] >= 0) || isinf(scales[s]))
            return ats_error_set(err, ATS_ERR_INVALID, "%s: scale %zu is not a finite number >= 0",
                                 path, s);
    /* each panel: the image's aspect, its longer side 300 */
    double side = 300, gap = 10, title_h = opt && opt->title ? 28 : 8, sub = 16;
    double pw = width >= height ? side : side * width / height,
           ph = height >= width ? side : side * height / width;
    double w = (double)n_scales * (pw + gap) + gap, h = title_h + sub + ph + gap;
    canvas c;
    st = canvas_open(&c, path, w, h, opt, err);
    if (st) return st;
    cairo_t *cr = c.cr;
    if (opt && opt->title) canvas_text(&c, opt->title, w / 2, 13, 12, 0.5, 0.5, 0, 1);
    cairo_surface_t *img = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
    int32_t *labels = malloc(n * sizeof *labels);
    size_t *sizes = malloc(n * sizeof *sizes);
    if (cairo_surface_status(img) != CAIRO_STATUS_SUCCESS || !labels || !sizes) {
        cairo_surface_destroy(img);
        free(labels);
        free(sizes);
        canvas_abort(&c);
        return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    }
    cairo_surface_flush(img);
    unsigned char *data = cairo_image_surface_get_data(img);
    int stride = cairo_image_surface_get_stride(img);
    for (int y = 0; y < height; y++) {
        uint32_t *row = (uint32_t *)(void *)(data + (size_t)stride * (size_t)y);
        for (int x = 0; x < width; x++) {
            const uint8_t *p = rgb + ((size_t)y * (size_t)width + (size_t)x) * 3;
            row[x] = ((uint32_t)p[0] << 16) | ((uint32_t)p[1] << 8) | p[2];
        }
    }
    cairo_surface_mark_dirty(img);
    double cw = pw / grid_cols, ch = ph / grid_rows;
    for (size_t s = 0; s < n_scales; s++) {
        double x0 = gap + (double)s * (pw + gap), y0 = title_h + sub;
        char lab[64];
        snprintf(lab, sizeof lab, "scale %.4g", scales[s]);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        canvas_text(&c, lab, x0 + pw / 2, title_h + 1, 9.5, 0.5, 0, 0, 0);
        cairo_save(cr);
        cairo_translate(cr, x0, y0);
        cairo_scale(cr, pw / width, ph / height);
        cairo_rectangle(cr, 0, 0, width, height);
        cairo_clip(cr);
        cairo_set_source_surface(cr, img, 0, 0);
        /* pad the edges instead of fading them; show tiny images' pixels as they are */
        cairo_pattern_set_extend(cairo_get_source(cr), CAIRO_EXTEND_PAD);
        if (width < 128 || height < 128)
            cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
        cairo_paint_with_alpha(cr, 0.75);
        cairo_restore(cr);
        /* the patch grid */
        cairo_set_source_rgba(cr, 1, 1, 1, 0.5);
        cairo_set_line_width(cr, 0.5);
        for (int k = 0; k <= grid_cols; k++) {
            cairo_move_to(cr, x0 + k * cw, y0);
            cairo_line_to(cr, x0 + k * cw, y0 + ph);
        }
        for (int k = 0; k <= grid_rows; k++) {
            cairo_move_to(cr, x0, y0 + k * ch);
            cairo_line_to(cr, x0 + pw, y0 + k * ch);
        }
        cairo_stroke(cr);
        size_t nc;
        ats_rips_clusters(n, lower, scales[s], labels, &nc, NULL);
        memset(sizes, 0, n * sizeof *sizes);
        for (size_t i = 0; i < n; i++) sizes[labels[i]]++;
#define CX(i) (x0 + ((double)((i) % (size_t)grid_cols) + 0.5) * cw)
#define CY(i) (y0 + ((double)((i) / (size_t)grid_cols) + 0.5) * ch)
        cairo_set_line_width(cr, 0.9);
        for (size_t a = 1; a < n; a++)
            for (size_t b = 0; b < a; b++) {
                double d = lower[ats_lower_index(a, b)];
                if (d > scales[s]) continue;
                double t = scales[s] > 0 ? 1 - d / scales[s] : 1;
                cairo_set_source_rgba(cr, 1.0, 0.95, 0.3, 0.25 + 0.6 * t);
                cairo_move_to(cr, CX(a), CY(a));
                cairo_line_to(cr, CX(b), CY(b));
                cairo_stroke(cr);
            }
        for (size_t i = 0; i < n; i++) {
            double r = 0.7, g = 0.7, b = 0.7;
            if (sizes[labels[i]] > 1) dim_colour(labels[i] % 7, &r, &g, &b); /* 7 is grey */
            cairo_set_source_rgb(cr, r, g, b);
            cairo_arc(cr, CX(i), CY(i), fmin(4.0, fmin(cw, ch) * 0.25), 0, 2 * ATS_PI);
            cairo_fill(cr);
        }
#undef CX
#undef CY
    }
    cairo_surface_destroy(img);
    free(labels);
    free(sizes);
    return canvas_close(&c, err);
}
