/* Exact bottleneck distance between persistence diagrams.
 *
 * The finite points of A (n) and B (m) form a bipartite graph on N = n + m vertices a side:
 * left = A + projections of B, right = B + projections of A. At a radius r, A_i--B_j is an edge
 * when their L-infinity distance is <= r, A_i--proj(A_i) and proj(B_j)--B_j when the point's
 * distance to the diagonal is <= r, and every projection is joined to every projection (cost 0).
 * The distance is the smallest r with a perfect matching. Such an r is one of the candidate
 * values (pairwise distances, distances to the diagonal), so the search first bisects the real
 * line until few candidates remain between a known infeasible and a known feasible radius
 * (a sample of A estimates the count first), then binary-searches those candidates, which are
 * enumerated from strips of B sorted by each coordinate.
 *
 * Each feasibility test is Hopcroft–Karp without an edge list: the breadth-first search takes
 * the unvisited B points within r of a vertex out of a k-d tree with deletion (every right
 * vertex is discovered once a phase), the projections of A sit in a set that any projection of
 * B empties at once, and the depth-first search uses one such tree per BFS layer. A test starts
 * from the matching of the previous test, minus the edges longer than r. */
#include "diagram_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define BN_INF INT32_MAX

/* ---- 2-d tree over points with deletion: per node, the points of its range not taken yet */

typedef struct kd_tree {
    dg_kd_tree kd;       /* points, boxes, positions by id */
    int32_t *size;       /* [n] points in the node's range */
    int32_t *alive;      /* [n] points of the range not taken yet */
    unsigned char *dead; /* [n] this position's point was taken */
} kd_tree;

/* Builds the tree over pt[lo, hi) with every point alive. */
static void kd_build(kd_tree *t, size_t lo, size_t hi) {
    dg_kd_build(&t->kd, lo, hi, t->size);
    memcpy(t->alive + lo, t->size + lo, (hi - lo) * sizeof(int32_t));
    memset(t->dead + lo, 0, hi - lo);
}

static void kd_reset(kd_tree *t) {
    if (!t->kd.n) return;
    memcpy(t->alive, t->size, t->kd.n * sizeof(int32_t));
    memset(t->dead, 0, t->kd.n);
}

static void kd_free(kd_tree *t) {
    dg_kd_free(&t->kd);
    free(t->size);
    free(t->alive);
    free(t->dead);
    memset(t, 0, sizeof *t);
}

static int kd_alloc(kd_tree *t, size_t n) {
    memset(t, 0, sizeof *t);
    size_t nn = n ? n : 1;
    if (!dg_kd_alloc(&t->kd, n)) return 0;
    t->size = malloc(nn * sizeof(int32_t));
    t->alive = malloc(nn * sizeof(int32_t));
    t->dead = malloc(nn);
    if (!t->size || !t->alive || !t->dead) {
        kd_free(t);
        return 0;
    }
    return 1;
}

static inline double linf(double ax, double ay, double bx, double by) {
    double dx = fabs(ax - bx), dy = fabs(ay - by);
    return dx > dy ? dx : dy;
}

/* L-infinity distance to the projection ((x+y)/2, (x+y)/2), computed as GUDHI does, so that
 * equal inputs give bit-identical distances. */
static inline double diag_dist(const double *p) {
    double mid = (p[0] + p[1]) / 2;
    return linf(p[0], p[1], mid, mid);
}

/* The differences are those of the point test, so rounding never prunes a point within r. */
static inline int box_far(const double *b, double qx, double qy, double r) {
    return b[0] - qx > r || qx - b[1] > r || b[2] - qy > r || qy - b[3] > r;
}

static inline int box_near(const double *b, double qx, double qy, double r) {
    return b[1] - qx <= r && qx - b[0] <= r && b[3] - qy <= r && qy - b[2] <= r;
}

/* Takes every alive point of the range. */
static int32_t kd_take_range(kd_tree *t, size_t lo, size_t hi, int32_t *out, size_t *nout) {
    if (lo >= hi) return 0;
    size_t mid = lo + (hi - lo) / 2;
    if (t->alive[mid] == 0) return 0;
    int32_t taken = 0;
    if (!t->dead[mid]) {
        t->dead[mid] = 1;
        out[(*nout)++] = t->kd.pt[mid].id;
        taken = 1;
    }
    taken += kd_take_range(t, lo, mid, out, nout);
    taken += kd_take_range(t, mid + 1, hi, out, nout);
    t->alive[mid] -= taken;
    return taken;
}

