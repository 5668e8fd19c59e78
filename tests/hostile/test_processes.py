"""Process attacks: seeing host processes, signalling them, inherited file descriptors,
processes that try to outlive the run (background, setsid, double fork, ignored signals,
stopped), zombies, kill -1 inside, and two sandboxes (concurrent and sequential) seeing each
other's processes, /tmp, /dev/shm, /mnt/data and host uids."""
import json
import os
import subprocess
import time

import pytest

from conftest import (SANDBOX_UID_MIN, SOURCE_DIR, TOKEN, finish, proc_table, run,
                      sandbox_leftovers, start)


def spawn_victim(tag, uid=None):
    """A host process whose command line carries TOKEN-tag (and optionally a sandbox uid)."""
    def demote():
        if uid is not None:
            os.setgid(uid)
            os.setuid(uid)
    return subprocess.Popen(["bash", "-c", "exec -a %s-%s sleep 120" % (TOKEN, tag)],
                            preexec_fn=demote, stdin=subprocess.DEVNULL)


def kill_victims(victims):
    for v in victims:
        if v.poll() is None:
            v.kill()
        v.wait()


def test_proc_shows_only_sandbox_processes():
    victims = [spawn_victim("seen")]
    try:
        time.sleep(0.2)
        code = r"""
import os, json
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
cmds = {}
for p in pids:
    try:
        cmds[p] = open("/proc/%d/cmdline" % p, "rb").read().replace(b"\0", b" ").decode("latin-1")
    except OSError as e:
        cmds[p] = "ERR%d" % e.errno
print(json.dumps({"pids": pids, "cmds": cmds, "me": os.getpid(), "ppid": os.getppid()}))
"""
        r = run("py", code, timeout=5)
        rb = run("bash", "ps -eo pid,user,args; echo; ls /proc | grep -c '^[0-9]'", timeout=5)
        with open("/proc/1/cmdline", "rb") as f:
            host_init = f.read().replace(b"\0", b" ").decode("latin-1")
    finally:
        kill_victims(victims)
    r.expect_status("ok")
    d = json.loads(r.lines()[-1])
    assert TOKEN not in r.stdout and TOKEN not in rb.stdout, "host process visible"
    assert len(d["pids"]) <= 8, "too many processes visible: %s" % d["cmds"]
    assert max(d["pids"]) < 1000 and d["me"] < 1000, d
    assert d["cmds"].get("1", "") != host_init, "PID 1 is the host's init"
    assert int(rb.stdout.strip().splitlines()[-1]) <= 8, rb.describe()


def test_signals_do_not_reach_host_processes():
    """kill() of host pids (one running as root, one as the first sandbox uid) and kill(-1)
    from inside must not reach them."""
    victims = [spawn_victim("sig-root"), spawn_victim("sig-uid", uid=SANDBOX_UID_MIN),
               spawn_victim("sig-uid1", uid=SANDBOX_UID_MIN + 1)]
    try:
        time.sleep(0.2)
        pids = [v.pid for v in victims]
        code = r"""
import errno, os, signal
for pid in @PIDS@:
    for sig in (signal.SIGKILL, signal.SIGSTOP):
        try:
            os.kill(pid, sig)
            print(pid, sig, "SENT")
        except OSError as e:
            print(pid, sig, errno.errorcode.get(e.errno))
    try:
        fd = os.pidfd_open(pid)
        print(pid, "pidfd", "OPENED")
    except OSError as e:
        print(pid, "pidfd", errno.errorcode.get(e.errno))
try:
    os.kill(-1, signal.SIGKILL)
    print("-1 SENT")
except OSError as e:
    print("-1", errno.errorcode.get(e.errno))
""".replace("@PIDS@", repr(pids))
        r = run("py", code, timeout=5)
        rb = run("bash", "kill -9 %s 2>/dev/null; echo rc=$?; kill -9 -1; kill -9 1; echo after"
                 % " ".join(map(str, pids)), timeout=5)
        time.sleep(0.2)
        alive = [v.poll() is None for v in victims]
        states = [proc_table().get(v.pid, {}).get("state", "") for v in victims]
    finally:
        kill_victims(victims)
    assert all(alive), "a host process was killed from the sandbox: %s" % alive
    assert not any(s.startswith("T") for s in states), "a host process was stopped: %s" % states
    for ln in r.lines():
        if ln.startswith("-1"):
            continue
        assert not ln.endswith(("SENT", "OPENED")), "reached a host pid: " + ln
    assert "after" in rb.stdout and "rc=0" not in rb.stdout, rb.describe()


