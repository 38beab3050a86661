/* Model loading: config.json → ats_model_info, model.safetensors → weight pointers (float32;
 * F16/BF16 and unaligned tensors are converted into owned copies), every shape checked. */
#define _DEFAULT_SOURCE /* madvise(MADV_DONTNEED), sysconf */
#include "model_internal.h"

#include "attnscope/hub.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Forward passes on one model may run on several threads at once (the viewer's): their failures
 * take turns writing errmsg. */
static pthread_mutex_t errmsg_lock = PTHREAD_MUTEX_INITIALIZER;

ats_status ats_model_fail(ats_model *m, ats_error *err, ats_status st, const char *fmt, ...) {
    char buf[ATS_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (m) {
        pthread_mutex_lock(&errmsg_lock);
        snprintf(m->errmsg, sizeof m->errmsg, "%s", buf);
        pthread_mutex_unlock(&errmsg_lock);
    }
    return ats_error_set(err, st, "%s", buf);
}

const ats_model_info *ats_model_info_get(const ats_model *m) {
    return &m->info;
}
const char *ats_model_errmsg(const ats_model *m) {
    return m ? m->errmsg : "no model";
}

void ats_model_free(ats_model *m) {
    if (!m) return;
    for (size_t i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->packed);
    free(m->layers);
    ats_safetensors_close(&m->st);
    for (size_t i = 0; i < m->n_shards; i++) ats_safetensors_close(&m->shards[i]);
    free(m->shards);
    free(m->dir);
    free(m);
}

/* ---- config.json */

typedef struct cfg {
    const cJSON *root;
    const char *path;
    ats_error *err;
    ats_status rc;
} cfg;

/* An integer field; def < -1 means required. */
static int cfg_int(cfg *c, const char *key, long def, long lo, long hi) {
    if (c->rc) return 0;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    if (!v || cJSON_IsNull(v)) {
        if (def >= -1) return (int)def;
        c->rc = ats_error_set(c->err, ATS_ERR_FORMAT, "%s: missing \"%s\"", c->path, key);
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi) {
        c->rc = ats_error_set(c->err, ATS_ERR_FORMAT, "%s: \"%s\" must be an integer in [%ld, %ld]",
                              c->path, key, lo, hi);
        return 0;
    }
    return (int)v->valuedouble;
}

static double cfg_num(cfg *c, const char *key, double def) {
    if (c->rc) return def;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    if (!v || cJSON_IsNull(v)) return def;
    /* the model computes in float32: a number beyond FLT_MAX would become infinite there */
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || fabs(v->valuedouble) > FLT_MAX) {
        c->rc = ats_error_set(c->err, ATS_ERR_FORMAT, "%s: \"%s\" must be a finite number", c->path,
                              key);
        return def;
    }
    return v->valuedouble;
}

/* A layer-norm epsilon: 0 < eps <= 1 (1e300 would make every normalised value 0, a uniform
 * attention that looks like a result). */
static float cfg_eps(cfg *c, const char *key, double def) {
    double v = cfg_num(c, key, def);
    if (!c->rc && !(v > 0 && v <= 1))
        c->rc = ats_error_set(c->err, ATS_ERR_FORMAT, "%s: \"%s\" = %g must be in (0, 1]", c->path,
                              key, v);
    return (float)v;
}

static int cfg_bool(cfg *c, const char *key, int def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    if (!v || !cJSON_IsBool(v)) return def;
    return cJSON_IsTrue(v);
}

static const char *cfg_str(cfg *c, const char *key, const char *def) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    return cJSON_IsString(v) ? v->valuestring : def;
}

static int parse_act(const char *s, act_kind *out) {
    static const struct {
        const char *name;
        act_kind act;
    } T[] = {{"gelu", ACT_GELU},
             {"gelu_new", ACT_GELU_TANH},
             {"gelu_pytorch_tanh", ACT_GELU_TANH},
             {"gelu_fast", ACT_GELU_TANH},
             {"relu", ACT_RELU},
             {"silu", ACT_SILU},
             {"swish", ACT_SILU},
             {"quick_gelu", ACT_GELU_QUICK}};
    for (size_t i = 0; i < sizeof T / sizeof T[0]; i++)
        if (!strcmp(s, T[i].name)) {
            *out = T[i].act;
            return 1;
        }
    return 0;
}

char *ats_model_path_join(const char *dir, const char *file) {
    size_t a = strlen(dir), b = strlen(file);
    char *p = malloc(a + b + 2);
    if (p) {
        memcpy(p, dir, a);
        p[a] = '/';
        memcpy(p + a + 1, file, b + 1);
    }
    return p;
}

int ats_model_file_exists(const char *p) {
    struct stat sb;
    return stat(p, &sb) == 0 && S_ISREG(sb.st_mode);
}

ats_status ats_model_read_json(const char *path, cJSON **out, ats_error *err) {
    char *buf;
    size_t len;
    ats_status rc = ats_file_read_regular(path, (size_t)64 << 20, &buf, &len, err);
    if (rc) return rc;
    *out = cJSON_ParseWithLength(buf, len);
    free(buf);
    if (!*out || !cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: not a JSON object", path);
    }
    return ATS_OK;
}

static int own(ats_model *m, float *p);

/* The rotary frequencies inv_freq[rot/2] of a decoder, as transformers' ROPE_INIT_FUNCTIONS
 * compute them in float32: base^(-2i/rot), then the config's rope_scaling. "dynamic" changes
 * the frequencies only for inputs longer than max_position_embeddings, which attnscope does not
 * run (the input limit), so it is the default here, as it is in transformers for those
 * inputs. */
static ats_status parse_rope(ats_model *m, const cJSON *root, const char *path, double base,
                             ats_error *err) {
    ats_model_info *I = &m->info;
    size_t half = (size_t)m->rotary_dim / 2;
    float *inv = malloc(half * sizeof *inv);
    if (!inv || !own(m, inv)) {
        free(inv);
        return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    }
    m->inv_freq = inv;
    if (!(base > 0.0))
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: rope_theta must be > 0 (got %g)", path,
                             base);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    const char *type = "default";
    char rpath[600];
    snprintf(rpath, sizeof rpath, "%s: rope_scaling", path);
    cfg c = {rs, rpath, err, ATS_OK};
    if (rs && !cJSON_IsNull(rs)) {
        if (!cJSON_IsObject(rs))
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: \"rope_scaling\" must be an object or null", path);
        type = cfg_str(&c, "rope_type", cfg_str(&c, "type", NULL));
        if (!type)
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: \"rope_scaling\" has no \"rope_type\" (or \"type\")", path);
    }
    int dim = m->rotary_dim;
    if (!strcmp(type, "dynamic")) {
        /* transformers' dynamic NTK at its initial length, seq_len = max_position_embeddings */
        double factor = cfg_num(&c, "factor", NAN), len = (double)I->max_positions;
        if (!c.rc && !(factor >= 1.0))
            return ats_error_set(err, ATS_ERR_FORMAT, "%s: \"factor\" must be a number >= 1",
                                 rpath);
        base = base * pow(factor * len / len - (factor - 1.0), (double)dim / (double)(dim - 2));
    }
    for (size_t i = 0; i < half; i++) {
        float e = (float)(2 * i) / (float)dim;
        inv[i] = 1.0f / powf((float)base, e);
    }
    if (!strcmp(type, "default") || !strcmp(type, "dynamic")) return c.rc;
    if (!strcmp(type, "linear")) {
        double factor = cfg_num(&c, "factor", NAN);
        if (!c.rc && !(factor > 0.0))
            return ats_error_set(err, ATS_ERR_FORMAT, "%s: \"factor\" must be a number > 0", rpath);
        for (size_t i = 0; i < half; i++) inv[i] = inv[i] / (float)factor;
        return c.rc;
    }
    if (!strcmp(type, "llama3")) {
        double factor = cfg_num(&c, "factor", NAN), lo = cfg_num(&c, "low_freq_factor", NAN),
               hi = cfg_num(&c, "high_freq_factor", NAN),
               old = cfg_num(&c, "original_max_position_embeddings", NAN);
        if (c.rc) return c.rc;
        if (!(factor > 0.0) || !(lo > 0.0) || !(hi > lo) || !(old > 0.0))
            return ats_error_set(
                err, ATS_ERR_FORMAT,
                "%s: llama3 needs \"factor\" > 0, 0 < \"low_freq_factor\" < "
                "\"high_freq_factor\" and \"original_max_position_embeddings\" > 0",
                rpath);
        /* wavelengths above old/lo are divided by factor, below old/hi kept, and blended in
         * between; float32 as transformers computes it */
        float lo_wl = (float)(old / lo), hi_wl = (float)(old / hi);
        for (size_t i = 0; i < half; i++) {
            float wl = (float)6.283185307179586 / inv[i]; /* 2π */
            float f = wl > lo_wl ? inv[i] / (float)factor : inv[i];
            float smooth = ((float)old / wl - (float)lo) / (float)(hi - lo);
            float blend = (1.0f - smooth) * f / (float)factor + smooth * f;
            inv[i] = !(wl < hi_wl) && !(wl > lo_wl) ? blend : f;
        }
        return ATS_OK;
    }
    return ats_error_set(err, ATS_ERR_FORMAT,
                         "%s: rope_scaling type \"%s\" is not supported (supported: default, "
                         "linear, dynamic, llama3)",
                         path, type);
}

