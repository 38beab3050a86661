/* The model's matrix products on weights packed once, at load.
 *
 * OpenBLAS packs its B operand on every call; for a weight matrix that is the whole matrix,
 * every pass, and at the short inputs attention studies use (n ≤ 128 tokens) the packing costs
 * more than the arithmetic (half of a 16-token MiniLM pass). Here each weight matrix is stored
 * once in the micro-kernels' order, as panels of NR = 48 output columns, and a kernel streams a
 * panel once per call while it stays in L2 for every block of input rows. The attention
 * products (Q·Kᵀ, P·V) pack their right operand per head (a copy of n·d_head floats) and run on
 * the same kernels, so every product of a pass follows one contract.
 *
 * One panel layout for every kernel path, so a model packed once runs on any of them:
 *   generic  portable C, 4-row tiles, multiply then add (two roundings);
 *   avx2     4 rows × 24 columns, or 6 × 16 for narrow products, of AVX2 + FMA (gemm_x86.c);
 *   avx512   8 rows × 48 columns of AVX-512F (gemm_x86.c);
 *   neon     4 rows × 24 columns of aarch64 Advanced SIMD (gemm_neon.c).
 * In avx2, avx512 and neon each output element is one fused multiply-add chain over k in
 * order, starting from the bias (or 0): their results are bit for bit the same, and each row's
 * results are the same whatever tile, batch or thread computed it. */
#include "model_internal.h"

#include <stdlib.h>
#include <string.h>

static int force_off = 0; /* tests: k_gemm_force_fallback */

void k_gemm_force_fallback(int off) {
    force_off = off;
}

int k_gemm_available(void) {
    return !force_off;
}

size_t k_pack_count(size_t i, size_t o) {
    size_t count;
    if (!ats_size_mul((o + K_NR - 1) / K_NR, (size_t)K_NR, &count) ||
        !ats_size_mul(count, i, &count) || count > SIZE_MAX / sizeof(float) / 2)
        return 0;
    return count; /* NR·i floats a panel: a multiple of 16, so every panel stays 64-byte aligned */
}

/* W Linear [o][i] (conv1d = 0) or Conv1D [i][ldw] (first o columns) → panels
 * [ceil(o/NR)][i][NR], column c of the product at panel c / NR, lane c % NR; lanes past o are
 * zero. */
