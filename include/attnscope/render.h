/* attnscope render: publication figures with cairo + pango.
 *
 * Every figure is drawn by the same code into PNG, SVG or PDF, chosen by the output file's
 * extension (.png, .svg, .pdf). Text goes through pango, so token labels in any script —
 * right-to-left Hebrew and Arabic, CJK — are shaped correctly. Files are written atomically
 * (temporary file + rename). */
#ifndef ATTNSCOPE_RENDER_H
#define ATTNSCOPE_RENDER_H

#include "attnscope/core.h"
#include "attnscope/diagram.h"

/* exported from the shared library (see core.h) */
#pragma GCC visibility push(default)
#ifdef __cplusplus
extern "C" {
#endif

typedef enum ats_figure_format {
    ATS_FIGURE_PNG = 0,
    ATS_FIGURE_SVG = 1,
    ATS_FIGURE_PDF = 2
} ats_figure_format;

/* The format implied by a file name's extension; ATS_ERR_INVALID for anything else. */
ats_status ats_figure_format_from_path(const char *path, ats_figure_format *format, ats_error *err);

/* A figure drawn into memory instead of a file (ats_figure_options.memory), so that a server
 * or a notebook needs no temporary file. */
typedef struct ats_figure_memory {
    ats_figure_format format; /* in: the format to draw */
    unsigned char *data;      /* out: the encoded figure, malloc'd (ats_figure_memory_free) */
    size_t size;              /* out: its bytes */
} ats_figure_memory;

/* Frees data (safe on a zeroed or freed buffer); keeps format. */
void ats_figure_memory_free(ats_figure_memory *m);

typedef struct ats_figure_options {
    const char *title;         /* drawn above the plot; NULL for none */
    double width, height;      /* in points (1/72 in); 0 = the figure's natural size */
    double png_scale;          /* PNG pixels per point (default 2: crisp on screens and in print) */
    const char *font;          /* pango font family (default "DejaVu Sans") */
    ats_figure_memory *memory; /* NULL (default): write the file at path; else draw into memory
                                  in memory->format, and path only names the figure in
                                  messages (its extension is not looked at) */
} ats_figure_options;

void ats_figure_options_init(ats_figure_options *opt);

/* Persistence diagram: for each i, dgms[i] is the diagram of dimension dims[i]. Points are
 * coloured by dimension, the diagonal is drawn, and essential classes sit on a line marked ∞
 * above the finite range. */
ats_status ats_render_diagram(const char *path, size_t count, const ats_diagram *dgms,
                              const int *dims, const ats_figure_options *opt, ats_error *err);

/* Barcode: one bar per interval, grouped by dimension (a header with its count) and sorted by
 * birth, longest first; essential bars run to the right edge and end in an arrow. Bars thin
 * out with their count so that hundreds stay a page; every k-th bar (k = 1, 2, 5, 10, ... as
 * room allows) has its rank at the left. */
ats_status ats_render_barcode(const char *path, size_t count, const ats_diagram *dgms,
                              const int *dims, const ats_figure_options *opt, ats_error *err);

typedef struct ats_heatmap_options {
    ats_figure_options fig;
    const char *const *row_labels; /* [rows] or NULL (e.g. query tokens) */
    const char *const *col_labels; /* [cols] or NULL (e.g. key tokens) */
    const char *row_title;         /* axis titles, e.g. "query", "key"; NULL for none */
    const char *col_title;
    const char *value_title; /* colour bar title, e.g. "attention" */
    double vmin, vmax;       /* colour range; vmin == vmax (default 0, 0) = data range */
    int index_labels; /* 1: rows and columns without labels are labelled 0, 1, 2, ... (a layer
                         by head grid: row_title "layer", col_title "head") */
} ats_heatmap_options;

void ats_heatmap_options_init(ats_heatmap_options *opt);

/* Heatmap of values [rows][cols] (viridis colour map, NaN drawn grey) with labels and a colour
 * bar: beside the cells, or under them for a strip (a row or a few, e.g. entropy per token).
 * Cells stay square; labels are drawn whenever a cell is large enough to read them. */
ats_status ats_render_heatmap(const char *path, size_t rows, size_t cols, const double *values,
                              const ats_heatmap_options *opt, ats_error *err);

/* Grid of panels: values [grid_rows][grid_cols][rows][cols], e.g. all L×H attention heads,
 * one shared colour scale; panel_titles [grid_rows*grid_cols] or NULL ("L0 H3" style titles
 * are made when NULL). Token labels are not drawn in the grid. */
ats_status ats_render_heatmap_grid(const char *path, size_t grid_rows, size_t grid_cols,
                                   size_t rows, size_t cols, const double *values,
                                   const char *const *panel_titles, const ats_heatmap_options *opt,
                                   ats_error *err);

/* ---- graphs */

/* A layout of n points in `dim` (2 or 3) dimensions for the metric `lower` ([n(n-1)/2], as in
 * rips.h): classical MDS for a deterministic start, then force-directed refinement
 * (Fruchterman–Reingold) where the edges d <= scale attract with strength 1 - d/scale.
 * pos receives [n][dim] coordinates in [-1, 1]. */
ats_status ats_layout_force(size_t n, const double *lower, double scale, int dim, int iterations,
                            double *pos, ats_error *err);

typedef struct ats_graph_options {
    ats_figure_options fig;
    const char *const *labels; /* [n] node labels (tokens) or NULL for indices */
    int show_labels;           /* default 1 */
} ats_graph_options;

void ats_graph_options_init(ats_graph_options *opt);

/* The 1-skeleton of the Vietoris–Rips complex at `scale`: tokens as labelled nodes in a force
 * layout, edges d <= scale (darker for shorter), triangles lightly filled, nodes coloured by
 * their H0 cluster at that scale. */
ats_status ats_render_skeleton(const char *path, size_t n, const double *lower, double scale,
                               const ats_graph_options *opt, ats_error *err);

/* The skeleton at several scales side by side, with one shared layout scaled so that every
 * node and its label fit inside each panel. */
ats_status ats_render_skeleton_grid(const char *path, size_t n, const double *lower,
                                    size_t n_scales, const double *scales,
                                    const ats_graph_options *opt, ats_error *err);

/* Attention as a weighted directed graph on a circle: edge i -> j for att[i][j] >= min_weight
 * (width and opacity by weight). With symmetrize, the graph of (A + A^T)/2 is drawn undirected
 * (of a symmetric att, att itself: ats_head_graph in analysis.h makes a causal head symmetric
 * either way). att is [n][n]. */
ats_status ats_render_attention_graph(const char *path, size_t n, const double *att,
                                      double min_weight, int symmetrize,
                                      const ats_graph_options *opt, ats_error *err);

typedef struct ats_graph3d_options {
    ats_figure_options fig;
    const uint8_t *node_rgb;   /* [n][3] node colours (e.g. each image patch's mean colour), or
                                  NULL for one colour */
    double azimuth, elevation; /* the view in degrees: a turn about the vertical (y) axis, then a
                                  tilt towards the viewer (default -60, 25) */
} ats_graph3d_options;

void ats_graph3d_options_init(ats_graph3d_options *opt);

/* A weighted graph on points in 3-D (xyz [n][3], e.g. image patches on a Fibonacci sphere) in
 * an orthographic view: edges [n_edges][2] with weights [n_edges] >= 0 (width and opacity by
 * weight / the largest), edges and nodes painted back to front, the far ones paler and
 * smaller, and the circle of the points' largest radius. */
ats_status ats_render_graph3d(const char *path, size_t n, const double *xyz, size_t n_edges,
                              const size_t *edges, const double *weights,
                              const ats_graph3d_options *opt, ats_error *err);

/* ---- scatter plots */

typedef struct ats_scatter_options {
    ats_figure_options fig;
    const char *const *labels; /* [n] point labels (e.g. "L3H7") or NULL; each is drawn where
                                  it overlaps no other label or point, or left out (the figure
                                  says how many were) */
    const int *groups;         /* [n] colour group 0..n_groups-1 (ordinal, viridis) or NULL */
    size_t n_groups;
    const char *const *group_names; /* [n_groups] legend entries or NULL for the numbers */
    const char *legend_title;       /* e.g. "layer"; NULL for none */
    const int *shapes;              /* [n] marker 0 circle, 1 square, 2 triangle, or NULL */
    size_t n_shapes;
    const char *const *shape_names; /* [n_shapes] legend entries (e.g. model names) or NULL */
    const char *x_title, *y_title;  /* axis titles or NULL */
} ats_scatter_options;

void ats_scatter_options_init(ats_scatter_options *opt);

/* Scatter plot of n points xy [n][2] on equal scales, coloured by group with a legend (e.g. an
 * MDS embedding of attention heads coloured by layer, Clark et al. 2019 Fig. 6). opt may be
 * NULL. (Curves: ats_render_lines.) */
ats_status ats_render_scatter(const char *path, size_t n, const double *xy,
                              const ats_scatter_options *opt, ats_error *err);

/* ---- line charts and images */

/* One series of a line chart: count points (x[i], y[i]) with a legend label. */
typedef struct ats_series {
    const char *label;
    size_t count;
    const double *x; /* [count] */
    const double *y; /* [count]; NaN leaves a gap */
} ats_series;

typedef struct ats_lines_options {
    ats_figure_options fig;
    const char *x_title, *y_title;
    double y_min, y_max; /* y_min == y_max (default) = the data's range */
    int x_integer;       /* 1: x is a count (layers, frames): ticks only at integers, and half a
                            unit of room at both ends */
    int y_log;           /* 1: a logarithmic y axis with ticks at powers of ten, from the decade
                            below the smallest positive value (or y_min when > 0); values <= 0
                            sit on its lower edge */
} ats_lines_options;

void ats_lines_options_init(ats_lines_options *opt);

/* Line chart of several series with markers, axes, grid and a legend to the right, as wide as
 * its longest label (e.g. the cosine similarity of a word's context vectors by layer, one line
 * per model). */
ats_status ats_render_lines(const char *path, size_t count, const ats_series *series,
                            const ats_lines_options *opt, ats_error *err);

/* Vision: the skeleton of patch tokens drawn over the image at one or several scales. The image
 * is rgb [height][width][3] and the grid of grid_rows × grid_cols patches covers it; token k
 * (0-based, patches only, row-major) sits at the centre of its patch; lower is the metric between
 * the patch tokens ([n(n-1)/2], n = grid_rows · grid_cols). Patches are coloured by H0 cluster
 * at each scale. */
ats_status ats_render_patch_skeleton(const char *path, const uint8_t *rgb, int width, int height,
                                     int grid_rows, int grid_cols, const double *lower,
                                     size_t n_scales, const double *scales,
                                     const ats_figure_options *opt, ats_error *err);

/* ---- bar charts */

typedef struct ats_bars_options {
    ats_figure_options fig;
    const char *const *series_names; /* [n_series] legend entries or NULL */
    const char *value_title;         /* the value axis, e.g. "accuracy"; NULL for none */
    double v_min, v_max;             /* value range; v_min == v_max (default) = 0 .. the data's
                                        maximum */
    int show_values;                 /* 1: each bar's value printed at its end */
} ats_bars_options;

void ats_bars_options_init(ats_bars_options *opt);

/* Horizontal grouped bars: one group a category, top to bottom, one bar a series in the group
 * (qualitative colours, a legend), values [n_series][n_categories] finite (NaN: no bar).
 * category_labels [n_categories]. E.g. per dependency relation the best head's accuracy next to
 * the best fixed-offset baseline. */
ats_status ats_render_bars(const char *path, size_t n_categories, size_t n_series,
                           const double *values, const char *const *category_labels,
                           const ats_bars_options *opt, ats_error *err);

/* The colour map used for heatmaps: t in [0,1] -> r, g, b in [0,1] (viridis). */
void ats_colormap_viridis(double t, double *r, double *g, double *b);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop
#endif