/* The Llama family (llama, mistral, qwen2) and GPT-NeoX: sizes, norms, rotary embeddings. */
static ats_status parse_decoder(ats_model *m, cfg *c, const char *mt, const char **act) {
    ats_model_info *I = &m->info;
    const int BIG = 1 << 24;
    int neox = !strcmp(mt, "gpt_neox");
    I->arch = neox                     ? ATS_ARCH_GPT_NEOX
              : !strcmp(mt, "mistral") ? ATS_ARCH_MISTRAL
              : !strcmp(mt, "qwen2")   ? ATS_ARCH_QWEN2
                                       : ATS_ARCH_LLAMA;
    I->d_model = cfg_int(c, "hidden_size", -2, 1, BIG);
    I->n_heads = cfg_int(c, "num_attention_heads", -2, 1, 4096);
    I->n_layers = cfg_int(c, "num_hidden_layers", -2, 0, 4096);
    I->d_ff = cfg_int(c, "intermediate_size", -2, 1, BIG);
    I->vocab_size = cfg_int(c, "vocab_size", -2, 1, BIG);
    I->max_positions = cfg_int(c, "max_position_embeddings", 2048, 1, BIG);
    I->causal = 1;
    m->pre_ln = 1;
    double base, part;
    m->tie_embeddings = cfg_bool(c, "tie_word_embeddings", 0);
    if (neox) {
        m->bias = 4u | (cfg_bool(c, "attention_bias", 1) ? 3u : 0u);
        I->n_kv_heads = I->n_heads;
        I->eps = cfg_eps(c, "layer_norm_eps", 1e-5);
        *act = cfg_str(c, "hidden_act", "gelu");
        m->parallel_residual = cfg_bool(c, "use_parallel_residual", 1);
        base = cfg_num(c, "rotary_emb_base", 10000.0);
        part = cfg_num(c, "rotary_pct", 0.25);
    } else {
        I->n_kv_heads = cfg_int(c, "num_key_value_heads", I->n_heads, 1, 4096);
        I->eps = cfg_eps(c, "rms_norm_eps", 1e-6);
        *act = cfg_str(c, "hidden_act", "silu");
        m->rmsnorm = 1;
        m->gated_mlp = 1;
        /* Qwen2: q/k/v always have biases, nothing else; Mistral: none */
        if (I->arch == ATS_ARCH_QWEN2)
            m->bias = 1u;
        else if (I->arch == ATS_ARCH_LLAMA)
            m->bias = (cfg_bool(c, "attention_bias", 0) ? 3u : 0u) |
                      (cfg_bool(c, "mlp_bias", 0) ? 4u : 0u);
        base = cfg_num(c, "rope_theta", 10000.0);
        part = cfg_num(c, "partial_rotary_factor", 1.0);
    }
    int hd = neox ? 0 : cfg_int(c, "head_dim", 0, 0, 1 << 16);
    if (c->rc) return c->rc;
    if (!hd && I->d_model % I->n_heads)
        return ats_error_set(c->err, ATS_ERR_FORMAT,
                             "%s: hidden_size %d is not a multiple of num_attention_heads %d",
                             c->path, I->d_model, I->n_heads);
    I->d_head = hd ? hd : I->d_model / I->n_heads;
    if (I->n_heads % I->n_kv_heads)
        return ats_error_set(c->err, ATS_ERR_FORMAT,
                             "%s: num_attention_heads %d is not a multiple of num_key_value_heads "
                             "%d",
                             c->path, I->n_heads, I->n_kv_heads);
    if (!(part > 0.0 && part <= 1.0))
        return ats_error_set(c->err, ATS_ERR_FORMAT, "%s: \"%s\" must be in (0, 1] (got %g)",
                             c->path, neox ? "rotary_pct" : "partial_rotary_factor", part);
    m->rotary_dim = (int)((double)I->d_head * part);
    if (m->rotary_dim < 2 || m->rotary_dim % 2)
        return ats_error_set(c->err, ATS_ERR_FORMAT,
                             "%s: %d rotary dimensions per head (head size %d x %g); expected an "
                             "even number >= 2",
                             c->path, m->rotary_dim, I->d_head, part);
    return parse_rope(m, c->root, c->path, base, c->err);
}

static ats_status parse_config(ats_model *m, const cJSON *root, const char *path, ats_error *err) {
    cfg c = {root, path, err, ATS_OK};
    ats_model_info *I = &m->info;
    const char *mt = cfg_str(&c, "model_type", NULL);
    if (!mt) return ats_error_set(err, ATS_ERR_FORMAT, "%s: missing \"model_type\"", path);
    snprintf(m->model_type, sizeof m->model_type, "%s", mt);
    I->model_type = m->model_type;
    const char *act = "gelu";
    const int BIG = 1 << 24;
    if (!strcmp(mt, "gpt2")) {
        I->arch = ATS_ARCH_GPT2;
        I->d_model = cfg_int(&c, "n_embd", -2, 1, BIG);
        I->n_heads = cfg_int(&c, "n_head", -2, 1, 4096);
        I->n_layers = cfg_int(&c, "n_layer", -2, 0, 4096);
        I->max_positions = cfg_int(&c, "n_positions", 1024, 1, BIG);
        I->d_ff = cfg_int(&c, "n_inner", 0, 0, BIG);
        if (!I->d_ff) I->d_ff = 4 * I->d_model;
        I->vocab_size = cfg_int(&c, "vocab_size", -2, 1, BIG);
        I->eps = cfg_eps(&c, "layer_norm_epsilon", 1e-5);
        act = cfg_str(&c, "activation_function", "gelu_new");
        I->causal = 1;
        m->conv1d = 1;
        m->pre_ln = 1;
        m->scale_attn = cfg_bool(&c, "scale_attn_weights", 1);
        m->scale_by_layer = cfg_bool(&c, "scale_attn_by_inverse_layer_idx", 0);
    } else if (!strcmp(mt, "bert") || !strcmp(mt, "roberta") || !strcmp(mt, "vit") ||
               !strcmp(mt, "xlm-roberta") || !strcmp(mt, "camembert")) {
        /* XLM-RoBERTa and CamemBERT are RoBERTa's architecture under other names */
        int vit = !strcmp(mt, "vit");
        I->arch = vit ? ATS_ARCH_VIT : !strcmp(mt, "bert") ? ATS_ARCH_BERT : ATS_ARCH_ROBERTA;
        I->d_model = cfg_int(&c, "hidden_size", 768, 1, BIG);
        I->n_heads = cfg_int(&c, "num_attention_heads", 12, 1, 4096);
        I->n_layers = cfg_int(&c, "num_hidden_layers", 12, 0, 4096);
        I->d_ff = cfg_int(&c, "intermediate_size", 3072, 1, BIG);
        I->eps = cfg_eps(&c, "layer_norm_eps", 1e-12);
        act = cfg_str(&c, "hidden_act", "gelu");
        if (vit) {
            I->image_size = cfg_int(&c, "image_size", 224, 1, 1 << 16);
            I->patch_size = cfg_int(&c, "patch_size", 16, 1, 1 << 16);
            I->n_channels = cfg_int(&c, "num_channels", 3, 1, 3);
            m->pre_ln = 1;
            if (c.rc) return c.rc; /* patch_size may be 0 then: no division below */
            if (I->image_size % I->patch_size)
                return ats_error_set(err, ATS_ERR_FORMAT,
                                     "%s: image_size %d is not a multiple of patch_size %d", path,
                                     I->image_size, I->patch_size);
            int g = I->image_size / I->patch_size;
            I->max_positions = g * g + 1;
        } else {
            I->vocab_size = cfg_int(&c, "vocab_size", -2, 1, BIG);
            I->max_positions = cfg_int(&c, "max_position_embeddings", 512, 1, BIG);
            m->type_vocab = cfg_int(&c, "type_vocab_size", 2, 0, BIG);
            m->pad_id = cfg_int(&c, "pad_token_id", 1, 0, BIG);
            const char *pet = cfg_str(&c, "position_embedding_type", "absolute");
            if (strcmp(pet, "absolute"))
                return ats_error_set(err, ATS_ERR_FORMAT,
                                     "%s: position_embedding_type \"%s\" is not supported (only "
                                     "\"absolute\")",
                                     path, pet);
        }
    } else if (!strcmp(mt, "distilbert")) {
        I->arch = ATS_ARCH_DISTILBERT;
        I->d_model = cfg_int(&c, "dim", 768, 1, BIG);
        I->n_heads = cfg_int(&c, "n_heads", 12, 1, 4096);
        I->n_layers = cfg_int(&c, "n_layers", 6, 0, 4096);
        I->d_ff = cfg_int(&c, "hidden_dim", 3072, 1, BIG);
        I->vocab_size = cfg_int(&c, "vocab_size", -2, 1, BIG);
        I->max_positions = cfg_int(&c, "max_position_embeddings", 512, 1, BIG);
        I->eps = 1e-12f;
        act = cfg_str(&c, "activation", "gelu");
    } else if (!strcmp(mt, "llama") || !strcmp(mt, "mistral") || !strcmp(mt, "qwen2") ||
               !strcmp(mt, "gpt_neox")) {
        ats_status rc = parse_decoder(m, &c, mt, &act);
        if (rc) return rc;
    } else {
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: unknown model_type \"%s\" (supported: gpt2, bert, roberta, "
                             "xlm-roberta, camembert, distilbert, vit, llama, mistral, qwen2, "
                             "gpt_neox)",
                             path, mt);
    }
    if (c.rc) return c.rc;
    if (!parse_act(act, &m->act))
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: unknown activation \"%s\"", path, act);
    if (!I->d_head) { /* the decoders set theirs */
        if (I->d_model % I->n_heads)
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: hidden size %d is not a multiple of the %d heads", path,
                                 I->d_model, I->n_heads);
        I->d_head = I->d_model / I->n_heads;
        I->n_kv_heads = I->n_heads;
    }
    if (!(I->eps > 0.0f)) return ats_error_set(err, ATS_ERR_FORMAT, "%s: bad epsilon", path);
    if (I->arch == ATS_ARCH_ROBERTA) {
        if (I->max_positions <= m->pad_id + 1)
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: max_position_embeddings %d leaves no room after the padding "
                                 "offset %d",
                                 path, I->max_positions, m->pad_id + 1);
    }
    return ATS_OK;
}

