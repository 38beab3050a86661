"""--seed-compat: topo and compare reproduce the seed notebook's pipeline — softmax over the
attention rows, √ of scipy's JS distance (natural log), GUDHI's Rips persistence, GUDHI's
bottleneck — run here on the attention that `attnscope attention` reports for the same text
(whose agreement with transformers is tested by the model runtime's own fixtures).
Tolerances: 1e-6 in the JS matrix (the issue's bound; float32 attention in, double out), the
diagrams equal (bottleneck 1e-9)."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from rips_reference import ATTNSCOPE, ROOT, assert_same_diagrams, gudhi_diagrams

sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
from measures_ref import seed_js_distance, seed_matrix  # noqa: E402

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


def notebook_head(tmp_path, model, text, layer, head):
    att = tmp_path / "att.npy"
    run("attention", "--model", model, "--text", text, "--npy", str(att))
    a = np.load(att)[layer, head].astype(np.float64)
    return seed_matrix(a, seed_js_distance)


@pytest.mark.parametrize("model", models(), ids=lambda m: os.path.basename(m.rstrip("/")))
def test_topo_seed_compat(tmp_path, model):
    layer, head = 1, 1
    out = tmp_path / "t"
    run("topo", "--model", model, "--text", SENTENCES[0], "--layer", str(layer), "--head", str(head),
        "--out", str(out), "--seed-compat")
    ref = notebook_head(tmp_path, model, SENTENCES[0], layer, head)
    ours = np.load(out / "js.npy")
    np.testing.assert_allclose(ours, 0.5 * (ref + ref.T), atol=1e-6)
    doc = json.load(open(out / "result.json"))
    dg = {e["dim"]: np.array([[b, math.inf if d is None else d] for b, d in e["pairs"]]).reshape(-1, 2)
          for e in doc["diagrams"]["dims"]}
    assert_same_diagrams(dg, gudhi_diagrams(0.5 * (ours + ours.T), 2), 1e-9, range(3), "seed topo")


@pytest.mark.parametrize("model", models()[:1], ids=["bert"])
def test_compare_seed_compat(tmp_path, model):
    gudhi = pytest.importorskip("gudhi")
    import gudhi.hera
    out = tmp_path / "c.json"
    run("compare", "--model", model, "--text", SENTENCES[0], "--text", SENTENCES[1],
        "--layer", "0", "--head", "1", "--json", str(out), "--seed-compat")
    got = json.load(open(out))["bottleneck"]
    d = [notebook_head(tmp_path, model, s, 0, 1) for s in SENTENCES]
    dg = [gudhi_diagrams(0.5 * (m + m.T), 1) for m in d]
    for k in (0, 1):
        fa, fb = dg[0][k][np.isfinite(dg[0][k][:, 1])], dg[1][k][np.isfinite(dg[1][k][:, 1])]
        assert abs(got[str(k)] - gudhi.hera.bottleneck_distance(fa, fb, delta=0)) <= 1e-6
