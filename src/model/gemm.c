/* The linear layers' matrix product on weights packed once, at load.
 *
 * OpenBLAS packs its B operand on every call; for a weight matrix that is the whole matrix,
 * every pass, and at the short inputs attention studies use (n ≤ 128 tokens) the packing costs
 * more than the arithmetic (half of a 16-token MiniLM pass). Here each weight matrix is stored
 * once in the micro-kernel's order, as panels of NR output columns, and the kernel streams a
 * panel once per call while it stays in L2 for every block of MR input rows.
 *
 * The kernel uses AVX-512F when the CPU has it (chosen at run time; the rest of the library is
 * built for x86-64 baseline). Without it the model keeps its weights unpacked and OpenBLAS does
 * the products. Each output element is one fused multiply-add chain over k in order, so results
 * differ from OpenBLAS's by rounding only (tests/unit/test_gemm.c bounds it). */
#include "model_internal.h"

#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define GEMM_X86 1
#include <immintrin.h>
#else
#define GEMM_X86 0
#endif

#define NR 48 /* output columns per panel: three 16-float vectors */
#define MR 8  /* input rows per micro-tile: 8 × 3 accumulators of 32 registers */

static int force_off = 0; /* tests: k_gemm_force_fallback */

void k_gemm_force_fallback(int off) {
    force_off = off;
}

int k_gemm_available(void) {
    if (force_off) return 0;
#if GEMM_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") != 0;
#else
    return 0;
#endif
}

size_t k_pack_count(size_t i, size_t o) {
    size_t count;
    if (!ats_size_mul((o + NR - 1) / NR, (size_t)NR, &count) || !ats_size_mul(count, i, &count) ||
        count > SIZE_MAX / sizeof(float) / 2)
        return 0;
    return count; /* NR·i floats a panel: a multiple of 16, so every panel stays 64-byte aligned */
}

/* W Linear [o][i] (conv1d = 0) or Conv1D [i][ldw] (first o columns) → panels
 * [ceil(o/NR)][i][NR], column c of the product at panel c / NR, lane c % NR; lanes past o are
 * zero. */
void k_pack_into(packed_w *pw, float *p, const float *w, size_t ldw, size_t i, size_t o,
                 int conv1d) {
    size_t panels = (o + NR - 1) / NR;
    for (size_t pn = 0; pn < panels; pn++) {
        float *dst = p + pn * i * NR;
        size_t c0 = pn * NR, nc = o - c0 < NR ? o - c0 : NR;
        if (conv1d && nc == NR) {
            /* three 64-byte copies: one 192-byte memcpy becomes `rep movs`, which takes most
             * of the time of loading a model on AMD Zen */
            for (size_t k = 0; k < i; k++) {
                const float *src = w + k * ldw + c0;
                memcpy(dst + k * NR, src, 64);
                memcpy(dst + k * NR + 16, src + 16, 64);
                memcpy(dst + k * NR + 32, src + 32, 64);
            }
        } else if (conv1d) {
            for (size_t k = 0; k < i; k++) {
                memcpy(dst + k * NR, w + k * ldw + c0, nc * sizeof *dst);
                memset(dst + k * NR + nc, 0, (NR - nc) * sizeof *dst);
            }
        } else {
            for (size_t k = 0; k < i; k++) {
                for (size_t j = 0; j < nc; j++) dst[k * NR + j] = w[(c0 + j) * ldw + k];
                for (size_t j = nc; j < NR; j++) dst[k * NR + j] = 0.0f;
            }
        }
    }
    pw->p = p;
    pw->i = i;
    pw->o = o;
}

int k_pack(packed_w *pw, const float *w, size_t ldw, size_t i, size_t o, int conv1d) {
    size_t count = k_pack_count(i, o);
    pw->p = NULL;
    if (!count) return 0;
    /* 64-byte aligned: every panel row is three aligned vector loads */
    float *p = aligned_alloc(64, (count * sizeof(float) + 63) / 64 * 64);
    if (!p) return 0;
    k_pack_into(pw, p, w, ldw, i, o, conv1d);
    return 1;
}

void k_pack_free(packed_w *pw) {
    free(pw->p);
    pw->p = NULL;
}

#if GEMM_X86
#define TARGET __attribute__((target("avx512f")))

/* c[R][nc] (row stride ldc) = a[R][K] (row stride lda) · panel[K][NR] (+ bias[nc]) for a
 * constant R ≤ MR rows and nc ≤ NR columns (masks m0..m2). Inlined with R constant, the rows
 * past R fold away and the 3·R accumulators, named rather than an array, stay in registers. */
