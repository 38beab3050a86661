/* The token topology of a ViT's image patches: each patch token is a distribution over the
 * tokens it attends to, the Jensen–Shannon distance between patches makes the image a metric
 * space, and its persistence is compared before and after a perturbation and between the frames
 * of a video. `attnscope vision` and attnscope.vision call it. */
#include "analysis_internal.h"
#include "attnscope/diagram.h"
#include "attnscope/render.h"
#include "attnscope/rips.h"
#include "attnscope/vision.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* More patches than this make a metric of over a gigabyte. */
#define VISION_MAX_PATCHES 16384

void ats_vision_options_init(ats_vision_options *o) {
    memset(o, 0, sizeof *o);
    o->layer = o->head = -1;
    o->strength = NAN;
    o->format = ATS_FIGURE_PNG;
}

static void run_free(ats_vision_run *r) {
    ats_rips_result_free(&r->rips);
    free(r->lower);
    for (int k = 0; k < 3; k++) ats_figure_memory_free(&r->figures[k]);
    memset(r, 0, sizeof *r);
}

static void image_free(ats_vision_image *im) {
    free(im->name);
    run_free(&im->run);
    run_free(&im->perturbation);
    free(im->sphere);
    free(im->edges);
    free(im->edge_weights);
    ats_figure_memory_free(&im->sphere_figure);
    memset(im, 0, sizeof *im);
}

void ats_vision_result_free(ats_vision_result *res) {
    if (!res) return;
    for (size_t t = 0; res->images && t < res->count; t++) image_free(&res->images[t]);
    free(res->images);
    free(res->frame_bottleneck);
    free(res->frame_wasserstein);
    ats_figure_memory_free(&res->frames_figure);
    memset(res, 0, sizeof *res);
}

