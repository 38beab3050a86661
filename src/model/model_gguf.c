/* Llama-architecture models from a GGUF file (llama.cpp's format): the metadata becomes the
 * configuration and every tensor is dequantized once to float32 under its HuggingFace name, so
 * that model.c's Llama loader, the packing and the forward pass run on it as on a safetensors
 * checkpoint. The file is closed when this returns: the float32 copies are all that is kept,
 * and pack_layers frees each layer's matrices once packed.
 *
 * The reference is transformers' GGUF loader (modeling_gguf_pytorch_utils.py and
 * integrations/ggml.py), which reads the same keys: {arch}.block_count, embedding_length,
 * feed_forward_length, attention.head_count, attention.head_count_kv,
 * attention.layer_norm_rms_epsilon, rope.freq_base, rope.dimension_count, context_length. */
#define _DEFAULT_SOURCE /* madvise(MADV_DONTNEED), sysconf */
#include "model_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct gctx {
    ats_model *m;
    ats_gguf *g;
    const char *arch; /* the key prefix, "llama" */
    ats_error *err;
    ats_status rc;
    st_tensor *t; /* [cap] the tensors under their HuggingFace names */
    size_t n, cap;
} gctx;

/* Metadata integer {arch}.suffix in [lo, hi]; def < -1: required. */
static int meta_int(gctx *c, const char *suffix, long def, long lo, long hi) {
    if (c->rc) return 0;
    char key[128];
    snprintf(key, sizeof key, "%s.%s", c->arch, suffix);
    if (!ats_gguf_find_kv(c->g, key)) {
        if (def >= -1) return (int)def;
        c->rc = ats_error_set(c->err, ATS_ERR_FORMAT,
                              "%s: metadata key '%s' is missing (a %s model needs it)", c->g->path,
                              key, c->arch);
        return 0;
    }
    int64_t v;
    if ((c->rc = ats_gguf_get_int(c->g, key, &v, c->err))) return 0;
    if (v < lo || v > hi) {
        c->rc = ats_error_set(c->err, ATS_ERR_FORMAT,
                              "%s: metadata key '%s' = %lld is out of range [%ld, %ld]", c->g->path,
                              key, (long long)v, lo, hi);
        return 0;
    }
    return (int)v;
}

/* Metadata float {arch}.suffix, finite and > 0; required when def is NaN. */
static float meta_pos_f32(gctx *c, const char *suffix, float def) {
    if (c->rc) return def;
    char key[128];
    snprintf(key, sizeof key, "%s.%s", c->arch, suffix);
    if (!ats_gguf_find_kv(c->g, key)) {
        if (!isnan(def)) return def;
        c->rc = ats_error_set(c->err, ATS_ERR_FORMAT,
                              "%s: metadata key '%s' is missing (a %s model needs it)", c->g->path,
                              key, c->arch);
        return def;
    }
    float v;
    if ((c->rc = ats_gguf_get_f32(c->g, key, &v, c->err))) return def;
    if (!(v > 0.0f) || !isfinite(v)) {
        c->rc = ats_error_set(c->err, ATS_ERR_FORMAT, "%s: metadata key '%s' = %g must be > 0",
                              c->g->path, key, (double)v);
        return def;
    }
    return v;
}

/* A tensor's float32 copy under hf_name: gguf_name must have numpy shape [rows][cols] (cols = 0:
 * a vector [rows]). heads > 0 undoes llama.cpp's rotary row order for q / k (see unpermute). */
static float *add_tensor(gctx *c, const char *gguf_name, const char *hf_name, size_t rows,
                         size_t cols, size_t heads);

/* llama.cpp's converter (convert_hf_to_gguf.py, LlamaModel.permute) reorders the rows of q_proj
 * and k_proj of each head from HuggingFace's rotate_half layout, [2][dh/2] (the first half of
 * the rotated dimensions, then the second), to interleaved pairs, [dh/2][2], because ggml's
 * rotary kernel rotates adjacent pairs. transformers' GGUF loader undoes it
 * (LlamaTensorProcessor._reverse_permute_weights); so does this, so that the forward pass is
 * the HuggingFace one. w [heads·dh][d]; tmp [dh][d]. */
