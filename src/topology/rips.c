/* Vietoris–Rips persistent homology by persistent cohomology with clearing.
 *
 * Simplices are integers: a k-simplex with vertices v_k > ... > v_0 has index
 * sum_i C(v_i, i+1) (the combinatorial number system), so neither the complex nor the coboundary
 * matrix is ever stored. Columns are processed in reverse filtration order (diameter descending,
 * index ascending); the pivot of a column is its cofacet that comes first in the filtration
 * (smallest diameter, then largest index). Zero-persistence apparent pairs are skipped outright,
 * and emergent pairs are paired without building their coboundary (Bauer, "Ripser", 2021).
 *
 * Entries pack the coefficient in the top bits of the simplex index so that a heap entry is
 * 16 bytes: (diameter, index | coef << index_bits). */
#define _DEFAULT_SOURCE /* madvise(MADV_POPULATE_WRITE) */
#include "attnscope/rips.h"
#include "lower.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <sys/mman.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct entry {
    double diam;
    uint64_t ic; /* index | coef << index_bits */
} entry;

typedef struct neighbor {
    int32_t v;
    double d;
} neighbor;

typedef struct pivot_slot {
    int64_t key;     /* simplex index of the pivot; -1 = empty */
    uint64_t packed; /* column << 16 | coefficient of the pivot in that column (p < 2^16) */
} pivot_slot;

static inline int64_t slot_column(const pivot_slot *s) {
    return (int64_t)(s->packed >> 16);
}
static inline uint32_t slot_coef(const pivot_slot *s) {
    return (uint32_t)(s->packed & 0xffff);
}

typedef struct pivot_map {
    pivot_slot *slots;
    size_t mask, count;
} pivot_map;

typedef struct heap {
    entry *a;
    size_t len, cap;
} heap;

typedef struct entry_vec {
    entry *a;
    size_t len, cap;
} entry_vec;

typedef struct pair_vec {
    double *pairs;  /* [len][2] */
    int64_t *birth; /* [len] */
    int64_t *death; /* [len] */
    size_t len, cap;
    ats_representative *reps; /* [len] when representatives are wanted */
} pair_vec;

typedef struct rips {
    size_t n;
    const double *lower; /* [n(n-1)/2] */
    double *full;        /* [n][n] in dense mode: rows are contiguous for the enumeration */
    double threshold;
    int dim_max;
    uint32_t modulus;
    uint32_t *inverse; /* [modulus] multiplicative inverses */
    int index_bits;
    uint64_t index_mask;
    int k_max;        /* binomials C(v, k) for k <= k_max */
    int64_t *binom;   /* [k_max+1][n+1] */
    int sparse;       /* coboundaries from neighbour lists */
    size_t *nb_start; /* [n+1] */
    neighbor *nb;     /* neighbours of each vertex within threshold, by vertex descending */
    int want_cocycles;
    int want_cycles;
    entry_vec negative_triangles; /* every triangle paired with an edge, when want_cycles */
    ats_representative *cycles;   /* [out[1].len] */
    const ats_rips_options *opt;
    int threads;                       /* OpenMP threads for one problem (>= 1) */
    double phase_cpu[ATS_RIPS_PHASES]; /* CPU seconds, see rips.h */
    double memory_limit;               /* bytes; INFINITY = none */
    double memory_base;                /* bytes held whatever the data (rips_memory_estimate) */
    size_t assembled;                  /* columns of the dimension being assembled, so far */
    size_t assembled_from;             /* simplices enumerated so far */
    int over_limit;                    /* the assembly stopped at the memory limit */
    int over_dim;                      /* ... in this dimension */
    double over_projected;             /* bytes it would have needed, projected */
    pair_vec out[ATS_RIPS_MAX_DIM + 1];
    /* read in every thread's inner loops: on a cache line of their own, away from what the
       recording thread writes for every column (out); sharing one cost a third more work a
       column at two threads */
    _Alignas(64) int oom;
    int cancelled;                      /* opt->cancel said stop (oom is set with it) */
    _Alignas(64) char flags_end;        /* ends the flags' cache line */
    pthread_t caller;                   /* the thread that called: the only one to poll cancel */
    double cancel_polled;               /* monotonic seconds of the last poll */
    double phase_wall[ATS_RIPS_PHASES]; /* wall-clock seconds, see rips.h */
} rips;

/* ---- small helpers */

/* Out of memory: threads of one problem may say so at the same time. */
static void set_oom(rips *r) {
    __atomic_store_n(&r->oom, 1, __ATOMIC_RELAXED);
}
static int oom_seen(rips *r) {
    return __atomic_load_n(&r->oom, __ATOMIC_RELAXED);
}

/* Process CPU seconds (all threads): per-phase costs independent of the machine's load. */
static double cpu_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double wall_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The start of a phase: CPU and wall clocks. */
typedef struct phase_clock {
    double cpu, wall;
} phase_clock;

static phase_clock phase_start(void) {
    phase_clock c = {cpu_now(), wall_now()};
    return c;
}

/* Charges the CPU and wall time since *t to phase k and restarts the clocks. */
static void phase_mark(rips *r, int k, phase_clock *t) {
    phase_clock x = phase_start();
    r->phase_cpu[k] += x.cpu - t->cpu;
    r->phase_wall[k] += x.wall - t->wall;
    *t = x;
}

/* Cancellation (opt->cancel). Any thread may call this as often as every unit of work; only
 * the calling thread asks the caller's function, at most once a millisecond (the coarse clock
 * costs nanoseconds). A yes travels to the other threads as the out-of-memory flag does: every
 * loop already stops on it. Returns 1 when the computation should stop (cancelled or out of
 * memory). */
static int cancel_poll(rips *r) {
    if (oom_seen(r)) return 1;
    if (!r->opt->cancel || !pthread_equal(pthread_self(), r->caller)) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    double now = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    if (now - r->cancel_polled < 1e-3) return 0;
    r->cancel_polled = now;
    if (!r->opt->cancel(r->opt->cancel_ctx)) return 0;
    __atomic_store_n(&r->cancelled, 1, __ATOMIC_RELAXED);
    set_oom(r);
    return 1;
}

static inline int64_t binom(const rips *r, int64_t v, int k) {
    return (k > r->k_max || v < 0) ? 0 : r->binom[(size_t)k * (r->n + 1) + (size_t)v];
}

/* A streamed metric (ats_rips_compute_rows) keeps no triangle: a distance within the
 * threshold is found in i's neighbour list (vertices descending) by bisection (nb_find: its
 * place, SIZE_MAX when absent); +inf beyond. */
static size_t nb_find(const rips *r, int64_t i, int64_t j) {
    size_t lo = r->nb_start[i], hi = r->nb_start[i + 1];
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (r->nb[mid].v > j)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < r->nb_start[i + 1] && r->nb[lo].v == j ? lo : SIZE_MAX;
}

static double dist_streamed(const rips *r, int64_t i, int64_t j) {
    size_t at = nb_find(r, i, j);
    return at == SIZE_MAX ? INFINITY : r->nb[at].d;
}

/* The dense engine's rows when it has them (the triangle, mirrored), else the triangle, else
 * the neighbour lists. */
static inline double dist(const rips *r, int64_t i, int64_t j) {
    if (i == j) return 0.0;
    if (r->full) return r->full[(size_t)i * r->n + (size_t)j];
    return r->lower ? r->lower[lower_index((size_t)i, (size_t)j)] : dist_streamed(r, i, j);
}

static inline int64_t e_index(const rips *r, entry e) {
    return (int64_t)(e.ic & r->index_mask);
}
static inline uint32_t e_coef(const rips *r, entry e) {
    return (uint32_t)(e.ic >> r->index_bits);
}
static inline entry make_entry(const rips *r, double diam, int64_t index, uint32_t coef) {
    entry e = {diam, (uint64_t)index | ((uint64_t)coef << r->index_bits)};
    return e;
}

/* Filtration order: a comes strictly before b. */
static inline int filt_before(const rips *r, entry a, entry b) {
    if (a.diam != b.diam) return a.diam < b.diam;
    return e_index(r, a) > e_index(r, b);
}

/* Largest v in [k-1, top] with C(v, k) <= idx (binary search, as the vertices of a simplex are
 * recovered top-down). */
static int64_t max_vertex(const rips *r, int64_t idx, int k, int64_t top) {
    int64_t lo = k - 1, hi = top; /* C(lo, k) = 0 <= idx */
    while (lo < hi) {
        int64_t mid = hi - (hi - lo) / 2;
        if (binom(r, mid, k) <= idx)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

/* Vertices of a dim-simplex, descending, into v[0..dim]. */
static void simplex_vertices(const rips *r, int64_t idx, int dim, int32_t *v) {
    int64_t top = (int64_t)r->n - 1;
    for (int k = dim + 1; k >= 1; k--) {
        if (k == 1) {
            top = idx;
        } else if (k == 2) {
            /* C(v, 2) <= idx < C(v+1, 2) in closed form, corrected for rounding */
            int64_t x = (int64_t)((1.0 + sqrt(1.0 + 8.0 * (double)idx)) * 0.5);
            while (x * (x - 1) / 2 > idx) x--;
            while ((x + 1) * x / 2 <= idx) x++;
            top = x;
        } else {
            top = max_vertex(r, idx, k, top);
        }
        v[dim + 1 - k] = (int32_t)top;
        idx -= binom(r, top, k);
        top--;
    }
}

static uint32_t mod_mul(uint32_t a, uint32_t b, uint32_t p) {
    return (uint32_t)(((uint64_t)a * b) % p);
}

/* ---- heap of entries, top = first in filtration order */

/* Grows an array of entries (*a, capacity *cap) to hold `need`, doubling from `first`. */
static int entries_reserve(rips *r, entry **a, size_t *cap, size_t need, size_t first) {
    if (need <= *cap) return 1;
    size_t nc = *cap ? *cap : first;
    while (nc < need) nc *= 2;
    entry *na = realloc(*a, nc * sizeof *na);
    if (!na) {
        set_oom(r);
        return 0;
    }
    *a = na;
    *cap = nc;
    return 1;
}

static int heap_push(rips *r, heap *h, entry e) {
    if (!entries_reserve(r, &h->a, &h->cap, h->len + 1, 64)) return 0;
    size_t i = h->len++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!filt_before(r, e, h->a[p])) break;
        h->a[i] = h->a[p];
        i = p;
    }
    h->a[i] = e;
    return 1;
}

static void heap_pop(const rips *r, heap *h) {
    entry last = h->a[--h->len];
    size_t n = h->len, i = 0;
    if (n == 0) return;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && filt_before(r, h->a[c + 1], h->a[c])) c++;
        if (!filt_before(r, h->a[c], last)) break;
        h->a[i] = h->a[c];
        i = c;
    }
    h->a[i] = last;
}

/* Pops the pivot: combines all entries of the top index; skips indices that cancel to zero.
 * Returns 0 when the column is zero. */
static int heap_pop_pivot(const rips *r, heap *h, entry *out) {
    while (h->len) {
        entry p = h->a[0];
        heap_pop(r, h);
        int64_t idx = e_index(r, p);
        uint32_t c = e_coef(r, p);
        while (h->len && e_index(r, h->a[0]) == idx) {
            c = (c + e_coef(r, h->a[0])) % r->modulus;
            heap_pop(r, h);
        }
        if (c != 0) {
            *out = make_entry(r, p.diam, idx, c);
            return 1;
        }
    }
    return 0;
}

static int heap_get_pivot(rips *r, heap *h, entry *out) {
    if (!heap_pop_pivot(r, h, out)) return 0;
    heap_push(r, h, *out);
    return 1;
}

/* ---- pivot hash map: simplex index -> (column, coefficient) */

static inline size_t hash_index(int64_t k) {
    uint64_t x = (uint64_t)k * 0x9E3779B97F4A7C15ull;
    return (size_t)(x ^ (x >> 29));
}

static int pivot_map_init(pivot_map *m, size_t expect) {
    size_t cap = 64;
    while (cap < expect * 2) cap *= 2;
    m->slots = malloc(cap * sizeof *m->slots);
    if (!m->slots) return 0;
    for (size_t i = 0; i < cap; i++) m->slots[i].key = -1;
    m->mask = cap - 1;
    m->count = 0;
    return 1;
}

/* Other threads may find keys while one thread inserts (compute_pairs): a slot's key is
 * written last (release) and read first (acquire), so a key found has its column, and slots only
 * go from empty to full, so a key inserted earlier is found. Growing is for one thread only. */
static const pivot_slot *pivot_map_find(const pivot_map *m, int64_t key) {
    for (size_t i = hash_index(key) & m->mask;; i = (i + 1) & m->mask) {
        int64_t k = __atomic_load_n(&m->slots[i].key, __ATOMIC_ACQUIRE);
        if (k == key) return &m->slots[i];
        if (k == -1) return NULL;
    }
}

static int pivot_map_insert(rips *r, pivot_map *m, int64_t key, int64_t column, uint32_t coef) {
    if ((m->count + 1) * 2 > m->mask + 1) {
        size_t cap = (m->mask + 1) * 2;
        pivot_slot *ns = malloc(cap * sizeof *ns);
        if (!ns) {
            set_oom(r);
            return 0;
        }
        for (size_t i = 0; i < cap; i++) ns[i].key = -1;
        for (size_t i = 0; i <= m->mask; i++) {
            if (m->slots[i].key == -1) continue;
            size_t j = hash_index(m->slots[i].key) & (cap - 1);
            while (ns[j].key != -1) j = (j + 1) & (cap - 1);
            ns[j] = m->slots[i];
        }
        free(m->slots);
        m->slots = ns;
        m->mask = cap - 1;
    }
    size_t i = hash_index(key) & m->mask;
    while (m->slots[i].key != -1) i = (i + 1) & m->mask;
    m->slots[i].packed = ((uint64_t)column << 16) | coef;
    __atomic_store_n(&m->slots[i].key, key, __ATOMIC_RELEASE);
    m->count++;
    return 1;
}

/* ---- growable vectors */

static int vec_push(rips *r, entry_vec *v, entry e) {
    if (!entries_reserve(r, &v->a, &v->cap, v->len + 1, 256)) return 0;
    v->a[v->len++] = e;
    return 1;
}

static int pair_push(rips *r, int dim, double birth, double death, int64_t bs, int64_t ds) {
    pair_vec *p = &r->out[dim];
    if (p->len == p->cap) {
        size_t nc = p->cap ? p->cap * 2 : 16;
        double *np = realloc(p->pairs, nc * 2 * sizeof *np);
        if (np) p->pairs = np;
        int64_t *nb = realloc(p->birth, nc * sizeof *nb);
        if (nb) p->birth = nb;
        int64_t *nd = realloc(p->death, nc * sizeof *nd);
        if (nd) p->death = nd;
        ats_representative *nr = NULL;
        if (r->want_cocycles && dim >= 1) {
            nr = realloc(p->reps, nc * sizeof *nr);
            if (nr) p->reps = nr;
        }
        if (!np || !nb || !nd || (r->want_cocycles && dim >= 1 && !nr)) {
            set_oom(r);
            return 0;
        }
        p->cap = nc;
    }
    p->pairs[2 * p->len] = birth;
    p->pairs[2 * p->len + 1] = death;
    p->birth[p->len] = bs;
    p->death[p->len] = ds;
    if (p->reps) memset(&p->reps[p->len], 0, sizeof p->reps[p->len]);
    p->len++;
    return 1;
}

static int keep_pair(const rips *r, double birth, double death) {
    return death > birth * r->opt->ratio && death - birth > r->opt->min_persistence;
}

/* ---- sorting entries by (diameter, index) */

/* Reverse filtration order: larger diameter first, then smaller index. */
static inline int col_before(const rips *r, entry a, entry b) {
    return filt_before(r, b, a);
}

/* Hoare partition around the median of three (n > 24): a[0, left) before a[left, n). */
static size_t partition_columns(const rips *r, entry *a, size_t n) {
    entry x = a[0], y = a[n / 2], z = a[n - 1], pv;
    if (col_before(r, x, y))
        pv = col_before(r, y, z) ? y : (col_before(r, x, z) ? z : x);
    else
        pv = col_before(r, x, z) ? x : (col_before(r, y, z) ? z : y);
    size_t i = 0, j = n - 1;
    for (;;) {
        while (col_before(r, a[i], pv)) i++;
        while (col_before(r, pv, a[j])) j--;
        if (i >= j) break;
        entry t = a[i];
        a[i] = a[j];
        a[j] = t;
        i++;
        j--;
    }
    return j + 1;
}

static void quicksort_columns(rips *r, entry *a, size_t n) {
    while (n > 24) {
        if (n > 65536 && cancel_poll(r)) return; /* the order no longer matters */
        /* recurse into the smaller part, loop on the larger */
        size_t left = partition_columns(r, a, n);
        if (left < n - left) {
            quicksort_columns(r, a, left);
            a += left;
            n -= left;
        } else {
            quicksort_columns(r, a + left, n - left);
            n = left;
        }
    }
    for (size_t i = 1; i < n; i++) {
        entry t = a[i];
        size_t j = i;
        while (j > 0 && col_before(r, t, a[j - 1])) {
            a[j] = a[j - 1];
            j--;
        }
        a[j] = t;
    }
}

