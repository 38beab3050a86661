"""attnscope bottleneck / Wasserstein vs GUDHI's exact bottleneck and Hera's Wasserstein.

Inputs: pairs of independent random diagrams of n = 1 000 and 10 000 points (births uniform in
[0, 10), persistence exponential with mean 1; fixed seeds), written with full precision.

Timed: the library call only, in one process per tool, on diagrams already in memory.
- attnscope: ats_bottleneck_distance / ats_wasserstein_distance (q = 1, 2; internal p = inf;
  delta = 0.01) from bench/diagram_distance_time.c, linked to build/libattnscope.a.
- GUDHI: gudhi.bottleneck_distance(a, b, 0) (its exact algorithm);
- Hera: gudhi.hera.wasserstein_distance(a, b, order=q, internal_p=inf, delta=0.01).
The NumPy arrays are built before the clock starts. Each time is the best of REPEAT calls (1 for
the 10 000-point cases of the peers, which take long). The machine may be shared: times are wall
clock. Ratio = peer time / attnscope time (> 1: attnscope is faster). Values are checked:
bottleneck equal to GUDHI's, Wasserstein within Hera's and attnscope's stated 1 %."""
import os
import subprocess
import sys
import time

import gudhi
import gudhi.hera
import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "bench", "out", "diagram_distance")
SIZES = [1000, 10000]


def diagram(n, seed):
    rng = np.random.default_rng(seed)
    b = rng.random(n) * 10
    return np.stack([b, b + rng.exponential(1.0, n)], 1)


def write(path, pts):
    with open(path, "w") as f:
        for b, d in pts:
            f.write(f"{float(b)!r} {float(d)!r}\n")


def build_timer():
    exe = os.path.join(OUT, "diagram_distance_time")
    cjson = subprocess.run(["pkg-config", "--cflags", "--libs", "libcjson"], capture_output=True,
                           text=True, check=True).stdout.split()
    cmd = ["cc", "-O2", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-I", os.path.join(ROOT, "include"),
           os.path.join(ROOT, "bench", "diagram_distance_time.c"),
           os.path.join(ROOT, "build", "libattnscope.a"), *cjson, "-lm", "-fopenmp", "-o", exe]
    subprocess.run(cmd, check=True)
    return exe


def best(fn, repeat):
    times, value = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t0)
    return value, min(times)


def main():
    os.makedirs(OUT, exist_ok=True)
    exe = build_timer()
    rows = []
    for n in SIZES:
        a, b = diagram(n, 2 * n + 1), diagram(n, 2 * n + 2)
        fa, fb = os.path.join(OUT, f"a{n}.txt"), os.path.join(OUT, f"b{n}.txt")
        write(fa, a)
        write(fb, b)
        a, b = np.loadtxt(fa).reshape(-1, 2), np.loadtxt(fb).reshape(-1, 2)
        ours = {}
        out = subprocess.run([exe, fa, fb, "3" if n <= 1000 else "2"], capture_output=True,
                             text=True, check=True).stdout
        for line in out.strip().split("\n"):
            f = line.split()
            ours[f[0]] = (float(f[1]), min(float(x) for x in f[2:]))
        rep = 3 if n <= 1000 else 1
        peers = {
            "bottleneck": ("GUDHI exact", lambda: gudhi.bottleneck_distance(a, b, 0)),
            "wasserstein_q1": ("Hera", lambda: gudhi.hera.wasserstein_distance(
                a, b, order=1, internal_p=np.inf, delta=0.01)),
            "wasserstein_q2": ("Hera", lambda: gudhi.hera.wasserstein_distance(
                a, b, order=2, internal_p=np.inf, delta=0.01)),
        }
        for name, (peer, fn) in peers.items():
            value, t = best(fn, rep)
            mine, tm = ours[name]
            if name == "bottleneck":
                ok = "equal" if mine == value else f"DIFFERENT ({value!r})"
            else:
                ok = f"{mine / value - 1:+.1e}" + ("" if abs(mine / value - 1) <= 0.0201 else " (!)")
            rows.append((name, n, peer, tm, t, t / tm, ok))
            print(f"  done: {name} n={n}", file=sys.stderr, flush=True)
    print(f"{'distance':<16}{'n':>7}  {'peer':<12}{'attnscope s':>12}{'peer s':>10}"
          f"{'ratio':>9}  value vs peer")
    for name, n, peer, tm, t, r, ok in rows:
        print(f"{name:<16}{n:>7}  {peer:<12}{tm:>12.4f}{t:>10.3f}{r:>8.1f}x  {ok}")
    print("ratio = peer time / attnscope time (library calls in process, best of the runs; "
          "single thread each)")


if __name__ == "__main__":
    main()
