/* attnscope report: one self-contained HTML page with a whole analysis of two texts (the
 * library's ats_report_run): every head compared, the most different head's token topology,
 * its attention and divergences. */
#include "analysis.h"
#include "cli.h"
#include "progress.h"
#include "attnscope/core.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char REPORT_USAGE[] =
    "usage: attnscope report --model M --text A --text B --out DIR [--layer L --head H]\n"
    "                        [--title T] [--format svg|png] [--truncate] [--threads N]\n"
    "                        [--progress]\n"
    "\n"
    "Runs the model once on both texts, compares them over every head, and shows the chosen\n"
    "head's topology, attention, graph and divergences (default: the head whose H1 diagrams\n"
    "differ most between the texts, by bottleneck distance) in DIR/index.html: one page that\n"
    "works offline, with every figure and table inside it.\n"
    "  --format F   figures as svg (default) or png; an SVG figure over 512 KiB (the skeleton\n"
    "               of hundreds of tokens) is embedded as PNG, and its caption says so\n"
    "  --truncate   cut texts longer than the model's maximum (the page says how many tokens\n"
    "               each lost); without it such a text is an error\n"
    "  --title T    the page's title and a prefix of every figure's\n"
    "  --progress   the progress line on stderr even when it is not a terminal\n";

int ats_cmd_report(int argc, char **argv) {
    const char *model = NULL, *texts[2] = {NULL, NULL}, *out = NULL;
    ats_report_options o;
    ats_report_options_init(&o);
    int n_texts = 0, progress = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            fputs(REPORT_USAGE, stdout);
            return ATS_EXIT_OK;
        } else if (!strcmp(s, "--truncate")) {
            o.truncate = 1;
        } else if (!strcmp(s, "--progress")) {
            progress = 1;
        } else if (!v) {
            return ats_cli_usage_error("report", "%s needs a value (see --help)", s);
        } else if (!strcmp(s, "--model")) {
            model = argv[++i];
        } else if (!strcmp(s, "--text")) {
            if (n_texts == 2) return ats_cli_usage_error("report", "exactly two --text");
            texts[n_texts++] = argv[++i];
        } else if (!strcmp(s, "--out")) {
            out = argv[++i];
        } else if (!strcmp(s, "--title")) {
            o.title = argv[++i];
        } else if (!strcmp(s, "--format")) {
            i++;
            if (!strcmp(v, "svg"))
                o.format = ATS_FIGURE_SVG;
            else if (!strcmp(v, "png"))
                o.format = ATS_FIGURE_PNG;
            else
                return ats_cli_usage_error("report",
                                           "--format is svg or png (a page cannot "
                                           "show %s)",
                                           v);
        } else if (!strcmp(s, "--layer") || !strcmp(s, "--head") || !strcmp(s, "--threads")) {
            long x;
            if (!ats_cli_parse_long(v, 0, 1 << 16, &x))
                return ats_cli_usage_error("report", "%s needs an integer >= 0", s);
            if (!strcmp(s, "--threads"))
                o.n_threads = (int)x;
            else
                *(!strcmp(s, "--layer") ? &o.layer : &o.head) = x;
            i++;
        } else {
            return ats_cli_usage_error("report", "unknown option '%s' (see --help)", s);
        }
    }
    if (!model || n_texts != 2 || !out)
        return ats_cli_usage_error("report", "needs --model, two --text and --out (see --help)");
    if ((o.layer >= 0) != (o.head >= 0))
        return ats_cli_usage_error("report", "give both --layer and --head, or neither");
    analysis_args a;
    analysis_args_init(&a, "report");
    a.model = model;
    ats_error err;
    ats_error_clear(&err);
    ats_session *s = NULL;
    if (analysis_session_open(&a, &s, &err)) return ats_cli_fail(&err);
    o.model_name = model;
    cli_progress pg;
    cli_progress_attach(&pg, "report", progress, &o.progress, &o.progress_ctx);
    ats_report_result res;
    a.out_dir = out;
    char *index = analysis_path(&a, "index", "html", &err);
    ats_status st = index ? ats_report_run(s, texts, index, &o, &res, &err) : err.status;
    cli_progress_finish(&pg);
    ats_session_close(s);
    int rc = ATS_EXIT_OK;
    if (st) {
        rc = ats_cli_fail(&err);
    } else {
        for (int t = 0; t < 2; t++)
            if (res.cut[t])
                fprintf(stderr, "report: text %c cut to %zu tokens (%zu left out)\n", 'A' + t,
                        res.tokens[t], res.cut[t]);
        printf("%s\n", index);
    }
    free(index);
    return rc;
}
