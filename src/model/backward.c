/* The backward pass of the causal language models (GPT-2 and the Llama family: Llama, Mistral,
 * Qwen2): the gradient of the mean next-token cross-entropy with respect to a gate ξ_h that
 * multiplies each head's output before the output projection, evaluated at ξ = 1 (Michel et al.
 * 2019, "Are Sixteen Heads Really Better than One?"):
 *
 *     ∂L/∂ξ_h = Σ_i <∂L/∂ctx_h[i], ctx_h[i]> = Σ_ij P_h[i][j] · dP_h[i][j],  dP_h = dctx_h · V_gᵀ
 *
 * Only activation gradients are needed, no weight gradients: each linear layer's backward is
 * one product with the transposed weight (dX = dY · Wᵀ), so a backward pass costs about what a
 * forward pass does, plus the recomputation below.
 *
 * Layout, as llm.c: each kernel's backward beside its forward, shapes in the comments. The
 * forward pass is the model's own (ats_model_forward), which keeps the hidden state entering
 * every layer, the attention probabilities and the logits; the backward then walks the layers
 * from the last to the first and recomputes each layer's other activations from its input
 * (checkpointing per layer: memory for one layer's activations, whatever L is) with the same
 * kernels, so the recomputed activations are the forward's bit for bit.
 *
 * The transposed weights are packed once, in the kernels' panel layout (gemm.c), when the
 * backward context is opened, so every product of the backward runs on the same micro-kernels
 * as the forward. */
#include "model_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The transposed layer matrices, packed: pq = Wqkvᵀ [qd+2kvd → d], po = Woᵀ [d → qd],
 * p1 = W1ᵀ (gate|up: [2f → d], else [f → d]), p2 = W2ᵀ [d → f]. */
typedef struct layer_t {
    packed_w pq, po, p1, p2;
} layer_t;

struct ats_backward {
    ats_model *m;
    layer_t *layers; /* [L] */
};

/* Panels of W [i][o] (packed_w: p[ceil(o/NR)][i][NR], W[k][c] at panel c/NR, row k, lane c%NR)
 * → panels of Wᵀ [o][i] in the same layout, so that k_linear_packed(out, .., dy, .., &t, ..)
 * computes out[n][i] = dy[n][o] · Wᵀ. 0: no memory. */
static int pack_transposed(const packed_w *w, packed_w *t) {
    size_t i = w->i, o = w->o, count = k_pack_count(o, i);
    t->p = NULL;
    if (!count) return 0;
    float *p = aligned_alloc(64, (count * sizeof(float) + 63) / 64 * 64);
    if (!p) return 0;
    size_t panels = (i + K_NR - 1) / K_NR;
    for (size_t pn = 0; pn < panels; pn++) {
        float *dst = p + pn * o * K_NR;
        size_t k0 = pn * K_NR, nk = i - k0 < K_NR ? i - k0 : K_NR;
        for (size_t c = 0; c < o; c++) {
            const float *src = w->p + (c / K_NR) * i * K_NR + c % K_NR;
            for (size_t j = 0; j < nk; j++) dst[c * K_NR + j] = src[(k0 + j) * K_NR];
            for (size_t j = nk; j < K_NR; j++) dst[c * K_NR + j] = 0.0f;
        }
    }
    t->p = p;
    t->i = o;
    t->o = i;
    return 1;
}

void ats_backward_close(ats_backward *b) {
    if (!b) return;
    for (size_t l = 0; b->layers && l < (size_t)b->m->info.n_layers; l++) {
        k_pack_free(&b->layers[l].pq);
        k_pack_free(&b->layers[l].po);
        k_pack_free(&b->layers[l].p1);
        k_pack_free(&b->layers[l].p2);
    }
    free(b->layers);
    free(b);
}

