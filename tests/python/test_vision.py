"""attnscope vision on the fixture ViT: the patch metric and diagrams against scipy + GUDHI on
the attention `attnscope attention --image` reports; perturbations; frames; bad input."""
import json
import re
import math
import os
import subprocess

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon

from rips_reference import ATTNSCOPE, ROOT, gudhi_diagrams, assert_same_diagrams

VIT = os.path.join(ROOT, "tests", "fixtures", "models", "vit")
IMAGES = [os.path.join(VIT, "expected", f"image{i}.png") for i in range(3)]


def run(*args):
    return subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True)


@pytest.fixture(autouse=True)
def need_vit():
    if not os.path.exists(os.path.join(VIT, "model.safetensors")):
        pytest.skip("ViT fixture missing")


# the model's 32 x 32 (4 x 4 patches of 8); taller than wide; a side that is not a whole number
# of patches (its remainder dropped, as the patch convolution does)
@pytest.mark.parametrize("size,grid", [(None, [4, 4]), ("48x32", [6, 4]), ("20x44", [2, 5])])
def test_patch_topology_matches_references(tmp_path, size, grid):
    out = tmp_path / "v"
    extra = ["--image-size", size] if size else []
    p = run("vision", "--model", VIT, "--image", IMAGES[0], "--layer", "1", "--head", "2",
            "--out", str(out), "--format", "svg", *extra)
    assert p.returncode == 0, p.stderr
    doc = json.load(open(out / "vision.json"))
    assert doc["grid"] == grid
    att = tmp_path / "a.npy"
    assert run("attention", "--model", VIT, "--image", IMAGES[0], "--npy", str(att),
               *extra).returncode == 0
    head = np.load(att)[1, 2].astype(np.float64)
    patches = head[1:]  # rows of the patch tokens, over all keys
    n = len(patches)
    assert n == grid[0] * grid[1]
    d = np.array([[jensenshannon(patches[i], patches[j], base=2) if i != j else 0.0
                   for j in range(n)] for i in range(n)])
    d = 0.5 * (d + d.T)
    ours = {e["dim"]: np.array([[b, math.inf if x is None else x] for b, x in e["pairs"]]).reshape(-1, 2)
            for e in doc["images"][0]["dims"]}
    assert_same_diagrams(ours, gudhi_diagrams(d, 1), 1e-8, range(2), "vision")
    for k in ("diagram_1", "barcode_1", "patches_1"):
        assert "<svg" in (out / f"{k}.svg").read_text()
    # the skeleton panels keep the image's aspect (longer side 300 points, 3 scales)
    svg = (out / "patches_1.svg").read_text()
    w = float(re.search(r'<svg[^>]*width="([0-9.]+)', svg).group(1))
    h = float(re.search(r'<svg[^>]*height="([0-9.]+)', svg).group(1))
    rows, cols = grid
    pw = 300 * min(1, cols / rows)
    assert abs(w - (3 * (pw + 10) + 10)) < 1, (w, pw)


@pytest.mark.parametrize("kind", ["noise", "blur", "occlusion"])
def test_perturbations(tmp_path, kind):
    out = tmp_path / kind
    p = run("vision", "--model", VIT, "--image", IMAGES[1], "--layer", "0", "--head", "0",
            "--out", str(out), "--perturb", kind)
    assert p.returncode == 0, p.stderr
    pj = json.load(open(out / "vision.json"))["images"][0]["perturbed"]
    assert pj["kind"] == kind and len(pj["bottleneck"]) == 2
    assert all(isinstance(x, float) and x >= 0 for x in pj["bottleneck"])


def test_frames(tmp_path):
    out = tmp_path / "f"
    args = ["vision", "--model", VIT, "--layer", "0", "--head", "1", "--out", str(out)]
    for im in IMAGES:
        args += ["--image", im]
    p = run(*args)
    assert p.returncode == 0, p.stderr
    fr = json.load(open(out / "vision.json"))["consecutive_frames"]
    assert [(f["from"], f["to"]) for f in fr] == [(0, 1), (1, 2)]
    assert (out / "frames.png").stat().st_size > 1000


