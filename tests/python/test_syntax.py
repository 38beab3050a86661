"""attnscope syntax: the per-relation table over the UD English EWT dev set (data/ud-english-ewt)
equals an independent implementation of the same definitions over transformers' attentions
(tools/make_syntax_reference.py, recorded in tests/fixtures/syntax/reference.json) on the bert
and gpt2 fixtures and the real all-MiniLM-L6-v2: sentence, skip and arc counts exactly, every
head's count of correct arcs exactly except where the reference found the decision within its
tie tolerance (then by at most that many arcs), best heads, baselines and accuracies within
1e-6. Bad CoNLL-U is refused with the line named, exit 2 and no output."""
import json
import os
import subprocess

import numpy as np
import pytest

from rips_reference import ATTNSCOPE, ROOT
from test_architectures import model_dir  # a fixture's folder, or MiniLM's (else a skip)

CONLLU = os.path.join(ROOT, "data", "ud-english-ewt", "en_ewt-ud-dev.conllu")
REF = json.load(open(os.path.join(ROOT, "tests", "fixtures", "syntax", "reference.json")))


def run(*args):
    return subprocess.run([ATTNSCOPE, "syntax", *args], capture_output=True, text=True)


def best_offset(offsets):
    """The baseline's rule: most arcs, ties the smaller |k|, then the negative k."""
    return max(((n, -abs(int(k)), -int(k)) for k, n in offsets.items()))