void k_pack_into(packed_w *pw, float *p, const float *w, size_t ldw, size_t i, size_t o,
                 int conv1d) {
    size_t panels = (o + K_NR - 1) / K_NR;
    for (size_t pn = 0; pn < panels; pn++) {
        float *dst = p + pn * i * K_NR;
        size_t c0 = pn * K_NR, nc = o - c0 < K_NR ? o - c0 : K_NR;
        if (conv1d && nc == K_NR) {
            /* three 64-byte copies: one 192-byte memcpy becomes `rep movs`, which takes most
             * of the time of loading a model on AMD Zen */
            for (size_t k = 0; k < i; k++) {
                const float *src = w + k * ldw + c0;
                memcpy(dst + k * K_NR, src, 64);
                memcpy(dst + k * K_NR + 16, src + 16, 64);
                memcpy(dst + k * K_NR + 32, src + 32, 64);
            }
        } else if (conv1d) {
            for (size_t k = 0; k < i; k++) {
                memcpy(dst + k * K_NR, w + k * ldw + c0, nc * sizeof *dst);
                memset(dst + k * K_NR + nc, 0, (K_NR - nc) * sizeof *dst);
            }
        } else {
            /* a transpose: each row of W read once, in order (column by column, the reads
             * strode ldw floats, a cache line each: the attention's Kᵀ of every head, every
             * layer), written down one lane of the panel, which stays in cache */
            for (size_t j = 0; j < nc; j++) {
                const float *src = w + (c0 + j) * ldw;
                for (size_t k = 0; k < i; k++) dst[k * K_NR + j] = src[k];
            }
            for (size_t k = 0; nc < K_NR && k < i; k++)
                memset(dst + k * K_NR + nc, 0, (K_NR - nc) * sizeof *dst);
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

/* ---- portable C: rows in tiles of 4, all NR lanes of a panel row at once (the compiler
 * vectorizes the lane loop for whatever the target has). Multiply and add stay two
 * operations: contracting them into an FMA where the target has one would make this path's
 * results depend on the compiler's choice. */
#if defined(__clang__)
#pragma clang fp contract(off)
#endif

#define GENERIC_MR 4

static void tile_generic(size_t R, size_t K, const float *a, size_t lda, const float *panel,
                         float *c, size_t ldc, const float *bias, size_t nc) {
    float acc[GENERIC_MR][K_NR];
    for (size_t r = 0; r < R; r++)
        for (size_t j = 0; j < K_NR; j++) acc[r][j] = bias && j < nc ? bias[j] : 0.0f;
    for (size_t k = 0; k < K; k++) {
        const float *pk = panel + k * K_NR;
        for (size_t r = 0; r < R; r++) {
            float x = a[r * lda + k];
            float *ar = acc[r];
#pragma omp simd
            for (size_t j = 0; j < K_NR; j++) {
                float prod = x * pk[j];
                ar[j] = ar[j] + prod;
            }
        }
    }
    for (size_t r = 0; r < R; r++) memcpy(c + r * ldc, acc[r], nc * sizeof *c);
}

void k_panel_generic(float *c, size_t ldc, const float *a, size_t lda, const float *panel, size_t n,
                     size_t K, size_t nc, const float *bias) {
    size_t tiles = (n + GENERIC_MR - 1) / GENERIC_MR, r = 0;
    for (size_t t = 0; t < tiles; t++) {
        size_t rows = n / tiles + (t < n % tiles);
        tile_generic(rows, K, a + r * lda, lda, panel, c + r * ldc, ldc, bias, nc);
        r += rows;
    }
}

/* The panel kernel of the path in use. */
static k_panel_fn panel_kernel(void) {
    switch (ats_kernel_path_get()) {
#if K_HAVE_X86
    case ATS_KERNEL_AVX512:
        return k_panel_avx512;
    case ATS_KERNEL_AVX2:
        return k_panel_avx2;
#endif
#if K_HAVE_NEON
    case ATS_KERNEL_NEON:
        return k_panel_neon;
#endif
    default:
        return k_panel_generic;
    }
}

/* out[n][o'] (row stride ldo) = in[n][i] (row stride ldi) · W + b[o'], for the first o' ≤ o
 * columns of the packed W [i][o]; b may be NULL. Panels are split among OpenMP threads. */
void k_linear_packed(float *out, size_t ldo, const float *in, size_t ldi, const packed_w *pw,
                     const float *b, size_t n, size_t o_used) {
    k_panel_fn kernel = panel_kernel();
    size_t K = pw->i, panels = (o_used + K_NR - 1) / K_NR;
    long np = (long)panels;
    /* threads only when each has a few hundred thousand multiply-adds to do */
#pragma omp parallel for if (n * K * o_used > 1048576) schedule(static)
    for (long pn = 0; pn < np; pn++) {
        size_t c0 = (size_t)pn * K_NR, nc = o_used - c0 < K_NR ? o_used - c0 : K_NR;
        kernel(out + c0, ldo, in, ldi, pw->p + (size_t)pn * K * K_NR, n, K, nc, b ? b + c0 : NULL);
    }
}

/* The causal attention's products, where a row r sees only columns j ≤ r (one thread each: the
 * heads run in parallel). Every element that is computed is the same FMA chain as in
 * k_linear_packed, so the results are its results.
 *
 * s[n][n] (row stride lds) = q[n][K] · Kᵀ packed [K][n], at least where j ≤ r: panel p of Kᵀ
 * (columns 48p ..) only for rows 48p .. n-1; entries above are left as they were. */
void k_linear_packed_lower(float *s, size_t lds, const float *q, size_t ldq, const packed_w *kt,
                           size_t n) {
    k_panel_fn kernel = panel_kernel();
    size_t K = kt->i;
    for (size_t c0 = 0; c0 < n; c0 += K_NR) {
        size_t nc = n - c0 < K_NR ? n - c0 : K_NR;
        kernel(s + c0 * lds + c0, lds, q + c0 * ldq, ldq, kt->p + c0 / K_NR * K * K_NR, n - c0, K,
               nc, NULL);
    }
}

/* Rows r0 .. r0+rows-1 of k_linear_packed_lower's s (r0 a multiple of K_NR, rows ≤ K_NR) into
 * s[rows][lds], at least where j ≤ r: the same kernel calls on fewer rows, so the same bits. */
void k_linear_packed_lower_rows(float *s, size_t lds, const float *q, size_t ldq,
                                const packed_w *kt, size_t n, size_t r0, size_t rows) {
    k_panel_fn kernel = panel_kernel();
    size_t K = kt->i;
    for (size_t c0 = 0; c0 < r0 + rows; c0 += K_NR) {
        size_t nc = n - c0 < K_NR ? n - c0 : K_NR;
        kernel(s + c0, lds, q + r0 * ldq, ldq, kt->p + c0 / K_NR * K * K_NR, rows, K, nc, NULL);
    }
}

/* out[n][o] (row stride ldo) = p[n][n] · V packed [n][o], for p lower triangular (p[r][j] = 0
 * for j > r): rows in blocks of 48, each block's sums stopping after k = its last row. The terms
 * left out are products with exact zeros, which leave a finite sum as it is. */
void k_linear_packed_tril(float *out, size_t ldo, const float *p, size_t ldp, const packed_w *v,
                          size_t n, size_t o) {
    for (size_t r0 = 0; r0 < n; r0 += K_NR)
        k_linear_packed_tril_rows(out, ldo, p + r0 * ldp, ldp, v, r0, n - r0 < K_NR ? n - r0 : K_NR,
                                  o);
}

/* One block of k_linear_packed_tril: rows r0 .. r0+rows-1 of out from those rows of p, given as
 * p_rows[rows][ldp] (r0 a multiple of K_NR, rows ≤ K_NR) */
void k_linear_packed_tril_rows(float *out, size_t ldo, const float *p_rows, size_t ldp,
                               const packed_w *v, size_t r0, size_t rows, size_t o) {
    k_panel_fn kernel = panel_kernel();
    for (size_t c0 = 0; c0 < o; c0 += K_NR) {
        size_t nc = o - c0 < K_NR ? o - c0 : K_NR;
        kernel(out + r0 * ldo + c0, ldo, p_rows, ldp, v->p + c0 / K_NR * v->i * K_NR, rows,
               r0 + rows, nc, NULL);
    }
}
