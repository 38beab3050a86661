#!/usr/bin/env bash
# Records the outputs of `attnscope compare` and `attnscope heads` (JSON, NPY, CSV, figures and
# stdout) on the fixture models and MiniLM, and of every command that writes JSON (rips, topo,
# graph, divergence, measure, context, vision, equivariance, tokenize), `report` and the viewer's JSON API
# on the fixtures, into OUT, so that a refactoring can be checked to leave them byte for byte
# alike:
#   tests/golden/record.sh build/attnscope /tmp/golden-before
#   ... change the code, rebuild ...
#   tests/golden/record.sh build/attnscope /tmp/golden-after
#   diff -r /tmp/golden-before /tmp/golden-after
# Timings (seconds, tokens per second) are replaced by "T" in stdout and summary.json: they are
# the only outputs that differ between two runs of the same build.
set -euo pipefail
BIN=$(realpath "$1")
OUT=$2
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FIX=$ROOT/tests/fixtures/models
MINILM=$("$ROOT/.venv/bin/python" "$ROOT/tools/minilm_dir.py")
rm -rf "$OUT"
mkdir -p "$OUT"
cd "$OUT"
A="The cat sat on the mat."
B="A dog slept under the old wooden table, quietly."

# run NAME CMD...: stdout, stderr and the exit status of one command
run() {
    local name=$1
    shift
    local rc=0
    "$BIN" "$@" >"$name.stdout" 2>"$name.stderr" || rc=$?
    echo "$rc" >"$name.rc"
    sed -i -E 's/[0-9.]+ s \([0-9.]+ tokens\/s\)/T s (T tokens\/s)/; s/[0-9]+\.[0-9]+ ms/T ms/' \
        "$name.stdout" "$name.stderr"
}

for m in bert gpt2 minilm; do
    dir=$FIX/$m
    [ "$m" = minilm ] && dir=$MINILM
    run "compare_$m" compare --model "$dir" --text "$A" --text "$B" --layer 1 --head 0 \
        --json "compare_$m.json"
    run "compare_${m}_seed" compare --model "$dir" --text "$A" --text "$B" --layer 0 --head 1 \
        --seed-compat --dim 2 --q 2 --json "compare_${m}_seed.json"
    run "compare_${m}_all" compare --model "$dir" --text "$A" --text "$B" --all-heads \
        --json "compare_${m}_all.json" --out "compare_${m}_all"
    run "compare_${m}_out" compare --model "$dir" --text "$A" --text "$B" --layer 1 --head 1 \
        --out "compare_${m}_out" --threads 1
    "$BIN" attention --model "$dir" --text "$A" --npy "att_${m}_a.npy" >/dev/null
    "$BIN" attention --model "$dir" --text "$B" --npy "att_${m}_b.npy" >/dev/null
    run "compare_${m}_files" compare --attention "att_${m}_a.npy" --attention "att_${m}_b.npy" \
        --all-heads --json "compare_${m}_files.json"
done
run compare_err_one compare --model "$FIX/bert" --text "$A" --layer 0 --head 0 --json x.json
run compare_err_head compare --model "$FIX/bert" --text "$A" --text "$B" --layer 9 --head 0 \
    --json x.json
run compare_err_empty compare --model "$FIX/bert" --text "" --text "$B" --layer 0 --head 0 \
    --json x.json

# a small corpus with the kinds of lines the reader skips
CORPUS=corpus.txt
{
    head -n 24 "$ROOT/data/corpus/english.txt"
    echo ""
    printf 'bad \xff utf-8 line\n'
    echo "   "
    echo "Short."
    head -n 40 "$ROOT/data/corpus/english.txt" | tail -n 6
} >"$CORPUS"
printf '{"text": "The cat sat."}\n{"nope": 1}\n{"text": "A dog ran far away."}\n' >corpus.jsonl
for m in bert gpt2 minilm; do
    dir=$FIX/$m
    [ "$m" = minilm ] && dir=$MINILM
    run "heads_$m" heads --model "$dir" --corpus "$CORPUS" --output "heads_$m.npy" --quiet
    run "heads_${m}_clark" heads --model "$dir" --corpus "$CORPUS" --output "heads_${m}_clark.npy" \
        --clark --quiet --threads 1
    run "heads_${m}_out" heads --model "$dir" --corpus "$CORPUS" --out "heads_${m}_out" --stats \
        --quiet --max-lines 20 --chunk-lines 7
    run "heads_${m}_jsonl" heads --model "$dir" --corpus corpus.jsonl --output "heads_${m}_jsonl.npy" \
        --quiet --max-tokens 6
