/* attnscope heads: head topology over a corpus. The corpus pass (ats_heads_corpus: the distance
 * between every pair of heads summed over the corpus, head statistics) and the ablation
 * (ats_heads_ablation) are the library's; this command adds MPI (the corpus split across ranks
 * in fixed chunks whose partial sums are reduced in chunk order, so the result equals the
 * single-process one), the progress line, and the analyses of the head matrix: persistence of
 * the heads, single-linkage dendrogram, MDS embedding coloured by layer, clusters at a scale, a
 * joint word-level analysis of two models, and the files and figures of all of it. */
#include "cli.h"
#include "heads.h"
#include "progress.h"
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
#include <unistd.h>

static const char USAGE[] =
    "usage: attnscope heads --model M [--model M2] --corpus FILE [--output D.npy] [--out DIR]\n"
    "                       [options]\n"
    "\n"
    "Distance between every pair of attention heads over a corpus (one text a line, or JSONL\n"
    "objects with a \"text\" field), streamed: attentions are never kept beyond one line.\n"
    "  D(a,b) = sum over lines, sum over tokens t of sqrt(JS(A_a[t], A_b[t]))   (base 2)\n"
    "or with --clark sum JS of rows smoothed as 0.001/n + 0.999*a (Clark et al. 2019). D is\n"
    "float64 [L*H][L*H], head index l*H + h, tokens as the model's tokenizer makes them\n"
    "(special tokens included). Under `mpirun -n N` the ranks split the corpus and the result\n"
    "is the same D.\n"
    "\n"
    "  --model M           model directory or hub name; twice for a joint analysis of two\n"
    "                      models on the same words (attention pooled to white-space words:\n"
    "                      sum over a word's key tokens, mean over its query tokens); D is then\n"
    "                      [N1+N2][N1+N2] over both models' heads\n"
    "  --corpus FILE       the corpus (.jsonl/.ndjson or a first line starting with '{' is JSONL)\n"
    "  --output D.npy      the head matrix\n"
    "  --out DIR           analyses: D.npy, persistence (persistence.json, barcode and\n"
    "                      diagram figures), dendrogram.csv (single linkage), mds.csv and its\n"
    "                      figure, clusters.txt at --scale, summary.json; with --stats, --ablation "
    "and a\n"
    "                      second model also their tables and figures\n"
    "  --format F          figures as png (default), svg or pdf\n"
    "  --title T           a prefix of every figure's title\n"
    "  --clark             Clark et al.'s smoothed JS instead of sqrt(JS)\n"
    "  --scale S           clusters: heads joined when their mean distance per token is <= S\n"
    "                      (default: the median H0 death)\n"
    "  --max-tokens n      longest input (default and cap: the model's maximum length)\n"
    "  --skip-long         skip longer lines (default: cut them to n tokens keeping the closing\n"
    "                      special tokens, as transformers' truncation=True; a joint run of two\n"
    "                      models always skips them)\n"
    "  --max-lines K       read at most K lines\n"
    "  --stats             head statistics: entropy, [CLS]/[SEP]/punctuation, self/prev/next,\n"
    "                      confidence, positional, rare-token (the corpus's own frequencies)\n"
    "  --ablation          importance by ablation (Michel et al. 2019) on the first\n"
    "                      --ablation-lines lines (default 128): LM loss with each head masked,\n"
    "                      with all but one head of a layer, and the pruning curve; masked-LM\n"
    "                      models predict every 6th token masked; without an LM head the\n"
    "                      measure is the relative change of the final hidden states\n"
    "                      (causal LMs: also the gradient importance mean |dL/dxi| of the same\n"
    "                      lines and the pruning curve in its order, beside the ablation's)\n"
    "  --chunk-lines K     lines per reduction chunk (default 64); D depends on it only in the\n"
    "                      last bits\n"
    "  --threads N         threads (default: all cores, divided among MPI ranks)\n"
    "  --progress          the progress line on stderr even when it is not a terminal\n"
    "  --quiet             no progress line\n"
    "\n"
    "Empty lines, invalid UTF-8, bad JSONL lines and lines over 1 MiB are skipped and counted in\n"
    "the summary. Exit status: 0 success, 2 bad input or usage, 1 other failures.\n";

