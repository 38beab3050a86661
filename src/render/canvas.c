#include "canvas.h"

#include <cairo-pdf.h>
#include <cairo-svg.h>
#include <math.h>
#include <pango/pangocairo.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ats_figure_options_init(ats_figure_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->png_scale = 2.0;
    opt->font = "DejaVu Sans";
}

ats_status ats_figure_format_from_path(const char *path, ats_figure_format *format,
                                       ats_error *err) {
    const char *dot = strrchr(path, '.');
    if (dot && !strcmp(dot, ".png"))
        *format = ATS_FIGURE_PNG;
    else if (dot && !strcmp(dot, ".svg"))
        *format = ATS_FIGURE_SVG;
    else if (dot && !strcmp(dot, ".pdf"))
        *format = ATS_FIGURE_PDF;
    else
        return ats_error_set(err, ATS_ERR_INVALID, "%s: a figure must be named .png, .svg or .pdf",
                             path);
    return ATS_OK;
}

void canvas_probe_open(canvas *c, const ats_figure_options *opt) {
    memset(c, 0, sizeof *c);
    c->surface = cairo_image_surface_create(CAIRO_FORMAT_A8, 1, 1);
    c->cr = cairo_create(c->surface);
    c->font = opt && opt->font ? opt->font : "DejaVu Sans";
}

void canvas_probe_close(canvas *c) {
    cairo_destroy(c->cr);
    cairo_surface_destroy(c->surface);
    memset(c, 0, sizeof *c);
}

static cairo_status_t write_stream(void *closure, const unsigned char *data, unsigned int len) {
    return fwrite(data, 1, len, (FILE *)closure) == len ? CAIRO_STATUS_SUCCESS
                                                        : CAIRO_STATUS_WRITE_ERROR;
}

ats_status canvas_open(canvas *c, const char *path, double w, double h,
                       const ats_figure_options *opt, ats_error *err) {
    memset(c, 0, sizeof *c);
    ats_status st = ATS_OK;
    c->memory = opt ? opt->memory : NULL;
    if (c->memory) {
        c->format = c->memory->format;
        if (c->format != ATS_FIGURE_PNG && c->format != ATS_FIGURE_SVG &&
            c->format != ATS_FIGURE_PDF)
            return ats_error_set(err, ATS_ERR_INVALID, "%s: unknown figure format %d", path,
                                 (int)c->format);
    } else {
        st = ats_figure_format_from_path(path, &c->format, err);
        if (st) return st;
    }
    if (!(w > 0 && h > 0 && w < 1e5 && h < 1e5))
        return ats_error_set(err, ATS_ERR_RANGE, "%s: figure size %gx%g is out of range", path, w,
                             h);
    double scale = opt && opt->png_scale > 0 ? opt->png_scale : 2.0;
    if (c->format == ATS_FIGURE_PNG && w * h * scale * scale > 4e8)
        return ats_error_set(err, ATS_ERR_RANGE,
                             "%s: a %gx%g point PNG at scale %g is too large; use .svg or .pdf",
                             path, w, h, scale);
    if (c->memory) {
        c->mem_fp = open_memstream(&c->mem_data, &c->mem_size);
        if (!c->mem_fp) return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    } else {
        st = ats_outfile_open(&c->out, path, err);
        if (st) return st;
    }
    FILE *fp = c->memory ? c->mem_fp : c->out.fp;
    c->width = w;
    c->height = h;
    c->font = opt && opt->font ? opt->font : "DejaVu Sans";
    switch (c->format) {
    case ATS_FIGURE_PNG:
        c->surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)ceil(w * scale),
                                                (int)ceil(h * scale));
        break;
    case ATS_FIGURE_SVG:
        c->surface = cairo_svg_surface_create_for_stream(write_stream, fp, w, h);
        break;
    case ATS_FIGURE_PDF:
        c->surface = cairo_pdf_surface_create_for_stream(write_stream, fp, w, h);
        break;
    }
    if (cairo_surface_status(c->surface) != CAIRO_STATUS_SUCCESS) {
        canvas_abort(c);
        return ats_error_set(err, ATS_ERR_NOMEM, "%s: cannot create a %gx%g figure", path, w, h);
    }
    c->cr = cairo_create(c->surface);
    if (c->format == ATS_FIGURE_PNG) cairo_scale(c->cr, scale, scale);
    cairo_set_source_rgb(c->cr, 1, 1, 1);
    cairo_paint(c->cr);
    cairo_set_source_rgb(c->cr, 0, 0, 0);
    return ATS_OK;
}