def test_inherited_file_descriptors_are_closed(canary):
    """File descriptors leaked into `kiln run` (a host file, an O_PATH handle on the repository
    — CVE-2024-21626 —, a socket) must not be open in the program: only 0, 1 and 2."""
    fds = []
    f = os.open(str(canary), os.O_RDONLY)
    d = os.open(SOURCE_DIR, os.O_PATH | os.O_DIRECTORY)
    a, b = __import__("socket").socketpair()
    try:
        for src, num in ((f, 37), (d, 38), (a.fileno(), 39), (d, 63)):
            os.dup2(src, num, inheritable=True)
            fds.append(num)
        code = r"""
import os, errno
open_fds = []
for fd in range(3, 4096):
    try:
        os.fstat(fd)
        open_fds.append(fd)
    except OSError:
        pass
print("OPEN", open_fds)
for fd in open_fds:
    try:
        print("LINK", fd, os.readlink("/proc/self/fd/%d" % fd))
    except OSError as e:
        print("LINK", fd, "ERR", e.errno)
for fd in (37, 38, 39, 63):
    try:
        print("READ", fd, os.read(fd, 100))
    except OSError as e:
        print("READ", fd, errno.errorcode.get(e.errno))
    try:
        print("LIST", fd, os.listdir("/proc/self/fd/%d" % fd)[:5])
    except OSError as e:
        print("LIST", fd, errno.errorcode.get(e.errno))
print("CWD", os.readlink("/proc/self/cwd"))
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            for fd in os.listdir("/proc/%s/fd" % p):
                print("PFD", p, fd, os.readlink("/proc/%s/fd/%s" % (p, fd)))
        except OSError as e:
            print("PFD", p, "ERR", errno.errorcode.get(e.errno))
"""
        r = run("py", code, timeout=5, pass_fds=tuple(fds))
        rc = run("c", r"""
#include <fcntl.h>
#include <stdio.h>
int main(void) {
    int n = 0;
    for (int fd = 3; fd < 65536; fd++) if (fcntl(fd, F_GETFD) != -1) { printf("FD %d\n", fd); n++; }
    printf("COUNT %d\n", n);
    return 0;
}
""", timeout=10, pass_fds=tuple(fds), limit=40)
    finally:
        for n in fds:
            os.close(n)
        os.close(f)
        os.close(d)
        a.close()
        b.close()
    r.expect_status("ok")
    assert "OPEN []" in r.stdout, "fds open in the program: %s" % r.describe()
    assert "CANARY" not in r.stdout and TOKEN not in r.stdout, r.describe()
    assert "CMakeLists.txt" not in r.stdout and SOURCE_DIR not in r.stdout, r.describe()
    assert "CWD /mnt/data" in r.stdout, r.describe()
    rc.expect_status("ok")
    assert "COUNT 0" in rc.stdout, rc.describe()


# --------------------------------------------------------------------------- survivors

