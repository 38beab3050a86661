/* attnscope measure: entropy, KL / JS / JS-distance matrices, head distances over documents,
 * head statistics and context-vector distances, from NPY files to NPY (or JSON / CSV) files. */
#include "attnscope/measure.h"
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char USAGE[] =
    "usage: attnscope measure <what> [options]\n"
    "\n"
    "Information measures of attention. Attention files are NPY float32 or float64 arrays of\n"
    "shape [n][n] or [L][H][n][n] whose rows are distributions (row i: token i over the keys).\n"
    "\n"
    "  entropy|kl|js|jsd --input A.npy --output OUT.npy\n"
    "      entropy: Shannon entropy of every row, OUT [n] or [L][H][n];\n"
    "      kl: KL(P_i||P_j) = sum_k rel_entr(p_ik, p_jk) (inf where P_j has a zero P_i lacks);\n"
    "      js: Jensen-Shannon divergence; jsd: JS distance sqrt(JS), a metric.\n"
    "      OUT [n][n] or [L][H][n][n], float64, exact zero diagonal.\n"
    "  head-distance --input DOC1.npy [DOC2.npy ...] --output D.npy [--clark] [--per-layer]\n"
    "      Distance between heads over documents (each [L][H][n][n]; n may differ):\n"
    "      D(a,b) = sum_docs sum_tokens sqrt(JS(A_a[t], A_b[t])) (the seed's metric), or with\n"
    "      --clark sum JS of rows smoothed as 0.001/n + 0.999*a (Clark et al. 2019).\n"
    "      D is float64 [L*H][L*H] with head index l*H + h; --per-layer: [L][H][H], only heads\n"
    "      of the same layer. Documents are read one at a time (memory does not grow).\n"
    "  stats --input DOC1.npy [...] --output STATS.json|STATS.csv|STATS.npy [roles]\n"
    "      Per-head statistics over the documents: mean entropy; attention to [CLS], [SEP],\n"
    "      punctuation, self, previous and next token; confidence (mean row maximum except\n"
    "      [SEP] rows); positional offset, share and flag (share >= 0.9); rare-token share;\n"
    "      distance to templates (identity, previous, next, first column, [SEP], punctuation,\n"
    "      chosen columns) as ||A-T||_F / sqrt(||A||^2 + ||T||^2). NPY output is\n"
    "      [19][L][H] in the order of the JSON keys; unknown statistics are NaN (JSON null).\n"
    "      Roles, either from token files or as positions applied to every document:\n"
    "        --tokens T1.txt [T2.txt ...]  one token per line, one file per document:\n"
    "                      [CLS]/<s> and [SEP]/</s>/<|endoftext|> are found by name,\n"
    "                      punctuation by characters (after ##, \xc4\xa0 or \xe2\x96\x81), and\n"
    "                      token frequencies are counted over these files\n"
    "        --freq-table F  token<TAB>count lines to use instead of the files' own counts\n"
    "        --cls P,...  --sep P,...  --punct P,...   positions (negative: from the end)\n"
    "        --cols P,...  chosen columns for the chosen-column template\n"
    "        --freq F.npy  float [n] token frequencies (a single document only)\n"
    "  context --input H.npy [--against H2.npy] --output D.npy [--metric M]\n"
    "      Hidden states H [m][d] or [B][m][d] (B e.g. layers): D [m][m'] or [B][m][m'] of\n"
    "      M = cosine (similarity, default), cosine-distance (1 - cosine) or euclidean.\n"
    "\n"
    "options:\n"
    "  --base 2|e       logarithm base (default 2: JS in [0,1]; e: nats, scipy's default)\n"
    "  --eps E          add E to every weight of a row first (the seed's KL used 1e-9)\n"
    "  --normalize      divide every row by its sum instead of rejecting rows that do not\n"
    "                   sum to 1\n"
    "  --sum-tol T      allowed |row sum - 1| without --normalize (default 1e-4)\n"
    "  --seed-compat    reproduce the seed notebook exactly: softmax over the rows first,\n"
    "                   natural log, KL with eps 1e-9, js = scipy's JS distance, jsd = its\n"
    "                   square root (head-distance: sum of that square root)\n"
    "  --threads N      threads (default: OpenMP's default, e.g. OMP_NUM_THREADS)\n"
    "\n"
    "Exit status: 0 success, 2 bad input or usage (nothing is written), 1 other failures.\n";

