"""SentencePiece-style GGUF tokenizers (tokenizer.ggml.model "llama") against transformers'
GGUF tokenizer, as recorded by tools/make_gguf_model_fixtures.py (build_spm) in
tests/fixtures/models/llama_spm/: a tiny Llama with a 700-piece SentencePiece BPE vocabulary
(byte fallback, no merges in the file: transformers builds them from the scores) and
tokenizer-only variants (no space prefix, no token types, tied scores with a duplicated token
and missing byte tokens; and a byte-level BPE vocabulary, tokenizer.ggml.model "gpt2", that
needs byte fallback). Token ids equal transformers' input_ids on 231 lines (many scripts,
whitespace, digits, emoji, <s> / </s> / <unk> in the text) for every file and on 2780
single-character lines for the model; the model's attentions of texts tokenized by attnscope
within 1e-5 of transformers' and the LM loss within 1e-5. Bad files: test_gguf_model.py."""
import json
import os
import subprocess

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ATTNSCOPE = os.environ.get("ATTNSCOPE", "build/attnscope")
FIX = os.path.join(HERE, "..", "fixtures", "models", "llama_spm")
TOKENS = json.load(open(os.path.join(FIX, "tokens.json"), encoding="utf-8"))
REF = json.load(open(os.path.join(FIX, "expected.json"), encoding="utf-8"))
ATT = np.load(os.path.join(FIX, "expected.npz"))


def run(*args):
    return subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True)


@pytest.mark.parametrize("name", sorted(TOKENS["ids"]))
def test_spm_token_ids_equal_transformers(tmp_path, name):
    want = TOKENS["ids"][name]
    texts = TOKENS["lines"] + (TOKENS["unicode_lines"] if len(want) > len(TOKENS["lines"]) else [])
    assert len(texts) == len(want)
    src, out = tmp_path / "lines.txt", tmp_path / "ids.json"
    src.write_bytes(("\n".join(texts) + "\n").encode("utf-8"))
    p = run("tokenize", "--model", os.path.join(FIX, name), "--file", str(src), "--lines",
            "--json", str(out))
    assert p.returncode == 0, p.stderr
    got = json.load(open(out, encoding="utf-8"))
    assert len(got) == len(want)
    bad = [(t, g["ids"], w) for t, g, w in zip(texts, got, want) if g["ids"] != w]
    assert not bad, f"{len(bad)} of {len(want)} lines differ, first: {bad[0]}"


def test_spm_byte_fallback_and_spaces(tmp_path):
    """the pieces themselves: U+2581 for spaces and before the text, <0xXX> tokens for a
    character outside the vocabulary; --no-special drops only the BOS token"""
    out = tmp_path / "t.json"
    p = run("tokenize", "--model", os.path.join(FIX, "llama-spm.gguf"), "--text", "the 🍕",
            "--json", str(out))
    assert p.returncode == 0, p.stderr
    got = json.load(open(out, encoding="utf-8"))
    assert got["tokens"][0] == "<s>" and got["tokens"][1].startswith("\u2581")
    assert got["tokens"][-4:] == ["<0xF0>", "<0x9F>", "<0x8D>", "<0x95>"]
    p = run("tokenize", "--model", os.path.join(FIX, "llama-spm.gguf"), "--text", "the 🍕",
            "--no-special", "--json", str(out))
    assert p.returncode == 0, p.stderr
    assert json.load(open(out, encoding="utf-8"))["ids"] == got["ids"][1:]


@pytest.mark.parametrize("k", range(len(REF["cases"])))
def test_spm_model_attention_matches_transformers(tmp_path, k):
    c = REF["cases"][k]
    out, tj = tmp_path / "att.npy", tmp_path / "t.json"
    model = os.path.join(FIX, REF["file"])
    p = run("tokenize", "--model", model, "--text", c["text"], "--json", str(tj))
    assert p.returncode == 0, p.stderr
    assert json.load(open(tj, encoding="utf-8"))["ids"] == c["ids"]
    p = run("attention", "--model", model, "--text", c["text"], "--npy", str(out), "--loss")
    assert p.returncode == 0, p.stderr
    att = np.load(out)
    n = len(c["ids"])
    assert att.shape == (2, 4, n, n)
    assert np.abs(att - ATT[f"att{k}"]).max() <= 1e-5
    loss = [ln for ln in p.stdout.splitlines() if ln.startswith("loss: ")][0]
    assert abs(float(loss.split()[1]) - c["loss"]) <= 1e-5
