/* core's finite-number scans, memory limit and size parsing (src/core/limits.c), and the
 * all-or-nothing output folder (ats_outdir): against a plain isfinite loop at every position
 * around the scan's block edges, and against the file system. */
#include "attnscope/core.h"

#include "check.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static size_t first_bad_f32(const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) return i;
    return n;
}

int main(void) {
    enum { N = 3000 };
    float *f = malloc(N * sizeof *f);
    double *d = malloc(N * sizeof *d);
    for (size_t i = 0; i < N; i++) f[i] = (float)i - 1500.0f, d[i] = (double)i * 1e300;
    CHECK(ats_f32_find_nonfinite(f, N) == N);
    CHECK(ats_f64_find_nonfinite(d, N) == N); /* 1e303 and beyond are still finite doubles */
    const size_t at[] = {0, 1, 1023, 1024, 1025, 2047, 2048, 2999};
    const float bad[] = {NAN, INFINITY, -INFINITY};
    for (size_t k = 0; k < sizeof at / sizeof at[0]; k++)
        for (size_t b = 0; b < 3; b++) {
            float keep = f[at[k]];
            f[at[k]] = bad[b];
            CHECK(ats_f32_find_nonfinite(f, N) == first_bad_f32(f, N));
            CHECK(ats_f32_find_nonfinite(f, N) == at[k]);
            CHECK(ats_f32_find_nonfinite(f, at[k]) == at[k]); /* before it: all finite */
            f[at[k]] = keep;
            double dk = d[at[k]];
            d[at[k]] = bad[b];
            CHECK(ats_f64_find_nonfinite(d, N) == at[k]);
            d[at[k]] = dk;
        }
    f[5] = NAN;
    f[2000] = INFINITY;
    CHECK(ats_f32_find_nonfinite(f, N) == 5); /* the first one */
    CHECK(ats_f32_find_nonfinite(f, 0) == 0);
    free(f);
    free(d);

    CHECK(ats_memory_parse("1000") == 1000);
    CHECK(ats_memory_parse("512M") == (size_t)512 << 20);
    CHECK(ats_memory_parse("1.5G") == (size_t)3 << 29);
    CHECK(ats_memory_parse("2GB") == (size_t)2 << 30);
    CHECK(ats_memory_parse("8k") == 8192);
    CHECK(ats_memory_parse("") == 0 && ats_memory_parse("x") == 0 && ats_memory_parse("-1G") == 0);
    CHECK(ats_memory_parse("1e30T") == 0 && ats_memory_parse("5Q") == 0 && !ats_memory_parse(NULL));

    ats_error err;
    CHECK(ats_memory_available() > 0);
    ats_memory_limit_set((size_t)1 << 20);
    CHECK(ats_memory_available() == (size_t)1 << 20);
    CHECK(ats_memory_check((size_t)1 << 20, "x", &err) == ATS_OK);
    CHECK(ats_memory_check(((size_t)1 << 20) + 1, "the matrix", &err) == ATS_ERR_RANGE);
    CHECK(strstr(err.message, "the matrix") && strstr(err.message, "--max-memory"));
    ats_memory_limit_set(0);
    CHECK(ats_memory_check(SIZE_MAX, "all", &err) == ATS_ERR_RANGE);

    /* ats_outdir: a new folder appears only at commit; an abort leaves nothing */
    const char *dir = "build-test-outdir";
    char path[256];
    (void)!system("rm -rf build-test-outdir build-test-outdir.tmp.*");
    ats_outdir od;
    CHECK(ats_outdir_open(&od, dir, &err) == ATS_OK);
    snprintf(path, sizeof path, "%s/a.npy", od.tmp);
    size_t one = 1;
    CHECK(ats_npy_write(path, ATS_F64, 1, &one, (double[1]){1}, &err) == ATS_OK);
    struct stat sb;
    CHECK(stat(dir, &sb) != 0);
    CHECK(ats_outdir_commit(&od, &err) == ATS_OK);
    CHECK(stat("build-test-outdir/a.npy", &sb) == 0);
    CHECK(ats_outdir_open(&od, dir, &err) == ATS_OK); /* into the existing folder */
    snprintf(path, sizeof path, "%s/b.npy", od.tmp);
    CHECK(ats_npy_write(path, ATS_F64, 1, &one, (double[1]){2}, &err) == ATS_OK);
    char tmp[256];
    snprintf(tmp, sizeof tmp, "%s", od.tmp);
    ats_outdir_abort(&od);
    CHECK(stat(tmp, &sb) != 0 && stat("build-test-outdir/b.npy", &sb) != 0);
    CHECK(ats_outdir_open(&od, dir, &err) == ATS_OK);
    snprintf(path, sizeof path, "%s/b.npy", od.tmp);
    CHECK(ats_npy_write(path, ATS_F64, 1, &one, (double[1]){2}, &err) == ATS_OK);
    CHECK(ats_outdir_commit(&od, &err) == ATS_OK);
    CHECK(stat("build-test-outdir/a.npy", &sb) == 0 && stat("build-test-outdir/b.npy", &sb) == 0);
    FILE *fp = fopen("build-test-outdir-file", "w");
    if (fp) fclose(fp);
    CHECK(ats_outdir_open(&od, "build-test-outdir-file", &err) == ATS_ERR_IO);
    remove("build-test-outdir-file");
    (void)!system("rm -rf build-test-outdir");
    return check_report("test_limits");
}
