"""attnscope context against NumPy over the CLI's own hidden states and tokens."""
import json
import os
import subprocess

import numpy as np
import pytest

from rips_reference import ATTNSCOPE, ROOT, gudhi_diagrams, assert_same_diagrams

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "models")


def run(*args):
    return subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True)


def word_vector(tmp_path, model, text, word):
    """Mean hidden state [L+1][d] of the tokens covering `word` (first whole-word match)."""
    tok = tmp_path / "tok.json"
    hid = tmp_path / "hid.npy"
    assert run("tokenize", "--model", model, "--text", text, "--json", str(tok)).returncode == 0
    p = run("attention", "--model", model, "--text", text, "--npy", str(tmp_path / "a.npy"),
            "--hidden", str(hid))
    assert p.returncode == 0, p.stderr
    enc = json.load(open(tok))
    h = np.load(hid).astype(np.float64)
    start = text.lower().index(word.lower())
    end = start + len(word.encode())
    start = len(text[:start].encode())
    end = start + len(word.encode())
    sel = [i for i, (s, e) in enumerate(enc["offsets"]) if e > s and e > start and s < end]
    assert sel
    return h[:, sel, :].mean(axis=1)


@pytest.mark.parametrize("model", ["bert", "gpt2"])
def test_word_similarity_matches_numpy(tmp_path, model):
    d = os.path.join(FIXTURES, model)
    if not os.path.exists(os.path.join(d, "model.safetensors")):
        pytest.skip("fixture model missing")
    a, b = "the cat sat on the mat", "my old cat chased a mouse"
    out = tmp_path / "ctx"
    p = run("context", "--model", d, "--text", a, "--text", b, "--word", "cat", "--out", str(out))
    assert p.returncode == 0, p.stderr
    got = json.load(open(out / "context.json"))["models"][0]["cosine_similarity_by_layer"]
    va, vb = word_vector(tmp_path, d, a, "cat"), word_vector(tmp_path, d, b, "cat")
    ref = (va * vb).sum(1) / np.linalg.norm(va, axis=1) / np.linalg.norm(vb, axis=1)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert (out / "similarity.png").stat().st_size > 1000


def test_phrase_persistence(tmp_path):
    d = os.path.join(FIXTURES, "bert")
    if not os.path.exists(os.path.join(d, "model.safetensors")):
        pytest.skip("fixture model missing")
    lines = [f"the bank {w} today" for w in ("closed", "opened", "flooded", "lent", "sold", "rose")]
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(lines + ["no match here"]) + "\n")
    out = tmp_path / "ph"
    p = run("context", "--model", d, "--phrase", "bank", "--corpus", str(corpus), "--layer", "1",
            "--out", str(out))
    assert p.returncode == 0, p.stderr
    doc = json.load(open(out / "context.json"))
    assert doc["contexts"] == 6 and [c["line"] for c in doc["lines"]] == [1, 2, 3, 4, 5, 6]
    dist = np.load(out / "distances.npy")
    ours = {e["dim"]: np.array([[x, np.inf if y is None else y] for x, y in e["pairs"]]).reshape(-1, 2)
            for e in doc["dims"]}
    assert_same_diagrams(ours, gudhi_diagrams(dist, 1), 1e-9, range(2), "phrase")


def test_bad_input(tmp_path):
    d = os.path.join(FIXTURES, "bert")
    p = run("context", "--model", d, "--text", "a b", "--text", "c d", "--word", "zebra", "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "zebra" in p.stderr
    (tmp_path / "c.txt").write_text("one bank\n")
    p = run("context", "--model", d, "--phrase", "bank", "--corpus", str(tmp_path / "c.txt"), "--layer", "0",
            "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "need at least 2" in p.stderr
