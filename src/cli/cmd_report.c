/* attnscope report: one self-contained HTML page with a whole analysis of two texts — every
 * head compared, the most different head's token topology, its attention and divergences.
 * The page embeds its figures as data URIs (SVG), so it works offline and can be mailed. */
#include "analysis.h"
#include "cli.h"
#include "attnscope/core.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char REPORT_USAGE[] =
    "usage: attnscope report --model M --text A --text B --out DIR [--layer L --head H]\n"
    "                        [--title T] [--truncate]\n"
    "\n"
    "Runs compare over every head, then topo, attend, divergence and graph on the chosen head\n"
    "(default: the head whose H1 diagrams differ most between the texts, by bottleneck\n"
    "distance) and writes DIR/index.html: one page that works offline, with every figure and\n"
    "table. The intermediate results (JSON, NPY, SVG) stay in DIR's subfolders.\n";

/* Runs a subcommand in-process with its output folder; stdout (the file list) is kept. */
static int run_sub(int (*cmd)(int, char **), const char *const *args) {
    char *argv[64];
    int argc = 0;
    while (args[argc] && argc < 63) {
        argv[argc] = (char *)args[argc];
        argc++;
    }
    argv[argc] = NULL;
    return cmd(argc, argv);
}

static void html_escape(FILE *fp, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '<':
            fputs("&lt;", fp);
            break;
        case '>':
            fputs("&gt;", fp);
            break;
        case '&':
            fputs("&amp;", fp);
            break;
        case '"':
            fputs("&quot;", fp);
            break;
        default:
            fputc(*s, fp);
        }
    }
}

/* <img> with the file inlined as a base64 data URI; a note if the file is missing. */
static void embed_figure(FILE *fp, const char *path, const char *alt) {
    char *buf;
    size_t len;
    if (ats_file_read_all(path, (size_t)1 << 28, &buf, &len, NULL)) {
        fprintf(fp, "<p class=\"missing\">(figure %s not produced)</p>\n", alt);
        return;
    }
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fputs("<figure><img alt=\"", fp);
    html_escape(fp, alt);
    fputs("\" src=\"data:image/svg+xml;base64,", fp);
    const unsigned char *u = (const unsigned char *)buf;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v = (unsigned)u[i] << 16;
        if (i + 1 < len) v |= (unsigned)u[i + 1] << 8;
        if (i + 2 < len) v |= u[i + 2];
        fputc(b64[(v >> 18) & 63], fp);
        fputc(b64[(v >> 12) & 63], fp);
        fputc(i + 1 < len ? b64[(v >> 6) & 63] : '=', fp);
        fputc(i + 2 < len ? b64[v & 63] : '=', fp);
    }
    fputs("\"></figure>\n", fp);
    free(buf);
}

static cJSON *read_json(const char *path) {
    char *buf;
    size_t len;
    if (ats_file_read_all(path, (size_t)1 << 28, &buf, &len, NULL)) return NULL;
    cJSON *doc = cJSON_Parse(buf);
    free(buf);
    return doc;
}

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Index of the largest finite value of [L][H] H1 bottleneck distances. */
static int pick_head(const char *compare_dir, long *layer, long *head, ats_error *err) {
    char *path = join(compare_dir, "bottleneck.npy");
    ats_npy arr;
    ats_status st = path ? ats_npy_read(path, &arr, err) : ATS_ERR_NOMEM;
    free(path);
    if (st) return 0;
    int ok = 0;
    if (arr.ndim == 3 && arr.dtype == ATS_F64 && arr.shape[0] >= 2) {
        size_t L = arr.shape[1], H = arr.shape[2];
        const double *h1 = (const double *)arr.data + L * H;
        double best = -1;
        for (size_t i = 0; i < L * H; i++)
            if (isfinite(h1[i]) && h1[i] > best) {
                best = h1[i];
                *layer = (long)(i / H);
                *head = (long)(i % H);
                ok = 1;
            }
    }
    ats_npy_free(&arr);
    if (!ok) ats_error_set(err, ATS_ERR_INVALID, "report: no finite H1 bottleneck distance");
    return ok;
}

