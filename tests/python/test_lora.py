"""PEFT LoRA adapters (`--adapter DIR`, Model.load(adapter=...)) against PEFT itself.

tools/make_lora_fixtures.py (bench/.venv: torch, transformers, peft) made random, non-zero LoRA
adapters for the fixture models with peft.get_peft_model and save_pretrained, and recorded the
unmerged PEFT model's eager attentions on two texts (tests/fixtures/lora/). attnscope merges the
adapter into the weights at load; its attentions must equal PEFT's within 1e-5 absolute, on
GPT-2 (Conv1D, fan_in_fan_out; a target_modules regular expression with rsLoRA), BERT
(rank_pattern, alpha_pattern), Llama (rsLoRA, layers_to_transform, grouped-query attention;
linear rope scaling, also from a GGUF file) and GPT-NeoX (the fused query_key_value). Without the adapter the same runs must differ from
PEFT's by far more, so the comparison can fail. Bad adapters exit 2, name what was wrong and
leave no output."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from rips_reference import ATTNSCOPE, ROOT
from test_model_errors import read_st, write_st

FIX = os.path.join(ROOT, "tests", "fixtures")
LORA = os.path.join(FIX, "lora")
MODELS = os.path.join(FIX, "models")
TOL = 1e-5
MANIFEST = json.load(open(os.path.join(LORA, "manifest.json")))


def attention(tmp_path, model, text, *extra):
    out = tmp_path / "att.npy"
    p = subprocess.run([ATTNSCOPE, "attention", "--model", os.path.join(MODELS, model),
                        "--text", text, "--npy", str(out), "--threads", "1", *extra],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return np.load(out)


@pytest.mark.parametrize("case", MANIFEST["cases"], ids=lambda c: c["name"])
def test_matches_peft(tmp_path, case):
    want = np.load(os.path.join(LORA, "expected", case["attention"]))
    got = attention(tmp_path, case["model"], case["text"], "--adapter",
                    os.path.join(LORA, case["adapter"]))
    assert got.shape == want.shape
    err = np.abs(got.astype(np.float64) - want).max()
    assert err < TOL, f"{case['name']}: max |attnscope - PEFT| = {err:.3g}"
    base = attention(tmp_path, case["model"], case["text"])
    assert np.abs(base.astype(np.float64) - want).max() > 1e-2, "the adapter changes nothing"


@pytest.mark.parametrize("case", [c for c in MANIFEST["cases"] if c["model"] == "llama_linear"],
                         ids=lambda c: c["name"])
def test_gguf_matches_peft(tmp_path, case):
    """llama_linear.gguf holds llama_linear's weights with q and k rows in llama.cpp's order;
    the adapter merges after the loader has put them back."""
    want = np.load(os.path.join(LORA, "expected", case["attention"]))
    out = tmp_path / "att.npy"
    p = subprocess.run([ATTNSCOPE, "attention", "--model",
                        os.path.join(MODELS, "llama_gguf", "llama_linear.gguf"), "--ids",
                        ",".join(map(str, case["ids"])), "--adapter",
                        os.path.join(LORA, case["adapter"]), "--npy", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert np.abs(np.load(out).astype(np.float64) - want).max() < TOL


def test_adapter_model_bin(tmp_path):
    """The BERT adapter saved by PEFT with safe_serialization=False (adapter_model.bin, read by
    the pytorch_model.bin reader) gives PEFT's attentions too."""
    for case in [c for c in MANIFEST["cases"] if c["adapter"] == "bert"]:
        want = np.load(os.path.join(LORA, "expected", case["attention"]))
        got = attention(tmp_path, "bert", case["text"], "--adapter", os.path.join(LORA, "bert_bin"))
        assert np.abs(got.astype(np.float64) - want).max() < TOL


