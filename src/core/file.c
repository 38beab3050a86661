#define _DEFAULT_SOURCE /* syscall(SYS_getdents64) */
#include "attnscope/core.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The temporary paths of the live outfiles, for ats_outfile_remove_temporaries. A slot holds
 * a pointer set and cleared with atomic operations, so a signal handler reads whole values. */
#define LIVE_MAX 256
static char *live_tmp[LIVE_MAX];

static void live_add(char *tmp) {
    for (int i = 0; i < LIVE_MAX; i++) {
        char *expected = NULL;
        if (__atomic_compare_exchange_n(&live_tmp[i], &expected, tmp, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            return;
    }
}

static void live_remove(const char *tmp) {
    for (int i = 0; tmp && i < LIVE_MAX; i++) {
        char *expected = (char *)tmp;
        if (__atomic_compare_exchange_n(&live_tmp[i], &expected, NULL, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            return;
    }
}

/* The temporary folders of live outdirs, as live_tmp. */
#define LIVE_DIRS 8
static char *live_dirs[LIVE_DIRS];

/* Calls fn(dirfd, name, ctx) for every entry of the open folder fd but . and .., until fn
 * returns nonzero (returned). Async-signal-safe (getdents64; no opendir, which allocates). */
static int dir_each(int fd, int (*fn)(int, const char *, void *), void *ctx) {
    char buf[4096] __attribute__((aligned(8)));
    long n;
    while ((n = syscall(SYS_getdents64, fd, buf, sizeof buf)) > 0)
        for (long off = 0; off < n;) {
            struct {
                uint64_t ino;
                int64_t off;
                unsigned short reclen;
                unsigned char type;
                char name[];
            } *e = (void *)(buf + off);
            off += e->reclen;
            if (strcmp(e->name, ".") && strcmp(e->name, "..")) {
                int r = fn(fd, e->name, ctx);
                if (r) return r;
            }
        }
    return 0;
}

static int entry_unlink(int fd, const char *name, void *ctx) {
    (void)ctx;
    unlinkat(fd, name, 0);
    return 0;
}

/* Removes the files of the flat folder dir, then the folder: async-signal-safe. */
static void dir_remove_flat(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        dir_each(fd, entry_unlink, NULL);
        close(fd);
    }
    rmdir(dir);
}

typedef struct move_ctx {
    int to;
    const ats_outdir *dir;
    ats_error *err;
} move_ctx;

static int entry_move(int fd, const char *name, void *ctx) {
    move_ctx *m = ctx;
    if (renameat(fd, name, m->to, name) == 0) return 0;
    return (int)ats_error_set(m->err, ATS_ERR_IO, "%s/%s: cannot move into place: %s", m->dir->path,
                              name, strerror(errno));
}

ats_status ats_outdir_open(ats_outdir *dir, const char *path, ats_error *err) {
    memset(dir, 0, sizeof *dir);
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/') len--; /* "D/" stages as "D.tmp.PID" */
    dir->path = malloc(len + 1);
    dir->tmp = malloc(len + 32);
    if (!dir->path || !dir->tmp) {
        ats_outdir_abort(dir);
        return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(dir->path, path, len);
    dir->path[len] = '\0';
    snprintf(dir->tmp, len + 32, "%s.tmp.%ld", dir->path, (long)getpid());
    struct stat sb;
    if (stat(dir->path, &sb) == 0 && !S_ISDIR(sb.st_mode)) {
        ats_status st = ats_error_set(err, ATS_ERR_IO, "%s: exists and is not a folder", path);
        ats_outdir_abort(dir);
        return st;
    }
    dir_remove_flat(dir->tmp); /* left by an earlier process with this pid */
    ats_status st = ats_dir_create(dir->tmp, err);
    if (st) {
        ats_outdir_abort(dir);
        return st;
    }
    for (int i = 0; i < LIVE_DIRS; i++) {
        char *expected = NULL;
        if (__atomic_compare_exchange_n(&live_dirs[i], &expected, dir->tmp, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            break;
    }
    return ATS_OK;
}

static void live_dir_remove(const char *tmp) {
    for (int i = 0; tmp && i < LIVE_DIRS; i++) {
        char *expected = (char *)tmp;
        if (__atomic_compare_exchange_n(&live_dirs[i], &expected, NULL, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST))
            return;
    }
}

ats_status ats_outdir_commit(ats_outdir *dir, ats_error *err) {
    ats_status st = ATS_OK;
    if (rename(dir->tmp, dir->path) != 0) {
        /* PATH exists (a folder, checked at open): move the files in one by one */
        int fd = open(dir->tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int to = open(dir->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || to < 0)
            st = ats_error_set(err, ATS_ERR_IO, "%s: cannot open: %s",
                               fd < 0 ? dir->tmp : dir->path, strerror(errno));
        move_ctx mc = {to, dir, err};
        if (!st) st = (ats_status)dir_each(fd, entry_move, &mc);
        if (fd >= 0) close(fd);
        if (to >= 0) close(to);
    }
    if (st) {
        ats_outdir_abort(dir);
        return st;
    }
    live_dir_remove(dir->tmp);
    rmdir(dir->tmp); /* emptied, when the files were moved one by one */
    free(dir->path);
    free(dir->tmp);
    memset(dir, 0, sizeof *dir);
    return ATS_OK;
}

void ats_outdir_abort(ats_outdir *dir) {
    if (dir->tmp) {
        live_dir_remove(dir->tmp);
        dir_remove_flat(dir->tmp);
    }
    free(dir->path);
    free(dir->tmp);
    memset(dir, 0, sizeof *dir);
}

void ats_outfile_remove_temporaries(void) {
    for (int i = 0; i < LIVE_DIRS; i++) {
        char *tmp = __atomic_exchange_n(&live_dirs[i], NULL, __ATOMIC_SEQ_CST);
        if (tmp) dir_remove_flat(tmp);
    }
    for (int i = 0; i < LIVE_MAX; i++) {
        char *tmp = __atomic_exchange_n(&live_tmp[i], NULL, __ATOMIC_SEQ_CST);
        if (tmp) unlink(tmp); /* async-signal-safe, unlike remove() */
    }
}

ats_status ats_outfile_open(ats_outfile *out, const char *path, ats_error *err) {
    memset(out, 0, sizeof *out);
    size_t len = strlen(path);
    out->path = malloc(len + 1);
    out->tmp_path = malloc(len + 32);
    if (!out->path || !out->tmp_path) {
        ats_outfile_abort(out);
        return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    }
    memcpy(out->path, path, len + 1);
    struct stat sb;
    if (stat(path, &sb) == 0 && !S_ISREG(sb.st_mode)) {
        /* A device or a pipe (/dev/null, /dev/stdout, a FIFO) is written in place: renaming a
           temporary over it would replace the device with a regular file. */
        free(out->tmp_path);
        out->tmp_path = NULL;
        out->fp = fopen(path, "wb");
        if (!out->fp) {
            ats_status st = ats_error_set(err, ATS_ERR_IO, "%s: cannot open for writing: %s", path,
                                          strerror(errno));
            ats_outfile_abort(out);
            return st;
        }
        return ATS_OK;
    }
    /* The temporary lives beside the target so rename() stays on one file system. */
    snprintf(out->tmp_path, len + 32, "%s.tmp.%ld", path, (long)getpid());
    live_add(out->tmp_path); /* before the file exists: a signal now removes nothing or it */
    out->fp = fopen(out->tmp_path, "wb");
    if (!out->fp) {
        ats_status st = ats_error_set(err, ATS_ERR_IO, "%s: cannot open for writing: %s", path,
                                      strerror(errno));
        ats_outfile_abort(out);
        return st;
    }
    return ATS_OK;
}

ats_status ats_outfile_commit(ats_outfile *out, ats_error *err) {
    FILE *fp = out->fp;
    out->fp = NULL;
    int bad = ferror(fp) != 0;
    if (fclose(fp) != 0) bad = 1;
    if (bad) {
        ats_status st =
            ats_error_set(err, ATS_ERR_IO, "%s: write failed: %s", out->path, strerror(errno));
        ats_outfile_abort(out);
        return st;
    }
    if (out->tmp_path && rename(out->tmp_path, out->path) != 0) {
        ats_status st = ats_error_set(err, ATS_ERR_IO, "%s: cannot rename into place: %s",
                                      out->path, strerror(errno));
        ats_outfile_abort(out);
        return st;
    }
    live_remove(out->tmp_path);
    free(out->path);
    free(out->tmp_path);
    memset(out, 0, sizeof *out);
    return ATS_OK;
}

void ats_outfile_abort(ats_outfile *out) {
    if (out->fp) fclose(out->fp);
    if (out->tmp_path) remove(out->tmp_path);
    live_remove(out->tmp_path);
    free(out->path);
    free(out->tmp_path);
    memset(out, 0, sizeof *out);
}

/* mkdir that accepts a folder already there (and nothing else already there) */
static int dir_make_one(const char *path) {
    struct stat sb;
    if (mkdir(path, 0777) == 0) return 1;
    if (errno != EEXIST) return 0;
    if (stat(path, &sb) != 0) return 0;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return 0;
    }
    return 1;
}

char *ats_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    p[a] = '/';
    memcpy(p + a + 1, name, b + 1);
    return p;
}

ats_status ats_dir_create(const char *path, ats_error *err) {
    if (!path || !*path) return ats_error_set(err, ATS_ERR_INVALID, "no folder name given");
    size_t len = strlen(path);
    char *p = malloc(len + 1);
    if (!p) return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    memcpy(p, path, len + 1);
    ats_status rc = ATS_OK;
    /* each parent in turn; a doubled or trailing slash only repeats a parent */
    for (char *s = p + 1; *s && !rc; s++) {
        if (*s != '/' || s[-1] == '/') continue;
        *s = '\0';
        if (!dir_make_one(p))
            rc = ats_error_set(err, ATS_ERR_IO, "%s: cannot create folder %s: %s", path, p,
                               strerror(errno));
        *s = '/';
    }
    if (!rc && !dir_make_one(p))
        rc = ats_error_set(err, ATS_ERR_IO, "%s: cannot create folder: %s", path, strerror(errno));
    free(p);
    return rc;
}

/* fopen(path, "rb"), or with regular_only, the same refusing anything but a regular file, and
 * without blocking on a FIFO (whose open waits for a writer). NULL after filling err. */
static FILE *open_for_reading(const char *path, int regular_only, ats_error *err) {
    if (!regular_only) {
        FILE *fp = fopen(path, "rb");
        if (!fp) ats_error_set(err, ATS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return fp;
    }
    int fd = open(path, O_RDONLY | O_NONBLOCK);
    if (fd < 0) {
        ats_error_set(err, ATS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        ats_error_set(err, ATS_ERR_IO, "%s: not a regular file (a folder, FIFO or device)", path);
        return NULL;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    FILE *fp = fdopen(fd, "rb");
    if (!fp) {
        ats_error_set(err, ATS_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
    }
    return fp;
}

static ats_status read_all(const char *path, size_t max_bytes, int regular_only, char **out,
                           size_t *len, ats_error *err) {
    *out = NULL;
    *len = 0;
    FILE *fp = open_for_reading(path, regular_only, err);
    if (!fp) return ATS_ERR_IO;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(fp);
        return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (n + 1 >= cap) {
            if (cap > max_bytes) {
                free(buf);
                fclose(fp);
                return ats_error_set(err, ATS_ERR_RANGE, "%s: file larger than %zu bytes", path,
                                     max_bytes);
            }
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                fclose(fp);
                return ats_error_set(err, ATS_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - 1 - n, fp);
        n += got;
        if (got == 0) break;
    }
    int bad = ferror(fp);
    fclose(fp);
    if (bad) {
        free(buf);
        return ats_error_set(err, ATS_ERR_IO, "%s: read error", path);
    }
    if (n > max_bytes) {
        free(buf);
        return ats_error_set(err, ATS_ERR_RANGE, "%s: file larger than %zu bytes", path, max_bytes);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return ATS_OK;
}

ats_status ats_file_read_all(const char *path, size_t max_bytes, char **out, size_t *len,
                             ats_error *err) {
    return read_all(path, max_bytes, 0, out, len, err);
}

ats_status ats_file_read_regular(const char *path, size_t max_bytes, char **out, size_t *len,
                                 ats_error *err) {
    return read_all(path, max_bytes, 1, out, len, err);
}

ats_status ats_file_map_fd(int fd, const char *path, void **map, size_t *len, ats_error *err) {
    *map = NULL;
    *len = 0;
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode))
        return ats_error_set(err, ATS_ERR_IO, "%s: not a regular file", path);
    if (sb.st_size > 0) {
        void *m = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED)
            return ats_error_set(err, ATS_ERR_IO, "%s: cannot map: %s", path, strerror(errno));
        *map = m;
        *len = (size_t)sb.st_size;
    }
    return ATS_OK;
}

ats_status ats_file_map(const char *path, void **map, size_t *len, ats_error *err) {
    *map = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_NONBLOCK); /* a FIFO would block until a writer came */
    if (fd < 0) return ats_error_set(err, ATS_ERR_IO, "%s: %s", path, strerror(errno));
    ats_status st = ats_file_map_fd(fd, path, map, len, err);
    close(fd);
    return st;
}

void ats_file_unmap(void *map, size_t len) {
    if (map) munmap(map, len);
}
