"""The admin dashboard in a real headless chromium, against tests/browser/fake_admin.py (the
static files of web/ plus a stand-in of the admin API). This proves the page and the browser
tooling on their own; test_admin_dashboard.py (with the HTTP layer) runs the same node script
against `kiln serve`."""
import json
import os
import secrets
import subprocess
import sys

import pytest

SRC = os.environ.get("KILN_SOURCE_DIR") or os.path.join(os.path.dirname(__file__), "..", "..")
BROWSER_DIR = os.path.join(SRC, "tests", "browser")


@pytest.fixture(scope="module")
def browser_tools():
    """Chromium and playwright-core, installing the npm package when missing."""
    assert os.access("/usr/bin/chromium", os.X_OK), "chromium missing: run scripts/setup"
    r = subprocess.run([os.path.join(SRC, "scripts", "setup-browser")], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr


@pytest.fixture()
def fake_admin():
    master = "master-" + secrets.token_hex(12)
    proc = subprocess.Popen([sys.executable, os.path.join(BROWSER_DIR, "fake_admin.py"),
                             os.path.join(SRC, "web"), master],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("PORT "), line
        yield f"http://127.0.0.1:{int(line.split()[1])}", master
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def run_dashboard(url, master, shot):
    env = dict(os.environ, KILN_MASTER_KEY=master)
    r = subprocess.run(["node", os.path.join(BROWSER_DIR, "dashboard.mjs"), url, str(shot)],
                       env=env, capture_output=True, text=True, timeout=300, cwd=BROWSER_DIR)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    assert lines, f"no result line; stdout={r.stdout!r} stderr={r.stderr[-2000:]!r}"
    return r.returncode, json.loads(lines[-1]), r.stderr


def test_dashboard_signs_in_draws_charts_and_manages_keys(browser_tools, fake_admin, tmp_path):
    url, master = fake_admin
    shot = tmp_path / "dashboard.png"
    rc, res, err = run_dashboard(url + "/admin-dashboard/", master, shot)
    assert rc == 0 and res["ok"], (res, err[-2000:])
    assert res["revoked"] is True
    assert res["keys_listed"] == 2
    assert res["chart-languages"]["ink"] > 0.01
    assert res["screenshot"]["colours"] >= 50
    assert shot.stat().st_size > 10_000


def test_dashboard_script_fails_with_a_wrong_master_key(browser_tools, fake_admin, tmp_path):
    """The checker itself can fail: with a key the API refuses it must not report success."""
    url, _ = fake_admin
    rc, res, _ = run_dashboard(url + "/admin-dashboard/", "wrong-key-" + secrets.token_hex(4),
                               tmp_path / "x.png")
    assert rc != 0 and res["ok"] is False