static inline __attribute__((always_inline)) TARGET void
tile(const int R, size_t K, const float *a, size_t lda, const float *panel, float *c, size_t ldc,
     const float *bias, __mmask16 m0, __mmask16 m1, __mmask16 m2) {
    const float *a0 = a, *a1 = a + (R > 1) * lda, *a2 = a + (R > 2) * 2 * lda,
                *a3 = a + (R > 3) * 3 * lda, *a4 = a + (R > 4) * 4 * lda,
                *a5 = a + (R > 5) * 5 * lda, *a6 = a + (R > 6) * 6 * lda,
                *a7 = a + (R > 7) * 7 * lda;
    __m512 b0 = _mm512_setzero_ps(), b1 = b0, b2 = b0;
    if (bias) {
        b0 = _mm512_maskz_loadu_ps(m0, bias);
        b1 = _mm512_maskz_loadu_ps(m1, bias + 16);
        b2 = _mm512_maskz_loadu_ps(m2, bias + 32);
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
        const float *pk = panel + k * NR;
        __m512 w0 = _mm512_load_ps(pk), w1 = _mm512_load_ps(pk + 16), w2 = _mm512_load_ps(pk + 32);
#define FMA(r)                                                                                     \
    if (r < R) {                                                                                   \
        __m512 x = _mm512_set1_ps(a##r[k]);                                                        \
        c##r##0 = _mm512_fmadd_ps(x, w0, c##r##0);                                                 \
        c##r##1 = _mm512_fmadd_ps(x, w1, c##r##1);                                                 \
        c##r##2 = _mm512_fmadd_ps(x, w2, c##r##2);                                                 \
    }
        FMA(0) FMA(1) FMA(2) FMA(3) FMA(4) FMA(5) FMA(6) FMA(7)
#undef FMA
    }
#define STORE(r)                                                                                   \
    if (r < R) {                                                                                   \
        float *cr = c + (size_t)r * ldc;                                                           \
        _mm512_mask_storeu_ps(cr, m0, c##r##0);                                                    \
        _mm512_mask_storeu_ps(cr + 16, m1, c##r##1);                                               \
        _mm512_mask_storeu_ps(cr + 32, m2, c##r##2);                                               \
    }
    STORE(0) STORE(1) STORE(2) STORE(3) STORE(4) STORE(5) STORE(6) STORE(7)
#undef STORE
}

static __mmask16 lanes(size_t from, size_t nc) {
    if (nc <= from) return 0;
    size_t k = nc - from;
    return k >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << k) - 1u);
}

/* One panel's columns for all n rows: ⌈n/MR⌉ tiles of nearly equal height (26 rows run as
 * 7+7+6+6, not 8+8+8+2, whose last tile would read the whole panel for two rows). Each row's
 * sums are the same whatever tile it is in. */
TARGET static void panel_rows(float *out, size_t ldo, const float *in, size_t ldi, size_t n,
                              size_t K, const float *panel, const float *bias, size_t nc) {
    __mmask16 m0 = lanes(0, nc), m1 = lanes(16, nc), m2 = lanes(32, nc);
    size_t tiles = (n + MR - 1) / MR, r = 0;
    for (size_t t = 0; t < tiles; t++) {
        size_t rows = n / tiles + (t < n % tiles);
        const float *a = in + r * ldi;
        float *c = out + r * ldo;
        switch (rows) { /* each count its own unrolled tile */
        case 8:
            tile(8, K, a, ldi, panel, c, ldo, bias, m0, m1, m2);
            break;
        case 7:
            tile(7, K, a, ldi, panel, c, ldo, bias, m0, m1, m2);
            break;
        case 6:
            tile(6, K, a, ldi, panel, c, ldo, bias, m0, m1, m2);
            break;
        case 5:
            tile(5, K, a, ldi, panel, c, ldo, bias, m0, m1, m2);
            break;
        case 4:
            tile(4, K, a, ldi, panel, c, ldo, bias, m0, m1, m2);
            break;
        case 3:
            tile(3, K, a, ldi, panel, c, ldo, bias, m0, m1, m2);
            break;
        case 2:
            tile(2, K, a, ldi, panel, c, ldo, bias, m0, m1, m2);
            break;
        default:
            tile(1, K, a, ldi, panel, c, ldo, bias, m0, m1, m2);
            break;
        }
        r += rows;
    }
}
#endif

/* out[n][o'] (row stride ldo) = in[n][i] (row stride ldi) · W + b[o'], for the first o' ≤ o
 * columns of the packed W [i][o]; b may be NULL. Panels are split among OpenMP threads. */
void k_linear_packed(float *out, size_t ldo, const float *in, size_t ldi, const packed_w *pw,
                     const float *b, size_t n, size_t o_used) {
#if GEMM_X86
    size_t K = pw->i, panels = (o_used + NR - 1) / NR;
    long np = (long)panels;
    /* threads only when each has a few hundred thousand multiply-adds to do */
#pragma omp parallel for if (n * K * o_used > 1048576) schedule(static)
    for (long pn = 0; pn < np; pn++) {
        size_t c0 = (size_t)pn * NR, nc = o_used - c0 < NR ? o_used - c0 : NR;
        panel_rows(out + c0, ldo, in, ldi, n, K, pw->p + (size_t)pn * K * NR, b ? b + c0 : NULL,
                   nc);
    }
#else
    (void)out, (void)ldo, (void)in, (void)ldi, (void)pw, (void)b, (void)n, (void)o_used;
#endif
}
