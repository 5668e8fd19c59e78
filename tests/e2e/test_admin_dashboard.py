"""The admin dashboard served by `kiln serve` itself, driven in Debian's headless chromium by
tests/browser/dashboard.mjs (playwright-core): sign-in with the master key against the real admin
API, both charts drawn from real executions, a key created and revoked through the page, and a
screenshot that is not blank. The static files need no credential and carry a CSP that lets the
page run only its own scripts."""
import json
import os
import secrets
import subprocess

import httpx
import pytest

from conftest import API_KEY

SRC = os.environ.get("KILN_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
BROWSER_DIR = os.path.join(SRC, "tests", "browser")
MASTER = "master-dash-" + secrets.token_hex(12)


@pytest.fixture(scope="module")
def browser_tools():
    """Chromium and playwright-core, installing the npm package when missing."""
    assert os.access("/usr/bin/chromium", os.X_OK), "chromium missing: run scripts/setup"
    r = subprocess.run([os.path.join(SRC, "scripts", "setup-browser")], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr


def execute(s, lang, code):
    h = {"X-API-Key": API_KEY}
    r = httpx.post(s.url + "/exec", headers=h, json={"lang": lang, "code": code}, timeout=120)
    if r.status_code == 404:
        r = httpx.post(s.url + "/__test/exec", headers=h, json={"lang": lang, "code": code},
                       timeout=120)
    assert r.status_code == 200, r.text


def run_dashboard(url, master, shot):
    env = dict(os.environ, KILN_MASTER_KEY=master)
    r = subprocess.run(["node", os.path.join(BROWSER_DIR, "dashboard.mjs"), url, str(shot)],
                       env=env, capture_output=True, text=True, timeout=300, cwd=BROWSER_DIR)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no result line; stdout={r.stdout!r} stderr={r.stderr[-2000:]!r}"
    return r.returncode, json.loads(lines[-1]), r.stderr


def test_static_files_need_no_key_and_carry_a_csp(kiln_server):
    s = kiln_server(MASTER_API_KEY=MASTER)
    for path, ctype in (("/admin-dashboard", "text/html"), ("/admin-dashboard/app.js",
                        "text/javascript"), ("/admin-dashboard/style.css", "text/css"),
                        ("/admin-dashboard/favicon.svg", "image/svg+xml")):
        r = httpx.get(s.url + path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith(ctype), (path, r.headers["content-type"])
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert "unsafe-inline" not in r.headers["content-security-policy"]
    assert httpx.get(s.url + "/admin-dashboard/nope.js").status_code == 404
    # the trailing slash: a 308 to the page's one URL (no key needed), which then serves it
    r = httpx.get(s.url + "/admin-dashboard/")
    assert r.status_code == 308
    assert r.headers["location"] == "/admin-dashboard"
    r = httpx.get(s.url + "/admin-dashboard/", follow_redirects=True)
    assert r.status_code == 200 and r.url.path == "/admin-dashboard"
    assert r.headers["content-type"].startswith("text/html")
    assert httpx.get(s.url + "/admin-dashboard//").status_code == 404
    assert httpx.get(s.url + "/admin-dashboard/..%2fkiln.db").status_code in (400, 404)


def test_dashboard_in_chromium_against_kiln(browser_tools, kiln_server, tmp_path):
    s = kiln_server(MASTER_API_KEY=MASTER)
    execute(s, "py", "print('hello')")
    execute(s, "py", "import sys; sys.exit(1)")
    execute(s, "js", "console.log(1)")
    shot = tmp_path / "dashboard.png"
    rc, res, err = run_dashboard(s.url + "/admin-dashboard", MASTER, shot)
    assert rc == 0 and res["ok"], (res, err[-2000:])
    assert res["revoked"] is True
    # API_KEY from the environment; the key the page created was revoked again
    assert res["keys_listed"] == 1
    assert res["chart-languages"]["ink"] > 0.01
    assert res["screenshot"]["colours"] >= 50
    assert shot.stat().st_size > 10_000
    # what the page did went through kiln's admin API
    keys = httpx.get(s.url + "/api/v1/admin/keys", headers={"X-API-Key": MASTER}).json()
    assert [k["source"] for k in keys] == ["environment"]


def test_dashboard_script_fails_with_a_wrong_master_key(browser_tools, kiln_server, tmp_path):
    s = kiln_server(MASTER_API_KEY=MASTER)
    rc, res, _ = run_dashboard(s.url + "/admin-dashboard", "wrong-" + MASTER, tmp_path / "x.png")
    assert rc != 0 and res["ok"] is False
