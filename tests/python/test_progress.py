"""The progress line on stderr (src/cli/progress.c): silent when stderr is not a terminal,
shown with --progress, with an ETA whose total is the real one (--max-lines, the ablation's
passes)."""
import os
import re
import subprocess

import pytest

from rips_reference import ATTNSCOPE, ROOT

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "models")
GPT2 = os.path.join(FIXTURES, "gpt2")
LINE = re.compile(r"^heads (\w+): (\d+)/(\d+) (\w+) \((\d+)%\), [\d.]+ \w+/s, .*, ETA (.+)$")


def corpus(tmp_path, lines=60):
    p = tmp_path / "c.txt"
    p.write_text("".join(f"line {i}: the cat sat on the mat\n" for i in range(lines)))
    return p


def heads(*extra):
    return subprocess.run([ATTNSCOPE, "heads", "--model", GPT2, *extra], capture_output=True,
                          text=True, timeout=300)


def test_silent_without_a_terminal(tmp_path):
    p = heads("--corpus", str(corpus(tmp_path)), "--output", str(tmp_path / "D.npy"))
    assert p.returncode == 0, p.stderr
    assert "ETA" not in p.stderr and p.stderr.strip() == "", p.stderr


def test_corpus_eta_knows_max_lines(tmp_path):
    p = heads("--corpus", str(corpus(tmp_path)), "--output", str(tmp_path / "D.npy"),
              "--max-lines", "20", "--progress")
    assert p.returncode == 0, p.stderr
    lines = [LINE.match(l) for l in p.stderr.splitlines() if l.startswith("heads corpus")]
    assert lines and all(lines), p.stderr
    assert {m.group(3) for m in lines} == {"20"}, p.stderr  # the total is --max-lines
    last = lines[-1]
    assert (last.group(2), last.group(5), last.group(6)) == ("20", "100", "0 s")


def test_corpus_shorter_than_max_lines_ends_at_its_own_total(tmp_path):
    p = heads("--corpus", str(corpus(tmp_path, 7)), "--output", str(tmp_path / "D.npy"),
              "--max-lines", "20", "--progress")
    assert p.returncode == 0, p.stderr
    last = [l for l in p.stderr.splitlines() if l.startswith("heads corpus")][-1]
    assert LINE.match(last).group(2, 3) == ("7", "7"), last


def test_quiet_wins(tmp_path):
    p = heads("--corpus", str(corpus(tmp_path)), "--output", str(tmp_path / "D.npy"),
              "--progress", "--quiet")
    assert p.returncode == 0 and "ETA" not in p.stderr


def test_ablation_counts_its_passes(tmp_path):
    """GPT-2 fixture: N = 2 layers x 4 heads = 8; passes = 1 + 2N + curve + (1 + curve) with
    curve = ceil(N / ceil(N/20)) + 1 = 9, as the causal LM also has the gradient curve."""
    p = heads("--corpus", str(corpus(tmp_path)), "--output", str(tmp_path / "D.npy"), "--out",
              str(tmp_path / "o"), "--ablation", "--ablation-lines", "4", "--progress")
    assert p.returncode == 0, p.stderr
    abl = [LINE.match(l) for l in p.stderr.splitlines() if l.startswith("heads ablation")]
    assert abl and all(abl), p.stderr
    N = 8
    curve = N + 1
    total = 1 + 2 * N + curve + 1 + curve
    assert {m.group(3) for m in abl} == {str(total)}, p.stderr
    assert abl[-1].group(2) == str(total) and abl[-1].group(4) == "passes"


def test_importance_progress_knows_max_lines(tmp_path):
    p = subprocess.run([ATTNSCOPE, "importance", "--model", GPT2, "--corpus",
                        str(corpus(tmp_path)), "--json", str(tmp_path / "i.json"), "--max-lines",
                        "25", "--progress"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = [l for l in p.stderr.splitlines() if l.startswith("importance corpus: ")]
    assert lines and all("/25 lines" in l for l in lines), p.stderr
    assert lines[-1].startswith("importance corpus: 25/25 lines (100%)")


def test_syntax_progress_counts_sentences(tmp_path):
    conllu = os.path.join(ROOT, "data", "ud-english-ewt", "en_ewt-ud-dev.conllu")
    if not os.path.exists(conllu):
        pytest.skip("UD English EWT missing")
    p = subprocess.run([ATTNSCOPE, "syntax", "--model", os.path.join(FIXTURES, "bert"),
                        "--conllu", conllu, "--json", str(tmp_path / "s.json"),
                        "--max-sentences", "40", "--progress"], capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stderr
    lines = [l for l in p.stderr.splitlines() if l.startswith("syntax sentences: ")]
    assert lines and lines[-1].startswith("syntax sentences: 40/40 sentences (100%)"), p.stderr
    # without --progress and without a terminal: nothing
    q = subprocess.run([ATTNSCOPE, "syntax", "--model", os.path.join(FIXTURES, "bert"),
                        "--conllu", conllu, "--json", str(tmp_path / "s.json"),
                        "--max-sentences", "5"], capture_output=True, text=True, timeout=300)
    assert q.returncode == 0 and "ETA" not in q.stderr


@pytest.mark.parametrize("two_models", [False, True])
def test_compare_progress(tmp_path, two_models):
    """compare --progress: the persistence of every head (2 inputs x L x H) and the distances, each
    ending at its total; silent without --progress off a terminal."""
    bert, gpt2 = (os.path.join(FIXTURES, m) for m in ("bert", "gpt2"))
    if two_models:
        args = ["--model", bert, "--model", gpt2, "--text", "the cat sat on the mat"]
        pairs = 8 * 8
    else:
        args = ["--model", bert, "--text", "the cat sat on the mat", "--text", "a dog ran far",
                "--all-heads"]
        pairs = 8
    for progress in (False, True):
        p = subprocess.run([ATTNSCOPE, "compare", *args, "--json", str(tmp_path / "c.json"),
                            *(["--progress"] if progress else [])], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        if not progress:
            assert "persistence" not in p.stderr
            continue
        assert re.search(r"compare persistence: 16/16 heads \(100%\)", p.stderr), p.stderr
        assert re.search(rf"compare diagram distances: {pairs}/{pairs} ", p.stderr), p.stderr
