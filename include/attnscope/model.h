/* attnscope model: load HuggingFace-format transformer models and run them on the CPU, keeping
 * every attention head.
 *
 * A model is a directory in HuggingFace layout (or a hub name, see hub.h): config.json and the
 * weights in model.safetensors (memory-mapped; every header offset, dtype and shape is checked
 * against the file; F32, F16 and BF16 tensors, the latter two converted to float32 at load; or
 * shards listed by model.safetensors.index.json), or
 * else pytorch_model.bin (PyTorch's zip checkpoint: the state dict's pickle is interpreted for
 * the subset state dicts use, the storages memory-mapped).
 * Architectures (config.json "model_type"): gpt2, bert, roberta (also xlm-roberta, camembert),
 * distilbert, vit, and the decoders llama (SmolLM2 among them), mistral, qwen2 and gpt_neox
 * (Pythia). Sentence models with the BERT architecture (all-MiniLM-L6-v2) load as bert.
 * Decoders with rotary position embeddings take rope_theta and the rope_scaling types "linear",
 * "dynamic" and "llama3" (others are refused; "dynamic" only changes the frequencies of inputs
 * longer than max_position_embeddings, which is the input limit here, so it runs as the
 * default); grouped-query attention is reported per query head, so H is the number of query
 * heads whatever the number of key/value heads.
 *
 * The forward pass follows transformers' eager implementation: attention probabilities are
 * softmax(Q Kᵀ / √d_head) computed explicitly and kept, [L][H][n][n], layers and heads 0-based in
 * the order of transformers' outputs.attentions; hidden states [L+1][n][d] are transformers'
 * outputs.hidden_states (the embeddings, then the output of every layer; for GPT-2 and the
 * decoders the last one is after the final norm, as in transformers).
 *
 * Threads: a model handle is read-only after loading except for its last-error message, so
 * several threads may run forward passes on one handle if they pass their own ats_error and
 * ignore ats_model_errmsg. attnscope's own kernels (on the kernel path of core.h) run the
 * layers' matrix products on weights packed at load, and the attention products; OpenBLAS runs
 * the language-model head's product with the vocabulary, and every product of a model whose
 * packed copy found no memory. OpenMP runs the rest. opt.n_threads sets both (OpenBLAS's thread
 * count is process-global: it is set with openblas_set_num_threads at the start of each forward
 * pass when n_threads > 0, so concurrent passes should leave n_threads at 0 and set the count
 * once beforehand). */
#ifndef ATTNSCOPE_MODEL_H
#define ATTNSCOPE_MODEL_H

#include "attnscope/core.h"
#include "attnscope/vision.h"

