"""Shared harness of the hostile-code suite: run untrusted programs through `kiln run --json`
and check, from the host side, that nothing escaped and nothing was left behind.

Every helper here is host-side; the programs under attack are strings passed to `kiln run`.

Post-conditions enforced for every test (autouse fixtures):
  * after each test: no process running as a sandbox host uid (>= SANDBOX_UID_MIN) among the
    descendants of this pytest process (pytest makes itself a child subreaper, so anything a
    sandbox leaves behind is re-parented here, whatever other engineers run on the host), and no
    process anywhere on the host whose command line carries this session's token;
  * after the whole file (session): no new mount under kiln's run directory in
    /proc/self/mountinfo, no new cgroup directory under <own cgroup>/kiln in any hierarchy
    (/sys/fs/cgroup/<v1 controller>/… and /sys/fs/cgroup/unified/…), nothing left in the run
    directory's per-run areas, no file owned by a sandbox uid in /tmp, /var/tmp, /dev/shm or
    /run, and /etc/passwd and /etc/shadow unchanged.
"""
import ctypes
import errno
import hashlib
import json
import os
import secrets
import signal
import subprocess
import tempfile
import time

import pytest

SOURCE_DIR = os.path.abspath(os.environ.get("KILN_SOURCE_DIR")
                             or os.path.join(os.path.dirname(__file__), "..", ".."))
KILN_BIN = os.environ.get("KILN_BIN") or os.path.join(SOURCE_DIR, "build", "kiln")

SANDBOX_UID_MIN = 200000  # DESIGN.md / sandbox.md §5.1 A3: the slot uids start here
TOKEN = "kh" + secrets.token_hex(8)  # marks processes and files planted by this session
MARKER = "\n[Output truncated - size limit exceeded]"  # SBX_TRUNCATION_MARKER
OUTPUT_CAP = 64 * 1024  # default stdout/stderr cap (issue 3, item 2)
SLACK_S = 8.0  # how much longer than --timeout `kiln run` may take to return (setup, teardown)

HOST_RETRIES = []  # (command, kiln's stderr) of runs retried after exit status 125

STATUSES = {"ok", "error", "timeout", "oom", "output_limit", "killed"}


# --------------------------------------------------------------------------- running kiln

class Run:
    """The outcome of one `kiln run`: the parsed JSON result plus host-side measurements."""

    def __init__(self, cmd, proc, elapsed, maxrss_kb=None):
        self.cmd = cmd
        self.proc = proc
        self.rc = proc.returncode
        self.elapsed = elapsed
        self.maxrss_kb = maxrss_kb
        raw = proc.stdout if isinstance(proc.stdout, bytes) else proc.stdout.encode()
        try:
            raw.decode("utf-8")
            self.utf8_valid = True
        except UnicodeDecodeError:
            self.utf8_valid = False
        self.raw = raw.decode("utf-8", "replace")
        err = proc.stderr
        self.kiln_stderr = err.decode("utf-8", "replace") if isinstance(err, bytes) else err
        proc.stdout, proc.stderr = self.raw, self.kiln_stderr
        self.data = None
        self.json_error = None
        try:
            self.data = json.loads(proc.stdout)
        except ValueError as e:
            self.json_error = str(e)

    # result fields -----------------------------------------------------------------------
    def _need(self):
        if self.data is None:
            pytest.fail("kiln run did not print a JSON result: %s\n rc=%s\n stdout: %r\n stderr: %r"
                        % (self.json_error, self.rc, self.raw[:1500], self.kiln_stderr[:1500]))
        return self.data

    @property
    def status(self):
        return self._need().get("status")

    @property
    def stdout(self):
        return self._need().get("stdout") or ""

    @property
    def stderr(self):
        return self._need().get("stderr") or ""

    @property
    def exit_code(self):
        return self._need().get("exit_code")

    @property
    def signal(self):
        return self._need().get("signal")

    @property
    def files(self):
        """{relative path: entry} of the files kiln reported in /mnt/data."""
        out = {}
        for f in self._need().get("files") or []:
            p = f.get("path", "")
            for pre in ("/mnt/data/", "mnt/data/", "./"):
                if p.startswith(pre):
                    p = p[len(pre):]
            out[p.lstrip("/")] = f
        return out

    def lines(self):
        return self.stdout.splitlines()

    def kv(self):
        """Lines "KEY VALUE..." of the program's stdout as a dict (first word -> rest)."""
        d = {}
        for ln in self.lines():
            k, _, v = ln.partition(" ")
            if k:
                d[k] = v
        return d

    def describe(self):
        if self.data is None:
            return "rc=%s raw=%r kiln-stderr=%r" % (self.rc, self.raw[:800], self.kiln_stderr[:800])
        d = dict(self.data)
        for k in ("stdout", "stderr"):
            v = d.get(k) or ""
            d[k] = v if len(v) < 1500 else v[:700] + " ... " + v[-700:]
        return json.dumps(d, indent=1)[:4000]

    def expect_status(self, *ok):
        assert self.status in ok, "expected status in %s, got %r\n%s" % (ok, self.status,
                                                                          self.describe())


