/* Internals of the model runtime: the safetensors reader, the model struct, the kernels. */
#ifndef ATS_MODEL_INTERNAL_H
#define ATS_MODEL_INTERNAL_H

#include "attnscope/model.h"

#include <stddef.h>
#include <stdint.h>

/* ---- safetensors */

typedef enum st_dtype { ST_F32 = 0, ST_F16 = 1, ST_BF16 = 2, ST_OTHER = 3 } st_dtype;

#define ST_MAX_DIMS 8

typedef struct st_tensor {
    char *name;
    st_dtype dtype;
    char dtype_name[12];
    int ndim;
    size_t shape[ST_MAX_DIMS];
    size_t count;        /* product of shape */
    size_t begin, end;   /* byte range inside the data section */
    const uint8_t *data; /* points into the file's data section */
} st_tensor;

typedef struct ats_safetensors {
    char *path;
    void *map; /* the whole file, mmap'd (NULL when parsed from a caller's buffer) */
    size_t map_len;
    size_t count;
    st_tensor *tensors; /* [count] sorted by name */
} ats_safetensors;

/* Parses a safetensors image buf[len] (the whole file). The tensors point into buf, which must
 * outlive st. name is used in error messages. Checks: header length within the file, header is
 * a JSON object of {dtype, shape, data_offsets}, offsets within the data section, byte size =
 * elements × dtype size, no two tensors overlapping, no duplicate names. */
ats_status ats_safetensors_parse(const uint8_t *buf, size_t len, const char *name,
                                 ats_safetensors *st, ats_error *err);
/* Maps and parses a file. */
ats_status ats_safetensors_open(const char *path, ats_safetensors *st, ats_error *err);
void ats_safetensors_close(ats_safetensors *st);
const st_tensor *ats_safetensors_find(const ats_safetensors *st, const char *name);
/* qsort comparison of st_tensor by name */
int st_tensor_cmp_name(const void *a, const void *b);

/* Maps a PyTorch zip checkpoint (pytorch_model.bin) and presents its state dict's tensors as an
 * ats_safetensors (close with ats_safetensors_close). Only stored (uncompressed) entries and
 * contiguous tensors, as torch.save writes them. */
ats_status ats_torchbin_open(const char *path, ats_safetensors *st, ats_error *err);
/* The same on an archive in memory buf[len] (which must outlive st). */
ats_status ats_torchbin_parse(const uint8_t *buf, size_t len, const char *path, ats_safetensors *st,
                              ats_error *err);

#include "attnscope/gguf.h" /* the GGUF reader (src/core/gguf.c) */

/* ---- model */

/* A weight matrix stored once in the order src/model/gemm.c's kernels read it:
 * p = [ceil(o/48)][i][48] panels of 48 output columns (zero past o), 64-byte aligned. */
typedef struct packed_w {
    float *p; /* NULL: not packed (no memory for it, or tests); OpenBLAS uses the original */
    size_t i, o;
} packed_w;

typedef struct layer_weights {
    /* GPT-2: ln_1; ViT: layernorm_before; BERT family: the layer norm after attention */
    const float *ln1_w, *ln1_b;
    /* q, k, v: Linear [d][d] (BERT family, ViT) each; GPT-2: wq = c_attn [d][3d] (Conv1D) */
    const float *wq, *bq, *wk, *bk, *wv, *bv;
    const float *wo, *bo;       /* attention output: Linear [d][d] or Conv1D [d][d] */
    const float *ln2_w, *ln2_b; /* GPT-2 ln_2, ViT layernorm_after, BERT output LayerNorm */
    const float *w1, *b1;       /* feed-forward in: Linear [f][d] or Conv1D [d][f] */
    const float *w2, *b2;       /* feed-forward out: Linear [d][f] or Conv1D [f][d] */
    /* packed: pq = q|k|v side by side, [d][3d] (GPT-2's c_attn; BERT family and ViT: their
     * three Linear matrices), with bias bqkv [3d] or NULL; po, p1, p2 = wo, w1, w2 */
    packed_w pq, po, p1, p2;
    const float *bqkv;
    /* decoders (Llama family, GPT-NeoX): q, k, v are Linear [H·dh][d], [Hkv·dh][d], [Hkv·dh][d]
     * and pq packs them side by side, [d][(H + 2·Hkv)·dh]; wo is [d][H·dh]. SwiGLU: w1 =
     * gate_proj [f][d], w3 = up_proj [f][d], w2 = down_proj [d][f]; p1 packs gate|up, [d][2f],
     * with bias bgu [2f] or NULL. */
    const float *w3, *b3, *bgu;
    int window; /* sliding attention window (Mistral, Qwen2): row i sees keys i-window+1..i; 0:
                   every earlier key */
} layer_weights;

