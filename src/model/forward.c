/* The forward pass of every architecture: embeddings, encoder/decoder layers with explicit
 * attention probabilities, the language-model head and its loss. Follows transformers' eager
 * code path operation by operation (same order of additions where it matters). */
#define _DEFAULT_SOURCE /* madvise(MADV_HUGEPAGE) */
#include "model_internal.h"

#include "attnscope/vision.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void ats_forward_options_init(ats_forward_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->capture = ATS_CAPTURE_ATTENTION;
}

void ats_forward_result_free(ats_forward_result *res) {
    if (!res) return;
    free(res->attention);
    free(res->scores);
    free(res->hidden);
    free(res->logits);
    free(res->context);
    memset(res, 0, sizeof *res);
    res->loss = NAN;
}

/* The longest token sequence the position table allows. */
static size_t max_tokens(const ats_model *m) {
    return (size_t)m->info.max_positions;
}

/* Scratch buffers of one forward pass. */
typedef struct work {
    float *x;         /* [n][d] residual stream */
    float *t;         /* [n][d] layer-norm output / attention output */
    float *q;         /* [n][qd + 2·kvd] q|k|v, or q [n][qd] alone (qd = H·dh, kvd = Hkv·dh) */
    float *k, *v;     /* [n][kvd] each (unpacked weights) */
    float *ctx;       /* [n][max(qd, d)] */
    float *ff;        /* [n][f], a gated MLP's gate|up [n][2f] */
    float *cos, *sin; /* [max_n][rotary_dim / 2] rotary tables of positions 0..max_n-1 */
    float *att;       /* [H][n][n] for heads whose probabilities are needed whole but not kept */
    float *pack;      /* [H][head_pack_floats(n, dh)] the attention products' packed operands */
    float *rows;      /* [H][K_NR][n] causal heads not kept, a block of rows at a time */
    float **probs, **scores; /* [H] where each head of the layer running goes (attention()) */
} work;

static void work_free(work *w) {
    free(w->x);
    free(w->t);
    free(w->q);
    free(w->k);
    free(w->v);
    free(w->ctx);
    free(w->ff);
    free(w->att);
    free(w->pack);
    free(w->rows);
    free(w->probs);
    free(w->scores);
    free(w->cos);
    free(w->sin);
}

static float *alloc_floats(size_t a, size_t b, size_t c, int *ok) {
    size_t n;
    if (!*ok || !ats_size_mul(a, b, &n) || !ats_size_mul(n, c, &n) ||
        !ats_size_mul(n, sizeof(float), &n)) {
        *ok = 0;
        return NULL;
    }
    float *p = NULL;
#ifdef MADV_HUGEPAGE
    /* large arrays (the attention of a long input is tens of MB) on transparent huge pages:
     * one fault per 2 MB instead of per 4 kB page; still released with free() */
    const size_t huge = (size_t)2 << 20;
    if (n >= 2 * huge && n <= SIZE_MAX - huge) {
        if (posix_memalign((void **)&p, huge, (n + huge - 1) / huge * huge) == 0)
            madvise(p, (n + huge - 1) / huge * huge, MADV_HUGEPAGE);
        else
            p = NULL;
    }
#endif
    /* 64-byte aligned: the packed kernels load panels with aligned vector loads */
    if (!p && posix_memalign((void **)&p, 64, n ? n : 1) != 0) p = NULL;
    if (!p) *ok = 0;
    return p;
}

/* 1 when the model's layers run on packed weights (OpenBLAS then runs on one thread) */
static int packed(const ats_model *m) {
    return m->info.n_layers > 0 && m->layers[0].pq.p != NULL;
}

/* Floats of one head's packed operands for n tokens: Kᵀ [dh][n] and V [n][dh] as panels */
static size_t head_pack_floats(size_t n, size_t dh) {
    size_t a = k_pack_count(dh, n), b = k_pack_count(n, dh), sum;
    return a && b && ats_size_add(a, b, &sum) ? sum : 0;
}

/* The causal mask and scale of rows r0 .. r0+nr-1 of one head's scores, given as s[nr][n] */
static void causal_rows(float *s, size_t n, size_t r0, size_t nr, size_t window, float scale) {
    for (size_t i = r0; i < r0 + nr; i++) {
        float *row = s + (i - r0) * n;
        /* and of those only i-window+1..i (transformers' sliding_window_overlay) */
        size_t j0 = window && i >= window ? i - window + 1 : 0;
        for (size_t j = 0; j < j0; j++) row[j] = -INFINITY;
        for (size_t j = j0; j <= i; j++) row[j] *= scale;
        for (size_t j = i + 1; j < n; j++) row[j] = -INFINITY;
    }
}

/* One self-attention block for layer l. q: [n][ldq] with query head h at columns h·dh; k, v:
 * [n][ldkv] with key/value head g at columns g·dh, query head h reading g = h / (H / Hkv)
 * (grouped-query attention; g = h without it); probs[h]: [n][n] receives head h's
 * probabilities, scores[h] (NULL: not kept) its pre-softmax scores; a head whose probs[h] is
 * NULL (a causal model's head whose attention is not kept) runs in blocks of K_NR rows in
 * rows_buf + h·K_NR·n, so that a long input never holds its [n][n]; ctx: [n][H·dh] the heads'
 * outputs side by side; pack: [H][head_pack_floats(n, dh)], 64-byte aligned, scratch. Both
 * products run on the packed kernels (gemm.c), so they follow the kernel path's contract whether
 * or not the weights are packed, and a head gives the same bits in blocks or whole; the heads
 * run in parallel. */