/* Radix sort into reverse filtration order: stable LSD passes over the index bytes (ascending),
 * then over the diameter's bit pattern (descending; the bits of a non-negative double order
 * like the double). Passes where every key has the same byte are skipped. Falls back to the
 * comparison sort for small and large inputs or when the scratch buffer cannot be had. */
static inline uint64_t diam_key(double d) {
    uint64_t b;
    if (d == 0.0) d = 0.0; /* -0.0 sorts as 0 */
    memcpy(&b, &d, sizeof b);
    return ~b;
}

/* The two parts of each partition sorted as OpenMP tasks down to 64 Ki entries. Keys are
 * distinct (simplex indices), so the order is the same whatever the thread count. */
static void quicksort_tasks(rips *r, entry *a, size_t n) {
    if (n <= 65536) {
        quicksort_columns(r, a, n);
        return;
    }
    size_t left = partition_columns(r, a, n);
#ifdef _OPENMP
#pragma omp task
#endif
    quicksort_tasks(r, a, left);
    quicksort_tasks(r, a + left, n - left);
#ifdef _OPENMP
#pragma omp taskwait
#endif
}

static void sort_columns(rips *r, entry *a, size_t n) {
    /* Radix needs a second buffer as large as the input: above 64 Ki entries (1 MiB) the
       comparison sort keeps the peak memory down. */
    if (n > 65536 && r->threads > 1) {
#ifdef _OPENMP
#pragma omp parallel num_threads(r->threads)
#pragma omp single
#endif
        quicksort_tasks(r, a, n);
        return;
    }
    if (n < 512 || n > 65536) {
        quicksort_columns(r, a, n);
        return;
    }
    entry *tmp = malloc(n * sizeof *tmp);
    if (!tmp) {
        quicksort_columns(r, a, n);
        return;
    }
    uint64_t max_index = 0;
    for (size_t i = 0; i < n; i++)
        if ((uint64_t)e_index(r, a[i]) > max_index) max_index = (uint64_t)e_index(r, a[i]);
    int index_bytes = 0;
    while (index_bytes < 8 && (max_index >> (8 * index_bytes)) != 0) index_bytes++;
    entry *src = a, *dst = tmp;
    for (int pass = 0; pass < index_bytes + 8; pass++) {
        int diam_pass = pass >= index_bytes;
        int shift = 8 * (diam_pass ? pass - index_bytes : pass);
        size_t count[256] = {0};
        for (size_t i = 0; i < n; i++) {
            uint64_t key = diam_pass ? diam_key(src[i].diam) : (uint64_t)e_index(r, src[i]);
            count[(key >> shift) & 0xff]++;
        }
        int trivial = 0;
        for (int b = 0; b < 256; b++)
            if (count[b] == n) trivial = 1;
        if (trivial) continue;
        size_t pos = 0;
        for (int b = 0; b < 256; b++) {
            size_t c = count[b];
            count[b] = pos;
            pos += c;
        }
        for (size_t i = 0; i < n; i++) {
            uint64_t key = diam_pass ? diam_key(src[i].diam) : (uint64_t)e_index(r, src[i]);
            dst[count[(key >> shift) & 0xff]++] = src[i];
        }
        entry *t = src;
        src = dst;
        dst = t;
    }
    if (src != a) memcpy(a, src, n * sizeof *a);
    free(tmp);
}

/* ---- coboundary enumeration
 *
 * Cofacets of a dim-simplex come out in decreasing index order. With all == 0 only the
 * cofacets whose new vertex is above every vertex of the simplex are produced, so that every
 * (dim+1)-simplex is produced exactly once when enumerating from all dim-simplices. */

typedef struct cob_enum {
    const rips *r;
    int64_t idx_below, idx_above;
    int64_t v; /* dense: next candidate vertex */
    int k;
    int dim;
    double diam;
    uint32_t coef, neg_coef;                 /* the simplex's coefficient and its negative mod p */
    int32_t vert[ATS_RIPS_MAX_DIM + 2];      /* descending */
    const double *row[ATS_RIPS_MAX_DIM + 2]; /* dense: distance rows of the vertices */
    /* sparse: one cursor per vertex into its neighbour list (descending vertex order) */
    size_t it[ATS_RIPS_MAX_DIM + 2], end[ATS_RIPS_MAX_DIM + 2];
    int32_t last_v; /* the vertex added by the last cofacet produced */
    /* sparse: d(last_v, vert[i]), read from the neighbour lists as the cofacet was found (a
       streamed metric would otherwise find each by bisection) */
    double last_d[ATS_RIPS_MAX_DIM + 2];
} cob_enum;

/* vert: the simplex's vertices (descending) when the caller knows them, else NULL. */
static void cob_init(cob_enum *c, const rips *r, entry s, int dim, const int32_t *vert) {
    c->r = r;
    c->idx_below = e_index(r, s);
    c->idx_above = 0;
    c->v = (int64_t)r->n - 1;
    c->k = dim + 1;
    c->dim = dim;
    c->diam = s.diam;
    c->coef = e_coef(r, s);
    c->neg_coef = (r->modulus - c->coef) % r->modulus;
    if (vert)
        memcpy(c->vert, vert, (size_t)(dim + 1) * sizeof *vert);
    else
        simplex_vertices(r, c->idx_below, dim, c->vert);
    if (!r->sparse)
        for (int i = 0; i <= dim; i++) c->row[i] = r->full + (size_t)c->vert[i] * r->n;
    if (r->sparse)
        for (int i = 0; i <= dim; i++) {
            c->it[i] = r->nb_start[c->vert[i]];
            c->end[i] = r->nb_start[c->vert[i] + 1];
        }
}

/* Advances to the next cofacet; returns 0 when there is none. */
static int cob_next(cob_enum *c, int all, entry *out) {
    const rips *r = c->r;
    int nv = c->dim + 1;
    if (!r->sparse) {
        while (c->v >= 0) {
            int64_t v = c->v;
            if (c->k > 0 && v == c->vert[nv - c->k]) {
                /* a vertex of the simplex: its weight moves above the new vertex */
                if (!all) return 0;
                c->idx_below -= binom(r, v, c->k);
                c->idx_above += binom(r, v, c->k + 1);
                c->v--;
                c->k--;
                continue;
            }
            c->v--;
            double d = c->diam;
            for (int i = 0; i < nv; i++) {
                double x = c->row[i][v];
                if (x > d) d = x;
            }
            if (d > r->threshold) continue;
            int64_t index = c->idx_above + binom(r, v, c->k + 1) + c->idx_below;
            uint32_t coef = (c->k & 1) ? c->neg_coef : c->coef;
            *out = make_entry(r, d, index, coef);
            c->last_v = (int32_t)v;
            return 1;
        }
        return 0;
    }
    /* sparse: common neighbours of all vertices, in decreasing vertex order */
    for (;;) {
        if (c->it[0] == c->end[0]) return 0;
        const neighbor *n0 = &r->nb[c->it[0]];
        int32_t w = n0->v;
        /* only new vertices on top: none left once below the simplex's top vertex */
        if (!all && w < c->vert[0]) return 0;
        double d = n0->d > c->diam ? n0->d : c->diam;
        int ok = 1;
        c->last_d[0] = n0->d;
        for (int i = 1; i < nv; i++) {
            while (c->it[i] < c->end[i] && r->nb[c->it[i]].v > w) c->it[i]++;
            if (c->it[i] == c->end[i]) return 0;
            if (r->nb[c->it[i]].v != w) {
                ok = 0;
                break;
            }
            c->last_d[i] = r->nb[c->it[i]].d;
            if (c->last_d[i] > d) d = c->last_d[i];
        }
        c->it[0]++;
        if (!ok) continue;
        /* move vertices of the simplex that lie above w into idx_above */
        while (c->k > 0 && c->vert[nv - c->k] > w) {
            if (!all) return 0;
            int32_t x = c->vert[nv - c->k];
            c->idx_below -= binom(r, x, c->k);
            c->idx_above += binom(r, x, c->k + 1);
            c->k--;
        }
        int64_t index = c->idx_above + binom(r, w, c->k + 1) + c->idx_below;
        uint32_t coef = (c->k & 1) ? c->neg_coef : c->coef;
        *out = make_entry(r, d, index, coef);
        c->last_v = w;
        return 1;
    }
}

/* The vertices of the cofacet just produced: the simplex's plus last_v, descending. */
static void cob_cofacet_vertices(const cob_enum *c, int32_t *out) {
    int nv = c->dim + 1, m = 0, i = 0;
    while (i < nv && c->vert[i] > c->last_v) out[m++] = c->vert[i++];
    out[m++] = c->last_v;
    while (i < nv) out[m++] = c->vert[i++];
}

/* ---- apparent pairs (zero persistence): sigma's oldest cofacet tau has the same diameter and
 * sigma is tau's youngest facet. */

/* Pairwise distances of a simplex's vertices (descending), pd[i * PD + j] for i < j: the
 * apparent-pair tests look at every facet's diameter, and the distances are at hand where the
 * simplex was enumerated, so they are passed along rather than looked up again (the lookups are
 * cache misses on large matrices). */
#define PD (ATS_RIPS_MAX_DIM + 3)

static void pairwise(const rips *r, const int32_t *v, int nv, double *pd) {
    for (int i = 0; i < nv; i++) {
        const double *row = r->full ? r->full + (size_t)v[i] * r->n : NULL;
        for (int j = i + 1; j < nv; j++) pd[i * PD + j] = row ? row[v[j]] : dist(r, v[i], v[j]);
    }
}

/* pd of the nv+1 vertices obtained by inserting w at position p into the nv vertices whose
 * pd is given; dw[i] = d(w, v[i]). */
static void pairwise_insert(const double *pd, int nv, int p, const double *dw, double *out) {
    for (int a = 0; a <= nv; a++)
        for (int b = a + 1; b <= nv; b++) {
            int sa = a < p ? a : a - 1, sb = b < p ? b : b - 1;
            out[a * PD + b] = a == p ? dw[sb] : b == p ? dw[sa] : pd[sa * PD + sb];
        }
}

/* The pairwise distances of the cofacet just produced, from the simplex's (pd). */
static void cob_cofacet_pd(const cob_enum *c, const double *pd, double *out) {
    const rips *r = c->r;
    int nv = c->dim + 1, p = 0;
    double dw[ATS_RIPS_MAX_DIM + 2];
    while (p < nv && c->vert[p] > c->last_v) p++;
    for (int i = 0; i < nv; i++) dw[i] = r->sparse ? c->last_d[i] : c->row[i][c->last_v];
    pairwise_insert(pd, nv, p, dw, out);
}

/* The cofacet of s with the same diameter that comes first in the filtration, among those
 * whose new vertex is above `above` (-1: all), or ic == UINT64_MAX. vert: s's vertices or NULL;
 * pd: their pairwise distances or NULL; out_vert and out_pd (each may be NULL) receive the
 * cofacet's, out_pd only when the new vertex is not on top (on top, s is the cofacet's youngest
 * facet, and the apparent test needs no distances). */
static entry zero_pivot_cofacet(const rips *r, entry s, int dim, const int32_t *vert,
                                const double *pd, int32_t *out_vert, double *out_pd,
                                int64_t above) {
    int32_t v[ATS_RIPS_MAX_DIM + 2];
    int nv = dim + 1;
    if (vert)
        memcpy(v, vert, (size_t)nv * sizeof *v);
    else
        simplex_vertices(r, e_index(r, s), dim, v);
    /* The first cofacet in enumeration order (new vertex w descending) whose diameter equals
       s's is the largest w, not a vertex of s, within s.diam of every vertex. */
    double dm = s.diam, dw[ATS_RIPS_MAX_DIM + 2];
    int64_t w = -1;
    int p = 0; /* vertices of s above w */
    if (!r->sparse) {
        /* Dense: a plain scan of the distance rows; the vertices of s pass the test (their
           distances are <= s.diam), so they are ruled out only when a row says yes. */
        const double *row[ATS_RIPS_MAX_DIM + 2];
        for (int i = 0; i < nv; i++) row[i] = r->full + (size_t)v[i] * r->n;
        for (int64_t x = (int64_t)r->n - 1; x > above; x--) {
            double y = row[0][x];
            for (int i = 1; i < nv; i++)
                if (row[i][x] > y) y = row[i][x];
            if (y > dm) continue;
            p = 0;
            while (p < nv && v[p] > x) p++;
            if (p < nv && v[p] == x) continue;
            w = x;
            for (int i = 0; i < nv; i++) dw[i] = row[i][w];
            break;
        }
    } else {
        /* Sparse: the largest vertex common to the neighbour lists (descending, and without
           the vertex itself, so w is never a vertex of s) once the neighbours farther than
           s.diam are left out. Leapfrog: each list skips to the candidate, and a list whose
           next vertex is below it lowers the candidate for all. */
        const neighbor *nb = r->nb;
        size_t it[ATS_RIPS_MAX_DIM + 2], end[ATS_RIPS_MAX_DIM + 2];
        for (int i = 0; i < nv; i++) {
            it[i] = r->nb_start[v[i]];
            end[i] = r->nb_start[v[i] + 1];
        }
        int32_t cand = INT32_MAX;
        int agree = 0; /* lists whose current vertex is cand, in a row */
        for (int i = 0; agree < nv; i = i + 1 == nv ? 0 : i + 1) {
            size_t q = it[i], e = end[i];
            while (q < e && (nb[q].v > cand || nb[q].d > dm)) q++;
            it[i] = q;
            if (q == e || nb[q].v <= above) break;
            if (nb[q].v == cand) {
                agree++;
            } else {
                cand = nb[q].v;
                agree = 1;
            }
        }
        if (agree == nv) {
            w = cand;
            while (p < nv && v[p] > w) p++;
            for (int i = 0; i < nv; i++) dw[i] = nb[it[i]].d;
        }
    }
    if (w < 0) return (entry){0, UINT64_MAX};
    /* cofacet vertices, descending: v[0..p-1], w, v[p..dim] */
    int32_t u[ATS_RIPS_MAX_DIM + 3];
    memcpy(u, v, (size_t)p * sizeof *u);
    u[p] = (int32_t)w;
    memcpy(u + p + 1, v + p, (size_t)(nv - p) * sizeof *u);
    int64_t idx = 0;
    for (int i = 0; i <= nv; i++) idx += binom(r, u[i], nv + 1 - i);
    uint32_t c = e_coef(r, s);
    if ((nv - p) & 1) c = (r->modulus - c) % r->modulus; /* (-1)^(vertices below w) */
    if (out_vert) memcpy(out_vert, u, (size_t)(nv + 1) * sizeof *u);
    if (out_pd && p > 0) {
        double own[PD * PD];
        if (!pd) {
            pairwise(r, v, nv, own);
            pd = own;
        }
        pairwise_insert(pd, nv, p, dw, out_pd);
    }
    return make_entry(r, dm, idx, c);
}

/* The facet of t (a dim-simplex) with the same diameter that comes last in the filtration
 * (smallest index), or ic == UINT64_MAX. Its coefficient is the incidence [t : facet].
 * vert: t's vertices or NULL; pd: their pairwise distances or NULL; out_vert (if not NULL)
 * receives the facet's. */
static entry zero_pivot_facet(const rips *r, entry t, int dim, const int32_t *vert,
                              const double *pd, int32_t *out_vert) {
    int32_t v[ATS_RIPS_MAX_DIM + 3], f[ATS_RIPS_MAX_DIM + 2];
    if (vert)
        memcpy(v, vert, (size_t)(dim + 1) * sizeof *v);
    else
        simplex_vertices(r, e_index(r, t), dim, v);
    double own[PD * PD];
    if (!pd) {
        pairwise(r, v, dim + 1, own);
        pd = own;
    }
    /* Removing the top vertex first gives facets in increasing index order; a facet's
       diameter is the largest distance among the pairs that avoid the removed vertex. */
    for (int rm = 0; rm <= dim; rm++) {
        int m = 0;
        double d = 0.0;
        for (int i = 0; i <= dim; i++) {
            if (i == rm) continue;
            f[m++] = v[i];
            for (int j = i + 1; j <= dim; j++)
                if (j != rm && pd[i * PD + j] > d) d = pd[i * PD + j];
        }
        if (d != t.diam) continue;
        int64_t idx = 0;
        for (int i = 0; i < dim; i++) idx += binom(r, f[i], dim - i);
        /* [t : f] = (-1)^(number of vertices of f below the removed vertex) */
        int below = dim - rm;
        uint32_t coef = (below & 1) ? r->modulus - 1 : 1;
        if (out_vert) memcpy(out_vert, f, (size_t)dim * sizeof *f);
        return make_entry(r, d, idx, coef);
    }
    return (entry){0, UINT64_MAX};
}

static int is_none(entry e) {
    return e.ic == UINT64_MAX;
}

static entry zero_apparent_cofacet(const rips *r, entry s, int dim, const int32_t *vert,
                                   const double *pd) {
    int32_t tv[ATS_RIPS_MAX_DIM + 3];
    double tpd[PD * PD];
    entry t = zero_pivot_cofacet(r, s, dim, vert, pd, tv, tpd, -1);
    if (is_none(t)) return t;
    /* with the new vertex on top, t's facets by index start with s: s is t's youngest facet */
    if (e_index(r, t) - binom(r, tv[0], dim + 2) == e_index(r, s)) return t;
    entry f = zero_pivot_facet(r, t, dim + 1, tv, tpd, NULL);
    if (!is_none(f) && e_index(r, f) == e_index(r, s)) return t;
    return (entry){0, UINT64_MAX};
}

