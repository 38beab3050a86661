/* PEFT LoRA adapters, merged into the checkpoint's tensors before the loaders read them: the
 * loaders, the GPT-NeoX q|k|v split and the packing then see the fine-tuned weights and nothing
 * downstream knows there was an adapter. PEFT's own forward pass computes x Wᵀ + s·(x Aᵀ) Bᵀ;
 * the merged W + s·B·A gives the same product up to float32 rounding. */
#include "model_internal.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <cblas.h>
#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PEFT_PREFIX "base_model.model."

typedef struct lora_cfg {
    const char *path; /* adapter_config.json, for messages */
    int r;
    double alpha;
    int rslora;
    const cJSON *targets;       /* a list of module names, or a regular expression */
    const cJSON *rank_pattern;  /* {pattern: rank} or NULL */
    const cJSON *alpha_pattern; /* {pattern: alpha} or NULL */
    const cJSON *layers;        /* layers_to_transform: an index, a list of them, or NULL */
} lora_cfg;

/* 1 when the Python regular expression pattern (PCRE2 reads the subset PEFT configs use)
 * matches the whole of s, as re.fullmatch; 0 when not; -1 when it does not compile. */
static int re_full(const char *pattern, const char *s) {
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_ANCHORED | PCRE2_ENDANCHORED, &code, &off, NULL);
    if (!re) return -1;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    int rc = md ? pcre2_match(re, (PCRE2_SPTR)s, strlen(s), 0, 0, md, NULL) : -1;
    pcre2_match_data_free(md);
    pcre2_code_free(re);
    return rc >= 0 ? 1 : rc == PCRE2_ERROR_NOMATCH ? 0 : -1;
}

/* 1 when the target_modules list entry t names module: equal to it or to its last dotted
 * components (PEFT's check_target_module_exists). */
static int entry_names(const char *t, const char *module) {
    size_t n = strlen(module), k = strlen(t);
    return !strcmp(module, t) || (k < n && module[n - k - 1] == '.' && !strcmp(module + n - k, t));
}

/* 1 when target_modules names module: a regular expression matching all of it, or a list with
 * an entry naming it; -1: a bad expression. */
static int target_names(const cJSON *targets, const char *module) {
    if (cJSON_IsString(targets)) return re_full(targets->valuestring, module);
    const cJSON *e;
    cJSON_ArrayForEach(e, targets) if (entry_names(e->valuestring, module)) return 1;
    return 0;
}

/* The value of the first key of pattern (rank_pattern, alpha_pattern) that matches module as
 * PEFT's get_pattern_key does, re.match("(.*\.)?(key)$"); def when none. -1 in *bad: a key that
 * is not a valid expression. */
static double pattern_value(const cJSON *pattern, const char *module, double def, int *bad) {
    const cJSON *e;
    cJSON_ArrayForEach(e, pattern) {
        size_t len = strlen(e->string) + 16;
        char *re = malloc(len);
        if (!re) {
            *bad = 1;
            return def;
        }
        snprintf(re, len, "(?:.*\\.)?(?:%s)", e->string);
        int hit = re_full(re, module);
        free(re);
        if (hit < 0) *bad = 1;
        if (hit > 0) return e->valuedouble;
    }
    return def;
}

/* The layer index of a module name: its first all-digit dotted component; -1 when none. */
static long layer_index(const char *module) {
    for (const char *p = module; *p;) {
        const char *q = strchr(p, '.');
        size_t k = q ? (size_t)(q - p) : strlen(p);
        if (k > 0 && k < 10 && strspn(p, "0123456789") == k && p != module) return atol(p);
        p += k + (q != NULL);
    }
    return -1;
}

static int layer_wanted(const cJSON *layers, long idx) {
    if (!layers || cJSON_IsNull(layers)) return 1;
    if (cJSON_IsNumber(layers)) return idx == (long)layers->valuedouble;
    const cJSON *e;
    cJSON_ArrayForEach(e, layers) if (idx == (long)e->valuedouble) return 1;
    return 0;
}

