"""The package reads the library's constants (ats_constant) instead of copying them: every
enum value and bound it serves equals what the public headers spell, read here from the header
text independently; every structure the bindings mirror has the library's size."""
import ctypes
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))

import attnscope  # noqa: E402,F401
from attnscope import _lib as L  # noqa: E402


def header_values():
    """ATS_NAME -> value from `#define ATS_NAME <int>` and `ATS_NAME = <int>` in the headers, and
    enum members without a value counted on from the previous one."""
    values = {}
    inc = os.path.join(ROOT, "include", "attnscope")
    for name in os.listdir(inc):
        text = open(os.path.join(inc, name), encoding="utf-8").read()
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S).replace("\\\n", " ")
        for m in re.finditer(r"#define\s+(ATS_[A-Z0-9_]+)\s+\(?(-?\d+)u?\)?\s*$", text, flags=re.M):
            values[m.group(1)] = int(m.group(2))
        for body in re.findall(r"typedef enum \w*\s*\{(.*?)\}", text, flags=re.S):
            nxt = 0
            for item in body.split(","):
                m = re.match(r"\s*(ATS_[A-Z0-9_]+)\s*(?:=\s*(\d+))?\s*$", item)
                if not m:
                    continue
                nxt = int(m.group(2)) if m.group(2) is not None else nxt
                values[m.group(1)] = nxt
                nxt += 1
    return values


def test_constants_equal_the_headers():
    ref = header_values()
    names, i = [], 0
    while True:
        n = L.lib.ats_constant_name
        n.restype, n.argtypes = ctypes.c_char_p, [ctypes.c_size_t]
        name = n(i)
        if name is None:
            break
        names.append(name.decode())
        i += 1
    enums = [x for x in names if not x.startswith("sizeof(")]
    assert len(enums) >= 30
    for name in enums:
        assert name in ref, f"{name} not found in the headers"
        assert L._constant(name) == ref[name], name
    assert L.STAT_COUNT == ref["ATS_STAT_COUNT"] and L.HEADS_COUNT == ref["ATS_HEADS_COUNT"]
    assert L.RIPS_MAX_DIM == ref["ATS_RIPS_MAX_DIM"]


def test_mirrored_structures_have_the_library_sizes():
    for cls, name in L._MIRRORS.items():
        assert ctypes.sizeof(cls) == L._constant(f"sizeof({name})"), name
    assert not L.lib.ats_constant(b"ATS_NO_SUCH_THING", None)
