"""attnscope.topo, attnscope.graph, attnscope.divergence, attnscope.compare and attnscope.heads
equal the commands they mirror (topo's js.npy and result.json, graph's and divergence's NPY and
JSON, compare --json, heads --output) on the fixture models and MiniLM: the same library calls,
so equal bit for bit. attnscope.topo on an array is also checked against scipy's
Jensen–Shannon distance and GUDHI's Rips persistence."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tools"))

import attnscope  # noqa: E402
from minilm_dir import minilm_dir  # noqa: E402

ATTNSCOPE = os.environ.get("ATTNSCOPE", os.path.join(ROOT, "build", "attnscope"))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "models")
A = "The cat sat on the mat."
B = "A dog slept under the old wooden table, quietly."


def model_dirs():
    dirs = [os.path.join(FIXTURES, "bert"), os.path.join(FIXTURES, "gpt2")]
    m = minilm_dir()
    return dirs + ([m] if m else [])


@pytest.fixture(scope="module", params=model_dirs(), ids=lambda d: os.path.basename(d.rstrip("/")))
def model(request):
    m = attnscope.Model.load(request.param)
    yield request.param, m
    m.close()


def cli(*args):
    p = subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p


@pytest.mark.parametrize("kind", ["head", "seed", "all"])
def test_compare_equals_cli(tmp_path, model, kind):
    path, m = model
    out = tmp_path / "c.json"
    if kind == "all":
        args, kw = ["--all-heads"], dict(all_heads=True)
    elif kind == "seed":
        args, kw = ["--layer", "0", "--head", "1", "--seed-compat", "--dim", "2", "--q", "2"], \
            dict(layer=0, head=1, seed_compat=True, dim=2, q=2)
    else:
        args, kw = ["--layer", "1", "--head", "0"], dict(layer=1, head=0, seed_compat=False)
    cli("compare", "--model", path, "--text", A, "--text", B, *args, "--json", str(out))
    assert attnscope.compare(m, [A, B], **kw) == json.load(open(out))


def test_compare_errors(model):
    _, m = model
    with pytest.raises(attnscope.AttnscopeError, match="layer 9, head 0 is outside"):
        attnscope.compare(m, [A, B], layer=9, head=0)
    with pytest.raises(attnscope.AttnscopeError, match="text 1 is empty"):
        attnscope.compare(m, ["", B], layer=0, head=0)
    with pytest.raises(ValueError):
        attnscope.compare(m, [A], layer=0, head=0)


@pytest.mark.parametrize("kind", ["head", "seed"])
def test_topo_equals_cli(tmp_path, model, kind):
    path, m = model
    if kind == "seed":
        args, kw = ["--layer", "0", "--head", "1", "--seed-compat", "--threshold", "0.9",
                    "--scales", "0.1,0.2", "--dim", "1"], \
            dict(layer=0, head=1, seed_compat=True, threshold=0.9, scales=[0.1, 0.2], dim=1)
    else:
        args, kw = ["--layer", "1", "--head", "0"], dict(layer=1, head=0)
    cli("topo", "--model", path, "--text", B, *args, "--out", str(tmp_path), "--format", "svg")
    doc = json.load(open(tmp_path / "result.json"))
    t = attnscope.topo(m, B, **kw)
    assert t.tokens == doc["tokens"]
    np.testing.assert_array_equal(t.distances, np.load(tmp_path / "js.npy"))
    for e in doc["diagrams"]["dims"]:
        pairs = [[b, float("inf") if d is None else d] for b, d in e["pairs"]]
        np.testing.assert_array_equal(t.persistence[e["dim"]], np.array(pairs).reshape(-1, 2))
        if e["dim"] == 1:
            assert [np.asarray(c).tolist() for c in t.persistence.cycles] == \
                [[x[:2] for x in c] for c in e["cycles"]]
    assert t.cycle_tokens == doc["cycle_tokens"]
    assert t.scales.tolist() == [c["scale"] for c in doc["clusters"]]
    for q, c in enumerate(doc["clusters"]):
        groups = [[t.tokens[v] for v in range(len(t.tokens)) if t.clusters[q, v] == g]
                  for g in range(len(c["groups"]))]
        assert groups == c["groups"] and t.clusters[q].max() + 1 == len(c["groups"])
    np.testing.assert_array_equal(t.layout, np.array(doc["layout3d"]))


@pytest.mark.parametrize("kind", ["plain", "seed", "directed"])
def test_graph_equals_cli(tmp_path, model, kind):
    path, m = model
    args, kw = {"plain": ([], {}), "seed": (["--seed-compat"], dict(seed_compat=True)),
                "directed": (["--directed", "--min-weight", "0.1"],
                             dict(directed=True, min_weight=0.1))}[kind]
    cli("graph", "--model", path, "--text", A, "--layer", "1", "--head", "1", *args,
        "--out", str(tmp_path))
    doc = json.load(open(tmp_path / "graph.json"))["inputs"][0]
    g = attnscope.graph(m, A, layer=1, head=1, figure="png", **kw)
    np.testing.assert_array_equal(g.weights, np.load(tmp_path / "graph_1_L1_H1.npy"))
    assert g.tokens == doc["tokens"] and g.symmetrized == doc["symmetrized"]
    assert [list(e) for e in g.edges] == doc["edges"]
    assert g.figure[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("kind", ["plain", "base_e", "seed"])
def test_divergence_equals_cli(tmp_path, model, kind):
    path, m = model
    args, kw = {"plain": ([], {}), "base_e": (["--base", "e", "--eps", "1e-6"], dict(base="e", eps=1e-6)),
                "seed": (["--seed-compat"], dict(seed_compat=True))}[kind]
    cli("divergence", "--model", path, "--text", B, "--layer", "0", "--head", "1", *args,
        "--out", str(tmp_path), "--format", "svg")
    d = attnscope.divergence(m, B, layer=0, head=1, figures="svg", **kw)
    for k in ("entropy", "kl", "js"):
        np.testing.assert_array_equal(getattr(d, k), np.load(tmp_path / f"{k}_1_L0_H1.npy"))
        assert b"<svg" in d.figures[k][:200] and d.figures[k].fmt == "svg"
    assert d.tokens == json.load(open(tmp_path / "divergence.json"))["inputs"][0]["tokens"]
    assert d.units == ({"kl": "bits", "js": "nats", "entropy": "nats"} if kind == "seed" else
                       {k: "nats" if kind == "base_e" else "bits" for k in ("kl", "js", "entropy")})


def test_graph_divergence_arrays_and_errors():
    rng = np.random.default_rng(5)
    x = np.tril(rng.exponential(size=(2, 2, 9, 9)))
    att = (x / x.sum(-1, keepdims=True)).astype(np.float32)
    g = attnscope.graph(att, layer=1, head=0, tokens=["\u0120the"] + [f"t{i}" for i in range(1, 9)])
    a = att[1, 0].astype(np.float64)
    np.testing.assert_array_equal(g.weights, 0.5 * (a + a.T) * (1 - np.eye(9)) + np.diag(np.diag(a)))
    assert g.symmetrized and g.tokens[0] == "the" and all(i > j for i, j, _ in g.edges)
    s = attnscope.graph(att, layer=1, head=0, seed_compat=True)
    np.testing.assert_array_equal(s.weights, np.tril(a) + np.tril(a, -1).T)
    assert s.figure is None
    d = attnscope.divergence(att[0, 1])
    assert d.kl.shape == (9, 9) and d.entropy.shape == (9,) and d.figures == {}
    with pytest.raises(attnscope.AttnscopeError, match="layer 2, head 0 is outside"):
        attnscope.graph(att, layer=2, head=0)
    with pytest.raises(attnscope.AttnscopeError, match="exclude each other"):
        attnscope.graph(att, layer=0, head=0, seed_compat=True, directed=True)
    with pytest.raises(attnscope.AttnscopeError, match="layer 0, head 5 is outside"):
        attnscope.divergence(att, layer=0, head=5)


def test_topo_array_matches_scipy_and_gudhi():
    gudhi = pytest.importorskip("gudhi")
    from scipy.spatial.distance import jensenshannon
    rng = np.random.default_rng(3)
    x = rng.exponential(size=(2, 3, 12, 12))
    att = (x / x.sum(-1, keepdims=True)).astype(np.float32)
    t = attnscope.topo(att, layer=1, head=2, dim=1, tokens=[f"t{i}" for i in range(12)])
    a = att[1, 2].astype(np.float64)
    ref = np.array([[jensenshannon(a[i], a[j], base=2) if i != j else 0 for j in range(12)]
                    for i in range(12)])
    ref = 0.5 * (ref + ref.T)
    np.testing.assert_allclose(t.distances, ref, atol=1e-9)
    rc = gudhi.RipsComplex(distance_matrix=ref)
    st = rc.create_simplex_tree(max_dimension=2)
    st.compute_persistence(homology_coeff_field=2, min_persistence=0.0)
    for k in (0, 1):
        g = np.array([p for p in st.persistence_intervals_in_dimension(k) if p[1] - p[0] > 1e-12])
        g = g.reshape(-1, 2)
        ours = t.persistence[k]
        assert len(ours) == len(g)
        fo, fg = ours[np.isfinite(ours[:, 1])], g[np.isfinite(g[:, 1])]
        assert gudhi.bottleneck_distance(fo, fg) <= 1e-8
    assert t.tokens[0] == "t0" and t.layout.shape == (12, 3) and t.clusters.shape == (3, 12)
    # the KL and JS divergences, symmetrised, as the viewer's "measure"
    kl = attnscope.topo(att, layer=0, head=0, distance="kl", layout=False)
    assert kl.layout is None and np.all(np.diag(kl.distances) == 0)
    with pytest.raises(attnscope.AttnscopeError, match="layer 2, head 0 is outside"):
        attnscope.topo(att, layer=2, head=0)
    with pytest.raises(attnscope.AttnscopeError, match="scale 9 is outside"):
        attnscope.topo(att, layer=0, head=0, scales=[9.0])


def corpus_lines():
    with open(os.path.join(ROOT, "data", "corpus", "english.txt"), encoding="utf-8") as f:
        lines = [next(f).rstrip("\n") for _ in range(20)]
    return lines[:8] + ["", "   ", "Short."] + lines[8:]


@pytest.mark.parametrize("clark", [False, True])
def test_heads_equals_cli(tmp_path, model, clark):
    path, m = model
    lines = corpus_lines()
    (tmp_path / "c.txt").write_text("".join(t + "\n" for t in lines), encoding="utf-8")
    cli("heads", "--model", path, "--corpus", str(tmp_path / "c.txt"), "--output",
        str(tmp_path / "D.npy"), "--quiet", *(["--clark"] if clark else []))
    ref = np.load(tmp_path / "D.npy")
    D = attnscope.heads(m, lines, clark=clark)
    assert D.shape == ref.shape and D.dtype == np.float64
    np.testing.assert_array_equal(D, ref)
    np.testing.assert_array_equal(attnscope.heads(m, str(tmp_path / "c.txt"), clark=clark), ref)


def test_heads_two_models_and_options(tmp_path):
    bert = attnscope.Model.load(os.path.join(FIXTURES, "bert"))
    gpt2 = attnscope.Model.load(os.path.join(FIXTURES, "gpt2"))
    lines = corpus_lines()
    (tmp_path / "c.txt").write_text("".join(t + "\n" for t in lines), encoding="utf-8")
    cli("heads", "--model", os.path.join(FIXTURES, "bert"), "--model", os.path.join(FIXTURES, "gpt2"),
        "--corpus", str(tmp_path / "c.txt"), "--output", str(tmp_path / "D.npy"), "--quiet")
    np.testing.assert_array_equal(attnscope.heads([bert, gpt2], lines), np.load(tmp_path / "D.npy"))
    cli("heads", "--model", os.path.join(FIXTURES, "bert"), "--corpus", str(tmp_path / "c.txt"),
        "--output", str(tmp_path / "D2.npy"), "--quiet", "--max-lines", "9", "--max-tokens", "7",
        "--chunk-lines", "3", "--threads", "1")
    np.testing.assert_array_equal(
        attnscope.heads(bert, lines, max_lines=9, max_tokens=7, chunk_lines=3, n_threads=1),
        np.load(tmp_path / "D2.npy"))
    assert attnscope.heads(bert, []).sum() == 0
    with pytest.raises(attnscope.AttnscopeError, match="cannot open the corpus"):
        attnscope.heads(bert, str(tmp_path / "missing.txt"))


def test_syntax_equals_cli(tmp_path, model):
    path, m = model
    conllu = os.path.join(ROOT, "data", "ud-english-ewt", "en_ewt-ud-dev.conllu")
    cli("syntax", "--model", path, "--conllu", conllu, "--json", str(tmp_path / "s.json"),
        "--max-sentences", "40")
    assert attnscope.syntax(m, conllu, max_sentences=40, n_threads=2) == json.load(
        open(tmp_path / "s.json"))
    with pytest.raises(attnscope.AttnscopeError, match="missing.conllu"):
        attnscope.syntax(m, str(tmp_path / "missing.conllu"))


CONTEXT_LINES = ["he kicked the bucket yesterday", "nothing here", "The bucket is full",
                 "she will kick the bucket soon", "the old man kicked the bucket"]


@pytest.mark.parametrize("layer,head", [(0, None), ("embeddings", None), (1, 2)])
def test_context_equals_cli(tmp_path, model, layer, head):
    path, m = model
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(CONTEXT_LINES) + "\n")
    out = tmp_path / "o"
    args = ["context", "--model", path, "--phrase", "the bucket", "--corpus", str(corpus),
            "--layer", str(layer), "--out", str(out), "--format", "svg"]
    cli(*args, *(["--head", str(head)] if head is not None else []))
    doc = json.load(open(out / "context.json"))
    for lines in (CONTEXT_LINES, str(corpus)):  # texts in memory, and the file
        c = attnscope.context(m, lines, "the bucket", layer=layer, head=head)
        assert c.line_numbers == [x["line"] for x in doc["lines"]] == [1, 3, 4, 5]
        assert np.array_equal(c.distances, np.load(out / "distances.npy"))
        assert np.array_equal(c.word_distances, np.load(out / "word_distances.npy"))
        assert c.mean_similarity == doc["mean_cosine_similarity"]
        assert c.single_cluster_scale == doc["single_cluster_scale"]
        assert c.scales.tolist() == [x["scale"] for x in doc["clusters"]]
        for key in ("mean_cosine_similarity", "single_cluster_scale"):
            assert c.by_head[key].tolist() == doc["by_head"][key]
            assert c.by_hidden_state[key].tolist() == doc["by_hidden_state"][key]
        for k, e in enumerate(doc["dims"]):
            ours = [[b, None if np.isinf(d) else d] for b, d in c.persistence.dims[k].tolist()]
            assert ours == e["pairs"]
        # the vectors of the chosen unit are those of the per-unit arrays
        u = c.hidden_vectors[0 if layer == "embeddings" else layer + 1] if head is None \
            else c.head_vectors[layer, head]
        assert np.array_equal(c.vectors, u)


def test_context_word_equals_cli(tmp_path, model):
    path, m = model
    out = tmp_path / "w"
    cli("context", "--model", path, "--text", A, "--text", "The cat ran.", "--word", "cat",
        "--out", str(out), "--format", "svg")
    doc = json.load(open(out / "context.json"))["models"][0]
    r = attnscope.context(m, texts=[A, "The cat ran."], word="cat")
    assert r["hidden"].tolist() == doc["cosine_similarity_by_layer"]
    assert r["heads"].tolist() == doc["cosine_similarity_by_head"]
    with pytest.raises(attnscope.AttnscopeError, match="zebra"):
        attnscope.context(m, texts=[A, B], word="zebra")
