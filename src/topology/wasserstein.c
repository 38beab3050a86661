/* q-Wasserstein distance between persistence diagrams with an internal L_p ground metric.
 *
 * The finite points of A (n) and B (m) give an assignment problem of size N = n + m:
 * bidders (rows) are the points of A and the projections of B, items (columns) the points of B
 * and the projections of A. Point to point costs ||a - b||_p^q, a point to any projection its
 * own distance to the diagonal to the q, projection to projection 0 (projections on one side
 * are interchangeable, so a point may take any projection of the other side).
 *
 * Exact: the Hungarian method by shortest augmenting paths with potentials, O(N^3) time and
 * O(N) memory besides the A x B cost block when it is small enough to keep.
 *
 * Approximate: Bertsekas' forward auction (Gauss–Seidel: one unassigned bidder bids at a time)
 * with epsilon-scaling. A bidder's best and second best items come from a k-d tree over B with
 * the minimum price of every subtree (lower bound: distance to the node's box + that minimum)
 * and from two heaps: projections of A by price, points of B by (distance to the diagonal +
 * price), the costs a projection of B sees. After each round the primal cost P of the complete
 * assignment and the dual bound D = sum over bidders of min_j (c_ij + p_j) - sum_j p_j <= OPT
 * give OPT in [D, P]; the auction stops when P <= (1 + delta)^q D, so that P^(1/q) is within a
 * factor 1 + delta of the exact distance. */
#include "diagram_internal.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void ats_wasserstein_options_init(ats_wasserstein_options *opt) {
    opt->q = 1.0;
    opt->internal_p = INFINITY;
    opt->delta = 0.01;
    opt->exact = 0;
    opt->exact_max = 256;
}

/* ---- ground costs */

enum { G_INF_1, G_INF_2, G_1_1, G_2_1, G_2_2, G_GENERIC };

typedef struct ground {
    int mode;
    double p, q;
} ground;

static ground ground_make(double p, double q) {
    ground g = {G_GENERIC, p, q};
    if (isinf(p) && q == 1) g.mode = G_INF_1;
    if (isinf(p) && q == 2) g.mode = G_INF_2;
    if (p == 1 && q == 1) g.mode = G_1_1;
    if (p == 2 && q == 1) g.mode = G_2_1;
    if (p == 2 && q == 2) g.mode = G_2_2;
    return g;
}

/* ||(dx, dy)||_p^q for dx, dy >= 0. */
static inline double gcost(const ground *g, double dx, double dy) {
    switch (g->mode) {
    case G_INF_1:
        return dx > dy ? dx : dy;
    case G_INF_2: {
        double m = dx > dy ? dx : dy;
        return m * m;
    }
    case G_1_1:
        return dx + dy;
    case G_2_1:
        return sqrt(dx * dx + dy * dy);
    case G_2_2:
        return dx * dx + dy * dy;
    default: {
        double d;
        if (isinf(g->p))
            d = dx > dy ? dx : dy;
        else if (g->p == 1)
            d = dx + dy;
        else if (g->p == 2)
            d = sqrt(dx * dx + dy * dy);
        else
            d = pow(pow(dx, g->p) + pow(dy, g->p), 1.0 / g->p);
        if (g->q == 1) return d;
        if (g->q == 2) return d * d;
        return pow(d, g->q);
    }
    }
}

static inline double pt_cost(const ground *g, const double *a, const double *b) {
    return gcost(g, fabs(a[0] - b[0]), fabs(a[1] - b[1]));
}

/* A point's cost to the diagonal: its distance to ((x+y)/2, (x+y)/2), to the q. */
static inline double diag_cost(const ground *g, const double *a) {
    double mid = (a[0] + a[1]) / 2;
    return gcost(g, fabs(a[0] - mid), fabs(a[1] - mid));
}

/* ---- the problem */