/* Reads and checks adapter_config.json into c (pointing into root). */
static ats_status parse_lora_config(const cJSON *root, lora_cfg *c, ats_error *err) {
    const char *path = c->path;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, "peft_type");
    if (!cJSON_IsString(v))
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: no \"peft_type\" (not a PEFT adapter)",
                             path);
    if (strcmp(v->valuestring, "LORA"))
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: peft_type \"%s\" is not supported (only LORA adapters)", path,
                             v->valuestring);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "use_dora")))
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: DoRA (\"use_dora\": true) is not supported, only plain LoRA",
                             path);
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "lora_bias")))
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: \"lora_bias\": true is not supported", path);
    v = cJSON_GetObjectItemCaseSensitive(root, "bias");
    if (v && !cJSON_IsNull(v) && !(cJSON_IsString(v) && !strcmp(v->valuestring, "none")))
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: \"bias\" must be \"none\" (trained biases are not supported)",
                             path);
    static const char *const UNSUPPORTED[] = {"modules_to_save", "target_parameters",
                                              "layer_replication", "trainable_token_indices"};
    for (size_t i = 0; i < sizeof UNSUPPORTED / sizeof UNSUPPORTED[0]; i++) {
        v = cJSON_GetObjectItemCaseSensitive(root, UNSUPPORTED[i]);
        if (v && !cJSON_IsNull(v) && !(cJSON_IsArray(v) && cJSON_GetArraySize(v) == 0))
            return ats_error_set(err, ATS_ERR_FORMAT, "%s: \"%s\" is not supported", path,
                                 UNSUPPORTED[i]);
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "r");
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 1 ||
        v->valuedouble > 1 << 20)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: \"r\" must be an integer >= 1", path);
    c->r = (int)v->valuedouble;
    v = cJSON_GetObjectItemCaseSensitive(root, "lora_alpha");
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: \"lora_alpha\" must be a number", path);
    c->alpha = v->valuedouble;
    c->rslora = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(root, "use_rslora"));
    c->targets = cJSON_GetObjectItemCaseSensitive(root, "target_modules");
    int ok = cJSON_IsString(c->targets) ||
             (cJSON_IsArray(c->targets) && cJSON_GetArraySize(c->targets) > 0);
    const cJSON *e;
    if (cJSON_IsArray(c->targets)) cJSON_ArrayForEach(e, c->targets) ok &= cJSON_IsString(e);
    if (!ok)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: \"target_modules\" must be a list of module names or a regular "
                             "expression",
                             path);
    if (cJSON_IsString(c->targets) && re_full(c->targets->valuestring, "") < 0)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: \"target_modules\" \"%s\" is not a valid regular expression",
                             path, c->targets->valuestring);
    const char *pkeys[2] = {"rank_pattern", "alpha_pattern"};
    const cJSON **pdst[2] = {&c->rank_pattern, &c->alpha_pattern};
    for (int k = 0; k < 2; k++) {
        v = cJSON_GetObjectItemCaseSensitive(root, pkeys[k]);
        *pdst[k] = cJSON_IsObject(v) ? v : NULL;
        ok = !v || cJSON_IsNull(v) || cJSON_IsObject(v);
        if (cJSON_IsObject(v))
            cJSON_ArrayForEach(e, v) ok &=
                cJSON_IsNumber(e) && isfinite(e->valuedouble) &&
                (k == 1 || (e->valuedouble >= 1 && e->valuedouble == floor(e->valuedouble)));
        if (!ok)
            return ats_error_set(err, ATS_ERR_FORMAT, "%s: \"%s\" must map module patterns to %s",
                                 path, pkeys[k], k ? "numbers" : "integer ranks >= 1");
    }
    v = cJSON_GetObjectItemCaseSensitive(root, "layers_to_transform");
    c->layers = v;
    ok = !v || cJSON_IsNull(v) || cJSON_IsNumber(v) || cJSON_IsArray(v);
    if (cJSON_IsArray(v)) cJSON_ArrayForEach(e, v) ok &= cJSON_IsNumber(e);
    if (!ok)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: \"layers_to_transform\" must be a layer index or a list of them",
                             path);
    return ATS_OK;
}

