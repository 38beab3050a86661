"""attnscope rips vs Debian's ripser (1.2.1, single-threaded), same inputs, same machine, one run.

Each row runs both tools on the same file and reports wall time and peak resident memory as
measured by GNU time, and their ratios (ripser / attnscope: > 1 means attnscope is better)."""
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


def row(name, ours, theirs):
    (ta, ma), (tb, mb) = ours, theirs
    print(f"{name:<44} {ta:8.2f} {tb:8.2f} {tb / max(ta, 1e-3):7.2f}x {ma:8.1f} {mb:8.1f} {mb / ma:7.2f}x",
          flush=True)


def main():
    quick = "--quick" in sys.argv
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


if __name__ == "__main__":
    main()
