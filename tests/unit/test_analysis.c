/* The analysis layer on the fixture models: a session, labelled attention, compare (one head
 * equals the same head among all heads; errors reach the session's message), the corpus pass
 * from memory equal to the same bytes from a file, and the token roles. */
#include "check.h"
#include "attnscope/analysis.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FIX "tests/fixtures/models/"

static void test_session_and_labels(void) {
    ats_session *s = NULL;
    ats_error err;
    CHECK(ats_session_open(FIX "gpt2", &s, &err) == ATS_OK && ats_session_tokenizer(s) != NULL);
    if (!s) return;
    const char *texts[2] = {"The cat sat.", "A dog"};
    ats_attention a[2];
    CHECK(ats_session_run(s, 2, texts, NULL, a, &err) == ATS_OK);
    /* the fixture's toy vocabulary: T he Ġcat Ġsat . */
    CHECK(a[0].n == 5 && !strcmp(a[0].labels[2], "cat") && !strcmp(a[0].labels[4], "."));
    CHECK(!strcmp(a[1].name, "text 2") && a[1].L == 2 && a[1].H == 4);
    ats_attn v = ats_attention_head(&a[0], 1, 2);
    CHECK(v.n == 5 && v.data == a[0].att + (1 * 4 + 2) * 25);
    ats_attention_free(&a[0]);
    ats_attention_free(&a[1]);
    ats_attention_free(&a[1]); /* twice is harmless */
    const char *empty[1] = {""};
    CHECK(ats_session_run(s, 1, empty, NULL, a, &err) == ATS_ERR_INVALID);
    CHECK(strstr(ats_session_errmsg(s), "text 1 is empty") != NULL);
    ats_session_close(s);
    CHECK(ats_session_open(FIX "missing", &s, &err) != ATS_OK && s == NULL);
}

static void test_compare(void) {
    ats_session *s = NULL;
    ats_error err;
    CHECK(ats_session_open(FIX "bert", &s, &err) == ATS_OK);
    if (!s) return;
    const char *texts[2] = {"The cat sat on the mat.", "A dog slept under the table."};
    ats_compare_options o;
    ats_compare_options_init(&o);
    o.all_heads = 1;
    ats_compare_result all, one;
    CHECK(ats_compare(s, texts, &o, &all, &err) == ATS_OK);
    o.all_heads = 0;
    o.layer = 1;
    o.head = 3;
    CHECK(ats_compare(s, texts, &o, &one, &err) == ATS_OK);
    CHECK(all.n_dims == 2 && all.L == 2 && all.H == 4 && one.L == 2);
    for (size_t d = 0; d < 2; d++) {
        size_t k = (d * 2 + 1) * 4 + 3;
        CHECK(one.bottleneck[k] == all.bottleneck[k] && one.wasserstein[k] == all.wasserstein[k]);
        CHECK(isnan(one.bottleneck[k - 1]) && !isnan(all.bottleneck[k - 1]));
    }
    CHECK(!strcmp(one.inputs[1].labels[1], "a") || !strcmp(one.inputs[1].labels[1], "A"));
    ats_compare_result_free(&all);
    ats_compare_result_free(&one);
    o.layer = 7;
    CHECK(ats_compare(s, texts, &o, &one, &err) == ATS_ERR_INVALID);
    CHECK(strstr(err.message, "layer 7, head 3 is outside its 2 x 4 heads") != NULL);
    CHECK(!strcmp(ats_session_errmsg(s), err.message));
    o.layer = 0;
    o.q = 0.5;
    CHECK(ats_compare(s, texts, &o, &one, NULL) == ATS_ERR_INVALID);
    ats_session_close(s);
}

static void test_heads_memory_equals_file(void) {
    ats_session *s = NULL;
    ats_error err;
    CHECK(ats_session_open(FIX "bert", &s, &err) == ATS_OK);
    if (!s) return;
    static const char corpus[] = "The cat sat.\n\nbad \xff line\nA dog slept.\nShort.\n";
    const char *path = "build-test-analysis-corpus.txt";
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (!fp) {
        ats_session_close(s);
        return;
    }
    fputs(corpus, fp);
    fclose(fp);
    ats_corpus_source file, mem;
    ats_corpus_source_init(&file);
    file.path = path;
    ats_corpus_source_init(&mem);
    mem.data = corpus;
    mem.size = sizeof corpus - 1;
    ats_heads_options o;
    ats_heads_options_init(&o);
    o.stats = 1;
    o.chunk_lines = 2;
    ats_heads_result a, b;
    CHECK(ats_heads_corpus(&s, 1, &file, &o, &a, &err) == ATS_OK);
    o.n_threads = 1;
    CHECK(ats_heads_corpus(&s, 1, &mem, &o, &b, &err) == ATS_OK);
    CHECK(a.N == 8 && b.N == 8 && !memcmp(a.D, b.D, 64 * sizeof *a.D));
    CHECK(a.counts[ATS_HEADS_LINES] == 5 && a.counts[ATS_HEADS_TEXTS] == 3);
    CHECK(a.counts[ATS_HEADS_EMPTY] == 1 && a.first_empty == 2 && a.first_badutf == 3);
    CHECK(a.stats != NULL && a.D[1] > 0 && a.D[0] == 0);
    ats_heads_result_free(&a);
    ats_heads_result_free(&b);
    unlink(path);
    CHECK(ats_heads_corpus(&s, 1, &file, &o, &a, &err) == ATS_ERR_IO);
    CHECK(strstr(err.message, path) != NULL && a.D == NULL);
    ats_session_close(s);
}

static void test_token_roles(void) {
    const char *tokens[] = {"[CLS]", "\xe2\x96\x81,", "##",    "\xe2\x80\x9c", "##.",
                            "word",  "</s>",          "<sep>", "\xc4\xa0!"};
    uint8_t special[9] = {1, 0, 0, 0, 0, 0, 1, 1, 0};
    size_t pos[27];
    ats_token_roles r;
    ats_token_roles_find(9, tokens, special, pos, &r);
    CHECK(r.n_cls == 1 && r.cls[0] == 0);
    CHECK(r.n_sep == 2 && r.sep[0] == 6 && r.sep[1] == 7);
    /* "##" alone is two '#', punctuation; the marker forms and Unicode quotes are too */
    CHECK(r.n_punct == 5 && r.punct[0] == 1 && r.punct[1] == 2 && r.punct[2] == 3 &&
          r.punct[3] == 4 && r.punct[4] == 8);
    special[2] = 1; /* a special token is never punctuation */
    ats_token_roles_find(9, tokens, special, pos, &r);
    CHECK(r.n_punct == 4 && r.freq == NULL && r.cols == NULL);
}

int main(void) {
    test_session_and_labels();
    test_compare();
    test_heads_memory_equals_file();
    test_token_roles();
    return check_report("test_analysis");
}
