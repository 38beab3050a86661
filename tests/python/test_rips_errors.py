"""Bad input to `attnscope rips`: every case exits with status 2, names the file (and the row and
column where there is one), prints nothing on stdout and leaves no --json output behind."""
import os
import struct
import subprocess

import numpy as np
import pytest

from rips_reference import ATTNSCOPE


def run(tmp_path, content, fmt, extra=(), binary=False, name="in.txt"):
    path = tmp_path / name
    if binary:
        path.write_bytes(content)
    else:
        path.write_text(content)
    out = tmp_path / "out.json"
    proc = subprocess.run([ATTNSCOPE, "rips", str(path), "--format", fmt, "--json", str(out), *extra],
                          capture_output=True, text=True)
    return proc, str(path), out


CASES = [
    # (id, content, format, extra args, expected fragments of the message)
    ("ragged_full", "0 1 2\n1 0\n2 3 0\n", "distance", [], ["line 2", "square"]),
    ("non_square_full", "0 1 2\n1 0 3\n", "distance", [], ["line 1", "square"]),
    ("nan_full", "0 nan\nnan 0\n", "distance", [], ["row 2, column 1", "not a finite"]),
    ("inf_lower", "\n1\n2,inf\n", "lower-distance", [], ["row 3, column 2", "not a finite"]),
    # found by fuzz_metric: finite coordinates whose squared difference overflows
    ("overflowing_points", "0 0\n1e200 0\n", "point-cloud", [],
     ["points 1 and 2", "overflows"]),
    ("negative_lower", "\n1\n2,-3\n", "lower-distance", [], ["row 3, column 2", "not a finite non-negative"]),
    ("nonzero_diagonal", "0 1\n1 0.5\n", "distance", [], ["row 2, column 2", "diagonal"]),
    ("asymmetric", "0 1 2\n1 0 3\n2 4 0\n", "distance", [], ["row 3, column 2", "symmetric", "--symmetrize"]),
    ("empty", "", "lower-distance", [], ["empty"]),
    ("empty_full", "", "distance", [], ["no numbers"]),
    ("not_triangle", "\n1\n2,3\n4\n", "lower-distance", [], ["4 values", "lower triangle"]),
    ("garbage_token", "\n1\n2,abc\n", "lower-distance", [], ["line 3, field 2", "'abc'"]),
    ("ragged_points", "1,2\n3,4,5\n", "point-cloud", [], ["line 2", "same dimension"]),
    ("nan_point", "1,2\n3,nan\n", "point-cloud", [], ["line 2, coordinate 2", "not finite"]),
    ("bad_dim_arg", "\n1\n", "lower-distance", ["--dim", "x"], ["--dim"]),
    ("bad_threshold", "\n1\n", "lower-distance", ["--threshold", "-1"], ["--threshold"]),
    ("bad_modulus", "\n1\n2,3\n", "lower-distance", ["--modulus", "4"], ["modulus 4", "prime"]),
]


@pytest.mark.parametrize("cid,content,fmt,extra,fragments", CASES, ids=[c[0] for c in CASES])
def test_bad_text_input(tmp_path, cid, content, fmt, extra, fragments):
    proc, path, out = run(tmp_path, content, fmt, extra)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert not out.exists()
    assert not [p for p in os.listdir(tmp_path) if ".tmp." in p]
    if not cid.startswith("bad_"):
        assert path in proc.stderr
    for frag in fragments:
        assert frag in proc.stderr, (frag, proc.stderr)


def test_symmetrize_accepts_asymmetric(tmp_path):
    proc, _, out = run(tmp_path, "0 1 2\n1 0 3\n2 4 0\n", "distance", ["--symmetrize"])
    assert proc.returncode == 0, proc.stderr
    assert out.exists()


