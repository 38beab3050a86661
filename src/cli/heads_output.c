/* The outputs of `attnscope heads` (moved out of cmd_heads.c unchanged): text and NPY files,
 * the analyses of the head matrix (persistence, dendrogram, MDS, clusters), head statistics and
 * the ablation's files and figures. */
#include "cli.h"
#include "heads.h"
#include "attnscope/analysis.h"
#include "attnscope/diagram.h"
#include "attnscope/measure.h"
#include "attnscope/model.h"
#include "attnscope/render.h"
#include "attnscope/rips.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- small output helpers */

char *heads_path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Writes text made by fn into dir/name atomically. */
ats_status heads_write_text(const char *dir, const char *name, writer_fn fn, const void *ctx,
                            ats_error *err) {
    char *path = heads_path_join(dir, name);
    if (!path) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    ats_outfile of;
    ats_status st = ats_outfile_open(&of, path, err);
    if (!st) {
        fn((FILE *)of.fp, ctx);
        st = ats_outfile_commit(&of, err);
    }
    free(path);
    return st;
}

ats_status heads_write_npy(const char *dir, const char *name, int ndim, const size_t *shape,
                           const double *data, ats_error *err) {
    char *path = heads_path_join(dir, name);
    if (!path) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    ats_status st = ats_npy_write(path, ATS_F64, ndim, shape, data, err);
    free(path);
    return st;
}

/* ---- analyses of D */

typedef struct names_ctx {
    size_t N;
    char **names;
    const int32_t *labels;
    size_t n_clusters;
    double scale;
    const double *merges;
    const double *xy;
} names_ctx;

/* --format and --title of the run (heads_figure_style): every figure's extension, and a prefix
 * of every figure's title. */
static const char *fig_ext = "png", *fig_title = NULL;

void heads_figure_style(const char *ext, const char *title) {
    fig_ext = ext ? ext : "png";
    fig_title = title;
}

static const char *titled(char *buf, size_t n, const char *what) {
    return ats_cli_title(buf, n, fig_title, what);
}

static void write_clusters(FILE *fp, const void *p) {
    const names_ctx *c = p;
    fprintf(fp, "# single-linkage clusters of heads at scale %.17g (mean distance per token)\n",
            c->scale);
    for (size_t k = 0; k < c->n_clusters; k++) {
        size_t m = 0;
        for (size_t i = 0; i < c->N; i++) m += (size_t)c->labels[i] == k;
        fprintf(fp, "cluster %zu (%zu head%s):", k, m, m == 1 ? "" : "s");
        for (size_t i = 0; i < c->N; i++)
            if ((size_t)c->labels[i] == k) fprintf(fp, " %s", c->names[i]);
        fputc('\n', fp);
    }
}

static void write_dendrogram(FILE *fp, const void *p) {
    const names_ctx *c = p;
    fprintf(fp, "cluster_a,cluster_b,height,size\n");
    for (size_t k = 0; k + 1 < c->N; k++)
        fprintf(fp, "%.0f,%.0f,%.17g,%.0f\n", c->merges[4 * k], c->merges[4 * k + 1],
                c->merges[4 * k + 2], c->merges[4 * k + 3]);
}

static void write_mds(FILE *fp, const void *p) {
    const names_ctx *c = p;
    fprintf(fp, "head,x,y\n");
    for (size_t i = 0; i < c->N; i++)
        fprintf(fp, "%s,%.17g,%.17g\n", c->names[i], c->xy[2 * i], c->xy[2 * i + 1]);
}