SURVIVORS_SH = r"""
(exec -a @T@-bg sleep 1000) &
setsid bash -c 'exec -a @T@-setsid sleep 1000' </dev/null >/dev/null 2>&1 &
nohup bash -c 'trap "" TERM HUP INT; exec -a @T@-nohup sleep 1000' </dev/null >/dev/null 2>&1 &
( ( exec -a @T@-double sleep 1000 ) & ) </dev/null >/dev/null 2>&1
setsid bash -c 'exec -a @T@-stopped sleep 1000' </dev/null >/dev/null 2>&1 &
stopped=$!; sleep 0.2; kill -STOP $stopped
disown -a
sleep 0.5
ps -eo pid,stat,args | grep -c '@T@-' | sed 's/^/STARTED /'
@TAIL@
"""

SURVIVORS_PY = r"""
import os, signal, sys, time
def daemon(tag):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1):
                signal.signal(s, signal.SIG_IGN)
            devnull = os.open("/dev/null", os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(devnull, fd)
            os.execv("/bin/sleep", ["@T@-" + tag, "1000"])
        os._exit(0)
daemon("pydaemon")
daemon("pydaemon2")
time.sleep(0.3)
print("STARTED")
@TAIL@
"""


def _survivor_check(r, tag):
    leftovers = sandbox_leftovers(extra_token=tag)
    assert not leftovers, "processes outlived `kiln run`: %s" % {
        p: i["cmdline"] for p, i in leftovers.items()}


@pytest.mark.parametrize("lang,code", [("bash", SURVIVORS_SH), ("py", SURVIVORS_PY)],
                         ids=["bash", "python"])
def test_background_processes_die_when_the_program_exits(lang, code):
    """The program starts daemons (background, setsid, nohup + ignored signals, double fork,
    SIGSTOPped) and exits 0: when `kiln run` returns none is alive, and kiln did not wait for
    them until the wall clock (they hold no output pipe open... or do, in the first case)."""
    tag = TOKEN + "-exit"
    r = run(lang, code.replace("@T@", tag).replace("@TAIL@", "exit 0" if lang == "bash"
                                                    else "sys.exit(0)"), timeout=6)
    _survivor_check(r, tag)
    assert "STARTED" in r.stdout, r.describe()
    r.expect_status("ok")
    assert r.elapsed < 6, "kiln waited %.1f s for background processes" % r.elapsed


@pytest.mark.parametrize("lang,code", [("bash", SURVIVORS_SH), ("py", SURVIVORS_PY)],
                         ids=["bash", "python"])
def test_background_processes_die_at_the_timeout(lang, code):
    tag = TOKEN + "-tmo"
    r = run(lang, code.replace("@T@", tag).replace("@TAIL@", "sleep 1000" if lang == "bash"
                                                    else "time.sleep(1000)"), timeout=2)
    _survivor_check(r, tag)
    r.expect_status("timeout")


def test_zombies_are_reaped():
    code = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) {
    int n = 0;
    for (int i = 0; i < 500; i++) { pid_t p = fork(); if (p == 0) _exit(0); if (p > 0) n++; }
    usleep(300000);
    printf("ZOMBIES %d\n", n);
    return 0;
}
"""
    r = run("c", code, timeout=10, limit=40)
    r.expect_status("ok")
    assert "ZOMBIES" in r.stdout
    table = proc_table()
    zombies = [p for p, i in table.items()
               if i.get("uid", 0) >= SANDBOX_UID_MIN and i.get("state", "").startswith("Z")]
    mine = [p for p in zombies if table[p].get("ppid") == os.getpid()]
    assert not mine, "sandbox zombies re-parented to the host: %s" % mine


# --------------------------------------------------------------------------- two sandboxes

SANDBOX_A = r"""
import os, socket, subprocess, sys, time
open("/tmp/kh-a-@T@", "w").write("a")
try:
    open("/dev/shm/kh-a-@T@", "w").write("a")
except OSError:
    pass