ats_status canvas_close(canvas *c, ats_error *err) {
    cairo_status_t cs = cairo_status(c->cr);
    cairo_destroy(c->cr);
    c->cr = NULL;
    FILE *fp = c->memory ? c->mem_fp : c->out.fp;
    if (cs == CAIRO_STATUS_SUCCESS && c->format == ATS_FIGURE_PNG)
        cs = cairo_surface_write_to_png_stream(c->surface, write_stream, fp);
    cairo_surface_finish(c->surface);
    if (cs == CAIRO_STATUS_SUCCESS) cs = cairo_surface_status(c->surface);
    cairo_surface_destroy(c->surface);
    c->surface = NULL;
    if (cs != CAIRO_STATUS_SUCCESS) {
        char path[512];
        snprintf(path, sizeof path, "%s", c->out.path ? c->out.path : "figure");
        canvas_abort(c);
        return ats_error_set(err, ATS_ERR_IO, "%s: drawing failed: %s", path,
                             cairo_status_to_string(cs));
    }
    if (!c->memory) return ats_outfile_commit(&c->out, err);
    int bad = fclose(c->mem_fp) != 0;
    c->mem_fp = NULL;
    if (bad) {
        canvas_abort(c);
        return ats_error_set(err, ATS_ERR_NOMEM, "figure: out of memory");
    }
    free(c->memory->data);
    c->memory->data = (unsigned char *)c->mem_data;
    c->memory->size = c->mem_size;
    c->mem_data = NULL;
    return ATS_OK;
}

void ats_figure_memory_free(ats_figure_memory *m) {
    if (!m) return;
    free(m->data);
    m->data = NULL;
    m->size = 0;
}

void canvas_abort(canvas *c) {
    if (c->cr) cairo_destroy(c->cr);
    if (c->surface) {
        cairo_surface_finish(c->surface);
        cairo_surface_destroy(c->surface);
    }
    c->cr = NULL;
    c->surface = NULL;
    if (c->mem_fp) fclose(c->mem_fp);
    c->mem_fp = NULL;
    free(c->mem_data);
    c->mem_data = NULL;
    if (!c->memory) ats_outfile_abort(&c->out);
}

static PangoLayout *make_layout(canvas *c, const char *text, double size, int bold) {
    PangoLayout *layout = pango_cairo_create_layout(c->cr);
    /* 72 dpi: a font size in points is a size in user units */
    pango_cairo_context_set_resolution(pango_layout_get_context(layout), 72.0);
    pango_layout_context_changed(layout);
    PangoFontDescription *fd = pango_font_description_from_string(c->font);
    pango_font_description_set_absolute_size(fd, size * PANGO_SCALE);
    if (bold) pango_font_description_set_weight(fd, PANGO_WEIGHT_BOLD);
    pango_layout_set_font_description(layout, fd);
    pango_font_description_free(fd);
    pango_layout_set_text(layout, text, -1);
    return layout;
}

void canvas_text_extent(canvas *c, const char *text, double size, int bold, double *w, double *h) {
    PangoLayout *layout = make_layout(c, text, size, bold);
    int pw, ph;
    pango_layout_get_size(layout, &pw, &ph);
    *w = (double)pw / PANGO_SCALE;
    *h = (double)ph / PANGO_SCALE;
    g_object_unref(layout);
}

void canvas_text(canvas *c, const char *text, double x, double y, double size, double ax, double ay,
                 double angle, int bold) {
    PangoLayout *layout = make_layout(c, text, size, bold);
    int pw, ph;
    pango_layout_get_size(layout, &pw, &ph);
    double w = (double)pw / PANGO_SCALE, h = (double)ph / PANGO_SCALE;
    cairo_save(c->cr);
    cairo_translate(c->cr, x, y);
    cairo_rotate(c->cr, -angle);
    cairo_move_to(c->cr, -ax * w, -ay * h);
    pango_cairo_show_layout(c->cr, layout);
    cairo_restore(c->cr);
    g_object_unref(layout);
}

int nice_ticks(double lo, double hi, int target, double *ticks, int max, double *step_out) {
    if (!(hi > lo)) hi = lo + 1.0;
    double raw = (hi - lo) / (target > 1 ? target : 1);
    double mag = pow(10.0, floor(log10(raw)));
    double f = raw / mag, step;
    if (f < 1.5)
        step = 1 * mag;
    else if (f < 3.5)
        step = 2 * mag;
    else if (f < 7.5)
        step = 5 * mag;
    else
        step = 10 * mag;
    int n = 0;
    for (double t = ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9 && n < max; t += step)
        ticks[n++] = fabs(t) < step * 1e-9 ? 0.0 : t;
    *step_out = step;
    return n;
}

void canvas_axis(canvas *c, int vertical, double tick_lo, double tick_hi, int target, double v0,
                 double v1, double p0, double p1, double g0, double g1, double label) {
    double ticks[32], step;
    int nt = nice_ticks(tick_lo, tick_hi, target, ticks, 32, &step);
    cairo_set_line_width(c->cr, 0.5);
    for (int i = 0; i < nt; i++) {
        char lab[64];
        format_tick(ticks[i], step, lab, sizeof lab);
        double pos = p0 + (ticks[i] - v0) / (v1 - v0) * (p1 - p0);
        cairo_set_source_rgb(c->cr, 0.9, 0.9, 0.9);
        if (vertical) {
            cairo_move_to(c->cr, g0, pos);
            cairo_line_to(c->cr, g1, pos);
        } else {
            cairo_move_to(c->cr, pos, g0);
            cairo_line_to(c->cr, pos, g1);
        }
        cairo_stroke(c->cr);
        cairo_set_source_rgb(c->cr, 0.2, 0.2, 0.2);
        if (vertical)
            canvas_text(c, lab, label, pos, 8.5, 1, 0.5, 0, 0);
        else
            canvas_text(c, lab, pos, label, 8.5, 0.5, 0, 0, 0);
    }
}

