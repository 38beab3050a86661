/* Model runtime C API: loading, forward against transformers' recorded outputs, batch,
 * truncation, head mask, last-error messages, and the safetensors header checks. */
#include "check.h"
#include "model_internal.h"
#include "attnscope/vision.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/models/"

static double max_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > m || isnan(d)) m = isnan(d) ? INFINITY : d;
    }
    return m;
}

/* 1 when every captured array and the loss are bit for bit the same */
static int same_result(const ats_forward_result *a, const ats_forward_result *b) {
    size_t L = a->n_layers, H = a->n_heads, n = a->n_tokens, d = a->d_model, V = a->vocab_size;
    if (L != b->n_layers || H != b->n_heads || n != b->n_tokens) return 0;
    if (!a->attention != !b->attention || !a->scores != !b->scores || !a->hidden != !b->hidden ||
        !a->logits != !b->logits)
        return 0;
    if (a->attention && memcmp(a->attention, b->attention, L * H * n * n * sizeof(float))) return 0;
    if (a->scores && memcmp(a->scores, b->scores, L * H * n * n * sizeof(float))) return 0;
    if (a->hidden && memcmp(a->hidden, b->hidden, (L + 1) * n * d * sizeof(float))) return 0;
    if (a->logits && memcmp(a->logits, b->logits, n * V * sizeof(float))) return 0;
    return (isnan(a->loss) && isnan(b->loss)) || a->loss == b->loss;
}

/* GPT-2 (Conv1D, causal): three sequences in one stacked pass equal three passes */
static void test_gpt2_batch(void) {
    ats_model *m = NULL;
    ats_error err;
    CHECK(ats_model_load(FIX "gpt2", &m, &err) == ATS_OK);
    if (!m) return;
    int32_t a[11] = {3, 14, 15, 9, 26, 5, 35, 8, 9, 7, 9}, b[2] = {1, 2}, c[17];
    for (int i = 0; i < 17; i++) c[i] = (i * 37) % 270;
    ats_model_input in[3] = {{a, NULL, a, 11}, {b, NULL, NULL, 2}, {c, NULL, c, 17}};
    ats_forward_options opt;
    ats_forward_options_init(&opt);
    opt.capture |= ATS_CAPTURE_HIDDEN | ATS_CAPTURE_SCORES;
    opt.n_threads = 1;
    ats_forward_result rb[3], r;
    CHECK(ats_model_forward_batch(m, 3, in, &opt, rb, &err) == ATS_OK);
    for (int s = 0; s < 3; s++) {
        CHECK(ats_model_forward(m, &in[s], &opt, &r, &err) == ATS_OK);
        CHECK(same_result(&rb[s], &r));
        ats_forward_result_free(&r);
        ats_forward_result_free(&rb[s]);
    }
    /* an error names the sequence, and nothing is left allocated */
    int32_t bad[2] = {1, 100000};
    in[1].ids = bad;
    CHECK(ats_model_forward_batch(m, 3, in, &opt, rb, &err) == ATS_ERR_INVALID);
    CHECK(strstr(err.message, "sequence 1: ") != NULL && strstr(err.message, "vocabulary"));
    CHECK(rb[0].attention == NULL && rb[2].attention == NULL);
    ats_model_free(m);
}

