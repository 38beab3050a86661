/* attnscope report: one self-contained HTML page with a whole analysis of two texts — every
 * head compared, the most different head's token topology, its attention and divergences.
 * The page embeds its figures as data URIs (SVG), so it works offline and can be mailed. */
#include "analysis.h"
#include "cli.h"
#include "attnscope/core.h"

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

static char *join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* The head with the largest finite H1 bottleneck distance ([n_dims][L][H], n_dims >= 2). */
static int pick_head(const ats_compare_result *r, long *layer, long *head, ats_error *err) {
    const double *h1 = r->bottleneck + r->L * r->H;
    double best = -1;
    int ok = 0;
    for (size_t i = 0; r->n_dims >= 2 && i < r->L * r->H; i++)
        if (isfinite(h1[i]) && h1[i] > best) {
            best = h1[i];
            *layer = (long)(i / r->H);
            *head = (long)(i % r->H);
            ok = 1;
        }
    if (!ok) ats_error_set(err, ATS_ERR_INVALID, "report: no finite H1 bottleneck distance");
    return ok;
}

static void cycles_table(FILE *fp, const ats_attention *s, const ats_topo_result *res) {
    fputs("<table><tr><th>H1 birth</th><th>death</th><th>persistence</th><th>tokens on the "
          "cycle</th></tr>\n",
          fp);
    const ats_diagram *d = &res->rips.dims[1];
    size_t count = res->rips.max_dim >= 1 ? d->count : 0;
    unsigned char *on = malloc(s->n ? s->n : 1);
    for (size_t i = 0; i < count; i++) {
        double b = d->pairs[2 * i], x = d->pairs[2 * i + 1];
        fprintf(fp, "<tr><td>%.4f</td>", b);
        if (isfinite(x))
            fprintf(fp, "<td>%.4f</td><td>%.4f</td>", x, x - b);
        else
            fputs("<td>∞</td><td>∞</td>", fp);
        fputs("<td>", fp);
        if (on && res->rips.cycles) analysis_cycle_vertices(&res->rips, i, s->n, on);
        int first = 1;
        for (size_t v = 0; on && res->rips.cycles && v < s->n; v++)
            if (on[v]) {
                if (!first) fputs(" · ", fp);
                html_escape(fp, s->labels[v]);
                first = 0;
            }
        fputs("</td></tr>\n", fp);
    }
    free(on);
    if (count == 0) fputs("<tr><td colspan=\"4\">no H1 class</td></tr>\n", fp);
    fputs("</table>\n", fp);
}

static void clusters_table(FILE *fp, const ats_attention *s, const ats_topo_result *res) {
    fputs("<table><tr><th>scale</th><th>H0 clusters (single linkage)</th></tr>\n", fp);
    for (size_t q = 0; q < res->n_scales; q++) {
        fprintf(fp, "<tr><td>%.4f</td><td>", res->scales[q]);
        const int32_t *labels = res->clusters + q * s->n;
        for (size_t g = 0; g < res->n_clusters[q]; g++) {
            fputs(g ? " {" : "{", fp);
            int first = 1;
            for (size_t v = 0; v < s->n; v++)
                if ((size_t)labels[v] == g) {
                    if (!first) fputs(", ", fp);
                    html_escape(fp, s->labels[v]);
                    first = 0;
                }
            fputs("}", fp);
        }
        fputs("</td></tr>\n", fp);
    }
    fputs("</table>\n", fp);
}

/* The model once: both texts' attention, then compare over every head, and topo, attend,
 * divergence and graph on the chosen head, each writing into its folder as the command would. */
