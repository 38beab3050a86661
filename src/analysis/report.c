/* The report (ats_report_run): two texts through the model once, compared head by head, the
 * chosen head's topology, and one offline HTML page with every figure drawn into memory and
 * inlined. A figure whose SVG would be too large (the skeleton of hundreds of tokens has tens
 * of thousands of edges and triangles) is drawn as PNG, and its caption says so. */
#include "analysis_internal.h"
#include "report.h"
#include "attnscope/measure.h"
#include "attnscope/render.h"
#include "attnscope/rips.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Figures with more edges (skeletons, graphs) or cells / 256 (every head's attention) than
 * this go straight to PNG: their SVG would be far over any sensible size, and drawing it only
 * to throw it away is slow. */
#define REPORT_SVG_ITEMS 4000

void ats_report_options_init(ats_report_options *o) {
    memset(o, 0, sizeof *o);
    o->layer = o->head = -1;
    o->format = ATS_FIGURE_SVG;
    o->svg_max_bytes = (size_t)512 << 10;
}

typedef enum fig_kind {
    FIG_COMPARE,  /* a heatmap of one distance over every head */
    FIG_DIAGRAM,  /* the head's persistence diagram */
    FIG_BARCODE,  /* its barcode */
    FIG_SKELETON, /* its Rips skeleton at the scales */
    FIG_ATTEND,   /* the head's attention */
    FIG_GRAPH,    /* the head's attention as a graph */
    FIG_JS,       /* Jensen–Shannon divergence between the tokens' rows */
    FIG_ENTROPY,  /* entropy of each token's row */
    FIG_GRID      /* every head's attention */
} fig_kind;

typedef struct report {
    const ats_report_options *o;
    const ats_compare_result *cmp;
    const ats_topo_result *topo; /* [2] */
    long layer, head;
    char **layer_names, **head_names;
    FILE *fp;
    progress_phase pg;
    size_t figures, png_fallback;
} report;

/* "0", "1", ... (one block of n·24 bytes, pointers into it) */
static char **names_new(size_t n) {
    char **p = calloc(n ? n : 1, sizeof *p), *block = calloc(n ? n : 1, 24);
    if (!p || !block) {
        free(p);
        free(block);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        p[i] = block + 24 * i;
        snprintf(p[i], 24, "%zu", i);
    }
    return p;
}

static void names_free(char **p) {
    if (p) free(p[0]);
    free(p);
}

/* The head (l, h) of s as doubles [n][n] (malloc'd). */
static double *head_values(const ats_attention *s, size_t l, size_t h) {
    size_t n = s->n;
    double *m = malloc((n ? n * n : 1) * sizeof *m);
    const float *a = s->att + (l * s->H + h) * n * n;
    for (size_t i = 0; m && i < n * n; i++) m[i] = a[i];
    return m;
}

static void title_of(const report *r, char *buf, size_t n, const char *what, const ats_attention *s,
                     int with_head) {
    const char *t = r->o->title;
    if (with_head)
        snprintf(buf, n, "%s%s%s — %s, layer %ld head %ld", t ? t : "", t ? ": " : "", what,
                 s->name, r->layer, r->head);
    else
        snprintf(buf, n, "%s%s%s — %s", t ? t : "", t ? ": " : "", what, s->name);
}

