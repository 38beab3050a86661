"""attnscope rips vs Debian's ripser (1.2.1, single-threaded) and giotto-ph (ripser_parallel,
bench/.venv), same inputs, same machine, one run.

Each row runs the tools on the same file and reports wall time and peak resident memory as
measured by GNU time, and their ratios (ripser / attnscope: > 1 means attnscope is better).
The second table puts attnscope beside giotto-ph at 1 thread and at every core (CPU seconds
user+sys and wall; giotto-ph is timed in a child Python that loads the same .npy matrix, so the
import is not counted but its reading of the matrix is, as ours is). The long-context rows
(attention JS n = 1024, 2048, 4096 at dims 1 and 2) skip a peer whose run would pass --cap
seconds (default 600), saying so. Pass --quick for the small rows only."""
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
from attention_data import attention_js_matrices  # noqa: E402
from rips_reference import write_lower  # noqa: E402

ATTNSCOPE = os.path.join(ROOT, "build", "attnscope")
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


def measure_cpu(cmd, cap=None):
    """(wall s, user+sys s, peak MB) of one command via GNU time; None when it passes cap s."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        try:
            subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", tf.name] + cmd,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=cap)
        except subprocess.TimeoutExpired:
            return None
        wall, user, sys_, kb = tf.read().split()[-4:]
    return float(wall), float(user) + float(sys_), int(kb) / 1024.0


GPH = """import sys, time, numpy as np
from gph import ripser_parallel
d = np.load(sys.argv[1])
thr = float(sys.argv[4]) if len(sys.argv) > 4 else np.inf
ripser_parallel(d, metric="precomputed", maxdim=int(sys.argv[2]), n_threads=int(sys.argv[3]),
                thresh=thr)
"""


def gph_cmd(path, dim, threads, threshold=None):
    """giotto-ph in a child of this Python (bench/.venv, where setup_venv.sh installs it)."""
    return [sys.executable, "-c", GPH, path, str(dim), str(threads)] + ([repr(threshold)] if threshold else [])


def threads_table(quick, cap):
    """attnscope vs giotto-ph at 1 thread and every core, on .npy distance matrices."""
    cores = os.cpu_count() or 1
    print(f"\nattnscope rips vs giotto-ph {gph_version()} at 1 and {cores} threads "
          f"(CPU = user+sys s, wall s; load average {os.getloadavg()[0]:.2f} at start)")
    print(f"{'case':<36} {'thr':>3} {'ours cpu':>8} {'ours wall':>9} {'gph cpu':>8} {'gph wall':>8} {'wall ratio':>10}")
    with tempfile.TemporaryDirectory() as tmp:
        # (name, matrix maker, dim); each matrix is made when its first row comes
        cases = [("sphere_3_192 --dim 2", lambda: lower_file_matrix(os.path.join(DATA, "sphere_3_192.lower_distance_matrix")), 2)]
        for n in (256, 512):
            cases.append((f"attention JS n={n} --dim 2", lambda n=n: attention_js_matrices(n, 1, seed=n)[0], 2))
        if not quick:
            for n in (1024, 2048, 4096):
                for dim in (1, 2):
                    cases.append((f"attention JS n={n} --dim {dim}", lambda n=n: js_matrix_chunked(n, seed=n), dim))
        # a tool that passed the cap at dimension k is skipped at k and above on the larger
        # matrices that follow (they would take longer still)
        capped = {"ours": 99, "gph": 99 if gph_version()[0].isdigit() else -1}
        made = None
        path = os.path.join(tmp, "m.npy")
        for name, make, dim in cases:
            if dim >= capped["ours"] and dim >= capped["gph"]:
                print(f"{name:<36}   skipped: both tools passed the {cap:.0f} s cap at a smaller size")
                continue
            key = name.split(" --dim")[0]
            if made != key:
                np.save(path, make())
                made = key
            for t in sorted({1, cores}):
                ours = theirs = None
                if dim < capped["ours"]:
                    ours = measure_cpu([ATTNSCOPE, "rips", path, "--dim", str(dim), "--threads", str(t)], cap)
                    if ours is None:
                        capped["ours"] = dim
                if dim < capped["gph"]:
                    theirs = measure_cpu(gph_cmd(path, dim, t), cap)
                    if theirs is None:
                        capped["gph"] = dim
                fmt = lambda m: f"{m[1]:8.2f} {m[0]:9.2f}" if m else f"{'> cap':>8} {'':>9}"  # noqa: E731
                ratio = f"{theirs[0] / max(ours[0], 1e-3):9.2f}x" if ours and theirs else f"{'-':>10}"
                print(f"{name:<36} {t:>3} {fmt(ours)} {fmt(theirs)[:17]:>17} {ratio}", flush=True)


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


def js_matrix_chunked(n, seed):
    """attention_js_matrices(n, 1, seed)[0] a block of rows at a time (the one-shot version
    holds n^3 doubles)."""
    from attention_data import softmax_attention
    att = softmax_attention(n, np.random.default_rng(seed))
    d = np.zeros((n, n))
    with np.errstate(divide="ignore", invalid="ignore"):
        for s in range(0, n, 16):
            p, q = att[s:s + 16, None, :], att[None, :, :]
            m = 0.5 * (p + q)
            kp = np.where(p > 0, p * np.log2(p / m), 0.0).sum(-1)
            kq = np.where(q > 0, q * np.log2(q / m), 0.0).sum(-1)
            d[s:s + 16] = np.sqrt(np.clip(0.5 * (kp + kq), 0.0, None))
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
    if "--threads-only" in sys.argv:
        threads_table(quick, cap)
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
    threads_table(quick, cap)


if __name__ == "__main__":
    main()
