/* attnscope vision: the token topology of a ViT's image patches (ats_vision, analysis.h):
 * parses the options, calls the library and writes what it returns — the figures, drawn in
 * memory, and vision.json — into --out, all or nothing. */
#include "analysis.h"
#include "cli.h"
#include "attnscope/analysis.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_IMAGES 256

static const char USAGE[] =
    "usage: attnscope vision --model M --image I [--image I2 ...] --layer L --head H --out DIR\n"
    "                        [--scales S1,S2,...] [--perturb noise|blur|occlusion]\n"
    "                        [--strength X] [--format png|svg|pdf] [--image-size H[xW]]\n"
    "                        [--title T]   (T titles the figures instead of the image's name)\n"
    "                        [--sphere] [--sphere-edges K]\n"
    "\n"
    "For every image: the patch tokens' Jensen–Shannon metric (base 2) in head (L, H), its\n"
    "persistence H0/H1 (diagram, barcode) and the Rips skeleton at each scale drawn over the\n"
    "image (default scales: where the skeleton has n/2, n and 2n edges for n patches, or the\n"
    "10%, 25% and 50% quantiles of the distances when those give fewer). --perturb also\n"
    "runs a perturbed copy (noise: Gaussian, sigma = X x 255, default 0.1; blur: box blur of\n"
    "radius X pixels, default 2; occlusion: a grey square over X of the image side, default\n"
    "0.3) and reports the bottleneck and Wasserstein distances between the diagrams. Several\n"
    "images are treated as frames: the distances between consecutive frames. vision.json holds\n"
    "everything. --image-size runs the images at H x W pixels instead of the model's size (a\n"
    "grid of (H / patch) x (W / patch) patches, the position embeddings interpolated as\n"
    "transformers' interpolate_pos_encoding).\n"
    "--sphere: the head's attention graph between the patches on a Fibonacci sphere (patch k\n"
    "at point k of the golden-angle spiral from the top pole, in raster order), its K strongest\n"
    "edges (default 2n) by weight (A[i][j] + A[j][i]) / 2, drawn in a projected 3-D view with\n"
    "each patch in its mean colour (sphere_<k>.<format>); vision.json then holds each image's\n"
    "\"sphere\": {\"points\": [[x, y, z], ...], \"edges\": [[i, j, weight], ...]}.\n";

/* What the command writes, in the order it lists them. */
typedef struct vision_files {
    ats_outdir dir;
    const char *fmt;
    char **names; /* [count] file names inside the folder */
    size_t count, cap;
} vision_files;

/* name.ext into the staging folder: the JSON document doc, or else size bytes at data */
static ats_status file_add(vision_files *f, const char *name, const char *ext, const void *data,
                           size_t size, const cJSON *doc, ats_error *err) {
    if (f->count == f->cap) {
        size_t cap = f->cap ? 2 * f->cap : 16;
        char **p = realloc(f->names, cap * sizeof *p);
        if (!p) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        f->names = p;
        f->cap = cap;
    }
    size_t len = strlen(name) + strlen(ext) + 2;
    char *file = malloc(len);
    if (!file) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    snprintf(file, len, "%s.%s", name, ext);
    f->names[f->count++] = file;
    return doc ? analysis_json_stage(f->dir.tmp, file, doc, err)
               : analysis_bytes_stage(f->dir.tmp, file, data, size, err);
}

/* The three figures of a run, as <kind>_<stem>.<format>. */
static ats_status run_files(vision_files *f, const ats_vision_run *r, const char *stem,
                            ats_error *err) {
    static const char *const kinds[3] = {"diagram", "barcode", "patches"};
    ats_status st = ATS_OK;
    for (int k = 0; k < 3 && !st; k++) {
        char name[128];
        snprintf(name, sizeof name, "%s_%s", kinds[k], stem);
        st = file_add(f, name, f->fmt, r->figures[k].data, r->figures[k].size, NULL, err);
    }
    return st;
}

static cJSON *diagrams_json(const ats_vision_run *r) {
    cJSON *dims = cJSON_CreateArray();
    for (int k = 0; k < 2; k++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddItemToObject(e, "pairs", analysis_pairs_json(&r->rips.dims[k]));
        cJSON_AddNumberToObject(e, "dim", k);
        cJSON_AddItemToArray(dims, e);
    }
    return dims;
}

/* {"bottleneck":[H0,H1],"wasserstein":[H0,H1]} */
static cJSON *distances_json(const double *bott, const double *wass) {
    cJSON *o = cJSON_CreateObject(), *bj = cJSON_AddArrayToObject(o, "bottleneck"),
          *wj = cJSON_AddArrayToObject(o, "wasserstein");
    for (int k = 0; k < 2; k++) {
        cJSON_AddItemToArray(bj, analysis_json_number(bott[k], 0));
        cJSON_AddItemToArray(wj, analysis_json_number(wass[k], 0));
    }
    return o;
}