ats_status ats_backward_open(ats_model *m, ats_backward **out, ats_error *err) {
    *out = NULL;
    const ats_model_info *mi = &m->info;
    int arch_ok = mi->arch == ATS_ARCH_GPT2 || mi->arch == ATS_ARCH_LLAMA ||
                  mi->arch == ATS_ARCH_MISTRAL || mi->arch == ATS_ARCH_QWEN2;
    if (!arch_ok || !mi->causal || !m->pre_ln || m->parallel_residual || m->mlm_transform)
        return ats_model_fail(m, err, ATS_ERR_INVALID,
                              "%s: the backward pass covers GPT-2, Llama, Mistral and Qwen2, not "
                              "%s",
                              m->dir, mi->model_type);
    if (!mi->has_lm_head || !m->lm_dec)
        return ats_model_fail(m, err, ATS_ERR_INVALID,
                              "%s: the checkpoint has no language-model head (the loss needs one)",
                              m->dir);
    size_t L = (size_t)mi->n_layers;
    for (size_t l = 0; l < L; l++)
        if (!m->layers[l].pq.p || !m->layers[l].po.p || !m->layers[l].p1.p || !m->layers[l].p2.p)
            return ats_model_fail(m, err, ATS_ERR_NOMEM,
                                  "%s: the backward pass needs the packed weights, which found no "
                                  "memory at load",
                                  m->dir);
    ats_backward *b = calloc(1, sizeof *b);
    if (b) b->layers = calloc(L ? L : 1, sizeof *b->layers);
    int ok = b && b->layers;
    if (ok) b->m = m;
    for (size_t l = 0; ok && l < L; l++) {
        const layer_weights *lw = &m->layers[l];
        layer_t *t = &b->layers[l];
        ok = pack_transposed(&lw->pq, &t->pq) && pack_transposed(&lw->po, &t->po) &&
             pack_transposed(&lw->p1, &t->p1) && pack_transposed(&lw->p2, &t->p2);
    }
    if (!ok) {
        ats_backward_close(b);
        return ats_model_fail(m, err, ATS_ERR_NOMEM, "%s: out of memory for the transposed weights",
                              m->dir);
    }
    *out = b;
    return ATS_OK;
}

/* ---- layer norms */

/* forward: y[n][d] = LayerNorm(x) · w + b (k_layernorm) or x / rms(x) · w (k_rmsnorm)
 * backward: dx[n][d] += ∂y/∂x · dy[n][d] (in double per row):
 *   LayerNorm: dx = (g − mean(g) − x̂ · mean(g · x̂)) / σ with g = dy · w, x̂ = (x − μ) / σ
 *   RMSNorm:   dx = g · r − x · r³ · mean(g · x) with r = 1 / √(mean(x²) + eps) */
static void norm_backward(const ats_model *m, float *dx, const float *dy, const float *x,
                          const float *w, size_t n, size_t d) {
    double eps = (double)m->info.eps;
    int rms = m->rmsnorm;
    long rows = (long)n;
#pragma omp parallel for if (n * d > 32768) schedule(static)
    for (long r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * d, *gr = dy + (size_t)r * d;
        float *dr = dx + (size_t)r * d;
        double mean = 0, var = 0, sg = 0, sgx = 0;
        if (!rms)
            for (size_t c = 0; c < d; c++) mean += xr[c];
        mean = rms ? 0.0 : mean / (double)d;
        for (size_t c = 0; c < d; c++) var += (xr[c] - mean) * (xr[c] - mean);
        double rstd = 1.0 / sqrt(var / (double)d + eps);
        for (size_t c = 0; c < d; c++) {
            double g = (double)gr[c] * w[c], xh = (xr[c] - mean) * rstd;
            sg += g;
            sgx += g * xh;
        }
        sg /= (double)d;
        sgx /= (double)d;
        for (size_t c = 0; c < d; c++) {
            double g = (double)gr[c] * w[c], xh = (xr[c] - mean) * rstd;
            /* RMSNorm: x·r³·mean(g·x) = x̂ · r · mean(g · x̂), and no mean(g) term */
            dr[c] += (float)(rstd * (g - (rms ? 0.0 : sg) - xh * sgx));
        }
    }
}

static void norm_forward(const ats_model *m, float *y, const float *x, const float *w,
                         const float *b, size_t n, size_t d) {
    if (m->rmsnorm)
        k_rmsnorm(y, x, w, n, d, m->info.eps);
    else
        k_layernorm(y, x, w, b, n, d, m->info.eps);
}

/* ---- activations */

