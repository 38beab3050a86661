/* attnscope vision: the token topology of a ViT's image patches.
 *
 * Each patch token is a distribution over the tokens it attends to; the Jensen–Shannon
 * distance between patches makes the image a metric space whose persistence is computed and
 * whose Rips skeleton is drawn over the image. --perturb compares the diagrams before and after
 * noise, blur or an occlusion; several images (video frames) give the Wasserstein distance
 * between consecutive frames. */
#include "analysis.h"
#include "cli.h"
#include "attnscope/diagram.h"
#include "attnscope/measure.h"
#include "attnscope/model.h"
#include "attnscope/render.h"
#include "attnscope/rips.h"
#include "attnscope/vision.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_IMAGES 256

static const char USAGE[] =
    "usage: attnscope vision --model M --image I [--image I2 ...] --layer L --head H --out DIR\n"
    "                        [--scales S1,S2,...] [--perturb noise|blur|occlusion]\n"
    "                        [--strength X] [--format png|svg|pdf] [--image-size H[xW]]\n"
    "                        [--title T]\n"
    "\n"
    "For every image: the patch tokens' Jensen–Shannon metric (base 2) in head (L, H), its\n"
    "persistence H0/H1 (diagram, barcode) and the Rips skeleton at each scale drawn over the\n"
    "image (default scales: the 10%, 25% and 50% quantiles of the distances). --perturb also\n"
    "runs a perturbed copy (noise: Gaussian, sigma = X x 255, default 0.1; blur: box blur of\n"
    "radius X pixels, default 2; occlusion: a grey square over X of the image side, default\n"
    "0.3) and reports the bottleneck and Wasserstein distances between the diagrams. Several\n"
    "images are treated as frames: the distances between consecutive frames. vision.json holds\n"
    "everything. --image-size runs the images at H x W pixels instead of the model's size (a\n"
    "grid of (H / patch) x (W / patch) patches, the position embeddings interpolated as\n"
    "transformers' interpolate_pos_encoding).\n";

/* The size the images run at: pixels, and the patch grid over them (the remainder of a side
 * that is not a multiple of the patch is dropped, as the patch convolution drops it). */
typedef struct vision_size {
    int height, width;
    int rows, cols;
} vision_size;

typedef struct vision_run {
    ats_rips_result res;
    double *lower; /* patch metric */
    size_t n;      /* patches */
} vision_run;

/* Deterministic standard normal numbers (Box–Muller over a 64-bit LCG). */
static double gauss(uint64_t *state) {
    double u[2];
    for (int i = 0; i < 2; i++) {
        *state = *state * 6364136223846793005ull + 1442695040888963407ull;
        u[i] = ((double)(*state >> 11) + 0.5) / 9007199254740992.0;
    }
    return sqrt(-2.0 * log(u[0])) * cos(6.283185307179586 * u[1]);
}

static ats_status perturb(const ats_image *in, const char *kind, double x, ats_image *out,
                          ats_error *err) {
    size_t w = (size_t)in->width, h = (size_t)in->height, bytes = w * h * 3;
    out->width = in->width;
    out->height = in->height;
    out->rgb = malloc(bytes);
    if (!out->rgb) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    memcpy(out->rgb, in->rgb, bytes);
    if (!strcmp(kind, "noise")) {
        uint64_t state = 12345;
        for (size_t i = 0; i < bytes; i++) {
            double v = in->rgb[i] + gauss(&state) * x * 255.0;
            out->rgb[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : lround(v));
        }
    } else if (!strcmp(kind, "blur")) {
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
    } else if (!strcmp(kind, "occlusion")) {
        size_t side = (size_t)(x * (double)(w < h ? w : h));
        size_t y0 = (h - side) / 2, x0 = (w - side) / 2;
        for (size_t y = y0; y < y0 + side; y++)
            for (size_t xx = x0; xx < x0 + side; xx++)
                for (int c = 0; c < 3; c++) out->rgb[(y * w + xx) * 3 + (size_t)c] = 128;
    } else {
        free(out->rgb);
        out->rgb = NULL;
        return ats_error_set(err, ATS_ERR_INVALID, "unknown perturbation '%s'", kind);
    }
    return ATS_OK;
}