static void unpermute(float *w, float *tmp, size_t heads, size_t dh, size_t d) {
    size_t half = dh / 2;
    for (size_t h = 0; h < heads; h++) {
        float *blk = w + h * dh * d;
        memcpy(tmp, blk, dh * d * sizeof *tmp);
        /* file row 2i + j → HuggingFace row j·half + i */
        for (size_t i = 0; i < half; i++)
            for (size_t j = 0; j < 2; j++)
                memcpy(blk + (j * half + i) * d, tmp + (2 * i + j) * d, d * sizeof *tmp);
    }
}

/* Gives the file's pages of a converted tensor back: each tensor is read once and the private
 * mapping is never written, so the load holds the float32 copies without the file as well (a
 * later read would fault the bytes in again). */
static void release_pages(const ats_gguf *g, const ats_gguf_tensor *t) {
    if (!g->map) return;
    size_t page = 4096;
    long ps = sysconf(_SC_PAGESIZE);
    if (ps > 0) page = (size_t)ps;
    uintptr_t lo = (uintptr_t)t->data, hi = lo + t->nbytes;
    uintptr_t a = (lo + page - 1) / page * page, b = hi / page * page;
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);
}

static float *add_tensor(gctx *c, const char *gguf_name, const char *hf_name, size_t rows,
                         size_t cols, size_t heads) {
    if (c->rc) return NULL;
    const ats_gguf_tensor *t;
    if ((c->rc = ats_gguf_get_tensor(c->g, gguf_name, &t, c->err))) return NULL;
    int nd = cols ? 2 : 1;
    if (t->n_dims != nd || t->shape[0] != rows || (cols && t->shape[1] != cols)) {
        char want[64];
        if (cols)
            snprintf(want, sizeof want, "[%zu, %zu]", rows, cols);
        else
            snprintf(want, sizeof want, "[%zu]", rows);
        char got[96] = "";
        size_t gl = 0;
        for (int i = 0; i < t->n_dims; i++)
            gl += (size_t)snprintf(got + gl, sizeof got - gl, i ? ", %zu" : "%zu", t->shape[i]);
        c->rc = ats_error_set(c->err, ATS_ERR_FORMAT,
                              "%s: tensor '%s' has shape [%s], expected %s (from the metadata)",
                              c->g->path, gguf_name, got, want);
        return NULL;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 64;
        st_tensor *nt = realloc(c->t, cap * sizeof *nt);
        if (!nt) {
            c->rc = ats_error_set(c->err, ATS_ERR_NOMEM, "%s: out of memory", c->g->path);
            return NULL;
        }
        c->t = nt;
        c->cap = cap;
    }
    size_t bytes;
    float *p = NULL, *tmp = NULL;
    char *name = strdup(hf_name);
    if (ats_size_mul(t->count ? t->count : 1, sizeof(float), &bytes)) p = malloc(bytes);
    if (heads) tmp = malloc(rows / heads * cols * sizeof *tmp);
    /* owned from here: ats_model_free frees p even when a later step fails */
    if (!name || !p || (heads && !tmp) || !ats_model_own(c->m, p)) {
        free(name);
        free(p);
        free(tmp);
        c->rc = ats_error_set(c->err, ATS_ERR_NOMEM, "%s: out of memory for tensor '%s'",
                              c->g->path, gguf_name);
        return NULL;
    }
    c->rc = ats_gguf_tensor_to_f32(c->g, t, p, t->count, c->err);
    release_pages(c->g, t);
    if (!c->rc && heads) unpermute(p, tmp, heads, rows / heads, cols);
    free(tmp);
    if (c->rc) {
        free(name);
        return NULL;
    }
    st_tensor *s = &c->t[c->n++];
    memset(s, 0, sizeof *s);
    s->name = name;
    s->dtype = ST_F32;
    snprintf(s->dtype_name, sizeof s->dtype_name, "F32");
    s->ndim = nd;
    s->shape[0] = rows;
    s->shape[1] = cols;
    s->count = t->count;
    s->end = bytes;
    s->data = (const uint8_t *)p;
    return p;
}

