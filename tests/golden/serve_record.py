"""Records the bytes of the viewer's JSON API answers on one model into OUT_DIR, for
tests/golden/record.sh:

    serve_record.py ATTNSCOPE MODEL OUT_DIR

The "timing" object (milliseconds, a cache flag) is the only part that differs between two runs
of the same build: it is replaced by "T"."""
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
os.environ["ATTNSCOPE"] = os.path.abspath(sys.argv[1])
import serve_helper  # noqa: E402  (reads ATTNSCOPE when imported)

A = "The cat sat on the mat."
B = "A dog slept under the old wooden table, quietly."
REQUESTS = [
    ("info", "/api/info", None),
    ("analyze", "/api/analyze", {"text": A, "layer": 1, "head": 0}),
    ("analyze_two", "/api/analyze", {"text": A, "text2": B, "layer": 0, "head": 1, "max_dim": 2}),
    ("analyze_kl", "/api/analyze", {"text": B, "layer": 1, "head": 1, "measure": "kl",
                                    "threshold": 0.5}),
    ("analyze_js", "/api/analyze", {"text": A, "text2": B, "layer": 1, "head": 1, "measure": "js"}),
    ("overview", "/api/overview", {"text": B}),
    ("error", "/api/analyze", {"text": A, "layer": 99, "head": 0}),
]

out = sys.argv[3]
os.makedirs(out, exist_ok=True)
with serve_helper.serving(sys.argv[2]) as srv:
    for name, path, body in REQUESTS:
        status, _, data = srv.request(path, body)
        data = re.sub(rb'"timing":\s*\{[^}]*\}', b'"timing":"T"', data)
        with open(os.path.join(out, name + ".json"), "wb") as f:
            f.write(b"%d\n" % status + data)