typedef struct ws_prob {
    int32_t n, m, N;
    const double *a, *b; /* [n][2], [m][2] */
    double *ca;          /* [n] cost of A_i to the diagonal */
    double *cb;          /* [m] */
    ground g;
    double *block; /* [n][m] costs A x B when kept, else NULL */
} ws_prob;

/* Cost of bidder i (A_i for i < n, else a projection of B) and item j (B_j for j < m, else a
 * projection of A). */
static inline double ws_cost(const ws_prob *P, int32_t i, int32_t j) {
    if (i < P->n) {
        if (j < P->m)
            return P->block ? P->block[(size_t)i * (size_t)P->m + (size_t)j]
                            : pt_cost(&P->g, P->a + 2 * i, P->b + 2 * j);
        return P->ca[i];
    }
    return j < P->m ? P->cb[j] : 0.0;
}

/* ---- exact: Hungarian method with potentials (1-based arrays, column 0 is a sentinel) */

static int ws_exact(const ws_prob *P, int32_t *assign) {
    int32_t N = P->N;
    size_t N1 = (size_t)N + 1;
    double *u = calloc(N1, sizeof(double)), *v = calloc(N1, sizeof(double));
    double *minv = malloc(N1 * sizeof(double));
    int32_t *p = calloc(N1, sizeof(int32_t)), *way = calloc(N1, sizeof(int32_t));
    unsigned char *used = malloc(N1);
    if (!u || !v || !minv || !p || !way || !used) {
        free(u), free(v), free(minv), free(p), free(way), free(used);
        return 0;
    }
    for (int32_t i = 1; i <= N; i++) {
        p[0] = i;
        int32_t j0 = 0;
        for (size_t j = 0; j < N1; j++) minv[j] = INFINITY, used[j] = 0;
        do {
            used[j0] = 1;
            int32_t i0 = p[j0], j1 = 0;
            double delta = INFINITY, ui = u[i0];
            for (int32_t j = 1; j <= N; j++) {
                if (used[j]) continue;
                double cur = ws_cost(P, i0 - 1, j - 1) - ui - v[j];
                if (cur < minv[j]) minv[j] = cur, way[j] = j0;
                if (minv[j] < delta) delta = minv[j], j1 = j;
            }
            for (int32_t j = 0; j <= N; j++) {
                if (used[j]) {
                    u[p[j]] += delta;
                    v[j] -= delta;
                } else {
                    minv[j] -= delta;
                }
            }
            j0 = j1;
        } while (p[j0] != 0);
        do {
            int32_t j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0);
    }
    for (int32_t j = 1; j <= N; j++) assign[p[j] - 1] = j - 1;
    free(u), free(v), free(minv), free(p), free(way), free(used);
    return 1;
}

/* ---- exact on one vertical line: every finite point born at the same value
 *
 * H0 diagrams of Rips filtrations are of this kind (every class is born at 0). The points then
 * differ only in death, a point's cost to another is |Δdeath|^q, a convex function of the
 * difference, so among the points that are matched to each other the sorted order is an optimal
 * matching (the cost is Monge). The best matching is therefore a monotone alignment of the two
 * sorted lists in which any point may go to the diagonal at its own cost: an edit-distance
 * dynamic programme, O(n·m) instead of the Hungarian method's O((n+m)³). */

typedef struct line_pt {
    double death;
    int32_t idx;
} line_pt;

static int line_cmp(const void *x, const void *y) {
    const line_pt *a = x, *b = y;
    if (a->death != b->death) return a->death < b->death ? -1 : 1;
    return (a->idx > b->idx) - (a->idx < b->idx);
}

/* idx[count] ← the indices of xy[count][2] by death, ties by index; 0: no memory */
static int32_t *line_order(const double *xy, int32_t count) {
    line_pt *t = malloc(((size_t)count + 1) * sizeof *t);
    int32_t *idx = malloc(((size_t)count + 1) * sizeof *idx);
    if (t && idx) {
        for (int32_t i = 0; i < count; i++) t[i].death = xy[2 * i + 1], t[i].idx = i;
        qsort(t, (size_t)count, sizeof *t, line_cmp);
        for (int32_t i = 0; i < count; i++) idx[i] = t[i].idx;
    } else {
        free(idx);
        idx = NULL;
    }
    free(t);
    return idx;
}