static entry zero_apparent_facet(const rips *r, entry t, int dim, const int32_t *vert,
                                 const double *pd) {
    int32_t fv[ATS_RIPS_MAX_DIM + 2], tv[ATS_RIPS_MAX_DIM + 3];
    if (!vert) {
        simplex_vertices(r, e_index(r, t), dim, tv);
        vert = tv;
    }
    entry f = zero_pivot_facet(r, t, dim, vert, pd, fv);
    if (is_none(f)) return f;
    /* t is f plus a vertex x within f.diam of f's vertices: f's oldest cofacet of the same
       diameter is t unless one with a larger new vertex has that diameter too, so the search
       stops at x */
    int x = 0;
    while (x < dim && vert[x] == fv[x]) x++;
    entry c = zero_pivot_cofacet(r, make_entry(r, f.diam, e_index(r, f), 1), dim - 1, fv, NULL,
                                 NULL, NULL, vert[x]);
    if (is_none(c)) return f;
    return (entry){0, UINT64_MAX};
}

/* ---- dimension 0: union-find over the edges in filtration order */

static int64_t uf_find(int64_t *parent, int64_t x) {
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];
        x = parent[x];
    }
    return x;
}

/* Edge e joins the components of roots a and b: the younger dies, an H0 pair (all births are 0,
 * so the choice only names the vertex given as the birth), and the union by rank. */
static void h0_join(rips *r, int64_t *parent, int32_t *rank, int64_t *birth_vertex, int64_t a,
                    int64_t b, entry e) {
    if (keep_pair(r, 0.0, e.diam))
        pair_push(r, 0, 0.0, e.diam,
                  birth_vertex[a] > birth_vertex[b] ? birth_vertex[a] : birth_vertex[b],
                  e_index(r, e));
    if (rank[a] < rank[b]) {
        int64_t x = a;
        a = b;
        b = x;
    }
    parent[b] = a;
    if (rank[a] == rank[b]) rank[a]++;
    if (birth_vertex[b] < birth_vertex[a]) birth_vertex[a] = birth_vertex[b];
}

/* Fills `edges` (all edges within threshold) and `columns` (edges that are not in the minimum
 * spanning forest nor in an apparent pair, in reverse filtration order). */
static int compute_dim0(rips *r, entry_vec *edges, entry_vec *columns) {
    size_t n = r->n;
    phase_clock t_phase = phase_start();
    if (r->sparse) {
        for (size_t i = 0; i < n && !cancel_poll(r); i++)
            for (size_t t = r->nb_start[i]; t < r->nb_start[i + 1]; t++) {
                size_t j = (size_t)r->nb[t].v;
                if (j >= i) continue;
                if (!vec_push(r, edges, make_entry(r, r->nb[t].d, (int64_t)lower_index(i, j), 1)))
                    return 0;
            }
    } else {
        for (size_t i = 1; i < n && !cancel_poll(r); i++)
            for (size_t j = 0; j < i; j++) {
                size_t e = lower_index(i, j);
                double d = r->lower[e];
                if (d <= r->threshold && !vec_push(r, edges, make_entry(r, d, (int64_t)e, 1)))
                    return 0;
            }
    }
    if (oom_seen(r)) return 0;
    sort_columns(r, edges->a, edges->len); /* reverse filtration order */
    int64_t *parent = malloc(n * sizeof *parent);
    int32_t *rank = calloc(n, sizeof *rank);
    int64_t *birth_vertex = malloc(n * sizeof *birth_vertex);
    if (!parent || !rank || !birth_vertex) {
        free(parent);
        free(rank);
        free(birth_vertex);
        set_oom(r);
        return 0;
    }
    /* kind[t]: 0 = closes a cycle, 1 = joins two components, 2 = in an apparent pair */
    size_t ne = edges->len;
    uint8_t *kind = malloc(ne ? ne : 1);
    entry *tris = r->want_cycles ? malloc((ne ? ne : 1) * sizeof *tris) : NULL;
    if (!kind || (r->want_cycles && !tris)) {
        free(parent);
        free(rank);
        free(birth_vertex);
        free(kind);
        free(tris);
        set_oom(r);
        return 0;
    }
    for (size_t i = 0; i < n; i++) parent[i] = birth_vertex[i] = (int64_t)i;
    for (size_t t = ne; t-- > 0;) {
        if ((t & 4095) == 0 && cancel_poll(r)) break;
        entry e = edges->a[t];
        int32_t v[2];
        simplex_vertices(r, e_index(r, e), 1, v);
        int64_t a = uf_find(parent, v[0]), b = uf_find(parent, v[1]);
        kind[t] = a != b;
        if (a != b) {
            h0_join(r, parent, rank, birth_vertex, a, b, e);
        }
    }
    phase_mark(r, ATS_RIPS_PHASE_EDGES, &t_phase);
    if (r->dim_max >= 1) {
        /* The apparent-pair test of each cycle edge reads only the metric: in parallel, then
           the columns are taken in order. */
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1024) num_threads(r->threads) if (r->threads > 1)
#endif
        for (size_t t = 0; t < ne; t++) {
            if (kind[t] || ((t & 255) == 0 && cancel_poll(r)) || oom_seen(r)) continue;
            entry tri = zero_apparent_cofacet(r, edges->a[t], 1, NULL, NULL);
            if (!is_none(tri)) {
                kind[t] = 2;
                if (tris) tris[t] = tri;
            }
        }
        for (size_t t = ne; t-- > 0;) {
            if (kind[t] == 0)
                vec_push(r, columns, edges->a[t]);
            else if (kind[t] == 2 && tris)
                vec_push(r, &r->negative_triangles, tris[t]);
        }
    }
    free(kind);
    free(tris);
    phase_mark(r, ATS_RIPS_PHASE_EDGE_APPARENT, &t_phase);
    for (size_t i = 0; i < n; i++)
        if (uf_find(parent, (int64_t)i) == (int64_t)i)
            pair_push(r, 0, 0.0, INFINITY, birth_vertex[i], -1);
    free(parent);
    free(rank);
    free(birth_vertex);
    /* columns were collected in filtration order; reduction wants the reverse */
    for (size_t i = 0, j = columns->len; i + 1 < j; i++, j--) {
        entry t = columns->a[i];
        columns->a[i] = columns->a[j - 1];
        columns->a[j - 1] = t;
    }
    return !r->oom;
}

/* ---- dimensions >= 1 */

/* The reduction columns of the recorded columns: column j's entries at col[j] (NULL: none),
 * preceded by their count, in blocks that never move, so that threads may read the recorded
 * columns while more are stored. */
typedef struct reduction {
    entry **col;               /* [ncols] */
    entry **blocks;            /* [nblocks], each block freed at the end */
    size_t nblocks, used, cap; /* entries used in, and size of, the newest block */
} reduction;

enum { REDUCTION_BLOCK = 1 << 16 };

/* Stores column j's entries (kept); 0 when out of memory. One thread at a time. */
static int reduction_store(rips *r, reduction *R, size_t j, const entry_vec *kept) {
    if (!kept->len) return 1;
    size_t need = kept->len + 1;
    if (!R->nblocks || R->cap - R->used < need) {
        size_t size = need > REDUCTION_BLOCK ? need : REDUCTION_BLOCK;
        entry **bl = realloc(R->blocks, (R->nblocks + 1) * sizeof *bl);
        entry *b = bl ? malloc(size * sizeof *b) : NULL;
        if (bl) R->blocks = bl;
        if (!b) {
            set_oom(r);
            return 0;
        }
        R->blocks[R->nblocks++] = b;
        R->used = 0;
        R->cap = size;
    }
    entry *c = R->blocks[R->nblocks - 1] + R->used;
    c[0].ic = kept->len;
    c[0].diam = 0.0;
    memcpy(c + 1, kept->a, kept->len * sizeof *c);
    R->used += need;
    R->col[j] = c;
    return 1;
}

static void reduction_free(reduction *R) {
    for (size_t b = 0; b < R->nblocks; b++) free(R->blocks[b]);
    free(R->blocks);
    free(R->col);
}

/* Pushes the simplex s into the reduction column and its coboundary into the working column. */
static void add_simplex_coboundary(rips *r, entry s, int dim, heap *red, heap *cob) {
    heap_push(r, red, s);
    cob_enum c;
    cob_init(&c, r, s, dim, NULL);
    entry e;
    while (cob_next(&c, 1, &e)) heap_push(r, cob, e);
}

static void add_column(rips *r, const entry_vec *columns, const reduction *R, int64_t j,
                       uint32_t factor, int dim, heap *red, heap *cob) {
    entry s = columns->a[j];
    add_simplex_coboundary(r, make_entry(r, s.diam, e_index(r, s), factor), dim, red, cob);
    const entry *c = R->col[j];
    size_t len = c ? (size_t)c[0].ic : 0;
    for (size_t t = 1; t <= len; t++) {
        entry x = c[t];
        add_simplex_coboundary(
            r, make_entry(r, x.diam, e_index(r, x), mod_mul(e_coef(r, x), factor, r->modulus)), dim,
            red, cob);
    }
}

/* Builds sigma's coboundary in cob and returns its pivot; short-circuits an emergent pair,
 * whose pivot is its first cofacet of equal diameter, leaving cob empty and *emergent set
 * (with check_emergent). Returns 0 if zero. */
static int init_coboundary(rips *r, entry s, int dim, const pivot_map *pivots, heap *cob,
                           entry_vec *scratch, entry *pivot, int check_emergent, int *emergent) {
    cob->len = 0;
    scratch->len = 0;
    *emergent = 0;
    cob_enum c;
    cob_init(&c, r, s, dim, NULL);
    entry e;
    while (cob_next(&c, 1, &e)) {
        if (check_emergent && e.diam == s.diam) {
            int32_t ev[ATS_RIPS_MAX_DIM + 3];
            cob_cofacet_vertices(&c, ev);
            if (!pivot_map_find(pivots, e_index(r, e)) &&
                is_none(zero_apparent_facet(r, e, dim + 1, ev, NULL))) {
                *pivot = e;
                *emergent = 1;
                return 1;
            }
            check_emergent = 0;
        }
        vec_push(r, scratch, e);
    }
    for (size_t i = 0; i < scratch->len; i++) heap_push(r, cob, scratch->a[i]);
    return heap_get_pivot(r, cob, pivot);
}

static ats_representative make_rep(rips *r, entry s, heap *red_copy, int dim) {
    /* The cocycle: sigma with coefficient 1 plus the reduction column. */
    ats_representative rep = {0, NULL, NULL};
    size_t cap = red_copy->len + 1;
    rep.vertices = malloc(cap * (size_t)(dim + 1) * sizeof *rep.vertices);
    rep.coefs = malloc(cap * sizeof *rep.coefs);
    if (!rep.vertices || !rep.coefs) {
        free(rep.vertices);
        free(rep.coefs);
        rep.vertices = NULL;
        rep.coefs = NULL;
        set_oom(r);
        return rep;
    }
    heap_push(r, red_copy, make_entry(r, s.diam, e_index(r, s), 1));
    entry e;
    while (heap_pop_pivot(r, red_copy, &e)) {
        simplex_vertices(r, e_index(r, e), dim, rep.vertices + rep.count * (size_t)(dim + 1));
        rep.coefs[rep.count++] = e_coef(r, e);
    }
    return rep;
}

/* The reduction of one column, as far as it can go while only reading the pivots recorded
 * so far (all of earlier columns). */
typedef struct col_state {
    heap red, cob;
    entry pivot;
    int has;      /* 0: the column reduced to zero */
    int emergent; /* the pivot is the emergent shortcut's, taken against the pivots recorded so far
                   */
} col_state;

/* Adds to the column in st the columns (and apparent pairs) that own its pivot, as long as
 * pivots (read only) or an apparent pair names one. */
static void reduce_continue(rips *r, const entry_vec *columns, const reduction *R,
                            const pivot_map *pivots, int dim, col_state *st) {
    uint32_t p = r->modulus;
    while (st->has && !cancel_poll(r)) {
        const pivot_slot *slot = pivot_map_find(pivots, e_index(r, st->pivot));
        if (slot) {
            uint32_t factor = p - mod_mul(e_coef(r, st->pivot), r->inverse[slot_coef(slot)], p);
            add_column(r, columns, R, slot_column(slot), factor % p, dim, &st->red, &st->cob);
        } else {
            entry f = zero_apparent_facet(r, st->pivot, dim + 1, NULL, NULL);
            if (is_none(f)) return;
            /* The pivot belongs to a skipped apparent pair (f, pivot): add f's coboundary,
               scaled so that the pivot cancels: -c / [pivot : f]. */
            uint32_t factor = p - mod_mul(e_coef(r, st->pivot), r->inverse[e_coef(r, f)], p);
            add_simplex_coboundary(r, make_entry(r, f.diam, e_index(r, f), factor % p), dim,
                                   &st->red, &st->cob);
        }
        st->has = heap_get_pivot(r, &st->cob, &st->pivot);
    }
}

/* Reduces column j against the pivots in `pivots` (read only) and the apparent pairs, up to a
 * pivot that is in neither. In the serial engine the same steps happen in the same order: a
 * pivot found here belongs to an earlier column, so it is in the serial map too. */
static void reduce_ahead(rips *r, const entry_vec *columns, const reduction *R,
                         const pivot_map *pivots, int dim, size_t j, col_state *st,
                         entry_vec *scratch) {
    entry s = make_entry(r, columns->a[j].diam, e_index(r, columns->a[j]), 1);
    st->red.len = 0;
    st->has = init_coboundary(r, s, dim, pivots, &st->cob, scratch, &st->pivot, 1, &st->emergent);
    if (st->emergent) return;
    reduce_continue(r, columns, R, pivots, dim, st);
}

/* 1 when column state st's pivot belongs to a column recorded in pivots: it has more to do. */
static int column_blocked(const rips *r, const pivot_map *pivots, const col_state *st) {
    return st->has && pivot_map_find(pivots, e_index(r, st->pivot)) != NULL;
}

/* Goes on with the reduction of column j, blocked by a pivot recorded since (column_blocked):
 * an emergent shortcut whose pivot was taken is undone first, as the serial engine, which saw
 * that pivot taken, would never have made it. */
static void reduce_resume(rips *r, const entry_vec *columns, const reduction *R,
                          const pivot_map *pivots, int dim, size_t j, col_state *st,
                          entry_vec *scratch) {
    if (st->emergent) {
        entry s = make_entry(r, columns->a[j].diam, e_index(r, columns->a[j]), 1);
        int unused;
        st->has = init_coboundary(r, s, dim, pivots, &st->cob, scratch, &st->pivot, 0, &unused);
        st->emergent = 0;
    }
    reduce_continue(r, columns, R, pivots, dim, st);
}

/* Columns are reduced on every thread at once and recorded in column order. A thread takes the
 * next column and reduces it against the pivots recorded so far and the apparent pairs
 * (reduce_ahead), up to a pivot that is in neither; whichever thread finds the oldest column
 * ready (and no other thread recording) finishes it against the pivots of every earlier column
 * and records its pivot, then the next ones that are ready. Every pivot a thread finds belongs
 * to an earlier column, so its steps are steps of the serial engine, in the same order: the
 * additions, pairs and representatives do not depend on the thread count, and one thread is
 * the serial engine. Columns in flight are at most `window` ahead of the next one to record
 * (their states live in a ring), so that few are overtaken by pivots recorded after them. */
/* Frees a heap's array above 64 KiB (it is grown again when needed). */
static void heap_trim(heap *h) {
    if (h->cap * sizeof *h->a > ((size_t)64 << 10)) {
        free(h->a);
        *h = (heap){NULL, 0, 0};
    }
}

typedef struct pipe_slot {
    col_state st;
    int ready;                            /* atomic: the column's reduction ahead is done */
} __attribute__((aligned(64))) pipe_slot; /* a cache line of its own: threads write their own */

/* A thread's scratch vector, on a cache line of its own. */
typedef struct thread_scratch {
    entry_vec v;
} __attribute__((aligned(64))) thread_scratch;

/* Zeroed memory for n objects of size bytes, aligned to a cache line. */
static void *calloc_lines(size_t n, size_t size) {
    size_t bytes;
    if (!ats_size_mul(n ? n : 1, size, &bytes)) return NULL;
    bytes = (bytes + 63) / 64 * 64;
    void *p = aligned_alloc(64, bytes);
    if (p) memset(p, 0, bytes);
    return p;
}

static int pipe_stop(rips *r) {
    return oom_seen(r) || __atomic_load_n(&r->cancelled, __ATOMIC_RELAXED);
}

/* Waiting for another thread: spin briefly, then give the core away (on a busy machine the
 * thread waited for may not be running), then, when the wait is long (a column that the
 * others depend on), sleep 50 µs at a time rather than burn the core: on Ripser's
 * sphere_3_192 the second thread spun for the whole of dimension 2's reduction. */
