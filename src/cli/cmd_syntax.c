/* attnscope syntax: which heads attend from a dependent word to its syntactic head (Clark et al.
 * 2019, section 4), against the gold trees of a CoNLL-U file. The measuring is
 * ats_syntax_run (analysis.h); this command parses its options, prints the per-relation table
 * and writes the JSON and the figures. */
#include "analysis.h"
#include "cli.h"
#include "progress.h"
#include "attnscope/analysis.h"
#include "attnscope/render.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: attnscope syntax --model M --conllu FILE --json OUT [--max-sentences N]\n"
    "                        [--out DIR] [--format png|svg|pdf] [--top K] [--name NAME]\n"
    "                        [--threads N] [--progress]\n"
    "\n"
    "For every dependency relation of the gold trees in FILE (CoNLL-U) and every head: how often\n"
    "the dependent's most-attended word is its gold head (word-level attention as Clark et al.\n"
    "2019: to a word the sum over its tokens, from a word the mean), the best head, and the best\n"
    "fixed-offset baseline. Prints the table and writes OUT:\n"
    "  {\"sentences\": S, \"skipped\": K, \"relations\": {\"nsubj\": {\"count\": c, "
    "\"best_head\":\n"
    "   [l, h], \"accuracy\": a, \"baseline_offset\": k, \"baseline_accuracy\": b, ...}, ...}}\n"
    "(S sentences analysed, K skipped as longer than the model's maximum; per relation also\n"
    "\"head_correct\" [L][H], arcs each head gets right).\n"
    "  --max-sentences N  the first N sentences of FILE (skipped ones included)\n"
    "  --out DIR          figures: syntax_heads (heads x relations, accuracy) and\n"
    "                     syntax_baseline (best head vs baseline per relation)\n"
    "  --name NAME        the model's name in the figures' titles (default: its folder's);\n"
    "                     --title T is the same\n"
    "  --top K            relations in the figures, the most frequent first (default 20)\n"
    "  --threads N        sentences run at once (default: all cores)\n"
    "  --progress         the progress line on stderr even when it is not a terminal\n";

static cJSON *result_json(const ats_syntax_result *r) {
    cJSON *doc = cJSON_CreateObject();
    cJSON_AddNumberToObject(doc, "sentences", (double)r->sentences);
    cJSON_AddNumberToObject(doc, "skipped", (double)r->skipped);
    cJSON_AddNumberToObject(doc, "arcs", (double)r->arcs);
    cJSON_AddNumberToObject(doc, "unmapped_arcs", (double)r->unmapped);
    cJSON_AddNumberToObject(doc, "layers", (double)r->L);
    cJSON_AddNumberToObject(doc, "heads", (double)r->H);
    cJSON *rels = cJSON_AddObjectToObject(doc, "relations");
    for (size_t q = 0; q < r->R; q++) {
        cJSON *o = cJSON_AddObjectToObject(rels, r->names[q]);
        cJSON_AddNumberToObject(o, "count", (double)r->count[q]);
        cJSON *bh = cJSON_AddArrayToObject(o, "best_head");
        cJSON_AddItemToArray(bh, cJSON_CreateNumber((double)(r->best_head[q] / r->H)));
        cJSON_AddItemToArray(bh, cJSON_CreateNumber((double)(r->best_head[q] % r->H)));
        cJSON_AddItemToObject(o, "accuracy", analysis_json_number(r->accuracy[q], 0));
        cJSON_AddNumberToObject(o, "baseline_offset", (double)r->baseline_offset[q]);
        cJSON_AddItemToObject(o, "baseline_accuracy",
                              analysis_json_number(r->baseline_accuracy[q], 0));
        cJSON *hc = cJSON_AddArrayToObject(o, "head_correct");
        for (size_t l = 0; l < r->L; l++) {
            cJSON *row = cJSON_CreateArray();
            for (size_t h = 0; h < r->H; h++)
                cJSON_AddItemToArray(
                    row, cJSON_CreateNumber((double)r->correct[(q * r->L + l) * r->H + h]));
            cJSON_AddItemToArray(hc, row);
        }
    }
    return doc;
}

