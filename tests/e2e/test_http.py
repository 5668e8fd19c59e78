"""The HTTP front door through a real `kiln serve`: routing, error bodies, headers, CORS, body
limits, malformed HTTP, deferred answers (keep-alive spaces, cancel), uploads, ranges, shutdown."""
import json
import re
import signal
import socket
import threading
import time

import httpx
import pytest

from conftest import API_KEY, run_kiln

AUTH = {"x-api-key": API_KEY}
ERROR_KEYS = {"error", "error_type", "details", "request_id", "timestamp"}


def assert_error_body(r, status, error_type=None):
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert ERROR_KEYS <= set(body), body
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["error_type"], str)
    assert body["details"] is None or isinstance(body["details"], list)
    assert body["request_id"] == r.headers["x-request-id"]
    assert isinstance(body["timestamp"], float) and abs(body["timestamp"] - time.time()) < 60
    if error_type:
        assert body["error_type"] == error_type
    return body


def raw(server, data, timeout=5):
    """Send raw bytes, return everything the server answers until it closes or times out."""
    s = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
    try:
        s.sendall(data)
        out = b""
        while True:
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


def test_health_and_ready_at_root_and_v1(server):
    for prefix in ("", "/v1"):
        r = httpx.get(server.url + prefix + "/health")
        assert r.status_code == 200
        assert r.json()["status"] == "healthy"
        assert re.fullmatch(r"\d+\.\d+\.\d+", r.json()["version"])
        assert httpx.get(server.url + prefix + "/ready").status_code == 200


def test_health_needs_no_key_but_api_routes_do(server):
    assert httpx.get(server.url + "/health").status_code == 200
    body = assert_error_body(httpx.get(server.url + "/__test/file"), 401, "authentication_error")
    assert body["error"] == "Missing API key"
    assert httpx.get(server.url + "/__test/file", headers=AUTH).status_code == 200


def test_unknown_route_is_404_json(server):
    assert_error_body(httpx.get(server.url + "/no/such/route"), 404, "not_found")
    assert_error_body(httpx.post(server.url + "/v1/nope", json={}), 404, "not_found")