/* Fills assign as ws_exact does; 0 when the points are not on one line or the table is too
 * large (the caller then uses the general solvers), -1 out of memory. */
static int ws_line(const ws_prob *P, int32_t *assign) {
    int32_t n = P->n, m = P->m;
    double x0 = P->a[0];
    for (int32_t i = 0; i < n; i++)
        if (P->a[2 * i] != x0) return 0;
    for (int32_t j = 0; j < m; j++)
        if (P->b[2 * j] != x0) return 0;
    size_t cells;
    if (!ats_size_mul((size_t)n + 1, (size_t)m + 1, &cells) || cells > ((size_t)1 << 24)) return 0;
    int32_t *ia = line_order(P->a, n), *jb = line_order(P->b, m);
    double *f = malloc(cells * sizeof *f);
    unsigned char *how = malloc(cells); /* 0: match, 1: A_i to the diagonal, 2: B_j */
    int32_t *matchedA = malloc(((size_t)n + 1) * sizeof *matchedA),
            *matchedB = malloc(((size_t)m + 1) * sizeof *matchedB);
    if (!ia || !jb || !f || !how || !matchedA || !matchedB) {
        free(ia), free(jb), free(f), free(how), free(matchedA), free(matchedB);
        return -1;
    }
    size_t w = (size_t)m + 1;
    f[0] = 0.0;
    how[0] = 0;
    for (int32_t j = 1; j <= m; j++) f[j] = f[j - 1] + P->cb[jb[j - 1]], how[j] = 2;
    for (int32_t i = 1; i <= n; i++) {
        double ci = P->ca[ia[i - 1]], di = P->a[2 * ia[i - 1] + 1];
        double *fr = f + (size_t)i * w, *fp = fr - w;
        unsigned char *hr = how + (size_t)i * w;
        fr[0] = fp[0] + ci, hr[0] = 1;
        for (int32_t j = 1; j <= m; j++) {
            double t = fabs(di - P->b[2 * jb[j - 1] + 1]);
            double best = fp[j - 1] + gcost(&P->g, 0.0, t);
            unsigned char h = 0;
            if (fp[j] + ci < best) best = fp[j] + ci, h = 1;
            if (fr[j - 1] + P->cb[jb[j - 1]] < best) best = fr[j - 1] + P->cb[jb[j - 1]], h = 2;
            fr[j] = best, hr[j] = h;
        }
    }
    /* walk back; the projections of the matched B_j then take those of the matched A_i, at
     * cost 0 */
    int32_t nm = 0, i = n, j = m;
    while (i > 0 || j > 0) {
        unsigned char h = how[(size_t)i * w + (size_t)j];
        if (h == 0) {
            int32_t ai = ia[i - 1], bj = jb[j - 1];
            assign[ai] = bj;
            matchedA[nm] = ai;
            matchedB[nm] = bj;
            nm++;
            i--, j--;
        } else if (h == 1) {
            assign[ia[i - 1]] = m + ia[i - 1];
            i--;
        } else {
            assign[n + jb[j - 1]] = jb[j - 1];
            j--;
        }
    }
    for (int32_t k = 0; k < nm; k++) assign[n + matchedB[k]] = m + matchedA[k];
    free(ia), free(jb), free(f), free(how), free(matchedA), free(matchedB);
    return 1;
}

/* ---- auction */

/* A k-d tree over weighted points: every node also keeps the least weight in its range, so a
 * query for min over points of (cost(q, point) + weight) prunes a node whose box costs more
 * than the best found. Weights are read from w[id]. */
typedef struct ws_tree {
    dg_kd_tree kd;   /* points, boxes, positions by id */
    double *minw;    /* [n] least weight in the node's range */
    const double *w; /* [n] weight by id */
    const ground *g;
} ws_tree;