static void pipe_wait(unsigned *spins) {
    ++*spins;
    if (*spins > 4096) {
        struct timespec ts = {0, 50000};
        nanosleep(&ts, NULL);
    } else if (*spins > 64) {
        sched_yield();
    }
}

/* Finishes column j from its state (reduced against some earlier columns' pivots) against the
 * pivots of every earlier column and records its pair and pivot. One thread at a time. */
static void commit_column(rips *r, const entry_vec *columns, reduction *R, pivot_map *pivots,
                          int dim, size_t j, col_state *st, entry_vec *scratch, heap *tmp,
                          entry_vec *kept) {
    uint32_t p = r->modulus;
    entry s = make_entry(r, columns->a[j].diam, e_index(r, columns->a[j]), 1);
    double birth = s.diam;
    if (st->emergent && pivot_map_find(pivots, e_index(r, st->pivot))) {
        /* an earlier column took the pivot after this one was reduced: no shortcut after all */
        int unused;
        st->has = init_coboundary(r, s, dim, pivots, &st->cob, scratch, &st->pivot, 0, &unused);
    }
    heap *red = &st->red, *cob = &st->cob;
    entry pivot = st->pivot;
    int has = st->has;
    for (;;) {
        if (has && cancel_poll(r)) return;
        if (!has) {
            /* essential class */
            if (pair_push(r, dim, birth, INFINITY, e_index(r, s), -1) && r->want_cocycles) {
                tmp->len = 0;
                for (size_t t = 0; t < red->len; t++) heap_push(r, tmp, red->a[t]);
                r->out[dim].reps[r->out[dim].len - 1] = make_rep(r, s, tmp, dim);
            }
            return;
        }
        const pivot_slot *slot = pivot_map_find(pivots, e_index(r, pivot));
        if (slot) {
            uint32_t factor = p - mod_mul(e_coef(r, pivot), r->inverse[slot_coef(slot)], p);
            add_column(r, columns, R, slot_column(slot), factor % p, dim, red, cob);
            has = heap_get_pivot(r, cob, &pivot);
            continue;
        }
        entry f = zero_apparent_facet(r, pivot, dim + 1, NULL, NULL);
        if (!is_none(f)) {
            uint32_t factor = p - mod_mul(e_coef(r, pivot), r->inverse[e_coef(r, f)], p);
            add_simplex_coboundary(r, make_entry(r, f.diam, e_index(r, f), factor % p), dim, red,
                                   cob);
            has = heap_get_pivot(r, cob, &pivot);
            continue;
        }
        double death = pivot.diam;
        if (keep_pair(r, birth, death) &&
            pair_push(r, dim, birth, death, e_index(r, s), e_index(r, pivot)) && r->want_cocycles) {
            tmp->len = 0;
            for (size_t t = 0; t < red->len; t++) heap_push(r, tmp, red->a[t]);
            r->out[dim].reps[r->out[dim].len - 1] = make_rep(r, s, tmp, dim);
        }
        if (dim == 1 && r->want_cycles) vec_push(r, &r->negative_triangles, pivot);
        /* the reduction column, combined, kept for later additions: stored before the pivot
           is published, as other threads may add this column as soon as they find the pivot */
        kept->len = 0;
        entry x;
        while (heap_pop_pivot(r, red, &x)) vec_push(r, kept, x);
        if (reduction_store(r, R, j, kept))
            pivot_map_insert(r, pivots, e_index(r, pivot), (int64_t)j, e_coef(r, pivot));
        return;
    }
}

/* pivots: empty, sized for every column (pivot_map_init(columns->len)), so that it never
 * grows while other threads read it. */
static int compute_pairs(rips *r, const entry_vec *columns, pivot_map *pivots, int dim) {
    size_t ncols = columns->len;
    int threads = r->threads > 1 ? r->threads : 1;
    /* Up to 256 columns a thread: a long column at the head of the window holds the others up
       only when it passes that many cheap ones. But each slot's first column grows its heaps
       in fresh memory (page faults, cold caches: a third more work a column when 512 slots
       served 476 columns), so a slot serves 16 columns or more. */
    size_t window = ncols / 16, lo = (size_t)threads * 8, hi = (size_t)threads * 256;
    window = threads == 1 ? 1 : window < lo ? lo : window > hi ? hi : window;
    reduction R = {calloc(ncols ? ncols : 1, sizeof *R.col), NULL, 0, 0, 0};
    pipe_slot *slots = calloc_lines(window, sizeof *slots);
    thread_scratch *scratch = calloc_lines((size_t)threads, sizeof *scratch);
    heap tmp = {NULL, 0, 0};
    entry_vec kept = {NULL, 0, 0};
    if (!R.col || !slots || !scratch) {
        free(R.col);
        free(slots);
        free(scratch);
        set_oom(r);
        return 0;
    }
    size_t next_take = 0;   /* atomic: the next column to reduce */
    size_t next_record = 0; /* atomic: the next column to finish and record */
    int recording = 0;      /* atomic: a thread is recording */
    double record_wall = 0.0;
    phase_clock t0 = phase_start();
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1 && ncols > 1)
#endif
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        unsigned spins = 0;
        while (!pipe_stop(r)) {
            size_t rec = __atomic_load_n(&next_record, __ATOMIC_ACQUIRE);
            if (rec == ncols) break;
            if (__atomic_load_n(&slots[rec % window].ready, __ATOMIC_ACQUIRE) &&
                !__atomic_exchange_n(&recording, 1, __ATOMIC_ACQUIRE)) {
                double w0 = wall_now();
                size_t j = next_record;
                while (j < ncols && !pipe_stop(r) &&
                       __atomic_load_n(&slots[j % window].ready, __ATOMIC_ACQUIRE)) {
                    pipe_slot *s = &slots[j % window];
                    commit_column(r, columns, &R, pivots, dim, j, &s->st, &scratch[tid].v, &tmp,
                                  &kept);
                    /* a slot keeps its heaps for its next column, unless they grew large: the
                       window would hold its largest columns' heaps to the end */
                    heap_trim(&s->st.red);
                    heap_trim(&s->st.cob);
                    __atomic_store_n(&s->ready, 0, __ATOMIC_RELAXED);
                    __atomic_store_n(&next_record, ++j, __ATOMIC_RELEASE);
                }
                record_wall += wall_now() - w0;
                __atomic_store_n(&recording, 0, __ATOMIC_RELEASE);
                spins = 0;
                continue;
            }
            size_t j = __atomic_load_n(&next_take, __ATOMIC_RELAXED);
            if (j >= ncols || j >= rec + window) {
                /* the last columns are with other threads, or the ring is full: its oldest
                   column is not recorded yet */
                pipe_wait(&spins);
                continue;
            }
            if (!__atomic_compare_exchange_n(&next_take, &j, j + 1, 0, __ATOMIC_RELAXED,
                                             __ATOMIC_RELAXED))
                continue;
            spins = 0;
            pipe_slot *s = &slots[j % window];
            reduce_ahead(r, columns, &R, pivots, dim, j, &s->st, &scratch[tid].v);
            /* pivots recorded meanwhile: go on while the column is in this thread's cache */
            while (!pipe_stop(r) && column_blocked(r, pivots, &s->st))
                reduce_resume(r, columns, &R, pivots, dim, j, &s->st, &scratch[tid].v);
            __atomic_store_n(&s->ready, 1, __ATOMIC_RELEASE);
        }
    }
    /* the recording is the part that is one thread at a time; the rest ran on all of them */
    phase_mark(r, ATS_RIPS_PHASE_REDUCE_AHEAD, &t0);
    r->phase_cpu[ATS_RIPS_PHASE_REDUCE_AHEAD] -= record_wall;
    r->phase_wall[ATS_RIPS_PHASE_REDUCE_AHEAD] -= record_wall;
    r->phase_cpu[ATS_RIPS_PHASE_REDUCE_COMMIT] += record_wall;
    r->phase_wall[ATS_RIPS_PHASE_REDUCE_COMMIT] += record_wall;
    for (size_t q = 0; q < window; q++) {
        free(slots[q].st.red.a);
        free(slots[q].st.cob.a);
    }
    for (int t = 0; t < threads; t++) free(scratch[t].v.a);
    free(slots);
    free(scratch);
    reduction_free(&R);
    free(tmp.a);
    free(kept.a);
    return !oom_seen(r);
}

/* The (dim+1)-simplices from simplices [from, to) (see assemble_columns) into next (when
 * keep_next) and the columns among them into columns. Reads only r and pivots. */
static void assemble_range(rips *r, const entry_vec *simplices, size_t from, size_t to,
                           const pivot_map *pivots, int dim, int keep_next, entry_vec *next,
                           entry_vec *columns) {
    size_t added = 0;
    for (size_t i = from; i < to && !cancel_poll(r); i++) {
        cob_enum c;
        cob_init(&c, r, make_entry(r, simplices->a[i].diam, e_index(r, simplices->a[i]), 1), dim,
                 NULL);
        double spd[PD * PD], epd[PD * PD];
        if (dim == 1)
            spd[1] = simplices->a[i].diam; /* an edge's one distance (no lookup when streamed) */
        else
            pairwise(r, c.vert, dim + 1, spd);
        entry e;
        int32_t ev[ATS_RIPS_MAX_DIM + 3];
        while (cob_next(&c, 0, &e)) {
            if (keep_next) vec_push(r, next, e);
            if (pivot_map_find(pivots, e_index(r, e))) continue;
            cob_cofacet_vertices(&c, ev);
            cob_cofacet_pd(&c, spd, epd);
            /* both tests scan neighbour lists (or rows), and on sparse attention matrices
               almost every (dim+1)-simplex is paired with a cofacet: cofacet first */
            if (!is_none(zero_apparent_cofacet(r, e, dim + 1, ev, epd)) ||
                !is_none(zero_apparent_facet(r, e, dim + 1, ev, epd)))
                continue;
            vec_push(r, columns, e);
            added++;
        }
        /* the columns (16 bytes), their pivot slots (32) and the next dimension's simplices */
        size_t total = __atomic_add_fetch(&r->assembled, added, __ATOMIC_RELAXED);
        __atomic_add_fetch(&r->assembled_from, 1, __ATOMIC_RELAXED);
        added = 0;
        if (r->memory_base + (double)total * (keep_next ? 64.0 : 48.0) > r->memory_limit) {
            __atomic_store_n(&r->over_limit, 1, __ATOMIC_RELAXED);
            set_oom(r);
        }
    }
}

static int vec_append(rips *r, entry_vec *dst, const entry_vec *src) {
    if (src->len == 0) return 1;
    if (!entries_reserve(r, &dst->a, &dst->cap, dst->len + src->len, 256)) return 0;
    memcpy(dst->a + dst->len, src->a, src->len * sizeof *src->a);
    dst->len += src->len;
    return 1;
}

/* Columns of dimension dim+1 from the dim-simplices: every (dim+1)-simplex within threshold
 * once; those paired as pivots in dimension dim (clearing) or in apparent pairs are dropped.
 * `simplices` becomes the (dim+1)-simplices when they are needed for the next dimension.
 * With several threads each takes contiguous blocks of simplices and the blocks' outputs are
 * joined in block order, so the result does not depend on the thread count. */
static int assemble_columns(rips *r, entry_vec *simplices, entry_vec *columns,
                            const pivot_map *pivots, int dim) {
    entry_vec next = {NULL, 0, 0};
    int keep_next = dim + 1 < r->dim_max;
    columns->len = 0;
    r->assembled = r->assembled_from = 0;
    size_t count = simplices->len;
    phase_clock t_phase = phase_start();
    int threads = r->threads;
    if (threads <= 1 || count < 1024) {
        assemble_range(r, simplices, 0, count, pivots, dim, keep_next, &next, columns);
    } else {
        size_t nblocks = (size_t)threads * 16, per = (count + nblocks - 1) / nblocks;
        entry_vec *bn = calloc(nblocks, sizeof *bn), *bc = calloc(nblocks, sizeof *bc);
        if (!bn || !bc) {
            set_oom(r);
        } else {
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
            for (size_t b = 0; b < nblocks; b++) {
                size_t from = b * per, to = from + per < count ? from + per : count;
                if (from < to)
                    assemble_range(r, simplices, from, to, pivots, dim, keep_next, &bn[b], &bc[b]);
            }
            for (size_t b = 0; b < nblocks && !r->oom; b++) {
                if (keep_next) vec_append(r, &next, &bn[b]);
                vec_append(r, columns, &bc[b]);
            }
        }
        for (size_t b = 0; bn && bc && b < nblocks; b++) {
            free(bn[b].a);
            free(bc[b].a);
        }
        free(bn);
        free(bc);
    }
    if (r->over_limit) {
        double done = (double)r->assembled_from / (double)(count ? count : 1);
        r->over_dim = dim + 1;
        r->over_projected = r->memory_base + (double)r->assembled * (keep_next ? 64.0 : 48.0) /
                                                 (done > 0 ? done : 1);
    }
    free(simplices->a);
    *simplices = next;
    phase_mark(r, ATS_RIPS_PHASE_ASSEMBLE, &t_phase);
    sort_columns(r, columns->a, columns->len);
    phase_mark(r, ATS_RIPS_PHASE_SORT, &t_phase);
    return !r->oom;
}

/* ---- dimension 0 on the dense rows, in parallel
 *
 * Kruskal's union-find joins exactly the edges of the minimum spanning forest under the
 * filtration order, which is a strict total order (diameter, then index): that forest is unique,
 * so Prim's algorithm on the distance rows finds the same edges with O(n²/threads) work and no
 * sorted edge list. The union-find then runs on those n-1 edges only, in filtration order, which
 * gives the H0 pairs of the serial engine (the other edges do not change the union-find). The
 * cycle edges go through the apparent-pair test in parallel as they are enumerated, and only the
 * columns that remain are sorted. */

/* (diameter, edge index) of the best edge from the tree to a vertex; index -1: none yet. */
typedef struct prim_key {
    double d;
    int64_t idx;
    int32_t from;
} prim_key;

static inline int prim_before(prim_key a, prim_key b) {
    if (b.idx < 0) return a.idx >= 0;
    if (a.idx < 0) return 0;
    return a.d != b.d ? a.d < b.d : a.idx > b.idx;
}

/* The minimum spanning forest of the edges within the threshold: mst[k] for k < *count. One
 * thread: a step is n comparisons, too little to share among threads when every step would end
 * in a barrier (n of them; on a machine busy with other work, each can cost a time slice). */
static int prim_forest(rips *r, entry *mst, size_t *count) {
    size_t n = r->n;
    prim_key *key = malloc(n * sizeof *key);
    uint8_t *in_tree = calloc(n, 1);
    if (!key || !in_tree) {
        free(key);
        free(in_tree);
        set_oom(r);
        return 0;
    }
    for (size_t v = 0; v < n; v++) key[v] = (prim_key){INFINITY, -1, -1};
    size_t found = 0, chosen = 0; /* vertex 0 roots the first tree */
    in_tree[0] = 1;
    double thr = r->threshold;
    for (size_t step = 1; step < n; step++) {
        /* the keys against the vertex just added, and the best of them */
        const double *row = r->full + chosen * n;
        prim_key best = {INFINITY, -1, -1};
        size_t best_w = n, first_free = n;
        for (size_t w = 0; w < n; w++) {
            if (in_tree[w]) continue;
            if (first_free == n) first_free = w;
            double d = row[w];
            if (d <= thr) {
                size_t a = chosen > w ? chosen : w, b = chosen > w ? w : chosen;
                prim_key k = {d, (int64_t)lower_index(a, b), (int32_t)chosen};
                if (prim_before(k, key[w])) key[w] = k;
            }
            if (prim_before(key[w], best)) {
                best = key[w];
                best_w = w;
            }
        }
        if (best_w < n) { /* the best edge out of the tree */
            mst[found++] = make_entry(r, best.d, best.idx, 1);
            chosen = best_w;
        } else { /* nothing within the threshold reaches the tree: a new tree */
            chosen = first_free;
        }
        in_tree[chosen] = 1;
        if ((step & 63) == 0 && cancel_poll(r)) break;
    }
    free(key);
    free(in_tree);
    *count = found;
    return !oom_seen(r);
}

/* H0 by Prim's spanning forest and, for dimension 1, the edges' apparent-pair tests, which do
 * not need the forest: the calling thread computes the forest while the other threads test
 * edges, then joins them; the forest's edges (H0 deaths, never columns) are dropped after. */
static int compute_dim0_dense(rips *r, entry_vec *edges, entry_vec *columns) {
    size_t n = r->n;
    double thr = r->threshold;
    phase_clock t_phase = phase_start();
    entry *mst = malloc((n ? n : 1) * sizeof *mst);
    int64_t *parent = malloc(n * sizeof *parent);
    int32_t *rank = calloc(n, sizeof *rank);
    int64_t *birth_vertex = malloc(n * sizeof *birth_vertex);
    int threads = r->threads > 1 ? r->threads : 1;
    /* per thread: the edges not in an apparent pair; with cycles wanted, (edge, triangle) of
       those that are */
    entry_vec *cols = calloc((size_t)threads, sizeof *cols);
    entry_vec *tris = calloc((size_t)threads, sizeof *tris);
    pivot_map forest = {NULL, 0, 0};
    size_t nm = 0;
    int forest_ok = 0;
    double forest_wall = 0.0;
    if (!mst || !parent || !rank || !birth_vertex || !cols || !tris) {
        set_oom(r);
        goto done;
    }
    int test_edges = r->dim_max >= 1;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) if (threads > 1 && test_edges)
