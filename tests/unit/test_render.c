/* Figures: every kind in every format produces a well-formed, non-trivial file; bad input is
 * refused without leaving a file. What the figures look like is checked by eye (the PNGs are
 * opened during development); here we check what a program can. */
#include "attnscope/render.h"
#include "canvas.h" /* white-box: labels_place */
#include "check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static long file_size(const char *path) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return -1;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fclose(fp);
    return n;
}

static int starts_with(const char *path, const char *magic, size_t len) {
    char buf[64] = {0};
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    size_t got = fread(buf, 1, len, fp);
    fclose(fp);
    return got == len && memcmp(buf, magic, len) == 0;
}

static int contains(const char *path, const char *needle) {
    FILE *fp = fopen(path, "rb");
    if (!fp) return 0;
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return strstr(buf, needle) != NULL;
}

static void check_formats(const char *stem, ats_status (*draw)(const char *path)) {
    const char *exts[3] = {".png", ".svg", ".pdf"};
    const char *magic[3] = {"\x89PNG", "<?xml", "%PDF"};
    for (int f = 0; f < 3; f++) {
        char path[256];
        snprintf(path, sizeof path, "build-test-%s%s", stem, exts[f]);
        CHECK(draw(path) == ATS_OK);
        CHECK(file_size(path) > 1000);
        CHECK(starts_with(path, magic[f], 4));
        remove(path);
    }
}

static ats_diagram dgms[3];
static int dims[3] = {0, 1, 2};

static ats_status draw_diagram(const char *path) {
    ats_figure_options opt;
    ats_figure_options_init(&opt);
    opt.title = "diagram";
    return ats_render_diagram(path, 3, dgms, dims, &opt, NULL);
}

static ats_status draw_barcode(const char *path) {
    return ats_render_barcode(path, 3, dgms, dims, NULL, NULL);
}

static double values[3 * 4 * 16];
static const char *labels[4] = {"[CLS]", "שלום", "猫", "émigré"};

static ats_status draw_heatmap(const char *path) {
    ats_heatmap_options opt;
    ats_heatmap_options_init(&opt);
    opt.row_labels = labels;
    opt.col_labels = labels;
    opt.value_title = "attention";
    return ats_render_heatmap(path, 4, 4, values, &opt, NULL);
}

static ats_status draw_grid(const char *path) {
    return ats_render_heatmap_grid(path, 3, 4, 2, 8, values, NULL, NULL, NULL);
}

static double lower6[15] = {0.3, 0.5,  0.4,  0.9,  0.8,  0.2, 1.0, 0.9,
                            0.3, 0.25, 0.95, 0.85, 0.35, 0.3, 0.1};
static double att6[36];

static ats_status draw_skeleton(const char *path) {
    double scales[2] = {0.3, 0.5};
    ats_graph_options opt;
    ats_graph_options_init(&opt);
    static const char *lab[6] = {"a", "b", "שלום", "猫", "e", "f"};
    opt.labels = lab;
    return ats_render_skeleton_grid(path, 6, lower6, 2, scales, &opt, NULL);
}

static ats_status draw_graph(const char *path) {
    return ats_render_attention_graph(path, 6, att6, 0.05, 0, NULL, NULL);
}

static ats_status draw_bars(const char *path) {
    static const char *series[2] = {"best head", "baseline"};
    double v[8] = {0.8, 0.5, NAN, 0.1, 0.6, 0.55, 0.2, 0.0};
    ats_bars_options opt;
    ats_bars_options_init(&opt);
    opt.fig.title = "bars";
    opt.series_names = series;
    opt.value_title = "accuracy";
    opt.show_values = 1;
    return ats_render_bars(path, 4, 2, v, labels, &opt, NULL);
}

/* The height in pixels of a PNG in memory (its IHDR chunk). */
static unsigned png_height(const ats_figure_memory *m) {
    const unsigned char *p = m->data + 20;
    return m->size > 24 ? (unsigned)p[0] << 24 | (unsigned)p[1] << 16 | (unsigned)p[2] << 8 | p[3]
                        : 0;
}

/* Labels placed by labels_place overlap neither each other nor another point's marker, stay
 * inside the box, and go to the isolated points first; in a crowd some are left out. */
