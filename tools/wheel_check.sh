#!/usr/bin/env bash
# The wheel as a user gets it: a fresh venv, `pip install dist/attnscope-*.whl` and nothing else,
# used from outside the repository. Proves the bundled libraries are the ones loaded, and runs
# persistence, a figure (pango text) and MiniLM against transformers' recorded attentions.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

wheels=(dist/attnscope-*.whl)
if [[ ${#wheels[@]} -ne 1 || ! -f ${wheels[0]} ]]; then
    echo "wheel_check: want exactly one dist/attnscope-*.whl (make wheel), found: ${wheels[*]}" >&2
    exit 1
fi
model=$(.venv/bin/python tools/minilm_dir.py)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install -q "$root/${wheels[0]}"

cd "$tmp"
# ATTNSCOPE_LIB would make the package load another library than the wheel's.
env -u ATTNSCOPE_LIB "$tmp/venv/bin/python" - "$model" "$root/tests/fixtures/models/minilm" <<'EOF'
import json, os, sys
import numpy as np
import attnscope

model_dir, fixture = sys.argv[1], sys.argv[2]
pkg = os.path.dirname(attnscope.__file__)
assert pkg.startswith(sys.prefix), f"imported from {pkg}, not the venv {sys.prefix}"

p = attnscope.rips(np.array([[0, 1, 2], [1, 0, 1.5], [2, 1.5, 0]]), max_dim=1)
assert p[0].shape == (3, 2), p
square = np.array([[0, 1, 2, 1], [1, 0, 1, 2], [2, 1, 0, 1], [1, 2, 1, 0]], float)
assert attnscope.rips(square, max_dim=1)[1].tolist() == [[1.0, 2.0]]

png = attnscope.plot_diagram(p, title="wheel check")
assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 1000, len(png)
svg = attnscope.plot_diagram(p, title="wheel check", fmt="svg").decode()
assert "glyph" in svg, "no text drawn: pango found no font"

sentences = json.load(open(os.path.join(fixture, "sentences.json"), encoding="utf-8"))["sentences"]
want = np.load(os.path.join(fixture, "attentions.npz"))["att0"]
with attnscope.Model.load(model_dir) as m:
    r = m.run(text=sentences[0]["text"])
assert r.attentions.shape == want.shape, (r.attentions.shape, want.shape)
err = float(np.abs(r.attentions - want).max())
assert err <= 1e-4, err

# The native code must come from the wheel: its library and its bundled copies, not the system's.
maps = open("/proc/self/maps").read()
libs = {l.split()[-1] for l in maps.splitlines() if ".so" in l}
ours = [l for l in libs if "libattnscope" in l]
assert ours == [os.path.join(pkg, "libattnscope.so")], ours
for name in ("libopenblas", "libcairo", "libpango-", "libgomp", "libcjson", "libutf8proc"):
    hits = [l for l in libs if os.path.basename(l).startswith(name)]
    assert hits and all("/attnscope.libs/" in l for l in hits), (name, hits)
bundled = sum("/attnscope.libs/" in l for l in libs)
print(f"wheel OK from {os.getcwd()}: rips, figures (PNG {len(png)} B, SVG text), MiniLM within "
      f"{err:.1e} of transformers; {bundled} bundled libraries loaded")
EOF