typedef struct margs {
    const char *what;
    const char **inputs; /* [argc]: values are argv entries */
    size_t n_inputs;
    const char **tokens; /* [argc] */
    size_t n_tokens;
    const char *output, *against, *metric, *freq, *freq_table;
    const char *cls, *sep, *punct, *cols;
    ats_measure_opts opts;
    int base_given, eps_given, clark, per_layer;
} margs;

#define usage_error(...) ats_cli_usage_error("measure", __VA_ARGS__)

static int is_option(const char *s) {
    return s[0] == '-' && s[1] == '-';
}

/* Parses argv[2..]; returns 0 or an exit code. */
static int parse_args(int argc, char **argv, margs *a) {
    for (int i = 2; i < argc; i++) {
        const char *opt = argv[i];
        if (!is_option(opt)) return usage_error("unexpected argument '%s'", opt);
        /* --name=value or --name value */
        char name[64];
        const char *val = NULL;
        const char *eq = strchr(opt, '=');
        if (eq) {
            size_t len = (size_t)(eq - opt);
            if (len >= sizeof name) return usage_error("unknown option '%s'", opt);
            memcpy(name, opt, len);
            name[len] = '\0';
            val = eq + 1;
        } else {
            snprintf(name, sizeof name, "%s", opt);
        }
        /* flags */
        if (!strcmp(name, "--normalize") || !strcmp(name, "--seed-compat") ||
            !strcmp(name, "--clark") || !strcmp(name, "--per-layer")) {
            if (val) return usage_error("option %s takes no value", name);
            if (!strcmp(name, "--normalize"))
                a->opts.normalize = 1;
            else if (!strcmp(name, "--seed-compat"))
                a->opts.seed_compat = 1;
            else if (!strcmp(name, "--clark"))
                a->clark = 1;
            else
                a->per_layer = 1;
            continue;
        }
        /* lists: --input / --tokens take one or more values */
        if (!strcmp(name, "--input") || !strcmp(name, "--tokens")) {
            int is_input = name[2] == 'i';
            const char **list = is_input ? a->inputs : a->tokens;
            size_t *count = is_input ? &a->n_inputs : &a->n_tokens;
            if (*count) return usage_error("option %s given twice", name);
            if (val) list[(*count)++] = val;
            while (i + 1 < argc && !is_option(argv[i + 1])) list[(*count)++] = argv[++i];
            if (*count == 0) return usage_error("option %s needs at least one file", name);
            continue;
        }
        if (!val) {
            if (i + 1 >= argc) return usage_error("option %s needs a value", name);
            val = argv[++i];
        }
        const char **slot = NULL;
        if (!strcmp(name, "--output"))
            slot = &a->output;
        else if (!strcmp(name, "--against"))
            slot = &a->against;
        else if (!strcmp(name, "--metric"))
            slot = &a->metric;
        else if (!strcmp(name, "--freq"))
            slot = &a->freq;
        else if (!strcmp(name, "--freq-table"))
            slot = &a->freq_table;
        else if (!strcmp(name, "--cls"))
            slot = &a->cls;
        else if (!strcmp(name, "--sep"))
            slot = &a->sep;
        else if (!strcmp(name, "--punct"))
            slot = &a->punct;
        else if (!strcmp(name, "--cols"))
            slot = &a->cols;
        if (slot) {
            if (*slot) return usage_error("option %s given twice", name);
            *slot = val;
        } else if (!strcmp(name, "--base")) {
            if (!strcmp(val, "2"))
                a->opts.base = ATS_BASE_2;
            else if (!strcmp(val, "e"))
                a->opts.base = ATS_BASE_E;
            else
                return usage_error("--base must be 2 or e, not '%s'", val);
            a->base_given = 1;
        } else if (!strcmp(name, "--eps")) {
            if (!ats_cli_parse_double(val, 0, &a->opts.eps) || a->opts.eps < 0)
                return usage_error("--eps needs a finite number >= 0, not '%s'", val);
            a->eps_given = 1;
        } else if (!strcmp(name, "--sum-tol")) {
            if (!ats_cli_parse_double(val, 0, &a->opts.sum_tol) || a->opts.sum_tol < 0)
                return usage_error("--sum-tol needs a finite number >= 0, not '%s'", val);
        } else if (!strcmp(name, "--threads")) {
            long t;
            if (!ats_cli_parse_long(val, 1, 4096, &t))
                return usage_error("--threads needs an integer from 1 to 4096, not '%s'", val);
            a->opts.n_threads = (int)t;
        } else {
            return usage_error("unknown option '%s'", name);
        }
    }
    return 0;
}