static void test_bert_ids1(void) {
    ats_model *m = NULL;
    ats_error err;
    CHECK(ats_model_load(FIX "bert", &m, &err) == ATS_OK);
    if (!m) return;
    const ats_model_info *mi = ats_model_info_get(m);
    CHECK(mi->arch == ATS_ARCH_BERT && mi->n_layers == 2 && mi->n_heads == 4);
    CHECK(mi->d_model == 32 && mi->d_head == 8 && mi->max_positions == 40 && mi->has_lm_head);
    /* case ids1 of the manifest */
    int32_t ids[7] = {21, 42, 4, 34, 10, 4, 26}, types[7] = {0, 0, 0, 1, 1, 1, 1};
    int32_t labels[7] = {21, -100, 48, 25, -100, -100, -100};
    ats_model_input in = {ids, types, labels, 7};
    ats_forward_options opt;
    ats_forward_options_init(&opt);
    opt.capture |= ATS_CAPTURE_HIDDEN | ATS_CAPTURE_LOGITS | ATS_CAPTURE_SCORES;
    opt.n_threads = 1;
    ats_forward_result r;
    CHECK(ats_model_forward(m, &in, &opt, &r, &err) == ATS_OK);
    ats_npy want;
    CHECK(ats_npy_read(FIX "bert/expected/ids1_att.npy", &want, &err) == ATS_OK);
    CHECK(want.count == 2 * 4 * 7 * 7 && r.n_tokens == 7);
    CHECK(max_diff(r.attention, want.data, want.count) <= 1e-5);
    ats_npy_free(&want);
    CHECK(ats_npy_read(FIX "bert/expected/ids1_logits.npy", &want, &err) == ATS_OK);
    CHECK(max_diff(r.logits, want.data, want.count) <= 1e-4);
    ats_npy_free(&want);
    CHECK_NEAR(r.loss, 5.281277656555176, 1e-4);
    CHECK(r.loss_count == 3);
    /* rows sum to 1 */
    for (size_t row = 0; row < 2 * 4 * 7; row++) {
        double s = 0;
        for (size_t j = 0; j < 7; j++) s += r.attention[row * 7 + j];
        CHECK_NEAR(s, 1.0, 1e-5);
    }
    /* a batch gives exactly the single results */
    ats_model_input two[2] = {in, {ids, NULL, NULL, 3}};
    ats_forward_result rb[2];
    CHECK(ats_model_forward_batch(m, 2, two, &opt, rb, &err) == ATS_OK);
    CHECK(same_result(&rb[0], &r));
    ats_forward_result r1;
    CHECK(ats_model_forward(m, &two[1], &opt, &r1, &err) == ATS_OK);
    CHECK(rb[1].n_tokens == 3 && isnan(rb[1].loss) && same_result(&rb[1], &r1));
    ats_forward_result_free(&r1);
    ats_forward_result_free(&rb[0]);
    ats_forward_result_free(&rb[1]);
    /* head mask 0 on (1, 2): that head reports zeros, the others of layer 1 are unchanged in
     * layer 0 */
    float mask[8] = {1, 1, 1, 1, 1, 1, 0, 1};
    opt.head_mask = mask;
    ats_forward_result rm;
    CHECK(ats_model_forward(m, &in, &opt, &rm, &err) == ATS_OK);
    CHECK(memcmp(rm.attention, r.attention, 4 * 49 * sizeof(float)) == 0);
    CHECK(max_diff(rm.attention + 6 * 49, (float[49]){0}, 49) == 0.0);
    ats_forward_result_free(&rm);
    ats_forward_result_free(&r);
    /* errors keep their message on the handle */
    int32_t bad[2] = {2, 5000};
    ats_model_input bin = {bad, NULL, NULL, 2};
    CHECK(ats_model_forward(m, &bin, NULL, &r, &err) == ATS_ERR_INVALID);
    CHECK(strstr(ats_model_errmsg(m), "vocabulary") != NULL);
    CHECK(r.attention == NULL);
    int32_t longids[45];
    for (int i = 0; i < 45; i++) longids[i] = 5;
    ats_model_input lin = {longids, NULL, NULL, 45};
    CHECK(ats_model_forward(m, &lin, NULL, &r, &err) == ATS_ERR_RANGE);
    ats_forward_options_init(&opt);
    opt.truncate = 1;
    CHECK(ats_model_forward(m, &lin, &opt, &r, &err) == ATS_OK);
    CHECK(r.n_tokens == 40 && r.n_truncated == 5);
    ats_forward_result_free(&r);
    ats_model_free(m);
}

/* one handle, forward passes from several threads at once: each equals the serial result */
static void test_concurrent(void) {
    ats_model *m = NULL;
    ats_error err;
    CHECK(ats_model_load(FIX "gpt2", &m, &err) == ATS_OK);
    if (!m) return;
    int32_t ids[12] = {5, 9, 200, 31, 7, 7, 64, 100, 3, 250, 11, 42};
    ats_model_input in = {ids, NULL, ids, 12};
    ats_forward_options opt;
    ats_forward_options_init(&opt);
    opt.capture |= ATS_CAPTURE_HIDDEN;
    ats_forward_result ref;
    CHECK(ats_model_forward(m, &in, &opt, &ref, &err) == ATS_OK);
    int bad = 0;
#pragma omp parallel for num_threads(2) reduction(+ : bad)
    for (int k = 0; k < 6; k++) {
        ats_forward_result r;
        ats_error e;
        if (ats_model_forward(m, &in, &opt, &r, &e) != ATS_OK ||
            memcmp(r.attention, ref.attention, 2 * 4 * 144 * sizeof(float)) ||
            memcmp(r.hidden, ref.hidden, 3 * 12 * 32 * sizeof(float)) || r.loss != ref.loss)
            bad++;
        ats_forward_result_free(&r);
    }
    CHECK(bad == 0);
    ats_forward_result_free(&ref);
    ats_model_free(m);
}

