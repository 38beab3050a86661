"""attnscope measure vs the seed notebook's scipy loop and vectorised NumPy: same inputs, same
machine, one run. Ratios are reference time / attnscope time (> 1: attnscope is faster).

attnscope is timed twice: as a library call from this process (libattnscope.so through ctypes,
on the same NumPy array the references get; this is what the ratios use) and as the command a
user runs (process start, NPY read and write). Best of several runs; attnscope uses every core
OpenMP sees, the `1 thr` columns pin it to one core (the references are single-threaded).
Every comparison also checks that the numbers agree."""
import os
import subprocess
import sys
import tempfile
import time

import ctypes

import numpy as np
from scipy.special import xlogy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import measures_ref as R  # noqa: E402

ATTNSCOPE = os.path.join(ROOT, "build", "attnscope")
QUICK = "--quick" in sys.argv[1:]
SMOKE = "--smoke" in sys.argv[1:]  # tiny sizes, to check this script itself


class _Attn(ctypes.Structure):
    _fields_ = [("dtype", ctypes.c_int), ("data", ctypes.c_void_p), ("L", ctypes.c_size_t),
                ("H", ctypes.c_size_t), ("n", ctypes.c_size_t), ("source", ctypes.c_char_p)]


class _Opts(ctypes.Structure):
    _fields_ = [("base", ctypes.c_int), ("eps", ctypes.c_double), ("normalize", ctypes.c_int),
                ("sum_tol", ctypes.c_double), ("seed_compat", ctypes.c_int),
                ("n_threads", ctypes.c_int)]


class _Err(ctypes.Structure):
    _fields_ = [("status", ctypes.c_int), ("message", ctypes.c_char * 512)]


class Lib:
    """The few calls of include/attnscope/measure.h the benchmark needs."""

    def __init__(self):
        self.so = ctypes.CDLL(os.path.join(ROOT, "build", "libattnscope.so"))
        self.so.ats_headdist_new.argtypes = [ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int,
                                             ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p,
                                             ctypes.c_void_p]
        self.so.ats_headdist_free.argtypes = [ctypes.c_void_p]
        self.so.ats_headdist_add.argtypes = [ctypes.c_void_p] * 3
        self.so.ats_headdist_result.argtypes = [ctypes.c_void_p] * 3

    def _opts(self, threads, seed):
        o = _Opts()
        self.so.ats_measure_opts_init(ctypes.byref(o))
        o.n_threads, o.seed_compat = threads, int(seed)
        return o

    @staticmethod
    def _attn(A):
        L, H, n = (1, 1, A.shape[0]) if A.ndim == 2 else A.shape[:3]
        dt = 0 if A.dtype == np.float32 else 1
        return _Attn(dt, A.ctypes.data, L, H, n, b"bench")

    def jsd(self, A, threads=0, seed=False):
        out = np.empty(A.shape, dtype=np.float64)
        err, o = _Err(), self._opts(threads, seed)
        st = self.so.ats_divergence_compute(ctypes.byref(self._attn(A)), 2, ctypes.byref(o),
                                            out.ctypes.data_as(ctypes.c_void_p), ctypes.byref(err))
        assert st == 0, err.message
        return out

    def head_distance(self, docs, threads=0):
        L, H = docs[0].shape[:2]
        hd, err, o = ctypes.c_void_p(), _Err(), self._opts(threads, False)
        assert self.so.ats_headdist_new(L, H, 0, 0, ctypes.byref(o), ctypes.byref(hd),
                                        ctypes.byref(err)) == 0
        for d in docs:
            a = self._attn(d)
            assert self.so.ats_headdist_add(hd, ctypes.byref(a), ctypes.byref(err)) == 0
        out = np.empty((L * H, L * H))
        self.so.ats_headdist_result(hd, out.ctypes.data_as(ctypes.c_void_p), ctypes.byref(err))
        self.so.ats_headdist_free(hd)
        return out


def best_of(fn, repeat):
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def cli(*args):
    subprocess.run([ATTNSCOPE, "measure", *map(str, args)], check=True,
                   stdout=subprocess.DEVNULL)