/* The rotary frequencies base^(-2i/rot) in float32, as transformers computes them, then
 * llama.cpp's scalings: linear ({arch}.rope.scaling.type "linear" with .factor, or the older
 * {arch}.rope.scale_linear) divides them by the factor; a rope_freqs.weight tensor (Llama 3.1's
 * frequency factors) divides each by its factor. transformers' GGUF loader reads neither (it
 * would run such a file unscaled); llama.cpp, which wrote them, applies them as here. YaRN and
 * the others are refused. */
static void rope_from_gguf(gctx *c, float base) {
    ats_model *m = c->m;
    size_t half = (size_t)m->rotary_dim / 2;
    float *inv = malloc(half * sizeof *inv);
    if (!inv || !ats_model_own(m, inv)) {
        free(inv);
        c->rc = ats_error_set(c->err, ATS_ERR_NOMEM, "%s: out of memory", c->g->path);
        return;
    }
    m->inv_freq = inv;
    for (size_t i = 0; i < half; i++)
        inv[i] = 1.0f / powf(base, (float)(2 * i) / (float)m->rotary_dim);
    char key[128];
    snprintf(key, sizeof key, "%s.rope.scaling.type", c->arch);
    float factor = 1.0f;
    if (ats_gguf_find_kv(c->g, key)) {
        const char *s;
        size_t len;
        if ((c->rc = ats_gguf_get_str(c->g, key, &s, &len, c->err))) return;
        if (len == 6 && !memcmp(s, "linear", 6)) {
            factor = meta_pos_f32(c, "rope.scaling.factor", NAN);
        } else if (!(len == 4 && !memcmp(s, "none", 4))) {
            c->rc = ats_error_set(c->err, ATS_ERR_FORMAT,
                                  "%s: metadata key '%s' = \"%.*s\" is not supported (none, "
                                  "linear are)",
                                  c->g->path, key, (int)(len > 40 ? 40 : len), s);
            return;
        }
    } else {
        factor = meta_pos_f32(c, "rope.scale_linear", 1.0f);
    }
    if (c->rc) return;
    if (factor != 1.0f)
        for (size_t i = 0; i < half; i++) inv[i] = inv[i] / factor;
    const ats_gguf_tensor *rf = ats_gguf_find_tensor(c->g, "rope_freqs.weight");
    if (!rf) return;
    if (rf->n_dims != 1 || rf->shape[0] != half || !ats_gguf_type_supported(rf->type)) {
        c->rc = ats_error_set(c->err, ATS_ERR_FORMAT,
                              "%s: tensor 'rope_freqs.weight' must be %zu numbers (half the %d "
                              "rotary dimensions)",
                              c->g->path, half, m->rotary_dim);
        return;
    }
    float *f = malloc(half * sizeof *f);
    if (!f) {
        c->rc = ats_error_set(c->err, ATS_ERR_NOMEM, "%s: out of memory", c->g->path);
        return;
    }
    c->rc = ats_gguf_tensor_to_f32(c->g, rf, f, half, c->err);
    for (size_t i = 0; !c->rc && i < half; i++) {
        if (!(f[i] > 0.0f) || !isfinite(f[i]))
            c->rc = ats_error_set(c->err, ATS_ERR_FORMAT,
                                  "%s: tensor 'rope_freqs.weight'[%zu] = %g must be > 0",
                                  c->g->path, i, (double)f[i]);
        else
            inv[i] = inv[i] / f[i];
    }
    free(f);
}

