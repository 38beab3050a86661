/* Image decoding (stb_image) and ViTImageProcessor's preprocessing with PIL's bilinear resize. */
#include "attnscope/vision.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STBI_NO_STDIO
#define STBI_FAILURE_USERMSG
#define STB_IMAGE_STATIC
#define STB_IMAGE_IMPLEMENTATION
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wmissing-prototypes"
#pragma GCC diagnostic ignored "-Wshadow"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#endif
#include <stb/stb_image.h>
/* (the warnings stay off for the rest of this file: stb's unused static declarations are
   reported at its end) */

/* Decodes at most this many pixels (64 Mpx, 8192 × 8192; a ViT sees a few hundred pixels a
 * side); larger images are refused before any pixel is allocated. stb_image allocates its whole
 * planes from the declared size before it reads any data, so without the bound a file of a few
 * bytes could take gigabytes (fuzz/fuzz_image.c found a 129-byte GIF asking for 2 GB). GIF
 * decoding keeps three 4-byte planes, hence its lower bound. */
#define MAX_PIXELS     ((size_t)1 << 26)
#define MAX_GIF_PIXELS ((size_t)1 << 24)

void ats_image_free(ats_image *img) {
    if (!img) return;
    free(img->rgb);
    memset(img, 0, sizeof *img);
}

/* Whether every Huffman table of a JPEG stream holds at most 256 codes. Debian's stb_image
 * (2022-09) builds a table from its 16 code counts without checking their sum, and a larger sum
 * writes past the table (found by fuzz/fuzz_image.c); so the tables are checked here first.
 * stb_image skips padding between segments while it looks for markers, so rather than follow
 * its walk, every FF C4 (DHT) in the file is checked: in entropy-coded data FF is always
 * followed by 00 or a restart marker, so a valid file is refused only if some metadata segment
 * happens to hold FF C4 followed by such counts. */
static int jpeg_tables_ok(const unsigned char *d, size_t len) {
    /* stb_image takes a file as JPEG when its first marker, after any fill bytes, is SOI */
    size_t soi = 0;
    while (soi < len && d[soi] == 0xFF) soi++;
    if (soi == 0 || soi >= len || d[soi] != 0xD8) return 1;
    for (size_t p = 0; p + 3 < len; p++) {
        if (d[p] != 0xFF || d[p + 1] != 0xC4) continue;
        /* tables of (class|id, 16 counts, the codes' symbols) while the declared length has room
         * for one more; stb_image reads zeros past the end of the data, so they count 0 */
        size_t seg = (size_t)d[p + 2] << 8 | d[p + 3];
        size_t end = p + 2 + seg < len ? p + 2 + seg : len;
        for (size_t t = p + 4; t < end;) {
            size_t n = 0;
            for (size_t i = 1; i <= 16 && t + i < len; i++) n += d[t + i];
            if (n > 256) return 0;
            t += 17 + n;
        }
    }
    return 1;
}

static ats_status decode(const void *data, size_t len, const char *name, ats_image *out,
                         ats_error *err);

/* A copy of the PNG data[len] without its empty IDAT chunks, or NULL when it has none (or is
 * not a PNG). Debian's stb_image adds an empty first IDAT's length to its data pointer while
 * that is still NULL (undefined behaviour, found by fuzz/fuzz_image.c); an empty IDAT carries
 * no pixels, so leaving it out changes no image. *copy_len receives the copy's length. */
