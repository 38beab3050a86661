"""attnscope vision on the fixture ViT: the patch metric and diagrams against scipy + GUDHI on
the attention `attnscope attention --image` reports; perturbations; frames; bad input."""
import json
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


def test_patch_topology_matches_references(tmp_path):
    out = tmp_path / "v"
    p = run("vision", "--model", VIT, "--image", IMAGES[0], "--layer", "1", "--head", "2",
            "--out", str(out), "--format", "svg")
    assert p.returncode == 0, p.stderr
    doc = json.load(open(out / "vision.json"))
    att = tmp_path / "a.npy"
    assert run("attention", "--model", VIT, "--image", IMAGES[0], "--npy", str(att)).returncode == 0
    head = np.load(att)[1, 2].astype(np.float64)
    patches = head[1:]  # rows of the patch tokens, over all keys
    n = len(patches)
    d = np.array([[jensenshannon(patches[i], patches[j], base=2) if i != j else 0.0
                   for j in range(n)] for i in range(n)])
    d = 0.5 * (d + d.T)
    ours = {e["dim"]: np.array([[b, math.inf if x is None else x] for b, x in e["pairs"]]).reshape(-1, 2)
            for e in doc["images"][0]["dims"]}
    assert_same_diagrams(ours, gudhi_diagrams(d, 1), 1e-8, range(2), "vision")
    for k in ("diagram_1", "barcode_1", "patches_1"):
        assert "<svg" in (out / f"{k}.svg").read_text()


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
