"""Model download by hub name from $HF_ENDPOINT: a small HTTP server on 127.0.0.1 serves the tiny
BERT fixture as <repo>/resolve/<revision>/<file> (404 for what it lacks, X-Repo-Commit on every
answer); `attnscope attention --model org/tiny-bert` fetches it into the HuggingFace cache
layout under $HF_HOME, and later runs use the cache without the server."""
import http.server
import os
import subprocess
import threading

import numpy as np
import pytest

ATTNSCOPE = os.environ.get("ATTNSCOPE", "build/attnscope")
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "models")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


class Hub(http.server.BaseHTTPRequestHandler):
    repos = {"org/tiny-bert": os.path.join(ROOT, "bert"),
             "tiny-bin": os.path.join(ROOT, "bert_bin")}
    seen = []

    def do_GET(self):
        Hub.seen.append(self.path)
        parts = self.path.lstrip("/").split("/resolve/")
        if len(parts) == 2 and parts[0] in self.repos:
            rev, _, name = parts[1].partition("/")
            path = os.path.join(self.repos[parts[0]], name)
            if rev == "main" and "/" not in name and os.path.isfile(path):
                data = open(path, "rb").read()
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
        self.send_response(404)
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def hub():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    Hub.seen = []
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def run(env, model, out):
    return subprocess.run([ATTNSCOPE, "attention", "--model", model, "--ids", "2,21,42,3",
                           "--npy", str(out)], capture_output=True, text=True, env=env)


def test_download_into_cache(tmp_path, hub):
    env = dict(os.environ, HF_ENDPOINT=hub, HF_HOME=str(tmp_path / "hf"))
    env.pop("HF_HUB_CACHE", None)
    env.pop("HF_HUB_OFFLINE", None)
    p = run(env, "org/tiny-bert", tmp_path / "a.npy")
    assert p.returncode == 0, p.stderr
    snap = tmp_path / "hf" / "hub" / "models--org--tiny-bert" / "snapshots" / COMMIT
    assert (snap / "config.json").is_file() and (snap / "model.safetensors").is_file()
    assert (snap / "vocab.txt").is_file()
    assert (tmp_path / "hf" / "hub" / "models--org--tiny-bert" / "refs" / "main").read_text() == COMMIT
    assert not [f for f in os.listdir(snap) if f.endswith(".part")]
    # same attention as the local directory
    q = run(env, os.path.join(ROOT, "bert"), tmp_path / "b.npy")
    assert q.returncode == 0, q.stderr
    assert np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))
    # from the cache, no request
    n = len(Hub.seen)
    env["HF_HUB_OFFLINE"] = "1"
    p = run(env, "org/tiny-bert", tmp_path / "c.npy")
    assert p.returncode == 0, p.stderr
    assert len(Hub.seen) == n


def test_download_falls_back_to_pytorch_bin(tmp_path, hub):
    env = dict(os.environ, HF_ENDPOINT=hub, HF_HOME=str(tmp_path / "hf"))
    env.pop("HF_HUB_CACHE", None)
    env.pop("HF_HUB_OFFLINE", None)
    p = run(env, "tiny-bin", tmp_path / "a.npy")
    assert p.returncode == 0, p.stderr
    assert any(s.endswith("/pytorch_model.bin") for s in Hub.seen)


def test_download_errors(tmp_path, hub):
    env = dict(os.environ, HF_ENDPOINT=hub, HF_HOME=str(tmp_path / "hf"))
    env.pop("HF_HUB_CACHE", None)
    env.pop("HF_HUB_OFFLINE", None)
    p = run(env, "org/missing", tmp_path / "a.npy")
    assert p.returncode == 2
    assert "HTTP 404" in p.stderr and "config.json" in p.stderr
    assert not (tmp_path / "a.npy").exists()
    # nothing half-downloaded is left as a snapshot
    base = tmp_path / "hf" / "hub" / "models--org--missing"
    assert not (base / "snapshots").exists() or not os.listdir(base / "snapshots")
    env["HF_HUB_OFFLINE"] = "1"
    p = run(env, "org/other", tmp_path / "a.npy")
    assert p.returncode == 2 and "HF_HUB_OFFLINE" in p.stderr
