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
