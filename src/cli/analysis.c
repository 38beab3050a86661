#include "analysis.h"
#include "cli.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char ANALYSIS_COMMON_USAGE[] =
    "input (one of):\n"
    "  --model M --text T     run model M (a directory, a HuggingFace-cache name or a GGUF\n"
    "                         file) on text T; repeat --text for several texts\n"
    "  --attention A.npy      attention computed elsewhere, [L][H][n][n] or [n][n]; repeatable;\n"
    "  [--tokens F]           one token label per line for each --attention\n"
    "head and output:\n"
    "  --layer L --head H     the head (0-based, as transformers' outputs.attentions)\n"
    "  --out DIR              folder for the figures, JSON and NPY (created if missing)\n"
    "  --format png|svg|pdf   figure format (default png)\n"
    "  --title T              figure title prefix\n"
    "  --threads N            threads for the model (default: all cores)\n"
    "  --truncate             cut texts longer than the model's maximum instead of failing\n";

const char ANALYSIS_SEED_USAGE[] =
    "seed notebook:\n"
    "  --seed-compat          the seed notebook's token distance: sqrt of scipy's JS distance\n"
    "                         (base e) of softmaxed attention rows (its later distance cell)\n"
    "  --seed-distance D      which of the notebook's two distance cells --seed-compat uses\n"
    "                         (implies it): sqrt-jsd (default; the later cell) or jsd (the\n"
    "                         first: scipy's JS distance itself)\n";

int analysis_parse_seed(const char *cmd, int argc, char **argv, int *i, int *seed) {
    if (!strcmp(argv[*i], "--seed-compat")) {
        if (*seed == ATS_SEED_OFF) *seed = ATS_SEED_SQRT_JSD;
        return 1;
    }
    if (strcmp(argv[*i], "--seed-distance")) return 0;
    const char *v = *i + 1 < argc ? argv[*i + 1] : "";
    if (!strcmp(v, "sqrt-jsd"))
        *seed = ATS_SEED_SQRT_JSD;
    else if (!strcmp(v, "jsd"))
        *seed = ATS_SEED_JSD;
    else {
        ats_cli_usage_error(cmd, "--seed-distance is sqrt-jsd or jsd");
        return -1;
    }
    (*i)++;
    return 1;
}

void analysis_args_init(analysis_args *a, const char *cmd) {
    memset(a, 0, sizeof *a);
    a->cmd = cmd;
    a->layer = a->head = -1;
    a->format = "png";
}

int analysis_parse_common(analysis_args *a, int argc, char **argv, int *i) {
    const char *s = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    long x;
    if (!strcmp(s, "--model") || !strcmp(s, "--out") || !strcmp(s, "--format") ||
        !strcmp(s, "--title") || !strcmp(s, "--text") || !strcmp(s, "--attention") ||
        !strcmp(s, "--tokens")) {
        if (!v) {
            ats_cli_usage_error(a->cmd, "%s needs a value", s);
            return -1;
        }
        if (!strcmp(s, "--model"))
            a->model = v;
        else if (!strcmp(s, "--out"))
            a->out_dir = v;
        else if (!strcmp(s, "--title"))
            a->title = v;
        else if (!strcmp(s, "--format")) {
            if (strcmp(v, "png") && strcmp(v, "svg") && strcmp(v, "pdf")) {
                ats_cli_usage_error(a->cmd, "--format is png, svg or pdf");
                return -1;
            }
            a->format = v;
        } else {
            size_t *count = !strcmp(s, "--text")        ? &a->n_texts
                            : !strcmp(s, "--attention") ? &a->n_attention
                                                        : &a->n_tokens;
            const char **slot = !strcmp(s, "--text")        ? a->texts
                                : !strcmp(s, "--attention") ? a->attention
                                                            : a->tokens;
            if (*count == ANALYSIS_MAX_INPUTS) {
                ats_cli_usage_error(a->cmd, "at most %d of %s", ANALYSIS_MAX_INPUTS, s);
                return -1;
            }
            slot[(*count)++] = v;
        }
        (*i)++;
        return 1;
    }
    if (!strcmp(s, "--layer") || !strcmp(s, "--head") || !strcmp(s, "--threads")) {
        if (!ats_cli_parse_long(v, 0, 1 << 16, &x)) {
            ats_cli_usage_error(a->cmd, "%s needs an integer >= 0", s);
            return -1;
        }
        if (!strcmp(s, "--layer"))
            a->layer = x;
        else if (!strcmp(s, "--head"))
            a->head = x;
        else
            a->threads = (int)x;
        (*i)++;
        return 1;
    }
    if (!strcmp(s, "--truncate")) {
        a->truncate = 1;
        return 1;
    }
    return 0;
}