/* Rejects options that do not apply to the subcommand. `allowed` lists the option names. */
static int check_allowed(const margs *a, const char *allowed) {
    struct {
        const char *name;
        int given;
    } opts[] = {
        {"--against", a->against != NULL},
        {"--metric", a->metric != NULL},
        {"--freq", a->freq != NULL},
        {"--freq-table", a->freq_table != NULL},
        {"--cls", a->cls != NULL},
        {"--sep", a->sep != NULL},
        {"--punct", a->punct != NULL},
        {"--cols", a->cols != NULL},
        {"--tokens", a->n_tokens > 0},
        {"--base", a->base_given},
        {"--eps", a->eps_given},
        {"--normalize", a->opts.normalize},
        {"--sum-tol", a->opts.sum_tol != 1e-4},
        {"--seed-compat", a->opts.seed_compat},
        {"--clark", a->clark},
        {"--per-layer", a->per_layer},
    };
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        if (!opts[i].given) continue;
        char key[40];
        snprintf(key, sizeof key, " %s ", opts[i].name);
        if (!strstr(allowed, key))
            return usage_error("option %s does not apply to '%s'", opts[i].name, a->what);
    }
    if (a->n_inputs == 0) return usage_error("'%s' needs --input", a->what);
    if (!a->output) return usage_error("'%s' needs --output", a->what);
    return 0;
}

/* Fails early if the output cannot be created (a long run should not end in that). */
static int check_output(const char *path) {
    ats_outfile of;
    ats_error err;
    if (ats_outfile_open(&of, path, &err) != ATS_OK) return ats_cli_fail(&err);
    ats_outfile_abort(&of);
    return 0;
}

static int load_attention(const char *path, ats_npy *arr, ats_attn *att) {
    ats_error err;
    if (ats_npy_read(path, arr, &err) != ATS_OK) return ats_cli_fail(&err);
    if (ats_attn_from_npy(arr, path, att, &err) != ATS_OK) {
        ats_npy_free(arr);
        return ats_cli_fail(&err);
    }
    return 0;
}

/* ---- entropy | kl | js | jsd */

static int run_matrix(margs *a) {
    int rc = check_allowed(a, " --base --eps --normalize --sum-tol --seed-compat ");
    if (rc) return rc;
    if (a->n_inputs != 1) return usage_error("'%s' takes exactly one --input file", a->what);
    if (a->opts.seed_compat && (a->base_given || a->eps_given))
        return usage_error("--seed-compat fixes the base (e) and eps; drop --base/--eps");
    ats_npy arr;
    ats_attn att;
    if ((rc = load_attention(a->inputs[0], &arr, &att))) return rc;
    int is_entropy = !strcmp(a->what, "entropy");
    size_t count = att.L * att.H * att.n * (is_entropy ? 1 : att.n), bytes;
    ats_error err;
    if (!ats_size_mul(count, sizeof(double), &bytes)) {
        ats_npy_free(&arr);
        ats_error_set(&err, ATS_ERR_RANGE, "%s: output too large", a->inputs[0]);
        return ats_cli_fail(&err);
    }
    double *out = malloc(bytes ? bytes : 1);
    if (!out) {
        ats_npy_free(&arr);
        ats_error_set(&err, ATS_ERR_NOMEM, "out of memory for %zu bytes of output", bytes);
        return ats_cli_fail(&err);
    }
    ats_status st;
    if (is_entropy)
        st = ats_entropy_compute(&att, &a->opts, out, &err);
    else {
        ats_divergence kind = !strcmp(a->what, "kl")   ? ATS_DIV_KL
                              : !strcmp(a->what, "js") ? ATS_DIV_JS
                                                       : ATS_DIV_JSD;
        st = ats_divergence_compute(&att, kind, &a->opts, out, &err);
    }
    if (st == ATS_OK) {
        size_t shape[4];
        int ndim = 0;
        if (arr.ndim == 4) {
            shape[ndim++] = att.L;
            shape[ndim++] = att.H;
        }
        shape[ndim++] = att.n;
        if (!is_entropy) shape[ndim++] = att.n;
        st = ats_npy_write(a->output, ATS_F64, ndim, shape, out, &err);
    }
    free(out);
    ats_npy_free(&arr);
    return st == ATS_OK ? ATS_EXIT_OK : ats_cli_fail(&err);
}

