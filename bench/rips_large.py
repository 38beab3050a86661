"""H0 and H1 of long-context JS-distance matrices (n = 8192, 16384) under a threshold: wall
time and peak resident memory (GNU time) of `attnscope rips` on the .npy matrix, which it maps
and streams row by row into neighbour lists, so that the memory grows with the edges kept and
not with n² (issue 18). The attention is bench/rips's generator (softmax_attention of
tests/reference/attention_data.py, made here a block of rows at a time: the same numbers in
less memory); its JS distances (base 2) come from `attnscope measure jsd` (numpy's would hold
n³ doubles). Thresholds are chosen as quantiles of the distances (the fraction of edges kept).

usage: python bench/rips_large.py [--n 8192,16384] [--keep 0.001,0.01] [--dim 1]
       [--threads 1,2] [--dir DIR] [--before PATH_TO_OLDER_ATTNSCOPE]
Matrices are cached in DIR (default /tmp/attnscope_rips_large) between runs."""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATTNSCOPE = os.path.join(ROOT, "build", "attnscope")


def softmax_attention_blocked(n, seed, path):
    """tests/reference/attention_data.softmax_attention(n, default_rng(seed)), written to path
    as float64 [n][n] one block of rows at a time (the same draws in the same order)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, n))  # 8 n² bytes: the one full-size array
    focus = rng.integers(0, n, size=max(1, n // 16))
    logits[:, focus] += rng.gamma(2.0, 1.5, size=focus.size)
    logits[np.arange(n), np.arange(n)] += rng.normal(1.0, 0.5, size=n)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, n))
    for s in range(0, n, 512):
        block = logits[s:s + 512]
        block -= block.max(axis=1, keepdims=True)
        p = np.exp(block)
        out[s:s + 512] = p / p.sum(axis=1, keepdims=True)
    out.flush()
    del out, logits


def window_js_matrix(n, w, seed, path):
    """JS distances (base 2) between the rows of a causal sliding-window head (each token
    attends to itself and the w-1 before it, as Mistral's heads do): a softmax over random
    logits with the diagonal boost of softmax_attention. Rows whose windows do not meet are at
    distance 1 exactly, so only the band |i - j| < w is computed (O(n w²), where the JS of a
    dense head is O(n³)). Written as float64 [n][n]."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, w))
    logits[:, -1] += rng.normal(1.0, 0.5, size=n)  # the diagonal (the newest key)
    for i in range(min(n, w - 1)):  # keys before token 0 do not exist
        logits[i, :w - 1 - i] = -np.inf
    logits -= logits.max(axis=1, keepdims=True)
    att = np.exp(logits)
    att /= att.sum(axis=1, keepdims=True)  # att[i, t]: weight of key i - w + 1 + t
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float64, shape=(n, n))
    band = np.zeros((w, n))  # band[k, i] = d(i, i + k)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k in range(1, w):
            p = np.concatenate([att[:n - k], np.zeros((n - k, k))], axis=1)
            q = np.concatenate([np.zeros((n - k, k)), att[k:]], axis=1)
            m = 0.5 * (p + q)
            kp = np.where(p > 0, p * np.log2(p / m), 0.0).sum(1)
            kq = np.where(q > 0, q * np.log2(q / m), 0.0).sum(1)
            band[k, :n - k] = np.sqrt(np.clip(0.5 * (kp + kq), 0.0, 1.0))
    for s in range(0, n, 1024):
        block = np.ones((min(1024, n - s), n))
        for i in range(s, s + block.shape[0]):
            block[i - s, i] = 0.0
            hi = min(n, i + w)
            block[i - s, i + 1:hi] = band[1:hi - i, i]
            lo = max(0, i - w + 1)
            js = np.arange(lo, i)
            block[i - s, lo:i] = band[i - js, js]
        out[s:s + block.shape[0]] = block
    out.flush()
    del out


