"""attnscope.report writes the page `attnscope report` writes: the same head, the same tables,
the same figures (up to cairo's surface ids inside the SVGs)."""
import base64
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "python"))

import attnscope  # noqa: E402

ATTNSCOPE = os.environ.get("ATTNSCOPE", os.path.join(ROOT, "build", "attnscope"))
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "models")
A = "The cat sat on the mat."
B = "A dog slept under the old wooden table, quietly."


def text_of(html):
    """The page without its figures' data."""
    return re.sub(r'src="data:[^"]*"', 'src=""', html)


def figures(html):
    """Each figure's format and bytes, cairo's process-wide surface counter taken out."""
    out = []
    for fmt, b64 in re.findall(r'src="data:image/(png|svg\+xml);base64,([^"]*)"', html):
        data = base64.b64decode(b64)
        if fmt != "png":
            data = re.sub(rb'id="surface\d+"', b'id="surface"', data)
        out.append((fmt, data))
    return out


@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_report_equals_the_command(tmp_path, name):
    d = os.path.join(FIXTURES, name)
    m = attnscope.Model.load(d)
    try:
        r = attnscope.report(m, [A, B], tmp_path / "py", title="a <title>")
    finally:
        m.close()
    p = subprocess.run([ATTNSCOPE, "report", "--model", d, "--text", A, "--text", B, "--out",
                        str(tmp_path / "cli"), "--title", "a <title>"], capture_output=True,
                       text=True)
    assert p.returncode == 0, p.stderr
    py = (tmp_path / "py" / "index.html").read_text()
    cli = (tmp_path / "cli" / "index.html").read_text()
    assert r["path"] == str(tmp_path / "py" / "index.html") and r["bytes"] == len(py.encode())
    assert r["figures"] == 20 and r["cut"] == [0, 0]
    assert r["png_fallback"] == cli.count("is embedded as PNG")
    assert f"layer {r['layer']}, head {r['head']} (0-based)" in cli
    # the page names the model as it was given; the rest is the same
    model_row = re.compile(r"<tr><th>model</th><td>[^<]*</td>")
    assert model_row.sub("", text_of(py)) == model_row.sub("", text_of(cli))
    assert "a &lt;title&gt;" in py
    assert figures(py) == figures(cli)


def test_report_bad_arguments(tmp_path):
    m = attnscope.Model.load(os.path.join(FIXTURES, "bert"))
    try:
        with pytest.raises(ValueError):
            attnscope.report(m, [A], tmp_path)
        with pytest.raises(ValueError):
            attnscope.report(m, [A, B], tmp_path, format="pdf")
        with pytest.raises(attnscope.AttnscopeError, match="outside"):
            attnscope.report(m, [A, B], tmp_path, layer=99, head=0)
    finally:
        m.close()
    assert not (tmp_path / "index.html").exists()
