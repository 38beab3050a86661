"""The Python package over libattnscope.so: same results as the CLI and the references."""
import ctypes
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))

import attnscope  # noqa: E402
from attention_data import attention_js_matrices, softmax_attention  # noqa: E402

ATTNSCOPE = os.environ.get("ATTNSCOPE", os.path.join(ROOT, "build", "attnscope"))


def cli_rips(tmp_path, d, dim):
    np.save(tmp_path / "d.npy", d)
    out = tmp_path / "o.json"
    subprocess.run([ATTNSCOPE, "rips", str(tmp_path / "d.npy"), "--dim", str(dim), "--json", str(out)],
                   check=True, capture_output=True)
    doc = json.load(open(out))
    return [np.array([[b, math.inf if x is None else x] for b, x in e["pairs"]]).reshape(-1, 2)
            for e in doc["dims"]]


def test_rips_equals_cli(tmp_path):
    for d in attention_js_matrices(40, 3, seed=1):
        p = attnscope.rips(d, max_dim=2)
        ref = cli_rips(tmp_path, d, 2)
        for k in range(3):
            np.testing.assert_array_equal(p[k], ref[k])
    assert "H1" in repr(p)


def test_rips_points_cycles_cocycles():
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    x = np.c_[np.cos(t), np.sin(t)]
    p = attnscope.rips(x, max_dim=1, metric="euclidean", cycles=True, cocycles=True)
    assert len(p[1]) == 1 and len(p.cycles) == 1 and p.cycles[0].shape == (16, 2)
    simplices, coefs = p.cocycles[1][0]
    assert simplices.shape[1] == 2 and len(coefs) == len(simplices)
    assert p[0].shape == (16, 2) and np.isinf(p[0][:, 1]).sum() == 1


def test_batch_equals_single():
    mats = attention_js_matrices(24, 6, seed=2)
    batch = attnscope.rips_batch(np.stack(mats), max_dim=1, n_threads=2)
    for m, b in zip(mats, batch):
        one = attnscope.rips(m, max_dim=1)
        for k in range(2):
            np.testing.assert_array_equal(one[k], b[k])


def test_diagram_distances_against_gudhi():
    gudhi = pytest.importorskip("gudhi")
    import gudhi.hera
    rng = np.random.default_rng(0)
    for _ in range(5):
        a = np.sort(rng.uniform(0, 1, (30, 2)), axis=1)
        b = np.sort(rng.uniform(0, 1, (25, 2)), axis=1)
        assert abs(attnscope.bottleneck(a, b) - gudhi.bottleneck_distance(a, b, 0)) <= 1e-12
        w = attnscope.wasserstein(a, b, q=2, exact=True)
        assert abs(w - gudhi.hera.wasserstein_distance(a, b, order=2, internal_p=np.inf, delta=1e-9)) <= 1e-6 * w
    d, m = attnscope.bottleneck(a, b, matching=True)
    assert m.shape[1] == 2 and len(m) >= 25
    assert attnscope.bottleneck(np.array([[0, np.inf]]), np.zeros((0, 2))) == math.inf


def _strict_json(text):
    """json.loads refusing NaN and Infinity, which are not JSON (Python accepts them)."""
    def refuse(name):
        raise ValueError(f"{name} is not JSON")
    return json.loads(text, parse_constant=refuse)