def test_bad_input(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    p = run("vision", "--model", VIT, "--image", str(bad), "--layer", "0", "--head", "0", "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "bad.png" in p.stderr
    p = run("vision", "--model", VIT, "--image", IMAGES[0], "--layer", "9", "--head", "0", "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "layer 9" in p.stderr
    bert = os.path.join(ROOT, "tests", "fixtures", "models", "bert")
    p = run("vision", "--model", bert, "--image", IMAGES[0], "--layer", "0", "--head", "0", "--out", str(tmp_path / "o"))
    assert p.returncode == 2 and "not a ViT" in p.stderr
    for size, words in (("4x40", "0x5 grid"), ("12x", "--image-size"), ("0", "--image-size"),
                        ("2000x2000", "16384 patches")):
        p = run("vision", "--model", VIT, "--image", IMAGES[0], "--layer", "0", "--head", "0",
                "--image-size", size, "--out", str(tmp_path / "o2"))
        assert p.returncode == 2 and words in p.stderr, (size, p.stderr)
        assert not (tmp_path / "o2" / "vision.json").exists()
    p = run("vision", "--model", VIT, "--image", IMAGES[0], "--layer", "0", "--head", "0",
            "--scales", "0.01,1.5", "--out", str(tmp_path / "o3"))
    assert p.returncode == 2 and "scale 1.5 is outside the diagram's range" in p.stderr
    assert not (tmp_path / "o3" / "vision.json").exists()


def test_hostile_images(tmp_path):
    """Images that Debian's stb_image would mishandle are refused by name: a JPEG Huffman table
    with more than 256 codes (it wrote past the table), a few-byte GIF declaring a canvas of
    gigabytes (found by fuzz/fuzz_image.c)."""
    from PIL import Image
    Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / "ok.jpg", quality=90)
    raw = bytearray((tmp_path / "ok.jpg").read_bytes())
    at = raw.index(b"\xff\xc4")
    raw[at + 5:at + 21] = bytes([0] * 14 + [200, 200])  # 16 code counts summing to 400
    (tmp_path / "dht.jpg").write_bytes(bytes(raw))
    gif = b"GIF87a" + (3084).to_bytes(2, "little") + (65505).to_bytes(2, "little") + b"\x00" * 20
    (tmp_path / "huge.gif").write_bytes(gif)
    assert run("attention", "--model", VIT, "--image", str(tmp_path / "ok.jpg"), "--npy",
               str(tmp_path / "a.npy")).returncode == 0
    for name, words in (("dht.jpg", "Huffman table"), ("huge.gif", "too large")):
        p = run("vision", "--model", VIT, "--image", str(tmp_path / name), "--layer", "0",
                "--head", "0", "--out", str(tmp_path / "o"))
        assert p.returncode == 2 and name in p.stderr and words in p.stderr, p.stderr


def same_svg(a, b):
    """cairo numbers its SVG surfaces per process ("surface6" for a process's sixth figure)"""
    norm = lambda s: re.sub(rb"surface[0-9]+", b"surface", bytes(s))
    return norm(a) == norm(b)


def test_python_equals_the_command(tmp_path, package):
    """attnscope.vision calls what the command calls: the same diagrams, distances and figure
    bytes; its patch metric is scipy's JS distance on the attention the command reports."""
    out = tmp_path / "v"
    args = ["vision", "--model", VIT, "--layer", "1", "--head", "2", "--out", str(out),
            "--perturb", "blur", "--format", "svg"]
    for im in IMAGES:
        args += ["--image", im]
    p = run(*args)
    assert p.returncode == 0, p.stderr
    doc = json.load(open(out / "vision.json"))
    with package.Model.load(VIT) as m:
        r = package.vision(m, IMAGES, 1, 2, perturb="blur", figures="svg")
        from PIL import Image
        pixels = np.asarray(Image.open(IMAGES[0]).convert("RGB"))
        r_arr = package.vision(m, pixels, 1, 2)
    assert r.grid == tuple(doc["grid"]) and (r.height, r.width) == (doc["height"], doc["width"])
    for t, (im, ij) in enumerate(zip(r.images, doc["images"])):
        assert im.name == ij["image"]
        for k in range(2):
            ours = [[b, None if math.isinf(x) else x] for b, x in im.persistence.dims[k].tolist()]
            assert ours == ij["dims"][k]["pairs"]
        assert im.bottleneck.tolist() == ij["perturbed"]["bottleneck"]
        assert im.wasserstein.tolist() == ij["perturbed"]["wasserstein"]
        for kind, stem in (("diagram", "diagram"), ("barcode", "barcode"), ("skeleton", "patches")):
            assert same_svg(im.figures[kind], (out / f"{stem}_{t + 1}.svg").read_bytes())
            assert same_svg(im.perturbed.figures[kind],
                            (out / f"{stem}_{t + 1}_blur.svg").read_bytes())
    for t, f in enumerate(doc["consecutive_frames"]):
        assert r.frame_bottleneck[t].tolist() == f["bottleneck"]
        assert r.frame_wasserstein[t].tolist() == f["wasserstein"]
    assert same_svg(r.frames_figure, (out / "frames.svg").read_bytes())
    # pixels in memory run as the file does
    assert np.array_equal(r_arr.images[0].distances, r.images[0].distances)
    # the metric against scipy on the attention `attnscope attention` reports
    att = tmp_path / "a.npy"
    assert run("attention", "--model", VIT, "--image", IMAGES[0], "--npy", str(att)).returncode == 0
    patches = np.load(att)[1, 2, 1:, :].astype(np.float64)
    n = len(patches)
    ref = np.array([[jensenshannon(patches[i], patches[j], base=2) if i != j else 0.0
                     for j in range(n)] for i in range(n)])
    assert np.abs(r.images[0].distances - 0.5 * (ref + ref.T)).max() < 1e-9


def test_python_bad_input(package):
    with package.Model.load(VIT) as m:
        with pytest.raises(package.AttnscopeError, match="layer 5, head 0 is outside"):
            package.vision(m, IMAGES[0], 5, 0)
        with pytest.raises(ValueError, match="uint8"):
            package.vision(m, np.zeros((8, 8), np.float32), 0, 0)
        with pytest.raises(package.AttnscopeError, match="nope.png"):
            package.vision(m, "nope.png", 0, 0)


@pytest.mark.parametrize("size", [None, "96x128"])
def test_default_scales_keep_the_skeleton_readable(package, size):
    """The default scales give at most n/2, n and 2n edges (mean degree 1, 2, 4) for n patches,
    and no more than the 10/25/50 % quantiles: at 192 patches the quantiles alone drew ~19
    edges a patch."""
    with package.Model.load(VIT) as m:
        im = package.vision(m, IMAGES[0], 1, 2, image_size=size and (96, 128)).images[0]
    d = im.distances[np.tril_indices(len(im.distances), -1)]
    n, c = len(im.distances), np.sort(d)
    for s, e, q in zip(im.scales, (n // 2, n, 2 * n), (len(c) // 10, len(c) // 4, len(c) // 2)):
        assert s == c[min(e - 1, q)]
        assert (d <= s).sum() <= min(e, q + 1) or (d == s).sum() > 1  # ties add edges


def test_sphere(tmp_path, package):
    """--sphere: patch k at point k of the golden-angle spiral, and the K strongest edges of
    (A + A^T) / 2 over the patches of the attention `attnscope attention` reports (NumPy)."""
    out = tmp_path / "s"
    p = run("vision", "--model", VIT, "--image", IMAGES[1], "--layer", "0", "--head", "3",
            "--out", str(out), "--sphere-edges", "20", "--format", "svg")
    assert p.returncode == 0, p.stderr
    sp = json.load(open(out / "vision.json"))["images"][0]["sphere"]
    assert "<svg" in (out / "sphere_1.svg").read_text()
    att = tmp_path / "a.npy"
    assert run("attention", "--model", VIT, "--image", IMAGES[1], "--npy", str(att)).returncode == 0
    A = np.load(att)[0, 3, 1:, 1:].astype(np.float64)
    n = len(A)
    k = np.arange(n)
    y = 1 - 2 * (k + 0.5) / n
    phi = k * np.pi * (3 - np.sqrt(5))
    ref = np.stack([np.cos(phi) * np.sqrt(1 - y * y), y, np.sin(phi) * np.sqrt(1 - y * y)], 1)
    assert np.abs(np.array(sp["points"]) - ref).max() < 1e-12
    W = (A + A.T) / 2
    pairs = sorted(((-W[i, j], i, j) for i in range(1, n) for j in range(i)))[:20]
    assert [[i, j] for _, i, j in pairs] == [e[:2] for e in sp["edges"]]
    assert np.abs(np.array([-w for w, _, _ in pairs]) - [e[2] for e in sp["edges"]]).max() < 1e-7
    with package.Model.load(VIT) as m:
        im = package.vision(m, IMAGES[1], 0, 3, sphere=True, sphere_edges=20).images[0]
    assert np.array_equal(im.sphere, np.array(sp["points"]))
    assert im.edges.tolist() == [e[:2] for e in sp["edges"]]