static unsigned char *png_without_empty_idat(const unsigned char *d, size_t len, size_t *copy_len) {
    static const unsigned char SIG[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
    if (len < 8 || memcmp(d, SIG, 8)) return NULL;
    int any = 0;
    for (size_t p = 8; p + 12 <= len;) {
        size_t n = (size_t)d[p] << 24 | (size_t)d[p + 1] << 16 | (size_t)d[p + 2] << 8 | d[p + 3];
        if (n == 0 && !memcmp(d + p + 4, "IDAT", 4)) any = 1;
        if (n > len - p - 12) break;
        p += 12 + n;
    }
    if (!any) return NULL;
    unsigned char *c = malloc(len);
    if (!c) return NULL;
    memcpy(c, d, 8);
    size_t p = 8, q = 8;
    while (p + 12 <= len) {
        size_t n = (size_t)d[p] << 24 | (size_t)d[p + 1] << 16 | (size_t)d[p + 2] << 8 | d[p + 3];
        size_t whole = n > len - p - 12 ? len - p : 12 + n;
        if (!(n == 0 && !memcmp(d + p + 4, "IDAT", 4))) {
            memcpy(c + q, d + p, whole);
            q += whole;
        }
        p += whole;
    }
    memcpy(c + q, d + p, len - p); /* a trailing piece shorter than a chunk header */
    *copy_len = q + (len - p);
    return c;
}

ats_status ats_image_decode(const void *data_in, size_t len, const char *name, ats_image *out,
                            ats_error *err) {
    size_t fixed_len = 0;
    unsigned char *fixed = png_without_empty_idat(data_in, len, &fixed_len);
    const void *data = fixed ? fixed : data_in;
    if (fixed) len = fixed_len;
    ats_status st = decode(data, len, name, out, err);
    free(fixed);
    return st;
}

static ats_status decode(const void *data, size_t len, const char *name, ats_image *out,
                         ats_error *err) {
    memset(out, 0, sizeof *out);
    if (len == 0) return ats_error_set(err, ATS_ERR_FORMAT, "%s: empty image file", name);
    if (len > (size_t)0x7fffffff)
        return ats_error_set(err, ATS_ERR_RANGE, "%s: image file too large", name);
    if (!jpeg_tables_ok(data, len))
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: corrupt JPEG: a Huffman table has more than 256 codes", name);
    int w, h, comp;
    if (!stbi_info_from_memory(data, (int)len, &w, &h, &comp))
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: not a readable image (%s)", name,
                             stbi_failure_reason());
    size_t px, most = len >= 4 && !memcmp(data, "GIF8", 4) ? MAX_GIF_PIXELS : MAX_PIXELS;
    if (w <= 0 || h <= 0 || !ats_size_mul((size_t)w, (size_t)h, &px) || px > most)
        return ats_error_set(err, ATS_ERR_RANGE,
                             "%s: image of %d x %d pixels is too large (at most %zu pixels)", name,
                             w, h, most);
    unsigned char *pix = stbi_load_from_memory(data, (int)len, &w, &h, &comp, 3);
    if (!pix)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: cannot decode the image (%s)", name,
                             stbi_failure_reason());
    out->rgb = malloc((size_t)w * (size_t)h * 3);
    if (!out->rgb) {
        stbi_image_free(pix);
        return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", name);
    }
    memcpy(out->rgb, pix, (size_t)w * (size_t)h * 3);
    stbi_image_free(pix);
    out->width = w;
    out->height = h;
    return ATS_OK;
}

ats_status ats_image_load(const char *path, ats_image *out, ats_error *err) {
    memset(out, 0, sizeof *out);
    char *buf;
    size_t len;
    ats_status rc = ats_file_read_all(path, (size_t)1 << 30, &buf, &len, err);
    if (rc) return rc;
    rc = ats_image_decode(buf, len, path, out, err);
    free(buf);
    return rc;
}

/* ---- PIL's resampling (Pillow's Resample.c algorithm, reimplemented): a separable
 * convolution with the triangle filter, support scaled by the shrink factor, weights
 * normalised per output pixel and turned into 22-bit fixed point; horizontal pass first into an
 * 8-bit image, then vertical, each rounding and clipping to 0..255. */

#define PRECISION_BITS (32 - 8 - 2)

static double bilinear_filter(double x) {
    if (x < 0.0) x = -x;
    return x < 1.0 ? 1.0 - x : 0.0;
}

/* For each of out_size outputs: first input index bounds[2o], count bounds[2o+1], and ksize
 * fixed-point weights kk[o·ksize ..]. Returns ksize, 0 on allocation failure. */
static int precompute(int in_size, int out_size, int **bounds_out, int **kk_out) {
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 1.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *k = malloc((size_t)out_size * (size_t)ksize * sizeof *k);
    int *kk = malloc((size_t)out_size * (size_t)ksize * sizeof *kk);
    int *bounds = malloc((size_t)out_size * 2 * sizeof *bounds);
    if (!k || !kk || !bounds) {
        free(k);
        free(kk);
        free(bounds);
        return 0;
    }
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        double ww = 0.0, ss = 1.0 / filterscale;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        double *kx = k + (size_t)xx * (size_t)ksize;
        int x;
        for (x = 0; x < xmax; x++) {
            double wgt = bilinear_filter((x + xmin - center + 0.5) * ss);
            kx[x] = wgt;
            ww += wgt;
        }
        for (x = 0; x < xmax; x++)
            if (ww != 0.0) kx[x] /= ww;
        for (; x < ksize; x++) kx[x] = 0.0;
        bounds[xx * 2] = xmin;
        bounds[xx * 2 + 1] = xmax;
    }
    for (size_t i = 0; i < (size_t)out_size * (size_t)ksize; i++)
        kk[i] = k[i] < 0 ? (int)(-0.5 + k[i] * (1 << PRECISION_BITS))
                         : (int)(0.5 + k[i] * (1 << PRECISION_BITS));
    free(k);
    *bounds_out = bounds;
    *kk_out = kk;
    return ksize;
}