def js_matrix_numpy_identity(A):
    """The fastest NumPy JS matrix we could write: JS = H(M) - (H(P) + H(Q))/2, one xlogy pass
    over n x n x n would not fit in memory at n = 512, so one row against all rows at a time."""
    A = A.astype(np.float64)
    A = A / A.sum(axis=1, keepdims=True)
    plogp = xlogy(A, A).sum(axis=1)
    out = np.empty((A.shape[0],) * 2)
    for i in range(A.shape[0]):
        S = A[i][None, :] + A
        out[i] = 0.5 * (plogp[i] + plogp) - 0.5 * xlogy(S, S).sum(axis=1) + np.log(2.0)
    return np.maximum(out, 0.0) / np.log(2.0)


def head_distance_numpy_identity(docs):
    """Seed metric with the entropy identity: one xlogy pass per token over [N][N][n]."""
    D = None
    for doc in docs:
        L, H, n, _ = doc.shape
        N = L * H
        X = doc.reshape(N, n, n).astype(np.float64)
        X = X / X.sum(axis=2, keepdims=True)
        if D is None:
            D = np.zeros((N, N))
        plogp = xlogy(X, X).sum(axis=2)  # [N][n]
        for t in range(n):
            P = X[:, t, :]
            S = P[:, None, :] + P[None, :, :]
            js = 0.5 * (plogp[:, t][:, None] + plogp[:, t][None, :]) - 0.5 * xlogy(S, S).sum(axis=2)
            js = np.maximum(js + np.log(2.0), 0.0) / np.log(2.0)
            np.fill_diagonal(js, 0.0)
            D += np.sqrt(js)
    return D


def bert_like_corpus(rng, docs, L=12, H=12, n=64):
    """Attention of BERT's shape: per head a softmax over Gaussian logits with its own sharpness
    (broad to peaked heads), and a share of heads that attend mostly to [CLS]/[SEP]."""
    temps = rng.uniform(0.5, 4.0, size=(L, H, 1, 1))
    out = []
    for _ in range(docs):
        logits = rng.standard_normal((L, H, n, n)) * temps
        sink = rng.random((L, H)) < 0.3
        logits[sink, :, 0] += 4.0
        logits[sink, :, n - 1] += 3.0
        e = np.exp(logits - logits.max(axis=-1, keepdims=True))
        out.append((e / e.sum(axis=-1, keepdims=True)).astype(np.float32))
    return out


def main():
    rng = np.random.default_rng(2024)
    threads = os.cpu_count()
    print(f"attnscope measure benchmark (cores: {threads}; the references are single-threaded)\n")
    tmp = tempfile.mkdtemp(prefix="bench-measure-")
    try:
        run(rng, threads, tmp)
    finally:
        for f in os.listdir(tmp):
            os.remove(os.path.join(tmp, f))
        os.rmdir(tmp)