static ats_status parse_preprocessor(ats_model *m, ats_error *err) {
    ats_model_info *I = &m->info;
    I->do_resize = I->do_rescale = I->do_normalize = 1;
    I->rescale_factor = 1.0 / 255.0;
    for (int k = 0; k < 3; k++) I->image_mean[k] = I->image_std[k] = 0.5f;
    char *path = ats_model_path_join(m->dir, "preprocessor_config.json");
    if (!path) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    if (!ats_model_file_exists(path)) {
        free(path);
        return ATS_OK;
    }
    cJSON *root;
    ats_status rc = ats_model_read_json(path, &root, err);
    if (rc) {
        free(path);
        return rc;
    }
    cfg c = {root, path, err, ATS_OK};
    I->do_resize = cfg_bool(&c, "do_resize", 1);
    I->do_rescale = cfg_bool(&c, "do_rescale", 1);
    I->do_normalize = cfg_bool(&c, "do_normalize", 1);
    I->rescale_factor = cfg_num(&c, "rescale_factor", 1.0 / 255.0);
    int resample = cfg_int(&c, "resample", 2, 0, 5);
    if (!c.rc && resample != 2)
        rc = ats_error_set(err, ATS_ERR_FORMAT,
                           "%s: resample %d is not supported (only 2, PIL's bilinear, as "
                           "ViTImageProcessor uses by default)",
                           path, resample);
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(root, "size");
    int h = I->image_size, w = I->image_size;
    const cJSON *hh = size, *ww = size;
    if (cJSON_IsObject(size)) {
        hh = cJSON_GetObjectItemCaseSensitive(size, "height");
        ww = cJSON_GetObjectItemCaseSensitive(size, "width");
    }
    /* checked before the conversion: a double outside int's range is undefined behaviour */
    const cJSON *given[2] = {hh, ww};
    int *side[2] = {&h, &w};
    for (int k = 0; k < 2 && !rc; k++) {
        if (!cJSON_IsNumber(given[k])) continue;
        double v = given[k]->valuedouble;
        if (!(v >= 1 && v <= 65536) || v != floor(v))
            rc = ats_error_set(err, ATS_ERR_FORMAT,
                               "%s: size %s %g is not a whole number of pixels in 1..65536", path,
                               k ? "width" : "height", v);
        else
            *side[k] = (int)v;
    }
    if (!rc && (h != I->image_size || w != I->image_size))
        rc = ats_error_set(err, ATS_ERR_FORMAT,
                           "%s: size %dx%d differs from the model's image_size %d (position "
                           "interpolation is not supported)",
                           path, w, h, I->image_size);
    const char *keys[2] = {"image_mean", "image_std"};
    for (int k = 0; k < 2 && !rc; k++) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, keys[k]);
        if (!a) continue;
        float *dst = k ? I->image_std : I->image_mean;
        if (cJSON_IsNumber(a)) {
            for (int ch = 0; ch < 3; ch++) dst[ch] = (float)a->valuedouble;
        } else if (cJSON_IsArray(a) && cJSON_GetArraySize(a) == I->n_channels) {
            for (int ch = 0; ch < I->n_channels; ch++) {
                const cJSON *v = cJSON_GetArrayItem(a, ch);
                if (!cJSON_IsNumber(v)) break;
                dst[ch] = (float)v->valuedouble;
            }
        } else {
            rc = ats_error_set(err, ATS_ERR_FORMAT, "%s: \"%s\" must be %d numbers", path, keys[k],
                               I->n_channels);
        }
    }
    for (int ch = 0; ch < 3 && !rc; ch++)
        if (!(I->image_std[ch] != 0.0f))
            rc = ats_error_set(err, ATS_ERR_FORMAT, "%s: image_std[%d] is 0", path, ch);
    if (!rc && !c.rc && !(I->rescale_factor > 0.0))
        rc = ats_error_set(err, ATS_ERR_FORMAT, "%s: bad rescale_factor", path);
    if (!rc) rc = c.rc;
    cJSON_Delete(root);
    free(path);
    return rc;
}

/* ---- weights */

/* the base model's tensors may sit under a prefix (BertForMaskedLM saves "bert.…") */
const char *const ATS_MODEL_PREFIXES[] = {
    "", "transformer.", "bert.", "roberta.", "distilbert.", "vit.", "model.", "gpt_neox.", NULL};

typedef struct loader {
    ats_model *m;
    const char *prefix;
    ats_error *err;
    ats_status rc;
} loader;

