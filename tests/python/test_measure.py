"""`attnscope measure` against scipy, the seed notebook's functions and NumPy references.

Tolerances: 1e-12 absolute against scipy on float64 input (the library is designed for errors
below 2e-13 on JS distances, ~1e-15 elsewhere), 1e-6 on float32 input (computed in double from
the same float32 values, so in practice ~1e-15), 1e-12 relative for head distances. Sizes are
small because the suite also runs against the sanitizer build.
"""

import json
import os
import subprocess
import sys
from decimal import Decimal, getcontext
from pathlib import Path

import numpy as np
import pytest
from scipy.spatial.distance import cdist

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reference"))
import measures_ref as R  # noqa: E402

BIN = os.environ.get("ATTNSCOPE", str(Path(__file__).resolve().parents[2] / "build" / "attnscope"))


def run(*args, ok=True):
    r = subprocess.run([BIN, "measure", *map(str, args)], capture_output=True, text=True)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def measure(tmp_path, what, A, *opts):
    inp, out = tmp_path / "A.npy", tmp_path / f"{what}.npy"
    np.save(inp, A)
    run(what, "--input", inp, "--output", out, *opts)
    res = np.load(out)
    assert res.dtype == np.float64
    return res


REFS = {"entropy": R.entropy_ref, "kl": R.kl_ref, "js": R.js_ref, "jsd": R.jsd_ref}


def assert_close_inf(got, ref, tol):
    assert got.shape == ref.shape
    assert np.array_equal(np.isinf(got), np.isinf(ref))
    fin = np.isfinite(ref)
    assert np.max(np.abs(got[fin] - ref[fin]), initial=0.0) <= tol


@pytest.mark.parametrize("what", ["entropy", "kl", "js", "jsd"])
@pytest.mark.parametrize("base", ["2", "e"])
def test_matches_scipy_float64(tmp_path, what, base):
    rng = np.random.default_rng(1)
    A = R.random_attention(rng, (2, 2, 23, 23), concentration=0.6)
    A[1, 1] = R.random_attention(rng, (23, 23), concentration=0.6, causal=True)
    got = measure(tmp_path, what, A, "--base", base)
    b = 2 if base == "2" else "e"
    for l in range(2):
        for h in range(2):
            assert_close_inf(got[l, h], REFS[what](A[l, h], base=b), 1e-12)
    if what in ("js", "jsd"):
        assert np.all(np.diag(got[0, 0]) == 0.0)


@pytest.mark.parametrize("what", ["entropy", "kl", "js", "jsd"])
def test_matches_scipy_float32_2d(tmp_path, what):
    rng = np.random.default_rng(2)
    A = R.softmax_attention(rng, (40, 40), temperature=2.0, dtype=np.float32)
    got = measure(tmp_path, what, A)
    assert got.shape == ((40,) if what == "entropy" else (40, 40))
    ref = REFS[what](A.astype(np.float64))
    assert_close_inf(got, ref, 1e-6)
    assert_close_inf(got, ref, 1e-12)  # computed in double from the same float32 values


@pytest.mark.parametrize("what", ["entropy", "kl", "js", "jsd"])
def test_eps_smoothing(tmp_path, what):
    rng = np.random.default_rng(3)
    A = R.random_attention(rng, (17, 17), concentration=0.5, causal=True)
    got = measure(tmp_path, what, A, "--eps", "1e-9", "--base", "e")
    assert_close_inf(got, REFS[what](A, base="e", eps=1e-9), 1e-12)
    assert np.all(np.isfinite(got))


def test_causal_kl_is_infinite_where_support_is_missing(tmp_path):
    A = np.tril(np.ones((4, 4)))
    A /= A.sum(axis=1, keepdims=True)
    K = measure(tmp_path, "kl", A)
    # row i has support {0..i}: KL(P_i || P_j) is finite iff i <= j
    assert np.array_equal(np.isinf(K), np.tril(np.ones((4, 4)), -1).astype(bool))
    assert K[0, 3] == pytest.approx(2.0)  # log2(1 / (1/4))


