"""Executions through the API under load and failure (issue 4): the pandas/matplotlib round trip,
50 concurrent calls, 429 with Retry-After, the whitespace keep-alive, client disconnects, and
crash recovery after kill -9."""
import concurrent.futures
import hashlib
import json
import os
import signal
import socket
import struct
import threading
import time
import zlib

import httpx
import pytest

from apihelp import KEY, Api, mounts_under, procs_with, token
from conftest import KilnServer

PLOT = """
import hashlib, pandas as pd, matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt
df = pd.read_csv('data.csv')
print('rows', len(df), 'sum', int(df['y'].sum()))
fig, ax = plt.subplots()
ax.plot(df['x'], df['y'])
fig.savefig('plot.png')
print('sha', hashlib.sha256(open('plot.png','rb').read()).hexdigest())
"""


def test_upload_exec_download_round_trip_pandas_and_matplotlib(server):
    a = Api(server)
    csv = "x,y\n" + "".join(f"{i},{i * i}\n" for i in range(50))
    up = a.upload([("file", ("data.csv", csv.encode(), "text/csv"))])
    sid, fid = up["session_id"], up["files"][0]["fileId"]
    r = a.exec(PLOT, files=[{"id": fid, "session_id": sid, "name": "data.csv"}])
    assert r["status"] == "ok", r
    lines = r["stdout"].splitlines()
    assert lines[0] == f"rows 50 sum {sum(i * i for i in range(50))}"
    sha = lines[1].split()[1]
    [png] = [f for f in r["files"] if f["name"] == "plot.png"]
    assert png["path"] == "/mnt/data/plot.png" and not png.get("inherited")
    d = a.get(f"/download/{png['storage_session_id']}/{png['id']}")
    assert d.status_code == 200 and d.headers["content-type"] == "image/png"
    body = d.content
    assert hashlib.sha256(body).hexdigest() == sha  # byte-for-byte what the sandbox wrote
    assert body[:8] == b"\x89PNG\r\n\x1a\n"
    length, ctype = struct.unpack(">I4s", body[8:16])
    assert ctype == b"IHDR" and length == 13
    w, h = struct.unpack(">II", body[16:24])
    assert w > 100 and h > 100
    assert zlib.crc32(body[12:29]) == struct.unpack(">I", body[29:33])[0]
    # the input itself is not reported as an output (gen 1)
    assert [f["name"] for f in r["files"]] == ["plot.png"]


def test_fifty_concurrent_execs_succeed_or_get_a_clean_429(kiln_server):
    s = kiln_server(MAX_CONCURRENT_EXECUTIONS=4, MAX_QUEUED_EXECUTIONS=20)

    def one(i):
        r = httpx.post(s.url + "/exec", headers=KEY, timeout=180,
                       json={"lang": "py", "code": f"print({i} * 3)"})
        return i, r

    with concurrent.futures.ThreadPoolExecutor(50) as ex:
        results = list(ex.map(one, range(50)))
    ok = [(i, r.json()) for i, r in results if r.status_code == 200]
    limited = [r for _, r in results if r.status_code == 429]
    assert len(ok) + len(limited) == 50, [r.status_code for _, r in results]
    assert len(ok) >= 24  # 4 running + 20 queued are always admitted
    for i, j in ok:
        assert j["stdout"] == f"{i * 3}\n" and j["status"] == "ok"
    assert len({j["session_id"] for _, j in ok}) == len(ok)
    for r in limited:
        assert int(r.headers["retry-after"]) >= 1
        assert r.json()["retry_after_seconds"] >= 1 and r.json()["error_type"]


def test_queue_full_is_429_with_retry_after(kiln_server):
    s = kiln_server(MAX_CONCURRENT_EXECUTIONS=1, MAX_QUEUED_EXECUTIONS=0)
    slow = threading.Thread(target=lambda: httpx.post(
        s.url + "/exec", headers=KEY, timeout=60,
        json={"lang": "py", "code": "import time\ntime.sleep(3)"}))
    slow.start()
    time.sleep(1.0)
    r = httpx.post(s.url + "/exec", headers=KEY, json={"lang": "py", "code": "print(1)"}, timeout=30)
    slow.join()
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert r.json()["retry_after_seconds"] >= 1
    assert "MAX_CONCURRENT_EXECUTIONS" in r.json()["error"]
    r = httpx.post(s.url + "/exec", headers=KEY, json={"lang": "py", "code": "print(1)"}, timeout=30)
    assert r.status_code == 200


