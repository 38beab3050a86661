"""GGUF files as models: a tiny random Llama written by tools/make_gguf_model_fixtures.py with
the gguf package (mixed tensor types, llama.cpp's q / k row order, a separate output matrix)
against transformers' own loading of that file (attentions within 1e-5, loss); linear rope
scaling and llama.cpp's rope_freqs.weight (llama3) against transformers on the HuggingFace
models; and bad files:
another architecture, a missing key, a missing tensor, a tokenizer that is missing, a
SentencePiece vocabulary without scores or with bad token types (exit 2, the message naming
it). The real SmolLM2 file: test_smollm2.py; SentencePiece vocabularies: test_gguf_spm.py."""
import json
import os
import struct
import subprocess

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ATTNSCOPE = os.environ.get("ATTNSCOPE", "build/attnscope")
TINY = os.path.join(HERE, "..", "fixtures", "models", "llama_gguf")
TINY_REF = json.load(open(os.path.join(TINY, "expected.json")))
TINY_ATT = np.load(os.path.join(TINY, "expected.npz"))


def run(*args):
    return subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True)


@pytest.mark.parametrize("k", range(len(TINY_REF["cases"])))
def test_tiny_gguf_llama_matches_transformers(tmp_path, k):
    c = TINY_REF["cases"][k]
    out = tmp_path / "att.npy"
    args = ["attention", "--model", os.path.join(TINY, TINY_REF["file"]), "--ids",
            ",".join(map(str, c["ids"])), "--npy", str(out)]
    p = run(*args, *(["--loss"] if c["loss"] is not None else []))
    assert p.returncode == 0, p.stderr
    att = np.load(out)
    n = len(c["ids"])
    assert att.shape == (2, 4, n, n)
    assert np.abs(att - TINY_ATT[f"att{k}"]).max() <= 1e-5
    if c["loss"] is not None:
        loss = [ln for ln in p.stdout.splitlines() if ln.startswith("loss: ")][0]
        assert abs(float(loss.split()[1]) - c["loss"]) <= 1e-5


LINEAR = os.path.join(HERE, "..", "fixtures", "models", "llama_linear", "expected")
LINEAR_CASES = json.load(open(os.path.join(LINEAR, "manifest.json")))["cases"]


@pytest.mark.parametrize("c", LINEAR_CASES, ids=[c["name"] for c in LINEAR_CASES])
def test_gguf_linear_rope_scaling_matches_the_checkpoint(tmp_path, c):
    """llama_linear converted to GGUF (rope.scaling.type linear, factor 2; key_length 16 with
    hidden size 48; one key/value head) runs as transformers runs the safetensors checkpoint"""
    out = tmp_path / "att.npy"
    p = run("attention", "--model", os.path.join(TINY, "llama_linear.gguf"), "--ids",
            ",".join(map(str, c["ids"])), "--npy", str(out), "--loss")
    assert p.returncode == 0, p.stderr
    want = np.load(os.path.join(LINEAR, c["name"] + "_att.npy"))
    assert np.abs(np.load(out) - want).max() <= 1e-5
    if c.get("labels") == c["ids"] and c["loss"] is not None and c["loss"] == c["loss"]:
        loss = [ln for ln in p.stdout.splitlines() if ln.startswith("loss: ")][0]
        assert abs(float(loss.split()[1]) - c["loss"]) <= 1e-5


L3 = TINY_REF["llama3"]
L3_ATT = np.load(os.path.join(TINY, "llama3.npz"))


@pytest.mark.parametrize("k", range(len(L3["cases"])))
def test_gguf_rope_freqs_as_llama3_scaling(tmp_path, k):
    """rope_freqs.weight (llama.cpp's form of llama3 rope_scaling) divides the frequencies: the
    same attentions as transformers' llama3 scaling on the HuggingFace model, also past
    original_max_position_embeddings"""
    c = L3["cases"][k]
    out = tmp_path / "att.npy"
    p = run("attention", "--model", os.path.join(TINY, L3["file"]), "--ids",
            ",".join(map(str, c["ids"])), "--npy", str(out),
            *(["--loss"] if c["loss"] is not None else []))
    assert p.returncode == 0, p.stderr
    assert np.abs(np.load(out) - L3_ATT[f"att{k}"]).max() <= 1e-5
    if c["loss"] is not None:
        loss = [ln for ln in p.stdout.splitlines() if ln.startswith("loss: ")][0]
        assert abs(float(loss.split()[1]) - c["loss"]) <= 1e-5


# ---- bad input: GGUF files written here, in the format's own layout (v3)

def gguf_bytes(kv, tensors):
    """A GGUF v3 image: kv = [(key, type, value)] with type 'str', 'u32', 'f32', 'bool', or
    'strs', 'f32s', 'i32s' (arrays); tensors = [(name, shape numpy order)] of F32 zeros."""
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
        elif ty == "bool":
            out += struct.pack("<IB", 7, v)
        elif ty == "f32s":
            out += struct.pack("<IIQ", 9, 6, len(v)) + b"".join(struct.pack("<f", x) for x in v)
        elif ty == "i32s":
            out += struct.pack("<IIQ", 9, 5, len(v)) + b"".join(struct.pack("<i", x) for x in v)
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