int analysis_check(const analysis_args *a, int need_head) {
    if (a->model && a->n_attention)
        return ats_cli_usage_error(a->cmd, "give --model with --text, or --attention; not both");
    if (a->model && !a->n_texts) return ats_cli_usage_error(a->cmd, "--model needs --text");
    if (!a->model && a->n_texts) return ats_cli_usage_error(a->cmd, "--text needs --model");
    if (!a->model && !a->n_attention)
        return ats_cli_usage_error(a->cmd, "no input: --model M --text T, or --attention A.npy");
    if (a->n_tokens && a->n_tokens != a->n_attention)
        return ats_cli_usage_error(a->cmd, "give one --tokens file per --attention file");
    if (!a->out_dir) return ats_cli_usage_error(a->cmd, "--out DIR is required");
    if (need_head && (a->layer < 0 || a->head < 0))
        return ats_cli_usage_error(a->cmd, "choose a head with --layer L --head H");
    return 0;
}

cJSON *analysis_json_number(double v, unsigned flags) {
    char buf[ATS_JSON_NUMBER_MAX];
    ats_json_number_format(v, flags, buf);
    return cJSON_CreateRaw(buf);
}

cJSON *analysis_pairs_json(const ats_diagram *d) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < d->count; i++) {
        cJSON *p = cJSON_CreateArray();
        cJSON_AddItemToArray(p, analysis_json_number(d->pairs[2 * i], 0));
        cJSON_AddItemToArray(p, analysis_json_number(d->pairs[2 * i + 1], ATS_JSON_DEATH));
        cJSON_AddItemToArray(arr, p);
    }
    return arr;
}

/* path written atomically: the document as cJSON prints it, and a newline */
static ats_status json_file(const char *path, const cJSON *doc, ats_error *err) {
    char *text = cJSON_Print(doc);
    if (!text) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    ats_outfile of;
    ats_status st = ats_outfile_open(&of, path, err);
    if (!st) {
        fputs(text, of.fp);
        fputc('\n', of.fp);
        st = ats_outfile_commit(&of, err);
    }
    free(text);
    return st;
}

ats_status analysis_json_write(const char *path, const cJSON *doc, ats_error *err) {
    ats_status st = json_file(path, doc, err);
    if (!st) printf("%s\n", path);
    return st;
}

/* dir/file (malloc'd) */
static char *dir_file(const char *dir, const char *file, ats_error *err) {
    char *p = ats_path_join(dir, file);
    if (!p) ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    return p;
}

ats_status analysis_json_stage(const char *dir, const char *file, const cJSON *doc,
                               ats_error *err) {
    char *path = dir_file(dir, file, err);
    ats_status st = path ? json_file(path, doc, err) : err->status;
    free(path);
    return st;
}

ats_status analysis_bytes_stage(const char *dir, const char *file, const void *data, size_t size,
                                ats_error *err) {
    char *path = dir_file(dir, file, err);
    if (!path) return err->status;
    ats_outfile of;
    ats_status st = ats_outfile_open(&of, path, err);
    if (!st && size && fwrite(data, 1, size, of.fp) != size) {
        ats_outfile_abort(&of);
        st = ats_error_set(err, ATS_ERR_IO, "%s: cannot write", path);
    } else if (!st)
        st = ats_outfile_commit(&of, err);
    free(path);
    return st;
}