static void test_roberta_limit_and_vit(void) {
    ats_model *m = NULL;
    ats_error err;
    CHECK(ats_model_load(FIX "roberta", &m, &err) == ATS_OK);
    if (m) CHECK(ats_model_info_get(m)->max_positions == 40); /* 42 - padding_idx - 1 */
    ats_model_free(m);
    m = NULL;
    CHECK(ats_model_load(FIX "vit", &m, &err) == ATS_OK);
    if (!m) return;
    const ats_model_info *mi = ats_model_info_get(m);
    CHECK(mi->arch == ATS_ARCH_VIT && mi->image_size == 32 && mi->patch_size == 8);
    CHECK(mi->max_positions == 17);
    CHECK_NEAR(mi->image_mean[1], 0.4, 1e-7);
    /* preprocessing is bit-exact with ViTImageProcessor (PIL resize) */
    ats_image img;
    CHECK(ats_image_load(FIX "vit/expected/image0.png", &img, &err) == ATS_OK);
    ats_image_prep prep = {32, 1, 1, mi->rescale_factor, 1, {0}, {0}, 0, 0};
    for (int c = 0; c < 3; c++) {
        prep.mean[c] = mi->image_mean[c];
        prep.std[c] = mi->image_std[c];
    }
    float pixels[3 * 32 * 32];
    CHECK(ats_image_preprocess(&img, &prep, pixels, &err) == ATS_OK);
    ats_npy want;
    CHECK(ats_npy_read(FIX "vit/expected/image0_pixels.npy", &want, &err) == ATS_OK);
    CHECK(want.count == 3 * 32 * 32 && max_diff(pixels, want.data, want.count) == 0.0);
    ats_npy_free(&want);
    ats_image_free(&img);
    ats_forward_result r;
    CHECK(ats_model_forward_pixels(m, pixels, NULL, &r, &err) == ATS_OK);
    CHECK(ats_npy_read(FIX "vit/expected/image0_att.npy", &want, &err) == ATS_OK);
    CHECK(r.n_tokens == 17 && max_diff(r.attention, want.data, want.count) <= 1e-5);
    ats_npy_free(&want);
    ats_forward_result_free(&r);
    ats_model_free(m);
}

/* a safetensors image: header json, then data_len zero bytes */
static uint8_t *st_image(const char *json, size_t data_len, size_t *len) {
    size_t h = strlen(json);
    *len = 8 + h + data_len;
    uint8_t *b = calloc(1, *len);
    for (int i = 0; i < 8; i++) b[i] = (uint8_t)((uint64_t)h >> (8 * i));
    memcpy(b + 8, json, h);
    return b;
}

static void expect_st(const char *json, size_t data_len, ats_status want, const char *frag) {
    size_t len;
    uint8_t *b = st_image(json, data_len, &len);
    ats_safetensors st;
    ats_error err = {0};
    ats_status rc = ats_safetensors_parse(b, len, "x.safetensors", &st, &err);
    CHECK(rc == want);
    if (rc == want && frag && !strstr(err.message, frag)) {
        fprintf(stderr, "message '%s' lacks '%s'\n", err.message, frag);
        CHECK(0);
    }
    if (!rc) ats_safetensors_close(&st);
    free(b);
}

static void test_safetensors(void) {
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]},"
              "\"__metadata__\":{\"format\":\"pt\"}}",
              24, ATS_OK, NULL);
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}}", 20,
              ATS_ERR_FORMAT, "outside the data section");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,20]}}", 24,
              ATS_ERR_FORMAT, "need 24 bytes");
    expect_st("{\"a\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
              "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[4,12]}}",
              12, ATS_ERR_FORMAT, "overlap");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
              "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
              8, ATS_ERR_FORMAT, "twice");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
              ATS_ERR_FORMAT, "shape[0]");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,4294967296],"
              "\"data_offsets\":[0,4]}}",
              4, ATS_ERR_RANGE, "overflow");
    expect_st("{\"a\":{\"dtype\":\"X9\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4, ATS_ERR_FORMAT,
              "unknown dtype");
    expect_st("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0.5,4]}}", 4,
              ATS_ERR_FORMAT, "data_offsets");
    expect_st("{\"a\":[]}", 0, ATS_ERR_FORMAT, "not an object");
    expect_st("{\"a\":", 0, ATS_ERR_FORMAT, "not valid JSON");
    /* header length beyond the file */
    uint8_t b[16] = {200, 0, 0, 0, 0, 0, 0, 0, '{', '}'};
    ats_safetensors st;
    ats_error err;
    CHECK(ats_safetensors_parse(b, 10, "x", &st, &err) == ATS_ERR_FORMAT);
    CHECK(strstr(err.message, "beyond the end") != NULL);
    uint8_t huge[8] = {255, 255, 255, 255, 255, 255, 255, 255};
    CHECK(ats_safetensors_parse(huge, 8, "x", &st, &err) == ATS_ERR_FORMAT);
    CHECK(ats_safetensors_parse(huge, 3, "x", &st, &err) == ATS_ERR_FORMAT);
}