static void test_label_placement(void) {
    enum { N = 80 };
    double px[N], py[N], w[N], h[N], r = 4;
    label_box box[N];
    unsigned char placed[N];
    unsigned s = 12345;
    for (int i = 0; i < N; i++) { /* 76 points in a tight crowd, 4 far apart */
        s = s * 1103515245u + 12345u;
        double u = (double)(s >> 8 & 0xffff) / 65536.0;
        s = s * 1103515245u + 12345u;
        double v = (double)(s >> 8 & 0xffff) / 65536.0;
        px[i] = i < 76 ? 150 + 80 * u : 40 + 100.0 * (i - 76);
        py[i] = i < 76 ? 150 + 80 * v : 380;
        w[i] = i == 5 ? -1 : 24; /* point 5 has no label */
        h[i] = 8;
    }
    size_t n = labels_place(N, px, py, w, h, r, 0, 0, 400, 400, box, placed);
    size_t count = 0;
    for (int i = 0; i < N; i++) count += placed[i];
    CHECK(n == count && n > 20 && n < N - 1);
    CHECK(!placed[5]);
    for (int i = 76; i < N; i++) CHECK(placed[i]);
    int bad = 0;
    for (int i = 0; i < N; i++) {
        if (!placed[i]) continue;
        const label_box *a = &box[i];
        if (a->x < 0 || a->y < 0 || a->x + a->w > 400 || a->y + a->h > 400) bad++;
        if (a->w != w[i] || a->h != h[i]) bad++;
        /* next to its own point: within r + 2 of the box */
        double dx = fmax(fmax(a->x - px[i], px[i] - a->x - a->w), 0);
        double dy = fmax(fmax(a->y - py[i], py[i] - a->y - a->h), 0);
        if (hypot(dx, dy) > r + 2) bad++;
        for (int j = 0; j < N; j++) {
            if (j == i) continue;
            const label_box *b = &box[j];
            if (placed[j] && a->x < b->x + b->w && b->x < a->x + a->w && a->y < b->y + b->h &&
                b->y < a->y + a->h)
                bad++;
            if (px[j] + r > a->x && px[j] - r < a->x + a->w && py[j] + r > a->y &&
                py[j] - r < a->y + a->h)
                bad++;
        }
    }
    CHECK(bad == 0);
}

