#!/usr/bin/env bash
# The build on CPUs this machine is not: qemu-user (TCG) emulates an x86-64 CPU with AVX2 and FMA
# but no AVX-512 (`-cpu max`: everything TCG implements, which stops at AVX2) and one with
# neither (Nehalem), so that every machine that runs CI also
# proves what a user's AVX2-only or older CPU gets: the kernel path chosen by itself, the model
# and kernel unit tests, and every fixture's attention against transformers' recorded output.
# Usage: tools/check_cpus.sh [BUILD_DIR]   (default build/)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${1:-build}
if [ "$(uname -m)" != x86_64 ]; then
  echo "check_cpus: emulates x86-64 CPUs for an x86-64 build; this machine is $(uname -m)"
  exit 0
fi
command -v qemu-x86_64 >/dev/null || {
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq qemu-user >/dev/null
}
wrap=$(mktemp -d)
trap 'rm -rf "$wrap"' EXIT
for spec in max:avx2 Nehalem:generic; do
  cpu=${spec%%:*} want=${spec##*:}
  echo "== emulated $cpu CPU: expects kernel path $want"
  run() { qemu-x86_64 -cpu "$cpu" "$@"; }
  got=$(run "$BUILD/attnscope-full" --version | sed -n 's/^kernel: \([a-z0-9]*\) .*/\1/p')
  [ "$got" = "$want" ] || { echo "check_cpus: $cpu chose '$got', not '$want'" >&2; exit 1; }
  if ATS_KERNEL=avx512 run "$BUILD/attnscope-full" --version >/dev/null 2>&1; then
    echo "check_cpus: ATS_KERNEL=avx512 was accepted on $cpu" >&2; exit 1
  fi
  for t in test_model test_measure_kernels; do run "$BUILD/$t" 2>&1 | tail -1; done
  printf '#!/bin/sh\nexec qemu-x86_64 -cpu %s %s/attnscope-full "$@"\n' \
    "$cpu" "$(realpath "$BUILD")" >"$wrap/attnscope"
  chmod +x "$wrap/attnscope"
  ATTNSCOPE="$wrap/attnscope" .venv/bin/python -m pytest -q -p no:cacheprovider \
    tests/python/test_model_fixtures.py | tail -1
done
echo "check_cpus: all passed"