static int parse_args(int argc, char **argv, hargs *a) {
    memset(a, 0, sizeof *a);
    a->ablation_lines = 128;
    a->chunk_lines = 64;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            fputs(USAGE, stdout);
            return -1;
        } else if (!strcmp(s, "--clark"))
            a->clark = 1;
        else if (!strcmp(s, "--stats"))
            a->stats = 1;
        else if (!strcmp(s, "--ablation"))
            a->ablation = 1;
        else if (!strcmp(s, "--skip-long"))
            a->skip_long = 1;
        else if (!strcmp(s, "--quiet"))
            a->quiet = 1;
        else if (!strcmp(s, "--progress"))
            a->progress = 1;
        else if (!strcmp(s, "--format") || !strcmp(s, "--title")) {
            if (!v) return ats_cli_usage_error("heads", "%s needs a value", s);
            if (!strcmp(s, "--title"))
                a->title = v;
            else if (!strcmp(v, "png") || !strcmp(v, "svg") || !strcmp(v, "pdf"))
                a->format = v;
            else
                return ats_cli_usage_error("heads", "--format is png, svg or pdf");
            i++;
        } else if (!strcmp(s, "--model") || !strcmp(s, "--corpus") || !strcmp(s, "--output") ||
                   !strcmp(s, "--out")) {
            if (!v) return ats_cli_usage_error("heads", "%s needs a value", s);
            if (!strcmp(s, "--model")) {
                if (a->n_models == 2)
                    return ats_cli_usage_error("heads", "--model can be given at most twice");
                a->models[a->n_models++] = v;
            } else if (!strcmp(s, "--corpus"))
                a->corpus = v;
            else if (!strcmp(s, "--output"))
                a->output = v;
            else
                a->out_dir = v;
            i++;
        } else if (!strcmp(s, "--scale")) {
            if (!v || !ats_cli_parse_double(v, 0, &a->scale) || a->scale < 0)
                return ats_cli_usage_error("heads", "--scale needs a number >= 0");
            a->scale_given = 1;
            i++;
        } else if (!strcmp(s, "--max-tokens") || !strcmp(s, "--max-lines") ||
                   !strcmp(s, "--ablation-lines") || !strcmp(s, "--chunk-lines") ||
                   !strcmp(s, "--threads")) {
            long x;
            long lo = strcmp(s, "--threads") ? 1 : 0;
            if (!v || !ats_cli_parse_long(v, lo, 1L << 40, &x))
                return ats_cli_usage_error("heads", "%s needs an integer >= %ld", s, lo);
            if (!strcmp(s, "--max-tokens"))
                a->max_tokens = x;
            else if (!strcmp(s, "--max-lines"))
                a->max_lines = x;
            else if (!strcmp(s, "--ablation-lines"))
                a->ablation_lines = x;
            else if (!strcmp(s, "--chunk-lines"))
                a->chunk_lines = x;
            else
                a->threads = x > 4096 ? 4096 : x;
            i++;
        } else {
            return ats_cli_usage_error("heads", "unknown option '%s' (see --help)", s);
        }
    }
    if (!a->n_models) return ats_cli_usage_error("heads", "--model is required (see --help)");
    if (!a->corpus) return ats_cli_usage_error("heads", "--corpus is required (see --help)");
    if (!a->output && !a->out_dir)
        return ats_cli_usage_error("heads", "give --output D.npy and/or --out DIR");
    if ((a->stats || a->ablation) && !a->out_dir)
        return ats_cli_usage_error("heads", "--stats and --ablation write into --out DIR");
    if (a->n_models == 2 && (a->stats || a->ablation))
        return ats_cli_usage_error("heads", "--stats and --ablation take one model");
    return 0;
}

/* ---- one model with its tokenizer */

static ats_status hmodel_load(hmodel *hm, const char *path, ats_error *err) {
    memset(hm, 0, sizeof *hm);
    ats_status st = ats_session_open_adapted(path, ats_cli_adapter(), &hm->s, err);
    if (st) return st;
    hm->mi = ats_model_info_get(ats_session_model(hm->s));
    if (hm->mi->arch == ATS_ARCH_VIT)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "%s: heads over a text corpus needs a text model, not ViT", path);
    hm->L = (size_t)hm->mi->n_layers;
    hm->H = (size_t)hm->mi->n_heads;
    hm->N = hm->L * hm->H;
    /* a short label: the last two components of the directory (".../all-MiniLM/model") */
    const char *dir = hm->mi->dir, *end = dir + strlen(dir);
    while (end > dir && end[-1] == '/') end--;
    const char *p = end;
    int slashes = 0;
    while (p > dir && slashes < 2) {
        p--;
        if (*p == '/' && ++slashes == 2) p++;
    }
    snprintf(hm->name, sizeof hm->name, "%.*s", (int)(end - p), p);
    return ATS_OK;
}