static void attention(const ats_model *m, int l, const float *q, size_t ldq, const float *k,
                      const float *v, size_t ldkv, size_t n, float *const *probs,
                      float *const *scores, float *ctx, const float *head_mask, int need_ctx,
                      float *pack, float *rows_buf) {
    const ats_model_info *mi = &m->info;
    size_t H = (size_t)mi->n_heads, dh = (size_t)mi->d_head, nn = n * n;
    size_t group = H / (size_t)mi->n_kv_heads, ldc = H * dh;
    size_t per_head = head_pack_floats(n, dh), kt_floats = k_pack_count(dh, n);
    size_t window = (size_t)m->layers[l].window;
    float scale = 1.0f;
    if (m->info.arch != ATS_ARCH_GPT2 || m->scale_attn) scale = 1.0f / sqrtf((float)dh);
    /* the decoders scale by head_dim ** -0.5, rounded once */
    if (m->rotary_dim) scale = (float)(1.0 / sqrt((double)dh));
    if (m->scale_by_layer) scale /= (float)(l + 1);
    long heads = (long)H;
#pragma omp parallel for schedule(static) if (H * nn * dh > 16384)
    for (long hh = 0; hh < heads; hh++) {
        size_t h = (size_t)hh, g = h / group;
        float *p = probs[h];
        float hm = head_mask ? head_mask[(size_t)l * H + h] : 1.0f;
        packed_w kt, vp;
        /* S_h[n][n] = scale · (Q_h[n][dh] · K_gᵀ[dh][n]): K_g [n][dh] is a Linear [o][i] */
        k_pack_into(&kt, pack + h * per_head, k + g * dh, ldkv, dh, n, 0);
        /* V_g is a Conv1D [i][o] */
        if (need_ctx) k_pack_into(&vp, pack + h * per_head + kt_floats, v + g * dh, ldkv, n, dh, 1);
        if (!p) { /* causal, not kept: K_NR rows at a time */
            float *blk = rows_buf + h * K_NR * n;
            for (size_t r0 = 0; r0 < n; r0 += K_NR) {
                size_t nr = n - r0 < K_NR ? n - r0 : K_NR;
                k_linear_packed_lower_rows(blk, n, q + h * dh, ldq, &kt, n, r0, nr);
                causal_rows(blk, n, r0, nr, window, scale);
                k_softmax_rows(blk, nr, n);
                if (hm != 1.0f)
                    for (size_t e = 0; e < nr * n; e++) blk[e] *= hm;
                if (need_ctx) k_linear_packed_tril_rows(ctx + h * dh, ldc, blk, n, &vp, r0, nr, dh);
            }
            continue;
        }
        if (mi->causal) { /* row i sees keys 0..i: the products above the diagonal are skipped */
            k_linear_packed_lower(p, n, q + h * dh, ldq, &kt, n);
            causal_rows(p, n, 0, n, window, scale);
        } else {
            k_linear_packed(p, n, q + h * dh, ldq, &kt, NULL, n, n);
            for (size_t e = 0; e < nn; e++) p[e] *= scale;
        }
        if (scores[h]) memcpy(scores[h], p, nn * sizeof *p);
        k_softmax_rows(p, n, n);
        if (hm != 1.0f)
            for (size_t e = 0; e < nn; e++) p[e] *= hm;
        /* ctx[:, h·dh ..] = P_h[n][n] · V_g[n][dh] */
        if (need_ctx) {
            if (mi->causal) /* P is 0 above the diagonal */
                k_linear_packed_tril(ctx + h * dh, ldc, p, n, &vp, n, dh);
            else
                k_linear_packed(ctx + h * dh, ldc, p, n, &vp, NULL, n, dh);
        }
    }
}

/* out[n][o] = in[n][i] · W + b through the packed copy of W when the model has one */
static void linear(const ats_model *m, float *out, const float *in, const float *wt,
                   const packed_w *pw, const float *b, size_t n, size_t i, size_t o) {
    if (pw->p)
        k_linear_packed(out, o, in, i, pw, b, n, o);
    else
        k_linear(out, in, wt, b, n, i, o, m->conv1d);
}

/* Sequences stacked row-wise in one pass: sequence s holds rows off[s] .. off[s] + res[s].n_tokens
 * of the scratch arrays, and its results go to res[s]; on_layer knows it as sequence seq0 + s. */
typedef struct stack {
    size_t count, seq0;
    const size_t *off;       /* [count] */
    ats_forward_result *res; /* [count] */
} stack;

/* hidden state `layer` of every sequence ← its rows of x[rows][d] */
static void keep_hidden(const stack *sk, const float *x, size_t d, size_t layer) {
    for (size_t s = 0; s < sk->count; s++) {
        ats_forward_result *r = &sk->res[s];
        size_t nd = r->n_tokens * d;
        if (r->hidden) memcpy(r->hidden + layer * nd, x + sk->off[s] * d, nd * sizeof *x);
    }
}

/* 1 when the pass keeps layer l's / head h's attention and scores (opt->capture_layer,
 * capture_head: 0 every one, k + 1 only k) */
static int layer_kept(const ats_forward_options *opt, size_t l) {
    return !opt->capture_layer || (size_t)opt->capture_layer == l + 1;
}
static int head_kept(const ats_forward_options *opt, size_t h) {
    return !opt->capture_head || (size_t)opt->capture_head == h + 1;
}

/* Where attention() puts each head of layer l of result r: with opt->on_layer the whole-layer
 * scratch (handed to it, and the kept heads copied from there: layer_done), else the result's
 * arrays when kept (laid out [layers kept][heads kept][n][n]), else the whole-head scratch when
 * the head's scores are kept or the model is not causal, else NULL (a block of rows at a
 * time). */
static void head_targets(const ats_model *m, const ats_forward_options *opt,
                         const ats_forward_result *r, size_t l, work *w) {
    size_t H = (size_t)m->info.n_heads, n = r->n_tokens, nn = n * n;
    size_t Hk = opt->capture_head ? 1 : H, li = opt->capture_layer ? 0 : l;
    for (size_t h = 0; h < H; h++) {
        int kept = layer_kept(opt, l) && head_kept(opt, h);
        size_t at = (li * Hk + (opt->capture_head ? 0 : h)) * nn;
        w->scores[h] = kept && r->scores ? r->scores + at : NULL;
        if (opt->on_layer)
            w->probs[h] = w->att + h * nn;
        else if (kept && r->attention)
            w->probs[h] = r->attention + at;
        else if (w->scores[h] || !m->info.causal)
            w->probs[h] = w->att + h * nn;
        else
            w->probs[h] = NULL;
    }
}

/* With opt->on_layer, after layer l of sequence s ran into the scratch w->att: its kept heads
 * copied into the result, then the layer handed over. */
static ats_status layer_done(ats_model *m, const ats_forward_options *opt, const stack *sk,
                             size_t s, size_t l, const work *w, ats_error *err) {
    ats_forward_result *r = &sk->res[s];
    size_t H = (size_t)m->info.n_heads, n = r->n_tokens, nn = n * n;
    size_t Hk = opt->capture_head ? 1 : H, li = opt->capture_layer ? 0 : l;
    for (size_t h = 0; r->attention && layer_kept(opt, l) && h < H; h++)
        if (head_kept(opt, h))
            memcpy(r->attention + (li * Hk + (opt->capture_head ? 0 : h)) * nn, w->att + h * nn,
                   nn * sizeof *w->att);
    ats_error e;
    ats_error_clear(&e);
    ats_status rc = opt->on_layer(opt->on_layer_ctx, sk->seq0 + s, l, H, n, w->att, &e);
    if (rc && !e.status) ats_error_set(&e, rc, "%s: the layer callback failed", m->dir);
    return rc ? ats_model_fail(m, err, rc, "%s", e.message) : ATS_OK;
}

