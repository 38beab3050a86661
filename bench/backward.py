"""Cost of the backward pass (src/model/backward.c) against the forward pass, one process, same
inputs, same thread.

Three timings on the same token ids, after loading, alternating so that the machine's load
falls on all three alike, median of --repeat runs each:
  forward            ats_model_forward capturing the attention (what `attention` runs);
  forward + loss     the same with the LM head and the next-token loss (what the backward's
                     own forward computes: hidden states, attention, logits);
  forward + backward ats_backward_run: the head-gate gradients (head_gradients in Python).
backward = (forward + backward) − (forward + loss); the target is backward ≤ 3 × forward + loss.
The machine is shared: CPU time of this process (time.process_time) is reported beside wall
time, on one thread by default, and the load average before and after.

    .venv/bin/python bench/backward.py [--model M] [--tokens N] [--repeat R] [--threads T]

M defaults to SmolLM2-135M (tools/smollm2_path.py; installed by tools/deps.sh)."""
import argparse
import os
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "python"))
import attnscope  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    model = a.model or subprocess.run([sys.executable, os.path.join(ROOT, "tools", "smollm2_path.py")],
                                      capture_output=True, text=True, check=True).stdout.strip()
    load0 = os.getloadavg()
    m = attnscope.Model.load(model)
    n = min(a.tokens, m.info["max_positions"])
    ids = np.random.default_rng(0).integers(0, m.info["vocab_size"], size=n).astype(np.int32)
    runs = {
        "forward": lambda: m.run(ids=ids, n_threads=a.threads),
        "forward + loss": lambda: m.run(ids=ids, labels=ids, logits=True, n_threads=a.threads),
        "forward + backward": lambda: m.head_gradients(ids=ids, n_threads=a.threads),
    }
    for f in runs.values():  # warm up (and pack the transposed weights once)
        f()
    cpu = {k: [] for k in runs}
    wall = {k: [] for k in runs}
    for _ in range(a.repeat):
        for k, f in runs.items():
            c0, w0 = time.process_time(), time.perf_counter()
            f()
            cpu[k].append(time.process_time() - c0)
            wall[k].append(time.perf_counter() - w0)
    med = {k: (float(np.median(cpu[k])), float(np.median(wall[k]))) for k in runs}
    print(f"model {m.info['model_type']} {m.info['n_layers']}x{m.info['n_heads']} "
          f"d={m.info['d_model']}, {n} tokens, {a.threads} thread(s), median of {a.repeat}")
    for k, (c, w) in med.items():
        print(f"  {k:20s} cpu {1e3 * c:9.1f} ms   wall {1e3 * w:9.1f} ms")
    fl, fb = med["forward + loss"], med["forward + backward"]
    back = (fb[0] - fl[0], fb[1] - fl[1])
    print(f"  {'backward':20s} cpu {1e3 * back[0]:9.1f} ms   wall {1e3 * back[1]:9.1f} ms")
    print(f"backward / (forward + loss): cpu {back[0] / fl[0]:.2f}, wall {back[1] / fl[1]:.2f}; "
          f"backward / forward: cpu {back[0] / med['forward'][0]:.2f}")
    print(f"load average before {load0[0]:.1f}, after {os.getloadavg()[0]:.1f} "
          f"({os.cpu_count()} CPUs)")


if __name__ == "__main__":
    main()
