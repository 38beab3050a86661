/* The packed matrix product (src/model/gemm.c) on every kernel path this CPU runs, against a
 * double-precision product, on shapes that exercise every remainder: rows not a multiple of the
 * tiles (8, 6 or 4 rows), columns not a multiple of the 48-column panel or its 24- or 16-column
 * slices, only the first columns wanted, both weight layouts, with and without bias, row strides
 * wider than the rows. The FMA paths (avx2, avx512, neon) must give the same bits, and the causal
 * attention's products the full product's. */
#include "check.h"
#include "model_internal.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 88172645463325252ull;
static float rnd(void) { /* uniform in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* out[n][o_used] against Σ_k in[r][k]·W[k][c] + b[c] in double; the bound is float rounding of
 * a K-term sum: K·2⁻²⁴·Σ|terms| (and a little) */
static int check_case(size_t n, size_t K, size_t o, size_t o_used, int conv1d, int with_bias,
                      size_t pad, int corrupt) {
    size_t ldi = K + pad, ldo = o_used + pad, ldw = conv1d ? o + pad : K;
    float *in = malloc(n * ldi * sizeof *in), *out = malloc(n * ldo * sizeof *out);
    float *w = malloc((conv1d ? K * ldw : o * ldw) * sizeof *w), *b = malloc(o * sizeof *b);
    if (!in || !out || !w || !b) return 1;
    for (size_t i = 0; i < n * ldi; i++) in[i] = rnd();
    for (size_t i = 0; i < (conv1d ? K * ldw : o * ldw); i++) w[i] = rnd();
    for (size_t i = 0; i < o; i++) b[i] = rnd();
    for (size_t i = 0; i < n * ldo; i++) out[i] = 12345.0f; /* padding must stay */
    packed_w pw;
    int bad = 0;
    if (!k_pack(&pw, w, ldw, K, o, conv1d)) return 1;
    if (corrupt) pw.p[(K - 1) * 48] += 0.5f; /* W[K-1][0] off by 0.5 in the packed copy */
    k_linear_packed(out, ldo, in, ldi, &pw, with_bias ? b : NULL, n, o_used);
    if (!corrupt && ats_kernel_path_get() != ATS_KERNEL_GENERIC) {
        /* the same case on the other FMA paths: the same bits */
        ats_kernel_path self = ats_kernel_path_get();
        float *again = malloc(n * ldo * sizeof *again);
        for (int p = 1; again && p < ATS_KERNEL_PATH_COUNT; p++) {
            if (p == (int)self || !ats_kernel_path_supported((ats_kernel_path)p)) continue;
            for (size_t i = 0; i < n * ldo; i++) again[i] = 12345.0f;
            ats_kernel_path_set((ats_kernel_path)p, NULL);
            k_linear_packed(again, ldo, in, ldi, &pw, with_bias ? b : NULL, n, o_used);
            if (memcmp(again, out, n * ldo * sizeof *out)) bad++;
        }
        ats_kernel_path_set(self, NULL);
        free(again);
    }
    for (size_t r = 0; r < n; r++) {
        for (size_t c = 0; c < o_used; c++) {
            double s = with_bias ? b[c] : 0.0, mag = fabs(s);
            for (size_t k = 0; k < K; k++) {
                double wk = conv1d ? w[k * ldw + c] : w[c * ldw + k];
                s += (double)in[r * ldi + k] * wk;
                mag += fabs((double)in[r * ldi + k] * wk);
            }
            double tol = (double)(K + 2) * 6e-8 * mag + 1e-30;
            if (!(fabs(out[r * ldo + c] - s) <= tol)) bad++;
        }
        for (size_t c = o_used; c < ldo; c++)
            if (out[r * ldo + c] != 12345.0f) bad++;
    }
    if (bad && !corrupt)
        fprintf(stderr, "n=%zu K=%zu o=%zu o_used=%zu conv1d=%d bias=%d pad=%zu: %d wrong\n", n, K,
                o, o_used, conv1d, with_bias, pad, bad);
    k_pack_free(&pw);
    free(in), free(out), free(w), free(b);
    return bad;
}

static int one_case(size_t n, size_t K, size_t o, size_t o_used, int conv1d, int with_bias,
                    size_t pad) {
    return check_case(n, K, o, o_used, conv1d, with_bias, pad, 0);
}

/* The causal attention's products (k_linear_packed_lower, k_linear_packed_tril) against the
 * full product: the same bits wherever row r sees column j ≤ r. n tokens, head width dh. */
static int check_causal(size_t n, size_t dh) {
    float *q = malloc(n * dh * sizeof *q), *k = malloc(n * dh * sizeof *k);
    float *s = malloc(n * n * sizeof *s), *full = malloc(n * n * sizeof *full);
    float *v = malloc(n * dh * sizeof *v), *o = malloc(n * dh * sizeof *o);
    float *ofull = malloc(n * dh * sizeof *ofull);
    packed_w kt, vp;
    int bad = 0;
    if (!q || !k || !s || !full || !v || !o || !ofull) return 1;
    for (size_t i = 0; i < n * dh; i++) q[i] = rnd(), k[i] = rnd(), v[i] = rnd();
    if (!k_pack(&kt, k, dh, dh, n, 0) || !k_pack(&vp, v, dh, n, dh, 1)) return 1;
    k_linear_packed(full, n, q, dh, &kt, NULL, n, n);
    k_linear_packed_lower(s, n, q, dh, &kt, n);
    for (size_t r = 0; r < n; r++) bad += memcmp(s + r * n, full + r * n, (r + 1) * sizeof *s) != 0;
    /* p: zero above the diagonal, as softmax leaves a causal row */
    for (size_t r = 0; r < n; r++)
        for (size_t j = 0; j < n; j++) full[r * n + j] = j <= r ? rnd() : 0.0f;
    k_linear_packed(ofull, dh, full, n, &vp, NULL, n, dh);
    k_linear_packed_tril(o, dh, full, n, &vp, n, dh);
    bad += memcmp(o, ofull, n * dh * sizeof *o) != 0;
    k_pack_free(&kt);
    k_pack_free(&vp);
    free(q), free(k), free(s), free(full), free(v), free(o), free(ofull);
    return bad;
}

static void all_cases(void) {
    static const size_t NS[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 33};
    static const size_t KS[] = {1, 3, 32, 100};
    static const size_t OS[] = {1, 7, 8, 9, 16, 17, 23, 24, 25, 31, 32, 33, 47, 48, 49, 96, 130};
    for (size_t a = 0; a < sizeof NS / sizeof *NS; a++)
        for (size_t k = 0; k < sizeof KS / sizeof *KS; k++)
            for (size_t o = 0; o < sizeof OS / sizeof *OS; o++)
                for (int conv1d = 0; conv1d < 2; conv1d++) {
                    size_t n = NS[a], K = KS[k], on = OS[o];
                    CHECK(one_case(n, K, on, on, conv1d, (int)(n + o) % 2, 0) == 0);
                    CHECK(one_case(n, K, on, on, conv1d, 1, 5) == 0);
                    if (on > 1) CHECK(one_case(n, K, on, on / 2 + 1, conv1d, 1, 3) == 0);
                }
    /* the model's shapes: MiniLM's feed-forward, GPT-2's c_attn with q|k only */
    CHECK(one_case(16, 384, 1536, 1536, 0, 1, 0) == 0);
    CHECK(one_case(13, 1536, 384, 384, 0, 1, 0) == 0);
    CHECK(one_case(29, 768, 2304, 1536, 1, 1, 0) == 0);
    /* a head's P·V (32 columns: avx2's 16-column slices) with k in more than one block */
    CHECK(one_case(17, 300, 32, 32, 1, 0, 0) == 0);
    static const size_t CN[] = {1, 5, 47, 48, 49, 100, 130};
    for (size_t a = 0; a < sizeof CN / sizeof *CN; a++) {
        CHECK(check_causal(CN[a], 32) == 0);
        CHECK(check_causal(CN[a], 64) == 0);
    }
    /* the bound is not vacuous: one weight off by 0.5 fails it */
    CHECK(check_case(16, 384, 96, 96, 0, 1, 0, 1) > 0);
    CHECK(check_case(3, 1, 1, 1, 1, 0, 0, 1) > 0);
}

int main(void) {
    CHECK(k_gemm_available());
    for (int p = 0; p < ATS_KERNEL_PATH_COUNT; p++) {
        if (!ats_kernel_path_supported((ats_kernel_path)p)) continue;
        CHECK(ats_kernel_path_set((ats_kernel_path)p, NULL) == ATS_OK);
        fprintf(stderr, "test_gemm: kernel path %s\n", ats_kernel_path_name((ats_kernel_path)p));
        all_cases();
    }
    return check_report("test_gemm");
}
