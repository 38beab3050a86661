"""`attnscope compare --model A --model B` and attnscope.compare_models: one text across two
models (BERT and GPT-2 fixtures: different tokenizers), every head of A against every head of B,
checked against an independent pipeline — each model's attention from `attnscope attention`,
scipy's Jensen–Shannon distance (base 2) between the tokens' rows, GUDHI's RipsComplex
persistence, gudhi.bottleneck_distance and an exact assignment (scipy) for the 1-Wasserstein
distance with internal L-inf.

Tolerance 1e-9 on the distances: the library computes the token distances to within 1e-9
(max_error) of float32 attention that scipy reads in float64, and a diagram distance moves by at
most the largest change of a distance."""
import json
import os
import subprocess

import numpy as np
import pytest

from rips_reference import ATTNSCOPE, ROOT, assignment_exact, gudhi_diagrams
from test_analysis import scipy_jsd  # scipy's JS distance, base 2, symmetrised

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "models")
BERT, GPT2 = os.path.join(FIXTURES, "bert"), os.path.join(FIXTURES, "gpt2")
TEXT = "The cat sat on the mat, and the dog lay by the door."
TOL = 1e-9


def run(*args):
    return subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True)


def attention(model, text, tmp_path, name):
    out = tmp_path / f"{name}.npy"
    p = run("attention", "--model", model, "--text", text, "--npy", str(out))
    assert p.returncode == 0, p.stderr
    return np.load(out)


def reference(att_a, att_b, dims=(0, 1)):
    """[dims][L_A*H_A][L_B*H_B] bottleneck and 1-Wasserstein from the independent pipeline."""
    gudhi = pytest.importorskip("gudhi")
    dg = [[gudhi_diagrams(scipy_jsd(att[l, h]), max(dims)) for l in range(att.shape[0])
           for h in range(att.shape[1])] for att in (att_a, att_b)]
    rows, cols = len(dg[0]), len(dg[1])
    b = np.zeros((len(dims), rows, cols))
    w = np.zeros_like(b)
    for k in dims:
        for i in range(rows):
            for j in range(cols):
                x, y = dg[0][i][k], dg[1][j][k]
                # GUDHI and Ripser drop zero-length pairs; ours never has them
                x, y = x[x[:, 1] > x[:, 0]], y[y[:, 1] > y[:, 0]]
                b[k, i, j] = gudhi.bottleneck_distance(x, y)
                w[k, i, j] = assignment_exact(x, y, 1.0, np.inf)
    return b, w


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    att_a, att_b = attention(BERT, TEXT, tmp, "a"), attention(GPT2, TEXT, tmp, "b")
    out = tmp / "cmp"
    p = run("compare", "--model", BERT, "--model", GPT2, "--text", TEXT, "--out", str(out),
            "--json", str(tmp / "c.json"))
    assert p.returncode == 0, p.stderr
    return tmp, out, att_a, att_b


def test_cli_matches_independent_pipeline(pair):
    tmp, out, att_a, att_b = pair
    assert att_a.shape[-1] != att_b.shape[-1]  # WordPiece vs byte-level BPE: other tokens
    b, w = np.load(out / "bottleneck.npy"), np.load(out / "wasserstein.npy")
    rows, cols = att_a.shape[0] * att_a.shape[1], att_b.shape[0] * att_b.shape[1]
    assert b.shape == w.shape == (2, rows, cols)
    rb, rw = reference(att_a, att_b)
    assert np.abs(b - rb).max() <= TOL, np.abs(b - rb).max()
    assert np.abs(w - rw).max() <= TOL, np.abs(w - rw).max()
    assert b[0].min() > 0  # the tests can fail: the models' heads do differ
    doc = json.load(open(out / "compare.json"))
    assert doc == json.load(open(tmp / "c.json"))
    np.testing.assert_array_equal(np.array(doc["bottleneck"]["1"]), b[1])
    np.testing.assert_array_equal(np.array(doc["wasserstein"]["0"]), w[0])
    assert [(m["layers"], m["heads"]) for m in doc["models"]] == [att_a.shape[:2], att_b.shape[:2]]
    assert len(doc["tokens_a"]) == att_a.shape[-1] and len(doc["tokens_b"]) == att_b.shape[-1]
    for name in ("bottleneck_H0", "bottleneck_H1", "wasserstein_H0", "wasserstein_H1"):
        assert (out / f"{name}.png").stat().st_size > 1000


