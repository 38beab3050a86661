"""attnscope rips against Debian's ripser and GUDHI on more than 50 metrics.

Tolerances: against GUDHI (double precision) 1e-9 absolute after scaling the metric to unit
size; against ripser, which computes in float and prints 6 significant digits (a rounding
error up to 5e-6 relative), 1e-5 relative to the largest distance."""
import math
import os
import subprocess

import numpy as np
import pytest

from rips_reference import (ATTNSCOPE, assert_same_diagrams, gudhi_diagrams, parse_ripser_text,
                            run_attnscope, run_ripser, write_full, write_lower, write_points)
from attention_data import attention_js_matrices

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "ph-benchmarks")


def dist_from_points(p):
    diff = p[:, None, :] - p[None, :, :]
    return np.sqrt((diff ** 2).sum(-1))


def random_metric(n, rng):
    a = rng.uniform(0.1, 1.0, size=(n, n))
    d = np.tril(a, -1)
    d = d + d.T
    return d


def circle(n, rng, noise=0.05):
    t = rng.uniform(0, 2 * np.pi, n)
    return np.c_[np.cos(t), np.sin(t)] + rng.normal(scale=noise, size=(n, 2))


def sphere(n, rng):
    x = rng.normal(size=(n, 3))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def torus(n, rng, r1=1.0, r2=0.4):
    u, v = rng.uniform(0, 2 * np.pi, (2, n))
    return np.c_[(r1 + r2 * np.cos(v)) * np.cos(u), (r1 + r2 * np.cos(v)) * np.sin(u), r2 * np.sin(v)]


def make_cases():
    rng = np.random.default_rng(20261122)
    cases = []  # (name, kind, data, dim, threshold)
    for n in (5, 8, 10, 20, 30):
        for s in range(3):
            cases.append((f"random{n}_{s}", "matrix", random_metric(n, rng), 2, None))
    for s in range(3):
        cases.append((f"circle_{s}", "points", circle(30, rng), 2, None))
        cases.append((f"sphere_{s}", "points", sphere(36, rng), 2, None))
        cases.append((f"torus_{s}", "points", torus(45, rng), 2, None))
    for s in range(4):
        d = rng.integers(1, 5, size=(20, 20)).astype(float)
        d = np.tril(d, -1)
        cases.append((f"ties_{s}", "matrix", d + d.T, 2, None))
    for s in range(3):
        p = rng.normal(size=(12, 2))
        p = np.r_[p, p[:6]]  # duplicate points: zero distances
        cases.append((f"duplicates_{s}", "points", p, 2, None))
    cases.append(("n1", "matrix", np.zeros((1, 1)), 1, None))
    cases.append(("n2", "matrix", np.array([[0.0, 1.5], [1.5, 0.0]]), 1, None))
    cases.append(("n3_dim3", "matrix", random_metric(3, rng), 3, None))
    cases.append(("all_equal10", "matrix", np.ones((10, 10)) - np.eye(10), 3, None))
    cases.append(("all_equal_zero5", "matrix", np.zeros((5, 5)), 1, None))
    for s, d in enumerate(attention_js_matrices(40, 6, seed=5)):
        cases.append((f"attention_js_{s}", "matrix", d, 2, None))
    for s, d in enumerate(attention_js_matrices(32, 4, seed=6, causal=True)):
        cases.append((f"attention_js_causal_{s}", "matrix", d, 2, None))
    # Explicit thresholds: sparse neighbour lists (few edges) and dense enumeration (most edges).
    for s in range(3):
        p = torus(60, rng)
        d = dist_from_points(p)
        cases.append((f"torus_sparse_{s}", "points", p, 2, float(np.quantile(d[np.triu_indices(60, 1)], 0.15))))
        cases.append((f"torus_dense_thr_{s}", "points", p, 2, float(np.quantile(d[np.triu_indices(60, 1)], 0.6))))
    cases.append(("random_dim3", "matrix", random_metric(14, rng), 3, None))
    return cases


CASES = make_cases()


def test_enough_cases():
    assert len(CASES) >= 50


def metric_of(kind, data):
    return dist_from_points(data) if kind == "points" else data


@pytest.mark.parametrize("name,kind,data,dim,threshold", CASES, ids=[c[0] for c in CASES])
def test_against_ripser_and_gudhi(tmp_path, name, kind, data, dim, threshold):
    d = metric_of(kind, data)
    scale = max(1.0, float(d.max()))
    if kind == "points":
        path, fmt = str(tmp_path / "in.txt"), "point-cloud"
        write_points(path, data)
    elif d.shape[0] <= 3:
        path, fmt = str(tmp_path / "in.txt"), "distance"
        write_full(path, d)
    else:
        path, fmt = str(tmp_path / "in.txt"), "lower-distance"
        write_lower(path, d)
    ours, text = run_attnscope(path, fmt, dim, threshold)
    # The text output carries the same diagrams at 6 significant digits.
    assert_same_diagrams(parse_ripser_text(text), ours, 1e-5 * scale, range(dim + 1), name + " text")
    if d.shape[0] > 1:  # ripser 1.2.1 fails an assertion on a one-point space
        ref = run_ripser(path, fmt, dim, threshold)
        assert_same_diagrams(ours, ref, 1e-5 * scale, range(min(dim, d.shape[0] - 2) + 1), name + " ripser")
    if d.shape[0] == 1:  # GUDHI's RipsComplex of a 1x1 matrix has no vertex
        assert ours[0].tolist() == [[0.0, math.inf]] and len(ours[1]) == 0
        return
    g = gudhi_diagrams(d, dim, threshold)
    assert_same_diagrams(ours, g, 1e-9 * scale, range(dim + 1), name + " gudhi")