#endif
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        if (tid == 0) {
            double w0 = wall_now();
            forest_ok = prim_forest(r, mst, &nm);
            forest_wall = wall_now() - w0;
        }
        if (test_edges) {
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 16) nowait
#endif
            for (size_t i = 1; i < n; i++) {
                if (cancel_poll(r)) continue;
                const double *row = r->full + i * n;
                for (size_t j = 0; j < i; j++) {
                    double d = row[j];
                    if (d > thr) continue;
                    entry e = make_entry(r, d, (int64_t)lower_index(i, j), 1);
                    int32_t v[2] = {(int32_t)i, (int32_t)j};
                    entry tri = zero_apparent_cofacet(r, e, 1, v, NULL);
                    if (is_none(tri)) {
                        vec_push(r, &cols[tid], e);
                    } else if (r->want_cycles) {
                        vec_push(r, &tris[tid], e);
                        vec_push(r, &tris[tid], tri);
                    }
                }
            }
        }
    }
    if (!forest_ok || oom_seen(r)) goto done;
    phase_mark(r, test_edges ? ATS_RIPS_PHASE_EDGE_APPARENT : ATS_RIPS_PHASE_EDGES, &t_phase);
    if (test_edges) { /* the forest's share was Prim's, on the calling thread */
        r->phase_cpu[ATS_RIPS_PHASE_EDGE_APPARENT] -= forest_wall;
        r->phase_wall[ATS_RIPS_PHASE_EDGE_APPARENT] -= forest_wall;
        r->phase_cpu[ATS_RIPS_PHASE_EDGES] += forest_wall;
        r->phase_wall[ATS_RIPS_PHASE_EDGES] += forest_wall;
    }
    /* the union-find of the serial engine, on the forest's edges in filtration order */
    sort_columns(r, mst, nm);
    for (size_t i = 0; i < n; i++) parent[i] = birth_vertex[i] = (int64_t)i;
    for (size_t t = nm; t-- > 0;) {
        entry e = mst[t];
        int32_t v[2];
        simplex_vertices(r, e_index(r, e), 1, v);
        int64_t a = uf_find(parent, v[0]), b = uf_find(parent, v[1]);
        h0_join(r, parent, rank, birth_vertex, a, b, e);
    }
    for (size_t i = 0; i < n; i++)
        if (uf_find(parent, (int64_t)i) == (int64_t)i)
            pair_push(r, 0, 0.0, INFINITY, birth_vertex[i], -1);
    phase_mark(r, ATS_RIPS_PHASE_EDGES, &t_phase);
    if (test_edges) {
        if (!pivot_map_init(&forest, nm)) {
            set_oom(r);
            goto done;
        }
        for (size_t k = 0; k < nm; k++) pivot_map_insert(r, &forest, e_index(r, mst[k]), 0, 0);
        for (int t = 0; t < threads; t++) {
            for (size_t k = 0; k < cols[t].len; k++)
                if (!pivot_map_find(&forest, e_index(r, cols[t].a[k])))
                    vec_push(r, columns, cols[t].a[k]);
            for (size_t k = 0; k + 1 < tris[t].len; k += 2)
                if (!pivot_map_find(&forest, e_index(r, tris[t].a[k])))
                    vec_push(r, &r->negative_triangles, tris[t].a[k + 1]);
        }
        sort_columns(r, columns->a, columns->len); /* reverse filtration order */
        phase_mark(r, ATS_RIPS_PHASE_SORT, &t_phase);
    }
    if (r->dim_max >= 2 && !oom_seen(r)) {
        /* the edges, to enumerate the triangles from (their order does not matter: the
           columns are sorted) */
        size_t *row_start = malloc((n + 1) * sizeof *row_start);
        if (!row_start) {
            set_oom(r);
            goto done;
        }
        row_start[0] = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
#endif
        for (size_t i = 0; i < n; i++) {
            size_t c = 0;
            const double *row = r->full + i * n;
            for (size_t j = 0; j < i; j++) c += row[j] <= thr;
            row_start[i + 1] = c;
        }
        for (size_t i = 0; i < n; i++) row_start[i + 1] += row_start[i];
        if (!entries_reserve(r, &edges->a, &edges->cap, row_start[n], 256)) {
            free(row_start);
            goto done;
        }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
#endif
        for (size_t i = 0; i < n; i++) {
            size_t t = row_start[i];
            const double *row = r->full + i * n;
            for (size_t j = 0; j < i; j++)
                if (row[j] <= thr)
                    edges->a[t++] = make_entry(r, row[j], (int64_t)lower_index(i, j), 1);
        }
        edges->len = row_start[n];
        free(row_start);
        phase_mark(r, ATS_RIPS_PHASE_EDGES, &t_phase);
    }
done:
    for (int t = 0; cols && t < threads; t++) free(cols[t].a);
    for (int t = 0; tris && t < threads; t++) free(tris[t].a);
    free(cols);
    free(tris);
    free(forest.slots);
    free(mst);
    free(parent);
    free(rank);
    free(birth_vertex);
    return !oom_seen(r);
}

/* ---- representative cycles of H1
 *
 * Homology and cohomology pair the same simplices, so the triangles that kill a class (the
 * "negative" ones) are known from the cohomology run, zero-persistence pairs included. Reducing
 * the boundary matrix on those columns only, in filtration order, gives for each death triangle
 * the reduced column R_t: a cycle whose youngest edge is the birth edge and which bounds at t,
 * i.e. a representative of exactly that interval. Working columns use a heap whose top is the
 * youngest edge, obtained from the cohomology heap by reversing the key. */

static inline entry reversed(const rips *r, entry e) {
    return make_entry(r, -e.diam, (int64_t)(r->index_mask - 1) - e_index(r, e), e_coef(r, e));
}

static void push_boundary(rips *r, heap *h, const int32_t *v, uint32_t factor) {
    /* d[a,b,c] = [b,c] - [a,c] + [a,b] for a > b > c */
    static const int drop[3] = {0, 1, 2};
    for (int t = 0; t < 3; t++) {
        int32_t x = drop[t] == 0 ? v[1] : v[0], y = drop[t] == 2 ? v[1] : v[2];
        int64_t idx = (int64_t)lower_index((size_t)x, (size_t)y);
        uint32_t c = (t == 1) ? mod_mul(r->modulus - 1, factor, r->modulus) : factor;
        heap_push(r, h, reversed(r, make_entry(r, dist(r, x, y), idx, c)));
    }
}

/* Shortest path (in edges) from a to b using only edges strictly before e in the filtration;
 * with e itself this closes a cycle born at e. Writes the loop's edges into rep. */
static void essential_cycle(rips *r, entry e, ats_representative *rep) {
    size_t n = r->n;
    int32_t ev[2];
    simplex_vertices(r, e_index(r, e), 1, ev);
    int32_t *prev = malloc(n * sizeof *prev), *queue = malloc(n * sizeof *queue);
    if (!prev || !queue) {
        free(prev);
        free(queue);
        set_oom(r);
        return;
    }
    for (size_t i = 0; i < n; i++) prev[i] = -1;
    size_t head = 0, tail = 0;
    queue[tail++] = ev[0];
    prev[ev[0]] = ev[0];
    while (head < tail && prev[ev[1]] < 0) {
        int32_t u = queue[head++];
        /* sparse: u's neighbours, ascending as the dense scan (the same tree, the same cycle) */
        size_t cnt = r->sparse ? r->nb_start[u + 1] - r->nb_start[u] : n;
        for (size_t q = 0; q < cnt; q++) {
            size_t w = r->sparse ? (size_t)r->nb[r->nb_start[u + 1] - 1 - q].v : q;
            if (prev[w] >= 0 || (int32_t)w == u) continue;
            double d = r->sparse ? r->nb[r->nb_start[u + 1] - 1 - q].d : dist(r, u, (int64_t)w);
            int64_t idx = (int64_t)lower_index((size_t)u, w);
            entry f = make_entry(r, d, idx, 1);
            if (d > r->threshold || !filt_before(r, f, e)) continue;
            prev[w] = u;
            queue[tail++] = (int32_t)w;
        }
    }
    size_t len = 1;
    if (prev[ev[1]] >= 0)
        for (int32_t x = ev[1]; x != ev[0]; x = prev[x]) len++;
    rep->vertices = malloc(2 * len * sizeof *rep->vertices);
    rep->coefs = malloc(len * sizeof *rep->coefs);
    if (!rep->vertices || !rep->coefs) {
        set_oom(r);
    } else {
        rep->vertices[0] = ev[0];
        rep->vertices[1] = ev[1];
        rep->coefs[0] = 1;
        rep->count = 1;
        if (prev[ev[1]] >= 0)
            for (int32_t x = ev[1]; x != ev[0]; x = prev[x]) {
                int32_t y = prev[x];
                rep->vertices[2 * rep->count] = x > y ? x : y;
                rep->vertices[2 * rep->count + 1] = x > y ? y : x;
                /* orient the path so the chain is a cycle over Z/p: +[e] then the path b->a */
                rep->coefs[rep->count++] = x > y ? 1 : r->modulus - 1;
            }
    }
    free(prev);
    free(queue);
}

static void compute_cycles(rips *r) {
    entry_vec *neg = &r->negative_triangles;
    pair_vec *h1 = &r->out[1];
    r->cycles = calloc(h1->len ? h1->len : 1, sizeof *r->cycles);
    if (!r->cycles) {
        set_oom(r);
        return;
    }
    /* filtration order = the reverse of the column order */
    sort_columns(r, neg->a, neg->len);
    pivot_map by_edge, by_triangle;
    if (!pivot_map_init(&by_edge, neg->len) || !pivot_map_init(&by_triangle, neg->len)) {
        set_oom(r);
        return;
    }
    size_t *start = malloc((neg->len + 1) * sizeof *start);
    entry_vec pool = {NULL, 0, 0};
    heap work = {NULL, 0, 0};
    if (!start) set_oom(r);
    size_t ncols = 0;
    for (size_t t = neg->len; t-- > 0 && !cancel_poll(r);) {
        entry tri = neg->a[t];
        int32_t v[3];
        simplex_vertices(r, e_index(r, tri), 2, v);
        work.len = 0;
        push_boundary(r, &work, v, 1);
        entry piv;
        start[ncols] = pool.len;
        while (heap_get_pivot(r, &work, &piv)) {
            int64_t edge = (int64_t)(r->index_mask - 1) - e_index(r, piv);
            const pivot_slot *slot = pivot_map_find(&by_edge, edge);
            if (!slot) {
                pivot_map_insert(r, &by_edge, edge, (int64_t)ncols, e_coef(r, piv));
                pivot_map_insert(r, &by_triangle, e_index(r, tri), (int64_t)ncols, 0);
                while (heap_pop_pivot(r, &work, &piv)) vec_push(r, &pool, piv);
                break;
            }
            uint32_t factor =
                (r->modulus - mod_mul(e_coef(r, piv), r->inverse[slot_coef(slot)], r->modulus)) %
                r->modulus;
            for (size_t q = start[slot_column(slot)]; q < start[slot_column(slot) + 1]; q++) {
                entry x = pool.a[q];
                heap_push(r, &work,
                          make_entry(r, x.diam, e_index(r, x),
                                     mod_mul(e_coef(r, x), factor, r->modulus)));
            }
        }
        start[++ncols] = pool.len;
    }
    for (size_t i = 0; i < h1->len && !r->oom; i++) {
        ats_representative *rep = &r->cycles[i];
        if (h1->death[i] < 0) {
            int64_t bi = h1->birth[i];
            essential_cycle(r, make_entry(r, h1->pairs[2 * i], bi, 1), rep);
            continue;
        }
        const pivot_slot *slot = pivot_map_find(&by_triangle, h1->death[i]);
        if (!slot) continue; /* cannot happen: every death triangle is negative */
        size_t a = start[slot_column(slot)], b = start[slot_column(slot) + 1];
        rep->vertices = malloc((b - a ? b - a : 1) * 2 * sizeof *rep->vertices);
        rep->coefs = malloc((b - a ? b - a : 1) * sizeof *rep->coefs);
        if (!rep->vertices || !rep->coefs) {
            set_oom(r);
            break;
        }
        for (size_t q = a; q < b; q++) {
            int64_t edge = (int64_t)(r->index_mask - 1) - e_index(r, pool.a[q]);
            simplex_vertices(r, edge, 1, rep->vertices + 2 * rep->count);
            rep->coefs[rep->count++] = e_coef(r, pool.a[q]);
        }
    }
    free(by_edge.slots);
    free(by_triangle.slots);
    free(start);
    free(pool.a);
    free(work.a);
}

/* ---- setup */

static int is_prime(uint32_t p) {
    if (p < 2) return 0;
    for (uint32_t d = 2; d * d <= p; d++)
        if (p % d == 0) return 0;
    return 1;
}

/* Bytes the engine will hold whatever the data: the distance rows (dense) or neighbour lists
 * (sparse), the input triangle, the edges with their H0 bookkeeping, and the dimension-1 columns
 * with their pivot slots (at most one per edge). The columns of dimensions >= 2 depend on how
 * many simplices are cleared or in apparent pairs, known only while they are enumerated: the
 * assembly counts them against the limit as it goes (assemble_range). */
static double rips_memory_estimate(size_t n, size_t m, size_t num_edges, int sparse, int dim_max) {
    double nn = (double)n, e = (double)num_edges;
    double bytes = sparse ? 2.0 * e * sizeof(neighbor) : nn * nn * sizeof(double);
    bytes += (double)m * sizeof(double) + e * (sizeof(entry) + 1) + nn * 24;
    if (dim_max >= 1) bytes += e * (sizeof(entry) + 2 * sizeof(pivot_slot));
    return bytes;
}

static double physical_memory(void) {
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (double)pages * (double)size : INFINITY;
}

void ats_rips_options_init(ats_rips_options *opt) {
    memset(opt, 0, sizeof *opt);
    opt->max_dim = 1;
    opt->threshold = INFINITY;
    opt->modulus = 2;
    opt->min_persistence = 0.0;
    opt->ratio = 1.0;
    opt->n_threads = 1;
}

ats_status ats_metric_check(size_t n, const double *lower, const char *name, ats_error *err) {
    if (!name) name = "distance matrix";
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++) {
            double d = lower[lower_index(i, j)];
            if (!(d >= 0.0) || isinf(d))
                return ats_error_set(err, ATS_ERR_INVALID,
                                     "%s: row %zu, column %zu: distance %g is not a finite "
                                     "non-negative number",
                                     name, i + 1, j + 1, d);
        }
    return ATS_OK;
}

/* C(v, k) exactly, or -1 if it exceeds INT64_MAX. */
static int64_t binom_exact(int64_t v, int k) {
    if (k < 0 || v < k) return 0;
    unsigned __int128 c = 1;
    for (int t = 1; t <= k; t++) {
        c = c * (unsigned __int128)(v - k + t) / (unsigned __int128)t; /* exact at every step */
        if (c > (unsigned __int128)INT64_MAX) return -1;
    }
    return (int64_t)c;
}

void ats_simplex_vertices(int64_t index, int k, size_t n, int32_t *vertices) {
    int64_t top = (int64_t)n - 1;
    for (int i = k + 1; i >= 1; i--) {
        int64_t lo = i - 1, hi = top; /* largest v with C(v, i) <= index */
        while (lo < hi) {
            int64_t mid = hi - (hi - lo) / 2;
            int64_t c = binom_exact(mid, i);
            if (c >= 0 && c <= index)
                lo = mid;
            else
                hi = mid - 1;
        }
        vertices[k + 1 - i] = (int32_t)lo;
        index -= binom_exact(lo, i);
        top = lo - 1;
    }
}

static void pairs_free(pair_vec *p) {
    if (p->reps)
        for (size_t i = 0; i < p->len; i++) {
            free(p->reps[i].vertices);
            free(p->reps[i].coefs);
        }
    free(p->reps);
    free(p->pairs);
    free(p->birth);
    free(p->death);
    memset(p, 0, sizeof *p);
}

void ats_rips_result_free(ats_rips_result *res) {
    if (!res) return;
    for (int k = 0; k <= ATS_RIPS_MAX_DIM; k++) {
        if (res->cocycles[k])
            for (size_t i = 0; i < res->dims[k].count; i++) {
                free(res->cocycles[k][i].vertices);
                free(res->cocycles[k][i].coefs);
            }
        free(res->cocycles[k]);
        if (k == 1 && res->cycles)
            for (size_t i = 0; i < res->dims[1].count; i++) {
                free(res->cycles[i].vertices);
                free(res->cycles[i].coefs);
            }
        free(res->dims[k].pairs);
        free(res->birth_simplex[k]);
        free(res->death_simplex[k]);
    }
    free(res->cycles);
    memset(res, 0, sizeof *res);
}

static void rips_free(rips *r) {
    free(r->binom);
    free(r->full);
    free(r->negative_triangles.a);
    if (r->cycles)
        for (size_t i = 0; i < r->out[1].len; i++) {
            free(r->cycles[i].vertices);
            free(r->cycles[i].coefs);
        }
    free(r->cycles);
    free(r->inverse);
    free(r->nb_start);
    free(r->nb);
    for (int k = 0; k <= ATS_RIPS_MAX_DIM; k++) pairs_free(&r->out[k]);
}