static int cmp_double(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

ats_status heads_analyse(const analysis_in *in, analysis_out *out, ats_error *err) {
    memset(out, 0, sizeof *out);
    size_t N = in->N;
    char name[512];
    ats_status st = ATS_OK;
    ats_rips_result rr = {0};
    double *merges = NULL, *xy = NULL, *deaths = NULL;
    out->labels = malloc(N * sizeof *out->labels);
    merges = malloc((N ? N : 1) * 4 * sizeof *merges);
    xy = malloc(2 * N * sizeof *xy);
    deaths = malloc((N ? N : 1) * sizeof *deaths);
    if (!out->labels || !merges || !xy || !deaths) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        goto done;
    }
    ats_rips_options ro;
    ats_rips_options_init(&ro);
    ro.max_dim = 1;
    st = ats_rips_compute(N, in->lower, &ro, &rr, err);
    if (st) goto done;
    for (int k = 0; k < 2; k++) {
        st = ats_diagram_from_pairs(rr.dims[k].count, rr.dims[k].pairs, &out->dg[k], err);
        if (st) goto done;
    }
    int dims[2] = {0, 1};
    snprintf(name, sizeof name, "%s/%spersistence.json", in->dir, in->prefix);
    st = ats_diagram_write_json(name, 2, rr.dims, dims, err);
    ats_figure_options fo;
    ats_figure_options_init(&fo);
    char title[256], t2[320];
    snprintf(title, sizeof title, "%s: persistence of the heads", in->title);
    fo.title = titled(t2, sizeof t2, title);
    if (!st) {
        snprintf(name, sizeof name, "%s/%sbarcode.%s", in->dir, in->prefix, fig_ext);
        st = ats_render_barcode(name, 2, rr.dims, dims, &fo, err);
    }
    if (!st) {
        snprintf(name, sizeof name, "%s/%sdiagram.%s", in->dir, in->prefix, fig_ext);
        st = ats_render_diagram(name, 2, rr.dims, dims, &fo, err);
    }
    if (st) goto done;
    /* dendrogram and clusters */
    if (N >= 2) {
        const ats_lower metric = {N, in->lower};
        st = ats_metric_single_linkage(&metric, merges, err);
    }
    if (st) goto done;
    names_ctx nc = {N, in->names, out->labels, 0, 0, merges, xy};
    snprintf(name, sizeof name, "%sdendrogram.csv", in->prefix);
    if (N >= 2) st = heads_write_text(in->dir, name, write_dendrogram, &nc, err);
    if (st) goto done;
    double scale = in->scale;
    if (!in->scale_given) {
        size_t m = 0;
        for (size_t k = 0; k + 1 < N; k++) deaths[m++] = merges[4 * k + 2];
        qsort(deaths, m, sizeof *deaths, cmp_double);
        scale = m ? deaths[(m - 1) / 2] : 0;
    }
    out->scale = scale;
    st = ats_rips_clusters(N, in->lower, scale, out->labels, &out->n_clusters, err);
    if (st) goto done;
    nc.n_clusters = out->n_clusters;
    nc.scale = scale;
    snprintf(name, sizeof name, "%sclusters.txt", in->prefix);
    st = heads_write_text(in->dir, name, write_clusters, &nc, err);
    if (st) goto done;
    /* MDS coloured by layer */
    if (N >= 2) {
        const ats_lower metric = {N, in->lower};
        st = ats_metric_mds(&metric, 2, 0, xy, err);
    } else
        xy[0] = xy[1] = 0;
    if (st) goto done;
    snprintf(name, sizeof name, "%smds.csv", in->prefix);
    st = heads_write_text(in->dir, name, write_mds, &nc, err);
    if (st) goto done;
    ats_scatter_options so;
    ats_scatter_options_init(&so);
    snprintf(title, sizeof title, "%s: MDS of the heads", in->title);
    so.fig.title = titled(t2, sizeof t2, title);
    so.labels = (const char *const *)in->names;
    so.groups = in->layer;
    so.n_groups = in->n_layers;
    so.legend_title = "layer";
    so.shapes = in->shapes;
    so.shape_names = in->shape_names;
    so.n_shapes = in->n_shapes;
    so.x_title = "MDS 1";
    so.y_title = "MDS 2";
    snprintf(name, sizeof name, "%s/%smds.%s", in->dir, in->prefix, fig_ext);
    st = ats_render_scatter(name, N, xy, &so, err);
done:
    ats_rips_result_free(&rr);
    free(merges);
    free(xy);
    free(deaths);
    if (st) {
        ats_diagram_free(&out->dg[0]);
        ats_diagram_free(&out->dg[1]);
        free(out->labels);
        out->labels = NULL;
    }
    return st;
}

void heads_analysis_out_free(analysis_out *o) {
    ats_diagram_free(&o->dg[0]);
    ats_diagram_free(&o->dg[1]);
    free(o->labels);
}

/* ---- head statistics output */

typedef struct stats_ctx {
    size_t L, H;
    const double *v; /* [ATS_STAT_COUNT][L][H] */
} stats_ctx;

static void write_stats_csv(FILE *fp, const void *p) {
    const stats_ctx *c = p;
    fprintf(fp, "head,layer,index");
    for (int s = 0; s < ATS_STAT_COUNT; s++) fprintf(fp, ",%s", ats_head_stat_name(s));
    fputc('\n', fp);
    for (size_t l = 0; l < c->L; l++)
        for (size_t h = 0; h < c->H; h++) {
            fprintf(fp, "L%zuH%zu,%zu,%zu", l, h, l, h);
            for (int s = 0; s < ATS_STAT_COUNT; s++) {
                double x = c->v[((size_t)s * c->L + l) * c->H + h];
                if (isnan(x))
                    fprintf(fp, ",");
                else
                    fprintf(fp, ",%.17g", x);
            }
            fputc('\n', fp);
        }
}