def test_json_numbers_follow_one_rule(tmp_path):
    # core.h: finite -> a number that reads back as the same double (float with ATS_JSON_FLOAT),
    # NaN -> null, +-inf -> "inf"/"-inf", and +inf -> null for a death (ATS_JSON_DEATH)
    from attnscope import _lib
    values = [0.0, -0.0, 1.0, 0.1, 1 / 3, -2.5e-7, 5e-324, 2.2250738585072014e-308,
              -1.7976931348623157e308, 123456789.0, math.nan, math.inf, -math.inf]
    for flags in (0, 1, _lib.ATS_JSON_DEATH):
        for v in values:
            got = _strict_json(_lib.json_number(v, flags))
            if math.isnan(v):
                assert got is None
            elif math.isinf(v):
                assert got == (None if v > 0 and flags == _lib.ATS_JSON_DEATH else
                               ("inf" if v > 0 else "-inf"))
            elif flags == 1:
                assert np.float32(got) == np.float32(v)
            else:
                assert got == v
    # a diagram file holds infinities in both coordinates and reads back the same
    lib = _lib.lib
    lib.ats_diagram_write_json.argtypes = [ctypes.c_char_p, ctypes.c_size_t,
                                           _lib.P(_lib.Diagram), _lib.c_int32_p, _lib.P(_lib.Error)]
    lib.ats_diagram_read.argtypes = [ctypes.c_char_p, ctypes.c_int, _lib.P(_lib.Diagram),
                                     _lib.P(_lib.Error)]
    lib.ats_diagram_free.argtypes = [_lib.P(_lib.Diagram)]
    pairs = np.array([[0.1, math.inf], [-math.inf, 0.5], [0.25, 1 / 3], [1.0, -math.inf]])
    d = _lib.Diagram(len(pairs), _lib.as_double_ptr(pairs))
    dims = np.array([1], np.int32)
    path = str(tmp_path / "d.json").encode()
    err = _lib.Error()
    _lib.check(lib.ats_diagram_write_json(path, 1, ctypes.byref(d), dims.ctypes.data_as(_lib.c_int32_p),
                                          ctypes.byref(err)), err)
    doc = _strict_json(open(path).read())
    assert doc["dims"][0]["pairs"] == [[0.1, None], ["-inf", 0.5], [0.25, 1 / 3], [1.0, "-inf"]]
    back = _lib.Diagram()
    _lib.check(lib.ats_diagram_read(path, 1, ctypes.byref(back), ctypes.byref(err)), err)
    try:
        got = np.ctypeslib.as_array(back.pairs, shape=(back.count, 2)).copy()
    finally:
        lib.ats_diagram_free(ctypes.byref(back))
    assert np.array_equal(got, pairs)


def test_clusters_and_layout():
    d = np.array([[0, 0.1, 5, 5], [0.1, 0, 5, 5], [5, 5, 0, 0.2], [5, 5, 0.2, 0]], float)
    assert attnscope.clusters(d, 0.5).tolist() == [0, 0, 1, 1]
    pos = attnscope.layout(d, 0.5, dim=3)
    assert pos.shape == (4, 3) and np.abs(pos).max() <= 1 + 1e-12


def test_errors_carry_the_library_message():
    d = np.ones((3, 3)) - np.eye(3)
    d[2, 1] = d[1, 2] = np.nan
    with pytest.raises(attnscope.AttnscopeError, match="row 3, column 2"):
        attnscope.rips(d)
    with pytest.raises(attnscope.AttnscopeError, match="square"):
        attnscope.rips(np.zeros((2, 3)))
    with pytest.raises(attnscope.AttnscopeError, match="symmetric"):
        attnscope.rips(np.array([[0, 1.0], [2.0, 0]]))
    with pytest.raises(attnscope.AttnscopeError, match="prime"):
        attnscope.rips(np.zeros((3, 3)), modulus=4)


def test_figures_are_bytes():
    d = attention_js_matrices(20, 1, seed=3)[0]
    p = attnscope.rips(d, max_dim=1)
    png = attnscope.plot_diagram(p, title="t")
    assert png[:4] == b"\x89PNG" and png._repr_png_() is not None
    svg = attnscope.plot_barcode(p, fmt="svg")
    assert svg._repr_svg_().lstrip().startswith("<?xml")
    assert attnscope.plot_heatmap(softmax_attention(5, np.random.default_rng(0)),
                                  row_labels=list("abcde"), col_labels=list("abcde"))[:4] == b"\x89PNG"
    assert attnscope.plot_heatmap_grid(np.random.default_rng(0).random((2, 3, 4, 4)), fmt="pdf")[:4] == b"%PDF"
    assert attnscope.plot_skeleton(d, [0.3, 0.5], labels=[str(i) for i in range(20)])[:4] == b"\x89PNG"
    assert attnscope.plot_attention_graph(softmax_attention(8, np.random.default_rng(1)))[:4] == b"\x89PNG"
    with pytest.raises(attnscope.AttnscopeError, match="labels"):
        attnscope.plot_heatmap(np.zeros((2, 2)), row_labels=["a"])


