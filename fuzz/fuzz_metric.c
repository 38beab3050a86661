/* libFuzzer target: the metric readers of `attnscope rips` (lower-distance, distance and point
 * cloud text; .npy matrices) and the NPY reader on arbitrary bytes, from a file as the CLI reads
 * them. Any error is fine; a crash, leak, sanitizer report, hang, an error without a message or
 * a metric that ats_metric_check rejects is a bug. */
#include "attnscope/core.h"
#include "attnscope/rips.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz-metric-%ld", (long)getpid());
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    ats_error err;
    for (int f = ATS_METRIC_DISTANCE; f <= ATS_METRIC_NPY; f++)
        for (int sym = 0; sym <= 1; sym++) {
            size_t count = 0, n = 0;
            double *lowers = NULL;
            ats_status st =
                ats_metric_read(path, (ats_metric_format)f, sym, &count, &n, &lowers, &err);
            if (st != ATS_OK) {
                if (err.message[0] == '\0') abort();
                continue;
            }
            size_t m = n * (n - 1) / 2;
            for (size_t b = 0; b < count; b++)
                if (ats_metric_check(n, lowers + b * m, "fuzz", &err) != ATS_OK) abort();
            free(lowers);
        }
    ats_npy a;
    ats_status st = ats_npy_read(path, &a, &err);
    if (st == ATS_OK)
        ats_npy_free(&a);
    else if (err.message[0] == '\0')
        abort();
    remove(path);
    return 0;
}