static ats_status heatmap_LH(const char *dir, const char *file, const char *title,
                             const char *value_title, size_t L, size_t H, const double *v,
                             ats_error *err) {
    char **rl = calloc(L, sizeof *rl), **cl = calloc(H, sizeof *cl);
    ats_status st = ATS_OK;
    if (!rl || !cl) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    for (size_t l = 0; !st && l < L; l++) {
        rl[l] = malloc(32);
        if (!rl[l])
            st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        else
            snprintf(rl[l], 32, "L%zu", l);
    }
    for (size_t h = 0; !st && h < H; h++) {
        cl[h] = malloc(32);
        if (!cl[h])
            st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        else
            snprintf(cl[h], 32, "H%zu", h);
    }
    char *path = st ? NULL : heads_path_join(dir, file);
    if (!st && !path) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    if (!st) {
        ats_heatmap_options ho;
        ats_heatmap_options_init(&ho);
        char t2[320];
        ho.fig.title = titled(t2, sizeof t2, title);
        ho.row_labels = (const char *const *)rl;
        ho.col_labels = (const char *const *)cl;
        ho.row_title = "layer";
        ho.col_title = "head";
        ho.value_title = value_title;
        st = ats_render_heatmap(path, L, H, v, &ho, err);
    }
    free(path);
    for (size_t l = 0; rl && l < L; l++) free(rl[l]);
    for (size_t h = 0; cl && h < H; h++) free(cl[h]);
    free(rl);
    free(cl);
    return st;
}

ats_status heads_write_stats(hrun *r, ats_error *err) {
    hmodel *hm = &r->models[0];
    size_t L = hm->L, H = hm->H, LH = L * H;
    const double *v = r->res.stats;
    ats_status st = ATS_OK;
    stats_ctx sc = {L, H, v};
    if (!st) st = heads_write_text(r->a->out_dir, "stats.csv", write_stats_csv, &sc, err);
    size_t shape[3] = {ATS_STAT_COUNT, L, H};
    if (!st) st = heads_write_npy(r->a->out_dir, "stats.npy", 3, shape, v, err);
    static const struct {
        ats_head_stat s;
        const char *title, *unit;
    } figs[] = {
        {ATS_STAT_ENTROPY, "mean attention entropy", "bits"},
        {ATS_STAT_CLS, "attention to [CLS] / first special token", "weight"},
        {ATS_STAT_SEP, "attention to [SEP] / end token", "weight"},
        {ATS_STAT_PUNCT, "attention to punctuation", "weight"},
        {ATS_STAT_SELF, "attention to the token itself", "weight"},
        {ATS_STAT_PREV, "attention to the previous token", "weight"},
        {ATS_STAT_NEXT, "attention to the next token", "weight"},
        {ATS_STAT_CONFIDENCE, "confidence (mean max weight)", "weight"},
        {ATS_STAT_POS_SHARE, "positional: share of argmax at one offset", "share"},
        {ATS_STAT_RARE, "rare-token head: share of argmax on the rarest token", "share"},
    };
    for (size_t i = 0; !st && i < sizeof figs / sizeof figs[0]; i++) {
        char file[64];
        snprintf(file, sizeof file, "stats_%s.%s", ats_head_stat_name(figs[i].s), fig_ext);
        st = heatmap_LH(r->a->out_dir, file, figs[i].title, figs[i].unit, L, H,
                        v + (size_t)figs[i].s * LH, err);
    }
    return st;
}

/* ---- importance by ablation */

typedef struct abl_ctx {
    size_t L, H, N, steps;
    const double *single, *keep, *order_loss;
    const size_t *order_k;
    double base;
    int lm;
    char **names;
    const size_t *order;
    const double *grad, *grad_loss; /* gradient importance [N], its pruning curve [steps] */
    const size_t *grad_order;
} abl_ctx;

static void write_ablation_csv(FILE *fp, const void *p) {
    const abl_ctx *c = p;
    fprintf(fp, "head,layer,index,%s_masked,importance,%s_only_head_of_layer%s\n",
            c->lm ? "loss" : "hidden_change", c->lm ? "loss" : "hidden_change",
            c->grad ? ",gradient_importance" : "");
    for (size_t a = 0; a < c->N; a++) {
        fprintf(fp, "%s,%zu,%zu,%.17g,%.17g,%.17g", c->names[a], a / c->H, a % c->H, c->single[a],
                c->single[a] - c->base, c->keep[a]);
        if (c->grad) fprintf(fp, ",%.17g", c->grad[a]);
        fputc('\n', fp);
    }
}

