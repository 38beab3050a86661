"""The seed analyses as commands (attend, graph, divergence, topo, compare), checked against
independent references: scipy's Jensen–Shannon distance of the same attention rows, GUDHI's
Rips persistence and bottleneck distance of that metric."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from rips_reference import ATTNSCOPE, ROOT, gudhi_diagrams, assert_same_diagrams

sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
from attention_data import softmax_attention  # noqa: E402

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "models")


def run(*args):
    proc = subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True)
    return proc


def scipy_jsd(head):
    n = head.shape[0]
    d = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            if i != j:
                d[i, j] = jensenshannon(head[i].astype(np.float64), head[j].astype(np.float64), base=2)
    return 0.5 * (d + d.T)


def diagrams_from_json(entry):
    return {e["dim"]: np.array([[b, math.inf if x is None else x] for b, x in e["pairs"]]).reshape(-1, 2)
            for e in entry["dims"]}


@pytest.fixture
def attention_files(tmp_path):
    rng = np.random.default_rng(7)
    att = np.stack([np.stack([softmax_attention(14, rng, causal=(l == 1)) for _ in range(3)])
                    for l in range(2)]).astype(np.float32)
    att2 = np.stack([np.stack([softmax_attention(11, rng) for _ in range(3)])
                     for l in range(2)]).astype(np.float32)
    np.save(tmp_path / "a.npy", att)
    np.save(tmp_path / "b.npy", att2)
    (tmp_path / "a.txt").write_text("\n".join(f"tok{i}" for i in range(14)) + "\n")
    return tmp_path, att, att2


def test_topo_matches_scipy_and_gudhi(attention_files):
    tmp, att, _ = attention_files
    out = tmp / "topo"
    p = run("topo", "--attention", str(tmp / "a.npy"), "--tokens", str(tmp / "a.txt"),
            "--layer", "1", "--head", "2", "--out", str(out))
    assert p.returncode == 0, p.stderr
    doc = json.load(open(out / "result.json"))
    assert doc["tokens"][3] == "tok3"
    ref = scipy_jsd(att[1, 2])
    ours = np.load(out / "js.npy")
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    assert_same_diagrams(diagrams_from_json(doc["diagrams"]), gudhi_diagrams(ref, 2), 1e-8, range(3), "topo")
    for k in ("diagram", "barcode", "skeleton"):
        assert (out / f"{k}.png").stat().st_size > 1000
    for toks in doc["cycle_tokens"]:
        assert len(toks) >= 3 and all(t.startswith("tok") for t in toks)
    assert len(doc["clusters"]) == 3 and len(doc["layout3d"]) == 14
    # the same diagrams as `attnscope rips` on the matrix it wrote
    r = run("rips", str(out / "js.npy"), "--dim", "2", "--json", str(tmp / "r.json"))
    assert r.returncode == 0, r.stderr
    rj = json.load(open(tmp / "r.json"))
    for a_, b_ in zip(rj["dims"], doc["diagrams"]["dims"]):
        assert a_["pairs"] == b_["pairs"]


def test_compare_matches_gudhi_bottleneck(attention_files):
    gudhi = pytest.importorskip("gudhi")
    import gudhi.hera
    tmp, att, att2 = attention_files
    out = tmp / "cmp"
    p = run("compare", "--attention", str(tmp / "a.npy"), "--attention", str(tmp / "b.npy"),
            "--all-heads", "--out", str(out), "--format", "svg", "--json", str(tmp / "c.json"))
    assert p.returncode == 0, p.stderr
    b = np.load(out / "bottleneck.npy")
    cj = json.load(open(tmp / "c.json"))
    np.testing.assert_array_equal(np.array(cj["bottleneck"]["1"]), b[1])
    assert b.shape == (2, 2, 3)
    for l in range(2):
        for h in range(3):
            da = gudhi_diagrams(scipy_jsd(att[l, h]), 1)
            db = gudhi_diagrams(scipy_jsd(att2[l, h]), 1)
            for k in range(2):
                fa, fb = da[k][np.isfinite(da[k][:, 1])], db[k][np.isfinite(db[k][:, 1])]
                # Hera's exact value: GUDHI's exact search can overshoot (gudhi-devel #1367)
                assert abs(b[k, l, h] - gudhi.hera.bottleneck_distance(fa, fb, delta=0)) <= 1e-8
    assert (out / "bottleneck_H1.svg").exists() and (out / "wasserstein_H0.svg").exists()
    one = run("compare", "--attention", str(tmp / "a.npy"), "--attention", str(tmp / "b.npy"),
              "--layer", "0", "--head", "1", "--json", str(tmp / "one.json"))
    assert one.returncode == 0 and "H1 bottleneck" in one.stdout, one.stderr
    oj = json.load(open(tmp / "one.json"))
    assert set(oj["bottleneck"]) == {"0", "1"} and oj["bottleneck"]["1"] == b[1, 0, 1]


def test_attend_divergence_graph(attention_files):
    tmp, att, _ = attention_files
    out = tmp / "fig"
    assert run("attend", "--attention", str(tmp / "a.npy"), "--out", str(out)).returncode == 0
    np.testing.assert_array_equal(np.load(out / "attention_1.npy"), att)
    assert (out / "heads_1.png").stat().st_size > 1000
    p = run("divergence", "--attention", str(tmp / "a.npy"), "--layer", "0", "--head", "0",
            "--out", str(out))
    assert p.returncode == 0, p.stderr
    js = np.load(out / "js_1_L0_H0.npy")
    np.testing.assert_allclose(js, scipy_jsd(att[0, 0]) ** 2, atol=1e-9)
    p = run("graph", "--attention", str(tmp / "a.npy"), "--layer", "1", "--head", "0",
            "--out", str(out), "--format", "pdf")
    assert p.returncode == 0 and (out / "graph_1_L1_H0.pdf").read_bytes()[:4] == b"%PDF"
    # layer 1 is causal: (A + A^T)/2 by default, the lower triangle copied up with --seed-compat
    a = att[1, 0].astype(np.float64)
    g = np.load(out / "graph_1_L1_H0.npy")
    np.testing.assert_array_equal(g, np.where(np.eye(14, dtype=bool), a, 0.5 * (a + a.T)))
    p = run("graph", "--attention", str(tmp / "a.npy"), "--layer", "1", "--head", "0",
            "--out", str(out), "--seed-compat")
    assert p.returncode == 0, p.stderr
    np.testing.assert_array_equal(np.load(out / "graph_1_L1_H0.npy"), np.tril(a) + np.tril(a, -1).T)


def test_label_files_read_as_text(attention_files):
    """A label file written from a tokenizer's vocabulary reads as the tokens' text, by the
    library's one label rule: GPT-2's Ġ and SentencePiece's ▁ are blanks, a blank token shows ␣."""
    tmp, _, _ = attention_files
    names = ["\u0120the", "\u2581cat", "\u0120", "##s", "[CLS]"] + [f"t{i}" for i in range(9)]
    (tmp / "raw.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    out = tmp / "lab"
    p = run("graph", "--attention", str(tmp / "a.npy"), "--tokens", str(tmp / "raw.txt"),
            "--layer", "0", "--head", "0", "--out", str(out))
    assert p.returncode == 0, p.stderr
    toks = json.load(open(out / "graph.json", encoding="utf-8"))["inputs"][0]["tokens"]
    assert toks[:5] == ["the", "cat", "\u2423", "##s", "[CLS]"]


def test_bad_input(attention_files, tmp_path):
    tmp, _, _ = attention_files
    p = run("topo", "--attention", str(tmp / "a.npy"), "--layer", "5", "--head", "0", "--out", str(tmp / "x"))
    assert p.returncode == 2 and "layer 5" in p.stderr and not (tmp / "x" / "result.json").exists()
    p = run("topo", "--attention", str(tmp / "a.npy"), "--out", str(tmp / "x"))
    assert p.returncode == 2 and "--layer" in p.stderr
    bad = np.full((4, 4), np.nan, np.float32)
    np.save(tmp / "nan.npy", bad)
    p = run("topo", "--attention", str(tmp / "nan.npy"), "--layer", "0", "--head", "0", "--out", str(tmp / "y"))
    assert p.returncode == 2 and "nan.npy" in p.stderr
    p = run("compare", "--attention", str(tmp / "a.npy"), "--all-heads", "--out", str(tmp / "z"))
    assert p.returncode == 2 and "two inputs" in p.stderr
    p = run("compare", "--attention", str(tmp / "a.npy"), "--attention", str(tmp / "a.npy"), "--out", str(tmp / "z"))
    assert p.returncode == 2 and "--all-heads" in p.stderr
    # a scale past the largest token distance (or the threshold) names the range; the second
    # input's bad range stops the run before the first input's files are written
    js = scipy_jsd(np.load(tmp / "a.npy")[1, 2].astype(np.float64))
    top = js[np.triu_indices(14, 1)].max()
    for extra, words in ((["--scale", f"0.01,{top * 1.01}"], "largest distance"),
                         (["--scale", "0.2", "--threshold", "0.1"], "the threshold")):
        p = run("topo", "--attention", str(tmp / "a.npy"), "--layer", "1", "--head", "2",
                "--out", str(tmp / "w"), *extra)
        assert p.returncode == 2 and "outside the diagram's range" in p.stderr and words in p.stderr
        assert not (tmp / "w").exists()
    p = run("topo", "--attention", str(tmp / "a.npy"), "--layer", "1", "--head", "2",
            "--out", str(tmp / "w"), "--scale", f"{top * 0.999}")
    assert p.returncode == 0, p.stderr
    b_top = scipy_jsd(np.load(tmp / "b.npy")[1, 2].astype(np.float64))[np.triu_indices(11, 1)].max()
    assert abs(b_top - top) > 1e-3
    p = run("topo", "--attention", str(tmp / "a.npy"), "--attention", str(tmp / "b.npy"),
            "--layer", "1", "--head", "2", "--out", str(tmp / "v"), "--scale", f"{(top + b_top) / 2}")
    short = "b.npy" if b_top < top else "a.npy"
    assert p.returncode == 2 and short in p.stderr and not (tmp / "v").exists(), p.stderr


@pytest.mark.parametrize("model", ["bert", "gpt2"])
def test_model_text_path(tmp_path, model):
    d = os.path.join(FIXTURES, model)
    if not os.path.exists(os.path.join(d, "model.safetensors")):
        pytest.skip("fixture model missing")
    out = tmp_path / "m"
    p = run("topo", "--model", d, "--text", "the cat sat on the mat and the dog lay on the rug",
            "--layer", "0", "--head", "1", "--out", str(out))
    assert p.returncode == 0, p.stderr
    doc = json.load(open(out / "result.json"))
    assert len(doc["tokens"]) == np.load(out / "js.npy").shape[0]
    p = run("compare", "--model", d, "--text", "the cat sat", "--text", "a dog lay on a rug",
            "--all-heads", "--json", str(out / "c.json"))
    assert p.returncode == 0, p.stderr
    # one head runs the model only up to its layer and the texts as one batch: every head's
    # distances equal the all-heads run's bit for bit
    allh = json.load(open(out / "c.json"))
    L, H = len(allh["bottleneck"]["0"]), len(allh["bottleneck"]["0"][0])
    for layer in range(L):
        for head in (0, H - 1):
            p = run("compare", "--model", d, "--text", "the cat sat", "--text", "a dog lay on a rug",
                    "--layer", str(layer), "--head", str(head), "--json", str(out / "one.json"))
            assert p.returncode == 0, p.stderr
            one = json.load(open(out / "one.json"))
            for measure in ("bottleneck", "wasserstein"):
                for k in ("0", "1"):
                    assert one[measure][k] == allh[measure][k][layer][head], (layer, head, measure)
    # a layer the model does not have is still named as such
    p = run("compare", "--model", d, "--text", "the cat sat", "--text", "a dog", "--layer", str(L),
            "--head", "0", "--json", str(out / "bad.json"))
    assert p.returncode == 2 and f"layer {L}" in p.stderr and not (out / "bad.json").exists()
