"""attnscope report: one self-contained page (no network references) with every figure."""
import os
import random
import re
import shutil
import subprocess
import sys

import pytest

from rips_reference import ATTNSCOPE, ROOT

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "models")


@pytest.mark.parametrize("model", ["bert", "gpt2"])
def test_report_is_self_contained(tmp_path, model):
    d = os.path.join(FIXTURES, model)
    if not os.path.exists(os.path.join(d, "model.safetensors")):
        pytest.skip("fixture model missing")
    out = tmp_path / "rep"
    p = subprocess.run([ATTNSCOPE, "report", "--model", d, "--text", "the cat sat on the mat",
                        "--text", "a dog lay on the rug and slept", "--out", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    html = (out / "index.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    images = re.findall(r'src="data:image/svg\+xml;base64,', html)
    assert len(images) >= 17, len(images)
    assert "not produced" not in html
    assert not re.search(r'(src|href)="(https?:)?//', html), "the page must work offline"
    assert "tokens on the cycle" in html and "H0 clusters" in html
    # the figures live in the page only: the folder holds the page and nothing else
    assert sorted(os.listdir(out)) == ["index.html"]


def test_report_bad_input(tmp_path):
    p = subprocess.run([ATTNSCOPE, "report", "--model", str(tmp_path / "nope"), "--text", "a",
                        "--text", "b", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert p.returncode == 2 and "nope" in p.stderr
    assert not (tmp_path / "o" / "index.html").exists()
    p = subprocess.run([ATTNSCOPE, "report", "--text", "a", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert p.returncode == 2


@pytest.mark.parametrize("model", ["bert", "gpt2"])
def test_report_reads_the_weights_once(tmp_path, model):
    """report runs the model once: one open of the weights (under strace), and none of the JSON
    or NPY it wrote itself is read back."""
    if not shutil.which("strace"):
        pytest.skip("strace missing (tools/deps.sh installs it)")
    d = os.path.join(FIXTURES, model)
    out, log = tmp_path / "rep", tmp_path / "strace.txt"
    p = subprocess.run(["strace", "-f", "-qq", "-e", "trace=open,openat", "-o", str(log), ATTNSCOPE,
                        "report", "--model", d, "--text", "the cat sat on the mat", "--text",
                        "a dog lay on the rug and slept", "--out", str(out)],
                       capture_output=True, text=True)
    if p.returncode != 0 and "ptrace" in p.stderr:
        pytest.skip("strace cannot trace here: " + p.stderr.strip())
    assert p.returncode == 0, p.stderr
    opens = [l for l in log.read_text().splitlines() if "open" in l and "= -1" not in l]
    weights = [l for l in opens if "model.safetensors" in l]
    assert len(weights) == 1, weights
    assert sum("config.json" in l for l in opens) >= 1  # the trace did see the model's files
    own = [l for l in opens if str(out) in l and re.search(r'\.(json|npy)"', l)
           and "O_RDONLY" in l]
    assert not own, own


def test_report_on_long_texts_stays_small_and_says_what_was_cut(tmp_path):
    """Issue 17: two ~500-token texts (the first over MiniLM's 512 positions, cut with
    --truncate) give a page of at most 10 MB, with the progress shown and the cut said."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from minilm_dir import minilm_dir
    d = minilm_dir()
    if not d:
        pytest.skip("MiniLM missing (tools/deps.sh installs it)")
    rng = random.Random(1)
    words = ("the cat sat on a mat while dogs ran across green fields under the old wooden "
             "bridge near river banks and children laughed loudly").split()
    a = " ".join(rng.choice(words) for _ in range(600))
    b = " ".join(rng.choice(words) for _ in range(490))
    out = tmp_path / "rep"
    p = subprocess.run([ATTNSCOPE, "report", "--model", d, "--text", a, "--text", b, "--out",
                        str(out), "--truncate", "--progress"], capture_output=True, text=True,
                       timeout=1200)
    assert p.returncode == 0, p.stderr
    page = out / "index.html"
    assert page.stat().st_size <= 10_000_000, page.stat().st_size
    html = page.read_text()
    assert "Text A was cut to its first 512 tokens" in html and "Text B was cut" not in html
    assert "report: text A cut to 512 tokens (90 left out)" in p.stderr
    for phase in ("forward pass: 2/2 texts", "persistence: 144/144 heads", "topology: 2/2 texts",
                  "figures: 20/20 figures"):
        assert f"report {phase} (100%)" in p.stderr, p.stderr
    # the dense figures are PNG, and the page says so
    assert html.count("is embedded as PNG") == len(re.findall(r'src="data:image/png', html)) >= 4
    assert len(re.findall(r'src="data:image/(png|svg\+xml);base64,', html)) == 20