def test_npy_and_full_formats_agree(tmp_path):
    d = attention_js_matrices(30, 1, seed=9)[0]
    np.save(tmp_path / "d.npy", d)
    np.save(tmp_path / "d32.npy", d.astype(np.float32))
    write_full(str(tmp_path / "d.txt"), d)
    a, _ = run_attnscope(str(tmp_path / "d.npy"), "npy", 2)
    b, _ = run_attnscope(str(tmp_path / "d.txt"), "distance", 2)
    for k in range(3):
        np.testing.assert_array_equal(a[k], b[k])
    c, _ = run_attnscope(str(tmp_path / "d32.npy"), "npy", 2)
    assert_same_diagrams(c, a, 1e-6, range(3), "float32")


@pytest.mark.parametrize("modulus", [3, 5, 7])
def test_coefficients_against_gudhi(tmp_path, modulus):
    path = os.path.join(DATA, "projective_plane.lower_distance_matrix")
    ours2, _ = run_attnscope(path, "lower-distance", 2, modulus=2)
    oursp, _ = run_attnscope(path, "lower-distance", 2, modulus=modulus)
    vals = [float(x) for x in open(path).read().replace(",", " ").split()]
    n = int(round((1 + math.sqrt(1 + 8 * len(vals))) / 2))
    d = np.zeros((n, n))
    d[np.tril_indices(n, -1)] = vals
    d = d + d.T
    assert_same_diagrams(ours2, gudhi_diagrams(d, 2, modulus=2), 1e-9, range(3), "rp2 Z/2")
    assert_same_diagrams(oursp, gudhi_diagrams(d, 2, modulus=modulus), 1e-9, range(3), f"rp2 Z/{modulus}")
    # RP^2 has torsion: H1 and H2 are seen with Z/2 but not with odd primes.
    assert len(ours2[2]) > len(oursp[2])
    rng = np.random.default_rng(modulus)
    p = torus(40, rng)
    write_points(str(tmp_path / "t.txt"), p)
    ours, _ = run_attnscope(str(tmp_path / "t.txt"), "point-cloud", 2, modulus=modulus)
    assert_same_diagrams(ours, gudhi_diagrams(dist_from_points(p), 2, modulus=modulus), 1e-9, range(3), "torus")


def test_ripser_benchmark_file_sphere(tmp_path):
    path = os.path.join(DATA, "sphere_3_192.lower_distance_matrix")
    ours, _ = run_attnscope(path, "lower-distance", 1)
    ref = run_ripser(path, "lower-distance", 1)
    assert_same_diagrams(ours, ref, 1e-5 * 2, range(2), "sphere_3_192")


def test_ratio_and_min_persistence(tmp_path):
    p = torus(50, np.random.default_rng(3))
    path = str(tmp_path / "t.txt")
    write_points(path, p)
    ours, _ = run_attnscope(path, "point-cloud", 2, extra=["--ratio", "1.5"])
    ref = run_ripser(path, "point-cloud", 2, ratio=1.5)
    assert_same_diagrams(ours, ref, 1e-5, range(3), "ratio")
    full, _ = run_attnscope(path, "point-cloud", 1)
    filt, _ = run_attnscope(path, "point-cloud", 1, extra=["--min-persistence", "0.1"])
    f1 = full[1][full[1][:, 1] - full[1][:, 0] > 0.1]
    np.testing.assert_array_equal(np.sort(filt[1], axis=0), np.sort(f1, axis=0))


def test_batch_npy_equals_single(tmp_path):
    mats = attention_js_matrices(24, 5, seed=11)
    np.save(tmp_path / "batch.npy", np.stack(mats))
    proc = subprocess.run([ATTNSCOPE, "rips", str(tmp_path / "batch.npy"), "--dim", "1",
                           "--json", str(tmp_path / "b.json"), "--threads", "2"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    import json
    batch = json.load(open(tmp_path / "b.json"))["batch"]
    assert len(batch) == 5
    for i, m in enumerate(mats):
        np.save(tmp_path / "one.npy", m)
        one, _ = run_attnscope(str(tmp_path / "one.npy"), "npy", 1)
        for k in range(2):
            got = np.array([[b, math.inf if d is None else d] for b, d in batch[i]["dims"][k]["pairs"]]).reshape(-1, 2)
            np.testing.assert_array_equal(got, one[k])
