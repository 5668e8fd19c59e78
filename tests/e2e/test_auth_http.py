"""Every authentication form of the contract, and its failures, through HTTP."""
import base64
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from conftest import API_KEY

MASTER = "master-key-0123456789abcdefABCDEF"


def who(s, headers=None, path="/__test/whoami"):
    return httpx.get(s.url + path, headers=headers or {})


def assert_401(r, msg=None):
    assert r.status_code == 401, r.text
    body = r.json()
    assert body["error_type"] == "authentication_error"
    assert set(body) >= {"error", "error_type", "details", "request_id", "timestamp"}
    if msg:
        assert body["error"] == msg
    assert API_KEY not in r.text


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    d = tmp_path_factory.mktemp("jwtkeys")
    ed = ed25519.Ed25519PrivateKey.generate()
    rs = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pub = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    (d / "ed.pem").write_bytes(ed.public_key().public_bytes(*pub))
    (d / "rs.pem").write_bytes(rs.public_key().public_bytes(*pub))
    other = ed25519.Ed25519PrivateKey.generate()
    return {"dir": d, "ed": ed, "rs": rs, "other": other}


def token(key, alg, **claims):
    now = int(time.time())
    base = {"iss": "librechat", "aud": "codeapi", "sub": "user-42", "iat": now, "nbf": now,
            "exp": now + 120}
    base.update(claims)
    base = {k: v for k, v in base.items() if v is not None}
    return jwt.encode(base, key, algorithm=alg)


@pytest.fixture
def srv(kiln_server, keys):
    return kiln_server(JWT_PUBLIC_KEYS_DIR=keys["dir"], MASTER_API_KEY=MASTER,
                       AUTH_MAX_FAILURES="10")


def test_api_key_header(srv):
    r = who(srv, {"x-api-key": API_KEY})
    assert r.status_code == 200 and r.json()["method"] == "key"
    assert_401(who(srv, {"x-api-key": "wrong"}))


def test_configurable_key_header(kiln_server):
    s = kiln_server(API_KEY_HEADER="X-Code-Key")
    assert who(s, {"X-Code-Key": API_KEY}).status_code == 200
    assert_401(who(s, {"x-api-key": API_KEY}), "Missing API key")


def test_bearer_static_key(srv):
    assert who(srv, {"Authorization": f"Bearer {API_KEY}"}).status_code == 200
    assert_401(who(srv, {"Authorization": "Bearer nope"}))


def test_basic_user_or_password_is_the_key(srv):
    for cred in (f"{API_KEY}:", f"{API_KEY}:x", f":{API_KEY}"):
        h = {"Authorization": "Basic " + base64.b64encode(cred.encode()).decode()}
        assert who(srv, h).status_code == 200, cred
    assert_401(who(srv, {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()}))


def test_body_key_fields(srv):
    for field in ("LIBRECHAT_CODE_API_KEY", "api_key", "apiKey"):
        r = httpx.post(srv.url + "/__test/whoami", json={field: API_KEY})
        assert r.status_code == 200 and r.json()["method"] == "key", field
    assert_401(httpx.post(srv.url + "/__test/whoami", json={"api_key": "bad"}))
    assert_401(httpx.post(srv.url + "/__test/whoami", json={}), "Missing API key")


def test_missing_credential(srv):
    assert_401(who(srv), "Missing API key")


def test_two_different_credentials_are_400(srv):
    r = who(srv, {"x-api-key": API_KEY, "Authorization": "Bearer something-else"})
    assert r.status_code == 400
    assert r.json()["error_type"] == "validation_error"


@pytest.mark.parametrize("alg,kname", [("EdDSA", "ed"), ("RS256", "rs")])
def test_jwt_valid(srv, keys, alg, kname):
    r = who(srv, {"Authorization": "Bearer " + token(keys[kname], alg)})
    assert r.status_code == 200, r.text
    assert r.json() == {"method": "jwt", "user_id": "user-42", "key_id": r.json()["key_id"]}


@pytest.mark.parametrize("claims", [
    {"exp": int(time.time()) - 120, "iat": int(time.time()) - 200, "nbf": int(time.time()) - 200},
    {"nbf": int(time.time()) + 600, "iat": int(time.time()) + 600, "exp": int(time.time()) + 700},
    {"aud": "other"}, {"iss": "evil"}, {"exp": int(time.time()) + 3600},
])
def test_jwt_bad_claims(srv, keys, claims):
    assert_401(who(srv, {"Authorization": "Bearer " + token(keys["ed"], "EdDSA", **claims)}))


def test_jwt_wrong_key_tampered_and_alg_none(srv, keys):
    assert_401(who(srv, {"Authorization": "Bearer " + token(keys["other"], "EdDSA")}))
    t = token(keys["ed"], "EdDSA")
    h, p, sig = t.split(".")
    payload = base64.urlsafe_b64decode(p + "==").replace(b"user-42", b"user-43")
    p2 = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
    assert_401(who(srv, {"Authorization": f"Bearer {h}.{p2}.{sig}"}))
    none = jwt.encode({"iss": "librechat", "aud": "codeapi", "sub": "x",
                       "exp": int(time.time()) + 60}, None, algorithm="none")
    assert_401(who(srv, {"Authorization": f"Bearer {none}"}))


def test_failures_per_ip_are_limited_to_429(kiln_server):
    s = kiln_server(AUTH_MAX_FAILURES="10")
    for _ in range(10):
        assert_401(who(s, {"x-api-key": "wrong"}))
    r = who(s, {"x-api-key": "wrong"})
    assert r.status_code == 429
    assert int(r.headers["retry-after"]) > 0
    assert r.json()["retry_after_seconds"] == int(r.headers["retry-after"])
    assert r.json()["error_type"] == "rate_limit_exceeded"
    # health needs no auth and is never limited
    assert httpx.get(s.url + "/health").status_code == 200


def test_auth_disabled_and_trusted_networks(kiln_server):
    s = kiln_server(AUTH_ENABLED="false", MASTER_API_KEY=MASTER)
    r = who(s)
    assert r.status_code == 200 and r.json()["method"] == "none"
    assert who(s, path="/api/v1/admin/__test/whoami").status_code in (401, 403)
    t = kiln_server(AUTH_TRUSTED_NETWORKS="127.0.0.0/8", MASTER_API_KEY=MASTER)
    r = who(t)
    assert r.status_code == 200 and r.json()["method"] == "trusted"
    assert who(t, path="/api/v1/admin/__test/whoami").status_code in (401, 403)


def test_admin_routes_need_master_key(srv):
    path = "/api/v1/admin/__test/whoami"
    r = who(srv, {"x-api-key": MASTER}, path=path)
    assert r.status_code == 200 and r.json()["method"] == "master"
    assert who(srv, {"x-api-key": API_KEY}, path=path).status_code in (401, 403)
    assert who(srv, path=path).status_code == 401
    # admin routes are mounted under /api/v1/admin only
    assert httpx.get(srv.url + "/v1/api/v1/admin/__test/whoami").status_code == 404


def test_public_routes_need_no_auth(srv):
    for p in ("/health", "/ready", "/openapi.json", "/docs", "/v1/health"):
        assert httpx.get(srv.url + p).status_code == 200, p
    assert httpx.options(srv.url + "/__test/whoami").status_code == 204