/* The module name of an adapter tensor and which factor it is: "base_model.model.<module>.
 * lora_A[.default].weight" → module, 'A'. 0 with a reason when the name is not that. */
static int split_name(const char *name, char *module, size_t cap, char *which, const char **why) {
    static const char *const SUFFIX[4] = {".lora_A.weight", ".lora_B.weight",
                                          ".lora_A.default.weight", ".lora_B.default.weight"};
    size_t n = strlen(name), p = strlen(PEFT_PREFIX);
    *why = "not a LoRA factor (expected base_model.model.<module>.lora_A.weight or "
           ".lora_B.weight)";
    if (strstr(name, "lora_embedding_"))
        *why = "LoRA on an embedding is not supported";
    else if (strstr(name, "lora_magnitude_vector"))
        *why = "DoRA magnitudes are not supported";
    if (n <= p || strncmp(name, PEFT_PREFIX, p)) return 0;
    for (int k = 0; k < 4; k++) {
        size_t s = strlen(SUFFIX[k]);
        if (n > p + s && !strcmp(name + n - s, SUFFIX[k]) && n - s - p < cap) {
            memcpy(module, name + p, n - s - p);
            module[n - s - p] = 0;
            *which = SUFFIX[k][6];
            return 1;
        }
    }
    return 0;
}

/* The other factor of module in the adapter (with or without ".default"). */
static const st_tensor *find_factor(const ats_safetensors *st, const char *module, char which) {
    char name[640];
    snprintf(name, sizeof name, PEFT_PREFIX "%s.lora_%c.weight", module, which);
    const st_tensor *t = ats_safetensors_find(st, name);
    if (t) return t;
    snprintf(name, sizeof name, PEFT_PREFIX "%s.lora_%c.default.weight", module, which);
    return ats_safetensors_find(st, name);
}

/* The checkpoint tensor <module>.weight: as named, with a base-model prefix added, or with one
 * taken off (an adapter made on GPT2LMHeadModel names transformer.h.0...; a GPT2Model checkpoint
 * stores h.0..., and the other way round). */
static st_tensor *find_base(ats_model *m, const char *module) {
    char name[640];
    for (size_t i = 0; ATS_MODEL_PREFIXES[i]; i++) {
        const char *p = ATS_MODEL_PREFIXES[i];
        size_t k = strlen(p);
        snprintf(name, sizeof name, "%s%s.weight", p, module);
        const st_tensor *t = ats_safetensors_find(&m->st, name);
        if (!t && k && !strncmp(module, p, k)) {
            snprintf(name, sizeof name, "%s.weight", module + k);
            t = ats_safetensors_find(&m->st, name);
        }
        /* m->st is the model's own table: the merge replaces the entry's data */
        if (t) return (st_tensor *)(uintptr_t)t;
    }
    return NULL;
}

/* GPT-2's Conv1D modules store W as [in][out]; PEFT gives them fan_in_fan_out whatever the
 * config says (and takes it away from Linear modules), so the layout follows the module. */
static int is_conv1d(const ats_model *m, const char *module) {
    if (!m->conv1d) return 0;
    static const char *const CONV[] = {"c_attn", "c_proj", "c_fc", "q_attn"};
    const char *last = strrchr(module, '.');
    last = last ? last + 1 : module;
    for (size_t i = 0; i < sizeof CONV / sizeof CONV[0]; i++)
        if (!strcmp(last, CONV[i])) return 1;
    return 0;
}

/* *out ← a factor as float32 in new memory, every value finite. */
static ats_status factor_f32(const st_tensor *t, const char *path, float **out, ats_error *err) {
    *out = NULL;
    if (t->dtype == ST_OTHER)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: tensor '%s' has dtype %s, expected F32, F16 or BF16", path,
                             t->name, t->dtype_name);
    float *p = malloc((t->count ? t->count : 1) * sizeof *p);
    if (!p)
        return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory for tensor '%s'", path,
                             t->name);
    ats_model_tensor_f32(t, p);
    for (size_t i = 0; i < t->count; i++)
        if (!isfinite(p[i])) {
            const char *what = isnan(p[i]) ? "NaN" : "inf";
            free(p);
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: tensor '%s' has a non-finite value (%s) at element %zu", path,
                                 t->name, what, i);
        }
    *out = p;
    return ATS_OK;
}