static void write_pruning_csv(FILE *fp, const void *p) {
    const abl_ctx *c = p;
    fprintf(fp, "heads_removed,%s,last_removed%s\n", c->lm ? "loss" : "hidden_change",
            c->grad ? ",loss_by_gradient,last_removed_by_gradient" : "");
    for (size_t s = 0; s < c->steps; s++) {
        size_t k = c->order_k[s];
        fprintf(fp, "%zu,%.17g,%s", k, c->order_loss[s], k ? c->names[c->order[k - 1]] : "");
        if (c->grad)
            fprintf(fp, ",%.17g,%s", c->grad_loss[s], k ? c->names[c->grad_order[k - 1]] : "");
        fputc('\n', fp);
    }
}

ats_status heads_run_ablation(hrun *r, char **names, ats_error *err) {
    hmodel *hm = &r->models[0];
    size_t L = hm->L, H = hm->H, N = hm->N;
    ats_corpus_source src;
    ats_corpus_source_init(&src);
    src.path = r->a->corpus;
    ats_heads_options o;
    heads_options(r, &o);
    ats_ablation_result ab;
    ats_status st = ats_heads_ablation(hm->s, &src, &o, (size_t)r->a->ablation_lines, &ab, err);
    if (st) return st;
    int lm = ab.lm;
    size_t steps = ab.steps;
    abl_ctx ac = {L,       H,  N,     steps,    ab.single, ab.keep,        ab.pruned,    ab.removed,
                  ab.base, lm, names, ab.order, ab.grad,   ab.grad_pruned, ab.grad_order};
    st = heads_write_text(r->a->out_dir, "ablation.csv", write_ablation_csv, &ac, err);
    if (!st) st = heads_write_text(r->a->out_dir, "pruning.csv", write_pruning_csv, &ac, err);
    if (!st) {
        double *imp = malloc(N * sizeof *imp);
        if (!imp) {
            st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (size_t a = 0; a < N; a++) imp[a] = ab.single[a] - ab.base;
        char title[160];
        snprintf(title, sizeof title, "%s",
                 lm ? "importance: LM loss with the head masked minus the full model's"
                    : "importance: change of the final hidden states with the head masked");
        char file[64];
        snprintf(file, sizeof file, "importance.%s", fig_ext);
        st = heatmap_LH(r->a->out_dir, file, title, lm ? "Δ loss" : "Δ hidden", L, H, imp, err);
        if (!st && ab.grad) snprintf(file, sizeof file, "importance_gradient.%s", fig_ext);
        if (!st && ab.grad)
            st = heatmap_LH(r->a->out_dir, file,
                            "importance: mean |dL/dξ| of a gate on the head's output", "|dL/dξ|", L,
                            H, ab.grad, err);
        free(imp);
    }
    if (!st) {
        double *xs = malloc(steps * sizeof *xs);
        if (!xs) {
            st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (size_t k = 0; k < steps; k++) xs[k] = (double)ab.removed[k];
        ats_series series[2] = {{ab.grad ? "by ablation"
                                 : lm    ? "LM loss"
                                         : "hidden-state change",
                                 steps, xs, ab.pruned},
                                {"by gradient", steps, xs, ab.grad_pruned}};
        ats_lines_options lo;
        ats_lines_options_init(&lo);
        char t2[320];
        lo.fig.title = titled(t2, sizeof t2, "pruning: heads removed in order of importance");
        lo.x_title = "heads removed";
        lo.y_title = lm ? "LM loss" : "hidden-state change";
        char file[64];
        snprintf(file, sizeof file, "pruning.%s", fig_ext);
        char *path = heads_path_join(r->a->out_dir, file);
        st = path ? ats_render_lines(path, ab.grad ? 2 : 1, series, &lo, err)
                  : ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        free(path);
        free(xs);
    }
    if (!st) {
        const size_t *order = ab.order;
        printf("ablation (%zu lines, %s): base %.6f; most important:", ab.lines,
               lm ? "LM loss" : "relative change of the final hidden states", ab.base);
        for (size_t j = 0; j < N && j < 5; j++)
            printf(" %s (%+.4f)", names[order[N - 1 - j]], ab.single[order[N - 1 - j]] - ab.base);
        printf("\n");
        if (ab.grad) {
            printf("gradient importance (mean |dL/dxi|): most important:");
            for (size_t j = 0; j < N && j < 5; j++)
                printf(" %s (%.4f)", names[ab.grad_order[N - 1 - j]],
                       ab.grad[ab.grad_order[N - 1 - j]]);
            printf("\n");
        }
    }
done:
    ats_ablation_result_free(&ab);
    return st;
}