static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 31u, man = h & 1023u, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int e = -1;
            do {
                e++;
                man <<= 1;
            } while (!(man & 1024u));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 1023u) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (man << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

int ats_model_own(ats_model *m, float *p) {
    return own(m, p);
}

int ats_model_owns(const ats_model *m, const float *p) {
    for (size_t k = 0; k < m->n_owned; k++)
        if (m->owned[k] == p) return 1;
    return 0;
}

static int own(ats_model *m, float *p) {
    if (m->n_owned == m->cap_owned) {
        size_t cap = m->cap_owned ? m->cap_owned * 2 : 64;
        float **np = realloc(m->owned, cap * sizeof *np);
        if (!np) return 0;
        m->owned = np;
        m->cap_owned = cap;
    }
    m->owned[m->n_owned++] = p;
    return 1;
}

/* A tensor by name; older BERT checkpoints (bert-base-uncased among them) call a LayerNorm's
 * weight and bias "gamma" and "beta", which transformers renames at load: so does this. */
static const st_tensor *find_alias(const ats_safetensors *st, const char *name) {
    const st_tensor *t = ats_safetensors_find(st, name);
    size_t len = strlen(name);
    if (t || !strstr(name, "LayerNorm.") || len < 5 || len > 240) return t;
    char alt[256];
    if (!strcmp(name + len - 7, ".weight"))
        snprintf(alt, sizeof alt, "%.*s.gamma", (int)(len - 7), name);
    else if (!strcmp(name + len - 5, ".bias"))
        snprintf(alt, sizeof alt, "%.*s.beta", (int)(len - 5), name);
    else
        return NULL;
    return ats_safetensors_find(st, alt);
}

/* The float32 data of tensor prefix+name, whose shape must be dims[0..ndim); NULL and an error
 * (unless optional) when it is missing or wrong. */
/* w[count], or NULL with an error naming the tensor when it holds NaN or infinity (a model
 * would then give NaN or uniform attention without a word). */
static const float *tensor_finite(loader *ld, const char *name, const float *w, size_t count) {
    size_t bad = ats_f32_find_nonfinite(w, count);
    if (bad == count) return w;
    ld->rc = ats_error_set(ld->err, ATS_ERR_FORMAT,
                           "%s: tensor '%s' holds a non-finite value (%g at element %zu)",
                           ld->m->st.path, name, (double)w[bad], bad);
    return NULL;
}

static const float *tensor_get(loader *ld, int optional, const char *name, int ndim,
                               const size_t *dims) {
    if (ld->rc) return NULL;
    ats_model *m = ld->m;
    char full[256];
    snprintf(full, sizeof full, "%s%s", ld->prefix, name);
    const st_tensor *t = find_alias(&m->st, full);
    if (!t) {
        if (!optional)
            ld->rc = ats_error_set(ld->err, ATS_ERR_FORMAT,
                                   "%s: missing tensor '%s' (a %s model needs it)", m->st.path,
                                   full, m->model_type);
        return NULL;
    }
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++) ok = t->shape[i] == dims[i];
    if (!ok) {
        char got[128] = "", want[128] = "";
        size_t gl = 0, wl = 0;
        for (int i = 0; i < t->ndim && gl < sizeof got - 24; i++)
            gl += (size_t)snprintf(got + gl, sizeof got - gl, i ? ", %zu" : "%zu", t->shape[i]);
        for (int i = 0; i < ndim && wl < sizeof want - 24; i++)
            wl += (size_t)snprintf(want + wl, sizeof want - wl, i ? ", %zu" : "%zu", dims[i]);
        ld->rc =
            ats_error_set(ld->err, ATS_ERR_FORMAT, "%s: tensor '%s' has shape [%s], expected [%s]",
                          m->st.path, full, got, want);
        return NULL;
    }
    if (t->dtype == ST_OTHER) {
        ld->rc = ats_error_set(ld->err, ATS_ERR_FORMAT,
                               "%s: tensor '%s' has dtype %s, expected F32, F16 or BF16",
                               m->st.path, full, t->dtype_name);
        return NULL;
    }
    if (t->dtype == ST_F32 && ((uintptr_t)t->data % sizeof(float)) == 0)
        return tensor_finite(ld, full, (const float *)(const void *)t->data, t->count);
    float *p = malloc((t->count ? t->count : 1) * sizeof *p);
    if (!p || !own(m, p)) {
        free(p);
        ld->rc = ats_error_set(ld->err, ATS_ERR_NOMEM, "%s: out of memory for tensor '%s'",
                               m->st.path, full);
        return NULL;
    }
    ats_model_tensor_f32(t, p);
    return tensor_finite(ld, full, p, t->count);
}

void ats_model_tensor_f32(const st_tensor *t, float *out) {
    for (size_t i = 0; i < t->count; i++) {
        if (t->dtype == ST_F32) {
            memcpy(&out[i], t->data + 4 * i, 4);
        } else {
            uint16_t h = (uint16_t)(t->data[2 * i] | (t->data[2 * i + 1] << 8));
            if (t->dtype == ST_F16) {
                out[i] = half_to_float(h);
            } else {
                uint32_t bits = (uint32_t)h << 16;
                memcpy(&out[i], &bits, 4);
            }
        }
    }
}

static const float *T1(loader *ld, const char *name, size_t a) {
    size_t d[1] = {a};
    return tensor_get(ld, 0, name, 1, d);
}
static const float *T2(loader *ld, const char *name, size_t a, size_t b) {
    size_t d[2] = {a, b};
    return tensor_get(ld, 0, name, 2, d);
}
static const float *O1(loader *ld, const char *name, size_t a) {
    size_t d[1] = {a};
    return tensor_get(ld, 1, name, 1, d);
}
static int has(loader *ld, const char *name) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", ld->prefix, name);
    return find_alias(&ld->m->st, full) != NULL;
}

static void load_gpt2(loader *ld) {
    ats_model *m = ld->m;
    size_t d = (size_t)m->info.d_model, f = (size_t)m->info.d_ff, V = (size_t)m->info.vocab_size;
    char nm[128];
    m->tok_emb = T2(ld, "wte.weight", V, d);
    m->pos_emb = T2(ld, "wpe.weight", (size_t)m->info.max_positions, d);
    for (int l = 0; l < m->info.n_layers; l++) {
        layer_weights *w = &m->layers[l];
#define G1(field, suffix, n)                                                                       \
    snprintf(nm, sizeof nm, "h.%d.%s", l, suffix);                                                 \
    w->field = T1(ld, nm, n)
#define G2(field, suffix, a, b)                                                                    \
    snprintf(nm, sizeof nm, "h.%d.%s", l, suffix);                                                 \
    w->field = T2(ld, nm, a, b)
        G1(ln1_w, "ln_1.weight", d);
        G1(ln1_b, "ln_1.bias", d);
        G2(wq, "attn.c_attn.weight", d, 3 * d);
        G1(bq, "attn.c_attn.bias", 3 * d);
        G2(wo, "attn.c_proj.weight", d, d);
        G1(bo, "attn.c_proj.bias", d);
        G1(ln2_w, "ln_2.weight", d);
        G1(ln2_b, "ln_2.bias", d);
        G2(w1, "mlp.c_fc.weight", d, f);
        G1(b1, "mlp.c_fc.bias", f);
        G2(w2, "mlp.c_proj.weight", f, d);
        G1(b2, "mlp.c_proj.bias", d);
#undef G1
#undef G2
    }
    m->lnf_w = T1(ld, "ln_f.weight", d);
    m->lnf_b = T1(ld, "ln_f.bias", d);
    /* the LM head is tied to wte unless the checkpoint stores it */
    const char *saved = ld->prefix;
    ld->prefix = "";
    m->lm_dec = has(ld, "lm_head.weight") ? T2(ld, "lm_head.weight", V, d) : m->tok_emb;
    ld->prefix = saved;
}

/* BERT, RoBERTa, ViT: the same encoder layer names */
static void load_encoder_layers(loader *ld, const char *base, int vit) {
    ats_model *m = ld->m;
    size_t d = (size_t)m->info.d_model, f = (size_t)m->info.d_ff;
    char nm[160];
    for (int l = 0; l < m->info.n_layers; l++) {
        layer_weights *w = &m->layers[l];
#define G(field, suffix, ...)                                                                      \
    snprintf(nm, sizeof nm, "%s.%d.%s", base, l, suffix);                                          \
    w->field = __VA_ARGS__
        if (!vit) {
            /* BERT: attention.self.*, attention.output.LayerNorm, output.LayerNorm */
            G(wq, "attention.self.query.weight", T2(ld, nm, d, d));
            G(bq, "attention.self.query.bias", T1(ld, nm, d));
            G(wk, "attention.self.key.weight", T2(ld, nm, d, d));
            G(bk, "attention.self.key.bias", T1(ld, nm, d));
            G(wv, "attention.self.value.weight", T2(ld, nm, d, d));
            G(bv, "attention.self.value.bias", T1(ld, nm, d));
            G(ln1_w, "attention.output.LayerNorm.weight", T1(ld, nm, d));
            G(ln1_b, "attention.output.LayerNorm.bias", T1(ld, nm, d));
            G(ln2_w, "output.LayerNorm.weight", T1(ld, nm, d));
            G(ln2_b, "output.LayerNorm.bias", T1(ld, nm, d));
        } else {
            G(wq, "attention.attention.query.weight", T2(ld, nm, d, d));
            G(bq, "attention.attention.query.bias", O1(ld, nm, d));
            G(wk, "attention.attention.key.weight", T2(ld, nm, d, d));
            G(bk, "attention.attention.key.bias", O1(ld, nm, d));
            G(wv, "attention.attention.value.weight", T2(ld, nm, d, d));
            G(bv, "attention.attention.value.bias", O1(ld, nm, d));
            G(ln1_w, "layernorm_before.weight", T1(ld, nm, d));
            G(ln1_b, "layernorm_before.bias", T1(ld, nm, d));
            G(ln2_w, "layernorm_after.weight", T1(ld, nm, d));
            G(ln2_b, "layernorm_after.bias", T1(ld, nm, d));
        }
        G(wo, "attention.output.dense.weight", T2(ld, nm, d, d));
        G(bo, "attention.output.dense.bias", T1(ld, nm, d));
        G(w1, "intermediate.dense.weight", T2(ld, nm, f, d));
        G(b1, "intermediate.dense.bias", T1(ld, nm, f));
        G(w2, "output.dense.weight", T2(ld, nm, d, f));
        G(b2, "output.dense.bias", T1(ld, nm, d));
#undef G
    }
}

