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
    """topo keeps the head it studies alone: under a limit that the whole pass (attend, which
    writes every head) exceeds, topo runs, and its result is the one from the whole attention"""
    p = run("attend", "--model", SPM, "--text", MEDIUM, "--layer", "1", "--head", "2", "--out",
            str(tmp_path / "attend"), "--max-memory", "1M")
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