/* Leaves t empty: ws_auction_free frees a tree that a failed tree_build already freed. */
static void tree_free(ws_tree *t) {
    dg_kd_free(&t->kd);
    free(t->minw);
    t->minw = NULL;
}

/* Recomputes the least weights of the range (after the weights changed). */
static double tree_reweigh(ws_tree *t, size_t lo, size_t hi) {
    if (lo >= hi) return INFINITY;
    size_t mid = lo + (hi - lo) / 2;
    double v = t->w[t->kd.pt[mid].id];
    v = fmin(v, tree_reweigh(t, lo, mid));
    v = fmin(v, tree_reweigh(t, mid + 1, hi));
    t->minw[mid] = v;
    return v;
}

/* Builds the tree over n points xy [n][2] (id = index) weighted by w. */
static int tree_build(ws_tree *t, size_t n, const double *xy, const double *w, const ground *g) {
    memset(t, 0, sizeof *t);
    t->w = w, t->g = g;
    if (!dg_kd_alloc(&t->kd, n)) return 0;
    t->minw = malloc((n ? n : 1) * sizeof(double));
    if (!t->minw) {
        tree_free(t);
        return 0;
    }
    dg_kd_build_xy(&t->kd, xy, NULL);
    tree_reweigh(t, 0, n);
    return 1;
}

/* Restores the least weights on the path to the point id after its weight rose. */
static void tree_update(ws_tree *t, int32_t id) {
    size_t pos = (size_t)t->kd.pos[id];
    size_t path[64], los[64], his[64], depth = 0, lo = 0, hi = t->kd.n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        path[depth] = mid, los[depth] = lo, his[depth] = hi;
        depth++;
        if (pos == mid) break;
        if (pos < mid)
            hi = mid;
        else
            lo = mid + 1;
    }
    for (size_t d = depth; d-- > 0;) {
        size_t mid = path[d], l = los[d], h = his[d];
        double v = t->w[t->kd.pt[mid].id];
        if (l < mid) v = fmin(v, t->minw[l + (mid - l) / 2]);
        if (mid + 1 < h) v = fmin(v, t->minw[mid + 1 + (h - mid - 1) / 2]);
        if (t->minw[mid] == v) break; /* the ancestors are unchanged */
        t->minw[mid] = v;
    }
}

typedef struct top2 {
    double v1, v2;
    int32_t j1;
} top2;

static inline void top2_add(top2 *t, double v, int32_t j) {
    if (v < t->v1) {
        t->v2 = t->v1;
        t->v1 = v;
        t->j1 = j;
    } else if (v < t->v2) {
        t->v2 = v;
    }
}

static inline double box_lb(const ground *g, const double *b, double x, double y) {
    double dx = b[0] - x > 0 ? b[0] - x : (x - b[1] > 0 ? x - b[1] : 0);
    double dy = b[2] - y > 0 ? b[2] - y : (y - b[3] > 0 ? y - b[3] : 0);
    return gcost(g, dx, dy);
}

/* Best and second best of cost + weight (second: when `two`, else only the best is exact). */
static void tree_best_rec(const ws_tree *t, size_t lo, size_t hi, double x, double y, double lb,
                          int two, top2 *r) {
    const ground *g = t->g;
    while (lo < hi) {
        if (lb >= (two ? r->v2 : r->v1)) return;
        size_t mid = lo + (hi - lo) / 2;
        const dg_kd_pt *p = &t->kd.pt[mid];
        top2_add(r, gcost(g, fabs(p->x - x), fabs(p->y - y)) + t->w[p->id], p->id);
        double lbl = INFINITY, lbr = INFINITY;
        if (lo < mid) {
            size_t c = lo + (mid - lo) / 2;
            lbl = box_lb(g, &t->kd.box[4 * c], x, y) + t->minw[c];
        }
        if (mid + 1 < hi) {
            size_t c = mid + 1 + (hi - mid - 1) / 2;
            lbr = box_lb(g, &t->kd.box[4 * c], x, y) + t->minw[c];
        }
        if (lbl <= lbr) {
            if (lbl < (two ? r->v2 : r->v1)) tree_best_rec(t, lo, mid, x, y, lbl, two, r);
            lo = mid + 1, lb = lbr;
        } else {
            if (lbr < (two ? r->v2 : r->v1)) tree_best_rec(t, mid + 1, hi, x, y, lbr, two, r);
            hi = mid, lb = lbl;
        }
    }
}