static uint8_t clip8(int v) {
    v >>= PRECISION_BITS;
    return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
}

ats_status ats_image_resize(const ats_image *in, int width, int height, ats_image *out,
                            ats_error *err) {
    memset(out, 0, sizeof *out);
    if (width <= 0 || height <= 0 || in->width <= 0 || in->height <= 0)
        return ats_error_set(err, ATS_ERR_INVALID, "image resize: bad size %dx%d", width, height);
    int *xb = NULL, *xk = NULL, *yb = NULL, *yk = NULL;
    int kx = precompute(in->width, width, &xb, &xk);
    int ky = kx ? precompute(in->height, height, &yb, &yk) : 0;
    uint8_t *tmp = malloc((size_t)width * (size_t)in->height * 3);
    out->rgb = malloc((size_t)width * (size_t)height * 3);
    if (!kx || !ky || !tmp || !out->rgb) {
        free(xb);
        free(xk);
        free(yb);
        free(yk);
        free(tmp);
        ats_image_free(out);
        return ats_error_set(err, ATS_ERR_NOMEM, "image resize: out of memory");
    }
    /* horizontal: tmp[in.h][width][3] */
    for (int y = 0; y < in->height; y++)
        for (int xx = 0; xx < width; xx++) {
            int xmin = xb[2 * xx], xn = xb[2 * xx + 1];
            const int *k = xk + (size_t)xx * (size_t)kx;
            for (int c = 0; c < 3; c++) {
                int ss = 1 << (PRECISION_BITS - 1);
                for (int x = 0; x < xn; x++)
                    ss += in->rgb[((size_t)y * (size_t)in->width + (size_t)(x + xmin)) * 3 + c] *
                          k[x];
                tmp[((size_t)y * (size_t)width + (size_t)xx) * 3 + c] = clip8(ss);
            }
        }
    /* vertical: out[height][width][3] */
    for (int yy = 0; yy < height; yy++) {
        int ymin = yb[2 * yy], yn = yb[2 * yy + 1];
        const int *k = yk + (size_t)yy * (size_t)ky;
        for (int xx = 0; xx < width; xx++)
            for (int c = 0; c < 3; c++) {
                int ss = 1 << (PRECISION_BITS - 1);
                for (int y = 0; y < yn; y++)
                    ss += tmp[((size_t)(y + ymin) * (size_t)width + (size_t)xx) * 3 + c] * k[y];
                out->rgb[((size_t)yy * (size_t)width + (size_t)xx) * 3 + c] = clip8(ss);
            }
    }
    free(xb);
    free(xk);
    free(yb);
    free(yk);
    free(tmp);
    out->width = width;
    out->height = height;
    return ATS_OK;
}

ats_status ats_image_preprocess(const ats_image *img, const ats_image_prep *prep, float *pixels,
                                ats_error *err) {
    int H = prep->height > 0 ? prep->height : prep->size;
    int W = prep->width > 0 ? prep->width : prep->size;
    ats_image resized = {0};
    const ats_image *src = img;
    if (prep->do_resize && (img->width != W || img->height != H)) {
        ats_status rc = ats_image_resize(img, W, H, &resized, err);
        if (rc) return rc;
        src = &resized;
    } else if (img->width != W || img->height != H) {
        return ats_error_set(err, ATS_ERR_INVALID,
                             "image is %dx%d, the model takes %dx%d and resizing is off",
                             img->width, img->height, W, H);
    }
    /* as transformers: rescale in float64 then cast to float32; normalise in float32 */
    size_t plane = (size_t)H * (size_t)W;
    for (size_t p = 0; p < plane; p++)
        for (int c = 0; c < 3; c++) {
            uint8_t u = src->rgb[p * 3 + (size_t)c];
            float v =
                prep->do_rescale ? (float)((double)u * (double)prep->rescale_factor) : (float)u;
            if (prep->do_normalize) v = (v - prep->mean[c]) / prep->std[c];
            pixels[(size_t)c * plane + p] = v;
        }
    ats_image_free(&resized);
    return ATS_OK;
}