typedef enum act_kind { ACT_GELU, ACT_GELU_TANH, ACT_RELU, ACT_SILU, ACT_GELU_QUICK } act_kind;

struct ats_model {
    ats_model_info info;
    char *dir;
    char model_type[32];
    char errmsg[ATS_ERROR_MESSAGE_MAX];
    ats_safetensors st;      /* the weights (for a sharded checkpoint: all shards' tensors) */
    ats_safetensors *shards; /* [n_shards] the mapped shards of a sharded checkpoint */
    size_t n_shards;
    act_kind act;
    int conv1d;         /* GPT-2's Conv1D layout: y = x W with W [in][out] */
    int pre_ln;         /* GPT-2, ViT */
    int type_vocab;     /* BERT token types (0: none) */
    int pad_id;         /* RoBERTa position offset */
    int scale_by_layer; /* GPT-2 scale_attn_by_inverse_layer_idx */
    int scale_attn;     /* GPT-2 scale_attn_weights */
    /* embeddings */
    const float *tok_emb;             /* [V][d] */
    const float *pos_emb;             /* [P][d] */
    const float *type_emb;            /* [T][d] or NULL */
    const float *emb_ln_w, *emb_ln_b; /* BERT family embedding LayerNorm */
    const float *patch_w, *patch_b;   /* ViT [d][C][p][p], [d] */
    const float *cls_tok;             /* ViT [d] */
    layer_weights *layers;            /* [L] */
    const float *lnf_w, *lnf_b;       /* GPT-2 ln_f, ViT layernorm */
    /* masked-LM head: dense [d][d] + act + LayerNorm, decoder tied to tok_emb, bias [V] */
    const float *mlm_w, *mlm_b, *mlm_ln_w, *mlm_ln_b, *mlm_bias;
    const float *lm_dec; /* [V][d] output embedding (tied: tok_emb); NULL: no LM head */
    int mlm_transform;   /* the masked-LM head has the dense + act + LayerNorm transform */
    float mlm_eps;
    /* decoders (Llama family, GPT-NeoX) */
    int rmsnorm;           /* RMSNorm (weight, no bias) instead of LayerNorm */
    int gated_mlp;         /* act(gate) · up, then down */
    int parallel_residual; /* GPT-NeoX: x + attn(LN1(x)) + mlp(LN2(x)) */
    int rotary_dim;        /* dimensions of each head rotated (0: no rotary embeddings) */
    unsigned bias;         /* which linear layers have biases: 1 q/k/v, 2 attention output, 4 MLP */
    int tie_embeddings;    /* the LM head is the input embedding (tie_word_embeddings) */
    float *inv_freq;       /* [rotary_dim / 2] rotary frequencies, rope_scaling applied */
    float *packed; /* every layer's packed matrices (layer_weights' packed_w point into it) */
    /* float32 copies of F16/BF16 or unaligned tensors */
    float **owned;
    size_t n_owned, cap_owned;
};

/* Adds p to the model's owned float32 copies (freed with the model, or by pack_layers once
 * packed); 0: no memory (p is not owned then). */
int ats_model_own(ats_model *m, float *p);

/* A GGUF file (src/model/model_gguf.c): m->info and the model's flags from its metadata, and
 * m->st ← every tensor the Llama loader reads, dequantized to owned float32 copies under their
 * HuggingFace names (model.layers.N.self_attn.q_proj.weight, ...), q and k rows back in
 * HuggingFace's order; m->layers allocated. The file is closed before it returns. Errors name
 * the file and the key or tensor: an architecture other than llama, a missing key or tensor, a
 * shape that disagrees with the metadata, a type that does not convert. */