/* Clears out, takes the defaults for a NULL *opt (kept in *defaults) and checks the options. */
static ats_status rips_begin(size_t n, const ats_rips_options **optp, ats_rips_options *defaults,
                             ats_rips_result *out, ats_error *err) {
    memset(out, 0, sizeof *out);
    if (!*optp) {
        ats_rips_options_init(defaults);
        *optp = defaults;
    }
    const ats_rips_options *opt = *optp;
    if (n == 0) return ats_error_set(err, ATS_ERR_INVALID, "rips: the metric has no points");
    if (n > (size_t)INT32_MAX)
        return ats_error_set(err, ATS_ERR_RANGE, "rips: %zu points is more than supported", n);
    if (opt->max_dim < 0 || opt->max_dim > ATS_RIPS_MAX_DIM)
        return ats_error_set(err, ATS_ERR_INVALID, "rips: dimension %d is outside 0..%d",
                             opt->max_dim, ATS_RIPS_MAX_DIM);
    if (!is_prime(opt->modulus) || opt->modulus >= 65536)
        return ats_error_set(err, ATS_ERR_INVALID, "rips: modulus %u is not a prime below 65536",
                             opt->modulus);
    if (isnan(opt->threshold) || opt->threshold < 0)
        return ats_error_set(err, ATS_ERR_INVALID, "rips: threshold must be >= 0");
    if (isnan(opt->ratio) || isnan(opt->min_persistence))
        return ats_error_set(err, ATS_ERR_INVALID,
                             "rips: ratio and min-persistence must be numbers");
    if (opt->collapse_edges && (opt->want_cocycles || opt->want_cycles))
        return ats_error_set(err, ATS_ERR_INVALID,
                             "rips: the edge collapse removes and delays edges, so it gives the "
                             "diagrams only: no cycles or cocycles with it");
    return ATS_OK;
}

/* The engine's settings from the options, before any data is looked at. */
static void rips_init(rips *r, size_t n, const ats_rips_options *opt) {
    memset(r, 0, sizeof *r);
    r->n = n;
    r->opt = opt;
    r->modulus = opt->modulus;
    r->want_cocycles = opt->want_cocycles;
    r->threads = opt->n_threads > 0 ? opt->n_threads : 1;
#ifdef _OPENMP
    if (opt->n_threads == 0) r->threads = omp_get_num_procs();
#endif
    r->want_cycles = opt->want_cycles && opt->max_dim >= 1;
    /* Homology above dimension n-2 vanishes (Ripser computes up to min(dim, n-2) too). */
    r->dim_max = opt->max_dim;
    if ((int64_t)r->dim_max > (int64_t)n - 2) r->dim_max = n >= 2 ? (int)(n - 2) : 0;
    r->memory_limit = opt->memory_limit_gb > 0 ? opt->memory_limit_gb * 1e9 : physical_memory();
    r->caller = pthread_self();
}

/* Refuses a problem whose memory estimate passes the limit, before anything is allocated. */
static ats_status rips_memory_admit(rips *r, size_t m, size_t num_edges, int with_triangle,
                                    ats_error *err) {
    double est =
        rips_memory_estimate(r->n, with_triangle ? m : 0, num_edges, r->sparse, r->dim_max);
    r->memory_base = est;
    if (est > r->memory_limit)
        return ats_error_set(err, ATS_ERR_RANGE,
                             "rips: %zu points to dimension %d with threshold %g (%zu of %zu "
                             "edges) need about %.3g GB, more than the %.3g GB allowed; lower "
                             "--threshold or --dim, or raise --memory-limit",
                             r->n, r->dim_max, r->threshold, num_edges, m, est / 1e9,
                             r->memory_limit / 1e9);
    return ATS_OK;
}

/* Simplex indices (every (dim_max+1)-simplex index must fit beside the coefficient bits), the
 * binomial table and the inverses mod p. */
static ats_status rips_tables(rips *r, ats_error *err) {
    size_t n = r->n;
    int coef_bits = 1;
    while ((1u << coef_bits) <= r->modulus - 1) coef_bits++;
    r->index_bits = 64 - coef_bits;
    r->index_mask = (r->index_bits >= 64) ? UINT64_MAX : ((uint64_t)1 << r->index_bits) - 1;
    r->k_max = r->dim_max + 2;
    int64_t top_count = binom_exact((int64_t)n, r->k_max);
    if (top_count < 0 || (uint64_t)top_count >= r->index_mask)
        return ats_error_set(err, ATS_ERR_RANGE,
                             "rips: %zu points in dimension %d need simplex indices beyond 64 "
                             "bits; lower --dim",
                             n, r->opt->max_dim);
    size_t bsize;
    if (!ats_size_mul((size_t)(r->k_max + 1), n + 1, &bsize))
        return ats_error_set(err, ATS_ERR_RANGE, "rips: binomial table overflows");
    r->binom = malloc(bsize * sizeof *r->binom);
    r->inverse = malloc(r->modulus * sizeof *r->inverse);
    if (!r->binom || !r->inverse) return ats_error_set(err, ATS_ERR_NOMEM, "rips: out of memory");
    for (int k = 0; k <= r->k_max; k++)
        for (size_t v = 0; v <= n; v++)
            r->binom[(size_t)k * (n + 1) + v] = binom_exact((int64_t)v, k);
    /* inverses by Fermat: a^(p-2) */
    r->inverse[0] = 0;
    for (uint32_t a = 1; a < r->modulus; a++) {
        uint32_t res = 1, b = a, e = r->modulus - 2;
        while (e) {
            if (e & 1) res = mod_mul(res, b, r->modulus);
            b = mod_mul(b, b, r->modulus);
            e >>= 1;
        }
        r->inverse[a] = res;
    }
    return ATS_OK;
}

static ats_status cancelled_error(size_t n, const ats_rips_options *opt, ats_error *err) {
    return ats_error_set(err, ATS_ERR_CANCELLED, "rips: cancelled (%zu points, dimension %d)", n,
                         opt->max_dim);
}

/* ---- edge collapse (Boissonnat & Pritam, "Edge collapse and persistence of flag complexes",
 * SoCG 2020; processed as in Glisse's rewrite for GUDHI)
 *
 * An edge uv is dominated at time t by a vertex c when every common neighbour of u and v at t
 * (c among them) is a neighbour of c at t: removing it then is a strong collapse, which keeps
 * the homotopy type. Going through the edges from the latest to the earliest, an edge dominated
 * at its own time is delayed to the first time its common neighbourhood grows beyond what its
 * dominator (or another one) covers, or removed when that never happens. The flag filtration of
 * what is left has the same persistence diagrams in every dimension (the paper's theorem), with
 * often far fewer edges: the engine then runs on neighbour lists of those. Edges are integers,
 * weights are the graph's: W(a, b) below, +inf once removed. */

typedef struct collapse_graph {
    rips *r;
    double *w;       /* [n][n] weights when dense (NULL: r's neighbour lists are the graph) */
    int32_t *common; /* [n] common neighbours by now of the edge processed */
    size_t n_common;
    double *later_d; /* [n] a min-heap of (time, vertex) of common neighbours still to come */
    int32_t *later_v;
    size_t n_later;
    /* Bit rows, when n <= COLLAPSE_BITS_MAX: edges are processed latest first, so the edges of
       time <= that of the edge processed are those not processed yet and those kept at its
       time; their bits (now) make its common neighbours one AND of two rows, and a vertex's
       domination at that time an AND-NOT of two, word by word. */
    size_t words;    /* 64-bit words a row */
    uint64_t *now;   /* [n][words] neighbours by edges of time <= that of the edge processed */
    uint64_t *alive; /* [n][words] neighbours by edges not removed */
    uint64_t *cbits; /* [words] the common neighbours of the edge processed, at its time */
} collapse_graph;

#define COLLAPSE_BITS_MAX 32768 /* two bit rows a vertex: 256 MB at this n */

static void bits_set(uint64_t *rows, size_t words, int32_t a, int32_t b, int on) {
    uint64_t *wa = rows + (size_t)a * words + (size_t)b / 64, bit = (uint64_t)1 << (b % 64);
    *wa = on ? *wa | bit : *wa & ~bit;
    uint64_t *wb = rows + (size_t)b * words + (size_t)a / 64;
    bit = (uint64_t)1 << (a % 64);
    *wb = on ? *wb | bit : *wb & ~bit;
}

static double cg_weight(const collapse_graph *g, int32_t a, int32_t b) {
    if (a == b) return -INFINITY;
    return g->w ? g->w[(size_t)a * g->r->n + (size_t)b] : dist_streamed(g->r, a, b);
}

static void cg_set_one(collapse_graph *g, int32_t a, int32_t b, double d) {
    rips *r = g->r;
    if (g->w) {
        g->w[(size_t)a * r->n + (size_t)b] = d;
        return;
    }
    r->nb[nb_find(r, a, b)].d = d; /* the edge is there: it is being processed */
}

static void cg_set(collapse_graph *g, int32_t a, int32_t b, double d) {
    cg_set_one(g, a, b, d);
    cg_set_one(g, b, a, d);
}

/* Sorts the common neighbours of uv into those present at t (common) and those to come
 * (later, with the time they come). */
static void cg_common(collapse_graph *g, int32_t u, int32_t v, double t) {
    rips *r = g->r;
    g->n_common = g->n_later = 0;
    if (g->w) { /* without branches: which side a vertex falls is unpredictable */
        const double *wu = g->w + (size_t)u * r->n, *wv = g->w + (size_t)v * r->n;
        int32_t lo = u < v ? u : v, hi = u < v ? v : u;
        int32_t *common = g->common, *later_v = g->later_v;
        double *later_d = g->later_d;
        size_t nc = 0, nl = 0;
        for (int32_t part = 0, x = 0; part < 3; part++, x++) {
            int32_t end = part == 0 ? lo : part == 1 ? hi : (int32_t)r->n;
            for (; x < end; x++) {
                double f = wu[x] > wv[x] ? wu[x] : wv[x];
                common[nc] = x;
                nc += f <= t;
                later_d[nl] = f;
                later_v[nl] = x;
                nl += (f > t) & (f < INFINITY);
            }
        }
        g->n_common = nc;
        g->n_later = nl;
        return;
    }
    size_t a = r->nb_start[u], ae = r->nb_start[u + 1], b = r->nb_start[v], be = r->nb_start[v + 1];
    while (a < ae && b < be) {
        int32_t x = r->nb[a].v, y = r->nb[b].v;
        if (x > y) {
            a++;
        } else if (y > x) {
            b++;
        } else {
            double f = r->nb[a].d > r->nb[b].d ? r->nb[a].d : r->nb[b].d;
            if (!isinf(f)) {
                if (f <= t) {
                    g->common[g->n_common++] = x;
                } else {
                    g->later_d[g->n_later] = f;
                    g->later_v[g->n_later++] = x;
                }
            }
            a++;
            b++;
        }
    }
}

/* cg_common from the bit rows, at the time of the edge uv being processed. */
static void cg_common_bits(collapse_graph *g, int32_t u, int32_t v) {
    size_t words = g->words, nc = 0, nl = 0;
    const uint64_t *nu = g->now + (size_t)u * words, *nv = g->now + (size_t)v * words;
    const uint64_t *au = g->alive + (size_t)u * words, *av = g->alive + (size_t)v * words;
    for (size_t k = 0; k < words; k++) {
        uint64_t c = nu[k] & nv[k], l = au[k] & av[k] & ~c; /* neither holds u or v */
        g->cbits[k] = c;
        for (; c; c &= c - 1) g->common[nc++] = (int32_t)(k * 64 + (size_t)__builtin_ctzll(c));
        for (; l; l &= l - 1) {
            int32_t x = (int32_t)(k * 64 + (size_t)__builtin_ctzll(l));
            double a = cg_weight(g, u, x), b = cg_weight(g, v, x);
            g->later_d[nl] = a > b ? a : b; /* > t: a processed edge, delayed or later */
            g->later_v[nl++] = x;
        }
    }
    g->n_common = nc;
    g->n_later = nl;
}

/* cg_dominates from the bit rows: a common neighbour outside c's row in `now` is either not a
 * neighbour of c at all or one by a processed edge, whose time is then looked up. */
static int cg_dominates_bits(const collapse_graph *g, int32_t c, double t) {
    const uint64_t *nc = g->now + (size_t)c * g->words, *ac = g->alive + (size_t)c * g->words;
    for (size_t k = 0; k < g->words; k++) {
        uint64_t out = g->cbits[k] & ~nc[k];
        if (k == (size_t)c / 64) out &= ~((uint64_t)1 << (c % 64));
        if (out & ~ac[k]) return 0;
        for (; out; out &= out - 1)
            if (cg_weight(g, c, (int32_t)(k * 64 + (size_t)__builtin_ctzll(out))) > t) return 0;
    }
    return 1;
}

/* 1 when every common neighbour is a neighbour of c at t. */
static int cg_dominates(const collapse_graph *g, int32_t c, double t) {
    for (size_t k = 0; k < g->n_common; k++)
        if (cg_weight(g, c, g->common[k]) > t) return 0;
    return 1;
}

static void cg_later_sift(collapse_graph *g, size_t k) {
    double *d = g->later_d;
    int32_t *v = g->later_v;
    for (;;) {
        size_t s = k, a = 2 * k + 1, b = a + 1;
        if (a < g->n_later && d[a] < d[s]) s = a;
        if (b < g->n_later && d[b] < d[s]) s = b;
        if (s == k) return;
        double td = d[k];
        int32_t tv = v[k];
        d[k] = d[s], v[k] = v[s];
        d[s] = td, v[s] = tv;
        k = s;
    }
}

static void cg_later_pop(collapse_graph *g) {
    g->n_later--;
    g->later_d[0] = g->later_d[g->n_later];
    g->later_v[0] = g->later_v[g->n_later];
    cg_later_sift(g, 0);
}

/* The time edge uv (of time t) is delayed to: t when it is not dominated, +inf when it can be
 * removed. */
static double cg_edge_time(collapse_graph *g, int32_t u, int32_t v, double t) {
    int heaped = 0;
    if (g->now)
        cg_common_bits(g, u, v);
    else
        cg_common(g, u, v, t);
    for (;;) {
        int32_t dom = -1;
        for (size_t k = 0; k < g->n_common && dom < 0; k++) {
            int32_t c = g->common[k];
            if (g->now ? cg_dominates_bits(g, c, t) : cg_dominates(g, c, t)) dom = c;
        }
        if (dom < 0) return t;
        int still = 1;
        while (still) { /* dom dominates until a common neighbour comes that it does not see */
            if (g->n_later == 0) return INFINITY;
            if (!heaped) {
                for (size_t k = g->n_later / 2; k-- > 0;) cg_later_sift(g, k);
                heaped = 1;
            }
            t = g->later_d[0];
            while (g->n_later > 0 && g->later_d[0] <= t) {
                int32_t x = g->later_v[0];
                if (cg_weight(g, dom, x) > t) still = 0;
                g->common[g->n_common++] = x;
                if (g->now) g->cbits[x / 64] |= (uint64_t)1 << (x % 64);
                cg_later_pop(g);
            }
        }
    }
}

/* Collapses the edges within the threshold (r->opt->collapse_edges) and leaves r on neighbour
 * lists of those left, with their delayed times. 0 when out of memory. */
