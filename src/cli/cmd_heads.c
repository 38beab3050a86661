/* attnscope heads: head topology over a corpus. Streams the corpus one line at a time, runs the
 * model, accumulates the distance between every pair of heads (ats_headdist), and analyses the
 * head matrix: persistence of the heads, single-linkage dendrogram, MDS embedding coloured by
 * layer, clusters at a scale; head statistics; importance by ablation; a joint word-level
 * analysis of two models. Under mpirun the corpus is split across ranks in fixed chunks whose
 * partial sums are reduced in chunk order, so the result equals the single-process one. */
#include "cli.h"
#include "heads.h"
#include "attnscope/diagram.h"
#include "attnscope/measure.h"
#include "attnscope/model.h"
#include "attnscope/render.h"
#include "attnscope/rips.h"
#include "attnscope/tokenizer.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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
    "  --out DIR           analyses: D.npy, persistence (persistence.json, barcode.png,\n"
    "                      diagram.png), dendrogram.csv (single linkage), mds.csv + mds.png,\n"
    "                      clusters.txt at --scale, summary.json; with --stats, --ablation and a\n"
    "                      second model also their tables and figures\n"
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
    "  --chunk-lines K     lines per reduction chunk (default 64); D depends on it only in the\n"
    "                      last bits\n"
    "  --threads N         threads (default: all cores, divided among MPI ranks)\n"
    "  --quiet             no progress on stderr\n"
    "\n"
    "Empty lines, invalid UTF-8, bad JSONL lines and lines over 1 MiB are skipped and counted in\n"
    "the summary. Exit status: 0 success, 2 bad input or usage, 1 other failures.\n";

#define MAX_LINE_BYTES ((size_t)1 << 20)

void openblas_set_num_threads(int num_threads); /* OpenBLAS (linked by the library) */

typedef struct hargs {
    const char *models[2];
    int n_models;
    const char *corpus, *output, *out_dir;
    int clark, stats, ablation, skip_long, quiet, scale_given;
    long max_tokens, max_lines, ablation_lines, chunk_lines, threads;
    double scale;
} hargs;

enum {
    C_LINES,
    C_TEXTS,
    C_EMPTY,
    C_BADUTF,
    C_BADJSON,
    C_HUGE,
    C_TRUNC_LINES,
    C_TRUNC_TOKENS,
    C_SKIPPED_LONG,
    C_TOKENS,
    C_WORDS,
    C_NOWORDS,
    C_COUNT
};

typedef struct firsts { /* first line numbers of skipped kinds, for the summary */
    size_t badutf, badjson, huge, empty;
} firsts;

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
        else if (!strcmp(s, "--model") || !strcmp(s, "--corpus") || !strcmp(s, "--output") ||
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

typedef struct hmodel {
    ats_model *m;
    ats_tokenizer *tok;
    const ats_model_info *mi;
    size_t L, H, N, max_n;
    char name[128]; /* short name for labels */
} hmodel;

static ats_status hmodel_load(hmodel *hm, const char *path, long max_tokens, ats_error *err) {
    memset(hm, 0, sizeof *hm);
    ats_status st = ats_model_load(path, &hm->m, err);
    if (st) return st;
    hm->mi = ats_model_info_get(hm->m);
    if (hm->mi->arch == ATS_ARCH_VIT)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "%s: heads over a text corpus needs a text model, not ViT", path);
    st = ats_tokenizer_load(hm->mi->dir, &hm->tok, err);
    if (st) return st;
    hm->L = (size_t)hm->mi->n_layers;
    hm->H = (size_t)hm->mi->n_heads;
    hm->N = hm->L * hm->H;
    hm->max_n = (size_t)hm->mi->max_positions;
    if (max_tokens > 0 && (size_t)max_tokens < hm->max_n) hm->max_n = (size_t)max_tokens;
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
    ats_tokenizer_free(hm->tok);
    ats_model_free(hm->m);
}

/* ---- progress */

typedef struct progress {
    int quiet, tty;
    double start, last;
    long long size;
} progress;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void progress_show(progress *p, const heads_corpus *c, unsigned long long tokens, int ranks,
                          int final) {
    if (p->quiet) return;
    double t = now_s();
    if (!final && t - p->last < (p->tty ? 1.0 : 10.0)) return;
    p->last = t;
    double el = t - p->start, rate = el > 0 ? (double)tokens / el : 0;
    char eta[32] = "?";
    if (p->size > 0 && c->position > 0) {
        double left = el * ((double)p->size / (double)c->position - 1.0);
        snprintf(eta, sizeof eta, "%.0f s", left > 0 ? left : 0);
    }
    fprintf(stderr, "%sheads: line %zu, %llu tokens%s, %.0f tokens/s, %.1f s, ETA %s%s",
            p->tty ? "\r" : "", c->line_no, tokens, ranks > 1 ? " (rank 0)" : "", rate, el, eta,
            p->tty && !final ? "   " : "\n");
    fflush(stderr);
}

/* ---- small output helpers */

