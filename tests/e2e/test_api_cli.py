"""`kiln exec` against a real server: upload, run, outputs, downloads into --out, exit status."""
import hashlib
import json
import os
import subprocess

from conftest import API_KEY, KILN_BIN


def kexec(server, *args, key=API_KEY, cwd=None, timeout=120):
    env = dict(os.environ, KILN_URL=server.url, KILN_API_KEY=key)
    return subprocess.run([KILN_BIN, "exec", *args], env=env, cwd=cwd, capture_output=True,
                          timeout=timeout)


def test_kiln_exec_uploads_runs_downloads_and_mirrors_the_exit_status(server, tmp_path):
    (tmp_path / "data.csv").write_text("x,y\n1,2\n3,4\n")
    (tmp_path / "s.py").write_text(
        "import pandas as pd, sys, hashlib\n"
        "df = pd.read_csv('data.csv')\nprint(int(df.y.sum()))\n"
        "open('res.bin','wb').write(bytes(range(256))*10)\n"
        "import os\nos.makedirs('sub', exist_ok=True)\nopen('sub/n.txt','w').write('n')\n"
        "print('err', file=sys.stderr)\nsys.exit(3)\n")
    out = tmp_path / "out"
    r = kexec(server, "-l", "py", "-f", str(tmp_path / "s.py"), "--file", str(tmp_path / "data.csv"),
              "--out", str(out))
    assert r.returncode == 3, r.stderr
    assert r.stdout == b"6\n" and b"err\n" in r.stderr
    assert (out / "res.bin").read_bytes() == bytes(range(256)) * 10
    assert (out / "sub_n.txt").read_text() == "n"  # flattened, never a path
    assert sorted(os.listdir(out)) == ["res.bin", "sub_n.txt"]


def test_kiln_exec_json_args_timeout_session_and_errors(server, tmp_path):
    r = kexec(server, "-l", "bash", "--json", "--arg", "a b", "--arg", "c", 'echo "$1|$2"')
    assert r.returncode == 0
    j = json.loads(r.stdout)
    assert j["stdout"] == "a b|c\n"
    r = kexec(server, "-l", "py", "--timeout", "1", "import time; time.sleep(20)")
    assert r.returncode == 124
    r = kexec(server, "-l", "py", "import os; os.kill(os.getpid(), 9)")
    assert r.returncode == 128 + 9
    # a session is reused with its files
    r = kexec(server, "-l", "py", "--json", "open('keep.txt','w').write('k')")
    sid = json.loads(r.stdout)["session_id"]
    r = kexec(server, "-l", "py", "--session", sid, "print(open('keep.txt').read())")
    assert r.stdout == b"k\n"
    r = kexec(server, "-l", "py", "print(1)", key="wrong")
    assert r.returncode == 1 and b"401" in r.stderr
    r = kexec(server, "-l", "cobol", "x")
    assert r.returncode == 1 and b"unsupported" in r.stderr.lower()
    r = kexec(server, "print(1)")
    assert r.returncode == 2


def test_kiln_exec_never_writes_outside_out(server, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "victim").write_text("safe")
    os.symlink(tmp_path / "victim", out / "link.txt")
    r = kexec(server, "-l", "py", "--out", str(out),
              "open('link.txt','w').write('pwned'); open('..x','w').write('d')")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "victim").read_text() == "safe"
    assert (out / "link.txt").read_text() == "pwned" and not (out / "link.txt").is_symlink()
    assert all(not n.startswith(".") for n in os.listdir(out))