static void tree_best(const ws_tree *t, double x, double y, int two, top2 *r) {
    if (t->kd.n == 0) return;
    size_t root = (t->kd.n - 1) / 2;
    tree_best_rec(t, 0, t->kd.n, x, y, box_lb(t->g, &t->kd.box[4 * root], x, y) + t->minw[root],
                  two, r);
}

typedef struct ws_heap {
    int32_t n;
    int32_t *h;            /* [n] items */
    int32_t *pos;          /* [n] position in h of item base + k */
    int32_t base;          /* the items are base .. base + n - 1 */
    const double *key_add; /* [n] added to the price, or NULL */
} ws_heap;

static inline double heap_key(const ws_heap *H, const double *price, int32_t item) {
    double k = price[item];
    if (H->key_add) k += H->key_add[item - H->base];
    return k;
}

static void heap_down(ws_heap *H, const double *price, int32_t i) {
    int32_t n = H->n, it = H->h[i];
    double k = heap_key(H, price, it);
    for (;;) {
        int32_t c = 2 * i + 1;
        if (c >= n) break;
        double kc = heap_key(H, price, H->h[c]);
        if (c + 1 < n) {
            double k2 = heap_key(H, price, H->h[c + 1]);
            if (k2 < kc) kc = k2, c++;
        }
        if (kc >= k) break;
        H->h[i] = H->h[c];
        H->pos[H->h[i] - H->base] = i;
        i = c;
    }
    H->h[i] = it;
    H->pos[it - H->base] = i;
}

static int heap_init(ws_heap *H, int32_t n, int32_t base, const double *key_add,
                     const double *price) {
    H->n = n, H->base = base, H->key_add = key_add;
    H->h = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    H->pos = malloc((size_t)(n ? n : 1) * sizeof(int32_t));
    if (!H->h || !H->pos) return 0;
    for (int32_t i = 0; i < n; i++) H->h[i] = base + i, H->pos[i] = i;
    for (int32_t i = n / 2 - 1; i >= 0; i--) heap_down(H, price, i);
    return 1;
}

/* Best and second best of the heap: item and key of the best, key of the second. */
static inline void heap_top2(const ws_heap *H, const double *price, int32_t *best, double *k1,
                             double *k2) {
    if (H->n == 0) {
        *best = -1;
        *k1 = *k2 = INFINITY;
        return;
    }
    *best = H->h[0];
    *k1 = heap_key(H, price, H->h[0]);
    *k2 = INFINITY;
    if (H->n > 1) *k2 = heap_key(H, price, H->h[1]);
    if (H->n > 2) {
        double k = heap_key(H, price, H->h[2]);
        if (k < *k2) *k2 = k;
    }
}

typedef struct ws_auction {
    const ws_prob *P;
    ws_tree items;   /* points of B weighted by their prices */
    ws_tree bidders; /* points of A weighted by minus their best values (dual bound) */
    double *price;   /* [N] */
    int32_t *owner;  /* [N] bidder holding an item, -1 */
    int32_t *assign; /* [N] item held by a bidder, -1 */
    int32_t *queue;  /* [N] circular */
    double *best;    /* [N] a bidder's best value min_j c_ij + p_j after a round */
    double *negbest; /* [n] -best of the points of A */
    ws_heap hd;      /* projections of A by price */
    ws_heap hb;      /* points of B by cb + price */
} ws_auction;

