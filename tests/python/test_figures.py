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


def png(path):
    return np.asarray(PIL.open(path).convert("RGB")).astype(int)


def test_skeleton_panels_keep_their_nodes_and_labels(tmp_path):
    # long labels on nodes at the layout's right edge spilled into the next panel (and were cut
    # at the figure's edge); now every panel holds its nodes and labels, with a white gutter
    # between panels and a white margin inside each panel's right edge
    rng = np.random.default_rng(3)
    x = rng.random((9, 2))
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    np.save(tmp_path / "d.npy", d)
    labels = [f"a rather long token label {i}" for i in range(9)]
    (tmp_path / "l.txt").write_text("\n".join(labels) + "\n")
    out = tmp_path / "s.png"
    run("plot", "skeleton", str(tmp_path / "d.npy"), "--scales", "0.3,0.5,0.9", "--labels",
        str(tmp_path / "l.txt"), "--out", str(out))
    im = png(out)
    s = 2  # pixels per point
    side = (im.shape[1] / s - 10 - 2 * 12) / 3  # three panels, 12-pt gutters, 5-pt margins
    body = im[int(20 * s):]  # below the panel titles
    for k in range(3):
        right = 5 + k * (side + 12) + side
        # the last 3 % of the panel (inside its 4 % margin) and the gutter after it: no ink
        strip = body[:, int((right - 0.03 * side) * s):int((right + (12 if k < 2 else 4)) * s)]
        assert strip.min() >= 250, (k, strip.min())
    assert (body < 200).any(axis=2).mean() > 0.003  # something was drawn


def gradient_runs(line):
    """The most distinct colours in one unbroken run of ink along a row or column of pixels: a
    colour bar's gradient has well over a hundred, cells and text a few dozen at most."""
    best, run = 0, set()
    for px in line:
        if (px < 240).any():
            run.add(tuple(px))
        else:
            best, run = max(best, len(run)), set()
    return max(best, len(run))


def test_colour_bars(tmp_path):
    rng = np.random.default_rng(0)
    a = rng.random((12, 12))
    np.save(tmp_path / "a.npy", a / a.sum(1, keepdims=True))
    np.save(tmp_path / "e.npy", rng.random((1, 30)) * 3)
    # a square map: a vertical bar beside the cells
    run("plot", "heatmap", str(tmp_path / "a.npy"), "--out", str(tmp_path / "a.png"))
    im = png(tmp_path / "a.png")
    cols = [gradient_runs(im[:, x]) for x in range(im.shape[1])]
    x_bar = int(np.argmax(cols))
    assert cols[x_bar] > 200, max(cols)
    cells = np.where((im[:, : x_bar - 30] < 200).any(axis=2).sum(axis=1) > 200)[0]
    bar = np.where((im[:, x_bar] < 240).any(axis=1))[0]
    # centred on the cells, as tall as them up to 240 pt (480 px)
    assert abs((bar.min() + bar.max()) - (cells.min() + cells.max())) <= 4
    assert abs((bar.max() - bar.min()) - min(cells.max() - cells.min(), 480)) <= 4
    # a strip: a horizontal bar under the cells, and no tall empty margin
    run("plot", "heatmap", str(tmp_path / "e.npy"), "--out", str(tmp_path / "e.png"))
    im = png(tmp_path / "e.png")
    rows = [gradient_runs(im[y]) for y in range(im.shape[0])]
    y_bar = int(np.argmax(rows))
    assert rows[y_bar] > 200, max(rows)
    strip = np.where((im < 200).any(axis=2).sum(axis=1) > im.shape[1] * 0.5)[0]
    assert y_bar > strip.max()
    assert im.shape[0] < 2 * 110, im.shape  # the strip's height, the bar's and its ticks


def test_plot_reads_topo_results(tmp_path):
    d = os.path.join(FIX, "bert")
    out = tmp_path / "t"
    run("topo", "--model", d, "--text", TEXT, "--text", "A dog lay on the rug", "--layer", "1",
        "--head", "0", "--out", str(out))
    for name in ("result.json", "result_2.json"):
        for kind in ("diagram", "barcode"):
            fig = tmp_path / f"{name}.{kind}.png"
            run("plot", kind, str(out / name), "--out", str(fig))
            check_png(fig, min_colours=4, min_ink=0.005)
    # the same diagrams the file holds: a distance of 0 to itself, > 0 to the other text
    same = run("bottleneck", str(out / "result.json"), str(out / "result.json"), "--dim", "0")
    other = run("bottleneck", str(out / "result.json"), str(out / "result_2.json"), "--dim", "0")
    assert float(same.stdout.split()[-1]) == 0 and float(other.stdout.split()[-1]) > 0