/* Forward pass of one image at size sz, up to layer l, and the persistence of head (l, h) over
 * its patch tokens. */
static ats_status analyse(ats_model *m, const ats_image *img, const vision_size *sz, size_t l,
                          size_t h, const char *name, vision_run *out, ats_error *err) {
    memset(out, 0, sizeof *out);
    const ats_model_info *info = ats_model_info_get(m);
    ats_image_prep prep;
    ats_model_image_prep(m, &prep);
    prep.height = sz->height;
    prep.width = sz->width;
    size_t C = (size_t)info->n_channels, H = (size_t)sz->height, W = (size_t)sz->width;
    float *pixels = malloc(C * H * W * sizeof *pixels);
    if (!pixels) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    ats_status st = ats_image_preprocess(img, &prep, pixels, err);
    ats_forward_result res;
    memset(&res, 0, sizeof res);
    ats_forward_options fo;
    ats_forward_options_init(&fo);
    fo.capture = ATS_CAPTURE_ATTENTION;
    fo.n_layers = (int)l + 1; /* the layers after l do not change head (l, h) */
    if (!st) st = ats_model_forward_pixels_hw(m, pixels, H, W, &fo, &res, err);
    free(pixels);
    if (st) return st;
    size_t n = res.n_tokens, p = n - 1;
    double *all = malloc((n * (n - 1) / 2 + 1) * sizeof *all);
    out->lower = malloc((p * (p - 1) / 2 + 1) * sizeof *out->lower);
    if (!all || !out->lower) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    if (!st) {
        /* the token metric every command uses; a borrowed view, never freed through a */
        ats_attention a = {.L = res.n_layers,
                           .H = res.n_heads,
                           .n = n,
                           .att = res.attention,
                           .name = (char *)name};
        st = ats_head_metric(&a, l, h, 0, 0.0, NULL, all, err);
    }
    if (!st) {
        /* the patches only: drop [CLS], token 0 */
        for (size_t i = 1; i < p; i++)
            for (size_t j = 0; j < i; j++)
                out->lower[ats_lower_index(i, j)] = all[ats_lower_index(i + 1, j + 1)];
    }
    if (!st) {
        ats_rips_options ro;
        ats_rips_options_init(&ro);
        ro.max_dim = 1;
        st = ats_rips_compute(p, out->lower, &ro, &out->res, err);
    }
    out->n = p;
    free(all);
    ats_forward_result_free(&res);
    return st;
}

static void run_free(vision_run *r) {
    ats_rips_result_free(&r->res);
    free(r->lower);
    memset(r, 0, sizeof *r);
}

static char *path_in(const char *dir, const char *name, const char *ext) {
    size_t len = strlen(dir) + strlen(name) + strlen(ext) + 3;
    char *p = malloc(len);
    if (p) snprintf(p, len, "%s/%s.%s", dir, name, ext);
    return p;
}

/* Diagram, barcode and the skeleton over the image as the model saw it (resized to sz, the
 * pixels beyond the last whole patch cut off). */
/* --title: a prefix of every figure's title (NULL: none) */
static const char *title_prefix;

static ats_status figures(const char *out, const char *fmt, const char *stem, const char *label,
                          const ats_image *img, const vision_size *sz, int patch,
                          const vision_run *r, const double *scales, size_t ns, ats_error *err) {
    int dims[2] = {0, 1};
    char name[128], what[256], title[512];
    ats_figure_options fo;
    ats_figure_options_init(&fo);
    ats_status st = ATS_OK;
    for (int k = 0; k < 3 && !st; k++) {
        static const char *kinds[3] = {"diagram", "barcode", "patches"};
        snprintf(name, sizeof name, "%s_%s", kinds[k], stem);
        snprintf(what, sizeof what, "%s: %s", label,
                 k == 2 ? "Rips skeleton of the patches" : kinds[k]);
        fo.title = ats_cli_title(title, sizeof title, title_prefix, what);
        char *path = path_in(out, name, fmt);
        if (!path) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        if (k == 0)
            st = ats_render_diagram(path, 2, r->res.dims, dims, &fo, err);
        else if (k == 1)
            st = ats_render_barcode(path, 2, r->res.dims, dims, &fo, err);
        else {
            ats_image small;
            st = ats_image_resize(img, sz->width, sz->height, &small, err);
            /* rows of the covered width, in place: the covered part starts each row */
            int cw = sz->cols * patch, chh = sz->rows * patch;
            if (!st && cw < small.width)
                for (int y = 0; y < chh; y++)
                    memmove(small.rgb + (size_t)y * (size_t)cw * 3,
                            small.rgb + (size_t)y * (size_t)small.width * 3, (size_t)cw * 3);
            if (!st)
                st = ats_render_patch_skeleton(path, small.rgb, cw, chh, sz->rows, sz->cols,
                                               r->lower, ns, scales, &fo, err);
            ats_image_free(&small);
        }
        if (!st) printf("%s\n", path);
        free(path);
    }
    return st;
}