static cJSON *vision_json(const ats_vision_result *r, long layer, long head, const char *kind) {
    cJSON *doc = cJSON_CreateObject(), *imgs = cJSON_AddArrayToObject(doc, "images");
    cJSON_AddNumberToObject(doc, "layer", (double)layer);
    cJSON_AddNumberToObject(doc, "head", (double)head);
    cJSON_AddNumberToObject(doc, "height", r->height);
    cJSON_AddNumberToObject(doc, "width", r->width);
    cJSON *gj = cJSON_AddArrayToObject(doc, "grid"); /* [rows, cols] of patches */
    cJSON_AddItemToArray(gj, cJSON_CreateNumber(r->rows));
    cJSON_AddItemToArray(gj, cJSON_CreateNumber(r->cols));
    for (size_t t = 0; t < r->count; t++) {
        const ats_vision_image *im = &r->images[t];
        cJSON *ij = cJSON_CreateObject();
        cJSON_AddStringToObject(ij, "image", im->name);
        cJSON_AddItemToObject(ij, "dims", diagrams_json(&im->run));
        cJSON *sj = cJSON_AddArrayToObject(ij, "scales"); /* of the skeleton figures */
        for (size_t q = 0; q < im->n_scales; q++)
            cJSON_AddItemToArray(sj, analysis_json_number(im->scales[q], 0));
        if (im->perturbed) {
            cJSON *pj = distances_json(im->bottleneck, im->wasserstein);
            cJSON_AddStringToObject(pj, "kind", kind);
            cJSON_AddItemToObject(pj, "strength", analysis_json_number(r->strength, 0));
            cJSON_AddItemToObject(pj, "dims", diagrams_json(&im->perturbation));
            cJSON_AddItemToObject(ij, "perturbed", pj);
        }
        if (im->sphere) {
            cJSON *sp = cJSON_AddObjectToObject(ij, "sphere"),
                  *pts = cJSON_AddArrayToObject(sp, "points"),
                  *ej = cJSON_AddArrayToObject(sp, "edges");
            for (size_t k = 0; k < im->run.n; k++) {
                cJSON *pt = cJSON_CreateArray();
                for (int c = 0; c < 3; c++)
                    cJSON_AddItemToArray(pt,
                                         analysis_json_number(im->sphere[3 * k + (size_t)c], 0));
                cJSON_AddItemToArray(pts, pt);
            }
            for (size_t e = 0; e < im->n_edges; e++) {
                cJSON *ed = cJSON_CreateArray();
                cJSON_AddItemToArray(ed, cJSON_CreateNumber((double)im->edges[2 * e]));
                cJSON_AddItemToArray(ed, cJSON_CreateNumber((double)im->edges[2 * e + 1]));
                cJSON_AddItemToArray(ed, analysis_json_number(im->edge_weights[e], 0));
                cJSON_AddItemToArray(ej, ed);
            }
        }
        cJSON_AddItemToArray(imgs, ij);
    }
    if (r->count > 1) {
        cJSON *fr = cJSON_AddArrayToObject(doc, "consecutive_frames");
        for (size_t t = 1; t < r->count; t++) {
            cJSON *dj = distances_json(r->frame_bottleneck + (t - 1) * 2,
                                       r->frame_wasserstein + (t - 1) * 2);
            cJSON_AddNumberToObject(dj, "from", (double)t - 1);
            cJSON_AddNumberToObject(dj, "to", (double)t);
            cJSON_AddItemToArray(fr, dj);
        }
    }
    return doc;
}

static ats_status vision_write(vision_files *f, const ats_vision_result *r, long layer, long head,
                               const char *kind, ats_error *err) {
    ats_status st = ATS_OK;
    for (size_t t = 0; t < r->count && !st; t++) {
        const ats_vision_image *im = &r->images[t];
        char stem[64];
        snprintf(stem, sizeof stem, "%zu", t + 1);
        st = run_files(f, &im->run, stem, err);
        if (!st && im->perturbed) {
            snprintf(stem, sizeof stem, "%zu_%s", t + 1, kind);
            st = run_files(f, &im->perturbation, stem, err);
        }
        if (!st && im->sphere_figure.data) {
            snprintf(stem, sizeof stem, "sphere_%zu", t + 1);
            st = file_add(f, stem, f->fmt, im->sphere_figure.data, im->sphere_figure.size, NULL,
                          err);
        }
    }
    if (!st && r->frames_figure.data)
        st = file_add(f, "frames", f->fmt, r->frames_figure.data, r->frames_figure.size, NULL, err);
    if (st) return st;
    cJSON *doc = vision_json(r, layer, head, kind);
    st = file_add(f, "vision", "json", NULL, 0, doc, err);
    cJSON_Delete(doc);
    return st;
}

