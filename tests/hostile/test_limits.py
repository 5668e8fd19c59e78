"""Denial-of-service attacks: fork and thread bombs, memory bombs, busy loops, sleeping past the
wall clock, filling /mnt/data, /tmp and /dev/shm. Each must end at kiln's limits with the right
status, without hurting the host."""
import os
import subprocess
import threading
import time

import pytest

from conftest import SLACK_S, descendants, errname, run

MB = 1024 * 1024


class HostProbe:
    """While an attack runs: keep forking /bin/true on the host (it must keep working, quickly)
    and count the processes kiln has under it."""

    def __init__(self):
        self.max_procs = 0
        self.worst_fork_s = 0.0
        self.fork_failures = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        me = os.getpid()
        while not self._stop.is_set():
            t0 = time.monotonic()
            try:
                subprocess.run(["/bin/true"], check=True, timeout=10)
            except Exception as e:  # noqa: BLE001 - any failure is the finding
                self.fork_failures.append(repr(e))
            self.worst_fork_s = max(self.worst_fork_s, time.monotonic() - t0)
            self.max_procs = max(self.max_procs, len(descendants(me)))
            self._stop.wait(0.1)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


# --------------------------------------------------------------------------- fork bombs

PY_FORK_BOMB = r"""
import os, signal, time
n = 0
try:
    while n < 100000:
        pid = os.fork()
        if pid == 0:
            signal.pause()
            os._exit(0)
        n += 1
    print("UNBOUNDED", n)
except OSError as e:
    print("LIMITED", n, e.errno)
"""


def test_python_fork_bomb_hits_pids_limit():
    """fork() until it fails: it must fail with EAGAIN at the pids limit, the host keeps forking,
    and kiln ends the run (status ok: the program handled the error and exited)."""
    with HostProbe() as probe:
        # 512 forks of a Python process take ~5 s on this shared 2-core host: a generous limit
        r = run("py", PY_FORK_BOMB, timeout=30)
    assert r.stdout.startswith("LIMITED"), r.describe()
    n, err = r.stdout.split()[1:3]
    assert errname(err) == "EAGAIN", r.describe()
    assert int(n) < 5000, "fork bomb got %s processes before EAGAIN" % n
    r.expect_status("ok")
    assert not probe.fork_failures, probe.fork_failures
    assert probe.worst_fork_s < 5, "host fork took %.1f s during the bomb" % probe.worst_fork_s


def test_bash_fork_bomb_is_bounded():
    """The classic :(){ :|:& };: — kiln returns within its limits, the host stays usable, the
    number of processes stays bounded, and nothing survives (checked by the autouse fixture)."""
    code = ":(){ :|:& };:\nsleep 3\necho SURVIVED-BOMB\n"
    with HostProbe() as probe:
        r = run("bash", code, timeout=3)
    r.expect_status("ok", "error", "timeout")
    assert r.elapsed < 3 + SLACK_S
    assert not probe.fork_failures, probe.fork_failures
    assert probe.worst_fork_s < 5, "host fork took %.1f s during the bomb" % probe.worst_fork_s
    assert probe.max_procs < 5000, "bomb reached %d host processes" % probe.max_procs


def test_c_fork_bomb_is_bounded():
    code = r"""
#include <stdio.h>
#include <unistd.h>
#include <errno.h>
int main(void) {
    long ok = 0, fail = 0;
    for (;;) {
        pid_t p = fork();
        if (p == 0) continue;          /* every child keeps forking too */
        if (p > 0) ok++; else if (errno == EAGAIN) fail++;
        if (fail > 100000) { printf("EAGAIN-SEEN\n"); fflush(stdout); fail = 0; }
    }
}
"""
    with HostProbe() as probe:
        r = run("c", code, timeout=4, limit=30)
    r.expect_status("timeout", "ok", "error")
    # C gets a 1.5x wall multiplier (src/lang): 6 s, plus 3 s to kill a full pids cgroup
    assert r.data.get("wall_time_ms", 0) <= 4 * 1500 + 3000, r.describe()
    assert not probe.fork_failures, probe.fork_failures
    assert probe.worst_fork_s < 5, "host fork took %.1f s during the bomb" % probe.worst_fork_s
    assert probe.max_procs < 5000, "bomb reached %d host processes" % probe.max_procs


