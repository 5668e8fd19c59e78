"""The execution API against a real `kiln serve` (issue 4): every route at / and /v1, the error
paths, user isolation, hostile names, malformed bodies, slow clients, the TTL sweep."""
import hashlib
import json
import re
import socket
import time

import httpx
import pytest

from apihelp import ID_RE, KEY, Api, raw_request


@pytest.fixture
def api(server):
    return Api(server)


@pytest.mark.parametrize("prefix", ["", "/v1"])
def test_exec_runs_python_and_answers_the_contract_fields(server, prefix):
    a = Api(server, prefix)
    r = a.exec("print(6*7)\nopen('out.txt','w').write('x')")
    assert re.match(ID_RE, r["session_id"])
    assert r["stdout"] == "42\n" and r["stderr"] == ""
    assert r["exit_code"] == 0 and r["signal"] is None and r["status"] == "ok"
    # STATE_PERSISTENCE_ENABLED (default): a Python run leaves a state (docs/state.md)
    assert r["has_state"] is True and r["state_size"] > 0 and len(r["state_hash"]) == 64
    for k in ("wall_time_ms", "cpu_time_ms", "memory_peak_kb"):
        assert isinstance(r[k], int)
    [f] = r["files"]
    assert f["name"] == "out.txt" and f["path"] == "/mnt/data/out.txt"
    assert f["storage_session_id"] == r["session_id"] and re.match(ID_RE, f["id"])
    d = a.get(f"/download/{r['session_id']}/{f['id']}")
    assert d.status_code == 200 and d.content == b"x"


def test_failing_code_is_still_200_with_status_error(api):
    r = api.exec("import sys\nprint('before')\nsys.exit(3)")
    assert r["exit_code"] == 3 and r["status"] == "error" and r["stdout"] == "before\n"
    r = api.exec("raise ValueError('boom')")
    assert r["status"] == "error" and "ValueError: boom" in r["stderr"]


def test_exec_args_are_argv_and_json_values_are_stringified(api):
    r = api.exec("import sys, json\nprint(json.dumps(sys.argv[1:]))", args=["a b", 3, {"k": 1}, None])
    assert json.loads(r["stdout"]) == ["a b", "3", '{"k":1}', "null"]


def test_timeout_in_ms_gives_status_timeout(api):
    t0 = time.monotonic()
    r = api.exec("import time\ntime.sleep(30)", timeout=1500)
    assert r["status"] == "timeout" and time.monotonic() - t0 < 15
    assert r["stderr"]


def test_huge_or_negative_timeouts_are_clamped_not_misread(kiln_server):
    # DEFAULT_EXECUTION_TIME 1 s, MAX 6 s: a program sleeping 2 s tells "clamped to the maximum"
    # (ok) from "taken as the default" (timeout). 1e300 does not fit a long long: it must still
    # mean "as long as allowed", not wrap round to a negative number and the default.
    api = Api(kiln_server(DEFAULT_EXECUTION_TIME=1, MAX_EXECUTION_TIME=6))
    sleeper = "import time\ntime.sleep(2)\nprint('done')"
    for t in (1e300, 9.3e18, 2 ** 63 - 1, 60000):
        r = api.exec(sleeper, timeout=t)
        assert r["status"] == "ok" and r["stdout"] == "done\n", (t, r)
    # an integer beyond 64 bits is refused by the JSON parser: 422 malformed_request
    r = api.exec(sleeper, timeout=2 ** 63, expect=422)
    assert "too big integer" in r["error"]
    for t in (-1e300, -5, 0, 0.5, None):
        r = api.exec(sleeper, timeout=t)
        assert r["status"] == "timeout", (t, r)


def test_lang_is_case_insensitive_and_bash_works(api):
    assert api.exec("echo hi", lang="BASH")["stdout"] == "hi\n"
    assert api.exec("print(1)", lang="Py")["stdout"] == "1\n"


def test_non_utf8_output_is_valid_json(api):
    r = api.exec("import sys\nsys.stdout.buffer.write(b'a\\xff\\xfeb\\n')")
    assert r["stdout"].startswith("a") and r["stdout"].endswith("b\n")