static void load_bert(loader *ld) {
    ats_model *m = ld->m;
    size_t d = (size_t)m->info.d_model, V = (size_t)m->info.vocab_size;
    m->tok_emb = T2(ld, "embeddings.word_embeddings.weight", V, d);
    m->pos_emb = T2(ld, "embeddings.position_embeddings.weight", (size_t)m->info.max_positions, d);
    if (m->type_vocab > 0)
        m->type_emb = T2(ld, "embeddings.token_type_embeddings.weight", (size_t)m->type_vocab, d);
    m->emb_ln_w = T1(ld, "embeddings.LayerNorm.weight", d);
    m->emb_ln_b = T1(ld, "embeddings.LayerNorm.bias", d);
    load_encoder_layers(ld, "encoder.layer", 0);
    /* masked-LM heads live outside the base-model prefix */
    const char *saved = ld->prefix;
    ld->prefix = "";
    int roberta = m->info.arch == ATS_ARCH_ROBERTA;
    const char *hd = roberta ? "lm_head.dense" : "cls.predictions.transform.dense";
    char nm[128];
    snprintf(nm, sizeof nm, "%s.weight", hd);
    if (has(ld, nm)) {
        m->mlm_transform = 1;
        m->mlm_w = T2(ld, nm, d, d);
        snprintf(nm, sizeof nm, "%s.bias", hd);
        m->mlm_b = T1(ld, nm, d);
        const char *ln = roberta ? "lm_head.layer_norm" : "cls.predictions.transform.LayerNorm";
        snprintf(nm, sizeof nm, "%s.weight", ln);
        m->mlm_ln_w = T1(ld, nm, d);
        snprintf(nm, sizeof nm, "%s.bias", ln);
        m->mlm_ln_b = T1(ld, nm, d);
        const char *dec = roberta ? "lm_head.decoder.weight" : "cls.predictions.decoder.weight";
        m->lm_dec = has(ld, dec) ? T2(ld, dec, V, d) : m->tok_emb;
        m->mlm_bias = T1(ld, roberta ? "lm_head.bias" : "cls.predictions.bias", V);
        m->mlm_eps = m->info.eps;
    }
    ld->prefix = saved;
}

static void load_distilbert(loader *ld) {
    ats_model *m = ld->m;
    size_t d = (size_t)m->info.d_model, f = (size_t)m->info.d_ff, V = (size_t)m->info.vocab_size;
    m->tok_emb = T2(ld, "embeddings.word_embeddings.weight", V, d);
    m->pos_emb = T2(ld, "embeddings.position_embeddings.weight", (size_t)m->info.max_positions, d);
    m->emb_ln_w = T1(ld, "embeddings.LayerNorm.weight", d);
    m->emb_ln_b = T1(ld, "embeddings.LayerNorm.bias", d);
    char nm[128];
    for (int l = 0; l < m->info.n_layers; l++) {
        layer_weights *w = &m->layers[l];
#define G(field, suffix, ...)                                                                      \
    snprintf(nm, sizeof nm, "transformer.layer.%d.%s", l, suffix);                                 \
    w->field = __VA_ARGS__
        G(wq, "attention.q_lin.weight", T2(ld, nm, d, d));
        G(bq, "attention.q_lin.bias", T1(ld, nm, d));
        G(wk, "attention.k_lin.weight", T2(ld, nm, d, d));
        G(bk, "attention.k_lin.bias", T1(ld, nm, d));
        G(wv, "attention.v_lin.weight", T2(ld, nm, d, d));
        G(bv, "attention.v_lin.bias", T1(ld, nm, d));
        G(wo, "attention.out_lin.weight", T2(ld, nm, d, d));
        G(bo, "attention.out_lin.bias", T1(ld, nm, d));
        G(ln1_w, "sa_layer_norm.weight", T1(ld, nm, d));
        G(ln1_b, "sa_layer_norm.bias", T1(ld, nm, d));
        G(w1, "ffn.lin1.weight", T2(ld, nm, f, d));
        G(b1, "ffn.lin1.bias", T1(ld, nm, f));
        G(w2, "ffn.lin2.weight", T2(ld, nm, d, f));
        G(b2, "ffn.lin2.bias", T1(ld, nm, d));
        G(ln2_w, "output_layer_norm.weight", T1(ld, nm, d));
        G(ln2_b, "output_layer_norm.bias", T1(ld, nm, d));
#undef G
    }
    const char *saved = ld->prefix;
    ld->prefix = "";
    if (has(ld, "vocab_transform.weight")) {
        m->mlm_transform = 1;
        m->mlm_w = T2(ld, "vocab_transform.weight", d, d);
        m->mlm_b = T1(ld, "vocab_transform.bias", d);
        m->mlm_ln_w = T1(ld, "vocab_layer_norm.weight", d);
        m->mlm_ln_b = T1(ld, "vocab_layer_norm.bias", d);
        m->lm_dec =
            has(ld, "vocab_projector.weight") ? T2(ld, "vocab_projector.weight", V, d) : m->tok_emb;
        m->mlm_bias = T1(ld, "vocab_projector.bias", V);
        m->mlm_eps = 1e-12f;
    }
    ld->prefix = saved;
}

static void load_vit(loader *ld) {
    ats_model *m = ld->m;
    ats_model_info *I = &m->info;
    size_t d = (size_t)I->d_model, p = (size_t)I->patch_size;
    size_t pw[4] = {d, (size_t)I->n_channels, p, p};
    m->patch_w = tensor_get(ld, 0, "embeddings.patch_embeddings.projection.weight", 4, pw);
    m->patch_b = T1(ld, "embeddings.patch_embeddings.projection.bias", d);
    size_t cd[3] = {1, 1, d};
    m->cls_tok = tensor_get(ld, 0, "embeddings.cls_token", 3, cd);
    size_t pd[3] = {1, (size_t)I->max_positions, d};
    m->pos_emb = tensor_get(ld, 0, "embeddings.position_embeddings", 3, pd);
    load_encoder_layers(ld, "encoder.layer", 1);
    m->lnf_w = T1(ld, "layernorm.weight", d);
    m->lnf_b = T1(ld, "layernorm.bias", d);
}

/* Each layer's sliding attention window (Mistral: "sliding_window" on every layer, 4096 when
 * absent as MistralConfig has it, null for none; Qwen2: only with "use_sliding_window", on the
 * layers "layer_types" names "sliding_attention", else on layers >= "max_window_layers"). */
static ats_status parse_windows(ats_model *m, const cJSON *root, const char *path, ats_error *err) {
    ats_model_info *I = &m->info;
    if (I->arch != ATS_ARCH_MISTRAL && I->arch != ATS_ARCH_QWEN2) return ATS_OK;
    cfg c = {root, path, err, ATS_OK};
    int qwen = I->arch == ATS_ARCH_QWEN2;
    int window = cfg_int(&c, "sliding_window", 4096, 1, 1 << 30);
    if (cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(root, "sliding_window"))) window = 0;
    if (qwen && !cfg_bool(&c, "use_sliding_window", 0)) window = 0;
    int first = qwen ? cfg_int(&c, "max_window_layers", 28, 0, 1 << 30) : 0;
    if (c.rc) return c.rc;
    const cJSON *types = qwen ? cJSON_GetObjectItemCaseSensitive(root, "layer_types") : NULL;
    if (types && !cJSON_IsNull(types) &&
        (!cJSON_IsArray(types) || cJSON_GetArraySize(types) != I->n_layers))
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: \"layer_types\" must be a list of %d strings (one a layer)", path,
                             I->n_layers);
    for (int l = 0; l < I->n_layers; l++) {
        int sliding = l >= first;
        if (cJSON_IsArray(types)) {
            const cJSON *t = cJSON_GetArrayItem(types, l);
            const char *v = cJSON_IsString(t) ? t->valuestring : "";
            if (strcmp(v, "sliding_attention") && strcmp(v, "full_attention"))
                return ats_error_set(err, ATS_ERR_FORMAT,
                                     "%s: \"layer_types\"[%d] must be \"full_attention\" or "
                                     "\"sliding_attention\"",
                                     path, l);
            sliding = !strcmp(v, "sliding_attention");
        }
        m->layers[l].window = sliding ? window : 0;
    }
    return ATS_OK;
}

