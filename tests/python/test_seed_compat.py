"""--seed-compat: topo, compare, graph and divergence reproduce the seed notebook's functions
(tests/reference/measures_ref.py, written as its cells: softmax over the attention rows, its
distance cell in both versions — scipy's JS distance (natural log), later √ of it — its KL in
log2 with 1e-9 inside the logs, scipy's entropy, its graph of a causal head with the lower
triangle copied up), then GUDHI's Rips persistence and bottleneck, run here on the attention that
`attnscope attention` reports for the same text (whose agreement with transformers is tested by
the model runtime's own fixtures). Tolerances: 1e-9 on every measure (the notebook's functions
run in float64 on the same float32 attention; the library's errors are ~1e-13), the diagrams
equal (bottleneck 1e-9), the compared bottleneck 1e-6 (compare allows 1e-9 in its distances)."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from rips_reference import ATTNSCOPE, ROOT, assert_same_diagrams, gudhi_diagrams

sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
from measures_ref import (seed_entropy_rows, seed_graph_weights, seed_js_distance,  # noqa: E402
                          seed_js_divergence, seed_kl, seed_matrix)

SENTENCES = ["The cat sat on the mat.", "The cat is sleeping on the warm mat."]


def models():
    out = [os.path.join(ROOT, "tests", "fixtures", "models", m) for m in ("bert", "gpt2")]
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        from minilm_dir import minilm_dir
        d = minilm_dir()
        if d:
            out.append(d)
    except ImportError:
        pass
    return [m for m in out if os.path.exists(os.path.join(m, "config.json"))]


def run(*args):
    p = subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p


def head_of(tmp_path, model, text, layer, head):
    att = tmp_path / "att.npy"
    run("attention", "--model", model, "--text", text, "--npy", str(att))
    return np.load(att)[layer, head].astype(np.float64)


def notebook_head(tmp_path, model, text, layer, head, cell=seed_js_distance):
    return seed_matrix(head_of(tmp_path, model, text, layer, head), cell)


# the notebook's two distance cells: --seed-distance's name, its function
CELLS = {"sqrt-jsd": seed_js_distance, "jsd": seed_js_divergence}
IDS = lambda m: os.path.basename(m.rstrip("/"))  # noqa: E731


@pytest.mark.parametrize("cell", ["sqrt-jsd", "jsd", None])
@pytest.mark.parametrize("model", models(), ids=IDS)
def test_topo_seed_compat(tmp_path, model, cell):
    layer, head = 1, 1
    out = tmp_path / "t"
    opts = ["--seed-compat"] if cell is None else ["--seed-distance", cell]
    run("topo", "--model", model, "--text", SENTENCES[0], "--layer", str(layer), "--head", str(head),
        "--out", str(out), *opts)
    ref = notebook_head(tmp_path, model, SENTENCES[0], layer, head, CELLS[cell or "sqrt-jsd"])
    ours = np.load(out / "js.npy")
    np.testing.assert_allclose(ours, 0.5 * (ref + ref.T), rtol=0, atol=1e-9)
    doc = json.load(open(out / "result.json"))
    dg = {e["dim"]: np.array([[b, math.inf if d is None else d] for b, d in e["pairs"]]).reshape(-1, 2)
          for e in doc["diagrams"]["dims"]}
    assert_same_diagrams(dg, gudhi_diagrams(0.5 * (ours + ours.T), 2), 1e-9, range(3), "seed topo")


@pytest.mark.parametrize("cell", ["sqrt-jsd", "jsd"])
@pytest.mark.parametrize("model", models()[:1], ids=["bert"])
def test_compare_seed_compat(tmp_path, model, cell):
    gudhi = pytest.importorskip("gudhi")
    import gudhi.hera
    out = tmp_path / "c.json"
    run("compare", "--model", model, "--text", SENTENCES[0], "--text", SENTENCES[1],
        "--layer", "0", "--head", "1", "--json", str(out), "--seed-distance", cell)
    got = json.load(open(out))["bottleneck"]
    d = [notebook_head(tmp_path, model, s, 0, 1, CELLS[cell]) for s in SENTENCES]
    dg = [gudhi_diagrams(0.5 * (m + m.T), 1) for m in d]
    for k in (0, 1):
        fa, fb = dg[0][k][np.isfinite(dg[0][k][:, 1])], dg[1][k][np.isfinite(dg[1][k][:, 1])]
        assert abs(got[str(k)] - gudhi.hera.bottleneck_distance(fa, fb, delta=0)) <= 1e-6


@pytest.mark.parametrize("model", models(), ids=IDS)
def test_graph_seed_compat(tmp_path, model):
    """graph --seed-compat draws the notebook's weights: for a causal head (GPT-2) the lower
    triangle copied up; other heads as they are."""
    out = tmp_path / "g"
    run("graph", "--model", model, "--text", SENTENCES[1], "--layer", "1", "--head", "0",
        "--out", str(out), "--seed-compat")
    a = head_of(tmp_path, model, SENTENCES[1], 1, 0)
    causal = not np.any(np.triu(a, 1))
    ref = seed_graph_weights(a) if causal else a
    got = np.load(out / "graph_1_L1_H0.npy")
    assert np.max(np.abs(got - ref)) <= 1e-9
    doc = json.load(open(out / "graph.json"))
    assert doc["inputs"][0]["symmetrized"] == causal and doc["seed_compat"] is True
    if "gpt2" in model:
        assert causal and np.allclose(got, got.T)


@pytest.mark.parametrize("model", models(), ids=IDS)
def test_divergence_seed_compat(tmp_path, model):
    """divergence --seed-compat: the notebook's entropy, KL and first distance cell."""
    out = tmp_path / "d"
    run("divergence", "--model", model, "--text", SENTENCES[0], "--layer", "0", "--head", "1",
        "--out", str(out), "--seed-compat")
    a = head_of(tmp_path, model, SENTENCES[0], 0, 1)
    refs = {"entropy": seed_entropy_rows(a), "kl": seed_matrix(a, seed_kl),
            "js": seed_matrix(a, seed_js_divergence)}
    for k, ref in refs.items():
        assert np.max(np.abs(np.load(out / f"{k}_1_L0_H1.npy") - ref)) <= 1e-9, k


def test_seed_options_refused(tmp_path):
    m = models()[0]
    common = ["--model", m, "--text", SENTENCES[0], "--layer", "0", "--head", "0", "--out", str(tmp_path)]
    for cmd, extra, words in (("graph", ["--seed-compat", "--directed"], "--directed"),
                              ("divergence", ["--seed-compat", "--base", "e"], "--base"),
                              ("topo", ["--seed-distance", "cube"], "sqrt-jsd or jsd")):
        p = subprocess.run([ATTNSCOPE, cmd, *common, *extra], capture_output=True, text=True)
        assert p.returncode == 2 and words in p.stderr, p.stderr
