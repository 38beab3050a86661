/* attnscope attention: run a model on a text, token ids or an image and write every head. */
#include "cli.h"
#include "attnscope/model.h"
#include "attnscope/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char USAGE[] =
    "usage: attnscope attention --model M (--text T | --ids I,J,.. | --image FILE) [options]\n"
    "\n"
    "Runs the model and captures the attention probabilities of every layer and head (float32,\n"
    "layers and heads 0-based as transformers' outputs.attentions). M is a directory in\n"
    "HuggingFace layout, a model name in the HuggingFace cache, or a GGUF file (llama\n"
    "architecture, its tokenizer inside). Text gets the special tokens the model adds by\n"
    "default ([CLS] … [SEP] for BERT, none for GPT-2, the BOS token of a GGUF file as\n"
    "transformers adds it). Without --npy prints a summary.\n"
    "\n"
    "  --text T            UTF-8 text, tokenized with the model's tokenizer\n"
    "  --ids I,J,..        token ids as they are (no special tokens added)\n"
    "  --token-types A,..  segment ids for --ids (BERT; default all 0)\n"
    "  --image FILE        PNG/JPEG image for a ViT model\n"
    "  --image-size H[xW]  resize the image to H x W pixels instead of the model's size; the\n"
    "                      patch position embeddings are interpolated (bicubic, as\n"
    "                      transformers' interpolate_pos_encoding=True)\n"
    "  --npy OUT.npy       attentions [L][H][n][n] (with --layer/--head: [n][n])\n"
    "  --hidden H.npy      hidden states [L+1][n][d]\n"
    "  --scores S.npy      pre-softmax scores QKᵀ/√d [L][H][n][n] (-inf where masked)\n"
    "  --logits Z.npy      language-model logits [n][V]\n"
    "  --layer l --head h  only that head (0-based)\n"
    "  --head-mask M.npy   float32 [L][H]: each head's probabilities are scaled by its entry\n"
    "                      (0 removes the head), as transformers' head_mask\n"
    "  --loss              print the language-model loss (GPT-2: next token over the input;\n"
    "                      masked-LM models: needs --labels)\n"
    "  --labels I,J,..     loss targets per position, -100 = ignored\n"
    "  --truncate          keep the first max-positions tokens of a longer input (text: as\n"
    "                      transformers' truncation=True, the closing special tokens stay)\n"
    "  --adapter DIR       merge a PEFT LoRA adapter (adapter_config.json,\n"
    "                      adapter_model.safetensors) into the model at load\n"
    "  --threads N         threads (default: as OpenBLAS/OpenMP are configured)\n"
    "  --repeat R          run the forward pass R times; print the median wall and CPU times\n";

typedef struct att_args {
    const char *model, *text, *ids, *types, *image, *npy, *hidden, *scores, *logits, *mask, *labels;
    long layer, head;
    int loss, truncate, threads, repeat;
    int image_h, image_w; /* --image-size; 0: the model's */
} att_args;

/* "1,2,3" → ids[count] (malloc'd) */
static int parse_ids(const char *s, int32_t **out, size_t *count) {
    size_t cap = 1;
    for (const char *p = s; *p; p++) cap += *p == ',';
    int32_t *v = malloc(cap * sizeof *v);
    if (!v) return 0;
    size_t n = 0;
    const char *p = s;
    while (*p) {
        char buf[32];
        size_t k = strcspn(p, ",");
        if (k == 0 || k >= sizeof buf) break;
        memcpy(buf, p, k);
        buf[k] = '\0';
        long x;
        if (!ats_cli_parse_long(buf, -2147483647L, 2147483647L, &x)) break;
        v[n++] = (int32_t)x;
        p += k;
        if (*p == ',') {
            p++;
            if (!*p) {
                n = 0;
                break;
            }
        }
    }
    if (*p || n == 0) {
        free(v);
        return 0;
    }
    *out = v;
    *count = n;
    return 1;
}

