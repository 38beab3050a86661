#!/usr/bin/env bash
# Regenerates docs/figures/: the figures the issue notes show, made by the commands themselves
# on the real all-MiniLM-L6-v2 (the demo's sentences, layer 3 head 1) and on the ViT fixture.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/attnscope}
MODEL=$(.venv/bin/python tools/minilm_dir.py)
VIT=tests/fixtures/models/vit
A="The cat sat on the mat because it was tired."
B="The dog lay on the rug because it was sleepy."
TMP=$(mktemp -d /tmp/attnscope-gallery-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
"$BIN" attend --model "$MODEL" --text "$A" --layer 3 --head 1 --out "$TMP/attend" >/dev/null
"$BIN" graph --model "$MODEL" --text "$A" --layer 3 --head 1 --out "$TMP/graph" >/dev/null
"$BIN" topo --model "$MODEL" --text "$A" --layer 3 --head 1 --out "$TMP/topo" >/dev/null 2>&1
"$BIN" compare --model "$MODEL" --text "$A" --text "$B" --all-heads --out "$TMP/compare" \
    --json "$TMP/compare.json" >/dev/null
"$BIN" vision --model "$VIT" --image "$VIT/expected/image0.png" --layer 1 --head 2 \
    --image-size 48x32 --out "$TMP/vision" >/dev/null
mkdir -p docs/figures
cp "$TMP/attend/heatmap_1_L3_H1.png" docs/figures/attention_heatmap.png
cp "$TMP/graph/graph_1_L3_H1.png" docs/figures/attention_graph.png
cp "$TMP/topo/diagram.png" docs/figures/persistence_diagram.png
cp "$TMP/topo/skeleton.png" docs/figures/rips_skeleton.png
cp "$TMP/compare/bottleneck_H1.png" docs/figures/compare_all_heads_H1.png
cp "$TMP/vision/patches_1.png" docs/figures/vision_patches_48x32.png
ls -l docs/figures/*.png