def test_python_package_matches_peft():
    sys.path.insert(0, os.path.join(ROOT, "python"))
    try:
        import attnscope
    except OSError:
        pytest.skip("libattnscope.so not built")
    case = next(c for c in MANIFEST["cases"] if c["adapter"] == "bert")
    want = np.load(os.path.join(LORA, "expected", case["attention"]))
    with attnscope.Model.load(os.path.join(MODELS, "bert"),
                              adapter=os.path.join(LORA, "bert")) as m:
        got = m.run(case["text"]).attentions
    assert np.abs(got - want).max() < TOL


def test_equivariance_with_adapter(tmp_path):
    """The seed's argument on a fine-tuned encoder: without positions its attention is still
    permutation equivariant; with them it is not."""
    p = subprocess.run([ATTNSCOPE, "equivariance", "--model", os.path.join(MODELS, "bert"),
                        "--adapter", os.path.join(LORA, "bert"), "--text", "the cat sat on a mat",
                        "--out", str(tmp_path)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    doc = json.load(open(tmp_path / "equivariance.json"))
    assert doc["adapter"] == os.path.join(LORA, "bert")
    assert np.max(doc["max_deviation_without_positions"]) < 1e-5
    assert np.max(doc["max_deviation_with_positions"]) > 1e-3


# ---- bad adapters


def adapter_copy(tmp_path, name="gpt2"):
    d = tmp_path / ("ad_" + name)
    shutil.copytree(os.path.join(LORA, name), d)
    return d


def edit_config(d, **kw):
    p = d / "adapter_config.json"
    cfg = json.load(open(p))
    cfg.update(kw)
    json.dump(cfg, open(p, "w"))


def refused(tmp_path, adapter, *words, model="gpt2", cmd="attention"):
    out = tmp_path / "out.npy"
    args = [ATTNSCOPE, cmd, "--model", os.path.join(MODELS, model), "--adapter", str(adapter)]
    args += ["--text", "hello world", "--npy", str(out)] if cmd == "attention" else ["hello"]
    p = subprocess.run(args, capture_output=True, text=True)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stdout == ""
    for w in words:
        assert w in p.stderr, p.stderr
    assert not out.exists()
    assert not [f for f in os.listdir(tmp_path) if f.startswith("out")]


def test_missing_directory_and_files(tmp_path):
    refused(tmp_path, tmp_path / "nowhere", "adapter_config.json", "missing")
    d = adapter_copy(tmp_path)
    os.remove(d / "adapter_model.safetensors")
    refused(tmp_path, d, "adapter_model.safetensors", "missing")


@pytest.mark.parametrize("change,words", [
    ({"peft_type": "IA3"}, ["peft_type", "IA3"]),
    ({"use_dora": True}, ["DoRA"]),
    ({"bias": "all"}, ["bias"]),
    ({"modules_to_save": ["lm_head"]}, ["modules_to_save"]),
    ({"target_modules": ["c_attn", "c_proj", "q_proj"]}, ["q_proj", "matches no module"]),
    ({"target_modules": ["c_attn"]}, ["c_proj", "target_modules"]),
    ({"target_modules": ".*(c_attn"}, ["regular expression"]),
    ({"target_modules": r".*\.h\.0\..*"}, ["h.1", "target_modules"]),
    ({"r": 3}, ["lora_A", "expected", "rank 3"]),
    ({"layers_to_transform": [0]}, ["layers_to_transform"]),
])
def test_bad_config(tmp_path, change, words):
    d = adapter_copy(tmp_path)
    edit_config(d, **change)
    refused(tmp_path, d, "adapter_config.json" if "rank" not in words[-1] else "", *words)


def test_adapter_of_another_model(tmp_path):
    # GPT-2's modules are not in a Llama checkpoint; BERT's fit GPT-2 nowhere either
    refused(tmp_path, os.path.join(LORA, "gpt2"), "c_attn", "no weight", model="llama")
    refused(tmp_path, os.path.join(LORA, "bert"), "no weight", model="gpt2")


def test_shape_mismatch(tmp_path):
    d = adapter_copy(tmp_path)
    header, data = read_st(d / "adapter_model.safetensors")
    name = "base_model.model.transformer.h.0.attn.c_attn.lora_B.weight"
    header[name]["shape"] = [48, 8]  # same bytes, wrong shape for c_attn [32][96]
    write_st(d / "adapter_model.safetensors", header, data)
    refused(tmp_path, d, "h.0.attn.c_attn", "lora_B [48 x 8]", "[96 x 4]")


def test_nan_in_adapter(tmp_path):
    d = adapter_copy(tmp_path)
    header, data = read_st(d / "adapter_model.safetensors")
    name = "base_model.model.transformer.h.1.mlp.c_proj.lora_A.weight"
    begin = header[name]["data_offsets"][0]  # relative to the data section
    data = bytearray(data)
    data[begin + 4:begin + 8] = np.array([np.nan], dtype="<f4").tobytes()
    write_st(d / "adapter_model.safetensors", header, bytes(data))
    refused(tmp_path, d, name, "NaN")


def test_unknown_tensor(tmp_path):
    d = adapter_copy(tmp_path)
    header, data = read_st(d / "adapter_model.safetensors")
    name = "base_model.model.transformer.h.0.attn.c_attn.lora_A.weight"
    header["base_model.model.transformer.wte.lora_embedding_A"] = dict(header[name])
    write_st(d / "adapter_model.safetensors", header, data)
    refused(tmp_path, d, "lora_embedding_A", "embedding")


def test_command_without_a_model(tmp_path):
    p = subprocess.run([ATTNSCOPE, "tokenize", "--model", os.path.join(MODELS, "gpt2"),
                        "--adapter", os.path.join(LORA, "gpt2"), "hello"],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "loads no model" in p.stderr, p.stderr
    p = subprocess.run([ATTNSCOPE, "attention", "--model", os.path.join(MODELS, "gpt2"),
                        "--text", "hi", "--adapter"], capture_output=True, text=True)
    assert p.returncode == 2 and "--adapter needs a directory" in p.stderr, p.stderr


def test_session_commands_take_the_adapter(tmp_path):
    """compare (a session through src/cli/analysis.c) and heads (its own session) load the
    adapter too: their numbers move with it, and --adapter repeated is refused."""
    model = os.path.join(MODELS, "gpt2")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat.\na b c d e f g, then the end!\nhello world\n")
    outs = {}
    for tag, extra in (("base", []), ("lora", ["--adapter", os.path.join(LORA, "gpt2")])):
        cj, hd = tmp_path / f"{tag}.json", tmp_path / f"{tag}.npy"
        for args in (["compare", "--model", model, "--text", "the cat sat on the mat.", "--text",
                      "a b c d e f g, then the end!", "--all-heads", "--json", str(cj)],
                     ["heads", "--model", model, "--corpus", str(corpus), "--output", str(hd)]):
            p = subprocess.run([ATTNSCOPE, *args, *extra], capture_output=True, text=True)
            assert p.returncode == 0, p.stderr
        outs[tag] = (json.load(open(cj))["bottleneck"]["0"], np.load(hd))
    assert outs["base"][0] != outs["lora"][0]
    assert np.abs(outs["base"][1] - outs["lora"][1]).max() > 1e-3
    p = subprocess.run([ATTNSCOPE, "heads", "--model", model, "--corpus", str(corpus), "--adapter",
                        os.path.join(LORA, "gpt2"), "--adapter", os.path.join(LORA, "gpt2")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "given twice" in p.stderr, p.stderr


def test_viewer_takes_the_adapter():
    """attnscope serve --adapter: the viewer's head attention is PEFT's."""
    from serve_helper import Server
    case = next(c for c in MANIFEST["cases"] if c["adapter"] == "gpt2")
    want = np.load(os.path.join(LORA, "expected", case["attention"]))
    srv = Server(os.path.join(MODELS, "gpt2"), "--adapter", os.path.join(LORA, "gpt2"))
    try:
        status, doc = srv.json("/api/analyze", {"text": case["text"], "layer": 1, "head": 2})
    finally:
        srv.stop()
    assert status == 200, doc
    got = np.array(doc["texts"][0]["attention"], dtype=np.float64)
    assert np.abs(got - want[1, 2]).max() < TOL
