/* attnscope equivariance: self-attention without positional encodings is permutation
 * equivariant, Attn(PX) = P·Attn(X)·Pᵀ; position embeddings (and a causal mask) break it. The
 * command parses its options, calls ats_equivariance (analysis.h) and writes what it returns:
 * equivariance.json and the chart, drawn in memory, into --out, all or nothing. */
#include "analysis.h"
#include "cli.h"
#include "attnscope/analysis.h"

#include <cjson/cJSON.h>
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
    ats_equivariance_options o;
    ats_equivariance_options_init(&o);
    o.seed = seed;
    o.figures = 1;
    char title_buf[512];
    if (title)
        o.title = ats_cli_title(title_buf, sizeof title_buf, title,
                                "max |Attn(PX) - P Attn(X) P^T| by layer");
    o.format = !strcmp(fmt, "png")   ? ATS_FIGURE_PNG
               : !strcmp(fmt, "svg") ? ATS_FIGURE_SVG
                                     : ATS_FIGURE_PDF;
    ats_error err;
    ats_error_clear(&err);
    ats_outdir dir;
    ats_session *s = NULL;
    ats_equivariance_result res;
    memset(&res, 0, sizeof res);
    char name[64];
    ats_status st = ats_outdir_open(&dir, out, &err);
    if (!st) st = ats_session_open_adapted(model, ats_cli_adapter(), &s, &err);
    if (!st) st = ats_equivariance(s, text, &o, &res, &err);
    if (!st) {
        cJSON *doc = cJSON_CreateObject();
        cJSON_AddStringToObject(doc, "model_type",
                                ats_model_info_get(ats_session_model(s))->model_type);
        if (ats_cli_adapter()) cJSON_AddStringToObject(doc, "adapter", ats_cli_adapter());
        cJSON_AddBoolToObject(doc, "causal", res.causal);
        cJSON_AddNumberToObject(doc, "tokens", (double)res.n);
        cJSON *pj = cJSON_AddArrayToObject(doc, "permutation");
        for (size_t k = 0; k < res.n; k++)
            cJSON_AddItemToArray(pj, cJSON_CreateNumber((double)res.permutation[k]));
        cJSON *a = cJSON_AddArrayToObject(doc, "max_deviation_with_positions");
        cJSON *b = cJSON_AddArrayToObject(doc, "max_deviation_without_positions");
        for (size_t l = 0; l < res.L; l++) {
            cJSON_AddItemToArray(a, analysis_json_number(res.with_positions[l], 0));
            cJSON_AddItemToArray(b, analysis_json_number(res.without_positions[l], 0));
        }
        st = analysis_json_stage(dir.tmp, "equivariance.json", doc, &err);
        cJSON_Delete(doc);
    }
    snprintf(name, sizeof name, "equivariance.%s", fmt);
    if (!st) st = analysis_bytes_stage(dir.tmp, name, res.figure.data, res.figure.size, &err);
    if (!st) st = ats_outdir_commit(&dir, &err);
    ats_outdir_abort(&dir); /* after a commit: nothing left to remove */
    if (!st) {
        printf("%s/equivariance.json\n%s/%s\n", out, out, name);
        const ats_model_info *info = ats_model_info_get(ats_session_model(s));
        size_t L = res.L;
        fprintf(stderr, "%s%s, %zu tokens: largest deviation with positions %.3g, without %.3g\n",
                info->model_type, res.causal ? " (causal)" : "", res.n,
                L ? res.with_positions[L - 1] : 0.0, L ? res.without_positions[L - 1] : 0.0);
    }
    ats_equivariance_result_free(&res);
    ats_session_close(s);
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}
