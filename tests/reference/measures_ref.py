"""Reference implementations for `attnscope measure`, used by tests/python/test_measure*.py and
bench/measure. Nothing here is fast on purpose; everything here is plain scipy / NumPy.

Three families:

* scipy references: the functions the issue names (scipy.stats.entropy,
  scipy.special.rel_entr, scipy.spatial.distance.jensenshannon) applied row by row.
* the seed notebook's functions, written as its cells are: an extra softmax over rows that are
  already probabilities; entropy with scipy (natural log); KL as
  sum p * (log2(p + 1e-9) - log2(q + 1e-9)) (bits, the 1e-9 inside the logarithms only); its
  distance cell in two versions, first scipy's JS *distance* (natural log; the notebook calls
  it the JS divergence) and later the square root of that; the head distance sums that square
  root over tokens; the attention graph of a causal head made symmetric by copying the lower
  triangle up. `attnscope measure|topo|compare|graph ... --seed-compat` must reproduce these.
* NumPy references of the head distances (the seed metric sum sqrt(JS) and Clark et al.'s sum JS
  with smoothing 0.001/n + 0.999 a), vectorised per token, and a vectorised NumPy JS matrix (one
  row against all rows at a time), the "vectorised NumPy" baseline of the benchmark.
"""

import numpy as np
from scipy.spatial.distance import jensenshannon
from scipy.special import rel_entr, softmax
from scipy.stats import entropy

LN2 = np.log(2.0)


def _base_div(base):
    return LN2 if base == 2 else 1.0


# ---- scipy references, one head [n][n] at a time -------------------------------------------


def entropy_ref(A, base=2, eps=0.0):
    """scipy.stats.entropy of every row (it normalises its argument)."""
    A = np.asarray(A, dtype=np.float64)
    return np.array([entropy(row + eps, base=2 if base == 2 else None) for row in A])


def kl_ref(A, base=2, eps=0.0):
    """KL(P_i || P_j) = sum_k rel_entr(p_ik + eps, p_jk + eps) (no renormalisation)."""
    A = np.asarray(A, dtype=np.float64) + eps
    n = A.shape[0]
    out = np.empty((n, n))
    for i in range(n):
        out[i] = rel_entr(A[i][None, :], A).sum(axis=1)
    return out / _base_div(base)


def jsd_ref(A, base=2, eps=0.0):
    """scipy.spatial.distance.jensenshannon between every pair of rows (the JS distance)."""
    A = np.asarray(A, dtype=np.float64) + eps
    n = A.shape[0]
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                out[i, j] = jensenshannon(A[i], A[j], base=2 if base == 2 else None)
    return out


def js_ref(A, base=2, eps=0.0):
    return jsd_ref(A, base, eps) ** 2


# ---- the seed notebook, re-implemented ----------------------------------------------------

SEED_EPS = 1e-9


def seed_prepare(p):
    """The notebook applies softmax to attention rows, although they are probabilities."""
    return softmax(np.asarray(p, dtype=np.float64))


def seed_entropy(p):
    return entropy(seed_prepare(p))  # natural log


def seed_kl(p, q):
    """The notebook's KL cell: softmax of both rows, then log2 with 1e-9 inside the logs."""
    p = softmax(np.asarray(p, dtype=np.float64))
    q = softmax(np.asarray(q, dtype=np.float64))
    return np.sum(p * (np.log2(p + 1e-9) - np.log2(q + 1e-9)))


def seed_js_divergence(p, q):
    """What the notebook calls the JS divergence: scipy's JS distance (natural log)."""
    return jensenshannon(seed_prepare(p), seed_prepare(q))


def seed_js_distance(p, q):
    """What the notebook calls the JS distance: the square root of scipy's JS distance."""
    return np.sqrt(seed_js_divergence(p, q))


def seed_matrix(A, fn):
    """The notebook's double loop over token pairs of one head."""
    n = len(A)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                out[i, j] = fn(A[i], A[j])
    return out