/* A model directory in dir holding only config.json = the decoder config base with extra keys
 * (a JSON fragment) appended: loading fails with ATS_ERR_FORMAT and a message naming the file
 * and each of the fragments want (NULL-terminated). */
static void expect_config_error(const char *dir, const char *base, const char *extra, ...) {
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *fp = fopen(path, "w");
    CHECK(fp != NULL);
    if (!fp) return;
    fprintf(fp, "{%s%s}", base, extra);
    fclose(fp);
    ats_model *m = NULL;
    ats_error err = {0};
    CHECK(ats_model_load(dir, &m, &err) == ATS_ERR_FORMAT && m == NULL);
    int named = strstr(err.message, "config.json") != NULL;
    va_list ap;
    va_start(ap, extra);
    for (const char *w = va_arg(ap, const char *); w; w = va_arg(ap, const char *))
        named &= strstr(err.message, w) != NULL;
    va_end(ap);
    if (!named) fprintf(stderr, "config {%s}: message '%s'\n", extra, err.message);
    CHECK(named);
    ats_model_free(m);
}

/* LoRA adapters (tests/fixtures/lora, against PEFT in tests/python/test_lora.py): no adapter is
 * ats_model_load bit for bit; the merged weights give the same attention on the packed kernels
 * and on OpenBLAS over the unpacked weights (1e-5), and differ from the base model's; a missing
 * adapter fails without a model, also with err NULL. */
static void test_adapters(void) {
    static const char *const CASES[][2] = {
        {"gpt2", "gpt2"}, {"llama", "llama"}, {"gpt_neox", "gpt_neox"}, {"bert", "bert"}};
    int32_t ids[9] = {2, 17, 42, 9, 7, 25, 3, 41, 5}; /* BERT's vocabulary is 50 */
    ats_model_input in = {ids, NULL, NULL, 9};
    ats_forward_options opt;
    ats_forward_options_init(&opt);
    opt.n_threads = 1;
    ats_error err;
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        char mdir[256], adir[256];
        snprintf(mdir, sizeof mdir, FIX "%s", CASES[c][0]);
        snprintf(adir, sizeof adir, "tests/fixtures/lora/%s", CASES[c][1]);
        ats_forward_result r[4];
        memset(r, 0, sizeof r);
        for (int k = 0; k < 4; k++) { /* base, base (NULL adapter), packed, unpacked */
            ats_model *m = NULL;
            k_gemm_force_fallback(k == 3);
            CHECK(ats_model_load_adapted(mdir, k >= 2 ? adir : NULL, &m, &err) == ATS_OK);
            if (m) CHECK(ats_model_forward(m, &in, &opt, &r[k], &err) == ATS_OK);
            ats_model_free(m);
        }
        k_gemm_force_fallback(0);
        size_t count = r[0].n_layers * r[0].n_heads * r[0].n_tokens * r[0].n_tokens;
        if (r[0].attention && r[1].attention && r[2].attention && r[3].attention) {
            CHECK(same_result(&r[0], &r[1]));
            CHECK(max_diff(r[2].attention, r[3].attention, count) < 1e-5);
            CHECK(max_diff(r[0].attention, r[2].attention, count) > 1e-2);
        }
        for (int k = 0; k < 4; k++) ats_forward_result_free(&r[k]);
    }
    ats_model *m = (ats_model *)1;
    CHECK(ats_model_load_adapted(FIX "gpt2", "tests/fixtures/lora/none", &m, NULL) == ATS_ERR_IO);
    CHECK(m == NULL);
    CHECK(ats_model_load_adapted(FIX "gpt2", "tests/fixtures/lora/bert", &m, &err) ==
          ATS_ERR_FORMAT);
    CHECK(m == NULL && strstr(err.message, "no weight") != NULL);
}

