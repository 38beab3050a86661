/* attnscope core: status codes, error reports, NPY arrays and safe file output.
 *
 * Every fallible call in attnscope returns an ats_status (ATS_OK == 0) and writes its results
 * through out-parameters. Calls that can fail also take an `ats_error *err` (may be NULL): on
 * failure it receives the status and a message naming what was wrong and where (file, row,
 * column), ready to show to a user. The library never prints, never exits, never aborts on bad
 * input. An ats_error is plain data owned by the caller, so threads use their own. */
#ifndef ATTNSCOPE_CORE_H
#define ATTNSCOPE_CORE_H

#include <stddef.h>
#include <stdint.h>

/* libattnscope is compiled with hidden visibility, so that the shared library exports what
 * the public headers declare and nothing else: each of them marks its declarations. */
#pragma GCC visibility push(default)
#ifdef __cplusplus
extern "C" {
#endif

typedef enum ats_status {
    ATS_OK = 0,
    ATS_ERR_NOMEM = 1,    /* an allocation failed */
    ATS_ERR_IO = 2,       /* a file could not be opened, read or written */
    ATS_ERR_FORMAT = 3,   /* input is malformed: bad syntax, wrong shape, bad header */
    ATS_ERR_INVALID = 4,  /* an argument or value is out of its domain (NaN, negative distance) */
    ATS_ERR_RANGE = 5,    /* a size or index would overflow what can be represented */
    ATS_ERR_CANCELLED = 6 /* the caller's ats_cancel_fn asked the work to stop */
} ats_status;

#define ATS_ERROR_MESSAGE_MAX 512

typedef struct ats_error {
    ats_status status;
    char message[ATS_ERROR_MESSAGE_MAX];
} ats_error;

/* A short fixed description of a status ("out of memory", ...); never NULL. */
const char *ats_status_str(ats_status status);

/* Records status and a printf-style message in err (if err is not NULL); returns status, so a
 * failing call can `return ats_error_set(err, ATS_ERR_FORMAT, "...", ...)`. */
ats_status ats_error_set(ats_error *err, ats_status status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Clears err to ATS_OK with an empty message. */
void ats_error_clear(ats_error *err);

/* ---- overflow-checked sizes (stb style: every size computed from a file goes through these) */

/* *out = a * b; returns 0 on overflow. */
int ats_size_mul(size_t a, size_t b, size_t *out);
/* *out = a + b; returns 0 on overflow. */
int ats_size_add(size_t a, size_t b, size_t *out);

/* ---- NPY arrays (NumPy's .npy format, version 1.0–3.0, C order, little-endian) */

typedef enum ats_dtype { ATS_F32 = 0, ATS_F64 = 1, ATS_I32 = 2, ATS_I64 = 3 } ats_dtype;

#define ATS_NPY_MAX_DIMS 8

typedef struct ats_npy {
    ats_dtype dtype;
    int ndim;
    size_t shape[ATS_NPY_MAX_DIMS];
    size_t count; /* product of shape */
    void *data;   /* [shape[0]]...[shape[ndim-1]] of dtype, owned by the ats_npy */
    void *map;    /* the file mapping data points into (ats_npy_map), else NULL */
    size_t map_len;
    int fd; /* with map: the mapped file, still open (ats_npy_get_f64) */
} ats_npy;

/* Reads a .npy file: dtype <f4, <f8, <i4 or <i8, C order. Shapes, header and the file size are
 * checked against each other, and the size against ats_memory_available() (ATS_ERR_RANGE with
 * the estimate; --max-memory), before anything is allocated. Free with ats_npy_free. */
ats_status ats_npy_read(const char *path, ats_npy *out, ats_error *err);
void ats_npy_free(ats_npy *arr);
/* The same array mapped read-only instead of read, for float32 and float64 (the formats of
 * attention and distance matrices): the header is checked as ats_npy_read checks it, and data
 * points into the mapping (do not write to it), so a file larger than the memory can be used a
 * part at a time, and no memory estimate applies to it. Integer arrays, files that are not
 * regular, and data not aligned for its type are read with ats_npy_read (memory-checked);
 * ATS_NPY_MMAP=0 in the environment reads every array (to compare the two paths). A file
 * truncated by another process while it is mapped ends the process with SIGBUS, as any
 * mapping does. Free with ats_npy_free. */
ats_status ats_npy_map(const char *path, ats_npy *out, ats_error *err);
/* Drops the mapped pages that lie wholly inside elements [first, first+count) of a mapped
 * array from this process's memory (they are read again from the file if used again), so that
 * a pass over a large file keeps only the part in use resident. No effect on a read array. */
void ats_npy_release(const ats_npy *arr, size_t first, size_t count);
/* Elements [first, first + count) of a float32 or float64 array, as doubles, into out[count].
 * A mapped array is read from its file (pread), not through the mapping: nothing becomes
 * resident in this process, so passes over a file larger than the memory stay small whichever
 * threads read and in whatever order (with ats_npy_release, a page dropped while another thread
 * still read it stayed resident). Safe to call from several threads at once. ATS_ERR_IO naming
 * path if the file has become shorter; ATS_ERR_INVALID for an integer array or a range outside. */
ats_status ats_npy_get_f64(const ats_npy *arr, const char *path, size_t first, size_t count,
                           double *out, ats_error *err);
/* ATS_OK when a float array holds no NaN or infinity (integer arrays always); else
 * ATS_ERR_INVALID naming path and the element ("[3][1] is nan"). For inputs where such a value
 * has no meaning (vectors, frequencies); distances and diagrams may hold inf by design. */
ats_status ats_npy_check_finite(const ats_npy *arr, const char *path, ats_error *err);

/* Writes data of the given dtype and shape to path atomically (temporary file + rename). */
ats_status ats_npy_write(const char *path, ats_dtype dtype, int ndim, const size_t *shape,
                         const void *data, ats_error *err);

struct ats_outfile;
/* Writes the array to a temporary file beside path and leaves it there: *out is then an open
 * outfile that ats_outfile_commit renames into place or ats_outfile_abort removes. A command
 * with several outputs stages them all and commits only when every one is complete. On error
 * nothing is left and *out is zeroed. data NULL writes the header alone: the caller then
 * writes the values (C order, little-endian) to out->fp as they come, and commits. */
ats_status ats_npy_stage(const char *path, ats_dtype dtype, int ndim, const size_t *shape,
                         const void *data, struct ats_outfile *out, ats_error *err);

/* ---- atomic output: write to a temporary file beside `path`, then rename over it, so a crash
 * or an error never leaves a half-written output. */

typedef struct ats_outfile {
    void *fp; /* FILE *, open for writing while the outfile is live */
    char *path;
    char *tmp_path;
} ats_outfile;

ats_status ats_outfile_open(ats_outfile *out, const char *path, ats_error *err);
/* Flushes, closes and renames into place; on failure removes the temporary file. */
ats_status ats_outfile_commit(ats_outfile *out, ats_error *err);
/* Closes and removes the temporary file (safe to call after commit or on a zeroed outfile). */
void ats_outfile_abort(ats_outfile *out);

/* Removes the temporary file of every outfile of this process that is neither committed nor
 * aborted. Async-signal-safe: a program's SIGINT / SIGTERM handler calls it, so an interrupted
 * write leaves no `*.tmp.PID` behind. (The first 256 outfiles open at once are tracked.) */
void ats_outfile_remove_temporaries(void);

/* A folder of outputs written all-or-nothing: the files go into the temporary folder `tmp`
 * ("PATH.tmp.PID", beside PATH), which ats_outdir_commit moves into place: renamed to PATH when
 * PATH does not exist, else each file renamed into PATH. ats_outdir_abort (and
 * ats_outfile_remove_temporaries, from a signal handler) removes the temporary folder with the
 * files in it. Only flat folders (no subfolders) are staged. */
typedef struct ats_outdir {
    char *path, *tmp;
} ats_outdir;
ats_status ats_outdir_open(ats_outdir *dir, const char *path, ats_error *err);
ats_status ats_outdir_commit(ats_outdir *dir, ats_error *err);
void ats_outdir_abort(ats_outdir *dir);

/* Creates the folder `path` and every missing parent, as `mkdir -p`. An existing folder is
 * fine; an existing file or a parent that is not a folder is an error that names it. */
ats_status ats_dir_create(const char *path, ats_error *err);
/* "dir/name", malloc'd (free it); NULL when out of memory. */
char *ats_path_join(const char *dir, const char *name);

/* ---- progress of long work
 *
 * The library never prints: a call that can take more than about a second takes an
 * ats_progress_fn in its options (with a ctx handed back unchanged) and reports through it.
 * phase names the work ("corpus", "ablation", "persistence", ...), unit what done and total
 * count ("lines", "passes", "heads"); total is the real number the phase will reach (it knows
 * limits such as max_lines), 0 when unknown. Called on the calling thread, between units of
 * work (rarely: a caller that draws may throttle further), and once more with done == total
 * when the phase ends. NULL: no progress. */
typedef void (*ats_progress_fn)(void *ctx, const char *phase, const char *unit, uint64_t done,
                                uint64_t total);

/* ---- cancellation of long work
 *
 * A call that can run for long takes an ats_cancel_fn in its options (with a ctx handed back
 * unchanged) and polls it: when it returns non-zero the call stops at its next check, frees
 * what it allocated and returns ATS_ERR_CANCELLED. Called on the calling thread only (never
 * from the call's worker threads), about every millisecond of work, so it must be cheap: read
 * a flag another thread or a signal handler sets, or look at a socket. NULL: never cancelled. */
typedef int (*ats_cancel_fn)(void *ctx);

/* ---- text reading helpers shared by the parsers */

/* Reads a whole file into memory (NUL-terminated). *len excludes the terminator. Refuses files
 * larger than max_bytes with ATS_ERR_RANGE. */
ats_status ats_file_read_all(const char *path, size_t max_bytes, char **out, size_t *len,
                             ats_error *err);
/* Maps the regular file path read-only, whole: *map and *len (NULL and 0 for an empty file).
 * A folder, FIFO or device is ATS_ERR_IO at once (a FIFO is never waited on). Release with
 * ats_file_unmap. */
ats_status ats_file_map(const char *path, void **map, size_t *len, ats_error *err);
/* The same for a file already open as fd (which stays open, the caller's). */
ats_status ats_file_map_fd(int fd, const char *path, void **map, size_t *len, ats_error *err);
void ats_file_unmap(void *map, size_t len);

/* The same for files that must be regular files (a model's config and tokenizer files): a
 * folder, FIFO or device is ATS_ERR_IO at once instead of blocking or reading a stream. */
ats_status ats_file_read_regular(const char *path, size_t max_bytes, char **out, size_t *len,
                                 ats_error *err);

/* ---- finite numbers and memory: checks every command makes before it trusts or allocates */

/* The index of the first NaN or infinity in x[n], or n when all are finite. One pass that the
 * compiler vectorises (blocks are OR-reduced; only a block holding a bad value is searched). */
size_t ats_f32_find_nonfinite(const float *x, size_t n);
size_t ats_f64_find_nonfinite(const double *x, size_t n);

/* The memory large work may take: the limit set by ats_memory_limit_set, else the system's
 * available memory (MemAvailable in /proc/meminfo; SIZE_MAX when unknown). */
size_t ats_memory_available(void);
/* Sets the limit for this process (a command's --max-memory); 0 returns to the available
 * memory. */
void ats_memory_limit_set(size_t bytes);
/* ATS_OK when an estimated peak of `bytes` fits ats_memory_available(); else ATS_ERR_RANGE
 * with a message naming `what`, the estimate and the limit (and --max-memory). */
ats_status ats_memory_check(size_t bytes, const char *what, ats_error *err);
/* Parses a size such as "512M", "8G", "1.5T" or "1000000" (bytes; K/M/G/T are powers of
 * 1024). 0 when it is not one. */
size_t ats_memory_parse(const char *s);

/* ---- numbers in JSON
 *
 * JSON has no NaN and no infinity. Every number attnscope writes into JSON (the commands'
 * files, the viewer's API, persistence diagrams) is written by ats_json_number_format, so one
 * rule holds for all of them, and a strict JSON reader (Python's json with parse_constant
 * refusing NaN and Infinity, JavaScript's JSON.parse) reads every output:
 *   finite       %.17g: reads back as the same double (ATS_JSON_FLOAT: %.9g, the same float)
 *   NaN          null: an undefined value (a statistic with nothing to average, the
 *                similarity of a zero vector)
 *   +inf, -inf   the strings "inf" and "-inf" (ats_diagram_read, Python's float() and
 *                numpy read them back as infinities; a number field never holds a string
 *                for any other reason)
 *   ATS_JSON_DEATH: +inf is null instead, the death of an essential class of a persistence
 *                diagram (`attnscope rips --json` has always written it so, as Ripser's
 *                `[b, )`, and its readers expect it).
 * (Integers — counts, indices — are exact and finite, and may be written by any means.)
 * Writes the JSON text, NUL-terminated, into buf and returns its length (< ATS_JSON_NUMBER_MAX). */

#define ATS_JSON_NUMBER_MAX 32

typedef enum ats_json_flags {
    ATS_JSON_FLOAT = 1, /* the value is a float: 9 significant digits round-trip it */
    ATS_JSON_DEATH = 2  /* the value is a diagram's death: +inf (essential) is null */
} ats_json_flags;

size_t ats_json_number_format(double v, unsigned flags, char buf[ATS_JSON_NUMBER_MAX]);

/* ---- kernel paths: the instruction set the inner loops (matrix products, element-wise
 * kernels, divergences) run on. Chosen once per process: the fastest this CPU supports, or the
 * one the environment variable ATS_KERNEL names (generic|avx2|avx512|neon).
 *
 * Determinism contract: on one path a result does not depend on the number of threads, on
 * batching several texts into one pass, or on stopping the pass after the layers a study needs
 * (bit for bit). avx2, avx512 and neon compute the forward pass's attention and hidden states
 * bit for bit alike, on any machine: each product output is one fused multiply-add chain over k
 * in order, and every sum in the element-wise kernels runs over fixed lanes. generic multiplies
 * and adds separately: its attention and hidden states agree with the others' within 1e-5
 * (absolute; hidden states relative to their largest magnitude when that exceeds 1;
 * tests/unit/test_model.c, measured 2e-6 on MiniLM). Logits and losses multiply by
 * the vocabulary through OpenBLAS, as does a model that found no memory for its packed
 * weights: those agree within the same tolerance. Divergences (src/measure) agree between
 * paths within 1e-12 (relative). */

typedef enum ats_kernel_path {
    ATS_KERNEL_GENERIC = 0, /* portable C: any CPU */
    ATS_KERNEL_AVX2 = 1,    /* x86-64 with AVX2 and FMA */
    ATS_KERNEL_AVX512 = 2,  /* x86-64 with AVX-512 F, DQ and VL (and AVX2, FMA) */
    ATS_KERNEL_NEON = 3     /* aarch64 Advanced SIMD */
} ats_kernel_path;

#define ATS_KERNEL_PATH_COUNT 4

/* "generic", "avx2", "avx512", "neon"; NULL for a value outside the enum. */
const char *ats_kernel_path_name(ats_kernel_path path);

/* 1 when this build and this CPU can run the path. */
int ats_kernel_path_supported(ats_kernel_path path);

/* The path in use: the last one set, else ATS_KERNEL's when it names a supported path, else the
 * fastest supported. */
ats_kernel_path ats_kernel_path_get(void);

/* Makes every later call run on the path (for the whole process: call it before starting
 * work, not while other threads compute). An unsupported path is ATS_ERR_INVALID with a message
 * that lists the paths this CPU supports. */
ats_status ats_kernel_path_set(ats_kernel_path path, ats_error *err);

/* Checks the environment variable ATS_KERNEL: unset or empty is fine; a name that is not a
 * path, or a path this CPU lacks, is ATS_ERR_INVALID naming the paths it supports. */
ats_status ats_kernel_path_check_env(ats_error *err);

/* Writes the names of the supported paths, space-separated, fastest last, into buf[size]. */
void ats_kernel_paths_supported(char *buf, size_t size);

/* The library's version, "MAJOR.MINOR.PATCH". */
const char *ats_version(void);

#ifdef __cplusplus
}
#endif
#pragma GCC visibility pop
#endif
