"""Information measures of attention: entropy, KL and Jensen–Shannon matrices, head distances
over a corpus, head statistics, context-vector similarities. Attention comes from anywhere:
float32 or float64 arrays [n, n] or [L, H, n, n] (e.g. torch outputs' .numpy())."""
import ctypes
from typing import Dict, Iterable, Optional

import numpy as np

from . import _lib as L

_KL, _JS, _JSD = (L._constant("ATS_DIV_" + k) for k in ("KL", "JS", "JSD"))


def _attn(a, name=b"attention"):
    arr = np.asarray(a)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    arr = np.ascontiguousarray(arr)
    if arr.ndim == 2:
        Ln, Hn, n = 1, 1, arr.shape[0]
    elif arr.ndim == 4:
        Ln, Hn, n = arr.shape[0], arr.shape[1], arr.shape[2]
    else:
        raise L.AttnscopeError(3, f"attention must be [n, n] or [L, H, n, n], got shape {arr.shape}")
    if arr.shape[-1] != arr.shape[-2]:
        raise L.AttnscopeError(3, f"attention rows and columns differ: shape {arr.shape}")
    v = L.Attn(L.DTYPE_F32 if arr.dtype == np.float32 else L.DTYPE_F64, arr.ctypes.data, Ln, Hn, n, name)
    return v, arr


def _opts(base, eps, normalize, seed_compat, n_threads):
    o = L.MeasureOpts()
    L.ats_measure_opts_init(ctypes.byref(o))
    if base not in (2, "2", "e"):
        raise ValueError("base is 2 or 'e'")
    o.base = L._constant("ATS_BASE_E") if base == "e" else L._constant("ATS_BASE_2")
    o.eps, o.normalize, o.seed_compat, o.n_threads = float(eps), int(normalize), int(seed_compat), int(n_threads)
    return o


def entropy(attention, base=2, eps=0.0, normalize=False, seed_compat=False, n_threads=0) -> np.ndarray:
    """Shannon entropy of every row: [n] or [L, H, n] (bits by default, nats with base='e')."""
    v, keep = _attn(attention)
    out = np.empty(keep.shape[:-1])
    o, err = _opts(base, eps, normalize, seed_compat, n_threads), L.Error()
    L.check(L.ats_entropy_compute(ctypes.byref(v), ctypes.byref(o), L.as_double_ptr(out), ctypes.byref(err)), err)
    return out


def _divergence(kind, attention, base, eps, normalize, seed_compat, n_threads):
    v, keep = _attn(attention)
    out = np.empty(keep.shape)
    o, err = _opts(base, eps, normalize, seed_compat, n_threads), L.Error()
    L.check(L.ats_divergence_compute(ctypes.byref(v), kind, ctypes.byref(o), L.as_double_ptr(out),
                                     ctypes.byref(err)), err)
    return out


def kl_matrix(attention, base=2, eps=0.0, normalize=False, seed_compat=False, n_threads=0) -> np.ndarray:
    """KL(P_i || P_j) between every two rows of every head: [n, n] or [L, H, n, n].
    seed_compat=True: the seed notebook's KL of softmaxed rows,
    sum p (log2(p + 1e-9) - log2(q + 1e-9)), in bits whatever base."""
    return _divergence(_KL, attention, base, eps, normalize, seed_compat, n_threads)


def js_matrix(attention, distance=False, base=2, eps=0.0, normalize=False, seed_compat=False,
              n_threads=0) -> np.ndarray:
    """Jensen–Shannon divergence (or with distance=True its square root, a metric) between every
    two rows of every head: [n, n] or [L, H, n, n]. Base 2: JS in [0, 1]."""
    return _divergence(_JSD if distance else _JS, attention, base, eps, normalize, seed_compat, n_threads)


def head_distances(documents: Iterable[np.ndarray], clark=False, per_layer=False, base=2,
                   normalize=False, seed_compat=False, n_threads=0) -> np.ndarray:
    """Distances between heads summed over a corpus, streamed one document ([L, H, n, n], n
    may vary) at a time: the seed metric sum sqrt(JS), or Clark et al.'s sum JS of smoothed
    rows (clark=True). Result [L*H, L*H] (head index l*H + h), or [L, H, H] with per_layer."""
    hd, err, shape = ctypes.c_void_p(), L.Error(), None
    o = _opts(base, 0.0, normalize, seed_compat, n_threads)
    try:
        for doc in documents:
            v, keep = _attn(doc)
            if keep.ndim != 4:
                raise L.AttnscopeError(3, "every document must be [L, H, n, n]")
            if not hd:
                shape = (v.L, v.H)
                L.check(L.ats_headdist_new(v.L, v.H, int(clark), int(per_layer), ctypes.byref(o),
                                           ctypes.byref(hd), ctypes.byref(err)), err)
            L.check(L.ats_headdist_add(hd, ctypes.byref(v), ctypes.byref(err)), err)
        if not hd:
            raise L.AttnscopeError(4, "no documents")
        Ln, Hn = shape
        out = np.empty((Ln, Hn, Hn) if per_layer else (Ln * Hn, Ln * Hn))
        L.check(L.ats_headdist_result(hd, L.as_double_ptr(out), ctypes.byref(err)), err)
        return out
    finally:
        if hd:
            L.ats_headdist_free(hd)