@pytest.mark.parametrize("what", ["entropy", "kl", "js", "jsd"])
def test_seed_compat(tmp_path, what):
    rng = np.random.default_rng(4)
    A = R.random_attention(rng, (30, 30), concentration=0.3, causal=True)
    got = measure(tmp_path, what, A, "--seed-compat")
    fn = {"kl": R.seed_kl, "js": R.seed_js_divergence, "jsd": R.seed_js_distance}
    ref = R.seed_entropy_rows(A) if what == "entropy" else R.seed_matrix(A, fn[what])
    assert np.max(np.abs(got - ref)) <= 1e-12


def test_seed_compat_kl_is_the_notebooks(tmp_path):
    """`measure kl --seed-compat` on a model's float32 attention [L][H][n][n] equals the
    notebook's KL (softmax, then sum p (log2(p + 1e-9) - log2(q + 1e-9))) within 1e-9 (in fact
    ~1e-15); --base 2 is the notebook's base and accepted, --base e is refused."""
    rng = np.random.default_rng(14)
    A = R.softmax_attention(rng, (2, 3, 19, 19), temperature=3.0, dtype=np.float32)
    A[1, 2] = R.random_attention(rng, (19, 19), concentration=0.4, causal=True)
    got = measure(tmp_path, "kl", A, "--seed-compat")
    for l in range(2):
        for h in range(3):
            ref = R.seed_matrix(A[l, h].astype(np.float64), R.seed_kl)
            assert np.max(np.abs(got[l, h] - ref)) <= 1e-9
            assert np.max(np.abs(got[l, h] - ref)) <= 1e-13
    assert np.array_equal(measure(tmp_path, "kl", A, "--seed-compat", "--base", "2"), got)
    _bad(tmp_path, A, "--seed-compat", "--base", "e", what="kl", expect="bits")
    _bad(tmp_path, A, "--seed-compat", "--eps", "1e-6", what="kl", expect="--eps")


def _exact_jsd(p, q, base2=True):
    getcontext().prec = 60
    P = [Decimal(float(x)) for x in p]
    Q = [Decimal(float(x)) for x in q]
    js = Decimal(0)
    for a, b in zip(P, Q):
        s = a + b
        if a > 0:
            js += a * (2 * a / s).ln()
        if b > 0:
            js += b * (2 * b / s).ln()
    js /= 2
    if base2:
        js /= Decimal(2).ln()
    return float(js.sqrt())


def test_jsd_of_nearly_equal_rows_is_accurate(tmp_path):
    """JS ~ 1e-20 .. 1e-6: √JS must stay accurate (scipy itself loses digits here)."""
    rng = np.random.default_rng(5)
    base = rng.dirichlet(np.ones(24))
    rows = [base]
    for rel in [1e-10, 1e-8, 1e-6, 1e-4, 1e-3, 1e-2]:
        r = base * (1 + rel * rng.standard_normal(24))
        rows.append(r / r.sum())
    A = np.array(rows + [base] * (24 - len(rows)))
    A = A / A.sum(axis=1, keepdims=True)
    D = measure(tmp_path, "jsd", A)
    for i in range(7):
        for j in range(7):
            exact = 0.0 if np.array_equal(A[i], A[j]) else _exact_jsd(A[i], A[j])
            assert abs(D[i, j] - exact) <= 1e-13, (i, j, D[i, j], exact)
    assert D[0, 7] == 0.0  # identical rows


def test_js_distance_is_a_metric(tmp_path):
    rng = np.random.default_rng(6)
    A = R.random_attention(rng, (60, 60), concentration=0.2, causal=True)
    D = measure(tmp_path, "jsd", A)
    J = measure(tmp_path, "js", A)
    assert np.array_equal(D, D.T)
    assert np.all(np.diag(D) == 0)
    assert np.all((J >= 0) & (J <= 1))
    assert np.max(np.abs(D * D - J)) < 1e-15
    tri = rng.integers(0, 60, size=(5000, 3))
    i, j, k = tri.T
    assert np.all(D[i, k] <= D[i, j] + D[j, k] + 1e-12)


def test_threads_do_not_change_results(tmp_path):
    rng = np.random.default_rng(7)
    A = R.random_attention(rng, (2, 3, 33, 33), concentration=0.5)
    one = measure(tmp_path, "jsd", A, "--threads", "1")
    two = measure(tmp_path, "jsd", A, "--threads", "2")
    assert np.array_equal(one, two)


# ---- head distances -----------------------------------------------------------------------


