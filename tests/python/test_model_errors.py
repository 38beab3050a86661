"""Bad input to `attnscope attention`: corrupt or truncated safetensors, missing or misshapen
tensors, unknown model types, bad text, unreadable images, bad ids. Each exits with status 2,
names the file (and the tensor), prints nothing on stdout and leaves no output behind."""
import json
import os
import shutil
import struct
import subprocess

import numpy as np
import pytest

ATTNSCOPE = os.environ.get("ATTNSCOPE", "build/attnscope")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "models")


def read_st(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


def write_st(path, header, data, hlen=None):
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h) if hlen is None else hlen) + h + data)


def model_copy(tmp_path, name="bert"):
    d = tmp_path / name
    shutil.copytree(os.path.join(ROOT, name), d, ignore=shutil.ignore_patterns("expected"))
    return d


def run(model, *extra, out=None):
    args = [ATTNSCOPE, "attention", "--model", str(model), *extra]
    if out is not None:
        args += ["--npy", str(out)]
    return subprocess.run(args, capture_output=True)


def check_fails(p, out, *fragments):
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 2, err
    assert p.stdout == b""
    if out is not None:
        assert not os.path.exists(out)
        assert not [f for f in os.listdir(os.path.dirname(out)) if ".tmp" in f]
    for f in fragments:
        assert f in err, (f, err)


WORD = "bert.embeddings.word_embeddings.weight"
Q0 = "bert.encoder.layer.0.attention.self.query.weight"


