/* A session (a model and its tokenizer) and the attention of inputs with their token labels:
 * texts run through the model, or arrays computed elsewhere. */
#include "analysis_internal.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct ats_session {
    ats_model *model;
    ats_tokenizer *tok; /* NULL for a vision model */
    char errmsg[ATS_ERROR_MESSAGE_MAX];
};

ats_status ats_session_open(const char *name_or_path, ats_session **out, ats_error *err) {
    return ats_session_open_adapted(name_or_path, NULL, out, err);
}

ats_status ats_session_open_adapted(const char *name_or_path, const char *adapter_dir,
                                    ats_session **out, ats_error *err) {
    *out = NULL;
    ats_session *s = calloc(1, sizeof *s);
    if (!s) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    ats_status st = ats_model_load_adapted(name_or_path, adapter_dir, &s->model, err);
    const ats_model_info *info = st ? NULL : ats_model_info_get(s->model);
    if (!st && info->arch != ATS_ARCH_VIT) st = ats_tokenizer_load(info->dir, &s->tok, err);
    if (st) {
        ats_session_close(s);
        return st;
    }
    *out = s;
    return ATS_OK;
}

void ats_session_close(ats_session *s) {
    if (!s) return;
    ats_tokenizer_free(s->tok);
    ats_model_free(s->model);
    free(s);
}

ats_model *ats_session_model(const ats_session *s) {
    return s->model;
}

ats_tokenizer *ats_session_tokenizer(const ats_session *s) {
    return s->tok;
}

const char *ats_session_errmsg(const ats_session *s) {
    return s->errmsg;
}

/* The viewer runs calls on one session from several threads at once: their failures take turns
 * writing errmsg. */
static pthread_mutex_t errmsg_lock = PTHREAD_MUTEX_INITIALIZER;

ats_status session_failed(ats_session *s, ats_status st, const ats_error *e, ats_error *err) {
    if (s) {
        pthread_mutex_lock(&errmsg_lock);
        snprintf(s->errmsg, sizeof s->errmsg, "%s", e->message);
        pthread_mutex_unlock(&errmsg_lock);
    }
    if (err && err != e) {
        *err = *e;
        err->status = st;
    }
    return st;
}

ats_status session_need_text(const ats_session *s, ats_error *err) {
    if (s->tok) return ATS_OK;
    return ats_error_set(err, ATS_ERR_INVALID, "%s: a vision model takes images, not texts",
                         ats_model_info_get(s->model)->dir);
}

void ats_run_options_init(ats_run_options *o) {
    memset(o, 0, sizeof *o);
}

void ats_attention_free(ats_attention *a) {
    if (!a) return;
    free(a->att);
    free(a->hidden);
    if (a->labels)
        for (size_t i = 0; i < a->n; i++) free(a->labels[i]);
    free(a->labels);
    free(a->name);
    memset(a, 0, sizeof *a);
}

void ats_attention_head_values(const ats_attention *a, size_t l, size_t h, double *out) {
    size_t nn = a->n * a->n;
    const float *p = a->att + (l * a->H + h) * nn;
    for (size_t i = 0; i < nn; i++) out[i] = p[i];
}

ats_attn ats_attention_head(const ats_attention *a, size_t l, size_t h) {
    ats_attn v;
    memset(&v, 0, sizeof v);
    v.dtype = ATS_F32;
    v.data = a->att + (l * a->H + h) * a->n * a->n;
    v.L = v.H = 1;
    v.n = a->n;
    v.source = a->name;
    return v;
}

/* Grows a pass that stopped early to the model's L layers, the ones not run NaN, so that the
 * attention has the model's shape and a read of a layer that was not computed shows. */
static ats_status pad_layers(ats_forward_result *res, size_t L, ats_error *err) {
    size_t per = res->n_heads * res->n_tokens * res->n_tokens, have = res->n_layers * per;
    ats_status st = ats_memory_check(L * per * sizeof(float), "the attention of every layer", err);
    if (st) return st;
    float *p = realloc(res->attention, L * per * sizeof *p);
    if (!p) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    for (size_t i = have; i < L * per; i++) p[i] = NAN;
    res->attention = p;
    res->n_layers = L;
    return ATS_OK;
}

