/* The panel kernel for aarch64 (see gemm.c): Advanced SIMD, 4 rows × 24 columns (24 of the 32
 * vector registers accumulate, six hold the panel row). Each output element is one fused
 * multiply-add chain over k in order from the bias, as in every FMA path, so the results equal
 * the x86 kernels' bit for bit. */
#include "model_internal.h"

#if K_HAVE_NEON
#include <arm_neon.h>
#include <string.h>

/* c[R][hc] = bias + a[R][K] · panel[K][48] (a half-panel of 24 columns: panel + 24) for a
 * constant R ≤ 4 rows; hc ≤ 24 columns are kept. The panel's lanes past the matrix are zero,
 * so all six vectors run; a partial half is written through a buffer. */
static inline __attribute__((always_inline)) void tile_neon(const int R, size_t K, const float *a,
                                                            size_t lda, const float *panel,
                                                            float *c, size_t ldc, const float *bias,
                                                            size_t hc) {
    float32x4_t acc[4][6];
    float b[24] = {0};
    if (bias) memcpy(b, bias, hc * sizeof *b);
    for (int r = 0; r < R; r++)
        for (int v = 0; v < 6; v++) acc[r][v] = vld1q_f32(b + 4 * v);
    for (size_t k = 0; k < K; k++) {
        const float *pk = panel + k * K_NR;
        float32x4_t w[6];
        for (int v = 0; v < 6; v++) w[v] = vld1q_f32(pk + 4 * v);
        for (int r = 0; r < R; r++) {
            float x = a[(size_t)r * lda + k];
            for (int v = 0; v < 6; v++) acc[r][v] = vfmaq_n_f32(acc[r][v], w[v], x);
        }
    }
    for (int r = 0; r < R; r++) {
        float *cr = c + (size_t)r * ldc;
        if (hc == 24) {
            for (int v = 0; v < 6; v++) vst1q_f32(cr + 4 * v, acc[r][v]);
        } else {
            float out[24];
            for (int v = 0; v < 6; v++) vst1q_f32(out + 4 * v, acc[r][v]);
            memcpy(cr, out, hc * sizeof *cr);
        }
    }
}

void k_panel_neon(float *c, size_t ldc, const float *a, size_t lda, const float *panel, size_t n,
                  size_t K, size_t nc, const float *bias) {
    for (size_t h0 = 0; h0 < nc; h0 += 24) {
        size_t hc = nc - h0 < 24 ? nc - h0 : 24;
        const float *ph = panel + h0, *bh = bias ? bias + h0 : NULL;
        size_t tiles = (n + 3) / 4, r0 = 0;
        for (size_t t = 0; t < tiles; t++) {
            size_t rows = n / tiles + (t < n % tiles);
            const float *ar = a + r0 * lda;
            float *cr = c + r0 * ldc + h0;
            switch (rows) {
            case 4:
                tile_neon(4, K, ar, lda, ph, cr, ldc, bh, hc);
                break;
            case 3:
                tile_neon(3, K, ar, lda, ph, cr, ldc, bh, hc);
                break;
            case 2:
                tile_neon(2, K, ar, lda, ph, cr, ldc, bh, hc);
                break;
            default:
                tile_neon(1, K, ar, lda, ph, cr, ldc, bh, hc);
                break;
            }
            r0 += rows;
        }
    }
}
#endif