static int collapse_edges(rips *r) {
    size_t n = r->n, m = 0;
    collapse_graph g = {r, NULL, NULL, 0, NULL, NULL, 0, (n + 63) / 64, NULL, NULL, NULL};
    phase_clock t_phase = phase_start();
    if (!r->sparse) { /* the weights to change are the dense engine's rows */
        g.w = r->full;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < n; j++) {
                double *d = &g.w[i * n + j];
                if (i != j && *d > r->threshold) *d = INFINITY;
                m += j < i && !isinf(*d);
            }
    } else {
        m = r->nb_start[n] / 2;
    }
    entry *edges = malloc((m ? m : 1) * sizeof *edges);
    g.common = malloc(n * sizeof *g.common);
    g.later_v = malloc(n * sizeof *g.later_v);
    g.later_d = malloc(n * sizeof *g.later_d);
    size_t *start = malloc((n + 1) * sizeof *start);
    if (!edges || !g.common || !g.later_v || !g.later_d || !start) {
        set_oom(r);
        goto done;
    }
    size_t k = 0;
    for (size_t i = 1; i < n; i++) {
        if (g.w) {
            for (size_t j = 0; j < i; j++)
                if (!isinf(g.w[i * n + j]))
                    edges[k++] = make_entry(r, g.w[i * n + j], (int64_t)lower_index(i, j), 1);
        } else {
            for (size_t t = r->nb_start[i]; t < r->nb_start[i + 1]; t++)
                if ((size_t)r->nb[t].v < i)
                    edges[k++] = make_entry(r, r->nb[t].d, (int64_t)lower_index(i, r->nb[t].v), 1);
        }
    }
    sort_columns(r, edges, m); /* the latest first */
    /* ATS_RIPS_COLLAPSE_BITS=0 takes the path of larger n, to test it */
    const char *bits_env = getenv("ATS_RIPS_COLLAPSE_BITS");
    if (n <= COLLAPSE_BITS_MAX && !(bits_env && !strcmp(bits_env, "0"))) {
        g.now = calloc(n * g.words, sizeof *g.now);
        g.alive = calloc(n * g.words, sizeof *g.alive);
        g.cbits = malloc(g.words * sizeof *g.cbits);
        if (!g.now || !g.alive || !g.cbits) {
            set_oom(r);
            goto done;
        }
        for (size_t e = 0; e < m; e++) {
            int32_t v[2];
            simplex_vertices(r, e_index(r, edges[e]), 1, v);
            bits_set(g.now, g.words, v[0], v[1], 1);
            bits_set(g.alive, g.words, v[0], v[1], 1);
        }
    }
    /* edges [group, e) have the time of the edges before e: their bits leave `now` when the
       time goes down (those delayed or removed left it already) */
    size_t group = 0;
    for (size_t e = 0; e < m && !cancel_poll(r); e++) {
        int32_t v[2];
        if (g.now && edges[e].diam < edges[group].diam)
            for (; group < e; group++) {
                simplex_vertices(r, e_index(r, edges[group]), 1, v);
                bits_set(g.now, g.words, v[0], v[1], 0);
            }
        simplex_vertices(r, e_index(r, edges[e]), 1, v);
        double t = cg_edge_time(&g, v[0], v[1], edges[e].diam);
        if (t != edges[e].diam) {
            cg_set(&g, v[0], v[1], t);
            if (g.now) bits_set(g.now, g.words, v[0], v[1], 0);
            if (g.now && isinf(t)) bits_set(g.alive, g.words, v[0], v[1], 0);
        }
    }
    if (oom_seen(r)) goto done;
    /* neighbour lists of the edges left, vertices descending */
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        start[i] = total;
        if (g.w) {
            for (size_t j = 0; j < n; j++) total += j != i && !isinf(g.w[i * n + j]);
        } else {
            for (size_t t = r->nb_start[i]; t < r->nb_start[i + 1]; t++)
                total += !isinf(r->nb[t].d);
        }
    }
    start[n] = total;
    neighbor *nb = malloc((total ? total : 1) * sizeof *nb);
    if (!nb) {
        set_oom(r);
        goto done;
    }
    for (size_t i = 0, t = 0; i < n; i++) {
        if (g.w) {
            for (size_t j = n; j-- > 0;)
                if (j != i && !isinf(g.w[i * n + j]))
                    nb[t++] = (neighbor){(int32_t)j, g.w[i * n + j]};
        } else {
            for (size_t q = r->nb_start[i]; q < r->nb_start[i + 1]; q++)
                if (!isinf(r->nb[q].d)) nb[t++] = r->nb[q];
        }
    }
    free(r->nb);
    free(r->nb_start);
    free(r->full);
    r->nb = nb;
    r->nb_start = start;
    start = NULL;
    r->full = NULL;
    r->lower = NULL;
    r->sparse = 1;
done:
    free(edges);
    free(g.common);
    free(g.later_v);
    free(g.later_d);
    free(g.now);
    free(g.alive);
    free(g.cbits);
    free(start);
    phase_mark(r, ATS_RIPS_PHASE_SETUP, &t_phase);
    return !oom_seen(r);
}

/* H0, the reductions of every dimension and the cycles, then the result; frees r. */
static ats_status rips_reduce(rips *r, ats_rips_result *out, ats_error *err) {
    const ats_rips_options *opt = r->opt;
    size_t n = r->n;
    entry_vec simplices = {NULL, 0, 0}, columns = {NULL, 0, 0};
    int ok = !(opt->collapse_edges && r->dim_max >= 1) || collapse_edges(r);
    if (ok && r->sparse)
        compute_dim0(r, &simplices, &columns);
    else if (ok)
        compute_dim0_dense(r, &simplices, &columns);
    if (r->dim_max < 2) { /* the edges are only needed to enumerate triangles */
        free(simplices.a);
        simplices = (entry_vec){NULL, 0, 0};
    }
    for (int dim = 1; dim <= r->dim_max && !r->oom; dim++) {
        pivot_map pivots;
        if (!pivot_map_init(&pivots, columns.len)) {
            r->oom = 1;
            break;
        }
        compute_pairs(r, &columns, &pivots, dim);
        if (dim < r->dim_max) assemble_columns(r, &simplices, &columns, &pivots, dim);
        free(pivots.slots);
    }
    free(simplices.a);
    free(columns.a);
    if (r->want_cycles && r->dim_max >= 1 && !r->oom) compute_cycles(r);
    if (r->cancelled) {
        rips_free(r);
        return cancelled_error(n, opt, err);
    }
    if (r->over_limit) {
        rips_free(r);
        return ats_error_set(err, ATS_ERR_RANGE,
                             "rips: %zu points to dimension %d with threshold %g: with the "
                             "columns of dimension %d it would need about %.3g GB (projected from "
                             "the part enumerated), more than the %.3g GB allowed; lower "
                             "--threshold or --dim, or raise --memory-limit",
                             n, opt->max_dim, r->threshold, r->over_dim, r->over_projected / 1e9,
                             r->memory_limit / 1e9);
    }
    if (r->oom) {
        rips_free(r);
        return ats_error_set(err, ATS_ERR_NOMEM, "rips: out of memory");
    }
    memcpy(out->phase_cpu_seconds, r->phase_cpu, sizeof r->phase_cpu);
    memcpy(out->phase_wall_seconds, r->phase_wall, sizeof r->phase_wall);
    for (int k = 0; k <= opt->max_dim; k++) {
        pair_vec *p = &r->out[k];
        out->dims[k].count = p->len;
        out->dims[k].pairs = p->pairs;
        out->birth_simplex[k] = p->birth;
        out->death_simplex[k] = p->death;
        out->cocycles[k] = p->reps;
        if (k == 1) {
            out->cycles = r->cycles;
            r->cycles = NULL;
        }
        memset(p, 0, sizeof *p);
    }
    rips_free(r);
    return ATS_OK;
}

ats_status ats_rips_compute(size_t n, const double *lower, const ats_rips_options *opt_in,
                            ats_rips_result *out, ats_error *err) {
    ats_rips_options defaults;
    const ats_rips_options *opt = opt_in;
    ats_status st = rips_begin(n, &opt, &defaults, out, err);
    if (st) return st;
    phase_clock t_start = phase_start();
    rips r;
    rips_init(&r, n, opt);
    r.lower = lower;

    /* One pass over the triangle, its rows shared among the threads: the first row with a
       distance that is not a finite number >= 0 (the error then names it as
       ats_metric_check does), the range of the distances, and each point's largest distance,
       whose minimum is the enclosing radius (beyond it the complex is a cone, so nothing
       changes). */
    size_t m = n * (n - 1) / 2, num_edges = 0, bad_row = n;
    double lo = INFINITY, hi = 0.0, enclosing = INFINITY;
    int nt = r.threads;
    double *radius = calloc((size_t)nt * n, sizeof *radius); /* [nt][n] */
    if (!radius) return ats_error_set(err, ATS_ERR_NOMEM, "rips: out of memory for %zu points", n);
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        double *rad = radius + (size_t)tid * n, tlo = INFINITY, thi = 0.0;
        size_t tbad = n;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 64)
#endif
        for (size_t i = 1; i < n; i++) {
            const double *row = lower + lower_index(i, 0);
            double ri = 0.0;
            int bad = 0;
            for (size_t j = 0; j < i; j++) {
                double d = row[j];
                bad |= !(d >= 0.0) || isinf(d);
                tlo = d < tlo ? d : tlo;
                ri = d > ri ? d : ri;
                rad[j] = d > rad[j] ? d : rad[j];
            }
            rad[i] = ri > rad[i] ? ri : rad[i];
            if (bad && i < tbad) tbad = i;
            thi = ri > thi ? ri : thi;
        }
#ifdef _OPENMP
#pragma omp critical(ats_rips_range)
#endif
        {
            lo = tlo < lo ? tlo : lo;
            hi = thi > hi ? thi : hi;
            bad_row = tbad < bad_row ? tbad : bad_row;
        }
    }
    if (bad_row < n) {
        free(radius);
        return ats_metric_check(n, lower, NULL, err); /* names the first bad entry */
    }
    if (m == 0) lo = 0.0;
    for (size_t i = 0; i < n; i++) {
        double ri = 0.0;
        for (int t = 0; t < nt; t++)
            ri = radius[(size_t)t * n + i] > ri ? radius[(size_t)t * n + i] : ri;
        enclosing = ri < enclosing ? ri : enclosing;
    }
    free(radius);
    r.threshold = isinf(opt->threshold) ? enclosing : opt->threshold;
    double thr = r.threshold;
#ifdef _OPENMP
#pragma omp parallel for reduction(+ : num_edges) num_threads(nt) if (nt > 1)
#endif
    for (size_t t = 0; t < m; t++) num_edges += lower[t] <= thr;
    /* Neighbour lists pay off when most pairs are beyond the threshold. */
    r.sparse = num_edges < m / 4;
    if ((st = rips_memory_admit(&r, m, num_edges, 1, err))) return st;

    out->max_dim = opt->max_dim;
    out->n_points = n;
    out->threshold = r.threshold;
    out->min_value = lo;
    out->max_value = hi;

    if ((st = rips_tables(&r, err))) {
        rips_free(&r);
        return st;
    }
    if (!r.sparse) {
        size_t cells;
        if (!ats_size_mul(n, n, &cells) || !ats_size_mul(cells, sizeof(double), &cells) ||
            !(r.full = malloc(cells))) {
            rips_free(&r);
            return ats_error_set(err, ATS_ERR_NOMEM, "rips: out of memory for %zu points", n);
        }
        /* in tiles of 64 rows: row i's lower part is contiguous in the triangle, and its mirror
           image (column i) is written within the tile's rows, which stay in cache */
        size_t tiles = (n + 63) / 64;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)
#endif
        for (size_t b = 0; b < tiles; b++) {
            size_t i0 = b * 64, i1 = i0 + 64 < n ? i0 + 64 : n;
            for (size_t j0 = 0; j0 < i1; j0 += 64) {
                size_t j1 = j0 + 64 < n ? j0 + 64 : n;
                for (size_t i = i0; i < i1; i++) {
                    const double *row = lower + lower_index(i, 0);
                    for (size_t j = j0; j < j1 && j < i; j++) r.full[j * n + i] = row[j];
                }
            }
            for (size_t i = i0; i < i1; i++) {
                const double *row = lower + lower_index(i, 0);
                memcpy(r.full + i * n, row, i * sizeof *row);
                r.full[i * n + i] = 0.0;
            }
        }
    }
    if (r.sparse) {
        r.nb_start = malloc((n + 1) * sizeof *r.nb_start);
        size_t total;
        if (!r.nb_start || !ats_size_mul(num_edges, 2, &total) ||
            !(r.nb = malloc((total ? total : 1) * sizeof *r.nb))) {
            rips_free(&r);
            return ats_error_set(err, ATS_ERR_NOMEM, "rips: out of memory for neighbour lists");
        }
        /* each vertex's count, their running sum, then the lists: every row on its own */
        r.nb_start[0] = 0;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 16) num_threads(nt) if (nt > 1)
#endif
        for (size_t i = 0; i < n; i++) {
            size_t c = 0;
            for (size_t j = 0; j < n; j++) c += j != i && dist(&r, (int64_t)i, (int64_t)j) <= thr;
            r.nb_start[i + 1] = c;
        }
        for (size_t i = 0; i < n; i++) r.nb_start[i + 1] += r.nb_start[i];
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 16) num_threads(nt) if (nt > 1)
#endif
        for (size_t i = 0; i < n; i++) {
            size_t t = r.nb_start[i];
            for (size_t j = n; j-- > 0;) {
                if (j == i) continue;
                double d = dist(&r, (int64_t)i, (int64_t)j);
                if (d <= thr) r.nb[t++] = (neighbor){(int32_t)j, d};
            }
        }
    }
    phase_mark(&r, ATS_RIPS_PHASE_SETUP, &t_start);
    return rips_reduce(&r, out, err);
}

/* ---- a metric streamed row by row (ats_rips_compute_rows)
 *
 * Every pass reads the rows on every thread at once (the row function allows that, rips.h),
 * each into a buffer of its own or straight into the dense engine's rows. Errors are those of
 * one thread reading in order: the first failure in row order is kept (row_fail). */

typedef struct row_reader {
    size_t n;
    ats_metric_row_fn fn;
    void *ctx;
    const char *name;
} row_reader;

/* Row i, x, checked as ats_metric_from_full checks it (0 on the diagonal, finite and >= 0
 * elsewhere). */
static ats_status check_row(const row_reader *rr, size_t i, const double *x, ats_error *err) {
    if (x[i] != 0.0)
        return ats_error_set(err, ATS_ERR_INVALID,
                             "%s: row %zu, column %zu: diagonal entry %g is not 0", rr->name, i + 1,
                             i + 1, x[i]);
    for (size_t j = 0; j < rr->n; j++)
        if (!(x[j] >= 0.0) || isinf(x[j]))
            return ats_error_set(err, ATS_ERR_INVALID,
                                 "%s: row %zu, column %zu: distance %g is not a finite "
                                 "non-negative number",
                                 rr->name, i + 1, j + 1, x[j]);
    return ATS_OK;
}

/* ats_metric_from_full's tolerance for a symmetric matrix. */
static int asymmetric(double lower_value, double upper_value) {
    double scale = fabs(lower_value) > 1.0 ? fabs(lower_value) : 1.0;
    return fabs(lower_value - upper_value) > 1e-12 * scale;
}

static ats_status asymmetry_error(const row_reader *rr, size_t i, size_t j, double a, double b,
                                  ats_error *err) {
    return ats_error_set(err, ATS_ERR_INVALID,
                         "%s: row %zu, column %zu: matrix is not symmetric (%.17g vs %.17g at row "
                         "%zu, column %zu); use --symmetrize",
                         rr->name, i + 1, j + 1, a, b, j + 1, i + 1);
}

/* The first failure of a pass in the order one thread would meet them (key: a position in
 * that order). Work after it is skipped and all before it runs, so it is the first whatever
 * the order the threads take the work in. */
typedef struct row_fail {
    size_t key; /* atomic; SIZE_MAX: none */
    ats_status st;
    ats_error err;
} row_fail;

static int row_fail_passed(row_fail *f, size_t key) {
    return key > __atomic_load_n(&f->key, __ATOMIC_RELAXED);
}

static void row_fail_note(row_fail *f, size_t key, ats_status st, const ats_error *err) {
#ifdef _OPENMP
#pragma omp critical(ats_rips_row_fail)
#endif
    if (key < f->key) {
        __atomic_store_n(&f->key, key, __ATOMIC_RELAXED);
        f->st = st;
        f->err = *err;
    }
}

/* The status after a pass: cancelled, the first failure, or ATS_OK. */
static ats_status row_fail_status(rips *r, const row_fail *f, ats_error *err) {
    if (r->cancelled) return cancelled_error(r->n, r->opt, err);
    if (f->key == SIZE_MAX) return ATS_OK;
    *err = f->err;
    return f->st;
}

/* Maps the pages within [p, p + bytes) for writing in one call (Linux 5.14+), where touching
 * them would take a fault a page; elsewhere, or refused, the faults happen as before. */
static void prefault_write(void *p, size_t bytes) {
#ifdef MADV_POPULATE_WRITE
    uintptr_t a = ((uintptr_t)p + 4095) & ~(uintptr_t)4095,
              b = ((uintptr_t)p + bytes) & ~(uintptr_t)4095;
    if (b > a) (void)madvise((void *)a, b - a, MADV_POPULATE_WRITE);
#else
    (void)p;
    (void)bytes;
#endif
}

/* A pass over the rows on every thread: row i is read into a buffer of the thread's, or into
 * into + i·n when into is given, and handed to visit(ctx, tid, i, row, spare, key, err), where
 * spare is a second row buffer of the thread's and *key (i·n on entry) says where in one
 * thread's order an error it returns was met. The first failure in that order is returned. */
typedef ats_status (*row_visit_fn)(void *ctx, int tid, size_t i, double *row, double *spare,
                                   size_t *key, ats_error *err);

static ats_status rows_each(rips *r, const row_reader *rr, double *into, row_visit_fn visit,
                            void *ctx, ats_error *err) {
    size_t n = r->n;
    int nt = r->threads;
    double *bufs = malloc((size_t)nt * 2 * n * sizeof *bufs); /* [nt][2][n] */
    if (!bufs) return ats_error_set(err, ATS_ERR_NOMEM, "rips: out of memory for %zu points", n);
    row_fail fail = {SIZE_MAX, ATS_OK, {0}};
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        double *buf = bufs + (size_t)tid * 2 * n, *spare = buf + n;
        ats_error terr;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 8)
