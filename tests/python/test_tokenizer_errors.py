"""attnscope tokenize on bad input: each error names the file (or the text's byte offset) and
what is wrong, exits 2 and writes no output file."""
import json
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
EXE = os.environ.get("ATTNSCOPE", os.path.join(ROOT, "build", "attnscope"))


def run(*args, stdin=None):
    return subprocess.run([EXE, "tokenize", *args], capture_output=True, input=stdin)


def fails(r, *needles):
    err = r.stderr.decode("utf-8", "replace")
    assert r.returncode == 2, (r.returncode, err)
    for n in needles:
        assert n in err, (n, err)
    return err


def test_invalid_utf8_names_byte_offset(tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes(b"hello \xc3\xa9 w\xe9rld")
    out = tmp_path / "o.json"
    fails(run("--model", os.path.join(FIX, "tiny_bert"), "--file", str(f), "--json", str(out)),
          "invalid UTF-8", "byte offset 10")
    assert not out.exists()
    # overlong, surrogate, truncated sequence
    for bad, off in ((b"ab\xc0\xafc", 2), (b"\xed\xa0\x80", 0), (b"xyz\xf0\x9f\x98", 3)):
        f.write_bytes(bad)
        fails(run("--model", os.path.join(FIX, "tiny_roberta"), "--file", str(f)),
              f"byte offset {off}")


def test_invalid_utf8_in_lines_names_line(tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes(b"good\nalso good\nbad \xff here\n")
    fails(run("--model", os.path.join(FIX, "tiny_bert"), "--file", str(f), "--lines"),
          "line 3", "byte offset 4")


def copy_model(tmp_path, name):
    d = tmp_path / name
    shutil.copytree(os.path.join(FIX, name), d)
    return d


def test_corrupt_tokenizer_json(tmp_path):
    d = copy_model(tmp_path, "tiny_bert")
    p = d / "tokenizer.json"
    text = p.read_text(encoding="utf-8")
    p.write_text(text[: len(text) // 2], encoding="utf-8")
    fails(run("--model", str(d), "--text", "x"), str(p), "invalid JSON")
    # wrong types and dangling references
    j = json.loads(text)
    cases = []
    k = json.loads(text)
    k["model"]["vocab"]["hello"] = "seven"
    cases.append((k, "model.vocab", "hello"))
    k = json.loads(text)
    k["model"]["vocab"]["hello"] = -3
    cases.append((k, "model.vocab", "hello"))
    k = json.loads(text)
    k["model"]["unk_token"] = "[NOPE]"
    cases.append((k, "unk_token", "[NOPE]"))
    k = json.loads(text)
    k["model"]["type"] = "Unigram"
    cases.append((k, "model.type", "Unigram"))
    k = json.loads(text)
    k["normalizer"] = {"type": "Precompiled"}
    cases.append((k, "normalizer", "Precompiled"))
    k = json.loads(text)
    k["post_processor"]["special_tokens"]["[CLS]"]["ids"] = [999999]
    cases.append((k, "post_processor", "999999"))
    k = json.loads(text)
    k["added_tokens"][0].pop("id")
    cases.append((k, "added_tokens[0]", "id"))
    del j
    for obj, *needles in cases:
        p.write_text(json.dumps(obj), encoding="utf-8")
        fails(run("--model", str(d), "--text", "x"), str(p), *needles)


def test_corrupt_bpe_files(tmp_path):
    d = copy_model(tmp_path, "tiny_roberta_files")
    merges = (d / "merges.txt").read_text(encoding="utf-8").split("\n")
    good = "\n".join(merges)
    lines = list(merges)
    lines[5] = "a b c"
    (d / "merges.txt").write_text("\n".join(lines), encoding="utf-8")
    fails(run("--model", str(d), "--text", "x"), "merges.txt:6", "two tokens")
    lines = list(merges)
    lines[7] = "Ġzz qq"
    (d / "merges.txt").write_text("\n".join(lines), encoding="utf-8")
    fails(run("--model", str(d), "--text", "x"), "merges.txt", "merge 8", "not in the vocabulary")
    (d / "merges.txt").write_text(good, encoding="utf-8")
    (d / "vocab.json").write_text('{"a": 0, "b": 1,', encoding="utf-8")
    fails(run("--model", str(d), "--text", "x"), "vocab.json:1:", "invalid JSON")
    (d / "vocab.json").write_text('{"a": 0, "b": 1.5}', encoding="utf-8")
    fails(run("--model", str(d), "--text", "x"), "vocab.json", "'b'")


def test_bad_vocab_txt_and_missing_files(tmp_path):
    d = copy_model(tmp_path, "tiny_bert_files")
    (d / "vocab.txt").write_bytes(b"[PAD]\n[UNK]\nab\xffc\n")
    fails(run("--model", str(d), "--text", "x"), "vocab.txt:3:3", "invalid UTF-8")
    (d / "vocab.txt").write_bytes(b"[PAD]\n[CLS]\n[SEP]\nx\n")
    fails(run("--model", str(d), "--text", "x"), "vocab.txt", "[UNK]")
    e = tmp_path / "empty"
    e.mkdir()
    fails(run("--model", str(e), "--text", "x"), "no tokenizer found", "tokenizer.json")
    fails(run("--model", str(tmp_path / "does-not-exist"), "--text", "x"), "does-not-exist")


def test_usage_errors():
    m = os.path.join(FIX, "tiny_bert")
    fails(run("--text", "x"), "--model")
    fails(run("--model", m), "--text")
    fails(run("--model", m, "--text", "x", "--file", "y"), "exactly one")
    fails(run("--model", m, "--text", "x", "--bogus"), "--bogus")
    fails(run("--model", m, "--file", "/nonexistent/file.txt"), "/nonexistent/file.txt")
    r = run("--help")
    assert r.returncode == 0 and b"--model" in r.stdout


@pytest.mark.parametrize("name", ["tiny_bert", "tiny_roberta"])
def test_long_inputs_are_fast(tmp_path, name):
    """One 80 000-character word and 10 000 short ones: no quadratic behaviour."""
    f = tmp_path / "long.txt"
    f.write_text("ab" * 40000 + " " + "token ize " * 5000, encoding="utf-8")
    out = tmp_path / "o.json"
    r = run("--model", os.path.join(FIX, name), "--file", str(f), "--json", str(out), "--no-special")
    assert r.returncode == 0, r.stderr.decode()
    ids = json.loads(out.read_text())["ids"]
    assert len(ids) > 10000