static double now_seconds(clockid_t clock) {
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *x, const void *y) {
    double p = *(const double *)x, q = *(const double *)y;
    return p < q ? -1 : p > q;
}

static int parse_args(int argc, char **argv, att_args *a) {
    memset(a, 0, sizeof *a);
    a->layer = a->head = -1;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
        const char **slot = NULL;
        if (!strcmp(s, "--help") || !strcmp(s, "-h")) {
            fputs(USAGE, stdout);
            return -1;
        } else if (!strcmp(s, "--model"))
            slot = &a->model;
        else if (!strcmp(s, "--text"))
            slot = &a->text;
        else if (!strcmp(s, "--ids"))
            slot = &a->ids;
        else if (!strcmp(s, "--token-types"))
            slot = &a->types;
        else if (!strcmp(s, "--image"))
            slot = &a->image;
        else if (!strcmp(s, "--npy"))
            slot = &a->npy;
        else if (!strcmp(s, "--hidden"))
            slot = &a->hidden;
        else if (!strcmp(s, "--scores"))
            slot = &a->scores;
        else if (!strcmp(s, "--logits"))
            slot = &a->logits;
        else if (!strcmp(s, "--head-mask"))
            slot = &a->mask;
        else if (!strcmp(s, "--labels"))
            slot = &a->labels;
        else if (!strcmp(s, "--loss"))
            a->loss = 1;
        else if (!strcmp(s, "--truncate"))
            a->truncate = 1;
        else if (!strcmp(s, "--image-size")) {
            /* H or HxW (pixels): transformers' size={"height": H, "width": W} with
             * interpolate_pos_encoding=True */
            if (!ats_cli_parse_image_size(v, &a->image_h, &a->image_w))
                return ats_cli_usage_error("attention", "--image-size needs H or HxW, 1..16384");
            i++;
        } else if (!strcmp(s, "--layer") || !strcmp(s, "--head") || !strcmp(s, "--threads") ||
                   !strcmp(s, "--repeat")) {
            long x;
            if (!v || !ats_cli_parse_long(v, 0, 1 << 20, &x))
                return ats_cli_usage_error("attention", "%s needs a non-negative integer", s);
            if (!strcmp(s, "--layer"))
                a->layer = x;
            else if (!strcmp(s, "--head"))
                a->head = x;
            else if (!strcmp(s, "--repeat"))
                a->repeat = (int)x;
            else
                a->threads = (int)x;
            i++;
        } else {
            return ats_cli_usage_error("attention", "unknown option '%s' (see --help)", s);
        }
        if (slot) {
            if (!v) return ats_cli_usage_error("attention", "%s needs a value", s);
            *slot = v;
            i++;
        }
    }
    if (!a->model) return ats_cli_usage_error("attention", "--model is required (see --help)");
    int inputs = !!a->text + !!a->ids + !!a->image;
    if (inputs != 1)
        return ats_cli_usage_error("attention", "give exactly one of --text, --ids, --image");
    if ((a->layer >= 0) != (a->head >= 0))
        return ats_cli_usage_error("attention", "--layer and --head go together");
    if (a->image_h && !a->image)
        return ats_cli_usage_error("attention", "--image-size goes with --image");
    return 0;
}

static double row_entropy_bits(const float *row, size_t n) {
    double h = 0.0;
    for (size_t j = 0; j < n; j++)
        if (row[j] > 0.0f) h -= (double)row[j] * log2((double)row[j]);
    return h;
}

/* The attention of --layer/--head: the whole result when the pass kept that head alone
 * (capture_layer/capture_head), else its place in [L][H][n][n] */
static const float *head_of(const ats_forward_result *r, const att_args *a) {
    if (!a->scores) return r->attention;
    return r->attention +
           ((size_t)a->layer * r->n_heads + (size_t)a->head) * r->n_tokens * r->n_tokens;
}

