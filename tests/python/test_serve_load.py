"""The short version of bench/serve_load (issue 16), on all-MiniLM-L6-v2 over loopback, 8 s a
scenario: 200 slowloris connections do not disturb 20 normal clients (0 errors, p99 < 1 s for
cached analyses); 50 heavy clients get 503s beyond the queue while the server's RSS stays under
1 GiB (2 work slots + 8 queued on 2 cores; the forward-pass cache alone may hold 256 MiB) and a
cached analysis is answered in < 100 ms throughout (90% of them, all < 0.5 s: the machine may be
shared); SIGTERM with heavy work in flight exits in
< 1 s. The full 60 s version: bench/serve_load."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "bench"))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
from minilm_dir import minilm_dir  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_helper import ATTNSCOPE  # noqa: E402

pytestmark = [
    pytest.mark.skipif(minilm_dir() is None, reason="all-MiniLM-L6-v2 missing"),
    pytest.mark.skipif(b"__asan_init" in open(ATTNSCOPE, "rb").read(),
                       reason="time and memory bounds hold for the optimised build, not -O0 "
                              "under AddressSanitizer"),
]


def test_slowloris_does_not_disturb_normal_clients():
    import serve_load
    r = serve_load.run(8, which=("slowloris",))["slowloris"]
    assert r["errors"] == 0, r
    assert r["requests"] > 100, r
    assert r["p99_ms"] < 1000, r
    assert r["server_exit"] == 0


def test_heavy_clients_bounded():
    import serve_load
    r = serve_load.run(8, which=("heavy",))["heavy"]
    assert r["refused_503"] > 0, r
    assert r["answered"] > 0, r
    assert set(r["codes"]) <= {200, 503}, r
    assert r["peak_rss_mb"] < 1024, r
    # the strict < 100 ms maximum is bench/serve_load's figure: on a shared, loaded machine
    # the scheduler alone can stall one request
    assert r["probe_p90_ms"] < 100 and r["probe_max_ms"] < 500, r
    assert r["server_exit"] == 0


def test_sigterm_with_heavy_work():
    import serve_load
    r = serve_load.run(0, which=("sigterm",))["sigterm"]
    assert r["exit"] == 0 and r["seconds"] < 1, r
