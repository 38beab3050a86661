/* NPY round trip and rejection of malformed files; output folders. */
#include "attnscope/core.h"
#include "check.h"

#include <stdint.h>
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

    /* ats_npy_get_f64: rows as doubles, from the file when mapped and from memory when read;
       float32 widened in place, at any offset and length */
    CHECK(ats_npy_map(path, &a, &err) == ATS_OK && a.map == NULL); /* the ints above */
    double got[8];
    CHECK(ats_npy_get_f64(&a, "i.npy", 0, 2, got, &err) == ATS_ERR_INVALID);
    CHECK(strstr(err.message, "i.npy: not a float array") != NULL);
    ats_npy_free(&a);
    float fl[7] = {1.5f, -2.25f, 1e-3f, 3.0e38f, -0.0f, 7.0f, 0.1f};
    size_t shape7[1] = {7};
    for (int mapped = 1; mapped >= 0; mapped--) {
        for (int f32 = 0; f32 < 2; f32++) {
            double dv[7];
            for (int j = 0; j < 7; j++) dv[j] = fl[j] * 3.0;
            CHECK(ats_npy_write(path, f32 ? ATS_F32 : ATS_F64, 1, shape7, f32 ? (void *)fl : dv,
                                &err) == ATS_OK);
            if (!mapped) setenv("ATS_NPY_MMAP", "0", 1);
            CHECK(ats_npy_map(path, &a, &err) == ATS_OK && (a.map != NULL) == mapped);
            unsetenv("ATS_NPY_MMAP");
            for (size_t first = 0; first <= 7; first++)
                for (size_t count = 0; first + count <= 7; count++) {
                    for (int j = 0; j < 8; j++) got[j] = -99;
                    CHECK(ats_npy_get_f64(&a, path, first, count, got, &err) == ATS_OK);
                    for (size_t j = 0; j < count; j++)
                        CHECK(got[j] == (f32 ? (double)fl[first + j] : dv[first + j]));
                    CHECK(got[count] == -99);
                }
            CHECK(ats_npy_get_f64(&a, "x.npy", 5, 3, got, &err) == ATS_ERR_INVALID);
            CHECK(strstr(err.message, "x.npy: elements 5..8 are outside its 7") != NULL);
            CHECK(ats_npy_get_f64(&a, "x.npy", 8, 0, got, &err) == ATS_ERR_INVALID);
            CHECK(ats_npy_get_f64(&a, "x.npy", 1, SIZE_MAX, got, &err) == ATS_ERR_INVALID);
            if (mapped) { /* another process shortens the file: an error, not a crash */
                CHECK(truncate(path, 100) == 0);
                CHECK(ats_npy_get_f64(&a, "x.npy", 0, 7, got, &err) == ATS_ERR_IO);
                CHECK(strstr(err.message, "x.npy: the file became shorter while it was read"));
            }
            ats_npy_free(&a);
        }
    }

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
