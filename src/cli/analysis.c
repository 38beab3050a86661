#include "analysis.h"
#include "cli.h"
#include "attnscope/model.h"
#include "attnscope/tokenizer.h"

#include <cjson/cJSON.h>

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char ANALYSIS_COMMON_USAGE[] =
    "input (one of):\n"
    "  --model M --text T     run model M (a directory or a HuggingFace-cache name) on text T;\n"
    "                         repeat --text for several texts\n"
    "  --attention A.npy      attention computed elsewhere, [L][H][n][n] or [n][n]; repeatable;\n"
    "  [--tokens F]           one token label per line for each --attention\n"
    "head and output:\n"
    "  --layer L --head H     the head (0-based, as transformers' outputs.attentions)\n"
    "  --out DIR              folder for the figures, JSON and NPY (created if missing)\n"
    "  --format png|svg|pdf   figure format (default png)\n"
    "  --title T              figure title prefix\n"
    "  --threads N            threads for the model (default: all cores)\n"
    "  --truncate             cut texts longer than the model's maximum instead of failing\n";

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

void attn_source_free(attn_source *s) {
    free(s->att);
    free(s->hidden);
    if (s->labels)
        for (size_t i = 0; i < s->n; i++) free(s->labels[i]);
    free(s->labels);
    free(s->name);
    memset(s, 0, sizeof *s);
}

double *attn_head(const attn_source *s, size_t l, size_t h) {
    size_t nn = s->n * s->n;
    double *m = malloc((nn ? nn : 1) * sizeof *m);
    if (!m) return NULL;
    const float *p = s->att + (l * s->H + h) * nn;
    for (size_t i = 0; i < nn; i++) m[i] = p[i];
    return m;
}