static char *path_join(const char *dir, const char *name) {
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = malloc(n);
    if (p) snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Writes text made by fn into dir/name atomically. */
typedef void (*writer_fn)(FILE *fp, const void *ctx);
static ats_status write_text(const char *dir, const char *name, writer_fn fn, const void *ctx,
                             ats_error *err) {
    char *path = path_join(dir, name);
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

static ats_status write_npy_in(const char *dir, const char *name, int ndim, const size_t *shape,
                               const double *data, ats_error *err) {
    char *path = path_join(dir, name);
    if (!path) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    ats_status st = ats_npy_write(path, ATS_F64, ndim, shape, data, err);
    free(path);
    return st;
}

/* ---- per-line work */

static int is_punct_token(const char *s) {
    if (!strncmp(s, "##", 2))
        s += 2;
    else if (!strncmp(s, "\xc4\xa0", 2)) /* Ġ: GPT-2's space marker */
        s += 2;
    if (!*s) return 0;
    for (; *s; s++)
        if (!ispunct((unsigned char)*s)) return 0;
    return 1;
}

static int is_cls_token(const char *s) {
    return !strcmp(s, "[CLS]") || !strcmp(s, "<s>");
}
static int is_sep_token(const char *s) {
    return !strcmp(s, "[SEP]") || !strcmp(s, "</s>") || !strcmp(s, "<|endoftext|>");
}

typedef struct hrun {
    const hargs *a;
    heads_mpi *mpi;
    hmodel models[2];
    int n_models;
    size_t N; /* heads in D */
    ats_measure_opts mopts;
    ats_forward_options fopts; /* n_threads 0, OpenBLAS at 1: lines run in parallel instead */
    int line_threads;          /* lines run at once */
    double *csum, *ccomp;      /* [N][N] the current chunk's sums (Neumaier) */
    ats_headstats *hs;
    double *freq_count; /* [V] token counts over the corpus (stats) */
    unsigned long long counts[C_COUNT];
    firsts first;
} hrun;

/* Prefixes err's message with the corpus file and line number. */
static void prefix_error(ats_error *err, ats_status st, const char *corpus, size_t line_no) {
    if (!err) return;
    char msg[ATS_ERROR_MESSAGE_MAX];
    memcpy(msg, err->message, sizeof msg);
    msg[sizeof msg - 1] = '\0';
    ats_error_set(err, st, "%s:%zu: %s", corpus, line_no, msg);
}

/* Encodes a line and applies the length rule; *n_use is the number of tokens to run (0: skip),
 * *too_long whether the encoding exceeds the model's length. */
static ats_status encode_line(const hrun *r, const hmodel *hm, const char *text, size_t len,
                              size_t line_no, ats_encoding *enc, size_t *n_use, int *too_long,
                              ats_error *err) {
    ats_status st = ats_tokenizer_encode(hm->tok, text, len, 1, enc, err);
    if (st) {
        prefix_error(err, st, r->a->corpus, line_no);
        return st;
    }
    *n_use = enc->count;
    *too_long = enc->count > hm->max_n;
    if (!*too_long) return ATS_OK;
    if (r->a->skip_long || r->n_models == 2) {
        *n_use = 0;
        return ATS_OK;
    }
    /* as transformers' truncation=True (and attention --truncate): the text is cut, the closing
     * special tokens stay; they are swapped into place, so the encoding still owns every token */
    size_t n = enc->count, lim = hm->max_n, k = 0;
    while (k < n && k < lim && enc->special[n - 1 - k]) k++;
    for (size_t j = 0; j < k; j++) {
        size_t a = lim - k + j, b = n - k + j;
        int32_t id = enc->ids[a];
        enc->ids[a] = enc->ids[b];
        enc->ids[b] = id;
        char *t = enc->tokens[a];
        enc->tokens[a] = enc->tokens[b];
        enc->tokens[b] = t;
        uint8_t sp = enc->special[a];
        enc->special[a] = enc->special[b];
        enc->special[b] = sp;
        int32_t w = enc->word_ids[a];
        enc->word_ids[a] = enc->word_ids[b];
        enc->word_ids[b] = w;
        for (int e = 0; e < 2; e++) {
            size_t o = enc->offsets[2 * a + e];
            enc->offsets[2 * a + e] = enc->offsets[2 * b + e];
            enc->offsets[2 * b + e] = o;
        }
    }
    *n_use = lim;
    return ATS_OK;
}

static ats_status add_stats(hrun *r, const ats_encoding *enc, size_t n, const ats_attn *view,
                            ats_error *err) {
    size_t *buf = malloc(3 * n * sizeof *buf);
    double *freq = malloc(n * sizeof *freq);
    if (!buf || !freq) {
        free(buf);
        free(freq);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    ats_token_roles roles = {0};
    size_t *cls = buf, *sep = buf + n, *punct = buf + 2 * n;
    for (size_t i = 0; i < n; i++) {
        const char *t = enc->tokens[i];
        int special = enc->special[i];
        if (is_cls_token(t)) cls[roles.n_cls++] = i;
        if (is_sep_token(t)) sep[roles.n_sep++] = i;
        if (!special && !is_cls_token(t) && !is_sep_token(t) && is_punct_token(t))
            punct[roles.n_punct++] = i;
        int32_t id = enc->ids[i];
        freq[i] = (special || id < 0) ? INFINITY : r->freq_count[id];
    }
    roles.cls = cls;
    roles.sep = sep;
    roles.punct = punct;
    roles.freq = freq;
    ats_status st = ats_headstats_add(r->hs, view, &roles, err);
    free(buf);
    free(freq);
    return st;
}

/* One line of the corpus: encoded and run in parallel with other lines (job_prepare), then
 * added to the sums in line order (job_consume), so the result does not depend on the number
 * of threads. Every forward pass runs single-threaded: OpenBLAS's results depend on its
 * thread count, the sums must not. */
typedef struct line_job {
    char *text;
    size_t len, line_no;
    ats_encoding enc[2];
    size_t n[2];
    int too_long;
    ats_forward_result res[2];
    double *dline; /* [N][N] this line's head distances */
    size_t words;  /* joint: words both models cover */
    ats_status st;
    ats_error err;
} line_job;

static ats_status pool_joint(const hrun *r, line_job *job, double **doc_out, size_t *w_out,
                             ats_error *err);

static void job_prepare(const hrun *r, line_job *j) {
    for (int k = 0; k < r->n_models; k++) {
        int tl;
        j->st = encode_line(r, &r->models[k], j->text, j->len, j->line_no, &j->enc[k], &j->n[k],
                            &tl, &j->err);
        if (j->st) return;
        j->too_long |= tl;
    }
    for (int k = 0; k < r->n_models; k++)
        if (j->n[k] == 0) return;
    for (int k = 0; k < r->n_models; k++) {
        ats_model_input in = {j->enc[k].ids, NULL, NULL, j->n[k]};
        j->st = ats_model_forward(r->models[k].m, &in, &r->fopts, &j->res[k], &j->err);
        if (j->st) {
            prefix_error(&j->err, j->st, r->a->corpus, j->line_no);
            return;
        }
    }
    /* this line's head distances, single-threaded (lines run in parallel) */
    double *doc = NULL;
    ats_attn view;
    if (r->n_models == 2) {
        j->st = pool_joint(r, j, &doc, &j->words, &j->err);
        if (j->st || j->words == 0) return;
        view = (ats_attn){ATS_F64, doc, 1, r->N, j->words, r->a->corpus};
    } else {
        const hmodel *hm = &r->models[0];
        view = (ats_attn){ATS_F32, j->res[0].attention, hm->L, hm->H, j->n[0], r->a->corpus};
    }
    ats_measure_opts o = r->mopts;
    o.n_threads = 1;
    ats_headdist *hd = NULL;
    j->dline = malloc(r->N * r->N * sizeof *j->dline);
    if (!j->dline)
        j->st = ats_error_set(&j->err, ATS_ERR_NOMEM, "out of memory");
    else
        j->st =
            ats_headdist_new(view.L, view.H, r->a->clark ? ATS_HEADDIST_CLARK : ATS_HEADDIST_SEED,
                             ATS_HEADDIST_ALL, &o, &hd, &j->err);
    if (!j->st) j->st = ats_headdist_add(hd, &view, &j->err);
    if (!j->st) j->st = ats_headdist_result(hd, j->dline, &j->err);
    if (j->st) prefix_error(&j->err, j->st, r->a->corpus, j->line_no);
    ats_headdist_free(hd);
    free(doc);
}

static void job_free(line_job *j) {
    for (int k = 0; k < 2; k++) {
        ats_forward_result_free(&j->res[k]);
        ats_encoding_free(&j->enc[k]);
    }
    free(j->text);
    free(j->dline);
    memset(j, 0, sizeof *j);
}

static void neumaier_add(double *sum, double *comp, const double *v, size_t n) {
    for (size_t i = 0; i < n; i++) {
        double s0 = sum[i], u = s0 + v[i];
        comp[i] += fabs(s0) >= fabs(v[i]) ? (s0 - u) + v[i] : (v[i] - u) + s0;
        sum[i] = u;
    }
}

static ats_status job_consume(hrun *r, line_job *j, ats_error *err) {
    if (j->st) {
        if (err) *err = j->err;
        return j->st;
    }
    if (j->too_long) {
        if (r->a->skip_long || r->n_models == 2) {
            r->counts[C_SKIPPED_LONG]++;
            return ATS_OK;
        }
        r->counts[C_TRUNC_LINES]++;
        r->counts[C_TRUNC_TOKENS] += j->enc[0].count - j->n[0];
    }
    if (j->n[0] == 0) return ATS_OK;
    if (r->n_models == 2 && j->words == 0) {
        r->counts[C_NOWORDS]++;
        return ATS_OK;
    }
    neumaier_add(r->csum, r->ccomp, j->dline, r->N * r->N);
    r->counts[C_TEXTS]++;
    r->counts[C_TOKENS] += j->n[0] + j->n[1];
    r->counts[C_WORDS] += j->words;
    ats_status st = ATS_OK;
    if (r->hs) {
        hmodel *hm = &r->models[0];
        ats_attn view = {ATS_F32, j->res[0].attention, hm->L, hm->H, j->n[0], r->a->corpus};
        st = add_stats(r, &j->enc[0], j->n[0], &view, err);
        if (st) prefix_error(err, st, r->a->corpus, j->line_no);
    }
    return st;
}

/* White-space words of text: word_of[i] for each token of enc (-1 for special tokens and
 * tokens outside any word). Returns the number of words. */
static size_t words_of_tokens(const char *text, size_t len, const ats_encoding *enc, size_t n,
                              int32_t *word_of) {
    /* word index of each byte: -1 on white space */
    size_t words = 0;
    for (size_t i = 0; i < n; i++) word_of[i] = -1;
    int32_t *byte_word = malloc((len ? len : 1) * sizeof *byte_word);
    if (!byte_word) return 0;
    int in_word = 0;
    for (size_t b = 0; b < len; b++) {
        int space = isspace((unsigned char)text[b]);
        if (space) {
            byte_word[b] = -1;
            in_word = 0;
        } else {
            if (!in_word) words++;
            in_word = 1;
            byte_word[b] = (int32_t)(words - 1);
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (enc->special[i]) continue;
        size_t s = enc->offsets[2 * i], e = enc->offsets[2 * i + 1];
        for (size_t b = s; b < e && b < len; b++)
            if (byte_word[b] >= 0) {
                word_of[i] = byte_word[b];
                break;
            }
    }
    free(byte_word);
    return words;
}

/* Joint: both models on one line, attention pooled to the words both models cover. */
static ats_status pool_joint(const hrun *r, line_job *job, double **doc_out, size_t *w_out,
                             ats_error *err) {
    double *doc = NULL;
    *doc_out = NULL;
    *w_out = 0;
    const ats_encoding *enc = job->enc;
    const ats_forward_result *res = job->res;
    const size_t *n = job->n;
    const char *text = job->text;
    size_t len = job->len, line_no = job->line_no;
    int32_t *word_of[2] = {NULL, NULL};
    int32_t *wmap = NULL;
    size_t *wtok = NULL;
    ats_status st = ATS_OK;
    size_t words = 0;
    for (int k = 0; k < 2; k++) {
        word_of[k] = malloc((n[k] ? n[k] : 1) * sizeof *word_of[k]);
        if (!word_of[k]) {
            st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
            goto done;
        }
        words = words_of_tokens(text, len, &enc[k], n[k], word_of[k]);
    }
    /* keep the words that have tokens in both models */
    wmap = malloc((words ? words : 1) * sizeof *wmap);
    wtok = calloc(2 * (words ? words : 1), sizeof *wtok);
    if (!wmap || !wtok) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        goto done;
    }
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < n[k]; i++)
            if (word_of[k][i] >= 0) wtok[2 * (size_t)word_of[k][i] + (size_t)k]++;
    size_t w = 0;
    for (size_t u = 0; u < words; u++)
        wmap[u] = (wtok[2 * u] && wtok[2 * u + 1]) ? (int32_t)w++ : -1;
    if (w == 0) goto done;
    size_t Ntot = r->N, need;
    if (!ats_size_mul(Ntot, w, &need) || !ats_size_mul(need, w, &need)) {
        st = ats_error_set(err, ATS_ERR_RANGE, "%s:%zu: too many words", r->a->corpus, line_no);
        goto done;
    }
    doc = calloc(need ? need : 1, sizeof *doc);
    if (!doc) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory for %zu words", w);
        goto done;
    }
    size_t base = 0;
    for (int k = 0; k < 2; k++) {
        const hmodel *hm = &r->models[k];
        size_t nk = n[k], ww = w * w;
        /* per word: number of query tokens */
        for (size_t a = 0; a < hm->N; a++) {
            const float *A = res[k].attention + a * nk * nk;
            double *W = doc + (base + a) * ww;
            for (size_t i = 0; i < nk; i++) {
                int32_t ui = word_of[k][i] >= 0 ? wmap[word_of[k][i]] : -1;
                if (ui < 0) continue;
                double qn = (double)wtok[2 * (size_t)word_of[k][i] + (size_t)k];
                for (size_t j = 0; j < nk; j++) {
                    int32_t vj = word_of[k][j] >= 0 ? wmap[word_of[k][j]] : -1;
                    if (vj < 0) continue;
                    W[(size_t)ui * w + (size_t)vj] += (double)A[i * nk + j] / qn;
                }
            }
        }
        base += hm->N;
    }
    *doc_out = doc;
    *w_out = w;
    doc = NULL;
done:
    free(doc);
    if (st) prefix_error(err, st, r->a->corpus, line_no);
    for (int k = 0; k < 2; k++) free(word_of[k]);
    free(wmap);
    free(wtok);
    return st;
}

/* ---- token frequencies for the rare-token statistic (a tokenizer-only pass) */

static ats_status count_frequencies(hrun *r, ats_error *err) {
    hmodel *hm = &r->models[0];
    size_t V = ats_tokenizer_vocab_size(hm->tok);
    if ((size_t)hm->mi->vocab_size > V) V = (size_t)hm->mi->vocab_size;
    r->freq_count = calloc(V ? V : 1, sizeof *r->freq_count);
    if (!r->freq_count) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    heads_corpus c;
    ats_status st = heads_corpus_open(&c, r->a->corpus, -1, MAX_LINE_BYTES, err);
    if (st) return st;
    heads_line_kind kind;
    int got;
    while ((got = heads_corpus_next(&c, &kind, err)) == 1) {
        if (r->a->max_lines && c.line_no > (size_t)r->a->max_lines) break;
        if (kind != HEADS_LINE_TEXT) continue;
        ats_encoding enc = {0};
        if (ats_tokenizer_encode(hm->tok, c.text, c.len, 1, &enc, NULL) == ATS_OK)
            for (size_t i = 0; i < enc.count; i++)
                if (enc.ids[i] >= 0 && (size_t)enc.ids[i] < V) r->freq_count[enc.ids[i]] += 1;
        ats_encoding_free(&enc);
    }
    heads_corpus_close(&c);
    return got < 0 ? ATS_ERR_IO : ATS_OK;
}

/* ---- the corpus pass: D summed chunk by chunk in chunk order */

/* Runs the batched lines (forward passes in parallel, one per thread) and adds them in order. */
static ats_status flush_jobs(hrun *r, line_job *jobs, size_t *nb, ats_error *err) {
    size_t count = *nb;
    *nb = 0;
    int nt = r->line_threads;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (size_t i = 0; i < count; i++) job_prepare(r, &jobs[i]);
    ats_status st = ATS_OK;
    for (size_t i = 0; i < count; i++) {
        if (!st) st = job_consume(r, &jobs[i], err);
        job_free(&jobs[i]);
    }
    return st;
}

static ats_status corpus_pass(hrun *r, double *D, ats_error *err) {
    const hargs *a = r->a;
    size_t N = r->N, NN = N * N;
    double *sum = calloc(NN, sizeof *sum), *comp = calloc(NN, sizeof *comp),
           *part = calloc(NN, sizeof *part);
    r->csum = calloc(NN, sizeof *r->csum);
    r->ccomp = calloc(NN, sizeof *r->ccomp);
    if (!sum || !comp || !part || !r->csum || !r->ccomp) {
        free(sum);
        free(comp);
        free(part);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory for %zu heads", N);
    }
    heads_corpus c;
    ats_status st = heads_corpus_open(&c, a->corpus, -1, MAX_LINE_BYTES, err);
    if (st) {
        free(sum);
        free(comp);
        free(part);
        return st;
    }
    progress pg = {a->quiet || r->mpi->rank != 0, isatty(2), now_s(), now_s(), c.size};
    size_t chunk_lines = (size_t)a->chunk_lines, chunk = 0, in_chunk = 0;
    int mine = 1; /* this rank owns the current chunk */
    int open = 0; /* a chunk has started */
    heads_line_kind kind;
    int got;
    size_t nb = 0, batch = (size_t)r->line_threads;
    line_job *jobs = calloc(batch, sizeof *jobs);
    if (!jobs) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    while (!st) {
        got = heads_corpus_next(&c, &kind, err);
        int at_end = got != 1 || (a->max_lines && c.line_no > (size_t)a->max_lines);
        if (open && (at_end || in_chunk == chunk_lines)) { /* close the chunk */
            if (nb) st = flush_jobs(r, jobs, &nb, err);
            if (st) break;
            int owner = (int)(chunk % (size_t)r->mpi->size);
            if (r->mpi->rank == 0) {
                if (owner == 0)
                    for (size_t i = 0; i < NN; i++) part[i] = r->csum[i] + r->ccomp[i];
                else
                    heads_mpi_recv(r->mpi, owner, chunk, part, NN);
                if (!st) neumaier_add(sum, comp, part, NN);
            } else if (owner == r->mpi->rank) {
                for (size_t i = 0; i < NN; i++) part[i] = r->csum[i] + r->ccomp[i];
                heads_mpi_send(r->mpi, chunk, part, NN);
            }
            open = 0;
            chunk++;
            in_chunk = 0;
            if (st) break;
        }
        if (got < 0) {
            st = ATS_ERR_IO;
            break;
        }
        if (at_end) break;
        if (!open) {
            mine = (int)(chunk % (size_t)r->mpi->size) == r->mpi->rank;
            if (mine) {
                memset(r->csum, 0, NN * sizeof *r->csum);
                memset(r->ccomp, 0, NN * sizeof *r->ccomp);
            }
            open = 1;
        }
        in_chunk++;
        if (!mine) continue;
        r->counts[C_LINES]++;
        switch (kind) {
        case HEADS_LINE_EMPTY:
            r->counts[C_EMPTY]++;
            if (!r->first.empty) r->first.empty = c.line_no;
            continue;
        case HEADS_LINE_BADUTF:
            r->counts[C_BADUTF]++;
            if (!r->first.badutf) r->first.badutf = c.line_no;
            continue;
        case HEADS_LINE_BADJSON:
            r->counts[C_BADJSON]++;
            if (!r->first.badjson) r->first.badjson = c.line_no;
            continue;
        case HEADS_LINE_LONG:
            r->counts[C_HUGE]++;
            if (!r->first.huge) r->first.huge = c.line_no;
            continue;
        case HEADS_LINE_TEXT:
            break;
        }
        line_job *j = &jobs[nb];
        j->text = malloc(c.len + 1);
        if (!j->text) {
            st = ats_error_set(err, ATS_ERR_NOMEM, "%s:%zu: out of memory", a->corpus, c.line_no);
            break;
        }
        memcpy(j->text, c.text, c.len + 1);
        j->len = c.len;
        j->line_no = c.line_no;
        if (++nb == batch) {
            st = flush_jobs(r, jobs, &nb, err);
            if (st) break;
            progress_show(&pg, &c, r->counts[C_TOKENS], r->mpi->size, 0);
        }
    }
    for (size_t i = 0; jobs && i < nb; i++) job_free(&jobs[i]);
    free(jobs);
    if (!st) progress_show(&pg, &c, r->counts[C_TOKENS], r->mpi->size, 1);
    heads_corpus_close(&c);
    if (!st)
        for (size_t i = 0; i < NN; i++) D[i] = sum[i] + comp[i];
    free(sum);
    free(comp);
    free(part);
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

/* Persistence, dendrogram, MDS and clusters of the N heads whose distances are lower
 * (mean per token). prefix names the files ("" or "joint_"). dg receives H0 and H1 (owned by the
 * caller) when not NULL. */
typedef struct analysis_in {
    const char *dir, *prefix, *title;
    size_t N;
    const double *lower;
    char **names;
    const int *layer;  /* [N] */
    size_t n_layers;   /* colour groups */
    const int *shapes; /* [N] or NULL */
    const char *const *shape_names;
    size_t n_shapes;
    int scale_given;
    double scale;
} analysis_in;

typedef struct analysis_out {
    ats_diagram dg[2];
    double scale;
    size_t n_clusters;
    int32_t *labels;
} analysis_out;

static ats_status analyse_heads(const analysis_in *in, analysis_out *out, ats_error *err) {
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
    char title[256];
    snprintf(title, sizeof title, "%s: persistence of the heads", in->title);
    fo.title = title;
    if (!st) {
        snprintf(name, sizeof name, "%s/%sbarcode.png", in->dir, in->prefix);
        st = ats_render_barcode(name, 2, rr.dims, dims, &fo, err);
    }
    if (!st) {
        snprintf(name, sizeof name, "%s/%sdiagram.png", in->dir, in->prefix);
        st = ats_render_diagram(name, 2, rr.dims, dims, &fo, err);
    }
    if (st) goto done;
    /* dendrogram and clusters */
    if (N >= 2) st = heads_single_linkage(N, in->lower, merges, err);
    if (st) goto done;
    names_ctx nc = {N, in->names, out->labels, 0, 0, merges, xy};
    snprintf(name, sizeof name, "%sdendrogram.csv", in->prefix);
    if (N >= 2) st = write_text(in->dir, name, write_dendrogram, &nc, err);
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
    st = write_text(in->dir, name, write_clusters, &nc, err);
    if (st) goto done;
    /* MDS coloured by layer */
    if (N >= 2)
        st = heads_mds(N, in->lower, 2, xy, err);
    else
        xy[0] = xy[1] = 0;
    if (st) goto done;
    snprintf(name, sizeof name, "%smds.csv", in->prefix);
    st = write_text(in->dir, name, write_mds, &nc, err);
    if (st) goto done;
    ats_scatter_options so;
    ats_scatter_options_init(&so);
    snprintf(title, sizeof title, "%s: MDS of the heads", in->title);
    so.fig.title = title;
    so.labels = (const char *const *)in->names;
    so.groups = in->layer;
    so.n_groups = in->n_layers;
    so.legend_title = "layer";
    so.shapes = in->shapes;
    so.shape_names = in->shape_names;
    so.n_shapes = in->n_shapes;
    so.x_title = "MDS 1";
    so.y_title = "MDS 2";
    snprintf(name, sizeof name, "%s/%smds.png", in->dir, in->prefix);
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

static void analysis_out_free(analysis_out *o) {
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
    char *path = st ? NULL : path_join(dir, file);
    if (!st && !path) st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    if (!st) {
        ats_heatmap_options ho;
        ats_heatmap_options_init(&ho);
        ho.fig.title = title;
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

static ats_status write_stats(hrun *r, ats_error *err) {
    hmodel *hm = &r->models[0];
    size_t L = hm->L, H = hm->H, LH = L * H;
    double *v = malloc(ATS_STAT_COUNT * LH * sizeof *v);
    if (!v) return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    ats_status st = ats_headstats_result(r->hs, v, err);
    stats_ctx sc = {L, H, v};
    if (!st) st = write_text(r->a->out_dir, "stats.csv", write_stats_csv, &sc, err);
    size_t shape[3] = {ATS_STAT_COUNT, L, H};
    if (!st) st = write_npy_in(r->a->out_dir, "stats.npy", 3, shape, v, err);
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
        snprintf(file, sizeof file, "stats_%s.png", ats_head_stat_name(figs[i].s));
        st = heatmap_LH(r->a->out_dir, file, figs[i].title, figs[i].unit, L, H,
                        v + (size_t)figs[i].s * LH, err);
    }
    free(v);
    return st;
}

/* ---- importance by ablation */

typedef struct abl_line {
    int32_t *ids, *input, *labels;
    size_t n;
    float *hidden; /* [n][d] final hidden states of the full model (no LM head) */
} abl_line;

typedef struct abl_ctx {
    size_t L, H, N, steps;
    const double *single, *keep, *order_loss;
    const size_t *order_k;
    double base;
    int lm;
    char **names;
    const size_t *order;
} abl_ctx;

static void write_ablation_csv(FILE *fp, const void *p) {
    const abl_ctx *c = p;
    fprintf(fp, "head,layer,index,%s_masked,importance,%s_only_head_of_layer\n",
            c->lm ? "loss" : "hidden_change", c->lm ? "loss" : "hidden_change");
    for (size_t a = 0; a < c->N; a++)
        fprintf(fp, "%s,%zu,%zu,%.17g,%.17g,%.17g\n", c->names[a], a / c->H, a % c->H, c->single[a],
                c->single[a] - c->base, c->keep[a]);
}

static void write_pruning_csv(FILE *fp, const void *p) {
    const abl_ctx *c = p;
    fprintf(fp, "heads_removed,%s,last_removed\n", c->lm ? "loss" : "hidden_change");
    for (size_t s = 0; s < c->steps; s++)
        fprintf(fp, "%zu,%.17g,%s\n", c->order_k[s], c->order_loss[s],
                c->order_k[s] ? c->names[c->order[c->order_k[s] - 1]] : "");
}

static const double *g_sort_key;
static int cmp_by_key(const void *x, const void *y) {
    size_t a = *(const size_t *)x, b = *(const size_t *)y;
    if (g_sort_key[a] != g_sort_key[b]) return g_sort_key[a] < g_sort_key[b] ? -1 : 1;
    return a < b ? -1 : a > b;
}

/* The measure over the ablation lines with a head mask: mean LM loss over all labelled
 * positions, or the mean relative change of the final hidden states. Lines run in parallel
 * (single-threaded forward passes); their sums are added in line order. */
static ats_status abl_measure(hrun *r, abl_line *lines, size_t count, const float *mask, int lm,
                              double *out, ats_error *err) {
    hmodel *hm = &r->models[0];
    ats_forward_options fo = r->fopts;
    fo.capture = lm ? 0 : ATS_CAPTURE_HIDDEN;
    fo.head_mask = mask;
    double *tot = calloc(count, sizeof *tot);
    size_t *pos = calloc(count, sizeof *pos);
    ats_status *sts = calloc(count, sizeof *sts);
    ats_error *errs = calloc(count, sizeof *errs);
    if (!tot || !pos || !sts || !errs) {
        free(tot);
        free(pos);
        free(sts);
        free(errs);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
#pragma omp parallel for schedule(dynamic, 1) num_threads(r->line_threads)
    for (size_t i = 0; i < count; i++) {
        ats_model_input in = {lines[i].input, NULL, lm ? lines[i].labels : NULL, lines[i].n};
        ats_forward_result res = {0};
        sts[i] = ats_model_forward(hm->m, &in, &fo, &res, &errs[i]);
        if (sts[i]) continue;
        if (lm) {
            if (res.loss_count) {
                tot[i] = res.loss * (double)res.loss_count;
                pos[i] = res.loss_count;
            }
        } else {
            size_t n = res.n_tokens, d = res.d_model;
            const float *h = res.hidden + hm->L * n * d;
            if (!mask) memcpy(lines[i].hidden, h, n * d * sizeof(float));
            for (size_t t = 0; t < n; t++) {
                double diff = 0, norm = 0;
                for (size_t k = 0; k < d; k++) {
                    double x = lines[i].hidden[t * d + k], y = h[t * d + k];
                    diff += (x - y) * (x - y);
                    norm += x * x;
                }
                tot[i] += norm > 0 ? sqrt(diff / norm) : 0;
            }
            pos[i] = n;
        }
        ats_forward_result_free(&res);
    }
    ats_status st = ATS_OK;
    double total = 0;
    size_t positions = 0;
    for (size_t i = 0; i < count; i++) {
        if (sts[i] && !st) {
            st = sts[i];
            if (err) *err = errs[i];
        }
        total += tot[i];
        positions += pos[i];
    }
    free(tot);
    free(pos);
    free(sts);
    free(errs);
    *out = positions ? total / (double)positions : NAN;
    return st;
}

static ats_status run_ablation(hrun *r, char **names, ats_error *err) {
    hmodel *hm = &r->models[0];
    size_t L = hm->L, H = hm->H, N = hm->N, d = (size_t)hm->mi->d_model;
    int32_t mask_id = ats_tokenizer_token_to_id(hm->tok, "[MASK]");
    if (mask_id < 0) mask_id = ats_tokenizer_token_to_id(hm->tok, "<mask>");
    int lm = hm->mi->has_lm_head && (hm->mi->causal || mask_id >= 0);
    size_t cap = (size_t)r->a->ablation_lines, count = 0;
    abl_line *lines = calloc(cap, sizeof *lines);
    float *mask = malloc(N * sizeof *mask);
    double *single = malloc(N * sizeof *single), *keep = malloc(N * sizeof *keep);
    size_t *order = malloc(N * sizeof *order);
    size_t step = (N + 19) / 20, steps_cap = N / step + 2; /* about 20 points, both ends */
    double *order_loss = malloc(steps_cap * sizeof *order_loss);
    size_t *order_k = malloc(steps_cap * sizeof *order_k);
    ats_status st = ATS_OK;
    if (!lines || !mask || !single || !keep || !order || !order_loss || !order_k) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        goto done;
    }
    /* the first ablation_lines usable lines, tokenized once */
    heads_corpus c;
    st = heads_corpus_open(&c, r->a->corpus, -1, MAX_LINE_BYTES, err);
    if (st) goto done;
    heads_line_kind kind;
    int got;
    while (count < cap && (got = heads_corpus_next(&c, &kind, err)) == 1) {
        if (r->a->max_lines && c.line_no > (size_t)r->a->max_lines) break;
        if (kind != HEADS_LINE_TEXT) continue;
        ats_encoding enc = {0};
        size_t n;
        int too_long;
        st = encode_line(r, hm, c.text, c.len, c.line_no, &enc, &n, &too_long, err);
        if (st) break;
        if (n > 0) {
            abl_line *ln = &lines[count];
            ln->n = n;
            ln->ids = malloc(n * sizeof *ln->ids);
            ln->input = malloc(n * sizeof *ln->input);
            ln->labels = malloc(n * sizeof *ln->labels);
            ln->hidden = lm ? NULL : malloc(n * d * sizeof *ln->hidden);
            if (!ln->ids || !ln->input || !ln->labels || (!lm && !ln->hidden)) {
                ats_encoding_free(&enc);
                count++;
                st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
                break;
            }
            memcpy(ln->ids, enc.ids, n * sizeof *ln->ids);
            memcpy(ln->input, enc.ids, n * sizeof *ln->input);
            if (hm->mi->causal) {
                memcpy(ln->labels, enc.ids, n * sizeof *ln->labels);
            } else { /* masked LM: every 6th ordinary token, offset by the line number */
                size_t ord = count % 6, picked = 0;
                for (size_t i = 0; i < n; i++) {
                    ln->labels[i] = -100;
                    if (enc.special[i]) continue;
                    if (ord++ % 6 == 0 && mask_id >= 0) {
                        ln->labels[i] = enc.ids[i];
                        ln->input[i] = mask_id;
                        picked++;
                    }
                }
                (void)picked;
            }
            count++;
        }
        ats_encoding_free(&enc);
    }
    heads_corpus_close(&c);
    if (st) goto done;
    if (count == 0) {
        st = ats_error_set(err, ATS_ERR_INVALID, "%s: no usable line for the ablation",
                           r->a->corpus);
        goto done;
    }
    double base;
    st = abl_measure(r, lines, count, NULL, lm, &base, err);
    for (size_t a = 0; !st && a < N; a++) { /* each head masked */
        for (size_t b = 0; b < N; b++) mask[b] = b == a ? 0.0f : 1.0f;
        st = abl_measure(r, lines, count, mask, lm, &single[a], err);
    }
    for (size_t a = 0; !st && a < N; a++) { /* all but head a of its layer masked */
        size_t l = a / H;
        for (size_t b = 0; b < N; b++) mask[b] = (b / H == l && b != a) ? 0.0f : 1.0f;
        st = abl_measure(r, lines, count, mask, lm, &keep[a], err);
    }
    if (st) goto done;
    /* pruning: remove heads in order of increasing importance */
    for (size_t a = 0; a < N; a++) order[a] = a;
    g_sort_key = single;
    qsort(order, N, sizeof *order, cmp_by_key);
    size_t steps = 0;
    for (size_t k = 0; !st && steps < steps_cap; k += step) {
        if (k > N) k = N;
        for (size_t b = 0; b < N; b++) mask[b] = 1.0f;
        for (size_t j = 0; j < k; j++) mask[order[j]] = 0.0f;
        order_k[steps] = k;
        st = abl_measure(r, lines, count, mask, lm, &order_loss[steps], err);
        steps++;
        if (k == N) break;
    }
    if (st) goto done;
    abl_ctx ac = {L, H, N, steps, single, keep, order_loss, order_k, base, lm, names, order};
    st = write_text(r->a->out_dir, "ablation.csv", write_ablation_csv, &ac, err);
    if (!st) st = write_text(r->a->out_dir, "pruning.csv", write_pruning_csv, &ac, err);
    if (!st) {
        double *imp = malloc(N * sizeof *imp);
        if (!imp) {
            st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (size_t a = 0; a < N; a++) imp[a] = single[a] - base;
        char title[160];
        snprintf(title, sizeof title, "%s",
                 lm ? "importance: LM loss with the head masked minus the full model's"
                    : "importance: change of the final hidden states with the head masked");
        st = heatmap_LH(r->a->out_dir, "importance.png", title, lm ? "Δ loss" : "Δ hidden", L, H,
                        imp, err);
        free(imp);
    }
    if (!st) {
        double *xs = malloc(steps * sizeof *xs);
        if (!xs) {
            st = ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (size_t k = 0; k < steps; k++) xs[k] = (double)order_k[k];
        ats_series series = {lm ? "LM loss" : "hidden-state change", steps, xs, order_loss};
        ats_lines_options lo;
        ats_lines_options_init(&lo);
        lo.fig.title = "pruning: heads removed in order of importance";
        lo.x_title = "heads removed";
        lo.y_title = lm ? "LM loss" : "hidden-state change";
        char *path = path_join(r->a->out_dir, "pruning.png");
        st = path ? ats_render_lines(path, 1, &series, &lo, err)
                  : ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        free(path);
        free(xs);
    }
    if (!st) {
        printf("ablation (%zu lines, %s): base %.6f; most important:", count,
               lm ? "LM loss" : "relative change of the final hidden states", base);
        for (size_t j = 0; j < N && j < 5; j++)
            printf(" %s (%+.4f)", names[order[N - 1 - j]], single[order[N - 1 - j]] - base);
        printf("\n");
    }
done:
    for (size_t i = 0; lines && i < count; i++) {
        free(lines[i].ids);
        free(lines[i].input);
        free(lines[i].labels);
        free(lines[i].hidden);
    }
    free(lines);
    free(mask);
    free(single);
    free(keep);
    free(order);
    free(order_loss);
    free(order_k);
    return st;
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
    const unsigned long long *c = r->counts;
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
            r->a->clark ? "clark" : "seed_sqrt_js", r->mpi->size, c[C_LINES], c[C_TEXTS],
            c[C_TOKENS], c[C_WORDS], c[C_EMPTY], c[C_BADUTF], c[C_BADJSON], c[C_HUGE],
            c[C_SKIPPED_LONG], c[C_NOWORDS], c[C_TRUNC_LINES], c[C_TRUNC_TOKENS], s->seconds,
            s->seconds > 0 ? (double)c[C_TOKENS] / s->seconds : 0.0);
    if (s->ao) {
        fprintf(fp, ",\n  \"scale\": %.17g,\n  \"clusters\": %zu,\n  \"h0\": %zu,\n  \"h1\": %zu",
                s->ao->scale, s->ao->n_clusters, s->ao->dg[0].count, s->ao->dg[1].count);
    }
    if (s->joint)
        fprintf(fp,
                ",\n  \"between_models\": {\"bottleneck_h0\": %.17g, \"bottleneck_h1\": %.17g, "
                "\"wasserstein1_h0\": %.17g, \"wasserstein1_h1\": %.17g}",
                s->joint[0], s->joint[1], s->joint[2], s->joint[3]);
    fprintf(fp, "\n}\n");
}

static void print_summary(const hrun *r, double seconds) {
    const unsigned long long *c = r->counts;
    printf("heads: %llu lines, %llu texts, %llu tokens in %.2f s (%.0f tokens/s)%s\n", c[C_LINES],
           c[C_TEXTS], c[C_TOKENS], seconds, seconds > 0 ? (double)c[C_TOKENS] / seconds : 0.0,
           r->mpi->size > 1 ? " over MPI ranks" : "");
    printf("skipped: %llu empty, %llu invalid UTF-8", c[C_EMPTY], c[C_BADUTF]);
    if (r->mpi->size == 1 && r->first.badutf) printf(" (first: line %zu)", r->first.badutf);
    printf(", %llu bad JSONL", c[C_BADJSON]);
    if (r->mpi->size == 1 && r->first.badjson) printf(" (first: line %zu)", r->first.badjson);
    printf(", %llu over 1 MiB, %llu too long for the model%s\n", c[C_HUGE], c[C_SKIPPED_LONG],
           r->n_models == 2 ? " (joint runs skip them)" : "");
    printf("truncated: %llu lines (%llu tokens dropped)\n", c[C_TRUNC_LINES], c[C_TRUNC_TOKENS]);
    if (r->n_models == 2)
        printf("words: %llu (lines without a common word: %llu)\n", c[C_WORDS], c[C_NOWORDS]);
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
    int have_ao = 0;
    double t0 = now_s();
    for (int k = 0; k < a.n_models; k++)
        if (hmodel_load(&r.models[k], a.models[k], a.max_tokens, &err)) {
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
    ats_measure_opts_init(&r.mopts);
    int threads = (int)a.threads;
    if (threads == 0 && mpi.size > 1) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores > mpi.size ? (int)(cores / mpi.size) : 1;
    }
    if (threads == 0) threads = omp_get_max_threads();
    if (threads < 1) threads = 1;
    r.mopts.n_threads = threads;
    r.line_threads = threads;
    if (a.n_models == 2) r.mopts.normalize = 1; /* word rows lose the special tokens' mass */
    ats_forward_options_init(&r.fopts);
    /* lines run in parallel, each pass single-threaded: OpenBLAS's thread count is set once
     * here (it is process-global) and the passes leave it alone */
    openblas_set_num_threads(1);
    r.fopts.n_threads = 0;
    if (a.out_dir && mpi.rank == 0 && ats_dir_create(a.out_dir, &err)) {
        rc = fail(&mpi, &err);
        goto done;
    }
    if (a.stats) {
        if (count_frequencies(&r, &err) ||
            ats_headstats_new(r.models[0].L, r.models[0].H, &r.mopts, &r.hs, &err)) {
            rc = fail(&mpi, &err);
            goto done;
        }
    }
    D = malloc(NN * sizeof *D);
    names = calloc(N, sizeof *names);
    layer = malloc(N * sizeof *layer);
    shapes = malloc(N * sizeof *shapes);
    size_t nlower = N * (N - 1) / 2;
    lower = malloc((nlower ? nlower : 1) * sizeof *lower);
    if (!D || !names || !layer || !shapes || !lower) {
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
    if (corpus_pass(&r, D, &err)) {
        rc = fail(&mpi, &err);
        goto done;
    }
    heads_mpi_sum_counts(&mpi, r.counts, C_COUNT);
    double seconds = now_s() - t0;
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
        if (write_npy_in(a.out_dir, "D.npy", 2, shape, D, &err)) {
            rc = ats_cli_fail(&err);
            goto done;
        }
        /* the analyses use the mean distance per token (or word): √JS ∈ [0, 1] */
        double units = (double)(a.n_models == 2 ? r.counts[C_WORDS] : r.counts[C_TOKENS]);
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
            if (analyse_heads(&ai, &ao, &err)) {
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
                            lk[i * (i - 1) / 2 + j] = D[(off + i) * N + off + j];
                    char prefix[16], title[128];
                    snprintf(prefix, sizeof prefix, "model%d_", k + 1);
                    snprintf(title, sizeof title, "model %d (%s), word level", k + 1, snames[k]);
                    analysis_in sk = {a.out_dir,   prefix,      title,         Nk,   lk,
                                      names + off, layer + off, r.models[k].L, NULL, NULL,
                                      0,           1,           ao.scale};
                    st = analyse_heads(&sk, &sub[k], &err);
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
                analysis_out_free(&sub[0]);
                analysis_out_free(&sub[1]);
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
        if (r.hs) {
            if (write_stats(&r, &err)) {
                rc = ats_cli_fail(&err);
                goto done;
            }
            if (mpi.size > 1) printf("stats: computed by rank 0 over its share of the corpus\n");
        }
        if (a.ablation && run_ablation(&r, names, &err)) {
            rc = ats_cli_fail(&err);
            goto done;
        }
        summary_ctx sc = {&r, seconds, have_ao ? &ao : NULL, have_between ? between : NULL};
        if (write_text(a.out_dir, "summary.json", write_summary, &sc, &err)) {
            rc = ats_cli_fail(&err);
            goto done;
        }
    }
done:
    if (have_ao) analysis_out_free(&ao);
    for (size_t i = 0; names && i < r.N; i++) free(names[i]);
    free(names);
    free(layer);
    free(shapes);
    free(D);
    free(lower);
    free(r.freq_count);
    free(r.csum);
    free(r.ccomp);

    ats_headstats_free(r.hs);
    for (int k = 0; k < a.n_models; k++) hmodel_free(&r.models[k]);
    fflush(stdout);
    heads_mpi_stop(&mpi);
    return rc;
}