done
run heads_bert_ablation heads --model "$FIX/bert" --corpus "$CORPUS" --out heads_bert_ablation \
    --ablation --ablation-lines 5 --quiet --max-tokens 12 --skip-long
run heads_joint heads --model "$FIX/bert" --model "$FIX/gpt2" --corpus "$CORPUS" --out heads_joint \
    --output heads_joint.npy --quiet
run heads_err_missing heads --model "$FIX/bert" --corpus missing.txt --output x.npy

# the other JSON writers
DATA=$ROOT/tests/data
run rips_circle rips "$DATA/circle24.txt" --format point-cloud --dim 2 --json rips_circle.json
run rips_plane rips "$DATA/ph-benchmarks/projective_plane.lower_distance_matrix" \
    --format lower-distance --dim 2 --modulus 3 --json rips_plane.json --cocycles
run rips_threshold rips "$DATA/circle24.txt" --format point-cloud --threshold 0.5 \
    --json rips_threshold.json --cycles
for m in bert gpt2; do
    dir=$FIX/$m
    run "topo_$m" topo --model "$dir" --text "$A" --text "$B" --layer 1 --head 0 --out "topo_$m" \
        --format svg
    run "topo_${m}_seed" topo --model "$dir" --text "$A" --layer 0 --head 1 --seed-compat \
        --threshold 0.3 --scales 0.1,0.2 --out "topo_${m}_seed" --format svg
    run "graph_$m" graph --model "$dir" --text "$A" --layer 1 --head 1 --out "graph_$m" \
        --format svg
    run "divergence_$m" divergence --model "$dir" --text "$A" --layer 0 --head 0 \
        --out "divergence_$m" --format svg
    run "equivariance_$m" equivariance --model "$dir" --text "$B" --out "equivariance_$m" \
        --format svg
    run "tokenize_$m" tokenize --model "$dir" --text "$B" --json "tokenize_$m.json"
    run "measure_${m}_json" measure stats --input "att_${m}_a.npy" "att_${m}_b.npy" \
        --output "measure_${m}.json" --cls 0 --sep -1 --punct -2
    run "measure_${m}_csv" measure stats --input "att_${m}_a.npy" --output "measure_${m}.csv"
done
run rips_npy rips topo_bert/js.npy --format npy --json rips_npy.json --dim 2
printf 'The cat sat.\nA cat ran home.\nNo pets here.\nMy cat is old.\nThe cat and the dog.\n' \
    >context.txt
run context_word context --model "$FIX/bert" --model "$FIX/gpt2" --text "$A" --text \
    "The cat ran." --word cat --out context_word --format svg
run context_phrase context --model "$FIX/bert" --phrase cat --corpus context.txt --layer 0 \
    --out context_phrase --format svg
VIT=$FIX/vit/expected
run vision vision --model "$FIX/vit" --image "$VIT/image0.png" --layer 1 --head 2 --out vision \
    --perturb blur --format svg
run vision_frames vision --model "$FIX/vit" --image "$VIT/image0.png" --image "$VIT/image1.png" \
    --layer 0 --head 0 --out vision_frames --format svg
for m in bert gpt2; do
    run "report_$m" report --model "$FIX/$m" --text "$A" --text "$B" --out "report_$m"
done
run report_head report --model "$FIX/bert" --text "$A" --text "$B" --layer 0 --head 1 \
    --out report_head --title "a <title>"
"$ROOT/.venv/bin/python" "$ROOT/tests/golden/serve_record.py" "$BIN" "$FIX/bert" serve
find . -name summary.json -exec sed -i -E \
    's/"seconds": [0-9.e+-]+/"seconds": T/; s/"tokens_per_second": [0-9.e+-]+/"tokens_per_second": T/' {} +
echo "recorded $(find . -type f | wc -l) files in $OUT"