def test_long_run_gets_whitespace_keepalive_then_valid_json(server):
    body = json.dumps({"lang": "py", "code": "import time\ntime.sleep(5)\nprint('done')"}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(b"POST /exec HTTP/1.1\r\nHost: x\r\nX-API-Key: " + KEY["X-API-Key"].encode() +
                 b"\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
                 str(len(body)).encode() + b"\r\n\r\n" + body)
    t0 = time.monotonic()
    first_byte_at = None
    data = b""
    while True:
        c = sock.recv(65536)
        if not c:
            break
        if first_byte_at is None:
            first_byte_at = time.monotonic() - t0
        data += c
    sock.close()
    assert first_byte_at is not None and first_byte_at < 4.5  # headers went out before the end
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    if b"chunked" in head.lower():
        out, buf = b"", rest
        while buf:
            size_line, _, buf = buf.partition(b"\r\n")
            n = int(size_line.split(b";")[0], 16)
            if n == 0:
                break
            out += buf[:n]
            buf = buf[n + 2:]
        rest = out
    assert rest.startswith(b" ")  # the keep-alive spaces
    j = json.loads(rest)  # leading whitespace is valid JSON
    assert j["stdout"] == "done\n" and j["status"] == "ok"


def test_client_disconnect_mid_run_kills_the_sandbox(server):
    tok = token()
    body = json.dumps({"lang": "py", "code": "import time\ntime.sleep(60)", "args": [tok]}).encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    sock.sendall(b"POST /exec HTTP/1.1\r\nHost: x\r\nX-API-Key: " + KEY["X-API-Key"].encode() +
                 b"\r\nContent-Type: application/json\r\nContent-Length: " +
                 str(len(body)).encode() + b"\r\n\r\n" + body)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not procs_with(tok):
        time.sleep(0.1)
    assert procs_with(tok), "the program never started"
    sock.close()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and procs_with(tok):
        time.sleep(0.2)
    assert procs_with(tok) == [], "sandbox still running after the client left"
    # the server keeps serving
    assert Api(server).exec("print(2)")["stdout"] == "2\n"


def test_kill_9_during_executions_and_uploads_then_restart():
    import shutil
    import tempfile
    top = tempfile.mkdtemp(prefix="kiln-crash-")
    os.chmod(top, 0o755)  # the sandbox uids must reach the run directory
    data = os.path.join(top, "data")
    run = os.path.join(top, "run")
    try:
        crash_scenario(data, run)
    finally:
        shutil.rmtree(top, ignore_errors=True)


def crash_scenario(data, run):
    env = {"DATA_DIR": data, "SANDBOX_RUN_DIR": run, "MAX_CONCURRENT_EXECUTIONS": "8"}
    s = KilnServer(env)
    tok = token()
    acked = {}  # (sid, fid) -> bytes
    lock = threading.Lock()
    stop = threading.Event()

    def uploader(n):
        c = httpx.Client(timeout=30)
        i = 0
        while not stop.is_set():
            payload = os.urandom(50_000 + i * 1000) + f"{n}-{i}".encode()
            try:
                r = c.post(s.url + "/upload", headers=KEY,
                           files=[("file", (f"u{n}_{i}.bin", payload, "application/octet-stream"))])
            except httpx.HTTPError:
                return
            if r.status_code == 200:
                j = r.json()
                with lock:
                    acked[(j["session_id"], j["files"][0]["fileId"])] = payload
            i += 1

    def executor(n):
        try:
            r = httpx.post(s.url + "/exec", headers=KEY, timeout=60, json={
                "lang": "py", "args": [tok],
                "code": f"import time\nopen('o{n}.txt','w').write('{n}'*1000)\ntime.sleep(30)"})
        except httpx.HTTPError:
            return
        if r.status_code == 200:  # not expected before the kill, but then it is acknowledged
            for f in r.json()["files"]:
                with lock:
                    acked[(f["storage_session_id"], f["id"])] = f"{n}".encode() * 1000

    threads = [threading.Thread(target=executor, args=(n,)) for n in range(12)]
    threads += [threading.Thread(target=uploader, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and (len(procs_with(tok)) < 4 or len(acked) < 10):
        time.sleep(0.1)
    assert procs_with(tok), "no execution started"
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait()
    stop.set()
    for t in threads:
        t.join(60)
    with lock:
        snapshot = dict(acked)
    assert len(snapshot) >= 10
    s._log.close()

    # the restart reaps what the dead server left running (sandbox inits lose their
    # parent-death signal when they change uid, so they outlive a kill -9)
    s2 = KilnServer(env)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and procs_with(tok):
            time.sleep(0.2)
        assert procs_with(tok) == []
        assert [p for p in procs_with("kiln serve") if os.stat(f"/proc/{p}").st_uid >= 200000
                and "kiln-crash-" in open(f"/proc/{p}/environ", "rb").read().decode(errors="replace")] == []
        c = httpx.Client(timeout=30)
        for (sid, fid), payload in snapshot.items():
            r = c.get(f"{s2.url}/download/{sid}/{fid}", headers=KEY)
            assert r.status_code == 200, (sid, fid)
            assert r.content == payload
        assert mounts_under(run) == []
        temps = [os.path.join(d, f) for d, _, fs in os.walk(data) for f in fs if ".tmp." in f]
        assert temps == []
        # every blob on disk is referenced by a record (no orphans)
        blobs = os.path.join(data, "blobs")
        on_disk = {(os.path.basename(d), f) for d, _, fs in os.walk(blobs) for f in fs}
        listed = set()
        for sid in {sid for sid, _ in on_disk}:
            for f in c.get(f"{s2.url}/files/{sid}", headers=KEY).json():
                listed.add((sid, f["id"]))
        assert on_disk == listed
        assert Api(s2).exec("print('alive')")["stdout"] == "alive\n"
    finally:
        assert s2.stop() == 0


def test_shutdown_cancels_running_executions_and_exits_cleanly(kiln_server):
    s = kiln_server(SHUTDOWN_GRACE_SECONDS=1)
    tok = token()
    result = {}

    def slow():
        try:
            result["r"] = httpx.post(s.url + "/exec", headers=KEY, timeout=60, json={
                "lang": "py", "code": "import time\ntime.sleep(60)", "args": [tok]})
        except httpx.HTTPError as e:
            result["e"] = e

    t = threading.Thread(target=slow)
    t.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not procs_with(tok):
        time.sleep(0.1)
    assert procs_with(tok)
    t0 = time.monotonic()
    s.signal(signal.SIGTERM)
    assert s.proc.wait(timeout=20) == 0
    assert time.monotonic() - t0 < 15
    t.join(30)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and procs_with(tok):
        time.sleep(0.1)
    assert procs_with(tok) == []