static void cycles_table(FILE *fp, const cJSON *result) {
    const cJSON *pairs = NULL,
                *dims = cJSON_GetObjectItem(cJSON_GetObjectItem(result, "diagrams"), "dims");
    const cJSON *e;
    cJSON_ArrayForEach(e, dims) {
        if (cJSON_GetObjectItem(e, "dim")->valueint == 1) pairs = cJSON_GetObjectItem(e, "pairs");
    }
    const cJSON *toks = cJSON_GetObjectItem(result, "cycle_tokens");
    fputs("<table><tr><th>H1 birth</th><th>death</th><th>persistence</th><th>tokens on the "
          "cycle</th></tr>\n",
          fp);
    int i = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, pairs) {
        double b = cJSON_GetArrayItem(p, 0)->valuedouble;
        const cJSON *dj = cJSON_GetArrayItem(p, 1);
        const cJSON *t = cJSON_GetArrayItem(toks, i++);
        fprintf(fp, "<tr><td>%.4f</td>", b);
        if (cJSON_IsNumber(dj))
            fprintf(fp, "<td>%.4f</td><td>%.4f</td>", dj->valuedouble, dj->valuedouble - b);
        else
            fputs("<td>∞</td><td>∞</td>", fp);
        fputs("<td>", fp);
        const cJSON *tok;
        int first = 1;
        cJSON_ArrayForEach(tok, t) {
            if (!first) fputs(" · ", fp);
            html_escape(fp, tok->valuestring ? tok->valuestring : "");
            first = 0;
        }
        fputs("</td></tr>\n", fp);
    }
    if (i == 0) fputs("<tr><td colspan=\"4\">no H1 class</td></tr>\n", fp);
    fputs("</table>\n", fp);
}

static void clusters_table(FILE *fp, const cJSON *result) {
    fputs("<table><tr><th>scale</th><th>H0 clusters (single linkage)</th></tr>\n", fp);
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(result, "clusters")) {
        fprintf(fp, "<tr><td>%.4f</td><td>", cJSON_GetObjectItem(c, "scale")->valuedouble);
        const cJSON *g;
        int first = 1;
        cJSON_ArrayForEach(g, cJSON_GetObjectItem(c, "groups")) {
            fputs(first ? "{" : " {", fp);
            first = 0;
            const cJSON *tok;
            int f2 = 1;
            cJSON_ArrayForEach(tok, g) {
                if (!f2) fputs(", ", fp);
                html_escape(fp, tok->valuestring ? tok->valuestring : "");
                f2 = 0;
            }
            fputs("}", fp);
        }
        fputs("</td></tr>\n", fp);
    }
    fputs("</table>\n", fp);
}