/* Takes every alive point within r of q (L-infinity). */
static int32_t kd_take_all(kd_tree *t, size_t lo, size_t hi, double qx, double qy, double r,
                           int32_t *out, size_t *nout) {
    if (lo >= hi) return 0;
    size_t mid = lo + (hi - lo) / 2;
    if (t->alive[mid] == 0) return 0;
    const double *b = &t->kd.box[4 * mid];
    if (box_far(b, qx, qy, r)) return 0;
    if (box_near(b, qx, qy, r)) return kd_take_range(t, lo, hi, out, nout);
    int32_t taken = 0;
    const dg_kd_pt *p = &t->kd.pt[mid];
    if (!t->dead[mid] && linf(p->x, p->y, qx, qy) <= r) {
        t->dead[mid] = 1;
        out[(*nout)++] = p->id;
        taken = 1;
    }
    taken += kd_take_all(t, lo, mid, qx, qy, r, out, nout);
    taken += kd_take_all(t, mid + 1, hi, qx, qy, r, out, nout);
    t->alive[mid] -= taken;
    return taken;
}

/* Takes one alive point within r of q; returns its id or -1. */
static int32_t kd_take_one(kd_tree *t, size_t lo, size_t hi, double qx, double qy, double r) {
    if (lo >= hi) return -1;
    size_t mid = lo + (hi - lo) / 2;
    if (t->alive[mid] == 0 || box_far(&t->kd.box[4 * mid], qx, qy, r)) return -1;
    const dg_kd_pt *p = &t->kd.pt[mid];
    if (!t->dead[mid] && linf(p->x, p->y, qx, qy) <= r) {
        t->dead[mid] = 1;
        t->alive[mid]--;
        return p->id;
    }
    int32_t got = kd_take_one(t, lo, mid, qx, qy, r);
    if (got < 0) got = kd_take_one(t, mid + 1, hi, qx, qy, r);
    if (got >= 0) t->alive[mid]--;
    return got;
}

/* Takes the point at position pos of the tree on range [lo, hi). */
static void kd_take_pos(kd_tree *t, size_t lo, size_t hi, size_t pos) {
    t->dead[pos] = 1;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        t->alive[mid]--;
        if (pos == mid) break;
        if (pos < mid)
            hi = mid;
        else
            lo = mid + 1;
    }
}

/* ---- Hopcroft–Karp over the geometric graph */

typedef struct bn_ctx {
    int32_t n, m, N;
    const double *a, *b; /* [n][2], [m][2] */
    double *diag_a;      /* [n] distance to the diagonal */
    double *diag_b;      /* [m] */
    kd_tree all;         /* every B point, id = j */
    kd_tree lay;         /* B points of each BFS layer, one tree per layer segment */
    double *sx;          /* [m][2] B points sorted by birth: (birth, death) */
    double *sy;          /* [m][2] B points sorted by death: (death, birth) */
    int32_t *seg;        /* [N+2] layer k of `lay` is [seg[k], seg[k+1]) */
    int32_t *mate_l;     /* [N] right vertex matched to a left vertex, -1 */
    int32_t *mate_r;     /* [N] */
    int32_t *dist;       /* [N] BFS layer of left vertices */
    int32_t *rlayer;     /* [N] BFS layer in which a right vertex was discovered, -1 */
    int32_t *queue;      /* [N] */
    int32_t *buf;        /* [N] */
    int32_t *stack_u;    /* [N+1] */
    int32_t *stack_v;    /* [N+1] */
    int32_t *pa_set;     /* [n] unvisited projections of A (BFS) */
    int32_t *pa_pos;     /* [n] position in pa_set, -1 */
    int32_t pa_n;
    int32_t *lpa;       /* [n] projections of A sorted by layer (DFS) */
    int32_t *lpa_pos;   /* [n] position in lpa, -1 once taken */
    int32_t *lpa_start; /* [N+2] */
    int32_t *lpa_cnt;   /* [N+2] alive projections per layer */
    int32_t matched;
} bn_ctx;