@pytest.mark.parametrize("name", ["bert", "gpt2", "minilm"])
def test_against_reference(tmp_path, name):
    ref = REF["models"][name]
    out = tmp_path / "syntax.json"
    p = run("--model", model_dir(name), "--conllu", CONLLU, "--json", str(out),
            "--max-sentences", str(ref["max_sentences"]))
    assert p.returncode == 0, p.stderr
    doc = json.load(open(out))
    for key in ("sentences", "skipped", "arcs", "unmapped_arcs", "layers", "heads"):
        assert doc[key] == ref[key], key
    assert doc["sentences"] + doc["skipped"] == ref["max_sentences"]
    assert set(doc["relations"]) == set(ref["relations"])
    counts = [e["count"] for e in doc["relations"].values()]
    assert counts == sorted(counts, reverse=True)  # the table's order
    ambiguous = total = 0
    for rel, want in ref["relations"].items():
        got = doc["relations"][rel]
        c = want["count"]
        assert got["count"] == c, rel
        correct, wcorrect = np.array(got["head_correct"]), np.array(want["head_correct"])
        amb = np.array(want["ambiguous"])
        assert (np.abs(correct - wcorrect) <= amb).all(), rel
        ambiguous += amb.sum()
        total += amb.size * c
        # best head: the most correct arcs, the lowest l*H + h on ties; the reference's
        # choice is certain when its margin exceeds what the near ties could move
        flat, H = correct.ravel(), doc["heads"]
        best = int(np.argmax(flat))
        assert got["best_head"] == [best // H, best % H], rel
        assert abs(got["accuracy"] - flat[best] / c) <= 1e-12
        wflat = wcorrect.ravel()
        wbest = int(np.argmax(wflat))
        second = np.max(np.delete(wflat, wbest)) if wflat.size > 1 else -1
        if wflat[wbest] - amb.ravel()[wbest] > second + amb.max():
            assert best == wbest, rel
        assert abs(got["accuracy"] - wflat[wbest] / c) <= amb.max() / c + 1e-6, rel
        # baseline: from the reference's offsets, exactly
        n, _, negk = best_offset(want["offsets"])
        assert got["baseline_offset"] == -negk, rel
        assert abs(got["baseline_accuracy"] - n / c) <= 1e-6, rel
    # the tolerance must leave the comparison meaningful
    assert ambiguous <= 0.02 * total, (ambiguous, total)


def test_threads_do_not_change_the_result(tmp_path):
    outs = []
    for t in ("1", "3"):
        out = tmp_path / f"t{t}.json"
        p = run("--model", model_dir("bert"), "--conllu", CONLLU, "--json", str(out),
                "--max-sentences", "60", "--threads", t)
        assert p.returncode == 0, p.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


SMALL = """# text = The cat sat.
1\tThe\tthe\tDET\tDT\t_\t2\tdet\t2:det\t_
2\tcat\tcat\tNOUN\tNN\t_\t3\tnsubj\t3:nsubj\t_
3-4\tsat.\t_\t_\t_\t_\t_\t_\t_\t_
3\tsat\tsit\tVERB\tVBD\t_\t0\troot\t0:root\t_
3.1\tsat\tsit\tVERB\tVBD\t_\t_\t_\t2:nsubj\t_
4\t.\t.\tPUNCT\t.\t_\t3\tpunct:x\t3:punct\tSpaceAfter=No

1\tDogs\tdog\tNOUN\tNNS\t_\t2\tnsubj\t_\t_
2\tbark\tbark\tVERB\tVBP\t_\t0\troot\t_\t_
"""


def test_ranges_empty_nodes_subtypes_and_figures(tmp_path):
    f = tmp_path / "small.conllu"
    f.write_text(SMALL, encoding="utf-8")
    out = tmp_path / "s.json"
    p = run("--model", model_dir("bert"), "--conllu", str(f), "--json", str(out), "--out",
            str(tmp_path / "fig"))
    assert p.returncode == 0, p.stderr
    doc = json.load(open(out))
    assert doc["sentences"] == 2 and doc["skipped"] == 0 and doc["arcs"] == 4
    rels = doc["relations"]
    assert {r: rels[r]["count"] for r in rels} == {"nsubj": 2, "det": 1, "punct": 1}
    assert rels["det"]["baseline_offset"] == 1 and rels["det"]["baseline_accuracy"] == 1
    assert rels["punct"]["baseline_offset"] == -1
    # nsubj: +1 in both sentences
    assert rels["nsubj"]["baseline_offset"] == 1 and rels["nsubj"]["baseline_accuracy"] == 1
    assert "nsubj" in p.stdout and "det" in p.stdout
    for name in ("syntax_heads.png", "syntax_baseline.png"):
        assert (tmp_path / "fig" / name).stat().st_size > 2000
    # the first sentence alone
    p = run("--model", model_dir("bert"), "--conllu", str(f), "--json", str(out),
            "--max-sentences", "1")
    assert p.returncode == 0, p.stderr
    assert json.load(open(out))["sentences"] == 1


LINE = "2\tcat\tcat\tNOUN\tNN\t_\t{head}\tnsubj\t_\t_"


@pytest.mark.parametrize("bad,line,what", [
    (b"1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n2\tca\xfft\tcat\tNOUN\tNN\t_\t0\troot\t_\t_\n",
     2, "invalid UTF-8"),
    (b"1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\n", 1, "10 tab-separated fields"),
    (b"1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\t_\n", 1, "10 tab-separated fields"),
    (b"1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n" + LINE.format(head="x").encode() + b"\n", 2,
     "HEAD 'x'"),
    (b"1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n" + LINE.format(head="-1").encode() + b"\n", 2,
     "HEAD '-1'"),
    (b"1\tThe\tthe\tDET\tDT\t_\t9\tdet\t_\t_\n" + LINE.format(head="0").encode() + b"\n", 1,
     "HEAD 9 is not a word"),
    (b"1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n" + LINE.format(head="2").encode() + b"\n", 2,
     "its own HEAD"),
    (b"1\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n3\tcat\tcat\tNOUN\tNN\t_\t0\troot\t_\t_\n", 2,
     "ID 3 where 2"),
    (b"x\tThe\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n", 1, "ID 'x'"),
    (b"1\tThe\tthe\tDET\tDT\t_\t2\t_\t_\t_\n" + LINE.format(head="0").encode() + b"\n", 1,
     "no DEPREL"),
    (b"1\t\tthe\tDET\tDT\t_\t2\tdet\t_\t_\n", 1, "empty FORM"),
    (b"# only a comment\n\n", 0, "no sentence"),
])
def test_bad_conllu(tmp_path, bad, line, what):
    f = tmp_path / "bad.conllu"
    f.write_bytes(bad)
    out = tmp_path / "out.json"
    p = run("--model", model_dir("bert"), "--conllu", str(f), "--json", str(out))
    assert p.returncode == 2, p.stderr
    assert what in p.stderr
    if line:
        assert f"bad.conllu:{line}:" in p.stderr
    assert not out.exists()
    assert not [x for x in os.listdir(tmp_path) if x.startswith("out.json")]


def test_usage_errors(tmp_path):
    assert run("--model", model_dir("bert"), "--conllu", CONLLU).returncode == 2
    p = run("--model", model_dir("bert"), "--conllu", str(tmp_path / "missing.conllu"),
            "--json", str(tmp_path / "o.json"))
    assert p.returncode == 2 and "missing.conllu" in p.stderr
    p = run("--model", model_dir("bert"), "--conllu", CONLLU, "--json", str(tmp_path / "o.json"),
            "--max-sentences", "0")
    assert p.returncode == 2 and "--max-sentences" in p.stderr