def kiln_cmd(lang, code, timeout=5, memory=None, args=(), mounts=(), json_out=True):
    cmd = [KILN_BIN, "run", "-l", lang]
    if timeout is not None:
        cmd += ["--timeout", str(timeout)]
    if memory is not None:
        cmd += ["--memory", str(memory)]
    for m in mounts:
        cmd += ["--mount", m]
    for a in args:
        cmd += ["--arg", a]
    if json_out:
        cmd.append("--json")
    cmd.append(code)
    return cmd


def run(lang, code, *, timeout=5, memory=None, args=(), mounts=(), json_out=True, pass_fds=(),
        env=None, limit=None, measure_rss=False):
    """Run CODE through `kiln run` and return a Run. `limit` bounds how long kiln may take to
    return (default: the timeout plus SLACK_S, more for compiled languages)."""
    cmd = kiln_cmd(lang, code, timeout, memory, args, mounts, json_out)
    if limit is None:
        limit = (timeout or 30) * (3 if lang in ("c", "cpp") else 1) + SLACK_S
    rss_file = None
    if measure_rss:
        fd, rss_file = tempfile.mkstemp(prefix="hostile-rss-")
        os.close(fd)
        cmd = ["/usr/bin/time", "-f", "%M", "-o", rss_file] + cmd
    for attempt in range(4):
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, capture_output=True, timeout=limit,
                                  pass_fds=pass_fds, close_fds=True, env=env,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            pytest.fail("kiln run did not return within %.1f s (wall limit %s s): %s"
                        % (limit, timeout, (e.stdout or b"")[:500]))
        # 125: kiln could not build the sandbox (a host problem, not an outcome of the attack).
        # On this shared host the sandbox library's own unit tests run concurrently and use
        # the same cgroup names (kiln/sbx-N) and slot uids, so a run can lose its cgroup under
        # it; such a run is retried, and reported if it keeps failing.
        if proc.returncode != 125 or json_out and proc.stdout.strip():
            break
        HOST_RETRIES.append((cmd[:4], proc.stderr[-300:]))
        time.sleep(0.5)
    elapsed = time.monotonic() - t0
    maxrss = None
    if rss_file:
        try:
            with open(rss_file) as f:
                maxrss = int(f.read().strip().splitlines()[-1])
        except (ValueError, IndexError, OSError):
            maxrss = None
        os.unlink(rss_file)
    return Run(cmd, proc, elapsed, maxrss)


def start(lang, code, *, timeout=5, memory=None, args=(), pass_fds=()):
    """Start `kiln run --json` in the background; finish it with finish()."""
    cmd = kiln_cmd(lang, code, timeout, memory, args, (), True)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         pass_fds=pass_fds, stdin=subprocess.DEVNULL)
    p._hostile_t0 = time.monotonic()
    p._hostile_cmd = cmd
    p._hostile_limit = (timeout or 30) * (3 if lang in ("c", "cpp") else 1) + SLACK_S
    return p


def finish(p):
    try:
        out, err = p.communicate(timeout=max(1.0, p._hostile_limit -
                                             (time.monotonic() - p._hostile_t0)))
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        pytest.fail("kiln run did not return within %.1f s" % p._hostile_limit)
    cp = subprocess.CompletedProcess(p._hostile_cmd, p.returncode, out, err)
    return Run(p._hostile_cmd, cp, time.monotonic() - p._hostile_t0)


# --------------------------------------------------------------------------- host inspection