static double bn_cost(const bn_ctx *c, int32_t u, int32_t v) {
    if (u < c->n) {
        if (v < c->m) return linf(c->a[2 * u], c->a[2 * u + 1], c->b[2 * v], c->b[2 * v + 1]);
        return c->diag_a[u];
    }
    return v < c->m ? c->diag_b[v] : 0.0;
}

static inline void bn_match(bn_ctx *c, int32_t u, int32_t v) {
    c->mate_l[u] = v;
    c->mate_r[v] = u;
    c->matched++;
}

/* Greedy matching of the free vertices. */
static void bn_greedy(bn_ctx *c, double r) {
    int32_t n = c->n, m = c->m;
    kd_reset(&c->all);
    for (int32_t v = 0; v < m; v++)
        if (c->mate_r[v] >= 0) kd_take_pos(&c->all, 0, (size_t)m, (size_t)c->all.kd.pos[v]);
    int32_t free_pa = 0;
    for (int32_t i = 0; i < n; i++)
        if (c->mate_r[m + i] < 0) c->pa_set[free_pa++] = i;
    for (int32_t u = 0; u < n; u++) {
        if (c->mate_l[u] >= 0) continue;
        int32_t v = kd_take_one(&c->all, 0, (size_t)m, c->a[2 * u], c->a[2 * u + 1], r);
        if (v >= 0)
            bn_match(c, u, v);
        else if (c->diag_a[u] <= r && c->mate_r[m + u] < 0)
            bn_match(c, u, m + u);
    }
    for (int32_t j = 0; j < m; j++) {
        int32_t u = n + j;
        if (c->mate_l[u] >= 0) continue;
        if (c->diag_b[j] <= r && c->mate_r[j] < 0) {
            bn_match(c, u, j);
            continue;
        }
        while (free_pa > 0) {
            int32_t i = c->pa_set[--free_pa];
            if (c->mate_r[m + i] < 0) {
                bn_match(c, u, m + i);
                break;
            }
        }
    }
}

static inline void bn_visit(bn_ctx *c, int32_t v, int32_t k, int32_t *found, int32_t *tail) {
    c->rlayer[v] = k;
    int32_t w = c->mate_r[v];
    if (w < 0) {
        if (*found == BN_INF) *found = k;
    } else if (c->dist[w] == BN_INF) {
        c->dist[w] = k + 1;
        c->queue[(*tail)++] = w;
    }
}

/* Layers the graph from the free left vertices; returns the layer of the first free right
 * vertex reached, or BN_INF when there is none (the matching is maximum). */
static int32_t bn_bfs(bn_ctx *c, double r) {
    int32_t n = c->n, m = c->m, N = c->N;
    kd_reset(&c->all);
    c->pa_n = n;
    for (int32_t i = 0; i < n; i++) c->pa_set[i] = i, c->pa_pos[i] = i;
    int32_t head = 0, tail = 0, found = BN_INF;
    for (int32_t v = 0; v < N; v++) c->rlayer[v] = -1;
    for (int32_t u = 0; u < N; u++) {
        if (c->mate_l[u] < 0) {
            c->dist[u] = 0;
            c->queue[tail++] = u;
        } else {
            c->dist[u] = BN_INF;
        }
    }
    while (head < tail) {
        int32_t u = c->queue[head++], k = c->dist[u];
        if (k > found) break;
        if (u < n) {
            size_t cnt = 0;
            kd_take_all(&c->all, 0, (size_t)m, c->a[2 * u], c->a[2 * u + 1], r, c->buf, &cnt);
            for (size_t t = 0; t < cnt; t++) bn_visit(c, c->buf[t], k, &found, &tail);
            if (c->diag_a[u] <= r && c->pa_pos[u] >= 0) {
                int32_t p = c->pa_pos[u], last = c->pa_set[--c->pa_n];
                c->pa_set[p] = last;
                c->pa_pos[last] = p;
                c->pa_pos[u] = -1;
                bn_visit(c, m + u, k, &found, &tail);
            }
        } else {
            int32_t j = u - n;
            if (c->diag_b[j] <= r && !c->all.dead[c->all.kd.pos[j]]) {
                kd_take_pos(&c->all, 0, (size_t)m, (size_t)c->all.kd.pos[j]);
                bn_visit(c, j, k, &found, &tail);
            }
            while (c->pa_n > 0) {
                int32_t i = c->pa_set[--c->pa_n];
                c->pa_pos[i] = -1;
                bn_visit(c, m + i, k, &found, &tail);
            }
        }
    }
    return found;
}