def test_wrong_method_is_405_with_allow(server):
    r = httpx.delete(server.url + "/health")
    assert_error_body(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET, HEAD, OPTIONS"


@pytest.mark.parametrize("kind,status", [
    ("validation_error", 400), ("authentication_error", 401), ("authorization_error", 403),
    ("not_found", 404), ("conflict", 409), ("payload_too_large", 413),
    ("unsupported_media_type", 415), ("malformed_request", 422), ("service_unavailable", 503),
    ("internal_error", 500)])
def test_error_body_shape_for_every_status(server, kind, status):
    body = assert_error_body(httpx.get(server.url + "/__test/error", params={"kind": kind}),
                             status, kind)
    assert body["details"] == [{"field": "kind", "message": "test", "code": kind}]


def test_rate_limited_answer_carries_retry_after(server):
    r = httpx.get(server.url + "/__test/error", params={"kind": "rate"})
    body = assert_error_body(r, 429, "rate_limit_exceeded")
    assert r.headers["retry-after"] == "42"
    assert body["retry_after_seconds"] == 42
    assert r.headers["x-ratelimit-limit"] == "10"
    assert r.headers["x-ratelimit-remaining"] == "0"
    assert int(r.headers["x-ratelimit-reset"]) >= int(time.time()) + 40


def test_security_headers_on_every_answer(server):
    for r in (httpx.get(server.url + "/health"), httpx.get(server.url + "/nope"),
              httpx.get(server.url + "/__test/file")):
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in r.headers["content-security-policy"]
        assert r.headers["cache-control"] == "no-store"
        assert "strict-transport-security" not in r.headers  # plain HTTP


def test_request_id_is_echoed_when_safe(server):
    rid = "trace-1234_abc.DEF:9"
    r = httpx.get(server.url + "/health", headers={"X-Request-ID": rid})
    assert r.headers["x-request-id"] == rid
    r = httpx.get(server.url + "/nope", headers={"X-Request-ID": rid})
    assert r.json()["request_id"] == rid


@pytest.mark.parametrize("bad", ["a" * 129, "has space", "semi;colon", "quote\"", "ünï", ""])
def test_request_id_is_replaced_when_unsafe(server, bad):
    r = httpx.get(server.url + "/health", headers={"X-Request-ID": bad.encode()})
    rid = r.headers["x-request-id"]
    assert rid != bad and re.fullmatch(r"[0-9a-f]{32}", rid)


def test_request_ids_are_generated_and_unique(server):
    ids = {httpx.get(server.url + "/health").headers["x-request-id"] for _ in range(20)}
    assert len(ids) == 20
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_cors_preflight_for_allowed_origin(kiln_server):
    s = kiln_server(ENABLE_CORS="true", CORS_ORIGINS="https://chat.example, https://b.example")
    r = httpx.options(s.url + "/v1/__test/echo", headers={
        "Origin": "https://b.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "x-api-key, content-type"})
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == "https://b.example"
    assert "POST" in r.headers["access-control-allow-methods"]
    allowed = [h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")]
    assert {"x-api-key", "content-type", "authorization"} <= set(allowed)
    assert "origin" in r.headers["vary"].lower()
    # the actual request carries the grant too
    r = httpx.get(s.url + "/health", headers={"Origin": "https://chat.example"})
    assert r.headers["access-control-allow-origin"] == "https://chat.example"
    assert "x-request-id" in r.headers["access-control-expose-headers"].lower()


def test_cors_disallowed_origin_gets_no_cors_headers(kiln_server):
    s = kiln_server(ENABLE_CORS="true", CORS_ORIGINS="https://chat.example")
    r = httpx.options(s.url + "/health", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert r.status_code == 204
    assert not any(h.startswith("access-control-") for h in r.headers)
    r = httpx.get(s.url + "/health", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in r.headers


def test_cors_wildcard_and_disabled(kiln_server):
    s = kiln_server(ENABLE_CORS="true", CORS_ORIGINS="*")
    r = httpx.get(s.url + "/health", headers={"Origin": "https://any.example"})
    assert r.headers["access-control-allow-origin"] == "https://any.example"
    s2 = kiln_server(ENABLE_CORS="false", CORS_ORIGINS="*")
    r = httpx.get(s2.url + "/health", headers={"Origin": "https://any.example"})
    assert "access-control-allow-origin" not in r.headers


def test_options_needs_no_auth(server):
    r = httpx.options(server.url + "/__test/echo")
    assert r.status_code == 204
    assert "POST" in r.headers["allow"]


def test_json_body_over_limit_is_413(kiln_server):
    s = kiln_server(MAX_REQUEST_BODY_KB="1")
    big = {"pad": "x" * 2000}
    assert_error_body(httpx.post(s.url + "/__test/echo", json=big, headers=AUTH), 413,
                      "payload_too_large")
    # chunked: no Content-Length to refuse early, caught while reading
    def gen():
        for _ in range(10):
            yield b'{"pad":"' + b"x" * 300
    r = httpx.post(s.url + "/__test/echo", content=gen(),
                   headers={**AUTH, "content-type": "application/json"})
    assert_error_body(r, 413, "payload_too_large")
    ok = httpx.post(s.url + "/__test/echo", json={"pad": "x" * 500}, headers=AUTH)
    assert ok.status_code == 200 and ok.json()["json"]["pad"] == "x" * 500


def test_wrong_content_type_is_415(server):
    r = httpx.post(server.url + "/__test/echo", content=b'{"a":1}',
                   headers={**AUTH, "content-type": "text/plain"})
    assert_error_body(r, 415, "unsupported_media_type")
    r = httpx.post(server.url + "/__test/upload", json={"a": 1}, headers=AUTH)
    assert_error_body(r, 415, "unsupported_media_type")


@pytest.mark.parametrize("body", [b'{"a":1', b"not json", b"", b'{"a":1}{"b":2}', b'{"a":1,"a":2}'])
def test_malformed_json_is_422(server, body):
    r = httpx.post(server.url + "/__test/echo", content=body,
                   headers={**AUTH, "content-type": "application/json"})
    assert_error_body(r, 422, "malformed_request")


def test_json_with_charset_is_accepted(server):
    r = httpx.post(server.url + "/__test/echo", content=b'{"a":1}',
                   headers={**AUTH, "content-type": "application/json; charset=utf-8"})
    assert r.status_code == 200 and r.json()["json"] == {"a": 1}


def test_api_key_in_json_body_authenticates(server):
    for field in ("LIBRECHAT_CODE_API_KEY", "api_key", "apiKey"):
        r = httpx.post(server.url + "/__test/echo", json={"x": 1, field: API_KEY})
        assert r.status_code == 200, (field, r.text)
        assert r.json()["json"]["x"] == 1  # the body still reaches the handler
    r = httpx.post(server.url + "/__test/echo", json={"x": 1, "api_key": "wrong"})
    assert_error_body(r, 401, "authentication_error")
    r = httpx.post(server.url + "/__test/echo", json={"x": 1})
    assert r.json()["error"] == "Missing API key"


def test_hostile_paths_are_refused(server):
    for path in ("/__test/params/%2e%2e/x/b", "/__test/params/../x/b", "/__test/params/a%2Fb/x/c",
                 "/__test/params/a%00/x/b", "/__test/params/%zz/x/b"):
        r = raw(server, f"GET {path} HTTP/1.1\r\nHost: x\r\nx-api-key: {API_KEY}\r\n"
                        "Connection: close\r\n\r\n".encode())
        assert r.startswith(b"HTTP/1.1 400") or r.startswith(b"HTTP/1.1 404"), (path, r[:100])
    r = httpx.get(server.url + "/__test/params/" + "a" * 3000 + "/x/b", headers=AUTH)
    assert_error_body(r, 414)
    r = httpx.get(server.url + "/__test/params/a%20b/x/c%2B", params={"q": "1+2"}, headers=AUTH)
    assert r.json() == {"a": "a b", "b": "c+", "q": "1+2"}
    assert httpx.get(server.url + "//health").status_code == 404


def test_garbage_request_line_and_server_keeps_serving(server):
    r = raw(server, b"\x16\x03\x01garbage\r\n\r\n")
    assert r == b"" or r.startswith(b"HTTP/1.1 400") or r.startswith(b"HTTP/1.0 400"), r[:80]
    r = raw(server, b"GET\r\n\r\n")
    assert r == b"" or b" 400 " in r.split(b"\r\n")[0]
    assert httpx.get(server.url + "/health").status_code == 200


def test_huge_header_is_refused_and_server_keeps_serving(server):
    r = raw(server, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 100000 + b"\r\n\r\n")
    status = r.split(b"\r\n")[0]
    assert b" 431 " in status or b" 400 " in status or b" 413 " in status, status
    assert httpx.get(server.url + "/health").status_code == 200


def test_slowloris_does_not_block_others(server):
    socks = []
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        socks.append(s)
    try:
        t0 = time.monotonic()
        for _ in range(10):
            assert httpx.get(server.url + "/health", timeout=2).status_code == 200
        assert time.monotonic() - t0 < 2
    finally:
        for s in socks:
            s.close()


def test_deferred_answer_short_is_plain_json(server):
    r = httpx.get(server.url + "/__test/sleep", params={"ms": 300}, headers=AUTH)
    assert r.status_code == 200
    assert r.text.startswith("{")
    assert r.json()["slept_ms"] == 300 and r.json()["cancelled"] is False
    assert r.headers["x-request-id"]


def test_deferred_answer_long_sends_whitespace_keepalive(server):
    arrivals = []
    with httpx.stream("GET", server.url + "/__test/sleep", params={"ms": 7000}, headers=AUTH,
                      timeout=httpx.Timeout(5.0)) as r:  # 5 s idle would fail without spaces
        assert r.status_code == 200
        assert r.headers["content-type"] == "application/json"
        t0 = time.monotonic()
        body = b""
        for chunk in r.iter_raw():
            arrivals.append((time.monotonic() - t0, chunk))
            body += chunk
    text = body.decode()
    assert text.startswith(" ")
    spaces = len(text) - len(text.lstrip(" "))
    assert 2 <= spaces <= 3, text
    assert json.loads(text)["slept_ms"] == 7000


def test_deferred_job_is_cancelled_when_client_disconnects(server):
    rid = "cancel-me-123"
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(f"GET /__test/sleep?ms=20000 HTTP/1.1\r\nHost: x\r\nx-api-key: {API_KEY}\r\n"
              f"X-Request-ID: {rid}\r\n\r\n".encode())
    time.sleep(0.5)
    s.close()
    t0 = time.monotonic()
    assert server.wait_log(f"test job {rid} cancelled", timeout=5), server.log()[-2000:]
    assert time.monotonic() - t0 < 5
    assert httpx.get(server.url + "/health").status_code == 200


def test_deferred_job_cancelled_while_streaming_spaces(server):
    rid = "cancel-streaming-1"
    s = socket.create_connection(("127.0.0.1", server.port))
    s.sendall(f"GET /__test/sleep?ms=30000 HTTP/1.1\r\nHost: x\r\nx-api-key: {API_KEY}\r\n"
              f"X-Request-ID: {rid}\r\n\r\n".encode())
    s.settimeout(6)
    head = s.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head
    s.close()
    assert server.wait_log(f"test job {rid} cancelled", timeout=8), server.log()[-2000:]


def test_many_waiting_requests_do_not_starve_health(kiln_server):
    s = kiln_server(MAX_CONCURRENT_EXECUTIONS="100", HTTP_MAX_CONNECTIONS="1000")
    results = []

    def slow():
        r = httpx.get(s.url + "/__test/sleep", params={"ms": 2500}, headers=AUTH, timeout=30)
        results.append(r.status_code)

    threads = [threading.Thread(target=slow) for _ in range(100)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    worst = 0
    with httpx.Client() as c:
        for _ in range(20):
            t0 = time.monotonic()
            assert c.get(s.url + "/health").status_code == 200
            worst = max(worst, time.monotonic() - t0)
    for t in threads:
        t.join()
    assert results == [200] * 100
    assert worst < 0.5, worst


def test_multipart_upload_is_streamed_part_by_part(server):
    files = [("file", ("a.txt", b"x" * 100000, "text/plain")),
             ("file", ("b.bin", b"\0" * 3, "application/octet-stream"))]
    r = httpx.post(server.url + "/__test/upload", files=files, data={"kind": "user"}, headers=AUTH)
    assert r.status_code == 200, r.text
    parts = r.json()["parts"]
    by_name = {(p["field"], p["filename"]): p for p in parts}
    assert by_name[("file", "a.txt")]["bytes"] == 100000
    assert by_name[("file", "a.txt")]["content_type"] == "text/plain"
    assert by_name[("file", "b.bin")]["bytes"] == 3
    assert by_name[("kind", None)]["bytes"] == 4


def test_multipart_part_error_answers_its_error(server):
    r = httpx.post(server.url + "/__test/upload", files=[("fail", ("f", b"x" * 10))], headers=AUTH)
    assert_error_body(r, 413, "payload_too_large")
    assert httpx.get(server.url + "/health").status_code == 200


def test_file_answer_with_ranges(server):
    data = bytes(i % 251 for i in range(10000))
    r = httpx.get(server.url + "/__test/file", params={"size": 10000}, headers=AUTH)
    assert r.status_code == 200 and r.content == data
    assert r.headers["accept-ranges"] == "bytes"
    assert r.headers["content-disposition"] == 'attachment; filename="test.bin"'
    r = httpx.get(server.url + "/__test/file", params={"size": 10000},
                  headers={**AUTH, "Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["content-range"] == "bytes 100-199/10000"
    r = httpx.get(server.url + "/__test/file", params={"size": 10000},
                  headers={**AUTH, "Range": "bytes=-10"})
    assert r.status_code == 206 and r.content == data[-10:]
    r = httpx.get(server.url + "/__test/file", params={"size": 10000},
                  headers={**AUTH, "Range": "bytes=20000-"})
    assert r.status_code == 416 and r.headers["content-range"] == "bytes */10000"


def test_openapi_and_docs(server):
    r = httpx.get(server.url + "/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.0")
    for path in ("/exec", "/upload", "/upload/batch", "/files/{session_id}",
                 "/download/{session_id}/{file_id}", "/health", "/ready"):
        assert path in doc["paths"], path
    r = httpx.get(server.url + "/docs")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "api-docs.js" in r.text
    js = httpx.get(server.url + "/docs/api-docs.js")
    assert js.status_code == 200 and "openapi.json" in js.text


def test_docs_disabled(kiln_server):
    s = kiln_server(ENABLE_DOCS="false")
    assert httpx.get(s.url + "/openapi.json").status_code == 404
    assert httpx.get(s.url + "/docs").status_code == 404


def test_access_log_line_per_request(server):
    httpx.get(server.url + "/health", headers={"X-Request-ID": "log-check-1"})
    assert server.wait_log('"req_id":"log-check-1"')
    line = next(l for l in server.log().splitlines() if "log-check-1" in l)
    entry = json.loads(line)
    assert entry["method"] == "GET" and entry["path"] == "/health" and entry["status"] == 200
    assert entry["client_ip"] == "127.0.0.1" and entry["bytes"] > 0 and "duration_ms" in entry
    assert API_KEY not in server.log()


def test_graceful_shutdown_drains_in_flight(kiln_server):
    s = kiln_server()
    result = {}

    def slow():
        result["r"] = httpx.get(s.url + "/__test/sleep", params={"ms": 2000}, headers=AUTH,
                                timeout=30)

    with httpx.Client() as keep:
        assert keep.get(s.url + "/ready").status_code == 200
        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.5)
        s.signal(signal.SIGTERM)
        time.sleep(0.3)
        # the kept-alive connection still answers: not ready any more
        r = keep.get(s.url + "/ready")
        assert r.status_code == 503
        assert r.headers.get("connection", "").lower() == "close"
    with pytest.raises(httpx.ConnectError):
        httpx.get(s.url + "/health", timeout=2)
    t.join()
    assert result["r"].status_code == 200 and result["r"].json()["cancelled"] is False
    assert s.proc.wait(timeout=15) == 0
    assert "stopped" in s.log()


def test_shutdown_grace_expiry_cancels_jobs(kiln_server):
    s = kiln_server(SHUTDOWN_GRACE_SECONDS="1")
    rid = "grace-expiry-1"
    sock = socket.create_connection(("127.0.0.1", s.port))
    sock.sendall(f"GET /__test/sleep?ms=60000 HTTP/1.1\r\nHost: x\r\nx-api-key: {API_KEY}\r\n"
                 f"X-Request-ID: {rid}\r\n\r\n".encode())
    time.sleep(0.3)
    t0 = time.monotonic()
    s.signal(signal.SIGTERM)
    assert s.proc.wait(timeout=10) == 0
    assert time.monotonic() - t0 < 5
    assert f"test job {rid} cancelled" in s.log()
    sock.close()


def test_invalid_config_refuses_to_start(kiln_bin, tmp_path):
    r = run_kiln("serve", env={"PATH": "/usr/bin:/bin", "API_PORT": "99999"}, cwd=tmp_path,
                 timeout=10)
    assert r.returncode == 1
    assert "API_PORT" in r.stderr and "99999" in r.stderr


def test_env_file_option(kiln_bin, tmp_path):
    envf = tmp_path / "custom.env"
    envf.write_text("API_PORT=99998\n")
    r = run_kiln("serve", "--env-file", str(envf), env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path,
                 timeout=10)
    assert r.returncode == 1 and "99998" in r.stderr
    r = run_kiln("serve", "--bogus", env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path, timeout=10)
    assert r.returncode == 2