static cJSON *diagrams_json(const vision_run *r) {
    cJSON *dims = cJSON_CreateArray();
    for (int k = 0; k < 2; k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToObject(e, "pairs", analysis_pairs_json(&r->res.dims[k]));
        cJSON_AddNumberToObject(e, "dim", k);
        cJSON_AddItemToArray(dims, e);
    }
    return dims;
}

/* {"bottleneck":[H0,H1],"wasserstein":[H0,H1]} between two runs, also into b1 and w1 when
 * given. */
static ats_status distances(const vision_run *a, const vision_run *b, cJSON **out, double *b1,
                            double *w1, ats_error *err) {
    cJSON *o = cJSON_CreateObject(), *bj = cJSON_AddArrayToObject(o, "bottleneck"),
          *wj = cJSON_AddArrayToObject(o, "wasserstein");
    ats_status st = ATS_OK;
    for (int k = 0; k < 2 && !st; k++) {
        double bd, wd;
        st = ats_bottleneck_distance(&a->res.dims[k], &b->res.dims[k], &bd, NULL, err);
        if (!st)
            st = ats_wasserstein_distance(&a->res.dims[k], &b->res.dims[k], NULL, &wd, NULL, err);
        if (!st) {
            cJSON_AddItemToArray(bj, analysis_json_number(bd, 0));
            cJSON_AddItemToArray(wj, analysis_json_number(wd, 0));
            if (b1) b1[k] = bd;
            if (w1) w1[k] = wd;
        }
    }
    *out = o;
    return st;
}