/* W ← W + s·B·A for one module: the checkpoint tensor is replaced by an owned float32 copy. */
static ats_status merge_one(ats_model *m, const lora_cfg *c, const char *apath, const char *module,
                            const st_tensor *ta, const st_tensor *tb, ats_error *err) {
    st_tensor *w = find_base(m, module);
    if (!w)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: module '%s' has no weight '%s.weight' in the model %s", apath,
                             module, module, m->dir);
    int bad = 0;
    double rank = pattern_value(c->rank_pattern, module, c->r, &bad);
    double alpha = pattern_value(c->alpha_pattern, module, c->alpha, &bad);
    if (bad)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: a key of rank_pattern or alpha_pattern is not a valid regular "
                             "expression",
                             c->path);
    int conv = is_conv1d(m, module);
    if (w->ndim != 2 || w->dtype == ST_OTHER)
        return ats_error_set(err, ATS_ERR_FORMAT,
                             "%s: module '%s': the model's '%s' is not a 2-D float matrix (LoRA "
                             "is supported on linear layers only)",
                             apath, module, w->name);
    size_t out = w->shape[conv ? 1 : 0], in = w->shape[conv ? 0 : 1], r = (size_t)rank;
    if (ta->ndim != 2 || tb->ndim != 2 || ta->shape[0] != r || ta->shape[1] != in ||
        tb->shape[0] != out || tb->shape[1] != r)
        return ats_error_set(
            err, ATS_ERR_FORMAT,
            "%s: module '%s': lora_A is [%zu x %zu] and lora_B [%zu x %zu], expected [%zu x %zu] "
            "and [%zu x %zu] (rank %zu; the model's weight '%s' is [%zu x %zu]%s)",
            apath, module, ta->shape[0], ta->ndim > 1 ? ta->shape[1] : 0, tb->shape[0],
            tb->ndim > 1 ? tb->shape[1] : 0, r, in, out, r, r, w->name, w->shape[0], w->shape[1],
            conv ? ", Conv1D [in][out]" : "");
    if (out > INT_MAX || in > INT_MAX)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: module '%s' is too large", apath, module);
    size_t count;
    if (!ats_size_mul(out, in, &count))
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: module '%s' is too large", apath, module);
    float *a, *b = NULL, *merged = NULL;
    ats_status rc = factor_f32(ta, apath, &a, err);
    if (!rc) rc = factor_f32(tb, apath, &b, err);
    /* a tensor the model owns already (a GGUF file's dequantized copy) is merged in place; one
     * in the mapped file gets a copy, and the file's pages go back to the kernel */
    const void *orig = w->data;
    int in_place = w->dtype == ST_F32 && ats_model_owns(m, (const float *)orig);
    if (!rc && in_place) {
        merged = (float *)(uintptr_t)orig;
    } else if (!rc) {
        merged = malloc((count ? count : 1) * sizeof *merged);
        if (!merged || !ats_model_own(m, merged)) {
            free(merged);
            rc = ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory merging '%s'", apath, module);
        }
    }
    if (rc) {
        free(a), free(b);
        return rc;
    }
    if (!in_place) {
        ats_model_tensor_f32(w, merged);
        ats_model_release_mapped(m, orig, w->end - w->begin);
    }
    float s = (float)(c->rslora ? alpha / sqrt(rank) : alpha / rank);
    int R = (int)r;
    if (conv) /* W [in][out] += s · Aᵀ [in][r] · Bᵀ [r][out] */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasTrans, (int)in, (int)out, R, s, a, (int)in, b,
                    R, 1.0f, merged, (int)out);
    else /* W [out][in] += s · B [out][r] · A [r][in] */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)out, (int)in, R, s, b, R, a,
                    (int)in, 1.0f, merged, (int)in);
    free(a);
    free(b);
    w->data = (const uint8_t *)merged;
    w->dtype = ST_F32;
    snprintf(w->dtype_name, sizeof w->dtype_name, "F32");
    return ATS_OK;
}

