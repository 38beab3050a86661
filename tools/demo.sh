#!/usr/bin/env bash
# The demo: persistent homology of a bundled example (points on a circle), until the model demo
# replaces it.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/attnscope}
"$BIN" rips tests/data/circle24.txt --format point-cloud --dim 1
