/* libFuzzer target: the command line and the small list files commands read — `measure stats`
 * token files (--tokens) and frequency tables (--freq-table), `bottleneck --batch` lists, and the
 * argument parsing of `measure`, `bottleneck` and `wasserstein` — run in-process as the
 * attnscope executable runs them (src/cli, linked in).
 *
 * Input: byte 0 picks the case; the rest is NUL-separated fields.
 *   0: a token file, NUL, a frequency table: `measure stats --input a.npy --tokens t.txt
 *      [--freq-table f.txt] --output s.json` (a.npy: 1 head of 3 tokens)
 *   1: a --batch list (lines of two diagram files; a.txt and b.txt exist): `bottleneck` and
 *      `wasserstein --batch list.txt`
 *   2: arguments (byte 1 picks measure, bottleneck or wasserstein), each field one argv entry;
 *      fields holding '/' are dropped, so that only the scratch folder is ever written
 * Everything runs in a scratch folder under /tmp. Any exit status is fine; a crash, a leak, a
 * sanitizer report or a hang is a bug. Built with -DATS_FUZZ=ON (tools/fuzz.sh). */
#define _DEFAULT_SOURCE /* realpath, mkdtemp, symlink */
#include "cli.h"

#include "fuzz_files.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int ready;

static void setup(void) {
    const char *dir = fuzz_dir();
    if (!dir || chdir(dir) != 0) abort();
    /* a.npy: float64 [1][1][3][3], rows that sum to 1 */
    static const char HDR[] = "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 1, 3, 3), }";
    unsigned char pre[10] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0, 0, 0};
    size_t hlen = sizeof HDR - 1, pad = (64 - (10 + hlen + 1) % 64) % 64, total = hlen + pad + 1;
    pre[8] = (unsigned char)(total & 0xff);
    pre[9] = (unsigned char)(total >> 8);
    FILE *fp = fopen("a.npy", "wb");
    if (!fp) abort();
    fwrite(pre, 1, 10, fp);
    fwrite(HDR, 1, hlen, fp);
    for (size_t i = 0; i < pad; i++) fputc(' ', fp);
    fputc('\n', fp);
    const double rows[9] = {0.5, 0.25, 0.25, 0.1, 0.8, 0.1, 1.0 / 3, 1.0 / 3, 1.0 / 3};
    fwrite(rows, sizeof rows[0], 9, fp);
    fclose(fp);
    fuzz_put(".", "a.txt", "0 1\n0.5 inf\n0.25 0.75\n", 22);
    fuzz_put(".", "b.txt", "0 2\n0.1 0.3\n", 12);
    ready = 1;
}

static int run(int (*cmd)(int, char **), char **argv, int argc) {
    argv[argc] = NULL;
    return cmd(argc, argv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!ready) setup();
    if (size < 1) return 0;
    const char *in = (const char *)data + 1;
    size_t n = size - 1, len;
    char *argv[40];
    int argc = 0;
    switch (data[0] % 3) {
    case 0: {
        const char *t = fuzz_field(in, n, 0, &len);
        fuzz_put(".", "t.txt", t, len == (size_t)-1 ? 0 : len);
        const char *f = fuzz_field(in, n, 1, &len);
        fuzz_put(".", "f.txt", f, len);
        char *args[] = {"measure", "stats",    "--input", "a.npy",        "--tokens",
                        "t.txt",   "--output", "s.json",  "--freq-table", "f.txt"};
        int k = len == (size_t)-1 ? 8 : 10;
        for (int i = 0; i < k; i++) argv[argc++] = args[i];
        run(ats_cmd_measure, argv, argc);
        break;
    }
    case 1: {
        fuzz_put(".", "list.txt", in, n);
        char *b[] = {"bottleneck", "--batch", "list.txt"};
        for (int i = 0; i < 3; i++) argv[i] = b[i];
        run(ats_cmd_bottleneck, argv, 3);
        argv[0] = "wasserstein";
        run(ats_cmd_wasserstein, argv, 3);
        break;
    }
    default: {
        if (n < 1) return 0;
        static const char *const NAMES[] = {"measure", "bottleneck", "wasserstein"};
        int (*const CMDS[])(int, char **) = {ats_cmd_measure, ats_cmd_bottleneck,
                                             ats_cmd_wasserstein};
        int which = (unsigned char)in[0] % 3;
        char *copy = malloc(n);
        if (!copy) return 0;
        memcpy(copy, in + 1, n - 1);
        argv[argc++] = (char *)NAMES[which];
        for (int k = 0; argc < 39; k++) {
            const char *f = fuzz_field(copy, n - 1, k, &len);
            if (!f) break;
            copy[(size_t)(f - copy) + len < n - 1 ? (size_t)(f - copy) + len : n - 1] = '\0';
            if (!memchr(f, '/', len) && strlen(f) == len) argv[argc++] = (char *)f;
        }
        /* the last field may run to the end of the input without a NUL */
        run(CMDS[which], argv, argc);
        free(copy);
        break;
    }
    }
    fflush(stdout);
    return 0;
}
