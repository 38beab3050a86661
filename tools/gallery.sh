#!/usr/bin/env bash
# Regenerates docs/figures/: every kind of figure attnscope draws, once, made by the commands
# themselves on the real all-MiniLM-L6-v2 (the demo's sentences, layer 3 head 1; the corpus in
# data/; the UD English EWT dev trees) and on the ViT fixture. docs/figures/README.md says what
# each shows. The PNGs are shrunk to at most 1000 px wide and 256 colours so that the gallery
# stays small in the repository; the commands' own files are full size.
#   tools/gallery.sh [BUILD/attnscope]
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-build/attnscope}
PY=.venv/bin/python
MODEL=$($PY tools/minilm_dir.py)
NAME=all-MiniLM-L6-v2
VIT=tests/fixtures/models/vit
A="The cat sat on the mat because it was tired."
B="The dog lay on the rug because it was sleepy."
TMP=$(mktemp -d /tmp/attnscope-gallery-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
head1=(--model "$MODEL" --text "$A" --layer 3 --head 1)
"$BIN" attend "${head1[@]}" --out "$TMP/attend" >/dev/null
"$BIN" attend --model "$MODEL" --text "$A" --out "$TMP/attend_all" >/dev/null
"$BIN" divergence "${head1[@]}" --out "$TMP/divergence" >/dev/null
"$BIN" graph "${head1[@]}" --out "$TMP/graph" >/dev/null
"$BIN" topo "${head1[@]}" --out "$TMP/topo" >/dev/null 2>&1
"$BIN" compare --model "$MODEL" --text "$A" --text "$B" --all-heads --out "$TMP/compare" \
    --json "$TMP/compare.json" >/dev/null
"$BIN" heads --model "$MODEL" --corpus data/corpus/english.txt --max-lines 40 \
    --out "$TMP/heads" >/dev/null 2>&1
"$BIN" context --model "$MODEL" --text "$A" --text "A cat chased the mouse." --word cat \
    --out "$TMP/context" >/dev/null
"$BIN" syntax --model "$MODEL" --name "$NAME" --conllu data/ud-english-ewt/en_ewt-ud-dev.conllu \
    --max-sentences 200 --top 12 --json "$TMP/syntax.json" --out "$TMP/syntax" >/dev/null
"$BIN" vision --model "$VIT" --image "$VIT/expected/image0.png" --layer 1 --head 2 \
    --image-size 48x32 --out "$TMP/vision" >/dev/null
"$BIN" vision --model "$VIT" --image "$VIT/expected/image0.png" --layer 1 --head 2 --sphere \
    --out "$TMP/sphere" >/dev/null
# the viewer, as Chromium shows it (the browser test's own screenshots; tools/deps.sh installs
# playwright-core)
FIX=tests/fixtures/models
node tests/browser/viewer_models_test.mjs "$BIN" "$VIT" "$VIT/expected/image0.png" "$FIX/bert" \
    "$FIX/gpt2" web "$TMP/shots" >/dev/null
# file in the gallery <- the command's figure
FIGS=(
    attention_heatmap.png "attend/heatmap_1_L3_H1.png"
    attention_all_heads.png "attend_all/heads_1.png"
    js_divergence.png "divergence/js_1_L3_H1.png"
    entropy_strip.png "divergence/entropy_1_L3_H1.png"
    attention_graph.png "graph/graph_1_L3_H1.png"
    persistence_diagram.png "topo/diagram.png"
    barcode.png "topo/barcode.png"
    rips_skeleton.png "topo/skeleton.png"
    compare_all_heads_H1.png "compare/bottleneck_H1.png"
    heads_mds.png "heads/mds.png"
    heads_barcode.png "heads/barcode.png"
    context_similarity.png "context/similarity.png"
    syntax_heads.png "syntax/syntax_heads.png"
    syntax_baseline.png "syntax/syntax_baseline.png"
    vision_patches_48x32.png "vision/patches_1.png"
    vision_sphere.png "sphere/sphere_1.png"
    viewer_image_model.png "shots/09-image.png"
    viewer_model_pair.png "shots/11-pair.png"
    viewer_pair_click.png "shots/12-pair-click.png"
)
mkdir -p docs/figures
rm -f docs/figures/*.png
for ((i = 0; i < ${#FIGS[@]}; i += 2)); do
    $PY - "$TMP/${FIGS[i + 1]}" "docs/figures/${FIGS[i]}" <<'EOF'
import sys
from PIL import Image
im = Image.open(sys.argv[1]).convert("RGB")
if im.width > 1000:
    im = im.resize((1000, round(im.height * 1000 / im.width)), Image.LANCZOS)
im.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(
    sys.argv[2], optimize=True)
EOF
done
ls -l docs/figures/*.png
