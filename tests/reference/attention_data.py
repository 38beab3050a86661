"""Synthetic softmax attention and its Jensen–Shannon distance matrices.

Shared by the tests and the benchmarks, so both look at the same kind of matrices: rows of a
softmax over random logits with a few sharp "focus" tokens, as trained heads produce, and the
base-2 Jensen–Shannon distance between the rows (scipy's definition)."""
import numpy as np


def softmax_attention(n, rng, causal=False, temperature=1.0):
    """[n][n] row-stochastic matrix: softmax of random logits with a few strong keys."""
    logits = rng.normal(size=(n, n)) / temperature
    focus = rng.integers(0, n, size=max(1, n // 16))
    logits[:, focus] += rng.gamma(2.0, 1.5, size=focus.size)
    logits[np.arange(n), np.arange(n)] += rng.normal(1.0, 0.5, size=n)
    if causal:
        logits = np.where(np.tril(np.ones((n, n), bool)), logits, -np.inf)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def js_distance_matrix(att):
    """Base-2 Jensen–Shannon distance between the rows of att ([n][n] -> [n][n])."""
    p = att[:, None, :]
    q = att[None, :, :]
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kp = np.where(p > 0, p * np.log2(p / m), 0.0).sum(-1)
        kq = np.where(q > 0, q * np.log2(q / m), 0.0).sum(-1)
    js = np.clip(0.5 * (kp + kq), 0.0, None)
    d = np.sqrt(js)
    d = 0.5 * (d + d.T)
    np.fill_diagonal(d, 0.0)
    return d


def attention_js_matrices(n, count, seed=0, causal=False):
    rng = np.random.default_rng(seed)
    return [js_distance_matrix(softmax_attention(n, rng, causal=causal)) for _ in range(count)]
