"""Replays exactly what LibreChat and its agents library send (research/api.md §2) and checks
what they read back.

Gen 1 (AG 3.1.63 / 3.1.77 + classic LibreChat host): X-API-Key or only LIBRECHAT_CODE_API_KEY in
the body, file refs {id, session_id, name}, /upload with a `User-Id` header, the summary listing
with its 23 h rule, /download of image outputs from the exec session, the full-listing fallback
(id from name.split('/')[1], name from metadata['original-filename']).
Gen 2 (AG 3.2+ / newer LibreChat): Authorization headers from authHeaders, file refs
{id, resource_id, name, storage_session_id, kind}, /upload/batch with kind/id fields,
/sessions/{sid}/objects/{fid} liveness and deletes, downloads with ?kind=user&id=."""
import datetime
import re

import httpx

from apihelp import ID_RE
from conftest import API_KEY

UA = {"User-Agent": "LibreChat/1.0"}
IMAGE_RE = re.compile(r"\.(jpg|jpeg|png|gif|webp)$", re.I)
PLOT = ("import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "import pandas as pd\ndf = pd.read_csv('{name}')\nplt.plot(df['a'])\nplt.savefig('chart.png')\n"
        "print(df['a'].sum())")


def test_gen1_classic_flow(server):
    c = httpx.Client(base_url=server.url + "/v1", timeout=60)
    # LibreChat host uploads (crud.js classic): multipart `file`, headers User-Id + X-API-Key
    r = c.post("/upload", headers={**UA, "User-Id": "lc-user-1", "X-API-Key": API_KEY},
               files={"file": ("sales data.csv", b"a\n1\n2\n3\n", "text/csv")}, data={"entity_id": "agent_1"})
    assert r.status_code == 200
    up = r.json()
    assert up["message"] == "success" and re.match(ID_RE, up["session_id"])
    file_id = up["files"][0]["fileId"]
    file_identifier = f"{up['session_id']}/{file_id}"
    # the 23 h rule: the summary listing, 5 s timeout, lastModified recent
    r = c.get(f"/files/{up['session_id']}", params={"detail": "summary"},
              headers={**UA, "X-API-Key": API_KEY}, timeout=5)
    assert r.headers["connection"].lower() == "close"
    [entry] = [e for e in r.json() if e["name"].startswith(file_identifier)]
    age = datetime.datetime.now(datetime.timezone.utc) - datetime.datetime.fromisoformat(
        entry["lastModified"].replace("Z", "+00:00"))
    assert age < datetime.timedelta(hours=23)

    # AG 3.1.63: X-API-Key header AND the key in the body (params spread into the body)
    name = up["files"][0]["filename"]
    body = {"lang": "py", "code": PLOT.format(name=name), "user_id": "lc-user-1",
            "files": [{"id": file_id, "session_id": up["session_id"], "name": name}],
            "LIBRECHAT_CODE_API_KEY": API_KEY}
    r = c.post("/exec", json=body, headers={**UA, "Content-Type": "application/json",
                                            "X-API-Key": API_KEY})
    assert r.status_code == 200
    res = r.json()
    assert res["stdout"] == "6\n" and res["stderr"] == ""
    images = [f for f in res["files"] if IMAGE_RE.search(f["name"])]
    assert [f["name"] for f in images] == ["chart.png"]
    # classic processCodeOutput downloads from the *exec* session with the file id
    d = c.get(f"/download/{res['session_id']}/{images[0]['id']}", headers={**UA, "X-API-Key": API_KEY},
              timeout=15)
    assert d.status_code == 200 and d.content.startswith(b"\x89PNG")

    # AG 3.1.77: no key header, the key only in the body
    body2 = dict(body, code="print(open('%s').read().count(chr(10)))" % name)
    r = c.post("/exec", json=body2, headers={**UA, "Content-Type": "application/json"})
    assert r.status_code == 200 and r.json()["stdout"] == "4\n"

    # the fallback of AG 3.1.x: the full listing of the session
    r = c.get(f"/files/{res['session_id']}", params={"detail": "full"},
              headers={**UA, "X-API-Key": API_KEY})
    listing = r.json()
    ids = {e["name"].split("/")[1] for e in listing}
    names = {e["metadata"]["original-filename"] for e in listing}
    assert file_id in ids and images[0]["id"] in ids and {"chart.png", name} <= names