#endif
        for (size_t i = 0; i < n; i++) {
            size_t key = i * n;
            if (cancel_poll(r) || row_fail_passed(&fail, key)) continue;
            double *x = into ? into + i * n : buf;
            if (into && i % 8 == 0) /* the pages of this thread's 8 rows, in one call */
                prefault_write(x, (n - i < 8 ? n - i : 8) * n * sizeof *x);
            ats_status st = rr->fn(rr->ctx, i, x, &terr);
            if (!st) st = visit(ctx, tid, i, x, spare, &key, &terr);
            if (st) row_fail_note(&fail, key, st, &terr);
        }
    }
    free(bufs);
    return row_fail_status(r, &fail, err);
}

/* What a scan of the rows finds in the lower triangle (the distances the engine uses). */
typedef struct row_scan {
    double lo, hi;    /* the range */
    double enclosing; /* the smallest over the points of their largest distance */
    size_t num_edges; /* entries within the threshold */
    size_t *low, *up; /* [n]: of them, in row i (columns j < i) and in column j (rows i > j) */
} row_scan;

typedef struct scan_pass {
    const row_reader *rr;
    size_t n;
    double thr;
    size_t *low;     /* [n], or NULL: no counts */
    double *radius;  /* [nt][n] */
    size_t *ups;     /* [nt][n] */
    double *lo, *hi; /* [nt] */
} scan_pass;

static ats_status scan_row(void *ctx, int tid, size_t i, double *x, double *spare, size_t *key,
                           ats_error *err) {
    (void)spare;
    (void)key;
    scan_pass *p = ctx;
    size_t n = p->n;
    ats_status st = check_row(p->rr, i, x, err);
    if (st) return st;
    double *rad = p->radius + (size_t)tid * n, ri = 0.0, lo = p->lo[tid];
    size_t *up = p->low ? p->ups + (size_t)tid * n : NULL, c = 0;
    for (size_t j = 0; j < i; j++) {
        double d = x[j];
        lo = d < lo ? d : lo;
        ri = d > ri ? d : ri;
        rad[j] = d > rad[j] ? d : rad[j];
        if (up && d <= p->thr) {
            c++;
            up[j]++;
        }
    }
    if (up) p->low[i] = c;
    rad[i] = ri > rad[i] ? ri : rad[i];
    p->lo[tid] = lo;
    p->hi[tid] = ri > p->hi[tid] ? ri : p->hi[tid];
    return ATS_OK;
}

/* Reads every row, checked (check_row), into into + i·n when into is given (the dense engine's
 * rows) or else a buffer per thread, and fills s (low and up when given, [n] each) for
 * threshold thr. */
static ats_status rows_scan(rips *r, const row_reader *rr, double *into, double thr, row_scan *s,
                            ats_error *err) {
    size_t n = r->n, m = n * (n - 1) / 2, nt = (size_t)r->threads;
    scan_pass p = {rr,
                   n,
                   thr,
                   s->low,
                   calloc(nt * n, sizeof(double)),
                   s->low ? calloc(nt * n, sizeof(size_t)) : NULL,
                   malloc(nt * sizeof(double)),
                   calloc(nt, sizeof(double))};
    ats_status st = ATS_OK;
    if (!p.radius || (s->low && !p.ups) || !p.lo || !p.hi) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "rips: out of memory for %zu points", n);
        goto done;
    }
    for (size_t t = 0; t < nt; t++) p.lo[t] = INFINITY;
    if ((st = rows_each(r, rr, into, scan_row, &p, err))) goto done;
    s->lo = m ? INFINITY : 0.0;
    s->hi = 0.0;
    s->enclosing = INFINITY;
    s->num_edges = 0;
    for (size_t t = 0; t < nt; t++) {
        s->lo = m && p.lo[t] < s->lo ? p.lo[t] : s->lo;
        s->hi = p.hi[t] > s->hi ? p.hi[t] : s->hi;
    }
    for (size_t i = 0; i < n; i++) {
        double ri = 0.0;
        size_t c = 0;
        for (size_t t = 0; t < nt; t++) {
            ri = p.radius[t * n + i] > ri ? p.radius[t * n + i] : ri;
            if (s->low) c += p.ups[t * n + i];
        }
        s->enclosing = ri < s->enclosing ? ri : s->enclosing;
        if (s->low) {
            s->up[i] = c;
            s->num_edges += s->low[i];
        }
    }
done:
    free(p.radius);
    free(p.ups);
    free(p.lo);
    free(p.hi);
    return st;
}

/* The dense engine straight from the rows: they are read into the [n][n] array the engine
 * works on (no triangle in between), with the range and the enclosing radius; then, in tiles
 * of 64 × 64 that stay in cache, every upper entry is compared with its lower mirror
 * (ats_metric_from_full's tolerance) and replaced by it, so the engine sees the distances of
 * the lower triangle, as ats_rips_compute on ats_metric_from_full's triangle does. thr: a
 * threshold keeping a quarter of the edges or more, or INFINITY for the enclosing radius; when
 * that keeps fewer, *ready stays 0 and nothing is kept (neighbour lists pay off); else *ready is
 * 1 and r is ready for rips_reduce. */
static ats_status rows_full(rips *r, const row_reader *rr, double thr, ats_rips_result *out,
                            int *ready, ats_error *err) {
    size_t n = r->n, m = n * (n - 1) / 2, cells;
    int nt = r->threads;
    *ready = 0;
    if (!ats_size_mul(n, n, &cells) || !ats_size_mul(cells, sizeof(double), &cells))
        return ats_error_set(err, ATS_ERR_RANGE, "rips: %zu points overflow the distance rows", n);
    double *full = malloc(cells);
    if (!full) return ats_error_set(err, ATS_ERR_NOMEM, "rips: out of memory for %zu points", n);
    row_scan scan = {0};
    ats_status st = rows_scan(r, rr, full, INFINITY, &scan, err);
    if (st) {
        free(full);
        return st;
    }
    r->threshold = isinf(thr) ? scan.enclosing : thr;
    /* the tiles (a, b), b <= a, of the lower triangle, a thread a tile row: (a, b) is read and
       written to (b, a) only, so threads never touch the same cell */
    size_t tiles = (n + 63) / 64, num_edges = 0;
    double t_thr = r->threshold;
    row_fail fail = {SIZE_MAX, ATS_OK, {0}};
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 1) reduction(+ : num_edges) num_threads(nt) if (nt > 1)
#endif
    for (size_t ta = 0; ta < tiles; ta++) {
        size_t a0 = ta * 64, a1 = a0 + 64 < n ? a0 + 64 : n;
        for (size_t b0 = 0; b0 <= a0; b0 += 64)
            for (size_t a = a0; a < a1; a++) {
                double *lower_row = full + a * n;
                size_t b1 = b0 + 64 < a ? b0 + 64 : a;
                for (size_t b = b0; b < b1; b++) {
                    double l = lower_row[b], *u = full + b * n + a;
                    num_edges += l <= t_thr;
                    /* in one thread's order: row b's upper part, column a ascending */
                    if (asymmetric(l, *u) && !row_fail_passed(&fail, b * n + a)) {
                        ats_error terr;
                        ats_status bad = asymmetry_error(rr, a, b, l, *u, &terr);
                        row_fail_note(&fail, b * n + a, bad, &terr);
                    }
                    *u = l;
                }
            }
    }
    if ((st = row_fail_status(r, &fail, err)) || (isinf(thr) && num_edges < m / 4)) {
        free(full);
        return st;
    }
    r->full = full; /* rips_free frees it from here on */
    r->sparse = 0;
    if ((st = rips_memory_admit(r, m, num_edges, 0, err))) return st;
    if ((st = rips_tables(r, err))) return st;
    out->max_dim = r->opt->max_dim;
    out->n_points = n;
    out->threshold = r->threshold;
    out->min_value = scan.lo;
    out->max_value = scan.hi;
    *ready = 1;
    return ATS_OK;
}

/* Sorts a[0..len) by vertex descending (the order of a neighbour list): insertion, as the
 * lists come nearly sorted (one thread: sorted), so it costs about one pass. */
static void neighbors_sort(neighbor *a, size_t len) {
    for (size_t k = 1; k < len; k++) {
        neighbor x = a[k];
        size_t t = k;
        for (; t > 0 && a[t - 1].v < x.v; t--) a[t] = a[t - 1];
        a[t] = x;
    }
}

/* The neighbour lists within r->threshold, from the counts of a scan: vertex i's list,
 * descending, is its neighbours above it, then those below it (its own row's lower part, read
 * from column i-1 down). The rows fill their own lower parts and add themselves to the upper
 * parts of their neighbours below, from the part's end, in the order the threads come, which
 * is nearly ascending; each upper part is then put in order. */
typedef struct neighbors_pass {
    rips *r;
    const row_scan *s;
    size_t *fill; /* [n] atomic: entries so far of j's upper part */
} neighbors_pass;

static ats_status neighbors_row(void *ctx, int tid, size_t i, double *x, double *spare, size_t *key,
                                ats_error *err) {
    (void)tid;
    (void)spare;
    (void)key;
    (void)err;
    neighbors_pass *p = ctx;
    rips *r = p->r;
    size_t t = r->nb_start[i] + p->s->up[i];
    for (size_t j = i; j-- > 0;) {
        double d = x[j];
        if (d > r->threshold) continue;
        r->nb[t++] = (neighbor){(int32_t)j, d};
        size_t at = __atomic_fetch_add(&p->fill[j], 1, __ATOMIC_RELAXED);
        r->nb[r->nb_start[j] + p->s->up[j] - 1 - at] = (neighbor){(int32_t)i, d};
    }
    return ATS_OK;
}

static ats_status rows_neighbors(rips *r, const row_reader *rr, const row_scan *s, ats_error *err) {
    size_t n = r->n, total;
    r->nb_start = malloc((n + 1) * sizeof *r->nb_start);
    neighbors_pass p = {r, s, calloc(n ? n : 1, sizeof(size_t))};
    if (!r->nb_start || !p.fill || !ats_size_mul(s->num_edges, 2, &total) ||
        !(r->nb = malloc((total ? total : 1) * sizeof *r->nb))) {
        free(p.fill);
        return ats_error_set(err, ATS_ERR_NOMEM, "rips: out of memory for neighbour lists");
    }
    r->nb_start[0] = 0;
    for (size_t i = 0; i < n; i++) r->nb_start[i + 1] = r->nb_start[i] + s->up[i] + s->low[i];
    ats_status st = rows_each(r, rr, NULL, neighbors_row, &p, err);
    free(p.fill);
    if (st) return st;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, 64) num_threads(r->threads) if (r->threads > 1)
#endif
    for (size_t j = 0; j < n; j++) neighbors_sort(r->nb + r->nb_start[j], s->up[j]);
    return ATS_OK;
}

/* The upper part of each row against the lower entries kept. A pair beyond the threshold is
 * not used and not compared: the result is that of the lower triangle. In one thread's order,
 * row i's entries are met from column n-1 down. */
typedef struct upper_pass {
    rips *r;
    const row_reader *rr;
} upper_pass;

static ats_status upper_row(void *ctx, int tid, size_t i, double *x, double *y, size_t *key,
                            ats_error *err) {
    (void)tid;
    upper_pass *p = ctx;
    rips *r = p->r;
    size_t n = r->n, t = r->nb_start[i], end = r->nb_start[i + 1];
    double thr = r->threshold;
    for (size_t j = n; j-- > i + 1;) {
        double a = x[j];
        ats_status st = ATS_OK;
        if (t < end && (size_t)r->nb[t].v == j) {
            if (asymmetric(r->nb[t].d, a)) st = asymmetry_error(p->rr, j, i, r->nb[t].d, a, err);
            t++;
        } else if (a <= thr && asymmetric(thr, a)) {
            /* d(j, i) > threshold >= a, by more than the tolerance: read it to say */
            if (!(st = p->rr->fn(p->rr->ctx, j, y, err)) && asymmetric(y[i], a))
                st = asymmetry_error(p->rr, j, i, y[i], a, err);
        }
        if (st) {
            *key = i * n + (n - 1 - j);
            return st;
        }
    }
    return ATS_OK;
}

ats_status ats_rips_compute_rows(size_t n, ats_metric_row_fn row, void *ctx, const char *name,
                                 const ats_rips_options *opt_in, ats_rips_result *out,
                                 ats_error *err) {
    ats_rips_options defaults;
    const ats_rips_options *opt = opt_in;
    ats_status st = rips_begin(n, &opt, &defaults, out, err);
    if (st) return st;
    phase_clock t_start = phase_start();
    row_reader rr = {n, row, ctx, name ? name : "distance matrix"};
    row_scan scan = {0};
    scan.low = malloc(n * sizeof *scan.low);
    scan.up = malloc(n * sizeof *scan.up);
    rips r;
    rips_init(&r, n, opt);
    size_t m = n * (n - 1) / 2;
    int ready = 0;
    if (!scan.low || !scan.up) {
        st = ats_error_set(err, ATS_ERR_NOMEM, "rips: out of memory for %zu points", n);
        goto done;
    }
    /* Without a threshold (the enclosing radius) the dense engine usually runs: the rows go
       straight into its array (rows_full) when that fits the memory limit. Only if the
       enclosing radius keeps fewer than a quarter of the edges do the passes below build
       neighbour lists instead. */
    double thr = opt->threshold;
    if (isinf(thr) && rips_memory_estimate(n, 0, m, 0, r.dim_max) <= r.memory_limit) {
        if ((st = rows_full(&r, &rr, INFINITY, out, &ready, err))) goto done;
        if (ready) goto reduce;
        thr = r.threshold; /* the enclosing radius, which rows_full found */
    }
    /* The edges within the threshold; without one, the enclosing radius first. */
    if (isinf(thr)) {
        row_scan range = {0};
        if ((st = rows_scan(&r, &rr, NULL, INFINITY, &range, err))) goto done;
        thr = range.enclosing;
    }
    if ((st = rows_scan(&r, &rr, NULL, thr, &scan, err))) goto done;
    r.threshold = thr;
    r.sparse = scan.num_edges < m / 4;
    if ((st = rips_memory_admit(&r, m, scan.num_edges, 0, err))) goto done;
    if (!r.sparse) { /* as many edges as the dense engine's rows: it runs on them */
        if ((st = rows_full(&r, &rr, r.threshold, out, &ready, err))) goto done;
        goto reduce;
    }
    if ((st = rips_tables(&r, err)) || (st = rows_neighbors(&r, &rr, &scan, err)) ||
        (st = rows_each(&r, &rr, NULL, upper_row, &(upper_pass){&r, &rr}, err)))
        goto done;
    out->max_dim = opt->max_dim;
    out->n_points = n;
    out->threshold = r.threshold;
    out->min_value = scan.lo;
    out->max_value = scan.hi;
reduce:
    free(scan.low);
    free(scan.up);
    phase_mark(&r, ATS_RIPS_PHASE_SETUP, &t_start);
    return rips_reduce(&r, out, err);
done:
    rips_free(&r);
    free(scan.low);
    free(scan.up);
    return st;
}

ats_status ats_rips_compute_batch(size_t count, const size_t *ns, const double *const *lowers,
                                  const ats_rips_options *opt, int n_threads, ats_rips_result *outs,
                                  ats_error *errs) {
    ats_status first = ATS_OK;
    size_t first_at = count;
    /* one problem: all threads on it; several: one thread each */
    ats_rips_options one;
    if (opt)
        one = *opt;
    else
        ats_rips_options_init(&one);
    one.n_threads = count == 1 ? n_threads : 1;
    if (count == 1) {
        /* not inside a parallel region: the problem's own regions would be nested, and run on
           one thread */
        ats_error local, *e = errs ? &errs[0] : &local;
        ats_error_clear(e);
        return ats_rips_compute(ns[0], lowers[0], &one, &outs[0], e);
    }
#ifdef _OPENMP
    int threads = n_threads > 0 ? n_threads : omp_get_num_procs();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
#endif
    for (size_t i = 0; i < count; i++) {
        ats_error local, *e = errs ? &errs[i] : &local;
        ats_error_clear(e); /* a problem that succeeds reports ATS_OK */
        ats_status st = ats_rips_compute(ns[i], lowers[i], &one, &outs[i], e);
        if (st) {
#ifdef _OPENMP
#pragma omp critical(ats_rips_batch)
#endif
            {
                if (i < first_at) {
                    first_at = i;
                    first = st;
                }
            }
        }
    }
    (void)n_threads;
    return first;
}

ats_status ats_rips_clusters(size_t n, const double *lower, double scale, int32_t *labels,
                             size_t *n_clusters, ats_error *err) {
    if (isnan(scale)) return ats_error_set(err, ATS_ERR_INVALID, "clusters: scale is NaN");
    int64_t *parent = malloc((n ? n : 1) * sizeof *parent);
    if (!parent) return ats_error_set(err, ATS_ERR_NOMEM, "clusters: out of memory");
    for (size_t i = 0; i < n; i++) parent[i] = (int64_t)i;
    for (size_t i = 1; i < n; i++)
        for (size_t j = 0; j < i; j++)
            if (lower[lower_index(i, j)] <= scale) {
                int64_t a = uf_find(parent, (int64_t)i), b = uf_find(parent, (int64_t)j);
                if (a != b) parent[a > b ? a : b] = a < b ? a : b;
            }
    size_t c = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t root = uf_find(parent, (int64_t)i);
        labels[i] = (root == (int64_t)i) ? (int32_t)c++ : labels[root];
    }
    free(parent);
    *n_clusters = c;
    return ATS_OK;
}