def _read(path, mode="r"):
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def proc_table():
    """{pid: {"ppid", "uid", "state", "cmdline"}} of every process on the host."""
    out = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        st = _read("/proc/%s/status" % name)
        if st is None:
            continue
        info = {"cmdline": (_read("/proc/%s/cmdline" % name, "rb") or b"").replace(b"\0", b" ")
                .decode("utf-8", "replace")}
        for line in st.splitlines():
            k, _, v = line.partition(":")
            if k == "PPid":
                info["ppid"] = int(v)
            elif k == "Uid":
                info["uid"] = int(v.split()[0])
            elif k == "State":
                info["state"] = v.strip()
            elif k == "Name":
                info["name"] = v.strip()
        out[int(name)] = info
    return out


def descendants(root, table=None):
    table = table or proc_table()
    kids = {}
    for pid, i in table.items():
        kids.setdefault(i.get("ppid"), []).append(pid)
    seen, todo = set(), [root]
    while todo:
        for c in kids.get(todo.pop(), []):
            if c not in seen:
                seen.add(c)
                todo.append(c)
    return {p: table[p] for p in seen}


def sandbox_leftovers(extra_token=None):
    """Processes a sandbox left behind: sandbox-uid descendants of this process, and any host
    process whose command line carries the session token (or extra_token)."""
    table = proc_table()
    me = os.getpid()
    bad = {p: i for p, i in descendants(me, table).items() if i.get("uid", 0) >= SANDBOX_UID_MIN}
    for p, i in table.items():
        if p == me:
            continue
        for tok in (TOKEN, extra_token):
            if tok and tok in i.get("cmdline", "") and "pytest" not in i.get("cmdline", "") \
                    and not i.get("cmdline", "").startswith(KILN_BIN):
                bad[p] = i
    return bad


