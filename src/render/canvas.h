/* Internal drawing helpers shared by the figures: one canvas for PNG, SVG and PDF, pango text,
 * axis ticks. */
#ifndef ATS_RENDER_CANVAS_H
#define ATS_RENDER_CANVAS_H

#include "attnscope/render.h"

#include <cairo.h>
#include <stdio.h>

#define ATS_PI 3.14159265358979323846

typedef struct canvas {
    ats_figure_format format;
    cairo_surface_t *surface;
    cairo_t *cr;
    ats_outfile out;
    ats_figure_memory *memory; /* drawing into memory: the stream below fills it */
    FILE *mem_fp;
    char *mem_data;
    size_t mem_size;
    double width, height; /* points */
    const char *font;
} canvas;

/* Opens a figure of w × h points writing to path (atomically, on canvas_close), or into
 * opt->memory when set. */
ats_status canvas_open(canvas *c, const char *path, double w, double h,
                       const ats_figure_options *opt, ats_error *err);
/* Finishes drawing and commits the file. */
ats_status canvas_close(canvas *c, ats_error *err);
/* Drops the figure and its temporary file. */
void canvas_abort(canvas *c);

/* A scratch canvas that only measures text (canvas_text_extent), drawing nothing. */
void canvas_probe_open(canvas *c, const ats_figure_options *opt);
void canvas_probe_close(canvas *c);

/* Draws text with its anchor point at (x, y): ax = 0 left, 0.5 centre, 1 right; ay likewise for
 * top..bottom. angle in radians, counter-clockwise (text is rotated about the anchor). */
void canvas_text(canvas *c, const char *text, double x, double y, double size, double ax, double ay,
                 double angle, int bold);
/* Width and height of text at this size. */
void canvas_text_extent(canvas *c, const char *text, double size, int bold, double *w, double *h);

/* Up to max "nice" tick values (1, 2, 5 × 10^k steps) covering [lo, hi]; returns the count and
 * the step in *step. */
int nice_ticks(double lo, double hi, int target, double *ticks, int max, double *step);
/* Grid lines and tick labels of one axis, at nice values in [tick_lo, tick_hi]. Value v sits
 * at p0 + (v - v0) / (v1 - v0) * (p1 - p0) along the axis. A horizontal axis (vertical == 0)
 * draws its grid lines from y = g0 to y = g1 and its labels below y = label; a vertical axis
 * draws them from x = g0 to x = g1 and right-aligns its labels at x = label. */
void canvas_axis(canvas *c, int vertical, double tick_lo, double tick_hi, int target, double v0,
                 double v1, double p0, double p1, double g0, double g1, double label);
/* A tick label with as many decimals as the step needs. */
void format_tick(double v, double step, char *buf, size_t n);

/* A label's box: top-left corner (x, y) and size (w, h). */
typedef struct label_box {
    double x, y, w, h;
} label_box;

/* Places the labels of n points at (px[i], py[i]), drawn as markers of radius r, without
 * overlaps. Label i (w[i] × h[i]; w[i] < 0: no label) tries eight positions around its point:
 * right, left, the four diagonals, above, below; it takes the first one inside the rectangle
 * (x0, y0)–(x1, y1) that overlaps no label placed before and no other point's marker, or
 * none. Points with the fewest neighbours go first, so the isolated ones, which a reader looks
 * for, always get theirs; a crowd keeps as many as fit. Sets box[i] and placed[i] (1 or 0);
 * returns the count placed. */
size_t labels_place(size_t n, const double *px, const double *py, const double *w, const double *h,
                    double r, double x0, double y0, double x1, double y1, label_box *box,
                    unsigned char *placed);

/* The colours of homology dimensions 0.. (a qualitative palette). */
void dim_colour(int dim, double *r, double *g, double *b);

#endif
