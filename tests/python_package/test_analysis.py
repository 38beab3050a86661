"""attnscope.compare and attnscope.heads equal the commands they mirror (compare --json, heads
--output) on the fixture models and MiniLM: the same library calls, so equal bit for bit."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import attnscope  # noqa: E402
from minilm_dir import minilm_dir  # noqa: E402

ATTNSCOPE = os.environ.get("ATTNSCOPE", os.path.join(ROOT, "build", "attnscope"))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "models")
A = "The cat sat on the mat."
B = "A dog slept under the old wooden table, quietly."


def model_dirs():
    dirs = [os.path.join(FIXTURES, "bert"), os.path.join(FIXTURES, "gpt2")]
    m = minilm_dir()
    return dirs + ([m] if m else [])


@pytest.fixture(scope="module", params=model_dirs(), ids=lambda d: os.path.basename(d.rstrip("/")))
def model(request):
    m = attnscope.Model.load(request.param)
    yield request.param, m
    m.close()


def cli(*args):
    p = subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p


@pytest.mark.parametrize("kind", ["head", "seed", "all"])
def test_compare_equals_cli(tmp_path, model, kind):
    path, m = model
    out = tmp_path / "c.json"
    if kind == "all":
        args, kw = ["--all-heads"], dict(all_heads=True)
    elif kind == "seed":
        args, kw = ["--layer", "0", "--head", "1", "--seed-compat", "--dim", "2", "--q", "2"], \
            dict(layer=0, head=1, seed_compat=True, dim=2, q=2)
    else:
        args, kw = ["--layer", "1", "--head", "0"], dict(layer=1, head=0, seed_compat=False)
    cli("compare", "--model", path, "--text", A, "--text", B, *args, "--json", str(out))
    assert attnscope.compare(m, [A, B], **kw) == json.load(open(out))


def test_compare_errors(model):
    _, m = model
    with pytest.raises(attnscope.AttnscopeError, match="layer 9, head 0 is outside"):
        attnscope.compare(m, [A, B], layer=9, head=0)
    with pytest.raises(attnscope.AttnscopeError, match="text 1 is empty"):
        attnscope.compare(m, ["", B], layer=0, head=0)
    with pytest.raises(ValueError):
        attnscope.compare(m, [A], layer=0, head=0)


def corpus_lines():
    with open(os.path.join(ROOT, "data", "corpus", "english.txt"), encoding="utf-8") as f:
        lines = [next(f).rstrip("\n") for _ in range(20)]
    return lines[:8] + ["", "   ", "Short."] + lines[8:]


@pytest.mark.parametrize("clark", [False, True])
def test_heads_equals_cli(tmp_path, model, clark):
    path, m = model
    lines = corpus_lines()
    (tmp_path / "c.txt").write_text("".join(t + "\n" for t in lines), encoding="utf-8")
    cli("heads", "--model", path, "--corpus", str(tmp_path / "c.txt"), "--output",
        str(tmp_path / "D.npy"), "--quiet", *(["--clark"] if clark else []))
    ref = np.load(tmp_path / "D.npy")
    D = attnscope.heads(m, lines, clark=clark)
    assert D.shape == ref.shape and D.dtype == np.float64
    np.testing.assert_array_equal(D, ref)
    np.testing.assert_array_equal(attnscope.heads(m, str(tmp_path / "c.txt"), clark=clark), ref)


def test_heads_two_models_and_options(tmp_path):
    bert = attnscope.Model.load(os.path.join(FIXTURES, "bert"))
    gpt2 = attnscope.Model.load(os.path.join(FIXTURES, "gpt2"))
    lines = corpus_lines()
    (tmp_path / "c.txt").write_text("".join(t + "\n" for t in lines), encoding="utf-8")
    cli("heads", "--model", os.path.join(FIXTURES, "bert"), "--model", os.path.join(FIXTURES, "gpt2"),
        "--corpus", str(tmp_path / "c.txt"), "--output", str(tmp_path / "D.npy"), "--quiet")
    np.testing.assert_array_equal(attnscope.heads([bert, gpt2], lines), np.load(tmp_path / "D.npy"))
    cli("heads", "--model", os.path.join(FIXTURES, "bert"), "--corpus", str(tmp_path / "c.txt"),
        "--output", str(tmp_path / "D2.npy"), "--quiet", "--max-lines", "9", "--max-tokens", "7",
        "--chunk-lines", "3", "--threads", "1")
    np.testing.assert_array_equal(
        attnscope.heads(bert, lines, max_lines=9, max_tokens=7, chunk_lines=3, n_threads=1),
        np.load(tmp_path / "D2.npy"))
    assert attnscope.heads(bert, []).sum() == 0
    with pytest.raises(attnscope.AttnscopeError, match="cannot open the corpus"):
        attnscope.heads(bert, str(tmp_path / "missing.txt"))


def test_syntax_equals_cli(tmp_path, model):
    path, m = model
    conllu = os.path.join(ROOT, "data", "ud-english-ewt", "en_ewt-ud-dev.conllu")
    cli("syntax", "--model", path, "--conllu", conllu, "--json", str(tmp_path / "s.json"),
        "--max-sentences", "40")
    assert attnscope.syntax(m, conllu, max_sentences=40, n_threads=2) == json.load(
        open(tmp_path / "s.json"))
    with pytest.raises(attnscope.AttnscopeError, match="missing.conllu"):
        attnscope.syntax(m, str(tmp_path / "missing.conllu"))