static ats_status report_run(const char *model, const char *const texts[2], int truncate,
                             char *const dirs[5], const char *cmp_json, long *layer, long *head,
                             ats_compare_result *r, ats_topo_result tres[2], ats_error *err) {
    analysis_args a;
    analysis_args_init(&a, "report");
    a.model = model;
    a.texts[0] = texts[0];
    a.texts[1] = texts[1];
    a.n_texts = 2;
    a.format = "svg";
    a.truncate = truncate;
    ats_session *s;
    ats_status st = analysis_session_open(&a, &s, err);
    if (st) return st;
    ats_run_options ro;
    ats_run_options_init(&ro);
    ro.truncate = truncate;
    ats_attention in[2];
    st = ats_session_run(s, 2, texts, &ro, in, err);
    ats_session_close(s);
    if (st) return st;
    ats_compare_options co;
    ats_compare_options_init(&co);
    co.all_heads = 1;
    co.truncate = truncate;
    st = ats_compare_attention(&in[0], &in[1], &co, r, err);
    a.out_dir = dirs[0];
    if (!st) st = analysis_compare_write(&a, r, cmp_json, 1, co.q, err);
    if (!st && *layer < 0 && !pick_head(r, layer, head, err)) st = err->status;
    if (st) return st;
    const ats_attention *src = r->inputs;
    a.layer = *layer;
    a.head = *head;
    for (int t = 0; t < 2; t++)
        if ((size_t)*layer >= src[t].L || (size_t)*head >= src[t].H)
            return ats_error_set(err, ATS_ERR_INVALID,
                                 "%s: layer %ld, head %ld is outside its %zu x %zu heads",
                                 src[t].name, *layer, *head, src[t].L, src[t].H);
    ats_topo_options to;
    ats_topo_options_init(&to);
    to.layer = *layer;
    to.head = *head;
    for (int t = 0; t < 2 && !st; t++) st = ats_topo(&src[t], &to, &tres[t], err);
    a.out_dir = dirs[1];
    for (int t = 0; t < 2 && !st; t++)
        st = analysis_topo_write(&a, &src[t], &tres[t], (size_t)t, to.max_dim, 0, err);
    a.out_dir = dirs[2];
    if (!st) st = analysis_attend_write(&a, src, 2, err);
    a.out_dir = dirs[3];
    if (!st) st = analysis_divergence_write(&a, src, 2, 1e-9, 0, 0, err);
    a.out_dir = dirs[4];
    if (!st) st = analysis_graph_write(&a, src, 2, 0.05, 0, 0, err);
    /* then every head's maps */
    a.out_dir = dirs[2];
    a.layer = a.head = -1;
    if (!st) st = analysis_attend_write(&a, src, 2, err);
    return st;
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
    char *dirs[5] = {join(out, "compare"), join(out, "topo"), join(out, "attend"),
                     join(out, "divergence"), join(out, "graph")};
    char *cmp_json = join(out, "compare.json");
    char *dir_cmp = dirs[0], *dir_topo = dirs[1], *dir_att = dirs[2], *dir_div = dirs[3],
         *dir_graph = dirs[4];
    ats_error err;
    ats_error_clear(&err);
    int rc = ATS_EXIT_OK;
    ats_compare_result cmp;
    ats_topo_result res[2];
    memset(&cmp, 0, sizeof cmp);
    memset(res, 0, sizeof res);
    int ok = cmp_json != NULL;
    for (int k = 0; k < 5; k++) ok = ok && dirs[k];
    if (!ok) ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
    if (!ok || report_run(model, texts, truncate, dirs, cmp_json, &layer, &head, &cmp, res, &err))
        rc = ats_cli_fail(&err);
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
                const double *o = m ? cmp.wasserstein : cmp.bottleneck;
                fprintf(fp, "<tr><th>%s at layer %ld head %ld</th>", measures[m], layer, head);
                for (size_t d = 0; d < 2; d++) {
                    /* what compare.json holds: a number when finite, else null or "inf" */
                    double v = o[(d * cmp.L + (size_t)layer) * cmp.H + (size_t)head];
                    if (isfinite(v))
                        fprintf(fp, "<td>%.6f</td>", v);
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
                cycles_table(fp, &cmp.inputs[t], &res[t]);
                clusters_table(fp, &cmp.inputs[t], &res[t]);
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
    ats_compare_result_free(&cmp);
    ats_topo_result_free(&res[0]);
    ats_topo_result_free(&res[1]);
    for (int k = 0; k < 5; k++) free(dirs[k]);
    free(cmp_json);
    return rc;
}
