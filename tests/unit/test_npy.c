/* NPY round trip and rejection of malformed files; output folders. */
#include "attnscope/core.h"
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

    /* mapped: the same array, in place; released pages read back the same */
    CHECK(ats_npy_map(path, &a, &err) == ATS_OK);
    CHECK(a.map != NULL && a.dtype == ATS_F64 && a.ndim == 2 && a.count == 6);
    CHECK(memcmp(a.data, vals, sizeof vals) == 0);
    ats_npy_release(&a, 0, 6);
    ats_npy_release(&a, 5, 100);
    CHECK(memcmp(a.data, vals, sizeof vals) == 0);
    ats_npy_free(&a);
    CHECK(a.data == NULL && a.map == NULL);
    /* integers are read, not mapped */
    int32_t ints[6] = {1, 2, 3, 4, 5, 6};
    CHECK(ats_npy_write(path, ATS_I32, 2, shape, ints, &err) == ATS_OK);
    CHECK(ats_npy_map(path, &a, &err) == ATS_OK);
    CHECK(a.map == NULL && a.dtype == ATS_I32 && memcmp(a.data, ints, sizeof ints) == 0);
    ats_npy_release(&a, 0, 6); /* no effect on a read array */
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
    CHECK(ats_npy_map(path, &a, &err) == ATS_ERR_FORMAT && a.data == NULL);
    CHECK(strstr(err.message, "shape needs") != NULL);

    /* Absurd shape: the product overflows size_t. */
    const char hdr2[] = "\x93NUMPY\x01\x00\x76\x00{'descr': '<f8', 'fortran_order': False, "
                        "'shape': (99999999999, 99999999999, 99999999999), }";
    memset(buf, ' ', sizeof buf);
    memcpy(buf, hdr2, sizeof hdr2 - 1);
    buf[127] = '\n';
    write_bytes(path, buf, 128);
    CHECK(ats_npy_read(path, &a, &err) == ATS_ERR_RANGE);

    CHECK(ats_npy_map(path, &a, &err) == ATS_ERR_RANGE);
    write_bytes(path, "hello", 5);
    CHECK(ats_npy_read(path, &a, &err) == ATS_ERR_FORMAT);
    CHECK(ats_npy_map(path, &a, &err) == ATS_ERR_FORMAT);
    CHECK(ats_npy_map("/nonexistent/x.npy", &a, &err) == ATS_ERR_IO);
    CHECK(ats_npy_read("/nonexistent/x.npy", &a, &err) == ATS_ERR_IO);
    remove(path);

    /* A device is written in place, never replaced by a renamed temporary. */
    CHECK(ats_npy_write("/dev/null", ATS_F64, 2, shape, vals, &err) == ATS_OK);
    struct stat sb;
    CHECK(stat("/dev/null", &sb) == 0 && S_ISCHR(sb.st_mode));
    /* A folder is not a file. */
    CHECK(ats_npy_write("/tmp", ATS_F64, 2, shape, vals, &err) == ATS_ERR_IO);

    /* ats_dir_create makes parents, accepts an existing folder, and names a file in the way */
    char dir[] = "/tmp/attnscope-dirtest-XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char deep[128], file[128], under[128];
    snprintf(deep, sizeof deep, "%s/a//b/c/", dir);
    CHECK(ats_dir_create(deep, &err) == ATS_OK);
    CHECK(stat(deep, &sb) == 0 && S_ISDIR(sb.st_mode));
    CHECK(ats_dir_create(deep, &err) == ATS_OK);
    snprintf(file, sizeof file, "%s/f", dir);
    write_bytes(file, "x", 1);
    CHECK(ats_dir_create(file, &err) == ATS_ERR_IO && strstr(err.message, "Not a directory"));
    snprintf(under, sizeof under, "%s/f/g", dir);
    CHECK(ats_dir_create(under, &err) == ATS_ERR_IO && strstr(err.message, file) != NULL);
    CHECK(ats_dir_create("", &err) != ATS_OK);
    rmdir(deep);
    snprintf(deep, sizeof deep, "%s/a/b", dir);
    rmdir(deep);
    snprintf(deep, sizeof deep, "%s/a", dir);
    rmdir(deep);
    remove(file);
    CHECK(rmdir(dir) == 0);
    return check_report("test_npy");
}