/* Draws figure `kind` (of input t; compare: distance `which`, dimension `dim`) with fig. */
static ats_status draw(const report *r, fig_kind kind, size_t t, int which, size_t dim,
                       const char *name, const ats_figure_options *fig, ats_error *err) {
    const ats_attention *s = &r->cmp->inputs[t];
    const ats_topo_result *tr = &r->topo[t];
    size_t n = s->n, l = (size_t)r->layer, h = (size_t)r->head;
    char title[640];
    static const int dims[4] = {0, 1, 2, 3};
    ats_heatmap_options ho;
    ats_heatmap_options_init(&ho);
    ho.fig = *fig;
    ho.fig.title = title;
    ats_graph_options go;
    ats_graph_options_init(&go);
    go.fig = ho.fig;
    go.labels = (const char *const *)s->labels;
    ats_figure_options fo = ho.fig;
    ats_attn v = ats_attention_head(s, l, h);
    ats_measure_opts mo;
    ats_measure_opts_init(&mo);
    mo.normalize = 1;
    mo.n_threads = r->o->n_threads;
    double *m = NULL;
    ats_status st = ATS_OK;
    switch (kind) {
    case FIG_COMPARE: {
        const char *t0 = r->o->title;
        snprintf(title, sizeof title, "%s%s%s distance of H%zu diagrams, %s vs %s", t0 ? t0 : "",
                 t0 ? ": " : "", which ? "Wasserstein" : "bottleneck", dim, r->cmp->inputs[0].name,
                 r->cmp->inputs[1].name);
        size_t L = r->cmp->L, H = r->cmp->H;
        ho.row_title = "layer";
        ho.col_title = "head";
        ho.row_labels = (const char *const *)r->layer_names;
        ho.col_labels = (const char *const *)r->head_names;
        ho.value_title = which ? "W" : "d_B";
        return ats_render_heatmap(
            name, L, H, (which ? r->cmp->wasserstein : r->cmp->bottleneck) + dim * L * H, &ho, err);
    }
    case FIG_DIAGRAM:
    case FIG_BARCODE: {
        title_of(r, title, sizeof title, kind == FIG_DIAGRAM ? "persistence diagram" : "barcode", s,
                 1);
        size_t count = (size_t)tr->rips.max_dim + 1;
        return kind == FIG_DIAGRAM ? ats_render_diagram(name, count, tr->rips.dims, dims, &fo, err)
                                   : ats_render_barcode(name, count, tr->rips.dims, dims, &fo, err);
    }
    case FIG_SKELETON:
        title_of(r, title, sizeof title, "Rips 1-skeleton", s, 1);
        return ats_render_skeleton_grid(name, n, tr->lower, tr->n_scales, tr->scales, &go, err);
    case FIG_GRAPH: {
        m = head_values(s, l, h);
        if (!m) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        /* causal attention is drawn symmetrised, (A + Aᵀ)/2, as `attnscope graph` does */
        int causal = 1;
        for (size_t i = 0; i < n && causal; i++)
            for (size_t j = i + 1; j < n && causal; j++) causal = m[i * n + j] == 0;
        title_of(r, title, sizeof title, "attention graph", s, 1);
        st = ats_render_attention_graph(name, n, m, 0.05, causal, &go, err);
        break;
    }
    case FIG_ATTEND:
    case FIG_JS:
    case FIG_ENTROPY:
        m = malloc((kind == FIG_ENTROPY ? n : n * n) * sizeof *m);
        if (!m) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        ho.row_labels = kind == FIG_ENTROPY ? NULL : (const char *const *)s->labels;
        ho.col_labels = (const char *const *)s->labels;
        if (kind == FIG_ATTEND) {
            free(m);
            m = head_values(s, l, h);
            if (!m) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
            title_of(r, title, sizeof title, "attention", s, 1);
            ho.row_title = "query";
            ho.col_title = "key";
            ho.value_title = "attention";
        } else if (kind == FIG_JS) {
            title_of(r, title, sizeof title, "Jensen–Shannon divergence", s, 1);
            ho.row_title = "token i";
            ho.col_title = "token j";
            ho.value_title = "bits";
            st = ats_divergence_compute(&v, ATS_DIV_JS, &mo, m, err);
        } else {
            title_of(r, title, sizeof title, "entropy of each token's attention", s, 1);
            ho.value_title = "bits";
            st = ats_entropy_compute(&v, &mo, m, err);
        }
        if (!st) st = ats_render_heatmap(name, kind == FIG_ENTROPY ? 1 : n, n, m, &ho, err);
        break;
    case FIG_GRID: {
        size_t total = s->L * s->H * n * n;
        m = malloc((total ? total : 1) * sizeof *m);
        if (!m) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < total; i++) m[i] = s->att[i];
        title_of(r, title, sizeof title, "attention of every head", s, 0);
        ho.value_title = "attention";
        st = ats_render_heatmap_grid(name, s->L, s->H, n, n, m, NULL, &ho, err);
        break;
    }
    }
    free(m);
    return st;
}