static void test_load_errors(void) {
    ats_model *m = (ats_model *)1;
    ats_error err;
    CHECK(ats_model_load("tests/fixtures/models/does-not-exist", &m, &err) != ATS_OK);
    CHECK(m == NULL);
    ats_model_free(NULL);
    ats_forward_result_free(NULL);
    /* the decoders' configurations: what is not supported, or inconsistent, is named */
    char dir[] = "/tmp/attnscope-config-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    const char *llama = "\"hidden_size\": 64, \"num_attention_heads\": 4, "
                        "\"num_hidden_layers\": 2, \"intermediate_size\": 96, \"vocab_size\": 50";
    expect_config_error(dir, llama,
                        ", \"model_type\": \"llama\", \"rope_scaling\": {\"rope_type\": \"yarn\", "
                        "\"factor\": 2.0}",
                        "rope_scaling", "\"yarn\"", "llama3", NULL);
    expect_config_error(
        dir, llama,
        ", \"model_type\": \"llama\", \"rope_scaling\": {\"rope_type\": \"llama3\", "
        "\"factor\": 8.0}",
        "llama3", "low_freq_factor", NULL);
    expect_config_error(dir, llama,
                        ", \"model_type\": \"llama\", \"rope_scaling\": {\"type\": \"linear\"}",
                        "rope_scaling", "factor", NULL);
    expect_config_error(dir, llama, ", \"model_type\": \"mistral\", \"num_key_value_heads\": 3",
                        "num_key_value_heads", NULL);
    expect_config_error(dir, llama, ", \"model_type\": \"qwen2\", \"rope_theta\": -1", "rope_theta",
                        NULL);
    expect_config_error(dir, llama, ", \"model_type\": \"gpt_neox\", \"rotary_pct\": 0.1", "rotary",
                        NULL);
    expect_config_error(dir, llama,
                        ", \"model_type\": \"qwen2\", \"use_sliding_window\": true, "
                        "\"layer_types\": [\"full_attention\"]",
                        "layer_types", NULL);
    expect_config_error(dir, llama, ", \"model_type\": \"falcon\"", "unknown model_type",
                        "gpt_neox", NULL);
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    remove(path);
    rmdir(dir);
}

/* opt.n_layers = k runs layers 0..k-1: their attention is the full pass's, bit for bit */
static void test_stop_early(void) {
    ats_model *m = NULL;
    ats_error err;
    CHECK(ats_model_load(FIX "gpt2", &m, &err) == ATS_OK);
    if (!m) return;
    const ats_model_info *mi = ats_model_info_get(m);
    int32_t ids[9] = {3, 14, 15, 9, 26, 5, 35, 8, 9};
    ats_model_input in = {ids, NULL, NULL, 9};
    ats_forward_options opt;
    ats_forward_options_init(&opt);
    opt.n_threads = 1;
    ats_forward_result full, part;
    CHECK(ats_model_forward(m, &in, &opt, &full, &err) == ATS_OK);
    for (int k = 1; k <= mi->n_layers; k++) {
        opt.n_layers = k;
        CHECK(ats_model_forward(m, &in, &opt, &part, &err) == ATS_OK);
        CHECK(part.n_layers == (size_t)k && part.attention);
        size_t count = (size_t)k * part.n_heads * 9 * 9;
        CHECK(part.attention && !memcmp(part.attention, full.attention, count * sizeof(float)));
        ats_forward_result_free(&part);
    }
    opt.n_layers = mi->n_layers + 1;
    CHECK(ats_model_forward(m, &in, &opt, &part, &err) == ATS_ERR_INVALID);
    CHECK(strstr(err.message, "n_layers = ") != NULL);
    opt.n_layers = 1;
    opt.capture |= ATS_CAPTURE_HIDDEN;
    CHECK(ats_model_forward(m, &in, &opt, &part, &err) == ATS_ERR_INVALID);
    CHECK(strstr(err.message, "need all") != NULL);
    ats_forward_result_free(&full);
    ats_model_free(m);
}

/* What on_layer received: every layer of every sequence into att[seq][L][H][n][n] (n the
 * longest), the order of the calls checked; stop_at >= 0 fails at that layer */
typedef struct layers_seen {
    size_t L, H, n_max, count, calls, seen[2];
    float *att;
    long stop_at;
    int bad;
} layers_seen;

static ats_status seen_layer(void *ctx, size_t seq, size_t layer, size_t H, size_t n,
                             const float *att, ats_error *err) {
    layers_seen *ls = ctx;
    /* each sequence's layers in order, once each */
    if (seq >= ls->count || H != ls->H || layer >= ls->L || layer != ls->seen[seq]) {
        ls->bad = 1;
        return ATS_OK;
    }
    ls->seen[seq]++;
    ls->calls++;
    if ((long)layer == ls->stop_at)
        return ats_error_set(err, ATS_ERR_RANGE, "stopped at layer %zu of sequence %zu", layer,
                             seq);
    for (size_t h = 0; h < H; h++)
        memcpy(ls->att + ((seq * ls->L + layer) * H + h) * ls->n_max * ls->n_max, att + h * n * n,
               n * n * sizeof *att);
    return ATS_OK;
}