/* Runs the layers on w->x [n][d] (the embeddings of every sequence of sk, n rows in all). The
 * row-wise steps (layer norms, linear layers, activation) run once over all n rows, so each
 * weight matrix is read once per pass; attention runs on each sequence's rows. */
static ats_status run_layers(ats_model *m, size_t n, const ats_forward_options *opt, work *w,
                             const stack *sk, int need_final, ats_error *err) {
    const ats_model_info *mi = &m->info;
    /* L: the layers this pass runs (prepare: all, or opt->n_layers) */
    size_t L = sk->res[0].n_layers, H = (size_t)mi->n_heads, d = (size_t)mi->d_model,
           f = (size_t)mi->d_ff, nd = n * d, dh = (size_t)mi->d_head, Hkv = (size_t)mi->n_kv_heads;
    /* q [H·dh], k and v [Hkv·dh] each: d for every architecture but the decoders */
    size_t qd = H * dh, kvd = Hkv * dh, wqkv = qd + 2 * kvd;
    float *x = w->x, *t = w->t;
    int rotary = m->rotary_dim && !opt->no_positions;
    keep_hidden(sk, x, d, 0);
    for (size_t l = 0; l < L; l++) {
        const layer_weights *lw = &m->layers[l];
        const float *in = x;
        if (m->pre_ln) { /* t = LN1(x) */
            if (m->rmsnorm)
                k_rmsnorm(t, x, lw->ln1_w, n, d, mi->eps);
            else
                k_layernorm(t, x, lw->ln1_w, lw->ln1_b, n, d, mi->eps);
            in = t;
        }
        /* the last layer's values, output and feed-forward only feed the final hidden state */
        int attn_only = l + 1 == L && !need_final && !sk->res[0].context;
        float *q, *k, *v;
        size_t ldq, ldkv;
        if (lw->pq.p || m->conv1d) {
            /* qkv[n][qd + 2kvd] = in[n][d] · Wqkv + b (q|k only when the values are not
             * needed); packed, or GPT-2's c_attn through OpenBLAS */
            size_t cols = attn_only ? qd + kvd : wqkv;
            if (lw->pq.p)
                k_linear_packed(w->q, wqkv, in, d, &lw->pq, lw->bqkv, n, cols);
            else
                k_linear_ld(w->q, 3 * d, in, lw->wq, 3 * d, lw->bq, n, d, cols, 1);
            q = w->q;
            k = w->q + qd;
            v = w->q + qd + kvd;
            ldq = ldkv = wqkv;
        } else { /* q [n][qd], k, v [n][kvd] = in · Wᵀ + b */
            k_linear(w->q, in, lw->wq, lw->bq, n, d, qd, 0);
            k_linear(w->k, in, lw->wk, lw->bk, n, d, kvd, 0);
            if (!attn_only) k_linear(w->v, in, lw->wv, lw->bv, n, d, kvd, 0);
            q = w->q;
            k = w->k;
            v = w->v;
            ldq = qd;
            ldkv = kvd;
        }
        for (size_t s = 0; s < sk->count && rotary; s++) { /* positions from 0 in each sequence */
            size_t ns = sk->res[s].n_tokens, o = sk->off[s], rot = (size_t)m->rotary_dim;
            k_rotary(q + o * ldq, ldq, ns, H, dh, rot, w->cos, w->sin);
            k_rotary(k + o * ldkv, ldkv, ns, Hkv, dh, rot, w->cos, w->sin);
        }
        for (size_t s = 0; s < sk->count; s++) {
            ats_forward_result *r = &sk->res[s];
            size_t ns = r->n_tokens, o = sk->off[s];
            head_targets(m, opt, r, l, w);
            attention(m, (int)l, q + o * ldq, ldq, k + o * ldkv, v + o * ldkv, ldkv, ns, w->probs,
                      w->scores, w->ctx + o * qd, opt->head_mask, !attn_only, w->pack, w->rows);
            if (r->context)
                memcpy(r->context + l * ns * qd, w->ctx + o * qd, ns * qd * sizeof *w->ctx);
            if (opt->on_layer) {
                ats_status rc = layer_done(m, opt, sk, s, l, w, err);
                if (rc) return rc;
            }
        }
        if (attn_only) break;
        /* t[n][d] = ctx[n][qd] · Woᵀ + bo */
        linear(m, t, w->ctx, lw->wo, &lw->po, lw->bo, n, qd, d);
        if (m->gated_mlp) { /* Llama family: x += attn; x += down(act(gate(t)) · up(t)) */
            k_add(x, t, nd);
            k_rmsnorm(t, x, lw->ln2_w, n, d, mi->eps); /* t = RMS2(x) */
            if (lw->p1.p) {                            /* ff[n][2f] = gate | up */
                k_linear_packed(w->ff, 2 * f, t, d, &lw->p1, lw->bgu, n, 2 * f);
            } else {
                k_linear_ld(w->ff, 2 * f, t, lw->w1, d, lw->b1, n, d, f, 0);
                k_linear_ld(w->ff + f, 2 * f, t, lw->w3, d, lw->b3, n, d, f, 0);
            }
            k_gated(w->ff, n, f, m->act); /* ff[:, :f] = act(gate) · up */
            if (lw->p2.p)
                k_linear_packed(t, d, w->ff, 2 * f, &lw->p2, lw->b2, n, d);
            else
                k_linear_strided(t, d, w->ff, 2 * f, lw->w2, lw->b2, n, f, d);
            k_add(x, t, nd);               /* x += mlp */
        } else if (m->parallel_residual) { /* GPT-NeoX: x = (mlp(LN2(x)) + attn) + x */
            float *u = w->ctx;             /* [n][d] scratch */
            k_layernorm(u, x, lw->ln2_w, lw->ln2_b, n, d, mi->eps); /* u = LN2(x) */
            linear(m, w->ff, u, lw->w1, &lw->p1, lw->b1, n, d, f);
            k_activation(w->ff, n * f, m->act);
            linear(m, u, w->ff, lw->w2, &lw->p2, lw->b2, n, f, d); /* u = mlp */
            k_add(u, t, nd);                                       /* u = mlp + attn */
            k_add(x, u, nd);                                       /* x += u */
        } else if (m->pre_ln) {
            k_add(x, t, nd);                                        /* x += attn */
            k_layernorm(t, x, lw->ln2_w, lw->ln2_b, n, d, mi->eps); /* t = LN2(x) */
            linear(m, w->ff, t, lw->w1, &lw->p1, lw->b1, n, d, f);
            k_activation(w->ff, n * f, m->act);
            linear(m, t, w->ff, lw->w2, &lw->p2, lw->b2, n, f, d);
            k_add(x, t, nd); /* x += mlp */
        } else {
            k_add(t, x, nd);                                        /* t = attn + x */
            k_layernorm(x, t, lw->ln1_w, lw->ln1_b, n, d, mi->eps); /* x = LN1(t) */
            linear(m, w->ff, x, lw->w1, &lw->p1, lw->b1, n, d, f);
            k_activation(w->ff, n * f, m->act);
            linear(m, t, w->ff, lw->w2, &lw->p2, lw->b2, n, f, d);
            k_add(t, x, nd);                                        /* t = ffn + x */
            k_layernorm(x, t, lw->ln2_w, lw->ln2_b, n, d, mi->eps); /* x = LN2(t) */
        }
        keep_hidden(sk, x, d, l + 1);
    }
    /* the decoders' last hidden state is after the final norm (transformers reports it so) */
    if (mi->causal && need_final) {
        if (m->rmsnorm)
            k_rmsnorm(x, x, m->lnf_w, n, d, mi->eps);
        else
            k_layernorm(x, x, m->lnf_w, m->lnf_b, n, d, mi->eps);
        keep_hidden(sk, x, d, L);
    }
    return ATS_OK;
}