def seed_graph_weights(A):
    """The notebook's graph cell for a causal head: the lower triangle copied up."""
    W = np.array(A, dtype=np.float64)
    n = len(W)
    for i in range(n):
        for j in range(i):
            W[j, i] = W[i, j]
    return W


def seed_entropy_rows(A):
    return np.array([seed_entropy(row) for row in A])


def seed_head_distance(docs):
    """sum over documents and tokens of seed_js_distance between every two heads."""
    docs = [np.asarray(d, dtype=np.float64) for d in docs]
    L, H = docs[0].shape[:2]
    N = L * H
    D = np.zeros((N, N))
    for doc in docs:
        rows = doc.reshape(N, doc.shape[2], doc.shape[3])
        for t in range(doc.shape[2]):
            for a in range(N):
                for b in range(a + 1, N):
                    D[a, b] += seed_js_distance(rows[a, t], rows[b, t])
    return D + D.T


# ---- NumPy references --------------------------------------------------------------------


def js_matrix_numpy(A, base=2):
    """Vectorised NumPy JS divergence matrix of one head: one row against all rows at a time,
    JS = (sum rel_entr(p, m) + sum rel_entr(q, m)) / 2 with m = (p + q) / 2."""
    A = np.asarray(A, dtype=np.float64)
    A = A / A.sum(axis=1, keepdims=True)
    n = A.shape[0]
    out = np.empty((n, n))
    for i in range(n):
        M = 0.5 * (A[i][None, :] + A)
        out[i] = 0.5 * (rel_entr(A[i][None, :], M).sum(axis=1) + rel_entr(A, M).sum(axis=1))
    np.fill_diagonal(out, 0.0)
    return np.maximum(out, 0.0) / _base_div(base)


def head_distance_numpy(docs, clark=False, base=2, per_layer=False):
    """Head distances over documents [L][H][n][n], vectorised over head pairs for each token.
    Seed metric: sum_t sqrt(JS); clark: sum_t JS of rows smoothed as 0.001/n + 0.999 a."""
    D = None
    for doc in docs:
        doc = np.asarray(doc, dtype=np.float64)
        L, H, n, _ = doc.shape
        N = L * H
        if D is None:
            D = np.zeros((N, N))
        X = doc.reshape(N, n, n)
        X = X / X.sum(axis=2, keepdims=True)
        if clark:
            X = 0.001 / n + 0.999 * X
        for t in range(n):
            P = X[:, t, :]  # [N][n]
            M = 0.5 * (P[:, None, :] + P[None, :, :])
            js = 0.5 * (rel_entr(P[:, None, :], M).sum(axis=2) + rel_entr(P[None, :, :], M).sum(axis=2))
            js = np.maximum(js, 0.0) / _base_div(base)
            np.fill_diagonal(js, 0.0)
            D += js if clark else np.sqrt(js)
    if per_layer:
        L_ = docs[0].shape[0]
        H_ = docs[0].shape[1]
        return np.stack([D[l * H_:(l + 1) * H_, l * H_:(l + 1) * H_] for l in range(L_)])
    return D


# ---- test data -----------------------------------------------------------------------------


def random_attention(rng, shape, concentration=1.0, causal=False, dtype=np.float64):
    """Row-stochastic attention [..., n, n] from a Dirichlet; causal: zeros after the diagonal."""
    *lead, n, n2 = shape
    assert n == n2
    A = rng.gamma(concentration, size=shape)
    if causal:
        A = A * np.tril(np.ones((n, n)))
    A = A / A.sum(axis=-1, keepdims=True)
    return A.astype(dtype)


def softmax_attention(rng, shape, temperature=1.0, dtype=np.float32):
    """Attention as a model makes it: softmax of Gaussian logits."""
    logits = rng.standard_normal(shape) * temperature
    return softmax(logits, axis=-1).astype(dtype)
