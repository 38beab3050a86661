/* attnscope equivariance: self-attention without positional encodings is permutation
 * equivariant, Attn(PX) = P·Attn(X)·Pᵀ; position embeddings (and a causal mask) break it.
 *
 * The model runs on a text and on a permutation of its tokens, once as it is and once without
 * its position embeddings (ats_forward_options.no_positions), and the command reports, layer by
 * layer, max |Attn(PX) − P·Attn(X)·Pᵀ|. */
#include "analysis.h"
#include "cli.h"
#include "attnscope/model.h"
#include "attnscope/render.h"
#include "attnscope/tokenizer.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: attnscope equivariance --model M --text T --out DIR [--seed S] [--format png|svg|pdf]\n"
    "                              [--title T]\n"
    "\n"
    "Runs the model on the tokens of T and on a random permutation P of them (seed S), with\n"
    "its position embeddings and without them, and reports for every layer\n"
    "max |Attn(PX) - P Attn(X) P^T| over heads and tokens (equivariance.json, a chart).\n"
    "Without positions a bidirectional encoder is equivariant up to float rounding; a causal\n"
    "model is not, because its mask is itself positional. With --adapter DIR (a PEFT LoRA\n"
    "adapter merged at load) the same argument runs on the fine-tuned model.\n";

/* max over heads and token pairs of |B[p(i)][p(j)] − A[i][j]| per layer, where B ran on the
 * permuted sequence (B's token k is A's token perm[k]; so A[i][j] ↔ B[inv[i]][inv[j]]). */
static void deviation(const ats_forward_result *a, const ats_forward_result *b, const size_t *inv,
                      double *out) {
    size_t L = a->n_layers, H = a->n_heads, n = a->n_tokens;
    for (size_t l = 0; l < L; l++) {
        double m = 0;
        for (size_t h = 0; h < H; h++) {
            const float *A = a->attention + (l * H + h) * n * n;
            const float *B = b->attention + (l * H + h) * n * n;
            for (size_t i = 0; i < n; i++)
                for (size_t j = 0; j < n; j++)
                    m = fmax(m, fabs((double)B[inv[i] * n + inv[j]] - (double)A[i * n + j]));
        }
        out[l] = m;
    }
}

/* dev[l] ← the deviation of layer l between the text and its permutation */
static ats_status run_pair(ats_model *m, const int32_t *ids, const int32_t *pids, size_t n,
                           const size_t *inv, int positions, double *dev, ats_error *err) {
    ats_forward_options fo;
    ats_forward_options_init(&fo);
    fo.no_positions = !positions;
    ats_forward_result ra, rb;
    memset(&ra, 0, sizeof ra);
    memset(&rb, 0, sizeof rb);
    ats_model_input in = {ids, NULL, NULL, n}, pin = {pids, NULL, NULL, n};
    ats_status st = ats_model_forward(m, &in, &fo, &ra, err);
    if (!st) st = ats_model_forward(m, &pin, &fo, &rb, err);
    if (!st) deviation(&ra, &rb, inv, dev);
    ats_forward_result_free(&ra);
    ats_forward_result_free(&rb);
    return st;
}

