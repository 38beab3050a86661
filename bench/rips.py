"""attnscope rips vs Debian's ripser (1.2.1, single-threaded) and giotto-ph (ripser_parallel,
bench/.venv), same inputs, same machine, one run.

    bench/.venv/bin/python bench/rips.py --threads-only      # the threads table of issue 18
    bench/.venv/bin/python bench/rips.py --threads-only --only "n=1024,o3_4096"   # some rows

Each row runs the tools on the same file and reports wall time and peak resident memory as
measured by GNU time, and their ratios (ripser / attnscope: > 1 means attnscope is better).
The second table puts attnscope beside giotto-ph at 1 thread and at every core (CPU seconds
user+sys and wall, the median of 5 runs for a run under a second; giotto-ph is timed inside a
child Python that loads the same .npy matrix, so the interpreter's start and the imports are not
counted but its reading of the matrix is, as ours is, with our process's start). The long-context rows
(attention JS n = 1024, 2048, 4096 at dims 1 and 2) skip a peer whose run would pass --cap
seconds (default 600), saying so. Pass --quick for the small rows only, --collapse to have both
tools collapse the edges first (Boissonnat-Pritam; the threads table), and --bind to run
attnscope with OMP_PROC_BIND=spread (on some virtual machines the first parallel region otherwise
waits for a scheduler tick, milliseconds, as the kernel starts OpenMP's new thread on the busy
vCPU: it matters for runs of tens of milliseconds; see the README's rips section)."""
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
from attention_data import attention_js_matrices  # noqa: E402
from rips_reference import write_lower  # noqa: E402

ATTNSCOPE = os.path.join(ROOT, "build", "attnscope")
OURS_ENV = None  # the environment of attnscope's runs (--bind), else this process's
COLLAPSE = False  # --collapse: both tools collapse the edges first (the threads table)
DATA = os.path.join(ROOT, "tests", "data", "ph-benchmarks")


