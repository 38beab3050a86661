"""attnscope context against NumPy over the CLI's own hidden states and tokens, and against
transformers (hidden states, and each head's context vector read as the input of the attention
output projection), scipy (cosine distances, single linkage) and GUDHI (persistence)."""
import json
import os
import subprocess

import numpy as np
import pytest

from rips_reference import ATTNSCOPE, ROOT, gudhi_diagrams, assert_same_diagrams

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "models")


def run(*args):
    return subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True)


def word_vector(tmp_path, model, text, word):
    """Mean hidden state [L+1][d] of the tokens covering `word` (first whole-word match)."""
    tok = tmp_path / "tok.json"
    hid = tmp_path / "hid.npy"
    assert run("tokenize", "--model", model, "--text", text, "--json", str(tok)).returncode == 0
    p = run("attention", "--model", model, "--text", text, "--npy", str(tmp_path / "a.npy"),
            "--hidden", str(hid))
    assert p.returncode == 0, p.stderr
    enc = json.load(open(tok))
    h = np.load(hid).astype(np.float64)
    start = text.lower().index(word.lower())
    end = start + len(word.encode())
    start = len(text[:start].encode())
    end = start + len(word.encode())
    sel = [i for i, (s, e) in enumerate(enc["offsets"]) if e > s and e > start and s < end]
    assert sel
    return h[:, sel, :].mean(axis=1)


@pytest.mark.parametrize("model", ["bert", "gpt2"])
def test_word_similarity_matches_numpy(tmp_path, model):
    d = os.path.join(FIXTURES, model)
    if not os.path.exists(os.path.join(d, "model.safetensors")):
        pytest.skip("fixture model missing")
    a, b = "the cat sat on the mat", "my old cat chased a mouse"
    out = tmp_path / "ctx"
    p = run("context", "--model", d, "--text", a, "--text", b, "--word", "cat", "--out", str(out))
    assert p.returncode == 0, p.stderr
    got = json.load(open(out / "context.json"))["models"][0]["cosine_similarity_by_layer"]
    va, vb = word_vector(tmp_path, d, a, "cat"), word_vector(tmp_path, d, b, "cat")
    ref = (va * vb).sum(1) / np.linalg.norm(va, axis=1) / np.linalg.norm(vb, axis=1)
    np.testing.assert_allclose(got, ref, atol=1e-6)
    assert (out / "similarity.png").stat().st_size > 1000


def test_phrase_persistence(tmp_path):
    d = os.path.join(FIXTURES, "bert")
    if not os.path.exists(os.path.join(d, "model.safetensors")):
        pytest.skip("fixture model missing")
    lines = [f"the bank {w} today" for w in ("closed", "opened", "flooded", "lent", "sold", "rose")]
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(lines + ["no match here"]) + "\n")
    out = tmp_path / "ph"
    p = run("context", "--model", d, "--phrase", "bank", "--corpus", str(corpus), "--layer", "0",
            "--out", str(out))
    assert p.returncode == 0, p.stderr
    doc = json.load(open(out / "context.json"))
    assert doc["contexts"] == 6 and [c["line"] for c in doc["lines"]] == [1, 2, 3, 4, 5, 6]
    dist = np.load(out / "distances.npy")
    ours = {e["dim"]: np.array([[x, np.inf if y is None else y] for x, y in e["pairs"]]).reshape(-1, 2)
            for e in doc["dims"]}
    assert_same_diagrams(ours, gudhi_diagrams(dist, 1), 1e-9, range(2), "phrase")