int ats_cmd_equivariance(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *out = NULL, *fmt = "png", *title = NULL;
    long seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--help")) {
            fputs(USAGE, stdout);
            return ATS_EXIT_OK;
        }
        if (!v) return ats_cli_usage_error("equivariance", "%s needs a value (see --help)", s);
        if (!strcmp(s, "--model"))
            model = v;
        else if (!strcmp(s, "--text"))
            text = v;
        else if (!strcmp(s, "--out"))
            out = v;
        else if (!strcmp(s, "--format"))
            fmt = v;
        else if (!strcmp(s, "--title"))
            title = v;
        else if (!strcmp(s, "--seed")) {
            if (!ats_cli_parse_long(v, 0, 1L << 30, &seed))
                return ats_cli_usage_error("equivariance", "--seed needs an integer >= 0");
        } else
            return ats_cli_usage_error("equivariance", "unknown option '%s' (see --help)", s);
        i++;
    }
    if (!model || !text || !out)
        return ats_cli_usage_error("equivariance", "needs --model, --text and --out");
    if (strcmp(fmt, "png") && strcmp(fmt, "svg") && strcmp(fmt, "pdf"))
        return ats_cli_usage_error("equivariance", "--format is png, svg or pdf");
    {
        ats_error derr;
        if (ats_dir_create(out, &derr)) return ats_cli_fail(&derr);
    }
    ats_error err;
    ats_error_clear(&err);
    ats_model *m;
    if (ats_model_load_adapted(model, ats_cli_adapter(), &m, &err)) return ats_cli_fail(&err);
    const ats_model_info *info = ats_model_info_get(m);
    int causal = info->causal;
    size_t L = (size_t)info->n_layers;
    if (info->arch == ATS_ARCH_VIT) {
        ats_model_free(m);
        return ats_cli_usage_error("equivariance", "%s: a vision model has no text", model);
    }
    ats_tokenizer *tok;
    if (ats_tokenizer_load(info->dir, &tok, &err)) {
        ats_model_free(m);
        return ats_cli_fail(&err);
    }
    ats_encoding enc;
    ats_status st = ats_tokenizer_encode(tok, text, strlen(text), 1, &enc, &err);
    ats_tokenizer_free(tok);
    if (st) {
        ats_model_free(m);
        return ats_cli_fail(&err);
    }
    size_t n = enc.count;
    int32_t *pids = malloc(n * sizeof *pids);
    size_t *perm = malloc(n * sizeof *perm), *inv = malloc(n * sizeof *inv);
    double *dev_pos = calloc(L ? L : 1, sizeof(double)),
           *dev_nopos = calloc(L ? L : 1, sizeof(double));
    if (!pids || !perm || !inv || !dev_pos || !dev_nopos)
        st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
    if (!st && n < 2) st = ats_error_set(&err, ATS_ERR_INVALID, "the text has fewer than 2 tokens");
    if (!st) {
        /* Fisher–Yates with a 64-bit LCG: the same seed gives the same permutation */
        uint64_t state = (uint64_t)seed * 2862933555777941757ull + 3037000493ull;
        for (size_t i = 0; i < n; i++) perm[i] = i;
        for (size_t i = n - 1; i > 0; i--) {
            state = state * 6364136223846793005ull + 1442695040888963407ull;
            size_t j = (size_t)((state >> 33) % (i + 1));
            size_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (size_t k = 0; k < n; k++) {
            pids[k] = enc.ids[perm[k]];
            inv[perm[k]] = k;
        }
    }
    if (!st) st = run_pair(m, enc.ids, pids, n, inv, 1, dev_pos, &err);
    if (!st) st = run_pair(m, enc.ids, pids, n, inv, 0, dev_nopos, &err);
    if (!st) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "model_type", info->model_type);
        if (ats_cli_adapter()) cJSON_AddStringToObject(doc, "adapter", ats_cli_adapter());
        cJSON_AddBoolToObject(doc, "causal", causal);
        cJSON_AddNumberToObject(doc, "tokens", (double)n);
        cJSON *pj = cJSON_AddArrayToObject(doc, "permutation");
        for (size_t k = 0; k < n; k++)
            cJSON_AddItemToArray(pj, cJSON_CreateNumber((double)perm[k]));
        cJSON *a = cJSON_AddArrayToObject(doc, "max_deviation_with_positions");
        cJSON *b = cJSON_AddArrayToObject(doc, "max_deviation_without_positions");
        for (size_t l = 0; l < L; l++) {
            cJSON_AddItemToArray(a, analysis_json_number(dev_pos[l], 0));
            cJSON_AddItemToArray(b, analysis_json_number(dev_nopos[l], 0));
        }
        char path[4200];
        snprintf(path, sizeof path, "%s/equivariance.json", out);
        st = analysis_json_write(path, doc, &err);
        cJSON_Delete(doc);
        double *x = malloc((L ? L : 1) * sizeof *x);
        for (size_t l = 0; x && l < L; l++) x[l] = (double)l;
        ats_series series[2] = {{"with position embeddings", L, x, dev_pos},
                                {"without position embeddings", L, x, dev_nopos}};
        ats_lines_options lo;
        ats_lines_options_init(&lo);
        char tbuf[512];
        lo.fig.title =
            ats_cli_title(tbuf, sizeof tbuf, title, "max |Attn(PX) - P Attn(X) P^T| by layer");
        lo.x_title = "layer";
        lo.y_title = "largest deviation";
        lo.fig.width = 720;
        snprintf(path, sizeof path, "%s/equivariance.%s", out, fmt);
        if (!st)
            st = x ? ats_render_lines(path, 2, series, &lo, &err)
                   : ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
        if (!st) printf("%s\n", path);
        free(x);
        fprintf(stderr, "%s%s, %zu tokens: largest deviation with positions %.3g, without %.3g\n",
                info->model_type, causal ? " (causal)" : "", n, L ? dev_pos[L - 1] : 0.0,
                L ? dev_nopos[L - 1] : 0.0);
    }
    ats_encoding_free(&enc);
    free(pids);
    free(perm);
    free(inv);
    free(dev_pos);
    free(dev_nopos);
    ats_model_free(m); /* info lives as long as the model */
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}
