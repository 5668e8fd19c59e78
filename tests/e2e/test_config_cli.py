"""`kiln config validate|summary|security|template|export|docs` through the real binary.

Every run uses a scrubbed environment (the host may set SSL_CERT_FILE, LOG_LEVEL... for other
programs) and a temporary working directory, so only what a test sets is seen."""
import json
import os
import pathlib
import subprocess

import pytest

from conftest import KILN_BIN

SOURCE_DIR = pathlib.Path(os.environ.get("KILN_SOURCE_DIR",
                                         pathlib.Path(__file__).resolve().parents[2]))
SECRET = "s3cr3t-Value-That-Must-Not-Leak-0123456789"


def kiln_config(tmp_path, *args, env=None, dotenv=None):
    """Run `kiln config ARGS` in tmp_path with only PATH and `env` in the environment."""
    if dotenv is not None:
        (tmp_path / ".env").write_text(dotenv)
    full_env = {"PATH": "/usr/bin:/bin", "DATA_DIR": str(tmp_path / "data")}
    full_env.update(env or {})
    return subprocess.run([KILN_BIN, "config", *args], env=full_env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


def export(tmp_path, **kw):
    r = kiln_config(tmp_path, "export", **kw)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("sub", ["validate", "summary", "security", "template", "export", "docs"])
def test_every_subcommand_has_help(kiln_bin, tmp_path, sub):
    r = kiln_config(tmp_path, sub, "--help")
    assert r.returncode == 0
    assert r.stdout.startswith(f"usage: kiln config {sub}")
    assert "--env-file" in r.stdout


def test_config_without_subcommand_is_a_usage_error(kiln_bin, tmp_path):
    r = kiln_config(tmp_path)
    assert r.returncode == 2
    assert "validate" in r.stderr
    r = kiln_config(tmp_path, "frobnicate")
    assert r.returncode == 2 and "unknown subcommand" in r.stderr
    r = kiln_config(tmp_path, "validate", "--bogus")
    assert r.returncode == 2 and "unknown option" in r.stderr


def test_validate_accepts_the_defaults(kiln_bin, tmp_path):
    r = kiln_config(tmp_path, "validate")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "valid" in r.stdout


def test_validate_names_variable_value_and_allowed(kiln_bin, tmp_path):
    r = kiln_config(tmp_path, "validate", env={"API_PORT": "70000", "LOG_FORMAT": "xml",
                                               "MAX_MEMORY_MB": "lots"})
    assert r.returncode == 1
    out = r.stdout
    assert "API_PORT=70000" in out and "0 to 65535" in out
    assert "LOG_FORMAT=xml" in out and "json|text" in out
    assert "MAX_MEMORY_MB=lots" in out and "128Mi" in out
    assert "3 problems" in out  # every problem, not only the first


def test_validate_cross_checks(kiln_bin, tmp_path):
    env = {
        "ENABLE_HTTPS": "true", "SSL_CERTS_PATH": str(tmp_path / "nossl"),
        "STORE": "redis", "REDIS_URL": "http://nope",
        "BLOB": "s3",
        "AUTH_TRUSTED_NETWORKS": "10.0.0.0/8,not-a-net",
        "CORS_ORIGINS": "https://ok.example.com,ftp://bad",
        "API_KEYS": "aaaaaaaaaaaaaaaaaaaa,,bbbbbbbbbbbbbbbbbbbbbbb",
        "LOG_FILE": "/nonexistent-dir/kiln.log",
        "DEFAULT_EXECUTION_TIME": "60", "MAX_EXECUTION_TIME": "30",
        "MAX_FILE_SIZE_MB": "100", "MAX_TOTAL_FILE_SIZE_MB": "50",
        "K8S_MEMORY_REQUEST": "2Gi",
    }
    r = kiln_config(tmp_path, "validate", env=env)
    assert r.returncode == 1
    out = r.stdout
    for needle in ["SSL_CERTS_PATH=" + str(tmp_path / "nossl"), "cert.pem",
                   "REDIS_URL", "MINIO_ACCESS_KEY", "'not-a-net' is not a network",
                   "'ftp://bad' is not an origin", "API_KEYS: entry 2 is empty",
                   "LOG_FILE=/nonexistent-dir/kiln.log",
                   "DEFAULT_EXECUTION_TIME=60 exceeds MAX_EXECUTION_TIME=30",
                   "MAX_FILE_SIZE_MB=100 exceeds MAX_TOTAL_FILE_SIZE_MB=50",
                   "K8S_MEMORY_REQUEST=2Gi exceeds K8S_MEMORY_LIMIT=512Mi"]:
        assert needle in out, f"{needle!r} missing from:\n{out}"
    assert "http://nope" not in out  # REDIS_URL is a secret: never echoed


def test_validate_https_with_readable_cert_and_key(kiln_bin, tmp_path):
    ssl = tmp_path / "certs"  # not ./ssl, the default SSL_CERTS_PATH
    ssl.mkdir()
    (ssl / "cert.pem").write_text("x")
    (ssl / "key.pem").write_text("x")
    r = kiln_config(tmp_path, "validate", env={"ENABLE_HTTPS": "true",
                                               "SSL_CERTS_PATH": str(ssl)})
    assert r.returncode == 0, r.stdout
    r = kiln_config(tmp_path, "validate", env={"ENABLE_HTTPS": "true",
                                               "SSL_CERT_FILE": str(ssl / "cert.pem"),
                                               "SSL_KEY_FILE": str(ssl / "key.pem")})
    assert r.returncode == 0, r.stdout
    # a lone SSL_CERT_FILE (OpenSSL's CA-bundle variable) falls back to SSL_CERTS_PATH
    r = kiln_config(tmp_path, "validate", env={"ENABLE_HTTPS": "true", "SSL_CERTS_PATH": str(ssl),
                                               "SSL_CERT_FILE": "/etc/ssl/certs/ca.crt"})
    assert r.returncode == 0, r.stdout
    r = kiln_config(tmp_path, "validate", env={"ENABLE_HTTPS": "true",
                                               "SSL_CERT_FILE": str(ssl / "cert.pem")})
    assert r.returncode == 1
    assert "SSL_CERTS_PATH=./ssl" in r.stdout and "SSL_KEY_FILE=(unset)" in r.stdout
    r = kiln_config(tmp_path, "validate", env={"ENABLE_HTTPS": "true",
                                               "SSL_CERT_FILE": str(ssl / "cert.pem"),
                                               "SSL_KEY_FILE": str(ssl / "missing.pem")})
    assert r.returncode == 1
    assert f"SSL_KEY_FILE={ssl / 'missing.pem'} is not a readable file" in r.stdout


def test_codemie_aliases_with_value_maps_and_units(kiln_bin, tmp_path):
    cfg = export(tmp_path, env={
        "CODE_EXECUTOR_EXECUTION_MODE": "sandbox", "CODE_EXECUTOR_VERBOSE": "true",
        "CODE_EXECUTOR_SESSION_TIMEOUT": "300.0", "CODE_EXECUTOR_EXECUTION_TIMEOUT": "45.0",
        "CODE_EXECUTOR_MEMORY_LIMIT": "256Mi", "CODE_EXECUTOR_SKIP_ENVIRONMENT_SETUP": "true",
        "CODE_EXECUTOR_NAMESPACE": "codemie-runtime"})
    assert cfg["EXECUTION_MODE"] == "kubernetes"
    assert cfg["LOG_LEVEL"] == "DEBUG"
    assert cfg["SESSION_TTL_HOURS"] == 1  # 300 s rounded up to whole hours, never 0 (= never)
    assert cfg["MAX_EXECUTION_TIME"] == 45
    assert cfg["MAX_MEMORY_MB"] == 256 and cfg["K8S_MEMORY_LIMIT"] == "256Mi"
    assert cfg["POD_POOL_WARMUP_ON_STARTUP"] is False
    assert cfg["K8S_NAMESPACE"] == "codemie-runtime"
    r = kiln_config(tmp_path, "validate", env={"CODE_EXECUTOR_EXECUTION_MODE": "cloud"})
    assert r.returncode == 1
    assert "CODE_EXECUTOR_EXECUTION_MODE=cloud" in r.stdout and "sandbox" in r.stdout


def test_dotenv_precedence_through_the_binary(kiln_bin, tmp_path):
    dotenv = ("# comment\nexport API_PORT=9000\nAPI_HOST='127.0.0.1'  # inline\n"
              "LOG_LEVEL=debug\nCODE_EXECUTOR_EXECUTION_TIMEOUT=50\n")
    cfg = export(tmp_path, dotenv=dotenv, env={"API_PORT": "9001"})
    assert cfg["API_PORT"] == 9001           # the environment wins over .env
    assert cfg["API_HOST"] == "127.0.0.1"    # .env wins over the default
    assert cfg["LOG_LEVEL"] == "DEBUG"       # choices stored in the table's spelling
    assert cfg["MAX_EXECUTION_TIME"] == 50   # aliases work in .env too
    # an alias in the environment beats the primary name in .env
    cfg = export(tmp_path, dotenv="MAX_EXECUTION_TIME=20\n",
                 env={"CODE_EXECUTOR_EXECUTION_TIMEOUT": "40"})
    assert cfg["MAX_EXECUTION_TIME"] == 40
    r = kiln_config(tmp_path, "summary", dotenv=dotenv, env={"API_PORT": "9001"})
    assert r.returncode == 0
    lines = {l.split()[0]: l for l in r.stdout.splitlines() if l.startswith("  ")}
    assert lines["API_PORT"].split()[1:] == ["9001", "env"]
    assert lines["API_HOST"].split()[1:] == ["127.0.0.1", ".env"]
    assert lines["MAX_EXECUTION_TIME"].split()[1:] == ["50", ".env",
                                                      "(CODE_EXECUTOR_EXECUTION_TIMEOUT)"]
    assert lines["MAX_PIDS"].split()[1:] == ["512", "default"]


def test_env_file_option(kiln_bin, tmp_path):
    other = tmp_path / "other.env"
    other.write_text("API_PORT=7000\n")
    r = kiln_config(tmp_path, "export", "--env-file", str(other))
    assert json.loads(r.stdout)["API_PORT"] == 7000
    r = kiln_config(tmp_path, "export", f"--env-file={other}")
    assert json.loads(r.stdout)["API_PORT"] == 7000
    r = kiln_config(tmp_path, "validate", "--env-file", str(tmp_path / "missing.env"))
    assert r.returncode == 1 and "missing.env" in r.stderr  # named files must exist
    r = kiln_config(tmp_path, "validate")
    assert r.returncode == 0 and "not present" in r.stdout  # the implicit ./.env is optional
    other.write_text("API_PORT=nope\nJUST A LINE\n")
    r = kiln_config(tmp_path, "validate", "--env-file", str(other))
    assert r.returncode == 1
    assert "API_PORT=nope" in r.stdout and "expected KEY=VALUE" in r.stdout


def test_export_never_contains_a_secret(kiln_bin, tmp_path):
    env = {"API_KEY": SECRET, "API_KEYS": SECRET + "2," + SECRET + "3",
           "MASTER_API_KEY": SECRET + "m", "REDIS_PASSWORD": SECRET + "r",
           "REDIS_URL": f"redis://:{SECRET}@localhost:6379/0",
           "MINIO_ACCESS_KEY": SECRET + "a", "MINIO_SECRET_KEY": SECRET + "s"}
    for sub in ("export", "summary", "validate", "security"):
        r = kiln_config(tmp_path, sub, env=env)
        assert SECRET not in r.stdout + r.stderr, sub
        assert SECRET[:12] not in r.stdout + r.stderr, sub
    cfg = export(tmp_path, env=env)
    assert cfg["API_KEY"] == "***" and cfg["REDIS_URL"] == "***"
    assert cfg["REDIS_PASSWORD"] == "***" and cfg["MINIO_SECRET_KEY"] == "***"
    assert cfg["MASTER_API_KEY"] == "***"
    assert export(tmp_path)["MASTER_API_KEY"] == ""  # unset stays visibly unset
    # a bad secret value is reported without echoing it
    r = kiln_config(tmp_path, "validate", env={"API_KEYS": SECRET + ",,x"})
    assert r.returncode == 1 and SECRET not in r.stdout


def test_export_is_typed_json_of_every_setting(kiln_bin, tmp_path):
    cfg = export(tmp_path, env={"PY_PRELOAD": "numpy, pandas"})
    assert cfg["API_PORT"] == 8000 and cfg["AUTH_ENABLED"] is True
    assert cfg["PY_PRELOAD"] == ["numpy", "pandas"]
    template_names = [l.split("=", 1)[0] for l in
                      kiln_config(tmp_path, "template").stdout.splitlines()
                      if l and not l.startswith("#")]
    assert list(cfg) == template_names


def test_security_flags_the_default_key(kiln_bin, tmp_path):
    r = kiln_config(tmp_path, "security")
    assert r.returncode == 1
    assert any(l.startswith("HIGH") and "API_KEY" in l and "test-api-key" in l
               for l in r.stdout.splitlines()), r.stdout


def test_security_weak_settings(kiln_bin, tmp_path):
    env = {"API_KEY": "short", "ENVIRONMENT": "production", "API_DEBUG": "true",
           "ENABLE_DOCS": "true", "AUTH_TRUSTED_NETWORKS": "0.0.0.0/0",
           "ENABLE_CORS": "true", "CORS_ORIGINS": "*", "ENABLE_NETWORK_ISOLATION": "false",
           "MASTER_API_KEY": "tiny"}
    r = kiln_config(tmp_path, "security", env=env)
    assert r.returncode == 1
    out = r.stdout
    for needle in ["shorter than 16", "API_DEBUG=true with ENVIRONMENT=production",
                   "ENABLE_DOCS=true with ENVIRONMENT=production", "0.0.0.0/0",
                   "CORS_ORIGINS=*", "ENABLE_NETWORK_ISOLATION=false", "ENABLE_HTTPS=false",
                   "MASTER_API_KEY is shorter"]:
        assert needle in out, f"{needle!r} missing from:\n{out}"
    assert "short" not in out.replace("shorter", "")  # the key itself is not printed


def test_security_passes_a_hardened_config(kiln_bin, tmp_path):
    env = {"API_KEY": "k" * 40, "MASTER_API_KEY": "m" * 40, "API_HOST": "127.0.0.1",
           "ENVIRONMENT": "production", "ENABLE_DOCS": "false"}
    r = kiln_config(tmp_path, "security", env=env)
    assert r.returncode == 0, r.stdout
    assert "0 of high severity" in r.stdout


def test_template_round_trips_as_a_dotenv(kiln_bin, tmp_path):
    template = kiln_config(tmp_path, "template").stdout
    defaults = export(tmp_path)
    r = kiln_config(tmp_path, "validate", dotenv=template)
    assert r.returncode == 0, r.stdout
    assert export(tmp_path) == defaults   # the template holds exactly the defaults
    r = kiln_config(tmp_path, "summary")
    assert "from .env" in r.stdout and " 0 defaults" in r.stdout


GENERATED = [(".env.example", ["template"]), ("docs/configuration.md", ["docs"]),
             ("docs/configuration.md", ["template", "--markdown"])]


@pytest.mark.parametrize("path,args", GENERATED)
def test_generated_files_match_the_binary(kiln_bin, tmp_path, path, args):
    committed = (SOURCE_DIR / path).read_bytes()
    r = subprocess.run([KILN_BIN, "config", *args], env={"PATH": "/usr/bin:/bin"}, cwd=tmp_path,
                       capture_output=True, timeout=60)
    assert r.returncode == 0
    assert r.stdout == committed, (
        f"{path} is stale: it differs from `kiln config {' '.join(args)}`. "
        "Regenerate with scripts/gen-docs and commit the result.")


def test_markdown_has_a_table_row_per_setting(kiln_bin, tmp_path):
    md = kiln_config(tmp_path, "docs").stdout
    names = list(export(tmp_path))
    for name in names:
        assert f"| `{name}` |" in md, name
    assert "`CODE_EXECUTOR_EXECUTION_MODE` (sandbox → kubernetes)" in md
