/* attnscope equivariance: self-attention without positional encodings is permutation
 * equivariant, Attn(PX) = P·Attn(X)·Pᵀ; position embeddings (and a causal mask) break it.
 *
 * The model runs on a text and on a permutation of its tokens, once as it is and once with its
 * position embeddings set to zero (a copy of the checkpoint in a temporary folder), and the
 * command reports, layer by layer, max |Attn(PX) − P·Attn(X)·Pᵀ|. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "analysis.h"
#include "cli.h"
#include "attnscope/model.h"
#include "attnscope/render.h"
#include "attnscope/tokenizer.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char USAGE[] =
    "usage: attnscope equivariance --model M --text T --out DIR [--seed S] [--format png|svg|pdf]\n"
    "\n"
    "Runs the model on the tokens of T and on a random permutation P of them (seed S), with\n"
    "its position embeddings and with them set to zero, and reports for every layer\n"
    "max |Attn(PX) - P Attn(X) P^T| over heads and tokens (equivariance.json, a chart).\n"
    "Without positions a bidirectional encoder is equivariant up to float rounding; a causal\n"
    "model is not, because its mask is itself positional.\n";

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

/* Copies a model folder to a temporary one (files linked, the checkpoint copied) with every
 * position-embedding tensor of model.safetensors zeroed. */
static ats_status strip_positions(const char *dir, char *tmp, size_t tmp_len, int *zeroed,
                                  ats_error *err) {
    *zeroed = 0;
    snprintf(tmp, tmp_len, "/tmp/attnscope-nopos-XXXXXX");
    if (!mkdtemp(tmp))
        return ats_error_set(err, ATS_ERR_IO, "cannot create a temporary folder: %s",
                             strerror(errno));
    DIR *d = opendir(dir);
    if (!d) return ats_error_set(err, ATS_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
    struct dirent *de;
    char src[4096], dst[4096];
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.' || !strcmp(de->d_name, "model.safetensors")) continue;
        if (snprintf(src, sizeof src, "%s/%s", dir, de->d_name) >= (int)sizeof src ||
            snprintf(dst, sizeof dst, "%s/%s", tmp, de->d_name) >= (int)sizeof dst) {
            closedir(d);
            return ats_error_set(err, ATS_ERR_RANGE, "%s: path too long", dir);
        }
        if (symlink(src, dst) != 0) {
            closedir(d);
            return ats_error_set(err, ATS_ERR_IO, "%s: cannot link: %s", dst, strerror(errno));
        }
    }
    closedir(d);
    if (snprintf(src, sizeof src, "%s/model.safetensors", dir) >= (int)sizeof src)
        return ats_error_set(err, ATS_ERR_RANGE, "%s: path too long", dir);
    char *buf;
    size_t len;
    ats_status st = ats_file_read_all(src, (size_t)1 << 34, &buf, &len, err);
    if (st) return st;
    uint64_t hlen = 0;
    for (int i = 0; i < 8 && len >= 8; i++) hlen |= (uint64_t)(unsigned char)buf[i] << (8 * i);
    if (len < 8 || hlen > len - 8) {
        free(buf);
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: not a safetensors file", src);
    }
    cJSON *hdr = cJSON_ParseWithLength(buf + 8, (size_t)hlen);
    if (!hdr) {
        free(buf);
        return ats_error_set(err, ATS_ERR_FORMAT, "%s: unreadable safetensors header", src);
    }
    size_t base = 8 + (size_t)hlen;
    const cJSON *t;
    cJSON_ArrayForEach(t, hdr) {
        if (!t->string || !(ends_with(t->string, "position_embeddings.weight") ||
                            ends_with(t->string, "wpe.weight")))
            continue;
        const cJSON *off = cJSON_GetObjectItem(t, "data_offsets");
        double a = cJSON_GetArrayItem(off, 0) ? cJSON_GetArrayItem(off, 0)->valuedouble : -1;
        double b = cJSON_GetArrayItem(off, 1) ? cJSON_GetArrayItem(off, 1)->valuedouble : -1;
        if (!(a >= 0 && b >= a && base + (size_t)b <= len)) {
            st = ats_error_set(err, ATS_ERR_FORMAT, "%s: tensor %s: bad data_offsets", src,
                               t->string);
            break;
        }
        memset(buf + base + (size_t)a, 0, (size_t)(b - a)); /* 0.0 in every float format */
        (*zeroed)++;
    }
    cJSON_Delete(hdr);
    if (!st) {
        if (snprintf(dst, sizeof dst, "%s/model.safetensors", tmp) >= (int)sizeof dst)
            st = ats_error_set(err, ATS_ERR_RANGE, "%s: path too long", tmp);
        ats_outfile of;
        if (!st) st = ats_outfile_open(&of, dst, err);
        if (!st) {
            fwrite(buf, 1, len, of.fp);
            st = ats_outfile_commit(&of, err);
        }
    }
    free(buf);
    return st;
}