/* logits[n][V] from the final hidden states x[n][d]; t[n][d] is scratch */
static void lm_head(const ats_model *m, const float *x, float *t, size_t n, float *logits) {
    size_t d = (size_t)m->info.d_model, V = (size_t)m->info.vocab_size;
    const float *h = x;
    if (m->mlm_transform) { /* t = LN(act(x · Wᵀ + b)) */
        k_linear(t, x, m->mlm_w, m->mlm_b, n, d, d, 0);
        k_activation(t, n * d, m->info.arch == ATS_ARCH_ROBERTA ? ACT_GELU : m->act);
        k_layernorm(t, t, m->mlm_ln_w, m->mlm_ln_b, n, d, m->mlm_eps);
        h = t;
    }
    /* logits = h · decᵀ (+ bias); a packed model's OpenBLAS runs on one thread, so the
     * vocabulary is split among OpenMP's */
    long parts = packed(m) ? omp_get_max_threads() : 1;
    size_t per = (V + (size_t)parts - 1) / (size_t)parts;
#pragma omp parallel for schedule(static) if (parts > 1)
    for (long p = 0; p < parts; p++) {
        size_t c0 = (size_t)p * per, cw = c0 < V ? (V - c0 < per ? V - c0 : per) : 0;
        if (cw)
            k_linear_ld(logits + c0, V, h, m->lm_dec + c0 * d, d,
                        m->mlm_bias ? m->mlm_bias + c0 : NULL, n, d, cw, 0);
    }
}

/* mean cross-entropy over the labelled positions (GPT-2: shifted by one) */
static void lm_loss(const ats_model *m, const float *logits, const int32_t *labels, size_t n,
                    ats_forward_result *res) {
    size_t V = (size_t)m->info.vocab_size;
    int shift = m->info.causal;
    double sum = 0.0;
    size_t count = 0;
    for (size_t i = 0; i + (size_t)shift < n; i++) {
        int32_t y = labels[i + (size_t)shift];
        if (y < 0) continue;
        const float *row = logits + i * V;
        double mx = -INFINITY;
        for (size_t c = 0; c < V; c++) mx = row[c] > mx ? row[c] : mx;
        double s = 0.0;
        for (size_t c = 0; c < V; c++) s += exp((double)row[c] - mx);
        sum += mx + log(s) - (double)row[y];
        count++;
    }
    res->loss = count ? sum / (double)count : NAN;
    res->loss_count = count;
}

/* OpenMP runs a pass's parallel work. With packed weights OpenBLAS only multiplies one head's
 * small matrices at a time, inside OpenMP's loop over the heads, so it runs on one thread: its
 * own workers, spinning after a call, took the cores that OpenMP's threads waited for (a
 * 2-thread 128-token MiniLM pass took 12 to 66 ms). Unpacked models leave the products to
 * OpenBLAS's threads. */
static void set_threads(const ats_model *m, const ats_forward_options *opt) {
    if (opt->n_threads > 0) omp_set_num_threads(opt->n_threads);
    if (packed(m))
        openblas_set_num_threads(1);
    else if (opt->n_threads > 0)
        openblas_set_num_threads(opt->n_threads);
}

/* 1 when some head's probabilities are needed whole but not kept (head_targets' scratch) */
static int work_needs_att(const ats_model *m, const ats_forward_options *opt) {
    if (opt->on_layer) return 1;
    int all = (opt->capture & ATS_CAPTURE_ATTENTION) && !opt->capture_layer && !opt->capture_head;
    if (!m->info.causal) return !all;
    return (opt->capture & ATS_CAPTURE_SCORES) && !(opt->capture & ATS_CAPTURE_ATTENTION);
}

/* Bytes a pass of count sequences (n[count] tokens after truncation, rows in all) allocates:
 * its results and prepare_work's scratch (what prepare_result and prepare_work take, in the
 * same terms); SIZE_MAX when it overflows. desc[256] receives what it is mostly, for messages
 * (with on_layer: the layer's part, what the caller computes from it and the rest). */
static size_t forward_bytes(const ats_model *m, size_t count, const size_t *n, size_t rows,
                            size_t max_n, const ats_forward_options *opt, int want_logits,
                            char *desc) {
    const ats_model_info *mi = &m->info;
    size_t L = opt->n_layers ? (size_t)opt->n_layers : (size_t)mi->n_layers;
    size_t H = (size_t)mi->n_heads, d = (size_t)mi->d_model, f = (size_t)mi->d_ff;
    size_t V = (size_t)mi->vocab_size, dh = (size_t)mi->d_head;
    size_t qd = H * dh, kvd = (size_t)mi->n_kv_heads * dh;
    size_t Lk = opt->capture_layer ? 1 : L, Hk = opt->capture_head ? 1 : H;
    double fl = 0, att = 0; /* floats, in double: an absurd input must not wrap */
    for (size_t s = 0; s < count; s++) {
        double nn = (double)n[s] * (double)n[s];
        if (opt->capture & ATS_CAPTURE_ATTENTION) att += (double)(Lk * Hk) * nn;
        if (opt->capture & ATS_CAPTURE_SCORES) fl += (double)(Lk * Hk) * nn;
        if (opt->capture & ATS_CAPTURE_HIDDEN) fl += (double)(L + 1) * (double)n[s] * (double)d;
        if (opt->capture & ATS_CAPTURE_CONTEXT) fl += (double)L * (double)n[s] * (double)qd;
        if (want_logits) fl += (double)n[s] * (double)V;
    }
    double r = (double)rows, mn = (double)max_n;
    double scratch = r * (double)(2 * d + qd + 2 * kvd + 2 * kvd + (qd > d ? qd : d)) +
                     r * (double)f * (m->gated_mlp ? 2 : 1) + 2 * mn * (double)(m->rotary_dim / 2) +
                     (double)H * (double)head_pack_floats(max_n, dh);
    double layer = work_needs_att(m, opt) ? (double)H * mn * mn : 0;
    if (mi->causal) scratch += (double)H * K_NR * mn;
    double caller = opt->on_layer ? (double)opt->on_layer_bytes / 4 : 0;
    double bytes = 4 * (fl + att + scratch + layer + caller);
    if (opt->on_layer)
        snprintf(desc, 256,
                 "one layer's attention [%zu][%zu][%zu] float32 at a time, %.1f MiB, %.1f MiB for "
                 "what is computed from it, %.1f MiB of activations and scratch",
                 H, max_n, max_n, 4 * layer / 1048576.0, 4 * caller / 1048576.0,
                 4 * (fl + att + scratch) / 1048576.0);
    else if (att >= fl + scratch + layer)
        snprintf(desc, 256, "mostly the attention [%zu][%zu][%zu][%zu] float32 that it keeps", Lk,
                 Hk, max_n, max_n);
    else if (layer >= fl + scratch + att)
        snprintf(desc, 256, "mostly one layer's attention [%zu][%zu][%zu] float32", H, max_n,
                 max_n);
    else
        snprintf(desc, 256, "mostly its activations and scratch");
    return bytes >= 0.9 * (double)SIZE_MAX ? SIZE_MAX : (size_t)bytes;
}