static void release_matrix(ats_model *m, const float **w, size_t count);

/* Llama, Mistral, Qwen2: model.embed_tokens, model.layers.N.{input_layernorm, self_attn.
 * {q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj}, model.norm, lm_head */
static void load_llama(loader *ld) {
    ats_model *m = ld->m;
    const ats_model_info *I = &m->info;
    size_t d = (size_t)I->d_model, f = (size_t)I->d_ff, V = (size_t)I->vocab_size,
           qd = (size_t)I->n_heads * (size_t)I->d_head,
           kvd = (size_t)I->n_kv_heads * (size_t)I->d_head;
    int bqkv = (m->bias & 1u) != 0, bo = (m->bias & 2u) != 0, bmlp = (m->bias & 4u) != 0;
    char nm[160];
    m->tok_emb = T2(ld, "embed_tokens.weight", V, d);
    for (int l = 0; l < I->n_layers; l++) {
        layer_weights *w = &m->layers[l];
#define G(field, suffix, ...)                                                                      \
    snprintf(nm, sizeof nm, "layers.%d.%s", l, suffix);                                            \
    w->field = __VA_ARGS__
        G(ln1_w, "input_layernorm.weight", T1(ld, nm, d));
        G(wq, "self_attn.q_proj.weight", T2(ld, nm, qd, d));
        G(wk, "self_attn.k_proj.weight", T2(ld, nm, kvd, d));
        G(wv, "self_attn.v_proj.weight", T2(ld, nm, kvd, d));
        G(wo, "self_attn.o_proj.weight", T2(ld, nm, d, qd));
        if (bqkv) {
            G(bq, "self_attn.q_proj.bias", T1(ld, nm, qd));
            G(bk, "self_attn.k_proj.bias", T1(ld, nm, kvd));
            G(bv, "self_attn.v_proj.bias", T1(ld, nm, kvd));
        }
        if (bo) {
            G(bo, "self_attn.o_proj.bias", T1(ld, nm, d));
        }
        G(ln2_w, "post_attention_layernorm.weight", T1(ld, nm, d));
        G(w1, "mlp.gate_proj.weight", T2(ld, nm, f, d));
        G(w3, "mlp.up_proj.weight", T2(ld, nm, f, d));
        G(w2, "mlp.down_proj.weight", T2(ld, nm, d, f));
        if (bmlp) {
            G(b1, "mlp.gate_proj.bias", T1(ld, nm, f));
            G(b3, "mlp.up_proj.bias", T1(ld, nm, f));
            G(b2, "mlp.down_proj.bias", T1(ld, nm, d));
        }
#undef G
    }
    m->lnf_w = T1(ld, "norm.weight", d);
    const char *saved = ld->prefix;
    ld->prefix = "";
    m->lm_dec = m->tie_embeddings ? m->tok_emb : T2(ld, "lm_head.weight", V, d);
    ld->prefix = saved;
}

/* GPT-NeoX's query_key_value [3d][d] holds each head's q, k, v rows together (head h: rows
 * h·3dh .. h·3dh + 3dh, q then k then v); w->wq, wk, wv [d][d] and their biases ← owned
 * copies in the usual order, heads side by side. 0: no memory. */
static int neox_split_qkv(ats_model *m, layer_weights *w, const float *qkv, const float *b,
                          size_t H, size_t dh) {
    size_t d = H * dh;
    float *part[3], *bpart[3] = {NULL, NULL, NULL};
    for (int j = 0; j < 3; j++) { /* owned as soon as allocated: model_free frees them */
        part[j] = malloc(d * d * sizeof(float));
        if (!part[j] || !own(m, part[j])) {
            free(part[j]);
            return 0;
        }
        if (!b) continue;
        bpart[j] = malloc(d * sizeof(float));
        if (!bpart[j] || !own(m, bpart[j])) {
            free(bpart[j]);
            return 0;
        }
    }
    for (size_t h = 0; h < H; h++)
        for (size_t j = 0; j < 3; j++)
            for (size_t e = 0; e < dh; e++) {
                size_t src = h * 3 * dh + j * dh + e, dst = h * dh + e;
                memcpy(part[j] + dst * d, qkv + src * d, d * sizeof(float));
                if (b) bpart[j][dst] = b[src];
            }
    w->wq = part[0], w->wk = part[1], w->wv = part[2];
    w->bq = bpart[0], w->bk = bpart[1], w->bv = bpart[2];
    return 1;
}

/* GPT-NeoX (Pythia): gpt_neox.embed_in, gpt_neox.layers.N.{input_layernorm,
 * post_attention_layernorm, attention.query_key_value, attention.dense, mlp.dense_h_to_4h,
 * mlp.dense_4h_to_h}, gpt_neox.final_layer_norm, embed_out */
static void load_gpt_neox(loader *ld) {
    ats_model *m = ld->m;
    const ats_model_info *I = &m->info;
    size_t d = (size_t)I->d_model, f = (size_t)I->d_ff, V = (size_t)I->vocab_size;
    int ab = (m->bias & 1u) != 0;
    char nm[160];
    m->tok_emb = T2(ld, "embed_in.weight", V, d);
    for (int l = 0; l < I->n_layers && !ld->rc; l++) {
        layer_weights *w = &m->layers[l];
#define G(field, suffix, ...)                                                                      \
    snprintf(nm, sizeof nm, "layers.%d.%s", l, suffix);                                            \
    w->field = __VA_ARGS__
        G(ln1_w, "input_layernorm.weight", T1(ld, nm, d));
        G(ln1_b, "input_layernorm.bias", T1(ld, nm, d));
        G(ln2_w, "post_attention_layernorm.weight", T1(ld, nm, d));
        G(ln2_b, "post_attention_layernorm.bias", T1(ld, nm, d));
        const float *qkv, *bqkv = NULL;
        snprintf(nm, sizeof nm, "layers.%d.attention.query_key_value.weight", l);
        qkv = T2(ld, nm, 3 * d, d);
        if (ab) {
            snprintf(nm, sizeof nm, "layers.%d.attention.query_key_value.bias", l);
            bqkv = T1(ld, nm, 3 * d);
        }
        G(wo, "attention.dense.weight", T2(ld, nm, d, d));
        if (ab) {
            G(bo, "attention.dense.bias", T1(ld, nm, d));
        }
        G(w1, "mlp.dense_h_to_4h.weight", T2(ld, nm, f, d));
        G(b1, "mlp.dense_h_to_4h.bias", T1(ld, nm, f));
        G(w2, "mlp.dense_4h_to_h.weight", T2(ld, nm, d, f));
        G(b2, "mlp.dense_4h_to_h.bias", T1(ld, nm, d));
#undef G
        if (ld->rc) break;
        if (!neox_split_qkv(m, w, qkv, bqkv, (size_t)I->n_heads, (size_t)I->d_head)) {
            ld->rc = ats_error_set(ld->err, ATS_ERR_NOMEM, "%s: out of memory", m->st.path);
            break;
        }
        release_matrix(m, &qkv, 3 * d * d); /* only the reordered copy is read from now */
    }
    m->lnf_w = T1(ld, "final_layer_norm.weight", d);
    m->lnf_b = T1(ld, "final_layer_norm.bias", d);
    const char *saved = ld->prefix;
    ld->prefix = "";
    m->lm_dec = m->tie_embeddings ? m->tok_emb : T2(ld, "embed_out.weight", V, d);
    ld->prefix = saved;
}

/* model.safetensors.index.json: {"weight_map": {tensor: shard file}}. Maps every shard and
 * gathers their tensors into m->st (names copied; data stays in the shards' maps). Each tensor of
 * the map must be in the shard it names; a tensor in two shards is an error. */
