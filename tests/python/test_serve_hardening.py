"""attnscope serve against hostile and heavy clients (issue 16): malformed request lines, slow
clients (slowloris), too many connections from one address, the URL token, the bounded queue of
heavy work (503 + Retry-After), work of clients that have gone, and SIGTERM with heavy work in
flight. Loopback only; every server is stopped by the test; every wait is bounded."""
import concurrent.futures
import json
import os
import signal
import socket
import sys
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from serve_helper import ATTNSCOPE, ROOT, Server, serving  # noqa: E402
from minilm_dir import minilm_dir  # noqa: E402

BERT = os.path.join(ROOT, "tests", "fixtures", "models", "bert")
WORDS = ("attention heads follow syntax while others track position and some simply look at the "
         "separator token when nothing better is available").split()


def long_text(n_words, salt):
    """A text of about n_words tokens, different for each salt."""
    return " ".join(WORDS[(i * 7 + salt) % len(WORDS)] for i in range(n_words)) + " %d" % salt


def read_answer(s, timeout):
    """(status line, headers, body, seconds) of what s receives until the server closes."""
    s.settimeout(timeout)
    t0 = time.monotonic()
    got = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
    except (socket.timeout, ConnectionResetError):
        pass
    head, _, body = got.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    return lines[0], lines[1:], body, time.monotonic() - t0


def send(srv, data, source="127.0.0.1"):
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=10, source_address=(source, 0))
    s.sendall(data)
    return s


@pytest.fixture(scope="module")
def bert():
    srv = Server(BERT, "--request-timeout", "2", "--max-client-conns", "5")
    try:
        yield srv
        code, err = srv.stop()
        assert code == 0, err
    finally:
        srv.kill()


@pytest.mark.parametrize("line", [b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"\x00\x01\x02\r\n\r\n",
                                  b"\x16\x03\x01\x02\x00\x01\x00", b"get / HTTP/1.1\r\n\r\n",
                                  b"GET / HTTP/2.0\r\n\r\n", b"GET /a b HTTP/1.1\r\n\r\n"])
def test_malformed_request_line_answered_400_at_once(bert, line):
    """Before: MHD closed some without an answer and held others (control bytes, a TLS
    hello) until its 60 s timeout."""
    s = send(bert, line)
    status, _, body, secs = read_answer(s, 5)
    s.close()
    assert status.startswith("HTTP/1.1 400"), (line, status)
    assert "request line" in json.loads(body)["error"]
    assert secs < 1, secs


