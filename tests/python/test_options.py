"""Issue 17's option vocabulary: -h stays a value after an option that takes one, heads takes
--format and --title, and --title is accepted wherever a command draws titled figures."""
import os
import subprocess

import pytest

from rips_reference import ATTNSCOPE, ROOT


def run(*args):
    return subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True, timeout=120)


def test_h_as_an_options_value_stays_a_value():
    bert = os.path.join(ROOT, "tests", "fixtures", "models", "bert")
    p = run("tokenize", "--model", bert, "--text", "-h")
    assert p.returncode == 0 and "[CLS]" in p.stdout and "usage" not in p.stdout


@pytest.mark.parametrize("fmt", ["svg", "pdf"])
def test_heads_format_and_title(tmp_path, fmt):
    """heads takes --format and --title as the other figure commands do."""
    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(f"line {i}: the cat sat on the mat\n" for i in range(12)))
    gpt2 = os.path.join(ROOT, "tests", "fixtures", "models", "gpt2")
    p = run("heads", "--model", gpt2, "--corpus", str(corpus), "--out", str(tmp_path / "o"),
            "--format", fmt, "--title", "My corpus", "--stats", "--quiet")
    assert p.returncode == 0, p.stderr
    names = sorted(os.listdir(tmp_path / "o"))
    figures = [n for n in names if n.endswith(("png", "svg", "pdf"))]
    assert {"barcode." + fmt, "diagram." + fmt, "mds." + fmt, "stats_entropy." + fmt} <= set(names)
    assert all(n.endswith(fmt) for n in figures), figures
    if fmt == "svg":  # cairo draws the title as glyphs: its text is not in the file
        assert (tmp_path / "o" / "mds.svg").read_bytes().startswith(b"<?xml")
    p = run("heads", "--model", gpt2, "--corpus", str(corpus), "--out", str(tmp_path / "x"),
            "--format", "gif")
    assert p.returncode == 2 and "--format is png, svg or pdf" in p.stderr


def test_title_on_every_command_that_draws_titled_figures(tmp_path):
    """--title is accepted wherever a command draws titled figures (its text is drawn as glyphs,
    so the figures are looked at, not read back, here)."""
    models = os.path.join(ROOT, "tests", "fixtures", "models")
    bert, vit = os.path.join(models, "bert"), os.path.join(models, "vit")
    image = os.path.join(vit, "expected", "image0.png")
    runs = {
        "context": ["--model", bert, "--text", "the cat sat", "--text", "a cat ran", "--word",
                    "cat"],
        "vision": ["--model", vit, "--image", image, "--layer", "0", "--head", "0"],
        "topo": ["--model", bert, "--text", "the cat sat on the mat", "--layer", "0", "--head",
                 "0"],
    }
    for cmd, args in runs.items():
        out = tmp_path / cmd
        p = run(cmd, *args, "--out", str(out), "--title", "Fig. 1", "--format", "svg")
        assert p.returncode == 0, (cmd, p.stderr)
        assert any(n.endswith(".svg") for n in os.listdir(out)), cmd