/* Edges of the skeleton at its largest scale. */
static size_t skeleton_edges(const ats_topo_result *tr) {
    size_t count = 0, m = tr->n * (tr->n - 1) / 2;
    double top = tr->n_scales ? tr->scales[tr->n_scales - 1] : 0;
    for (size_t i = 0; tr->n >= 2 && i < m; i++) count += tr->lower[i] <= top;
    return count;
}

/* Edges of the attention graph (weight >= 0.05, as drawn). */
static size_t graph_edges(const ats_attention *s, size_t l, size_t h) {
    size_t n = s->n, count = 0;
    const float *a = s->att + (l * s->H + h) * n * n;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) count += i != j && a[i * n + j] >= 0.05f;
    return count;
}

/* What makes a figure too detailed for SVG before drawing it (0: nothing known): the edges of
 * a skeleton or graph, the cells of every head's attention. */
static size_t svg_items(const report *r, fig_kind kind, size_t t) {
    const ats_attention *s = &r->cmp->inputs[t];
    if (kind == FIG_SKELETON) return skeleton_edges(&r->topo[t]);
    if (kind == FIG_GRAPH) return graph_edges(s, (size_t)r->layer, (size_t)r->head);
    if (kind == FIG_GRID) return s->L * s->H * s->n * s->n / 256;
    return 0;
}

/* Draws one figure into memory and inlines it in the page: in the report's format, or as PNG
 * when its SVG would be too large (over svg_max_bytes, or predictably so) and the PNG is
 * smaller, with a caption that says so. A PNG over 3/4 of the limit is drawn again at the
 * resolution that fits it (its bytes grow about as its pixels), down to half a pixel a point. */
static ats_status figure(report *r, fig_kind kind, size_t t, int which, size_t dim,
                         const char *name, ats_error *err) {
    const ats_report_options *o = r->o;
    size_t cap = o->svg_max_bytes, items = svg_items(r, kind, t);
    ats_figure_memory mem = {(ats_figure_format)o->format, NULL, 0},
                      svg = {ATS_FIGURE_SVG, NULL, 0};
    int predicted = o->format == ATS_FIGURE_SVG && cap && items > REPORT_SVG_ITEMS;
    if (predicted) mem.format = ATS_FIGURE_PNG;
    ats_figure_options fo;
    ats_figure_options_init(&fo);
    fo.memory = &mem;
    ats_status st = draw(r, kind, t, which, dim, name, &fo, err);
    if (!st && mem.format == ATS_FIGURE_SVG && cap && mem.size > cap) {
        svg = mem; /* kept in case the PNG is no smaller */
        mem = (ats_figure_memory){ATS_FIGURE_PNG, NULL, 0};
        st = draw(r, kind, t, which, dim, name, &fo, err);
    }
    size_t target = cap / 4 * 3;
    if (!st && mem.format == ATS_FIGURE_PNG && cap && mem.size > target) {
        fo.png_scale = fmax(0.5, fo.png_scale * 0.9 * sqrt((double)target / (double)mem.size));
        ats_figure_memory_free(&mem);
        st = draw(r, kind, t, which, dim, name, &fo, err);
    }
    if (!st && svg.data && svg.size <= mem.size) { /* the SVG after all */
        ats_figure_memory_free(&mem);
        mem = svg;
        svg = (ats_figure_memory){ATS_FIGURE_SVG, NULL, 0};
    }
    if (!st) {
        report_embed(r->fp, &mem, name);
        if (mem.format == ATS_FIGURE_PNG && o->format == ATS_FIGURE_SVG) {
            r->png_fallback++;
            if (svg.data)
                fprintf(r->fp,
                        "<p class=\"notes\">%s is embedded as PNG: as SVG it takes %.1f MB.</p>\n",
                        name, (double)svg.size / 1e6);
            else
                fprintf(r->fp,
                        "<p class=\"notes\">%s is embedded as PNG: with %zu %s it is too "
                        "detailed for SVG.</p>\n",
                        name, items, kind == FIG_GRID ? "× 256 cells" : "edges");
        }
        r->figures++;
        progress_add(&r->pg, 1);
    }
    ats_figure_memory_free(&mem);
    ats_figure_memory_free(&svg);
    return st;
}