static void print_summary(const ats_model_info *mi, const ats_forward_result *r,
                          char *const *labels, const att_args *a) {
    size_t L = r->n_layers, H = r->n_heads, n = r->n_tokens, nn = n * n;
    /* the model's layers (a one-head pass may have stopped before the last) */
    printf("model: %s (%s), %d layers x %zu heads, d = %zu\n", mi->model_type, mi->dir,
           mi->n_layers, H, r->d_model);
    printf("tokens (%zu):", n);
    for (size_t i = 0; i < n; i++) printf(" %s", labels[i]);
    printf("\n");
    if (r->n_truncated) printf("truncated: %zu tokens dropped\n", r->n_truncated);
    if (a->layer >= 0) {
        const float *A = head_of(r, a);
        printf("layer %ld head %ld: row i = where token i attends\n", a->layer, a->head);
        for (size_t i = 0; i < n; i++) {
            printf("%-14.14s", labels[i]);
            for (size_t j = 0; j < n && j < 32; j++) printf(" %5.3f", A[i * n + j]);
            printf(n > 32 ? " ...\n" : "\n");
        }
        return;
    }
    printf("layer head  entropy(bits)  max-weight  self  prev  first\n");
    for (size_t l = 0; l < L; l++)
        for (size_t h = 0; h < H; h++) {
            const float *A = r->attention + (l * H + h) * nn;
            double ent = 0, mx = 0, self = 0, prev = 0, first = 0;
            for (size_t i = 0; i < n; i++) {
                const float *row = A + i * n;
                ent += row_entropy_bits(row, n);
                float m = 0;
                for (size_t j = 0; j < n; j++) m = row[j] > m ? row[j] : m;
                mx += m;
                self += row[i];
                prev += i ? row[i - 1] : 0.0f;
                first += row[0];
            }
            printf("%5zu %4zu  %13.4f  %10.4f  %4.2f  %4.2f  %5.2f\n", l, h, ent / (double)n,
                   mx / (double)n, self / (double)n, prev / (double)n, first / (double)n);
        }
}