/* ---- head-distance */

static int run_headdist(margs *a) {
    int rc =
        check_allowed(a, " --base --eps --normalize --sum-tol --seed-compat --clark --per-layer ");
    if (rc) return rc;
    if (a->clark && a->opts.seed_compat)
        return usage_error("--seed-compat reproduces the seed's metric; it does not combine "
                           "with --clark");
    if (a->opts.seed_compat && a->base_given)
        return usage_error("--seed-compat fixes the base (e); drop --base");
    if ((rc = check_output(a->output))) return rc;
    ats_headdist *hd = NULL;
    ats_error err;
    ats_status st = ATS_OK;
    size_t L = 0, H = 0;
    for (size_t d = 0; d < a->n_inputs && st == ATS_OK; d++) {
        ats_npy arr;
        ats_attn att;
        if ((rc = load_attention(a->inputs[d], &arr, &att))) {
            ats_headdist_free(hd);
            return rc;
        }
        if (arr.ndim != 4) {
            ats_npy_free(&arr);
            ats_headdist_free(hd);
            ats_error_set(&err, ATS_ERR_FORMAT,
                          "%s: head-distance documents must be [L][H][n][n], not [n][n]",
                          a->inputs[d]);
            return ats_cli_fail(&err);
        }
        if (!hd) {
            L = att.L;
            H = att.H;
            st = ats_headdist_new(L, H, a->clark ? ATS_HEADDIST_CLARK : ATS_HEADDIST_SEED,
                                  a->per_layer ? ATS_HEADDIST_PER_LAYER : ATS_HEADDIST_ALL,
                                  &a->opts, &hd, &err);
        }
        if (st == ATS_OK) st = ats_headdist_add(hd, &att, &err);
        ats_npy_free(&arr);
    }
    if (st == ATS_OK) {
        size_t N = L * H, count = a->per_layer ? L * H * H : N * N;
        double *out = malloc((count ? count : 1) * sizeof(double));
        if (!out)
            st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory for the result");
        else {
            st = ats_headdist_result(hd, out, &err);
            size_t shape_all[2] = {N, N}, shape_layer[3] = {L, H, H};
            if (st == ATS_OK)
                st = a->per_layer ? ats_npy_write(a->output, ATS_F64, 3, shape_layer, out, &err)
                                  : ats_npy_write(a->output, ATS_F64, 2, shape_all, out, &err);
            free(out);
        }
    }
    ats_headdist_free(hd);
    return st == ATS_OK ? ATS_EXIT_OK : ats_cli_fail(&err);
}

/* ---- stats */

/* Parses "P,P,..." (negative P counts from the end) for a document of n tokens into pos. */
static int parse_positions(const char *opt, const char *s, size_t n, size_t *pos, size_t *count,
                           const char *doc) {
    *count = 0;
    const char *p = s;
    while (*p) {
        errno = 0;
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p || errno || (*end && *end != ','))
            return usage_error("%s needs comma-separated integer positions, not '%s'", opt, s);
        long idx = v < 0 ? (long)n + v : v;
        if (idx < 0 || (size_t)idx >= n) {
            fprintf(stderr,
                    "attnscope measure: %s: position %ld of %s is outside the document's %zu "
                    "tokens\n",
                    doc, v, opt, n);
            return ATS_EXIT_INPUT;
        }
        if (*count < n) pos[(*count)++] = (size_t)idx;
        p = *end ? end + 1 : end;
    }
    return 0;
}

typedef struct token_file {
    char *text; /* file contents, lines NUL-terminated in place */
    char **tok; /* [n] */
    size_t n;
} token_file;

static void token_file_free(token_file *t) {
    free(t->text);
    free(t->tok);
    memset(t, 0, sizeof *t);
}

static int token_file_read(const char *path, token_file *t) {
    memset(t, 0, sizeof *t);
    ats_error err;
    size_t len;
    if (ats_file_read_all(path, (size_t)1 << 30, &t->text, &len, &err) != ATS_OK)
        return ats_cli_fail(&err);
    size_t lines = 0;
    for (size_t i = 0; i < len; i++) lines += t->text[i] == '\n';
    if (len && t->text[len - 1] != '\n') lines++;
    t->tok = malloc((lines ? lines : 1) * sizeof(char *));
    if (!t->tok) {
        token_file_free(t);
        ats_error_set(&err, ATS_ERR_NOMEM, "%s: out of memory", path);
        return ats_cli_fail(&err);
    }
    char *p = t->text, *end = t->text + len;
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *e = nl ? nl : end;
        if (e > p && e[-1] == '\r') e[-1] = '\0';
        *e = '\0';
        t->tok[t->n++] = p;
        p = e + 1;
    }
    return 0;
}