/* forward: y = act(u) (k_activation); backward: du[count] = dy · act'(u) in place on dy */
static double act_slope(act_kind act, double u) {
    switch (act) {
    case ACT_GELU:
        return 0.5 * (1.0 + erf(u * 0.7071067811865476)) +
               u * exp(-0.5 * u * u) * 0.3989422804014327;
    case ACT_GELU_TANH: {
        double c = 0.7978845608028654, a = 0.044715, t = tanh(c * (u + a * u * u * u));
        return 0.5 * (1.0 + t) + 0.5 * u * (1.0 - t * t) * c * (1.0 + 3.0 * a * u * u);
    }
    case ACT_RELU:
        return u > 0.0 ? 1.0 : 0.0;
    case ACT_SILU: {
        double s = 1.0 / (1.0 + exp(-u));
        return s * (1.0 + u * (1.0 - s));
    }
    case ACT_GELU_QUICK: {
        double s = 1.0 / (1.0 + exp(-1.702 * u));
        return s * (1.0 + 1.702 * u * (1.0 - s));
    }
    }
    return 0.0;
}

/* act(u) itself, for SwiGLU's up branch with another activation than silu */
static double act_gate(act_kind act, double u) {
    switch (act) {
    case ACT_GELU:
        return 0.5 * u * (1.0 + erf(u * 0.7071067811865476));
    case ACT_GELU_TANH:
        return 0.5 * u * (1.0 + tanh(0.7978845608028654 * (u + 0.044715 * u * u * u)));
    case ACT_RELU:
        return u > 0.0 ? u : 0.0;
    case ACT_SILU:
        return u / (1.0 + exp(-u));
    case ACT_GELU_QUICK:
        return u / (1.0 + exp(-1.702 * u));
    }
    return 0.0;
}

/* dff[n][f] (row stride ld) ← dff · act'(u), u[n][f] (row stride ldu) the pre-activation */
static void act_backward(float *dff, size_t ld, const float *u, size_t ldu, size_t n, size_t f,
                         act_kind act) {
    long rows = (long)n;
#pragma omp parallel for if (n * f > 32768) schedule(static)
    for (long r = 0; r < rows; r++)
        for (size_t c = 0; c < f; c++)
            dff[(size_t)r * ld + c] *= (float)act_slope(act, u[(size_t)r * ldu + c]);
}

/* SwiGLU. forward: h[n][f] = act(gate) · up with gu[n][2f] = gate | up (k_gated)
 * backward: dgu[n][2f] = dh · up · act'(gate) | dh · act(gate), from dh = dgu[:, :f] (in
 * place) and the pre-activation gate[n][f] with up = gu[:, f:] */
static void gated_backward(float *dgu, const float *gate, const float *gu, size_t n, size_t f,
                           act_kind act) {
    long rows = (long)n;
#pragma omp parallel for if (n * f > 32768) schedule(static)
    for (long r = 0; r < rows; r++) {
        float *dg = dgu + (size_t)r * 2 * f, *du = dg + f;
        const float *g = gate + (size_t)r * f, *up = gu + (size_t)r * 2 * f + f;
        for (size_t c = 0; c < f; c++) {
            double dh = dg[c], u = g[c];
            if (act == ACT_SILU) { /* one exponential for act and act' */
                double sg = 1.0 / (1.0 + exp(-u));
                dg[c] = (float)(dh * up[c] * sg * (1.0 + u * (1.0 - sg)));
                du[c] = (float)(dh * u * sg);
            } else {
                dg[c] = (float)(dh * up[c] * act_slope(act, u));
                du[c] = (float)(dh * act_gate(act, u));
            }
        }
    }
}

/* ---- the language-model loss */

/* forward: logits[n][V] = h[n][d] · decᵀ, L = mean over i < n−1 of −log softmax(logits[i])[y],
 * y = ids[i + 1] (lm_head and lm_loss in forward.c)
 * backward: dlogits[n][V] = (softmax(logits[i]) − onehot(y)) / (n − 1), row n−1 zero (in place
 * on logits); dh[n][d] = dlogits · dec, dec [V][d] through OpenBLAS as the forward's product */
static void loss_backward(const ats_model *m, float *logits, const int32_t *ids, size_t n,
                          float *dh) {
    size_t V = (size_t)m->info.vocab_size, d = (size_t)m->info.d_model;
    double inv = 1.0 / (double)(n - 1);
    long rows = (long)n;
#pragma omp parallel for schedule(static)
    for (long r = 0; r < rows; r++) {
        float *row = logits + (size_t)r * V;
        if ((size_t)r + 1 == n) {
            memset(row, 0, V * sizeof *row);
            continue;
        }
        double mx = -INFINITY, s = 0.0;
        for (size_t c = 0; c < V; c++) mx = row[c] > mx ? row[c] : mx;
        for (size_t c = 0; c < V; c++) { /* one exponential an entry: V is large */
            double e = exp((double)row[c] - mx);
            row[c] = (float)e;
            s += e;
        }
        float scale = (float)(inv / s);
        for (size_t c = 0; c < V; c++) row[c] *= scale;
        row[ids[r + 1]] -= (float)inv;
    }
    k_linear_ld(dh, d, logits, m->lm_dec, d, NULL, n, V, d, 1);
}