static void hmodel_free(hmodel *hm) {
    ats_session_close(hm->s);
}

/* ---- the run */

/* ats_heads_options.exchange over MPI: rank 0 receives the chunks the others own. */
static void mpi_exchange(void *ctx, size_t chunk, int owner, double *part, size_t count) {
    heads_mpi *mpi = ctx;
    if (mpi->rank == 0)
        heads_mpi_recv(mpi, owner, chunk, part, count);
    else
        heads_mpi_send(mpi, chunk, part, count);
}

/* The options of the library's corpus pass from the command line. */
void heads_options(hrun *r, ats_heads_options *o) {
    const hargs *a = r->a;
    ats_heads_options_init(o);
    o->clark = a->clark;
    o->max_lines = (size_t)a->max_lines;
    o->max_tokens = (size_t)a->max_tokens;
    o->skip_long = a->skip_long;
    o->chunk_lines = (size_t)a->chunk_lines;
    o->n_threads = r->threads;
    o->stats = a->stats;
    o->rank = r->mpi->rank;
    o->n_procs = r->mpi->size;
    o->exchange = mpi_exchange;
    o->exchange_ctx = r->mpi;
    o->progress = cli_progress_report;
    o->progress_ctx = &r->pg;
}

/* ---- summary */

typedef struct summary_ctx {
    const hrun *r;
    double seconds;
    const analysis_out *ao;
    const double *joint; /* bottleneck H0, H1, wasserstein H0, H1 or NULL */
} summary_ctx;

static void json_str(FILE *fp, const char *s) {
    fputc('"', fp);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(fp, "\\%c", ch);
        else if (ch < 0x20)
            fprintf(fp, "\\u%04x", ch);
        else
            fputc(ch, fp);
    }
    fputc('"', fp);
}

static void write_summary(FILE *fp, const void *p) {
    const summary_ctx *s = p;
    const hrun *r = s->r;
    const unsigned long long *c = r->res.counts;
    fprintf(fp, "{\n  \"corpus\": ");
    json_str(fp, r->a->corpus);
    fprintf(fp, ",\n  \"models\": [");
    for (int k = 0; k < r->n_models; k++) {
        fprintf(fp, "%s{\"dir\": ", k ? ", " : "");
        json_str(fp, r->models[k].mi->dir);
        fprintf(fp, ", \"model_type\": ");
        json_str(fp, r->models[k].mi->model_type);
        fprintf(fp, ", \"layers\": %zu, \"heads\": %zu}", r->models[k].L, r->models[k].H);
    }
    fprintf(fp,
            "],\n  \"metric\": \"%s\",\n  \"ranks\": %d,\n  \"lines\": %llu,\n  \"texts\": %llu,\n"
            "  \"tokens\": %llu,\n  \"words\": %llu,\n  \"skipped\": {\"empty\": %llu, "
            "\"invalid_utf8\": %llu, \"bad_json\": %llu, \"over_1MiB\": %llu, \"too_long\": %llu, "
            "\"no_common_words\": %llu},\n  \"truncated\": {\"lines\": %llu, \"tokens\": "
            "%llu},\n  \"seconds\": %.3f,\n  \"tokens_per_second\": %.1f",
            r->a->clark ? "clark" : "seed_sqrt_js", r->mpi->size, c[ATS_HEADS_LINES],
            c[ATS_HEADS_TEXTS], c[ATS_HEADS_TOKENS], c[ATS_HEADS_WORDS], c[ATS_HEADS_EMPTY],
            c[ATS_HEADS_BADUTF], c[ATS_HEADS_BADJSON], c[ATS_HEADS_HUGE], c[ATS_HEADS_SKIPPED_LONG],
            c[ATS_HEADS_NOWORDS], c[ATS_HEADS_TRUNC_LINES], c[ATS_HEADS_TRUNC_TOKENS], s->seconds,
            s->seconds > 0 ? (double)c[ATS_HEADS_TOKENS] / s->seconds : 0.0);
    if (s->ao) {
        fputs(",\n  \"scale\": ", fp);
        ats_cli_json_number(fp, s->ao->scale, 0);
        fprintf(fp, ",\n  \"clusters\": %zu,\n  \"h0\": %zu,\n  \"h1\": %zu", s->ao->n_clusters,
                s->ao->dg[0].count, s->ao->dg[1].count);
    }
    if (s->joint) {
        static const char *const keys[4] = {"bottleneck_h0", "bottleneck_h1", "wasserstein1_h0",
                                            "wasserstein1_h1"};
        fputs(",\n  \"between_models\": {", fp);
        for (int k = 0; k < 4; k++) {
            fprintf(fp, "%s\"%s\": ", k ? ", " : "", keys[k]);
            ats_cli_json_number(fp, s->joint[k], 0);
        }
        fputc('}', fp);
    }
    fprintf(fp, "\n}\n");
}