/* A tiny string → count table (open addressing) for corpus token frequencies. */
typedef struct freq_table {
    char **key;
    double *count;
    size_t cap, used;
} freq_table;

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ULL;
    while (*s) h = (h ^ (unsigned char)*s++) * 1099511628211ULL;
    return h;
}

static int freq_grow(freq_table *f) {
    size_t cap = f->cap ? 2 * f->cap : 1024;
    char **key = calloc(cap, sizeof(char *));
    double *count = calloc(cap, sizeof(double));
    if (!key || !count) {
        free(key);
        free(count);
        return 0;
    }
    for (size_t i = 0; i < f->cap; i++) {
        if (!f->key[i]) continue;
        size_t h = (size_t)hash_str(f->key[i]) & (cap - 1);
        while (key[h]) h = (h + 1) & (cap - 1);
        key[h] = f->key[i];
        count[h] = f->count[i];
    }
    free(f->key);
    free(f->count);
    f->key = key;
    f->count = count;
    f->cap = cap;
    return 1;
}

/* Adds v to the count of s (s must outlive the table). Returns 0 on allocation failure. */
static int freq_add(freq_table *f, char *s, double v) {
    if ((f->used + 1) * 2 > f->cap && !freq_grow(f)) return 0;
    size_t h = (size_t)hash_str(s) & (f->cap - 1);
    while (f->key[h] && strcmp(f->key[h], s)) h = (h + 1) & (f->cap - 1);
    if (!f->key[h]) {
        f->key[h] = s;
        f->used++;
    }
    f->count[h] += v;
    return 1;
}

static double freq_get(const freq_table *f, const char *s) {
    if (!f->cap) return 0;
    size_t h = (size_t)hash_str(s) & (f->cap - 1);
    while (f->key[h]) {
        if (!strcmp(f->key[h], s)) return f->count[h];
        h = (h + 1) & (f->cap - 1);
    }
    return 0;
}

static ats_status write_stats(const char *path, const double *tab, size_t L, size_t H, size_t docs,
                              ats_error *err) {
    size_t len = strlen(path), N = L * H;
    if (len >= 4 && !strcmp(path + len - 4, ".npy")) {
        size_t shape[3] = {ATS_STAT_COUNT, L, H};
        return ats_npy_write(path, ATS_F64, 3, shape, tab, err);
    }
    int json = len >= 5 && !strcmp(path + len - 5, ".json");
    ats_outfile of;
    ats_status st = ats_outfile_open(&of, path, err);
    if (st) return st;
    FILE *fp = of.fp;
    if (json) {
        fprintf(fp, "{\n  \"layers\": %zu,\n  \"heads\": %zu,\n  \"documents\": %zu,\n", L, H,
                docs);
        fprintf(fp, "  \"stats\": {\n");
        for (int s = 0; s < ATS_STAT_COUNT; s++) {
            fprintf(fp, "    \"%s\": [", ats_head_stat_name((ats_head_stat)s));
            for (size_t l = 0; l < L; l++) {
                fputs(l ? ", [" : "[", fp);
                for (size_t h = 0; h < H; h++) {
                    if (h) fputs(", ", fp);
                    ats_cli_json_number(fp, tab[(size_t)s * N + l * H + h], 0);
                }
                fputc(']', fp);
            }
            fprintf(fp, "]%s\n", s + 1 < ATS_STAT_COUNT ? "," : "");
        }
        fprintf(fp, "  }\n}\n");
    } else {
        fputs("layer,head", fp);
        for (int s = 0; s < ATS_STAT_COUNT; s++)
            fprintf(fp, ",%s", ats_head_stat_name((ats_head_stat)s));
        fputc('\n', fp);
        for (size_t a = 0; a < N; a++) {
            fprintf(fp, "%zu,%zu", a / H, a % H);
            for (int s = 0; s < ATS_STAT_COUNT; s++) {
                double v = tab[(size_t)s * N + a];
                if (isnan(v))
                    fputs(",nan", fp);
                else
                    fprintf(fp, ",%.17g", v);
            }
            fputc('\n', fp);
        }
    }
    return ats_outfile_commit(&of, err);
}