/* ---- attention */

/* The scale of the scores, as forward.c's attention() */
static float attn_scale(const ats_model *m, size_t l) {
    size_t dh = (size_t)m->info.d_head;
    float scale = 1.0f;
    if (m->info.arch != ATS_ARCH_GPT2 || m->scale_attn) scale = 1.0f / sqrtf((float)dh);
    if (m->rotary_dim) scale = (float)(1.0 / sqrt((double)dh));
    if (m->scale_by_layer) scale /= (float)(l + 1);
    return scale;
}

/* t[n][n] = aᵀ for a[n][n] */
static void transpose(float *t, const float *a, size_t n) {
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) t[j * n + i] = a[i * n + j];
}

/* Scratch of one key/value group: dP [n][n], a transposed [n][n], a packed operand, a product
 * [n][dh]. */
typedef struct group_scratch {
    float *dp, *tr, *pack, *tmp;
} group_scratch;

/* forward (forward.c attention(), with probs P from the forward pass):
 *   S_h = scale · Q_h K_gᵀ (masked), P_h = softmax(S_h) [n][n], ctx_h = ξ_h · P_h V_g [n][dh]
 * backward, for the query heads h of key/value group g, from dctx [n][qd]:
 *   dP_h = dctx_h · V_gᵀ [n][n];  ∂L/∂ξ_h = Σ_ij P_h ⊙ dP_h
 *   dV_g += P_hᵀ · dctx_h;  dS_h = P_h ⊙ (dP_h − rowsum(P_h ⊙ dP_h)) · scale
 *   dQ_h = dS_h · K_g;  dK_g += dS_hᵀ · Q_h
 * q, k, v: [n][ld] (rotated q and k); dq, dk, dv: [n][ld], written (not accumulated). */
static void attention_backward(const float *probs, const float *q, const float *k, const float *v,
                               size_t ld, const float *dctx, size_t ldc, float *dq, float *dk,
                               float *dv, size_t n, size_t H, size_t Hkv, size_t dh, float scale,
                               group_scratch *gs, double *gate) {
    size_t group = H / Hkv, nn = n * n;
    long groups = (long)Hkv;
#pragma omp parallel for schedule(static) if (H * nn * dh > 16384)
    for (long gg = 0; gg < groups; gg++) {
        size_t g = (size_t)gg;
        group_scratch *s = &gs[g];
        packed_w pw;
        for (size_t r = 0; r < n; r++) {
            memset(dk + r * ld + g * dh, 0, dh * sizeof *dk);
            memset(dv + r * ld + g * dh, 0, dh * sizeof *dv);
        }
        for (size_t h = g * group; h < (g + 1) * group; h++) {
            const float *p = probs + h * nn;
            /* dP_h[n][n] = dctx_h[n][dh] · V_gᵀ: V_g [n][dh] is a Linear [o][i] */
            k_pack_into(&pw, s->pack, v + g * dh, ld, dh, n, 0);
            k_linear_packed(s->dp, n, dctx + h * dh, ldc, &pw, NULL, n, n);
            double gh = 0.0;
            for (size_t i = 0; i < n; i++) {
                const float *pr = p + i * n;
                float *dr = s->dp + i * n;
                double rs = 0.0;
                for (size_t j = 0; j < n; j++) rs += (double)pr[j] * dr[j];
                gh += rs;
                for (size_t j = 0; j < n; j++) dr[j] = (float)(pr[j] * (dr[j] - rs)) * scale;
            }
            gate[h] = gh;
            /* dV_g += P_hᵀ[n][n] · dctx_h[n][dh]: dctx_h is a Conv1D [i][o] */
            transpose(s->tr, p, n);
            k_pack_into(&pw, s->pack, dctx + h * dh, ldc, n, dh, 1);
            k_linear_packed(s->tmp, dh, s->tr, n, &pw, NULL, n, dh);
            for (size_t r = 0; r < n; r++) k_add(dv + r * ld + g * dh, s->tmp + r * dh, dh);
            /* dQ_h = dS_h[n][n] · K_g[n][dh] */
            k_pack_into(&pw, s->pack, k + g * dh, ld, n, dh, 1);
            k_linear_packed(dq + h * dh, ld, s->dp, n, &pw, NULL, n, dh);
            /* dK_g += dS_hᵀ · Q_h[n][dh] */
            transpose(s->tr, s->dp, n);
            k_pack_into(&pw, s->pack, q + h * dh, ld, n, dh, 1);
            k_linear_packed(s->tmp, dh, s->tr, n, &pw, NULL, n, dh);
            for (size_t r = 0; r < n; r++) k_add(dk + r * ld + g * dh, s->tmp + r * dh, dh);
        }
    }
}

