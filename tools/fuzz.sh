#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/fuzz_*.c) with clang, AddressSanitizer and UBSan
# (-DATS_FUZZ=ON) and runs each for a fixed time from its seeds (fuzz/seeds/<target>/).
#   FUZZ_SECONDS  time per target (default 30)
#   FUZZ_BUILD    build directory (default build-fuzz)
# Exits non-zero when a target finds a crash, a leak or a sanitizer report; the input that did
# it is left in $FUZZ_BUILD/crashes/<target>/.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${FUZZ_SECONDS:-30}
BUILD=${FUZZ_BUILD:-build-fuzz}
# absolute paths: a target may change its working folder (fuzz_cli runs in a scratch folder)
case $BUILD in /*) ;; *) BUILD="$PWD/$BUILD" ;; esac
command -v clang >/dev/null || { echo "fuzz: clang is missing (tools/deps.sh installs it)" >&2; exit 1; }

targets=()
for src in fuzz/fuzz_*.c; do
  [ -e "$src" ] || continue
  targets+=("$(basename "$src" .c)")
done
if ((${#targets[@]} == 0)); then echo "fuzz: no targets" >&2; exit 1; fi

CC=clang cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Debug -DATS_FUZZ=ON >/dev/null
if ! cmake --build "$BUILD" -j2 --target "${targets[@]}" >"$BUILD/build.log" 2>&1; then
  tail -50 "$BUILD/build.log" >&2
  exit 1
fi

status=0
for t in "${targets[@]}"; do
  corpus="$BUILD/corpus/$t"
  crashes="$BUILD/crashes/$t"
  mkdir -p "$corpus" "$crashes"
  seeds=()
  [ -d "fuzz/seeds/$t" ] && seeds+=("$PWD/fuzz/seeds/$t")
  echo "fuzz: $t for ${SECS}s" >&2
  if ! ASAN_OPTIONS=detect_leaks=1 LSAN_OPTIONS=suppressions="$PWD/tests/lsan.supp" "$BUILD/$t" -max_total_time="$SECS" -timeout=10 \
      -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
      -artifact_prefix="$crashes/" "$corpus" "${seeds[@]}" >"$BUILD/$t.log" 2>&1; then
    echo "fuzz: $t FAILED (see $BUILD/$t.log, inputs in $crashes/)" >&2
    tail -40 "$BUILD/$t.log" >&2
    status=1
  else
    grep -E "stat::number_of_executed_units" "$BUILD/$t.log" >&2 || true
  fi
done
exit $status