int ats_cmd_vision(int argc, char **argv) {
    const char *model = NULL, *images[MAX_IMAGES], *out = NULL, *fmt = "png", *kind = NULL;
    size_t n_images = 0;
    ats_vision_options o;
    ats_vision_options_init(&o);
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--help")) {
            fputs(USAGE, stdout);
            return ATS_EXIT_OK;
        }
        if (!strcmp(s, "--sphere")) { /* a flag */
            o.sphere = 1;
            continue;
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
            if (!ats_cli_parse_image_size(v, &o.height, &o.width))
                return ats_cli_usage_error("vision", "--image-size needs H or HxW, 1..16384");
        } else if (!strcmp(s, "--perturb")) {
            if (!strcmp(v, "noise"))
                o.perturb = ATS_PERTURB_NOISE;
            else if (!strcmp(v, "blur"))
                o.perturb = ATS_PERTURB_BLUR;
            else if (!strcmp(v, "occlusion"))
                o.perturb = ATS_PERTURB_OCCLUSION;
            else
                return ats_cli_usage_error("vision", "--perturb is noise, blur or occlusion");
            kind = v;
        } else if (!strcmp(s, "--sphere-edges")) {
            long x;
            if (!ats_cli_parse_long(v, 1, 1L << 30, &x))
                return ats_cli_usage_error("vision", "--sphere-edges needs an integer >= 1");
            o.sphere = 1;
            o.sphere_edges = (size_t)x;
        } else if (!strcmp(s, "--strength")) {
            if (!ats_cli_parse_double(v, 0, &o.strength) || o.strength < 0)
                return ats_cli_usage_error("vision", "--strength needs a number >= 0");
        } else if (!strcmp(s, "--format")) {
            if (strcmp(v, "png") && strcmp(v, "svg") && strcmp(v, "pdf"))
                return ats_cli_usage_error("vision", "--format is png, svg or pdf");
            o.format = !strcmp(v, "png")   ? ATS_FIGURE_PNG
                       : !strcmp(v, "svg") ? ATS_FIGURE_SVG
                                           : ATS_FIGURE_PDF;
            fmt = v;
        } else if (!strcmp(s, "--title")) {
            o.title = v;
        } else if (!strcmp(s, "--layer") || !strcmp(s, "--head")) {
            long x;
            if (!ats_cli_parse_long(v, 0, 1 << 16, &x))
                return ats_cli_usage_error("vision", "%s needs an integer >= 0", s);
            *(!strcmp(s, "--layer") ? &o.layer : &o.head) = x;
        } else if (!strcmp(s, "--scales") || !strcmp(s, "--scale")) {
            const char *p = v;
            o.n_scales = 0;
            while (*p && o.n_scales < ATS_TOPO_MAX_SCALES) {
                char *e;
                double x = strtod(p, &e);
                if (e == p || !(x >= 0) || isinf(x) || (*e && *e != ','))
                    return ats_cli_usage_error("vision", "--scales needs numbers >= 0");
                o.scales[o.n_scales++] = x;
                p = *e ? e + 1 : e;
            }
        } else {
            return ats_cli_usage_error("vision", "unknown option '%s' (see --help)", s);
        }
        i++;
    }
    if (!model || !n_images || !out || o.layer < 0 || o.head < 0)
        return ats_cli_usage_error(
            "vision", "needs --model, --image, --layer, --head and --out (see --help)");
    if (kind && !strcmp(kind, "occlusion") && o.strength > 1) /* NaN: not given */
        return ats_cli_usage_error("vision", "--strength of an occlusion is a fraction <= 1");
    o.figures = 1;
    ats_error err;
    ats_error_clear(&err);
    vision_files f;
    memset(&f, 0, sizeof f);
    f.fmt = fmt;
    ats_session *s = NULL;
    ats_vision_result res;
    memset(&res, 0, sizeof res);
    ats_vision_input in[MAX_IMAGES];
    for (size_t t = 0; t < n_images; t++) in[t] = (ats_vision_input){images[t], NULL, NULL};
    ats_status st = ats_outdir_open(&f.dir, out, &err);
    if (!st) st = ats_session_open_adapted(model, ats_cli_adapter(), &s, &err);
    if (!st) st = ats_vision(s, n_images, in, &o, &res, &err);
    if (!st) st = vision_write(&f, &res, o.layer, o.head, kind, &err);
    if (!st) st = ats_outdir_commit(&f.dir, &err);
    ats_outdir_abort(&f.dir); /* after a commit: nothing left to remove */
    for (size_t k = 0; k < f.count; k++) {
        if (!st) printf("%s/%s\n", out, f.names[k]);
        free(f.names[k]);
    }
    free(f.names);
    for (size_t t = 0; !st && kind && t < res.count; t++)
        fprintf(stderr, "%s: %s changes the diagrams by bottleneck %g (H0), %g (H1)\n",
                res.images[t].name, kind, res.images[t].bottleneck[0], res.images[t].bottleneck[1]);
    ats_vision_result_free(&res);
    ats_session_close(s);
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}
