"""Managed API keys through the admin API and `kiln keys`, against a real `kiln serve`: the key's
life end to end, the master key on every admin route, and the admin API closed without one."""
import hashlib
import os
import re
import subprocess

import httpx
import pytest

from conftest import API_KEY, KILN_BIN

MASTER = "master-e2e-0123456789abcdefABCDEF"
ADMIN = "/api/v1/admin"


def admin(s, method, path, key=MASTER, **kw):
    headers = {"X-API-Key": key} if key is not None else {}
    return httpx.request(method, s.url + ADMIN + path, headers=headers, timeout=30, **kw)


def whoami(s, key):
    return httpx.get(s.url + "/__test/whoami", headers={"X-API-Key": key}, timeout=30)


@pytest.fixture()
def srv(kiln_server):
    # a long cache: revocation and updates must still take effect at once
    return kiln_server(MASTER_API_KEY=MASTER, API_KEY_CACHE_TTL=300, AUTH_MAX_FAILURES=100000)


def test_key_lifecycle(srv):
    r = admin(srv, "POST", "/keys", json={"name": "ci-bot", "metadata": {"team": "data"}})
    assert r.status_code == 201, r.text
    body = r.json()
    secret, rec = body["api_key"], body["record"]
    assert re.fullmatch(r"kiln_[0-9a-f]{40}", secret)
    assert rec["key_hash"] == hashlib.sha256(secret.encode()).hexdigest() == body["key_hash"]
    assert rec["key_prefix"] == secret[:8]
    assert rec["source"] == "managed" and rec["enabled"] is True
    assert rec["usage_count"] == 0 and rec["last_used_at"] is None
    assert rec["metadata"] == {"team": "data"}
    assert rec["rate_limits"] == {"per_second": None, "per_minute": None, "hourly": None,
                                  "daily": None, "monthly": None}
    h = rec["key_hash"]

    # use it
    for _ in range(3):
        r = whoami(srv, secret)
        assert r.status_code == 200, r.text
    # a secret that is one character off is not the key
    assert whoami(srv, secret[:-1] + ("0" if secret[-1] != "0" else "1")).status_code == 401

    # list: usage counted, the secret never shown again, environment keys read-only
    r = admin(srv, "GET", "/keys")
    assert r.status_code == 200
    assert secret not in r.text and API_KEY not in r.text
    keys = {k["key_hash"]: k for k in r.json()}
    assert keys[h]["usage_count"] == 3
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", keys[h]["last_used_at"])
    env_hash = hashlib.sha256(API_KEY.encode()).hexdigest()
    assert keys[env_hash]["source"] == "environment"
    assert admin(srv, "PATCH", f"/keys/{env_hash}", json={"enabled": False}).status_code == 403
    assert admin(srv, "DELETE", f"/keys/{env_hash}").status_code == 403
    # environment keys' use is counted too (in memory): requests accepted with it, not a 403
    # on an admin route, and not the managed key's
    env_before = keys[env_hash]["usage_count"]
    for _ in range(2):
        assert whoami(srv, API_KEY).status_code == 200
    assert admin(srv, "GET", "/keys", key=API_KEY).status_code == 403
    env_rec = {k["key_hash"]: k for k in admin(srv, "GET", "/keys").json()}[env_hash]
    assert env_rec["usage_count"] == env_before + 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", env_rec["last_used_at"])

    # update: name, limits, metadata; then disable → 401, enable → works again
    r = admin(srv, "PATCH", f"/keys/{h}",
              json={"name": "ci-bot-2", "rate_limits": {"hourly": 1000}, "metadata": {"a": 1}})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "ci-bot-2" and r.json()["rate_limits"]["hourly"] == 1000
    assert r.json()["metadata"] == {"a": 1} and r.json()["usage_count"] == 3
    r = whoami(srv, secret)
    assert r.status_code == 200 and r.headers["X-RateLimit-Limit"] == "1000"
    assert r.headers["X-RateLimit-Remaining"] == "999"
    assert admin(srv, "PATCH", f"/keys/{h}", json={"enabled": False}).json()["enabled"] is False
    r = whoami(srv, secret)
    assert r.status_code == 401 and r.json()["error"] == "API key disabled"
    assert admin(srv, "PATCH", f"/keys/{h}", json={"enabled": True}).status_code == 200
    assert whoami(srv, secret).status_code == 200
    assert admin(srv, "PATCH", f"/keys/{h}", json={"enabled": "yes"}).status_code == 400
    assert admin(srv, "PATCH", f"/keys/{h}",
                 json={"rate_limits": {"weekly": 3}}).status_code == 400

    # revoke → 401 at once (the cache forgets it), and it is gone from the list
    r = admin(srv, "DELETE", f"/keys/{h}")
    assert r.status_code == 200 and r.json() == {"deleted": True, "key_hash": h}
    r = whoami(srv, secret)
    assert r.status_code == 401 and r.json()["error"] == "Invalid API key"
    assert admin(srv, "DELETE", f"/keys/{h}").status_code == 404
    assert admin(srv, "PATCH", f"/keys/{h}", json={"name": "x"}).status_code == 404
    assert h not in {k["key_hash"] for k in admin(srv, "GET", "/keys").json()}


