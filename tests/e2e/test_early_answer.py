"""The end of an execution (issue 5; docs/zygote.md "The end of an execution"): when the program
has ended, its runner — a Python zygote child, a warm node's boot script — reports it
(fchown(SBX_DONE_FD, code, -1), caught by the seccomp filter and handed to the supervisor) and the
answer is sent with the sandbox frozen, before its teardown. The report comes from inside the sandbox, so a program can make it too: these tests
check that it only ever ends the program earlier — the status is the reported one, nothing of the
sandbox runs after the answer, a sandbox with other threads or processes left is killed as
before — and that ordinary programs give the answers they always gave."""
import os
import re
import time

import httpx
import pytest

from conftest import API_KEY
from test_state import wait_py_children_ready

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the zygotes need root")

DONE = 0x4B4C4E44  # sbx_int.h SBX_DONE_FD

REPORT = """
import os
def report(code):
    try:
        os.fchown(%d, code, -1)
        return 0
    except OSError as e:
        return e.errno
""" % DONE


def early(c, lang="py"):
    m = re.search(r'^kiln_early_answers_total\{language="%s"\} (\d+)$' % lang,
                  c.get("/metrics").text, re.M)
    return int(m.group(1)) if m else 0


def run(c, code, lang="py"):
    r = c.post("/exec", json={"lang": lang, "code": code})
    assert r.status_code == 200, r.text
    return r.json()


def download(c, r, name):
    f = [f for f in r["files"] if f["name"] == name]
    assert f, r
    d = c.get("/download/%s/%s" % (r["session_id"], f[0]["id"]))
    assert d.status_code == 200, d.text
    return d.content


@pytest.fixture(scope="module")
def client():
    # one server for the module: the zygotes take long to start under ASan
    from conftest import KilnServer
    srv = KilnServer({"STATE_PERSISTENCE_ENABLED": "false", "POD_POOL_PY": "2",
                      "POD_POOL_JS": "1"})
    try:
        with httpx.Client(base_url=srv.url, headers={"X-API-Key": API_KEY}, timeout=120) as c:
            wait_py_children_ready(c, timeout=240)
            yield c
    finally:
        rc = srv.stop()
        assert rc == 0, srv.final_log[-2000:]
        assert "Sanitizer" not in srv.final_log and "runtime error:" not in srv.final_log


def test_ordinary_endings_keep_their_answers(client):
    """Exit statuses, tracebacks and long output are what `python3 code.py` gives; those that
    end through the runner are answered early (the counter), os._exit() by the exit itself."""
    before = early(client)
    r = run(client, "print(1)")
    assert (r["stdout"], r["stderr"], r["exit_code"]) == ("1\n", "", 0), r
    r = run(client, "import sys\nprint('bye')\nsys.exit(3)")
    assert (r["stdout"], r["exit_code"]) == ("bye\n", 3), r
    r = run(client, "raise ValueError('boom')")
    assert r["exit_code"] == 1 and "ValueError: boom" in r["stderr"], r
    assert 'File "/mnt/data/code.py"' in r["stderr"] or "code.py" in r["stderr"], r
    r = run(client, "import sys\nsys.stdout.write('x' * 60000 + '\\n')\n"
                    "sys.stderr.write('e' * 1000)")
    assert r["stdout"] == "x" * 60000 + "\n" and r["stderr"] == "e" * 1000, \
        (len(r["stdout"]), len(r["stderr"]))
    after = early(client)
    assert after - before == 4, (before, after)
    r = run(client, "import os\nprint('x', flush=True)\nos._exit(5)")
    assert (r["stdout"], r["exit_code"]) == ("x\n", 5), r
    assert early(client) == after, "os._exit() reports nothing: it must end by the exit"


def test_program_reporting_itself_only_ends_earlier(client):
    """A single-threaded program that makes the report mid-way gets the status it reported, its
    output and files as they were at that moment, and nothing of it runs afterwards."""
    before = early(client)
    code = REPORT + """
print("before", flush=True)
with open("/mnt/data/tick.txt", "w") as f:
    f.write("a")
    f.flush()
    r = report(7)
    f.write("b" * 10)
    f.flush()
print("after", r, flush=True)
"""
    r = run(client, code)
    assert r["exit_code"] == 7 and r["stdout"] == "before\n", r
    assert early(client) == before + 1
    # the output files are read from the frozen sandbox: the write after the report never ran
    assert download(client, r, "tick.txt") == b"a"