/* out[n][o] = in[n][i] · W + b through the packed W (forward) */
static void linear(float *out, size_t ldo, const float *in, size_t ldi, const packed_w *w,
                   const float *b, size_t n) {
    k_linear_packed(out, ldo, in, ldi, w, b, n, w->o);
}

/* ---- the pass */

/* Scratch of one backward pass over n tokens. */
typedef struct bwork {
    float *t;         /* [n][d] norm output */
    float *qkv;       /* [n][wqkv] q|k|v (rotated) */
    float *ctx;       /* [n][qd] heads' outputs */
    float *x2;        /* [n][d] residual after attention */
    float *ff;        /* [n][f1] MLP hidden (gated: gate|up, then act(gate)·up in the first f) */
    float *pre;       /* [n][f] pre-activation (gated: gate) */
    float *dx;        /* [n][d] gradient of the residual stream */
    float *dt;        /* [n][d] gradient of a norm output / of the final hidden state */
    float *dff;       /* [n][f1] */
    float *dctx;      /* [n][qd] */
    float *dqkv;      /* [n][wqkv] */
    float *cos, *sin; /* [n][rot/2] rotary tables of positions 0..n-1 */
    float *nsin;      /* [n][rot/2] −sin: the inverse rotation */
    float *arena;
    group_scratch *gs; /* [Hkv] */
} bwork;

static int bwork_alloc(const ats_model *m, size_t n, bwork *w) {
    const ats_model_info *mi = &m->info;
    size_t d = (size_t)mi->d_model, f = (size_t)mi->d_ff, dh = (size_t)mi->d_head,
           H = (size_t)mi->n_heads, Hkv = (size_t)mi->n_kv_heads, qd = H * dh,
           wqkv = qd + 2 * Hkv * dh, f1 = m->gated_mlp ? 2 * f : f,
           half = (size_t)m->rotary_dim / 2;
    size_t pk =
        k_pack_count(dh, n) > k_pack_count(n, dh) ? k_pack_count(dh, n) : k_pack_count(n, dh);
    /* sizes of every array in floats, each rounded up to 16 (64-byte alignment) */
    size_t sizes[] = {n * d,  n * wqkv, n * qd,   n * d,    n * f1,   n * f, n * d, n * d, n * f1,
                      n * qd, n * wqkv, n * half, n * half, n * half, n * n, n * n, pk,    n * dh};
    size_t nfix = 14, per_group = 0, total = 0;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        size_t s = (sizes[i] + 15) / 16 * 16;
        if (i < nfix)
            total += s;
        else
            per_group += s;
    }
    size_t all;
    if (!pk || !ats_size_mul(per_group, Hkv, &all) || !ats_size_add(all, total, &all) ||
        all > SIZE_MAX / sizeof(float) / 2)
        return 0;
    w->arena = aligned_alloc(64, all * sizeof(float));
    w->gs = calloc(Hkv, sizeof *w->gs);
    if (!w->arena || !w->gs) return 0;
    float *p = w->arena;
    float **fix[] = {&w->t,  &w->qkv, &w->ctx,  &w->x2,   &w->ff,  &w->pre, &w->dx,
                     &w->dt, &w->dff, &w->dctx, &w->dqkv, &w->cos, &w->sin, &w->nsin};
    for (size_t i = 0; i < nfix; i++) {
        *fix[i] = p;
        p += (sizes[i] + 15) / 16 * 16;
    }
    for (size_t g = 0; g < Hkv; g++) {
        float **gp[] = {&w->gs[g].dp, &w->gs[g].tr, &w->gs[g].pack, &w->gs[g].tmp};
        for (size_t i = 0; i < 4; i++) {
            *gp[i] = p;
            p += (sizes[nfix + i] + 15) / 16 * 16;
        }
    }
    for (size_t r = 0; r < n; r++)
        for (size_t i = 0; i < half; i++) {
            float a = (float)r * m->inv_freq[i];
            w->cos[r * half + i] = cosf(a);
            w->sin[r * half + i] = sinf(a);
            w->nsin[r * half + i] = -w->sin[r * half + i];
        }
    return 1;
}

