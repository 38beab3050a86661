/* attnscope measure: entropy, KL / JS / JS-distance matrices, head distances over documents,
 * head statistics and context-vector distances, from NPY files to NPY (or JSON / CSV) files. */
#include "attnscope/measure.h"
#include "cli.h"
#include "measure_cli.h"

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
    "  --seed-compat    reproduce the seed notebook exactly: softmax over the rows first;\n"
    "                   entropy in nats; kl = sum p (log2(p + 1e-9) - log2(q + 1e-9)) in\n"
    "                   bits, as the notebook; js = scipy's JS distance (nats: the\n"
    "                   notebook's first distance cell), jsd = its square root (its later\n"
    "                   cell); head-distance: sum of that square root\n"
    "  --threads N      threads (default: OpenMP's default, e.g. OMP_NUM_THREADS)\n"
    "\n"
    "Exit status: 0 success, 2 bad input or usage (nothing is written), 1 other failures.\n";

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
int measure_check_allowed(const margs *a, const char *allowed) {
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
int measure_check_output(const char *path) {
    ats_outfile of;
    ats_error err;
    if (ats_outfile_open(&of, path, &err) != ATS_OK) return ats_cli_fail(&err);
    ats_outfile_abort(&of);
    return 0;
}

int measure_load_attention(const char *path, ats_npy *arr, ats_attn *att) {
    ats_error err;
    /* mapped: a file larger than the memory is used a head at a time */
    if (ats_npy_map(path, arr, &err) != ATS_OK) return ats_cli_fail(&err);
    if (ats_attn_from_npy(arr, path, att, &err) != ATS_OK) {
        ats_npy_free(arr);
        return ats_cli_fail(&err);
    }
    return 0;
}

/* ---- entropy | kl | js | jsd */

static int run_matrix(margs *a) {
    int rc = measure_check_allowed(a, " --base --eps --normalize --sum-tol --seed-compat ");
    if (rc) return rc;
    if (a->n_inputs != 1) return usage_error("'%s' takes exactly one --input file", a->what);
    if (a->opts.seed_compat && a->eps_given)
        return usage_error("--seed-compat fixes eps (the notebook's 1e-9); drop --eps");
    /* the notebook's KL takes log2, its entropy and JS scipy's natural log: the base that
     * matches is accepted, the other refused */
    int seed_bits = !strcmp(a->what, "kl");
    if (a->opts.seed_compat && a->base_given && (a->opts.base == ATS_BASE_2) != seed_bits)
        return usage_error("--seed-compat %s is in %s, as the notebook's; drop --base", a->what,
                           seed_bits ? "bits (--base 2)" : "nats (--base e)");
    ats_npy arr;
    ats_attn att;
    if ((rc = measure_load_attention(a->inputs[0], &arr, &att))) return rc;
    int is_entropy = !strcmp(a->what, "entropy");
    ats_divergence kind = !strcmp(a->what, "kl")   ? ATS_DIV_KL
                          : !strcmp(a->what, "js") ? ATS_DIV_JS
                                                   : ATS_DIV_JSD;
    size_t per_head = att.n * (is_entropy ? 1 : att.n), heads = att.L * att.H, bytes, total;
    ats_error err;
    /* One head at a time (the results of a head depend on it alone): the mapped pages of a
       head are dropped once it is done, so a file larger than the memory is measured in the
       memory of one head. The output and the working buffers are estimated first. */
    ats_attn one = att;
    one.L = one.H = 1;
    size_t work = is_entropy ? ats_entropy_work_bytes(&one, &a->opts)
                             : ats_divergence_work_bytes(&one, kind, &a->opts);
    if (!ats_size_mul(per_head * heads, sizeof(double), &bytes) ||
        !ats_size_add(bytes, work, &total))
        total = SIZE_MAX;
    char what[600];
    snprintf(what, sizeof what, "measure %s of %s (%zu heads of %zu tokens)", a->what, a->inputs[0],
             heads, att.n);
    ats_status st = ats_memory_check(total, what, &err);
    double *out = st ? NULL : malloc(bytes ? bytes : 1);
    if (!st && !out)
        st = ats_error_set(&err, ATS_ERR_NOMEM, "out of memory for %zu bytes of output", bytes);
    size_t esize = att.dtype == ATS_F32 ? sizeof(float) : sizeof(double);
    for (size_t hd = 0; hd < heads && !st; hd++) {
        one.data = (const char *)att.data + hd * att.n * att.n * esize;
        st = is_entropy ? ats_entropy_compute(&one, &a->opts, out + hd * per_head, &err)
                        : ats_divergence_compute(&one, kind, &a->opts, out + hd * per_head, &err);
        ats_npy_release(&arr, hd * att.n * att.n, att.n * att.n);
    }
    if (st && st != ATS_ERR_NOMEM && st != ATS_ERR_RANGE && heads > 1) {
        /* the message names the whole array's layer and head: ask the whole array again
           (it stops where the head did) */
        st = is_entropy ? ats_entropy_compute(&att, &a->opts, out, &err)
                        : ats_divergence_compute(&att, kind, &a->opts, out, &err);
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
    int rc = measure_check_allowed(
        a, " --base --eps --normalize --sum-tol --seed-compat --clark --per-layer ");
    if (rc) return rc;
    if (a->clark && a->opts.seed_compat)
        return usage_error("--seed-compat reproduces the seed's metric; it does not combine "
                           "with --clark");
    if (a->opts.seed_compat && a->base_given)
        return usage_error("--seed-compat fixes the base (e); drop --base");
    if ((rc = measure_check_output(a->output))) return rc;
    ats_headdist *hd = NULL;
    ats_error err;
    ats_status st = ATS_OK;
    size_t L = 0, H = 0;
    for (size_t d = 0; d < a->n_inputs && st == ATS_OK; d++) {
        ats_npy arr;
        ats_attn att;
        if ((rc = measure_load_attention(a->inputs[d], &arr, &att))) {
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
    int rc = measure_check_allowed(a, " --against --metric ");
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
        rc = measure_run_stats(&a);
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