def js_matrix(n, seed, cache, window=0):
    if window:
        d_path = os.path.join(cache, f"jswin{window}_{n}_seed{seed}.npy")
        if not os.path.exists(d_path):
            t = time.time()
            window_js_matrix(n, window, seed, d_path + ".tmp.npy")
            os.replace(d_path + ".tmp.npy", d_path)
            print(f"  sliding-window JS n={n} w={window}: {time.time() - t:.1f} s", flush=True)
        return d_path
    d_path = os.path.join(cache, f"js{n}_seed{seed}.npy")
    if os.path.exists(d_path):
        return d_path
    a_path = os.path.join(cache, f"att{n}_seed{seed}.npy")
    t = time.time()
    softmax_attention_blocked(n, seed, a_path)
    print(f"  attention n={n}: {time.time() - t:.1f} s", flush=True)
    t = time.time()
    subprocess.run([ATTNSCOPE, "measure", "jsd", "--input", a_path, "--output", d_path + ".tmp.npy"],
                   check=True)
    os.replace(d_path + ".tmp.npy", d_path)
    os.remove(a_path)
    print(f"  measure jsd n={n}: {time.time() - t:.1f} s", flush=True)
    return d_path


def quantiles(d_path, keep):
    """Distances below which the given fractions of the pairs lie (from 256 sampled rows)."""
    d = np.load(d_path, mmap_mode="r")
    n = d.shape[0]
    rows = np.random.default_rng(0).choice(n, size=min(n, 256), replace=False)
    vals = np.concatenate([np.delete(np.asarray(d[i]), i) for i in rows])
    return [float(np.quantile(vals, k)) for k in keep]


def timed(cmd):
    """(exit code, wall s, user+sys s, peak MiB, stderr) via GNU time -v."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        p = subprocess.run(["/usr/bin/time", "-v", "-o", tf.name] + cmd, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        info = {}
        for line in tf.read().splitlines():
            if ": " in line:
                k, v = line.split(": ", 1)
                info[k.strip()] = v.strip()
    wall = info.get("Elapsed (wall clock) time (h:mm:ss or m:ss)", "0:0")
    parts = [float(x) for x in wall.split(":")]
    secs = sum(x * 60 ** i for i, x in enumerate(reversed(parts)))
    cpu = float(info.get("User time (seconds)", 0)) + float(info.get("System time (seconds)", 0))
    rss = int(info.get("Maximum resident set size (kbytes)", 0)) / 1024.0
    return p.returncode, secs, cpu, rss, p.stderr


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", default="8192,16384")
    ap.add_argument("--keep", default="0.001,0.01")
    ap.add_argument("--dim", default="1")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--dir", default="/tmp/attnscope_rips_large")
    ap.add_argument("--before", default=None, help="an older attnscope to run on the same rows")
    ap.add_argument("--window", type=int, default=0,
                    help="a causal sliding-window head of this width instead of a dense one")
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    keep = [float(x) for x in args.keep.split(",")]
    print(f"{'case':<34} {'thr':>8} {'edges':>6} {'thr#':>4} {'wall s':>8} {'cpu s':>8} "
          f"{'peak MiB':>9} {'load1':>6}  tool", flush=True)
    for n in (int(x) for x in args.n.split(",")):
        d_path = js_matrix(n, n, args.dir, args.window)
        for k, thr in zip(keep, quantiles(d_path, keep)):
            for dim in (int(x) for x in args.dim.split(",")):
                for t in (int(x) for x in args.threads.split(",")):
                    tools = [("attnscope", ATTNSCOPE)] + ([("before", args.before)] if args.before else [])
                    for tool, exe in tools:
                        load = os.getloadavg()[0]
                        rc, wall, cpu, rss, err = timed([exe, "rips", d_path, "--dim", str(dim),
                                                         "--threshold", repr(thr), "--threads",
                                                         str(t), "--quiet"])
                        status = "" if rc == 0 else f" exit {rc}: {err.strip()[:160]}"
                        kind = f"window {args.window} " if args.window else ""
                        print(f"{f'JS {kind}n={n} --dim {dim}':<34} {thr:8.4f} {k:6.3f} {t:>4} {wall:8.1f} "
                              f"{cpu:8.1f} {rss:9.1f} {load:6.2f}  {tool}{status}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