/* Deterministic standard normal numbers (Box–Muller over a 64-bit LCG). */
static double gauss(uint64_t *state) {
    double u[2];
    for (int i = 0; i < 2; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        u[i] = ((double)(*state >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

static const char *const PERTURB_NAMES[] = {"none", "noise", "blur", "occlusion"};

static ats_status perturb(const ats_image *in, int kind, double x, ats_image *out, ats_error *err) {
    size_t w = (size_t)in->width, h = (size_t)in->height, bytes = w * h * 3;
    out->width = in->width;
    out->height = in->height;
    out->rgb = malloc(bytes ? bytes : 1);
    if (!out->rgb) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    memcpy(out->rgb, in->rgb, bytes);
    if (kind == ATS_PERTURB_NOISE) {
        uint64_t state = 12345;
        for (size_t i = 0; i < bytes; i++) {
            double v = in->rgb[i] + gauss(&state) * x * 255.0;
            out->rgb[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
        }
    } else if (kind == ATS_PERTURB_BLUR) {
        long r = lround(x);
        for (size_t y = 0; y < h; y++)
            for (size_t xx = 0; xx < w; xx++)
                for (int c = 0; c < 3; c++) {
                    double s = 0;
                    int k = 0;
                    for (long dy = -r; dy <= r; dy++)
                        for (long dx = -r; dx <= r; dx++) {
                            long yy = (long)y + dy, xq = (long)xx + dx;
                            if (yy < 0 || xq < 0 || yy >= (long)h || xq >= (long)w) continue;
                            s += in->rgb[((size_t)yy * w + (size_t)xq) * 3 + (size_t)c];
                            k++;
                        }
                    out->rgb[(y * w + xx) * 3 + (size_t)c] = (uint8_t)lround(s / k);
                }
    } else if (kind == ATS_PERTURB_OCCLUSION) {
        size_t side = (size_t)(x * (double)(w < h ? w : h));
        size_t y0 = (h - side) / 2, x0 = (w - side) / 2;
        for (size_t y = y0; y < y0 + side; y++)
            for (size_t xx = x0; xx < x0 + side; xx++)
                for (int c = 0; c < 3; c++) out->rgb[(y * w + xx) * 3 + (size_t)c] = 128;
    }
    return ATS_OK;
}

/* A figure names an image by its file name: a title is no place for the folders above it. */
static const char *file_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* What one image run needs besides the image. */
typedef struct vision_ctx {
    ats_model *m;
    const ats_vision_options *o;
    ats_vision_result *res;
} vision_ctx;

/* Forward pass of one image up to the chosen layer, the patch metric of the head and its
 * persistence; the head's attention between patches into *att ([n][n], malloc'd) when att. */
static ats_status analyse(const vision_ctx *v, const ats_image *img, const char *name,
                          ats_vision_run *out, double **att, ats_error *err) {
    memset(out, 0, sizeof *out);
    const ats_model_info *info = ats_model_info_get(v->m);
    size_t l = (size_t)v->o->layer, h = (size_t)v->o->head;
    ats_image_prep prep;
    ats_model_image_prep(v->m, &prep);
    prep.height = v->res->height;
    prep.width = v->res->width;
    size_t C = (size_t)info->n_channels, H = (size_t)prep.height, W = (size_t)prep.width;
    float *pixels = malloc(C * H * W * sizeof *pixels);
    if (!pixels) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    ats_status st = ats_image_preprocess(img, &prep, pixels, err);
    ats_forward_result fr;
    memset(&fr, 0, sizeof fr);
    ats_forward_options fo;
    ats_forward_options_init(&fo);
    fo.capture = ATS_CAPTURE_ATTENTION;
    fo.n_layers = (int)l + 1; /* the layers after l do not change head (l, h) */
    if (!st) st = ats_model_forward_pixels_hw(v->m, pixels, H, W, &fo, &fr, err);
    free(pixels);
    if (st) return st;
    size_t n = fr.n_tokens, p = n - 1;
    double *all = malloc((n * (n - 1) / 2 + 1) * sizeof *all);
    out->lower = malloc((p * (p - 1) / 2 + 1) * sizeof *out->lower);
    if (!all || !out->lower) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    /* the token metric every command uses; a borrowed view, never freed through a */
    ats_attention a = {
        .L = fr.n_layers, .H = fr.n_heads, .n = n, .att = fr.attention, .name = (char *)name};
    if (!st) st = ats_head_metric(&a, l, h, 0, 0.0, 0, NULL, all, err);
    if (!st) /* the patches only: drop [CLS], token 0 */
        for (size_t i = 1; i < p; i++)
            for (size_t j = 0; j < i; j++)
                out->lower[ats_lower_index(i, j)] = all[ats_lower_index(i + 1, j + 1)];
    if (!st) {
        ats_rips_options ro;
        ats_rips_options_init(&ro);
        ro.max_dim = 1;
        st = ats_rips_compute(p, out->lower, &ro, &out->rips, err);
    }
    out->n = p;
    if (!st && att) {
        const float *A = fr.attention + (l * fr.n_heads + h) * n * n;
        *att = malloc((p ? p * p : 1) * sizeof **att);
        if (!*att) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        for (size_t i = 0; !st && i < p; i++)
            for (size_t j = 0; j < p; j++) (*att)[i * p + j] = A[(i + 1) * n + j + 1];
    }
    free(all);
    ats_forward_result_free(&fr);
    if (st) run_free(out);
    return st;
}

/* The image as the model saw it: resized to the run's size, the pixels beyond the last whole
 * patch cut off ([rows·patch][cols·patch][3]). */
static ats_status covered_image(const ats_vision_result *r, const ats_image *img, ats_image *out,
                                ats_error *err) {
    ats_status st = ats_image_resize(img, r->width, r->height, out, err);
    int cw = r->cols * r->patch, chh = r->rows * r->patch;
    /* rows of the covered width, in place: the covered part starts each row */
    if (!st && cw < out->width)
        for (int y = 0; y < chh; y++)
            memmove(out->rgb + (size_t)y * (size_t)cw * 3,
                    out->rgb + (size_t)y * (size_t)out->width * 3, (size_t)cw * 3);
    if (!st) {
        out->width = cw;
        out->height = chh;
    }
    return st;
}

/* Diagram, barcode and the skeleton over the image (seen), into r->figures. */
static ats_status run_figures(const vision_ctx *v, const char *label, const ats_image *seen,
                              const ats_vision_image *im, ats_vision_run *r, ats_error *err) {
    static const char *const what[3] = {"diagram", "barcode", "Rips skeleton of the patches"};
    int dims[2] = {0, 1};
    char title[512];
    ats_figure_options fo;
    ats_figure_options_init(&fo);
    fo.title = title;
    ats_status st = ATS_OK;
    for (int k = 0; k < 3 && !st; k++) {
        snprintf(title, sizeof title, "%s: %s", label, what[k]);
        r->figures[k].format = v->o->format;
        fo.memory = &r->figures[k];
        if (k == ATS_VISION_DIAGRAM)
            st = ats_render_diagram(label, 2, r->rips.dims, dims, &fo, err);
        else if (k == ATS_VISION_BARCODE)
            st = ats_render_barcode(label, 2, r->rips.dims, dims, &fo, err);
        else
            st = ats_render_patch_skeleton(label, seen->rgb, seen->width, seen->height,
                                           v->res->rows, v->res->cols, r->lower, im->n_scales,
                                           im->scales, &fo, err);
    }
    return st;
}

/* H0 and H1 bottleneck and 1-Wasserstein distances between two runs. */
static ats_status distances(const ats_vision_run *a, const ats_vision_run *b, double *bott,
                            double *wass, ats_error *err) {
    ats_status st = ATS_OK;
    for (int k = 0; k < 2 && !st; k++) {
        st = ats_bottleneck_distance(&a->rips.dims[k], &b->rips.dims[k], &bott[k], NULL, err);
        if (!st)
            st = ats_wasserstein_distance(&a->rips.dims[k], &b->rips.dims[k], NULL, &wass[k], NULL,
                                          err);
    }
    return st;
}

typedef struct sphere_edge {
    double w;
    size_t i, j;
} sphere_edge;

/* by decreasing weight; ties: lower i, then lower j */
static int by_weight(const void *x, const void *y) {
    const sphere_edge *a = x, *b = y;
    if (a->w != b->w) return a->w > b->w ? -1 : 1;
    if (a->i != b->i) return a->i < b->i ? -1 : 1;
    return a->j < b->j ? -1 : a->j > b->j;
}

/* The patches on a Fibonacci sphere and the strongest edges of the attention graph between them
 * (att: [n][n] between patches), drawn when figures are asked for (seen: the image the model
 * saw, for the patches' colours). */
static ats_status vision_sphere(const ats_vision_result *r, const ats_vision_options *o,
                                const double *att, const ats_image *seen, ats_vision_image *im,
                                ats_error *err) {
    size_t n = im->run.n, m = n * (n - 1) / 2;
    size_t keep = o->sphere_edges ? o->sphere_edges : 2 * n;
    if (keep > m) keep = m;
    im->sphere = malloc((n ? n : 1) * 3 * sizeof *im->sphere);
    im->edges = malloc((keep ? keep : 1) * 2 * sizeof *im->edges);
    im->edge_weights = malloc((keep ? keep : 1) * sizeof *im->edge_weights);
    sphere_edge *all = malloc((m ? m : 1) * sizeof *all);
    uint8_t *rgb = o->figures ? calloc(n ? n * 3 : 1, 1) : NULL;
    ats_status st = ATS_OK;
    if (!im->sphere || !im->edges || !im->edge_weights || !all || (o->figures && !rgb))
        st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    /* the golden-angle spiral from the top pole: patch k at height 1 - 2(k + 1/2)/n */
    for (size_t k = 0; !st && k < n; k++) {
        double y = 1 - 2 * ((double)k + 0.5) / (double)n, rho = sqrt(fmax(0, 1 - y * y));
        double phi = (double)k * 3.14159265358979323846 * (3 - sqrt(5.0));
        im->sphere[3 * k] = cos(phi) * rho;
        im->sphere[3 * k + 1] = y;
        im->sphere[3 * k + 2] = sin(phi) * rho;
    }
    size_t q = 0;
    for (size_t i = 1; !st && i < n; i++)
        for (size_t j = 0; j < i; j++)
            all[q++] = (sphere_edge){(att[i * n + j] + att[j * n + i]) / 2, i, j};
    if (!st) {
        qsort(all, m, sizeof *all, by_weight);
        for (size_t e = 0; e < keep; e++) {
            im->edges[2 * e] = all[e].i;
            im->edges[2 * e + 1] = all[e].j;
            im->edge_weights[e] = all[e].w;
        }
        im->n_edges = keep;
    }
    if (!st && o->figures) {
        /* each patch in its mean colour in the image the model saw */
        int P = r->patch;
        for (size_t k = 0; k < n; k++) {
            size_t row = k / (size_t)r->cols, col = k % (size_t)r->cols;
            for (int c = 0; c < 3; c++) {
                double sum = 0;
                for (int y = 0; y < P; y++)
                    for (int x = 0; x < P; x++)
                        sum +=
                            seen->rgb[(((size_t)row * (size_t)P + (size_t)y) * (size_t)seen->width +
                                       col * (size_t)P + (size_t)x) *
                                          3 +
                                      (size_t)c];
                rgb[3 * k + (size_t)c] = (uint8_t)lround(sum / (P * P));
            }
        }
        char title[512];
        snprintf(title, sizeof title, "%s: attention graph of the patches on a sphere",
                 o->title ? o->title : file_name(im->name));
        ats_graph3d_options go;
        ats_graph3d_options_init(&go);
        go.fig.title = title;
        go.node_rgb = rgb;
        im->sphere_figure.format = o->format;
        go.fig.memory = &im->sphere_figure;
        st = ats_render_graph3d(im->name, n, im->sphere, im->n_edges, im->edges, im->edge_weights,
                                &go, err);
    }
    free(all);
    free(rgb);
    return st;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

/* The skeleton's default scales: the distances at which it has n/2, n and 2n edges (mean
 * degree 1, 2 and 4), or the 10 %, 25 % and 50 % quantiles of the distances (as topo's
 * defaults) when those give fewer. The quantiles alone saturate a grid of a few hundred
 * patches (at 192 patches the 10 % quantile is already 19 edges a patch); a bound on the mean
 * degree keeps the skeleton readable at any grid size. */
static ats_status default_scales(const ats_vision_run *r, ats_vision_image *im, ats_error *err) {
    size_t n = r->n, m = n * (n - 1) / 2;
    im->n_scales = 1;
    im->scales[0] = 0;
    if (m == 0) return ATS_OK;
    double *c = malloc(m * sizeof *c);
    if (!c) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    memcpy(c, r->lower, m * sizeof *c);
    qsort(c, m, sizeof *c, cmp_double);
    const size_t quantile[3] = {m / 10, m / 4, m / 2}, edges[3] = {n / 2, n, 2 * n};
    for (int k = 0; k < 3; k++) {
        size_t i = edges[k] ? edges[k] - 1 : 0; /* the k-th shortest: k edges */
        im->scales[k] = c[quantile[k] < i ? quantile[k] : i];
    }
    im->n_scales = 3;
    free(c);
    return ATS_OK;
}

/* One image: its run, scales, figures, perturbed copy and sphere graph. */
static ats_status vision_image(const vision_ctx *v, const ats_image *img, ats_vision_image *im,
                               ats_error *err) {
    const ats_vision_options *o = v->o;
    double *att = NULL;
    ats_status st = analyse(v, img, im->name, &im->run, o->sphere ? &att : NULL, err);
    if (!st && o->n_scales) {
        const ats_lower metric = {im->run.n, im->run.lower};
        st = ats_topo_scales(&metric, INFINITY, o->scales, o->n_scales, im->name, "patches",
                             im->scales, &im->n_scales, err);
    } else if (!st)
        st = default_scales(&im->run, im, err);
    ats_image seen, pimg, pseen;
    memset(&seen, 0, sizeof seen);
    memset(&pimg, 0, sizeof pimg);
    memset(&pseen, 0, sizeof pseen);
    if (!st && o->figures) st = covered_image(v->res, img, &seen, err);
    if (!st && o->figures)
        st = run_figures(v, o->title ? o->title : file_name(im->name), &seen, im, &im->run, err);
    if (!st && o->perturb != ATS_PERTURB_NONE) {
        st = perturb(img, o->perturb, v->res->strength, &pimg, err);
        if (!st) st = analyse(v, &pimg, im->name, &im->perturbation, NULL, err);
        im->perturbed = !st;
        if (!st && o->figures) st = covered_image(v->res, &pimg, &pseen, err);
        if (!st && o->figures)
            st = run_figures(v, PERTURB_NAMES[o->perturb], &pseen, im, &im->perturbation, err);
        if (!st) st = distances(&im->run, &im->perturbation, im->bottleneck, im->wasserstein, err);
    }
    if (!st && o->sphere) st = vision_sphere(v->res, o, att, &seen, im, err);
    free(att);
    ats_image_free(&seen);
    ats_image_free(&pimg);
    ats_image_free(&pseen);
    return st;
}

/* The checks that need the model; they fill the result's size. */
static ats_status check(const ats_model_info *info, const ats_vision_options *o, size_t count,
                        const ats_vision_input *in, ats_vision_result *res, ats_error *err) {
    if (info->arch != ATS_ARCH_VIT)
        return ats_error_set(err, ATS_ERR_INVALID, "%s is a %s model, not a ViT", info->dir,
                             info->model_type);
    if (o->layer < 0 || o->head < 0 || o->layer >= info->n_layers || o->head >= info->n_heads)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "layer %ld, head %ld is outside the model's %d x %d", o->layer,
                             o->head, info->n_layers, info->n_heads);
    if (o->perturb < ATS_PERTURB_NONE || o->perturb > ATS_PERTURB_OCCLUSION)
        return ats_error_set(err, ATS_ERR_INVALID, "unknown perturbation %d", o->perturb);
    double x = o->strength;
    if (isnan(x))
        x = o->perturb == ATS_PERTURB_NOISE       ? 0.1
            : o->perturb == ATS_PERTURB_BLUR      ? 2
            : o->perturb == ATS_PERTURB_OCCLUSION ? 0.3
                                                  : 0;
    if (!(x >= 0) || isinf(x))
        return ats_error_set(err, ATS_ERR_INVALID, "strength %g: it is a number >= 0", x);
    if (o->perturb == ATS_PERTURB_OCCLUSION && x > 1)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "the strength of an occlusion is a fraction <= 1, not %g", x);
    if (o->figures && (o->format < ATS_FIGURE_PNG || o->format > ATS_FIGURE_PDF))
        return ats_error_set(err, ATS_ERR_INVALID, "unknown figure format %d", (int)o->format);
    if (o->height < 0 || o->width < 0 || o->height > 16384 || o->width > 16384)
        return ats_error_set(err, ATS_ERR_INVALID, "image size %dx%d: sides are 1..16384",
                             o->height, o->width);
    for (size_t t = 0; t < count; t++)
        if (!in[t].path && !in[t].image)
            return ats_error_set(err, ATS_ERR_INVALID, "image %zu has neither a path nor pixels",
                                 t + 1);
    res->strength = x;
    res->patch = info->patch_size;
    res->height = o->height ? o->height : info->image_size;
    res->width = o->width ? o->width : info->image_size;
    res->rows = res->height / res->patch;
    res->cols = res->width / res->patch;
    if (res->rows < 1 || res->cols < 1 ||
        (size_t)res->rows * (size_t)res->cols > VISION_MAX_PATCHES)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "image size %dx%d gives a %dx%d grid of %d-pixel patches; it needs 1 "
                             "to %d patches",
                             res->height, res->width, res->rows, res->cols, res->patch,
                             VISION_MAX_PATCHES);
    return ATS_OK;
}

static ats_status frames_figure(ats_vision_result *res, const ats_vision_options *o,
                                ats_error *err) {
    size_t T = res->count;
    double *fx = malloc(T * sizeof *fx), *fy = malloc(2 * T * sizeof *fy);
    ats_status st = fx && fy ? ATS_OK : ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    for (size_t t = 0; !st && t < T; t++) {
        fx[t] = (double)t;
        for (int k = 0; k < 2; k++)
            fy[k * T + t] = t ? res->frame_wasserstein[(t - 1) * 2 + (size_t)k] : NAN;
    }
    if (!st) {
        ats_series frames[2] = {{"H0", T, fx, fy}, {"H1", T, fx, fy + T}};
        ats_lines_options lo;
        ats_lines_options_init(&lo);
        lo.fig.title = "Wasserstein distance to the previous frame";
        lo.x_title = "frame";
        lo.y_title = "W1 between diagrams";
        lo.x_integer = 1;
        res->frames_figure.format = o->format;
        lo.fig.memory = &res->frames_figure;
        st = ats_render_lines("frames", 2, frames, &lo, err);
    }
    free(fx);
    free(fy);
    return st;
}

ats_status ats_vision(ats_session *s, size_t count, const ats_vision_input *inputs,
                      const ats_vision_options *o, ats_vision_result *res, ats_error *err) {
    memset(res, 0, sizeof *res);
    ats_error e;
    ats_error_clear(&e);
    vision_ctx v = {ats_session_model(s), o, res};
    ats_status st = check(ats_model_info_get(v.m), o, count, inputs, res, &e);
    if (!st && count == 0) st = ats_error_set(&e, ATS_ERR_INVALID, "no image");
    if (!st) {
        res->images = calloc(count, sizeof *res->images);
        res->frame_bottleneck = count > 1 ? malloc((count - 1) * 2 * sizeof(double)) : NULL;
        res->frame_wasserstein = count > 1 ? malloc((count - 1) * 2 * sizeof(double)) : NULL;
        if (!res->images || (count > 1 && (!res->frame_bottleneck || !res->frame_wasserstein)))
            st = ats_error_set(&e, ATS_ERR_NOMEM, "out of memory");
        else
            res->count = count;
    }
    for (size_t t = 0; t < count && !st; t++) {
        ats_vision_image *im = &res->images[t];
        char def[32];
        snprintf(def, sizeof def, "image %zu", t + 1);
        const char *name = inputs[t].name ? inputs[t].name : inputs[t].path ? inputs[t].path : def;
        im->name = strdup(name);
        if (!im->name) st = ats_error_set(&e, ATS_ERR_NOMEM, "out of memory");
        ats_image loaded;
        memset(&loaded, 0, sizeof loaded);
        const ats_image *img = inputs[t].image;
        if (!st && !img) {
            st = ats_image_load(inputs[t].path, &loaded, &e);
            img = &loaded;
        }
        if (!st) st = vision_image(&v, img, im, &e);
        ats_image_free(&loaded);
        if (!st && t > 0)
            st = distances(&res->images[t - 1].run, &im->run, res->frame_bottleneck + (t - 1) * 2,
                           res->frame_wasserstein + (t - 1) * 2, &e);
    }
    if (!st && o->figures && count > 2) st = frames_figure(res, o, &e);
    if (st) {
        ats_vision_result_free(res);
        return session_failed(s, st, &e, err);
    }
    return ATS_OK;
}
