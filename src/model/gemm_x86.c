/* The panel kernels for x86-64 (see gemm.c): AVX-512F, 8 rows × 48 columns, and AVX2 + FMA,
 * 4 rows × 24 columns or 6 rows × 16 (the 16 ymm registers hold 12 accumulators, the panel
 * vectors and a broadcast). Each is compiled for its instruction set alone (target attributes); the
 * rest of the library stays x86-64 baseline and calls them only when ats_kernel_path_get() says.
 * Each output element is one FMA chain over k in order from the bias, as in every FMA path. */
#include "model_internal.h"

#if K_HAVE_X86
#include <immintrin.h>

/* The count of rows each of ⌈n/mr⌉ tiles takes, nearly equal (26 rows in tiles of 8 run as
 * 7+7+6+6, not 8+8+8+2, whose last tile would read the whole panel for two rows). */
#define FOR_TILES(n, mr, rows, r0)                                                                 \
    for (size_t tiles_ = ((n) + (mr)-1) / (mr), t_ = 0, r0 = 0, rows = 0;                          \
         t_ < tiles_ && ((rows = (n) / tiles_ + (t_ < (n) % tiles_)), 1); t_++, r0 += rows)

/* ---- AVX-512F */
#define T512 __attribute__((target("avx512f")))

/* c[R][≤16·NV] = bias + a[R][K] · panel[K][48] for constant R ≤ 8 rows and NV ≤ 3 vectors of
 * 16 columns (masks m0..m2 for the last columns). Inlined with R and NV constant, rows and
 * vectors past them fold away and the accumulators, named rather than an array, stay in
 * registers. */