def npy_header(shape, descr="<f8"):
    d = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, shape)
    d += " " * ((64 - (10 + len(d) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode()


def test_npy_absurd_shape(tmp_path):
    proc, path, out = run(tmp_path, npy_header("(100000000, 100000000)") + b"\0" * 64, "npy",
                          binary=True, name="big.npy")
    assert proc.returncode == 2 and path in proc.stderr and not out.exists()
    assert "shape needs" in proc.stderr


def test_npy_overflowing_shape(tmp_path):
    proc, path, out = run(tmp_path, npy_header("(9999999999, 9999999999, 9999999999)"), "npy",
                          binary=True, name="huge.npy")
    assert proc.returncode == 2 and "overflow" in proc.stderr and not out.exists()


def test_npy_non_square(tmp_path):
    np.save(tmp_path / "ns.npy", np.zeros((3, 4)))
    proc = subprocess.run([ATTNSCOPE, "rips", str(tmp_path / "ns.npy")], capture_output=True, text=True)
    assert proc.returncode == 2 and "[n][n]" in proc.stderr and proc.stdout == ""


def test_npy_batch_error_names_matrix(tmp_path):
    a = np.zeros((3, 4, 4))
    a[1] = np.ones((4, 4)) - np.eye(4)
    a[2, 0, 1] = -1.0
    np.save(tmp_path / "b.npy", a)
    proc = subprocess.run([ATTNSCOPE, "rips", str(tmp_path / "b.npy")], capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "matrix 2" in proc.stderr and "row 1, column 2" in proc.stderr


def test_binary_garbage(tmp_path):
    proc, path, out = run(tmp_path, b"\x00\x01\x02garbage", "lower-distance", binary=True)
    assert proc.returncode == 2 and path in proc.stderr and not out.exists()


def test_missing_file(tmp_path):
    proc = subprocess.run([ATTNSCOPE, "rips", str(tmp_path / "nope.txt")], capture_output=True, text=True)
    assert proc.returncode == 2 and "nope.txt" in proc.stderr


def test_dimension_beyond_64_bit_indices(tmp_path):
    pts = np.random.default_rng(0).normal(size=(2000, 2))
    path = tmp_path / "p.txt"
    np.savetxt(path, pts, delimiter=",")
    proc = subprocess.run([ATTNSCOPE, "rips", str(path), "--format", "point-cloud", "--dim", "8"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == ""
    assert "64 bits" in proc.stderr


def test_unwritable_json_leaves_no_output(tmp_path):
    path = tmp_path / "in.txt"
    path.write_text("\n1\n")
    proc = subprocess.run([ATTNSCOPE, "rips", str(path), "--json", str(tmp_path / "no" / "x.json")],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stdout == "" and "x.json" in proc.stderr


def random_metric_npy(tmp_path, n, seed=1):
    rng = np.random.default_rng(seed)
    a = rng.uniform(0.1, 1.0, size=(n, n))
    d = np.tril(a, -1)
    path = tmp_path / "m.npy"
    np.save(path, d + d.T)
    return str(path)


def run_limit(tmp_path, path, dim, limit):
    out = tmp_path / "out.json"
    proc = subprocess.run([ATTNSCOPE, "rips", path, "--dim", str(dim), "--json", str(out),
                           "--memory-limit", limit], capture_output=True, text=True)
    return proc, out


def test_memory_limit_refuses_before_allocating(tmp_path):
    """The distance rows and edges alone pass the limit: refused with the estimate and hints."""
    path = random_metric_npy(tmp_path, 100)
    proc, out = run_limit(tmp_path, path, 1, "1e-5")
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and not out.exists()
    for frag in ["100 points", "need about", "GB", "--threshold", "--memory-limit"]:
        assert frag in proc.stderr, (frag, proc.stderr)


def test_memory_limit_stops_the_assembly(tmp_path):
    """The base fits but the triangles of a random metric (few apparent pairs) do not: the
    assembly of dimension 2 stops and says what it projected; without a limit the same input
    computes."""
    path = random_metric_npy(tmp_path, 100)
    proc, out = run_limit(tmp_path, path, 2, "0.00045")  # the base is 0.00042 GB
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and not out.exists()
    assert "columns of dimension 2" in proc.stderr and "projected" in proc.stderr, proc.stderr
    ok, out = run_limit(tmp_path, path, 2, "inf")
    assert ok.returncode == 0, ok.stderr
    assert "persistence intervals in dim 2" in ok.stdout


def test_memory_limit_bad_value(tmp_path):
    path = random_metric_npy(tmp_path, 10)
    proc, _ = run_limit(tmp_path, path, 1, "-3")
    assert proc.returncode == 2 and "--memory-limit" in proc.stderr