/* Best item of bidder i (value v1 = cost + price) and the second best value. */
static void ws_best(const ws_auction *A, int32_t i, top2 *t) {
    const ws_prob *P = A->P;
    t->v1 = t->v2 = INFINITY;
    t->j1 = -1;
    int32_t jd;
    double k1, k2;
    heap_top2(&A->hd, A->price, &jd, &k1, &k2);
    if (i < P->n) {
        tree_best(&A->items, P->a[2 * i], P->a[2 * i + 1], 1, t);
        if (jd >= 0) {
            top2_add(t, P->ca[i] + k1, jd);
            if (t->v2 > P->ca[i] + k2) t->v2 = P->ca[i] + k2;
        }
    } else {
        int32_t jb;
        double b1, b2;
        heap_top2(&A->hb, A->price, &jb, &b1, &b2);
        if (jb >= 0) {
            top2_add(t, b1, jb);
            if (t->v2 > b2) t->v2 = b2;
        }
        if (jd >= 0) {
            top2_add(t, k1, jd);
            if (t->v2 > k2) t->v2 = k2;
        }
    }
}

static void ws_set_price(ws_auction *A, int32_t j, double price) {
    const ws_prob *P = A->P;
    A->price[j] = price;
    if (j < P->m) {
        tree_update(&A->items, j);
        heap_down(&A->hb, A->price, A->hb.pos[j]);
    } else {
        heap_down(&A->hd, A->price, A->hd.pos[j - P->m]);
    }
}

/* The dual bound improved on the item side: with u_i = best[i] fixed, the best item potentials
 * are w_j = min_i (c_ij - u_i), and sum u + sum w >= sum u - sum p (p_j is one feasible -w_j). */
static double ws_dual_items(ws_auction *A) {
    const ws_prob *P = A->P;
    int32_t n = P->n, m = P->m;
    double su = 0.0, umax_diag = -INFINITY, wdiag = INFINITY, sw = 0.0;
    for (int32_t i = 0; i < P->N; i++) su += A->best[i];
    for (int32_t i = n; i < P->N; i++) umax_diag = fmax(umax_diag, A->best[i]);
    for (int32_t i = 0; i < n; i++) {
        A->negbest[i] = -A->best[i];
        wdiag = fmin(wdiag, P->ca[i] - A->best[i]);
    }
    wdiag = fmin(wdiag, -umax_diag);
    tree_reweigh(&A->bidders, 0, (size_t)n);
    for (int32_t j = 0; j < m; j++) {
        top2 t = {INFINITY, INFINITY, -1};
        tree_best(&A->bidders, P->b[2 * j], P->b[2 * j + 1], 0, &t);
        sw += fmin(t.v1, P->cb[j] - umax_diag);
    }
    return su + sw + (double)n * wdiag;
}

static void ws_auction_free(ws_auction *A) {
    tree_free(&A->items);
    tree_free(&A->bidders);
    free(A->price);
    free(A->owner);
    free(A->queue);
    free(A->best);
    free(A->negbest);
    free(A->hd.h);
    free(A->hd.pos);
    free(A->hb.h);
    free(A->hb.pos);
}

/* Runs the auction (n, m >= 1); assign[i] receives the item of bidder i. Returns 0 on allocation
 * failure. *lower receives the dual bound on the optimal total cost. */
