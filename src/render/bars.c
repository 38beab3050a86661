/* Horizontal grouped bar charts: categories top to bottom, one bar per series in each. */
#include "canvas.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

void ats_bars_options_init(ats_bars_options *opt) {
    memset(opt, 0, sizeof *opt);
    ats_figure_options_init(&opt->fig);
}

ats_status ats_render_bars(const char *path, size_t n_categories, size_t n_series,
                           const double *values, const char *const *category_labels,
                           const ats_bars_options *opt, ats_error *err) {
    ats_bars_options defaults;
    if (!opt) {
        ats_bars_options_init(&defaults);
        opt = &defaults;
    }
    if (n_categories == 0 || n_categories > 4096 || n_series == 0 || n_series > 16)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "%s: a bar chart takes 1..4096 categories and 1..16 series, not %zu "
                             "and %zu",
                             path, n_categories, n_series);
    double vlo = 0, vhi = 0;
    for (size_t i = 0; i < n_categories * n_series; i++) {
        if (isinf(values[i]))
            return ats_error_set(err, ATS_ERR_INVALID, "%s: value %zu of series %zu is infinite",
                                 path, i % n_categories, i / n_categories);
        if (!isnan(values[i])) {
            vlo = fmin(vlo, values[i]);
            vhi = fmax(vhi, values[i]);
        }
    }
    if (opt->v_max > opt->v_min) vlo = opt->v_min, vhi = opt->v_max;
    if (vhi <= vlo) vhi = vlo + 1;
    /* the margin on the left fits the longest category label */
    /* the margins fit the longest category label and legend entry */
    canvas probe;
    double label_w = 0, legend_w = 0, tw, th;
    canvas_probe_open(&probe, &opt->fig);
    for (size_t k = 0; k < n_categories; k++) {
        canvas_text_extent(&probe, category_labels[k] ? category_labels[k] : "", 9, 0, &tw, &th);
        label_w = fmax(label_w, tw);
    }
    for (size_t s = 0; opt->series_names && s < n_series; s++) {
        canvas_text_extent(&probe, opt->series_names[s] ? opt->series_names[s] : "", 9, 0, &tw,
                           &th);
        legend_w = fmax(legend_w, tw);
    }
    canvas_probe_close(&probe);
    double bar = 6.5, group_gap = 5, group = (double)n_series * bar + group_gap;
    double ml = 12 + label_w + 8, mr = opt->series_names ? legend_w + 50 : 16;
    double mt = opt->fig.title ? 34 : 14, mb = opt->value_title ? 44 : 28;
    double pw = 360, ph = (double)n_categories * group + group_gap;
    double w = opt->fig.width > 0 ? opt->fig.width : ml + pw + mr;
    double h = opt->fig.height > 0 ? opt->fig.height : mt + ph + mb;
    pw = w - ml - mr;
    if (opt->fig.height > 0) {
        ph = h - mt - mb;
        group = (ph - group_gap) / (double)n_categories;
        bar = (group - group_gap) / (double)n_series;
    }
    if (pw < 40 || bar <= 0.5)
        return ats_error_set(err, ATS_ERR_INVALID, "%s: the figure is too small for its bars",
                             path);
    canvas c;
    ats_status st = canvas_open(&c, path, w, h, &opt->fig, err);
    if (st) return st;
    cairo_t *cr = c.cr;
#define PX(v) (ml + ((v)-vlo) / (vhi - vlo) * pw)
    if (opt->fig.title) canvas_text(&c, opt->fig.title, w / 2, mt / 2, 12, 0.5, 0.5, 0, 1);
    canvas_axis(&c, 0, vlo, vhi, 6, vlo, vhi, ml, ml + pw, mt, mt + ph, mt + ph + 4);
    if (opt->value_title)
        canvas_text(&c, opt->value_title, ml + pw / 2, mt + ph + 22, 10, 0.5, 0, 0, 0);
    for (size_t k = 0; k < n_categories; k++) {
        double y0 = mt + group_gap + (double)k * group;
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        canvas_text(&c, category_labels[k] ? category_labels[k] : "", ml - 6,
                    y0 + (double)n_series * bar / 2, 9, 1, 0.5, 0, 0);
        for (size_t s = 0; s < n_series; s++) {
            double v = values[s * n_categories + k];
            if (isnan(v)) continue;
            double r, g, b, x0 = PX(fmax(vlo, fmin(vhi, 0.0))), x1 = PX(fmax(vlo, fmin(vhi, v)));
            dim_colour((int)s, &r, &g, &b);
            cairo_set_source_rgb(cr, r, g, b);
            cairo_rectangle(cr, fmin(x0, x1), y0 + (double)s * bar, fabs(x1 - x0), bar * 0.9);
            cairo_fill(cr);
            if (opt->show_values && bar >= 5) {
                char lab[32];
                snprintf(lab, sizeof lab, "%.2f", v);
                cairo_set_source_rgb(cr, 0.25, 0.25, 0.25);
                canvas_text(&c, lab, x1 + 2, y0 + ((double)s + 0.45) * bar, fmin(7, bar * 1.1), 0,
                            0.5, 0, 0);
            }
        }
    }
    cairo_set_source_rgb(cr, 0.2, 0.2, 0.2);
    cairo_set_line_width(cr, 0.8);
    cairo_rectangle(cr, ml, mt, pw, ph);
    cairo_stroke(cr);
    for (size_t s = 0; opt->series_names && s < n_series; s++) {
        double r, g, b, ly = mt + 8 + 16.0 * (double)s;
        dim_colour((int)s, &r, &g, &b);
        cairo_set_source_rgb(cr, r, g, b);
        cairo_rectangle(cr, ml + pw + 12, ly - 5, 16, 10);
        cairo_fill(cr);
        cairo_set_source_rgb(cr, 0.15, 0.15, 0.15);
        canvas_text(&c, opt->series_names[s] ? opt->series_names[s] : "", ml + pw + 33, ly, 9, 0,
                    0.5, 0, 0);
    }
#undef PX
    return canvas_close(&c, err);
}
