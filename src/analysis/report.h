/* The report's HTML pieces (report_page.c), used by report.c. */
#ifndef ATS_ANALYSIS_REPORT_H
#define ATS_ANALYSIS_REPORT_H

#include "attnscope/analysis.h"
#include "attnscope/render.h"

#include <stdio.h>

void report_html_escape(FILE *fp, const char *s);
/* <figure><img> with the figure inlined as a base64 data URI (PNG or SVG). */
void report_embed(FILE *fp, const ats_figure_memory *m, const char *alt);
/* <!DOCTYPE html> … <h1>title</h1> */
void report_page_head(FILE *fp, const char *title);
/* The head's H1 classes with the tokens on each cycle; its H0 clusters at each scale. */
void report_cycles_table(FILE *fp, const ats_attention *s, const ats_topo_result *res);
void report_clusters_table(FILE *fp, const ats_attention *s, const ats_topo_result *res);

#endif
