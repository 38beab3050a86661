"""examples/seed_analysis.ipynb runs end to end: every code cell, in order, in one namespace
(as nbconvert --execute would), with figures checked to be real images; from the repository
root, from examples/ (where Jupyter starts) and from a folder outside the repository."""
import importlib.util
import json
import os
import re
import sys
import types

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))


def fallback_model():
    """The fixture BERT when the real all-MiniLM-L6-v2 is not installed (read without putting
    tools/ on sys.path, which would hide whether the notebook finds it itself)."""
    spec = importlib.util.spec_from_file_location("minilm_dir_t",
                                                  os.path.join(ROOT, "tools", "minilm_dir.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return None if mod.minilm_dir() else os.path.join(ROOT, "tests", "fixtures", "models", "bert")


@pytest.mark.parametrize("where", ["root", "examples", "elsewhere"])
def test_seed_notebook_runs(monkeypatch, tmp_path, capsys, where):
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
    monkeypatch.setattr(sys, "path", list(sys.path))  # what the notebook adds goes away after
    monkeypatch.delitem(sys.modules, "minilm_dir", raising=False)
    monkeypatch.delenv("ATTNSCOPE_ROOT", raising=False)
    monkeypatch.chdir({"root": ROOT, "examples": os.path.join(ROOT, "examples"),
                       "elsewhere": str(tmp_path)}[where])
    if not os.environ.get("ATTNSCOPE_MODEL") and fallback_model():
        monkeypatch.setenv("ATTNSCOPE_MODEL", fallback_model())
    nb = json.load(open(os.path.join(ROOT, "examples", "seed_analysis.ipynb")))
    ns = {"__name__": "__main__"}
    for i, cell in enumerate(c for c in nb["cells"] if c["cell_type"] == "code"):
        exec(compile("".join(cell["source"]), f"cell {i}", "exec"), ns)
    assert len(shown) >= 9
    assert os.path.samefile(ns["ROOT"], ROOT)
    # the entropy table has a row for every position, repeated tokens included
    tokens = ns["runs"][0].tokens
    rows = re.findall(r"^\s*(\d+)  (\S+)\s+(\d+\.\d{3})$", capsys.readouterr().out, re.M)
    assert [int(r[0]) for r in rows] == list(range(len(tokens)))
    assert [r[1] for r in rows] == list(tokens)
    assert len(set(tokens)) < len(tokens)  # the text has a repeated token ("the")