/* Checks the adapter's tensors and target_modules against each other, then merges every
 * module. */
static ats_status merge_all(ats_model *m, const lora_cfg *c, const ats_safetensors *ad,
                            ats_error *err) {
    const char *apath = ad->path;
    char module[512];
    size_t modules = 0;
    for (size_t i = 0; i < ad->count; i++) {
        const st_tensor *t = &ad->tensors[i];
        char which;
        const char *why;
        if (!split_name(t->name, module, sizeof module, &which, &why))
            return ats_error_set(err, ATS_ERR_FORMAT, "%s: tensor '%s': %s", apath, t->name, why);
        const st_tensor *other = find_factor(ad, module, which == 'A' ? 'B' : 'A');
        if (!other)
            return ats_error_set(err, ATS_ERR_FORMAT, "%s: tensor '%s' has no lora_%c partner",
                                 apath, t->name, which == 'A' ? 'B' : 'A');
        if (find_factor(ad, module, which) != t)
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: module '%s' has lora_%c twice (with and without .default)",
                                 apath, module, which);
        int named = target_names(c->targets, module);
        if (named <= 0)
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: module '%s' is not one that target_modules in %s names",
                                 apath, module, c->path);
        if (!layer_wanted(c->layers, layer_index(module)))
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: module '%s' is in a layer that layers_to_transform in %s "
                                 "leaves out",
                                 apath, module, c->path);
        if (which != 'A') continue;
        ats_status rc = merge_one(m, c, apath, module, t, other, err);
        if (rc) return rc;
        modules++;
    }
    if (!modules)
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: no LoRA factors in the adapter", apath);
    /* every name in the list must have adapted something: a misspelt name would otherwise
     * silently leave the model as it was */
    const cJSON *e, *list = cJSON_IsArray(c->targets) ? c->targets : NULL;
    cJSON_ArrayForEach(e, list) {
        int used = 0;
        for (size_t i = 0; i < ad->count && !used; i++) {
            char which;
            const char *why;
            if (split_name(ad->tensors[i].name, module, sizeof module, &which, &why))
                used = entry_names(e->valuestring, module);
        }
        if (!used)
            return ats_error_set(err, ATS_ERR_FORMAT,
                                 "%s: target_modules entry \"%s\" matches no module of the adapter "
                                 "(%s)",
                                 c->path, e->valuestring, apath);
    }
    return ATS_OK;
}

ats_status ats_model_adapter_merge(ats_model *m, const char *dir, ats_error *err) {
    char *cpath = ats_model_path_join(dir, "adapter_config.json");
    char *wpath = ats_model_path_join(dir, "adapter_model.safetensors");
    char *bpath = ats_model_path_join(dir, "adapter_model.bin");
    cJSON *root = NULL;
    ats_safetensors ad = {0};
    ats_status rc = ATS_OK;
    if (!cpath || !wpath || !bpath) {
        rc = ats_error_set(err, ATS_ERR_NOMEM, "adapter: out of memory");
        goto done;
    }
    if (!ats_model_file_exists(cpath)) {
        rc = ats_error_set(err, ATS_ERR_IO, "%s: missing (%s is not a PEFT adapter directory)",
                           cpath, dir);
        goto done;
    }
    if ((rc = ats_model_read_json(cpath, &root, err))) goto done;
    lora_cfg c = {.path = cpath};
    if ((rc = parse_lora_config(root, &c, err))) goto done;
    if (ats_model_file_exists(wpath))
        rc = ats_safetensors_open(wpath, &ad, err);
    else if (ats_model_file_exists(bpath))
        rc = ats_torchbin_open(bpath, &ad, err);
    else
        rc = ats_error_set(err, ATS_ERR_IO, "%s: missing, and no adapter_model.bin either", wpath);
    if (!rc) rc = merge_all(m, &c, &ad, err);
done:
    ats_safetensors_close(&ad);
    cJSON_Delete(root);
    free(cpath);
    free(wpath);
    free(bpath);
    return rc;
}