/* on_layer hands over the bits the full capture keeps, layer by layer, for a stacked batch and
 * (with the OpenBLAS fallback) one sequence at a time; with it the result keeps what capture
 * asks (hidden states, one head) unchanged; its error stops the pass and frees the results */
static void test_on_layer(void) {
    static const char *const names[] = {"gpt2", "bert", "qwen2", "mistral", "gpt_neox"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        char dir[256];
        snprintf(dir, sizeof dir, FIX "%s", names[k]);
        ats_model *m = NULL;
        ats_error err;
        CHECK(ats_model_load(dir, &m, &err) == ATS_OK);
        if (!m) continue;
        const ats_model_info *mi = ats_model_info_get(m);
        int32_t a[19], b[7];
        for (int i = 0; i < 19; i++) a[i] = (i * 37 + 5) % mi->vocab_size;
        for (int i = 0; i < 7; i++) b[i] = (i * 11 + 3) % mi->vocab_size;
        ats_model_input in[2] = {{a, NULL, NULL, 19}, {b, NULL, NULL, 7}};
        ats_forward_options opt;
        ats_forward_options_init(&opt);
        opt.capture |= ATS_CAPTURE_HIDDEN;
        opt.n_threads = 2;
        ats_forward_result full[2], got[2];
        if (ats_model_forward_batch(m, 2, in, &opt, full, &err) != ATS_OK) {
            fprintf(stderr, "%s: %s\n", names[k], err.message);
            CHECK(0);
            ats_model_free(m);
            continue;
        }
        size_t L = (size_t)mi->n_layers, H = (size_t)mi->n_heads, nm = 19;
        layers_seen ls = {L, H, nm, 2, 0, {0, 0}, NULL, -1, 0};
        ls.att = calloc(2 * L * H * nm * nm, sizeof *ls.att);
        CHECK(ls.att != NULL);
        if (!ls.att) {
            ats_model_free(m);
            return;
        }
        opt.capture = ATS_CAPTURE_HIDDEN; /* the attention only through on_layer */
        opt.on_layer = seen_layer;
        opt.on_layer_ctx = &ls;
        CHECK(ats_model_forward_batch(m, 2, in, &opt, got, &err) == ATS_OK);
        CHECK(!ls.bad && ls.calls == 2 * L);
        for (size_t s = 0; s < 2; s++) {
            size_t n = in[s].n;
            CHECK(got[s].attention == NULL);
            CHECK(
                !memcmp(got[s].hidden, full[s].hidden, (L + 1) * n * mi->d_model * sizeof(float)));
            for (size_t l = 0; l < L; l++)
                for (size_t h = 0; h < H; h++)
                    CHECK(!memcmp(ls.att + ((s * L + l) * H + h) * nm * nm,
                                  full[s].attention + (l * H + h) * n * n, n * n * sizeof(float)));
            ats_forward_result_free(&got[s]);
        }
        /* with one head kept as well: the result holds that head, the same bits */
        opt.capture = ATS_CAPTURE_ATTENTION;
        opt.capture_layer = (int)L;
        opt.capture_head = (int)H;
        ls.calls = ls.seen[0] = ls.seen[1] = 0;
        CHECK(ats_model_forward(m, &in[0], &opt, &got[0], &err) == ATS_OK);
        CHECK(ls.calls == L && got[0].attention &&
              !memcmp(got[0].attention, full[0].attention + ((L - 1) * H + H - 1) * 19 * 19,
                      19 * 19 * sizeof(float)));
        ats_forward_result_free(&got[0]);
        /* its error ends the pass with that status and message; nothing is left */
        opt.capture = ATS_CAPTURE_ATTENTION | ATS_CAPTURE_HIDDEN;
        opt.capture_layer = opt.capture_head = 0;
        ls.stop_at = 0;
        ls.calls = ls.seen[0] = ls.seen[1] = 0;
        CHECK(ats_model_forward_batch(m, 2, in, &opt, got, &err) == ATS_ERR_RANGE);
        CHECK(strstr(err.message, "stopped at layer 0 of sequence 0") != NULL);
        CHECK(strstr(ats_model_errmsg(m), "stopped at layer 0") != NULL);
        CHECK(got[0].attention == NULL && got[1].attention == NULL && got[0].hidden == NULL);
        free(ls.att);
        ats_forward_result_free(&full[0]);
        ats_forward_result_free(&full[1]);
        ats_model_free(m);
    }
}

