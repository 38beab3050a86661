/* Graph figures: the Rips 1-skeleton at a scale (force layout) and attention as a graph on a
 * circle. */
#include "canvas.h"
#include "attnscope/rips.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ats_graph_options_init(ats_graph_options *opt) {
    memset(opt, 0, sizeof *opt);
    ats_figure_options_init(&opt->fig);
    opt->show_labels = 1;
}

static void normalise(size_t n, int dim, double *pos) {
    for (int k = 0; k < dim; k++) {
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            double x = pos[i * (size_t)dim + (size_t)k];
            if (x < lo) lo = x;
            if (x > hi) hi = x;
        }
        double mid = 0.5 * (lo + hi), half = 0.5 * (hi - lo);
        for (size_t i = 0; i < n; i++) {
            double *x = &pos[i * (size_t)dim + (size_t)k];
            *x = half > 1e-12 ? (*x - mid) / half : 0.0;
        }
    }
}

ats_status ats_layout_force(size_t n, const double *lower, double scale, int dim, int iterations,
                            double *pos, ats_error *err) {
    const ats_lower metric = {n, lower};
    if (dim != 2 && dim != 3)
        return ats_error_set(err, ATS_ERR_INVALID, "layout: dimension must be 2 or 3");
    if (n > 8192) return ats_error_set(err, ATS_ERR_RANGE, "layout: %zu points is too many", n);
    if (n == 0) return ATS_OK;
    /* start from the classical MDS of the metric; a starting point, so 200 steps at most */
    ats_status st = ats_metric_mds(&metric, dim, 200, pos, err);
    if (st) return st;
    normalise(n, dim, pos);
    /* break exact coincidences deterministically */
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < dim; k++)
            pos[i * (size_t)dim + (size_t)k] +=
                1e-3 * (double)((i * 2654435761u + (size_t)k) % 97) / 97.0;
    double *disp = malloc(n * (size_t)dim * sizeof *disp);
    if (!disp) return ats_error_set(err, ATS_ERR_NOMEM, "layout: out of memory");
    double kk = 2.0 / sqrt((double)n), temp = 0.2;
    /* pull[i][j] (j > i, row-major upper triangle): the attraction of an edge within scale,
     * (1 - d/scale + 0.1) / kk, or 0 */
    size_t m = n * (n - 1) / 2;
    double *pull = malloc((m ? m : 1) * sizeof *pull);
    if (!pull) {
        free(disp);
        return ats_error_set(err, ATS_ERR_NOMEM, "layout: out of memory");
    }
    for (size_t i = 0, p = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++, p++) {
            double dij = ats_lower_at(&metric, i, j);
            pull[p] = dij <= scale && scale > 0 ? (1.0 - dij / scale + 0.1) / kk : 0.0;
        }
    for (int it = 0; it < iterations; it++) {
        memset(disp, 0, n * (size_t)dim * sizeof *disp);
        for (size_t i = 0, p = 0; i < n; i++) {
            const double *pi = pos + i * (size_t)dim;
            double *di = disp + i * (size_t)dim;
            for (size_t j = i + 1; j < n; j++, p++) {
                const double *pj = pos + j * (size_t)dim;
                double delta[3] = {pi[0] - pj[0], pi[1] - pj[1], dim == 3 ? pi[2] - pj[2] : 0.0};
                double d2 = 1e-9 + delta[0] * delta[0] + delta[1] * delta[1] + delta[2] * delta[2];
                /* repulsion kk²/d, attraction d²·pull, along delta / d */
                double d = sqrt(d2), g = (kk * kk / d - d2 * pull[p]) / d;
                double *dj = disp + j * (size_t)dim;
                for (int k = 0; k < dim; k++) {
                    di[k] += delta[k] * g;
                    dj[k] -= delta[k] * g;
                }
            }
        }
        for (size_t i = 0; i < n; i++) {
            double len = 1e-12;
            for (int k = 0; k < dim; k++)
                len += disp[i * (size_t)dim + (size_t)k] * disp[i * (size_t)dim + (size_t)k];
            len = sqrt(len);
            double step = fmin(len, temp);
            for (int k = 0; k < dim; k++)
                pos[i * (size_t)dim + (size_t)k] += disp[i * (size_t)dim + (size_t)k] / len * step;
        }
        temp *= 0.96;
    }
    free(disp);
    free(pull);
    normalise(n, dim, pos);
    return ATS_OK;
}