ats_status ats_model_gguf_read(ats_model *m, const char *path, ats_error *err);

/* ---- model.c's helpers, shared with adapter.c */

struct cJSON;
/* *out ← the JSON object in the file (delete with cJSON_Delete); errors name the file. */
ats_status ats_model_read_json(const char *path, struct cJSON **out, ats_error *err);
/* 1 when p is a regular file */
int ats_model_file_exists(const char *p);
/* dir/file in new memory (free it); NULL: no memory. */
char *ats_model_path_join(const char *dir, const char *file);
/* out[t->count] ← the tensor's F32, F16 or BF16 values as float32 (t->dtype is not ST_OTHER). */
void ats_model_tensor_f32(const st_tensor *t, float *out);
/* The prefixes a base model's tensor names may carry ("", "transformer.", "bert.", ...),
 * NULL-terminated. */
extern const char *const ATS_MODEL_PREFIXES[];

/* Gives the whole pages of p[bytes] back to the kernel when they lie in one of the model's
 * mapped files (read-only private mappings: a later read faults the file's bytes in again). */
void ats_model_release_mapped(const ats_model *m, const void *p, size_t bytes);
/* 1 when p is one of the model's owned float32 copies */
int ats_model_owns(const ats_model *m, const float *p);

/* Merges the PEFT LoRA adapter in directory dir (src/model/adapter.c) into m->st before the
 * loaders read it: each adapted tensor of m->st is replaced by an owned float32 copy of W + s·BA.
 * Errors name the adapter's file, module or tensor. */
ats_status ats_model_adapter_merge(ats_model *m, const char *dir, ats_error *err);