static void print_table(const ats_syntax_result *r) {
    printf("%zu sentences (%zu skipped as too long), %zu arcs (%zu without tokens)\n", r->sentences,
           r->skipped, r->arcs, r->unmapped);
    printf("%-12s %7s  %-9s %8s  %8s %8s\n", "relation", "count", "best head", "accuracy", "offset",
           "baseline");
    for (size_t q = 0; q < r->R; q++) {
        char head[48];
        snprintf(head, sizeof head, "%zu-%zu", r->best_head[q] / r->H, r->best_head[q] % r->H);
        printf("%-12s %7zu  %-9s %8.3f  %+8ld %8.3f\n", r->names[q], r->count[q], head,
               r->accuracy[q], r->baseline_offset[q], r->baseline_accuracy[q]);
    }
}

/* The heatmap (relations × heads) and the bars of the first k relations. */
static ats_status write_figures(const ats_syntax_result *r, size_t k, const char *dir,
                                const char *fmt, const char *model, ats_error *err) {
    size_t N = r->L * r->H;
    if (k > r->R) k = r->R;
    if (k == 0) return ATS_OK;
    ats_status st = ats_dir_create(dir, err);
    if (st) return st;
    double *acc = malloc(k * N * sizeof *acc), *bars = malloc(2 * k * sizeof *bars);
    char **col = calloc(N, sizeof *col), **row = calloc(k, sizeof *row),
         **bar_row = calloc(k, sizeof *bar_row);
    size_t plen = strlen(dir) + 32;
    char *path = malloc(plen);
    if (!acc || !bars || !col || !row || !bar_row || !path)
        st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    for (size_t a = 0; !st && a < N; a++) {
        char lab[48];
        snprintf(lab, sizeof lab, "%zu-%zu", a / r->H, a % r->H);
        if (!(col[a] = strdup(lab))) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    for (size_t q = 0; !st && q < k; q++) {
        char lab[160];
        snprintf(lab, sizeof lab, "%s (%zu)", r->names[q], r->count[q]);
        if (!(row[q] = strdup(lab))) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        snprintf(lab, sizeof lab, "%s (%zu): %zu-%zu / %+ld", r->names[q], r->count[q],
                 r->best_head[q] / r->H, r->best_head[q] % r->H, r->baseline_offset[q]);
        if (!(bar_row[q] = strdup(lab))) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        for (size_t a = 0; a < N; a++)
            acc[q * N + a] = (double)r->correct[q * N + a] / (double)r->count[q];
        bars[q] = r->accuracy[q];
        bars[k + q] = r->baseline_accuracy[q];
    }
    char title[512];
    if (!st) {
        ats_heatmap_options ho;
        ats_heatmap_options_init(&ho);
        snprintf(title, sizeof title, "%s: dependent \u2192 head accuracy per attention head",
                 model);
        ho.fig.title = title;
        ho.row_labels = (const char *const *)row;
        ho.col_labels = (const char *const *)col;
        ho.row_title = "relation (arcs)";
        ho.col_title = "head (layer-head)";
        ho.value_title = "accuracy";
        ho.vmin = 0;
        ho.vmax = 1;
        snprintf(path, plen, "%s/syntax_heads.%s", dir, fmt);
        st = ats_render_heatmap(path, k, N, acc, &ho, err);
        if (!st) printf("%s\n", path);
    }
    if (!st) {
        ats_bars_options bo;
        ats_bars_options_init(&bo);
        static const char *const names[2] = {"best head (layer-head)", "best fixed offset (k)"};
        snprintf(title, sizeof title, "%s: best head vs fixed-offset baseline", model);
        bo.fig.title = title;
        bo.series_names = names;
        bo.value_title = "accuracy (dependent \u2192 gold head)";
        bo.v_min = 0;
        bo.v_max = 1;
        bo.show_values = 1;
        snprintf(path, plen, "%s/syntax_baseline.%s", dir, fmt);
        st = ats_render_bars(path, k, 2, bars, (const char *const *)bar_row, &bo, err);
        if (!st) printf("%s\n", path);
    }
    for (size_t a = 0; col && a < N; a++) free(col[a]);
    for (size_t q = 0; row && bar_row && q < k; q++) {
        free(row[q]);
        free(bar_row[q]);
    }
    free(col);
    free(row);
    free(bar_row);
    free(acc);
    free(bars);
    free(path);
    return st;
}

int ats_cmd_syntax(int argc, char **argv) {
    const char *model = NULL, *conllu = NULL, *json = NULL, *out = NULL, *fmt = "png";
    const char *title = NULL;
    long max_sentences = 0, threads = 0, top = 20;
    int progress = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--help")) {
            fputs(USAGE, stdout);
            return ATS_EXIT_OK;
        }
        if (!strcmp(s, "--progress")) {
            progress = 1;
            continue;
        }
        if (!v) return ats_cli_usage_error("syntax", "%s needs a value (see --help)", s);
        if (!strcmp(s, "--model"))
            model = v;
        else if (!strcmp(s, "--conllu"))
            conllu = v;
        else if (!strcmp(s, "--json"))
            json = v;
        else if (!strcmp(s, "--out"))
            out = v;
        else if (!strcmp(s, "--format"))
            fmt = v;
        else if (!strcmp(s, "--name") || !strcmp(s, "--title"))
            title = v;
        else if (!strcmp(s, "--max-sentences")) {
            if (!ats_cli_parse_long(v, 1, 1L << 40, &max_sentences))
                return ats_cli_usage_error("syntax", "--max-sentences needs an integer >= 1");
        } else if (!strcmp(s, "--threads")) {
            if (!ats_cli_parse_long(v, 0, 4096, &threads))
                return ats_cli_usage_error("syntax", "--threads needs an integer 0..4096");
        } else if (!strcmp(s, "--top")) {
            if (!ats_cli_parse_long(v, 1, 1000, &top))
                return ats_cli_usage_error("syntax", "--top needs an integer 1..1000");
        } else
            return ats_cli_usage_error("syntax", "unknown option '%s' (see --help)", s);
        i++;
    }
    if (!model || !conllu || !json)
        return ats_cli_usage_error("syntax", "needs --model, --conllu and --json");
    if (strcmp(fmt, "png") && strcmp(fmt, "svg") && strcmp(fmt, "pdf"))
        return ats_cli_usage_error("syntax", "--format is png, svg or pdf");
    ats_error err;
    ats_error_clear(&err);
    ats_session *s;
    if (ats_session_open_adapted(model, ats_cli_adapter(), &s, &err)) return ats_cli_fail(&err);
    ats_syntax_options o;
    ats_syntax_options_init(&o);
    o.max_sentences = (size_t)max_sentences;
    o.n_threads = (int)threads;
    cli_progress pg;
    cli_progress_attach(&pg, "syntax", progress, &o.progress, &o.progress_ctx);
    ats_syntax_result r;
    ats_status st = ats_syntax_run(s, conllu, &o, &r, &err);
    cli_progress_finish(&pg);
    if (!st) {
        print_table(&r);
        const char *name = title;
        if (!name) { /* the model folder's name, or the hub name */
            const char *slash = strrchr(model, '/');
            name = slash && slash[1] ? slash + 1 : model;
        }
        if (out) st = write_figures(&r, (size_t)top, out, fmt, name, &err);
    }
    if (!st) {
        cJSON *doc = result_json(&r);
        st = doc ? analysis_json_write(json, doc, &err)
                 : ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
        cJSON_Delete(doc);
    }
    ats_syntax_result_free(&r);
    ats_session_close(s);
    return st ? ats_cli_fail(&err) : ATS_EXIT_OK;
}
