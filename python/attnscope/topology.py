"""Persistent homology of distance matrices and distances between persistence diagrams."""
import ctypes
import math
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _lib as L


def lower_triangle(distances: np.ndarray, symmetrize: bool = False) -> np.ndarray:
    """The strict lower triangle ([n(n-1)/2], row by row) of a full distance matrix [n][n],
    validated: zero diagonal, finite non-negative entries, symmetric unless symmetrize (which
    takes (A + A^T)/2)."""
    d = L.contiguous(distances)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise L.AttnscopeError(3, f"distance matrix must be square [n][n], got shape {d.shape}")
    n = d.shape[0]
    out = np.empty(max(n * (n - 1) // 2, 1))
    err = L.Error()
    L.check(L.ats_metric_from_full(n, L.as_double_ptr(d), int(symmetrize), b"distance matrix",
                                   L.as_double_ptr(out), ctypes.byref(err)), err)
    return out[: n * (n - 1) // 2]


def _points_lower(points: np.ndarray) -> np.ndarray:
    x = np.asarray(points, dtype=np.float64)
    if x.ndim != 2:
        raise L.AttnscopeError(3, f"points must be [n][dim], got shape {x.shape}")
    if not np.isfinite(x).all():
        raise L.AttnscopeError(4, "points: coordinates must be finite")
    i, j = np.tril_indices(x.shape[0], -1)
    return np.sqrt(((x[i] - x[j]) ** 2).sum(-1))


class Persistence:
    """Persistence diagrams of one metric: `p[k]` is an array [m][2] of (birth, death) for H_k,
    death = inf for an essential class. With cycles=True, `p.cycles[i]` lists the edges
    [[u, v], ...] of a representative cycle of the i-th H1 pair (the tokens of the loop); with
    cocycles=True, `p.cocycles[k][i]` is (simplices [m][k+1], coefficients [m])."""

    def __init__(self, dims, threshold, n_points, cycles=None, cocycles=None,
                 birth_simplices=None, death_simplices=None):
        self.dims: List[np.ndarray] = dims
        self.threshold: float = threshold
        self.n_points: int = n_points
        self.cycles: Optional[List[np.ndarray]] = cycles
        self.cocycles = cocycles
        self.birth_simplices = birth_simplices
        self.death_simplices = death_simplices

    def __getitem__(self, k: int) -> np.ndarray:
        return self.dims[k]

    def __len__(self) -> int:
        return len(self.dims)

    def __repr__(self) -> str:
        counts = ", ".join(f"H{k}: {len(d)}" for k, d in enumerate(self.dims))
        return f"Persistence({self.n_points} points, threshold {self.threshold:.6g}; {counts})"


def _options(max_dim, threshold, modulus, min_persistence, ratio, cycles, cocycles, collapse_edges=False):
    opt = L.RipsOptions()
    L.ats_rips_options_init(ctypes.byref(opt))
    opt.max_dim = int(max_dim)
    opt.threshold = math.inf if threshold is None else float(threshold)
    opt.modulus = int(modulus)
    opt.min_persistence = float(min_persistence)
    opt.ratio = float(ratio)
    opt.want_cycles = int(bool(cycles))
    opt.want_cocycles = int(bool(cocycles))
    opt.collapse_edges = int(bool(collapse_edges))
    return opt


def _reps(rep_ptr, count, k):
    out = []
    for i in range(count):
        r = rep_ptr[i]
        if r.count:
            v = np.ctypeslib.as_array(r.vertices, shape=(r.count * (k + 1),)).reshape(r.count, k + 1).copy()
            c = np.ctypeslib.as_array(r.coefs, shape=(r.count,)).copy()
        else:
            v, c = np.zeros((0, k + 1), np.int32), np.zeros(0, np.uint32)
        out.append((v, c))
    return out


def _collect(res: "L.RipsResult", n: int, max_dim: int, cycles: bool, cocycles: bool) -> Persistence:
    dims, births, deaths = [], [], []
    for k in range(max_dim + 1):
        d = res.dims[k]
        arr = (np.ctypeslib.as_array(d.pairs, shape=(d.count * 2,)).reshape(d.count, 2).copy()
               if d.count else np.zeros((0, 2)))
        dims.append(arr)
        if d.count:
            births.append(np.ctypeslib.as_array(res.birth_simplex[k], shape=(d.count,)).copy())
            deaths.append(np.ctypeslib.as_array(res.death_simplex[k], shape=(d.count,)).copy())
        else:
            births.append(np.zeros(0, np.int64))
            deaths.append(np.zeros(0, np.int64))
    cyc = None
    if cycles and max_dim >= 1:
        cyc = [v for v, _ in _reps(res.cycles, res.dims[1].count, 1)] if res.cycles else []
    coc = None
    if cocycles:
        coc = {k: _reps(res.cocycles[k], res.dims[k].count, k) if res.cocycles[k] else []
               for k in range(1, max_dim + 1)}
    return Persistence(dims, res.threshold, n, cyc, coc, births, deaths)


def _metric(data, metric, symmetrize):
    if metric == "precomputed":
        d = np.asarray(data)
        return d.shape[0], lower_triangle(d, symmetrize)
    if metric == "euclidean":
        x = np.asarray(data)
        return x.shape[0], _points_lower(x)
    raise ValueError("metric must be 'precomputed' (a distance matrix) or 'euclidean' (points)")


def rips(data: np.ndarray, max_dim: int = 1, threshold: Optional[float] = None,
         modulus: int = 2, min_persistence: float = 0.0, ratio: float = 1.0,
         cycles: bool = False, cocycles: bool = False, metric: str = "precomputed",
         symmetrize: bool = False, collapse_edges: bool = False) -> Persistence:
    """Vietoris–Rips persistent homology H_0..H_max_dim of a distance matrix [n][n]
    (metric="precomputed") or of points [n][dim] (metric="euclidean"). threshold defaults to
    the enclosing radius (as Ripser); coefficients in Z/modulus. Zero-length pairs are dropped;
    pairs with death - birth <= min_persistence or death <= ratio * birth too. collapse_edges
    first collapses dominated edges (Boissonnat–Pritam): the same diagrams, pairs in another
    order, no cycles or cocycles; it pays off from max_dim 2 (see the README)."""
    n, lower = _metric(data, metric, symmetrize)
    opt = _options(max_dim, threshold, modulus, min_persistence, ratio, cycles, cocycles, collapse_edges)
    res, err = L.RipsResult(), L.Error()
    L.check(L.ats_rips_compute(n, L.as_double_ptr(lower), ctypes.byref(opt), ctypes.byref(res),
                               ctypes.byref(err)), err)
    try:
        return _collect(res, n, max_dim, cycles, cocycles)
    finally:
        L.ats_rips_result_free(ctypes.byref(res))


def rips_batch(matrices: Union[np.ndarray, Sequence[np.ndarray]], max_dim: int = 1,
               threshold: Optional[float] = None, modulus: int = 2,
               min_persistence: float = 0.0, ratio: float = 1.0, n_threads: int = 0,
               symmetrize: bool = False, collapse_edges: bool = False) -> List[Persistence]:
    """rips() of many distance matrices (e.g. every head of a model, [L*H][n][n] or a list of
    [n_i][n_i]) in parallel on n_threads threads (0: all cores)."""
    lowers = [lower_triangle(np.asarray(m), symmetrize) for m in matrices]
    ns = [int(np.asarray(m).shape[0]) for m in matrices]
    count = len(lowers)
    if count == 0:
        return []
    opt = _options(max_dim, threshold, modulus, min_persistence, ratio, False, False, collapse_edges)
    ptrs = (L.c_double_p * count)(*[L.as_double_ptr(lw) for lw in lowers])
    sizes = (ctypes.c_size_t * count)(*ns)
    res = (L.RipsResult * count)()
    errs = (L.Error * count)()
    status = L.ats_rips_compute_batch(count, sizes, ptrs, ctypes.byref(opt), int(n_threads), res, errs)
    try:
        if status != 0:
            for i in range(count):
                if errs[i].status:
                    raise L.AttnscopeError(errs[i].status,
                                           f"matrix {i}: " + errs[i].message.decode("utf-8", "replace"))
        return [_collect(res[i], ns[i], max_dim, False, False) for i in range(count)]
    finally:
        for i in range(count):
            L.ats_rips_result_free(ctypes.byref(res[i]))


def clusters(distances: np.ndarray, scale: float) -> np.ndarray:
    """H0 at a scale: the single-linkage cluster of every point in the graph of distances
    <= scale, numbered 0.. in order of each cluster's first point."""
    d = np.asarray(distances)
    n = d.shape[0]
    lower = lower_triangle(d)
    labels = np.empty(n, dtype=np.int32)
    k, err = ctypes.c_size_t(), L.Error()
    L.check(L.ats_rips_clusters(n, L.as_double_ptr(lower), float(scale),
                                labels.ctypes.data_as(L.c_int32_p), ctypes.byref(k),
                                ctypes.byref(err)), err)
    return labels


def _diagram(points) -> Tuple["L.Diagram", np.ndarray]:
    a = np.asarray(points, dtype=np.float64)
    if a.size == 0:
        a = np.zeros((0, 2))
    if a.ndim != 2 or a.shape[1] != 2:
        raise L.AttnscopeError(3, f"a diagram is an array [m][2] of (birth, death), got shape {a.shape}")
    a = np.ascontiguousarray(a)
    return L.Diagram(a.shape[0], L.as_double_ptr(a)), a


def _matching_array(m: "L.Matching") -> np.ndarray:
    if not m.count:
        return np.zeros((0, 2), np.int64)
    return np.ctypeslib.as_array(m.pairs, shape=(m.count * 2,)).reshape(m.count, 2).copy()


def bottleneck(a: np.ndarray, b: np.ndarray, matching: bool = False):
    """Exact bottleneck distance (L-infinity ground metric) between two diagrams [m][2];
    essential points (death inf) are matched among themselves, different counts give inf.
    With matching=True also returns the optimal matching as rows (index in a, index in b),
    -1 meaning the diagonal."""
    da, keep_a = _diagram(a)
    db, keep_b = _diagram(b)
    out, m, err = ctypes.c_double(), L.Matching(), L.Error()
    L.check(L.ats_bottleneck_distance(ctypes.byref(da), ctypes.byref(db), ctypes.byref(out),
                                      ctypes.byref(m) if matching else None, ctypes.byref(err)), err)
    if not matching:
        return out.value
    try:
        return out.value, _matching_array(m)
    finally:
        L.ats_matching_free(ctypes.byref(m))


def wasserstein(a: np.ndarray, b: np.ndarray, q: float = 1.0, internal_p: float = math.inf,
                delta: float = 0.01, exact: bool = False, matching: bool = False):
    """q-Wasserstein distance with internal L_p between two diagrams [m][2] (Hera's
    definition). Exact for small diagrams (or exact=True); otherwise an auction whose result W
    satisfies W_exact <= W <= (1 + delta) W_exact."""
    da, keep_a = _diagram(a)
    db, keep_b = _diagram(b)
    opt = L.WassersteinOptions()
    L.ats_wasserstein_options_init(ctypes.byref(opt))
    opt.q, opt.internal_p, opt.delta, opt.exact = float(q), float(internal_p), float(delta), int(exact)
    out, m, err = ctypes.c_double(), L.Matching(), L.Error()
    L.check(L.ats_wasserstein_distance(ctypes.byref(da), ctypes.byref(db), ctypes.byref(opt),
                                       ctypes.byref(out), ctypes.byref(m) if matching else None,
                                       ctypes.byref(err)), err)
    if not matching:
        return out.value
    try:
        return out.value, _matching_array(m)
    finally:
        L.ats_matching_free(ctypes.byref(m))


def layout(distances: np.ndarray, scale: float, dim: int = 2, iterations: int = 150) -> np.ndarray:
    """Force-directed layout [n][dim] (dim 2 or 3) of a metric, edges d <= scale attracting:
    the positions the skeleton figures and the 3-D viewer use."""
    d = np.asarray(distances)
    n = d.shape[0]
    lower = lower_triangle(d)
    pos = np.empty((n, dim))
    err = L.Error()
    L.check(L.ats_layout_force(n, L.as_double_ptr(lower), float(scale), int(dim), int(iterations),
                               L.as_double_ptr(pos), ctypes.byref(err)), err)
    return pos
