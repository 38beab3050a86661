/* NPY round trip and rejection of malformed files. */
#include "attnscope/core.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static void write_bytes(const char *path, const void *data, size_t len) {
    FILE *fp = fopen(path, "wb");
    fwrite(data, 1, len, fp);
    fclose(fp);
}

int main(void) {
    ats_error err;
    const char *path = "build-test-npy.npy";
    double vals[6] = {1, 2, 3, 4, 5, 6.5};
    size_t shape[2] = {2, 3};
    CHECK(ats_npy_write(path, ATS_F64, 2, shape, vals, &err) == ATS_OK);
    ats_npy a;
    CHECK(ats_npy_read(path, &a, &err) == ATS_OK);
    CHECK(a.dtype == ATS_F64 && a.ndim == 2 && a.shape[0] == 2 && a.shape[1] == 3);
    CHECK(a.count == 6 && memcmp(a.data, vals, sizeof vals) == 0);
    ats_npy_free(&a);

    size_t shape1[1] = {6};
    CHECK(ats_npy_write(path, ATS_F32, 1, shape1, (float[6]){0}, &err) == ATS_OK);
    CHECK(ats_npy_read(path, &a, &err) == ATS_OK);
    CHECK(a.dtype == ATS_F32 && a.ndim == 1 && a.shape[0] == 6);
    ats_npy_free(&a);

    /* Truncated data: the header promises more than the file has. */
    const char hdr[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f8', 'fortran_order': False, "
                       "'shape': (1000, 1000), }";
    char buf[128 + 16];
    memset(buf, ' ', sizeof buf);
    memcpy(buf, hdr, sizeof hdr - 1);
    buf[127] = '\n';
    write_bytes(path, buf, 128 + 16);
    CHECK(ats_npy_read(path, &a, &err) == ATS_ERR_FORMAT);
    CHECK(strstr(err.message, "shape needs") != NULL);

    /* Absurd shape: the product overflows size_t. */
    const char hdr2[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f8', 'fortran_order': False, "
                        "'shape': (99999999999, 99999999999, 99999999999), }";
    memset(buf, ' ', sizeof buf);
    memcpy(buf, hdr2, sizeof hdr2 - 1);
    buf[127] = '\n';
    write_bytes(path, buf, 128);
    CHECK(ats_npy_read(path, &a, &err) == ATS_ERR_RANGE);

    write_bytes(path, "hello", 5);
    CHECK(ats_npy_read(path, &a, &err) == ATS_ERR_FORMAT);
    CHECK(ats_npy_read("/nonexistent/x.npy", &a, &err) == ATS_ERR_IO);
    remove(path);

    /* A device is written in place, never replaced by a renamed temporary. */
    CHECK(ats_npy_write("/dev/null", ATS_F64, 2, shape, vals, &err) == ATS_OK);
    struct stat sb;
    CHECK(stat("/dev/null", &sb) == 0 && S_ISCHR(sb.st_mode));
    /* A folder is not a file. */
    CHECK(ats_npy_write("/tmp", ATS_F64, 2, shape, vals, &err) == ATS_ERR_IO);
    return check_report("test_npy");
}