static int ws_auction_run(const ws_prob *P, double delta, int32_t *assign, double *lower) {
    ws_auction A;
    memset(&A, 0, sizeof A);
    A.P = P;
    int32_t n = P->n, m = P->m, N = P->N;
    A.price = calloc((size_t)N, sizeof(double));
    A.owner = malloc((size_t)N * sizeof(int32_t));
    A.queue = malloc((size_t)N * sizeof(int32_t));
    A.best = calloc((size_t)N, sizeof(double));
    A.negbest = calloc((size_t)n, sizeof(double));
    if (!A.price || !A.owner || !A.queue || !A.best || !A.negbest ||
        !tree_build(&A.items, (size_t)m, P->b, A.price, &P->g) ||
        !tree_build(&A.bidders, (size_t)n, P->a, A.negbest, &P->g) ||
        !heap_init(&A.hd, n, m, NULL, A.price) || !heap_init(&A.hb, m, 0, P->cb, A.price)) {
        ws_auction_free(&A);
        return 0;
    }
    A.assign = assign;

    double cmax = 0.0;
    for (int32_t i = 0; i < n; i++) cmax = fmax(cmax, P->ca[i]);
    for (int32_t j = 0; j < m; j++) cmax = fmax(cmax, P->cb[j]);
    double factor = pow(1.0 + delta, P->g.q);
    double eps = cmax / 4.0;
    const double ratio = 5.0;
    *lower = 0.0;
    for (int32_t i = 0; i < N; i++) assign[i] = -1, A.owner[i] = -1, A.queue[i] = i;
    int32_t head = 0, count = N;
    for (;;) {
        while (count > 0) {
            int32_t i = A.queue[head];
            head = head + 1 == N ? 0 : head + 1;
            count--;
            top2 t;
            ws_best(&A, i, &t);
            int32_t j = t.j1;
            double inc = (isinf(t.v2) ? 0.0 : t.v2 - t.v1) + eps;
            double np = A.price[j] + inc;
            if (!(np > A.price[j])) np = nextafter(A.price[j], INFINITY);
            int32_t old = A.owner[j];
            A.owner[j] = i;
            assign[i] = j;
            if (old >= 0) {
                assign[old] = -1;
                int32_t tail = head + count;
                if (tail >= N) tail -= N;
                A.queue[tail] = old;
                count++;
            }
            ws_set_price(&A, j, np);
        }
        double primal = 0.0, dual = 0.0, pmax = 0.0;
        for (int32_t i = 0; i < N; i++) {
            top2 t;
            ws_best(&A, i, &t);
            int32_t j = assign[i];
            primal += ws_cost(P, i, j);
            dual += t.v1 - A.price[j];
            pmax = fmax(pmax, A.price[j]);
            A.best[i] = t.v1;
        }
        if (!(primal <= factor * dual)) dual = fmax(dual, ws_dual_items(&A));
        if (dual > primal) dual = primal;
        *lower = dual > 0 ? dual : 0;
        if (primal <= factor * dual || primal == 0.0) break;
        /* Below this epsilon the prices cannot resolve further progress. */
        if (eps <= 4 * DBL_EPSILON * (pmax + cmax)) break;
        eps /= ratio;
        /* Keep the pairs that satisfy eps-complementary slackness for the new eps; their
         * bidders need not bid again. Prices only rise, so the pairs kept stay valid. */
        head = 0, count = 0;
        for (int32_t i = 0; i < N; i++) {
            int32_t j = assign[i];
            if (ws_cost(P, i, j) + A.price[j] > A.best[i] + eps) {
                assign[i] = -1;
                A.owner[j] = -1;
                A.queue[count++] = i;
            }
        }
    }
    ws_auction_free(&A);
    return 1;
}

/* ---- entry point */