/* Right vertices of layer k (free ones only in the last layer) into per-layer structures. */
static void bn_layers(bn_ctx *c, int32_t found) {
    int32_t n = c->n, m = c->m, L = found + 1;
    memset(c->seg, 0, (size_t)(L + 1) * sizeof(int32_t));
    memset(c->lpa_cnt, 0, (size_t)(L + 1) * sizeof(int32_t));
    for (int32_t v = 0; v < m + n; v++) {
        int32_t k = c->rlayer[v];
        if (k < 0 || k > found || (k == found && c->mate_r[v] >= 0)) {
            c->rlayer[v] = -1;
            continue;
        }
        if (v < m)
            c->seg[k + 1]++;
        else
            c->lpa_cnt[k]++;
    }
    for (int32_t k = 0; k < L; k++) c->seg[k + 1] += c->seg[k];
    int32_t s = 0;
    for (int32_t k = 0; k < L; k++) c->lpa_start[k] = s, s += c->lpa_cnt[k];
    /* fill: seg[k] is used as a cursor and restored afterwards */
    for (int32_t v = 0; v < m; v++) {
        c->lay.kd.pos[v] = -1;
        int32_t k = c->rlayer[v];
        if (k < 0) continue;
        dg_kd_pt *p = &c->lay.kd.pt[c->seg[k]++];
        p->x = c->b[2 * v];
        p->y = c->b[2 * v + 1];
        p->id = v;
    }
    for (int32_t k = L; k > 0; k--) c->seg[k] = c->seg[k - 1];
    c->seg[0] = 0;
    for (int32_t k = 0; k < L; k++) {
        kd_build(&c->lay, (size_t)c->seg[k], (size_t)c->seg[k + 1]);
    }
    int32_t *cur = c->buf; /* cursors per layer */
    for (int32_t k = 0; k < L; k++) cur[k] = c->lpa_start[k];
    for (int32_t i = 0; i < n; i++) {
        c->lpa_pos[i] = -1;
        int32_t k = c->rlayer[m + i];
        if (k < 0) continue;
        c->lpa[cur[k]] = i;
        c->lpa_pos[i] = cur[k]++;
    }
}

static void lpa_take(bn_ctx *c, int32_t k, int32_t i) {
    int32_t p = c->lpa_pos[i], last = c->lpa_start[k] + --c->lpa_cnt[k];
    int32_t o = c->lpa[last];
    c->lpa[p] = o;
    c->lpa_pos[o] = p;
    c->lpa_pos[i] = -1;
}

/* An untried right vertex of layer k adjacent to u, taken out of the layer; -1 if none. */
static int32_t bn_next(bn_ctx *c, int32_t u, int32_t k, double r) {
    int32_t n = c->n, m = c->m;
    if (u < n) {
        if (c->diag_a[u] <= r && c->lpa_pos[u] >= 0 && c->rlayer[m + u] == k) {
            lpa_take(c, k, u);
            return m + u;
        }
        if (c->seg[k] < c->seg[k + 1])
            return kd_take_one(&c->lay, (size_t)c->seg[k], (size_t)c->seg[k + 1], c->a[2 * u],
                               c->a[2 * u + 1], r);
        return -1;
    }
    int32_t j = u - n;
    if (c->diag_b[j] <= r && c->rlayer[j] == k && c->lay.kd.pos[j] >= 0 &&
        !c->lay.dead[c->lay.kd.pos[j]]) {
        kd_take_pos(&c->lay, (size_t)c->seg[k], (size_t)c->seg[k + 1], (size_t)c->lay.kd.pos[j]);
        return j;
    }
    if (c->lpa_cnt[k] > 0) {
        int32_t i = c->lpa[c->lpa_start[k] + c->lpa_cnt[k] - 1];
        lpa_take(c, k, i);
        return m + i;
    }
    return -1;
}