def test_python_thread_bomb_is_bounded():
    code = r"""
import threading, time
n = 0
ev = threading.Event()
try:
    while n < 100000:
        threading.Thread(target=ev.wait, daemon=True).start()
        n += 1
    print("UNBOUNDED", n)
except (RuntimeError, OSError) as e:
    print("LIMITED", n)
ev.set()
"""
    r = run("py", code, timeout=10)
    assert r.stdout.startswith("LIMITED"), r.describe()
    assert int(r.stdout.split()[1]) < 5000
    r.expect_status("ok")


# --------------------------------------------------------------------------- memory bombs

def test_python_memory_bomb_is_oom():
    code = r"""
blocks = []
for i in range(4096):
    blocks.append(b"\x01" * (1 << 20))   # bytes * n writes every page
print("NOT-KILLED", len(blocks))
"""
    r = run("py", code, timeout=20, memory=64)
    r.expect_status("oom")
    assert "NOT-KILLED" not in r.stdout
    peak = r.data.get("memory_peak_kb")
    assert isinstance(peak, int) and 16 * 1024 < peak <= 64 * 1024 * 5 // 4, \
        "memory_peak_kb=%r for a 64 MiB limit" % peak


def test_c_memory_bomb_is_oom():
    code = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
    for (int i = 0; i < 8192; i++) {
        char *p = malloc(1 << 20);
        if (!p) { printf("MALLOC-FAILED %d\n", i); return 3; }
        memset(p, 1, 1 << 20);
    }
    printf("NOT-KILLED\n");
    return 0;
}
"""
    r = run("c", code, timeout=20, memory=64, limit=60)
    r.expect_status("oom")
    assert "NOT-KILLED" not in r.stdout


# --------------------------------------------------------------------------- time

def test_busy_loop_hits_wall_timeout():
    code = r"""
import signal
for s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGHUP, signal.SIGINT):
    signal.signal(s, signal.SIG_IGN)
while True:
    pass
"""
    r = run("py", code, timeout=2)
    r.expect_status("timeout")
    assert r.elapsed < 2 + SLACK_S
    wall = r.data.get("wall_time_ms")
    assert isinstance(wall, int) and 1500 <= wall <= 2000 + 3000, "wall_time_ms=%r" % wall
    cpu = r.data.get("cpu_time_ms")
    assert isinstance(cpu, int) and cpu >= 300, "cpu_time_ms=%r for a busy loop" % cpu


def test_multiprocess_busy_loop_hits_limit():
    """Two busy processes burn CPU twice as fast as the wall clock: the run ends at the limit
    (CPU limit or wall clock) and the CPU of every process is accounted."""
    code = r"""
import os, signal
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGXCPU, signal.SIG_IGN)
for _ in range(3):
    if os.fork() == 0:
        break
while True:
    pass
