"""Reference persistence for the rips tests: Debian's ripser and GUDHI, and diagram comparison."""
import json
import math
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
ATTNSCOPE = os.environ.get("ATTNSCOPE", os.path.join(ROOT, "build", "attnscope"))


def write_lower(path, d):
    """Ripser's lower-distance format, with the empty first row so every reader agrees."""
    n = d.shape[0]
    with open(path, "w") as f:
        for i in range(n):
            f.write(",".join(repr(float(d[i, j])) for j in range(i)) + "\n")


def write_full(path, d):
    with open(path, "w") as f:
        for row in d:
            f.write(" ".join(repr(float(x)) for x in row) + "\n")


def write_points(path, pts):
    with open(path, "w") as f:
        for p in pts:
            f.write(",".join(repr(float(x)) for x in p) + "\n")


def run_attnscope(path, fmt, dim, threshold=None, modulus=None, extra=()):
    out = path + ".json"
    cmd = [ATTNSCOPE, "rips", path, "--format", fmt, "--dim", str(dim), "--json", out]
    if threshold is not None:
        cmd += ["--threshold", repr(threshold)]
    if modulus is not None:
        cmd += ["--modulus", str(modulus)]
    cmd += list(extra)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    with open(out) as f:
        doc = json.load(f)
    os.remove(out)
    dgms = {}
    for entry in doc["dims"]:
        dgms[entry["dim"]] = np.array(
            [[b, math.inf if d is None else d] for b, d in entry["pairs"]], dtype=float
        ).reshape(-1, 2)
    return dgms, proc.stdout


def parse_ripser_text(text):
    dgms, dim = {}, None
    for line in text.splitlines():
        if line.startswith("persistence intervals in dim"):
            dim = int(line.split()[-1].rstrip(":"))
            dgms[dim] = []
        elif dim is not None and line.startswith(" ["):
            b, d = line.strip()[1:].split(")")[0].split(",")
            dgms[dim].append([float(b), math.inf if d.strip() == "" else float(d)])
    return {k: np.array(v, dtype=float).reshape(-1, 2) for k, v in dgms.items()}


def run_ripser(path, fmt, dim, threshold=None, ratio=None):
    cmd = ["ripser", "--format", fmt, "--dim", str(dim)]
    if threshold is not None:
        cmd += ["--threshold", repr(threshold)]
    if ratio is not None:
        cmd += ["--ratio", repr(ratio)]
    proc = subprocess.run(cmd + [path], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return parse_ripser_text(proc.stdout)


def gudhi_diagrams(d, dim, threshold=None, modulus=2):
    import gudhi

    rc = gudhi.RipsComplex(distance_matrix=d, max_edge_length=math.inf if threshold is None else threshold)
    st = rc.create_simplex_tree(max_dimension=dim + 1)
    st.compute_persistence(homology_coeff_field=modulus, min_persistence=0.0)
    return {k: np.array(st.persistence_intervals_in_dimension(k), dtype=float).reshape(-1, 2)
            for k in range(dim + 1)}


def assert_same_diagrams(ours, ref, tol, dims, label=""):
    """Same multiset of pairs within tol: equal counts of finite and essential points, the
    essential births equal within tol, and the exact bottleneck distance of the finite parts
    at most tol (so a matching within tol exists)."""
    import gudhi.hera

    for k in dims:
        a = ours.get(k, np.zeros((0, 2)))
        b = ref.get(k, np.zeros((0, 2)))
        # Ripser and GUDHI drop zero-length pairs; so must we.
        b = b[~(b[:, 1] - b[:, 0] <= 0)] if len(b) else b
        fa, fb = a[np.isfinite(a[:, 1])], b[np.isfinite(b[:, 1])]
        ea, eb = np.sort(a[~np.isfinite(a[:, 1]), 0]), np.sort(b[~np.isfinite(b[:, 1]), 0])
        assert len(fa) == len(fb), f"{label} dim {k}: {len(fa)} finite pairs vs {len(fb)}"
        assert len(ea) == len(eb), f"{label} dim {k}: {len(ea)} essential classes vs {len(eb)}"
        if len(ea):
            assert np.max(np.abs(ea - eb)) <= tol, f"{label} dim {k}: essential births differ"
        if len(fa):
            # Hera's exact bottleneck: GUDHI's exact search can overshoot (gudhi-devel #1367)
            bn = gudhi.hera.bottleneck_distance(fa, fb, delta=0)
            assert bn <= tol, f"{label} dim {k}: bottleneck {bn} > {tol}"


def assignment_exact(a, b, q, p):
    """W_q with internal L_p by scipy's exact assignment on the augmented matrix; essential
    points matched within their class as Hera does."""

    def split(x):
        x = np.asarray(x, float).reshape(-1, 2)
        x = x[x[:, 0] != x[:, 1]]
        fin = np.isfinite(x).all(1)
        return x[fin], x[~fin]

    a, ea = split(a)
    b, eb = split(b)
    ess = 0.0
    for col, inf in [(0, np.inf), (0, -np.inf), (1, np.inf), (1, -np.inf)]:
        # one infinite coordinate: matched on the finite one
        sel = lambda e: e[(e[:, 1 - col] == inf) & np.isfinite(e[:, col])][:, col]
        sa, sb = np.sort(sel(ea)), np.sort(sel(eb))
        if len(sa) != len(sb):
            return math.inf
        ess += float(np.sum(np.abs(sa - sb) ** q))
    for sign in (1, -1):  # both coordinates infinite: counts must agree
        cnt = lambda e: int(np.sum((e[:, 0] == -sign * np.inf) & (e[:, 1] == sign * np.inf)))
        if cnt(ea) != cnt(eb):
            return math.inf
    n, m = len(a), len(b)
    if n + m == 0:
        return ess ** (1 / q)
    nrm = lambda v: np.linalg.norm(v, ord=p, axis=-1)
    C = np.zeros((n + m, n + m))
    if n and m:
        C[:n, :m] = nrm(a[:, None, :] - b[None, :, :]) ** q

    def to_diag(x):
        mid = (x[:, 0] + x[:, 1]) / 2
        return nrm(np.stack([np.abs(x[:, 0] - mid), np.abs(x[:, 1] - mid)], -1)) ** q

    C[:n, m:] = to_diag(a)[:, None]
    C[n:, :m] = to_diag(b)[None, :]
    from scipy.optimize import linear_sum_assignment

    r, c = linear_sum_assignment(C)
    return (C[r, c].sum() + ess) ** (1 / q)
