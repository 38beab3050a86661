#!/usr/bin/env bash
# The aarch64 build's command line under qemu-user, against references computed on the host:
# `rips` on the bundled examples against Debian's ripser, and `attention` on the model fixtures
# against the attention transformers recorded for them (tools/make_fixtures.py).
# Usage: tools/check_aarch64.sh [BUILD_DIR]   (default build-aarch64)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build-aarch64}
# qemu-user cannot exec() another aarch64 executable without binfmt_misc (a machine-wide
# setting), so the commands that `attnscope` hands to `attnscope-full` run on attnscope-full.
LEAN=(qemu-aarch64 "$BUILD/attnscope")
FULL=(qemu-aarch64 "$BUILD/attnscope-full")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The kernel path: NEON chosen by itself, an x86 path refused with exit status 2.
version=$("${FULL[@]}" --version)
case "$version" in
*"kernel: neon "*) ;;
*) echo "check-aarch64: expected the neon kernel path, got: $version" >&2; exit 1 ;;
esac
status=0
ATS_KERNEL=avx512 "${FULL[@]}" --version >/dev/null 2>&1 || status=$?
if [ "$status" -ne 2 ]; then
  echo "check-aarch64: ATS_KERNEL=avx512 exited $status, not 2" >&2
  exit 1
fi
echo "check-aarch64: ${version//$'\n'/; }"

# Each example: file, format, top dimension.
RIPS_EXAMPLES=(
  "tests/data/circle24.txt point-cloud 2"
  "tests/data/ph-benchmarks/projective_plane.lower_distance_matrix lower-distance 2"
  "tests/data/ph-benchmarks/sphere_3_192.lower_distance_matrix lower-distance 1"
)
# The intervals of each dimension as sorted text: both print Ripser's 6 significant digits, and
# ripser's header lines differ from ours.
intervals() {
  awk '/^persistence intervals in dim/ { d = $NF } /^ \[/ { print d, $0 }' | LC_ALL=C sort
}
for example in "${RIPS_EXAMPLES[@]}"; do
  read -r file format dim <<<"$example"
  "${LEAN[@]}" rips "$file" --format "$format" --dim "$dim" | intervals >"$tmp/ours"
  ripser --format "$format" --dim "$dim" "$file" | intervals >"$tmp/ripser"
  if ! diff -u "$tmp/ripser" "$tmp/ours" >"$tmp/diff"; then
    echo "check-aarch64: rips $file differs from ripser:" >&2
    head -40 "$tmp/diff" >&2
    exit 1
  fi
  echo "check-aarch64: rips $file --dim $dim: $(wc -l <"$tmp/ours") intervals, as ripser"
done

# attention: every fixture case on each kernel path, run as tests/python/test_model_fixtures.py
# runs it and held to its tolerance.
.venv/bin/python - "$tmp" "${FULL[@]}" <<'EOF'
import json
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, "tests/python")
from test_model_fixtures import EXTRA, MODELS, ROOT, TOL  # noqa: E402

