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


def js_matrix(n, seed, cache):
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
            if ":" in line:
                k, v = line.rsplit(":", 1)
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
    args = ap.parse_args()
    os.makedirs(args.dir, exist_ok=True)
    keep = [float(x) for x in args.keep.split(",")]
    print(f"{'case':<34} {'thr':>8} {'edges':>6} {'thr#':>4} {'wall s':>8} {'cpu s':>8} "
          f"{'peak MiB':>9} {'load1':>6}  tool", flush=True)
    for n in (int(x) for x in args.n.split(",")):
        d_path = js_matrix(n, n, args.dir)
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
                        print(f"{f'JS n={n} --dim {dim}':<34} {thr:8.4f} {k:6.3f} {t:>4} {wall:8.1f} "
                              f"{cpu:8.1f} {rss:9.1f} {load:6.2f}  {tool}{status}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
