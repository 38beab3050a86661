"""Every JSON the commands and the viewer write is JSON: read here with json.loads refusing NaN and
Infinity (which Python would otherwise accept), on inputs that put undefined values (NaN: head
statistics without roles) and infinities (the deaths of essential classes, several of them below
a threshold) into each writer. The rule they follow is ats_json_number_format's (core.h); its
every case is tested on the library itself in tests/python_package."""
import glob
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_helper import ATTNSCOPE, ROOT, serving  # noqa: E402

MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
BERT, GPT2, VIT = (os.path.join(MODELS, m) for m in ("bert", "gpt2", "vit"))
A = "The cat sat on the mat."
B = "A dog slept under the old wooden table."


def strict(text):
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def run(*args):
    p = subprocess.run([ATTNSCOPE, *map(str, args)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p


def deaths(dims):
    return [d for e in dims for _, d in e["pairs"]]


def test_command_outputs_are_strict_json(tmp_path):
    # rips: below a threshold every component that never merges is essential (death null)
    pts = tmp_path / "pts.txt"
    np.savetxt(pts, [[0, 0], [0, 1], [5, 0], [5, 1], [20, 0]])
    run("rips", pts, "--format", "point-cloud", "--threshold", "2", "--json", tmp_path / "r.json")
    r = strict((tmp_path / "r.json").read_text())
    assert deaths(r["dims"]).count(None) == 3
    # topo, compare and graph on a head, with essential classes below the threshold
    run("attention", "--model", BERT, "--text", A, "--npy", tmp_path / "a.npy")
    run("attention", "--model", BERT, "--text", B, "--npy", tmp_path / "b.npy")
    run("topo", "--attention", tmp_path / "a.npy", "--layer", "1", "--head", "0", "--threshold",
        "0.05", "--out", tmp_path / "topo", "--format", "svg")
    t = strict((tmp_path / "topo" / "result.json").read_text())
    assert deaths(t["diagrams"]["dims"]).count(None) > 1
    run("compare", "--attention", tmp_path / "a.npy", "--attention", tmp_path / "b.npy",
        "--all-heads", "--json", tmp_path / "c.json")
    strict((tmp_path / "c.json").read_text())
    # measure stats: without token roles the role statistics are undefined (null)
    run("measure", "stats", "--input", tmp_path / "a.npy", tmp_path / "b.npy", "--output",
        tmp_path / "s.json")
    s = strict((tmp_path / "s.json").read_text())
    assert None in [x for v in s["stats"].values() for row in v for x in row]
    # context, vision, equivariance, divergence
    run("context", "--model", BERT, "--model", GPT2, "--text", A, "--text", "The cat ran.",
        "--word", "cat", "--out", tmp_path / "ctx", "--format", "svg")
    run("vision", "--model", VIT, "--image", os.path.join(VIT, "expected", "image0.png"),
        "--layer", "0", "--head", "0", "--perturb", "noise", "--out", tmp_path / "vis",
        "--format", "svg")
    run("equivariance", "--model", BERT, "--text", B, "--out", tmp_path / "eq", "--format", "svg")
    run("divergence", "--attention", tmp_path / "a.npy", "--layer", "0", "--head", "0", "--out",
        tmp_path / "div", "--format", "svg")
    # heads: the summary of two models and the diagrams of the heads
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(f"{A}\n{B}\nThe cat ran.\n")
    run("heads", "--model", BERT, "--model", GPT2, "--corpus", corpus, "--out", tmp_path / "heads",
        "--quiet")
    files = glob.glob(str(tmp_path / "**" / "*.json"), recursive=True)
    assert len(files) >= 10
    for f in files:
        with open(f) as fp:
            strict(fp.read())


def test_viewer_answers_are_strict_json():
    with serving(BERT) as srv:
        for path, body in (("/api/info", None),
                           ("/api/analyze", {"text": A, "text2": B, "layer": 1, "head": 0,
                                             "threshold": 0.05, "max_dim": 2}),
                           ("/api/analyze", {"text": A, "layer": 0, "head": 1, "measure": "kl"}),
                           ("/api/overview", {"text": B})):
            status, _, data = srv.request(path, body)
            assert status == 200
            strict(data)
        d = strict(srv.request("/api/analyze", {"text": A, "layer": 1, "head": 0,
                                                "threshold": 0.05})[2])
        assert deaths(d["texts"][0]["diagrams"]["dims"]).count(None) == 1
