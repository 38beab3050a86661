"""Figures of every analysis command, checked as a program can: real images of a sensible size
that are not blank (many colours, ink on a good share of the page), and token labels in any
script present as text (extracted from the PDF output with pdftotext)."""
import os
import shutil
import subprocess

import numpy as np
import pytest

from rips_reference import ATTNSCOPE, ROOT

PIL = pytest.importorskip("PIL.Image")
FIX = os.path.join(ROOT, "tests", "fixtures", "models")
TEXT = "The cat sat on the mat"


def run(*args):
    p = subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p


def check_png(path, min_side=200, min_colours=12, min_ink=0.02):
    im = PIL.open(path).convert("RGB")
    w, h = im.size
    assert min(w, h) >= min_side, (path, im.size)
    px = np.asarray(im).reshape(-1, 3)
    colours = len(np.unique(px[:: max(1, len(px) // 200000)], axis=0))
    ink = float(np.mean(px.min(axis=1) < 230))
    assert colours >= min_colours, (path, colours)
    assert ink >= min_ink, (path, ink)


@pytest.mark.parametrize("model", ["bert", "gpt2"])
def test_command_figures(tmp_path, model):
    d = os.path.join(FIX, model)
    out = tmp_path / "o"
    common = ["--model", d, "--text", TEXT, "--layer", "1", "--head", "0", "--out", str(out)]
    run("attend", *common)
    run("graph", *common)
    run("divergence", *common)
    run("topo", *common)
    run("compare", "--model", d, "--text", TEXT, "--text", "A dog lay on the rug", "--all-heads",
        "--out", str(out))
    pngs = sorted(p for p in os.listdir(out) if p.endswith(".png"))
    assert len(pngs) >= 10, pngs
    for p in pngs:
        # a skeleton or a graph is mostly white page by nature
        sparse = p.startswith(("skeleton", "graph"))
        check_png(os.path.join(out, p), min_side=100 if p.startswith("entropy") else 200,
                  min_ink=0.004 if sparse else 0.02)


@pytest.mark.skipif(not shutil.which("pdftotext"), reason="pdftotext (poppler-utils) missing")
def test_labels_are_text_in_any_script(tmp_path):
    labels = ["[CLS]", "émigré", "שלום", "猫", "が", "[SEP]"]
    rng = np.random.default_rng(0)
    a = rng.random((6, 6))
    np.save(tmp_path / "a.npy", a / a.sum(1, keepdims=True))
    (tmp_path / "t.txt").write_text("\n".join(labels) + "\n")
    for kind in ("heatmap",):  # the graph's labels are rotated, which splits them in pdftotext
        pdf = tmp_path / f"{kind}.pdf"
        run("plot", kind, str(tmp_path / "a.npy"), "--labels", str(tmp_path / "t.txt"), "--out", str(pdf))
        text = subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout
        for lab in labels:
            assert lab in text, (kind, lab, text)