static void print_summary(const hrun *r, double seconds) {
    const unsigned long long *c = r->res.counts;
    printf("heads: %llu lines, %llu texts, %llu tokens in %.2f s (%.0f tokens/s)%s\n",
           c[ATS_HEADS_LINES], c[ATS_HEADS_TEXTS], c[ATS_HEADS_TOKENS], seconds,
           seconds > 0 ? (double)c[ATS_HEADS_TOKENS] / seconds : 0.0,
           r->mpi->size > 1 ? " over MPI ranks" : "");
    printf("skipped: %llu empty, %llu invalid UTF-8", c[ATS_HEADS_EMPTY], c[ATS_HEADS_BADUTF]);
    if (r->mpi->size == 1 && r->res.first_badutf) printf(" (first: line %zu)", r->res.first_badutf);
    printf(", %llu bad JSONL", c[ATS_HEADS_BADJSON]);
    if (r->mpi->size == 1 && r->res.first_badjson)
        printf(" (first: line %zu)", r->res.first_badjson);
    printf(", %llu over 1 MiB, %llu too long for the model%s\n", c[ATS_HEADS_HUGE],
           c[ATS_HEADS_SKIPPED_LONG], r->n_models == 2 ? " (joint runs skip them)" : "");
    printf("truncated: %llu lines (%llu tokens dropped)\n", c[ATS_HEADS_TRUNC_LINES],
           c[ATS_HEADS_TRUNC_TOKENS]);
    if (r->n_models == 2)
        printf("words: %llu (lines without a common word: %llu)\n", c[ATS_HEADS_WORDS],
               c[ATS_HEADS_NOWORDS]);
}

/* ---- the command */

static int fail(heads_mpi *mpi, const ats_error *err) {
    int rc = ats_cli_fail(err);
    heads_mpi_abort(mpi, rc);
    return rc;
}