/* Sets res up for n tokens and allocates the arrays it captures; 0: no memory. */
static ats_status prepare_result(ats_model *m, size_t n, const ats_forward_options *opt,
                                 int want_logits, ats_forward_result *res, ats_error *err) {
    const ats_model_info *mi = &m->info;
    size_t L = (size_t)mi->n_layers, H = (size_t)mi->n_heads, d = (size_t)mi->d_model,
           V = (size_t)mi->vocab_size;
    int ok = 1;
    if (opt->n_layers < 0 || opt->n_layers > mi->n_layers)
        return ats_model_fail(m, err, ATS_ERR_INVALID,
                              "%s: n_layers = %d, outside 0..%d (0: every layer)", m->dir,
                              opt->n_layers, mi->n_layers);
    if (opt->head_mask) /* a NaN or ∞ would spread through every later layer silently */
        for (size_t e = 0; e < (size_t)mi->n_layers * H; e++)
            if (!isfinite(opt->head_mask[e]))
                return ats_model_fail(m, err, ATS_ERR_INVALID,
                                      "%s: head mask [%zu][%zu] = %g: not a finite number", m->dir,
                                      e / H, e % H, (double)opt->head_mask[e]);
    if (opt->capture_layer < 0 ||
        opt->capture_layer > (opt->n_layers ? opt->n_layers : mi->n_layers) ||
        opt->capture_head < 0 || opt->capture_head > mi->n_heads)
        return ats_model_fail(m, err, ATS_ERR_INVALID,
                              "%s: capture_layer = %d / capture_head = %d, outside 0..%d / 0..%d "
                              "(0: every one, k: the k-th)",
                              m->dir, opt->capture_layer, opt->capture_head,
                              opt->n_layers ? opt->n_layers : mi->n_layers, mi->n_heads);
    if (opt->n_layers > 0 && opt->n_layers < mi->n_layers) {
        if (want_logits || (opt->capture & ATS_CAPTURE_HIDDEN))
            return ats_model_fail(m, err, ATS_ERR_INVALID,
                                  "%s: hidden states, logits and losses need all %d layers (the "
                                  "pass was to stop after %d)",
                                  m->dir, mi->n_layers, opt->n_layers);
        L = (size_t)opt->n_layers;
    }
    res->n_layers = L;
    res->n_heads = H;
    res->n_tokens = n;
    res->d_model = d;
    res->vocab_size = V;
    res->loss = NAN;
    size_t kept = (opt->capture_layer ? 1 : L) * (opt->capture_head ? 1 : H);
    if (opt->capture & ATS_CAPTURE_ATTENTION) res->attention = alloc_floats(kept, n, n, &ok);
    if (opt->capture & ATS_CAPTURE_SCORES) res->scores = alloc_floats(kept, n, n, &ok);
    if (opt->capture & ATS_CAPTURE_HIDDEN) res->hidden = alloc_floats(L + 1, n, d, &ok);
    if (opt->capture & ATS_CAPTURE_CONTEXT)
        res->context = alloc_floats(L, n, H * (size_t)mi->d_head, &ok);
    if (want_logits) res->logits = alloc_floats(n, V, 1, &ok);
    if (!ok)
        return ats_model_fail(m, err, ATS_ERR_NOMEM,
                              "%s: out of memory for %zu tokens (attention needs %zu×%zu×%zu "
                              "floats)",
                              m->dir, n, kept, n, n);
    return ATS_OK;
}

/* The scratch for n rows in all, the longest sequence max_n rows. */
static ats_status prepare_work(ats_model *m, size_t n, size_t max_n, const ats_forward_options *opt,
                               work *w, ats_error *err) {
    const ats_model_info *mi = &m->info;
    size_t H = (size_t)mi->n_heads, d = (size_t)mi->d_model, f = (size_t)mi->d_ff;
    size_t qd = H * (size_t)mi->d_head, kvd = (size_t)mi->n_kv_heads * (size_t)mi->d_head;
    int ok = 1;
    if (work_needs_att(m, opt)) w->att = alloc_floats(H, max_n, max_n, &ok);
    if (mi->causal) w->rows = alloc_floats(H, K_NR, max_n, &ok);
    w->probs = calloc(H, sizeof *w->probs);
    w->scores = calloc(H, sizeof *w->scores);
    if (!w->probs || !w->scores) ok = 0;
    w->x = alloc_floats(n, d, 1, &ok);
    w->t = alloc_floats(n, d, 1, &ok);
    w->q = alloc_floats(n, qd + 2 * kvd, 1, &ok);
    w->k = alloc_floats(n, kvd, 1, &ok);
    w->v = alloc_floats(n, kvd, 1, &ok);
    w->ctx = alloc_floats(n, qd > d ? qd : d, 1, &ok);
    w->ff = alloc_floats(n, f, m->gated_mlp ? 2 : 1, &ok);
    size_t half = (size_t)m->rotary_dim / 2;
    if (half) {
        w->cos = alloc_floats(max_n, half, 1, &ok);
        w->sin = alloc_floats(max_n, half, 1, &ok);
    }
    /* cos, sin of position · inv_freq, the angle rounded to float as transformers' float32
     * product gives it */
    for (size_t r = 0; ok && r < max_n; r++)
        for (size_t i = 0; i < half; i++) {
            float a = (float)r * m->inv_freq[i];
            w->cos[r * half + i] = cosf(a);
            w->sin[r * half + i] = sinf(a);
        }
    size_t per_head = head_pack_floats(max_n, (size_t)mi->d_head);
    if (!per_head) ok = 0;
    w->pack = alloc_floats(H, per_head, 1, &ok);
    if (!ok)
        return ats_model_fail(m, err, ATS_ERR_NOMEM, "%s: out of memory for %zu tokens", m->dir, n);
    return ATS_OK;
}