static int run_stats(margs *a) {
    int rc = check_allowed(a, " --base --normalize --sum-tol --tokens --freq-table --cls --sep "
                              "--punct --cols --freq ");
    if (rc) return rc;
    size_t olen = strlen(a->output);
    if (!((olen >= 5 && !strcmp(a->output + olen - 5, ".json")) ||
          (olen >= 4 && !strcmp(a->output + olen - 4, ".csv")) ||
          (olen >= 4 && !strcmp(a->output + olen - 4, ".npy"))))
        return usage_error("stats --output must end in .json, .csv or .npy, not '%s'", a->output);
    int tok_mode = a->n_tokens > 0;
    if (tok_mode && (a->cls || a->sep || a->punct || a->freq))
        return usage_error("--tokens finds the roles itself; it does not combine with --cls, "
                           "--sep, --punct or --freq");
    if (tok_mode && a->n_tokens != a->n_inputs)
        return usage_error(
            "--tokens needs one token file per --input document (%zu files for %zu documents)",
            a->n_tokens, a->n_inputs);
    if (a->freq_table && !tok_mode) return usage_error("--freq-table needs --tokens");
    if (a->freq && a->n_inputs != 1)
        return usage_error("--freq applies to a single --input document; use --tokens for "
                           "several");
    if ((rc = check_output(a->output))) return rc;

    ats_error err;
    ats_status st = ATS_OK;
    token_file *tf = NULL;
    freq_table ft = {0};
    char *table_text = NULL;
    ats_headstats *hs = NULL;
    ats_npy freq_arr = {0};
    size_t L = 0, H = 0;
    rc = 0;
    if (tok_mode) {
        tf = calloc(a->n_tokens, sizeof *tf);
        if (!tf) {
            st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
            goto done;
        }
        for (size_t d = 0; d < a->n_tokens && !rc; d++) rc = token_file_read(a->tokens[d], &tf[d]);
        if (rc) goto done;
        if (a->freq_table) { /* token<TAB or space>count per line */
            size_t len;
            if ((st = ats_file_read_all(a->freq_table, (size_t)1 << 31, &table_text, &len, &err)))
                goto done;
            char *p = table_text;
            size_t line = 0;
            while (*p) {
                line++;
                char *nl = strchr(p, '\n');
                if (nl) *nl = '\0';
                char *sp = strrchr(p, '\t');
                if (!sp) sp = strrchr(p, ' ');
                if (*p) {
                    double v;
                    if (!sp || (*sp = '\0', !ats_cli_parse_double(sp + 1, 0, &v)) || v < 0) {
                        st = ats_error_set(&err, ATS_ERR_FORMAT,
                                           "%s:%zu: expected 'token<TAB>count' with a count >= 0",
                                           a->freq_table, line);
                        goto done;
                    }
                    if (!freq_add(&ft, p, v)) {
                        st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
                        goto done;
                    }
                }
                if (!nl) break;
                p = nl + 1;
            }
        } else {
            for (size_t d = 0; d < a->n_tokens; d++)
                for (size_t i = 0; i < tf[d].n; i++)
                    if (!freq_add(&ft, tf[d].tok[i], 1.0)) {
                        st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
                        goto done;
                    }
        }
    }
    if (a->freq) {
        if ((st = ats_npy_read(a->freq, &freq_arr, &err))) goto done;
        if ((st = ats_npy_check_finite(&freq_arr, a->freq, &err))) goto done;
        if (freq_arr.ndim != 1 || (freq_arr.dtype != ATS_F64 && freq_arr.dtype != ATS_F32 &&
                                   freq_arr.dtype != ATS_I64 && freq_arr.dtype != ATS_I32)) {
            st = ats_error_set(&err, ATS_ERR_FORMAT, "%s: --freq must be a 1-D array [n]", a->freq);
            goto done;
        }
    }
    for (size_t d = 0; d < a->n_inputs && st == ATS_OK && !rc; d++) {
        ats_npy arr;
        ats_attn att;
        if ((rc = load_attention(a->inputs[d], &arr, &att))) break;
        size_t n = att.n;
        size_t *buf = malloc(4 * (n ? n : 1) * sizeof(size_t));
        double *freq = malloc((n ? n : 1) * sizeof(double));
        ats_token_roles roles = {0};
        if (!buf || !freq) {
            st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
        } else if (tok_mode) {
            if (tf[d].n != n) {
                st = ats_error_set(&err, ATS_ERR_FORMAT,
                                   "%s has %zu tokens but %s has attention over %zu tokens",
                                   a->tokens[d], tf[d].n, a->inputs[d], n);
            } else {
                ats_token_roles_find(n, (const char *const *)tf[d].tok, NULL, buf, &roles);
                /* the first and end tokens are excluded from the rare-token statistic */
                for (size_t i = 0; i < n; i++) freq[i] = freq_get(&ft, tf[d].tok[i]);
                for (size_t i = 0; i < roles.n_cls; i++) freq[roles.cls[i]] = INFINITY;
                for (size_t i = 0; i < roles.n_sep; i++) freq[roles.sep[i]] = INFINITY;
                roles.freq = freq;
            }
        } else {
            const char *names[3] = {"--cls", "--sep", "--punct"};
            const char *vals[3] = {a->cls, a->sep, a->punct};
            const size_t **ptrs[3] = {&roles.cls, &roles.sep, &roles.punct};
            size_t *counts[3] = {&roles.n_cls, &roles.n_sep, &roles.n_punct};
            for (int r = 0; r < 3 && !rc; r++) {
                if (!vals[r]) continue;
                rc = parse_positions(names[r], vals[r], n, buf + (size_t)r * n, counts[r],
                                     a->inputs[d]);
                *ptrs[r] = buf + (size_t)r * n;
            }
            if (a->freq && !rc) {
                if (freq_arr.shape[0] != n) {
                    st = ats_error_set(&err, ATS_ERR_FORMAT,
                                       "%s has %zu frequencies but %s has %zu tokens", a->freq,
                                       freq_arr.shape[0], a->inputs[d], n);
                } else {
                    for (size_t i = 0; i < n; i++) {
                        switch (freq_arr.dtype) {
                        case ATS_F64:
                            freq[i] = ((const double *)freq_arr.data)[i];
                            break;
                        case ATS_F32:
                            freq[i] = ((const float *)freq_arr.data)[i];
                            break;
                        case ATS_I64:
                            freq[i] = (double)((const int64_t *)freq_arr.data)[i];
                            break;
                        default:
                            freq[i] = ((const int32_t *)freq_arr.data)[i];
                            break;
                        }
                    }
                    roles.freq = freq;
                }
            }
        }
        if (a->cols && st == ATS_OK && !rc) {
            rc = parse_positions("--cols", a->cols, n, buf + 3 * n, &roles.n_cols, a->inputs[d]);
            roles.cols = buf + 3 * n;
        }
        if (st == ATS_OK && !rc && !hs) {
            L = att.L;
            H = att.H;
            st = ats_headstats_new(L, H, &a->opts, &hs, &err);
        }
        if (st == ATS_OK && !rc) st = ats_headstats_add(hs, &att, &roles, &err);
        free(buf);
        free(freq);
        ats_npy_free(&arr);
    }
    if (st == ATS_OK && !rc) {
        size_t count = (size_t)ATS_STAT_COUNT * L * H;
        double *tab = malloc((count ? count : 1) * sizeof(double));
        if (!tab)
            st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory");
        else {
            st = ats_headstats_result(hs, tab, &err);
            if (st == ATS_OK) st = write_stats(a->output, tab, L, H, a->n_inputs, &err);
            free(tab);
        }
    }
done:
    if (tf)
        for (size_t d = 0; d < a->n_tokens; d++) token_file_free(&tf[d]);
    free(tf);
    free(ft.key);
    free(ft.count);
    free(table_text);
    ats_npy_free(&freq_arr);
    ats_headstats_free(hs);
    if (rc) return rc;
    return st == ATS_OK ? ATS_EXIT_OK : ats_cli_fail(&err);
}