def tiny_llama(drop_key=None, drop_tensor=None, arch="llama", tok_model="gpt2", extra=()):
    d, f, L, V = 8, 16, 1, 4
    kv = [("general.architecture", "str", arch), (f"{arch}.block_count", "u32", L),
          (f"{arch}.embedding_length", "u32", d), (f"{arch}.feed_forward_length", "u32", f),
          (f"{arch}.attention.head_count", "u32", 2), (f"{arch}.context_length", "u32", 64),
          (f"{arch}.attention.layer_norm_rms_epsilon", "f32", 1e-5),
          ("tokenizer.ggml.model", "str", tok_model),
          ("tokenizer.ggml.tokens", "strs", ["a", "b", "c", "d"])]
    kv = [e for e in kv if e[0] != drop_key] + list(extra)
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
    (dict(drop_tensor="blk.0.ffn_up.weight"), "'blk.0.ffn_up.weight' is missing"),
    (dict(extra=[("llama.rope.scaling.type", "str", "yarn")]),
     "'llama.rope.scaling.type' = \"yarn\" is not supported"),
    (dict(extra=[("llama.rope.scaling.type", "str", "linear")]),
     "'llama.rope.scaling.factor' is missing"),
    (dict(extra=[("llama.attention.head_count_kv", "u32", 3)]),
     "head_count 2 is not a multiple of llama.attention.head_count_kv 3"),
    (dict(extra=[("llama.attention.key_length", "u32", 8)]), "'blk.0.attn_q.weight' has shape"),
    (dict(extra=[("llama.rope.dimension_count", "u32", 2)]),
     "head size 4 (key) / 4 (value) with 2 rotary dimensions is not supported"),
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


SPM_KV = [("tokenizer.ggml.bos_token_id", "u32", 1), ("tokenizer.ggml.eos_token_id", "u32", 2),
          ("tokenizer.ggml.unknown_token_id", "u32", 0)]


@pytest.mark.parametrize("extra,needle", [
    ([], "'tokenizer.ggml.scores' is missing (a SentencePiece vocabulary without "
         "tokenizer.ggml.merges needs its scores"),
    ([("tokenizer.ggml.scores", "f32s", [0, -1, -2])], "tokenizer.ggml.scores has 3 entries for "
                                                         "4 tokens"),
    ([("tokenizer.ggml.scores", "f32s", [0, -1, float("nan"), -3])],
     "tokenizer.ggml.scores[2] is not a finite number"),
    ([("tokenizer.ggml.scores", "strs", ["0", "1", "2", "3"])],
     "'tokenizer.ggml.scores'"),
    ([("tokenizer.ggml.scores", "f32s", [0, -1, -2, -3]),
      ("tokenizer.ggml.token_type", "i32s", [2, 3, 1, 9])],
     "tokenizer.ggml.token_type[3] = 9 is not a token type"),
    ([("tokenizer.ggml.scores", "f32s", [0, -1, -2, -3]),
      ("tokenizer.ggml.token_type", "i32s", [2, 3, 1])],
     "tokenizer.ggml.token_type has 3 entries for 4 tokens"),
    ([("tokenizer.ggml.scores", "f32s", [0, -1, -2, -3]),
      ("tokenizer.ggml.token_type", "strs", ["2", "3", "1", "1"])],
     "'tokenizer.ggml.token_type'"),
    ([("tokenizer.ggml.scores", "f32s", [0, -1, -2, -3]),
      ("tokenizer.ggml.add_space_prefix", "u32", 1)], "'tokenizer.ggml.add_space_prefix'"),
    ([("tokenizer.ggml.scores", "f32s", [0, -1, -2, -3]),
      ("tokenizer.ggml.merges", "strs", ["a bc"])], "merge 0: token 'bc' is not in the vocabulary"),
    ([("tokenizer.ggml.model", "str", "bert")], 'tokenizer.ggml.model "bert" is not supported'),
])
def test_gguf_sentencepiece_tokenizer_errors(tmp_path, extra, needle):
    """a SentencePiece vocabulary (tokenizer.ggml.model "llama") needs per-token finite scores
    when it has no merges, and token types within llama.cpp's 0..6"""
    path = tmp_path / "spm.gguf"
    keys = {k for k, _, _ in extra}
    base = [e for e in SPM_KV if e[0] not in keys]
    path.write_bytes(tiny_llama(tok_model="llama", extra=base + extra, drop_key="tokenizer.ggml.model"
                                if "tokenizer.ggml.model" in keys else None))
    p = run("tokenize", "--model", str(path), "--text", "abc")
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert needle in p.stderr and str(path) in p.stderr, p.stderr


def test_gguf_sentencepiece_tiny_tokenizes(tmp_path):
    """the four-token vocabulary a b c d with scores, BOS b, unknown a: "bcd b" is the BOS token,
    b (a special token, matched in the text), then "▁cd▁" with the unknown token for the
    U+2581 that the vocabulary lacks, then b (transformers gives the same ids)"""
    path = tmp_path / "spm.gguf"
    path.write_bytes(tiny_llama(tok_model="llama", extra=SPM_KV + [
        ("tokenizer.ggml.scores", "f32s", [0, -1, -2, -3])]))
    out = tmp_path / "t.json"
    p = run("tokenize", "--model", str(path), "--text", "bcd b", "--json", str(out))
    assert p.returncode == 0, p.stderr
    assert json.load(open(out))["ids"] == [1, 1, 0, 2, 3, 0, 1]