/* Checks one token sequence; *n receives the tokens that run (after truncation). */
static ats_status check_tokens(ats_model *m, const ats_model_input *in,
                               const ats_forward_options *opt, size_t *n, size_t *n_truncated,
                               ats_error *err) {
    *n = in->n;
    *n_truncated = 0;
    if (*n == 0) return ats_model_fail(m, err, ATS_ERR_INVALID, "%s: empty input", m->dir);
    size_t lim = max_tokens(m);
    if (*n > lim) {
        if (!opt->truncate)
            return ats_model_fail(m, err, ATS_ERR_RANGE,
                                  "%s: %zu tokens, but the model takes at most %zu (truncate to "
                                  "cut the rest)",
                                  m->dir, *n, lim);
        *n_truncated = *n - lim;
        *n = lim;
    }
    size_t V = (size_t)m->info.vocab_size;
    for (size_t i = 0; i < *n; i++) {
        if (in->ids[i] < 0 || (size_t)in->ids[i] >= V)
            return ats_model_fail(m, err, ATS_ERR_INVALID,
                                  "%s: token %zu has id %d, outside the vocabulary [0, %zu)",
                                  m->dir, i, (int)in->ids[i], V);
        if (in->token_type_ids &&
            (in->token_type_ids[i] < 0 ||
             (in->token_type_ids[i] > 0 && in->token_type_ids[i] >= m->type_vocab)))
            return ats_model_fail(
                m, err, ATS_ERR_INVALID, "%s: token %zu has token type %d, outside [0, %d)", m->dir,
                i, (int)in->token_type_ids[i], m->type_vocab > 0 ? m->type_vocab : 1);
        if (in->labels && in->labels[i] != -100 &&
            (in->labels[i] < 0 || (size_t)in->labels[i] >= V))
            return ats_model_fail(m, err, ATS_ERR_INVALID,
                                  "%s: label %zu is %d, neither -100 nor a vocabulary id", m->dir,
                                  i, (int)in->labels[i]);
    }
    return ATS_OK;
}

/* x[n][d] ← the embeddings of the first n tokens of in (without positions: the word and type
 * embeddings alone, what a zeroed position table gives) */
static void embed_tokens(const ats_model *m, const ats_model_input *in, size_t n, int positions,
                         float *x) {
    const ats_model_info *mi = &m->info;
    size_t d = (size_t)mi->d_model;
    for (size_t i = 0; i < n; i++) {
        const float *we = m->tok_emb + (size_t)in->ids[i] * d;
        float *xr = x + i * d;
        if (m->rotary_dim) { /* the word alone: positions rotate q and k in each layer */
            memcpy(xr, we, d * sizeof *xr);
        } else if (mi->arch == ATS_ARCH_GPT2 || mi->arch == ATS_ARCH_DISTILBERT) {
            /* word + position */
            const float *pe = m->pos_emb + i * d;
            for (size_t c = 0; c < d; c++) xr[c] = positions ? we[c] + pe[c] : we[c];
        } else { /* (word + type) + position; RoBERTa positions count from pad_id + 1 */
            size_t pos = i;
            if (mi->arch == ATS_ARCH_ROBERTA) {
                size_t nonpad = 0;
                for (size_t j = 0; j <= i; j++) nonpad += in->ids[j] != m->pad_id;
                pos = in->ids[i] != m->pad_id ? (size_t)m->pad_id + nonpad : (size_t)m->pad_id;
            }
            const float *pe = m->pos_emb + pos * d;
            const float *te =
                m->type_emb
                    ? m->type_emb + (size_t)(in->token_type_ids ? in->token_type_ids[i] : 0) * d
                    : NULL;
            for (size_t c = 0; c < d; c++) {
                float v = te ? we[c] + te[c] : we[c];
                xr[c] = positions ? v + pe[c] : v;
            }
        }
    }
}

/* count token sequences in one pass, stacked (see run_layers). Errors name the sequence when
 * there are several. */
static ats_status forward_tokens(ats_model *m, size_t count, size_t seq0, const ats_model_input *in,
                                 const ats_forward_options *opt_in, ats_forward_result *res,
                                 ats_error *err) {
    for (size_t s = 0; s < count; s++) {
        memset(&res[s], 0, sizeof res[s]);
        res[s].loss = NAN;
    }
    ats_forward_options defaults;
    ats_forward_options_init(&defaults);
    const ats_forward_options *opt = opt_in ? opt_in : &defaults;
    const ats_model_info *mi = &m->info;
    if (mi->arch == ATS_ARCH_VIT)
        return ats_model_fail(m, err, ATS_ERR_INVALID,
                              "%s: a ViT model takes an image, not token ids", m->dir);
    size_t *off = malloc((count ? count : 1) * sizeof *off);
    if (!off) return ats_model_fail(m, err, ATS_ERR_NOMEM, "%s: out of memory", m->dir);
    size_t rows = 0, max_n = 0;
    int want_logits = (opt->capture & ATS_CAPTURE_LOGITS) != 0;
    ats_status rc = ATS_OK;
    for (size_t s = 0; s < count && !rc; s++) {
        size_t n;
        ats_error e;
        rc = check_tokens(m, &in[s], opt, &n, &res[s].n_truncated, &e);
        if (rc) {
            if (count > 1)
                ats_model_fail(m, err, rc, "sequence %zu: %s", s, e.message);
            else if (err)
                *err = e;
            break;
        }
        off[s] = rows;
        rows += n; /* ≤ count × max_positions: no overflow for any count that fits in memory */
        max_n = n > max_n ? n : max_n;
        res[s].n_tokens = n;
        want_logits |= in[s].labels != NULL;
    }
    if (!rc && want_logits && !mi->has_lm_head)
        rc = ats_model_fail(m, err, ATS_ERR_INVALID,
                            "%s: the checkpoint has no language-model head (logits and loss need "
                            "one)",
                            m->dir);
    work w = {0};
    if (rc) goto done;
    /* say so before allocating anything when the pass cannot fit (ats_memory_check:
     * --max-memory, else the available memory) */
    {
        size_t *ns = malloc((count ? count : 1) * sizeof *ns);
        if (!ns) {
            rc = ats_model_fail(m, err, ATS_ERR_NOMEM, "%s: out of memory", m->dir);
            goto done;
        }
        for (size_t s = 0; s < count; s++) ns[s] = res[s].n_tokens;
        char desc[256], what[640];
        size_t bytes = forward_bytes(m, count, ns, rows, max_n, opt, want_logits, desc);
        free(ns);
        snprintf(what, sizeof what, "%s: the forward pass of %zu tokens (%s)", m->dir, rows, desc);
        ats_error e;
        if ((rc = ats_memory_check(bytes, what, &e))) {
            rc = ats_model_fail(m, err, rc, "%s", e.message);
            goto done;
        }
    }
    set_threads(m, opt);
    for (size_t s = 0; s < count && !rc; s++)
        rc = prepare_result(m, res[s].n_tokens, opt, want_logits, &res[s], err);
    if (!rc) rc = prepare_work(m, rows, max_n, opt, &w, err);
    if (rc) goto done;
    size_t d = (size_t)mi->d_model;
    for (size_t s = 0; s < count; s++)
        embed_tokens(m, &in[s], res[s].n_tokens, !opt->no_positions, w.x + off[s] * d);
    if (m->emb_ln_w) k_layernorm(w.x, w.x, m->emb_ln_w, m->emb_ln_b, rows, d, mi->eps);
    stack sk = {count, seq0, off, res};
    rc = run_layers(m, rows, opt, &w, &sk, want_logits || res[0].hidden, err);
    if (rc) goto done;
    for (size_t s = 0; s < count && want_logits; s++) {
        size_t n = res[s].n_tokens;
        lm_head(m, w.x + off[s] * d, w.t + off[s] * d, n, res[s].logits);
        if (in[s].labels) lm_loss(m, res[s].logits, in[s].labels, n, &res[s]);
        if (!(opt->capture & ATS_CAPTURE_LOGITS)) {
            free(res[s].logits);
            res[s].logits = NULL;
        }
    }
done:
    work_free(&w);
    free(off);
    if (rc)
        for (size_t s = 0; s < count; s++) ats_forward_result_free(&res[s]);
    return rc;
}