def reap_adopted():
    """Reap zombies re-parented to us (we are a subreaper). Only call when no subprocess of
    ours is running."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def own_cgroup_roots():
    """The directories where kiln (our child) creates its cgroups: <hierarchy>/<our own
    cgroup>/kiln for each hierarchy of /proc/self/cgroup (sandbox.md §5.1 A4). Other
    sessions on this host live in other memory cgroups; their kiln groups are not ours."""
    roots = set()
    for line in (_read("/proc/self/cgroup") or "").splitlines():
        hid, ctrls, path = line.split(":", 2)
        names = ["unified"] if hid == "0" else \
            [ctrls.replace("name=", "")] + ctrls.replace("name=", "").split(",")
        for n in names:
            d = os.path.join("/sys/fs/cgroup", n)
            if os.path.isdir(d):
                roots.add(os.path.normpath(d + path))
                break
    return roots


def cgroup_dirs():
    """Every directory at or below <own cgroup>/kiln in every hierarchy."""
    out = set()
    for r in own_cgroup_roots():
        for dirpath, dirnames, _ in os.walk(os.path.join(r, "kiln")):
            out.add(dirpath)
    return out


def cgroup_in_use(d):
    """True when a process lives in the cgroup d or below it."""
    for dirpath, _, files in os.walk(d):
        if "cgroup.procs" in files and (_read(os.path.join(dirpath, "cgroup.procs")) or "").strip():
            return True
    return False


def kiln_mounts():
    """Mounts under kiln's run directories (workspaces, slot roots). Other suites use their own
    run directories (e.g. the unit tests' /tmp/kiln-sbx-test-*), not ours."""
    out = set()
    for line in (_read("/proc/self/mountinfo") or "").splitlines():
        f = line.split(" ")
        if any(f[4] == rd or f[4].startswith(rd + "/") for rd in RUN_DIRS):
            out.add(" ".join(f[3:5]) + " " + line.split(" - ", 1)[-1])
    return out


# Temporary directories of the sandbox library's own unit tests (tests/unit), not of `kiln run`:
# reported separately, never blamed on this suite.
FOREIGN_TEMP_PREFIXES = ("kiln-sbx-test-", "kiln-sbx-unpriv-")
RUN_DIRS = ("/run/kiln", "/tmp/kiln-%d" % os.geteuid())  # cmd_run.c RUN_DIR_ROOT / unprivileged


def temp_leftovers():
    """Per-run temporary entries: anything inside the run directory's per-run areas (slot
    roots, workspaces), and anything in /tmp, /var/tmp, /dev/shm or /run owned by a sandbox
    uid. The run directory's skeleton (root/, slots/ with its lock files, ws/) is kiln's
    persistent state, not a leftover. Names alone are not used: other engineers' test suites
    (tests/e2e, tests/unit, fuzzers) create /tmp/kiln-* directories of their own on this
    shared host."""
    out = set()
    for rd in RUN_DIRS:
        for sub in ("root", "ws"):
            try:
                out.update(os.path.join(rd, sub, n) for n in os.listdir(os.path.join(rd, sub)))
            except OSError:
                pass
    for top in ("/tmp", "/var/tmp", "/dev/shm", "/run"):
        try:
            names = os.listdir(top)
        except OSError:
            continue
        for n in names:
            p = os.path.join(top, n)
            if p in RUN_DIRS or n.startswith(FOREIGN_TEMP_PREFIXES):
                continue
            try:
                st = os.lstat(p)
            except OSError:
                continue
            if st.st_uid >= SANDBOX_UID_MIN:
                out.add(p)
    return out


def sha(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError as e:
        return "unreadable:%s" % e.errno


def make_subreaper():
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_CHILD_SUBREAPER = 36
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def _describe_procs(bad):
    return "\n".join("  pid %d uid %s state %s ppid %s: %s" % (p, i.get("uid"), i.get("state"),
                     i.get("ppid"), i.get("cmdline", "")[:200]) for p, i in sorted(bad.items()))


# --------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="session", autouse=True)
def host_baseline():
    """Session post-condition: nothing kiln made is left on the host after this file's tests."""
    if not os.access(KILN_BIN, os.X_OK):
        pytest.exit("kiln binary not built: %s" % KILN_BIN, returncode=1)
    make_subreaper()
    before = {"mounts": kiln_mounts(), "cgroups": cgroup_dirs(), "temp": temp_leftovers(),
              "passwd": sha("/etc/passwd"), "shadow": sha("/etc/shadow")}
    yield before
    reap_adopted()
    problems = []
    # Other engineers run kiln on this host all the time (same run dir, same slot numbers and
    # cgroup names), so an entry counts as left behind only if it is new since the start of
    # this file, is present at every sample of a 6 s window, and (for cgroups) holds no
    # process at any sample. A leak of ours stays put; a concurrent run comes and goes.
    leftovers = sandbox_leftovers()
    mounts = kiln_mounts() - before["mounts"]
    cgroups = {d for d in cgroup_dirs() - before["cgroups"] if not cgroup_in_use(d)}
    temp = temp_leftovers() - before["temp"]
    deadline = time.monotonic() + 6.0
    while (leftovers or mounts or cgroups or temp) and time.monotonic() < deadline:
        time.sleep(0.25)
        reap_adopted()
        leftovers = {p: i for p, i in sandbox_leftovers().items() if p in leftovers}
        mounts &= kiln_mounts()
        cgroups = {d for d in cgroups & cgroup_dirs() if not cgroup_in_use(d)}
        temp &= temp_leftovers()
    if leftovers:
        problems.append("sandbox processes left running:\n" + _describe_procs(leftovers))
    if mounts:
        problems.append("mounts left in the host mount table:\n  " + "\n  ".join(sorted(mounts)))
    if cgroups:
        problems.append("cgroup directories left:\n  " + "\n  ".join(sorted(cgroups)))
    if temp:
        problems.append("temporary files/directories left:\n  " + "\n  ".join(sorted(temp)))
    for f in ("passwd", "shadow"):
        if sha("/etc/" + f) != before[f]:
            problems.append("/etc/%s changed during the suite" % f)
    assert not problems, "host not clean after the hostile suite:\n" + "\n".join(problems)


@pytest.fixture(autouse=True)
def no_survivors():
    """Per-test post-condition: no sandbox process outlives its `kiln run`."""
    yield
    reap_adopted()
    bad = sandbox_leftovers()
    if bad:
        time.sleep(1.0)
        reap_adopted()
        still = sandbox_leftovers()
        msg = ("sandbox processes alive after kiln run returned%s:\n%s"
               % (" (still alive 1 s later)" if still else " (gone 1 s later)",
                  _describe_procs(bad)))
        for p in still:  # don't let one failure cascade into every later test
            try:
                os.kill(p, signal.SIGKILL)
            except OSError:
                pass
        pytest.fail(msg)


@pytest.fixture
def canary(tmp_path):
    """A host file with a unique content, outside every bind (in the host's /tmp)."""
    p = tmp_path / ("canary-" + TOKEN + ".txt")
    p.write_text("CANARY-" + TOKEN + "-" + "s" * 7000 + "\n")  # 7000+ bytes: a distinctive size
    os.chmod(tmp_path, 0o755)
    return p


def errname(n):
    try:
        return errno.errorcode[int(n)]
    except (KeyError, ValueError):
        return str(n)