static void cluster_colour(int32_t c, size_t size, double *r, double *g, double *b) {
    if (size <= 1) {
        *r = *g = *b = 0.6;
        return;
    }
    if (c < 8) {
        dim_colour(c, r, g, b);
        return;
    }
    /* beyond the palette: hues spread by the golden angle */
    double h = fmod((double)c * 0.618033988749895, 1.0) * 6.0, x = 1 - fabs(fmod(h, 2.0) - 1);
    double rgb[6][3] = {{1, x, 0}, {x, 1, 0}, {0, 1, x}, {0, x, 1}, {x, 0, 1}, {1, 0, x}};
    int s = (int)h % 6;
    *r = 0.15 + 0.7 * rgb[s][0];
    *g = 0.15 + 0.7 * rgb[s][1];
    *b = 0.15 + 0.7 * rgb[s][2];
}

/* Draws the skeleton into the square (x, y, side). */
static int draw_skeleton(canvas *c, size_t n, const double *lower, double scale, const double *pos,
                         const ats_graph_options *opt, double x, double y, double side) {
    const ats_lower metric = {n, lower};
    cairo_t *cr = c->cr;
    int32_t *labels = malloc((n ? n : 1) * sizeof *labels);
    size_t *sizes = calloc(n ? n : 1, sizeof *sizes);
    if (!labels || !sizes) {
        free(labels);
        free(sizes);
        return 0;
    }
    size_t nc;
    ats_rips_clusters(n, lower, scale, labels, &nc, NULL);
    for (size_t i = 0; i < n; i++) sizes[labels[i]]++;
    double rad = n > 200 ? 2.0 : 3.6, fs = n > 200 ? 4.5 : n > 80 ? 6.5 : 8.5;
    /* The layout is scaled into the panel so that every node and its label (drawn right of
     * it) stay inside: a fixed padding let a long label near the right edge, or the node
     * itself in a crowded grid, spill into the neighbouring panel. */
    double m = side * 0.04, ox = m + rad, iw = side - 2 * ox, half_h = rad;
    char idx[32];
    for (size_t i = 0; opt->show_labels && i < n; i++) {
        const char *lab = opt->labels ? opt->labels[i] : NULL;
        if (!lab) {
            snprintf(idx, sizeof idx, "%zu", i);
            lab = idx;
        }
        double tw, th, u = (pos[2 * i] + 1) * 0.5;
        canvas_text_extent(c, lab, fs, 0, &tw, &th);
        half_h = fmax(half_h, th / 2);
        if (u > 1e-9) iw = fmin(iw, (side - m - rad - 1.5 - tw - ox) / u);
    }
    iw = fmax(iw, side * 0.3); /* absurdly long labels: the clip below keeps them in */
    double oy = m + half_h, ih = side - 2 * oy;
    cairo_save(cr);
    cairo_rectangle(cr, x, y, side, side);
    cairo_clip(cr);
#define X(i) (x + ox + (pos[2 * (i)] + 1) * 0.5 * iw)
#define Y(i) (y + oy + (1 - (pos[2 * (i) + 1] + 1) * 0.5) * ih)
    /* triangles, when few enough to be worth seeing */
    if (n <= 160) {
        cairo_set_source_rgba(cr, 0.25, 0.45, 0.85, 0.07);
        for (size_t a = 2; a < n; a++)
            for (size_t b = 1; b < a; b++) {
                if (ats_lower_at(&metric, a, b) > scale) continue;
                for (size_t d = 0; d < b; d++)
                    if (ats_lower_at(&metric, a, d) <= scale &&
                        ats_lower_at(&metric, b, d) <= scale) {
                        cairo_move_to(cr, X(a), Y(a));
                        cairo_line_to(cr, X(b), Y(b));
                        cairo_line_to(cr, X(d), Y(d));
                        cairo_close_path(cr);
                        cairo_fill(cr);
                    }
            }
    }
    cairo_set_line_width(cr, n > 200 ? 0.4 : 0.8);
    for (size_t a = 1; a < n; a++)
        for (size_t b = 0; b < a; b++) {
            double d = ats_lower_at(&metric, a, b);
            if (d > scale) continue;
            double t = scale > 0 ? 1 - d / scale : 1;
            cairo_set_source_rgba(cr, 0.2, 0.2, 0.3, 0.25 + 0.6 * t);
            cairo_move_to(cr, X(a), Y(a));
            cairo_line_to(cr, X(b), Y(b));
            cairo_stroke(cr);
        }
    for (size_t i = 0; i < n; i++) {
        double r, g, b;
        cluster_colour(labels[i], sizes[labels[i]], &r, &g, &b);
        cairo_set_source_rgb(cr, r, g, b);
        cairo_arc(cr, X(i), Y(i), rad, 0, 2 * ATS_PI);
        cairo_fill(cr);
    }
    if (opt->show_labels) {
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        for (size_t i = 0; i < n; i++) {
            const char *lab = opt->labels ? opt->labels[i] : NULL;
            if (!lab) {
                snprintf(idx, sizeof idx, "%zu", i);
                lab = idx;
            }
            canvas_text(c, lab, X(i) + rad + 1.5, Y(i), fs, 0, 0.5, 0, 0);
        }
    }
    cairo_restore(cr);
#undef X
#undef Y
    free(labels);
    free(sizes);
    return 1;
}

