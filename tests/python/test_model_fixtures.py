"""`attnscope attention` against transformers' own outputs, recorded by tools/make_fixtures.py on
tiny random-weight GPT-2, BERT, RoBERTa, DistilBERT, ViT, Llama, Mistral, Qwen2 and GPT-NeoX
models (eager attention): every
attention probability, hidden state and logit within 1e-5 absolute, the loss within 1e-5
relative, the head mask as transformers' head_mask."""
import json
import os
import subprocess

import numpy as np
import pytest

ATTNSCOPE = os.environ.get("ATTNSCOPE", "build/attnscope")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "models")
MODELS = ["gpt2", "bert", "roberta", "distilbert", "vit", "bert_f16", "gpt2_bf16", "bert_bin",
          "bert_sharded", "llama", "llama_scaled", "llama_linear", "mistral", "qwen2", "gpt_neox",
          "gpt_neox_seq"]
TOL = 1e-5


# the ViT at other image sizes, its position embeddings interpolated (interpolate_pos_encoding)
EXTRA = [("vit", "expected_interp")]


def load_cases():
    out = []
    for m, e in [(m, "expected") for m in MODELS] + EXTRA:
        man = json.load(open(os.path.join(ROOT, m, e, "manifest.json")))
        for c in man["cases"]:
            out.append(pytest.param(m, dict(c, expected=e), id=f"{m}-{c['name']}"))
    return out


def csv(v):
    return ",".join(str(int(x)) for x in v)


def tokenizer_ready():
    p = subprocess.run([ATTNSCOPE, "tokenize", "--help"], capture_output=True)
    return p.returncode == 0


@pytest.mark.parametrize("model,case", load_cases())
def test_matches_transformers(tmp_path, model, case):
    mdir = os.path.join(ROOT, model)
    exp = os.path.join(mdir, case["expected"])
    name = case["name"]
    args = [ATTNSCOPE, "attention", "--model", mdir, "--npy", str(tmp_path / "att.npy"),
            "--hidden", str(tmp_path / "hid.npy"), "--threads", "1"]
    if "image" in case:
        args += ["--image", os.path.join(exp, case["image"])]
        if "image_size" in case:
            args += ["--image-size", "%dx%d" % tuple(case["image_size"])]
    elif "text" in case:
        if not tokenizer_ready():
            pytest.skip("tokenizer not built yet")
        args += ["--text", case["text"]]
        if case.get("truncate"):
            args += ["--truncate"]
    else:
        args += ["--ids", csv(case["ids"])]
        if case.get("types"):
            args += ["--token-types", csv(case["types"])]
    if case.get("labels"):
        args += ["--labels", csv(case["labels"])]
    if case.get("logits"):
        args += ["--logits", str(tmp_path / "logits.npy")]
    if case.get("head_mask"):
        np.save(tmp_path / "mask.npy", np.array(case["head_mask"], dtype=np.float32))
        args += ["--head-mask", str(tmp_path / "mask.npy")]
    p = subprocess.run(args, capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    att = np.load(tmp_path / "att.npy")
    want = np.load(os.path.join(exp, f"{name}_att.npy"))
    assert att.dtype == np.float32 and att.shape == want.shape
    tol = case.get("tol", TOL)  # JPEG: stb's and libjpeg's decoders differ slightly
    assert np.abs(att - want).max() <= tol
    hid = np.load(tmp_path / "hid.npy")
    want_h = np.load(os.path.join(exp, f"{name}_hidden.npy"))
    assert hid.shape == want_h.shape
    # hidden states grow through the layers; compare relative to their scale
    assert np.abs(hid - want_h).max() <= tol * max(1.0, np.abs(want_h).max())
    if case.get("logits"):
        lg = np.load(tmp_path / "logits.npy")
        want_l = np.load(os.path.join(exp, f"{name}_logits.npy"))
        assert np.abs(lg - want_l).max() <= TOL * max(1.0, np.abs(want_l).max())
    if case.get("loss") is not None and not np.isnan(case["loss"]):
        line = [ln for ln in p.stdout.splitlines() if ln.startswith("loss:")]
        assert line, p.stdout
        loss = float(line[0].split()[1])
        assert abs(loss - case["loss"]) <= TOL * max(1.0, abs(case["loss"]))


def test_one_head(tmp_path):
    mdir = os.path.join(ROOT, "gpt2")
    case = json.load(open(os.path.join(mdir, "expected", "manifest.json")))["cases"][2]
    out = tmp_path / "one.npy"
    p = subprocess.run([ATTNSCOPE, "attention", "--model", mdir, "--ids", csv(case["ids"]),
                        "--layer", "1", "--head", "2", "--npy", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    want = np.load(os.path.join(mdir, "expected", f"{case['name']}_att.npy"))[1, 2]
    assert np.abs(np.load(out) - want).max() <= TOL


def test_summary_without_npy():
    mdir = os.path.join(ROOT, "bert")
    p = subprocess.run([ATTNSCOPE, "attention", "--model", mdir, "--ids", "2,10,20,3"],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "2 layers x 4 heads" in p.stdout and "entropy" in p.stdout
    p = subprocess.run([ATTNSCOPE, "attention", "--model", mdir, "--ids", "2,10,20,3",
                        "--layer", "1", "--head", "0"], capture_output=True, text=True)
    assert p.returncode == 0 and "layer 1 head 0" in p.stdout
    p = subprocess.run([ATTNSCOPE, "attention", "--model", mdir, "--ids", "2,10,20,3",
                        "--repeat", "3"], capture_output=True, text=True)
    assert p.returncode == 0 and "median of 3 runs, 4 tokens" in p.stdout


def test_scores_are_pre_softmax(tmp_path):
    mdir = os.path.join(ROOT, "gpt2")
    p = subprocess.run([ATTNSCOPE, "attention", "--model", mdir, "--ids", "5,6,7,8,9",
                        "--npy", str(tmp_path / "a.npy"), "--scores", str(tmp_path / "s.npy")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    a, s = np.load(tmp_path / "a.npy"), np.load(tmp_path / "s.npy")
    e = np.exp(s - s.max(-1, keepdims=True))
    assert np.abs(e / e.sum(-1, keepdims=True) - a).max() < 1e-6
    assert np.isneginf(s[0, 0, 0, 1])  # causal
