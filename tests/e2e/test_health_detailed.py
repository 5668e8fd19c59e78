"""/health/detailed and /health/<dependency> against a real `kiln serve`, with dependencies
broken by the test while the server runs: the blob directory made immutable (chattr +i, which
stops even root) turns the blob store degraded (it still serves reads but refuses writes), the
sandbox's workspace directory made immutable turns the executor unhealthy (503), and undoing both
brings every check back to healthy."""
import os
import subprocess
import tempfile
import time

import httpx
import pytest

from conftest import API_KEY

H = {"X-API-Key": API_KEY}


def detailed(s, **params):
    return httpx.get(s.url + "/health/detailed", headers=H, params=params, timeout=60)


def wait_status(s, want, timeout=20):
    deadline = time.monotonic() + timeout
    while True:
        r = detailed(s)
        if r.json()["status"] == want or time.monotonic() > deadline:
            return r
        time.sleep(0.3)


def chattr(flag, path):
    subprocess.run(["chattr", flag, path], check=True)


@pytest.fixture()
def run_dir():
    if os.geteuid() != 0:
        pytest.skip("breaking dependencies with chattr needs root")
    d = tempfile.mkdtemp(prefix="kiln-health-run-")
    os.chmod(d, 0o711)  # the sandbox uids must be able to reach it
    yield d
    for sub in ("ws", ""):
        subprocess.run(["chattr", "-i", os.path.join(d, sub)], capture_output=True)
    subprocess.run(["rm", "-rf", d])


def test_detailed_health_follows_broken_dependencies(kiln_server, run_dir):
    s = kiln_server(SANDBOX_RUN_DIR=run_dir, HEALTH_CHECK_INTERVAL=1, HEALTH_CHECK_TIMEOUT=5)
    blobs = os.path.join(s.env["DATA_DIR"], "blobs")
    ws = os.path.join(run_dir, "ws")

    # the warm pools and the Python zygotes fill in the background: "pools" is degraded until then
    r = wait_status(s, "healthy", timeout=90)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "healthy" and "X-Health-Status" not in r.headers, r.text
    assert set(body["services"]) >= {"store", "blob", "executor", "disk", "pools"}
    for name, svc in body["services"].items():
        assert svc["status"] == "healthy", (name, svc)
        assert svc["latency_ms"] >= 0
    assert body["summary"] == {"total_services": len(body["services"]),
                               "healthy_services": len(body["services"]),
                               "degraded_services": 0, "unhealthy_services": 0}
    assert httpx.get(s.url + "/health/detailed").status_code == 401
    assert httpx.get(s.url + "/health/store").status_code == 401
    assert httpx.get(s.url + "/health/nosuch", headers=H).status_code == 404
    r = httpx.get(s.url + "/health/store", headers=H)
    assert r.status_code == 200 and r.json()["status"] == "healthy"

    try:
        # the blob store refuses writes: degraded, still 200, with the header
        chattr("+i", blobs)
        r = wait_status(s, "degraded")
        assert r.status_code == 200 and r.json()["status"] == "degraded", r.text
        assert r.headers["X-Health-Status"] == "degraded"
        assert r.json()["services"]["blob"]["status"] == "degraded"
        assert r.json()["summary"]["degraded_services"] == 1
        b = httpx.get(s.url + "/health/blob", headers=H)
        assert b.status_code == 200 and b.json()["status"] == "degraded"
        assert "refuses writes" in b.json()["message"]
        assert b.headers["X-Health-Status"] == "degraded"

        # the sandbox cannot create a workspace: unhealthy, 503
        chattr("+i", ws)
        r = wait_status(s, "unhealthy")
        assert r.status_code == 503 and r.json()["status"] == "unhealthy", r.text
        assert r.json()["services"]["executor"]["status"] == "unhealthy"
        assert r.json()["summary"]["unhealthy_services"] == 1
        e = httpx.get(s.url + "/health/executor", headers=H)
        assert e.status_code == 503 and "workspace" in e.json()["message"]
        # an uncached round sees the same
        r = detailed(s, use_cache="false")
        assert r.status_code == 503 and r.json()["services"]["executor"]["status"] == "unhealthy"
        # the service itself keeps answering
        assert httpx.get(s.url + "/health").status_code == 200
    finally:
        chattr("-i", ws)
        chattr("-i", blobs)

    r = wait_status(s, "healthy")
    assert r.status_code == 200 and r.json()["status"] == "healthy", r.text
    r = detailed(s, use_cache="false")
    assert r.status_code == 200 and r.json()["summary"]["healthy_services"] == \
        r.json()["summary"]["total_services"]