static inline __attribute__((always_inline)) T512 void
tile512(const int R, const int NV, size_t K, const float *a, size_t lda, const float *panel,
        float *c, size_t ldc, const float *bias, __mmask16 m0, __mmask16 m1, __mmask16 m2) {
    const float *a0 = a, *a1 = a + (R > 1) * lda, *a2 = a + (R > 2) * 2 * lda,
                *a3 = a + (R > 3) * 3 * lda, *a4 = a + (R > 4) * 4 * lda,
                *a5 = a + (R > 5) * 5 * lda, *a6 = a + (R > 6) * 6 * lda,
                *a7 = a + (R > 7) * 7 * lda;
    __m512 b0 = _mm512_setzero_ps(), b1 = b0, b2 = b0;
    if (bias) {
        b0 = _mm512_maskz_loadu_ps(m0, bias);
        if (NV > 1) b1 = _mm512_maskz_loadu_ps(m1, bias + 16);
        if (NV > 2) b2 = _mm512_maskz_loadu_ps(m2, bias + 32);
    }
#define ACC(r) __m512 c##r##0 = b0, c##r##1 = b1, c##r##2 = b2
    ACC(0);
    ACC(1);
    ACC(2);
    ACC(3);
    ACC(4);
    ACC(5);
    ACC(6);
    ACC(7);
#undef ACC
    for (size_t k = 0; k < K; k++) {
        const float *pk = panel + k * K_NR;
        __m512 w0 = _mm512_load_ps(pk), w1 = w0, w2 = w0;
        if (NV > 1) w1 = _mm512_load_ps(pk + 16);
        if (NV > 2) w2 = _mm512_load_ps(pk + 32);
#define FMA(r)                                                                                     \
    if (r < R) {                                                                                   \
        __m512 x = _mm512_set1_ps(a##r[k]);                                                        \
        c##r##0 = _mm512_fmadd_ps(x, w0, c##r##0);                                                 \
        if (NV > 1) c##r##1 = _mm512_fmadd_ps(x, w1, c##r##1);                                     \
        if (NV > 2) c##r##2 = _mm512_fmadd_ps(x, w2, c##r##2);                                     \
    }
        FMA(0) FMA(1) FMA(2) FMA(3) FMA(4) FMA(5) FMA(6) FMA(7)
#undef FMA
    }
#define STORE(r)                                                                                   \
    if (r < R) {                                                                                   \
        float *cr = c + (size_t)r * ldc;                                                           \
        _mm512_mask_storeu_ps(cr, m0, c##r##0);                                                    \
        if (NV > 1) _mm512_mask_storeu_ps(cr + 16, m1, c##r##1);                                   \
        if (NV > 2) _mm512_mask_storeu_ps(cr + 32, m2, c##r##2);                                   \
    }
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5) STORE(6) STORE(7)
#undef STORE
}

static __mmask16 lanes16(size_t from, size_t nc) {
    if (nc <= from) return 0;
    size_t k = nc - from;
    return k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << k) - 1u);
}

#define TILE512_NV(R)                                                                              \
    do {                                                                                           \
        if (nv == 1)                                                                               \
            tile512(R, 1, K, ar, lda, panel, cr, ldc, bias, m0, m1, m2);                           \
        else if (nv == 2)                                                                          \
            tile512(R, 2, K, ar, lda, panel, cr, ldc, bias, m0, m1, m2);                           \
        else                                                                                       \
            tile512(R, 3, K, ar, lda, panel, cr, ldc, bias, m0, m1, m2);                           \
    } while (0)

T512 void k_panel_avx512(float *c, size_t ldc, const float *a, size_t lda, const float *panel,
                         size_t n, size_t K, size_t nc, const float *bias) {
    __mmask16 m0 = lanes16(0, nc), m1 = lanes16(16, nc), m2 = lanes16(32, nc);
    int nv = (int)((nc + 15) / 16);
    FOR_TILES(n, 8, rows, r0) {
        const float *ar = a + r0 * lda;
        float *cr = c + r0 * ldc;
        switch (rows) { /* each count its own unrolled tile */
        case 8:
            TILE512_NV(8);
            break;
        case 7:
            TILE512_NV(7);
            break;
        case 6:
            TILE512_NV(6);
            break;
        case 5:
            TILE512_NV(5);
            break;
        case 4:
            TILE512_NV(4);
            break;
        case 3:
            TILE512_NV(3);
            break;
        case 2:
            TILE512_NV(2);
            break;
        default:
            TILE512_NV(1);
            break;
        }
    }
}

/* ---- AVX2 + FMA */
#define T256 __attribute__((target("avx2,fma")))

/* c[R][≤8·NV] = bias + a[R][K] · panel[K][48] (row stride 48: a slice of columns h0.. is
 * panel + h0) for constant R ≤ 6 and NV ≤ 3 vectors of 8 columns (R·NV ≤ 12 accumulators); the last
 * vector keeps its first `last` lanes (mask ml), the others all 8. With `resume` the sums start
 * from c's values instead of the bias: a product split along k continues each chain exactly where
 * it stopped (a float stored and loaded again is the same float). */
static inline __attribute__((always_inline)) T256 void
tile256(const int R, const int NV, size_t K, const float *a, size_t lda, const float *panel,
        float *c, size_t ldc, const float *bias, __m256i ml, int last, int resume) {
    const float *a0 = a, *a1 = a + (R > 1) * lda, *a2 = a + (R > 2) * 2 * lda,
                *a3 = a + (R > 3) * 3 * lda, *a4 = a + (R > 4) * 4 * lda,
                *a5 = a + (R > 5) * 5 * lda;
    const __m256i all = _mm256_set1_epi32(-1);
    __m256 b0 = _mm256_setzero_ps(), b1 = b0, b2 = b0;
    if (bias) {
        b0 = _mm256_maskload_ps(bias, NV == 1 ? ml : all);
        if (NV > 1) b1 = _mm256_maskload_ps(bias + 8, NV == 2 ? ml : all);
        if (NV > 2) b2 = _mm256_maskload_ps(bias + 16, ml);
    }
#define ACC(r) __m256 c##r##0 = b0, c##r##1 = b1, c##r##2 = b2
    ACC(0);
    ACC(1);
    ACC(2);
    ACC(3);
    ACC(4);
    ACC(5);
#undef ACC
#define RESUME(r)                                                                                  \
    if (r < R) {                                                                                   \
        const float *cr = c + (size_t)r * ldc;                                                     \
        c##r##0 = _mm256_maskload_ps(cr, NV == 1 ? ml : all);                                      \
        if (NV > 1) c##r##1 = _mm256_maskload_ps(cr + 8, NV == 2 ? ml : all);                      \
        if (NV > 2) c##r##2 = _mm256_maskload_ps(cr + 16, ml);                                     \
    }
    if (resume) {
        RESUME(0) RESUME(1) RESUME(2) RESUME(3) RESUME(4) RESUME(5)
    }
#undef RESUME
    for (size_t k = 0; k < K; k++) {
        const float *pk = panel + k * K_NR;
        __m256 w0 = _mm256_load_ps(pk), w1 = w0, w2 = w0;
        if (NV > 1) w1 = _mm256_load_ps(pk + 8);
        if (NV > 2) w2 = _mm256_load_ps(pk + 16);
#define FMA(r)                                                                                     \
    if (r < R) {                                                                                   \
        __m256 x = _mm256_broadcast_ss(a##r + k);                                                  \
        c##r##0 = _mm256_fmadd_ps(x, w0, c##r##0);                                                 \
        if (NV > 1) c##r##1 = _mm256_fmadd_ps(x, w1, c##r##1);                                     \
        if (NV > 2) c##r##2 = _mm256_fmadd_ps(x, w2, c##r##2);                                     \
    }
        FMA(0) FMA(1) FMA(2) FMA(3) FMA(4) FMA(5)
#undef FMA
    }
#define PUT(ptr, v, full)                                                                          \
    do {                                                                                           \
        if ((full) || last == 8)                                                                   \
            _mm256_storeu_ps(ptr, v);                                                              \
        else                                                                                       \
            _mm256_maskstore_ps(ptr, ml, v);                                                       \
    } while (0)
#define STORE(r)                                                                                   \
    if (r < R) {                                                                                   \
        float *cr = c + (size_t)r * ldc;                                                           \
        PUT(cr, c##r##0, NV > 1);                                                                  \
        if (NV > 1) PUT(cr + 8, c##r##1, NV > 2);                                                  \
        if (NV > 2) PUT(cr + 16, c##r##2, 0);                                                      \
    }
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5)
#undef STORE
#undef PUT
}

#define TILE256_NV(R)                                                                              \
    do {                                                                                           \
        if (nv == 1)                                                                               \
            tile256(R, 1, kc, ar, lda, pk, cr, ldc, bh, ml, last, k0 > 0);                         \
        else if (nv == 2)                                                                          \
            tile256(R, 2, kc, ar, lda, pk, cr, ldc, bh, ml, last, k0 > 0);                         \
        else if (R <= 4) /* 5 or 6 rows run 16-column slices (nv ≤ 2) */                         \
            tile256(R <= 4 ? R : 4, 3, kc, ar, lda, pk, cr, ldc, bh, ml, last, k0 > 0);            \
    } while (0)

/* k in blocks of this many: a block of a slice (KC · 96 bytes at most) stays in L1 while every
 * tile of rows reads it (without blocks, a 768-deep half-panel fell out of L1: 87 instead of
 * 104 GFLOP/s) */
#define KC 256

/* Slices of a panel's columns: 24 wide (rows in tiles of 4: 12 accumulators of 8 lanes) or 16
 * wide (tiles of 6: 12 as well). 24 suits the 48-column panels of the weights; a narrow product,
 * a head's P·V of 32 columns, would leave a slice of 8 (4 accumulators a tile) after one of
 * 24, and runs as two of 16 instead (a quarter faster). */
static size_t slice_width(size_t nc) {
    return nc <= 16 || (nc > 24 && nc <= 32) ? 16 : 24;
}

T256 void k_panel_avx2(float *c, size_t ldc, const float *a, size_t lda, const float *panel,
                       size_t n, size_t K, size_t nc, const float *bias) {
    size_t sw = slice_width(nc), mr = sw == 16 ? 6 : 4;
    /* the slices of the panel one after the other, each in blocks of KC rows of k */
    for (size_t h0 = 0; h0 < nc; h0 += sw) {
        size_t hc = nc - h0 < sw ? nc - h0 : sw;
        int nv = (int)((hc + 7) / 8), last = (int)(hc - (size_t)(nv - 1) * 8);
        __m256i ml =
            _mm256_cmpgt_epi32(_mm256_set1_epi32(last), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        const float *bh = bias ? bias + h0 : NULL;
        for (size_t k0 = 0; k0 == 0 || k0 < K; k0 += KC) {
            size_t kc = K - k0 < KC ? K - k0 : KC;
            const float *pk = panel + k0 * K_NR + h0;
            FOR_TILES(n, mr, rows, r0) {
                const float *ar = a + r0 * lda + k0;
                float *cr = c + r0 * ldc + h0;
                switch (rows) {
                case 6:
                    TILE256_NV(6);
                    break;
                case 5:
                    TILE256_NV(5);
                    break;
                case 4:
                    TILE256_NV(4);
                    break;
                case 3:
                    TILE256_NV(3);
                    break;
                case 2:
                    TILE256_NV(2);
                    break;
                default:
                    TILE256_NV(1);
                    break;
                }
            }
        }
    }
}
#endif
