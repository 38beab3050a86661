"""Input hardening of the model-loading commands (issue 16): weights holding NaN or infinity,
config numbers that become infinite in float32 (layer_norm_eps: 1e300), and a pytorch_model.bin
whose state dict hides a call (os.system) are refused with exit 2, a message naming the tensor or
entry, and no output. Before, they ran: NaN or uniform attention, exit 0."""
import json
import os
import re
import shutil
import struct
import subprocess
import zipfile

import numpy as np
import pytest

ATTNSCOPE = os.environ.get("ATTNSCOPE", "build/attnscope")
MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "models")


def model_copy(tmp_path, name):
    d = tmp_path / name
    shutil.copytree(os.path.join(MODELS, name), d, ignore=shutil.ignore_patterns("expected"))
    return d


def check_fails(tmp_path, model, *fragments, cmd=("attention", "--ids", "2,3")):
    out = tmp_path / "out.npy"
    p = subprocess.run([ATTNSCOPE, cmd[0], "--model", str(model), *cmd[1:], "--npy", str(out)],
                       capture_output=True)
    err = p.stderr.decode("utf-8", "replace")
    assert p.returncode == 2, err
    assert p.stdout == b""
    assert not out.exists()
    assert not [f for f in os.listdir(tmp_path) if ".tmp" in f]
    for f in fragments:
        assert f in err, (f, err)


def poke_safetensors(path, name, value):
    """Sets element 3 of tensor `name` (F32, F16 or BF16) to value, in place."""
    raw = bytearray(open(path, "rb").read())
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    t = header[name]
    start = 8 + n + t["data_offsets"][0]
    if t["dtype"] == "F32":
        raw[start + 12:start + 16] = np.float32(value).tobytes()
    elif t["dtype"] == "F16":
        raw[start + 6:start + 8] = np.float16(value).tobytes()
    else:
        raw[start + 6:start + 8] = np.float32(value).tobytes()[2:]
    open(path, "wb").write(bytes(raw))


@pytest.mark.parametrize("name,value", [("bert", np.nan), ("bert", np.inf), ("bert_f16", -np.inf),
                                        ("gpt2_bf16", np.nan)])
def test_nonfinite_weights_refused(tmp_path, name, value):
    d = model_copy(tmp_path, name)
    st = d / "model.safetensors"
    raw = open(st, "rb").read()
    header = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])
    tensor = sorted(k for k in header if k.endswith("weight") and "embed" not in k and "wte" not in k)[0]
    poke_safetensors(st, tensor, value)
    check_fails(tmp_path, d, tensor, "non-finite", "element 3")


def test_nonfinite_weights_refused_by_other_commands(tmp_path):
    d = model_copy(tmp_path, "bert")
    poke_safetensors(d / "model.safetensors", "bert.encoder.layer.1.attention.self.key.weight",
                     np.nan)
    for args in (["topo", "--text", "the cat", "--layer", "0", "--head", "0", "--out",
                  str(tmp_path / "topo")],
                 ["tokenize", "--text", "the cat"]):
        p = subprocess.run([ATTNSCOPE, args[0], "--model", str(d), *args[1:]], capture_output=True)
        if args[0] == "tokenize" and p.returncode == 0:
            continue  # the tokenizer alone does not load weights
        assert p.returncode == 2, p.stderr
        assert b"layer.1.attention.self.key.weight" in p.stderr
    assert not (tmp_path / "topo").exists()


@pytest.mark.parametrize("name,key,value", [("bert", "layer_norm_eps", 1e300),
                                            ("bert", "layer_norm_eps", -1e-12),
                                            ("gpt2", "layer_norm_epsilon", 1e300),
                                            ("llama", "rms_norm_eps", 10.0),
                                            ("llama", "rope_theta", 1e300)])
def test_config_numbers_must_stay_finite(tmp_path, name, key, value):
    d = model_copy(tmp_path, name)
    cfg = json.load(open(d / "config.json"))
    cfg[key] = value
    json.dump(cfg, open(d / "config.json", "w"))
    check_fails(tmp_path, d, "config.json", key)


def test_pytorch_bin_with_a_call_refused(tmp_path):
    d = model_copy(tmp_path, "bert_bin")
    b = d / "pytorch_model.bin"
    src = zipfile.ZipFile(b)
    entries = [(i, src.read(i.filename)) for i in src.infolist()]
    src.close()
    evil = (b"X\x04\x00\x00\x00evil" + b"cposix\nsystem\n" +
            b"X\x1a\x00\x00\x00touch attnscope_was_pwned\x85R")
    with zipfile.ZipFile(b, "w", zipfile.ZIP_STORED) as z:
        for info, data in entries:
            if info.filename.endswith("data.pkl"):
                assert data[5:6] == b"("  # PROTO, EMPTY_DICT, BINPUT, then MARK
                data = data[:6] + evil + data[6:]
            z.writestr(info.filename, data)
    check_fails(tmp_path, d, "posix.system", "refused")
    assert not os.path.exists("attnscope_was_pwned")


def run_cli(*args, env=None):
    return subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True, timeout=120,
                          env=None if env is None else {**os.environ, **env})


