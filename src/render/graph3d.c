/* A graph in 3-D drawn in an orthographic view: edges and nodes painted back to front, the far
 * ones paler, so that depth reads without shading. */
#include "canvas.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ats_graph3d_options_init(ats_graph3d_options *opt) {
    memset(opt, 0, sizeof *opt);
    ats_figure_options_init(&opt->fig);
    opt->azimuth = -60;
    opt->elevation = 25;
}

typedef struct item {
    double depth; /* larger: nearer the viewer */
    size_t index;
} item;

static int by_depth(const void *x, const void *y) {
    const item *a = x, *b = y;
    if (a->depth != b->depth) return a->depth < b->depth ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

ats_status ats_render_graph3d(const char *path, size_t n, const double *xyz, size_t n_edges,
                              const size_t *edges, const double *weights,
                              const ats_graph3d_options *opt, ats_error *err) {
    ats_graph3d_options defaults;
    if (!opt) {
        ats_graph3d_options_init(&defaults);
        opt = &defaults;
    }
    double wmax = 0;
    for (size_t i = 0; i < 3 * n; i++)
        if (!isfinite(xyz[i]))
            return ats_error_set(err, ATS_ERR_INVALID, "%s: coordinate %zu is not finite", path, i);
    for (size_t e = 0; e < n_edges; e++) {
        if (edges[2 * e] >= n || edges[2 * e + 1] >= n)
            return ats_error_set(err, ATS_ERR_INVALID, "%s: edge %zu names a node >= %zu", path, e,
                                 n);
        if (!(weights[e] >= 0) || isinf(weights[e]))
            return ats_error_set(err, ATS_ERR_INVALID, "%s: edge %zu has weight %g", path, e,
                                 weights[e]);
        wmax = fmax(wmax, weights[e]);
    }
    /* the view: turn about the vertical (y) axis by the azimuth, then tilt by the elevation */
    double az = opt->azimuth * ATS_PI / 180, el = opt->elevation * ATS_PI / 180, r = 0;
    double *p = malloc((n ? n : 1) * 3 * sizeof *p); /* screen x, y and depth */
    item *nodes = malloc((n ? n : 1) * sizeof *nodes),
         *order = malloc((n_edges ? n_edges : 1) * sizeof *order);
    if (!p || !nodes || !order) {
        free(p);
        free(nodes);
        free(order);
        return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; i < n; i++) {
        double x = xyz[3 * i], y = xyz[3 * i + 1], z = xyz[3 * i + 2];
        double x1 = x * cos(az) + z * sin(az), z1 = -x * sin(az) + z * cos(az);
        double y2 = y * cos(el) - z1 * sin(el), z2 = y * sin(el) + z1 * cos(el);
        p[3 * i] = x1;
        p[3 * i + 1] = y2;
        p[3 * i + 2] = z2;
        r = fmax(r, sqrt(x * x + y * y + z * z));
        nodes[i] = (item){z2, i};
    }
    if (r == 0) r = 1;
    for (size_t e = 0; e < n_edges; e++)
        order[e] = (item){(p[3 * edges[2 * e] + 2] + p[3 * edges[2 * e + 1] + 2]) / 2, e};
    qsort(nodes, n, sizeof *nodes, by_depth);
    qsort(order, n_edges, sizeof *order, by_depth);
    double side = 440, title_h = opt->fig.title ? 30 : 8, pad = 16;
    double tw = 0, th = 0; /* a long title widens the figure rather than being clipped */
    if (opt->fig.title) {
        canvas probe;
        canvas_probe_open(&probe, &opt->fig);
        canvas_text_extent(&probe, opt->fig.title, 12, 1, &tw, &th);
        canvas_probe_close(&probe);
    }
    double w = opt->fig.width > 0 ? opt->fig.width : fmax(side + 2 * pad, tw + 2 * pad);
    double h = opt->fig.height > 0 ? opt->fig.height : side + 2 * pad + title_h;
    double cx = w / 2, cy = title_h + (h - title_h) / 2,
           scale = (fmin(w, h - title_h) / 2 - pad) / r;
    canvas c;
    ats_status st = canvas_open(&c, path, w, h, &opt->fig, err);
    if (st) {
        free(p);
        free(nodes);
        free(order);
        return st;
    }
    cairo_t *cr = c.cr;
    if (opt->fig.title) canvas_text(&c, opt->fig.title, w / 2, title_h / 2 + 2, 12, 0.5, 0.5, 0, 1);
    /* the sphere's outline as a depth cue */
    cairo_new_path(cr); /* the title's text leaves a current point */
    cairo_set_source_rgba(cr, 0.5, 0.5, 0.5, 0.35);
    cairo_set_line_width(cr, 0.8);
    cairo_arc(cr, cx, cy, r * scale, 0, 2 * ATS_PI);
    cairo_stroke(cr);
#define SX(i)   (cx + p[3 * (i)] * scale)
#define SY(i)   (cy - p[3 * (i) + 1] * scale)
#define NEAR(z) (0.5 + 0.5 * (z) / r) /* 0 at the back, 1 at the front */
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    for (size_t k = 0; k < n_edges; k++) {
        size_t e = order[k].index, a = edges[2 * e], b = edges[2 * e + 1];
        double t = wmax > 0 ? weights[e] / wmax : 1, near = NEAR(order[k].depth);
        cairo_set_source_rgba(cr, 0.12, 0.25, 0.55, (0.15 + 0.7 * t) * (0.35 + 0.65 * near));
        cairo_set_line_width(cr, 0.4 + 2.0 * t);
        cairo_move_to(cr, SX(a), SY(a));
        cairo_line_to(cr, SX(b), SY(b));
        cairo_stroke(cr);
    }
    double rad = fmax(2.0, fmin(7.0, 0.9 * side / sqrt((double)(n ? n : 1)) / 2.5));
    for (size_t k = 0; k < n; k++) {
        size_t i = nodes[k].index;
        double near = NEAR(nodes[k].depth), fr = 0.45, fg = 0.55, fb = 0.75;
        if (opt->node_rgb) {
            fr = opt->node_rgb[3 * i] / 255.0;
            fg = opt->node_rgb[3 * i + 1] / 255.0;
            fb = opt->node_rgb[3 * i + 2] / 255.0;
        }
        /* far nodes fade towards white and shrink */
        double fade = 0.55 * (1 - near), rr = rad * (0.7 + 0.3 * near);
        cairo_arc(cr, SX(i), SY(i), rr, 0, 2 * ATS_PI);
        cairo_set_source_rgb(cr, fr + (1 - fr) * fade, fg + (1 - fg) * fade, fb + (1 - fb) * fade);
        cairo_fill_preserve(cr);
        cairo_set_source_rgba(cr, 0.1, 0.1, 0.1, 0.3 + 0.5 * near);
        cairo_set_line_width(cr, 0.6);
        cairo_stroke(cr);
    }
#undef SX
#undef SY
#undef NEAR
    free(p);
    free(nodes);
    free(order);
    return canvas_close(&c, err);
}