def _docs(tmp_path, rng, L=2, H=3, lengths=(7, 12, 5), causal_every=2, dtype=np.float64):
    docs, files = [], []
    for i, n in enumerate(lengths):
        d = R.random_attention(rng, (L, H, n, n), concentration=0.7, causal=(i % causal_every == 1))
        d = d.astype(dtype)
        f = tmp_path / f"doc{i}.npy"
        np.save(f, d)
        docs.append(d.astype(np.float64))
        files.append(f)
    return docs, files


@pytest.mark.parametrize(
    "opts,kw",
    [
        ([], {}),
        (["--clark"], {"clark": True}),
        (["--base", "e"], {"base": "e"}),
        (["--clark", "--base", "e"], {"clark": True, "base": "e"}),
        (["--per-layer"], {"per_layer": True}),
    ],
)
def test_head_distance_matches_numpy(tmp_path, opts, kw):
    rng = np.random.default_rng(8)
    docs, files = _docs(tmp_path, rng)
    out = tmp_path / "D.npy"
    run("head-distance", "--input", *files, "--output", out, *opts)
    D = np.load(out)
    ref = R.head_distance_numpy(docs, **kw)
    assert D.shape == ref.shape
    assert np.max(np.abs(D - ref)) <= 1e-12 * max(1.0, np.abs(ref).max())


def test_head_distance_seed_compat(tmp_path):
    rng = np.random.default_rng(9)
    docs, files = _docs(tmp_path, rng, L=1, H=3, lengths=(6, 4))
    out = tmp_path / "D.npy"
    run("head-distance", "--input", *files, "--output", out, "--seed-compat")
    assert np.max(np.abs(np.load(out) - R.seed_head_distance(docs))) <= 1e-12


def test_head_distance_float32_and_metric(tmp_path):
    rng = np.random.default_rng(10)
    docs, files = _docs(tmp_path, rng, L=2, H=4, lengths=(9, 9, 9), dtype=np.float32)
    out = tmp_path / "D.npy"
    run("head-distance", "--input", *files, "--output", out)
    D = np.load(out)
    ref = R.head_distance_numpy(docs)
    assert np.max(np.abs(D - ref)) <= 1e-6
    assert np.array_equal(D, D.T) and np.all(np.diag(D) == 0)
    N = D.shape[0]
    for i in range(N):
        for j in range(N):
            assert np.all(D[i, :] <= D[i, j] + D[j, :] + 1e-12)


def test_head_distance_is_a_sum_over_documents(tmp_path):
    rng = np.random.default_rng(11)
    docs, files = _docs(tmp_path, rng, lengths=(8, 6))
    parts = []
    for i, f in enumerate(files):
        out = tmp_path / f"part{i}.npy"
        run("head-distance", "--input", f, "--output", out)
        parts.append(np.load(out))
    run("head-distance", "--input", *files, "--output", tmp_path / "all.npy")
    assert np.allclose(np.load(tmp_path / "all.npy"), parts[0] + parts[1], rtol=1e-14, atol=0)


# ---- bad input: exit 2, a message naming the place, nothing written ------------------------


def _bad(tmp_path, A, *opts, what="js", expect=None):
    inp, out = tmp_path / "bad.npy", tmp_path / "out.npy"
    np.save(inp, A)
    r = run(what, "--input", inp, "--output", out, *opts, ok=False)
    assert r.returncode == 2, r.stderr
    assert not out.exists()
    assert not any(p.name.startswith("out.npy") for p in tmp_path.iterdir())
    if expect:
        assert expect in r.stderr, r.stderr
    return r


def test_rows_not_summing_to_one(tmp_path):
    rng = np.random.default_rng(12)
    A = rng.random((1, 2, 6, 6))
    r = _bad(tmp_path, A, expect="layer 0, head 0, row 0")
    assert "--normalize" in r.stderr
    got = measure(tmp_path, "jsd", A, "--normalize")
    for h in range(2):
        assert np.max(np.abs(got[0, h] - R.jsd_ref(A[0, h] / A[0, h].sum(1, keepdims=True)))) < 1e-12


@pytest.mark.parametrize("value,word", [(np.nan, "NaN"), (-0.25, "negative"), (np.inf, "infinite")])
def test_bad_values(tmp_path, value, word):
    A = np.full((2, 3, 4, 4), 0.25)
    A[1, 2, 3, 1] = value
    for what in ("entropy", "kl", "js", "jsd"):
        _bad(tmp_path, A, what=what, expect="layer 1, head 2, row 3, column 1")
    _bad(tmp_path, A, "--normalize", expect=word)