/* Takes the arrays of a forward result and labels the tokens the pass kept. */
static ats_status attention_from_result(ats_forward_result *res, const ats_encoding *enc,
                                        const char *text, size_t t, ats_attention *a,
                                        ats_error *err) {
    memset(a, 0, sizeof *a);
    a->L = res->n_layers;
    a->H = res->n_heads;
    a->d = res->d_model;
    a->att = res->attention;
    a->hidden = res->hidden;
    res->attention = res->hidden = NULL;
    char **labels = calloc(enc->count ? enc->count : 1, sizeof *labels);
    char name[32];
    snprintf(name, sizeof name, "text %zu", t + 1);
    a->name = strdup(name);
    if (!labels || !a->name) {
        free(labels);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    ats_status st = ats_token_labels(enc, text, labels, err);
    if (st) {
        free(labels);
        return st;
    }
    /* truncated: the labels of the tokens the pass did not keep go */
    for (size_t i = res->n_tokens; i < enc->count; i++) free(labels[i]);
    a->labels = labels;
    a->n = res->n_tokens;
    return ATS_OK;
}

/* The forward pass's on_layer: layer l of sequence t handed to the caller's on_layer (o), or as
 * an ats_attention view to ly->fn; its error is kept to be returned as it is. */
typedef struct layer_shim {
    const session_layers *ly;
    const ats_run_options *o;
    ats_error err;
} layer_shim;

static ats_status layer_shim_fn(void *ctx, size_t t, size_t l, size_t H, size_t n, const float *att,
                                ats_error *err) {
    layer_shim *sh = ctx;
    if (!sh->ly) {
        ats_status st = sh->o->on_layer(sh->o->on_layer_ctx, t, l, H, n, att, &sh->err);
        if (st && !sh->err.status)
            ats_error_set(&sh->err, st, "text %zu: the layer callback failed", t + 1);
        if (st) *err = sh->err;
        return st;
    }
    char name[32];
    snprintf(name, sizeof name, "text %zu", t + 1);
    ats_attention v;
    memset(&v, 0, sizeof v);
    v.L = 1;
    v.H = H;
    v.n = n;
    v.att = (float *)att; /* read only: the view is const for fn */
    v.name = sh->ly->names ? (char *)sh->ly->names[t] : name;
    ats_status st = sh->ly->fn(sh->ly->ctx, t, l, &v, &sh->err);
    if (st) *err = sh->err;
    return st;
}

/* session_run, and session_run_layers when ly is not NULL */
static ats_status run_texts(ats_session *s, size_t count, const char *const *texts,
                            const ats_run_options *o, const session_layers *ly, ats_attention *out,
                            ats_error *err) {
    ats_status st = session_need_text(s, err);
    ats_encoding *enc = calloc(count ? count : 1, sizeof *enc);
    ats_model_input *in = calloc(count ? count : 1, sizeof *in);
    ats_forward_result *res = calloc(count ? count : 1, sizeof *res);
    if (!st && (!enc || !in || !res)) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    for (size_t t = 0; t < count; t++) memset(&out[t], 0, sizeof out[t]);
    size_t encoded = 0;
    for (size_t t = 0; t < count && !st; t++) {
        const char *text = texts[t];
        if (!*text) st = ats_error_set(err, ATS_ERR_INVALID, "text %zu is empty", t + 1);
        if (!st) st = ats_tokenizer_encode(s->tok, text, strlen(text), 1, &enc[t], err);
        if (!st) {
            encoded = t + 1;
            in[t] = (ats_model_input){enc[t].ids, NULL, NULL, enc[t].count};
        }
    }
    if (!st && o->want_hidden && o->capture_layer)
        st = ats_error_set(err, ATS_ERR_INVALID,
                           "the hidden states of every layer with the attention of one layer "
                           "(want_hidden with capture_layer) are not supported");
    if (!st && o->on_layer && (o->capture_layer || o->capture_head))
        st = ats_error_set(err, ATS_ERR_INVALID,
                           "on_layer hands every layer over: not with capture_layer or "
                           "capture_head");
    int streamed = ly || o->on_layer;
    /* every text in one pass: the model reads its weights once for all of them */
    ats_forward_options fo;
    ats_forward_options_init(&fo);
    fo.capture = (streamed ? 0 : ATS_CAPTURE_ATTENTION) | (o->want_hidden ? ATS_CAPTURE_HIDDEN : 0);
    layer_shim shim = {ly, o, {0}};
    if (streamed) {
        size_t max_n = 0, lim = (size_t)ats_model_info_get(s->model)->max_positions;
        for (size_t t = 0; t < encoded; t++) {
            size_t n = in[t].n < lim || !o->truncate ? in[t].n : lim;
            max_n = n > max_n ? n : max_n;
        }
        fo.on_layer = layer_shim_fn;
        fo.on_layer_ctx = &shim;
        size_t H = (size_t)ats_model_info_get(s->model)->n_heads;
        fo.on_layer_bytes = !ly ? o->on_layer_bytes : ly->bytes ? ly->bytes(ly->ctx, max_n, H) : 0;
    }
    fo.n_threads = o->n_threads;
    fo.truncate = o->truncate;
    fo.n_layers = o->n_layers;
    fo.capture_layer = o->capture_layer;
    fo.capture_head = o->capture_head;
    int model_layers = ats_model_info_get(s->model)->n_layers;
    int ran = 0;
    if (!st && count) {
        ats_error e;
        st = ats_model_forward_batch(s->model, count, in, &fo, res, &e);
        ran = !st;
        if (st && shim.err.status) { /* the layer's analysis failed: its own message */
            if (err) *err = shim.err;
        } else if (st) { /* "sequence k: …" → "text k+1: …"; the pass of several texts as is */
            size_t k;
            int used = 0;
            const char *msg = e.message;
            if (sscanf(e.message, "sequence %zu: %n", &k, &used) == 1 && used > 0)
                msg = e.message + used;
            if (used > 0 || count == 1)
                ats_error_set(err, st, "text %zu: %s", used > 0 ? k + 1 : 1, msg);
            else
                ats_error_set(err, st, "%s", msg);
        }
    }
    for (size_t t = 0; t < count && !st; t++) {
        if (streamed) res[t].n_layers = (size_t)model_layers; /* what the layers came from */
        if (res[t].n_layers < (size_t)model_layers && !o->capture_layer)
            st = pad_layers(&res[t], (size_t)model_layers, err);
        if (o->capture_layer) res[t].n_layers = 1; /* what the result holds */
        if (o->capture_head) res[t].n_heads = 1;
        if (!st) st = attention_from_result(&res[t], &enc[t], texts[t], t, &out[t], err);
    }
    for (size_t t = 0; ran && t < count; t++) ats_forward_result_free(&res[t]);
    for (size_t t = 0; t < encoded; t++) ats_encoding_free(&enc[t]);
    free(enc);
    free(in);
    free(res);
    if (st)
        for (size_t t = 0; t < count; t++) ats_attention_free(&out[t]);
    return st;
}

ats_status session_run(ats_session *s, size_t count, const char *const *texts,
                       const ats_run_options *o, ats_attention *out, ats_error *err) {
    return run_texts(s, count, texts, o, NULL, out, err);
}

ats_status session_run_layers(ats_session *s, size_t count, const char *const *texts,
                              const ats_run_options *o, const session_layers *ly,
                              ats_attention *out, ats_error *err) {
    return run_texts(s, count, texts, o, ly, out, err);
}

ats_status ats_session_run(ats_session *s, size_t count, const char *const *texts,
                           const ats_run_options *o, ats_attention *out, ats_error *err) {
    ats_error e = {0};
    ats_run_options def;
    if (!o) {
        ats_run_options_init(&def);
        o = &def;
    }
    ats_status st = session_run(s, count, texts, o, out, &e);
    return st ? session_failed(s, st, &e, err) : ATS_OK;
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
        /* lines written from a tokenizer's vocabulary ("Ġthe", "▁the") read as the text */
        char *line = strndup(p, w);
        l[k] = line ? ats_token_label(line) : NULL;
        free(line);
        if (!l[k]) {
            for (size_t i = 0; i < k; i++) free(l[i]);
            free(l);
            free(buf);
            return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        }
        k++;
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

static ats_status attention_read(const char *npy_path, const char *labels_path, ats_attention *a,
                                 ats_error *err) {
    ats_npy arr;
    ats_status st = ats_npy_read(npy_path, &arr, err);
    if (st) return st;
    if ((arr.ndim != 2 && arr.ndim != 4) || (arr.dtype != ATS_F32 && arr.dtype != ATS_F64) ||
        arr.shape[arr.ndim - 1] != arr.shape[arr.ndim - 2] || arr.count == 0) {
        ats_npy_free(&arr);
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: attention must be a float array [L][H][n][n] or [n][n]",
                             npy_path);
    }
    a->L = arr.ndim == 4 ? arr.shape[0] : 1;
    a->H = arr.ndim == 4 ? arr.shape[1] : 1;
    a->n = arr.shape[arr.ndim - 1];
    a->att = malloc(arr.count * sizeof *a->att);
    a->name = strdup(npy_path);
    if (!a->att || !a->name) {
        ats_npy_free(&arr);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < arr.count; i++)
        a->att[i] = arr.dtype == ATS_F32 ? ((float *)arr.data)[i] : (float)((double *)arr.data)[i];
    ats_npy_free(&arr);
    if (labels_path) return read_label_file(labels_path, a->n, &a->labels, err);
    a->labels = calloc(a->n, sizeof *a->labels);
    if (!a->labels) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < a->n; i++) {
        char num[32];
        snprintf(num, sizeof num, "%zu", i);
        if (!(a->labels[i] = strdup(num)))
            return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    return ATS_OK;
}

ats_status ats_attention_read(const char *npy_path, const char *labels_path, ats_attention *out,
                              ats_error *err) {
    memset(out, 0, sizeof *out);
    ats_status st = attention_read(npy_path, labels_path, out, err);
    if (st) ats_attention_free(out);
    return st;
}