/* Searches an augmenting path of the layered graph from the free vertex u0. */
static int bn_dfs(bn_ctx *c, int32_t u0, int32_t found, double r) {
    int32_t depth = 0;
    c->stack_u[0] = u0;
    while (depth >= 0) {
        int32_t u = c->stack_u[depth], k = c->dist[u];
        int32_t v = bn_next(c, u, k, r);
        if (v < 0) {
            c->dist[u] = BN_INF; /* dead end for the rest of the phase */
            depth--;
            continue;
        }
        int32_t w = c->mate_r[v];
        if (w < 0) {
            c->stack_v[depth] = v;
            for (int32_t d = 0; d <= depth; d++) {
                c->mate_l[c->stack_u[d]] = c->stack_v[d];
                c->mate_r[c->stack_v[d]] = c->stack_u[d];
            }
            return 1;
        }
        if (k < found && c->dist[w] == k + 1) {
            c->stack_v[depth] = v;
            c->stack_u[++depth] = w;
        }
    }
    return 0;
}

/* 1 when a perfect matching exists at radius r; the matching is left in c either way. */
static int bn_feasible(bn_ctx *c, double r) {
    for (int32_t u = 0; u < c->N; u++) {
        int32_t v = c->mate_l[u];
        if (v >= 0 && bn_cost(c, u, v) > r) {
            c->mate_l[u] = -1;
            c->mate_r[v] = -1;
            c->matched--;
        }
    }
    if (c->matched < c->N) bn_greedy(c, r);
    while (c->matched < c->N) {
        int32_t found = bn_bfs(c, r);
        if (found == BN_INF) return 0;
        bn_layers(c, found);
        for (int32_t u = 0; u < c->N; u++)
            if (c->mate_l[u] < 0 && c->dist[u] == 0 && bn_dfs(c, u, found, r)) c->matched++;
    }
    return 1;
}

static void bn_free(bn_ctx *c) {
    kd_free(&c->all);
    kd_free(&c->lay);
    free(c->diag_a);
    free(c->diag_b);
    free(c->sx);
    free(c->sy);
    free(c->seg);
    free(c->mate_l);
    free(c->mate_r);
    free(c->dist);
    free(c->rlayer);
    free(c->queue);
    free(c->buf);
    free(c->stack_u);
    free(c->stack_v);
    free(c->pa_set);
    free(c->pa_pos);
    free(c->lpa);
    free(c->lpa_pos);
    free(c->lpa_start);
    free(c->lpa_cnt);
}