def test_bad_shapes_and_usage(tmp_path):
    _bad(tmp_path, np.full((3, 4), 0.25), expect="not square")
    _bad(tmp_path, np.full((2, 4, 4), 0.25), expect="[1][H][n][n]")
    _bad(tmp_path, np.full((1, 1, 4, 5), 0.2), expect="non-square")
    _bad(tmp_path, np.ones((3, 3), dtype=np.int32), expect="float32 or float64")
    A = np.full((3, 3), 1 / 3)
    _bad(tmp_path, A, "--base", "10")
    _bad(tmp_path, A, "--eps", "-1")
    _bad(tmp_path, A, "--seed-compat", "--base", "2")
    _bad(tmp_path, A, "--clark")
    r = run("js", "--input", tmp_path / "missing.npy", "--output", tmp_path / "o.npy", ok=False)
    assert r.returncode == 2 and "missing.npy" in r.stderr
    assert run("nonsense", ok=False).returncode == 2
    assert run("--help").stdout.startswith("usage: attnscope measure")


def test_existing_output_survives_an_error(tmp_path):
    out = tmp_path / "out.npy"
    np.save(out, np.arange(3.0))
    np.save(tmp_path / "bad.npy", np.full((3, 3), 0.5))
    r = run("jsd", "--input", tmp_path / "bad.npy", "--output", out, ok=False)
    assert r.returncode == 2
    assert np.array_equal(np.load(out), np.arange(3.0))


def test_head_distance_bad_documents(tmp_path):
    rng = np.random.default_rng(13)
    docs, files = _docs(tmp_path, rng, lengths=(5, 5))
    other = tmp_path / "other.npy"
    np.save(other, R.random_attention(rng, (3, 3, 5, 5)))
    out = tmp_path / "D.npy"
    r = run("head-distance", "--input", files[0], other, "--output", out, ok=False)
    assert r.returncode == 2 and "other.npy" in r.stderr and not out.exists()
    bad = docs[1].copy()
    bad[1, 2, 4, 0] = np.nan
    np.save(files[1], bad)
    r = run("head-distance", "--input", files[0], files[1], "--output", out, ok=False)
    assert r.returncode == 2 and "layer 1, head 2, row 4, column 0" in r.stderr
    assert not out.exists()
    r = run("head-distance", "--input", files[0], "--output", out, "--clark", "--seed-compat", ok=False)
    assert r.returncode == 2


# ---- head statistics ----------------------------------------------------------------------


def test_stats_synthetic_heads(tmp_path):
    n = 10
    prev = np.zeros((n, n))
    prev[0, 0] = 1
    for i in range(1, n):
        prev[i, i - 1] = 1
    first = np.zeros((n, n))
    first[:, 0] = 1
    uniform = np.full((n, n), 1 / n)
    doc = np.stack([np.stack([prev, first, uniform])])  # [1][3][n][n]
    np.save(tmp_path / "doc.npy", doc)
    toks = ["[CLS]", "the", "cat", ",", "sat", "on", "the", "mat", ".", "[SEP]"]
    (tmp_path / "doc.txt").write_text("\n".join(toks) + "\n")
    out = tmp_path / "stats.json"
    run("stats", "--input", tmp_path / "doc.npy", "--tokens", tmp_path / "doc.txt", "--output", out)
    st = json.loads(out.read_text())
    assert st["layers"] == 1 and st["heads"] == 3
    s = {k: np.array(v, dtype=float)[0] for k, v in st["stats"].items()}
    assert s["positional"][0] == 1 and s["pos_offset"][0] == -1
    assert s["pos_share"][0] == pytest.approx(0.9)
    assert s["prev"][0] == 1.0 and s["self"][0] == pytest.approx(0.1)  # prev: over rows i >= 1
    assert s["cls"][1] == pytest.approx(1.0) and s["tpl_first"][1] == pytest.approx(0.0)
    assert s["entropy"][2] == pytest.approx(np.log2(n)) and s["entropy"][0] == 0
    assert s["sep"][2] == pytest.approx(0.1) and s["punct"][2] == pytest.approx(0.2)
    assert s["confidence"][1] == pytest.approx(1.0)
    # template distances against a direct computation
    T = np.eye(n)
    expect = np.linalg.norm(uniform - T) / np.sqrt(np.sum(uniform**2) + np.sum(T**2))
    assert s["tpl_identity"][2] == pytest.approx(expect, abs=1e-14)
    Tp = np.zeros((n, n))
    Tp[:, [3, 8]] = 0.5
    expect = np.linalg.norm(uniform - Tp) / np.sqrt(np.sum(uniform**2) + np.sum(Tp**2))
    assert s["tpl_punct"][2] == pytest.approx(expect, abs=1e-14)
    # rare tokens: "the" occurs twice, every other token once; the rarest are all the others
    assert s["rare"][1] == pytest.approx(0.0)  # [CLS] is excluded from rarity
    # CSV and NPY outputs carry the same numbers
    run("stats", "--input", tmp_path / "doc.npy", "--tokens", tmp_path / "doc.txt", "--output", tmp_path / "s.npy")
    tab = np.load(tmp_path / "s.npy")
    assert tab.shape == (19, 1, 3)
    assert np.allclose(tab[0, 0], s["entropy"], equal_nan=True)
    run("stats", "--input", tmp_path / "doc.npy", "--output", tmp_path / "s.csv", "--cls", "0", "--sep", "-1")
    lines = (tmp_path / "s.csv").read_text().splitlines()
    assert lines[0].startswith("layer,head,entropy,cls,sep,punct") and len(lines) == 4
    assert lines[2].split(",")[3] == "1"  # head 1 puts all weight on [CLS]