FIXTURES = os.path.join(ROOT, "tests", "fixtures", "models")


def run_cli(*args):
    p = subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p


@pytest.mark.parametrize("name", ["bert", "gpt2", "roberta", "distilbert"])
def test_model_run_equals_cli(tmp_path, name):
    d = os.path.join(FIXTURES, name)
    text = "the cat sat on the mat"
    with attnscope.Model.load(d) as m:
        r = m.run(text=text, hidden_states=True)
        run_cli("attention", "--model", d, "--text", text, "--npy", str(tmp_path / "a.npy"),
                "--hidden", str(tmp_path / "h.npy"))
        np.testing.assert_array_equal(r.attentions, np.load(tmp_path / "a.npy"))
        np.testing.assert_array_equal(r.hidden_states, np.load(tmp_path / "h.npy"))
        run_cli("tokenize", "--model", d, "--text", text, "--json", str(tmp_path / "t.json"))
        t = json.load(open(tmp_path / "t.json"))
        assert r.ids.tolist() == t["ids"] and r.tokens == t["tokens"]
        assert r.offsets.tolist() == t["offsets"]
        # a silenced head reports zero attention, as transformers' head_mask
        mask = np.ones((m.info["n_layers"], m.info["n_heads"]), np.float32)
        mask[0, 1] = 0
        assert np.abs(m.run(text=text, head_mask=mask).attentions[0, 1]).max() == 0
        # a pass that stops after the first layer: that layer's attentions, bit for bit
        first = m.run(text=text, n_layers=1).attentions
        assert first.shape[0] == 1
        np.testing.assert_array_equal(first, r.attentions[:1])
        with pytest.raises(attnscope.AttnscopeError, match="need all"):
            m.run(text=text, n_layers=1, hidden_states=True)
        # several texts in one pass: each equals its own run
        texts = [text, "a dog", "the rug on which the dog lay was red"]
        batch = m.run_batch(texts, hidden_states=True)
        for t, b in zip(texts, batch):
            one = m.run(text=t, hidden_states=True)
            assert b.tokens == one.tokens and b.ids.tolist() == one.ids.tolist()
            np.testing.assert_array_equal(b.attentions, one.attentions)
            np.testing.assert_array_equal(b.hidden_states, one.hidden_states)
        with pytest.raises(attnscope.AttnscopeError, match="sequence 1"):
            m.run_batch([text, " ".join(["cat"] * 2000)])
    assert r.attentions.sum() > 0  # the arrays outlive the model handle


def zeroed_positions_copy(src, dst):
    """dst: the model folder src with its position-embedding tables set to zero in the
    safetensors file (the other files linked)."""
    os.makedirs(dst)
    for f in os.listdir(src):
        if f != "model.safetensors":
            os.symlink(os.path.join(src, f), os.path.join(dst, f))
    raw = bytearray(open(os.path.join(src, "model.safetensors"), "rb").read())
    hlen = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + hlen])
    zeroed = 0
    for name, t in header.items():
        if name.endswith(("position_embeddings.weight", "position_embeddings", "wpe.weight")):
            a, b = t["data_offsets"]
            raw[8 + hlen + a:8 + hlen + b] = bytes(b - a)
            zeroed += 1
    assert zeroed == 1
    open(os.path.join(dst, "model.safetensors"), "wb").write(raw)