void format_tick(double v, double step, char *buf, size_t n) {
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    if (decimals > 10) decimals = 10;
    snprintf(buf, n, "%.*f", decimals, v);
}

void dim_colour(int dim, double *r, double *g, double *b) {
    static const double pal[8][3] = {
        {0.122, 0.467, 0.706}, {1.000, 0.498, 0.055}, {0.173, 0.627, 0.173}, {0.839, 0.153, 0.157},
        {0.580, 0.404, 0.741}, {0.549, 0.337, 0.294}, {0.890, 0.467, 0.761}, {0.498, 0.498, 0.498}};
    const double *p = pal[(dim < 0 ? 0 : dim) % 8];
    *r = p[0];
    *g = p[1];
    *b = p[2];
}

void ats_colormap_viridis(double t, double *r, double *g, double *b) {
    /* viridis sampled at k/8, linearly interpolated */
    static const double v[9][3] = {
        {0.267, 0.005, 0.329}, {0.278, 0.173, 0.478}, {0.231, 0.322, 0.545},
        {0.173, 0.447, 0.557}, {0.129, 0.569, 0.553}, {0.157, 0.682, 0.502},
        {0.369, 0.788, 0.384}, {0.678, 0.863, 0.188}, {0.992, 0.906, 0.145}};
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    double x = t * 8;
    int i = (int)x;
    if (i >= 8) i = 7;
    double f = x - i;
    *r = v[i][0] + f * (v[i + 1][0] - v[i][0]);
    *g = v[i][1] + f * (v[i + 1][1] - v[i][1]);
    *b = v[i][2] + f * (v[i + 1][2] - v[i][2]);
}

static int boxes_overlap(const label_box *a, const label_box *b) {
    return a->x < b->x + b->w && b->x < a->x + a->w && a->y < b->y + b->h && b->y < a->y + a->h;
}

typedef struct crowd {
    size_t i, neighbours;
} crowd;

static int crowd_cmp(const void *a, const void *b) {
    const crowd *x = a, *y = b;
    if (x->neighbours != y->neighbours) return x->neighbours < y->neighbours ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

size_t labels_place(size_t n, const double *px, const double *py, const double *w, const double *h,
                    double r, double x0, double y0, double x1, double y1, label_box *box,
                    unsigned char *placed) {
    /* the order: fewest points within three label heights first (index order without memory) */
    crowd *order = malloc((n ? n : 1) * sizeof *order);
    double near = 0;
    for (size_t i = 0; i < n; i++) near = fmax(near, 3 * h[i]);
    for (size_t i = 0; order && i < n; i++) {
        order[i] = (crowd){i, 0};
        for (size_t j = 0; j < n; j++)
            if (j != i && fabs(px[j] - px[i]) < near && fabs(py[j] - py[i]) < near)
                order[i].neighbours++;
    }
    if (order) qsort(order, n, sizeof *order, crowd_cmp);
    memset(placed, 0, n);
    size_t count = 0;
    const double g = 1.5, d = r * 0.75;
    for (size_t k = 0; k < n; k++) {
        size_t i = order ? order[k].i : k;
        if (w[i] < 0) continue;
        double x = px[i], y = py[i], bw = w[i], bh = h[i];
        const double cand[8][2] = {{x + r + g, y - bh / 2},  {x - r - g - bw, y - bh / 2},
                                   {x + d, y - d - bh},      {x + d, y + d},
                                   {x - d - bw, y - d - bh}, {x - d - bw, y + d},
                                   {x - bw / 2, y - r - bh}, {x - bw / 2, y + r}};
        for (int c = 0; c < 8 && !placed[i]; c++) {
            label_box b = {cand[c][0], cand[c][1], bw, bh};
            if (b.x < x0 || b.y < y0 || b.x + b.w > x1 || b.y + b.h > y1) continue;
            int free_spot = 1;
            for (size_t j = 0; j < n && free_spot; j++) {
                if (j != i && placed[j] && boxes_overlap(&b, &box[j])) free_spot = 0;
                label_box mk = {px[j] - r, py[j] - r, 2 * r, 2 * r};
                if (j != i && boxes_overlap(&b, &mk)) free_spot = 0;
            }
            if (free_spot) {
                box[i] = b;
                placed[i] = 1;
                count++;
            }
        }
    }
    free(order);
    return count;
}