static void remove_tree(const char *tmp) {
    DIR *d = opendir(tmp);
    struct dirent *de;
    char p[4096];
    while (d && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", tmp, de->d_name);
        unlink(p);
    }
    if (d) closedir(d);
    rmdir(tmp);
}

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

static ats_status run_pair(const char *dir, const int32_t *ids, const int32_t *pids, size_t n,
                           const size_t *inv, double *dev, ats_error *err) {
    ats_model *m;
    ats_status st = ats_model_load(dir, &m, err);
    if (st) return st;
    ats_forward_options fo;
    ats_forward_options_init(&fo);
    ats_forward_result ra, rb;
    memset(&ra, 0, sizeof ra);
    memset(&rb, 0, sizeof rb);
    ats_model_input in = {ids, NULL, NULL, n}, pin = {pids, NULL, NULL, n};
    st = ats_model_forward(m, &in, &fo, &ra, err);
    if (!st) st = ats_model_forward(m, &pin, &fo, &rb, err);
    if (!st) deviation(&ra, &rb, inv, dev);
    ats_forward_result_free(&ra);
    ats_forward_result_free(&rb);
    ats_model_free(m);
    return st;
}

int ats_cmd_equivariance(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *out = NULL, *fmt = "png";
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
    if (ats_model_load(model, &m, &err)) return ats_cli_fail(&err);
    const ats_model_info *info = ats_model_info_get(m);
    char dir[4096], model_type[64];
    /* absolute, so that links made from the temporary copy resolve */
    if (!realpath(info->dir, dir)) snprintf(dir, sizeof dir, "%s", info->dir);
    snprintf(model_type, sizeof model_type, "%s", info->model_type);
    int causal = info->causal, vit = info->arch == ATS_ARCH_VIT;
    size_t L = (size_t)info->n_layers;
    ats_model_free(m);
    if (vit) return ats_cli_usage_error("equivariance", "%s: a vision model has no text", model);
    ats_tokenizer *tok;
    if (ats_tokenizer_load(dir, &tok, &err)) return ats_cli_fail(&err);
    ats_encoding enc;
    ats_status st = ats_tokenizer_encode(tok, text, strlen(text), 1, &enc, &err);
    ats_tokenizer_free(tok);
    if (st) return ats_cli_fail(&err);
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
    char tmp[256] = "";
    int zeroed = 0;
    if (!st) st = run_pair(dir, enc.ids, pids, n, inv, dev_pos, &err);
    if (!st) st = strip_positions(dir, tmp, sizeof tmp, &zeroed, &err);
    if (!st && zeroed == 0)
        st = ats_error_set(&err, ATS_ERR_FORMAT, "%s: no position-embedding tensor found", dir);
    if (!st) st = run_pair(tmp, enc.ids, pids, n, inv, dev_nopos, &err);
    if (tmp[0]) remove_tree(tmp);
    if (!st) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "model_type", model_type);
        cJSON_AddBoolToObject(doc, "causal", causal);
        cJSON_AddNumberToObject(doc, "tokens", (double)n);
        cJSON *pj = cJSON_AddArrayToObject(doc, "permutation");
        for (size_t k = 0; k < n; k++)
            cJSON_AddItemToArray(pj, cJSON_CreateNumber((double)perm[k]));
        cJSON *a = cJSON_AddArrayToObject(doc, "max_deviation_with_positions");
        cJSON *b = cJSON_AddArrayToObject(doc, "max_deviation_without_positions");
        for (size_t l = 0; l < L; l++) {
            cJSON_AddItemToArray(a, cJSON_CreateNumber(dev_pos[l]));
            cJSON_AddItemToArray(b, cJSON_CreateNumber(dev_nopos[l]));
        }
        char path[4200];
        snprintf(path, sizeof path, "%s/equivariance.json", out);
        st = analysis_json_write(path, doc, &err);
        cJSON_Delete(doc);
        double *x = malloc((L ? L : 1) * sizeof *x);
        for (size_t l = 0; x && l < L; l++) x[l] = (double)l;
        ats_series series[2] = {{"with position embeddings", L, x, dev_pos},
                                {"position embeddings zeroed", L, x, dev_nopos}};
        ats_lines_options lo;
        ats_lines_options_init(&lo);
        lo.fig.title = "max |Attn(PX) - P Attn(X) P^T| by layer";
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
                model_type, causal ? " (causal)" : "", n, L ? dev_pos[L - 1] : 0.0,
                L ? dev_nopos[L - 1] : 0.0);
    }
    ats_encoding_free(&enc);
    free(pids);
    free(perm);
    free(inv);
    free(dev_pos);
    free(dev_nopos);
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}
