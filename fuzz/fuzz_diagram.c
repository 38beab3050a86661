/* libFuzzer target: persistence diagram files (pairs, Ripser's output, JSON, DIPHA) on arbitrary
 * bytes, parsed in memory in every text format and read from a file with detection (DIPHA
 * included). Any error is fine; a crash, leak, sanitizer report, hang, an error without a
 * message or a point that is NaN is a bug. */
#include "attnscope/diagram.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(ats_status st, const ats_diagram *d, const ats_error *err) {
    if (st != ATS_OK) {
        if (err->message[0] == '\0') abort();
        return;
    }
    for (size_t i = 0; i < 2 * d->count; i++)
        if (isnan(d->pairs[i])) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static char path[64];
    if (!path[0]) snprintf(path, sizeof path, "/tmp/fuzz-diagram-%ld", (long)getpid());
    ats_diagram d;
    ats_error err;
    static const ats_diagram_format formats[4] = {ATS_DIAGRAM_AUTO, ATS_DIAGRAM_PAIRS,
                                                  ATS_DIAGRAM_RIPSER, ATS_DIAGRAM_JSON};
    for (int f = 0; f < 4; f++)
        for (int dim = -1; dim <= 1; dim += 2) {
            ats_status st =
                ats_diagram_parse((const char *)data, size, "fuzz", formats[f], dim, &d, &err);
            check(st, &d, &err);
            if (st == ATS_OK) ats_diagram_free(&d);
        }
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    ats_status st = ats_diagram_read(path, 0, &d, &err);
    check(st, &d, &err);
    if (st == ATS_OK) ats_diagram_free(&d);
    remove(path);
    return 0;
}