def test_report_with_threads_or_processes_left_kills_them(client):
    """Reported while another thread runs, or with a child process alive: the sandbox is killed
    and waited for (no early answer), the status is the reported one."""
    before = early(client)
    code = REPORT + """
import threading, time
def spin():
    with open("/mnt/data/spin.txt", "w") as f:
        while True:
            f.write("s")
            f.flush()
            time.sleep(0.001)
threading.Thread(target=spin, daemon=True).start()
time.sleep(0.05)
print("reporting", flush=True)
report(9)
print("not reached", flush=True)
"""
    r = run(client, code)
    assert r["exit_code"] == 9 and r["stdout"] == "reporting\n", r
    assert set(download(client, r, "spin.txt")) == {ord("s")}
    code = """
import subprocess
p = subprocess.Popen(["sleep", "30"])
print("child", p.pid > 0)
"""
    t0 = time.monotonic()
    r = run(client, code)
    assert (r["stdout"], r["exit_code"]) == ("child True\n", 0), r
    assert time.monotonic() - t0 < 20, "the sandbox's sleeping child must not hold the answer"
    assert early(client) == before, "neither sandbox was down to one thread"


def test_report_from_a_subprocess_or_out_of_range(client):
    """A status above 255 is refused (EBADF, what fchown says of an unknown fd) and the program
    goes on; a report from a forked process ends the whole sandbox with that status."""
    before = early(client)
    r = run(client, REPORT + "print(report(300))\nprint('on')\n")
    assert (r["stdout"], r["exit_code"]) == ("9\non\n", 0), r
    code = REPORT + """
import os, time
if os.fork() == 0:
    report(5)
    os._exit(0)
time.sleep(5)
print("parent went on", flush=True)
"""
    r = run(client, code)
    # the parent never printed: the child's report ended the sandbox during its sleep
    assert (r["stdout"], r["exit_code"]) == ("", 5), r
    assert early(client) == before + 1, "only the first run ended by the runner's own report"


def test_report_is_refused_outside_a_zygote_child(client):
    """Where no supervisor listens (a cold sandbox: a program that mentions kill runs cold),
    the call fails with ENOSYS and the program goes on."""
    before = early(client)
    r = run(client, REPORT + "# kill\nprint(report(4))\n")
    assert (r["stdout"], r["exit_code"]) == ("38\n", 0), r
    assert early(client) == before


def wait_js_parked(c, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(r'^kiln_pool_idle\{language="js"\} (\d+)$', c.get("/metrics").text, re.M)
        if m and int(m.group(1)) >= 1:
            return
        time.sleep(0.1)
    raise AssertionError("no parked node in time")


def test_warm_node_answers_at_its_end(client):
    """A warm node reports its natural end: the status, output and files are the cold run's, and
    the answer comes from the frozen sandbox (counted). An uncaught error ends the natural way
    (node prints it after the 'exit' listeners), as does a node with a child process left."""
    cases = [
        ("console.log(1)", 0, "1\n", True),
        ("process.exitCode = 4; console.log('four')", 4, "four\n", True),
        ("require('fs').writeFileSync('/mnt/data/o.txt', 'x'); setTimeout(() => console.log('t'),"
         " 30)", 0, "t\n", True),
        ("throw new Error('boom')", 1, "", False),
        ("require('child_process').spawn('sleep', ['30'], {stdio: 'ignore'}).unref();"
         " console.log('c')", 0, "c\n", False),
    ]
    for code, status, out, counted in cases:
        wait_js_parked(client)
        before = early(client, "js")
        r = run(client, code, lang="js")
        assert (r["exit_code"], r["stdout"]) == (status, out), (code, r)
        if status == 1:
            assert "Error: boom" in r["stderr"], r
        assert early(client, "js") == before + (1 if counted else 0), code
        if "o.txt" in code:
            assert download(client, r, "o.txt") == b"x"


def test_node_reporting_itself_only_ends_earlier(client):
    """A node program that makes the report itself mid-way: the status it reported, nothing it
    wrote afterwards."""
    wait_js_parked(client)
    code = """
const fs = require('fs');
console.log('before');
fs.writeFileSync('/mnt/data/js.txt', 'a');
try { fs.fchownSync(%d, 6, -1); } catch (e) { console.log('refused', e.code); }
fs.appendFileSync('/mnt/data/js.txt', 'b');
console.log('after');
""" % DONE
    r = run(client, code, lang="js")
    assert (r["exit_code"], r["stdout"]) == (6, "before\n"), r
    assert download(client, r, "js.txt") == b"a"