int ats_cmd_report(int argc, char **argv) {
    const char *model = NULL, *texts[2] = {NULL, NULL}, *out = NULL, *title = NULL;
    long layer = -1, head = -1;
    int n_texts = 0, truncate = 0;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--help")) {
            fputs(REPORT_USAGE, stdout);
            return ATS_EXIT_OK;
        } else if (!strcmp(s, "--truncate")) {
            truncate = 1;
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
            title = argv[++i];
        } else if (!strcmp(s, "--layer") || !strcmp(s, "--head")) {
            long x;
            if (!ats_cli_parse_long(v, 0, 1 << 16, &x))
                return ats_cli_usage_error("report", "%s needs an integer >= 0", s);
            *(!strcmp(s, "--layer") ? &layer : &head) = x;
            i++;
        } else {
            return ats_cli_usage_error("report", "unknown option '%s' (see --help)", s);
        }
    }
    if (!model || n_texts != 2 || !out)
        return ats_cli_usage_error("report", "needs --model, two --text and --out (see --help)");
    if ((layer >= 0) != (head >= 0))
        return ats_cli_usage_error("report", "give both --layer and --head, or neither");
    {
        ats_error derr;
        if (ats_dir_create(out, &derr)) return ats_cli_fail(&derr);
    }
    char *dir_cmp = join(out, "compare"), *dir_topo = join(out, "topo"),
         *dir_att = join(out, "attend"), *dir_div = join(out, "divergence"),
         *dir_graph = join(out, "graph"), *cmp_json = join(out, "compare.json");
    const char *trunc = truncate ? "--truncate" : NULL;
    ats_error err;
    ats_error_clear(&err);
    int rc = ATS_EXIT_OK;
    {
        const char *args[] = {"compare", "--model",     model,   "--text", texts[0],   "--text",
                              texts[1],  "--all-heads", "--out", dir_cmp,  "--format", "svg",
                              "--json",  cmp_json,      trunc,   NULL};
        rc = run_sub(ats_cmd_compare, args);
    }
    if (!rc && layer < 0 && !pick_head(dir_cmp, &layer, &head, &err)) rc = ats_cli_fail(&err);
    char ls[32], hs[32];
    snprintf(ls, sizeof ls, "%ld", layer);
    snprintf(hs, sizeof hs, "%ld", head);
    /* the chosen head through topo, attend, divergence and graph; then every head's maps */
    static const struct {
        int (*cmd)(int, char **);
        const char *name;
        int dir; /* index into dirs */
    } steps[] = {{ats_cmd_topo, "topo", 0},
                 {ats_cmd_attend, "attend", 1},
                 {ats_cmd_divergence, "divergence", 2},
                 {ats_cmd_graph, "graph", 3}};
    const char *dirs[4] = {dir_topo, dir_att, dir_div, dir_graph};
    for (size_t k = 0; k < sizeof steps / sizeof steps[0] && !rc; k++) {
        const char *args[] = {steps[k].name,      "--model",  model, "--text", texts[0], "--text",
                              texts[1],           "--layer",  ls,    "--head", hs,       "--out",
                              dirs[steps[k].dir], "--format", "svg", trunc,    NULL};
        rc = run_sub(steps[k].cmd, args);
    }
    if (!rc) {
        const char *args[] = {"attend", "--model", model,   "--text", texts[0],
                              "--text", texts[1],  "--out", dir_att,  "--format",
                              "svg",    trunc,     NULL};
        rc = run_sub(ats_cmd_attend, args);
    }
    cJSON *cmp = NULL, *res[2] = {NULL, NULL};
    if (!rc) {
        cmp = read_json(cmp_json);
        char *r1 = join(dir_topo, "result.json"), *r2 = join(dir_topo, "result_2.json");
        res[0] = read_json(r1);
        res[1] = read_json(r2);
        free(r1);
        free(r2);
        if (!cmp || !res[0] || !res[1]) {
            ats_error_set(&err, ATS_ERR_IO, "%s: intermediate results missing", out);
            rc = ats_cli_fail(&err);
        }
    }
    if (!rc) {
        char *index = join(out, "index.html");
        ats_outfile of;
        if (ats_outfile_open(&of, index, &err)) {
            rc = ats_cli_fail(&err);
        } else {
            FILE *fp = of.fp;
            fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>", fp);
            html_escape(fp, title ? title : "attnscope report");
            fputs(
                "</title>\n<style>\nbody{font-family:'DejaVu Sans',sans-serif;max-width:1200px;"
                "margin:2em auto;padding:0 1em;color:#222}\nh1{font-size:1.6em}h2{border-bottom:"
                "1px solid #ccc;padding-bottom:.2em;margin-top:2em}\nfigure{display:inline-block;"
                "margin:.5em;vertical-align:top}figure img{max-width:100%;height:auto;border:1px "
                "solid #eee}\ntable{border-collapse:collapse;margin:1em 0}td,th{border:1px solid "
                "#ccc;padding:.3em .6em;text-align:left}th{background:#f4f4f4}\n.texts "
                "td{font-size:"
                "1.05em}.missing{color:#a00}.grid{display:flex;flex-wrap:wrap}\n.grid figure{flex:"
                "1 1 45%}\n</style></head><body>\n<h1>",
                fp);
            html_escape(fp, title ? title : "attnscope report");
            fputs("</h1>\n<table class=\"texts\"><tr><th>model</th><td>", fp);
            html_escape(fp, model);
            for (int t = 0; t < 2; t++) {
                fprintf(fp, "</td></tr><tr><th>text %c</th><td>", 'A' + t);
                html_escape(fp, texts[t]);
            }
            fprintf(fp,
                    "</td></tr><tr><th>head</th><td>layer %ld, head %ld (0-based)</td></tr>"
                    "</table>\n",
                    layer, head);
            fputs("<p>Each token is a probability distribution over the tokens it attends to; the "
                  "Jensen–Shannon distance (base 2) between those distributions makes the tokens a "
                  "metric space, whose Vietoris–Rips persistent homology is compared between the "
                  "two texts by bottleneck and Wasserstein distance.</p>\n",
                  fp);
            /* comparison */
            fputs("<h2>The two texts, head by head</h2>\n<table><tr><th></th><th>H0</th><th>H1"
                  "</th></tr>\n",
                  fp);
            const char *measures[2] = {"bottleneck", "wasserstein"};
            for (int m = 0; m < 2; m++) {
                const cJSON *o = cJSON_GetObjectItem(cmp, measures[m]);
                fprintf(fp, "<tr><th>%s at layer %ld head %ld</th>", measures[m], layer, head);
                for (int d = 0; d < 2; d++) {
                    char key[8];
                    snprintf(key, sizeof key, "%d", d);
                    const cJSON *row = cJSON_GetArrayItem(cJSON_GetObjectItem(o, key), (int)layer);
                    const cJSON *v = cJSON_GetArrayItem(row, (int)head);
                    if (cJSON_IsNumber(v))
                        fprintf(fp, "<td>%.6f</td>", v->valuedouble);
                    else
                        fputs("<td>∞</td>", fp);
                }
                fputs("</tr>\n", fp);
            }
            fputs("</table>\n<div class=\"grid\">\n", fp);
            const char *cmp_figs[4] = {"bottleneck_H0.svg", "bottleneck_H1.svg",
                                       "wasserstein_H0.svg", "wasserstein_H1.svg"};
            for (int k = 0; k < 4; k++) {
                char *p = join(dir_cmp, cmp_figs[k]);
                embed_figure(fp, p, cmp_figs[k]);
                free(p);
            }
            fputs("</div>\n", fp);
            for (int t = 0; t < 2; t++) {
                const char *suffix = t ? "_2" : "";
                fprintf(fp, "<h2>Text %c: token topology of layer %ld head %ld</h2>\n<p>", 'A' + t,
                        layer, head);
                html_escape(fp, texts[t]);
                fputs("</p>\n<div class=\"grid\">\n", fp);
                const char *kinds[3] = {"diagram", "barcode", "skeleton"};
                for (int k = 0; k < 3; k++) {
                    char name[64];
                    snprintf(name, sizeof name, "%s%s.svg", kinds[k], suffix);
                    char *p = join(dir_topo, name);
                    embed_figure(fp, p, name);
                    free(p);
                }
                fputs("</div>\n", fp);
                cycles_table(fp, res[t]);
                clusters_table(fp, res[t]);
                fprintf(fp, "<h2>Text %c: attention and divergences</h2>\n<div class=\"grid\">\n",
                        'A' + t);
                char name[96], *p;
                snprintf(name, sizeof name, "heatmap_%d_L%ld_H%ld.svg", t + 1, layer, head);
                p = join(dir_att, name);
                embed_figure(fp, p, name);
                free(p);
                snprintf(name, sizeof name, "graph_%d_L%ld_H%ld.svg", t + 1, layer, head);
                p = join(dir_graph, name);
                embed_figure(fp, p, name);
                free(p);
                snprintf(name, sizeof name, "js_%d_L%ld_H%ld.svg", t + 1, layer, head);
                p = join(dir_div, name);
                embed_figure(fp, p, name);
                free(p);
                snprintf(name, sizeof name, "entropy_%d_L%ld_H%ld.svg", t + 1, layer, head);
                p = join(dir_div, name);
                embed_figure(fp, p, name);
                free(p);
                fputs("</div>\n", fp);
            }
            fputs("<h2>Every head</h2>\n<div class=\"grid\">\n", fp);
            for (int t = 0; t < 2; t++) {
                char name[32];
                snprintf(name, sizeof name, "heads_%d.svg", t + 1);
                char *p = join(dir_att, name);
                embed_figure(fp, p, name);
                free(p);
            }
            fputs("</div>\n<p style=\"color:#777\">Made by attnscope. Layers and heads are "
                  "0-based, as in transformers' outputs.attentions.</p>\n</body></html>\n",
                  fp);
            if (ats_outfile_commit(&of, &err))
                rc = ats_cli_fail(&err);
            else
                printf("%s\n", index);
        }
        free(index);
    }
    cJSON_Delete(cmp);
    cJSON_Delete(res[0]);
    cJSON_Delete(res[1]);
    free(dir_cmp);
    free(dir_topo);
    free(dir_att);
    free(dir_div);
    free(dir_graph);
    free(cmp_json);
    return rc;
}