/* Recomputes layer l's activations from its input x [n][d] (the forward's hidden state l)
 * with the forward's kernels and order; last: also x3 = x2 + mlp into *x3 [n][d]. */
static void layer_forward(const ats_model *m, size_t l, const float *x, const float *probs,
                          size_t n, bwork *w, float *x3) {
    const ats_model_info *mi = &m->info;
    const layer_weights *lw = &m->layers[l];
    size_t d = (size_t)mi->d_model, f = (size_t)mi->d_ff, dh = (size_t)mi->d_head,
           H = (size_t)mi->n_heads, Hkv = (size_t)mi->n_kv_heads, qd = H * dh, kvd = Hkv * dh,
           wqkv = qd + 2 * kvd, group = H / Hkv, nn = n * n;
    norm_forward(m, w->t, x, lw->ln1_w, lw->ln1_b, n, d);
    linear(w->qkv, wqkv, w->t, d, &lw->pq, lw->bqkv, n); /* qkv[n][wqkv] */
    float *q = w->qkv, *k = q + qd, *v = k + kvd;
    if (m->rotary_dim) {
        size_t rot = (size_t)m->rotary_dim;
        k_rotary(q, wqkv, n, H, dh, rot, w->cos, w->sin);
        k_rotary(k, wqkv, n, Hkv, dh, rot, w->cos, w->sin);
    }
    long groups = (long)Hkv;
#pragma omp parallel for schedule(static) if (H * nn * dh > 16384)
    for (long gg = 0; gg < groups; gg++) { /* ctx_h[n][dh] = P_h[n][n] · V_g[n][dh] */
        size_t g = (size_t)gg;
        packed_w vp;
        k_pack_into(&vp, w->gs[g].pack, v + g * dh, wqkv, n, dh, 1);
        for (size_t h = g * group; h < (g + 1) * group; h++)
            k_linear_packed(w->ctx + h * dh, qd, probs + h * nn, n, &vp, NULL, n, dh);
    }
    linear(w->x2, d, w->ctx, qd, &lw->po, lw->bo, n); /* x2 = x + ctx · Wo + bo */
    k_add(w->x2, x, n * d);
    /* the forward adds attn to x (x += t): same sum, other operand order, same bits */
    norm_forward(m, w->t, w->x2, lw->ln2_w, lw->ln2_b, n, d);
    if (m->gated_mlp) {
        linear(w->ff, 2 * f, w->t, d, &lw->p1, lw->bgu, n);
        for (size_t r = 0; r < n; r++) memcpy(w->pre + r * f, w->ff + r * 2 * f, f * sizeof(float));
        k_gated(w->ff, n, f, m->act);
    } else {
        linear(w->ff, f, w->t, d, &lw->p1, lw->b1, n);
        memcpy(w->pre, w->ff, n * f * sizeof(float));
        k_activation(w->ff, n * f, m->act);
    }
    if (x3) {
        k_linear_packed(x3, d, w->ff, m->gated_mlp ? 2 * f : f, &lw->p2, lw->b2, n, d);
        k_add(x3, w->x2, n * d);
    }
}

/* Layer l's backward: w->dx [n][d] holds ∂L/∂(layer output) and receives ∂L/∂(layer input)
 * (not computed for layer 0, whose input gradient nothing needs); gate[H] ← ∂L/∂ξ. */