def test_slow_request_gets_408(bert):
    """Slowloris: a client sending a header line every 0.5 s is cut off at the request
    deadline (2 s here) however active it keeps the connection; before, only idle time
    counted."""
    s = send(bert, b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    t0 = time.monotonic()
    closed = False
    for i in range(12):
        time.sleep(0.5)
        try:
            s.sendall(b"X-Slow-%d: 1\r\n" % i)
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
    status, _, _, _ = read_answer(s, 1) if not closed else ("closed", None, None, 0)
    s.close()
    assert closed or status.startswith("HTTP/1.1 408"), status
    assert time.monotonic() - t0 < 5
    assert bert.json("/api/info")[0] == 200


def test_connections_per_address_capped(bert):
    """One address may hold at most --max-client-conns (5 here) unfinished requests; the next
    gets 429, and other addresses are served meanwhile."""
    held = [send(bert, b"GET /api/info HTTP/1.1\r\n", "127.0.0.2") for _ in range(5)]
    try:
        time.sleep(0.2)
        s = send(bert, b"GET /api/info HTTP/1.1\r\n", "127.0.0.2")
        status, _, body, _ = read_answer(s, 5)
        s.close()
        assert status.startswith("HTTP/1.1 429"), status
        assert bert.json("/api/info")[0] == 200
    finally:
        for s in held:
            s.close()


def test_token_required_when_given():
    with serving(BERT, "--token", "s3cret-Token_1") as srv:
        assert srv.token == "s3cret-Token_1"
        status, _, body = srv.request("/api/info")
        assert status == 403 and "token" in json.loads(body)["error"]
        assert srv.request("/?token=wrong")[0] == 403
        assert srv.request("/api/info?token=s3cret-Token_") [0] == 403
        status, headers, _ = srv.request("/?token=s3cret-Token_1")
        assert status == 200
        cookie = headers["Set-Cookie"]
        assert cookie.startswith("attnscope_token=s3cret-Token_1;") and "HttpOnly" in cookie
        for hdr in (b"Cookie: attnscope_token=s3cret-Token_1",
                    b"Authorization: token s3cret-Token_1"):
            s = send(srv, b"GET /api/info HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n\r\n"
                     % (srv.port, hdr))
            status, _, _, _ = read_answer(s, 5)
            s.close()
            assert status.startswith("HTTP/1.1 200"), (hdr, status)
    import subprocess  # a bad token is refused at start
    r = subprocess.run([ATTNSCOPE, "serve", "--model", BERT, "--port", "0", "--token", "a b"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "token" in r.stderr


def test_token_random_beyond_loopback():
    """Bound beyond loopback without --token, the server makes a random token (48 hex digits,
    a new one each start) and prints it in its URL; requests without it get 403."""
    tokens = []
    for _ in range(2):
        with serving(BERT, "--host", "0.0.0.0") as srv:
            assert len(srv.token) == 48 and all(c in "0123456789abcdef" for c in srv.token), srv.token
            status, _, body = srv.request("/api/info")
            assert status == 403 and "token" in json.loads(body)["error"]
            assert srv.request("/api/info?token=" + srv.token[:-1])[0] == 403
            assert srv.request("/api/info?token=" + srv.token)[0] == 200
            tokens.append(srv.token)
    assert tokens[0] != tokens[1]
    with serving(BERT) as srv:  # loopback: no token needed, none printed
        assert srv.token == "" and srv.request("/api/info")[0] == 200


MINILM = minilm_dir()
needs_minilm = pytest.mark.skipif(MINILM is None, reason="all-MiniLM-L6-v2 missing (tools/deps.sh)")


# under AddressSanitizer at -O0 (make test-asan) persistence is ~30 times slower
SANITIZED = b"__asan_init" in open(ATTNSCOPE, "rb").read()


def heavy(srv, salt, timeout=600):
    """A request that takes seconds: ~300 tokens (150 under the sanitizers), persistence up to
    H2."""
    return srv.request("/api/analyze", {"text": long_text(150 if SANITIZED else 300, salt),
                                        "layer": 0, "head": 0, "max_dim": 2}, timeout=timeout)


def post_raw(srv, body):
    data = json.dumps(body).encode()
    return send(srv, b"POST /api/analyze HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (srv.port, len(data), data))


@needs_minilm
def test_queue_full_gets_503_and_cached_stays_fast():
    """One work slot and a queue of one: of four heavy requests at once, one runs, one waits and
    two get 503 with Retry-After at once; a cached analysis is answered in under 100 ms all the
    while (90% of them; all under 0.5 s on a loaded machine) (before: every request ran at once, however many)."""
    with serving(MINILM, "--threads", "1", "--queue", "1") as srv:
        small = {"text": "the cat sat on the mat", "layer": 1, "head": 2}
        assert srv.request("/api/analyze", small)[0] == 200
        with concurrent.futures.ThreadPoolExecutor(4) as ex:
            futures = []
            for k in range(4):
                futures.append(ex.submit(heavy, srv, k))
                time.sleep(0.3)
            cached = []
            while not all(f.done() for f in futures):
                t0 = time.monotonic()
                assert srv.request("/api/analyze", small)[0] == 200
                cached.append(time.monotonic() - t0)
                time.sleep(0.1)
            answers = [f.result() for f in futures]
        codes = sorted(a[0] for a in answers)
        assert codes == [200, 200, 503, 503], codes
        for status, headers, body in answers:
            if status == 503:
                assert headers["Retry-After"] == "1"
                assert "busy" in json.loads(body)["error"]
        # < 100 ms; on a shared, loaded machine the scheduler alone can stall a request, so
        # the strict maximum is bench/serve_load's figure and here 90% and a bound on the rest
        cached.sort()
        assert cached[int(0.9 * (len(cached) - 1))] < 0.1 and cached[-1] < 0.5, cached


@needs_minilm
def test_work_of_a_gone_client_is_dropped():
    """A heavy request whose client closes while it waits in the queue never runs: its text's
    forward pass is not in the cache afterwards (before: it ran to the end)."""
    with serving(MINILM, "--threads", "1") as srv:
        # the one slot stays busy for seconds (450 tokens to dimension 2), however fast the machine
        running = post_raw(srv, {"text": long_text(450, 1), "layer": 0, "head": 0, "max_dim": 2})
        time.sleep(0.5)
        gone_text = long_text(60, 2)
        gone = post_raw(srv, {"text": gone_text, "layer": 0, "head": 0})
        time.sleep(0.3)
        gone.close()
        status, _, _, seconds = read_answer(running, 120)
        running.close()
        assert status.startswith("HTTP/1.1 200"), status
        assert seconds > 0.3, "the slot was free before the client went: nothing was tested"
        time.sleep(0.5)
        status, _, body = srv.request("/api/analyze", {"text": gone_text, "layer": 0, "head": 0})
        assert status == 200
        assert json.loads(body)["timing"]["cached"] is False


@needs_minilm
def test_sigterm_with_heavy_work_exits_within_a_second():
    srv = Server(MINILM)
    try:
        socks = [post_raw(srv, {"text": long_text(400, k), "layer": 0, "head": 0, "max_dim": 2})
                 for k in range(3)]
        time.sleep(1.0)  # forward passes done, persistence running
        t0 = time.monotonic()
        code, err = srv.stop(signal.SIGTERM, timeout=30)
        secs = time.monotonic() - t0
        for s in socks:
            s.close()
        assert code == 0, err
        assert "stopped" in err
        assert secs < 1.0, secs
    finally:
        srv.kill()


def timed_analysis(srv, text, head, max_dim):
    t0 = time.monotonic()
    status, _, body = srv.request("/api/analyze", {"text": text, "layer": 0, "head": head,
                                                   "max_dim": max_dim}, timeout=600)
    assert status == 200, body
    return time.monotonic() - t0


@needs_minilm
def test_persistence_of_a_gone_client_stops_at_once():
    """A running H2 computation whose client closes stops within milliseconds and frees its
    work slot: the next request that needs the slot is answered at once (before: it waited
    for the whole computation, whose answer was thrown away)."""
    with serving(MINILM, "--threads", "1") as srv:
        text = long_text(150 if SANITIZED else 280, 7)
        timed_analysis(srv, text, 0, 0)  # the forward pass, cached: what follows is persistence
        full = timed_analysis(srv, text, 1, 2)  # how long one head's H2 takes here
        assert full > 1.0, "persistence too fast on this machine to test its cancellation"
        running = post_raw(srv, {"text": text, "layer": 0, "head": 2, "max_dim": 2})
        time.sleep(0.3)
        running.close()
        t0 = time.monotonic()
        timed_analysis(srv, text, 3, 0)  # needs the slot
        waited = time.monotonic() - t0
        assert waited < min(1.0, full / 2), (waited, full)


@needs_minilm
def test_sigterm_stops_running_persistence_cleanly():
    """SIGTERM while H2 computations run (their forward passes cached): the persistence stops at
    its next check, so the server stops cleanly, without abandoning work, in well under a
    second (before: the work ran on and the process left it after 0.25 s)."""
    srv = Server(MINILM)
    try:
        texts = [long_text(150 if SANITIZED else 280, 20 + k) for k in range(2)]
        for t in texts:
            timed_analysis(srv, t, 0, 0)
        socks = [post_raw(srv, {"text": t, "layer": 0, "head": 0, "max_dim": 2}) for t in texts]
        time.sleep(0.5)
        t0 = time.monotonic()
        code, err = srv.stop(signal.SIGTERM, timeout=30)
        secs = time.monotonic() - t0
        answers = [read_answer(s, 5)[0] for s in socks]
        for s in socks:
            s.close()
        assert code == 0, err
        assert "stopped (SIGTERM)" in err and "abandoned" not in err, err
        assert secs < 1.0, secs
        # the work was running: answered 503 as the server went, or closed unanswered (a
        # computation that had ended before the signal is answered 200)
        assert any(a == "" or a.startswith("HTTP/1.1 503") for a in answers), answers
    finally:
        srv.kill()


SPM = os.path.join(ROOT, "tests", "fixtures", "models", "llama_spm", "llama-spm.gguf")


def test_work_memory_refuses_a_head_too_large_with_its_estimate():
    """--work-memory bounds one head's persistence: a 903-token head's H2, estimated at ~32 MB,
    gets 400 naming the estimate under --work-memory 16 (before: every request ran whatever it
    needed), while a short text's H2 still runs, and the head runs under --work-memory 64"""
    big = {"text": long_text(300, 5), "layer": 0, "head": 0, "max_dim": 2}
    with serving(SPM, "--work-memory", "16") as srv:
        status, _, data = srv.request("/api/analyze", big, timeout=600)
        assert status == 400, (status, data[:300])
        msg = json.loads(data)["error"]
        assert "903 points to dimension 2" in msg and "need about" in msg, msg
        assert "0.0156 GB allowed" in msg, msg
        small = {"text": "the cat sat on the mat", "layer": 0, "head": 0, "max_dim": 2}
        assert srv.request("/api/analyze", small)[0] == 200
    with serving(SPM, "--work-memory", "64") as srv:
        assert srv.request("/api/analyze", big, timeout=600)[0] == 200