int ats_cmd_attention(int argc, char **argv) {
    att_args a;
    int prc = parse_args(argc, argv, &a);
    if (prc) return prc < 0 ? ATS_EXIT_OK : prc;
    ats_error err = {0};
    ats_model *m = NULL;
    ats_tokenizer *tok = NULL;
    ats_encoding enc = {0};
    int32_t *ids = NULL, *types = NULL, *labels = NULL;
    size_t *tokidx = NULL; /* --text: the encoding's index of each token that is run */
    size_t n = 0, ntypes = 0, nlabels = 0;
    float *mask = NULL;
    char **names = NULL;
    ats_forward_result res = {0};
    int rc = ATS_EXIT_OK;
    if (ats_model_load_adapted(a.model, ats_cli_adapter(), &m, &err)) {
        rc = ats_cli_fail(&err);
        goto done;
    }
    const ats_model_info *mi = ats_model_info_get(m);
    if (a.layer >= 0 && (a.layer >= mi->n_layers || a.head >= mi->n_heads)) {
        rc = ats_cli_usage_error("attention",
                                 "--layer %ld --head %ld: the model has %d layers x %d heads",
                                 a.layer, a.head, mi->n_layers, mi->n_heads);
        goto done;
    }
    if ((mi->arch == ATS_ARCH_VIT) != (a.image != NULL)) {
        rc = ats_cli_usage_error("attention", "%s: a %s model takes %s", mi->dir, mi->model_type,
                                 mi->arch == ATS_ARCH_VIT ? "an --image" : "--text or --ids");
        goto done;
    }
    if (a.ids && !parse_ids(a.ids, &ids, &n)) {
        rc = ats_cli_usage_error("attention", "--ids needs comma-separated integers, got '%s'",
                                 a.ids);
        goto done;
    }
    if (a.types && (!parse_ids(a.types, &types, &ntypes) || ntypes != n)) {
        rc =
            ats_cli_usage_error("attention", "--token-types needs %zu comma-separated integers", n);
        goto done;
    }
    if (a.text) {
        if (ats_tokenizer_load(mi->dir, &tok, &err) ||
            ats_tokenizer_encode(tok, a.text, strlen(a.text), 1, &enc, &err)) {
            rc = ats_cli_fail(&err);
            goto done;
        }
        n = enc.count;
        ids = malloc((n ? n : 1) * sizeof *ids);
        tokidx = malloc((n ? n : 1) * sizeof *tokidx);
        if (!ids || !tokidx) {
            rc = ATS_EXIT_FAIL;
            goto done;
        }
        for (size_t i = 0; i < n; i++) tokidx[i] = i;
        size_t lim = (size_t)mi->max_positions;
        if (a.truncate && n > lim) {
            /* as transformers' truncation=True: cut the text, keep the closing special tokens */
            size_t k = 0;
            while (k < n && k < lim && enc.special[n - 1 - k]) k++;
            for (size_t j = 0; j < k; j++) tokidx[lim - k + j] = n - k + j;
            n = lim;
        }
        for (size_t i = 0; i < n; i++) ids[i] = enc.ids[tokidx[i]];
    }
    if (a.labels) {
        if (!parse_ids(a.labels, &labels, &nlabels) || nlabels != n) {
            rc = ats_cli_usage_error("attention", "--labels needs %zu comma-separated integers", n);
            goto done;
        }
    } else if (a.loss && mi->causal) {
        labels = malloc((n ? n : 1) * sizeof *labels);
        if (!labels) {
            rc = ATS_EXIT_FAIL;
            goto done;
        }
        memcpy(labels, ids, n * sizeof *labels);
    } else if (a.loss) {
        rc = ats_cli_usage_error("attention",
                                 "--loss on a masked-LM model needs --labels (-100 = ignored)");
        goto done;
    }
    if (a.mask) {
        ats_npy arr;
        if (ats_npy_read(a.mask, &arr, &err)) {
            rc = ats_cli_fail(&err);
            goto done;
        }
        if (arr.dtype != ATS_F32 || arr.ndim != 2 || arr.shape[0] != (size_t)mi->n_layers ||
            arr.shape[1] != (size_t)mi->n_heads) {
            ats_npy_free(&arr);
            rc = ats_cli_usage_error("attention", "%s: the head mask must be float32 [%d][%d]",
                                     a.mask, mi->n_layers, mi->n_heads);
            goto done;
        }
        mask = arr.data;
    }
    ats_forward_options opt;
    ats_forward_options_init(&opt);
    if (a.hidden) opt.capture |= ATS_CAPTURE_HIDDEN;
    if (a.scores) opt.capture |= ATS_CAPTURE_SCORES;
    if (a.logits) opt.capture |= ATS_CAPTURE_LOGITS;
    opt.n_threads = a.threads;
    opt.truncate = a.truncate;
    opt.head_mask = mask;
    opt.image_height = a.image_h;
    opt.image_width = a.image_w;
    /* one head and nothing that needs the other layers: the pass stops after its layer */
    if (a.layer >= 0 && !a.hidden && !a.scores && !a.logits && !labels)
        opt.n_layers = (int)a.layer + 1;
    /* and only that head's attention is kept (--scores keeps writing every head's scores):
     * a long input's [L][H][n][n] is never held */
    if (a.layer >= 0 && !a.scores) {
        opt.capture_layer = (int)a.layer + 1;
        opt.capture_head = (int)a.head + 1;
    }
    ats_status st = ATS_OK;
    int runs = a.repeat > 0 ? a.repeat : 1;
    /* wall times, then the process's CPU times: on a shared machine the CPU time of a
     * one-thread pass does not count the waits for a core */
    double *times = calloc(2 * (size_t)runs, sizeof *times), *cpu = times + runs;
    if (!times) {
        rc = ATS_EXIT_FAIL;
        goto done;
    }
    for (int r = 0; r < runs && !st; r++) {
        ats_forward_result_free(&res);
        double t0 = now_seconds(CLOCK_MONOTONIC), c0 = now_seconds(CLOCK_PROCESS_CPUTIME_ID);
        if (a.image) {
            st = ats_model_forward_image(m, a.image, &opt, &res, &err);
        } else {
            ats_model_input in = {ids, types, labels, n};
            st = ats_model_forward(m, &in, &opt, &res, &err);
        }
        times[r] = now_seconds(CLOCK_MONOTONIC) - t0;
        cpu[r] = now_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
    }
    if (!st && a.repeat > 0) {
        qsort(times, (size_t)runs, sizeof *times, cmp_double);
        qsort(cpu, (size_t)runs, sizeof *cpu, cmp_double);
        printf("forward: %.3f ms (median of %d runs, %zu tokens)\n", 1e3 * times[runs / 2], runs,
               res.n_tokens);
        printf("forward CPU: %.3f ms (median of %d runs, every thread's CPU time)\n",
               1e3 * cpu[runs / 2], runs);
    }
    free(times);
    if (st) {
        rc = ats_cli_fail(&err);
        goto done;
    }
    size_t L = res.n_layers, H = res.n_heads, nt = res.n_tokens, d = res.d_model;
    /* every output staged first and renamed into place only when all are complete: a failure
     * (a full disk, a bad path for the last one) leaves none of them */
    ats_outfile staged[4];
    int n_staged = 0;
    memset(staged, 0, sizeof staged);
    if (a.npy) {
        if (a.layer >= 0) {
            size_t shape[2] = {nt, nt};
            st = ats_npy_stage(a.npy, ATS_F32, 2, shape, head_of(&res, &a), &staged[n_staged++],
                               &err);
        } else {
            size_t shape[4] = {L, H, nt, nt};
            st = ats_npy_stage(a.npy, ATS_F32, 4, shape, res.attention, &staged[n_staged++], &err);
        }
    }
    if (!st && a.scores) {
        size_t shape[4] = {L, H, nt, nt};
        st = ats_npy_stage(a.scores, ATS_F32, 4, shape, res.scores, &staged[n_staged++], &err);
    }
    if (!st && a.hidden) {
        size_t shape[3] = {L + 1, nt, d};
        st = ats_npy_stage(a.hidden, ATS_F32, 3, shape, res.hidden, &staged[n_staged++], &err);
    }
    if (!st && a.logits) {
        size_t shape[2] = {nt, res.vocab_size};
        st = ats_npy_stage(a.logits, ATS_F32, 2, shape, res.logits, &staged[n_staged++], &err);
    }
    for (int k = 0; k < n_staged; k++) {
        if (!st)
            st = ats_outfile_commit(&staged[k], &err);
        else
            ats_outfile_abort(&staged[k]);
    }
    if (st) {
        rc = ats_cli_fail(&err);
        goto done;
    }
    if (labels) printf("loss: %.6f (%zu positions)\n", res.loss, res.loss_count);
    if (!a.npy) {
        names = calloc(nt ? nt : 1, sizeof *names);
        char buf[32];
        for (size_t i = 0; names && i < nt; i++) {
            if (a.text)
                names[i] = strdup(enc.tokens[tokidx[i]]);
            else if (a.image) {
                snprintf(buf, sizeof buf, i ? "patch%zu" : "[CLS]", i - 1);
                names[i] = strdup(buf);
            } else {
                const char *s = NULL;
                snprintf(buf, sizeof buf, "%d", (int)ids[i]);
                names[i] = strdup(s ? s : buf);
            }
            if (!names[i]) names[i] = strdup("?");
        }
        if (names) print_summary(mi, &res, names, &a);
    }
done:
    if (names)
        for (size_t i = 0; i < res.n_tokens; i++) free(names[i]);
    free(names);
    ats_forward_result_free(&res);
    ats_encoding_free(&enc);
    ats_tokenizer_free(tok);
    free(ids);
    free(tokidx);
    free(types);
    free(labels);
    free(mask);
    ats_model_free(m);
    return rc;
}
