"""examples/seed_analysis.ipynb runs end to end: every code cell, in order, in one namespace
(as nbconvert --execute would), with figures checked to be real images."""
import json
import os
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))


def test_seed_notebook_runs(monkeypatch):
    shown = []
    display_mod = types.ModuleType("IPython.display")

    class Image:
        def __init__(self, data):
            assert isinstance(data, (bytes, bytearray)) and data[:4] == b"\x89PNG", "not a PNG"
            shown.append(len(data))

    display_mod.Image = Image
    display_mod.display = lambda *objs: None
    ipython = types.ModuleType("IPython")
    ipython.display = display_mod
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    monkeypatch.setitem(sys.modules, "IPython.display", display_mod)
    monkeypatch.chdir(ROOT)
    if not os.environ.get("ATTNSCOPE_MODEL"):
        sys.path.insert(0, os.path.join(ROOT, "tools"))
        from minilm_dir import minilm_dir
        if not minilm_dir():
            monkeypatch.setenv("ATTNSCOPE_MODEL", os.path.join(ROOT, "tests", "fixtures", "models", "bert"))
    nb = json.load(open(os.path.join(ROOT, "examples", "seed_analysis.ipynb")))
    ns = {"__name__": "__main__"}
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        exec(compile("".join(cell["source"]), f"cell {i}", "exec"), ns)
    assert len(shown) >= 9