char *analysis_path(const analysis_args *a, const char *name, const char *ext, ats_error *err) {
    if (ats_dir_create(a->out_dir, err)) {
        return NULL;
    }
    size_t len = strlen(a->out_dir) + strlen(name) + strlen(ext) + 3;
    char *p = malloc(len);
    if (!p) {
        ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        return NULL;
    }
    snprintf(p, len, "%s/%s.%s", a->out_dir, name, ext);
    return p;
}

ats_status analysis_session_open(const analysis_args *a, ats_session **s, ats_error *err) {
    *s = NULL;
    if (!a->model) return ATS_OK;
    ats_status st = ats_session_open_adapted(a->model, ats_cli_adapter(), s, err);
    if (!st && !ats_session_tokenizer(*s)) {
        ats_session_close(*s);
        *s = NULL;
        return ats_error_set(err, ATS_ERR_INVALID,
                             "%s: a vision model takes images (attnscope vision --image)",
                             a->model);
    }
    return st;
}

/* 1 when a model's pass keeps head (--layer, --head) alone */
static int one_head_run(const analysis_args *a) {
    return a->model && a->one_head && !a->want_hidden && a->layer >= 0 && a->head >= 0;
}

void analysis_held(const analysis_args *a, long *layer, long *head) {
    int held = one_head_run(a);
    *layer = held ? 0 : a->layer;
    *head = held ? 0 : a->head;
}

static ats_status load_from_model(const analysis_args *a, ats_session *s, ats_attention *src,
                                  size_t *count, ats_error *err) {
    ats_run_options ro;
    ats_run_options_init(&ro);
    ro.want_hidden = a->want_hidden;
    ro.n_threads = a->threads;
    ro.truncate = a->truncate;
    ro.on_layer = a->on_layer;
    ro.on_layer_ctx = a->on_layer_ctx;
    const ats_model_info *mi = ats_model_info_get(ats_session_model(s));
    int model_layers = mi->n_layers;
    if (a->only_layer && !a->want_hidden && a->layer >= 0 && a->layer < model_layers)
        ro.n_layers = (int)a->layer + 1;
    if (one_head_run(a)) {
        if (a->layer >= model_layers || a->head >= mi->n_heads)
            return ats_error_set(err, ATS_ERR_INVALID,
                                 "%s: layer %ld, head %ld is outside its %d x %d heads", a->model,
                                 a->layer, a->head, model_layers, mi->n_heads);
        ro.n_layers = (int)a->layer + 1; /* the layers after it do not change it */
        ro.capture_layer = (int)a->layer + 1;
        ro.capture_head = (int)a->head + 1;
    }
    ats_status st = ats_session_run(s, a->n_texts, a->texts, &ro, src, err);
    *count = st ? 0 : a->n_texts;
    return st;
}

static ats_status load_from_files(const analysis_args *a, ats_attention *src, size_t *count,
                                  ats_error *err) {
    for (size_t t = 0; t < a->n_attention; t++) {
        ats_status st =
            ats_attention_read(a->attention[t], a->n_tokens ? a->tokens[t] : NULL, &src[t], err);
        if (st) return st;
        *count = t + 1;
    }
    return ATS_OK;
}

ats_status analysis_load_with(const analysis_args *a, ats_session *s, ats_attention *src,
                              size_t *count, ats_error *err) {
    *count = 0;
    ats_status st =
        a->model ? load_from_model(a, s, src, count, err) : load_from_files(a, src, count, err);
    if (st) {
        for (size_t i = 0; i < *count; i++) ats_attention_free(&src[i]);
        *count = 0;
        return st;
    }
    for (size_t t = 0; t < *count; t++) {
        if (one_head_run(a)) continue; /* checked against the model before it ran */
        if ((a->layer >= 0 && (size_t)a->layer >= src[t].L) ||
            (a->head >= 0 && (size_t)a->head >= src[t].H)) {
            ats_error_set(err, ATS_ERR_INVALID,
                          "%s: layer %ld, head %ld is outside its %zu x %zu heads", src[t].name,
                          a->layer, a->head, src[t].L, src[t].H);
            for (size_t i = 0; i < *count; i++) ats_attention_free(&src[i]);
            *count = 0;
            return ATS_ERR_INVALID;
        }
    }
    return ATS_OK;
}

