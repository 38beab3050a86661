/* attnscope vision: image decoding and ViT preprocessing.
 *
 * Images are decoded with stb_image (PNG, JPEG, BMP, GIF's first frame, TGA, PSD, PNM) and
 * converted to 8-bit RGB (grey is replicated, alpha dropped, as PIL's convert("RGB")). The
 * resize reproduces PIL's Image.resize(BILINEAR) on 8-bit images exactly (the same
 * fixed-point separable filter, antialiased when shrinking), which is what transformers'
 * ViTImageProcessor calls, so PNG input preprocesses bit-for-bit like transformers. JPEG
 * decoders differ between stb and libjpeg (IDCT and chroma upsampling), so a JPEG's pixels can
 * differ by a level or two from PIL's; on the ViT fixture the attention then agrees with
 * transformers' to 7e-3 instead of 1e-6 (tests/fixtures/models/vit, case "jpeg"). */
#ifndef ATTNSCOPE_VISION_H
#define ATTNSCOPE_VISION_H

#include "attnscope/core.h"

/* exported from the shared library (see core.h) */
#pragma GCC visibility push(default)
#ifdef __cplusplus
extern "C" {
#endif

typedef struct ats_image {
    int width, height;
    uint8_t *rgb; /* [height][width][3], owned by the image */
} ats_image;

/* Decodes an image file. Unreadable or undecodable files fail with a message naming the file. */
ats_status ats_image_load(const char *path, ats_image *out, ats_error *err);
/* Decodes an image held in memory (name is used in messages). */
ats_status ats_image_decode(const void *data, size_t len, const char *name, ats_image *out,
                            ats_error *err);
void ats_image_free(ats_image *img);

/* PIL-exact bilinear resize to width × height. */
ats_status ats_image_resize(const ats_image *in, int width, int height, ats_image *out,
                            ats_error *err);

typedef struct ats_image_prep {
    int size;       /* output side S (resize target when do_resize) */
    int do_resize;  /* else the image must already be S × S */
    int do_rescale; /* multiply by rescale_factor */
    double rescale_factor;
    int do_normalize; /* (x - mean[c]) / std[c] */
    float mean[3], std[3];
    int height, width; /* > 0: the output is height × width instead of S × S (a ViT then
                          interpolates its position embeddings, see model.h) */
} ats_image_prep;

/* ViTImageProcessor: resize, rescale, normalise; pixels is [3][H][W] (channels first), H = W =
 * S unless height and width are set. */
ats_status ats_image_preprocess(const ats_image *img, const ats_image_prep *prep, float *pixels,
                                ats_error *err);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop
#endif