def test_gen2_current_flow(server):
    c = httpx.Client(base_url=server.url + "/v1", timeout=60)
    auth = {"Authorization": f"Bearer {API_KEY}"}
    # newer LibreChat: /upload/batch with kind, id, then file parts (filepath subdirectories)
    r = c.post("/upload/batch", headers={**UA, **auth},
               data={"kind": "user", "id": "lc-user-2"},
               files=[("file", ("inputs/a.csv", b"a\n5\n6\n", "text/csv")),
                      ("file", ("notes.txt", b"hello", "text/plain"))])
    assert r.status_code == 200
    up = r.json()
    sid = up["storage_session_id"]
    assert up["message"] == "success" and up["succeeded"] == 2 and up["failed"] == 0
    assert all(f["status"] == "success" and re.match(ID_RE, f["fileId"]) for f in up["files"])
    by_name = {f["filename"]: f["fileId"] for f in up["files"]}
    assert set(by_name) == {"inputs/a.csv", "notes.txt"}
    # liveness probe of the stored objects
    for fid in by_name.values():
        meta = c.get(f"/sessions/{sid}/objects/{fid}", headers={**UA, **auth}).json()
        assert meta["size"] > 0 and meta["etag"] and meta["lastModified"]

    # AG 3.9.x execute_code: {lang, code, args?, user_id, files: gen-2 refs}
    refs = [{"id": fid, "resource_id": fid, "name": n, "storage_session_id": sid, "kind": "user"}
            for n, fid in by_name.items()]
    r = c.post("/exec", headers={**UA, **auth, "Content-Type": "application/json"}, json={
        "lang": "py", "args": ["x"], "user_id": "lc-user-2", "files": refs,
        "code": PLOT.format(name="inputs/a.csv") + "\nopen('notes.txt','a').write('!')"})
    assert r.status_code == 200
    res = r.json()
    assert res["stdout"] == "11\n"
    out = {f["name"]: f for f in res["files"]}
    # new output, modified input, untouched input echoed as inherited
    assert out["chart.png"]["storage_session_id"] and not out["chart.png"].get("inherited")
    assert out["notes.txt"]["modified_from"] == {"id": by_name["notes.txt"], "storage_session_id": sid}
    assert out["inputs/a.csv"]["inherited"] is True and out["inputs/a.csv"]["id"] == by_name["inputs/a.csv"]
    # ToolNode re-injects refs with the file's storage_session_id; the host downloads with
    # ?kind=user&id=<user>
    png = out["chart.png"]
    d = c.get(f"/download/{png['storage_session_id']}/{png['id']}",
              params={"kind": "user", "id": "lc-user-2"}, headers={**UA, **auth})
    assert d.status_code == 200 and d.content.startswith(b"\x89PNG")
    note = out["notes.txt"]
    d = c.get(f"/download/{note['storage_session_id']}/{note['id']}",
              params={"kind": "user", "id": "lc-user-2"}, headers={**UA, **auth})
    assert d.content == b"hello!"
    # a follow-up call with session_id and the re-injected files
    follow = [{"id": f["id"], "resource_id": f["id"], "name": f["name"],
               "storage_session_id": f["storage_session_id"], "kind": "user"} for f in res["files"]]
    r = c.post("/exec", headers={**UA, **auth}, json={
        "lang": "py", "user_id": "lc-user-2", "session_id": res["session_id"], "files": follow,
        "code": "print(open('notes.txt').read(), len(open('chart.png','rb').read()) > 0)"})
    assert r.status_code == 200 and r.json()["stdout"] == "hello! True\n"
    # another user's download query sees nothing
    assert c.get(f"/download/{png['storage_session_id']}/{png['id']}",
                 params={"kind": "user", "id": "someone-else"}, headers={**UA, **auth}).status_code == 404
    # deletes: the objects path (LibreChat < 0.8.6 tried only that), then the files path
    assert c.delete(f"/sessions/{sid}/objects/{by_name['notes.txt']}", headers={**UA, **auth}).status_code == 200
    assert c.delete(f"/files/{sid}/{by_name['inputs/a.csv']}", headers={**UA, **auth}).status_code == 200
    assert c.get(f"/sessions/{sid}/objects/{by_name['notes.txt']}", headers={**UA, **auth}).status_code == 404


def test_error_shapes_the_client_maps(server):
    c = httpx.Client(base_url=server.url + "/v1", timeout=30)
    r = c.post("/exec", headers=UA, json={"lang": "py", "code": "print(1)"})
    assert r.status_code == 401  # "not authorized"
    r = c.post("/exec", headers={**UA, "X-API-Key": API_KEY}, json={"lang": "py", "code": ""})
    assert r.status_code == 400 and r.json()["details"][0]["code"] == "empty_code"
    # ToolSearch sends JS with no auth header: refused, not crashed
    r = c.post("/exec", json={"lang": "js", "code": "1", "timeout": 5000})
    assert r.status_code == 401