static ats_status check_metric(const char *path, size_t n, const double *lower, ats_error *err) {
    if (n == 0 || n > 8192)
        return ats_error_set(err, ATS_ERR_RANGE, "%s: %zu points is out of range", path, n);
    return ats_metric_check(n, lower, path, err);
}

ats_status ats_render_skeleton(const char *path, size_t n, const double *lower, double scale,
                               const ats_graph_options *opt, ats_error *err) {
    return ats_render_skeleton_grid(path, n, lower, 1, &scale, opt, err);
}

ats_status ats_render_skeleton_grid(const char *path, size_t n, const double *lower,
                                    size_t n_scales, const double *scales,
                                    const ats_graph_options *opt, ats_error *err) {
    ats_status st = check_metric(path, n, lower, err);
    if (st) return st;
    if (n_scales == 0 || n_scales > 64)
        return ats_error_set(err, ATS_ERR_INVALID, "%s: between 1 and 64 scales", path);
    for (size_t s = 0; s < n_scales; s++)
        if (!(scales[s] >= 0) || isinf(scales[s]))
            return ats_error_set(err, ATS_ERR_INVALID, "%s: scale %zu is not a finite number >= 0",
                                 path, s);
    ats_graph_options defaults;
    if (!opt) {
        ats_graph_options_init(&defaults);
        opt = &defaults;
    }
    double max_scale = 0;
    for (size_t s = 0; s < n_scales; s++) max_scale = fmax(max_scale, scales[s]);
    double *pos = malloc(n * 2 * sizeof *pos);
    if (!pos) return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    st = ats_layout_force(n, lower, max_scale, 2, n > 1000 ? 60 : 150, pos, err);
    if (st) {
        free(pos);
        return st;
    }
    size_t cols = n_scales <= 3 ? n_scales : (n_scales <= 4 ? 2 : 3);
    size_t rows = (n_scales + cols - 1) / cols;
    double side = n_scales == 1 ? (n > 200 ? 900 : 560) : (n > 200 ? 520 : 360);
    double title_h = opt->fig.title ? 26 : 6, sub = n_scales > 1 ? 16 : 14;
    /* panels are separated by a gutter where nothing is drawn */
    double gutter = 12;
    double w = (double)cols * (side + gutter) - gutter + 10,
           h = title_h + (double)rows * (side + sub) + 6;
    canvas c;
    st = canvas_open(&c, path, w, h, &opt->fig, err);
    if (st) {
        free(pos);
        return st;
    }
    if (opt->fig.title) canvas_text(&c, opt->fig.title, w / 2, 13, 12, 0.5, 0.5, 0, 1);
    for (size_t s = 0; s < n_scales; s++) {
        double x = 5 + (double)(s % cols) * (side + gutter),
               y = title_h + (double)(s / cols) * (side + sub);
        char lab[64];
        snprintf(lab, sizeof lab, "scale %.4g", scales[s]);
        cairo_set_source_rgb(c.cr, 0.15, 0.15, 0.15);
        canvas_text(&c, lab, x + side / 2, y + 2, 9.5, 0.5, 0, 0, 0);
        if (!draw_skeleton(&c, n, lower, scales[s], pos, opt, x, y + sub, side)) {
            canvas_abort(&c);
            free(pos);
            return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    free(pos);
    return canvas_close(&c, err);
}

typedef struct wedge {
    size_t i, j;
    double w;
} wedge;

static int wedge_cmp(const void *a, const void *b) {
    double x = ((const wedge *)a)->w, y = ((const wedge *)b)->w;
    return x < y ? -1 : x > y;
}

ats_status ats_render_attention_graph(const char *path, size_t n, const double *att,
                                      double min_weight, int symmetrize,
                                      const ats_graph_options *opt, ats_error *err) {
    if (n == 0 || n > 4096)
        return ats_error_set(err, ATS_ERR_RANGE, "%s: %zu tokens is out of range", path, n);
    for (size_t t = 0; t < n * n; t++)
        if (!(att[t] >= 0) || isinf(att[t]))
            return ats_error_set(err, ATS_ERR_INVALID,
                                 "%s: row %zu, column %zu: weight %g is not a finite number >= 0",
                                 path, t / n + 1, t % n + 1, att[t]);
    ats_graph_options defaults;
    if (!opt) {
        ats_graph_options_init(&defaults);
        opt = &defaults;
    }
    wedge *e = malloc((n * n > 0 ? n * n : 1) * sizeof *e);
    if (!e) return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    size_t m = 0;
    double wmax = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            if (i == j || (symmetrize && j > i)) continue;
            double w = symmetrize ? 0.5 * (att[i * n + j] + att[j * n + i]) : att[i * n + j];
            if (w >= min_weight && w > 0) e[m++] = (wedge){i, j, w};
            if (w > wmax) wmax = w;
        }
    qsort(e, m, sizeof *e, wedge_cmp); /* strong edges drawn last, on top */
    double side = n > 128 ? 900 : 620, title_h = opt->fig.title ? 26 : 6;
    double fs = n > 256 ? 4 : n > 96 ? 6 : 9;
    double margin = opt->show_labels ? fs * 7 + 10 : 12;
    canvas c;
    ats_status st = canvas_open(&c, path, side, side + title_h, &opt->fig, err);
    if (st) {
        free(e);
        return st;
    }
    cairo_t *cr = c.cr;
    if (opt->fig.title) canvas_text(&c, opt->fig.title, side / 2, 13, 12, 0.5, 0.5, 0, 1);
    double cx = side / 2, cy = title_h + side / 2, rad = side / 2 - margin;
#define ANG(i) (ATS_PI / 2 - 2 * ATS_PI * (double)(i) / (double)n)
    for (size_t t = 0; t < m; t++) {
        double a1 = ANG(e[t].i), a2 = ANG(e[t].j), w = wmax > 0 ? e[t].w / wmax : 0;
        double x1 = cx + rad * cos(a1), y1 = cy - rad * sin(a1);
        double x2 = cx + rad * cos(a2), y2 = cy - rad * sin(a2);
        double qx = cx + 0.25 * (x1 + x2 - 2 * cx), qy = cy + 0.25 * (y1 + y2 - 2 * cy);
        cairo_set_source_rgba(cr, 0.12, 0.35, 0.7, 0.12 + 0.8 * w);
        cairo_set_line_width(cr, 0.3 + 2.7 * w);
        cairo_move_to(cr, x1, y1);
        cairo_curve_to(cr, (x1 + 2 * qx) / 3, (y1 + 2 * qy) / 3, (x2 + 2 * qx) / 3,
                       (y2 + 2 * qy) / 3, x2, y2);
        cairo_stroke(cr);
        if (!symmetrize) { /* arrowhead at the key end */
            double dx = x2 - (x2 + 2 * qx) / 3, dy = y2 - (y2 + 2 * qy) / 3, l = hypot(dx, dy);
            if (l > 1e-9) {
                dx /= l;
                dy /= l;
                double s = 3 + 3 * w;
                cairo_move_to(cr, x2, y2);
                cairo_line_to(cr, x2 - s * dx + 0.5 * s * dy, y2 - s * dy - 0.5 * s * dx);
                cairo_line_to(cr, x2 - s * dx - 0.5 * s * dy, y2 - s * dy + 0.5 * s * dx);
                cairo_close_path(cr);
                cairo_fill(cr);
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        double a = ANG(i), self = wmax > 0 ? att[i * n + i] / wmax : 0;
        cairo_set_source_rgb(cr, 0.85, 0.35, 0.1);
        cairo_arc(cr, cx + rad * cos(a), cy - rad * sin(a), 1.8 + 3 * self, 0, 2 * ATS_PI);
        cairo_fill(cr);
        if (!opt->show_labels) continue;
        char idx[32];
        const char *lab = opt->labels ? opt->labels[i] : NULL;
        if (!lab) {
            snprintf(idx, sizeof idx, "%zu", i);
            lab = idx;
        }
        /* radial labels, never upside down */
        double lx = cx + (rad + 6) * cos(a), ly = cy - (rad + 6) * sin(a);
        int left = cos(a) < -1e-9;
        cairo_set_source_rgb(cr, 0.1, 0.1, 0.1);
        canvas_text(&c, lab, lx, ly, fs, left ? 1 : 0, 0.5, left ? a - ATS_PI : a, 0);
    }
#undef ANG
    free(e);
    return canvas_close(&c, err);
}