"""
    r = run("py", code, timeout=2)
    r.expect_status("timeout")
    assert r.elapsed < 2 + SLACK_S
    cpu = r.data.get("cpu_time_ms")
    assert isinstance(cpu, int) and cpu >= 500, "cpu_time_ms=%r" % cpu


def test_bash_busy_loop_hits_timeout():
    r = run("bash", "trap '' TERM INT HUP XCPU\nwhile :; do :; done\n", timeout=2)
    r.expect_status("timeout")
    assert r.elapsed < 2 + SLACK_S


def test_sleep_hits_wall_timeout():
    """No CPU used at all: only the wall clock can stop it."""
    r = run("py", "import time\ntime.sleep(10**6)\n", timeout=2)
    r.expect_status("timeout")
    assert r.elapsed < 2 + SLACK_S
    cpu = r.data.get("cpu_time_ms")
    assert isinstance(cpu, int) and cpu < 1500, "cpu_time_ms=%r while sleeping" % cpu


def test_stopped_process_hits_wall_timeout():
    """SIGSTOP on itself: the supervisor must still kill it at the wall limit."""
    r = run("bash", "kill -STOP $$\necho NOT-STOPPED\n", timeout=2)
    r.expect_status("timeout")
    assert r.elapsed < 2 + SLACK_S


# --------------------------------------------------------------------------- disk fill

FILL = r"""
import errno, os, sys, time
path = sys.argv[1] if len(sys.argv) > 1 else "@PATH@"
n, err = 0, None
chunk = b"\x00" * (1 << 20)
try:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    while n < (8 << 30):
        n += os.write(fd, chunk)
except OSError as e:
    err = e.errno