/* Records the message in err and in the model's last error; returns status. */
ats_status ats_model_fail(ats_model *m, ats_error *err, ats_status st, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* ---- the packed matrix product (src/model/gemm.c, gemm_x86.c, gemm_neon.c) */

#define K_NR 48 /* output columns per panel: three 16-float AVX-512 vectors */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define K_HAVE_X86 1 /* the avx2 and avx512 kernels are built */
#else
#define K_HAVE_X86 0
#endif
#if defined(__aarch64__)
#define K_HAVE_NEON 1 /* the neon kernels are built */
#else
#define K_HAVE_NEON 0
#endif

/* One panel of a product: c[n][nc] (row stride ldc) = bias[nc] (0 when NULL) + a[n][K] (row
 * stride lda) · panel[K][K_NR], for nc ≤ K_NR columns (panel lanes past nc are zero). */
typedef void (*k_panel_fn)(float *c, size_t ldc, const float *a, size_t lda, const float *panel,
                           size_t n, size_t K, size_t nc, const float *bias);
void k_panel_generic(float *c, size_t ldc, const float *a, size_t lda, const float *panel, size_t n,
                     size_t K, size_t nc, const float *bias);
#if K_HAVE_X86
void k_panel_avx2(float *c, size_t ldc, const float *a, size_t lda, const float *panel, size_t n,
                  size_t K, size_t nc, const float *bias);
void k_panel_avx512(float *c, size_t ldc, const float *a, size_t lda, const float *panel, size_t n,
                    size_t K, size_t nc, const float *bias);
#endif
#if K_HAVE_NEON
void k_panel_neon(float *c, size_t ldc, const float *a, size_t lda, const float *panel, size_t n,
                  size_t K, size_t nc, const float *bias);
#endif

/* 1 unless tests turned packing off (k_gemm_force_fallback): every kernel path runs packed */
int k_gemm_available(void);
/* tests: 1 makes k_gemm_available() return 0, so models load unpacked and use OpenBLAS */
void k_gemm_force_fallback(int off);
/* Floats that the packed form of an i × o matrix takes (a multiple of 16); 0: too large. */
size_t k_pack_count(size_t i, size_t o);
/* Packs W Linear [o][i] (conv1d = 0) or Conv1D [i][ldw] (its first o columns) into
 * p[k_pack_count(i, o)], 64-byte aligned. */
void k_pack_into(packed_w *pw, float *p, const float *w, size_t ldw, size_t i, size_t o,
                 int conv1d);
/* The same into memory of its own (free with k_pack_free); 0: no memory. */
int k_pack(packed_w *pw, const float *w, size_t ldw, size_t i, size_t o, int conv1d);
void k_pack_free(packed_w *pw);
/* out[n][o'] (row stride ldo) = in[n][i] (row stride ldi) · W + b[o'] for the first
 * o' ≤ pw->o columns of W; b may be NULL. Runs on the kernel path in use. */
void k_linear_packed(float *out, size_t ldo, const float *in, size_t ldi, const packed_w *pw,
                     const float *b, size_t n, size_t o_used);
/* Causal attention (one thread): s[n][n] (row stride lds) = q[n][K] · Kᵀ (kt packed [K][n])
 * where j ≤ r, entries above the diagonal partly left unset; out[n][o] = p[n][n] · V (v packed
 * [n][o]) for p zero above the diagonal. The same bits as k_linear_packed where computed. */
void k_linear_packed_lower(float *s, size_t lds, const float *q, size_t ldq, const packed_w *kt,
                           size_t n);
void k_linear_packed_tril(float *out, size_t ldo, const float *p, size_t ldp, const packed_w *v,
                          size_t n, size_t o);
/* The same for the rows r0 .. r0+rows-1 alone (r0 a multiple of K_NR, rows ≤ K_NR), the same
 * bits: s[rows][lds] receives those rows of the scores; out's rows r0 .. from p_rows[rows][ldp].
 * A head whose probabilities are not kept runs block by block in K_NR × n floats. */
void k_linear_packed_lower_rows(float *s, size_t lds, const float *q, size_t ldq,
                                const packed_w *kt, size_t n, size_t r0, size_t rows);
void k_linear_packed_tril_rows(float *out, size_t ldo, const float *p_rows, size_t ldp,
                               const packed_w *v, size_t r0, size_t rows, size_t o);

/* ---- kernels (src/model/kernels.c) */

/* out[n][o] = in[n][i] · Wᵀ + b with W Linear [o][i], or in · W with W Conv1D [i][o] */
void k_linear_ld(float *out, size_t ldo, const float *in, const float *w, size_t ldw,
                 const float *b, size_t n, size_t i, size_t o, int conv1d);
void k_linear(float *out, const float *in, const float *w, const float *b, size_t n, size_t i,
              size_t o, int conv1d);
/* x[n][d] ← LayerNorm(x) · w + b over each row (biased variance, as torch) */
void k_layernorm(float *out, const float *x, const float *w, const float *b, size_t n, size_t d,
                 float eps);
/* x[count] ← act(x) */
void k_activation(float *x, size_t count, act_kind act);
/* each of the rows[r][n] ← softmax(row) (rows may contain -inf, not all of them) */
void k_softmax_rows(float *x, size_t rows, size_t n);
/* x[count] += y[count] */
void k_add(float *x, const float *y, size_t count);
/* out[n][o] (row stride ldo) = in[n][i] (row stride ldi) · Wᵀ + b, W Linear [o][i] (OpenBLAS) */
void k_linear_strided(float *out, size_t ldo, const float *in, size_t ldi, const float *w,
                      const float *b, size_t n, size_t i, size_t o);
/* out[n][d] = x / sqrt(mean(x²) + eps) · w[d] per row (Llama's RMSNorm); out may be x */
void k_rmsnorm(float *out, const float *x, const float *w, size_t n, size_t d, float eps);
/* Rotary position embeddings in place on x[n][ld], heads of dh floats at columns h·dh for
 * h < heads: the first rot of each head's dimensions, as halves (i, i + rot/2), rotate by
 * angle pos · inv_freq[i] with cos, sin [n][rot/2] (row r at position r) */
void k_rotary(float *x, size_t ld, size_t n, size_t heads, size_t dh, size_t rot, const float *cos,
              const float *sin);
/* gu[n][2f] = gate | up per row: gate ← act(gate) · up (the down projection reads gu[:, :f]) */
void k_gated(float *gu, size_t n, size_t f, act_kind act);

#endif
