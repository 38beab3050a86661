"""bench/serve: latency and load of `attnscope serve` (see bench/serve). Loopback only; every
loop is bounded in count or time; the server is always stopped at the end."""
import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from serve_helper import Server  # noqa: E402
from minilm_dir import minilm_dir  # noqa: E402

WORDS = ("attention heads follow syntax while others track position and some simply look at the "
         "separator token when nothing better is available in the sentence river mountain music "
         "theory quietly reads every morning bright clouds drift across distant hills").split()


def sentence(rng, n_words):
    return " ".join(rng.choice(WORDS) for _ in range(n_words)).capitalize() + "."


def post(url, body, timeout=120):
    data = json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            r.read()
            status = r.status
    except urllib.error.HTTPError as e:
        e.read()
        status = e.code
    return status, (time.perf_counter() - t0) * 1e3


def pct(a, q):
    s = sorted(a)
    return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=100)
    ap.add_argument("--model", default=None)
    ap.add_argument("--pool", type=int, default=40,
                    help="distinct texts the load clients draw from (the cache holds 16)")
    ap.add_argument("--server-threads", type=int, default=0,
                    help="attnscope serve --threads (0: its default)")
    a = ap.parse_args()
    model = a.model or minilm_dir()
    if not model:
        sys.exit("all-MiniLM-L6-v2 not found (tools/deps.sh)")
    rng = random.Random(1)
    extra = ["--threads", str(a.server_threads)] if a.server_threads else []
    srv = Server(model, *extra)
    try:
        url = srv.url + "/api/analyze"
        info = json.loads(srv.request("/api/info")[2])["model"]
        L, H = info["layers"], info["heads"]
        text1, text2 = sentence(rng, 18), sentence(rng, 16)
        base = {"text": text1, "text2": text2, "layer": 0, "head": 0, "threshold": 0.3,
                "measure": "jsd"}
        status, _ = post(url, base)
        assert status == 200, status
        n_tok = len(json.loads(srv.request("/api/analyze", base)[2])["texts"][0]["tokens"])
        name = model.rstrip("/")
        name = "all-MiniLM-L6-v2" if "minilm" in name.lower() else os.path.basename(name)
        print(f"attnscope serve, model {name} ({L} x {H} heads), "
              f"texts of ~{n_tok} tokens, two texts per request (as the page sends)")

        # slider changes: same texts, another layer / head / threshold
        slider = []
        for i in range(a.requests):
            body = dict(base, layer=rng.randrange(L), head=rng.randrange(H),
                        threshold=round(rng.uniform(0.1, 0.6), 3))
            status, ms = post(url, body)
            assert status == 200, status
            slider.append(ms)
        # new texts: every request a text not seen before (a forward pass of text 1)
        fresh = []
        for i in range(a.requests):
            body = dict(base, text=sentence(rng, rng.randint(12, 24)) + f" ({i})",
                        layer=rng.randrange(L), head=rng.randrange(H))
            status, ms = post(url, body)
            assert status == 200, status
            fresh.append(ms)
        t0 = time.perf_counter()
        status, _, _ = srv.request("/api/overview", {"text": sentence(rng, 18) + " overview"})
        overview_ms = (time.perf_counter() - t0) * 1e3
        print(f"\n{'request':<34}{'median ms':>10}{'p95 ms':>10}{'max ms':>10}")
        for name, v in (("slider change (cached forward)", slider), ("new text (forward pass)", fresh)):
            print(f"{name:<34}{statistics.median(v):>10.1f}{pct(v, 0.95):>10.1f}{max(v):>10.1f}")
        print(f"{'overview grid of a new text':<34}{overview_ms:>10.1f}")

        # load: C clients for S seconds; texts from a pool larger than the cache (16)
        pool = [sentence(rng, rng.randint(10, 30)) for _ in range(a.pool)]
        stop = time.monotonic() + a.seconds
        lock = threading.Lock()
        lat, errors, codes = [], [0], {}

        def client(seed):
            r = random.Random(seed)
            while time.monotonic() < stop:
                body = {"text": r.choice(pool), "text2": r.choice(pool), "layer": r.randrange(L),
                        "head": r.randrange(H), "threshold": round(r.uniform(0.1, 0.6), 3)}
                try:
                    status, ms = post(url, body, timeout=60)
                except Exception as e:  # a refused or reset connection is an error too
                    status, ms = type(e).__name__, 0
                with lock:
                    codes[status] = codes.get(status, 0) + 1
                    if status == 200:
                        lat.append(ms)
                    else:
                        errors[0] += 1

        rss = [(0.0, rss_mb(srv.proc.pid))]
        threads = [threading.Thread(target=client, args=(k,)) for k in range(a.clients)]
        t_start = time.monotonic()
        for t in threads:
            t.start()
        while time.monotonic() < stop:
            time.sleep(1)
            rss.append((time.monotonic() - t_start, rss_mb(srv.proc.pid)))
        for t in threads:
            t.join(timeout=120)
        elapsed = time.monotonic() - t_start
        half = [m for t, m in rss if t >= elapsed / 2]
        print(f"\n{a.clients} concurrent clients for {a.seconds:.0f} s, texts drawn from {a.pool}: "
              f"{len(lat)} requests answered "
              f"({len(lat) / elapsed:.1f}/s), {errors[0]} errors, status counts {codes}")
        if lat:
            print(f"  latency under load: median {statistics.median(lat):.1f} ms, "
                  f"p95 {pct(lat, 0.95):.1f} ms, max {max(lat):.1f} ms")
        print(f"  server RSS: before load {rss[0][1]:.1f} MB, max {max(m for _, m in rss):.1f} MB, "
              f"second half {min(half):.1f}..{max(half):.1f} MB, end {rss[-1][1]:.1f} MB")
        print("  RSS samples (MB): " + " ".join(f"{m:.0f}" for _, m in rss))
        code, err = srv.stop()
        print(f"\nSIGTERM: exit {code}")
        return 0 if errors[0] == 0 and code == 0 else 1
    finally:
        srv.kill()


if __name__ == "__main__":
    sys.exit(main())
