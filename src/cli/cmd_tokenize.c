/* attnscope tokenize: a model's tokenization of a text, as a table or JSON. */
#include "cli.h"
#include "attnscope/hub.h"
#include "attnscope/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char USAGE[] =
    "usage: attnscope tokenize --model M (--text T | --file F) [options]\n"
    "\n"
    "Tokenizes UTF-8 text exactly as the model's HuggingFace tokenizer does (byte-level BPE for\n"
    "GPT-2 / RoBERTa, WordPiece for BERT-family models), with the special tokens the model adds\n"
    "by default ([CLS] ... [SEP], <s> ... </s>, none for GPT-2). A GGUF file's tokenizer is\n"
    "the one transformers builds from it (AutoTokenizer with gguf_file=): byte-level BPE with\n"
    "the BOS token first, whatever tokenizer.ggml.add_bos_token says (--no-special: without\n"
    "it, as llama.cpp tokenizes when that key is false).\n"
    "\n"
    "  --model M      model directory (tokenizer.json, or vocab.json + merges.txt, or\n"
    "                 encoder.json + vocab.bpe, or vocab.txt), a name in the HuggingFace cache,\n"
    "                 or a GGUF file (tokenizer.ggml.model \"gpt2\", llama architecture)\n"
    "  --text T       the text\n"
    "  --file F       read the text from file F ('-' = standard input), byte for byte\n"
    "  --lines        encode each line of the text on its own ('\\n' or '\\r\\n' ends a line);\n"
    "                 --json then writes a list with one object per line\n"
    "  --no-special   do not add the model's special tokens\n"
    "  --json OUT     write {\"ids\":[...],\"tokens\":[...],\"offsets\":[[s,e],...],\n"
    "                 \"char_offsets\":[[s,e],...],\"word_ids\":[...],\"special\":[...]} to OUT\n"
    "                 ('-' = standard output) instead of the table\n"
    "\n"
    "offsets are byte ranges [s, e) in the UTF-8 text; char_offsets are the same ranges in\n"
    "characters (code points), which is what transformers' offset_mapping reports. Special\n"
    "tokens added by the tokenizer have [0, 0] and word id -1.\n";

static char *read_stream(FILE *fp, size_t *len) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) return NULL;
    for (;;) {
        if (n == cap) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                return NULL;
            }
            buf = b;
            cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - n, fp);
        n += k;
        if (k == 0) break;
    }
    *len = n;
    return buf;
}

static void json_string(FILE *fp, const char *s) {
    fputc('"', fp);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(fp, "\\%c", c);
        else if (c < 0x20)
            fprintf(fp, "\\u%04x", c);
        else
            fputc(c, fp);
    }
    fputc('"', fp);
}

/* one encoding as a JSON object (written directly: a corpus can have millions of tokens) */
static void encoding_json(FILE *fp, const ats_encoding *e, const size_t *chars) {
    fputs("{\"ids\":[", fp);
    for (size_t i = 0; i < e->count; i++) fprintf(fp, i ? ",%ld" : "%ld", (long)e->ids[i]);
    fputs("],\"tokens\":[", fp);
    for (size_t i = 0; i < e->count; i++) {
        if (i) fputc(',', fp);
        json_string(fp, e->tokens[i]);
    }
    fputs("],\"offsets\":[", fp);
    for (size_t i = 0; i < e->count; i++)
        fprintf(fp, i ? ",[%zu,%zu]" : "[%zu,%zu]", e->offsets[2 * i], e->offsets[2 * i + 1]);
    fputs("],\"char_offsets\":[", fp);
    for (size_t i = 0; i < e->count; i++)
        fprintf(fp, i ? ",[%zu,%zu]" : "[%zu,%zu]", chars[2 * i], chars[2 * i + 1]);
    fputs("],\"word_ids\":[", fp);
    for (size_t i = 0; i < e->count; i++) {
        if (i) fputc(',', fp);
        if (e->word_ids[i] < 0)
            fputs("null", fp);
        else
            fprintf(fp, "%ld", (long)e->word_ids[i]);
    }
    fputs("],\"special\":[", fp);
    for (size_t i = 0; i < e->count; i++)
        fputs(i ? (e->special[i] ? ",true" : ",false") : (e->special[i] ? "true" : "false"), fp);
    fputs("]}", fp);
}

/* the token's text, with control characters escaped */
static void print_slice(FILE *fp, const char *s, size_t n) {
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '\n')
            fputs("\\n", fp);
        else if (c == '\t')
            fputs("\\t", fp);
        else if (c == '\r')
            fputs("\\r", fp);
        else if (c < 0x20 || c == 0x7F)
            fprintf(fp, "\\x%02X", c);
        else
            fputc(c, fp);
    }
}

static void print_table(FILE *fp, const ats_encoding *e, const char *text) {
    fprintf(fp, "%5s %8s  %-20s %-13s %5s  %s\n", "i", "id", "token", "bytes", "word", "text");
    for (size_t i = 0; i < e->count; i++) {
        char range[48], word[16];
        snprintf(range, sizeof range, "%zu-%zu", e->offsets[2 * i], e->offsets[2 * i + 1]);
        if (e->word_ids[i] < 0)
            snprintf(word, sizeof word, "-");
        else
            snprintf(word, sizeof word, "%ld", (long)e->word_ids[i]);
        fprintf(fp, "%5zu %8ld  ", i, (long)e->ids[i]);
        /* pad by characters, not bytes */
        size_t chars = 0;
        for (const char *p = e->tokens[i]; *p; p++) chars += ((unsigned char)*p & 0xC0) != 0x80;
        print_slice(fp, e->tokens[i], strlen(e->tokens[i]));
        for (size_t k = chars; k < 20; k++) fputc(' ', fp);
        fprintf(fp, " %-13s %5s  ", range, word);
        print_slice(fp, text + e->offsets[2 * i], e->offsets[2 * i + 1] - e->offsets[2 * i]);
        fputc('\n', fp);
    }
}

