"""Shared fixtures of the end-to-end suite: the kiln binary under test and helpers to run it."""
import os
import subprocess

import pytest

KILN_BIN = os.environ.get("KILN_BIN") or os.path.join(
    os.environ.get("KILN_SOURCE_DIR", os.path.join(os.path.dirname(__file__), "..", "..")),
    "build", "kiln")


@pytest.fixture(scope="session")
def kiln_bin():
    assert os.access(KILN_BIN, os.X_OK), f"kiln binary not built: {KILN_BIN}"
    return KILN_BIN


def run_kiln(*args, env=None, cwd=None, timeout=60, input=None):
    """Run `kiln ARGS...` and return the CompletedProcess (text mode)."""
    return subprocess.run([KILN_BIN, *args], env=env, cwd=cwd, timeout=timeout, input=input,
                          capture_output=True, text=True)


# ---- a running `kiln serve` -------------------------------------------------------------------
import re
import signal
import tempfile
import time

LISTEN_RE = re.compile(r"kiln: listening on (https?)://\S+:(\d+)")
REDIRECT_RE = re.compile(r"kiln: redirecting http://\S+:(\d+)")
API_KEY = "e2e-test-key-0123456789abcdef"


class KilnServer:
    """A `kiln serve` child on a free port (API_PORT=0, port read from its stderr).

    stderr goes to a file (self.log_path) so that a chatty access log can never block the server;
    self.log() returns what it wrote so far."""

    def __init__(self, env_overrides=None, cwd=None, startup_timeout=15):
        self.tmp = tempfile.TemporaryDirectory(prefix="kiln-e2e-")
        self.cwd = cwd or self.tmp.name
        self.log_path = os.path.join(self.tmp.name, "kiln.log")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("API_", "ENABLE_", "SSL_"))}
        env.update({
            "API_HOST": "127.0.0.1", "API_PORT": "0", "DATA_DIR": os.path.join(self.tmp.name, "data"),
            "API_KEY": API_KEY, "KILN_TEST_ROUTES": "1", "SHUTDOWN_GRACE_SECONDS": "10",
            "HTTP_THREADS": "2",
        })
        env.update(env_overrides or {})
        self.env = env
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([KILN_BIN, "serve"], env=env, cwd=self.cwd,
                                     stdout=subprocess.DEVNULL, stderr=self._log)
        self.scheme = self.port = self.redirect_port = None
        deadline = time.monotonic() + startup_timeout
        while time.monotonic() < deadline:
            text = self.log()
            m = LISTEN_RE.search(text)
            if m and (env.get("SSL_REDIRECT", "false") != "true" or REDIRECT_RE.search(text)):
                self.scheme, self.port = m.group(1), int(m.group(2))
                r = REDIRECT_RE.search(text)
                self.redirect_port = int(r.group(1)) if r else None
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"kiln serve exited {self.proc.returncode}: {text}")
            time.sleep(0.02)
        else:
            self.stop()
            raise RuntimeError(f"kiln serve did not start: {self.log()}")
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(self, needle, timeout=10):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if needle in self.log():
                return True
            time.sleep(0.05)
        return False

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def stop(self, timeout=20):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        rc = self.proc.returncode
        self.final_log = self.log()
        self.tmp.cleanup()
        return rc


@pytest.fixture
def kiln_server(kiln_bin):
    """Factory: kiln_server(ENV=value, ...) starts a server; all are stopped after the test."""
    servers = []

    def start(**env):
        s = KilnServer({k: str(v) for k, v in env.items()})
        servers.append(s)
        return s

    yield start
    for s in servers:
        rc = s.stop()
        # Under ASan/UBSan a leak or undefined behaviour shows up here, at the server's exit.
        assert "Sanitizer" not in s.final_log and "runtime error:" not in s.final_log, \
            s.final_log[-4000:]
        assert rc == 0, f"kiln serve exited {rc}: {s.final_log[-2000:]}"
        # the zygote children's rehearsal (zygote.py _prepare) must keep up with the runner
        assert "rehearsal failed" not in s.final_log, s.final_log[-4000:]


@pytest.fixture
def server(kiln_server):
    """One server with the defaults of the suite (test routes on, API_KEY = conftest.API_KEY)."""
    return kiln_server()