/* The decoders (Llama, Mistral, Qwen2, GPT-NeoX) on case ids2 of their manifests (16 tokens,
 * longer than Mistral's and Qwen2's sliding windows): attention, hidden states and logits
 * within 1e-5 of transformers', the loss within 1e-5; a stacked batch with a shorter sequence
 * gives each its own pass bit for bit (rotary positions restart at 0 in each sequence). */
static void test_decoders(void) {
    static const struct {
        const char *name;
        ats_arch arch;
        int kv_heads, d_head;
        double loss;
    } M[] = {{"llama", ATS_ARCH_LLAMA, 2, 16, 7.48175048828125},
             {"llama_scaled", ATS_ARCH_LLAMA, 2, 16, 7.496603488922119},
             {"llama_linear", ATS_ARCH_LLAMA, 1, 16, 6.479643821716309},
             {"mistral", ATS_ARCH_MISTRAL, 2, 16, 8.270697593688965},
             {"qwen2", ATS_ARCH_QWEN2, 2, 16, 7.819494247436523},
             {"gpt_neox", ATS_ARCH_GPT_NEOX, 4, 16, 8.022297859191895},
             {"gpt_neox_seq", ATS_ARCH_GPT_NEOX, 4, 16, 7.4195990562438965}};
    int32_t ids[16] = {55, 25, 144, 267, 201, 208, 196, 215, 140, 35, 230, 123, 137, 101, 50, 253};
    for (size_t k = 0; k < sizeof M / sizeof M[0]; k++) {
        char path[160];
        snprintf(path, sizeof path, FIX "%s", M[k].name);
        ats_model *m = NULL;
        ats_error err;
        CHECK(ats_model_load(path, &m, &err) == ATS_OK);
        if (!m) {
            fprintf(stderr, "%s: %s\n", path, err.message);
            continue;
        }
        const ats_model_info *mi = ats_model_info_get(m);
        CHECK(mi->arch == M[k].arch && mi->causal && mi->has_lm_head && mi->n_heads == 4);
        CHECK(mi->n_kv_heads == M[k].kv_heads && mi->d_head == M[k].d_head);
        ats_model_input in = {ids, NULL, ids, 16};
        ats_forward_options opt;
        ats_forward_options_init(&opt);
        opt.capture |= ATS_CAPTURE_HIDDEN | ATS_CAPTURE_LOGITS;
        opt.n_threads = 1;
        ats_forward_result r;
        CHECK(ats_model_forward(m, &in, &opt, &r, &err) == ATS_OK);
        static const char *const what[3] = {"att", "hidden", "logits"};
        float *got[3] = {r.attention, r.hidden, r.logits};
        for (int a = 0; a < 3; a++) {
            snprintf(path, sizeof path, FIX "%s/expected/ids2_%s.npy", M[k].name, what[a]);
            ats_npy want;
            CHECK(ats_npy_read(path, &want, &err) == ATS_OK);
            double scale = 1.0; /* hidden states and logits grow: relative to their largest */
            for (size_t i = 0; a > 0 && i < want.count; i++)
                scale = fmax(scale, fabs(((const float *)want.data)[i]));
            double dmax = got[a] ? max_diff(got[a], want.data, want.count) : INFINITY;
            if (!(dmax <= 1e-5 * scale))
                fprintf(stderr, "%s: %s differs by %.3g\n", M[k].name, what[a], dmax);
            CHECK(dmax <= 1e-5 * scale);
            ats_npy_free(&want);
        }
        CHECK(r.loss_count == 15);
        CHECK_NEAR(r.loss, M[k].loss, 1e-5 * M[k].loss);
        ats_model_input two[2] = {{ids + 3, NULL, NULL, 5}, in};
        ats_forward_result rb[2], r0;
        CHECK(ats_model_forward_batch(m, 2, two, &opt, rb, &err) == ATS_OK);
        CHECK(ats_model_forward(m, &two[0], &opt, &r0, &err) == ATS_OK);
        CHECK(same_result(&rb[0], &r0) && same_result(&rb[1], &r));
        ats_forward_result_free(&r0);
        ats_forward_result_free(&rb[0]);
        ats_forward_result_free(&rb[1]);
        ats_forward_result_free(&r);
        ats_model_free(m);
    }
}