/* ---- context */

static int load_vectors(const char *path, ats_npy *arr, ats_vectors *v) {
    ats_error err;
    if (ats_npy_read(path, arr, &err) != ATS_OK) return ats_cli_fail(&err);
    if (ats_npy_check_finite(arr, path, &err)) {
        ats_npy_free(arr);
        return ats_cli_fail(&err);
    }
    if ((arr->dtype != ATS_F32 && arr->dtype != ATS_F64) || (arr->ndim != 2 && arr->ndim != 3)) {
        ats_error_set(&err, ATS_ERR_FORMAT,
                      "%s: hidden states must be float32 or float64 of shape [m][d] or "
                      "[B][m][d]",
                      path);
        ats_npy_free(arr);
        return ats_cli_fail(&err);
    }
    v->dtype = arr->dtype;
    v->data = arr->data;
    v->batch = arr->ndim == 3 ? arr->shape[0] : 1;
    v->m = arr->shape[arr->ndim - 2];
    v->d = arr->shape[arr->ndim - 1];
    v->source = path;
    return 0;
}

static int run_context(margs *a) {
    int rc = check_allowed(a, " --against --metric ");
    if (rc) return rc;
    if (a->n_inputs != 1) return usage_error("'context' takes exactly one --input file");
    ats_vector_metric metric = ATS_COSINE_SIMILARITY;
    if (a->metric) {
        if (!strcmp(a->metric, "cosine"))
            metric = ATS_COSINE_SIMILARITY;
        else if (!strcmp(a->metric, "cosine-distance"))
            metric = ATS_COSINE_DISTANCE;
        else if (!strcmp(a->metric, "euclidean"))
            metric = ATS_EUCLIDEAN;
        else
            return usage_error("--metric must be cosine, cosine-distance or euclidean, not '%s'",
                               a->metric);
    }
    ats_npy xa, ya = {0};
    ats_vectors x, y;
    if ((rc = load_vectors(a->inputs[0], &xa, &x))) return rc;
    if (a->against && (rc = load_vectors(a->against, &ya, &y))) {
        ats_npy_free(&xa);
        return rc;
    }
    ats_error err;
    ats_status st = ATS_OK;
    if (a->against && xa.ndim != ya.ndim)
        st = ats_error_set(&err, ATS_ERR_FORMAT,
                           "%s has %d dimensions but %s has %d; both must be [m][d] or [B][m][d]",
                           a->against, ya.ndim, a->inputs[0], xa.ndim);
    size_t k = a->against ? y.m : x.m, count = x.batch * x.m * k;
    double *out = NULL;
    if (st == ATS_OK) {
        out = malloc((count ? count : 1) * sizeof(double));
        if (!out) st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory for the result");
    }
    if (st == ATS_OK)
        st = ats_context_compute(&x, a->against ? &y : NULL, metric, a->opts.n_threads, out, &err);
    if (st == ATS_OK) {
        size_t shape[3] = {x.batch, x.m, k};
        st = xa.ndim == 3 ? ats_npy_write(a->output, ATS_F64, 3, shape, out, &err)
                          : ats_npy_write(a->output, ATS_F64, 2, shape + 1, out, &err);
    }
    free(out);
    ats_npy_free(&xa);
    ats_npy_free(&ya);
    return st == ATS_OK ? ATS_EXIT_OK : ats_cli_fail(&err);
}