ats_status ats_wasserstein_distance(const ats_diagram *a, const ats_diagram *b,
                                    const ats_wasserstein_options *opt, double *distance,
                                    ats_matching *matching, ats_error *err) {
    if (matching) matching->count = 0, matching->pairs = NULL;
    *distance = NAN;
    ats_wasserstein_options def;
    if (!opt) {
        ats_wasserstein_options_init(&def);
        opt = &def;
    }
    if (!(opt->q >= 1) || isinf(opt->q))
        return ats_error_set(err, ATS_ERR_INVALID,
                             "Wasserstein order q = %g; expected a finite q >= 1", opt->q);
    if (!(opt->internal_p >= 1))
        return ats_error_set(err, ATS_ERR_INVALID, "internal p = %g; expected 1 <= p <= inf",
                             opt->internal_p);
    if (!(opt->delta > 0) || isinf(opt->delta))
        return ats_error_set(err, ATS_ERR_INVALID, "relative error delta = %g; expected delta > 0",
                             opt->delta);
    dg_split A, B;
    ats_status st = dg_split_make(a, "first", &A, err);
    if (st) return st;
    st = dg_split_make(b, "second", &B, err);
    if (st) {
        dg_split_free(&A);
        return st;
    }
    ws_prob P;
    memset(&P, 0, sizeof P);
    int32_t *assign = NULL;
    int oom = 0, line;
    double q = opt->q, total = 0.0;
    if ((size_t)A.n + B.n > (size_t)INT32_MAX - 4) {
        st = ats_error_set(err, ATS_ERR_RANGE, "diagrams too large");
        goto done;
    }
    if (!dg_ess_compatible(&A, &B)) {
        *distance = INFINITY;
        goto done;
    }
    P.n = (int32_t)A.n, P.m = (int32_t)B.n, P.N = P.n + P.m;
    P.a = A.xy, P.b = B.xy;
    P.g = ground_make(opt->internal_p, q);
    P.ca = malloc(((size_t)P.n + 1) * sizeof(double));
    P.cb = malloc(((size_t)P.m + 1) * sizeof(double));
    assign = malloc(((size_t)P.N + 1) * sizeof(int32_t));
    if (!P.ca || !P.cb || !assign) {
        oom = 1;
        goto done;
    }
    for (int32_t i = 0; i < P.n; i++) P.ca[i] = diag_cost(&P.g, P.a + 2 * i);
    for (int32_t j = 0; j < P.m; j++) P.cb[j] = diag_cost(&P.g, P.b + 2 * j);
    if (P.n == 0 || P.m == 0) {
        /* everything goes to the diagonal */
        for (int32_t i = 0; i < P.n; i++) assign[i] = P.m + i;
        for (int32_t j = 0; j < P.m; j++) assign[P.n + j] = j;
    } else if ((line = ws_line(&P, assign)) != 0) {
        if (line < 0) oom = 1;
    } else if (opt->exact || (size_t)P.N <= opt->exact_max) {
        size_t cells;
        if (ats_size_mul((size_t)P.n, (size_t)P.m, &cells) && cells <= ((size_t)1 << 24)) {
            P.block = malloc(cells * sizeof(double));
            if (P.block)
                for (int32_t i = 0; i < P.n; i++)
                    for (int32_t j = 0; j < P.m; j++)
                        P.block[(size_t)i * (size_t)P.m + (size_t)j] =
                            pt_cost(&P.g, P.a + 2 * i, P.b + 2 * j);
        }
        if (!ws_exact(&P, assign)) oom = 1;
    } else {
        double lower;
        if (!ws_auction_run(&P, opt->delta, assign, &lower)) oom = 1;
    }
    if (oom) goto done;
    /* Sum the costs of the matching in a fixed order. */
    for (int32_t i = 0; i < P.N; i++) total += ws_cost(&P, i, assign[i]);
    for (size_t k = 0; k < A.n_ess; k++) {
        double d = fabs(A.ess[k].key - B.ess[k].key);
        total += q == 1 ? d : (q == 2 ? d * d : pow(d, q));
    }
    *distance = q == 1 ? total : pow(total, 1.0 / q);
    if (matching) {
        if (dg_matching_begin(matching, a->count, b->count, err)) {
            oom = 1;
            goto done;
        }
        for (int32_t i = 0; i < P.n; i++) {
            int32_t j = assign[i];
            dg_matching_push(matching, A.idx[i], j < P.m ? B.idx[j] : -1);
        }
        for (int32_t i = P.n; i < P.N; i++) {
            int32_t j = assign[i];
            if (j < P.m) dg_matching_push(matching, -1, B.idx[j]);
        }
        dg_matching_add_ess_diag(matching, &A, &B);
    }
done:
    free(P.ca);
    free(P.cb);
    free(P.block);
    free(assign);
    dg_split_free(&A);
    dg_split_free(&B);
    if (oom) {
        *distance = NAN;
        ats_matching_free(matching);
        return ats_error_set(err, ATS_ERR_NOMEM, "out of memory");
    }
    return st;
}