int main(void) {
    test_label_placement();
    for (int i = 0; i < 6; i++)
        for (int j = 0; j <= i; j++) att6[i * 6 + j] = 1.0 / (i + 1);
    double p0[6] = {0, 0.5, 0, 1.0, 0, INFINITY}, p1[4] = {0.6, 0.9, 0.7, 0.75},
           p2[2] = {0.8, 0.85};
    dgms[0] = (ats_diagram){3, p0};
    dgms[1] = (ats_diagram){2, p1};
    dgms[2] = (ats_diagram){1, p2};
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) values[i] = (double)(i % 7) / 7.0;
    check_formats("diagram", draw_diagram);
    check_formats("barcode", draw_barcode);
    check_formats("heatmap", draw_heatmap);
    check_formats("grid", draw_grid);
    check_formats("skeleton", draw_skeleton);
    check_formats("graph", draw_graph);
    check_formats("bars", draw_bars);

    /* into memory: the same PNG bytes as the file, each format's magic, no file written */
    {
        ats_figure_options opt;
        ats_figure_options_init(&opt);
        opt.title = "diagram";
        CHECK(ats_render_diagram("build-test-mem.png", 3, dgms, dims, &opt, NULL) == ATS_OK);
        char *file = NULL;
        size_t file_len = 0;
        CHECK(ats_file_read_all("build-test-mem.png", 1 << 24, &file, &file_len, NULL) == ATS_OK);
        remove("build-test-mem.png");
        const char *magic[3] = {"\x89PNG", "<?xml", "%PDF"};
        for (int f = 0; f < 3; f++) {
            ats_figure_memory mem = {(ats_figure_format)f, NULL, 0};
            opt.memory = &mem;
            CHECK(ats_render_diagram("build-test-mem.png", 3, dgms, dims, &opt, NULL) == ATS_OK);
            CHECK(file_size("build-test-mem.png") < 0);
            CHECK(mem.size > 1000 && memcmp(mem.data, magic[f], 4) == 0);
            if (f == 0) CHECK(file && mem.size == file_len && !memcmp(mem.data, file, file_len));
            ats_figure_memory_free(&mem);
            CHECK(mem.data == NULL && mem.size == 0);
        }
        /* a failure leaves nothing allocated */
        ats_figure_memory mem = {ATS_FIGURE_SVG, NULL, 0};
        opt.memory = &mem;
        double nan_pair[2] = {NAN, 1};
        ats_diagram bad_d = {1, nan_pair};
        int d0 = 0;
        CHECK(ats_render_diagram("x", 1, &bad_d, &d0, &opt, NULL) == ATS_ERR_INVALID);
        CHECK(mem.data == NULL);
        mem.format = (ats_figure_format)7;
        CHECK(ats_render_diagram("x", 3, dgms, dims, &opt, NULL) == ATS_ERR_INVALID);
        free(file);
    }

    /* a barcode of many bars (the L·H heads of a corpus, the tokens of a long text) stays a
     * page: the bars thin out instead of the figure growing with them */
    {
        enum { M = 500 };
        static double many[2 * M];
        for (int i = 0; i < M; i++) many[2 * i] = 0, many[2 * i + 1] = 0.1 + 0.001 * i;
        ats_figure_options opt;
        ats_figure_options_init(&opt);
        unsigned heights[3];
        size_t counts[3] = {10, 89, M};
        for (int k = 0; k < 3; k++) {
            ats_figure_memory mem = {ATS_FIGURE_PNG, NULL, 0};
            opt.memory = &mem;
            ats_diagram d = {counts[k], many};
            int d0 = 0;
            CHECK(ats_render_barcode("mem.png", 1, &d, &d0, &opt, NULL) == ATS_OK);
            heights[k] = png_height(&mem);
            ats_figure_memory_free(&mem);
        }
        /* 2 px per point: 14 + 360 pt of bars + header + axis at most */
        CHECK(heights[0] > 100 && heights[0] < heights[1]);
        CHECK(heights[1] <= 2 * (14 + 360 + 16 + 6 + 40) && heights[2] <= heights[1]);
    }

    /* layouts are deterministic and normalised */
    double q1[12], q2[12];
    CHECK(ats_layout_force(6, lower6, 0.5, 2, 100, q1, NULL) == ATS_OK);
    CHECK(ats_layout_force(6, lower6, 0.5, 2, 100, q2, NULL) == ATS_OK);
    CHECK(memcmp(q1, q2, sizeof q1) == 0);
    for (int i = 0; i < 12; i++) CHECK(q1[i] >= -1.0 - 1e-12 && q1[i] <= 1.0 + 1e-12);
    double p3[18];
    CHECK(ats_layout_force(6, lower6, 0.5, 3, 50, p3, NULL) == ATS_OK);
    CHECK(ats_layout_force(6, lower6, 0.5, 4, 50, p3, NULL) == ATS_ERR_INVALID);

    /* text is real text in vector output: the Hebrew label survives into the SVG/PDF */
    CHECK(draw_heatmap("build-test-labels.svg") == ATS_OK);
    CHECK(contains("build-test-labels.svg", "<svg"));
    remove("build-test-labels.svg");

    /* empty diagrams still make a figure */
    ats_diagram empty = {0, NULL};
    int d0 = 0;
    CHECK(ats_render_diagram("build-test-empty.png", 1, &empty, &d0, NULL, NULL) == ATS_OK);
    CHECK(ats_render_barcode("build-test-empty.png", 1, &empty, &d0, NULL, NULL) == ATS_OK);
    remove("build-test-empty.png");

    /* refused: unknown extension, NaN birth, infinite value, absurd size; nothing left behind */
    ats_error err;
    CHECK(ats_render_diagram("build-test-x.jpg", 3, dgms, dims, NULL, &err) == ATS_ERR_INVALID);
    CHECK(strstr(err.message, ".png, .svg or .pdf") != NULL);
    double bad[2] = {NAN, 1};
    ats_diagram badd = {1, bad};
    CHECK(ats_render_diagram("build-test-bad.png", 1, &badd, &d0, NULL, &err) == ATS_ERR_INVALID);
    CHECK(file_size("build-test-bad.png") < 0);
    values[5] = INFINITY;
    CHECK(draw_heatmap("build-test-inf.png") != ATS_OK);
    CHECK(file_size("build-test-inf.png") < 0);
    CHECK(ats_render_heatmap("build-test-big.png", 100000, 3, values, NULL, &err) == ATS_ERR_RANGE);
    att6[7] = -1;
    CHECK(draw_graph("build-test-neg.png") == ATS_ERR_INVALID);
    CHECK(file_size("build-test-neg.png") < 0);
    double neg_scale = -1;
    CHECK(ats_render_skeleton("build-test-s.png", 6, lower6, neg_scale, NULL, &err) ==
          ATS_ERR_INVALID);

    /* bars: an infinite value, no series or no room are refused, and leave no file */
    double inf_bars[2] = {0.5, INFINITY};
    CHECK(ats_render_bars("build-test-bars.png", 2, 1, inf_bars, labels, NULL, &err) ==
          ATS_ERR_INVALID);
    CHECK(strstr(err.message, "infinite") != NULL);
    CHECK(file_size("build-test-bars.png") < 0);
    CHECK(ats_render_bars("build-test-bars.png", 2, 0, inf_bars, labels, NULL, &err) ==
          ATS_ERR_INVALID);
    ats_bars_options tiny;
    ats_bars_options_init(&tiny);
    tiny.fig.width = 60;
    CHECK(ats_render_bars("build-test-bars.png", 2, 1, values, labels, &tiny, &err) ==
          ATS_ERR_INVALID);
    CHECK(file_size("build-test-bars.png") < 0);

    double r, g, b;
    ats_colormap_viridis(0, &r, &g, &b);
    CHECK(r > 0.25 && r < 0.3 && b > 0.3); /* dark purple */
    ats_colormap_viridis(1, &r, &g, &b);
    CHECK(r > 0.95 && g > 0.85 && b < 0.2); /* yellow */
    return check_report("test_render");
}