@pytest.mark.parametrize("body,field,code", [
    ({"lang": "py", "code": ""}, "code", "empty_code"),
    ({"lang": "py", "code": " \n\t "}, "code", "empty_code"),
    ({"lang": "cobol", "code": "x"}, "lang", "unsupported_language"),
    ({"lang": "py"}, "code", "missing"),
    ({"code": "print(1)"}, "lang", "missing"),
    ({"lang": "py", "code": 5}, "code", "type_error"),
    ({"lang": "py", "code": "1", "files": "x"}, "files", "type_error"),
])
def test_exec_validation_errors_are_400_with_details(api, body, field, code):
    r = api.c.post(api.base + "/exec", json=body, headers=api.h)
    assert r.status_code == 400, r.text
    j = r.json()
    assert j["error_type"] and j["request_id"] and isinstance(j["timestamp"], float)
    assert j["details"][0]["field"] == field and j["details"][0]["code"] == code


def test_exec_bad_entity_id_and_bad_file_refs_are_400(api):
    r = api.c.post(api.base + "/exec", headers=api.h,
                   json={"lang": "py", "code": "1", "entity_id": "x" * 41})
    assert r.status_code == 400 and r.json()["details"][0]["field"] == "entity_id"
    r = api.c.post(api.base + "/exec", headers=api.h,
                   json={"lang": "py", "code": "1", "files": [{"name": "a"}]})
    assert r.status_code == 400


@pytest.mark.parametrize("raw,status", [
    (b"{not json", 422), (b'{"lang": "py", "code": "print(1)"', 422), (b"[1,2]", 400),
    (b"", 422),
])
def test_malformed_json_is_422_and_wrong_shape_400(api, raw, status):
    r = api.c.post(api.base + "/exec", content=raw,
                   headers={**api.h, "Content-Type": "application/json"})
    assert r.status_code == status, r.text


def test_exec_needs_json_and_a_key(server, api):
    r = api.c.post(api.base + "/exec", content=b"code=1", headers={**KEY, "Content-Type": "text/plain"})
    assert r.status_code == 415
    r = httpx.post(server.url + "/exec", json={"lang": "py", "code": "print(1)"})
    assert r.status_code == 401 and r.json()["error"] == "Missing API key"
    # the key in the body (AG 3.1.77 sends only that)
    r = httpx.post(server.url + "/exec", timeout=60,
                   json={"lang": "py", "code": "print(1)", "LIBRECHAT_CODE_API_KEY": KEY["X-API-Key"]})
    assert r.status_code == 200 and r.json()["stdout"] == "1\n"


