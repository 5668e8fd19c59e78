"""Helpers of the API end-to-end tests (test_api*.py): a client bound to one server."""
import os
import secrets
import socket
import time

import httpx

from conftest import API_KEY

KEY = {"X-API-Key": API_KEY}
ID_RE = r"^[A-Za-z0-9_-]{21}$"


def token():
    """A marker unique to one test, planted in argv so that leftover processes can be found."""
    return "kt" + secrets.token_hex(8)


class Api:
    def __init__(self, server, prefix="", headers=None):
        self.s = server
        self.base = server.url + prefix
        self.h = dict(KEY)
        self.h.update(headers or {})
        self.c = httpx.Client(timeout=120)

    def exec(self, code, lang="py", expect=200, **body):
        body.update({"code": code, "lang": lang})
        r = self.c.post(self.base + "/exec", json=body, headers=self.h)
        assert r.status_code == expect, r.text
        return r.json()

    def upload(self, files, path="/upload", data=None, headers=None, expect=200):
        h = dict(self.h)
        h.update(headers or {})
        r = self.c.post(self.base + path, files=files, data=data or {}, headers=h)
        assert r.status_code == expect, r.text
        return r.json()

    def get(self, path, headers=None, **kw):
        h = dict(self.h)
        h.update(headers or {})
        return self.c.get(self.base + path, headers=h, **kw)

    def delete(self, path, headers=None):
        h = dict(self.h)
        h.update(headers or {})
        return self.c.delete(self.base + path, headers=h)


def raw_request(port, data, read_timeout=10.0):
    """Send raw bytes on a fresh socket and return everything read until close or timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout=read_timeout)
    try:
        s.sendall(data)
        out = b""
        deadline = time.monotonic() + read_timeout
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
        return out
    finally:
        s.close()


def procs_with(tok):
    """Pids of live processes whose command line holds tok."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if tok.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            pass
    return found


def mounts_under(path):
    with open("/proc/self/mountinfo") as f:
        return [l for l in f if path in l]