open("/mnt/data/kh-a-@T@", "w").write("a")
p = subprocess.Popen(["bash", "-c", "exec -a kh-a-@T@ sleep 30"])
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print("SHMGET", libc.shmget(0x6b686b68, 4096, 0o1666))   # IPC_CREAT | 0666
print("UIDMAP", open("/proc/self/uid_map").read().split()[1])
print("STARTED", time.time(), flush=True)
time.sleep(6)
print("END", time.time())
p.kill()
"""

SANDBOX_B = r"""
import ctypes, os, time
print("UIDMAP", open("/proc/self/uid_map").read().split()[1])
print("LOOKED", time.time())
libc = ctypes.CDLL(None, use_errno=True)
if libc.shmget(0x6b686b68, 0, 0) != -1:
    print("FOUND", "sysv-shm", 0x6b686b68)
for d in ("/tmp", "/dev/shm", "/mnt/data"):
    try:
        for n in os.listdir(d):
            if "@T@" in n:
                print("FOUND", d, n)
    except OSError:
        pass
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            c = open("/proc/%s/cmdline" % p, "rb").read()
        except OSError:
            continue
        if b"kh-a-@T@" in c:
            print("FOUND", "proc", p)
"""


@pytest.fixture(scope="module")
def concurrent_pair():
    a = start("py", SANDBOX_A.replace("@T@", TOKEN), timeout=15)
    time.sleep(2.0)
    rb = run("py", SANDBOX_B.replace("@T@", TOKEN), timeout=10)
    ra = finish(a)
    return ra, rb


def test_concurrent_sandboxes_do_not_see_each_other(concurrent_pair):
    ra, rb = concurrent_pair
    ka, kb = ra.kv(), rb.kv()
    assert "STARTED" in ka and "END" in ka and "LOOKED" in kb, ra.describe() + rb.describe()
    assert float(ka["STARTED"]) < float(kb["LOOKED"]) < float(ka["END"]), \
        "the two runs did not overlap"
    assert int(ka.get("SHMGET", "-1")) >= 0, "A could not create its SysV segment: " + ra.describe()
    found = [ln for ln in rb.lines() if ln.startswith("FOUND")]
    assert not found, "sandbox B sees sandbox A's files or processes: %s" % found
    assert "kh-a-" + TOKEN in ra.files and not any(TOKEN in p for p in rb.files)


def test_concurrent_sandboxes_get_distinct_host_uids(concurrent_pair):
    """One host uid per concurrent sandbox (sandbox.md §5.1 A3): RLIMIT_NPROC, inotify limits,
    keyrings and file ownership are per uid."""
    ra, rb = concurrent_pair
    ua, ub = ra.kv().get("UIDMAP"), rb.kv().get("UIDMAP")
    assert ua and ub, ra.describe() + rb.describe()
    assert int(ua) >= SANDBOX_UID_MIN and int(ub) >= SANDBOX_UID_MIN
    assert ua != ub, "two concurrent sandboxes share host uid %s" % ua


def test_next_sandbox_sees_no_trace_of_the_previous_one():
    first = r"""
import os
for p in ("/tmp/kh-persist-@T@", "/dev/shm/kh-persist-@T@", "/mnt/data/kh-persist-@T@",
          "/var/tmp/kh-persist-@T@", "/run/lock/kh-persist-@T@", os.path.expanduser("~/kh-persist-@T@")):
    try:
        open(p, "w").write("x")
        print("WROTE", p)
    except OSError as e:
        print("NOWRITE", p, e.errno)
""".replace("@T@", TOKEN)
    second = r"""
import os
for d in ("/tmp", "/dev/shm", "/mnt/data", "/var/tmp", "/run/lock", os.path.expanduser("~")):
    try:
        for n in os.listdir(d):
            if "kh-persist" in n:
                print("FOUND", d, n)
    except OSError:
        pass
print("CHECKED")
"""
    r1 = run("py", first, timeout=5)
    assert "WROTE /tmp/kh-persist-" + TOKEN in r1.stdout, r1.describe()
    r2 = run("py", second, timeout=5)
    assert "CHECKED" in r2.stdout, r2.describe()
    assert "FOUND" not in r2.stdout, r2.describe()