static ats_status open_shards(ats_model *m, const char *index, ats_error *err) {
    cJSON *root;
    ats_status rc = ats_model_read_json(index, &root, err);
    if (rc) return rc;
    const cJSON *wm = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    const cJSON *e;
    size_t total = 0;
    if (!cJSON_IsObject(wm)) {
        rc = ats_error_set(err, ATS_ERR_FORMAT, "%s: missing \"weight_map\" object", index);
        goto done;
    }
    /* the distinct shard files, in order of first mention */
    size_t n = 0;
    cJSON_ArrayForEach(e, wm) n++;
    const char **files = calloc(n ? n : 1, sizeof *files);
    m->shards = calloc(n ? n : 1, sizeof *m->shards);
    if (!files || !m->shards) {
        free(files);
        rc = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", index);
        goto done;
    }
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e) || strchr(e->valuestring, '/') || e->valuestring[0] == '.' ||
            !*e->valuestring) {
            rc = ats_error_set(err, ATS_ERR_FORMAT, "%s: tensor '%s': bad shard file name", index,
                               e->string);
            break;
        }
        size_t k = 0;
        while (k < m->n_shards && strcmp(files[k], e->valuestring)) k++;
        if (k < m->n_shards) continue;
        char *p = ats_model_path_join(m->dir, e->valuestring);
        if (!p) {
            rc = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", index);
            break;
        }
        rc = ats_safetensors_open(p, &m->shards[m->n_shards], err);
        free(p);
        if (rc) break;
        files[m->n_shards++] = e->valuestring;
        total += m->shards[m->n_shards - 1].count;
    }
    if (!rc) {
        m->st.tensors = calloc(total ? total : 1, sizeof *m->st.tensors);
        m->st.path = strdup(index);
        if (!m->st.tensors || !m->st.path)
            rc = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", index);
    }
    for (size_t k = 0; !rc && k < m->n_shards; k++)
        for (size_t i = 0; !rc && i < m->shards[k].count; i++) {
            st_tensor *t = &m->st.tensors[m->st.count];
            *t = m->shards[k].tensors[i];
            t->name = strdup(t->name);
            if (!t->name)
                rc = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", index);
            else
                m->st.count++;
        }
    if (!rc) {
        qsort(m->st.tensors, m->st.count, sizeof *m->st.tensors, st_tensor_cmp_name);
        for (size_t i = 1; i < m->st.count && !rc; i++)
            if (!strcmp(m->st.tensors[i - 1].name, m->st.tensors[i].name))
                rc = ats_error_set(err, ATS_ERR_FORMAT, "%s: tensor '%s' is in two shards", index,
                                   m->st.tensors[i].name);
    }
    cJSON_ArrayForEach(e, wm) {
        if (rc) break;
        size_t k = 0;
        while (k < m->n_shards && strcmp(files[k], e->valuestring)) k++;
        if (k == m->n_shards || !ats_safetensors_find(&m->shards[k], e->string))
            rc = ats_error_set(err, ATS_ERR_FORMAT, "%s: tensor '%s' is not in %s", index,
                               e->string, e->valuestring);
    }
    free(files);
done:
    cJSON_Delete(root);
    return rc;
}

/* 1 when w[bytes] lies in one of the model's mapped files */
static int in_mapping(const ats_model *m, const void *w, size_t bytes) {
    uintptr_t lo = (uintptr_t)w, hi = lo + bytes;
    size_t nmaps = m->n_shards ? m->n_shards : 1;
    for (size_t k = 0; k < nmaps; k++) {
        const ats_safetensors *st = m->n_shards ? &m->shards[k] : &m->st;
        uintptr_t s = (uintptr_t)st->map, e = s + st->map_len;
        if (st->map && lo >= s && hi <= e) return 1;
    }
    return 0;
}

/* Gives back a weight matrix that only its packed copy is read from now. A converted copy
 * (F16, BF16) is freed and *w set to NULL. Of a mapped tensor the whole pages go back to the
 * kernel: the mapping is private and never written, so a later read would fault the file's
 * bytes in again. */
static void release_matrix(ats_model *m, const float **w, size_t count) {
    for (size_t k = 0; k < m->n_owned; k++) /* not ats_model_owns: it frees the one it finds */
        if (m->owned[k] == *w) {
            free(m->owned[k]);
            m->owned[k] = m->owned[--m->n_owned];
            *w = NULL;
            return;
        }
    ats_model_release_mapped(m, *w, count * sizeof **w);
}

void ats_model_release_mapped(const ats_model *m, const void *p, size_t bytes) {
    size_t page = 4096;
    long ps = sysconf(_SC_PAGESIZE);
    if (ps > 0) page = (size_t)ps;
    uintptr_t lo = (uintptr_t)p, hi = lo + bytes;
    uintptr_t a = (lo + page - 1) / page * page, b = hi / page * page;
    if (b > a && in_mapping(m, p, bytes)) madvise((void *)a, b - a, MADV_DONTNEED);
}

/* *v[count] ← an owned copy of it, when it is in the mapped file; 0: no memory */
static int own_copy(ats_model *m, const float **v, size_t count) {
    if (!*v || !in_mapping(m, *v, count * sizeof **v)) return 1;
    float *p = malloc(count * sizeof *p);
    if (!p || !own(m, p)) {
        free(p);
        return 0;
    }
    memcpy(p, *v, count * sizeof *p);
    *v = p;
    return 1;
}

/* pw ← the Linear matrices w[k] [rows[k]][i], k < count, stacked as one [Σ rows][i] matrix and
 * packed into dst; *bias ← their biases b[k] side by side (absent ones 0; NULL when all are).
 * 0: no memory. */
static int pack_stacked(ats_model *m, packed_w *pw, float *dst, size_t i, size_t count,
                        const float *const *w, const float *const *b, const size_t *rows,
                        const float **bias) {
    size_t o = 0;
    for (size_t k = 0; k < count; k++) o += rows[k];
    float *cat = malloc(o * i * sizeof *cat);
    if (!cat) return 0;
    for (size_t k = 0, r = 0; k < count; r += rows[k++])
        memcpy(cat + r * i, w[k], rows[k] * i * sizeof *cat);
    k_pack_into(pw, dst, cat, i, i, o, 0);
    free(cat);
    int any = 0;
    for (size_t k = 0; k < count; k++) any |= b[k] != NULL;
    if (!any) return 1;
    float *bb = calloc(o, sizeof *bb);
    if (!bb || !own(m, bb)) {
        free(bb);
        return 0;
    }
    for (size_t k = 0, r = 0; k < count; r += rows[k++])
        if (b[k]) memcpy(bb + r, b[k], rows[k] * sizeof *bb);
    *bias = bb;
    return 1;
}

/* Packs each layer's matrices for src/model/gemm.c when the CPU runs its kernel, then
 * releases the mapped originals' pages, so the process holds one copy of the weights. q, k, v
 * go side by side as one product (GPT-2's c_attn is that already), and so do a gated MLP's gate
 * and up projections. */
