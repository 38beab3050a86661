"""attnscope serve: the viewer's JSON API against the CLI and the library's numbers for the same
text and head (tiny BERT and GPT-2 fixtures), bad requests, concurrency and clean shutdown.
Every server runs on 127.0.0.1 on a port the system chooses and is stopped by the test."""
import concurrent.futures
import http.client
import json
import math
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from scipy.stats import entropy as scipy_entropy

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_helper import ATTNSCOPE, ROOT, Server, serving  # noqa: E402

MODELS = os.path.join(ROOT, "tests", "fixtures", "models")
BERT = os.path.join(MODELS, "bert")
GPT2 = os.path.join(MODELS, "gpt2")
TEXT = "the cat sat on the mat"
TEXT2 = "a dog ran in the park"


def cli(*args):
    p = subprocess.run([ATTNSCOPE, *args], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    return p


@pytest.fixture(scope="module")
def bert():
    # a queue longer than test_concurrent_requests' 12 clients: the module checks concurrent
    # answers, not refusals (test_serve_hardening checks the queue's 503s), and a slow build
    # (-O0 under the sanitizers) would otherwise fill the default queue of 8
    srv = Server(BERT, "--queue", "64")
    try:
        yield srv
        # after every test of the module (bad requests, concurrency): a clean exit, and under
        # the sanitizers no leak and no error report
        code, err = srv.stop()
        assert code == 0, err
    finally:
        srv.kill()


def analyze(srv, **kw):
    body = {"text": TEXT, "layer": 1, "head": 2, "threshold": 0.3}
    body.update(kw)
    status, doc = srv.json("/api/analyze", body)
    assert status == 200, doc
    return doc


def pairs(dim_entry):
    return [(b, math.inf if d is None else d) for b, d in dim_entry["pairs"]]


@pytest.mark.parametrize("layer,head", [(0, 0), (1, 2)])
def test_analyze_equals_cli_topo(bert, tmp_path, layer, head):
    doc = analyze(bert, layer=layer, head=head)
    cli("topo", "--model", BERT, "--text", TEXT, "--layer", str(layer), "--head", str(head),
        "--dim", "1", "--out", str(tmp_path))
    ref = json.load(open(tmp_path / "result.json"))
    t = doc["texts"][0]
    assert t["tokens"] == ref["tokens"]
    # the measure (JS distance) matrix, exactly
    np.testing.assert_array_equal(np.array(t["matrix"]), np.load(tmp_path / "js.npy"))
    # diagrams, exactly, in the format of `attnscope rips --json`
    for ours, theirs in zip(t["diagrams"]["dims"], ref["diagrams"]["dims"]):
        assert ours["dim"] == theirs["dim"]
        assert sorted(pairs(ours)) == sorted(pairs(theirs))
        assert ours.get("cycles") == theirs.get("cycles")
    assert t["diagrams"]["n_points"] == ref["diagrams"]["n_points"]
    assert t["diagrams"]["threshold"] == ref["diagrams"]["threshold"]
    assert sorted(sorted(c["tokens"]) for c in t["cycles"]) == \
        sorted(sorted(c) for c in ref["cycle_tokens"])


def test_attention_equals_cli(bert, tmp_path):
    doc = analyze(bert, layer=1, head=3)
    cli("attention", "--model", BERT, "--text", TEXT, "--layer", "1", "--head", "3",
        "--npy", str(tmp_path / "a.npy"))
    ref = np.load(tmp_path / "a.npy")
    ours = np.array(doc["texts"][0]["attention"], dtype=np.float32)
    np.testing.assert_array_equal(ours, ref)


def test_gpt2_attention_and_topology(tmp_path):
    text = "Hello world, this is a test"
    with serving(GPT2) as srv:
        status, info = srv.json("/api/info")
        assert status == 200 and info["model"]["causal"] and info["model"]["layers"] == 2
        status, doc = srv.json("/api/analyze", {"text": text, "layer": 0, "head": 1,
                                                "threshold": 0.4})
        assert status == 200, doc
    cli("attention", "--model", GPT2, "--text", text, "--layer", "0", "--head", "1",
        "--npy", str(tmp_path / "a.npy"))
    ref = np.load(tmp_path / "a.npy")
    ours = np.array(doc["texts"][0]["attention"], dtype=np.float32)
    np.testing.assert_array_equal(ours, ref)
    assert np.all(np.triu(ours, 1) == 0)  # causal
    cli("topo", "--model", GPT2, "--text", text, "--layer", "0", "--head", "1", "--dim", "1",
        "--out", str(tmp_path / "topo"))
    ref = json.load(open(tmp_path / "topo" / "result.json"))
    assert doc["texts"][0]["tokens"] == ref["tokens"]
    for ours, theirs in zip(doc["texts"][0]["diagrams"]["dims"], ref["diagrams"]["dims"]):
        assert sorted(pairs(ours)) == sorted(pairs(theirs))


def test_comparison_equals_cli_compare(bert, tmp_path):
    doc = analyze(bert, text2=TEXT2, layer=1, head=2)
    cli("compare", "--model", BERT, "--text", TEXT, "--text", TEXT2, "--layer", "1", "--head",
        "2", "--json", str(tmp_path / "c.json"))
    ref = json.load(open(tmp_path / "c.json"))
    assert len(doc["texts"]) == 2
    for e in doc["comparison"]["dims"]:
        assert e["bottleneck"] == ref["bottleneck"][str(e["dim"])]
        assert e["wasserstein"] == ref["wasserstein"][str(e["dim"])]


def components(n, edges):
    parent = list(range(n))

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x
    for i, j in edges:
        parent[find(i)] = find(j)
    return len({find(i) for i in range(n)})


@pytest.mark.parametrize("threshold", [0.0, 0.2, 0.3, 0.45, 1.0])
def test_complex_at_threshold(bert, threshold):
    doc = analyze(bert, threshold=threshold)
    t = doc["texts"][0]
    m = np.array(t["matrix"])
    sym = 0.5 * (m + m.T)
    n = len(t["tokens"])
    want = [[i, j] for i in range(n) for j in range(i + 1, n) if sym[i, j] <= threshold]
    assert t["edges"] == want
    tri = [[i, j, k] for i in range(n) for j in range(i + 1, n) for k in range(j + 1, n)
           if max(sym[i, j], sym[i, k], sym[j, k]) <= threshold]
    assert t["triangles"] == tri
    assert t["clusters"]["count"] == components(n, want)
    assert len(set(t["clusters"]["labels"])) == t["clusters"]["count"]
    assert np.array(t["layout"]).shape == (n, 3)
    assert doc["threshold"] == threshold


def test_measures(bert, tmp_path):
    cli("divergence", "--model", BERT, "--text", TEXT, "--layer", "1", "--head", "2",
        "--out", str(tmp_path))
    files = os.listdir(tmp_path)
    for measure in ("js", "kl"):
        doc = analyze(bert, measure=measure)
        assert doc["measure"] == measure
        ours = np.array(doc["texts"][0]["matrix"])
        name = [f for f in files if f.startswith(measure + "_") and f.endswith(".npy")]
        assert len(name) == 1, files
        np.testing.assert_allclose(ours, np.load(tmp_path / name[0]), rtol=0, atol=1e-15)
        assert ours.shape == (8, 8) and np.all(np.diag(ours) == 0)


def test_overview_long_text():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from minilm_dir import minilm_dir
    if minilm_dir() is None:
        pytest.skip("all-MiniLM-L6-v2 is not installed (tools/deps.sh)")
    with serving(minilm_dir()) as srv:
        text = "a b " * 70  # 142 tokens: entropy for every head, H1 persistence not computed
        status, doc = srv.json("/api/overview", {"text": text})
        assert status == 200, doc
        assert doc["h1_persistence"] is None and len(doc["entropy"]) == 6
        status, doc = srv.json("/api/figure/overview.png", {"text": text, "stat": "h1"})
        assert status == 400 and "128 tokens" in doc["error"]
        assert srv.request("/api/figure/overview.png", {"text": text})[0] == 200


def test_overview_and_cache(bert, tmp_path):
    text = "overview of every head"
    status, doc = bert.json("/api/overview?text=" + text.replace(" ", "%20"))
    assert status == 200, doc
    assert not doc["timing"]["cached"]
    cli("attention", "--model", BERT, "--text", text, "--npy", str(tmp_path / "a.npy"))
    att = np.load(tmp_path / "a.npy").astype(np.float64)
    L, H = att.shape[:2]
    ref = np.array([[scipy_entropy(att[l, h] / att[l, h].sum(-1, keepdims=True), base=2,
                                   axis=1).mean() for h in range(H)] for l in range(L)])
    np.testing.assert_allclose(np.array(doc["entropy"]), ref, atol=1e-12)
    h1 = np.array(doc["h1_persistence"])
    assert h1.shape == (L, H) and np.all(h1 >= 0)
    # the overview's total H1 persistence equals the analysis's H1 diagram of that head
    doc2 = analyze(bert, text=text, layer=1, head=1)
    assert doc2["timing"]["cached"] and doc2["timing"]["forward_ms"] == 0
    total = sum(d - b for b, d in pairs(doc2["texts"][0]["diagrams"]["dims"][1]) if d < math.inf)
    assert h1[1, 1] == pytest.approx(total, abs=1e-12)


@pytest.mark.parametrize("kind", ["heatmap", "measure", "diagram", "barcode", "skeleton",
                                  "graph", "overview"])
def test_figures(bert, kind):
    status, headers, png = bert.request(f"/api/figure/{kind}.png?text=the%20cat&layer=0&head=1"
                                        "&threshold=0.3")
    assert status == 200, png[:200]
    assert headers["Content-Type"] == "image/png" and png[:8] == b"\x89PNG\r\n\x1a\n"
    status, headers, svg = bert.request(f"/api/figure/{kind}.svg",
                                        {"text": TEXT, "text2": TEXT2, "which": 2, "layer": 1,
                                         "head": 0, "threshold": 0.3})
    assert status == 200, svg[:200]
    assert headers["Content-Type"] == "image/svg+xml" and b"<svg" in svg[:400]


def test_static_files(bert):
    for path, ctype in (("/", "text/html"), ("/app.js", "text/javascript"),
                        ("/style.css", "text/css")):
        status, headers, body = bert.request(path)
        assert status == 200 and headers["Content-Type"].startswith(ctype), path
        assert body == open(os.path.join(ROOT, "web", path.strip("/") or "index.html"),
                            "rb").read()


def raw_get(srv, path):
    """A GET with the path sent exactly as given (no client-side normalisation)."""
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    c.putrequest("GET", path, skip_host=False, skip_accept_encoding=True)
    c.endheaders()
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


@pytest.mark.parametrize("path", ["/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
                                  "/..%2f..%2fetc%2fpasswd", "/web/../../etc/passwd",
                                  "/api/figure/..%2f..%2fetc%2fpasswd.png", "/index.html/..",
                                  "/CMakeLists.txt", "/serve.h", "//etc/passwd"])
def test_path_traversal(bert, path):
    status, body = raw_get(bert, path)
    assert status == 404, (path, status)
    assert b"root:" not in body and "error" in json.loads(body)


def error_of(srv, path, body, status_expected, method=None):
    status, headers, data = srv.request(path, body, method)
    assert status == status_expected, (status, data[:300])
    msg = json.loads(data)["error"]
    assert msg
    return msg


def test_bad_requests(bert):
    base = {"text": TEXT, "layer": 0, "head": 0, "threshold": 0.3}
    assert "larger than 65536" in error_of(bert, "/api/analyze",
                                           json.dumps(dict(base, text="x " * 40000)).encode(), 413)
    assert "JSON" in error_of(bert, "/api/analyze", b'{"text": "a", "layer": ', 400)
    assert "JSON" in error_of(bert, "/api/analyze", b"[1, 2]", 400)
    assert "JSON" in error_of(bert, "/api/analyze", b"", 400)
    assert "layer" in error_of(bert, "/api/analyze", dict(base, layer=2), 400)
    assert "layer" in error_of(bert, "/api/analyze", dict(base, layer=-1), 400)
    assert "layer" in error_of(bert, "/api/analyze", dict(base, layer=0.5), 400)
    assert "head" in error_of(bert, "/api/analyze", dict(base, head=4), 400)
    assert "head" in error_of(bert, "/api/analyze", dict(base, head="x"), 400)
    assert "threshold" in error_of(bert, "/api/analyze", dict(base, threshold=-0.1), 400)
    assert "threshold" in error_of(bert, "/api/analyze", dict(base, threshold="nan"), 400)
    assert "threshold" in error_of(bert, "/api/analyze", b'{"text":"a","layer":0,"head":0,'
                                                          b'"threshold":1e400}', 400)
    assert "JSON" in error_of(bert, "/api/analyze", b'{"text":"a","layer":0,"head":0,'
                                                    b'"threshold":NaN}', 400)
    assert "measure" in error_of(bert, "/api/analyze", dict(base, measure="cosine"), 400)
    assert "text" in error_of(bert, "/api/analyze", {"layer": 0, "head": 0}, 400)
    assert "text" in error_of(bert, "/api/analyze", dict(base, text=5), 400)
    assert "tokens" in error_of(bert, "/api/analyze", dict(base, text="word " * 60), 400)
    msg = error_of(bert, "/api/analyze",
                   b'{"text": "caf\xc3 bad", "layer": 0, "head": 0, "threshold": 0.1}', 400)
    assert "UTF-8" in msg
    assert "UTF-8" in error_of(bert, "/api/overview?text=%ff%fe", None, 400)
    assert "NUL" in error_of(bert, "/api/analyze", b'{"text": "a"}\x00', 400)
    assert error_of(bert, "/api/analyze", None, 405, method="GET")
    assert error_of(bert, "/api/nothing", None, 404)
    assert error_of(bert, "/api/figure/etc.png?text=a", None, 404)
    assert error_of(bert, "/api/figure/heatmap.pdf?text=a&layer=0&head=0", None, 404)
    assert "which" in error_of(bert, "/api/figure/heatmap.png?text=a&layer=0&head=0&which=2",
                               None, 400)
    # the server keeps serving
    assert bert.json("/api/info")[0] == 200
    analyze(bert)


def test_empty_text_refused_as_by_the_cli(bert, tmp_path):
    # the command line refuses an empty text; the viewer did analyse it as [CLS] [SEP]
    p = subprocess.run([ATTNSCOPE, "topo", "--model", BERT, "--text", "", "--layer", "0", "--head",
                        "0", "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert p.returncode == 2 and "empty" in p.stderr, p.stderr
    base = {"text": "", "layer": 0, "head": 0, "threshold": 0.3}
    for path in ("/api/analyze", "/api/overview", "/api/figure/heatmap.png"):
        msg = error_of(bert, path, base, 400)
        assert "'text' is empty" in msg, (path, msg)
    for q in ("/api/overview?text=", "/api/figure/heatmap.png?text=&layer=0&head=0"):
        assert "'text' is empty" in error_of(bert, q, None, 400), q
    # an empty second text is no second text (as before), not an error
    assert len(analyze(bert, text2="")["texts"]) == 1


def test_huge_body_refused_without_reading(bert):
    s = socket.create_connection(("127.0.0.1", bert.port), timeout=30)
    s.sendall(b"POST /api/analyze HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
              b"Content-Type: application/json\r\nContent-Length: 1000000000\r\n\r\n{" % bert.port)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    assert data.startswith(b"HTTP/1.1 413")
    assert bert.json("/api/info")[0] == 200


def raw_exchange(srv, data, timeout=10):
    """Sends bytes as they are; returns (status line, body) of the answer."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=timeout)
    s.sendall(data)
    got = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        got += chunk
        head, _, body = got.partition(b"\r\n\r\n")
        if b"Content-Length:" in head:
            n = int(head.split(b"Content-Length:")[1].split(b"\r\n")[0])
            if len(body) >= n:
                break
    s.close()
    head, _, body = got.partition(b"\r\n\r\n")
    return head.split(b"\r\n")[0].decode(), body


def test_host_and_origin_checked(bert):
    """DNS rebinding and cross-site requests: a Host that is not this server, or an Origin
    naming another site, gets 403 before anything runs; the server's own names pass."""
    p = bert.port
    for host in (b"evil.example.com", b"evil.example.com:%d" % p, b"127.0.0.1:1", b"x",
                 b"localhost.evil.com:%d" % p, b"[::1]:1"):
        status, body = raw_exchange(bert, b"GET /api/info HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
        assert status.startswith("HTTP/1.1 403"), (host, status)
        assert "Host" in json.loads(body)["error"]
        assert b"fixtures" not in body  # the model's path is not given away
    for host in (b"127.0.0.1:%d" % p, b"localhost:%d" % p, b"LOCALHOST", b"[::1]:%d" % p):
        status, _ = raw_exchange(bert, b"GET /api/info HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
        assert status.startswith("HTTP/1.1 200"), (host, status)
    status, _ = raw_exchange(bert, b"GET /api/info HTTP/1.1\r\n\r\n")
    assert status.startswith("HTTP/1.1 400")
    for origin in (b"http://evil.example.com", b"null", b"http://127.0.0.1:1",
                   b"file://", b"http://localhost.evil.com:%d" % p):
        status, body = raw_exchange(bert, b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                          b"Origin: %s\r\n\r\n" % (p, origin))
        assert status.startswith("HTTP/1.1 403"), (origin, status)
        assert "Origin" in json.loads(body)["error"]
    status, _ = raw_exchange(bert, b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                   b"Origin: http://127.0.0.1:%d\r\n\r\n" % (p, p))
    assert status.startswith("HTTP/1.1 200")


def test_allow_host():
    srv = Server(BERT, "--allow-host", "viewer.lab.example,other.example:8000")
    try:
        for host, want in ((b"viewer.lab.example", "200"), (b"viewer.lab.example:%d" % srv.port,
                           "200"), (b"other.example:8000", "200"), (b"other.example:9", "403"),
                           (b"evil.example", "403")):
            status, _ = raw_exchange(srv, b"GET /api/info HTTP/1.1\r\nHost: %s\r\n\r\n" % host)
            assert status.split()[1] == want, (host, status)
        assert srv.stop()[0] == 0
    finally:
        srv.kill()


def test_post_needs_json_content_type(bert):
    body = json.dumps({"text": TEXT, "layer": 0, "head": 0}).encode()
    for ctype in (b"text/plain", b"application/x-www-form-urlencoded", b"application/jsonx"):
        status, err = raw_exchange(bert, b"POST /api/analyze HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                         b"Content-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
                                   % (bert.port, ctype, len(body), body))
        assert status.startswith("HTTP/1.1 415"), (ctype, status)
        assert "application/json" in json.loads(err)["error"]
    status, _ = raw_exchange(bert, b"POST /api/analyze HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                   b"Content-Type: application/json; charset=utf-8\r\n"
                                   b"Content-Length: %d\r\n\r\n%s" % (bert.port, len(body), body))
    assert status.startswith("HTTP/1.1 200")


def test_nul_escape_and_url_refused(bert):
    # an escaped NUL would have cut the text at "the cat"
    msg = error_of(bert, "/api/analyze", json.dumps({"text": "the cat\u0000 sat", "layer": 0,
                                                     "head": 0}).encode(), 400)
    assert "NUL" in msg
    # an escaped backslash before "u0000" is text, not a NUL
    assert bert.json("/api/analyze", {"text": "a\\u0000b", "layer": 0, "head": 0})[0] == 200
    for path in ("/index.html%00.js", "/%00", "/api/info%00"):
        status, _ = raw_get(bert, path)
        assert status == 404, path


def test_honest_size_message():
    srv = Server(BERT, "--max-body", str(32 << 20))
    try:
        body = b"{" + b" " * (20 << 20) + b"}"
        status, err = raw_exchange(srv, b"POST /api/analyze HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                        b"Content-Type: application/json\r\nContent-Length: %d"
                                        b"\r\n\r\n" % (srv.port, len(body)) + body, timeout=60)
        # read and parsed (an empty object: no text), not "too large" (there is no hidden cap)
        assert status.startswith("HTTP/1.1 400"), status
        assert "'text' is required" in json.loads(err)["error"]
        big = (33 << 20)
        status, err = raw_exchange(srv, b"POST /api/analyze HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                                        b"Content-Type: application/json\r\nContent-Length: %d"
                                        b"\r\n\r\n{" % (srv.port, big))
        assert status.startswith("HTTP/1.1 413")
        assert f"({big} bytes) is larger than {32 << 20} bytes" in json.loads(err)["error"]
        assert srv.stop()[0] == 0
    finally:
        srv.kill()


def test_idle_connections_do_not_starve_others(bert):
    """Slowloris, scaled down: 150 connections (from three loopback addresses, 50 each: under
    the per-address cap) that send half a request and then nothing wait in the gate, but every
    normal request is still answered at once."""
    idle = []
    try:
        for k in range(150):
            s = socket.create_connection(("127.0.0.1", bert.port), timeout=10,
                                         source_address=("127.0.0.%d" % (2 + k % 3), 0))
            s.sendall(b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            idle.append(s)
        t0 = time.monotonic()
        for _ in range(20):
            assert bert.json("/api/info")[0] == 200
        assert time.monotonic() - t0 < 10
    finally:
        for s in idle:
            s.close()


def test_concurrent_requests(bert):
    jobs = [(l, h, text) for l in range(2) for h in range(4)
            for text in (TEXT, TEXT2, "concurrent text %d" % (l * 4 + h))]
    sequential = {}
    for l, h, text in jobs[:6]:
        sequential[(l, h, text)] = analyze(bert, layer=l, head=h, text=text)["texts"][0]

    def one(job):
        l, h, text = job
        return job, analyze(bert, layer=l, head=h, text=text)["texts"][0]
    with concurrent.futures.ThreadPoolExecutor(12) as ex:
        results = list(ex.map(one, jobs * 2))
    assert len(results) == 2 * len(jobs)
    for job, t in results:
        if job in sequential:
            assert t == sequential[job]
        assert t["tokens"][0] == "[CLS]"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_clean_shutdown(sig):
    srv = Server(BERT)
    try:
        assert srv.json("/api/info")[0] == 200
        analyze(srv)
        code, err = srv.stop(sig)
        assert code == 0, err
        assert "stopped" in err
    finally:
        srv.kill()


def test_cli_errors(tmp_path):
    p = subprocess.run([ATTNSCOPE, "serve"], capture_output=True, text=True)
    assert p.returncode == 2 and "--model" in p.stderr
    p = subprocess.run([ATTNSCOPE, "serve", "--model", str(tmp_path / "nope"), "--port", "0"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr
    p = subprocess.run([ATTNSCOPE, "serve", "--model", BERT, "--host", "localhost:80",
                        "--port", "0"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "host" in p.stderr
    p = subprocess.run([ATTNSCOPE, "serve", "--model", BERT, "--web", str(tmp_path),
                        "--port", "0"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "index.html" in p.stderr


# ---- a vision model: images instead of texts, and the sphere graph of `vision --sphere`

VIT = os.path.join(MODELS, "vit")
IMAGES = [os.path.join(VIT, "expected", f"image{i}.png") for i in range(2)]


def b64(path):
    import base64
    return base64.b64encode(open(path, "rb").read()).decode()


@pytest.fixture(scope="module")
def vit():
    if not os.path.isfile(os.path.join(VIT, "model.safetensors")):
        pytest.skip("ViT fixture missing")
    srv = Server(VIT, "--max-image", "200000")
    try:
        yield srv
        code, err = srv.stop()
        assert code == 0, err
    finally:
        srv.kill()


def test_vit_info(vit):
    status, doc = vit.json("/api/info")
    assert status == 200
    m = doc["model"]
    assert m["input"] == "image" and m["grid"] == [4, 4] and m["image_size"] == 32
    assert doc["max_image"] == 200000 and doc["max_body"] >= 200000 * 4 // 3


@pytest.mark.parametrize("layer,head", [(0, 1), (1, 2)])
def test_vit_analyze_equals_cli_topo_of_the_attention(vit, tmp_path, layer, head):
    """The viewer's head analysis of an image is `topo` on the attention that `attention
    --image` writes: tokens [CLS], p(r,c); the same JS-distance matrix and diagrams."""
    status, doc = vit.json("/api/analyze", {"image": b64(IMAGES[0]), "layer": layer, "head": head})
    assert status == 200, doc
    t = doc["texts"][0]
    assert t["tokens"] == ["[CLS]"] + [f"p({r},{c})" for r in range(4) for c in range(4)]
    att = tmp_path / "att.npy"
    cli("attention", "--model", VIT, "--image", IMAGES[0], "--npy", str(att))
    a = np.load(att)
    np.testing.assert_array_equal(np.array(t["attention"], dtype=np.float32), a[layer, head])
    cli("topo", "--attention", str(att), "--layer", str(layer), "--head", str(head), "--dim", "1",
        "--out", str(tmp_path / "o"))
    np.testing.assert_array_equal(np.array(t["matrix"]), np.load(tmp_path / "o" / "js.npy"))
    ref = json.load(open(tmp_path / "o" / "result.json"))
    for ours, theirs in zip(t["diagrams"]["dims"], ref["diagrams"]["dims"]):
        assert sorted(pairs(ours)) == sorted(pairs(theirs))


@pytest.mark.parametrize("layer,head,edges", [(1, 2, None), (0, 3, 5)])
def test_sphere_equals_cli_vision_sphere(vit, tmp_path, layer, head, edges):
    body = {"image": b64(IMAGES[1]), "layer": layer, "head": head}
    args = ["vision", "--model", VIT, "--image", IMAGES[1], "--layer", str(layer), "--head",
            str(head), "--sphere", "--out", str(tmp_path)]
    if edges:
        body["edges"] = edges
        args += ["--sphere-edges", str(edges)]
    status, doc = vit.json("/api/sphere", body)
    assert status == 200, doc
    cli(*args)
    ref = json.load(open(tmp_path / "vision.json"))
    ref["images"][0].pop("image")
    assert doc["images"][0].pop("image") == "image"
    for key in ref:  # every field of vision.json, exactly (numbers read back bit for bit)
        assert doc[key] == ref[key], key
    n = len(doc["images"][0]["sphere"]["points"])
    assert len(doc["images"][0]["sphere"]["edges"]) == (edges or 2 * n)
    assert doc["patches"][0] == "p(0,0)" and len(doc["patches"]) == n
    # asked again: the kept answer, the same numbers
    again = vit.json("/api/sphere", body)[1]
    assert again["images"][0].pop("image") == "image" and again["images"] == doc["images"]


def test_sphere_figure(vit):
    status, headers, data = vit.request("/api/figure/sphere.png",
                                        {"image": b64(IMAGES[0]), "layer": 0, "head": 0})
    assert status == 200 and headers["Content-Type"] == "image/png" and data[:4] == b"\x89PNG"
    status, headers, data = vit.request("/api/figure/sphere.svg",
                                        {"image": b64(IMAGES[0]), "layer": 0, "head": 0})
    assert status == 200 and b"<svg" in data[:400]
    for kind in ("heatmap", "skeleton", "overview"):
        status, headers, data = vit.request(f"/api/figure/{kind}.png",
                                            {"image": b64(IMAGES[0]), "layer": 0, "head": 0})
        assert status == 200 and data[:4] == b"\x89PNG", kind


def test_vit_overview(vit):
    status, doc = vit.json("/api/overview", {"image": b64(IMAGES[0])})
    assert status == 200 and doc["layers"] == 2 and doc["heads"] == 4
    assert doc["tokens"][0] == "[CLS]" and doc["h1_persistence"] is not None


def test_bad_images_refused_with_a_message(vit, tmp_path):
    import base64
    good = b64(IMAGES[0])
    cases = [
        ({"layer": 0, "head": 0}, "'image' is required"),
        ({"image": 3, "layer": 0, "head": 0}, "'image' must be a string"),
        ({"image": "", "layer": 0, "head": 0}, "'image' is empty"),
        ({"image": "iVBO*w0K", "layer": 0, "head": 0}, "not base64"),
        ({"image": "iVBOR", "layer": 0, "head": 0}, "not base64"),
        ({"image": base64.b64encode(b"not an image at all").decode(), "layer": 0, "head": 0},
         "not a readable image"),
        # a PNG cut short
        ({"image": base64.b64encode(open(IMAGES[0], "rb").read()[:60]).decode(), "layer": 0,
          "head": 0}, "image"),
        ({"image": good, "text": "a text", "layer": 0, "head": 0}, "vision model"),
        ({"image": good, "layer": 2, "head": 0}, "'layer' must be an integer 0..1"),
        ({"image": good, "layer": 0, "head": 0, "edges": -1}, "'edges'"),
        ({"image": base64.b64encode(b"\x89PNG" + b"\0" * 200001).decode(), "layer": 0, "head": 0},
         "at most 200000"),
    ]
    for path in ("/api/sphere", "/api/analyze"):
        for body, words in cases:
            msg = error_of(vit, path, body, 400)
            assert words in msg, (path, body.get("image", "")[:20], msg)
    # a body over the limit is refused before it is read
    huge = {"image": "A" * (200000 * 4 // 3 + 70000), "layer": 0, "head": 0}
    assert vit.request("/api/sphere", huge)[0] == 413
    # GET is not enough for the sphere (a POST with the image)
    assert error_of(vit, "/api/sphere", None, 405, method="GET")
    # the server keeps working
    assert vit.json("/api/sphere", {"image": good, "layer": 0, "head": 0})[0] == 200


def test_text_endpoints_refuse_images_and_vice_versa(bert, vit):
    assert "text model" in error_of(bert, "/api/analyze",
                                    {"image": "AAAA", "layer": 0, "head": 0}, 400)
    assert "vision model" in error_of(vit, "/api/analyze",
                                      {"text": TEXT, "layer": 0, "head": 0}, 400)
    assert "vision model" in error_of(bert, "/api/sphere", {"text": TEXT, "layer": 0, "head": 0},
                                      404)
    assert "two models" in error_of(bert, "/api/compare", {"text": TEXT}, 404)


# ---- two models: every head of A against every head of B, as `compare --model A --model B`

@pytest.fixture(scope="module")
def pair():
    srv = Server(BERT, "--model", GPT2, "--queue", "64")
    try:
        yield srv
        code, err = srv.stop()
        assert code == 0, err
    finally:
        srv.kill()


def test_pair_info(pair):
    status, doc = pair.json("/api/info")
    assert [m["type"] for m in doc["models"]] == ["bert", "gpt2"]
    assert doc["model"]["type"] == "bert"


@pytest.mark.parametrize("texts,dim", [((TEXT,), 1), ((TEXT, TEXT2), 2)])
def test_compare_equals_cli_compare_models(pair, tmp_path, texts, dim):
    body = {"text": texts[0], "max_dim": dim}
    args = ["compare", "--model", BERT, "--model", GPT2, "--text", texts[0], "--dim", str(dim),
            "--json", str(tmp_path / "c.json")]
    if len(texts) == 2:
        body["text2"] = texts[1]
        args[7:7] = ["--text", texts[1]]
    status, doc = pair.json("/api/compare", body)
    assert status == 200, doc
    cli(*args)
    ref = json.load(open(tmp_path / "c.json"))
    for key in ref:  # every field of compare.json, exactly
        assert doc[key] == ref[key], key
    assert len(doc["bottleneck"]["0"]) == 8 and len(doc["bottleneck"]["0"][0]) == 8
    # asked again: the kept answer
    again = pair.json("/api/compare", body)[1]
    assert again["bottleneck"] == doc["bottleneck"] and again["ms"] == doc["ms"]


def test_pair_heads_by_model(pair, tmp_path):
    """model 2 selects model B for the head views; its attention is B's."""
    status, doc = pair.json("/api/analyze", {"text": TEXT, "layer": 1, "head": 3, "model": 2})
    assert status == 200, doc
    assert doc["model"]["type"] == "gpt2"
    att = tmp_path / "b.npy"
    cli("attention", "--model", GPT2, "--text", TEXT, "--npy", str(att))
    np.testing.assert_array_equal(np.array(doc["texts"][0]["attention"], dtype=np.float32),
                                  np.load(att)[1, 3])
    a = pair.json("/api/analyze", {"text": TEXT, "layer": 1, "head": 3, "model": 1})[1]
    assert a["model"]["type"] == "bert" and a["texts"][0]["tokens"][0] == "[CLS]"
    status, headers, data = pair.request("/api/figure/heatmap.png",
                                         {"text": TEXT, "layer": 0, "head": 0, "model": 2})
    assert status == 200 and data[:4] == b"\x89PNG"


def test_pair_bad_requests(pair):
    for body, words in [({"text": TEXT, "model": 3}, "'model' must be an integer 1..2"),
                        ({"text": TEXT, "model": 0}, "'model'"),
                        ({"text": ""}, "'text' is empty"),
                        ({}, "'text' is required"),
                        ({"text": TEXT, "max_dim": 3}, "'max_dim'"),
                        ({"text": "word " * 200}, "at most")]:
        msg = error_of(pair, "/api/compare", body, 400)
        assert words in msg, (body, msg)
    assert error_of(pair, "/api/compare", None, 405, method="GET")


def test_pair_compare_is_heavy_work():
    """/api/compare goes through the queue of heavy work: with no queue and one slot busy it is
    refused with 503 and Retry-After, and the Host check applies to it."""
    with serving(BERT, "--model", GPT2, "--queue", "0", "--threads", "1") as srv:
        import threading
        refused = []
        # two requests started together (texts never asked before, so neither is a kept answer)
        # until one finds the only slot taken; every answer is 200 or 503 with Retry-After
        for round_ in range(40):
            start = threading.Barrier(2)
            answers = []

            def ask(k):
                text = " ".join(["the cat sat on the mat"] * 5) + f" {round_ * 2 + k}"
                start.wait()
                answers.append(srv.request("/api/compare", {"text": text}))

            threads = [threading.Thread(target=ask, args=(k,)) for k in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(a[0] for a in answers) in ([200, 200], [200, 503], [503, 503])
            refused += [a[1] for a in answers if a[0] == 503]
            if refused:
                break
        assert refused, "two concurrent heavy requests never met with one slot and no queue"
        assert all(h.get("Retry-After") == "1" for h in refused)
        req = urllib_request(srv, "/api/compare", {"text": TEXT}, host="evil.example")
        assert req == 403


def urllib_request(srv, path, body, host):
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.request("POST", path, json.dumps(body), {"Host": host, "Content-Type": "application/json"})
    status = conn.getresponse().status
    conn.close()
    return status


def test_serve_two_models_cli_errors(tmp_path):
    p = subprocess.run([ATTNSCOPE, "serve", "--model", BERT, "--model", VIT, "--port", "0"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "vision model" in p.stderr
    p = subprocess.run([ATTNSCOPE, "serve", "--model", BERT, "--model", GPT2, "--model", BERT,
                        "--port", "0"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and "at most two" in p.stderr


def test_large_image_arrives_whole(tmp_path):
    """An image larger than the socket's receive buffer (here a 300 KB PNG, 400 KB of base64) is
    read whole, not refused as a request cut short; a larger one than --max-image gets 400."""
    if not os.path.isfile(os.path.join(VIT, "model.safetensors")):
        pytest.skip("ViT fixture missing")
    from PIL import Image
    rng = np.random.default_rng(7)
    big = tmp_path / "noise.png"
    Image.fromarray(rng.integers(0, 256, (320, 320, 3), dtype=np.uint8)).save(big)
    assert big.stat().st_size > 250000
    with serving(VIT) as srv:
        status, doc = srv.json("/api/analyze", {"image": b64(str(big)), "layer": 0, "head": 0})
        assert status == 200, doc
        assert len(doc["texts"][0]["tokens"]) == 17
    with serving(VIT, "--max-image", "100000") as srv:
        # far over: the body itself is too large, refused before it is read
        msg = error_of(srv, "/api/analyze", {"image": b64(str(big)), "layer": 0, "head": 0}, 413)
        assert "larger than" in msg
