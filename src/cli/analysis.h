/* The seeds' workflow shared by the analysis commands (attend, graph, divergence, topo,
 * compare): attention for one or more texts — from a model run here or from arrays computed
 * elsewhere — plus token labels, and an output folder for figures, JSON and NPY. */
#ifndef ATS_CLI_ANALYSIS_H
#define ATS_CLI_ANALYSIS_H

#include "attnscope/analysis.h"
#include "attnscope/core.h"
#include "attnscope/diagram.h"
#include "attnscope/render.h"

#include <stdio.h>

#define ANALYSIS_MAX_INPUTS 16

typedef struct analysis_args {
    const char *cmd;
    const char *model;
    const char *texts[ANALYSIS_MAX_INPUTS];
    size_t n_texts;
    const char *attention[ANALYSIS_MAX_INPUTS]; /* .npy files [L][H][n][n] or [n][n] */
    const char *tokens[ANALYSIS_MAX_INPUTS];    /* label files for those */
    size_t n_attention, n_tokens;
    long layer, head; /* -1: not given */
    int all_heads;
    const char *out_dir;
    const char *format; /* png (default), svg, pdf */
    const char *title;
    int want_hidden;
    int only_layer; /* 1: the command reads --layer only; the model then stops after it, and
                       the layers after it are NaN in the source */
    int one_head;   /* 1: the command reads head (--layer, --head) only: a model's pass keeps
                       that head alone (a long input's other heads are never held), and the
                       source is then [1][1][n][n]: index it with analysis_held() */
    int threads;
    int truncate;
    /* with a model: each layer's attention handed to on_layer as the pass computes it, not
     * kept (ats_run_options.on_layer): the sources' att is then NULL */
    ats_layer_fn on_layer;
    void *on_layer_ctx;
} analysis_args;

/* The indices of head (--layer, --head) in a source that analysis_load filled: (0, 0) when
 * a model's pass kept it alone (one_head), else --layer and --head. */
void analysis_held(const analysis_args *a, long *layer, long *head);
/* Parses the shared options; returns 1 if argv[i] (and maybe argv[i+1]) was one of them,
 * advancing *i; 0 if not ours; -1 (after printing) on a bad value. */
int analysis_parse_common(analysis_args *a, int argc, char **argv, int *i);
void analysis_args_init(analysis_args *a, const char *cmd);
/* Checks the shared options once all are parsed (an input, an output folder). */
int analysis_check(const analysis_args *a, int need_head);

/* Opens --model's session (*s NULL without --model). */
ats_status analysis_session_open(const analysis_args *a, ats_session **s, ats_error *err);

/* Loads every input: runs the model on the texts, or reads the attention files, and checks that
 * --layer and --head name a head of each. */
ats_status analysis_load(const analysis_args *a, ats_attention *src, size_t *count, ats_error *err);
/* The same with the session already open. */
ats_status analysis_load_with(const analysis_args *a, ats_session *s, ats_attention *src,
                              size_t *count, ats_error *err);

/* out_dir/name.ext (malloc'd); creates out_dir if needed. */
char *analysis_path(const analysis_args *a, const char *name, const char *ext, ats_error *err);

struct cJSON;
/* Writes a JSON document atomically to path (pretty-printed, newline-terminated) and prints the
 * path on stdout, as the commands list what they wrote. */
ats_status analysis_json_write(const char *path, const struct cJSON *doc, ats_error *err);

/* Files of a command that stages its outputs in a folder (ats_outdir) and lists them once the
 * folder is committed: dir/file written atomically, without printing its path — a JSON
 * document as analysis_json_write writes it, or size bytes (a figure drawn in memory). */
ats_status analysis_json_stage(const char *dir, const char *file, const struct cJSON *doc,
                               ats_error *err);
ats_status analysis_bytes_stage(const char *dir, const char *file, const void *data, size_t size,
                                ats_error *err);

/* A number as a raw cJSON item written by ats_json_number_format (core.h: NaN null, infinities
 * "inf"/"-inf", with ATS_JSON_DEATH an essential death null): cJSON's own printing keeps 15
 * digits when they read back within an epsilon, and has its own rule for NaN and infinities. */
struct cJSON *analysis_json_number(double v, unsigned flags);

/* A diagram's points as [[birth, death], ...], the death of an essential class null. */
struct cJSON *analysis_pairs_json(const ats_diagram *d);

/* What the analysis commands share (analysis.c): DIR/name.json written atomically; DIR/name.npy;
 * DIR/name.<format>; labels and matrices as JSON; a figure title from --title, what it shows,
 * the input and the head (l < 0: none); the shared checks and loading (returns an exit code). */
ats_status analysis_write_json(const analysis_args *a, const char *name, struct cJSON *doc,
                               ats_error *err);
ats_status analysis_write_npy(const analysis_args *a, const char *name, ats_dtype dtype, int ndim,
                              const size_t *shape, const void *data, ats_error *err);
char *analysis_figure_path(const analysis_args *a, const char *name, ats_error *err);
struct cJSON *analysis_labels_json(const ats_attention *s);
struct cJSON *analysis_matrix_json(const double *m, size_t rows, size_t cols);
void analysis_title(char *buf, size_t n, const analysis_args *a, const ats_attention *s,
                    const char *what, long l, long h);
int analysis_prepare(const analysis_args *a, int need_head, ats_attention *src, size_t *count,
                     ats_error *err);

/* What the analysis commands write, given their inputs' attention (cmd_analysis.c); report
 * calls them on one forward pass. Each prints the paths it writes. */
ats_status analysis_attend_write(const analysis_args *a, const ats_attention *src, size_t count,
                                 ats_error *err);
ats_status analysis_graph_write(const analysis_args *a, const ats_attention *src, size_t count,
                                double min_weight, int directed, int seed_compat, ats_error *err);
ats_status analysis_divergence_write(const analysis_args *a, const ats_attention *src, size_t count,
                                     double eps, int base_e, int seed_compat, ats_error *err);
/* topo's outputs for input t (its _2, _3 ... suffix) of the topology res of input s */
ats_status analysis_topo_write(const analysis_args *a, const ats_attention *s,
                               const ats_topo_result *res, size_t t, int max_dim, int seed_compat,
                               ats_error *err);
ats_status analysis_compare_write(const analysis_args *a, const ats_compare_result *r,
                                  const char *json_out, int all_heads, double q, ats_error *err);
/* The distinct vertices on H1 cycle i of res, in increasing order, into on[n] (1 = on it). */
void analysis_cycle_vertices(const ats_rips_result *res, size_t i, size_t n, unsigned char *on);

/* DIR/name.<format>: an L x H heatmap of v [L][H] with the layers and heads numbered from 0;
 * prints its path. */
ats_status analysis_heads_heatmap(const analysis_args *a, const char *name, const char *title,
                                  const char *value_title, size_t L, size_t H, const double *v,
                                  ats_error *err);

/* The usage text of the shared options. */
extern const char ANALYSIS_COMMON_USAGE[];

/* --seed-compat and --seed-distance D (topo, compare): 1 if argv[*i] was one (advancing *i past
 * its value), 0 if not, -1 (after printing) on a bad value; *seed receives the ats_seed_distance.
 */
int analysis_parse_seed(const char *cmd, int argc, char **argv, int *i, int *seed);
extern const char ANALYSIS_SEED_USAGE[];

#endif