def test_stats_bad_input(tmp_path):
    doc = np.full((1, 1, 4, 4), 0.25)
    np.save(tmp_path / "doc.npy", doc)
    (tmp_path / "t.txt").write_text("a\nb\nc\n")
    out = tmp_path / "s.json"
    r = run("stats", "--input", tmp_path / "doc.npy", "--tokens", tmp_path / "t.txt", "--output", out, ok=False)
    assert r.returncode == 2 and "3 tokens" in r.stderr and not out.exists()
    r = run("stats", "--input", tmp_path / "doc.npy", "--sep", "7", "--output", out, ok=False)
    assert r.returncode == 2 and not out.exists()
    r = run("stats", "--input", tmp_path / "doc.npy", "--output", tmp_path / "s.txt", ok=False)
    assert r.returncode == 2


# ---- context vectors ----------------------------------------------------------------------


@pytest.mark.parametrize("metric,scipy_metric", [("cosine-distance", "cosine"), ("euclidean", "euclidean")])
def test_context_matches_scipy(tmp_path, metric, scipy_metric):
    rng = np.random.default_rng(14)
    X = rng.standard_normal((3, 12, 16)).astype(np.float32)
    Y = rng.standard_normal((3, 5, 16)).astype(np.float32)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "y.npy", Y)
    run("context", "--input", tmp_path / "x.npy", "--output", tmp_path / "d.npy", "--metric", metric)
    run("context", "--input", tmp_path / "x.npy", "--against", tmp_path / "y.npy",
        "--output", tmp_path / "c.npy", "--metric", metric)
    D, C = np.load(tmp_path / "d.npy"), np.load(tmp_path / "c.npy")
    assert D.shape == (3, 12, 12) and C.shape == (3, 12, 5)
    for b in range(3):
        Xb, Yb = X[b].astype(np.float64), Y[b].astype(np.float64)
        assert np.max(np.abs(D[b] - cdist(Xb, Xb, scipy_metric))) < 1e-12
        assert np.max(np.abs(C[b] - cdist(Xb, Yb, scipy_metric))) < 1e-12
        assert np.all(np.diag(D[b]) == 0)


def test_context_cosine_similarity_and_errors(tmp_path):
    X = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    np.save(tmp_path / "x.npy", X)
    run("context", "--input", tmp_path / "x.npy", "--output", tmp_path / "s.npy")
    S = np.load(tmp_path / "s.npy")
    assert S.shape == (3, 3) and S[0, 1] == 0 and S[0, 2] == pytest.approx(np.sqrt(0.5))
    X[1] = 0
    np.save(tmp_path / "x.npy", X)
    r = run("context", "--input", tmp_path / "x.npy", "--output", tmp_path / "z.npy", ok=False)
    assert r.returncode == 2 and "vector 1 is zero" in r.stderr and not (tmp_path / "z.npy").exists()