def test_upload_list_meta_download_delete_round_trip(api):
    body = b"a,b\n1,2\n" * 100
    up = api.upload([("file", ("data.csv", body, "text/csv"))])
    assert up["message"] == "success" and up["session_id"] == up["storage_session_id"]
    [f] = up["files"]
    sid, fid = up["session_id"], f["fileId"]
    assert f["filename"] == "data.csv" and re.match(ID_RE, fid)
    etag = hashlib.sha256(body).hexdigest()

    r = api.get(f"/files/{sid}")
    assert r.status_code == 200 and r.headers["connection"].lower() == "close"
    [full] = r.json()
    assert full["name"] == f"{sid}/{fid}" and full["id"] == fid and full["size"] == len(body)
    assert full["session_id"] == sid and full["storage_session_id"] == sid
    assert full["etag"] == etag and full["contentType"] == "text/csv"
    assert full["metadata"] == {"content-type": "text/csv", "original-filename": "data.csv"}
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$", full["lastModified"])
    [summ] = api.get(f"/files/{sid}", params={"detail": "summary"}).json()
    assert summ["name"] == f"{sid}/{fid}" and set(summ) == {"name", "lastModified"}
    assert api.get(f"/files/{sid}", params={"detail": "simple"}).json() == [
        {"id": fid, "name": "data.csv", "path": "/mnt/data/data.csv"}]

    meta = api.get(f"/sessions/{sid}/objects/{fid}").json()
    assert meta["size"] == len(body) and meta["etag"] == etag and meta["lastModified"]

    d = api.get(f"/download/{sid}/{fid}")
    assert d.status_code == 200 and d.content == body
    assert d.headers["content-type"].startswith("text/csv")
    assert d.headers["content-disposition"] == \
        "attachment; filename=\"data.csv\"; filename*=UTF-8''data.csv"
    part = api.get(f"/download/{sid}/{fid}", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == body[10:20]
    assert api.get(f"/download/{sid}/{fid}", headers={"Range": "bytes=99999-"}).status_code == 416

    assert api.delete(f"/files/{sid}/{fid}").status_code == 200
    assert api.delete(f"/files/{sid}/{fid}").status_code == 404
    assert api.get(f"/download/{sid}/{fid}").status_code == 404
    assert api.get(f"/sessions/{sid}/objects/{fid}").status_code == 404
    assert api.get(f"/files/{sid}").json() == []


def test_delete_by_objects_path_and_v1(server):
    a = Api(server, "/v1")
    up = a.upload([("file", ("x.txt", b"hello", "text/plain"))])
    sid, fid = up["session_id"], up["files"][0]["fileId"]
    assert a.delete(f"/sessions/{sid}/objects/{fid}").status_code == 200
    assert a.delete(f"/sessions/{sid}/objects/{fid}").status_code == 404


def test_unknown_session_lists_empty_and_unknown_file_is_404(api):
    assert api.get("/files/AAAAAAAAAAAAAAAAAAAAA").json() == []
    assert api.get("/files/not-an-id").json() == []
    assert api.get("/download/AAAAAAAAAAAAAAAAAAAAA/BBBBBBBBBBBBBBBBBBBBB").status_code == 404
    assert api.get("/sessions/AAAAAAAAAAAAAAAAAAAAA/objects/x").status_code == 404


def test_utf8_name_gets_sanitised_and_the_disposition_is_utf8(api):
    up = api.upload([("file", ("résumé 2026.pdf", b"%PDF", "application/pdf"))])
    name = up["files"][0]["filename"]
    assert name == "r_sum__2026.pdf"
    d = api.get(f"/download/{up['session_id']}/{up['files'][0]['fileId']}")
    assert d.headers["content-type"] == "application/pdf"
    assert "filename*=UTF-8''r_sum__2026.pdf" in d.headers["content-disposition"]


@pytest.mark.parametrize("raw,expect", [
    ("../../etc/passwd", "_.._.._etc_passwd"),
    (".bashrc", "_.bashrc"),
    ("..", "_.."),
    ("a/b\\c.txt", None),
    ("日本語.txt", "___.txt"),
])
def test_hostile_upload_names_are_sanitised(api, raw, expect):
    up = api.upload([("file", (raw, b"x", "text/plain"))])
    got = up["files"][0]["filename"]
    assert re.match(r"^[A-Za-z0-9._-]+$", got) and not got.startswith(".") and "/" not in got
    if expect is not None:
        assert got == expect, got
    # the file lands under that name in /mnt/data, nowhere else
    r = api.exec("import os\nprint(sorted(os.listdir('.')))",
                 files=[{"id": up["files"][0]["fileId"], "session_id": up["session_id"], "name": raw}])
    assert got in r["stdout"]


def test_very_long_and_nul_names(server, api):
    up = api.upload([("file", ("a" * 1000 + ".csv", b"x", "text/csv"))])
    name = up["files"][0]["filename"]
    assert len(name) <= 255 and name.endswith(".csv")
    # a NUL in the multipart filename: raw request, the name is cut or sanitised, never trusted
    boundary = "XyZ"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"ev\x00il/../x.txt\"\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
            f"--{boundary}--\r\n").encode()
    r = httpx.post(server.url + "/upload", content=body, headers={
        **KEY, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert r.status_code in (200, 400), r.text
    if r.status_code == 200:
        n = r.json()["files"][0]["filename"]
        assert "\x00" not in n and "/" not in n and not n.startswith(".")


def test_batch_keeps_sanitised_subdirectories_and_refuses_dotdot(api):
    up = api.upload([("file", ("dir/sub/a.txt", b"A", "text/plain")),
                     ("file", ("../escape.txt", b"B", "text/plain")),
                     ("file", ("b.txt", b"B", "text/plain"))], path="/upload/batch",
                    data={"kind": "user", "id": "u-batch"})
    assert up["message"] == "partial" and up["succeeded"] == 2 and up["failed"] == 1
    assert up["session_id"] == up["storage_session_id"]
    ok = [f for f in up["files"] if f["status"] == "success"]
    bad = [f for f in up["files"] if f["status"] == "error"]
    assert sorted(f["filename"] for f in ok) == ["b.txt", "dir/sub/a.txt"]
    assert bad[0]["filename"] == "../escape.txt" and bad[0]["error"]
    r = api.exec("import os\nprint(open('dir/sub/a.txt').read())", user_id="u-batch",
                 files=[{"id": f["fileId"], "storage_session_id": up["session_id"], "name": f["filename"],
                         "kind": "user"} for f in ok])
    assert r["stdout"] == "A\n"


def test_batch_all_failed_is_400(api):
    r = api.c.post(api.base + "/upload/batch", headers=api.h,
                   files=[("file", ("../a", b"x", "text/plain"))])
    assert r.status_code == 400 and r.json()["error_type"]


def test_upload_without_a_file_part_is_400_and_not_multipart_415(api):
    r = api.c.post(api.base + "/upload", headers=api.h, data={"entity_id": "e1"},
                   files=[("other", ("x", b"", "text/plain"))])
    assert r.status_code == 400
    r = api.c.post(api.base + "/upload", headers={**api.h, "Content-Type": "application/json"},
                   content=b"{}")
    assert r.status_code == 415


def test_malformed_multipart_is_refused(server):
    for ctype, body in [
        ("multipart/form-data", b"--x\r\n"),  # no boundary parameter
        ("multipart/form-data; boundary=x", b"garbage without any boundary at all"),
        ("multipart/form-data; boundary=x",
         b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nunterminated"),
    ]:
        r = httpx.post(server.url + "/upload", content=body, headers={**KEY, "Content-Type": ctype})
        assert r.status_code in (400, 415, 422), (ctype, body, r.status_code, r.text)


def test_file_size_limits_are_413_naming_the_limit(kiln_server):
    s = kiln_server(MAX_FILE_SIZE_MB=1, MAX_FILES_PER_SESSION=2)
    a = Api(s)
    r = a.c.post(s.url + "/upload", headers=a.h,
                 files=[("file", ("big.bin", b"\0" * (1024 * 1024 + 1), "application/octet-stream"))])
    assert r.status_code == 413 and "MAX_FILE_SIZE_MB" in r.json()["error"]
    r = a.c.post(s.url + "/upload", headers=a.h,
                 files=[("file", (f"f{i}.txt", b"x", "text/plain")) for i in range(3)])
    assert r.status_code == 413 and "MAX_FILES_PER_SESSION" in r.json()["error"]
    # the failed uploads left no session behind
    data = s.env["DATA_DIR"]
    import os
    blobs = os.path.join(data, "blobs")
    deadline = time.monotonic() + 5
    while True:
        leftovers = [os.path.join(d, f) for d, _, fs in os.walk(blobs) for f in fs]
        if not leftovers or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert leftovers == []


def test_route_params_with_traversal_are_refused(server):
    for path in ["/download/..%2F..%2Fetc/passwd", "/download/../../etc/passwd",
                 "/files/%2e%2e", "/download/AAAAAAAAAAAAAAAAAAAAA/%00abc",
                 "/download/" + "A" * 5000 + "/x"]:
        r = httpx.get(server.url + path, headers=KEY)
        assert r.status_code in (400, 404, 414), (path, r.status_code)
        assert b"root:" not in r.content


def headers_for(user):
    return {"User-Id": user}


def test_user_isolation_across_list_download_delete_and_exec(server):
    alice = Api(server, headers={"User-Id": "alice"})
    bob = Api(server, headers={"User-Id": "bob"})
    up = alice.upload([("file", ("secret.txt", b"alice-secret", "text/plain"))])
    sid, fid = up["session_id"], up["files"][0]["fileId"]
    assert len(alice.get(f"/files/{sid}").json()) == 1
    # bob sees nothing, cannot read, probe or delete; same answers as for a missing session
    assert bob.get(f"/files/{sid}").json() == []
    assert bob.get(f"/download/{sid}/{fid}").status_code == 404
    assert bob.get(f"/sessions/{sid}/objects/{fid}").status_code == 404
    r = bob.delete(f"/files/{sid}/{fid}")
    assert r.status_code == 404 and "secret" not in r.text
    # LibreChat's download query names the user too
    assert bob.get(f"/download/{sid}/{fid}", headers={"User-Id": ""},
                   params={"kind": "user", "id": "bob"}).status_code == 404
    assert alice.get(f"/download/{sid}/{fid}", headers={"User-Id": ""},
                     params={"kind": "user", "id": "alice"}).content == b"alice-secret"
    # exec: a file ref into alice's session is 403; her session id is not usable by bob
    r = bob.c.post(server.url + "/exec", headers=bob.h, json={
        "lang": "py", "code": "print(open('secret.txt').read())", "user_id": "bob",
        "files": [{"id": fid, "session_id": sid, "name": "secret.txt"}]})
    assert r.status_code == 403 and "alice-secret" not in r.text
    r = bob.exec("import os\nprint(os.listdir('.'))", user_id="bob", session_id=sid)
    assert r["session_id"] != sid and "secret" not in r["stdout"]
    # alice still has it
    assert alice.get(f"/download/{sid}/{fid}").content == b"alice-secret"
    r = alice.exec("print(open('secret.txt').read())", user_id="alice",
                   files=[{"id": fid, "session_id": sid, "name": "secret.txt"}])
    assert r["stdout"] == "alice-secret\n" and r["session_id"] == sid


def test_session_reuse_rules(api):
    r1 = api.exec("open('a.txt','w').write('1')")
    sid = r1["session_id"]
    r2 = api.exec("import os\nprint(sorted(os.listdir('.')))", session_id=sid)
    assert r2["session_id"] == sid and "a.txt" in r2["stdout"]
    r3 = api.exec("print(1)", session_id="AAAAAAAAAAAAAAAAAAAAA")
    assert r3["session_id"] != "AAAAAAAAAAAAAAAAAAAAA"


def test_modified_input_comes_back_with_modified_from(api):
    up = api.upload([("file", ("n.txt", b"old", "text/plain"))])
    sid, fid = up["session_id"], up["files"][0]["fileId"]
    r = api.exec("open('n.txt','w').write('new')",
                 files=[{"id": fid, "resource_id": fid, "storage_session_id": sid, "name": "n.txt",
                         "kind": "user"}])
    [f] = [f for f in r["files"] if not f.get("inherited")]
    assert f["name"] == "n.txt" and f["modified_from"] == {"id": fid, "storage_session_id": sid}
    assert api.get(f"/download/{f['storage_session_id']}/{f['id']}").content == b"new"
    assert api.get(f"/download/{sid}/{fid}").content == b"old"


def test_truncated_body_and_slow_client(server):
    # announce 100 bytes, send 10, close: the server must not hang or crash
    body = b'{"lang":"p'
    out = raw_request(server.port, b"POST /exec HTTP/1.1\r\nHost: x\r\nX-API-Key: " +
                      KEY["X-API-Key"].encode() + b"\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n" + body, read_timeout=1.0)
    assert out == b"" or out.startswith(b"HTTP/1.1 4")
    # a slow client trickling its body a byte at a time still gets its answer
    s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    payload = json.dumps({"lang": "py", "code": "print('slow')"}).encode()
    s.sendall(b"POST /exec HTTP/1.1\r\nHost: x\r\nX-API-Key: " + KEY["X-API-Key"].encode() +
              b"\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
              str(len(payload)).encode() + b"\r\n\r\n")
    for i in range(0, len(payload), 8):
        s.sendall(payload[i:i + 8])
        time.sleep(0.05)
    # meanwhile the server answers others
    assert httpx.get(server.url + "/health", timeout=5).status_code == 200
    resp = b""
    while True:
        c = s.recv(65536)
        if not c:
            break
        resp += c
    s.close()
    assert resp.startswith(b"HTTP/1.1 200") and b'"stdout":"slow\\n"' in resp
    assert httpx.get(server.url + "/health").status_code == 200


def test_ttl_sweep_removes_sessions_records_and_bytes(kiln_server):
    import os
    s = kiln_server(SESSION_TTL_SECONDS=2)
    a = Api(s)
    up = a.upload([("file", ("t.txt", b"ttl", "text/plain"))])
    sid, fid = up["session_id"], up["files"][0]["fileId"]
    blob = os.path.join(s.env["DATA_DIR"], "blobs", sid, fid)
    assert os.path.exists(blob)
    assert a.get(f"/download/{sid}/{fid}").status_code == 200
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and os.path.exists(blob):
        time.sleep(0.25)
    assert not os.path.exists(blob), "the sweeper did not remove the bytes"
    assert a.get(f"/files/{sid}").json() == []
    assert a.get(f"/download/{sid}/{fid}").status_code == 404


def vm_hwm_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def test_large_upload_streams_with_flat_rss(kiln_server):
    s = kiln_server(MAX_FILE_SIZE_MB=400, MAX_TOTAL_FILE_SIZE_MB=400)
    size = 200 * 1024 * 1024
    chunk = bytes(range(256)) * 4096  # 1 MiB
    boundary = "kilnbigupload"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()

    def body():
        yield head
        for _ in range(size // len(chunk)):
            yield chunk
        yield tail

    before = vm_hwm_kb(s.proc.pid)
    r = httpx.post(s.url + "/upload", content=body(), timeout=300, headers={
        **KEY, "Content-Type": f"multipart/form-data; boundary={boundary}",
        "Content-Length": str(len(head) + size + len(tail))})
    assert r.status_code == 200, r.text
    grew_mb = (vm_hwm_kb(s.proc.pid) - before) / 1024
    assert grew_mb < 40, f"peak RSS grew by {grew_mb:.1f} MB for a 200 MB upload"
    sid, fid = r.json()["session_id"], r.json()["files"][0]["fileId"]
    meta = httpx.get(f"{s.url}/sessions/{sid}/objects/{fid}", headers=KEY).json()
    assert meta["size"] == size
    expect = hashlib.sha256()
    for _ in range(size // len(chunk)):
        expect.update(chunk)
    assert meta["etag"] == expect.hexdigest()


def test_jwt_sub_binds_the_user_whatever_the_request_claims(kiln_server, tmp_path):
    import jwt as pyjwt
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519
    key = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "ed.pem").write_bytes(key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    s = kiln_server(JWT_PUBLIC_KEYS_DIR=str(tmp_path))

    def bearer(sub):
        now = int(time.time())
        t = pyjwt.encode({"iss": "librechat", "aud": "codeapi", "sub": sub, "iat": now, "nbf": now,
                          "exp": now + 120}, key, algorithm="EdDSA")
        return {"Authorization": f"Bearer {t}"}

    c = httpx.Client(timeout=60)
    r = c.post(s.url + "/upload", headers={**bearer("alice"), "User-Id": "mallory"},
               files=[("file", ("a.txt", b"alice-data", "text/plain"))])
    sid, fid = r.json()["session_id"], r.json()["files"][0]["fileId"]
    # bob, even claiming to be alice in the header, the query and the body, sees nothing
    bob = {**bearer("bob"), "User-Id": "alice"}
    assert c.get(f"{s.url}/files/{sid}", headers=bob).json() == []
    assert c.get(f"{s.url}/download/{sid}/{fid}", headers=bob,
                 params={"kind": "user", "id": "alice"}).status_code == 404
    assert c.delete(f"{s.url}/files/{sid}/{fid}", headers=bob).status_code == 404
    r = c.post(s.url + "/exec", headers=bob, json={
        "lang": "py", "code": "print(open('a.txt').read())", "user_id": "alice",
        "files": [{"id": fid, "session_id": sid, "name": "a.txt"}]})
    assert r.status_code == 403 and "alice-data" not in r.text
    # alice, with a JWT, reaches her file even while naming someone else
    r = c.post(s.url + "/exec", headers=bearer("alice"), json={
        "lang": "py", "code": "print(open('a.txt').read())", "user_id": "mallory",
        "files": [{"id": fid, "session_id": sid, "name": "a.txt"}]})
    assert r.status_code == 200 and r.json()["stdout"] == "alice-data\n"
    assert c.get(f"{s.url}/download/{sid}/{fid}", headers=bearer("alice")).content == b"alice-data"