/* The kernel paths against each other on every architecture's fixture: the attention and
 * hidden states of each supported path within the contract's tolerance (1e-5; hidden states
 * relative to their largest magnitude, which reaches 30 in the decoders' residual streams) of
 * the portable path, and the FMA paths (avx2, avx512, neon) bit for bit the same. */
static void test_paths_agree(void) {
    static const char *const MODELS[] = {
        "bert",    "gpt2",  "roberta",      "distilbert", "llama",       "llama_scaled",
        "mistral", "qwen2", "llama_linear", "gpt_neox",   "gpt_neox_seq"};
    int32_t ids[13] = {2, 41, 7, 19, 30, 5, 11, 23, 8, 17, 29, 4, 3};
    ats_kernel_path before = ats_kernel_path_get();
    for (size_t mi_ = 0; mi_ < sizeof MODELS / sizeof MODELS[0]; mi_++) {
        char dir[128];
        snprintf(dir, sizeof dir, FIX "%s", MODELS[mi_]);
        ats_model *m = NULL;
        ats_error err;
        CHECK(ats_model_load(dir, &m, &err) == ATS_OK);
        if (!m) continue;
        ats_model_input in = {ids, NULL, NULL, 13};
        ats_forward_options opt;
        ats_forward_options_init(&opt);
        opt.capture |= ATS_CAPTURE_HIDDEN;
        ats_forward_result ref, r, fma = {0};
        CHECK(ats_kernel_path_set(ATS_KERNEL_GENERIC, &err) == ATS_OK);
        CHECK(ats_model_forward(m, &in, &opt, &ref, &err) == ATS_OK);
        size_t na = ref.n_layers * ref.n_heads * 13 * 13,
               nh = (ref.n_layers + 1) * 13 * ref.d_model;
        for (int p = 1; p < ATS_KERNEL_PATH_COUNT; p++) {
            if (!ats_kernel_path_supported((ats_kernel_path)p)) continue;
            CHECK(ats_kernel_path_set((ats_kernel_path)p, &err) == ATS_OK);
            CHECK(ats_model_forward(m, &in, &opt, &r, &err) == ATS_OK);
            double da = max_diff(ref.attention, r.attention, na);
            double dh = max_diff(ref.hidden, r.hidden, nh), scale = 1.0;
            for (size_t i = 0; i < nh; i++) scale = fmax(scale, fabs(ref.hidden[i]));
            fprintf(stderr,
                    "test_model: %s: %s vs generic: attention %.2g, hidden %.2g (largest %.3g)\n",
                    MODELS[mi_], ats_kernel_path_name((ats_kernel_path)p), da, dh, scale);
            CHECK(da <= 1e-5);
            CHECK(dh <= 1e-5 * scale);
            if (!fma.attention)
                fma = r; /* the first FMA path: every other one must equal it */
            else {
                CHECK(same_result(&fma, &r));
                ats_forward_result_free(&r);
            }
        }
        ats_forward_result_free(&fma);
        ats_forward_result_free(&ref);
        ats_model_free(m);
    }
    ats_error err;
    CHECK(ats_kernel_path_set(before, &err) == ATS_OK);
    /* an unsupported path is refused with the supported ones named */
    for (int p = 0; p < ATS_KERNEL_PATH_COUNT; p++)
        if (!ats_kernel_path_supported((ats_kernel_path)p)) {
            CHECK(ats_kernel_path_set((ats_kernel_path)p, &err) == ATS_ERR_INVALID);
            CHECK(strstr(err.message, "generic") != NULL);
            CHECK(ats_kernel_path_get() == before);
        }
}

int main(void) {
    /* the forward tests on every kernel path this CPU runs, and on both matrix-product routes
     * of each: the packed kernels, and OpenBLAS on the original weights (a model whose packed
     * copy finds no memory) */
    for (int p = 0; p < ATS_KERNEL_PATH_COUNT; p++) {
        ats_error err;
        if (!ats_kernel_path_supported((ats_kernel_path)p)) continue;
        CHECK(ats_kernel_path_set((ats_kernel_path)p, &err) == ATS_OK);
        fprintf(stderr, "test_model: kernel path %s\n", ats_kernel_path_name((ats_kernel_path)p));
        for (int fallback = 0; fallback < 2; fallback++) {
            k_gemm_force_fallback(fallback);
            test_bert_ids1();
            test_roberta_limit_and_vit();
            test_concurrent();
            test_stop_early();
            test_gpt2_batch();
            test_decoders();
            test_on_layer();
        }
        k_gemm_force_fallback(0);
    }
    test_paths_agree();
    test_safetensors();
    test_load_errors();
    test_adapters();
    return check_report("test_model");
}