def measure(cmd):
    """Wall seconds and peak RSS (MB) of one command, via GNU time."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", tf.name] + cmd,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
        wall, kb = tf.read().split()[-2:]
    return float(wall), int(kb) / 1024.0


def measure_many(cmds):
    """Total wall seconds and the largest peak RSS over several commands run one after another."""
    script = "\n".join(" ".join(c) + " >/dev/null" for c in cmds)
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(script)
    wall, mb = measure(["bash", f.name])
    os.unlink(f.name)
    return wall, mb


def run_once(cmd, cap=None, self_timed=False):
    """(wall s, user+sys s, peak MB) of one run: wall by the monotonic clock around the child
    (microseconds, where GNU time's %e has 10 ms, as long as some rows take), CPU and peak from
    the child's rusage; a self-timed child prints its own "wall cpu" instead (giotto-ph: its
    reading of the matrix and its computation, not the interpreter's start and imports). None
    when it passes cap s."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE if self_timed else subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=OURS_ENV if cmd[0] == ATTNSCOPE else None)
    timer = threading.Timer(cap, p.kill) if cap else None
    if timer:
        timer.start()
    out = p.stdout.read() if self_timed else b""
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    if timer:
        timer.cancel()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode == -9 and cap and wall >= cap:
        return None
    if p.returncode != 0:
        raise subprocess.CalledProcessError(p.returncode, cmd)
    cpu = ru.ru_utime + ru.ru_stime
    if self_timed:
        wall, cpu = (float(x) for x in out.split()[-2:])
    return wall, cpu, ru.ru_maxrss / 1024.0


def measure_cpu(cmd, cap=None, self_timed=False, repeats=5):
    """run_once; a run under a second is repeated (repeats runs in all) and the median of each
    figure taken, as one short run on a shared machine says little."""
    first = run_once(cmd, cap, self_timed)
    if first is None or first[0] >= 1.0:
        return first
    runs = [first] + [run_once(cmd, cap, self_timed) for _ in range(repeats - 1)]
    return tuple(float(np.median([r[k] for r in runs])) for k in range(3))


GPH = """import resource, sys, time, numpy as np
from gph import ripser_parallel
def cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime
t0, c0 = time.perf_counter(), cpu()
d = np.load(sys.argv[1])
thr = float(sys.argv[4]) if sys.argv[4] != "inf" else np.inf
dg = ripser_parallel(d, metric="precomputed", maxdim=int(sys.argv[2]), n_threads=int(sys.argv[3]),
                     thresh=thr, collapse_edges=sys.argv[5] == "1")["dgms"]
print(time.perf_counter() - t0, cpu() - c0)
if len(sys.argv) > 6:
    np.savez(sys.argv[6], *dg)
"""


def gph_cmd(path, dim, threads, threshold=None, save=None):
    """giotto-ph in a child of this Python (bench/.venv, where setup_venv.sh installs it)."""
    return ([sys.executable, "-c", GPH, path, str(dim), str(threads), repr(threshold) if threshold else "inf",
             "1" if COLLAPSE else "0"] + ([save] if save else []))


def ours_cmd(path, dim, threads, threshold=None, json_out=None):
    return ([ATTNSCOPE, "rips", path, "--dim", str(dim), "--threads", str(threads)]
            + (["--threshold", repr(threshold)] if threshold else [])
            + (["--json", json_out] if json_out else []) + (["--collapse-edges"] if COLLAPSE else []))


CHECK = """import json, sys, numpy as np
sys.path.insert(0, sys.argv[5])
from rips_reference import assert_same_diagrams
res = json.load(open(sys.argv[1]))
dim, tol = int(sys.argv[3]), float(sys.argv[4])
ours = {d["dim"]: np.array([[b, np.inf if e is None else e] for b, e in d["pairs"]]).reshape(-1, 2)
        for d in res["dims"]}
got = np.load(sys.argv[2])
theirs = {k: got[f"arr_{k}"].reshape(-1, 2) for k in range(dim + 1)}
assert_same_diagrams(ours, theirs, tol, range(dim + 1), "giotto-ph")
"""


def same_diagrams(json_path, npz_path, dim, dmax):
    """Our JSON against giotto-ph's diagrams with the test suite's check (equal counts,
    essential births and the exact bottleneck distance of the finite parts within the
    tolerance; Hera via GUDHI, in the tests' .venv), giotto-ph's float32 arithmetic allowed for
    (2e-5 of the largest distance)."""
    py = os.path.join(ROOT, ".venv", "bin", "python")
    p = subprocess.run([py, "-c", CHECK, json_path, npz_path, str(dim), repr(2e-5 * max(1.0, dmax)),
                        os.path.join(ROOT, "tests", "python")], capture_output=True, text=True)
    return "yes" if p.returncode == 0 else "NO: " + (p.stderr.strip().splitlines() or ["?"])[-1][:120]


def js_cases(quick):
    """(name, matrix maker, dim, threshold) of the threads table: the issue's rows, the
    long-context rows (attention JS n = 1024, 2048, 4096 at dims 1 and 2) and o3_4096."""
    cases = [("sphere_3_192 --dim 2", lambda: lower_file_matrix(os.path.join(DATA, "sphere_3_192.lower_distance_matrix")), 2, None),
             ("o3_1024 --dim 3 --threshold 1.8", lambda: point_file_matrix(os.path.join(DATA, "o3_1024.txt")), 3, 1.8)]
    for n in (256, 512):
        cases.append((f"attention JS n={n} --dim 2", lambda n=n: attention_js_matrices(n, 1, seed=n)[0], 2, None))
    if quick:
        return cases
    cases.append(("o3_4096 --dim 3 --threshold 1.4", lambda: point_file_matrix(os.path.join(DATA, "o3_4096.txt")), 3, 1.4))
    for n in (1024, 2048, 4096):
        for dim in (1, 2):
            # dimension 2 of n = 4096 under the 5 % quantile of its distances (a few minutes)
            thr = JS4096_DIM2_THRESHOLD if (n, dim) == (4096, 2) else None
            name = f"attention JS n={n} --dim {dim}" + (f" --threshold {thr}" if thr else "")
            cases.append((name, lambda n=n: js_matrix_kernel(n, seed=n), dim, thr))
    return cases


JS4096_DIM2_THRESHOLD = 0.1953


def threads_table(quick, cap, only=None):
    """attnscope vs giotto-ph at 1 thread and every core, on .npy distance matrices: wall and
    CPU seconds of each, attnscope's scaling (wall at 1 thread / wall at every core), giotto-ph
    / attnscope at each thread count, and whether the diagrams are the same."""
    cores = os.cpu_count() or 1
    ts = sorted({1, cores})
    print(f"\nattnscope rips vs giotto-ph {gph_version()} at {' and '.join(map(str, ts))} threads: wall s (CPU s "
          f"= user+sys); scaling = our wall at 1 thread / at {cores}; ratio = giotto-ph wall / ours. "
          f"Load average {os.getloadavg()[0]:.2f} at start."
          + (" attnscope runs with OMP_PROC_BIND=spread." if OURS_ENV else "")
          + (" Both collapse the edges first (--collapse-edges, collapse_edges=True)." if COLLAPSE else ""))
    head = ["case"] + [f"ours {t}t" for t in ts] + ["scaling"] + [f"gph {t}t" for t in ts] + \
        [f"ratio {t}t" for t in ts] + ["same diagrams", "load"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    with tempfile.TemporaryDirectory() as tmp:
        # a tool that passed the cap at dimension k is skipped at k and above on the larger
        # matrices that follow (they would take longer still)
        capped = {"ours": 99, "gph": 99 if gph_version()[0].isdigit() else -1}
        made = None
        path = os.path.join(tmp, "m.npy")
        for name, make, dim, thr in js_cases(quick):
            if only and not any(o in name for o in only):
                continue
            key = name.split(" --dim")[0]
            if made != key:
                mat = make()
                np.save(path, mat)
                made, dmax = key, float(mat.max())
                del mat
            ours, theirs, same = {}, {}, "-"
            for t in ts:
                if dim < capped["ours"]:
                    ours[t] = measure_cpu(ours_cmd(path, dim, t, thr), cap)
                    if ours[t] is None:
                        capped["ours"] = dim
                if dim < capped["gph"]:
                    theirs[t] = measure_cpu(gph_cmd(path, dim, t, thr), cap, self_timed=True)
                    if theirs[t] is None:
                        capped["gph"] = dim
            t = ts[-1]
            if ours.get(t) and theirs.get(t):
                # the diagrams of the all-core runs, written by runs of their own (untimed: the
                # timed runs write nothing, as writing a diagram is not the computation)
                jo, npz = os.path.join(tmp, "o.json"), os.path.join(tmp, "g.npz")
                run_once(ours_cmd(path, dim, t, thr, jo))
                run_once(gph_cmd(path, dim, t, thr, npz), self_timed=True)
                same = same_diagrams(jo, npz, dim, dmax)
            fmt = lambda m: f"{m[0]:.2f} ({m[1]:.2f})" if m else "> cap"  # noqa: E731
            ratio = lambda t: f"{theirs[t][0] / max(ours[t][0], 1e-3):.2f}x" if ours.get(t) and theirs.get(t) else "-"  # noqa: E731
            scaling = f"{ours[1][0] / max(ours[cores][0], 1e-3):.2f}x" if cores > 1 and ours.get(1) and ours.get(cores) else "-"
            cells = [name] + [fmt(ours.get(t)) for t in ts] + [scaling] + [fmt(theirs.get(t)) for t in ts] + \
                [ratio(t) for t in ts] + [same, f"{os.getloadavg()[0]:.1f}"]
            print("| " + " | ".join(cells) + " |", flush=True)


def gph_version():
    p = subprocess.run([sys.executable, "-c", "import importlib.metadata as m; print(m.version('giotto-ph'))"],
                       capture_output=True, text=True)
    return p.stdout.strip() or "(missing: run bench/setup_venv.sh)"


def lower_file_matrix(path):
    vals = [float(x) for x in open(path).read().replace(",", " ").split()]
    n = int(round((1 + (1 + 8 * len(vals)) ** 0.5) / 2))
    d = np.zeros((n, n))
    d[np.tril_indices(n, -1)] = vals
    return d + d.T


def point_file_matrix(path):
    """Euclidean distances between the points of a point-cloud file, as attnscope computes them
    (the square root of the sum of squared differences)."""
    pts = np.loadtxt(path, delimiter=None if "," not in open(path).readline() else ",")
    sq = ((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1) if len(pts) <= 1024 else \
        np.concatenate([((pts[s:s + 256, None, :] - pts[None, :, :]) ** 2).sum(-1) for s in range(0, len(pts), 256)])
    return np.sqrt(sq)


def js_matrix_kernel(n, seed):
    """attention_js_matrices(n, 1, seed)[0] with the JS distances from the library's own kernel
    (`attnscope measure jsd`, within 1e-14 of numpy's; numpy's takes minutes at n = 2048 and
    most of an hour at 4096), symmetrised and with a zero diagonal as attention_js_matrices."""
    from attention_data import softmax_attention
    att = softmax_attention(n, np.random.default_rng(seed))
    with tempfile.TemporaryDirectory() as tmp:
        a, o = os.path.join(tmp, "att.npy"), os.path.join(tmp, "jsd.npy")
        np.save(a, att)
        subprocess.run([ATTNSCOPE, "measure", "jsd", "--input", a, "--output", o], check=True)
        d = np.load(o)
    d = 0.5 * (d + d.T)
    np.fill_diagonal(d, 0.0)
    return d


def row(name, ours, theirs):
    (ta, ma), (tb, mb) = ours, theirs
    print(f"{name:<44} {ta:8.2f} {tb:8.2f} {tb / max(ta, 1e-3):7.2f}x {ma:8.1f} {mb:8.1f} {mb / ma:7.2f}x",
          flush=True)


def main():
    quick = "--quick" in sys.argv
    cap = float(sys.argv[sys.argv.index("--cap") + 1]) if "--cap" in sys.argv else 600.0
    only = sys.argv[sys.argv.index("--only") + 1].split(",") if "--only" in sys.argv else None
    global OURS_ENV, COLLAPSE
    COLLAPSE = "--collapse" in sys.argv
    if "--bind" in sys.argv:
        OURS_ENV = {**os.environ, "OMP_PROC_BIND": "spread"}
    if "--threads-only" in sys.argv:
        threads_table(quick, cap, only)
        return
    print("attnscope rips vs ripser 1.2.1 (ratio = ripser / attnscope; > 1: attnscope faster / smaller)")
    print(f"{'case':<44} {'ours s':>8} {'ripser s':>8} {'time':>8} {'ours MB':>8} {'rip MB':>8} {'memory':>8}")
    cases = [
        ("sphere_3_192 --dim 2", ["sphere_3_192.lower_distance_matrix", "--dim", "2"]),
        ("o3_1024 --dim 3 --threshold 1.8 --ratio 2",
         ["o3_1024.txt", "--format", "point-cloud", "--dim", "3", "--threshold", "1.8", "--ratio", "2"]),
    ]
    if not quick:
        cases.append(("o3_4096 --dim 3 --threshold 1.4",
                      ["o3_4096.txt", "--format", "point-cloud", "--dim", "3", "--threshold", "1.4"]))
    for name, args in cases:
        path = os.path.join(DATA, args[0])
        row(name, measure([ATTNSCOPE, "rips", path] + args[1:]), measure(["ripser"] + args[1:] + [path]))

    with tempfile.TemporaryDirectory() as tmp:
        for n in (128, 256, 512):
            d = attention_js_matrices(n, 1, seed=n)[0]
            path = os.path.join(tmp, f"js{n}.txt")
            write_lower(path, d)
            for dim in (1, 2):
                row(f"attention JS n={n} --dim {dim}",
                    measure([ATTNSCOPE, "rips", path, "--dim", str(dim)]),
                    measure(["ripser", "--dim", str(dim), path]))
        # The per-head regime: 144 heads of one text, n = 128, H0 and H1.
        mats = attention_js_matrices(128, 144, seed=7)
        files = []
        for i, d in enumerate(mats):
            files.append(os.path.join(tmp, f"h{i}.txt"))
            write_lower(files[-1], d)
        np.save(os.path.join(tmp, "heads.npy"), np.stack(mats))
        ripser_all = measure_many([["ripser", "--dim", "1", f] for f in files])
        ours_1 = measure([ATTNSCOPE, "rips", os.path.join(tmp, "heads.npy"), "--dim", "1", "--threads", "1"])
        ours_2 = measure([ATTNSCOPE, "rips", os.path.join(tmp, "heads.npy"), "--dim", "1", "--threads", "2"])
        ours_txt = measure_many([[ATTNSCOPE, "rips", f, "--dim", "1"] for f in files])
        row("144 heads n=128 --dim 1, 144 text files", ours_txt, ripser_all)
        row("144 heads n=128 --dim 1, batch, 1 thread", ours_1, ripser_all)
        row("144 heads n=128 --dim 1, batch, 2 threads", ours_2, ripser_all)
    threads_table(quick, cap, only)


if __name__ == "__main__":
    main()