tmp, cmd = sys.argv[1], sys.argv[2:]
worst, failed, runs = 0.0, [], 0
for path, model, expected in [(p, m, e) for p in ("neon", "generic")
                              for m, e in [(m, "expected") for m in MODELS] + EXTRA]:
    env = dict(os.environ, ATS_KERNEL=path)
    mdir = os.path.join(ROOT, model)
    exp = os.path.join(mdir, expected)
    model_worst = 0.0
    for case in json.load(open(os.path.join(exp, "manifest.json")))["cases"]:
        name = case["name"]
        att, hid = os.path.join(tmp, "att.npy"), os.path.join(tmp, "hid.npy")
        args = cmd + ["attention", "--model", mdir, "--npy", att, "--hidden", hid,
                      "--threads", "1"]
        if "image" in case:
            args += ["--image", os.path.join(exp, case["image"])]
            if "image_size" in case:
                args += ["--image-size", "%dx%d" % tuple(case["image_size"])]
        elif "text" in case:
            args += ["--text", case["text"]] + (["--truncate"] if case.get("truncate") else [])
        else:
            args += ["--ids", ",".join(str(int(x)) for x in case["ids"])]
            if case.get("types"):
                args += ["--token-types", ",".join(str(int(x)) for x in case["types"])]
        if case.get("head_mask"):
            mask = os.path.join(tmp, "mask.npy")
            np.save(mask, np.array(case["head_mask"], dtype=np.float32))
            args += ["--head-mask", mask]
        p = subprocess.run(args, capture_output=True, text=True, env=env)
        runs += 1
        label = f"{path}: {model}/{expected}/{name}"
        if p.returncode != 0:
            failed.append(f"{label}: exit {p.returncode}: {p.stderr.strip()}")
            continue
        got, want = np.load(att), np.load(os.path.join(exp, f"{name}_att.npy"))
        if got.dtype != np.float32 or got.shape != want.shape:
            failed.append(f"{label}: {got.dtype} {got.shape}, recorded {want.dtype} {want.shape}")
            continue
        err = float(np.abs(got - want).max())
        tol = case.get("tol", TOL)
        if err > tol:
            failed.append(f"{label}: attention differs by {err:.3g} > {tol:g}")
        h, want_h = np.load(hid), np.load(os.path.join(exp, f"{name}_hidden.npy"))
        scale = max(1.0, float(np.abs(want_h).max()))
        if h.shape != want_h.shape or np.abs(h - want_h).max() > tol * scale:
            failed.append(f"{label}: hidden states differ beyond {tol:g} x {scale:g}")
        if "tol" in case:  # a JPEG's own tolerance: stb's and libjpeg's decoders differ
            print(f"check-aarch64: attention {label}: max abs difference {err:.3g} (tolerance "
                  f"{tol:g})")
        else:
            model_worst = max(model_worst, err)
    worst = max(worst, model_worst)
    print(f"check-aarch64: attention {path}: {model}/{expected}: max abs difference "
          f"{model_worst:.3g}")
# The determinism contract on each path: the same bits on one thread and two, and for one head
# of a pass stopped after its layer.
before = len(failed)
for path, model in [(p, m) for p in ("neon", "generic") for m in ("gpt2", "bert")]:
    env = dict(os.environ, ATS_KERNEL=path)
    base = cmd + ["attention", "--model", os.path.join(ROOT, model), "--text", "the cat sat."]
    outs = {}
    for key, extra in [("t1", ["--threads", "1"]), ("t2", ["--threads", "2"]),
                       ("one", ["--threads", "2", "--layer", "0", "--head", "1"])]:
        outs[key] = os.path.join(tmp, key + ".npy")
        p = subprocess.run(base + extra + ["--npy", outs[key]], capture_output=True, text=True,
                           env=env)
        if p.returncode != 0:
            failed.append(f"{path}: {model} {' '.join(extra)}: exit {p.returncode}: {p.stderr}")
            break
    else:
        t1, t2, one = (np.load(outs[k]) for k in ("t1", "t2", "one"))
        if not np.array_equal(t1, t2):
            failed.append(f"{path}: {model}: one thread and two differ")
        if not np.array_equal(t1[0, 1], one):
            failed.append(f"{path}: {model}: layer 0 head 1 alone differs from the full pass")
print("check-aarch64: neon and generic, one thread and two, one head and all: "
      + ("bit for bit" if len(failed) == before else "FAILED"))
for f in failed:
    print("check-aarch64: FAIL " + f, file=sys.stderr)
print(f"check-aarch64: attention, {runs} fixture cases: max abs difference from transformers "
      f"{worst:.3g} (tolerance {TOL:g}; JPEG aside), {len(failed)} failed")
sys.exit(1 if failed else 0)
EOF