@pytest.mark.parametrize("name", ["bert", "gpt2", "roberta", "distilbert", "vit"])
def test_run_without_positions(tmp_path, name):
    """positions=False is the model with a zeroed position table, bit for bit; a bidirectional
    encoder is then permutation equivariant: Attn(PX) = P Attn(X) P^T."""
    d = os.path.join(FIXTURES, name)
    zeroed_positions_copy(d, tmp_path / "z")
    with attnscope.Model.load(d) as m, attnscope.Model.load(str(tmp_path / "z")) as mz:
        if name == "vit":
            img = os.path.join(d, "expected", "image0.png")
            got = m.run(image=img, positions=False, hidden_states=True)
            want = mz.run(image=img, hidden_states=True)
            np.testing.assert_array_equal(got.attentions, want.attentions)
            np.testing.assert_array_equal(got.hidden_states, want.hidden_states)
            assert np.abs(m.run(image=img).attentions - got.attentions).max() > 1e-3
            return
        ids = m.tokenize("the cat sat on the mat and the dog lay on the rug")["ids"]
        got = m.run(ids=ids, positions=False, hidden_states=True)
        want = mz.run(ids=ids, hidden_states=True)
        np.testing.assert_array_equal(got.attentions, want.attentions)
        np.testing.assert_array_equal(got.hidden_states, want.hidden_states)
        perm = np.random.default_rng(3).permutation(len(ids))
        pa = m.run(ids=ids[perm], positions=False).attentions
        a = got.attentions[:, :, perm][:, :, :, perm]
        if name == "gpt2":  # the causal mask is itself positional
            assert np.abs(pa - a).max() > 1e-3
        else:
            assert np.abs(pa - a).max() < 1e-5
            assert np.abs(m.run(ids=ids[perm]).attentions
                          - m.run(ids=ids).attentions[:, :, perm][:, :, :, perm]).max() > 1e-3


def test_vit_run_equals_cli(tmp_path):
    d = os.path.join(FIXTURES, "vit")
    img = os.path.join(d, "expected", "image0.png")
    with attnscope.Model.load(d) as m:
        r = m.run(image=img)
    run_cli("attention", "--model", d, "--image", img, "--npy", str(tmp_path / "a.npy"))
    np.testing.assert_array_equal(r.attentions, np.load(tmp_path / "a.npy"))
    # at another size, positions interpolated: as the CLI, and as transformers (recorded)
    with attnscope.Model.load(d) as m:
        r = m.run(image=img, image_size=(48, 32))
    run_cli("attention", "--model", d, "--image", img, "--image-size", "48x32", "--npy",
            str(tmp_path / "b.npy"))
    np.testing.assert_array_equal(r.attentions, np.load(tmp_path / "b.npy"))
    want = np.load(os.path.join(d, "expected_interp", "interp0_att.npy"))
    assert np.abs(r.attentions - want).max() <= 1e-5


def test_measures_equal_cli(tmp_path):
    rng = np.random.default_rng(4)
    att = np.stack([np.stack([softmax_attention(9, rng) for _ in range(3)]) for _ in range(2)])
    np.save(tmp_path / "a.npy", att)
    for kind, fn in (("js", lambda a: attnscope.js_matrix(a)),
                     ("jsd", lambda a: attnscope.js_matrix(a, distance=True)),
                     ("kl", lambda a: attnscope.kl_matrix(a)),
                     ("entropy", lambda a: attnscope.entropy(a))):
        run_cli("measure", kind, "--input", str(tmp_path / "a.npy"), "--output", str(tmp_path / "o.npy"))
        np.testing.assert_array_equal(fn(att), np.load(tmp_path / "o.npy"))
    docs = [att, att[:, :, :5, :5] / att[:, :, :5, :5].sum(-1, keepdims=True)]
    np.save(tmp_path / "b.npy", docs[1])
    for clark in (False, True):
        run_cli("measure", "head-distance", "--input", str(tmp_path / "a.npy"), str(tmp_path / "b.npy"),
                "--output", str(tmp_path / "d.npy"), *(["--clark"] if clark else []))
        np.testing.assert_allclose(attnscope.head_distances(docs, clark=clark), np.load(tmp_path / "d.npy"),
                                   rtol=1e-12, atol=1e-12)
    st = attnscope.head_stats([att], roles=[{"cls": [0], "sep": [8], "punct": [4]}])
    assert st["cls"].shape == (2, 3) and np.isfinite(st["entropy"]).all()
    x = rng.normal(size=(4, 6))
    sim = attnscope.context_similarity(x)
    ref = (x @ x.T) / np.outer(np.linalg.norm(x, axis=1), np.linalg.norm(x, axis=1))
    np.testing.assert_allclose(sim, ref, atol=1e-12)
    with pytest.raises(attnscope.AttnscopeError, match="row"):
        attnscope.js_matrix(np.full((3, 3), 0.5))