/* The configuration of a "llama" file. */
static void config_llama(gctx *c) {
    ats_model *m = c->m;
    ats_model_info *I = &m->info;
    const int BIG = 1 << 24;
    I->arch = ATS_ARCH_LLAMA;
    snprintf(m->model_type, sizeof m->model_type, "llama");
    I->model_type = m->model_type;
    I->n_layers = meta_int(c, "block_count", -2, 0, 4096);
    I->d_model = meta_int(c, "embedding_length", -2, 1, BIG);
    I->d_ff = meta_int(c, "feed_forward_length", -2, 1, BIG);
    I->n_heads = meta_int(c, "attention.head_count", -2, 1, 4096);
    I->n_kv_heads = meta_int(c, "attention.head_count_kv", I->n_heads, 1, 4096);
    I->max_positions = meta_int(c, "context_length", -2, 1, BIG);
    I->eps = meta_pos_f32(c, "attention.layer_norm_rms_epsilon", NAN);
    float base = meta_pos_f32(c, "rope.freq_base", 10000.0f);
    if (c->rc) return;
    /* llama.cpp's head size is attention.key_length (= value_length), by default d / H */
    char kl[128];
    snprintf(kl, sizeof kl, "%s.attention.key_length", c->arch);
    if (!ats_gguf_find_kv(c->g, kl) && I->d_model % I->n_heads) {
        c->rc = ats_error_set(c->err, ATS_ERR_FORMAT,
                              "%s: %s.embedding_length %d is not a multiple of "
                              "%s.attention.head_count %d (and no %s)",
                              c->g->path, c->arch, I->d_model, c->arch, I->n_heads, kl);
        return;
    }
    int dh = meta_int(c, "attention.key_length", I->d_model / I->n_heads, 2, 1 << 16);
    int dv = meta_int(c, "attention.value_length", dh, 2, 1 << 16);
    int rot = meta_int(c, "rope.dimension_count", dh, 2, 1 << 16);
    if (c->rc) return;
    /* fewer rotary dimensions than the head size: ggml rotates the first pairs of the file's
     * interleaved order, which is no HuggingFace layout (transformers takes rope.dimension_count
     * as the head size), so only whole heads are supported */
    if (dv != dh || dh % 2 || rot != dh) {
        c->rc = ats_error_set(c->err, ATS_ERR_FORMAT,
                              "%s: head size %d (key) / %d (value) with %d rotary dimensions is "
                              "not supported (equal even sizes, every dimension rotated)",
                              c->g->path, dh, dv, rot);
        return;
    }
    if (I->n_heads % I->n_kv_heads) {
        c->rc = ats_error_set(c->err, ATS_ERR_FORMAT,
                              "%s: %s.attention.head_count %d is not a multiple of "
                              "%s.attention.head_count_kv %d",
                              c->g->path, c->arch, I->n_heads, c->arch, I->n_kv_heads);
        return;
    }
    I->d_head = dh;
    I->causal = 1;
    m->pre_ln = 1;
    m->rmsnorm = 1;
    m->gated_mlp = 1;
    m->act = ACT_SILU;
    m->rotary_dim = rot;
    rope_from_gguf(c, base);
}

/* token_embd, blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up,
 * ffn_down}, output_norm, output (absent: tied to token_embd, as transformers decides) */
