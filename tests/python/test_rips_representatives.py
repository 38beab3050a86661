"""Representative cycles and cocycles of H1 from `attnscope rips --cycles --cocycles --json`.

A cycle for the interval [b, d) must be a cycle (boundary zero mod p), have its youngest edge
at diameter b, be a boundary in the Rips complex at scale d and not at any scale below d
(checked by ranks over GF(2)). A cocycle must vanish on every triangle of diameter below d."""
import itertools
import json
import math
import subprocess

import numpy as np
import pytest

from rips_reference import ATTNSCOPE, write_points

from test_rips import circle, dist_from_points, torus


def gf2_rank(rows):
    """Rank over GF(2) of a list of Python ints (bit rows)."""
    basis = {}
    rank = 0
    for r in rows:
        while r:
            top = r.bit_length() - 1
            if top in basis:
                r ^= basis[top]
            else:
                basis[top] = r
                rank += 1
                break
    return rank


def run(tmp_path, pts, modulus=2, dim=1):
    path = str(tmp_path / "p.txt")
    write_points(path, pts)
    out = tmp_path / "o.json"
    proc = subprocess.run([ATTNSCOPE, "rips", path, "--format", "point-cloud", "--dim", str(dim),
                           "--modulus", str(modulus), "--cycles", "--cocycles", "--json", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return json.load(open(out))["dims"][1]


def edge_bit(a, b, n):
    a, b = max(a, b), min(a, b)
    return 1 << (a * (a - 1) // 2 + b)


@pytest.mark.parametrize("seed", range(4))
def test_cycles_represent_their_interval_gf2(tmp_path, seed):
    rng = np.random.default_rng(seed)
    pts = np.r_[circle(10, rng, 0.1), circle(7, rng, 0.05) * 0.5 + 3.0]
    n = len(pts)
    d = dist_from_points(pts)
    h1 = run(tmp_path, pts)
    assert len(h1["pairs"]) >= 1
    tris = [(max(d[a, b], d[a, c], d[b, c]), edge_bit(a, b, n) ^ edge_bit(a, c, n) ^ edge_bit(b, c, n))
            for a, b, c in itertools.combinations(range(n), 3)]
    for (birth, death), cyc in zip(h1["pairs"], h1["cycles"]):
        bits, youngest = 0, 0.0
        deg = np.zeros(n, int)
        for a, b, coef in cyc:
            assert coef == 1
            bits ^= edge_bit(a, b, n)
            deg[a] ^= 1
            deg[b] ^= 1
            youngest = max(youngest, d[a, b])
        assert not deg.any(), "not a cycle"
        assert abs(youngest - birth) <= 1e-12
        if death is None:
            continue
        at = [t for dt, t in tris if dt <= death]
        before = [t for dt, t in tris if dt < death]
        assert gf2_rank(at + [bits]) == gf2_rank(at), "not a boundary at death"
        assert gf2_rank(before + [bits]) == gf2_rank(before) + 1, "already a boundary before death"


@pytest.mark.parametrize("modulus", [3, 5])
def test_cycles_and_cocycles_mod_p(tmp_path, modulus):
    rng = np.random.default_rng(modulus)
    pts = torus(30, rng)
    n = len(pts)
    d = dist_from_points(pts)
    h1 = run(tmp_path, pts, modulus=modulus)
    assert len(h1["pairs"]) >= 2
    for (birth, death), cyc, coc in zip(h1["pairs"], h1["cycles"], h1["cocycles"]):
        bd = np.zeros(n, int)
        for a, b, c in cyc:  # d[a,b] = [b] - [a]
            bd[b] += c
            bd[a] -= c
        assert not (bd % modulus).any()
        assert abs(max(d[a, b] for a, b, _ in cyc) - birth) <= 1e-12
        z = {}
        for a, b, c in coc:
            z[(a, b)] = c
        limit = math.inf if death is None else death
        for a, b, c in itertools.combinations(range(n - 1, -1, -1), 3):  # a > b > c
            if max(d[a, b], d[a, c], d[b, c]) >= limit:
                continue
            v = z.get((b, c), 0) - z.get((a, c), 0) + z.get((a, b), 0)
            assert v % modulus == 0