static int dbl_cmp(const void *pa, const void *pb) {
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

static int bn_init(bn_ctx *c, const dg_split *A, const dg_split *B) {
    memset(c, 0, sizeof *c);
    c->n = (int32_t)A->n;
    c->m = (int32_t)B->n;
    c->N = c->n + c->m;
    c->a = A->xy;
    c->b = B->xy;
    size_t n = (size_t)c->n, m = (size_t)c->m, N = (size_t)c->N + 2;
    if (!kd_alloc(&c->all, m) || !kd_alloc(&c->lay, m)) return 0;
    c->diag_a = malloc((n + 1) * sizeof(double));
    c->diag_b = malloc((m + 1) * sizeof(double));
    c->sx = malloc((m + 1) * 2 * sizeof(double));
    c->sy = malloc((m + 1) * 2 * sizeof(double));
    int32_t **arrs[] = {&c->seg, &c->mate_l,  &c->mate_r,  &c->dist,      &c->rlayer, &c->queue,
                        &c->buf, &c->stack_u, &c->stack_v, &c->lpa_start, &c->lpa_cnt};
    for (size_t i = 0; i < sizeof arrs / sizeof arrs[0]; i++) {
        *arrs[i] = malloc(N * sizeof(int32_t));
        if (!*arrs[i]) return 0;
    }
    c->pa_set = malloc((n + 1) * sizeof(int32_t));
    c->pa_pos = malloc((n + 1) * sizeof(int32_t));
    c->lpa = malloc((n + 1) * sizeof(int32_t));
    c->lpa_pos = malloc((n + 1) * sizeof(int32_t));
    if (!c->diag_a || !c->diag_b || !c->sx || !c->sy || !c->pa_set || !c->pa_pos || !c->lpa ||
        !c->lpa_pos)
        return 0;
    for (size_t j = 0; j < m; j++) {
        c->sx[2 * j] = c->sy[2 * j + 1] = c->b[2 * j];
        c->sx[2 * j + 1] = c->sy[2 * j] = c->b[2 * j + 1];
    }
    qsort(c->sx, m, 2 * sizeof(double), dbl_cmp);
    qsort(c->sy, m, 2 * sizeof(double), dbl_cmp);
    for (size_t i = 0; i < n; i++) c->diag_a[i] = diag_dist(c->a + 2 * i);
    for (size_t j = 0; j < m; j++) c->diag_b[j] = diag_dist(c->b + 2 * j);
    dg_kd_build_xy(&c->all.kd, c->b, c->all.size);
    kd_reset(&c->all);
    for (int32_t u = 0; u < c->N; u++) c->mate_l[u] = c->mate_r[u] = -1;
    return 1;
}

/* Candidate values come from strips of a sorted coordinate: a pair is at L-infinity distance
 * d in (lo, hi] exactly when |dx| is in (lo, hi] and |dy| <= hi, or |dy| is in (lo, hi] and
 * |dx| <= lo (the second case leaves out the pairs of the first). The differences are computed
 * as in linf(), so the values are the same doubles; fl(key - q) is monotone in key, so each
 * strip is a contiguous range found by binary search. */

/* first k with key[k] - q > t (keys at s[2k]) */
static size_t strip_right(const double *s, size_t m, double q, double t) {
    size_t lo = 0, hi = m;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s[2 * mid] - q > t)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

/* first k with q - key[k] <= t */
static size_t strip_left(const double *s, size_t m, double q, double t) {
    size_t lo = 0, hi = m;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (q - s[2 * mid] <= t)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

typedef struct cand_buf {
    double *out; /* NULL: count only */
    size_t count, cap;
} cand_buf;

static inline int cand_push(cand_buf *cb, double d) {
    if (cb->count >= cb->cap) return 0;
    if (cb->out) cb->out[cb->count] = d;
    cb->count++;
    return 1;
}

/* The distances in (lo, hi] from the point (x, y) of A to the points of B. */
static int strip_collect(const bn_ctx *c, double x, double y, double lo, double hi, cand_buf *cb) {
    size_t m = (size_t)c->m;
    const double *s = c->sx;
    for (size_t k = strip_right(s, m, x, lo), e = strip_right(s, m, x, hi); k < e; k++) {
        double dx = s[2 * k] - x, dy = fabs(y - s[2 * k + 1]);
        if (dy <= hi && !cand_push(cb, dx > dy ? dx : dy)) return 0;
    }
    for (size_t k = strip_left(s, m, x, hi), e = strip_left(s, m, x, lo); k < e; k++) {
        double dx = x - s[2 * k], dy = fabs(y - s[2 * k + 1]);
        if (dy <= hi && !cand_push(cb, dx > dy ? dx : dy)) return 0;
    }
    s = c->sy;
    for (size_t k = strip_right(s, m, y, lo), e = strip_right(s, m, y, hi); k < e; k++)
        if (fabs(x - s[2 * k + 1]) <= lo && !cand_push(cb, s[2 * k] - y)) return 0;
    for (size_t k = strip_left(s, m, y, hi), e = strip_left(s, m, y, lo); k < e; k++)
        if (fabs(x - s[2 * k + 1]) <= lo && !cand_push(cb, y - s[2 * k])) return 0;
    return 1;
}

/* Candidate values in (lo, hi]: stored when out is not NULL; 0 if more than cap. */
static int bn_candidates(const bn_ctx *c, double lo, double hi, double *out, size_t *count,
                         size_t cap) {
    cand_buf cb = {out, 0, cap};
    int ok = 1;
    for (int32_t i = 0; i < c->n && ok; i++) {
        double d = c->diag_a[i];
        if (d > lo && d <= hi) ok = cand_push(&cb, d);
    }
    for (int32_t j = 0; j < c->m && ok; j++) {
        double d = c->diag_b[j];
        if (d > lo && d <= hi) ok = cand_push(&cb, d);
    }
    for (int32_t i = 0; i < c->n && ok; i++)
        ok = strip_collect(c, c->a[2 * i], c->a[2 * i + 1], lo, hi, &cb);
    *count = cb.count;
    return ok;
}

/* 1 when a sample of A suggests at most cap candidates in (lo, hi]: a cheap test before the
 * exact count, which is costly while the interval is wide. */
static int bn_few_candidates(const bn_ctx *c, double lo, double hi, size_t cap) {
    size_t n = (size_t)c->n, s = n < 256 ? n : 256;
    if (s == n) return 1; /* small: the exact count is as cheap */
    cand_buf cb = {NULL, 0, (size_t)((double)cap * (double)s / (double)n) + 1};
    for (size_t k = 0; k < s; k++) {
        size_t i = k * n / s;
        if (!strip_collect(c, c->a[2 * i], c->a[2 * i + 1], lo, hi, &cb)) return 0;
    }
    return 1;
}

/* The bottleneck distance of the finite parts; leaves an optimal matching in c. Sets *oom on
 * allocation failure. */
static double bn_search(bn_ctx *c, int *oom) {
    *oom = 0;
    if (c->N == 0) return 0.0;
    if (bn_feasible(c, 0.0)) return 0.0;
    double lo = 0.0, hi = 0.0;
    for (int32_t i = 0; i < c->n; i++) hi = fmax(hi, c->diag_a[i]);
    for (int32_t j = 0; j < c->m; j++) hi = fmax(hi, c->diag_b[j]);
    size_t cap = 4 * (size_t)c->N + 256, count = 0;
    /* Bisect until at most cap candidates remain in (lo, hi]. */
    for (;;) {
        if (bn_few_candidates(c, lo, hi, cap) && bn_candidates(c, lo, hi, NULL, &count, cap)) break;
        double mid = 0.5 * lo + 0.5 * hi;
        if (!(mid > lo && mid < hi)) {
            cap = SIZE_MAX;
            break;
        }
        if (bn_feasible(c, mid))
            hi = mid;
        else
            lo = mid;
    }
    double *cand = NULL;
    if (cap == SIZE_MAX) bn_candidates(c, lo, hi, NULL, &count, cap);
    cand = malloc((count ? count : 1) * sizeof(double));
    if (!cand) {
        *oom = 1;
        return 0.0;
    }
    bn_candidates(c, lo, hi, cand, &count, SIZE_MAX);
    qsort(cand, count, sizeof(double), dbl_cmp);
    size_t u = 0;
    for (size_t i = 0; i < count; i++)
        if (u == 0 || cand[i] != cand[u - 1]) cand[u++] = cand[i];
    /* cand[hi_i] is feasible (the largest candidate <= hi is >= the distance); below lo_i
     * nothing is. */
    long lo_i = -1, hi_i = (long)u - 1;
    while (hi_i - lo_i > 1) {
        long mid = lo_i + (hi_i - lo_i) / 2;
        if (bn_feasible(c, cand[mid]))
            hi_i = mid;
        else
            lo_i = mid;
    }
    double d = u ? cand[hi_i] : hi;
    free(cand);
    bn_feasible(c, d); /* leaves the matching at the distance */
    return d;
}

/* ---- every finite point born at one value (H0 of a Rips filtration)
 *
 * On one vertical line a point's distance to another is |Δdeath|, and among points matched to
 * each other the sorted order minimises the largest distance (uncrossing two pairs never raises
 * it). The distance is then the best monotone alignment of the sorted deaths in which any point
 * may go to the diagonal: a min–max dynamic programme in O(n·m), whose value is one of the
 * costs computed as above, so it is bit for bit the general search's. */

static int death_cmp(const void *x, const void *y) {
    double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* 1: *d is the distance of the finite parts; 0: not on one line, or too large (the general
 * search runs); -1: out of memory. */
static int bn_line(const dg_split *A, const dg_split *B, double *d) {
    size_t n = A->n, m = B->n;
    if (n == 0 && m == 0) return 0;
    double x0 = n ? A->xy[0] : B->xy[0];
    for (size_t i = 0; i < n; i++)
        if (A->xy[2 * i] != x0) return 0;
    for (size_t j = 0; j < m; j++)
        if (B->xy[2 * j] != x0) return 0;
    if (n > ((size_t)1 << 20) || m > ((size_t)1 << 20) || (double)n * (double)m > 16777216.0)
        return 0;
    /* sorted points (birth, death) and one row of the table */
    double *pa = malloc((n + 1) * 2 * sizeof *pa), *pb = malloc((m + 1) * 2 * sizeof *pb);
    double *f = malloc((m + 1) * sizeof *f);
    if (!pa || !pb || !f) {
        free(pa), free(pb), free(f);
        return -1;
    }
    /* sorting (birth, death) pairs by death: the births are equal */
    for (size_t i = 0; i < n; i++) pa[2 * i] = A->xy[2 * i + 1], pa[2 * i + 1] = A->xy[2 * i];
    for (size_t j = 0; j < m; j++) pb[2 * j] = B->xy[2 * j + 1], pb[2 * j + 1] = B->xy[2 * j];
    qsort(pa, n, 2 * sizeof *pa, death_cmp);
    qsort(pb, m, 2 * sizeof *pb, death_cmp);
    /* f[j] over rows i: the least largest cost aligning A's first i with B's first j */
    f[0] = 0.0;
    for (size_t j = 1; j <= m; j++) {
        double pt[2] = {pb[2 * (j - 1) + 1], pb[2 * (j - 1)]};
        f[j] = fmax(f[j - 1], diag_dist(pt));
    }
    for (size_t i = 1; i <= n; i++) {
        double pi[2] = {pa[2 * (i - 1) + 1], pa[2 * (i - 1)]}, ci = diag_dist(pi);
        double diag_prev = f[0]; /* f[i-1][j-1] */
        f[0] = fmax(f[0], ci);
        for (size_t j = 1; j <= m; j++) {
            double pj[2] = {pb[2 * (j - 1) + 1], pb[2 * (j - 1)]};
            double match = fmax(diag_prev, linf(pi[0], pi[1], pj[0], pj[1]));
            double skip_a = fmax(f[j], ci);                /* f[i-1][j]: A_i to the diagonal */
            double skip_b = fmax(f[j - 1], diag_dist(pj)); /* f[i][j-1]: B_j to the diagonal */
            diag_prev = f[j];
            double best = match < skip_a ? match : skip_a;
            f[j] = best < skip_b ? best : skip_b;
        }
    }
    *d = f[m];
    free(pa), free(pb), free(f);
    return 1;
}

ats_status ats_bottleneck_distance(const ats_diagram *a, const ats_diagram *b, double *distance,
                                   ats_matching *matching, ats_error *err) {
    if (matching) matching->count = 0, matching->pairs = NULL;
    *distance = NAN;
    dg_split A, B;
    ats_status st = dg_split_make(a, "first", &A, err);
    if (st) return st;
    st = dg_split_make(b, "second", &B, err);
    if (st) {
        dg_split_free(&A);
        return st;
    }
    if ((size_t)A.n + B.n > (size_t)INT32_MAX - 4) {
        dg_split_free(&A);
        dg_split_free(&B);
        return ats_error_set(err, ATS_ERR_RANGE, "diagrams too large");
    }
    if (!dg_ess_compatible(&A, &B)) {
        dg_split_free(&A);
        dg_split_free(&B);
        *distance = INFINITY;
        return ATS_OK;
    }
    double ess = 0.0;
    for (size_t k = 0; k < A.n_ess; k++) ess = fmax(ess, fabs(A.ess[k].key - B.ess[k].key));
    int oom = 0, line = 0;
    double d = 0.0;
    if (!matching) { /* the distance alone: diagrams on one line take the alignment */
        line = bn_line(&A, &B, &d);
        if (line < 0) {
            dg_split_free(&A);
            dg_split_free(&B);
            return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
        }
        if (line) {
            dg_split_free(&A);
            dg_split_free(&B);
            *distance = fmax(d, ess);
            return ATS_OK;
        }
    }
    bn_ctx c;
    if (!bn_init(&c, &A, &B))
        oom = 1;
    else
        d = bn_search(&c, &oom);
    if (!oom && matching) {
        if (dg_matching_begin(matching, a->count, b->count, err)) {
            oom = 1;
        } else {
            for (int32_t u = 0; u < c.n; u++) {
                int32_t v = c.mate_l[u];
                dg_matching_push(matching, A.idx[u], v < c.m ? B.idx[v] : -1);
            }
            for (int32_t u = c.n; u < c.N; u++) {
                int32_t v = c.mate_l[u];
                if (v < c.m) dg_matching_push(matching, -1, B.idx[v]);
            }
            dg_matching_add_ess_diag(matching, &A, &B);
        }
    }
    bn_free(&c);
    dg_split_free(&A);
    dg_split_free(&B);
    if (oom) {
        ats_matching_free(matching);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    *distance = fmax(d, ess);
    return ATS_OK;
}
