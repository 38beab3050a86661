/* libFuzzer target: image files (PNG, JPEG, BMP, GIF, ... through stb_image) on arbitrary bytes,
 * then PIL's resize and the ViT preprocessing of what decoded. Any error is fine; a crash, leak,
 * sanitizer report, hang or an error without a message is a bug. */
#include "attnscope/vision.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ats_image img, small;
    ats_error err;
    ats_status st = ats_image_decode(data, size, "fuzz", &img, &err);
    if (st != ATS_OK) {
        if (err.message[0] == '\0') abort();
        return 0;
    }
    if (img.width <= 0 || img.height <= 0 || !img.rgb) abort();
    /* resizing a large image is slow under the fuzzing instrumentation, not wrong (a 12.6 Mpx
     * one takes 1.4 s in a release build): only small ones go on */
    if ((size_t)img.width * (size_t)img.height > ((size_t)1 << 20)) {
        ats_image_free(&img);
        return 0;
    }
    /* the resize of the patch figures and the model's preprocessing (a 24 x 16 grid) */
    if (ats_image_resize(&img, 17, 9, &small, &err) == ATS_OK) ats_image_free(&small);
    ats_image_prep prep;
    memset(&prep, 0, sizeof prep);
    prep.size = 16;
    prep.do_resize = 1;
    prep.do_rescale = 1;
    prep.rescale_factor = 1.0 / 255;
    prep.do_normalize = 1;
    for (int c = 0; c < 3; c++) prep.mean[c] = prep.std[c] = 0.5f;
    prep.height = 24;
    float *pixels = malloc(3 * 24 * 16 * sizeof *pixels);
    prep.width = 16;
    if (pixels && ats_image_preprocess(&img, &prep, pixels, &err) == ATS_OK)
        for (int i = 0; i < 3 * 24 * 16; i++)
            if (!(pixels[i] >= -1.001f && pixels[i] <= 1.001f)) abort(); /* (x/255 - .5)/.5 */
    free(pixels);
    ats_image_free(&img);
    return 0;
}
