"""HTTPS from cert/key files (both configuration forms), HSTS, and the HTTP→HTTPS redirect."""
import os
import subprocess

import httpx
import pytest

from conftest import API_KEY


@pytest.fixture(scope="module")
def cert_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ssl")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem")],
                   check=True, capture_output=True)
    return d


def test_https_with_cert_and_key_files(kiln_server, cert_dir):
    s = kiln_server(ENABLE_HTTPS="true", HTTPS_PORT="0", SSL_CERT_FILE=cert_dir / "cert.pem",
                    SSL_KEY_FILE=cert_dir / "key.pem")
    assert s.scheme == "https"
    r = httpx.get(s.url + "/health", verify=str(cert_dir / "cert.pem"))
    assert r.status_code == 200 and r.json()["status"] == "healthy"
    assert r.headers["strict-transport-security"].startswith("max-age=")
    r = httpx.get(s.url + "/__test/file", headers={"x-api-key": API_KEY},
                  verify=str(cert_dir / "cert.pem"))
    assert r.status_code == 200
    # plain HTTP spoken to the TLS port gets no answer
    with pytest.raises(httpx.HTTPError):
        httpx.get(s.url.replace("https://", "http://") + "/health", timeout=3)


def test_https_with_certs_path(kiln_server, cert_dir):
    s = kiln_server(ENABLE_HTTPS="true", HTTPS_PORT="0", SSL_CERTS_PATH=cert_dir)
    r = httpx.get(s.url + "/health", verify=str(cert_dir / "cert.pem"))
    assert r.status_code == 200


def test_https_refuses_to_start_without_cert(kiln_bin, tmp_path):
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "API_HOST": "127.0.0.1",
           "ENABLE_HTTPS": "true", "HTTPS_PORT": "0", "SSL_CERTS_PATH": str(tmp_path / "none")}
    r = subprocess.run([kiln_bin, "serve"], env=env, cwd=tmp_path, capture_output=True, text=True,
                       timeout=10)
    assert r.returncode == 1
    assert "cert.pem" in r.stderr


def test_http_redirects_to_https(kiln_server, cert_dir):
    s = kiln_server(ENABLE_HTTPS="true", HTTPS_PORT="0", SSL_REDIRECT="true", API_PORT="0",
                    SSL_CERT_FILE=cert_dir / "cert.pem", SSL_KEY_FILE=cert_dir / "key.pem")
    assert s.redirect_port and s.redirect_port != s.port
    r = httpx.get(f"http://127.0.0.1:{s.redirect_port}/v1/health?x=1")
    assert r.status_code in (301, 308)
    assert r.headers["location"] == f"https://127.0.0.1:{s.port}/v1/health?x=1"
    r = httpx.post(f"http://localhost:{s.redirect_port}/exec", json={})
    assert r.status_code == 308
    assert r.headers["location"] == f"https://localhost:{s.port}/exec"
    # following it lands on the HTTPS API
    r = httpx.get(f"http://127.0.0.1:{s.redirect_port}/health", follow_redirects=True,
                  verify=str(cert_dir / "cert.pem"))
    assert r.status_code == 200 and r.url.scheme == "https"
