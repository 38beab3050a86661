"""The viewer in Debian's Chromium (playwright-core, tests/browser/viewer_test.mjs): loads the page
from `attnscope serve` on 127.0.0.1, moves the threshold slider, switches head with the slider and
with the overview grid, types a new text, hovers and rotates the 3-D complex, exports figures.
Screenshots go to <build dir>/screenshots. Skipped (not failed) where node, Chromium or
playwright-core (tools/deps.sh installs it into third_party/playwright) is missing."""
import os
import shutil
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_helper import ATTNSCOPE, ROOT  # noqa: E402

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
PLAYWRIGHT = os.path.join(ROOT, "third_party", "playwright", "node_modules", "playwright-core")


def node_with_chromium():
    """node's path, or a skip when node, Chromium or playwright-core is missing"""
    node = shutil.which("node")
    if not node:
        pytest.skip("node is not installed")
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"Chromium is not installed at {CHROMIUM}")
    if not os.path.isdir(os.environ.get("PLAYWRIGHT_CORE", PLAYWRIGHT)):
        pytest.skip("playwright-core is not installed (tools/deps.sh)")
    return node


def test_viewer_in_chromium():
    node = node_with_chromium()
    shots = os.path.join(os.path.dirname(os.path.abspath(ATTNSCOPE)), "screenshots")
    p = subprocess.run([node, os.path.join(ROOT, "tests", "browser", "viewer_test.mjs"), ATTNSCOPE,
                        os.path.join(ROOT, "tests", "fixtures", "models", "bert"),
                        os.path.join(ROOT, "web"), shots],
                       capture_output=True, text=True, timeout=300)
    print(p.stdout)
    assert p.returncode == 0, p.stdout + p.stderr
    assert os.path.getsize(os.path.join(shots, "08-final.png")) > 10000


def test_image_and_model_pair_views_in_chromium():
    """The ViT view (image upload, [CLS]/p(r,c) tokens, the sphere graph) and the two-model view
    (heads × heads heatmap, a click shows both heads): tests/browser/viewer_models_test.mjs."""
    node = node_with_chromium()
    models = os.path.join(ROOT, "tests", "fixtures", "models")
    vit = os.path.join(models, "vit")
    if not os.path.isfile(os.path.join(vit, "model.safetensors")):
        pytest.skip("ViT fixture missing")
    shots = os.path.join(os.path.dirname(os.path.abspath(ATTNSCOPE)), "screenshots")
    p = subprocess.run([node, os.path.join(ROOT, "tests", "browser", "viewer_models_test.mjs"),
                        ATTNSCOPE, vit, os.path.join(vit, "expected", "image0.png"),
                        os.path.join(models, "bert"), os.path.join(models, "gpt2"),
                        os.path.join(ROOT, "web"), shots],
                       capture_output=True, text=True, timeout=300)
    print(p.stdout)
    assert p.returncode == 0, p.stdout + p.stderr
    for shot in ("09-image.png", "11-pair.png"):
        assert os.path.getsize(os.path.join(shots, shot)) > 10000