def test_create_validates(srv):
    assert admin(srv, "POST", "/keys", json={}).status_code == 400
    assert admin(srv, "POST", "/keys", json={"name": ""}).status_code == 400
    assert admin(srv, "POST", "/keys", json={"name": "x", "rate_limits": {"daily": -1}}).status_code == 400
    assert admin(srv, "POST", "/keys", json={"name": "x", "metadata": [1]}).status_code == 400


def admin_routes(h):
    return [("GET", "/keys", None), ("POST", "/keys", {"name": "probe"}),
            ("PATCH", f"/keys/{h}", {"name": "renamed"}), ("DELETE", f"/keys/{h}", None),
            ("GET", "/stats?hours=1", None)]


def test_master_key_required_on_every_admin_route(srv):
    managed = admin(srv, "POST", "/keys", json={"name": "not-admin"}).json()
    secret, h = managed["api_key"], managed["key_hash"]
    assert whoami(srv, secret).status_code == 200
    for method, path, body in admin_routes(h):
        kw = {"json": body} if body is not None else {}
        r = admin(srv, method, path, key=None, **kw)
        assert r.status_code == 401, (method, path, r.text)
        r = admin(srv, method, path, key="wrong-" + MASTER, **kw)
        assert r.status_code == 401, (method, path, r.text)
        for other in (API_KEY, secret):  # valid keys, but not the master key
            r = admin(srv, method, path, key=other, **kw)
            assert r.status_code == 403, (method, path, r.text)
        r = httpx.request(method, srv.url + ADMIN + path, timeout=30,
                          headers={"Authorization": f"Bearer {API_KEY}"}, **kw)
        assert r.status_code == 403, (method, path, r.text)
    # and the master key itself is accepted on each (the DELETE last: it removes the key)
    for method, path, body in admin_routes(h):
        kw = {"json": body} if body is not None else {}
        r = admin(srv, method, path, **kw)
        assert r.status_code in (200, 201), (method, path, r.text)
    r = httpx.get(srv.url + ADMIN + "/keys", headers={"Authorization": f"Bearer {MASTER}"})
    assert r.status_code == 200


def test_admin_closed_without_master_key(kiln_server):
    s = kiln_server()  # no MASTER_API_KEY
    for method, path, body in admin_routes("0" * 64):
        kw = {"json": body} if body is not None else {}
        for key in (None, API_KEY, "anything"):
            r = admin(s, method, path, key=key, **kw)
            assert r.status_code == 403, (method, path, key, r.text)


def kiln_keys(s, *args, key=MASTER):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
    env.update({"KILN_URL": s.url, "KILN_MASTER_KEY": key})
    return subprocess.run([KILN_BIN, "keys", *args], env=env, capture_output=True, text=True,
                          timeout=60)


def test_cli_keys(srv):
    r = kiln_keys(srv, "create", "from-cli", "--per-minute", "7", "--metadata", '{"o": "x"}')
    assert r.returncode == 0, r.stderr
    secret = re.search(r"api_key:\s+(kiln_[0-9a-f]{40})", r.stdout).group(1)
    h = re.search(r"key_hash:\s+([0-9a-f]{64})", r.stdout).group(1)
    assert hashlib.sha256(secret.encode()).hexdigest() == h
    assert whoami(srv, secret).status_code == 200

    r = kiln_keys(srv, "list")
    assert r.returncode == 0, r.stderr
    line = next(ln for ln in r.stdout.splitlines() if ln.startswith(h[:16]))
    assert "from-cli" in line and "managed" in line and "per_minute=7" in line
    assert " 1 " in line  # usage
    assert any("environment" in ln for ln in r.stdout.splitlines())
    assert secret not in r.stdout

    r = kiln_keys(srv, "update", h, "--name", "renamed", "--disable", "--per-minute", "none")
    assert r.returncode == 0, r.stderr
    assert '"enabled": false' in r.stdout and '"per_minute": null' in r.stdout
    assert whoami(srv, secret).status_code == 401

    r = kiln_keys(srv, "list", "--json")
    assert r.returncode == 0
    assert [k for k in __import__("json").loads(r.stdout) if k["key_hash"] == h][0]["name"] == "renamed"

    r = kiln_keys(srv, "revoke", h)
    assert r.returncode == 0 and h in r.stdout
    r = kiln_keys(srv, "revoke", h)
    assert r.returncode == 1 and "404" in r.stderr

    # a wrong master key is refused, and without one the command does not even try
    r = kiln_keys(srv, "list", key="wrong")
    assert r.returncode == 1 and "401" in r.stderr
    r = kiln_keys(srv, "list", key="")
    assert r.returncode == 2
    r = subprocess.run([KILN_BIN, "keys", "--url", srv.url, "--master-key", MASTER, "list"],
                       capture_output=True, text=True, timeout=60,
                       env={k: v for k, v in os.environ.items() if not k.startswith("KILN_")})
    assert r.returncode == 0, r.stderr
