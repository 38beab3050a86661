/* Pieces of `attnscope heads`: UTF-8 check and corpus reader (plain and JSONL, bad lines, from
 * a file and from memory), single-linkage dendrogram, classical MDS, and the scatter figure. */
#include "check.h"
#include "heads_topo.c"
#include "attnscope/analysis.h"
#include "attnscope/render.h"
#include "attnscope/tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void test_utf8(void) {
    CHECK(ats_utf8_check("abc", 3) == 3);
    CHECK(ats_utf8_check("caf\xc3\xa9", 5) == 5);
    CHECK(ats_utf8_check("caf\xc3", 4) == 3);           /* truncated */
    CHECK(ats_utf8_check("a\xff", 2) == 1);             /* never valid */
    CHECK(ats_utf8_check("\xc0\xaf", 2) == 0);          /* overlong */
    CHECK(ats_utf8_check("\xed\xa0\x80", 3) == 0);      /* surrogate */
    CHECK(ats_utf8_check("\xf0\x9f\x98\x80!", 5) == 5); /* emoji */
}

static void test_corpus(void) {
    const char *path = "build-test-heads-corpus.txt";
    FILE *fp = fopen(path, "wb");
    CHECK(fp != NULL);
    if (!fp) return;
    fputs("first line\r\n\n  \t\nbad \xff byte\nlast line without newline", fp);
    fclose(fp);
    ats_corpus c;
    ats_corpus_source src;
    ats_corpus_source_init(&src);
    src.path = path;
    ats_error err = {0};
    CHECK(ats_corpus_open(&c, &src, 1 << 20, &err) == ATS_OK);
    ats_line_kind kinds[5];
    int k = 0, got;
    while ((got = ats_corpus_next(&c, &kinds[k], &err)) == 1 && k < 5) {
        if (k == 0) CHECK(!strcmp(c.text, "first line") && c.len == 10);
        if (k == 4) CHECK(!strcmp(c.text, "last line without newline"));
        k++;
    }
    CHECK(got == 0 && k == 5);
    CHECK(kinds[0] == ATS_LINE_TEXT && kinds[1] == ATS_LINE_EMPTY && kinds[2] == ATS_LINE_EMPTY &&
          kinds[3] == ATS_LINE_BADUTF && kinds[4] == ATS_LINE_TEXT);
    ats_corpus_close(&c);
    /* JSONL, detected from the first line */
    fp = fopen(path, "wb");
    if (!fp) return;
    fputs("{\"text\": \"caf\\u00e9 ok\"}\n{\"text\": 3}\nnot json\n{\"text\": \"  \"}\n", fp);
    fclose(fp);
    CHECK(ats_corpus_open(&c, &src, 1 << 20, &err) == ATS_OK);
    CHECK(c.jsonl == 1);
    ats_line_kind kind;
    CHECK(ats_corpus_next(&c, &kind, &err) == 1 && kind == ATS_LINE_TEXT);
    CHECK(!strcmp(c.text, "caf\xc3\xa9 ok"));
    CHECK(ats_corpus_next(&c, &kind, &err) == 1 && kind == ATS_LINE_BADJSON);
    CHECK(ats_corpus_next(&c, &kind, &err) == 1 && kind == ATS_LINE_BADJSON);
    CHECK(ats_corpus_next(&c, &kind, &err) == 1 && kind == ATS_LINE_EMPTY);
    CHECK(ats_corpus_next(&c, &kind, &err) == 0);
    ats_corpus_close(&c);
    /* a line over the byte limit */
    src.jsonl = 0;
    CHECK(ats_corpus_open(&c, &src, 8, &err) == ATS_OK);
    CHECK(ats_corpus_next(&c, &kind, &err) == 1 && kind == ATS_LINE_LONG);
    ats_corpus_close(&c);
    unlink(path);
    src.path = "build-test-missing-corpus.txt";
    CHECK(ats_corpus_open(&c, &src, 8, &err) == ATS_ERR_IO);
    CHECK(strstr(err.message, "build-test-missing-corpus.txt") != NULL);
    /* the same bytes from memory read as from a file: JSONL detected, the last line unended */
    static const char mem[] = "{\"text\": \"a\"}\n\n{\"text\": \"b\"}";
    ats_corpus_source_init(&src);
    src.path = "memory";
    src.data = mem;
    src.size = sizeof mem - 1;
    CHECK(ats_corpus_open(&c, &src, 1 << 20, &err) == ATS_OK && c.jsonl == 1);
    CHECK(ats_corpus_next(&c, &kind, &err) == 1 && kind == ATS_LINE_TEXT && !strcmp(c.text, "a"));
    CHECK(ats_corpus_next(&c, &kind, &err) == 1 && kind == ATS_LINE_EMPTY);
    CHECK(ats_corpus_next(&c, &kind, &err) == 1 && kind == ATS_LINE_TEXT && !strcmp(c.text, "b"));
    CHECK(ats_corpus_next(&c, &kind, &err) == 0 && c.line_no == 3);
    ats_corpus_close(&c);
    src.size = 0; /* no bytes: no lines */
    CHECK(ats_corpus_open(&c, &src, 1 << 20, &err) == ATS_OK);
    CHECK(ats_corpus_next(&c, &kind, &err) == 0);
    ats_corpus_close(&c);
}

