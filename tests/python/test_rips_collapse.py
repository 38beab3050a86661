"""attnscope rips --collapse-edges (Boissonnat–Pritam edge collapse, issue 18): the diagrams of
the collapsed flag filtration are those of the whole one, in every dimension — exactly (the
collapse delays edges to times that are other edges' distances, so the pairs are the same
doubles, in another order) against attnscope without it, and against ripser (1e-5 relative to
the largest distance: it computes in float) and GUDHI (1e-9). On attention JS matrices (dense
and under a threshold, .npy and text), Ripser's examples, Z/3; the same bytes at 1, 2 and 3
threads; the path of more than 32 768 points (ATS_RIPS_COLLAPSE_BITS=0) gives the same bytes;
representatives are refused; the Python binding takes it too."""
import os
import subprocess

import numpy as np
import pytest

from rips_reference import (ATTNSCOPE, assert_same_diagrams, gudhi_diagrams, parse_ripser_text, run_attnscope,
                            run_ripser, write_lower)
from attention_data import attention_js_matrices  # noqa: E402 (rips_reference sets the path)

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "ph-benchmarks")


def sorted_diagrams(dgms):
    return {k: v[np.lexsort((v[:, 1], v[:, 0]))] for k, v in dgms.items()}


def run_cli(args, env=None):
    proc = subprocess.run([ATTNSCOPE, "rips", *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("n,dim,threshold,modulus", [
    (120, 2, None, None), (200, 1, None, None), (110, 2, 0.15, 3), (50, 3, None, None),
])
def test_attention_same_diagrams(tmp_path, n, dim, threshold, modulus):
    """threshold: a quantile of the distances (neighbour lists), or None (the enclosing radius)."""
    d = attention_js_matrices(n, 1, seed=n + dim)[0]
    if threshold is not None:
        threshold = float(np.quantile(d[np.tril_indices(n, -1)], threshold))
    path = str(tmp_path / "js.txt")
    write_lower(path, d)
    plain, _ = run_attnscope(path, "lower-distance", dim, threshold, modulus)
    collapsed, _ = run_attnscope(path, "lower-distance", dim, threshold, modulus, ["--collapse-edges"])
    plain, collapsed = sorted_diagrams(plain), sorted_diagrams(collapsed)
    for k in range(dim + 1):
        assert np.array_equal(plain[k], collapsed[k]), f"H{k} differs with --collapse-edges"
    if modulus is None:
        ref = run_ripser(path, "lower-distance", dim, threshold)
        assert_same_diagrams(collapsed, ref, 1e-5 * float(d.max()), range(dim + 1), "ripser")
    ref = gudhi_diagrams(d, dim, threshold, modulus or 2)
    assert_same_diagrams(collapsed, ref, 1e-9, range(dim + 1), "gudhi")
    # the .npy path (rows read on every thread), at 1-3 threads: the same bytes
    npy = str(tmp_path / "js.npy")
    np.save(npy, d)
    extra = (["--threshold", repr(threshold)] if threshold else []) + (
        ["--modulus", str(modulus)] if modulus else [])
    outs = [run_cli([npy, "--dim", dim, "--collapse-edges", "--precision", 17, "--threads", t] + extra)
            for t in (1, 2, 3)]
    outs.append(run_cli([npy, "--dim", dim, "--collapse-edges", "--precision", 17] + extra,
                        env={"ATS_RIPS_COLLAPSE_BITS": "0"}))
    assert all(o == outs[0] for o in outs)


@pytest.mark.parametrize("name,args", [
    ("sphere_3_192.lower_distance_matrix", ["--dim", "2"]),
    ("o3_1024.txt", ["--format", "point-cloud", "--dim", "3", "--threshold", "1.8"]),
    ("projective_plane.lower_distance_matrix", ["--dim", "2", "--modulus", "2"]),
])
def test_examples_same_diagrams(name, args):
    path = os.path.join(DATA, name)
    a = run_cli([path, "--precision", 17] + args)
    b = run_cli([path, "--precision", 17, "--collapse-edges"] + args)

    def intervals(text):
        return {k: sorted(map(tuple, v)) for k, v in parse_ripser_text(text).items()}
    assert intervals(a) == intervals(b)
    assert sum(len(v) for k, v in intervals(a).items() if k >= 1) > 0


def test_representatives_refused(tmp_path):
    path = str(tmp_path / "js.txt")
    write_lower(path, attention_js_matrices(40, 1, seed=1)[0])
    for flag in ("--cycles", "--cocycles"):
        proc = subprocess.run([ATTNSCOPE, "rips", path, "--collapse-edges", flag], capture_output=True,
                              text=True)
        assert proc.returncode == 2 and "no cycles or cocycles" in proc.stderr, proc.stderr
        assert proc.stdout == ""


def test_python_binding(package):
    d = attention_js_matrices(100, 1, seed=7)[0]
    a = package.rips(d, max_dim=2)
    b = package.rips(d, max_dim=2, collapse_edges=True)
    for k in range(3):
        x, y = a[k], b[k]
        assert np.array_equal(x[np.lexsort((x[:, 1], x[:, 0]))], y[np.lexsort((y[:, 1], y[:, 0]))])
