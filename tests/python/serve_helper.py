"""Starts `attnscope serve` on 127.0.0.1 and a port the system chooses, for the serve tests and
bench/serve. The server is always stopped (SIGTERM, then SIGKILL after a timeout)."""
import contextlib
import json
import os
import select
import signal
import subprocess
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ATTNSCOPE = os.environ.get("ATTNSCOPE", os.path.join(ROOT, "build", "attnscope"))


class Server:
    def __init__(self, model, *extra, start_timeout=60):
        self.proc = subprocess.Popen(
            [ATTNSCOPE, "serve", "--model", model, "--port", "0", "--host", "127.0.0.1",
             "--web", os.path.join(ROOT, "web"), *extra],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + start_timeout
        line = ""
        while time.monotonic() < deadline and not line:
            ready, _, _ = select.select([self.proc.stdout], [], [], 0.5)
            if ready:
                line = self.proc.stdout.readline()
                break
            if self.proc.poll() is not None:
                break
        if "http://" not in line:
            self.kill()
            raise RuntimeError("server did not start: " + line + self.proc.stderr.read())
        url, _, self.token = line.strip().split(" on ", 1)[1].partition("?token=")
        self.url = url.rstrip("/")
        self.port = int(self.url.rsplit(":", 1)[1])

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends sig and returns (exit code, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise
        return self.proc.returncode, err

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()

    def request(self, path, body=None, method=None, timeout=120):
        """(status, headers, bytes) of a request; body: dict (sent as JSON) or bytes."""
        data = body if body is None or isinstance(body, bytes) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def json(self, path, body=None, method=None):
        status, headers, data = self.request(path, body, method)
        return status, json.loads(data)


@contextlib.contextmanager
def serving(model, *extra):
    srv = Server(model, *extra)
    try:
        yield srv
    finally:
        srv.kill()