int ats_cmd_vision(int argc, char **argv) {
    const char *model = NULL, *images[MAX_IMAGES], *out = NULL, *fmt = "png", *kind = NULL;
    size_t n_images = 0, n_scales = 0;
    long layer = -1, head = -1;
    int img_h = 0, img_w = 0;
    double strength = NAN, scales[16];
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--help")) {
            fputs(USAGE, stdout);
            return ATS_EXIT_OK;
        }
        if (!v) return ats_cli_usage_error("vision", "%s needs a value (see --help)", s);
        if (!strcmp(s, "--model"))
            model = v;
        else if (!strcmp(s, "--image")) {
            if (n_images == MAX_IMAGES)
                return ats_cli_usage_error("vision", "at most %d images", MAX_IMAGES);
            images[n_images++] = v;
        } else if (!strcmp(s, "--out"))
            out = v;
        else if (!strcmp(s, "--image-size")) {
            if (!ats_cli_parse_image_size(v, &img_h, &img_w))
                return ats_cli_usage_error("vision", "--image-size needs H or HxW, 1..16384");
        } else if (!strcmp(s, "--perturb")) {
            if (strcmp(v, "noise") && strcmp(v, "blur") && strcmp(v, "occlusion"))
                return ats_cli_usage_error("vision", "--perturb is noise, blur or occlusion");
            kind = v;
        } else if (!strcmp(s, "--strength")) {
            if (!ats_cli_parse_double(v, 0, &strength) || strength < 0)
                return ats_cli_usage_error("vision", "--strength needs a number >= 0");
        } else if (!strcmp(s, "--format")) {
            if (strcmp(v, "png") && strcmp(v, "svg") && strcmp(v, "pdf"))
                return ats_cli_usage_error("vision", "--format is png, svg or pdf");
            fmt = v;
        } else if (!strcmp(s, "--title")) {
            title_prefix = v;
        } else if (!strcmp(s, "--layer") || !strcmp(s, "--head")) {
            long x;
            if (!ats_cli_parse_long(v, 0, 1 << 16, &x))
                return ats_cli_usage_error("vision", "%s needs an integer >= 0", s);
            *(!strcmp(s, "--layer") ? &layer : &head) = x;
        } else if (!strcmp(s, "--scales") || !strcmp(s, "--scale")) {
            const char *p = v;
            n_scales = 0;
            while (*p && n_scales < 16) {
                char *e;
                scales[n_scales] = strtod(p, &e);
                if (e == p || !(scales[n_scales] >= 0) || isinf(scales[n_scales]) ||
                    (*e && *e != ','))
                    return ats_cli_usage_error("vision", "--scales needs numbers >= 0");
                n_scales++;
                p = *e ? e + 1 : e;
            }
        } else {
            return ats_cli_usage_error("vision", "unknown option '%s' (see --help)", s);
        }
        i++;
    }
    if (!model || !n_images || !out || layer < 0 || head < 0)
        return ats_cli_usage_error(
            "vision", "needs --model, --image, --layer, --head and --out (see --help)");
    if (isnan(strength))
        strength = !kind ? 0 : !strcmp(kind, "noise") ? 0.1 : !strcmp(kind, "blur") ? 2 : 0.3;
    if (kind && !strcmp(kind, "occlusion") && strength > 1)
        return ats_cli_usage_error("vision", "--strength of an occlusion is a fraction <= 1");
    {
        ats_error derr;
        if (ats_dir_create(out, &derr)) return ats_cli_fail(&derr);
    }
    ats_error err;
    ats_error_clear(&err);
    ats_model *m = NULL;
    if (ats_model_load_adapted(model, ats_cli_adapter(), &m, &err)) return ats_cli_fail(&err);
    const ats_model_info *info = ats_model_info_get(m);
    if (info->arch != ATS_ARCH_VIT) {
        int rc =
            ats_cli_usage_error("vision", "%s is a %s model, not a ViT", model, info->model_type);
        ats_model_free(m); /* info lives as long as the model */
        return rc;
    }
    if (layer >= info->n_layers || head >= info->n_heads) {
        int rc = ats_cli_usage_error("vision", "layer %ld, head %ld is outside the model's %d x %d",
                                     layer, head, info->n_layers, info->n_heads);
        ats_model_free(m);
        return rc;
    }
    int patch = info->patch_size;
    vision_size sz = {img_h ? img_h : info->image_size, img_w ? img_w : info->image_size, 0, 0};
    sz.rows = sz.height / patch;
    sz.cols = sz.width / patch;
    if (sz.rows < 1 || sz.cols < 1 || (size_t)sz.rows * (size_t)sz.cols > 16384) {
        int rc = ats_cli_usage_error("vision",
                                     "--image-size %dx%d gives a %dx%d grid of %d-pixel patches; "
                                     "it needs 1 to 16384 patches",
                                     sz.height, sz.width, sz.rows, sz.cols, patch);
        ats_model_free(m);
        return rc;
    }
    cJSON *doc = cJSON_CreateObject(), *imgs = cJSON_AddArrayToObject(doc, "images");
    cJSON_AddNumberToObject(doc, "layer", (double)layer);
    cJSON_AddNumberToObject(doc, "head", (double)head);
    cJSON_AddNumberToObject(doc, "height", sz.height);
    cJSON_AddNumberToObject(doc, "width", sz.width);
    cJSON *gj = cJSON_AddArrayToObject(doc, "grid"); /* [rows, cols] of patches */
    cJSON_AddItemToArray(gj, cJSON_CreateNumber(sz.rows));
    cJSON_AddItemToArray(gj, cJSON_CreateNumber(sz.cols));
    vision_run prev;
    memset(&prev, 0, sizeof prev);
    ats_series frames[2];
    double *fx = calloc(n_images, sizeof *fx),
           *fy[2] = {calloc(n_images, sizeof(double)), calloc(n_images, sizeof(double))};
    ats_status st =
        (!fx || !fy[0] || !fy[1]) ? ats_error_set(&err, ATS_ERR_NOMEM, "out of memory") : ATS_OK;
    cJSON *fr = n_images > 1 ? cJSON_AddArrayToObject(doc, "consecutive_frames") : NULL;
    for (size_t t = 0; t < n_images && !st; t++) {
        ats_image img;
        memset(&img, 0, sizeof img);
        st = ats_image_load(images[t], &img, &err);
        vision_run run;
        memset(&run, 0, sizeof run);
        if (!st) st = analyse(m, &img, &sz, (size_t)layer, (size_t)head, images[t], &run, &err);
        double sc[ATS_TOPO_MAX_SCALES];
        size_t ns = 0;
        if (!st) {
            const ats_lower metric = {run.n, run.lower};
            st = ats_topo_scales(&metric, INFINITY, scales, n_scales, images[t], "patches", sc, &ns,
                                 &err);
        }
        char stem[32];
        snprintf(stem, sizeof stem, "%zu", t + 1);
        if (!st) st = figures(out, fmt, stem, images[t], &img, &sz, patch, &run, sc, ns, &err);
        cJSON *ij = cJSON_CreateObject();
        cJSON_AddStringToObject(ij, "image", images[t]);
        if (!st) cJSON_AddItemToObject(ij, "dims", diagrams_json(&run));
        if (!st && kind) {
            ats_image pimg;
            vision_run prun;
            memset(&prun, 0, sizeof prun);
            st = perturb(&img, kind, strength, &pimg, &err);
            if (!st)
                st = analyse(m, &pimg, &sz, (size_t)layer, (size_t)head, images[t], &prun, &err);
            snprintf(stem, sizeof stem, "%zu_%s", t + 1, kind);
            if (!st) st = figures(out, fmt, stem, kind, &pimg, &sz, patch, &prun, sc, ns, &err);
            cJSON *pj = NULL;
            double bott[2];
            if (!st) st = distances(&run, &prun, &pj, bott, NULL, &err);
            if (pj) {
                cJSON_AddStringToObject(pj, "kind", kind);
                cJSON_AddItemToObject(pj, "strength", analysis_json_number(strength, 0));
                cJSON_AddItemToObject(pj, "dims", diagrams_json(&prun));
                cJSON_AddItemToObject(ij, "perturbed", pj);
            }
            if (!st)
                fprintf(stderr, "%s: %s changes the diagrams by bottleneck %g (H0), %g (H1)\n",
                        images[t], kind, bott[0], bott[1]);
            ats_image_free(&pimg);
            run_free(&prun);
        }
        cJSON_AddItemToArray(imgs, ij);
        if (!st && t > 0) {
            cJSON *dj = NULL;
            double w[2];
            st = distances(&prev, &run, &dj, NULL, w, &err);
            if (dj) {
                cJSON_AddNumberToObject(dj, "from", (double)t - 1);
                cJSON_AddNumberToObject(dj, "to", (double)t);
                cJSON_AddItemToArray(fr, dj);
            }
            fx[t] = (double)t;
            fy[0][t] = w[0];
            fy[1][t] = w[1];
        }
        run_free(&prev);
        prev = run;
        ats_image_free(&img);
    }
    run_free(&prev);
    if (!st && n_images > 2) {
        fy[0][0] = fy[1][0] = NAN; /* no predecessor */
        frames[0] = (ats_series){"H0", n_images, fx, fy[0]};
        frames[1] = (ats_series){"H1", n_images, fx, fy[1]};
        ats_lines_options lo;
        ats_lines_options_init(&lo);
        char title[512];
        lo.fig.title = ats_cli_title(title, sizeof title, title_prefix,
                                     "Wasserstein distance to the previous frame");
        lo.x_title = "frame";
        lo.y_title = "W1 between diagrams";
        char *path = path_in(out, "frames", fmt);
        st = path ? ats_render_lines(path, 2, frames, &lo, &err)
                  : ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
        if (!st) printf("%s\n", path);
        free(path);
    }
    if (!st) {
        char *path = path_in(out, "vision", "json");
        st = path ? analysis_json_write(path, doc, &err)
                  : ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
        free(path);
    }
    cJSON_Delete(doc);
    free(fx);
    free(fy[0]);
    free(fy[1]);
    ats_model_free(m);
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}