static void layer_backward(const ats_model *m, const ats_backward *b, size_t l, const float *x,
                           const float *probs, size_t n, bwork *w, double *gate) {
    const ats_model_info *mi = &m->info;
    const layer_weights *lw = &m->layers[l];
    const layer_t *lt = &b->layers[l];
    size_t d = (size_t)mi->d_model, f = (size_t)mi->d_ff, dh = (size_t)mi->d_head,
           H = (size_t)mi->n_heads, Hkv = (size_t)mi->n_kv_heads, qd = H * dh, kvd = Hkv * dh,
           wqkv = qd + 2 * kvd, f1 = m->gated_mlp ? 2 * f : f;
    /* MLP: dff[n][f] = dx · W2ᵀ, through the activation, dt = dff · W1ᵀ, dx += norm2ᵀ(dt) */
    k_linear_packed(w->dff, f1, w->dx, d, &lt->p2, NULL, n, f);
    if (m->gated_mlp)
        gated_backward(w->dff, w->pre, w->ff, n, f, m->act);
    else
        act_backward(w->dff, f, w->pre, f, n, f, m->act);
    linear(w->dt, d, w->dff, f1, &lt->p1, NULL, n);
    norm_backward(m, w->dx, w->dt, w->x2, lw->ln2_w, n, d);
    /* attention: dctx[n][qd] = dx · Woᵀ, then the heads */
    linear(w->dctx, qd, w->dx, d, &lt->po, NULL, n);
    float *q = w->qkv, *dq = w->dqkv;
    attention_backward(probs, q, q + qd, q + qd + kvd, wqkv, w->dctx, qd, dq, dq + qd,
                       dq + qd + kvd, n, H, Hkv, dh, attn_scale(m, l), w->gs, gate);
    if (l == 0) return;
    if (m->rotary_dim) { /* the rotation's transpose: by −angle */
        size_t rot = (size_t)m->rotary_dim;
        k_rotary(dq, wqkv, n, H, dh, rot, w->cos, w->nsin);
        k_rotary(dq + qd, wqkv, n, Hkv, dh, rot, w->cos, w->nsin);
    }
    /* dt[n][d] = dqkv · Wqkvᵀ, dx += norm1ᵀ(dt) */
    linear(w->dt, d, w->dqkv, wqkv, &lt->pq, NULL, n);
    norm_backward(m, w->dx, w->dt, x, lw->ln1_w, n, d);
}

ats_status ats_backward_run(ats_backward *b, const ats_model_input *in, int n_threads, float *grad,
                            double *loss, ats_error *err) {
    ats_model *m = b->m;
    const ats_model_info *mi = &m->info;
    size_t L = (size_t)mi->n_layers, H = (size_t)mi->n_heads, d = (size_t)mi->d_model;
    if (in->n < 2)
        return ats_model_fail(m, err, ATS_ERR_INVALID,
                              "%s: the next-token loss needs at least 2 tokens (got %zu)", m->dir,
                              in->n);
    ats_model_input fin = *in;
    fin.labels = in->ids; /* next-token targets: the forward shifts them by one */
    fin.token_type_ids = NULL;
    ats_forward_options fo;
    ats_forward_options_init(&fo);
    fo.capture = ATS_CAPTURE_ATTENTION | ATS_CAPTURE_HIDDEN | ATS_CAPTURE_LOGITS;
    fo.n_threads = n_threads;
    ats_forward_result res;
    ats_status st = ats_model_forward(m, &fin, &fo, &res, err);
    if (st) return st;
    size_t n = res.n_tokens, nn = n * n;
    bwork w = {0};
    double *gate = malloc(H * sizeof *gate);
    float *x3 = malloc(n * d * sizeof *x3);
    if (!gate || !x3 || !bwork_alloc(m, n, &w)) {
        st = ats_model_fail(m, err, ATS_ERR_NOMEM,
                            "%s: out of memory for the backward pass of "
                            "%zu tokens",
                            m->dir, n);
        goto done;
    }
    /* the final norm: dt = ∂L/∂(final hidden state), then dx = normfᵀ(dt) at the last layer's
     * output x3, which the recomputation of the last layer gives */
    loss_backward(m, res.logits, in->ids, n, w.dt);
    for (size_t l = L; l-- > 0;) {
        const float *x = res.hidden + l * n * d, *probs = res.attention + l * H * nn;
        layer_forward(m, l, x, probs, n, &w, l + 1 == L ? x3 : NULL);
        if (l + 1 == L) {
            memset(w.dx, 0, n * d * sizeof *w.dx);
            norm_backward(m, w.dx, w.dt, x3, m->lnf_w, n, d);
        }
        layer_backward(m, b, l, x, probs, n, &w, gate);
        for (size_t h = 0; h < H; h++) grad[l * H + h] = (float)gate[h];
    }
    if (loss) *loss = res.loss;
done:
    free(w.arena);
    free(w.gs);
    free(gate);
    free(x3);
    ats_forward_result_free(&res);
    return st;
}