/* The head with the largest finite H1 bottleneck distance ([n_dims][L][H], n_dims >= 2). */
static ats_status pick_head(const ats_compare_result *c, long *layer, long *head, ats_error *err) {
    const double *h1 = c->bottleneck + c->L * c->H;
    double best = -1;
    for (size_t i = 0; c->n_dims >= 2 && i < c->L * c->H; i++)
        if (isfinite(h1[i]) && h1[i] > best) {
            best = h1[i];
            *layer = (long)(i / c->H);
            *head = (long)(i % c->H);
        }
    return best >= 0 ? ATS_OK
                     : ats_error_set(err, ATS_ERR_INVALID,
                                     "report: no finite H1 bottleneck "
                                     "distance between the texts' heads");
}

/* The page: texts, notes, the comparison, each text's head in detail, every head. */
static ats_status write_page(report *r, const char *model, const char *const texts[2],
                             const size_t cut[2], size_t max_positions, ats_error *err) {
    FILE *fp = r->fp;
    const ats_compare_result *c = r->cmp;
    const char *title = r->o->title ? r->o->title : "attnscope report";
    report_page_head(fp, title);
    fputs("<table class=\"texts\"><tr><th>model</th><td>", fp);
    report_html_escape(fp, model);
    for (int t = 0; t < 2; t++) {
        fprintf(fp, "</td></tr><tr><th>text %c</th><td>", 'A' + t);
        report_html_escape(fp, texts[t]);
        fprintf(fp, " <i>(%zu tokens)</i>", c->inputs[t].n);
    }
    fprintf(fp, "</td></tr><tr><th>head</th><td>layer %ld, head %ld (0-based)</td></tr></table>\n",
            r->layer, r->head);
    for (int t = 0; t < 2; t++)
        if (cut[t])
            fprintf(fp,
                    "<p class=\"notes\">Text %c was cut to its first %zu tokens, the model's "
                    "maximum of %zu positions: its last %zu tokens are not analysed.</p>\n",
                    'A' + t, c->inputs[t].n, max_positions, cut[t]);
    fputs("<p>Each token is a probability distribution over the tokens it attends to; the "
          "Jensen–Shannon distance (base 2) between those distributions makes the tokens a "
          "metric space, whose Vietoris–Rips persistent homology is compared between the "
          "two texts by bottleneck and Wasserstein distance.</p>\n",
          fp);
    fputs("<h2>The two texts, head by head</h2>\n<table><tr><th></th><th>H0</th><th>H1"
          "</th></tr>\n",
          fp);
    for (int m = 0; m < 2; m++) {
        const double *v = m ? c->wasserstein : c->bottleneck;
        fprintf(fp, "<tr><th>%s at layer %ld head %ld</th>", m ? "wasserstein" : "bottleneck",
                r->layer, r->head);
        for (size_t d = 0; d < 2; d++) {
            double x = v[(d * c->L + (size_t)r->layer) * c->H + (size_t)r->head];
            if (isfinite(x))
                fprintf(fp, "<td>%.6f</td>", x);
            else
                fputs("<td>∞</td>", fp);
        }
        fputs("</tr>\n", fp);
    }
    fputs("</table>\n<div class=\"grid\">\n", fp);
    ats_status st = ATS_OK;
    const char *cmp_names[4] = {"bottleneck_H0", "bottleneck_H1", "wasserstein_H0",
                                "wasserstein_H1"};
    for (int k = 0; k < 4 && !st; k++)
        st = figure(r, FIG_COMPARE, 0, k / 2, (size_t)(k % 2), cmp_names[k], err);
    fputs("</div>\n", fp);
    for (size_t t = 0; t < 2 && !st; t++) {
        const char *suffix = t ? "_2" : "";
        char name[96];
        fprintf(fp, "<h2>Text %c: token topology of layer %ld head %ld</h2>\n<p>", 'A' + (int)t,
                r->layer, r->head);
        report_html_escape(fp, texts[t]);
        fputs("</p>\n<div class=\"grid\">\n", fp);
        const char *kinds[3] = {"diagram", "barcode", "skeleton"};
        for (int k = 0; k < 3 && !st; k++) {
            snprintf(name, sizeof name, "%s%s", kinds[k], suffix);
            st = figure(r, (fig_kind)(FIG_DIAGRAM + k), t, 0, 0, name, err);
        }
        fputs("</div>\n", fp);
        report_cycles_table(fp, &c->inputs[t], &r->topo[t]);
        report_clusters_table(fp, &c->inputs[t], &r->topo[t]);
        fprintf(fp, "<h2>Text %c: attention and divergences</h2>\n<div class=\"grid\">\n",
                'A' + (int)t);
        const fig_kind head_figs[4] = {FIG_ATTEND, FIG_GRAPH, FIG_JS, FIG_ENTROPY};
        const char *head_names[4] = {"heatmap", "graph", "js", "entropy"};
        for (int k = 0; k < 4 && !st; k++) {
            snprintf(name, sizeof name, "%s_%zu_L%ld_H%ld", head_names[k], t + 1, r->layer,
                     r->head);
            st = figure(r, head_figs[k], t, 0, 0, name, err);
        }
        fputs("</div>\n", fp);
    }
    fputs("<h2>Every head</h2>\n<div class=\"grid\">\n", fp);
    for (size_t t = 0; t < 2 && !st; t++) {
        char name[32];
        snprintf(name, sizeof name, "heads_%zu", t + 1);
        st = figure(r, FIG_GRID, t, 0, 0, name, err);
    }
    fputs("</div>\n<p style=\"color:#777\">Made by attnscope. Layers and heads are 0-based, as in "
          "transformers' outputs.attentions.</p>\n</body></html>\n",
          fp);
    return st;
}

