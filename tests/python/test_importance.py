"""Gradient head importance (src/model/backward.c, `attnscope importance`) against torch
autograd, recorded by tools/make_grad_fixtures.py on the causal fixture models (GPT-2; Llama with
grouped-query attention and tied embeddings; Llama with llama3 rope scaling and biases; Mistral
with a sliding window; Qwen2 with q/k/v biases): ∂L/∂ξ_h, ξ_h a gate on head h's output, L the
mean next-token cross-entropy, computed by the reference in float64. Tolerances: the loss within
1e-5 relative; every gradient (and importance) within 1e-5 of the largest |reference| of its
case (the C pass runs in float32: its error is about 1e-6 of that scale)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ATTNSCOPE = os.environ.get("ATTNSCOPE", os.path.join(ROOT, "build", "attnscope"))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
MODELS = ["gpt2", "llama", "llama_scaled", "mistral", "qwen2"]
CORPUS = os.path.join(FIXTURES, "grad", "corpus.txt")
TOL = 1e-5


def reference(name):
    with open(os.path.join(FIXTURES, "grad", name + ".json")) as f:
        return json.load(f)


def run(*args):
    return subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True)


def importance(model, out, *extra):
    p = run("importance", "--model", os.path.join(FIXTURES, "models", model), "--corpus", CORPUS,
            "--json", str(out), *extra)
    assert p.returncode == 0, p.stderr
    with open(out) as f:
        return json.load(f)


def close(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    assert got.shape == ref.shape
    err = np.abs(got - ref).max() / np.abs(ref).max()
    assert err <= TOL, f"max error {err:.3g} of the largest |reference|"


@pytest.mark.parametrize("model", MODELS)
def test_corpus_importance(model, tmp_path):
    ref = reference(model)["corpus"]
    got = importance(model, tmp_path / "imp.json")
    assert got["texts"] == ref["texts"]
    assert abs(got["loss"] - ref["loss"]) <= TOL * ref["loss"]
    close(got["importance"], ref["importance"])


@pytest.mark.parametrize("model", ["gpt2", "llama"])
def test_normalize(model, tmp_path):
    ref = np.array(reference(model)["corpus"]["importance"])
    got = np.array(importance(model, tmp_path / "imp.json", "--normalize")["importance"])
    close(got, ref / np.linalg.norm(ref, axis=1, keepdims=True))
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-12)


def test_threads_do_not_change_the_result(tmp_path):
    a = importance("llama", tmp_path / "a.json", "--threads", "1")
    b = importance("llama", tmp_path / "b.json", "--threads", "3")
    assert a == b


@pytest.mark.parametrize("model", MODELS)
def test_gradients_per_sequence(model, package):
    ref = reference(model)
    with package.Model.load(os.path.join(FIXTURES, "models", model)) as m:
        for case in ref["cases"]:
            loss, grad = m.head_gradients(ids=case["ids"])
            assert abs(loss - case["loss"]) <= TOL * case["loss"]
            close(grad, case["grad"])  # signed


def test_errors(tmp_path):
    out = tmp_path / "imp.json"
    # an encoder: no next-token loss
    p = run("importance", "--model", os.path.join(FIXTURES, "models", "bert"), "--corpus", CORPUS,
            "--json", str(out))
    assert p.returncode == 2 and "GPT-2, Llama" in p.stderr, p.stderr
    # no line of two tokens
    short = tmp_path / "short.txt"
    short.write_text("x\n\n")
    p = run("importance", "--model", os.path.join(FIXTURES, "models", "gpt2"), "--corpus",
            str(short), "--json", str(out))
    assert p.returncode == 2 and "at least 2 tokens" in p.stderr, p.stderr
    p = run("importance", "--model", os.path.join(FIXTURES, "models", "gpt2"), "--corpus",
            str(tmp_path / "missing.txt"), "--json", str(out))
    assert p.returncode == 2 and "missing.txt" in p.stderr, p.stderr
    p = run("importance", "--model", os.path.join(FIXTURES, "models", "gpt2"), "--corpus", CORPUS)
    assert p.returncode == 2 and "--json" in p.stderr
    p = run("importance", "--model", os.path.join(FIXTURES, "models", "gpt2"), "--corpus", CORPUS,
            "--json", str(out), "--max-lines", "0")
    assert p.returncode == 2 and "--max-lines" in p.stderr
    assert not out.exists()


def test_heads_ablation_has_the_gradient_curve(tmp_path):
    """`heads --ablation` on a causal LM: ablation.csv's gradient_importance equals `importance`
    on the same lines (one library function), and the pruning curve by gradient starts and ends
    where the ablation's does (nothing removed, everything removed) and removes the heads in
    increasing gradient importance."""
    model = os.path.join(FIXTURES, "models", "gpt2")
    out = tmp_path / "o"
    p = run("heads", "--model", model, "--corpus", CORPUS, "--out", str(out), "--ablation",
            "--quiet")
    assert p.returncode == 0, p.stderr
    rows = [r.split(",") for r in (out / "ablation.csv").read_text().splitlines()]
    assert rows[0][-1] == "gradient_importance"
    grad = np.array([float(r[-1]) for r in rows[1:]]).reshape(2, 4)
    ref = importance("gpt2", tmp_path / "imp.json")
    assert np.allclose(grad, ref["importance"], rtol=1e-12, atol=0)
    pruning = [r.split(",") for r in (out / "pruning.csv").read_text().splitlines()]
    assert pruning[0][3:] == ["loss_by_gradient", "last_removed_by_gradient"]
    assert pruning[1][1] == pruning[1][3] and pruning[-1][1] == pruning[-1][3]
    names = [r[0] for r in rows[1:]]
    removed = [names.index(r[4]) for r in pruning[2:]]
    assert list(np.argsort(grad.ravel(), kind="stable")[:len(removed)]) == removed
    assert (out / "importance_gradient.png").stat().st_size > 0


def test_python_head_importance_equals_the_command(package, tmp_path):
    ref = importance("qwen2", tmp_path / "imp.json", "--normalize")
    with package.Model.load(os.path.join(FIXTURES, "models", "qwen2")) as m:
        got = package.head_importance(m, CORPUS, normalize=True)
        texts = [t for t in open(CORPUS).read().splitlines()]
        from_list = package.head_importance(m, texts, normalize=True)
    assert got["texts"] == ref["texts"] and got["loss"] == ref["loss"]
    assert np.array_equal(got["importance"], np.array(ref["importance"]))
    assert np.array_equal(from_list["importance"], got["importance"])