int ats_cmd_heads(int argc, char **argv) {
    hargs a;
    int prc = parse_args(argc, argv, &a);
    if (prc) return prc < 0 ? ATS_EXIT_OK : prc;
    heads_figure_style(a.format, a.title);
    heads_mpi mpi;
    heads_mpi_start(&mpi, &argc, &argv);
    ats_error err = {0};
    hrun r;
    memset(&r, 0, sizeof r);
    r.a = &a;
    r.mpi = &mpi;
    r.n_models = a.n_models;
    int rc = ATS_EXIT_OK;
    double *D = NULL, *lower = NULL;
    char **names = NULL;
    int *layer = NULL, *shapes = NULL;
    analysis_out ao;
    memset(&ao, 0, sizeof ao);
    ats_outdir outdir = {0};
    int have_ao = 0;
    double t0 = cli_progress_now();
    for (int k = 0; k < a.n_models; k++)
        if (hmodel_load(&r.models[k], a.models[k], &err)) {
            rc = fail(&mpi, &err);
            goto done;
        }
    size_t N = 0, NN;
    for (int k = 0; k < a.n_models; k++) N += r.models[k].N;
    r.N = N;
    if (!ats_size_mul(N, N, &NN) || N == 0) {
        ats_error_set(&err, ATS_ERR_RANGE, "%zu heads is out of range", N);
        rc = fail(&mpi, &err);
        goto done;
    }
    int threads = (int)a.threads;
    if (threads == 0 && mpi.size > 1) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > mpi.size ? (int)(cores / mpi.size) : 1;
    }
    r.threads = threads;
    /* every file of --out DIR goes into DIR.tmp.PID, moved into place only when all are
     * written: a failed run leaves no half-written folder */
    if (a.out_dir && mpi.rank == 0) {
        if (ats_outdir_open(&outdir, a.out_dir, &err)) {
            rc = fail(&mpi, &err);
            goto done;
        }
        a.out_dir = outdir.tmp;
    }
    names = calloc(N, sizeof *names);
    layer = malloc(N * sizeof *layer);
    shapes = malloc(N * sizeof *shapes);
    size_t nlower = N * (N - 1) / 2;
    lower = malloc((nlower ? nlower : 1) * sizeof *lower);
    if (!names || !layer || !shapes || !lower) {
        ats_error_set(&err, ATS_ERR_NOMEM, "out of memory for %zu heads", N);
        rc = fail(&mpi, &err);
        goto done;
    }
    {
        size_t i = 0;
        for (int k = 0; k < a.n_models; k++)
            for (size_t l = 0; l < r.models[k].L; l++)
                for (size_t h = 0; h < r.models[k].H; h++, i++) {
                    char buf[64], prefix[16];
                    snprintf(prefix, sizeof prefix, "m%d:", k + 1);
                    heads_name(buf, sizeof buf, a.n_models == 2 ? prefix : NULL, l, h);
                    names[i] = strdup(buf);
                    layer[i] = (int)l;
                    shapes[i] = k;
                    if (!names[i]) {
                        ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
                        rc = fail(&mpi, &err);
                        goto done;
                    }
                }
    }
    {
        ats_corpus_source src;
        ats_corpus_source_init(&src);
        src.path = a.corpus;
        ats_heads_options o;
        heads_options(&r, &o);
        cli_progress_init(&r.pg, "heads", a.progress, a.quiet || mpi.rank != 0);
        ats_session *sessions[2] = {r.models[0].s, a.n_models == 2 ? r.models[1].s : NULL};
        if (ats_heads_corpus(sessions, (size_t)a.n_models, &src, &o, &r.res, &err)) {
            rc = fail(&mpi, &err);
            goto done;
        }
        D = r.res.D;
    }
    heads_mpi_sum_counts(&mpi, r.res.counts, ATS_HEADS_COUNT);
    if (r.res.counts[ATS_HEADS_TEXTS] == 0) { /* an all-zero D would look like a result */
        const unsigned long long *c = r.res.counts;
        ats_error_set(&err, ATS_ERR_INVALID,
                      "%s: no usable line (%llu read: %llu empty, %llu invalid UTF-8, %llu bad "
                      "JSONL, %llu too long, %llu over the token limit, %llu without a shared "
                      "word)",
                      a.corpus, c[ATS_HEADS_LINES], c[ATS_HEADS_EMPTY], c[ATS_HEADS_BADUTF],
                      c[ATS_HEADS_BADJSON], c[ATS_HEADS_HUGE], c[ATS_HEADS_SKIPPED_LONG],
                      c[ATS_HEADS_NOWORDS]);
        rc = ats_cli_fail(&err);
        goto done;
    }
    double seconds = cli_progress_now() - t0;
    if (mpi.rank != 0) goto done;
    if (a.output) {
        size_t shape[2] = {N, N};
        if (ats_npy_write(a.output, ATS_F64, 2, shape, D, &err)) {
            rc = ats_cli_fail(&err);
            goto done;
        }
    }
    print_summary(&r, seconds);
    double between[4];
    int have_between = 0;
    if (a.out_dir) {
        size_t shape[2] = {N, N};
        if (heads_write_npy(a.out_dir, "D.npy", 2, shape, D, &err)) {
            rc = ats_cli_fail(&err);
            goto done;
        }
        /* the analyses use the mean distance per token (or word): √JS ∈ [0, 1] */
        double units = (double)(a.n_models == 2 ? r.res.counts[ATS_HEADS_WORDS]
                                                : r.res.counts[ATS_HEADS_TOKENS]);
        if (units <= 0 || N < 2) {
            printf("no tokens or fewer than two heads: no analysis of the head matrix\n");
        } else {
            for (size_t i = 0; i < NN; i++) D[i] /= units;
            if (ats_metric_from_full(N, D, 1, "head matrix", lower, &err)) {
                rc = ats_cli_fail(&err);
                goto done;
            }
            const char *snames[2] = {r.models[0].name, r.n_models == 2 ? r.models[1].name : ""};
            size_t maxL = r.models[0].L;
            if (a.n_models == 2 && r.models[1].L > maxL) maxL = r.models[1].L;
            analysis_in ai = {a.out_dir,
                              "",
                              a.n_models == 2 ? "two models, word level" : r.models[0].name,
                              N,
                              lower,
                              names,
                              layer,
                              maxL,
                              a.n_models == 2 ? shapes : NULL,
                              snames,
                              (size_t)a.n_models,
                              a.scale_given,
                              a.scale};
            if (heads_analyse(&ai, &ao, &err)) {
                rc = ats_cli_fail(&err);
                goto done;
            }
            have_ao = 1;
            printf("persistence of the heads (mean distance per %s): %zu H0, %zu H1 intervals\n",
                   a.n_models == 2 ? "word" : "token", ao.dg[0].count, ao.dg[1].count);
            printf("clusters at scale %.6g: %zu\n", ao.scale, ao.n_clusters);
            for (size_t k = 0; k < ao.n_clusters && k < 40; k++) {
                printf("  cluster %zu:", k);
                for (size_t i = 0; i < N; i++)
                    if ((size_t)ao.labels[i] == k) printf(" %s", names[i]);
                printf("\n");
            }
            if (a.n_models == 2) { /* each model's heads in the shared space */
                size_t N1 = r.models[0].N, N2 = r.models[1].N;
                analysis_out sub[2];
                memset(sub, 0, sizeof sub);
                ats_status st = ATS_OK;
                for (int k = 0; k < 2 && !st; k++) {
                    size_t off = k ? N1 : 0, Nk = k ? N2 : N1;
                    double *lk = malloc((Nk * (Nk - 1) / 2 + 1) * sizeof *lk);
                    if (!lk) {
                        st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
                        break;
                    }
                    for (size_t i = 1; i < Nk; i++)
                        for (size_t j = 0; j < i; j++)
                            lk[ats_lower_index(i, j)] = D[(off + i) * N + off + j];
                    char prefix[16], title[128];
                    snprintf(prefix, sizeof prefix, "model%d_", k + 1);
                    snprintf(title, sizeof title, "model %d (%s), word level", k + 1, snames[k]);
                    analysis_in sk = {a.out_dir,   prefix,      title,         Nk,   lk,
                                      names + off, layer + off, r.models[k].L, NULL, NULL,
                                      0,           1,           ao.scale};
                    st = heads_analyse(&sk, &sub[k], &err);
                    free(lk);
                }
                for (int d = 0; d < 2 && !st; d++) {
                    st = ats_bottleneck_distance(&sub[0].dg[d], &sub[1].dg[d], &between[d], NULL,
                                                 &err);
                    ats_wasserstein_options wo;
                    ats_wasserstein_options_init(&wo);
                    wo.exact = 1;
                    if (!st)
                        st = ats_wasserstein_distance(&sub[0].dg[d], &sub[1].dg[d], &wo,
                                                      &between[2 + d], NULL, &err);
                }
                heads_analysis_out_free(&sub[0]);
                heads_analysis_out_free(&sub[1]);
                if (st) {
                    rc = ats_cli_fail(&err);
                    goto done;
                }
                have_between = 1;
                printf("between the models' head diagrams: bottleneck H0 %.6g, H1 %.6g; "
                       "1-Wasserstein H0 %.6g, H1 %.6g\n",
                       between[0], between[1], between[2], between[3]);
            }
        }
        if (r.res.stats) {
            if (heads_write_stats(&r, &err)) {
                rc = ats_cli_fail(&err);
                goto done;
            }
            if (mpi.size > 1) printf("stats: computed by rank 0 over its share of the corpus\n");
        }
        if (a.ablation && heads_run_ablation(&r, names, &err)) {
            rc = ats_cli_fail(&err);
            goto done;
        }
        summary_ctx sc = {&r, seconds, have_ao ? &ao : NULL, have_between ? between : NULL};
        if (heads_write_text(a.out_dir, "summary.json", write_summary, &sc, &err)) {
            rc = ats_cli_fail(&err);
            goto done;
        }
        if (ats_outdir_commit(&outdir, &err)) {
            rc = ats_cli_fail(&err);
            goto done;
        }
    }
done:
    ats_outdir_abort(&outdir); /* nothing left after a commit */
    if (have_ao) heads_analysis_out_free(&ao);
    for (size_t i = 0; names && i < r.N; i++) free(names[i]);
    free(names);
    free(layer);
    free(shapes);
    ats_heads_result_free(&r.res);
    free(lower);
    for (int k = 0; k < a.n_models; k++) hmodel_free(&r.models[k]);
    fflush(stdout);
    heads_mpi_stop(&mpi);
    return rc;
}
