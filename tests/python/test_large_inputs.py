"""Large inputs (issues 16 and 18): mapped .npy files give the same bytes as read ones, sparse
files of many GiB are refused or measured in bounded memory, and `rips` streams a thresholded
[n][n] matrix row by row into neighbour lists with the same output as the dense path (and
ripser's diagrams). Peak memory is GNU time's maximum resident set size of the command."""
import os
import subprocess
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "reference"))
from attention_data import attention_js_matrices, softmax_attention  # noqa: E402
from rips_reference import (ATTNSCOPE, assert_same_diagrams, run_attnscope, run_ripser,  # noqa: E402
                            write_lower)

READ = {"ATS_NPY_MMAP": "0"}


def run(*args, env=None, timeout=300):
    """(process, peak RSS in MiB) of one attnscope command."""
    timefile = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"attnscope_time_{os.getpid()}")
    cmd = ["/usr/bin/time", "-f", "%M", "-o", timefile, ATTNSCOPE, *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    with open(timefile) as f:
        rss = int(f.read().split()[-1]) / 1024.0
    os.remove(timefile)
    return p, rss


def sparse_npy(path, shape, dtype="<f4", diagonal=None):
    """A .npy of zeros that costs no disk (a hole after the header); with diagonal, every
    [..][i][i] is set to that value (one written page a row)."""
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(
            f, {"descr": dtype, "fortran_order": False, "shape": shape})
        off = f.tell()
    os.truncate(path, off + int(np.prod(shape)) * np.dtype(dtype).itemsize)
    if diagonal is not None:
        m = np.lib.format.open_memmap(path, mode="r+")
        n = shape[-1]
        flat = m.reshape(-1, n, n)
        for h in range(flat.shape[0]):
            flat[h, np.arange(n), np.arange(n)] = diagonal
        m.flush()
        del m


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_measure_mapped_same_bytes_as_read(tmp_path, dtype):
    rng = np.random.default_rng(5)
    att = np.stack([softmax_attention(40, rng) for _ in range(6)]).reshape(2, 3, 40, 40)
    src = tmp_path / "a.npy"
    np.save(src, att.astype(dtype))
    for what in ("entropy", "kl", "js", "jsd"):
        outs = []
        for env in (None, READ):
            out = tmp_path / f"{what}{len(outs)}.npy"
            p, _ = run("measure", what, "--input", src, "--output", out, env=env)
            assert p.returncode == 0, p.stderr
            outs.append(out.read_bytes())
        assert outs[0] == outs[1], what


def test_measure_error_names_the_head_when_mapped(tmp_path):
    att = np.full((2, 3, 8, 8), 1 / 8, np.float32)
    att[1, 2, 5, 3] = -0.5
    np.save(tmp_path / "a.npy", att)
    for env in (None, READ):
        p, _ = run("measure", "js", "--input", tmp_path / "a.npy", "--output",
                   tmp_path / "o.npy", env=env)
        assert p.returncode == 2 and "layer 1, head 2, row 5, column 3" in p.stderr, p.stderr
        assert not (tmp_path / "o.npy").exists()


def test_measure_sparse_file_refused_without_reading(tmp_path):
    """JS of a 65536² float32 file (16 GiB, a hole): refused at once with the estimate of the
    output and working buffers; the file is not read."""
    big = tmp_path / "big.npy"
    sparse_npy(big, (65536, 65536))
    p, rss = run("measure", "js", "--input", big, "--output", tmp_path / "o.npy",
                 "--max-memory", "8G", timeout=60)
    assert p.returncode == 2 and "measure js of" in p.stderr and "GiB" in p.stderr, p.stderr
    assert "more than --max-memory allows (8.00 GiB)" in p.stderr
    assert rss < 64, rss
    assert not (tmp_path / "o.npy").exists()


def test_measure_entropy_of_a_large_file_in_bounded_memory(tmp_path):
    """Entropy of [8][1][4096][4096] float32 (512 MiB; one-hot rows): mapped, each head's
    pages are dropped when it is done, so the peak stays near one head (64 MiB); read, the
    whole file is resident."""
    big = tmp_path / "big.npy"
    sparse_npy(big, (8, 1, 4096, 4096), diagonal=1.0)
    p, rss = run("measure", "entropy", "--input", big, "--output", tmp_path / "e.npy")
    assert p.returncode == 0, p.stderr
    assert np.all(np.load(tmp_path / "e.npy") == 0.0)
    p2, rss_read = run("measure", "entropy", "--input", big, "--output", tmp_path / "e2.npy",
                       env=READ)
    assert p2.returncode == 0, p2.stderr
    assert (tmp_path / "e.npy").read_bytes() == (tmp_path / "e2.npy").read_bytes()
    assert rss < 160, rss
    assert rss_read > 512, rss_read


def js_matrix(n, seed, dtype=np.float64):
    return attention_js_matrices(n, 1, seed=seed)[0].astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threshold", [0.3, 0.36, 0.42, None])
def test_rips_streamed_same_output_as_dense(tmp_path, dtype, threshold):
    """The streamed path (neighbour lists, or the triangle when a quarter of the edges or more
    are kept) against the dense reader (--symmetrize of a symmetric matrix takes the old path;
    ATS_NPY_MMAP=0 reads the file): the same text, cocycles and cycles included, and --json."""
    d = js_matrix(160, seed=11, dtype=dtype)
    path = tmp_path / "d.npy"
    np.save(path, d)
    args = ["rips", path, "--dim", "2", "--cocycles", "--cycles"]
    if threshold is not None:
        args += ["--threshold", threshold]
    outs = []
    for extra, env in (([], None), (["--symmetrize"], None), (["--symmetrize"], READ)):
        js = tmp_path / f"o{len(outs)}.json"
        p, _ = run(*args, *extra, "--json", js, env=env)
        assert p.returncode == 0, p.stderr
        outs.append((p.stdout, js.read_bytes()))
    assert outs[0] == outs[1] == outs[2]


def test_rips_streamed_threads_same_output(tmp_path):
    np.save(tmp_path / "d.npy", js_matrix(200, seed=4))
    outs = [run("rips", tmp_path / "d.npy", "--dim", "2", "--threshold", "0.35", "--threads", t,
                "--cocycles")[0].stdout for t in (1, 2, 3)]
    assert outs[0] == outs[1] == outs[2]


def test_rips_streamed_against_ripser(tmp_path):
    """A medium JS matrix under a threshold against Debian's ripser (float, 6 digits)."""
    # the JS distances by `measure jsd` (numpy's would hold n³ doubles)
    np.save(tmp_path / "a.npy", softmax_attention(700, np.random.default_rng(9)))
    path = str(tmp_path / "d.npy")
    p, _ = run("measure", "jsd", "--input", tmp_path / "a.npy", "--output", path)
    assert p.returncode == 0, p.stderr
    d = np.load(path)
    low = str(tmp_path / "d.lower")
    write_lower(low, d)
    for dim, thr in ((1, 0.37), (2, 0.33)):
        ours, _ = run_attnscope(path, "npy", dim, threshold=thr)
        ref = run_ripser(low, "lower-distance", dim, threshold=thr)
        assert_same_diagrams(ours, ref, 1e-5, range(dim + 1), f"JS 700 dim {dim} thr {thr}")


def test_rips_streamed_checks_entries(tmp_path):
    """Bad entries named, the first in row order, whichever reader runs (neighbour lists under
    a threshold, or the dense engine's rows without one, read on several threads) and
    whatever the thread count."""
    d = js_matrix(150, seed=2)
    bad = d.copy()
    bad[7, 30] += 0.01  # asymmetric within the threshold
    bad[120, 140] += 0.01  # a later one (another tile of the dense reader)
    np.save(tmp_path / "a.npy", bad)
    bad = d.copy()
    bad[40, 3] = np.nan
    bad[130, 5] = np.nan  # a later row, which another thread may read first
    np.save(tmp_path / "b.npy", bad)
    bad = d.copy()
    bad[9, 9] = 0.5
    np.save(tmp_path / "c.npy", bad)
    cases = (("a.npy", "0.9", "row 31, column 8: matrix is not symmetric"),
             ("b.npy", "0.3", "row 41, column 4: distance nan"),
             ("c.npy", "0.3", "row 10, column 10: diagonal entry 0.5 is not 0"))
    for name, thr, message in cases:
        for threshold in (["--threshold", thr], []):
            for threads in ("1", "2", "3"):
                p, _ = run("rips", tmp_path / name, *threshold, "--threads", threads)
                assert p.returncode == 2 and message in p.stderr, (name, threshold, threads, p.stderr)


def test_rips_streamed_large_in_memory_of_the_edges(tmp_path):
    """n = 4000 points on a line (64 MiB float32): under a threshold keeping ~2n edges the
    peak is a few MiB, where the dense reader holds the mapped file and the triangle
    (~125 MiB; before the mapping also the file read and its doubles, ~370 MiB); the diagrams
    are the same."""
    n = 4000
    path = tmp_path / "line.npy"
    m = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(n, n))
    x = np.cumsum(np.random.default_rng(3).uniform(0.5, 1.5, n)).astype(np.float32)
    for s in range(0, n, 500):
        m[s:s + 500] = np.abs(x[s:s + 500, None] - x[None, :])
    m.flush()
    del m
    p, rss = run("rips", path, "--dim", "1", "--threshold", "2.5")
    assert p.returncode == 0, p.stderr
    p2, rss_dense = run("rips", path, "--dim", "1", "--threshold", "2.5", "--symmetrize")
    assert p2.returncode == 0, p2.stderr
    assert p.stdout == p2.stdout
    assert rss < 48, rss
    assert rss_dense > 100, rss_dense


@pytest.mark.parametrize("threads", ["1", "3"])
def test_rips_sparse_file_refused_with_estimate(tmp_path, threads):
    """A 20000² float32 file of zeros (1.5 GiB, a hole): every edge is within any threshold,
    so the triangle would be needed: refused with the estimate after one pass over the rows.
    The rows are read from the file, not through a mapping, so none of it becomes resident
    (3-4 MiB at 1-3 threads). With pages of a mapping dropped as the pass went, a thread that
    fell behind (3 threads on 2 cores, or 2 on a busy machine) read pages already dropped,
    which then stayed: 66-155 MiB."""
    big = tmp_path / "z.npy"
    sparse_npy(big, (20000, 20000))
    p, rss = run("rips", big, "--threshold", "0.5", "--memory-limit", "2", "--threads", threads,
                 timeout=120)
    assert p.returncode == 2, p.stderr
    assert "20000 points" in p.stderr and "GB" in p.stderr and "--memory-limit" in p.stderr
    assert rss < 16, rss