# The ctypes mirrors of the public structs, checked against the headers by the C compiler: a
# field added in C but not here lets the library write past Python's copy of the struct.
MIRRORS = {"Error": "ats_error", "Diagram": "ats_diagram", "Matching": "ats_matching",
           "RipsOptions": "ats_rips_options", "Representative": "ats_representative",
           "RipsResult": "ats_rips_result", "WassersteinOptions": "ats_wasserstein_options",
           "FigureOptions": "ats_figure_options", "HeatmapOptions": "ats_heatmap_options",
           "GraphOptions": "ats_graph_options", "ModelInfo": "ats_model_info",
           "ForwardOptions": "ats_forward_options", "ModelInput": "ats_model_input",
           "ForwardResult": "ats_forward_result", "Encoding": "ats_encoding", "Attn": "ats_attn",
           "MeasureOpts": "ats_measure_opts", "Vectors": "ats_vectors",
           "TokenRoles": "ats_token_roles", "RunOptions": "ats_run_options",
           "Attention": "ats_attention", "CompareOptions": "ats_compare_options",
           "CompareResult": "ats_compare_result", "CorpusSource": "ats_corpus_source",
           "HeadsOptions": "ats_heads_options", "HeadsResult": "ats_heads_result",
           "SyntaxOptions": "ats_syntax_options", "SyntaxResult": "ats_syntax_result"}


# Constants the package repeats from the headers.
CONSTANTS = {"HEADS_COUNT": "ATS_HEADS_COUNT", "STAT_COUNT": "ATS_STAT_COUNT",
             "RIPS_MAX_DIM": "ATS_RIPS_MAX_DIM", "JSON_NUMBER_MAX": "ATS_JSON_NUMBER_MAX",
             "ATS_JSON_DEATH": "ATS_JSON_DEATH"}


def test_struct_mirrors_match_the_headers(tmp_path):
    import shutil
    from attnscope import _lib
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        pytest.skip("no C compiler")
    include = os.path.join(os.path.dirname(FIXTURES), "..", "..", "include")
    headers = ["core", "diagram", "rips", "render", "model", "tokenizer", "measure", "analysis"]
    src = "".join(f'#include "attnscope/{h}.h"\n' for h in headers) + "#include <stdio.h>\n"
    src += "int main(void) {\n" + "".join(
        f'    printf("{py} %zu %zu\\n", sizeof({c}), _Alignof({c}));\n'
        for py, c in MIRRORS.items()) + "".join(
        f'    printf("{py} %d\\n", (int)({c}));\n' for py, c in CONSTANTS.items()) + \
        "    return 0;\n}\n"
    (tmp_path / "sizes.c").write_text(src)
    exe = tmp_path / "sizes"
    subprocess.run([cc, "-std=c11", "-I", include, str(tmp_path / "sizes.c"), "-o", str(exe)],
                   check=True, capture_output=True)
    for line in subprocess.run([str(exe)], check=True, capture_output=True,
                               text=True).stdout.splitlines():
        if line.split()[0] in CONSTANTS:
            py, value = line.split()
            assert getattr(_lib, py) == int(value), py
            continue
        py, size, align = line.split()
        cls = getattr(_lib, py)
        assert (ctypes.sizeof(cls), ctypes.alignment(cls)) == (int(size), int(align)), py