static void tensors_llama(gctx *c) {
    ats_model *m = c->m;
    const ats_model_info *I = &m->info;
    size_t d = (size_t)I->d_model, f = (size_t)I->d_ff, H = (size_t)I->n_heads,
           Hkv = (size_t)I->n_kv_heads, qd = H * (size_t)I->d_head, kvd = Hkv * (size_t)I->d_head;
    /* the vocabulary is the tokenizer's token list, else the embedding's rows */
    size_t V = 0;
    const ats_gguf_tensor *emb = ats_gguf_find_tensor(c->g, "token_embd.weight");
    if (ats_gguf_find_kv(c->g, "tokenizer.ggml.tokens"))
        c->rc = ats_gguf_get_arr_len(c->g, "tokenizer.ggml.tokens", GGUF_V_STR, &V, c->err);
    else if (emb && emb->n_dims == 2)
        V = emb->shape[0];
    if (c->rc) return;
    if (V == 0 || V > ((size_t)1 << 24)) {
        c->rc =
            ats_error_set(c->err, ATS_ERR_FORMAT, "%s: vocabulary of %zu tokens", c->g->path, V);
        return;
    }
    m->info.vocab_size = (int)V;
    add_tensor(c, "token_embd.weight", "model.embed_tokens.weight", V, d, 0);
    char gn[96], hn[128];
    static const struct {
        const char *gguf, *hf;
        int kind; /* 0 norm [d], 1 q, 2 k, 3 v, 4 o, 5 gate/up, 6 down */
    } L[] = {{"attn_norm", "input_layernorm", 0},    {"attn_q", "self_attn.q_proj", 1},
             {"attn_k", "self_attn.k_proj", 2},      {"attn_v", "self_attn.v_proj", 3},
             {"attn_output", "self_attn.o_proj", 4}, {"ffn_norm", "post_attention_layernorm", 0},
             {"ffn_gate", "mlp.gate_proj", 5},       {"ffn_up", "mlp.up_proj", 5},
             {"ffn_down", "mlp.down_proj", 6}};
    for (int l = 0; l < I->n_layers && !c->rc; l++)
        for (size_t k = 0; k < sizeof L / sizeof L[0] && !c->rc; k++) {
            snprintf(gn, sizeof gn, "blk.%d.%s.weight", l, L[k].gguf);
            snprintf(hn, sizeof hn, "model.layers.%d.%s.weight", l, L[k].hf);
            switch (L[k].kind) {
            case 0:
                add_tensor(c, gn, hn, d, 0, 0);
                break;
            case 1:
                add_tensor(c, gn, hn, qd, d, H);
                break;
            case 2:
                add_tensor(c, gn, hn, kvd, d, Hkv);
                break;
            case 3:
                add_tensor(c, gn, hn, kvd, d, 0);
                break;
            case 4:
                add_tensor(c, gn, hn, d, qd, 0);
                break;
            case 5:
                add_tensor(c, gn, hn, f, d, 0);
                break;
            default:
                add_tensor(c, gn, hn, d, f, 0);
                break;
            }
            /* biases change the result and transformers' Llama has none: say so */
            snprintf(gn, sizeof gn, "blk.%d.%s.bias", l, L[k].gguf);
            if (!c->rc && ats_gguf_find_tensor(c->g, gn))
                c->rc = ats_error_set(c->err, ATS_ERR_FORMAT,
                                      "%s: tensor '%s': biases are not supported in a llama file",
                                      c->g->path, gn);
        }
    add_tensor(c, "output_norm.weight", "model.norm.weight", d, 0, 0);
    m->tie_embeddings = ats_gguf_find_tensor(c->g, "output.weight") == NULL;
    if (!m->tie_embeddings) add_tensor(c, "output.weight", "lm_head.weight", V, d, 0);
}

ats_status ats_model_gguf_read(ats_model *m, const char *path, ats_error *err) {
    gctx c = {m, NULL, NULL, err, ATS_OK, NULL, 0, 0};
    if ((c.rc = ats_gguf_open(path, &c.g, err))) return c.rc;
    const char *arch;
    size_t alen;
    c.rc = ats_gguf_get_str(c.g, "general.architecture", &arch, &alen, err);
    if (!c.rc && !(alen == 5 && !memcmp(arch, "llama", 5)))
        c.rc = ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: general.architecture \"%.*s\" is not supported (only llama: "
                             "Llama, SmolLM2, and others in its layout)",
                             path, (int)(alen > 40 ? 40 : alen), arch);
    c.arch = "llama";
    if (!c.rc) config_llama(&c);
    if (!c.rc) {
        m->layers = calloc((size_t)m->info.n_layers + 1, sizeof *m->layers);
        if (!m->layers) c.rc = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    }
    if (!c.rc) tensors_llama(&c);
    /* model.c's loader finds them by name, in m->st, as it finds a checkpoint's */
    m->st.tensors = c.t;
    m->st.count = c.n;
    m->st.path = strdup(path);
    if (!c.rc && !m->st.path) c.rc = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    if (!c.rc) qsort(m->st.tensors, m->st.count, sizeof *m->st.tensors, st_tensor_cmp_name);
    ats_gguf_close(c.g);
    return c.rc;
}