def corrupt(kind, header, data):
    """Returns (header, data, hlen, expected fragments)."""
    hlen = None
    if kind == "header_beyond_file":
        h = json.dumps(header).encode()
        hlen = len(h) + len(data) + 1000
        return header, data, hlen, ["header length", "beyond the end"]
    if kind == "offsets_out_of_range":
        header[Q0]["data_offsets"][1] = len(data) + 4
        return header, data, hlen, [Q0, "outside the data section"]
    if kind == "overlapping":
        other = "bert.encoder.layer.0.attention.self.key.weight"
        header[other]["data_offsets"] = list(header[Q0]["data_offsets"])
        return header, data, hlen, ["overlap", Q0, other]
    if kind == "size_mismatch":
        header[Q0]["shape"] = [32, 31]
        return header, data, hlen, [Q0, "need", "bytes"]
    if kind == "wrong_shape":
        header[WORD]["shape"] = header[WORD]["shape"][::-1]
        return header, data, hlen, [WORD, "has shape", "expected"]
    if kind == "wrong_dtype":
        header[Q0]["dtype"] = "I32"
        return header, data, hlen, [Q0, "dtype I32"]
    if kind == "unknown_dtype":
        header[Q0]["dtype"] = "Q4"
        return header, data, hlen, [Q0, "unknown dtype"]
    if kind == "missing_tensor":
        del header[Q0]
        return header, data, hlen, [Q0, "missing tensor"]
    if kind == "truncated":
        return header, data[: len(data) // 2], hlen, ["outside the data section"]
    if kind == "bad_offsets_type":
        header[Q0]["data_offsets"] = [0, "x"]
        return header, data, hlen, [Q0, "data_offsets"]
    raise AssertionError(kind)


KINDS = ["header_beyond_file", "offsets_out_of_range", "overlapping", "size_mismatch",
         "wrong_shape", "wrong_dtype", "unknown_dtype", "missing_tensor", "truncated",
         "bad_offsets_type"]


@pytest.mark.parametrize("kind", KINDS)
def test_corrupt_safetensors(tmp_path, kind):
    d = model_copy(tmp_path)
    st = d / "model.safetensors"
    header, data = read_st(st)
    header, data, hlen, frags = corrupt(kind, header, data)
    write_st(st, header, data, hlen)
    out = tmp_path / "att.npy"
    check_fails(run(d, "--ids", "2,5,3", out=out), out, str(st), *frags)


@pytest.mark.parametrize("raw,frag", [(b"", "too short"), (b"\x05\x00\x00\x00\x00\x00\x00\x00[1,2]",
                                                         "not a JSON object"),
                                      (b"\x04\x00\x00\x00\x00\x00\x00\x00{{{{", "not valid JSON")])
def test_garbage_safetensors(tmp_path, raw, frag):
    d = model_copy(tmp_path)
    (d / "model.safetensors").write_bytes(raw)
    check_fails(run(d, "--ids", "2,3"), None, "model.safetensors", frag)


def test_unknown_model_type(tmp_path):
    d = model_copy(tmp_path)
    cfg = json.load(open(d / "config.json"))
    cfg["model_type"] = "falcon"
    json.dump(cfg, open(d / "config.json", "w"))
    check_fails(run(d, "--ids", "2,3"), None, "config.json", "unknown model_type", "falcon")


def test_missing_files(tmp_path):
    d = model_copy(tmp_path)
    os.remove(d / "model.safetensors")
    check_fails(run(d, "--ids", "2,3"), None, "model.safetensors", "missing")
    os.remove(d / "config.json")
    check_fails(run(d, "--ids", "2,3"), None, "config.json")
    check_fails(run(tmp_path / "nope", "--ids", "2,3"), None, "nope")


def test_bad_ids_and_length(tmp_path):
    d = os.path.join(ROOT, "bert")
    out = tmp_path / "a.npy"
    check_fails(run(d, "--ids", "2,99999,3", out=out), out, "outside the vocabulary")
    check_fails(run(d, "--ids", "2,x,3", out=out), out, "--ids")
    check_fails(run(d, "--ids", "2,3", "--token-types", "0,7", out=out), out, "token type")
    long_ids = ",".join(["5"] * 41)  # max_position_embeddings = 40
    check_fails(run(d, "--ids", long_ids, out=out), out, "at most 40")
    p = run(d, "--ids", long_ids, "--truncate", out=out)
    assert p.returncode == 0, p.stderr
    assert np.load(out).shape == (2, 4, 40, 40)


def test_bad_text_and_images(tmp_path):
    out = tmp_path / "a.npy"
    p = subprocess.run([ATTNSCOPE.encode(), b"attention", b"--model",
                        os.path.join(ROOT, "bert").encode(), b"--text", b"caf\xff", b"--npy",
                        str(out).encode()], capture_output=True)
    check_fails(p, out, "UTF-8")
    vit = os.path.join(ROOT, "vit")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not an image")
    check_fails(run(vit, "--image", str(bad), out=out), out, str(bad), "not a readable image")
    check_fails(run(vit, "--image", str(tmp_path / "missing.png"), out=out), out, "missing.png")
    check_fails(run(vit, "--ids", "1,2", out=out), out, "image")
    check_fails(run(vit, "--text", "a cat", out=out), out, "image")
    check_fails(run(os.path.join(ROOT, "bert"), "--image", str(bad), out=out), out, "text")
    # image sizes: too small for one patch, too large, malformed, without an image
    img = os.path.join(vit, "expected", "image0.png")
    check_fails(run(vit, "--image", img, "--image-size", "4x4", out=out), out, "patch grid")
    check_fails(run(vit, "--image", img, "--image-size", "9000x9000", out=out), out, "patch grid")
    for bad_size in ("0", "12x", "x12", "12x-3", "abc", "99999"):
        check_fails(run(vit, "--image", img, "--image-size", bad_size, out=out), out,
                    "--image-size")
    check_fails(run(vit, "--text", "a", "--image-size", "32", out=out), out, "--image-size")


def test_loss_needs_a_head(tmp_path):
    d = model_copy(tmp_path, "vit")
    check_fails(run(d, "--image", os.path.join(ROOT, "vit", "expected", "image0.png"), "--logits",
                    str(tmp_path / "z.npy")), None, "LM head")


def test_bad_head_mask(tmp_path):
    m = tmp_path / "m.npy"
    np.save(m, np.ones((3, 4), dtype=np.float32))
    check_fails(run(os.path.join(ROOT, "bert"), "--ids", "2,3", "--head-mask", str(m)), None,
                "head mask", "[2][4]")
    # NaN and ±inf exited 0 with NaN attention: now refused, naming the entry, writing nothing
    for bad in (np.nan, np.inf, -np.inf):
        mask = np.ones((2, 4), dtype=np.float32)
        mask[1, 2] = bad
        np.save(m, mask)
        out = tmp_path / "a.npy"
        check_fails(run(os.path.join(ROOT, "bert"), "--ids", "2,3", "--head-mask", str(m),
                        out=out), out, "head mask [1][2]", "not a finite number")


@pytest.mark.parametrize("how,frag", [("garbage", "not a zip archive"), ("truncated", "zip"),
                                      ("no_pickle", "data.pkl")])
def test_corrupt_pytorch_bin(tmp_path, how, frag):
    d = model_copy(tmp_path, "bert_bin")
    b = d / "pytorch_model.bin"
    raw = b.read_bytes()
    if how == "garbage":
        b.write_bytes(b"PK\x03\x04 not really a zip" * 10)
    elif how == "truncated":
        b.write_bytes(raw[: len(raw) - 200])
    else:
        b.write_bytes(raw.replace(b"data.pkl", b"data.xyz"))
    check_fails(run(d, "--ids", "2,3"), None, str(b), frag)


def test_bad_shard_index(tmp_path):
    d = model_copy(tmp_path, "bert_sharded")
    index = d / "model.safetensors.index.json"
    idx = json.load(open(index))
    name = sorted(idx["weight_map"])[0]
    good = idx["weight_map"][name]
    other = sorted(set(idx["weight_map"].values()) - {good})[0]
    idx["weight_map"][name] = other  # claims the tensor is in another shard
    json.dump(idx, open(index, "w"))
    check_fails(run(d, "--ids", "2,3"), None, str(index), name, "is not in", other)
    idx["weight_map"][name] = "../escape.safetensors"
    json.dump(idx, open(index, "w"))
    check_fails(run(d, "--ids", "2,3"), None, str(index), "bad shard file name")
    idx["weight_map"][name] = good
    json.dump(idx, open(index, "w"))
    os.remove(d / other)
    check_fails(run(d, "--ids", "2,3"), None, other)


def test_layernorm_gamma_beta_names(tmp_path):
    """Old BERT checkpoints name LayerNorm weights gamma/beta; they load as transformers does."""
    d = model_copy(tmp_path)
    st = d / "model.safetensors"
    header, data = read_st(st)
    renamed = {}
    for k, v in header.items():
        if "LayerNorm.weight" in k:
            k = k.replace("LayerNorm.weight", "LayerNorm.gamma")
        elif "LayerNorm.bias" in k:
            k = k.replace("LayerNorm.bias", "LayerNorm.beta")
        renamed[k] = v
    write_st(st, renamed, data)
    a, b = tmp_path / "a.npy", tmp_path / "b.npy"
    assert run(d, "--ids", "2,21,42,3", out=a).returncode == 0
    assert run(os.path.join(ROOT, "bert"), "--ids", "2,21,42,3", out=b).returncode == 0
    assert np.array_equal(np.load(a), np.load(b))


def test_unsupported_preprocessing(tmp_path):
    d = model_copy(tmp_path, "vit")
    p = d / "preprocessor_config.json"
    cfg = json.load(open(p))
    cfg["resample"] = 3
    json.dump(cfg, open(p, "w"))
    img = os.path.join(ROOT, "vit", "expected", "image0.png")
    check_fails(run(d, "--image", img), None, str(p), "resample 3")
    cfg["resample"] = 2
    cfg["size"] = {"height": 64, "width": 64}
    json.dump(cfg, open(p, "w"))
    check_fails(run(d, "--image", img), None, str(p), "image_size")
    for bad in (3.2e93, -4, 16.5):  # found by fuzz_model_config: 3.2e93 was cast to int (UB)
        cfg["size"] = bad if bad != -4 else {"height": bad, "width": 16}
        json.dump(cfg, open(p, "w"))
        check_fails(run(d, "--image", img), None, str(p), "whole number of pixels")


def test_roberta_aliases(tmp_path):
    """xlm-roberta and camembert configs run RoBERTa's architecture."""
    want = tmp_path / "want.npy"
    assert run(os.path.join(ROOT, "roberta"), "--ids", "0,10,20,2", out=want).returncode == 0
    for mt in ("xlm-roberta", "camembert"):
        d = tmp_path / mt
        shutil.copytree(os.path.join(ROOT, "roberta"), d, ignore=shutil.ignore_patterns("expected"))
        cfg = json.load(open(d / "config.json"))
        cfg["model_type"] = mt
        json.dump(cfg, open(d / "config.json", "w"))
        out = tmp_path / f"{mt}.npy"
        p = run(d, "--ids", "0,10,20,2", out=out)
        assert p.returncode == 0, p.stderr
        assert np.array_equal(np.load(out), np.load(want))


@pytest.mark.parametrize("name,frag", [("config.json", "not a regular file"),
                                       ("vocab.txt", "no tokenizer found"),
                                       ("model.safetensors", "missing")])
def test_fifo_in_the_model_folder(tmp_path, name, frag):
    """A FIFO (or any non-regular file) among a model's files is refused at once: reading it
    would wait for a writer forever (config.json did)."""
    d = model_copy(tmp_path)
    os.remove(d / name)
    os.mkfifo(d / name)
    out = tmp_path / "a.npy"
    p = subprocess.run([ATTNSCOPE, "attention", "--model", str(d), "--text", "the cat",
                        "--npy", str(out)], capture_output=True, timeout=20)
    check_fails(p, out, name if name != "vocab.txt" else "vocab.txt", frag)