def head_stats(documents: Iterable[np.ndarray], roles: Optional[Iterable[dict]] = None,
               base=2, normalize=False, n_threads=0) -> Dict[str, np.ndarray]:
    """Per-head statistics over a corpus, each an [L, H] table: entropy, attention to [CLS] /
    [SEP] / punctuation / self / previous / next, confidence, positional offset and share,
    rare-token share, distances to templates. roles: per document a dict with any of "cls",
    "sep", "punct", "cols" (token positions) and "freq" (per-token corpus frequency)."""
    hs, err, shape = ctypes.c_void_p(), L.Error(), None
    o = _opts(base, 0.0, normalize, False, n_threads)
    roles = list(roles) if roles is not None else None
    try:
        for k, doc in enumerate(documents):
            v, keep = _attn(doc)
            if not hs:
                shape = (v.L, v.H)
                L.check(L.ats_headstats_new(v.L, v.H, ctypes.byref(o), ctypes.byref(hs), ctypes.byref(err)), err)
            tr, hold = None, []
            if roles is not None and roles[k] is not None:
                tr = L.TokenRoles()
                for key in ("cls", "sep", "punct", "cols"):
                    if key in roles[k]:
                        a = np.ascontiguousarray(roles[k][key], dtype=np.uintp)
                        hold.append(a)
                        setattr(tr, key, a.ctypes.data_as(ctypes.POINTER(ctypes.c_size_t)))
                        setattr(tr, "n_" + key, a.shape[0])
                if "freq" in roles[k]:
                    f = np.ascontiguousarray(roles[k]["freq"], dtype=np.float64)
                    hold.append(f)
                    tr.freq = L.as_double_ptr(f)
            L.check(L.ats_headstats_add(hs, ctypes.byref(v), ctypes.byref(tr) if tr else None,
                                        ctypes.byref(err)), err)
        if not hs:
            raise L.AttnscopeError(4, "no documents")
        out = np.empty((L.STAT_COUNT,) + shape)
        L.check(L.ats_headstats_result(hs, L.as_double_ptr(out), ctypes.byref(err)), err)
        return {L.ats_head_stat_name(i).decode(): out[i] for i in range(L.STAT_COUNT)}
    finally:
        if hs:
            L.ats_headstats_free(hs)


def context_similarity(x: np.ndarray, y: Optional[np.ndarray] = None, metric="cosine", n_threads=0) -> np.ndarray:
    """Between hidden-state vectors x [m, d] (and y [k, d], default x): metric "cosine"
    (similarity), "cosine_distance" or "euclidean"; result [m, k]."""
    kinds = {"cosine": L._constant("ATS_COSINE_SIMILARITY"),
             "cosine_distance": L._constant("ATS_COSINE_DISTANCE"),
             "euclidean": L._constant("ATS_EUCLIDEAN")}
    xs = np.ascontiguousarray(x, dtype=np.float64)
    ys = np.ascontiguousarray(y, dtype=np.float64) if y is not None else None
    if xs.ndim != 2 or (ys is not None and (ys.ndim != 2 or ys.shape[1] != xs.shape[1])):
        raise L.AttnscopeError(3, "vectors must be [m, d] (and [k, d])")
    vx = L.Vectors(L.DTYPE_F64, xs.ctypes.data, 1, xs.shape[0], xs.shape[1], b"x")
    vy = L.Vectors(L.DTYPE_F64, ys.ctypes.data, 1, ys.shape[0], ys.shape[1], b"y") if ys is not None else None
    out = np.empty((xs.shape[0], (ys if ys is not None else xs).shape[0]))
    err = L.Error()
    L.check(L.ats_context_compute(ctypes.byref(vx), ctypes.byref(vy) if vy else None, kinds[metric],
                                  int(n_threads), L.as_double_ptr(out), ctypes.byref(err)), err)
    return out