def test_same_model_diagonal_is_zero(tmp_path):
    p = run("compare", "--model", BERT, "--model", BERT, "--text", TEXT, "--json",
            str(tmp_path / "c.json"))
    assert p.returncode == 0, p.stderr
    b = np.array(json.load(open(tmp_path / "c.json"))["bottleneck"]["0"], float)
    assert np.all(np.diag(b) == 0) and b.max() > 0


def test_two_texts_and_one_head(pair, tmp_path):
    tmp, out, att_a, _ = pair
    other = "A bird sang in the tree."
    att_b = attention(GPT2, other, tmp_path, "b2")
    p = run("compare", "--model", BERT, "--model", GPT2, "--text", TEXT, "--text", other,
            "--json", str(tmp_path / "two.json"))
    assert p.returncode == 0, p.stderr
    doc = json.load(open(tmp_path / "two.json"))
    rb, _ = reference(att_a, att_b)
    assert np.abs(np.array(doc["bottleneck"]["1"], float) - rb[1]).max() <= TOL
    # one head of each: the same pair's numbers, on stdout and in the JSON
    p = run("compare", "--model", BERT, "--model", GPT2, "--text", TEXT, "--layer", "1",
            "--head", "2", "--json", str(tmp_path / "one.json"))
    assert p.returncode == 0, p.stderr
    one = json.load(open(tmp_path / "one.json"))
    full = np.load(out / "bottleneck.npy")
    i, j = 1 * att_a.shape[1] + 2, 1 * 4 + 2
    assert one["bottleneck"]["0"] == full[0, i, j] and one["layer"] == 1
    line = next(x for x in p.stdout.splitlines() if x.startswith("H0 ")).split()
    assert line[:2] == ["H0", "bottleneck"] and float(line[2]) == full[0, i, j]


def test_python_equals_cli(pair, package):
    tmp, out, _, _ = pair
    with package.Model.load(BERT) as a, package.Model.load(GPT2) as b:
        doc = package.compare_models(a, b, TEXT)
        one = package.compare_models(a, b, TEXT, layer=0, head=3)
    assert doc == json.load(open(out / "compare.json"))
    full = np.load(out / "wasserstein.npy")
    assert one["wasserstein"]["1"] == full[1, 3, 3]
    with pytest.raises(ValueError):
        package.compare_models(a, b, [TEXT])


@pytest.mark.parametrize("args,msg", [
    (["--model", BERT, "--model", GPT2, "--attention", "x.npy"], "not --attention"),
    (["--model", BERT, "--model", GPT2, "--json", "x.json"], "need --text"),
    (["--model", BERT, "--model", GPT2, "--model", BERT, "--text", "a", "--json", "x.json"],
     "at most two --model"),
    (["--model", BERT, "--model", GPT2, "--text", "a"], "--json OUT or --out DIR"),
    (["--model", BERT, "--model", GPT2, "--text", "a", "--layer", "2", "--head", "0"],
     "model A"),
    (["--model", BERT, "--model", GPT2, "--text", "a", "--text", "", "--json", "x.json"],
     "model B"),
    (["--model", BERT, "--model", GPT2, "--text", "a", "--layer", "0"], "--head"),
])
def test_bad_input(args, msg, tmp_path):
    p = subprocess.run([ATTNSCOPE, "compare", *args], capture_output=True, text=True, cwd=tmp_path)
    assert p.returncode == 2 and msg in p.stderr, (p.returncode, p.stderr)
    assert not (tmp_path / "x.json").exists()