static void test_linkage_and_mds(void) {
    /* 4 points on a line: 0, 1, 3, 7 */
    double x[4] = {0, 1, 3, 7};
    double lower[6];
    for (size_t i = 1; i < 4; i++)
        for (size_t j = 0; j < i; j++) lower[ats_lower_index(i, j)] = fabs(x[i] - x[j]);
    double merges[12];
    const ats_lower metric = {4, lower};
    CHECK(ats_metric_single_linkage(&metric, merges, NULL) == ATS_OK);
    CHECK(merges[0] == 0 && merges[1] == 1 && merges[2] == 1 && merges[3] == 2);
    CHECK(merges[4] == 2 && merges[5] == 4 && merges[6] == 2 && merges[7] == 3);
    CHECK(merges[8] == 3 && merges[9] == 5 && merges[10] == 4 && merges[11] == 4);
    /* MDS of collinear points recovers the line (first axis) up to a shift */
    double xy[8];
    CHECK(ats_metric_mds(&metric, 2, 0, xy, NULL) == ATS_OK);
    for (size_t i = 1; i < 4; i++) CHECK_NEAR(fabs(xy[2 * i] - xy[0]), x[i], 1e-9);
    for (size_t i = 0; i < 4; i++) CHECK_NEAR(xy[2 * i + 1], 0, 1e-6);
    char name[32];
    heads_name(name, sizeof name, "m2:", 3, 7);
    CHECK(!strcmp(name, "m2:L3H7"));
}

static void test_scatter(void) {
    double xy[8] = {0, 0, 1, 0.5, -1, 2, 0.3, -0.7};
    int groups[4] = {0, 0, 1, 2};
    int shapes[4] = {0, 1, 2, 0};
    const char *labels[4] = {"L0H0", "L0H1", "L1H0", "L2H0"};
    const char *shape_names[3] = {"bert", "gpt2", "x"};
    ats_scatter_options so;
    ats_scatter_options_init(&so);
    so.fig.title = "heads";
    so.labels = labels;
    so.groups = groups;
    so.n_groups = 3;
    so.legend_title = "layer";
    so.shapes = shapes;
    so.shape_names = shape_names;
    so.n_shapes = 3;
    ats_error err = {0};
    CHECK(ats_render_scatter("build-test-scatter.png", 4, xy, &so, &err) == ATS_OK);
    CHECK(ats_render_scatter("build-test-scatter.svg", 4, xy, NULL, &err) == ATS_OK);
    CHECK(ats_render_scatter("build-test-scatter.pdf", 4, xy, &so, &err) == ATS_OK);
    unlink("build-test-scatter.png");
    unlink("build-test-scatter.svg");
    unlink("build-test-scatter.pdf");
    CHECK(ats_render_scatter("build-test-scatter.png", 0, xy, NULL, &err) == ATS_ERR_INVALID);
    groups[1] = 5;
    CHECK(ats_render_scatter("build-test-scatter.png", 4, xy, &so, &err) == ATS_ERR_INVALID);
    CHECK(strstr(err.message, "point 1") != NULL);
    groups[1] = 0;
    xy[3] = NAN;
    CHECK(ats_render_scatter("build-test-scatter.png", 4, xy, &so, &err) == ATS_ERR_INVALID);
    CHECK(access("build-test-scatter.png", F_OK) != 0);
}

int main(void) {
    test_utf8();
    test_corpus();
    test_linkage_and_mds();
    test_scatter();
    return check_report("test_heads");
}