print("WROTE", n, errno.errorcode.get(err, err))
sys.stdout.flush()
time.sleep(1.5)     # hold the space while the host measures its own disk
"""


def _host_free():
    st = os.statvfs("/")
    return st.f_bavail * st.f_frsize


@pytest.mark.parametrize("target", ["/mnt/data/fill.bin", "/tmp/fill.bin"])
def test_disk_fill_stops_at_quota(target):
    """Writing without end into /mnt/data or /tmp stops at kiln's caps (ENOSPC at the tmpfs size
    or EFBIG at RLIMIT_FSIZE), and none of it lands on the host's disk."""
    before = _host_free()
    lowest = [before]
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            lowest[0] = min(lowest[0], _host_free())
            stop.wait(0.05)

    t = threading.Thread(target=watch, daemon=True)
    t.start()
    try:
        r = run("py", FILL.replace("@PATH@", target), timeout=15)
    finally:
        stop.set()
        t.join()
    words = r.stdout.split()
    assert len(words) >= 3 and words[0] == "WROTE", r.describe()
    written, err = int(words[1]), words[2]
    assert err in ("ENOSPC", "EFBIG", "EDQUOT"), "fill of %s ended with %s after %d bytes\n%s" % (
        target, err, written, r.describe())
    assert written < 4 << 30
    r.expect_status("ok", "output_limit")
    drop = before - lowest[0]
    assert drop < max(32 * MB, written // 2), \
        "the host's disk lost %d bytes while the sandbox wrote %d" % (drop, written)


def test_dev_shm_fill_is_bounded():
    """/dev/shm is either absent/read-only or a capped tmpfs (or the memory limit stops it)."""
    r = run("py", FILL.replace("@PATH@", "/dev/shm/fill.bin"), timeout=15)
    if r.status == "oom":
        return
    words = r.stdout.split()
    assert len(words) >= 3 and words[0] == "WROTE", r.describe()
    assert words[2] in ("ENOSPC", "EFBIG", "EDQUOT", "ENOENT", "EROFS", "EACCES"), r.describe()
    assert int(words[1]) < 4 << 30


def test_bash_dd_fill_of_workspace_fails_inside():
    r = run("bash", "dd if=/dev/zero of=/mnt/data/dd.bin bs=1M 2>&1 | tail -n 3\n"
                    "echo DD-RC ${PIPESTATUS[0]}\n", timeout=15)
    assert "DD-RC 0" not in r.stdout, r.describe()
    # ENOSPC/EFBIG reported by dd, or dd killed by SIGXFSZ (128+25) at RLIMIT_FSIZE
    assert "No space left on device" in r.stdout or "File too large" in r.stdout \
        or "DD-RC 153" in r.stdout or r.status == "output_limit", r.describe()
    assert r.files.get("dd.bin", {}).get("size", 0) < 1 << 30


def test_many_small_files_are_bounded():
    """Inode exhaustion: creating files without end must stop inside the sandbox."""
    code = r"""
import os, errno
n = 0
try:
    while n < 2000000:
        open("/tmp/f%d" % n, "w").close()
        n += 1
    print("UNBOUNDED", n)
except OSError as e:
    print("LIMITED", n, errno.errorcode.get(e.errno))
"""
    r = run("py", code, timeout=20)
    r.expect_status("ok", "oom", "timeout")
    if r.status == "ok":
        assert r.stdout.startswith("LIMITED"), r.describe()


def test_fd_exhaustion_is_bounded():
    """Open files until EMFILE (RLIMIT_NOFILE); raising the hard limit is refused."""
    code = r"""
import errno, os, resource, ctypes
n = 0
try:
    while n < 10**6:
        os.open("/dev/null", os.O_RDONLY)
        n += 1
    print("FDS UNBOUNDED", n)
except OSError as e:
    print("FDS", n, errno.errorcode.get(e.errno))
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard + 1, hard + 1))
    print("RAISE OK")
except (ValueError, OSError) as e:
    print("RAISE DENIED")
"""
    r = run("py", code, timeout=10)
    r.expect_status("ok")
    kv = r.kv()
    n, err = kv.get("FDS", "x x").split()
    assert err == "EMFILE" and int(n) < 65536, r.describe()
    assert kv.get("RAISE") == "DENIED", r.describe()


@pytest.mark.parametrize("where", ["/mnt/data", "/tmp"])
def test_size_cap_holds_across_many_files(where):
    """RLIMIT_FSIZE bounds one file; the tmpfs size must bound them all: 16 MiB files until
    the filesystem is full (ENOSPC), or the memory cgroup stops it (tmpfs pages are charged)."""
    code = r"""
import errno, os, sys
total, err, i = 0, None, 0
chunk = b"\x01" * (1 << 20)
try:
    while total < (8 << 30):
        with open("@W@/many_%d.bin" % i, "wb") as f:
            for _ in range(16):
                total += f.write(chunk)
        i += 1
except OSError as e:
    err = errno.errorcode.get(e.errno)
print("TOTAL", total, err)
""".replace("@W@", where)
    r = run("py", code, timeout=20)
    if r.status == "oom":
        return
    words = r.stdout.split()
    assert len(words) == 3 and words[0] == "TOTAL", r.describe()
    assert words[2] in ("ENOSPC", "EDQUOT"), r.describe()
    assert int(words[1]) <= 1 << 30, "%s bytes written into %s" % (words[1], where)


# Last in the file on purpose: ctest runs pytest with -x, and a reporting defect here must not
# hide the resource-limit tests above it.
def test_memory_bomb_in_child_processes_is_oom():
    """Memory spread over several processes counts against one limit for the whole sandbox:
    4 x 30 MiB cannot all live under 64 MiB, so the memory cgroup kills, and the result says
    so (status oom) even though the parent itself exits 0."""
    code = r"""
import os, time
kids = []
for k in range(4):
    pid = os.fork()
    if pid == 0:
        b = [b"\x02" * (1 << 20) for _ in range(30)]   # 30 MiB each, 120 MiB in all
        time.sleep(3)
        os._exit(0)
    kids.append(pid)
for p in kids:
    _, st = os.waitpid(p, 0)
    print("CHILD", os.WIFSIGNALED(st) and os.WTERMSIG(st) or 0)
"""
    r = run("py", code, timeout=15, memory=64)
    if r.status != "oom":
        killed = [ln for ln in r.lines() if ln.startswith("CHILD ") and ln != "CHILD 0"]
        assert killed, "4 x 30 MiB lived under a 64 MiB limit\n" + r.describe()
    peak = r.data.get("memory_peak_kb")
    assert isinstance(peak, int) and peak <= 64 * 1024 * 5 // 4, peak
    r.expect_status("oom")