ats_status analysis_load(const analysis_args *a, ats_attention *src, size_t *count,
                         ats_error *err) {
    ats_session *s;
    *count = 0;
    ats_status st = analysis_session_open(a, &s, err);
    if (!st) st = analysis_load_with(a, s, src, count, err);
    ats_session_close(s);
    return st;
}

/* ---- what the analysis commands share (cmd_analysis.c, cmd_topo.c, cmd_compare.c) */

/* Writes a cJSON document atomically to DIR/name.json. */
ats_status analysis_write_json(const analysis_args *a, const char *name, cJSON *doc,
                               ats_error *err) {
    char *path = analysis_path(a, name, "json", err);
    if (!path) return err->status;
    ats_status st = analysis_json_write(path, doc, err);
    free(path);
    return st;
}

ats_status analysis_write_npy(const analysis_args *a, const char *name, ats_dtype dtype, int ndim,
                              const size_t *shape, const void *data, ats_error *err) {
    char *path = analysis_path(a, name, "npy", err);
    if (!path) return err->status;
    ats_status st = ats_npy_write(path, dtype, ndim, shape, data, err);
    if (!st) printf("%s\n", path);
    free(path);
    return st;
}

char *analysis_figure_path(const analysis_args *a, const char *name, ats_error *err) {
    return analysis_path(a, name, a->format, err);
}

cJSON *analysis_labels_json(const ats_attention *s) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < s->n; i++) cJSON_AddItemToArray(arr, cJSON_CreateString(s->labels[i]));
    return arr;
}

cJSON *analysis_matrix_json(const double *m, size_t rows, size_t cols) {
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < rows; i++) {
        cJSON *row = cJSON_CreateArray();
        for (size_t j = 0; j < cols; j++) {
            double v = m[i * cols + j];
            cJSON_AddItemToArray(row, analysis_json_number(v, 0));
        }
        cJSON_AddItemToArray(arr, row);
    }
    return arr;
}

void analysis_title(char *buf, size_t n, const analysis_args *a, const ats_attention *s,
                    const char *what, long l, long h) {
    /* an input read from a file is named by its path; a figure's title shows the file's name */
    const char *name = strrchr(s->name, '/') ? strrchr(s->name, '/') + 1 : s->name;
    if (l >= 0)
        snprintf(buf, n, "%s%s%s — %s, layer %ld head %ld", a->title ? a->title : "",
                 a->title ? ": " : "", what, name, l, h);
    else
        snprintf(buf, n, "%s%s%s — %s", a->title ? a->title : "", a->title ? ": " : "", what, name);
}

/* Checks the shared options and loads the inputs; returns the exit code of a failure, or 0. */
int analysis_prepare(const analysis_args *a, int need_head, ats_attention *src, size_t *count,
                     ats_error *err) {
    int rc = analysis_check(a, need_head);
    if (rc) return rc;
    ats_error_clear(err);
    return analysis_load(a, src, count, err) ? ats_cli_fail(err) : 0;
}

ats_status analysis_heads_heatmap(const analysis_args *a, const char *name, const char *title,
                                  const char *value_title, size_t L, size_t H, const double *v,
                                  ats_error *err) {
    ats_heatmap_options ho;
    ats_heatmap_options_init(&ho);
    ho.fig.title = title;
    ho.row_title = "layer";
    ho.col_title = "head";
    ho.index_labels = 1;
    ho.value_title = value_title;
    char *path = analysis_figure_path(a, name, err);
    ats_status st = path ? ats_render_heatmap(path, L, H, v, &ho, err) : err->status;
    if (!st) printf("%s\n", path);
    free(path);
    return st;
}
