/* The report's HTML: escaping, figures inlined as base64 data URIs, and the tables of a head's
 * H1 cycles and clusters (report.c strings them together). */
#include "report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void report_html_escape(FILE *fp, const char *s) {
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

void report_embed(FILE *fp, const ats_figure_memory *m, const char *alt) {
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    fputs("<figure><img alt=\"", fp);
    report_html_escape(fp, alt);
    fprintf(fp, "\" src=\"data:%s;base64,",
            m->format == ATS_FIGURE_PNG ? "image/png" : "image/svg+xml");
    const unsigned char *u = m->data;
    size_t len = m->size;
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
}

/* The distinct tokens of H1 cycle i, in token order, joined by " · ". */
static void cycle_tokens(FILE *fp, const ats_attention *s, const ats_rips_result *r, size_t i,
                         unsigned char *on) {
    const ats_representative *rep = &r->cycles[i];
    memset(on, 0, s->n);
    for (size_t q = 0; q < 2 * rep->count; q++) on[rep->vertices[q]] = 1;
    int first = 1;
    for (size_t v = 0; v < s->n; v++)
        if (on[v]) {
            if (!first) fputs(" · ", fp);
            report_html_escape(fp, s->labels[v]);
            first = 0;
        }
}

void report_cycles_table(FILE *fp, const ats_attention *s, const ats_topo_result *res) {
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
        if (on && res->rips.cycles) cycle_tokens(fp, s, &res->rips, i, on);
        fputs("</td></tr>\n", fp);
    }
    free(on);
    if (count == 0) fputs("<tr><td colspan=\"4\">no H1 class</td></tr>\n", fp);
    fputs("</table>\n", fp);
}

void report_clusters_table(FILE *fp, const ats_attention *s, const ats_topo_result *res) {
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
                    report_html_escape(fp, s->labels[v]);
                    first = 0;
                }
            fputs("}", fp);
        }
        fputs("</td></tr>\n", fp);
    }
    fputs("</table>\n", fp);
}

void report_page_head(FILE *fp, const char *title) {
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>", fp);
    report_html_escape(fp, title);
    fputs("</title>\n<style>\nbody{font-family:'DejaVu Sans',sans-serif;max-width:1200px;"
          "margin:2em auto;padding:0 1em;color:#222}\nh1{font-size:1.6em}h2{border-bottom:"
          "1px solid #ccc;padding-bottom:.2em;margin-top:2em}\nfigure{display:inline-block;"
          "margin:.5em;vertical-align:top}figure img{max-width:100%;height:auto;border:1px "
          "solid #eee}\ntable{border-collapse:collapse;margin:1em 0}td,th{border:1px solid "
          "#ccc;padding:.3em .6em;text-align:left}th{background:#f4f4f4}\n.texts "
          "td{font-size:1.05em}.notes{color:#8a5a00}.grid{display:flex;flex-wrap:wrap}\n"
          ".grid figure{flex:1 1 45%}\n</style></head><body>\n<h1>",
          fp);
    report_html_escape(fp, title);
    fputs("</h1>\n", fp);
}