int ats_cmd_tokenize(int argc, char **argv) {
    const char *model = NULL, *text = NULL, *file = NULL, *json = NULL;
    int add_special = 1, lines = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(USAGE, stdout);
            return ATS_EXIT_OK;
        }
        if (!strcmp(a, "--no-special")) {
            add_special = 0;
            continue;
        }
        if (!strcmp(a, "--lines")) {
            lines = 1;
            continue;
        }
        const char **slot = !strcmp(a, "--model")  ? &model
                            : !strcmp(a, "--text") ? &text
                            : !strcmp(a, "--file") ? &file
                            : !strcmp(a, "--json") ? &json
                                                   : NULL;
        if (!slot) return ats_cli_usage_error("tokenize", "unknown option '%s' (see --help)", a);
        if (i + 1 >= argc) return ats_cli_usage_error("tokenize", "%s needs a value", a);
        *slot = argv[++i];
    }
    if (!model) return ats_cli_usage_error("tokenize", "--model is required (see --help)");
    if (!text == !file)
        return ats_cli_usage_error("tokenize", "give exactly one of --text and --file");

    ats_error err = {0};
    char *buf = NULL;
    size_t len = 0;
    if (file) {
        if (!strcmp(file, "-")) {
            buf = read_stream(stdin, &len);
            if (!buf) return ats_cli_usage_error("tokenize", "cannot read standard input");
        } else if (ats_file_read_all(file, (size_t)1 << 31, &buf, &len, &err)) {
            return ats_cli_fail(&err);
        }
        text = buf;
    } else {
        len = strlen(text);
    }

    char *dir = NULL;
    ats_tokenizer *tok = NULL;
    int rc = ATS_EXIT_OK;
    if (ats_model_resolve(model, &dir, &err) || ats_tokenizer_load(dir, &tok, &err)) {
        rc = ats_cli_fail(&err);
        goto done;
    }

    ats_outfile of = {0};
    FILE *jf = NULL;
    if (json) {
        struct stat st;
        if (!strcmp(json, "-")) {
            jf = stdout;
        } else if (stat(json, &st) == 0 && !S_ISREG(st.st_mode)) {
            /* a device or a pipe (/dev/null, /dev/stdout): write to it, never rename over it */
            if (!(jf = fopen(json, "wb"))) {
                rc = ats_cli_usage_error("tokenize", "cannot open %s for writing", json);
                goto done;
            }
            of.fp = jf;
            of.path = NULL;
        } else if (ats_outfile_open(&of, json, &err)) {
            rc = ats_cli_fail(&err);
            goto done;
        } else {
            jf = (FILE *)of.fp;
        }
        if (lines) fputc('[', jf);
    }
    size_t pos = 0, count = 0;
    int first = 1;
    while (pos < len || (first && pos == len)) {
        size_t end = len;
        size_t next = len;
        if (lines) {
            const char *nl = memchr(text + pos, '\n', len - pos);
            if (nl) {
                end = (size_t)(nl - text);
                next = end + 1;
            }
            if (end > pos && text[end - 1] == '\r') end--;
        }
        first = 0;
        ats_encoding enc;
        if (ats_tokenizer_encode(tok, text + pos, end - pos, add_special, &enc, &err)) {
            if (lines) {
                /* name the line and the offset in the whole input */
                size_t line = 1;
                for (size_t k = 0; k < pos; k++) line += text[k] == '\n';
                fprintf(stderr, "attnscope: line %zu (byte %zu of the input): %s\n", line, pos,
                        err.message);
                rc = ATS_EXIT_INPUT;
            } else {
                rc = ats_cli_fail(&err);
            }
            ats_outfile_abort(&of);
            goto done;
        }
        if (jf) {
            size_t *chars = malloc((2 * enc.count + 1) * sizeof *chars);
            if (!chars || ats_encoding_char_offsets(&enc, text + pos, end - pos, chars, &err)) {
                free(chars);
                ats_encoding_free(&enc);
                ats_outfile_abort(&of);
                fprintf(stderr, "attnscope: out of memory\n");
                rc = ATS_EXIT_FAIL;
                goto done;
            }
            if (count) fputc(',', jf);
            encoding_json(jf, &enc, chars);
            free(chars);
        } else {
            print_table(stdout, &enc, text + pos);
        }
        ats_encoding_free(&enc);
        count++;
        pos = next;
        if (!lines) break;
    }
    if (jf) {
        if (lines) fputc(']', jf);
        fputc('\n', jf);
        if (jf != stdout && !of.tmp_path) {
            if (fclose(jf) != 0) rc = ats_cli_usage_error("tokenize", "cannot write %s", json);
        } else if (jf != stdout && ats_outfile_commit(&of, &err)) {
            rc = ats_cli_fail(&err);
        }
    }
done:
    ats_tokenizer_free(tok);
    free(dir);
    free(buf);
    return rc;
}
