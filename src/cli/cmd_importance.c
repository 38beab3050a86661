/* attnscope importance: head importance from gradients (Michel et al. 2019) over a corpus; the
 * work is the library's (ats_head_importance, analysis.h). */
#include "analysis.h"
#include "cli.h"
#include "progress.h"
#include "attnscope/analysis.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

static const char USAGE[] =
    "usage: attnscope importance --model M --corpus FILE --json OUT [--normalize]\n"
    "                            [--max-lines N] [--max-tokens N] [--threads N] [--progress]\n"
    "\n"
    "Head importance I_h = mean over the corpus's texts of |dL/dxi_h| (Michel et al. 2019): L is\n"
    "the mean next-token cross-entropy of a text, xi_h a gate multiplying head h's output (at\n"
    "1), from one forward and one backward pass a text. Causal LMs: GPT-2, Llama, Mistral, Qwen2.\n"
    "Writes {\"texts\": T, \"loss\": mean L, \"importance\": [[I_0_0, ...], ...]} ([L][H]).\n"
    "\n"
    "  --corpus FILE     one text a line, or JSONL with a \"text\" field (.jsonl/.ndjson or a\n"
    "                    first line starting with '{')\n"
    "  --normalize       divide each layer's importances by their L2 norm (Michel et al.)\n"
    "  --max-lines N     read at most N lines (default: all)\n"
    "  --max-tokens N    cut longer texts to N tokens (default: the model's maximum)\n"
    "  --threads N       texts run at once (default: all cores)\n"
    "  --progress        the progress line on stderr even when it is not a terminal\n";

int ats_cmd_importance(int argc, char **argv) {
    const char *model = NULL, *corpus = NULL, *json = NULL;
    ats_importance_options o;
    ats_importance_options_init(&o);
    int progress = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x;
        if (!strcmp(s, "--help")) {
            fputs(USAGE, stdout);
            return ATS_EXIT_OK;
        }
        if (!strcmp(s, "--normalize") || !strcmp(s, "--progress")) {
            *(!strcmp(s, "--progress") ? &progress : &o.normalize) = 1;
            continue;
        }
        if (!v) return ats_cli_usage_error("importance", "%s needs a value (see --help)", s);
        if (!strcmp(s, "--model"))
            model = v;
        else if (!strcmp(s, "--corpus"))
            corpus = v;
        else if (!strcmp(s, "--json"))
            json = v;
        else if (!strcmp(s, "--max-lines") || !strcmp(s, "--max-tokens") ||
                 !strcmp(s, "--threads")) {
            if (!ats_cli_parse_long(v, 1, 1L << 30, &x))
                return ats_cli_usage_error("importance", "%s needs an integer >= 1, not '%s'", s,
                                           v);
            if (!strcmp(s, "--max-lines"))
                o.max_lines = (size_t)x;
            else if (!strcmp(s, "--max-tokens"))
                o.max_tokens = (size_t)x;
            else
                o.n_threads = (int)x;
        } else
            return ats_cli_usage_error("importance", "unknown option '%s' (see --help)", s);
        i++;
    }
    if (!model || !corpus || !json)
        return ats_cli_usage_error("importance", "needs --model, --corpus and --json");
    ats_error err;
    ats_error_clear(&err);
    ats_session *s;
    if (ats_session_open_adapted(model, ats_cli_adapter(), &s, &err)) return ats_cli_fail(&err);
    ats_corpus_source src;
    ats_corpus_source_init(&src);
    src.path = corpus;
    cli_progress pg;
    cli_progress_attach(&pg, "importance", progress, &o.progress, &o.progress_ctx);
    ats_importance_result res;
    ats_status st = ats_head_importance(s, &src, &o, &res, &err);
    cli_progress_finish(&pg);
    ats_session_close(s);
    if (st) return ats_cli_fail(&err);
    cJSON *doc = cJSON_CreateObject(), *rows = cJSON_CreateArray();
    cJSON_AddItemToObject(doc, "texts", analysis_json_number((double)res.texts, 0));
    cJSON_AddItemToObject(doc, "loss", analysis_json_number(res.loss, 0));
    cJSON_AddItemToObject(doc, "importance", rows);
    for (size_t l = 0; l < res.L; l++) {
        cJSON *row = cJSON_CreateArray();
        for (size_t h = 0; h < res.H; h++)
            cJSON_AddItemToArray(row, analysis_json_number(res.importance[l * res.H + h], 0));
        cJSON_AddItemToArray(rows, row);
    }
    cJSON_AddItemToObject(doc, "normalized", cJSON_CreateBool(o.normalize));
    cJSON_AddItemToObject(doc, "skipped", analysis_json_number((double)res.skipped, 0));
    cJSON_AddItemToObject(doc, "truncated", analysis_json_number((double)res.truncated, 0));
    st = analysis_json_write(json, doc, &err);
    cJSON_Delete(doc);
    ats_importance_result_free(&res);
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}
