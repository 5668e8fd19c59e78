"""GET /metrics parsed with prometheus_client's text-format parser (Debian's
python3-prometheus-client): the counters match the requests and executions this test made, never
go backwards between scrapes, and /api/v1/admin/stats agrees."""
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from conftest import API_KEY

MASTER = "master-metrics-0123456789abcdefAB"
H = {"X-API-Key": API_KEY}


def scrape(s):
    r = httpx.get(s.url + "/metrics", headers=H, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    samples, types = {}, {}
    for fam in text_string_to_metric_families(r.text):
        types[fam.name] = fam.type
        for smp in fam.samples:
            samples[(smp.name, frozenset(smp.labels.items()))] = smp.value
    return samples, types


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def execute(s, lang, code):
    """Run code through /exec when the execution API is mounted, else the hidden test route
    (both go through core/exec_service, where executions are counted)."""
    r = httpx.post(s.url + "/exec", headers=H, json={"lang": lang, "code": code}, timeout=120)
    if r.status_code == 404:
        r = httpx.post(s.url + "/__test/exec", headers=H, json={"lang": lang, "code": code},
                       timeout=120)
    return r


@pytest.fixture()
def srv(kiln_server):
    return kiln_server(MASTER_API_KEY=MASTER, AUTH_MAX_FAILURES=100000)


def test_metrics_count_what_the_test_did(srv):
    s1, types = scrape(srv)
    assert types["kiln_executions"] == "counter"
    assert types["kiln_execution_duration_seconds"] == "histogram"
    assert types["kiln_sessions"] == "gauge"
    assert val(s1, "kiln_build_info", version="0.1.0") == 1
    assert val(s1, "process_resident_memory_bytes") > 0

    # HTTP requests by route pattern, method and status
    for _ in range(5):
        assert httpx.get(srv.url + "/health").status_code == 200
    assert httpx.get(srv.url + "/v1/health").status_code == 200
    assert httpx.get(srv.url + "/files/abc", headers=H).status_code in (200, 404)
    # auth failures by reason
    assert httpx.get(srv.url + "/metrics").status_code == 401
    assert httpx.get(srv.url + "/metrics", headers={"X-API-Key": "nope"}).status_code == 401
    assert httpx.get(srv.url + "/api/v1/admin/keys", headers=H).status_code == 403

    # executions: one completes, one fails, one is refused before running
    r = execute(srv, "py", "print(6*7)")
    assert r.status_code == 200, r.text
    assert "42" in r.json()["stdout"]
    r = execute(srv, "py", "import sys; sys.exit(3)")
    assert r.status_code == 200, r.text
    r = execute(srv, "cobol", "DISPLAY 'x'")
    assert r.status_code == 400

    # file bytes in and out, counted by the HTTP layer whatever the route's handler
    r = httpx.post(srv.url + "/__test/upload", headers=H,
                   files={"file": ("a.bin", b"x" * 12345, "application/octet-stream")},
                   data={"note": "not a file"})
    assert r.status_code == 200, r.text
    r = httpx.get(srv.url + "/__test/file?size=7000", headers=H)
    assert r.status_code == 200 and len(r.content) == 7000
    r = httpx.get(srv.url + "/__test/file?size=7000", headers={**H, "Range": "bytes=0-99"})
    assert r.status_code == 206 and len(r.content) == 100

    s2, _ = scrape(srv)
    d = lambda name, **lb: val(s2, name, **lb) - val(s1, name, **lb)  # noqa: E731
    assert d("kiln_http_requests_total", route="/health", method="GET", status="200") == 6
    assert d("kiln_http_requests_total", route="/metrics", method="GET", status="401") == 2
    # the first scrape itself was counted once it had answered
    assert d("kiln_http_requests_total", route="/metrics", method="GET", status="200") == 1
    assert d("kiln_auth_failures_total", reason="missing") == 1
    assert d("kiln_auth_failures_total", reason="invalid") == 1
    assert d("kiln_auth_failures_total", reason="forbidden") == 1
    assert d("kiln_executions_total", language="py", status="completed") == 1
    assert d("kiln_executions_total", language="py", status="failed") == 1
    assert d("kiln_executions_total", language="other", status="rejected") == 1
    assert d("kiln_execution_duration_seconds_count", language="py") == 2
    assert d("kiln_execution_duration_seconds_sum", language="py") > 0
    assert d("kiln_execution_queue_wait_seconds_count") == 2
    assert val(s2, "kiln_executions_active") == 0 and val(s2, "kiln_executions_queued") == 0
    assert val(s2, "kiln_sessions") >= 1
    assert d("kiln_upload_bytes_total") == 12345
    assert d("kiln_download_bytes_total") == 7100
    # no raw path ever becomes a label
    assert not any(("route", "/files/abc") in k[1] for k in s2)

    # counters never go backwards
    for (name, labels), v in s1.items():
        fam = name[:-6] if name.endswith("_total") else name
        if types.get(fam) == "counter" or name.endswith(("_bucket", "_count", "_sum")):
            assert s2.get((name, labels), 0) >= v, (name, labels)

    # the dashboard's summary agrees
    st = httpx.get(srv.url + "/api/v1/admin/stats?hours=1", headers={"X-API-Key": MASTER}).json()
    assert st["executions"]["by_language"]["py"]["completed"] == 1
    assert st["executions"]["by_language"]["py"]["failed"] == 1
    assert st["latency"]["by_language"]["py"]["count"] == 2
    assert sum(st["timeline"]["totals"]) >= 2 and st["hours"] == 1
    assert st["http"]["auth_failures"]["missing"] >= 1


def test_metrics_need_a_key(srv):
    r = httpx.get(srv.url + "/metrics")
    assert r.status_code == 401
    assert "kiln_" not in r.text