/* exported from the shared library (see core.h) */
#pragma GCC visibility push(default)
#ifdef __cplusplus
extern "C" {
#endif

typedef struct ats_model ats_model;

typedef enum ats_arch {
    ATS_ARCH_GPT2 = 1,
    ATS_ARCH_BERT = 2,
    ATS_ARCH_ROBERTA = 3,
    ATS_ARCH_DISTILBERT = 4,
    ATS_ARCH_VIT = 5,
    ATS_ARCH_LLAMA = 6,   /* RMSNorm, rotary, SwiGLU, grouped-query attention */
    ATS_ARCH_MISTRAL = 7, /* llama with a sliding attention window */
    ATS_ARCH_QWEN2 = 8,   /* llama with q/k/v biases and per-layer sliding windows */
    ATS_ARCH_GPT_NEOX = 9 /* Pythia: partial rotary, parallel residual, LayerNorm */
} ats_arch;

/* What a model is; every field read from config.json (and preprocessor_config.json for ViT). */
typedef struct ats_model_info {
    ats_arch arch;
    const char *model_type; /* "gpt2", "bert", ... (lives as long as the model) */
    const char *dir;        /* the resolved model directory */
    int n_layers;           /* L */
    int n_heads;            /* H (query heads) */
    int d_model;            /* d */
    int d_head;             /* d / H (or config.json's head_dim) */
    int d_ff;               /* width of the feed-forward layer */
    int vocab_size;         /* V (0 for ViT) */
    int max_positions;      /* longest input in tokens (ViT: patches + 1) */
    int causal;             /* 1 for the decoders: row i attends to keys 0..i only */
    int has_lm_head;        /* the checkpoint can compute a language-model loss */
    float eps;              /* layer norm epsilon */
    /* ViT only: images are resized to image_size × image_size, rescaled by rescale_factor and
     * normalised per channel with image_mean / image_std (ViTImageProcessor). */
    int image_size, patch_size, n_channels;
    int do_resize, do_rescale, do_normalize;
    double rescale_factor;
    float image_mean[3], image_std[3];
    int n_kv_heads; /* key/value heads: H, or fewer with grouped-query attention (query head h
                       reads key/value head h / (H / n_kv_heads)) */
} ats_model_info;

/* Loads a model from a directory in HuggingFace layout, a name in the HuggingFace cache, a
 * name downloaded from the hub (ats_model_locate, hub.h), or a GGUF file (llama.cpp's format;
 * architecture "llama", any type ats_gguf_tensor_to_f32 converts, dequantized to float32). On
 * failure *out is NULL and err says which file and tensor were wrong. */
ats_status ats_model_load(const char *name_or_path, ats_model **out, ats_error *err);
/* The same with a PEFT LoRA adapter merged into the weights at load (adapter_dir NULL: none).
 * adapter_dir holds adapter_config.json (peft_type "LORA": r, lora_alpha, use_rslora,
 * target_modules as a list of names or a regular expression, rank_pattern, alpha_pattern) and
 * adapter_model.safetensors (or adapter_model.bin) with base_model.model.<module>.lora_A.weight
 * [r][in] and .lora_B.weight [out][r] (an optional ".default" before ".weight"). Each named
 * module's weight W becomes W + s·B·A, s = lora_alpha / r (use_rslora: lora_alpha / √r), in
 * float32 before the weights are packed, so the forward pass is the merged model's. GPT-2's
 * Conv1D weights are [in][out] and take (B·A)ᵀ: that is fan_in_fan_out, which PEFT sets for them
 * whatever the config says; it does so here too. A module's name is matched to the checkpoint's
 * tensors with or without the base model's prefix ("transformer.", "model.", "bert.", ...), so
 * an adapter made on GPT2LMHeadModel fits a checkpoint saved from GPT2Model and back. Refused,
 * each with an error naming it: a missing file, a peft_type other than LORA, DoRA (use_dora),
 * trained biases (bias other than "none", lora_bias), modules_to_save, LoRA on embeddings or
 * convolutions, a target_modules entry or pattern that matches none of the adapter's modules, a
 * module that target_modules does not name or whose weight the model lacks, shapes that do not
 * fit the weight or the rank, and non-finite adapter values. */
ats_status ats_model_load_adapted(const char *name_or_path, const char *adapter_dir,
                                  ats_model **out, ats_error *err);
void ats_model_free(ats_model *m);

/* The model's description; lives as long as the model. */
const ats_model_info *ats_model_info_get(const ats_model *m);
/* The message of the last failed call on this handle ("" when none yet); it is only written when
 * a call fails, and lives until the next failing call. */
const char *ats_model_errmsg(const ats_model *m);

/* ---- forward pass */

/* Bits of ats_forward_options.capture: what the result keeps. */
#define ATS_CAPTURE_ATTENTION 1u /* attention probabilities [L][H][n][n] */
#define ATS_CAPTURE_SCORES                                                                         \
    2u                        /* pre-softmax scores Q Kᵀ/√d_head [L][H][n][n] (-inf where a    \
                                 causal model masks) */
#define ATS_CAPTURE_HIDDEN 4u /* hidden states [L+1][n][d] */
#define ATS_CAPTURE_LOGITS 8u /* language-model logits [n][V] (needs an LM head) */
/* the heads' outputs before the output projection [L][n][H·d_head]: head h's context vector of
 * token t is softmax(Q_h K_hᵀ/√d_head)[t] · V_h at columns h·d_head .. (what transformers'
 * self-attention returns as its context layer, after the head mask) */
#define ATS_CAPTURE_CONTEXT 16u

/* Receives layer `layer`'s attention probabilities att [H][n][n] of sequence `seq` (its index
 * in ats_model_forward_batch's inputs; 0 for ats_model_forward) as soon as the pass has computed
 * them (ats_forward_options.on_layer). att is valid during the call only: the pass reuses its
 * buffer for the next sequence and layer. The values are the bits the result's attention would
 * hold (ATS_CAPTURE_ATTENTION) for that layer. A non-OK return (with err set) stops the pass,
 * which fails with that status and err's message (ats_model_forward_batch adds "sequence k: "
 * when it runs the sequences one at a time, as to its other errors). */
typedef ats_status (*ats_layer_fn)(void *ctx, size_t seq, size_t layer, size_t n_heads, size_t n,
                                   const float *att, ats_error *err);

typedef struct ats_forward_options {
    unsigned capture;       /* ATS_CAPTURE_* bits */
    int n_threads;          /* threads for OpenBLAS and OpenMP; 0 leaves them as they are */
    int truncate;           /* inputs longer than max_positions: 0 = error, 1 = keep the first
                               max_positions tokens (result.n_truncated says how many went) */
    const float *head_mask; /* [L][H] or NULL: each head's probabilities are multiplied by its
                               entry before they weigh the values, as transformers' head_mask
                               (0 = the head contributes nothing; the reported attention of a
                               masked head is then 0, as transformers reports it) */
    int n_layers;           /* 0 (default): run every layer; k in 1..L: run layers 0..k-1 only,
                               the last of them up to its attention probabilities, for a study
                               of the early layers (the result then has n_layers = k; hidden
                               states, logits and labels need every layer and are an error) */
    int image_height,       /* ViT, ats_model_forward_image: 0 (default) resizes the image to the
                               model's image_size; > 0 to image_height × image_width instead, */
        image_width;        /* and the patch position embeddings are resized to the new grid
                               (transformers' interpolate_pos_encoding=True: bicubic) */
    int no_positions;       /* 1: the position embeddings are left out of the input embeddings
                               (as if their table were zero; rotary models: q and k are not
                               rotated), to see what attention does without them; 0 (default):
                               as the model is */
    int capture_layer,      /* 0 (default): the attention and scores of every layer are kept;
                               l + 1: of layer l alone, */
        capture_head;       /* and 0 (default): of every head; h + 1: of head h alone. The
                               result's attention / scores are then [1 or L][1 or H][n][n]
                               (n_layers and n_heads still say the model's). A causal model's
                               heads that are not kept run a block of rows at a time (the same
                               bits), so a long input never holds their [n][n]. */
    ats_layer_fn on_layer;  /* NULL (default), or called with each layer's attention [H][n][n]
                               as the pass computes it (each sequence's layers in order; a
                               stacked batch hands over layer l of every sequence before layer
                               l + 1): the pass then holds one layer's attention of one
                               sequence at a time (H·n² floats) besides what capture keeps, so
                               an analysis of every head need not keep L·H·n² (set capture
                               without ATS_CAPTURE_ATTENTION for that) */
    void *on_layer_ctx;     /* handed to on_layer unchanged */
    size_t on_layer_bytes;  /* memory on_layer needs while it runs (what it computes from a
                               layer), added to the pass's estimate before anything is
                               allocated, so that one check and one message cover both */
} ats_forward_options;

/* Sets opt to the defaults: capture attention only, threads and everything else untouched. */
void ats_forward_options_init(ats_forward_options *opt);

/* One token sequence. */
typedef struct ats_model_input {
    const int32_t *ids;            /* [n] vocabulary ids */
    const int32_t *token_type_ids; /* [n] segment ids (BERT), or NULL for all 0 */
    const int32_t *labels;         /* [n] or NULL: targets of the language-model loss, -100 =
                                      ignored. Causal models (GPT-2, the decoders): labels[i+1]
                                      is the target at position i (pass the ids themselves for
                                      next-token loss); masked-LM
                                      models: labels[i] is the target at position i. */
    size_t n;
} ats_model_input;

typedef struct ats_forward_result {
    size_t n_layers, n_heads, n_tokens, d_model, vocab_size; /* L, H, n, d, V */
    size_t n_truncated;                                      /* tokens dropped by opt.truncate */
    float *attention;                                        /* [L][H][n][n] or NULL */
    float *scores;                                           /* [L][H][n][n] or NULL */
    float *hidden;                                           /* [L+1][n][d] or NULL */
    float *logits;                                           /* [n][V] or NULL */
    double loss;       /* mean cross-entropy over the labelled positions; NaN without labels */
    size_t loss_count; /* positions that entered the loss */
    float *context;    /* [L][n][H·d_head] (ATS_CAPTURE_CONTEXT) or NULL */
} ats_forward_result;

/* Runs one token sequence. *res is overwritten (free it with ats_forward_result_free). Errors:
 * ids out of the vocabulary, token types out of range, too long without truncate, labels on a
 * model without an LM head, an image model; ATS_ERR_RANGE before anything is allocated when the
 * pass's estimated memory (what it keeps and its scratch, the weights aside) does not fit
 * ats_memory_available() (the message gives the estimate). */
ats_status ats_model_forward(ats_model *m, const ats_model_input *in,
                             const ats_forward_options *opt, ats_forward_result *res,
                             ats_error *err);

/* Runs count sequences one after another (no padding: each gets exactly what it would alone).
 * res is [count]; on failure every result is freed and err names the sequence. */
ats_status ats_model_forward_batch(ats_model *m, size_t count, const ats_model_input *in,
                                   const ats_forward_options *opt, ats_forward_result *res,
                                   ats_error *err);

/* ---- backward pass: gradient head importance (src/model/backward.c) */

/* The backward pass of a causal language model (GPT-2, Llama, Mistral, Qwen2): the gradient of
 * the mean next-token cross-entropy L of a text with respect to gates ξ_h, one per head, that
 * multiply each head's output before the output projection (equivalently its attention
 * probabilities, as head_mask), at ξ = 1. |∂L/∂ξ_h| averaged over texts is Michel et al.'s
 * (2019) head importance. The context holds the transposed weights packed for the backward's
 * products (as much memory again as the layers' weights); it is read-only after opening, so
 * threads may run passes on one context at once. */
typedef struct ats_backward ats_backward;

/* Errors: another architecture, no LM head, no memory. */
ats_status ats_backward_open(ats_model *m, ats_backward **out, ats_error *err);
void ats_backward_close(ats_backward *b);
/* One forward and one backward pass on in->ids (labels and token types are ignored: the
 * targets are the next tokens; at least 2 tokens, at most max_positions): grad[L][H] ←
 * ∂L/∂ξ_h (signed), *loss ← L (may be NULL). n_threads as ats_forward_options. */
ats_status ats_backward_run(ats_backward *b, const ats_model_input *in, int n_threads, float *grad,
                            double *loss, ats_error *err);

/* ViT: runs one preprocessed image, pixels [C][S][S] with S = image_size (see vision.h,
 * ats_image_preprocess). n = (S / patch)² + 1 tokens, [CLS] first. */
ats_status ats_model_forward_pixels(ats_model *m, const float *pixels,
                                    const ats_forward_options *opt, ats_forward_result *res,
                                    ats_error *err);
/* prep ← the model's ViTImageProcessor settings (preprocessor_config.json): size, resize,
 * rescale, normalisation; height and width 0 (the model's square size). */
void ats_model_image_prep(const ats_model *m, ats_image_prep *prep);

/* The same on pixels [C][height][width]: a grid of (height / patch) × (width / patch) patches
 * (the remainder dropped, as the patch convolution does), and when it is not the model's
 * square grid the position embeddings interpolated as transformers' interpolate_pos_encoding. */
ats_status ats_model_forward_pixels_hw(ats_model *m, const float *pixels, size_t height,
                                       size_t width, const ats_forward_options *opt,
                                       ats_forward_result *res, ats_error *err);

/* ViT: decodes a PNG/JPEG/BMP/... file, preprocesses it as the model's ViTImageProcessor does and
 * runs it. */
ats_status ats_model_forward_image(ats_model *m, const char *path, const ats_forward_options *opt,
                                   ats_forward_result *res, ats_error *err);

/* Frees the arrays of a result and zeroes it (a zeroed result is fine). */
void ats_forward_result_free(ats_forward_result *res);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop
#endif