int ats_cmd_measure(int argc, char **argv) {
    if (argc < 2) {
        fputs(USAGE, stderr);
        return ATS_EXIT_INPUT;
    }
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(USAGE, stdout);
            return ATS_EXIT_OK;
        }
    margs a;
    memset(&a, 0, sizeof a);
    a.what = argv[1];
    ats_measure_opts_init(&a.opts);
    a.inputs = calloc((size_t)argc, sizeof *a.inputs);
    a.tokens = calloc((size_t)argc, sizeof *a.tokens);
    if (!a.inputs || !a.tokens) {
        free(a.inputs);
        free(a.tokens);
        fprintf(stderr, "attnscope measure: out of memory\n");
        return ATS_EXIT_FAIL;
    }
    int rc = parse_args(argc, argv, &a);
    const char *w = a.what;
    if (rc) {
        /* usage error already reported */
    } else if (!strcmp(w, "entropy") || !strcmp(w, "kl") || !strcmp(w, "js") || !strcmp(w, "jsd")) {
        rc = run_matrix(&a);
    } else if (!strcmp(w, "head-distance")) {
        rc = run_headdist(&a);
    } else if (!strcmp(w, "stats")) {
        rc = run_stats(&a);
    } else if (!strcmp(w, "context")) {
        rc = run_context(&a);
    } else {
        rc = usage_error("unknown measure '%s' (entropy, kl, js, jsd, head-distance, stats, "
                         "context)",
                         w);
    }
    free(a.inputs);
    free(a.tokens);
    return rc;
}