def test_bad_input(tmp_path):
    d = os.path.join(FIXTURES, "bert")
    p = run("context", "--model", d, "--text", "a b", "--text", "c d", "--word", "zebra", "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "zebra" in p.stderr
    (tmp_path / "c.txt").write_text("one bank\n")
    p = run("context", "--model", d, "--phrase", "bank", "--corpus", str(tmp_path / "c.txt"), "--layer", "0",
            "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "need at least 2" in p.stderr
    (tmp_path / "c.txt").write_text("one bank\ntwo bank\n")
    common = ["context", "--model", d, "--phrase", "bank", "--corpus", str(tmp_path / "c.txt"),
              "--out", str(tmp_path / "o")]
    p = run(*common, "--layer", "2")  # the fixture has layers 0 and 1
    assert p.returncode == 2 and "layer 2" in p.stderr and "0..1" in p.stderr
    p = run(*common, "--layer", "embeddings", "--head", "0")
    assert p.returncode == 2 and "embeddings have no heads" in p.stderr
    p = run(*common, "--layer", "0", "--head", "4")
    assert p.returncode == 2 and "head 4" in p.stderr
    p = run(*common, "--layer", "0", "--scale", "5")
    assert p.returncode == 2 and "scale" in p.stderr
    p = run("context", "--model", d, "--text", "a cat", "--text", "a cat", "--word", "cat",
            "--layer", "0", "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "--phrase" in p.stderr


# ---- against transformers

def _phrase_span(text, phrase):
    """(start, end) byte range of the first whole-word, case-insensitive match (analysis.h)."""
    b, p = text.encode().lower(), phrase.encode().lower()
    i = b.find(p)
    while i >= 0:
        left = i == 0 or not chr(b[i - 1]).isalnum()
        right = i + len(p) == len(b) or not chr(b[i + len(p)]).isalnum()
        if left and right:
            return i, i + len(p)
        i = b.find(p, i + 1)
    return None


# torch and transformers live in bench/.venv (tools/deps.sh), not in the test venv
REF_PYTHON = os.path.join(ROOT, "bench", ".venv", "bin", "python")
REF_SCRIPT = os.path.join(ROOT, "tests", "reference", "context_ref.py")


def _reference_vectors(tmp_path, model_dir, texts_spans):
    """For each (text, spans): transformers' hidden states [L+1][k][d] and head context vectors
    [L][H][k][dh] averaged over the tokens of each span, on the tokens and offsets of
    attnscope's tokenizer (tested against the HuggingFace tokenizers elsewhere)."""
    if not os.path.exists(REF_PYTHON) or subprocess.run(
            [REF_PYTHON, "-c", "import torch, transformers"], capture_output=True).returncode:
        pytest.skip("bench/.venv with torch and transformers is missing (make -C bench deps)")
    encs = []
    for text, _ in texts_spans:
        tok = tmp_path / "tok.json"
        assert run("tokenize", "--model", model_dir, "--text", text, "--json", str(tok)).returncode == 0
        encs.append(json.load(open(tok)))
    (tmp_path / "ids.json").write_text(json.dumps([e["ids"] for e in encs]))
    p = subprocess.run([REF_PYTHON, REF_SCRIPT, model_dir, str(tmp_path / "ids.json"),
                        str(tmp_path / "ref.npz")], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    ref = np.load(tmp_path / "ref.npz")
    H = int(ref["n_heads"])
    out = []
    for k, ((_, spans), enc) in enumerate(zip(texts_spans, encs)):
        hid = ref[f"hidden_{k}"].astype(np.float64)  # [L+1][n][d]
        ctx = ref[f"context_{k}"].astype(np.float64)  # [L][n][H*dh]
        ctx = ctx.reshape(ctx.shape[0], ctx.shape[1], H, -1).transpose(0, 2, 1, 3)
        special = enc.get("special") or [False] * len(enc["ids"])
        res_h, res_c = [], []
        for s, e in spans:
            sel = [i for i, (a, b) in enumerate(enc["offsets"]) if not special[i] and b > s and a < e]
            assert sel
            res_h.append(hid[:, sel].mean(1))
            res_c.append(ctx[:, :, sel].mean(2))
        out.append((np.stack(res_h, 1), np.stack(res_c, 2)))
    return out


@pytest.mark.parametrize("model", ["bert", "gpt2", "llama"])
def test_collocation_against_transformers(tmp_path, model):
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import cdist, squareform
    d = os.path.join(FIXTURES, model)
    if not os.path.exists(os.path.join(d, "model.safetensors")):
        pytest.skip("fixture model missing")
    phrase = "the bucket"
    lines = ["he kicked the bucket yesterday", "nothing here", "The bucket is full of water",
             "she will kick the bucket soon", "kick the bucket, they said",
             "the old man kicked the bucket", "a bucket of the sand"]
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(lines) + "\n")
    jobs, used = [], []
    for no, text in enumerate(lines, 1):
        span = _phrase_span(text, phrase)
        if span is None:
            continue
        s, e = span
        jobs.append((text, [(s, e), (s, s + 3), (s + 4, e)]))  # the phrase, "the", "bucket"
        used.append(no)
    refs = _reference_vectors(tmp_path, d, jobs)
    hid = np.stack([h for h, _ in refs], 1)  # [L+1][C][1+k][d]
    ctx = np.stack([c for _, c in refs], 2)  # [L][H][C][1+k][dh]
    Ln, Hn, C = ctx.shape[0], ctx.shape[1], len(used)
    assert C == 5

    def cos_dist(x):
        m = np.maximum(cdist(x, x, "cosine"), 0)
        np.fill_diagonal(m, 0)
        return m

    def mean_sim(m):
        return (1 - m[np.tril_indices(len(m), -1)]).mean()

    def merge(m):
        return linkage(squareform(m, checks=False), "single")[:, 2].max()

    def word_dist(v):  # v [C][k][D]: the mean distance between the words in each context
        return np.array([cdist(w, w, "cosine")[1, 0] for w in v])

    tol = 2e-5  # float32 forward passes: ours and PyTorch's round differently
    for layer, head in (("embeddings", None), (0, None), (Ln - 1, None), (0, 1), (Ln - 1, Hn - 1)):
        out = tmp_path / f"o_{layer}_{head}"
        args = ["context", "--model", d, "--phrase", phrase, "--corpus", str(corpus),
                "--layer", str(layer), "--out", str(out), "--dim", "1"]
        if head is not None:
            args += ["--head", str(head)]
        p = run(*args)
        assert p.returncode == 0, p.stderr
        doc = json.load(open(out / "context.json"))
        assert [x["line"] for x in doc["lines"]] == used
        assert doc["words"] == ["the", "bucket"] and doc["head"] == head
        assert doc["layer"] == layer
        k = 0 if layer == "embeddings" else layer + 1
        v = hid[k] if head is None else ctx[layer, head]  # [C][1+k][D]
        ref = cos_dist(v[:, 0])
        dist = np.load(out / "distances.npy")
        np.testing.assert_allclose(dist, ref, atol=tol)
        np.testing.assert_allclose(doc["mean_cosine_similarity"], mean_sim(ref), atol=tol)
        np.testing.assert_allclose(doc["single_cluster_scale"], merge(ref), atol=tol)
        wd = np.load(out / "word_distances.npy")
        assert wd.shape == (C, 2, 2)
        np.testing.assert_allclose(wd[:, 1, 0], word_dist(v[:, 1:]), atol=tol)
        np.testing.assert_allclose(doc["word_distance_by_context"], word_dist(v[:, 1:]), atol=tol)
        # persistence of our own distances against GUDHI, exactly
        ours = {e["dim"]: np.array([[x, np.inf if y is None else y] for x, y in e["pairs"]]).reshape(-1, 2)
                for e in doc["dims"]}
        assert_same_diagrams(ours, gudhi_diagrams(dist, 1), 1e-9, range(2), "phrase")
        # the H0 clusters at each scale: scipy's single-linkage cut of the same distances
        Z = linkage(squareform(dist, checks=False), "single")
        assert len(doc["clusters"]) == 3
        for cl in doc["clusters"]:
            lab = fcluster(Z, t=cl["scale"], criterion="distance")
            groups = sorted(sorted(used[i] for i in range(C) if lab[i] == g) for g in set(lab))
            assert sorted(cl["lines"]) == groups and cl["count"] == len(groups)
    # every unit's summary (the last run's context.json has them all)
    bh, bl = doc["by_head"], doc["by_hidden_state"]
    for l in range(Ln):
        for h in range(Hn):
            m = cos_dist(ctx[l, h, :, 0])
            np.testing.assert_allclose(bh["mean_cosine_similarity"][l][h], mean_sim(m), atol=tol)
            np.testing.assert_allclose(bh["single_cluster_scale"][l][h], merge(m), atol=tol)
            np.testing.assert_allclose(bh["word_distance"][l][h], word_dist(ctx[l, h, :, 1:]).mean(),
                                       atol=tol)
    for k in range(Ln + 1):
        m = cos_dist(hid[k, :, 0])
        np.testing.assert_allclose(bl["mean_cosine_similarity"][k], mean_sim(m), atol=tol)
        np.testing.assert_allclose(bl["word_distance"][k], word_dist(hid[k, :, 1:]).mean(), atol=tol)


def test_scales_and_heads_figure(tmp_path):
    d = os.path.join(FIXTURES, "bert")
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(f"the bank {w} today" for w in ("closed", "opened", "lent", "rose")) + "\n")
    args = ["context", "--model", d, "--phrase", "bank", "--corpus", str(corpus), "--layer", "0"]
    p = run(*args, "--out", str(tmp_path / "a"))
    assert p.returncode == 0, p.stderr
    merge = json.load(open(tmp_path / "a" / "context.json"))["single_cluster_scale"]
    out = tmp_path / "o"
    p = run(*args, "--scale", "0", "--scale", repr(merge), "--out", str(out))
    assert p.returncode == 0, p.stderr
    doc = json.load(open(out / "context.json"))
    assert [c["scale"] for c in doc["clusters"]] == [0, merge]
    assert doc["clusters"][0]["count"] == 4 and doc["clusters"][0]["lines"] == [[1], [2], [3], [4]]
    assert doc["clusters"][1]["lines"] == [[1, 2, 3, 4]]
    assert (out / "heads.png").stat().st_size > 1000


@pytest.mark.parametrize("model", ["bert", "gpt2"])
def test_word_by_head_against_transformers(tmp_path, model):
    d = os.path.join(FIXTURES, model)
    a, b = "the cat sat on the mat", "my old cat chased a mouse"
    out = tmp_path / "ctx"
    p = run("context", "--model", d, "--model", d, "--text", a, "--text", b, "--word", "cat",
            "--out", str(out))
    assert p.returncode == 0, p.stderr
    doc = json.load(open(out / "context.json"))
    got = np.array(doc["models"][0]["cosine_similarity_by_head"])
    (_, ca), (_, cb) = _reference_vectors(tmp_path, d, [(a, [_phrase_span(a, "cat")]),
                                                        (b, [_phrase_span(b, "cat")])])
    ca, cb = ca[:, :, 0], cb[:, :, 0]
    ref = (ca * cb).sum(-1) / np.linalg.norm(ca, axis=-1) / np.linalg.norm(cb, axis=-1)
    np.testing.assert_allclose(got, ref, atol=2e-5)