ats_status ats_model_forward(ats_model *m, const ats_model_input *in,
                             const ats_forward_options *opt, ats_forward_result *res,
                             ats_error *err) {
    return forward_tokens(m, 1, 0, in, opt, res, err);
}

ats_status ats_model_forward_batch(ats_model *m, size_t count, const ats_model_input *in,
                                   const ats_forward_options *opt, ats_forward_result *res,
                                   ats_error *err) {
    /* With packed weights every row of a product is computed alone, in the same order, so one
     * stacked pass gives each sequence exactly what it would get alone, and reads the weights
     * once. OpenBLAS's blocking depends on the row count: there, one pass per sequence. */
    if (count > 1 && m->info.n_layers > 0 && m->layers[0].pq.p)
        return forward_tokens(m, count, 0, in, opt, res, err);
    for (size_t i = 0; i < count; i++) memset(&res[i], 0, sizeof res[i]);
    for (size_t i = 0; i < count; i++) {
        ats_error e;
        ats_status rc = forward_tokens(m, 1, i, &in[i], opt, &res[i], &e);
        if (rc) {
            for (size_t j = 0; j < i; j++) ats_forward_result_free(&res[j]);
            return ats_model_fail(m, err, rc, "sequence %zu: %s", i, e.message);
        }
    }
    return ATS_OK;
}

/* torch's bicubic taps for output index i of an axis of `in` samples at scale in/out:
 * index[4] (clamped to the axis) and weight[4] */
static void cubic_taps(double scale, size_t i, size_t in, size_t index[4], double weight[4]) {
    const double A = -0.75;
    double real = scale * ((double)i + 0.5) - 0.5;
    long base = (long)floor(real);
    if (base > (long)in - 1) base = (long)in - 1;
    double t = real - (double)base;
    t = t < 0 ? 0 : t > 1 ? 1 : t;
    double x0 = t + 1.0, x1 = t, x2 = 1.0 - t, x3 = 2.0 - t;
    weight[0] = ((A * x0 - 5.0 * A) * x0 + 8.0 * A) * x0 - 4.0 * A;
    weight[1] = ((A + 2.0) * x1 - (A + 3.0)) * x1 * x1 + 1.0;
    weight[2] = ((A + 2.0) * x2 - (A + 3.0)) * x2 * x2 + 1.0;
    weight[3] = ((A * x3 - 5.0 * A) * x3 + 8.0 * A) * x3 - 4.0 * A;
    for (int j = 0; j < 4; j++) {
        long k = base - 1 + j;
        index[j] = k < 0 ? 0 : k > (long)in - 1 ? in - 1 : (size_t)k;
    }
}

/* out[gh·gw][d] ← the g0 × g0 grid of patch position embeddings pos[g0·g0][d] resized to
 * gh × gw as torch's interpolate(mode="bicubic", align_corners=False), which transformers'
 * ViT applies with interpolate_pos_encoding: the source of output index i is
 * (i + ½)·g0/g − ½, cubic convolution with A = −0.75, taps clamped to the grid. */
static void interp_positions(const float *pos, size_t g0, size_t gh, size_t gw, size_t d,
                             float *out) {
    for (size_t oy = 0; oy < gh; oy++) {
        size_t ty[4];
        double wy[4];
        cubic_taps((double)g0 / (double)gh, oy, g0, ty, wy);
        for (size_t ox = 0; ox < gw; ox++) {
            size_t tx[4];
            double wx[4];
            cubic_taps((double)g0 / (double)gw, ox, g0, tx, wx);
            float *o = out + (oy * gw + ox) * d;
            for (size_t c = 0; c < d; c++) {
                double v = 0.0;
                for (int i = 0; i < 4; i++) {
                    double row = 0.0;
                    for (int j = 0; j < 4; j++) row += wx[j] * pos[(ty[i] * g0 + tx[j]) * d + c];
                    v += wy[i] * row;
                }
                o[c] = (float)v;
            }
        }
    }
}

/* The patch grid of a height × width image (the convolution floors) must have 1 to 16 times
 * the model's patches a side, for the interpolated positions. */
static ats_status grid_check(ats_model *m, size_t height, size_t width, ats_error *err) {
    size_t P = (size_t)m->info.patch_size, g0 = (size_t)m->info.image_size / P;
    size_t gh = height / P, gw = width / P;
    if (gh == 0 || gw == 0 || gh > 16 * g0 || gw > 16 * g0)
        return ats_model_fail(m, err, ATS_ERR_INVALID,
                              "%s: an image of %zux%zu pixels gives a %zux%zu patch grid; the "
                              "model takes 1..%zu patches of %zu pixels a side",
                              m->dir, width, height, gw, gh, 16 * g0, P);
    return ATS_OK;
}

