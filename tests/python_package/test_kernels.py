"""Kernel paths from Python: the names come from the library, the supported ones match the
CLI's --version, set_kernel_path switches the forward pass, and the results of the paths agree
(FMA paths bit for bit, generic within 1e-5)."""
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))

import attnscope  # noqa: E402

ATTNSCOPE = os.environ.get("ATTNSCOPE", os.path.join(ROOT, "build", "attnscope"))
BERT = os.path.join(ROOT, "tests", "fixtures", "models", "bert")


def test_paths_and_version_match_the_cli():
    env = dict(os.environ)
    env.pop("ATS_KERNEL", None)
    out = subprocess.run([ATTNSCOPE, "--version"], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert out.startswith(f"attnscope {attnscope.version()}\n")
    supports = out.split("supports: ")[1].split(";")[0].split()
    assert list(attnscope.kernel_paths()) == [p for p in ("generic", "avx2", "avx512", "neon")
                                              if p in supports]
    assert attnscope.kernel_path() in attnscope.kernel_paths()


def test_set_kernel_path():
    before = attnscope.kernel_path()
    model = attnscope.Model.load(BERT)
    ids = [2, 41, 7, 19, 30, 5, 11, 23, 8]
    att = {}
    try:
        for p in attnscope.kernel_paths():
            attnscope.set_kernel_path(p)
            assert attnscope.kernel_path() == p
            att[p] = np.array(model.run(ids=ids).attentions)
    finally:
        attnscope.set_kernel_path(before)
    fma = [p for p in att if p != "generic"]
    for p in fma[1:]:
        assert np.array_equal(att[p], att[fma[0]])
    for p in fma:
        assert np.abs(att[p] - att["generic"]).max() <= 1e-5
    lacking = [p for p in ("avx2", "avx512", "neon") if p not in attnscope.kernel_paths()]
    for p in lacking:
        with pytest.raises(attnscope.AttnscopeError, match="support: generic"):
            attnscope.set_kernel_path(p)
    with pytest.raises(ValueError):
        attnscope.set_kernel_path("sse9")
