/* attnscope analysis: the workflows that combine the modules — a model with its tokenizer, the
 * attention of texts with their token labels, the topology of two texts compared head by head
 * (or of one text across two models, every head against every head),
 * the distances between heads over a streamed corpus and the syntactic heads measured against
 * gold dependency trees — as library calls, so that the
 * command-line tool, the viewer and Python compute the same numbers by construction.
 *
 * Conventions (as everywhere in attnscope): every call returns ats_status and explains a failure
 * in an optional ats_error; an options struct is filled with its _init function and then
 * changed field by field, so that fields added later get their defaults; a result struct is
 * owned by the caller and released with its _free function (safe on a zeroed or freed result).
 * Layers and heads are 0-based, as transformers' outputs.attentions. */
#ifndef ATTNSCOPE_ANALYSIS_H
#define ATTNSCOPE_ANALYSIS_H

#include "attnscope/core.h"
#include "attnscope/measure.h"
#include "attnscope/model.h"
#include "attnscope/render.h"
#include "attnscope/rips.h"
#include "attnscope/tokenizer.h"
#include "attnscope/vision.h"

#include <stdint.h>
#include <stdio.h>

/* The shared library exports what the public headers declare and nothing else (hidden
 * visibility): this header marks its declarations. */
#pragma GCC visibility push(default)
#ifdef __cplusplus
extern "C" {
#endif

/* ---- a session: a model and its tokenizer, loaded once and used for many calls */

typedef struct ats_session ats_session;

/* Loads a model (directory in HuggingFace layout or cached hub name, as ats_model_load) and,
 * for a text model, its tokenizer. A vision model opens without a tokenizer: the calls that take
 * texts then fail with ATS_ERR_INVALID. */
ats_status ats_session_open(const char *name_or_path, ats_session **out, ats_error *err);
/* The same with a PEFT LoRA adapter merged into the model at load (adapter_dir NULL: none; see
 * ats_model_load_adapted in model.h). */
ats_status ats_session_open_adapted(const char *name_or_path, const char *adapter_dir,
                                    ats_session **out, ats_error *err);
void ats_session_close(ats_session *s);
/* The session's model and tokenizer (NULL for a vision model); they live as long as it. */
ats_model *ats_session_model(const ats_session *s);
ats_tokenizer *ats_session_tokenizer(const ats_session *s);
/* The message of the last failed call on this session ("" when none yet), as ats_model_errmsg:
 * for callers that do not pass an ats_error. Calls on one session may run on several threads at
 * once (the viewer does); the message is then the last failure's to finish, so such callers read
 * their own ats_error instead. */
const char *ats_session_errmsg(const ats_session *s);

/* ---- the attention of one input, with its token labels */

typedef struct ats_attention {
    size_t L, H, n; /* layers, heads, tokens */
    float *att;     /* [L][H][n][n] attention weights; layers the pass did not run are NaN */
    float *hidden;  /* [L+1][n][d] hidden states, or NULL */
    size_t d;       /* hidden width (0 without hidden states) */
    char **labels;  /* [n] display labels: the text each token covers (ats_token_labels,
                       tokenizer.h), or the
                       lines of a label file, or "0", "1", ... */
    char *name;     /* "text 1", or the file the attention was read from */
} ats_attention;

typedef struct ats_run_options {
    int n_threads;     /* threads of the forward pass; 0: all cores */
    int truncate;      /* 1: cut texts longer than the model's maximum (default: an error) */
    int want_hidden;   /* 1: keep the hidden states too */
    int n_layers;      /* > 0: stop after this many layers (the others are NaN); default 0: all */
    int capture_layer, /* 0 (default): keep every layer's attention; l + 1: layer l alone, */
        capture_head;  /* 0 (default): every head's; h + 1: head h alone. The attention is then
                          [1 or L][1 or H][n][n] (L, H of ats_attention say which): a long
                          input's other heads are never held (ats_forward_options) */
    ats_layer_fn on_layer; /* NULL (default), or each layer's attention [H][n][n] of text t (its
                              sequence t) handed over as the pass computes it, and not kept
                              (ats_forward_options.on_layer, model.h): one layer of one text is
                              held at a time, and out's att is NULL (L, H, n, labels and name as
                              ever). Not with capture_layer / capture_head. Its error ends the
                              run with its status and message as it gave them */
    void *on_layer_ctx;    /* handed to on_layer */
    size_t on_layer_bytes; /* as ats_forward_options.on_layer_bytes: counted in the estimate */
} ats_run_options;

void ats_run_options_init(ats_run_options *o);

/* Runs count texts (UTF-8, not empty) through the session's model in one batched pass (each
 * result bit for bit its own pass) and fills out[count]; the inputs are named "text 1", ...,
 * and an error of text k names it. On failure nothing is left allocated in out. */
ats_status ats_session_run(ats_session *s, size_t count, const char *const *texts,
                           const ats_run_options *o, ats_attention *out, ats_error *err);
/* Reads attention computed elsewhere: an .npy of float32 or float64, [L][H][n][n] or [n][n]
 * (narrowed to float), and labels_path (one label a line, exactly n lines, each shown as
 * ats_token_label shows a token: "Ġthe" reads "the") or NULL for "0",
 * "1", ... . The input is named after the file. */
ats_status ats_attention_read(const char *npy_path, const char *labels_path, ats_attention *out,
                              ats_error *err);
void ats_attention_free(ats_attention *a);
/* The head (l, h) as a measure-module view [1][1][n][n] borrowing a->att. */
ats_attn ats_attention_head(const ats_attention *a, size_t l, size_t h);
/* The head (l, h) as doubles, as the renderers take it: out [n][n]. */
void ats_attention_head_values(const ats_attention *a, size_t l, size_t h, double *out);

/* The seed notebook's token distance: its distance cell has two versions. */
typedef enum ats_seed_distance {
    ATS_SEED_OFF = 0,      /* not the seed's: the Jensen–Shannon distance, base 2 */
    ATS_SEED_SQRT_JSD = 1, /* its later cell: √(scipy JS distance, base e) of softmaxed rows */
    ATS_SEED_JSD = 2       /* its first cell: scipy's JS distance (base e) of softmaxed rows */
} ats_seed_distance;

/* The token metric of head (l, h): the Jensen–Shannon distance (base 2) between the tokens'
 * attention rows, or the seed notebook's (seed_compat an ats_seed_distance; 1 is its later
 * cell, √ of scipy's JS distance of softmaxed rows); max_error as ats_measure_opts.max_error
 * (0: exact); n_threads as ats_measure_opts.n_threads (0: all cores; 1 inside a caller's own
 * parallel loop). full: double [n][n] or NULL when not wanted; lower: double [n(n-1)/2], the
 * symmetric metric's lower triangle as ats_rips_compute takes it. The result does not depend on
 * n_threads. */
ats_status ats_head_metric(const ats_attention *a, size_t l, size_t h, int seed_compat,
                           double max_error, int n_threads, double *full, double *lower,
                           ats_error *err);

/* ---- the token topology of one head */

/* How a head's tokens become a metric space. */
typedef enum ats_head_distance {
    ATS_HEAD_JSD = 0,  /* the Jensen–Shannon distance (base 2) between the tokens' rows */
    ATS_HEAD_SEED = 1, /* the seed notebook's √(scipy JS distance, base e) of softmaxed rows */
    ATS_HEAD_JS = 2,   /* the JS divergence (bits) between rows, symmetrised; not a metric */
    ATS_HEAD_KL = 3,   /* the KL divergence (bits, eps 1e-9) symmetrised as (KL(i,j)+KL(j,i))/2 */
    ATS_HEAD_SEED_JSD = 4 /* the seed notebook's first distance cell: scipy's JS distance (base
                             e) of softmaxed rows (ATS_HEAD_SEED is its later cell, the √) */
} ats_head_distance;

#define ATS_TOPO_MAX_SCALES 16

typedef struct ats_topo_options {
    long layer, head; /* the head (required) */
    int distance;     /* ats_head_distance (default ATS_HEAD_JSD) */
    int max_dim;      /* diagrams H0..max_dim, 0..3 (default 2); H1 cycles when >= 1 */
    double threshold; /* largest Rips diameter (default +inf: the enclosing radius) */
    size_t n_scales;  /* scales for the clusters; 0 (default): the 10 %, 25 % and 50 %
                         quantiles of the distances */
    double scales[ATS_TOPO_MAX_SCALES];
    int layout_iters;       /* steps of the 3-D force layout at the largest scale (default 150);
                               0: no layout */
    const char *points;     /* what the points are, for messages (default "tokens") */
    int n_threads;          /* threads of the distances (ATS_HEAD_JS/KL); 0: all cores */
    ats_cancel_fn cancel;   /* polled (core.h) between the steps and inside the persistence
                               computation: non-zero stops with ATS_ERR_CANCELLED; NULL: never */
    void *cancel_ctx;       /* handed to cancel */
    double memory_limit_gb; /* the persistence computation's limit (ats_rips_options): a head
                               estimated to need more is refused with ATS_ERR_RANGE and the
                               estimate; 0 (default): the machine's physical memory */
} ats_topo_options;

typedef struct ats_topo_result {
    size_t n;                  /* tokens */
    double *full;              /* [n][n] the distance (or divergence) matrix */
    double *lower;             /* [n(n-1)/2] the metric's lower triangle (ats_lower) */
    double dmin, dmax, median; /* of the n(n-1)/2 distances (0 for n < 2) */
    ats_rips_result rips;      /* persistence H0..max_dim, H1 cycles */
    size_t n_scales;           /* scales (given or default) */
    double scales[ATS_TOPO_MAX_SCALES];
    int32_t *clusters; /* [n_scales][n] single-linkage cluster of each token */
    size_t n_clusters[ATS_TOPO_MAX_SCALES];
    double *layout; /* [n][3] force layout, or NULL without one */
} ats_topo_result;

/* The scales at which to cut a metric into clusters: the n_given given ones (at most
 * ATS_TOPO_MAX_SCALES), each checked to lie in the diagram's range [0, min(largest distance,
 * threshold)] (the error names the input `name` and what its `points` are), or without any the
 * 10 %, 25 % and 50 % quantiles of the distances, where the clusters change most (one scale, 0,
 * for fewer than two points). scales has room for ATS_TOPO_MAX_SCALES. */
ats_status ats_topo_scales(const ats_lower *metric, double threshold, const double *given,
                           size_t n_given, const char *name, const char *points, double *scales,
                           size_t *n_scales, ats_error *err);
void ats_topo_options_init(ats_topo_options *o);
/* The token topology of head (layer, head) of a: the metric, its Vietoris–Rips persistence, the
 * clusters at the scales and a 3-D layout — what `attnscope topo` writes and the viewer shows.
 * A scale above the largest distance (or the threshold) is an error naming the input. */
ats_status ats_topo(const ats_attention *a, const ats_topo_options *o, ats_topo_result *res,
                    ats_error *err);
void ats_topo_result_free(ats_topo_result *res);

/* ---- one head as a graph, and its token divergences (`attnscope graph`, `divergence`)
 *
 * Each call takes the attention of one input and, besides its arrays, draws its figures when
 * asked: figure paths given (the format by the extension; the file is written atomically), or
 * with fig.memory set drawn into memory (the path then only names the figure in messages).
 * The figures' labels are the input's token labels. */

typedef struct ats_head_graph_options {
    long layer, head;       /* the head (required) */
    double min_weight;      /* the edges: weights >= min_weight and > 0 (default 0.05) */
    int directed;           /* 1: the weights as they are, directed, even for a causal head */
    int seed_compat;        /* a causal head is made symmetric and drawn undirected: 0 (default) as
                               (A + Aᵀ)/2; 1 as the seed notebook does, its lower triangle copied
                               up (W[j][i] = W[i][j] = A[i][j] for i > j). Not with directed. */
    const char *figure;     /* NULL (default): no figure; else the graph on a circle */
    ats_figure_options fig; /* its title (NULL: none), size, memory */
} ats_head_graph_options;

typedef struct ats_head_graph_result {
    size_t n;        /* tokens */
    int symmetrized; /* 1: the head is causal and was made symmetric; the graph is undirected */
    double *weights; /* [n][n] the weights drawn */
    size_t n_edges;
    size_t *edges; /* [n_edges][2] (i, j) of each edge drawn, row by row (undirected: i > j) */
} ats_head_graph_result;

void ats_head_graph_options_init(ats_head_graph_options *o);
/* The attention of head (layer, head) of a as a weighted graph: a head is causal when its
 * weights above the diagonal are all 0. */
ats_status ats_head_graph(const ats_attention *a, const ats_head_graph_options *o,
                          ats_head_graph_result *res, ats_error *err);
void ats_head_graph_result_free(ats_head_graph_result *res);

/* The figures of ats_head_divergences. */
typedef enum ats_divergence_figure {
    ATS_DIVFIG_KL = 0,      /* the KL matrix as a heatmap */
    ATS_DIVFIG_JS = 1,      /* the JS matrix as a heatmap */
    ATS_DIVFIG_ENTROPY = 2, /* the entropy of each token's row as a one-row heatmap */
    ATS_DIVFIG_COUNT = 3
} ats_divergence_figure;

typedef struct ats_head_divergences_options {
    long layer, head;                      /* the head (required) */
    int base;                              /* an ats_log_base (default ATS_BASE_2) */
    double eps;                            /* KL smoothing (default 1e-9, the seed's) */
    int seed_compat;                       /* 1: the seed notebook's measures of softmaxed rows, as
                                              ats_measure_opts.seed_compat (entropy in nats, KL in bits, JS = scipy's
                                              JS distance in nats); base and eps are then not used */
    int n_threads;                         /* 0: all cores */
    const char *figures[ATS_DIVFIG_COUNT]; /* per ats_divergence_figure: NULL (default) for none */
    ats_figure_options fig[ATS_DIVFIG_COUNT];
} ats_head_divergences_options;

typedef struct ats_head_divergences_result {
    size_t n;        /* tokens */
    double *entropy; /* [n] entropy of each token's attention row */
    double *kl;      /* [n][n] KL(row i ‖ row j) */
    double *js;      /* [n][n] JS divergence (seed_compat: scipy's JS distance) */
    const char *units[ATS_DIVFIG_COUNT]; /* "bits" or "nats" of kl, js and entropy (static) */
} ats_head_divergences_result;

void ats_head_divergences_options_init(ats_head_divergences_options *o);
/* Entropy, KL and JS between the tokens of head (layer, head) of a (rows normalised first:
 * float attention sums to 1 only up to rounding; not with seed_compat, as the notebook). */
ats_status ats_head_divergences(const ats_attention *a, const ats_head_divergences_options *o,
                                ats_head_divergences_result *res, ats_error *err);
void ats_head_divergences_result_free(ats_head_divergences_result *res);

/* ---- two texts compared head by head */

typedef struct ats_compare_options {
    int all_heads;    /* 1: every head; 0 (default): the head (layer, head) */
    long layer, head; /* the head compared without all_heads */
    int seed_compat;  /* an ats_seed_distance: 1 the seed notebook's later distance cell,
                         √(scipy JS distance) of softmaxed rows; 2 its first, scipy's JS
                         distance; 0 (default): the Jensen–Shannon distance, base 2 */
    int max_dim;      /* diagrams H0..max_dim (0..2, default 1) */
    double q;         /* Wasserstein order q >= 1 (internal L∞; default 1) */
    double max_error; /* error allowed in the token distances (ats_measure_opts.max_error;
                         default 1e-9: float32 attention carries errors near 1e-7 already) */
    int n_threads;    /* threads (model, distances, persistence); 0: all cores */
    int truncate;     /* as ats_run_options.truncate */
    /* progress (core.h): phase "persistence" in "heads" (both inputs' heads), then "diagram
       distances" in "heads" */
    ats_progress_fn progress;
    void *progress_ctx;
} ats_compare_options;

typedef struct ats_compare_result {
    size_t L, H;             /* heads of both inputs */
    size_t n_dims;           /* max_dim + 1 */
    double *bottleneck;      /* [n_dims][L][H] bottleneck distance between the two inputs' diagrams
                                of each head and dimension; NaN for heads not compared; +inf where
                                the diagrams have different numbers of essential classes */
    double *wasserstein;     /* [n_dims][L][H] q-Wasserstein distance, the same way */
    ats_attention inputs[2]; /* the inputs compared: token labels, name, L, H, n; and their
                                attention (att) from ats_compare_attention, NULL from
                                ats_compare, which does not keep it */
} ats_compare_result;

void ats_compare_options_init(ats_compare_options *o);
/* Runs both texts through the model in one pass (up to the compared layer only, for one head),
 * turns every compared head of each into the token metric and its Vietoris–Rips persistence,
 * and measures the distances between the two texts' diagrams. Each layer is measured as the
 * pass hands it over (ats_forward_options.on_layer), so memory grows with one layer's H·n², not
 * with L·H·n²: the pass's estimate counts that layer and its heads' metrics and Rips work
 * (ATS_ERR_RANGE naming them when it does not fit). The numbers are those of
 * ats_compare_attention on the whole attention, bit for bit. */
ats_status ats_compare(ats_session *s, const char *const texts[2], const ats_compare_options *o,
                       ats_compare_result *res, ats_error *err);
/* The same on attention already computed; the result takes over a and b (on success and on
 * failure they are left zeroed). */
ats_status ats_compare_attention(ats_attention *a, ats_attention *b, const ats_compare_options *o,
                                 ats_compare_result *res, ats_error *err);
void ats_compare_result_free(ats_compare_result *res);

/* ---- one text (or one text each) compared across two models, every head against every head
 *
 * The models may differ in layers, heads and tokenizer: each head's token metric
 * (ats_head_metric: the Jensen–Shannon distance, or the seed's with seed_compat) becomes a
 * Vietoris–Rips diagram, and diagrams compare whatever the tokens were. Head i = l·H + h of
 * model A (layer-major, as [L][H] flattened) against head j of model B. */

typedef struct ats_compare_models_result {
    size_t L[2], H[2];   /* layers and heads of model A ([0]) and model B ([1]) */
    size_t n_dims;       /* max_dim + 1 */
    double *bottleneck;  /* [n_dims][L[0]·H[0]][L[1]·H[1]] bottleneck distance between head i of
                            A's and head j of B's diagrams of each dimension; NaN for pairs not
                            compared; +inf where the numbers of essential classes differ */
    double *wasserstein; /* [n_dims][L[0]·H[0]][L[1]·H[1]] q-Wasserstein distance, the same way */
    ats_attention inputs[2]; /* A's and B's inputs with their token labels, named
                                "model A (DIR)" and "model B (DIR)" (att NULL: each layer was
                                measured as the pass handed it over, as ats_compare) */
} ats_compare_models_result;

/* Runs texts[0] through model a and texts[1] through model b (pass the same text twice to
 * compare one text) and measures, for every head of a against every head of b, the distances
 * between their diagrams H0..o->max_dim. o as for ats_compare (q, seed_compat, max_error,
 * n_threads, truncate); o->all_heads 0 compares the one head (o->layer, o->head) of each model,
 * which both must have (an error names the model that lacks it), and only that pair is filled.
 * An error in a run names the model. */
ats_status ats_compare_models(ats_session *a, ats_session *b, const char *const texts[2],
                              const ats_compare_options *o, ats_compare_models_result *res,
                              ats_error *err);
void ats_compare_models_result_free(ats_compare_models_result *res);

/* ---- the report: two texts analysed in one offline HTML page */

typedef struct ats_report_options {
    long layer, head;       /* the head shown in detail; -1, -1 (default): the head whose H1
                               diagrams differ most between the texts (bottleneck distance) */
    const char *title;      /* the page's title, and a prefix of every figure's (default NULL:
                               "attnscope report", no prefix) */
    const char *model_name; /* the model as the page names it (default: its directory) */
    int format;             /* ats_figure_format (render.h) of the figures: ATS_FIGURE_SVG
                               (default) or ATS_FIGURE_PNG; PDF cannot be embedded in a page */
    size_t svg_max_bytes;   /* an SVG figure larger than this (a skeleton of hundreds of
                               tokens) is drawn as PNG instead, and the page says so (default
                               512 KiB; 0: no limit) */
    int truncate;           /* as ats_run_options.truncate: texts longer than the model's
                               maximum are cut, and the page says how many tokens each lost */
    int n_threads;          /* 0: all cores */
    /* progress (core.h): "forward pass", then compare's phases (ats_compare_options),
       "topology" in "texts" and "figures" in "figures" */
    ats_progress_fn progress;
    void *progress_ctx;
} ats_report_options;

typedef struct ats_report_result {
    long layer, head;    /* the head shown */
    size_t tokens[2];    /* tokens of each text analysed (after truncation) */
    size_t cut[2];       /* tokens cut off each text */
    size_t figures;      /* figures on the page */
    size_t png_fallback; /* SVG figures over svg_max_bytes drawn as PNG */
    size_t bytes;        /* size of the page */
} ats_report_result;

void ats_report_options_init(ats_report_options *o);
/* Runs both texts through the session's model in one pass, compares them head by head
 * (ats_compare_attention), takes the chosen head's topology (ats_topo) and writes one
 * self-contained HTML page at html_path (atomically; figures embedded as data URIs, no network
 * reference): the comparison of every head, each text's persistence diagram, barcode, Rips
 * skeleton, H1 cycles by token and clusters, its attention, attention graph, JS divergence and
 * entropy at the head, and every head's attention. res may be NULL. */
ats_status ats_report_run(ats_session *s, const char *const texts[2], const char *html_path,
                          const ats_report_options *o, ats_report_result *res, ats_error *err);

/* ---- the token topology of a ViT's image patches */

/* What is done to a copy of each image before it runs again (ats_vision_options.perturb). */
typedef enum ats_perturbation {
    ATS_PERTURB_NONE = 0,
    ATS_PERTURB_NOISE = 1,    /* Gaussian noise, sigma = strength x 255 (default 0.1), the same
                                 pseudo-random numbers every run */
    ATS_PERTURB_BLUR = 2,     /* box blur of radius round(strength) pixels (default 2) */
    ATS_PERTURB_OCCLUSION = 3 /* a grey (128) centred square, side strength x the shorter side
                                 (default 0.3, at most 1) */
} ats_perturbation;

/* One image: a file decoded when its turn comes (so frames are not all held at once), or an
 * image in memory. */
typedef struct ats_vision_input {
    const char *path;       /* an image file, or NULL and image: */
    const ats_image *image; /* rgb [height][width][3] in memory (borrowed) */
    const char *name;       /* names it in messages, titles and the result; NULL: path, or
                               "image k" (1-based) */
} ats_vision_input;

typedef struct ats_vision_options {
    long layer, head;  /* the head (required) */
    int height, width; /* pixels the images run at; 0 (default): the model's image_size (a grid
                          of (height / patch) x (width / patch) patches, the remainder of a side
                          dropped; other sizes interpolate the position embeddings) */
    size_t n_scales;   /* scales of the skeleton figures; 0 (default): per image, the distances
                          at which the skeleton has n/2, n and 2n edges for n patches (mean
                          degree 1, 2, 4), or the 10 %, 25 % and 50 % quantiles of the distances
                          when those give fewer edges (small grids) */
    double scales[ATS_TOPO_MAX_SCALES];
    int perturb;              /* ats_perturbation (default none) */
    double strength;          /* of the perturbation; NaN (default): the kind's default */
    int sphere;               /* 1: the attention graph of the patches on a Fibonacci sphere */
    size_t sphere_edges;      /* the sphere graph's strongest edges kept; 0 (default): 2n */
    int figures;              /* 1: draw the figures into memory, in format */
    ats_figure_format format; /* default ATS_FIGURE_PNG */
    const char *title;        /* NULL (default): each figure is titled by its image's name */
} ats_vision_options;

/* The patch topology of one image (or of its perturbed copy). */
typedef struct ats_vision_run {
    size_t n;                     /* patch tokens ([CLS] is left out) */
    double *lower;                /* [n(n-1)/2] the JS distance (base 2) between patch rows over
                                     all keys (ats_head_metric), patch k at grid row k / cols,
                                     column k % cols */
    ats_rips_result rips;         /* Vietoris–Rips persistence, H0 and H1 (dims[0], dims[1]) */
    ats_figure_memory figures[3]; /* with figures: the diagram, the barcode and the skeleton at
                                     the image's scales over the image (data NULL without) */
} ats_vision_run;

/* Ranks of ats_vision_run.figures. */
typedef enum ats_vision_figure {
    ATS_VISION_DIAGRAM = 0,
    ATS_VISION_BARCODE = 1,
    ATS_VISION_SKELETON = 2
} ats_vision_figure;

typedef struct ats_vision_image {
    char *name;
    ats_vision_run run;
    size_t n_scales; /* the scales of the skeletons (the perturbed copy's too) */
    double scales[ATS_TOPO_MAX_SCALES];
    int perturbed; /* 1: perturbation holds the perturbed copy's run */
    ats_vision_run perturbation;
    double bottleneck[2];  /* H0, H1 bottleneck distances between the run and the copy */
    double wasserstein[2]; /* H0, H1 1-Wasserstein distances, the same way */
    /* with sphere: patch k at point k of a Fibonacci sphere (unit radius, y the polar axis,
     * raster order from the top pole) and the strongest edges of the attention graph between
     * patches, weight (A[i][j] + A[j][i]) / 2 of the head's attention A, by decreasing weight
     * (ties: lower i, then lower j), i > j */
    double *sphere; /* [n][3] or NULL */
    size_t n_edges;
    size_t *edges;                   /* [n_edges][2] */
    double *edge_weights;            /* [n_edges] */
    ats_figure_memory sphere_figure; /* with figures and sphere: the graph in a projected 3-D
                                        view, each patch drawn in its mean colour */
} ats_vision_image;

typedef struct ats_vision_result {
    int height, width;         /* pixels the images ran at */
    int rows, cols, patch;     /* the patch grid and the patch side in pixels */
    double strength;           /* the perturbation's strength (its default when none was given) */
    size_t count;              /* images */
    ats_vision_image *images;  /* [count] */
    double *frame_bottleneck;  /* [count-1][2] H0, H1 distances between images t and t+1 (the
                                  frames of a video), NULL for one image */
    double *frame_wasserstein; /* [count-1][2] */
    ats_figure_memory frames_figure; /* with figures and count > 2: the Wasserstein distance to
                                        the previous frame, by frame */
} ats_vision_result;

void ats_vision_options_init(ats_vision_options *o);
/* Runs each image through the session's ViT (up to the chosen layer only), turns head (layer,
 * head) into the JS metric between the patch tokens and computes its persistence, the
 * skeleton's scales, the perturbed copy and its distances, the sphere graph and the figures as
 * asked. Errors: a text model, a head outside the model, an image size giving no patch or over
 * 16384, a bad image (named), a scale outside the diagram's range. */
ats_status ats_vision(ats_session *s, size_t count, const ats_vision_input *inputs,
                      const ats_vision_options *o, ats_vision_result *res, ats_error *err);
void ats_vision_result_free(ats_vision_result *res);

/* ---- permutation equivariance of self-attention */

typedef struct ats_equivariance_options {
    long seed;   /* chooses the permutation (default 1): the same seed, the same permutation */
    int figures; /* 1: draw the chart into memory, in format */
    ats_figure_format format; /* default ATS_FIGURE_PNG */
    const char *title;        /* the chart's title; NULL: "max |Attn(PX) - P Attn(X) P^T| by
                                 layer" */
} ats_equivariance_options;

typedef struct ats_equivariance_result {
    size_t L, n;               /* layers; tokens (with the special tokens) */
    int causal;                /* 1: a causal model (its mask is positional) */
    size_t *permutation;       /* [n] the permuted sequence's token k is token permutation[k] */
    double *with_positions;    /* [L] max over heads and tokens |Attn(PX) - P Attn(X) P^T| */
    double *without_positions; /* [L] the same without the position embeddings
                                  (ats_forward_options.no_positions) */
    ats_figure_memory figure;  /* with figures: both by layer, on a log scale */
} ats_equivariance_result;

void ats_equivariance_options_init(ats_equivariance_options *o);
/* Self-attention without positions is permutation equivariant, Attn(PX) = P Attn(X) P^T:
 * runs the text (with its special tokens) and a random permutation of its tokens (Fisher–Yates
 * over a 64-bit LCG seeded by seed), with and without position embeddings, and measures the
 * deviation layer by layer. Errors: a vision model, fewer than 2 tokens, a text longer than the
 * model's maximum. */
ats_status ats_equivariance(ats_session *s, const char *text, const ats_equivariance_options *o,
                            ats_equivariance_result *res, ats_error *err);
void ats_equivariance_result_free(ats_equivariance_result *res);

/* ---- a corpus, streamed one line at a time */

/* What a line of a corpus turned out to be. */
typedef enum ats_line_kind {
    ATS_LINE_TEXT = 0,   /* a text to run */
    ATS_LINE_EMPTY = 1,  /* empty or only white space */
    ATS_LINE_BADUTF = 2, /* invalid UTF-8 or a NUL byte (offset in bad_offset) */
    ATS_LINE_LONG = 3,   /* longer than the byte limit */
    ATS_LINE_BADJSON = 4 /* a JSONL line that is not an object with a string "text" */
} ats_line_kind;

/* A corpus: one text a line, or JSONL (one object a line with a string field "text"), read from
 * a file or from memory. Memory use is one line. */
typedef struct ats_corpus {
    FILE *fp;
    const char *path; /* names the corpus in messages */
    int jsonl;
    size_t max_bytes; /* longer lines are ATS_LINE_LONG */
    char *line;       /* getline buffer */
    size_t cap;
    char *text;         /* the current line's text (in line, or json_text) */
    size_t len;         /* its length in bytes */
    char *json_text;    /* the "text" of a JSONL line */
    size_t line_no;     /* 1-based number of the current line */
    size_t bad_offset;  /* byte offset of invalid UTF-8 in the line's text */
    long long size;     /* bytes in the corpus (-1 when unknown) */
    long long position; /* bytes read so far */
} ats_corpus;

/* Where a corpus comes from: a file (path), or size bytes at data (path then only names it). */
typedef struct ats_corpus_source {
    const char *path;
    const char *data;
    size_t size;
    int jsonl; /* -1 (ats_corpus_source_init): JSONL when the path ends in .jsonl or .ndjson or
                  the first non-blank byte is '{'; 0 plain lines; 1 JSONL */
} ats_corpus_source;

void ats_corpus_source_init(ats_corpus_source *src);
ats_status ats_corpus_open(ats_corpus *c, const ats_corpus_source *src, size_t max_bytes,
                           ats_error *err);
/* Reads the next line: 1 and *kind, 0 at the end, -1 on a read error (err set). */
int ats_corpus_next(ats_corpus *c, ats_line_kind *kind, ats_error *err);
void ats_corpus_close(ats_corpus *c);

/* Lines longer than this many bytes are skipped by ats_heads_corpus. */
#define ATS_CORPUS_MAX_LINE_BYTES ((size_t)1 << 20)

/* ---- distances between heads over a corpus */

/* The counters of a corpus pass (integers, so that processes can add theirs). */
typedef enum ats_heads_count {
    ATS_HEADS_LINES,        /* lines read (by this process) */
    ATS_HEADS_TEXTS,        /* lines run */
    ATS_HEADS_EMPTY,        /* skipped: empty */
    ATS_HEADS_BADUTF,       /* skipped: invalid UTF-8 */
    ATS_HEADS_BADJSON,      /* skipped: bad JSONL */
    ATS_HEADS_HUGE,         /* skipped: over ATS_CORPUS_MAX_LINE_BYTES */
    ATS_HEADS_TRUNC_LINES,  /* lines cut to the token limit */
    ATS_HEADS_TRUNC_TOKENS, /* tokens cut off them */
    ATS_HEADS_SKIPPED_LONG, /* skipped: over the token limit (skip_long, or two models) */
    ATS_HEADS_TOKENS,       /* tokens run (both models' for two) */
    ATS_HEADS_WORDS,        /* two models: words both cover */
    ATS_HEADS_NOWORDS,      /* two models: lines without such a word */
    ATS_HEADS_COUNT
} ats_heads_count;

/* Distributed runs: the corpus is cut into chunks of chunk_lines lines; chunk c belongs to
 * process c % n_procs, which alone runs it. Process 0 adds the chunks' sums in chunk order,
 * calling exchange(ctx, chunk, owner, part, N·N) to receive the [N][N] sum of a chunk another
 * process owns into part; that process calls exchange with its own rank as owner to send it.
 * The result then equals the single-process one bit for bit. */
typedef void (*ats_heads_exchange_fn)(void *ctx, size_t chunk, int owner, double *part,
                                      size_t count);

typedef struct ats_heads_options {
    int clark;          /* 1: Σ JS of rows smoothed as 0.001/n + 0.999·a (Clark et al. 2019);
                           0 (default): the seed's Σ √JS (base 2) */
    size_t max_lines;   /* read at most this many lines; 0 (default): all */
    size_t max_tokens;  /* longest input; 0 (default) or more than the model's maximum: that */
    int skip_long;      /* 1: skip longer lines; 0 (default): cut them to max_tokens keeping the
                           closing special tokens (transformers' truncation=True). Two models
                           always skip them. */
    size_t chunk_lines; /* lines per reduction chunk (default 64): D depends on it only in the
                           last bits */
    int n_threads;      /* lines run at once, each pass single-threaded; 0: all cores */
    int stats;          /* 1: head statistics too (ats_heads_result.stats; one model) */
    int rank, n_procs;  /* this process and the number of processes (default 0 of 1) */
    ats_heads_exchange_fn exchange;
    void *exchange_ctx;
    /* progress (core.h): the corpus pass reports phase "corpus" in "lines" read (of max_lines
       when given) or, without max_lines, in "bytes" of a corpus of known size; the ablation
       phase "ablation" in "passes" of the model over its lines */
    ats_progress_fn progress;
    void *progress_ctx;
} ats_heads_options;

typedef struct ats_heads_result {
    size_t N;      /* heads: L·H, or N1 + N2 for two models */
    double *D;     /* [N][N] sums over the corpus, head l·H + h (the second model's after the
                      first's); only process 0's is complete */
    double *stats; /* [ATS_STAT_COUNT][L][H] head statistics of this process's lines, or NULL */
    unsigned long long counts[ATS_HEADS_COUNT]; /* this process's */
    /* first line of each skipped kind (0: none) */
    size_t first_empty, first_badutf, first_badjson, first_huge;
} ats_heads_result;

void ats_heads_options_init(ats_heads_options *o);
/* Streams the corpus through one session, or two (n_sessions = 2: both models on the same
 * white-space words, attention pooled to words: sum over a word's key tokens, mean over its
 * query tokens; D is then over both models' heads), and sums the distance between every two
 * heads over every token (ats_headdist), never keeping more than a batch of lines' attention.
 * Lines run in parallel and are added in line order, so D does not depend on n_threads. Errors
 * name the corpus and line. */
ats_status ats_heads_corpus(ats_session *const *sessions, size_t n_sessions,
                            const ats_corpus_source *src, const ats_heads_options *o,
                            ats_heads_result *res, ats_error *err);
void ats_heads_result_free(ats_heads_result *res);

/* Importance of the heads by ablation (Michel et al. 2019) on the first `lines` usable lines of
 * the corpus (lengths as ats_heads_corpus with o): the measure with each head masked, with all
 * but one head of its layer masked, and along a pruning order. The measure is the LM loss
 * (causal models; masked-LM models predict every 6th ordinary token masked) or, without an LM
 * head, the mean relative change of the final hidden states. */
typedef struct ats_ablation_result {
    size_t N, lines; /* heads; lines used */
    int lm;          /* 1: LM loss, 0: hidden-state change */
    double base;     /* the measure of the full model */
    double *single;  /* [N] with head a masked */
    double *keep;    /* [N] with the other heads of a's layer masked */
    size_t *order;   /* [N] heads by increasing importance (single − base) */
    size_t steps;    /* points of the pruning curve (about 20, both ends) */
    size_t *removed; /* [steps] heads removed at each point (the first of order) */
    double *pruned;  /* [steps] the measure there */
    /* causal LMs the backward pass covers (ats_backward_open), else NULL: the gradient
     * importance of the same lines (mean over lines of |∂L/∂ξ_h|, as ats_head_importance), the
     * heads by increasing gradient importance, and the measure with the first removed[k] of
     * them masked: the pruning curve by gradient beside the one by ablation */
    double *grad;        /* [N] */
    size_t *grad_order;  /* [N] */
    double *grad_pruned; /* [steps] */
} ats_ablation_result;

ats_status ats_heads_ablation(ats_session *s, const ats_corpus_source *src,
                              const ats_heads_options *o, size_t lines, ats_ablation_result *res,
                              ats_error *err);
void ats_ablation_result_free(ats_ablation_result *res);

/* ---- syntactic heads against gold dependencies (Clark et al. 2019, "What Does BERT Look At?",
 * section 4)
 *
 * Definitions (so that two implementations agree; tests/python/test_syntax.py holds one):
 * - words: the CoNLL-U lines with an integer ID (ranges "3-4" and empty nodes "5.1" are
 *   skipped); the sentence's text is the FORMs joined by single spaces; a word's pieces are the
 *   tokens whose byte range, without leading and trailing spaces, lies inside the word's FORM;
 *   special tokens belong to no word. A sentence longer than the model's maximum is skipped and
 *   counted.
 * - word-level attention, per head: to word j the sum of its pieces' columns, from word i the
 *   mean of its pieces' rows (in double); the special tokens' columns are dropped and nothing is
 *   renormalised.
 * - relation: the DEPREL before any ':'; arcs to the root (HEAD 0) are left out, and so is an
 *   arc whose dependent or head has no pieces (counted in unmapped).
 * - prediction of a head for a dependent i: the word j != i with the largest attention from i
 *   (ties: the lowest j); a head's accuracy for a relation: predictions equal to the gold head
 *   over the relation's arcs. The best head has the highest accuracy (ties: the lowest l·H + h).
 * - baseline of a relation: the fixed offset k != 0 (predict word i + k) with the best accuracy
 *   (ties: the smaller |k|, then the negative one). */

typedef struct ats_syntax_options {
    size_t max_sentences; /* read the first max_sentences sentences (skipped ones included);
                             0 (default): all */
    int n_threads;        /* sentences run at once, each pass single-threaded; 0: all cores */
    /* progress (core.h): phase "sentences" in "sentences" */
    ats_progress_fn progress;
    void *progress_ctx;
} ats_syntax_options;

typedef struct ats_syntax_result {
    size_t L, H;               /* the model's layers and heads */
    size_t sentences, skipped; /* sentences analysed; skipped as longer than the model's maximum */
    size_t arcs, unmapped;     /* non-root arcs counted; left out for a word without pieces */
    size_t R;                  /* relations, by decreasing count (ties: by name) */
    char **names;              /* [R] relation names */
    size_t *count;             /* [R] arcs of each relation */
    size_t *correct;           /* [R][L][H] arcs a head predicts right */
    size_t *best_head;         /* [R] l·H + h of the best head */
    double *accuracy;          /* [R] its accuracy */
    long *baseline_offset;     /* [R] the baseline's offset k */
    double *baseline_accuracy; /* [R] its accuracy */
} ats_syntax_result;

void ats_syntax_options_init(ats_syntax_options *o);
/* Reads the dependency trees of a CoNLL-U file (UTF-8; an invalid byte, a line without 10
 * tab-separated fields, a bad ID, HEAD or empty DEPREL is ATS_ERR_FORMAT naming the file and
 * line), runs its sentences through the session's model (in parallel, the result does not
 * depend on n_threads) and measures every head against the gold arcs as defined above. */
ats_status ats_syntax_run(ats_session *s, const char *conllu_path, const ats_syntax_options *o,
                          ats_syntax_result *res, ats_error *err);
void ats_syntax_result_free(ats_syntax_result *res);
/* ---- head importance from gradients */

/* Michel et al. (2019): I_h = mean over the corpus's texts of |∂L(x)/∂ξ_h|, L the mean
 * next-token cross-entropy of text x and ξ_h a gate multiplying head h's output (at 1), by one
 * forward and one backward pass a text (ats_backward_run, model.h; causal LMs: GPT-2, Llama,
 * Mistral, Qwen2). Texts are the corpus's lines, encoded with special tokens, cut to
 * max_tokens; empty, invalid and one-token lines are skipped. */
typedef struct ats_importance_options {
    size_t max_lines;  /* read at most this many lines; 0 (default): all */
    size_t max_tokens; /* cut longer texts to this; 0 (default) or more than the model's
                          maximum: that */
    int normalize;     /* 1: each layer's importances divided by their L2 norm (Michel et al.);
                          0 (default): as they are */
    int n_threads;     /* texts run at once, each pass single-threaded; 0: all cores */
    /* progress (core.h): phase "corpus" as ats_heads_options reports it */
    ats_progress_fn progress;
    void *progress_ctx;
} ats_importance_options;

typedef struct ats_importance_result {
    size_t L, H;        /* layers, heads */
    size_t texts;       /* texts run */
    size_t skipped;     /* lines skipped (empty, invalid, fewer than 2 tokens) */
    size_t truncated;   /* texts cut to max_tokens */
    double loss;        /* mean over the texts of L */
    double *importance; /* [L][H] */
} ats_importance_result;

void ats_importance_options_init(ats_importance_options *o);
/* Errors: a model the backward pass does not cover, no text of 2 tokens, the corpus's. */
ats_status ats_head_importance(ats_session *s, const ats_corpus_source *src,
                               const ats_importance_options *o, ats_importance_result *res,
                               ats_error *err);
void ats_importance_result_free(ats_importance_result *res);

/* ---- context vectors: a word in two texts, a phrase across the lines of a corpus
 *
 * Definitions (tests/python/test_context.py recomputes them from transformers' outputs):
 * - occurrence: the first whole-word, case-insensitive (ASCII) match of the word or phrase in a
 *   text, whole-word meaning that the bytes before and after it are not ASCII letters or digits;
 * - the phrase's words: its runs of bytes other than ASCII white space; each word's span is its
 *   part of the occurrence;
 * - the tokens of a span: the non-special tokens whose byte range overlaps it; the vector of a
 *   span: the mean (float32, in token order) of its tokens' vectors;
 * - units, where vectors are taken:
 *   hidden state k (d values; k = 0 the embeddings, k = l + 1 the output of transformer layer l,
 *   transformers' hidden_states[k]); the context vector of head (l, h) (d_head values): row t of
 *   softmax(Q_h K_hᵀ/√d_head) · V_h, the head's slice of the attention output before the output
 *   projection (transformers' context layer; ATS_CAPTURE_CONTEXT in model.h). The seed
 *   (study_of_attention) compares these per layer and per head.
 * - distances: the cosine distance 1 − cos(x, y), clamped at 0, 0 on the diagonal. */

/* options.layer for the embeddings (hidden state 0) */
#define ATS_CONTEXT_EMBEDDINGS (-1)

typedef struct ats_context_options {
    long layer;          /* transformer layer 0..L-1: its output (hidden state layer + 1), or with
                            head >= 0 that layer's head; ATS_CONTEXT_EMBEDDINGS: the embeddings.
                            Default 0 */
    long head;           /* -1 (default): the hidden state; 0..H-1: that head's context vectors */
    size_t max_contexts; /* phrase: use the first max_contexts lines that contain it (default
                            200) */
    int max_dim;         /* phrase: persistence H0..max_dim, 0..2 (default 1) */
    size_t n_scales;     /* phrase: scales of the H0 clusters; 0 (default): the 10 %, 25 % and
                            50 % quantiles of the distances (as ats_topo_scales) */
    double scales[ATS_TOPO_MAX_SCALES];
    int truncate;  /* 1: cut texts longer than the model's maximum (default: an error) */
    int n_threads; /* threads of the model and distances; 0: all cores */
} ats_context_options;

void ats_context_options_init(ats_context_options *o);

typedef struct ats_context_similarity_result {
    size_t L, H;    /* the model's layers and heads */
    double *hidden; /* [L+1] cosine similarity of the word's vectors in text A and text B at
                       every hidden state (0: embeddings) */
    double *heads;  /* [L][H] the same with each head's context vectors */
} ats_context_similarity_result;

/* The word's vectors in texts[0] and texts[1] compared at every unit (the seed's "cat"
 * example). Errors: the word not in a text (naming it), no token covering it, the model's. */
ats_status ats_context_similarity(ats_session *s, const char *const texts[2], const char *word,
                                  const ats_context_options *o, ats_context_similarity_result *res,
                                  ats_error *err);
void ats_context_similarity_result_free(ats_context_similarity_result *res);

typedef struct ats_context_result {
    size_t L, H, d, d_head; /* the model's layers, heads, hidden width, head width */
    size_t contexts;        /* C: the corpus lines that contain the phrase (at most
                               max_contexts, at least 2) */
    size_t words;           /* k: the phrase's words */
    size_t *line_no;        /* [C] 1-based line number of each context */
    char **lines;           /* [C] its text */
    /* the vectors at every unit */
    float *hidden_vectors;      /* [L+1][C][d] the phrase's vector at each hidden state */
    float *head_vectors;        /* [L][H][C][d_head] at each head */
    float *hidden_word_vectors; /* [L+1][C][k][d] each word's vector */
    float *head_word_vectors;   /* [L][H][C][k][d_head] */
    /* a summary of every unit, over the contexts */
    double *hidden_similarity;    /* [L+1] mean cosine similarity of the C(C-1)/2 pairs */
    double *hidden_merge;         /* [L+1] scale from which the contexts are one H0 cluster
                                     (the largest finite H0 death) */
    double *hidden_word_distance; /* [L+1] mean over contexts and word pairs of the distance
                                     between the phrase's words; NaN for one word */
    double *head_similarity;      /* [L][H] */
    double *head_merge;           /* [L][H] */
    double *head_word_distance;   /* [L][H] */
    /* the chosen unit (options layer, head) */
    size_t dim;                  /* D: d or d_head */
    const float *vectors;        /* [C][D] the phrase's vectors there (points into the arrays
                                    above) */
    double *distances;           /* [C][C] between the contexts */
    double *word_distances;      /* [C][k][k] between the phrase's words in each context */
    double mean_similarity;      /* mean cosine similarity of the C(C-1)/2 pairs */
    double single_cluster_scale; /* the largest finite H0 death */
    ats_rips_result rips;        /* persistence of distances, H0..max_dim */
    size_t n_scales;
    double scales[ATS_TOPO_MAX_SCALES];
    int32_t *clusters; /* [n_scales][C] the H0 (single-linkage) cluster of each context */
    size_t n_clusters[ATS_TOPO_MAX_SCALES];
} ats_context_result;

/* The phrase's context vectors in every line of the corpus that contains it (lines that are
 * empty, invalid or too long are skipped; none contains it), at every unit, and at the chosen
 * unit their distances, persistence and clusters: how stable a collocation is across contexts
 * (one tight cluster, or several senses) and how close its words stay. Errors: fewer than 2
 * contexts, a layer or head outside the model, a scale outside [0, largest distance], an error
 * of line k names the corpus and k. */
ats_status ats_context_run(ats_session *s, const ats_corpus_source *src, const char *phrase,
                           const ats_context_options *o, ats_context_result *res, ats_error *err);
void ats_context_result_free(ats_context_result *res);

/* ---- the library's constants, for bindings */

/* The value of the constant `name`: an enum value or bound as spelled in these headers
 * ("ATS_RIPS_MAX_DIM", "ATS_DIV_JS", ...) or the size of a public structure
 * ("sizeof(ats_topo_options)"). 1 and *value when known, 0 when not. Python reads its copies
 * from here. */
int ats_constant(const char *name, long long *value);
/* The i-th known name, NULL past the last: to list them. */
const char *ats_constant_name(size_t i);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop
#endif