ats_status ats_model_forward_pixels_hw(ats_model *m, const float *pixels, size_t height,
                                       size_t width, const ats_forward_options *opt_in,
                                       ats_forward_result *res, ats_error *err) {
    memset(res, 0, sizeof *res);
    res->loss = NAN;
    ats_forward_options defaults;
    ats_forward_options_init(&defaults);
    const ats_forward_options *opt = opt_in ? opt_in : &defaults;
    const ats_model_info *mi = &m->info;
    if (mi->arch != ATS_ARCH_VIT)
        return ats_model_fail(m, err, ATS_ERR_INVALID, "%s: a %s model takes text, not an image",
                              m->dir, mi->model_type);
    if (opt->capture & ATS_CAPTURE_LOGITS)
        return ats_model_fail(m, err, ATS_ERR_INVALID, "%s: a ViT model has no LM head", m->dir);
    size_t S = (size_t)mi->image_size, P = (size_t)mi->patch_size, C = (size_t)mi->n_channels,
           g0 = S / P, gh = height / P, gw = width / P, d = (size_t)mi->d_model, cpp = C * P * P;
    ats_status gst = grid_check(m, height, width, err);
    if (gst) return gst;
    size_t np = gh * gw, n = np + 1;
    set_threads(m, opt);
    work w = {0};
    float *patches = NULL, *pos = NULL;
    ats_status rc = prepare_result(m, n, opt, 0, res, err);
    if (!rc) rc = prepare_work(m, n, n, opt, &w, err);
    if (rc) goto done;
    /* patches[np][C·P·P] in the conv weight's [C][P][P] order, then x[1 + p] = patch · Wᵀ + b */
    int ok = 1;
    patches = alloc_floats(np, cpp, 1, &ok);
    /* transformers keeps the table only for the model's own square size */
    int same = np == g0 * g0 && height == width;
    if (!same) pos = alloc_floats(n, d, 1, &ok);
    if (!ok) {
        rc = ats_model_fail(m, err, ATS_ERR_NOMEM, "%s: out of memory", m->dir);
        goto done;
    }
    for (size_t py = 0; py < gh; py++)
        for (size_t px = 0; px < gw; px++) {
            float *row = patches + (py * gw + px) * cpp;
            for (size_t c = 0; c < C; c++)
                for (size_t ky = 0; ky < P; ky++)
                    for (size_t kx = 0; kx < P; kx++)
                        row[(c * P + ky) * P + kx] =
                            pixels[(c * height + py * P + ky) * width + px * P + kx];
        }
    /* through the packed kernels, as every product of the layers (the path's contract) */
    packed_w pp;
    if (!k_pack(&pp, m->patch_w, cpp, cpp, d, 0)) {
        rc = ats_model_fail(m, err, ATS_ERR_NOMEM, "%s: out of memory", m->dir);
        goto done;
    }
    k_linear_packed(w.x + d, d, patches, cpp, &pp, m->patch_b, np, d);
    k_pack_free(&pp);
    memcpy(w.x, m->cls_tok, d * sizeof *w.x);
    if (!same) { /* [CLS]'s position as it is, the patches' resized */
        memcpy(pos, m->pos_emb, d * sizeof *pos);
        interp_positions(m->pos_emb + d, g0, gh, gw, d, pos + d);
    }
    if (!opt->no_positions) k_add(w.x, same ? m->pos_emb : pos, n * d); /* + positions [n][d] */
    size_t off0 = 0;
    stack sk = {1, 0, &off0, res};
    rc = run_layers(m, n, opt, &w, &sk, res->hidden != NULL, err);
done:
    free(patches);
    free(pos);
    work_free(&w);
    if (rc) ats_forward_result_free(res);
    return rc;
}

ats_status ats_model_forward_pixels(ats_model *m, const float *pixels,
                                    const ats_forward_options *opt, ats_forward_result *res,
                                    ats_error *err) {
    size_t S = (size_t)m->info.image_size;
    return ats_model_forward_pixels_hw(m, pixels, S, S, opt, res, err);
}

void ats_model_image_prep(const ats_model *m, ats_image_prep *prep) {
    const ats_model_info *mi = &m->info;
    memset(prep, 0, sizeof *prep);
    prep->size = mi->image_size;
    prep->do_resize = mi->do_resize;
    prep->do_rescale = mi->do_rescale;
    prep->rescale_factor = mi->rescale_factor;
    prep->do_normalize = mi->do_normalize;
    for (int c = 0; c < 3; c++) {
        prep->mean[c] = mi->image_mean[c];
        prep->std[c] = mi->image_std[c];
    }
}

ats_status ats_model_forward_image(ats_model *m, const char *path, const ats_forward_options *opt,
                                   ats_forward_result *res, ats_error *err) {
    memset(res, 0, sizeof *res);
    res->loss = NAN;
    const ats_model_info *mi = &m->info;
    if (mi->arch != ATS_ARCH_VIT)
        return ats_model_fail(m, err, ATS_ERR_INVALID, "%s: a %s model takes text, not an image",
                              m->dir, mi->model_type);
    if (mi->n_channels != 3)
        return ats_model_fail(m, err, ATS_ERR_INVALID,
                              "%s: the model takes %d channels; image files give RGB (3)", m->dir,
                              mi->n_channels);
    size_t S = (size_t)mi->image_size;
    size_t H = opt && opt->image_height > 0 ? (size_t)opt->image_height : S;
    size_t W = opt && opt->image_width > 0 ? (size_t)opt->image_width : S;
    if (H > 16384 || W > 16384 || (opt && (opt->image_height < 0 || opt->image_width < 0)))
        return ats_model_fail(m, err, ATS_ERR_RANGE,
                              "%s: image size %dx%d; expected 1..16384 pixels a side", path,
                              opt->image_width, opt->image_height);
    ats_status rc = grid_check(m, H, W, err); /* before decoding and resizing */
    if (rc) return rc;
    ats_image img;
    ats_error e;
    rc = ats_image_load(path, &img, &e);
    if (rc) return ats_model_fail(m, err, rc, "%s", e.message);
    ats_image_prep prep;
    ats_model_image_prep(m, &prep);
    prep.height = (int)H;
    prep.width = (int)W;
    float *pixels = malloc(3 * H * W * sizeof *pixels);
    if (!pixels) {
        ats_image_free(&img);
        return ats_model_fail(m, err, ATS_ERR_NOMEM, "%s: out of memory", path);
    }
    rc = ats_image_preprocess(&img, &prep, pixels, &e);
    ats_image_free(&img);
    if (rc) {
        free(pixels);
        return ats_model_fail(m, err, rc, "%s", e.message);
    }
    rc = ats_model_forward_pixels_hw(m, pixels, H, W, opt, res, err);
    free(pixels);
    return rc;
}