/* Tokens of each text before the model's limit: the pass keeps at most max_positions. */
static ats_status count_cut(ats_session *s, const char *const texts[2], const ats_attention *in,
                            size_t cut[2], ats_error *err) {
    for (int t = 0; t < 2; t++) {
        ats_encoding enc;
        ats_status st = ats_tokenizer_encode(ats_session_tokenizer(s), texts[t], strlen(texts[t]),
                                             1, &enc, err);
        if (st) return st;
        cut[t] = enc.count > in[t].n ? enc.count - in[t].n : 0;
        ats_encoding_free(&enc);
    }
    return ATS_OK;
}

static ats_status report_core(ats_session *s, const char *const texts[2], const char *html_path,
                              const ats_report_options *o, ats_report_result *res, ats_error *err) {
    if (o->format != ATS_FIGURE_SVG && o->format != ATS_FIGURE_PNG)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "report: figures are SVG or PNG (a page cannot show PDF)");
    if ((o->layer >= 0) != (o->head >= 0))
        return ats_error_set(err, ATS_ERR_INVALID,
                             "report: give both the layer and the head, "
                             "or neither");
    const ats_model_info *mi = ats_model_info_get(ats_session_model(s));
    ats_run_options ro;
    ats_run_options_init(&ro);
    ro.truncate = o->truncate;
    ro.n_threads = o->n_threads;
    ats_attention in[2];
    progress_phase pg;
    progress_begin(&pg, o->progress, o->progress_ctx, "forward pass", "texts", 2);
    ats_status st = session_run(s, 2, texts, &ro, in, err);
    if (st) return st;
    progress_add(&pg, 2);
    size_t cut[2] = {0, 0};
    st = count_cut(s, texts, in, cut, err);
    if (st) {
        ats_attention_free(&in[0]);
        ats_attention_free(&in[1]);
        return st;
    }
    ats_compare_options co;
    ats_compare_options_init(&co);
    co.all_heads = 1;
    co.n_threads = o->n_threads;
    co.progress = o->progress;
    co.progress_ctx = o->progress_ctx;
    ats_compare_result cmp;
    st = ats_compare_attention(&in[0], &in[1], &co, &cmp, err);
    if (st) return st;
    report r = {o, &cmp, NULL, o->layer, o->head, NULL, NULL, NULL, {0}, 0, 0};
    ats_topo_result topo[2];
    memset(topo, 0, sizeof topo);
    r.topo = topo;
    if (r.layer < 0) st = pick_head(&cmp, &r.layer, &r.head, err);
    if (!st && ((size_t)r.layer >= cmp.L || (size_t)r.head >= cmp.H))
        st = ats_error_set(err, ATS_ERR_INVALID,
                           "report: layer %ld, head %ld is outside the "
                           "model's %zu x %zu heads",
                           r.layer, r.head, cmp.L, cmp.H);
    ats_topo_options to;
    ats_topo_options_init(&to);
    to.layer = r.layer;
    to.head = r.head;
    to.n_threads = o->n_threads;
    if (!st) progress_begin(&pg, o->progress, o->progress_ctx, "topology", "texts", 2);
    for (int t = 0; t < 2 && !st; t++) {
        st = ats_topo(&cmp.inputs[t], &to, &topo[t], err);
        if (!st) progress_add(&pg, 1);
    }
    r.layer_names = names_new(cmp.L);
    r.head_names = names_new(cmp.H);
    if (!st && (!r.layer_names || !r.head_names))
        st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    ats_outfile of = {0};
    if (!st) st = ats_outfile_open(&of, html_path, err);
    if (!st) {
        r.fp = of.fp;
        progress_begin(&r.pg, o->progress, o->progress_ctx, "figures", "figures", 4 + 2 * 7 + 2);
        st = write_page(&r, o->model_name ? o->model_name : mi->dir, texts, cut,
                        (size_t)mi->max_positions, err);
        long size = ftell(r.fp);
        if (!st) st = ats_outfile_commit(&of, err);
        if (!st && res)
            *res = (ats_report_result){
                r.layer,   r.head,         {cmp.inputs[0].n, cmp.inputs[1].n}, {cut[0], cut[1]},
                r.figures, r.png_fallback, size > 0 ? (size_t)size : 0};
    }
    ats_outfile_abort(&of);
    names_free(r.layer_names);
    names_free(r.head_names);
    ats_topo_result_free(&topo[0]);
    ats_topo_result_free(&topo[1]);
    ats_compare_result_free(&cmp);
    return st;
}

ats_status ats_report_run(ats_session *s, const char *const texts[2], const char *html_path,
                          const ats_report_options *o, ats_report_result *res, ats_error *err) {
    ats_error e = {0};
    ats_report_options def;
    if (!o) {
        ats_report_options_init(&def);
        o = &def;
    }
    if (res) memset(res, 0, sizeof *res);
    ats_status st = session_need_text(s, &e);
    if (!st && (!texts || !texts[0] || !texts[1] || !html_path))
        st = ats_error_set(&e, ATS_ERR_INVALID, "report: two texts and a page to write");
    if (!st) st = report_core(s, texts, html_path, o, res, &e);
    return st ? session_failed(s, st, &e, err) : ATS_OK;
}