static ats_status pack_layers(ats_model *m, ats_error *err) {
    if (!k_gemm_available()) return ATS_OK;
    size_t d = (size_t)m->info.d_model, f = (size_t)m->info.d_ff, L = (size_t)m->info.n_layers;
    /* q [H·dh] and k, v [Hkv·dh] each: d for every architecture but the decoders */
    size_t qd = (size_t)m->info.n_heads * (size_t)m->info.d_head,
           kvd = (size_t)m->info.n_kv_heads * (size_t)m->info.d_head, f1 = m->gated_mlp ? 2 * f : f;
    int c = m->conv1d, ok = 1;
    /* one arena for every layer, on transparent huge pages: a few faults instead of one per
     * 4 kB page while packing, and few TLB misses while the kernel streams the panels */
    size_t nq = k_pack_count(d, qd + 2 * kvd), no = k_pack_count(qd, d), n1 = k_pack_count(d, f1),
           n2 = k_pack_count(f, d), per, total, bytes;
    const size_t huge = (size_t)2 << 20;
    if (!nq || !no || !n1 || !n2 || !ats_size_add(nq, no, &per) || !ats_size_add(per, n1, &per) ||
        !ats_size_add(per, n2, &per) || !ats_size_mul(per, L, &total) ||
        !ats_size_mul(total, sizeof(float), &bytes) || bytes > SIZE_MAX - huge)
        return ATS_OK; /* the packed weights would not fit: the model runs unpacked */
    bytes = (bytes + huge - 1) / huge * huge;
    void *arena = NULL;
    /* no room for a packed copy: the model runs unpacked, through OpenBLAS */
    if (!bytes || posix_memalign(&arena, huge, bytes) != 0) return ATS_OK;
#ifdef MADV_HUGEPAGE
    madvise(arena, bytes, MADV_HUGEPAGE);
#endif
    m->packed = arena;
    float *dst = m->packed;
    for (size_t l = 0; ok && l < L; l++, dst += per) {
        layer_weights *w = &m->layers[l];
        if (c) { /* Conv1D [in][out] */
            k_pack_into(&w->pq, dst, w->wq, 3 * d, d, 3 * d, 1);
        } else { /* Linear [out][in]; q, k, v as one [qd + 2·kvd][d] matrix: one product */
            const float *W[3] = {w->wq, w->wk, w->wv}, *B[3] = {w->bq, w->bk, w->bv};
            size_t R[3] = {qd, kvd, kvd};
            ok = pack_stacked(m, &w->pq, dst, d, 3, W, B, R, &w->bqkv);
        }
        k_pack_into(&w->po, dst + nq, w->wo, c ? d : qd, qd, d, c);
        if (ok && m->gated_mlp) { /* gate | up as one [2f][d] matrix */
            const float *W[2] = {w->w1, w->w3}, *B[2] = {w->b1, w->b3};
            size_t R[2] = {f, f};
            ok = pack_stacked(m, &w->p1, dst + nq + no, d, 2, W, B, R, &w->bgu);
        } else {
            k_pack_into(&w->p1, dst + nq + no, w->w1, c ? f : d, d, f, c);
        }
        k_pack_into(&w->p2, dst + nq + no + n1, w->w2, c ? d : f, f, d, c);
        if (!ok) break;
        /* the layer's vectors move out of the mapping too: the kernel maps a file's large
         * folios whole, so reading a bias would bring back megabytes of the released matrices
         * around it (a 128-token GPT-2 pass kept 76 MB of the file resident) */
        ok = own_copy(m, &w->bq, c ? 3 * d : qd) && own_copy(m, &w->bk, kvd) &&
             own_copy(m, &w->bv, kvd) && own_copy(m, &w->bo, d) && own_copy(m, &w->b1, f) &&
             own_copy(m, &w->b3, f) && own_copy(m, &w->b2, d) && own_copy(m, &w->ln1_w, d) &&
             own_copy(m, &w->ln1_b, d) && own_copy(m, &w->ln2_w, d) && own_copy(m, &w->ln2_b, d);
        if (c) w->bqkv = w->bq; /* c_attn's bias is q|k|v already (pack_stacked made the others') */
        if (!ok) break;
        release_matrix(m, &w->wq, c ? 3 * d * d : qd * d);
        if (!c) release_matrix(m, &w->wk, kvd * d), release_matrix(m, &w->wv, kvd * d);
        release_matrix(m, &w->wo, d * qd);
        release_matrix(m, &w->w1, d * f);
        if (w->w3) release_matrix(m, &w->w3, d * f);
        release_matrix(m, &w->w2, d * f);
    }
    if (!ok)
        return ats_model_fail(m, err, ATS_ERR_NOMEM,
                              "%s: out of memory packing the weights (%zu x %zu per layer)", m->dir,
                              d, f);
    return ATS_OK;
}

ats_status ats_model_load(const char *name_or_path, ats_model **out, ats_error *err) {
    return ats_model_load_adapted(name_or_path, NULL, out, err);
}

ats_status ats_model_load_adapted(const char *name_or_path, const char *adapter_dir,
                                  ats_model **out, ats_error *err) {
    *out = NULL;
    ats_model *m = calloc(1, sizeof *m);
    if (!m) return ats_error_set(err, ATS_ERR_NOMEM, "model: out of memory");
    ats_status rc = ats_model_locate(name_or_path, &m->dir, err);
    char *cpath = NULL, *wpath = NULL;
    cJSON *root = NULL;
    if (rc) goto fail;
    m->info.dir = m->dir;
    if (ats_model_file_exists(m->dir)) { /* a file, not a directory: a GGUF file (model_gguf.c) */
        if ((rc = ats_model_gguf_read(m, m->dir, err))) goto fail;
        if (adapter_dir && (rc = ats_model_adapter_merge(m, adapter_dir, err))) goto fail;
        loader gl = {m, "model.", err, ATS_OK};
        load_llama(&gl);
        if ((rc = gl.rc) || (rc = pack_layers(m, err))) goto fail;
        m->info.has_lm_head = m->lm_dec != NULL;
        *out = m;
        return ATS_OK;
    }
    cpath = ats_model_path_join(m->dir, "config.json");
    wpath = ats_model_path_join(m->dir, "model.safetensors");
    if (!cpath || !wpath) {
        rc = ats_error_set(err, ATS_ERR_NOMEM, "model: out of memory");
        goto fail;
    }
    if ((rc = ats_model_read_json(cpath, &root, err))) goto fail;
    if ((rc = parse_config(m, root, cpath, err))) goto fail;
    if (m->info.arch == ATS_ARCH_VIT && (rc = parse_preprocessor(m, err))) goto fail;
    m->layers = calloc((size_t)m->info.n_layers + 1, sizeof *m->layers);
    if (!m->layers) {
        rc = ats_error_set(err, ATS_ERR_NOMEM, "model: out of memory");
        goto fail;
    }
    if ((rc = parse_windows(m, root, cpath, err))) goto fail;
    char *index = ats_model_path_join(m->dir, "model.safetensors.index.json");
    int sharded = index && !ats_model_file_exists(wpath) && ats_model_file_exists(index);
    if (sharded) rc = open_shards(m, index, err);
    free(index);
    if (rc) goto fail;
    if (sharded) {
        /* m->st holds the shards' tensors */
    } else if (ats_model_file_exists(wpath)) {
        if ((rc = ats_safetensors_open(wpath, &m->st, err))) goto fail;
    } else {
        char *bin = ats_model_path_join(m->dir, "pytorch_model.bin");
        if (!bin || !ats_model_file_exists(bin)) {
            free(bin);
            rc = ats_error_set(err, ATS_ERR_IO,
                               "%s: missing, and no pytorch_model.bin either (no weights in the "
                               "model directory)",
                               wpath);
            goto fail;
        }
        rc = ats_torchbin_open(bin, &m->st, err);
        free(bin);
        if (rc) goto fail;
    }
    /* the adapter changes the checkpoint's tensors before any loader reads them */
    if (adapter_dir && (rc = ats_model_adapter_merge(m, adapter_dir, err))) goto fail;
    ats_arch arch = m->info.arch;
    int llama = arch == ATS_ARCH_LLAMA || arch == ATS_ARCH_MISTRAL || arch == ATS_ARCH_QWEN2;
    const char *probe = arch == ATS_ARCH_GPT2       ? "wte.weight"
                        : arch == ATS_ARCH_VIT      ? "embeddings.cls_token"
                        : llama                     ? "embed_tokens.weight"
                        : arch == ATS_ARCH_GPT_NEOX ? "embed_in.weight"
                                                    : "embeddings.word_embeddings.weight";
    loader ld = {m, "", err, ATS_OK};
    for (size_t i = 0; ATS_MODEL_PREFIXES[i]; i++) {
        ld.prefix = ATS_MODEL_PREFIXES[i];
        if (has(&ld, probe)) break;
        ld.prefix = "";
    }
    switch (m->info.arch) {
    case ATS_ARCH_GPT2:
        load_gpt2(&ld);
        break;
    case ATS_ARCH_BERT:
    case ATS_ARCH_ROBERTA:
        load_bert(&ld);
        break;
    case ATS_ARCH_DISTILBERT:
        load_distilbert(&ld);
        break;
    case ATS_ARCH_VIT:
        load_vit(&ld);
        break;
    case ATS_ARCH_LLAMA:
    case ATS_ARCH_MISTRAL:
    case ATS_ARCH_QWEN2:
        load_llama(&ld);
        break;
    case ATS_ARCH_GPT_NEOX:
        load_gpt_neox(&ld);
        break;
    }
    if ((rc = ld.rc)) goto fail;
    if ((rc = pack_layers(m, err))) goto fail;
    m->info.has_lm_head = m->lm_dec != NULL;
    /* RoBERTa positions start at pad_id + 1 */
    if (m->info.arch == ATS_ARCH_ROBERTA) m->info.max_positions -= m->pad_id + 1;
    cJSON_Delete(root);
    free(cpath);
    free(wpath);
    *out = m;
    return ATS_OK;
fail:
    cJSON_Delete(root);
    free(cpath);
    free(wpath);
    ats_model_free(m);
    return rc;
}