def run(rng, threads, tmp):

    # ---- the JS matrix of one head -------------------------------------------------------
    lib = Lib()
    print("JS distance matrix of one head (float32 softmax attention, n x n); library calls:")
    hdr = ("n", "seed loop", "NumPy", "NumPy id.", "ats", "ats 1thr", "ats seed", "CLI",
           "seed/ats", "NumPy/ats", "NumPyid/ats", "seed/atsseed", "max|err|")
    print("%5s %9s %8s %9s %8s %8s %8s %8s %14s %14s %14s %12s %9s" % hdr)
    for n in ((16, 32) if SMOKE else (128, 256, 512)):
        A = R.softmax_attention(rng, (n, n), temperature=2.0, dtype=np.float32)
        a_path, o_path = (os.path.join(tmp, f) for f in ("a.npy", "o.npy"))
        np.save(a_path, A)
        t0 = time.perf_counter()
        seed = R.seed_matrix(A, R.seed_js_distance)  # the notebook's double loop
        t_seed = time.perf_counter() - t0
        t0 = time.perf_counter()
        jsd_np = np.sqrt(R.js_matrix_numpy(A))
        t_np = time.perf_counter() - t0
        t_npi = best_of(lambda: js_matrix_numpy_identity(A), 1)
        t_ats = best_of(lambda: lib.jsd(A), 5)
        t_ats1 = best_of(lambda: lib.jsd(A, threads=1), 5)
        t_atss = best_of(lambda: lib.jsd(A, seed=True), 3)
        t_cli = best_of(lambda: cli("jsd", "--input", a_path, "--output", o_path), 3)
        err = max(np.abs(lib.jsd(A) - jsd_np).max(), np.abs(lib.jsd(A, seed=True) - seed).max(),
                  np.abs(np.load(o_path) - lib.jsd(A)).max())
        ms = 1e3

        def ratio(ref):
            return "%5.0fx/%5.0fx" % (ref / t_ats, ref / t_ats1)

        print("%5d %8.3fs %7.3fs %8.3fs %6.1fms %6.1fms %6.1fms %6.1fms %14s %14s %14s %11.0fx %9.1e"
              % (n, t_seed, t_np, t_npi, t_ats * ms, t_ats1 * ms, t_atss * ms, t_cli * ms,
                 ratio(t_seed), ratio(t_np), ratio(t_npi), t_seed / t_atss, err))
    print(f"  ats: `jsd` as a library call on {threads} threads, ats 1thr: on one; ratios are "
          f"given as {threads} threads / 1 thread.\n"
          "  seed loop: the notebook's double loop of scipy calls (softmax, jensenshannon, sqrt);"
          "\n  ats seed: attnscope with --seed-compat, which returns the seed loop's numbers (its"
          "\n  softmaxed rows are nearly uniform, so most pairs take the exact slow path);"
          "\n  NumPy: one row against all rows with rel_entr; NumPy id.: entropy identity (xlogy);"
          "\n  CLI: `attnscope measure jsd` end to end (process start, NPY read/write)."
          "\n  goals: seed/ats >= 200x, NumPy/ats >= 40x\n")

    # ---- head distances over a corpus ----------------------------------------------------
    n_docs, L, H, n = (4, 2, 3, 8) if SMOKE else (200, 12, 12, 64)
    print(f"Head distance (seed metric, sum of sqrt JS) of {L}x{H} heads over {n_docs} "
          f"sentences of {n} tokens (float32):")
    docs = bert_like_corpus(rng, n_docs, L, H, n)
    files = []
    for i, d in enumerate(docs):
        f = os.path.join(tmp, f"doc{i:03d}.npy")
        np.save(f, d)
        files.append(f)
    d_path, d1_path, c_path = (os.path.join(tmp, f) for f in ("D.npy", "D1.npy", "C.npy"))
    t_lib = best_of(lambda: lib.head_distance(docs), 2)
    t_ats = best_of(lambda: cli("head-distance", "--input", *files, "--output", d_path), 1)
    t_ats1 = best_of(lambda: cli("head-distance", "--input", *files, "--output", d1_path,
                                 "--threads", 1), 1)
    t_clark = best_of(lambda: cli("head-distance", "--input", *files, "--output", c_path,
                                  "--clark"), 1)
    sub = max(1, n_docs // 10) if QUICK else n_docs
    scale = n_docs / sub
    t0 = time.perf_counter()
    ref = R.head_distance_numpy(docs[:sub])
    t_np = (time.perf_counter() - t0) * scale
    t0 = time.perf_counter()
    ref_id = head_distance_numpy_identity(docs[:sub])
    t_npi = (time.perf_counter() - t0) * scale
    same = np.array_equal(np.load(d1_path), np.load(d_path))
    D = np.load(d_path)
    if QUICK:
        cli("head-distance", "--input", *files[:sub], "--output", d_path)
        D = np.load(d_path)
    rel = np.abs(D - ref).max() / np.abs(ref).max()
    rel_id = np.abs(ref_id - ref).max() / np.abs(ref).max()
    note = f" (NumPy timed on {sub} sentences, x{scale:g})" if QUICK else ""
    print(f"  attnscope CLI: {t_ats:.2f} s ({threads} threads), {t_ats1:.2f} s (1 thread); "
          f"--clark {t_clark:.2f} s; 1 vs {threads} threads bit-identical: {same}")
    print(f"  attnscope library, arrays in memory: {t_lib:.2f} s ({threads} threads)")
    print(f"  NumPy (rel_entr, vectorised over head pairs per token): {t_np:.1f} s{note}")
    print(f"  NumPy (entropy identity, xlogy):                        {t_npi:.1f} s{note}")
    print(f"  ratio NumPy/attnscope CLI: {t_np / t_ats:.0f}x ({t_np / t_ats1:.0f}x on 1 thread), "
          f"library {t_np / t_lib:.0f}x; NumPy-identity/attnscope CLI: {t_npi / t_ats:.0f}x "
          f"({t_npi / t_ats1:.0f}x on 1 thread)")
    print(f"  max relative difference to NumPy: attnscope {rel:.1e}, NumPy identity {rel_id:.1e}")
    print("  goal: NumPy/attnscope >= 40x")


if __name__ == "__main__":
    main()