def test_dense_read_estimated_before_allocating(tmp_path):
    """A consistent 262144² float32 .npy (256 GiB, a sparse file) is refused at once with the
    estimate instead of being read (before: read whole, 8.7 GB in 8 s for 50 000²)."""
    big = tmp_path / "big.npy"
    with open(big, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": "<f4", "fortran_order": False, "shape": (262144, 262144)})
        off = f.tell()
    os.truncate(big, off + 262144 * 262144 * 4)
    out = tmp_path / "out.npy"
    # read (ATS_NPY_MMAP=0): the read is estimated
    p = run_cli("measure", "entropy", "--input", str(big), "--output", str(out),
                env={"ATS_NPY_MMAP": "0"})
    assert p.returncode == 2, p.stderr
    assert "256.00 GiB" in p.stderr and "--max-memory" in p.stderr
    assert not out.exists()
    # mapped (the default): the file is not read, the output and working buffers are
    # estimated (512 GiB of JS matrix, and as much for the head's prepared rows)
    p = run_cli("measure", "js", "--input", str(big), "--output", str(out))
    assert p.returncode == 2, p.stderr
    est = re.search(r"measure js of .* needs about ([0-9.]+) GiB", p.stderr)
    assert est and float(est.group(1)) > 1024 and "--max-memory" in p.stderr, p.stderr
    assert not out.exists()


def test_max_memory_option(tmp_path):
    a = tmp_path / "a.npy"
    np.save(a, np.full((1, 1, 600, 600), 1 / 600, np.float32))  # 1.4 MiB
    out = tmp_path / "out.npy"
    p = run_cli("measure", "entropy", "--max-memory", "1M", "--input", str(a), "--output",
                str(out), env={"ATS_NPY_MMAP": "0"})  # the read is estimated
    assert p.returncode == 2 and "more than --max-memory allows (1.0 MiB)" in p.stderr, p.stderr
    assert not out.exists()
    # mapped: the 2.7 MiB JS matrix is estimated
    p = run_cli("measure", "js", "--max-memory", "1M", "--input", str(a), "--output", str(out))
    assert p.returncode == 2 and "more than --max-memory allows (1.0 MiB)" in p.stderr, p.stderr
    assert not out.exists()
    p = run_cli("measure", "entropy", "--input", str(a), "--output", str(out),
                "--max-memory=100M")
    assert p.returncode == 0, p.stderr
    ent = np.load(out)
    assert np.allclose(ent, np.log2(600), rtol=1e-12)
    for bad in ("lots", "0", "-5G", "1e30T"):
        p = run_cli("measure", "entropy", "--max-memory", bad, "--input", str(a), "--output",
                    str(out))
        assert p.returncode == 2 and "--max-memory" in p.stderr, (bad, p.stderr)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nonfinite_npy_inputs(tmp_path, bad):
    h = np.ones((3, 4), np.float32)
    h[1, 2] = bad
    np.save(tmp_path / "h.npy", h)
    out = tmp_path / "d.npy"
    p = run_cli("measure", "context", "--input", str(tmp_path / "h.npy"), "--output", str(out))
    assert p.returncode == 2, p.stderr
    assert "element [1][2]" in p.stderr and "finite" in p.stderr
    assert not out.exists()
    att = np.full((1, 1, 4, 4), 0.25, np.float32)
    np.save(tmp_path / "a.npy", att)
    f = np.ones(4)
    f[3] = bad
    np.save(tmp_path / "f.npy", f)
    p = run_cli("measure", "stats", "--input", str(tmp_path / "a.npy"), "--freq",
                str(tmp_path / "f.npy"), "--output", str(tmp_path / "s.json"))
    assert p.returncode == 2, p.stderr
    assert "element [3]" in p.stderr
    assert not (tmp_path / "s.json").exists()


def test_heads_out_folder_all_or_nothing(tmp_path):
    """`heads --out D` writes into D.tmp.PID and renames it into place at the end: a run
    stopped midway (SIGTERM) leaves neither D nor the temporary folder (before: D existed from
    the start, half written); a complete run leaves D with its files and no temporary."""
    import signal
    import time
    model = os.path.join(MODELS, "bert")
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat and looked at the dog\n" * 20000)
    out = tmp_path / "D"
    p = subprocess.Popen([ATTNSCOPE, "heads", "--model", model, "--corpus", str(corpus),
                          "--out", str(out), "--quiet"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    time.sleep(1.0)
    assert p.poll() is None, "the run ended before the signal: make the corpus longer"
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=60)
    assert sorted(os.listdir(tmp_path)) == ["corpus.txt"], os.listdir(tmp_path)
    corpus.write_text("the cat sat on the mat\na dog ran in the park\n")
    r = subprocess.run([ATTNSCOPE, "heads", "--model", model, "--corpus", str(corpus), "--out",
                        str(out), "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert {"D.npy", "summary.json"} <= set(os.listdir(out))
    assert sorted(os.listdir(tmp_path)) == ["D", "corpus.txt"]
    # into an existing folder: the files are moved in, other files stay
    (out / "mine.txt").write_text("keep")
    r = subprocess.run([ATTNSCOPE, "heads", "--model", model, "--corpus", str(corpus), "--out",
                        str(out) + "/", "--quiet"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert (out / "mine.txt").read_text() == "keep" and (out / "D.npy").exists()
    assert sorted(os.listdir(tmp_path)) == ["D", "corpus.txt"]


def test_vit_patch_size_zero(tmp_path):
    """Found by fuzz_model_config: "patch_size": 0 divided by zero (SIGFPE) after the error."""
    d = model_copy(tmp_path, "vit")
    cfg = json.load(open(d / "config.json"))
    cfg["patch_size"] = 0
    json.dump(cfg, open(d / "config.json", "w"))
    img = tmp_path / "img.ppm"
    img.write_bytes(b"P6 2 2 255\n" + bytes(12))
    out = tmp_path / "out.npy"
    p = subprocess.run([ATTNSCOPE, "attention", "--model", str(d), "--image", str(img), "--npy",
                        str(out)], capture_output=True, text=True)
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert "patch_size" in p.stderr
    assert not out.exists()