ats_status analysis_json_write(const char *path, const cJSON *doc, ats_error *err) {
    char *text = cJSON_Print(doc);
    if (!text) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    ats_outfile of;
    ats_status st = ats_outfile_open(&of, path, err);
    if (!st) {
        fputs(text, of.fp);
        fputc('\n', of.fp);
        st = ats_outfile_commit(&of, err);
    }
    if (!st) printf("%s\n", path);
    free(text);
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

static char *dup_range(const char *s, size_t len) {
    char *d = malloc(len + 1);
    if (d) {
        memcpy(d, s, len);
        d[len] = '\0';
    }
    return d;
}

/* Labels: the text a token covers (so "Ġthe" reads " the" -> "the", "##ing" reads "ing"),
 * special tokens by their name. */
static char **labels_from_encoding(const ats_encoding *enc, const char *text) {
    char **l = calloc(enc->count ? enc->count : 1, sizeof *l);
    if (!l) return NULL;
    for (size_t i = 0; i < enc->count; i++) {
        size_t s = enc->offsets[2 * i], e = enc->offsets[2 * i + 1];
        if (enc->special[i] || e <= s) {
            l[i] = strdup(enc->tokens[i]);
        } else {
            while (s < e && (text[s] == ' ' || text[s] == '\t' || text[s] == '\n')) s++;
            l[i] = e > s ? dup_range(text + s, e - s) : strdup(enc->tokens[i]);
        }
        if (!l[i]) {
            for (size_t j = 0; j < i; j++) free(l[j]);
            free(l);
            return NULL;
        }
    }
    return l;
}

ats_status analysis_model_open(const analysis_args *a, analysis_model *am, ats_error *err) {
    memset(am, 0, sizeof *am);
    if (!a->model) return ATS_OK;
    ats_status st = ats_model_load(a->model, &am->model, err);
    if (st) return st;
    const ats_model_info *info = ats_model_info_get(am->model);
    if (info->arch == ATS_ARCH_VIT) {
        ats_model_free(am->model);
        am->model = NULL;
        return ats_error_set(err, ATS_ERR_INVALID,
                             "%s: a vision model takes images (attnscope vision --image)",
                             a->model);
    }
    st = ats_tokenizer_load(info->dir, &am->tok, err);
    if (st) {
        ats_model_free(am->model);
        am->model = NULL;
    }
    return st;
}

void analysis_model_close(analysis_model *am) {
    ats_tokenizer_free(am->tok);
    ats_model_free(am->model);
    memset(am, 0, sizeof *am);
}

/* Grows a pass that stopped early to the model's L layers, the ones not run NaN, so that the
 * source has the model's shape and a read of a layer that was not computed shows. */
static ats_status pad_layers(ats_forward_result *res, size_t L, ats_error *err) {
    size_t per = res->n_heads * res->n_tokens * res->n_tokens, have = res->n_layers * per;
    float *p = realloc(res->attention, L * per * sizeof *p);
    if (!p) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    for (size_t i = have; i < L * per; i++) p[i] = NAN;
    res->attention = p;
    res->n_layers = L;
    return ATS_OK;
}

static ats_status load_from_model(const analysis_args *a, analysis_model *am, attn_source *src,
                                  size_t *count, ats_error *err) {
    ats_status st = ATS_OK;
    size_t nt = a->n_texts;
    ats_encoding enc[ANALYSIS_MAX_INPUTS];
    ats_model_input in[ANALYSIS_MAX_INPUTS];
    ats_forward_result res[ANALYSIS_MAX_INPUTS];
    size_t encoded = 0;
    for (size_t t = 0; t < nt && !st; t++) {
        const char *text = a->texts[t];
        if (!*text) st = ats_error_set(err, ATS_ERR_INVALID, "text %zu is empty", t + 1);
        if (!st) st = ats_tokenizer_encode(am->tok, text, strlen(text), 1, &enc[t], err);
        if (!st) {
            encoded = t + 1;
            in[t] = (ats_model_input){enc[t].ids, NULL, NULL, enc[t].count};
        }
    }
    /* every text in one pass: the model reads its weights once for all of them */
    ats_forward_options fo;
    ats_forward_options_init(&fo);
    fo.capture = ATS_CAPTURE_ATTENTION | (a->want_hidden ? ATS_CAPTURE_HIDDEN : 0);
    fo.n_threads = a->threads;
    fo.truncate = a->truncate;
    int model_layers = ats_model_info_get(am->model)->n_layers;
    if (a->only_layer && !a->want_hidden && a->layer >= 0 && a->layer < model_layers)
        fo.n_layers = (int)a->layer + 1;
    if (!st && nt) {
        ats_error e;
        st = ats_model_forward_batch(am->model, nt, in, &fo, res, &e);
        if (st) { /* "sequence k: …" → "text k+1: …" */
            size_t k;
            int used = 0;
            const char *msg = e.message;
            if (sscanf(e.message, "sequence %zu: %n", &k, &used) == 1 && used > 0)
                msg = e.message + used;
            ats_error_set(err, st, "text %zu: %s", used > 0 ? k + 1 : 1, msg);
        }
    }
    for (size_t t = 0; t < nt && !st; t++) {
        if (res[t].n_layers < (size_t)model_layers)
            st = pad_layers(&res[t], (size_t)model_layers, err);
        if (st) break;
        attn_source *s = &src[t];
        memset(s, 0, sizeof *s);
        s->L = res[t].n_layers;
        s->H = res[t].n_heads;
        s->n = res[t].n_tokens;
        s->d = res[t].d_model;
        s->att = res[t].attention;
        s->hidden = res[t].hidden;
        res[t].attention = res[t].hidden = NULL;
        s->labels = labels_from_encoding(&enc[t], a->texts[t]);
        char name[32];
        snprintf(name, sizeof name, "text %zu", t + 1);
        s->name = strdup(name);
        if (!s->labels || !s->name) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        if (s->labels && s->n < enc[t].count) /* truncated: labels beyond n are dropped */
            for (size_t i = s->n; i < enc[t].count; i++) free(s->labels[i]);
        *count = t + 1;
    }
    if (encoded == nt && nt)
        for (size_t t = 0; t < nt; t++) ats_forward_result_free(&res[t]);
    for (size_t t = 0; t < encoded; t++) ats_encoding_free(&enc[t]);
    return st;
}

static ats_status read_label_file(const char *path, size_t n, char ***out, ats_error *err) {
    char *buf;
    size_t len;
    ats_status st = ats_file_read_all(path, (size_t)1 << 26, &buf, &len, err);
    if (st) return st;
    char **l = calloc(n ? n : 1, sizeof *l);
    size_t k = 0;
    char *p = buf;
    while (l && k < n && *p) {
        char *e = strchr(p, '\n');
        size_t w = e ? (size_t)(e - p) : strlen(p);
        if (w && p[w - 1] == '\r') w--;
        l[k++] = dup_range(p, w);
        if (!e) break;
        p = e + 1;
    }
    free(buf);
    if (!l || k != n) {
        if (l)
            for (size_t i = 0; i < k; i++) free(l[i]);
        free(l);
        return l ? ats_error_set(err, ATS_ERR_FORMAT, "%s: %zu labels for %zu tokens", path, k, n)
                 : ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    *out = l;
    return ATS_OK;
}

static ats_status load_from_files(const analysis_args *a, attn_source *src, size_t *count,
                                  ats_error *err) {
    for (size_t t = 0; t < a->n_attention; t++) {
        ats_npy arr;
        ats_status st = ats_npy_read(a->attention[t], &arr, err);
        if (st) return st;
        attn_source *s = &src[t];
        memset(s, 0, sizeof *s);
        if ((arr.ndim != 2 && arr.ndim != 4) || (arr.dtype != ATS_F32 && arr.dtype != ATS_F64) ||
            arr.shape[arr.ndim - 1] != arr.shape[arr.ndim - 2] || arr.count == 0) {
            ats_npy_free(&arr);
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: attention must be a float array [L][H][n][n] or [n][n]",
                                 a->attention[t]);
        }
        s->L = arr.ndim == 4 ? arr.shape[0] : 1;
        s->H = arr.ndim == 4 ? arr.shape[1] : 1;
        s->n = arr.shape[arr.ndim - 1];
        s->att = malloc(arr.count * sizeof *s->att);
        s->name = strdup(a->attention[t]);
        *count = t + 1;
        if (!s->att || !s->name) {
            ats_npy_free(&arr);
            return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        }
        for (size_t i = 0; i < arr.count; i++)
            s->att[i] =
                arr.dtype == ATS_F32 ? ((float *)arr.data)[i] : (float)((double *)arr.data)[i];
        ats_npy_free(&arr);
        if (a->n_tokens) {
            st = read_label_file(a->tokens[t], s->n, &s->labels, err);
            if (st) return st;
        } else {
            s->labels = calloc(s->n, sizeof *s->labels);
            if (!s->labels) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
            for (size_t i = 0; i < s->n; i++) {
                char num[32];
                snprintf(num, sizeof num, "%zu", i);
                if (!(s->labels[i] = strdup(num)))
                    return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
            }
        }
    }
    return ATS_OK;
}

ats_status analysis_load_with(const analysis_args *a, analysis_model *am, attn_source *src,
                              size_t *count, ats_error *err) {
    *count = 0;
    ats_status st =
        a->model ? load_from_model(a, am, src, count, err) : load_from_files(a, src, count, err);
    if (st) {
        for (size_t i = 0; i < *count; i++) attn_source_free(&src[i]);
        *count = 0;
        return st;
    }
    for (size_t t = 0; t < *count; t++) {
        if ((a->layer >= 0 && (size_t)a->layer >= src[t].L) ||
            (a->head >= 0 && (size_t)a->head >= src[t].H)) {
            ats_error_set(err, ATS_ERR_INVALID,
                          "%s: layer %ld, head %ld is outside its %zu x %zu heads", src[t].name,
                          a->layer, a->head, src[t].L, src[t].H);
            for (size_t i = 0; i < *count; i++) attn_source_free(&src[i]);
            *count = 0;
            return ATS_ERR_INVALID;
        }
    }
    return ATS_OK;
}

ats_status analysis_load(const analysis_args *a, attn_source *src, size_t *count, ats_error *err) {
    analysis_model am;
    *count = 0;
    ats_status st = analysis_model_open(a, &am, err);
    if (!st) st = analysis_load_with(a, &am, src, count, err);
    analysis_model_close(&am);
    return st;
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

size_t analysis_default_scales(size_t n, const double *lower, double *scales) {
    size_t m = n * (n - 1) / 2;
    if (m == 0) {
        scales[0] = 0;
        return 1;
    }
    double *c = malloc(m * sizeof *c);
    if (!c) return 0;
    memcpy(c, lower, m * sizeof *c);
    qsort(c, m, sizeof *c, cmp_double);
    scales[0] = c[m / 10];
    scales[1] = c[m / 4];
    scales[2] = c[m / 2];
    free(c);
    return 3;
}

ats_status analysis_scales_check(size_t n, const double *lower, double threshold,
                                 const double *scales, size_t ns, const char *name,
                                 const char *points, ats_error *err) {
    double top = 0;
    for (size_t q = 0; q < n * (n - 1) / 2; q++) top = fmax(top, lower[q]);
    top = fmin(top, threshold);
    for (size_t q = 0; q < ns; q++)
        if (scales[q] > top) {
            if (top < threshold)
                return ats_error_set(err, ATS_ERR_INVALID,
                                     "%s: scale %g is outside the diagram's range [0, %.6g] (the "
                                     "largest distance between its %s)",
                                     name, scales[q], top, points);
            return ats_error_set(err, ATS_ERR_INVALID,
                                 "%s: scale %g is outside the diagram's range [0, %.6g] (the "
                                 "threshold)",
                                 name, scales[q], top);
        }
    return ATS_OK;
}
