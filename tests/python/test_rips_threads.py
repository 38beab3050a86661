"""attnscope rips --threads N: one problem on N threads gives the output of --threads 1, byte for
byte (diagrams, cocycles, cycles, in text and JSON), and those diagrams are ripser's and GUDHI's.

Inputs: Ripser's example files in tests/data/ph-benchmarks, synthetic attention JS matrices
(dense enumeration, and sparse neighbour lists under an explicit threshold), Z/3 coefficients.
Thread counts 1, 2, 3 and 8 (more threads than cores, and windows of columns that do not divide
the column count). A .npy matrix is read on every thread (ats_rips_compute_rows): into the dense
engine's rows, or into neighbour lists under a threshold; its output is also that of the same
matrix as a text file read by one thread. Tolerances against the references as in test_rips.py: ripser 1e-5 relative
to the largest distance (it computes in float), GUDHI 1e-9."""
import os
import subprocess

import numpy as np
import pytest

from rips_reference import (ATTNSCOPE, assert_same_diagrams, gudhi_diagrams, run_attnscope, run_ripser,
                            write_lower)
from attention_data import attention_js_matrices  # noqa: E402 (rips_reference sets the path)

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "ph-benchmarks")
THREADS = (1, 2, 3, 8)


def run_threads(path, args, tmp_path):
    """stdout and JSON of every thread count; asserts they are all the same bytes."""
    outs = []
    for t in THREADS:
        js = str(tmp_path / f"out{t}.json")
        proc = subprocess.run([ATTNSCOPE, "rips", path, "--threads", str(t), "--json", js] + args,
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        with open(js) as f:
            outs.append((proc.stdout, f.read()))
    for t, o in zip(THREADS[1:], outs[1:]):
        assert o[0] == outs[0][0], f"--threads {t} prints other text than --threads 1"
        assert o[1] == outs[0][1], f"--threads {t} writes other JSON than --threads 1"
    return outs[0]


def js_file(tmp_path, n, seed, causal=False):
    d = attention_js_matrices(n, 1, seed=seed, causal=causal)[0]
    path = str(tmp_path / f"js{n}_{seed}.txt")
    write_lower(path, d)
    return path, d


@pytest.mark.parametrize("name,args", [
    ("sphere_3_192.lower_distance_matrix", ["--dim", "2", "--cocycles"]),
    ("projective_plane.lower_distance_matrix", ["--dim", "2", "--modulus", "3", "--cocycles"]),
    ("projective_plane.lower_distance_matrix", ["--dim", "2", "--cycles"]),
    ("o3_1024.txt", ["--format", "point-cloud", "--dim", "1", "--threshold", "1.4"]),
])
def test_ripser_files(tmp_path, name, args):
    path = os.path.join(DATA, name)
    text, _ = run_threads(path, args, tmp_path)
    fmt = args[args.index("--format") + 1] if "--format" in args else "lower-distance"
    thr = float(args[args.index("--threshold") + 1]) if "--threshold" in args else None
    if "--modulus" in args:
        return  # Debian's ripser is built for Z/2 only; GUDHI checks Z/3 in test_rips.py
    dim = int(args[args.index("--dim") + 1])
    ours, _ = run_attnscope(path, fmt, dim, thr, extra=["--threads", "8"])
    ref = run_ripser(path, fmt, dim, thr)
    assert_same_diagrams(ours, ref, 1e-5 * 2, range(dim + 1), name)


@pytest.mark.parametrize("n,seed,dim,causal,threshold", [
    (64, 1, 2, False, None),
    (150, 5, 2, False, None),
    (300, 2, 1, False, None),
    (100, 3, 2, True, None),
    (200, 4, 2, False, 0.45),  # sparse neighbour lists
])
def test_attention_js(tmp_path, n, seed, dim, causal, threshold):
    path, d = js_file(tmp_path, n, seed, causal)
    args = ["--dim", str(dim), "--cocycles"] + (["--cycles"] if dim >= 1 else [])
    if threshold is not None:
        args += ["--threshold", repr(threshold)]
    run_threads(path, args, tmp_path)
    ours, _ = run_attnscope(path, "lower-distance", dim, threshold, extra=["--threads", "3"])
    assert_same_diagrams(ours, run_ripser(path, "lower-distance", dim, threshold), 1e-5, range(dim + 1),
                         "ripser")
    if n <= 64:  # GUDHI builds every simplex up to dimension 3: small inputs only
        assert_same_diagrams(ours, gudhi_diagrams(d, dim, threshold), 1e-9, range(dim + 1), "gudhi")


def test_dense_forest_with_threshold(tmp_path):
    """The dense engine's H0 (Prim's spanning forest, then the union-find on its edges only)
    where the threshold keeps most edges but leaves the graph disconnected: three clusters of
    points far apart, and a JS matrix cut at its 30 % quantile. Same bytes at every thread
    count, the diagrams of ripser."""
    rng = np.random.default_rng(11)
    pts = np.concatenate([rng.normal(size=(60, 3)) * 0.3 + c for c in ([0, 0, 0], [9, 0, 0], [0, 9, 0])])
    d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    path = str(tmp_path / "clusters.txt")
    write_lower(path, d)
    lower = d[np.tril_indices(len(d), -1)]
    thr = float(np.quantile(lower, 0.3))  # > 1/4 of the edges: the dense engine
    assert thr < 5, thr  # the clusters are not joined
    args = ["--dim", "2", "--cycles", "--cocycles", "--threshold", repr(thr)]
    text, _ = run_threads(path, args, tmp_path)
    assert text.count("[0, )") == 3, "three essential H0 classes"
    ours, _ = run_attnscope(path, "lower-distance", 2, thr, extra=["--threads", "2"])
    assert_same_diagrams(ours, run_ripser(path, "lower-distance", 2, thr), 1e-5, range(3), "ripser")
    path, d = js_file(tmp_path, 220, 9)
    thr = float(np.quantile(d[np.tril_indices(220, -1)], 0.3))
    run_threads(path, ["--dim", "2", "--cycles", "--threshold", repr(thr)], tmp_path)
    ours, _ = run_attnscope(path, "lower-distance", 2, thr, extra=["--threads", "2"])
    assert_same_diagrams(ours, run_ripser(path, "lower-distance", 2, thr), 1e-5, range(3), "ripser")


@pytest.mark.parametrize("dtype,threshold,dim", [
    (np.float64, None, 2),  # the rows straight into the dense engine
    (np.float32, None, 1),
    (np.float64, 0.4, 2),  # neighbour lists, built on every thread
    (np.float32, 0.35, 1),
    (np.float64, 0.6, 1),  # a threshold keeping most edges: the dense engine again
])
def test_npy_rows_on_threads(tmp_path, dtype, threshold, dim):
    n = 300
    d = attention_js_matrices(n, 1, seed=21)[0].astype(dtype)
    npy = str(tmp_path / "m.npy")
    np.save(npy, d)
    txt = str(tmp_path / "m.txt")
    write_lower(txt, d.astype(np.float64))
    args = ["--dim", str(dim), "--cycles", "--cocycles"] + (["--threshold", repr(threshold)] if threshold else [])
    from_npy = run_threads(npy, args, tmp_path)
    from_text = subprocess.run([ATTNSCOPE, "rips", txt, "--threads", "1"] + args, capture_output=True, text=True)
    assert from_text.returncode == 0, from_text.stderr
    # the text file holds the same doubles (float32 widens exactly; repr round-trips)
    assert from_npy[0] == from_text.stdout


def test_npy_enclosing_radius_keeps_few_edges(tmp_path):
    """Without a threshold the rows first go to the dense engine; when the enclosing radius
    keeps under a quarter of the edges (a point near all others, the rest far apart) they go
    to neighbour lists after all, at the radius found on the way: the same bytes at every
    thread count as the text file on one thread."""
    rng = np.random.default_rng(3)
    n = 200
    d = 1.5 + 0.5 * rng.random((n, n))
    d[0, :] = 0.5 + 0.5 * rng.random(n)
    d[:, 0] = d[0, :]
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    npy, txt = str(tmp_path / "star.npy"), str(tmp_path / "star.txt")
    np.save(npy, d)
    write_lower(txt, d)
    args = ["--dim", "2", "--cocycles"]
    from_npy = run_threads(npy, args, tmp_path)
    assert "enclosing radius 0.99" in from_npy[0]
    from_text = subprocess.run([ATTNSCOPE, "rips", txt, "--threads", "1"] + args, capture_output=True, text=True)
    assert from_text.returncode == 0, from_text.stderr
    assert from_npy[0] == from_text.stdout
