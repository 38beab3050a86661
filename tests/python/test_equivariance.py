"""attnscope equivariance: without position embeddings a bidirectional encoder's attention is
permutation equivariant to float rounding; with them (or with a causal mask) it is not."""
import json
import os
import subprocess

import numpy as np
import pytest

from rips_reference import ATTNSCOPE, ROOT

FIX = os.path.join(ROOT, "tests", "fixtures", "models")


@pytest.mark.parametrize("model,causal", [("bert", False), ("roberta", False),
                                          ("distilbert", False), ("gpt2", True)])
def test_equivariance(tmp_path, model, causal):
    d = os.path.join(FIX, model)
    if not os.path.exists(os.path.join(d, "model.safetensors")):
        pytest.skip("fixture missing")
    p = subprocess.run([ATTNSCOPE, "equivariance", "--model", d, "--text",
                        "the cat sat on a mat", "--out", str(tmp_path)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    doc = json.load(open(tmp_path / "equivariance.json"))
    assert sorted(doc["permutation"]) == list(range(doc["tokens"]))
    with_pos = np.array(doc["max_deviation_with_positions"])
    without = np.array(doc["max_deviation_without_positions"])
    assert with_pos.max() > 1e-3
    if causal:
        assert doc["causal"] and without.max() > 1e-3
    else:
        assert without.max() < 1e-5
    assert (tmp_path / "equivariance.png").stat().st_size > 1000


@pytest.mark.parametrize("model", ["bert", "gpt2"])
def test_python_equals_the_command_and_numpy(tmp_path, model, package):
    """attnscope.equivariance returns what the command writes (the same call); the deviations
    equal max |B[inv][:, inv] - A| computed with NumPy from the attention of the text and of the
    permuted ids (attnscope.Model.run), with and without positions."""
    d = os.path.join(FIX, model)
    text = "the cat sat on a mat"
    p = subprocess.run([ATTNSCOPE, "equivariance", "--model", d, "--text", text, "--seed", "3",
                        "--out", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    doc = json.load(open(tmp_path / "equivariance.json"))
    with package.Model.load(d) as m:
        r = package.equivariance(m, text, seed=3, figures="png")
        ids = m.tokenize(text)["ids"]
        perm = np.array(r["permutation"])
        inv = np.argsort(perm)
        for key, pos in (("max_deviation_with_positions", True),
                         ("max_deviation_without_positions", False)):
            A = m.run(ids=list(ids), positions=pos).attentions.astype(np.float64)
            B = m.run(ids=[int(ids[k]) for k in perm], positions=pos).attentions.astype(np.float64)
            ref = np.abs(B[:, :, inv][:, :, :, inv] - A).max(axis=(1, 2, 3))
            assert np.array_equal(r[key], ref), (key, r[key], ref)
            assert r[key].tolist() == doc[key]
    assert r["permutation"] == doc["permutation"] and r["tokens"] == doc["tokens"]
    assert r["causal"] == doc["causal"] and r["model_type"] == doc["model_type"]
    assert bytes(r["figure"]) == (tmp_path / "equivariance.png").read_bytes()
