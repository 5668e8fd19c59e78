"""Filesystem attacks: reading host files and directories outside the binds, writing outside
/mnt/data and /tmp, device nodes, hard links to host files, chroot escapes, /proc/self/exe, the
mount table, and the host-side glue: symlinks, hard links, FIFOs and traps planted in /mnt/data
for the supervisor that collects `files` after the run (Judge0 CVE-2024-28185/28189)."""
import json
import os

import pytest


from conftest import SOURCE_DIR, TOKEN, run, sha

PROBE = r"""
import json, os, errno
def probe(p):
    try:
        if os.path.isdir(p):
            return "DIR " + json.dumps(sorted(os.listdir(p))[:50])
        with open(p, "rb") as f:
            return "READ " + f.read(4096).decode("latin-1")
    except OSError as e:
        return "ERR " + errno.errorcode.get(e.errno, str(e.errno))
for p in json.loads(@PATHS@):
    print(json.dumps([p, probe(p)]))
"""


def probe_paths(paths, lang="py"):
    r = run("py", PROBE.replace("@PATHS@", repr(json.dumps(paths))), timeout=10)
    r.expect_status("ok")
    got = {}
    for ln in r.lines():
        p, res = json.loads(ln)
        got[p] = res
    assert set(got) == set(paths), r.describe()
    return r, got


HOST_ONLY = [
    # path                                   why it must not be readable
    "/etc/shadow",                           # host secrets (the template /etc has none)
    "/etc/gshadow",
    "/root",                                 # root's home: .bashrc, .config, credentials
    "/root/.bashrc",
    "/home/cloudsdk",                        # a host user's home
    "/work",                                 # the engineers' checkouts
    "/work/shared/docs/DESIGN.md",
    SOURCE_DIR,                              # the repository being tested
    os.path.join(SOURCE_DIR, "CMakeLists.txt"),
    "/var/lib",                              # host state (databases, package state)
    "/var/log",
    "/run/postgresql",                       # host service sockets
    "/proc/1/root/work",                     # through init's root
    "/proc/1/root/root/.bashrc",
    "/proc/self/root/work",
    "/proc/1/cwd/work",
    "/sys/fs/cgroup",                        # cgroupfs (release_agent, CVE-2022-0492)
    "/sys/kernel",
    "/boot",
    "/etc/ssh/ssh_host_ed25519_key",
]


def test_host_paths_are_invisible(canary):
    """Every host path outside the binds is absent (ENOENT) or unreadable (EACCES): no listing,
    no content — also not through /proc/1/root, /proc/self/root or /proc/1/cwd."""
    paths = HOST_ONLY + [str(canary), str(canary.parent)]
    r, got = probe_paths(paths)
    leaks = {p: v[:120] for p, v in got.items() if not v.startswith("ERR ")}
    # an empty directory of the sandbox's own (e.g. /root, /var) reveals nothing of the host
    leaks = {p: v for p, v in leaks.items() if v != "DIR []"}
    assert not leaks, "host paths visible in the sandbox: %s" % json.dumps(leaks, indent=1)
    assert "CANARY-" + TOKEN not in r.raw


def test_root_directory_is_the_sandbox_not_the_host():
    """/, /proc/1/root and /proc/self/root list the sandbox's root, none of the host's top-level
    entries that the recipe does not bind (work, root's files, home, srv, boot...)."""
    r, got = probe_paths(["/", "/proc/1/root", "/proc/self/root", "/home", "/var", "/run"])
    host_only = {"work", "boot", "srv", "opt", "lost+found"}
    for p in ("/", "/proc/self/root"):
        assert got[p].startswith("DIR "), (p, got[p])
    for p, v in got.items():
        if v.startswith("DIR "):
            seen = set(json.loads(v[4:]))
            assert not (seen & host_only), "%s lists host entries %s" % (p, seen & host_only)
            assert not (seen & {"cloudsdk", "postgresql", "backups", "mail", "spool"}), (p, seen)


def test_environment_carries_no_host_variables():
    """A secret in kiln's own environment must reach neither the program's environment nor
    /proc/1/environ (judge0#564)."""
    env = dict(os.environ, KILN_HOSTILE_SECRET="secret-" + TOKEN,
               AWS_SECRET_ACCESS_KEY="aws-" + TOKEN)
    code = r"""
import os
print(repr(dict(os.environ)))
for p in os.listdir("/proc"):
    if p.isdigit():
        try:
            print(p, open("/proc/%s/environ" % p, "rb").read())
        except OSError as e:
            print(p, "ERR", e.errno)
"""
    r = run("py", code, timeout=5, env=env)
    r.expect_status("ok")
    assert TOKEN not in r.stdout, r.describe()


# Existing host files: opened for writing with O_APPEND and nothing written, so that a broken
# sandbox under development cannot damage the shared host. New names carry the session token
# and are removed again if they could be created.
WRITE_EXISTING = [
    "/usr/bin/python3", "/bin/sh", "/etc/passwd", "/usr/lib/os-release",
    "/proc/sys/kernel/sysrq", "/proc/sysrq-trigger", "/proc/sys/kernel/core_pattern",
    "/proc/sys/vm/drop_caches", "/proc/self/attr/current", "/proc/self/oom_score_adj_x",
]
WRITE_NEW_IN = ["/", "/usr", "/usr/bin", "/etc", "/lib", "/var", "/home", "/root", "/run",
                "/dev", "/sys", "/proc", "/srv"]


def test_python_cannot_write_outside_data_and_tmp():
    code = r"""
import errno, json, os
tok = "@TOKEN@"
for p in json.loads(@E@):
    try:
        os.close(os.open(p, os.O_WRONLY | os.O_APPEND))
        print(p, "OPENED")
    except OSError as e:
        print(p, errno.errorcode.get(e.errno, e.errno))
for d in json.loads(@N@):
    p = os.path.join(d, "kh-" + tok)
    try:
        os.close(os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.unlink(p)
        print(p, "CREATED")
    except OSError as e:
        print(p, errno.errorcode.get(e.errno, e.errno))
for p in ("/mnt/data/ok.txt", "/tmp/ok.txt"):
    with open(p, "w") as f:
        f.write("ok")
    print(p, "WROTE")
""".replace("@E@", repr(json.dumps(WRITE_EXISTING))).replace(
        "@N@", repr(json.dumps(WRITE_NEW_IN))).replace("@TOKEN@", TOKEN)
    r = run("py", code, timeout=10)
    r.expect_status("ok")
    res = r.kv()
    targets = WRITE_EXISTING + [os.path.join(d, "kh-" + TOKEN) for d in WRITE_NEW_IN]
    assert len(res) == len(targets) + 2, r.describe()
    for p in targets:
        assert res.get(p) in ("EROFS", "EACCES", "EPERM", "ENOENT", "EINVAL", "ETXTBSY"), \
            "write to %s: %s\n%s" % (p, res.get(p), r.describe())
    assert res.get("/mnt/data/ok.txt") == "WROTE" and res.get("/tmp/ok.txt") == "WROTE"


def test_bash_cannot_modify_the_runtime():
    # non-destructive probes: ">>" with nothing to append, chmod to the mode it already has
    code = r"""
: >> /bin/sh 2>/dev/null; echo sh=$?
: >> /usr/bin/env 2>/dev/null; echo env=$?
touch /usr/kh-@TOKEN@ /etc/kh-@TOKEN@ /kh-@TOKEN@ 2>/dev/null; echo touch=$?
chmod 755 /usr/bin 2>/dev/null; echo chmod=$?
chown 0:0 /usr/bin/env 2>/dev/null; echo chown=$?
mkdir /kh-dir-@TOKEN@ 2>/dev/null; echo mkdir=$?
mount -o remount,rw / 2>/dev/null; echo remount=$?
mount -o remount,rw /usr 2>/dev/null; echo remount_usr=$?
: >> /proc/sys/kernel/sysrq 2>/dev/null; echo sysrq=$?
""".replace("@TOKEN@", TOKEN)
    r = run("bash", code, timeout=10)
    kv = dict(ln.split("=", 1) for ln in r.lines() if "=" in ln)
    for k in ("sh", "env", "touch", "chmod", "chown", "mkdir", "remount", "remount_usr",
              "sysrq"):
        assert kv.get(k) not in (None, "0"), "%s succeeded\n%s" % (k, r.describe())


def test_dev_is_minimal_and_mknod_fails():
    code = r"""
import os, errno, json
print("LS", json.dumps(sorted(os.listdir("/dev"))))
for p in ("/dev/mem", "/dev/kmem", "/dev/port", "/dev/kmsg", "/dev/vda", "/dev/sda",
          "/dev/fuse", "/dev/kvm", "/dev/net/tun", "/dev/console", "/dev/ttyS0",
          "/dev/userfaultfd", "/dev/vsock", "/dev/loop-control", "/dev/tty"):
    try:
        os.close(os.open(p, os.O_RDWR))
        print("OPEN", p, "OK")
    except OSError as e:
        print("OPEN", p, errno.errorcode.get(e.errno))
for name, mode, dev in (("blk", 0o60600, os.makedev(8, 0)), ("chr", 0o20600, os.makedev(1, 1))):
    try:
        os.mknod("/tmp/" + name, mode, dev)
        print("MKNOD", name, "OK")
    except OSError as e:
        print("MKNOD", name, errno.errorcode.get(e.errno))
"""
    r = run("py", code, timeout=5)
    r.expect_status("ok")
    devs = set(json.loads(r.lines()[0][3:]))
    allowed = {"null", "zero", "full", "random", "urandom", "tty", "fd", "stdin", "stdout",
               "stderr", "shm", "pts", "ptmx", "mqueue"}
    assert devs <= allowed, "unexpected device entries: %s" % (devs - allowed)
    for ln in r.lines()[1:]:
        kind, what, res = ln.split()
        assert res != "OK", "%s %s succeeded" % (kind, what)
        if kind == "MKNOD":
            assert res in ("EPERM", "EACCES"), ln


def test_mount_table_shows_no_host_paths():
    """Only the sandbox's own mounts: no host checkout, home or old root, no cgroupfs, sysfs or
    devpts (CVE-2022-0492 needs a cgroup v1 mount)."""
    r = run("bash", "cat /proc/self/mountinfo\n", timeout=5)
    r.expect_status("ok")
    assert r.lines(), r.describe()
    for ln in r.lines():
        f = ln.split(" ")
        root, point = f[3], f[4]
        fstype = ln.split(" - ", 1)[1].split(" ")[0]
        assert fstype not in ("cgroup", "cgroup2", "sysfs", "devpts", "debugfs", "securityfs",
                              "bpf", "fusectl", "tracefs", "configfs"), ln
        for bad in ("/work", SOURCE_DIR, "/root", "/home", "/oldroot", "/newroot", "/run/kiln"):
            assert not point.startswith(bad) and not root.startswith(bad), ln


def test_hardlinks_to_host_and_runtime_files_fail():
    code = r"""
import os, errno
for src, dst in (("/etc/passwd", "/mnt/data/pw"), ("/usr/bin/python3", "/tmp/p"),
                 ("/usr/bin/python3", "/mnt/data/py"), ("/etc/shadow", "/mnt/data/sh"),
                 ("/proc/self/exe", "/mnt/data/exe")):
    try:
        os.link(src, dst)
        print(dst, "LINKED")
    except OSError as e:
        print(dst, errno.errorcode.get(e.errno))
"""
    r = run("py", code, timeout=5)
    r.expect_status("ok")
    for dst, res in r.kv().items():
        assert res in ("EXDEV", "EPERM", "ENOENT", "EACCES", "EROFS"), (dst, res)
    for name in ("pw", "py", "sh", "exe"):
        assert name not in r.files


# --------------------------------------------------------------------------- chroot

CHROOT_ESCAPE = r"""
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
int main(void) {
    mkdir("/tmp/jail", 0755);
    int outer = open("/", O_RDONLY | O_DIRECTORY);
    int r = chroot("/tmp/jail");
    printf("chroot %d %s\n", r, r ? strerror(errno) : "ok");
    /* the classic escape: fchdir to a directory outside the new root, climb, chroot(".") */
    if (outer >= 0) fchdir(outer);
    for (int i = 0; i < 64; i++) chdir("..");
    int r2 = chroot(".");
    printf("chroot2 %d %s\n", r2, r2 ? strerror(errno) : "ok");
    struct stat st;
    printf("work %s\n", stat("/work", &st) == 0 ? "VISIBLE" : "absent");
    printf("root_bashrc %s\n", stat("/root/.bashrc", &st) == 0 ? "VISIBLE" : "absent");
    return 0;
}
"""


def test_chroot_and_double_chroot_escape_fail():
    r = run("c", CHROOT_ESCAPE, timeout=10)
    r.expect_status("ok")
    kv = r.kv()
    assert kv.get("chroot", "").startswith("-1 Operation not permitted"), r.describe()
    assert kv.get("chroot2", "").startswith("-1 Operation not permitted"), r.describe()
    assert kv.get("work") == "absent" and kv.get("root_bashrc") == "absent", r.describe()


# --------------------------------------------------------------------------- /proc/self/exe

def test_proc_self_exe_cannot_be_opened_for_writing():
    """runc CVE-2019-5736: overwrite the binary that runs us through /proc/self/exe (or init's
    /proc/1/exe, or the interpreter)."""
    code = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
static void t(const char *p, int flags) {
    int fd = open(p, flags);
    if (fd >= 0) {
        long w = write(fd, "", 0);
        printf("%s OPENED %ld\n", p, w);
        close(fd);
    } else printf("%s %s\n", p, strerrorname_np(errno));
}
int main(void) {
    t("/proc/self/exe", O_WRONLY);
    t("/proc/self/exe", O_RDWR);
    t("/proc/1/exe", O_WRONLY);
    t("/proc/1/exe", O_RDWR);
    t("/usr/bin/python3", O_WRONLY);
    t("/usr/bin/bash", O_RDWR);
    t("/usr/lib/x86_64-linux-gnu/libc.so.6", O_WRONLY);
    return 0;
}
"""
    r = run("c", code, timeout=10)
    r.expect_status("ok")
    assert len(r.lines()) == 7, r.describe()
    for ln in r.lines():
        path, res = ln.split()[:2]
        assert res in ("ETXTBSY", "EACCES", "EROFS", "EPERM", "ENOENT"), ln


def test_python_cannot_overwrite_its_interpreter():
    code = r"""
import sys, errno
for p in ("/proc/self/exe", sys.executable, "/proc/1/exe"):
    try:
        open(p, "r+b").close()
        print(p, "OPENED")
    except OSError as e:
        print(p, errno.errorcode.get(e.errno))
"""
    r = run("py", code, timeout=5)
    r.expect_status("ok")
    for p, res in r.kv().items():
        assert res in ("ETXTBSY", "EACCES", "EROFS", "EPERM", "ENOENT"), (p, res)


# --------------------------------------------------------------------------- host-side glue

PLANT = r"""
set -u
cd /mnt/data
printf 'normal-content' > normal.txt
ln -s /etc/shadow shadow.txt
ln -s /etc/passwd passwd.txt
ln -s /proc/1/root/etc/shadow proc1_shadow.txt
ln -s ../../etc/passwd relative_passwd.txt
ln -s "@CANARY@" canary.txt
ln -s "@REPO@/CMakeLists.txt" repo.txt
ln -s /proc/self/environ environ.txt
ln -s / rootlink
ln -s /etc etclink
ln -s "@CANARYDIR@" canarydir
ln -s .. up
mkdir -p sub
ln -s ../../../../etc/passwd sub/deep.txt
printf 'pair' > pair_a.txt
ln pair_a.txt pair_b.txt
ls -la /mnt/data >&2
"""


def test_planted_symlinks_are_not_followed_by_the_supervisor(canary):
    """Symlinks planted in /mnt/data that point at host files (absolute, relative, through
    /proc, at directories) must not be reported in `files` with host content or metadata; the
    supervisor does not follow them. normal.txt is the positive control."""
    code = (PLANT.replace("@CANARY@", str(canary)).replace("@REPO@", SOURCE_DIR)
            .replace("@CANARYDIR@", str(canary.parent)))
    r = run("bash", code, timeout=10)
    r.expect_status("ok")
    files = r.files
    assert "normal.txt" in files, "the regular file is missing from files: %s" % r.describe()
    assert files["normal.txt"].get("size") == len("normal-content")
    links = ["shadow.txt", "passwd.txt", "proc1_shadow.txt", "relative_passwd.txt",
             "canary.txt", "repo.txt", "environ.txt", "sub/deep.txt"]
    for name in links:
        assert name not in files, "symlink %s reported as a file: %s" % (name, files[name])
    for path in files:
        assert not path.startswith(("rootlink/", "etclink/", "canarydir/", "up/")), \
            "the walker followed a directory symlink: %s" % path
    # nothing the size of a host target either
    host_sizes = {os.path.getsize(p) for p in (str(canary), "/etc/shadow", "/etc/passwd",
                                                os.path.join(SOURCE_DIR, "CMakeLists.txt"))}
    for path, f in files.items():
        assert f.get("size") not in host_sizes or path == "normal.txt", (path, f)
    assert "CANARY-" + TOKEN not in r.raw


def test_symlink_swap_race_during_collection(canary):
    """A process keeps swapping a regular file and a symlink to a host file under the same name
    while the run ends, hoping the supervisor checks one and opens the other."""
    code = r"""
import os, time
os.chdir("/mnt/data")
with open("race_reg", "w") as f:
    f.write("tiny")
if os.fork() == 0:
    os.setsid()
    for i in range(200000):
        try:
            os.symlink("@CANARY@", "race_lnk")
        except FileExistsError:
            pass
        os.rename("race_lnk", "race.txt")
        with open("race_reg", "w") as f:
            f.write("tiny")
        os.rename("race_reg", "race.txt")
    os._exit(0)
time.sleep(0.5)
print("MAIN-EXIT")
""".replace("@CANARY@", str(canary))
    canary_size = os.path.getsize(canary)
    for _ in range(3):
        r = run("py", code, timeout=5)
        assert "MAIN-EXIT" in r.stdout, r.describe()
        for path, f in r.files.items():
            assert f.get("size") != canary_size, "host canary reported as %s: %s" % (path, f)
        assert "CANARY-" + TOKEN not in r.raw


def test_collection_survives_traps(tmp_path):
    """FIFOs, sockets, a symlink loop, an unreadable directory and deep nesting: the supervisor
    neither hangs nor follows; the regular file is still reported."""
    code = r"""
import os, socket
os.chdir("/mnt/data")
open("ok.txt", "w").write("ok")
os.mkfifo("out.txt")
s = socket.socket(socket.AF_UNIX); s.bind("sock")
os.symlink(".", "loop")
os.symlink("loop/loop/loop", "loop2")
os.mkdir("locked"); open("locked/secret.txt", "w").write("x"); os.chmod("locked", 0)
p = "deep"
for i in range(300):
    os.mkdir(p)
    p += "/d"
for i in range(3000):
    open("many_%d" % i, "w").close()
print("PLANTED")
"""
    r = run("py", code, timeout=10, limit=40)
    assert "PLANTED" in r.stdout, r.describe()
    files = r.files
    assert "ok.txt" in files, r.describe()
    for bad in ("out.txt", "sock", "loop", "loop2"):
        assert bad not in files, (bad, files.get(bad))
    assert all(not p.startswith(("loop/", "loop2/")) for p in files)


def test_mounted_host_file_is_not_written_back_through_a_symlink(tmp_path, canary):
    """--mount copies a host file in; the program replaces it with a symlink to another host
    file and writes through it. Neither host file may change."""
    src = tmp_path / "input.txt"
    src.write_text("input-" + TOKEN)
    before = (sha(str(src)), sha(str(canary)))
    code = r"""
cd /mnt/data
cat data.txt
echo appended >> data.txt
rm -f data.txt
ln -s "@CANARY@" data.txt
echo pwned > data.txt 2>/dev/null
ln -s "@SRC@" src.txt
echo pwned > src.txt 2>/dev/null
true
""".replace("@CANARY@", str(canary)).replace("@SRC@", str(src))
    r = run("bash", code, timeout=10, mounts=["%s:data.txt" % src])
    assert ("input-" + TOKEN) in r.stdout, "the mounted file did not reach the sandbox\n" + \
        r.describe()
    assert (sha(str(src)), sha(str(canary))) == before, "a host file changed"
    assert "data.txt" not in r.files or r.files["data.txt"].get("size") != os.path.getsize(canary)


# --------------------------------------------------------------------------- compile time

def test_c_include_of_host_files_fails_at_compile_time():
    """#include of host secrets and of the repository: the compiler runs inside the sandbox
    and cannot see them (compile error, status error, no content in the diagnostics)."""
    code = '#include "/etc/shadow"\n#include "%s/CMakeLists.txt"\nint main(void){return 0;}\n' \
        % SOURCE_DIR
    r = run("c", code, timeout=10, limit=40)
    r.expect_status("error")
    assert "No such file or directory" in r.stderr or "Permission denied" in r.stderr, \
        r.describe()
    assert "cmake_minimum_required" not in r.raw and "root:" not in r.raw


def test_c_include_of_dev_zero_is_bounded():
    """#include </dev/zero> never ends: the compile step is stopped by the sandbox's limits."""
    r = run("c", "#include </dev/zero>\nint main(void){return 0;}\n", timeout=4, memory=256,
            limit=40)
    r.expect_status("error", "timeout", "oom", "output_limit")


# --------------------------------------------------------------------------- kiln's own CLI glue

def test_arguments_are_not_interpreted_by_a_host_shell(tmp_path):
    """--arg values reach the program verbatim as argv; nothing on the host runs them."""
    marker = tmp_path / "pwned"
    evil = ["$(touch %s)" % marker, "`touch %s`" % marker, "; touch %s" % marker,
            "a'b\"c", "--json", "-l"]
    r = run("py", "import sys, json\nprint(json.dumps(sys.argv[1:]))\n", timeout=5, args=evil)
    r.expect_status("ok")
    assert json.loads(r.stdout) == evil, r.describe()
    assert not marker.exists(), "an argument was run by a shell on the host"


@pytest.mark.parametrize("name", ["../../kh-escape", "/kh-escape-abs", "a/../../kh-escape",
                                  "..", "code.py"])
def test_mount_names_cannot_escape_the_workspace(tmp_path, name):
    """--mount HOST:NAME with a hostile NAME: refused (usage error) or kept inside /mnt/data —
    never written next to the workspace on the host, and never replacing the program."""
    src = tmp_path / "in.txt"
    src.write_text("mounted-" + TOKEN)
    before = set(os.listdir("/run/kiln")) if os.path.isdir("/run/kiln") else set()
    r = run("py", "import os\nprint('RAN')\n", timeout=5, mounts=["%s:%s" % (src, name)])
    after = set(os.listdir("/run/kiln")) if os.path.isdir("/run/kiln") else set()
    assert not any("kh-escape" in n for n in after - before), after - before
    for top in ("/", "/run", "/tmp", str(tmp_path.parent)):
        assert not os.path.exists(os.path.join(top, "kh-escape")), top
        assert not os.path.exists(os.path.join(top, "kh-escape-abs")), top
    if r.rc in (2, 125) and r.data is None:
        return  # refused
    assert "RAN" in r.stdout, "the program was replaced or did not run: " + r.describe()
    for p in r.files:
        assert ".." not in p.split("/"), p


def test_hostile_file_names_keep_the_result_valid():
    """File names with newlines, quotes, backslashes, control characters, invalid UTF-8 and
    255 bytes: the result stays one valid UTF-8 JSON object, and no reported path escapes
    /mnt/data."""
    code = r"""
import os
os.chdir(b"/mnt/data")
names = [b"new\nline", b'quo"te', b"back\\slash", b"ctl\x01\x1b[2J", b"bad\xff\xfeutf8",
         b"x" * 255, b"-rf", b"..." , b" lead", b"\xe2\x80\xaeright-to-left"]
for n in names:
    with open(n, "wb") as f:
        f.write(b"data")
os.makedirs(b"d\n/e\"", exist_ok=True)
open(b"d\n/e\"/f\xff", "wb").write(b"x")
print("MADE", len(names) + 1)
"""
    r = run("py", code, timeout=5)
    assert r.data is not None, "not valid JSON: %s %r" % (r.json_error, r.raw[:300])
    assert r.utf8_valid, "kiln printed invalid UTF-8"
    assert "MADE" in r.stdout, r.describe()
    for p in r.files:
        assert ".." not in p.split("/") and not p.startswith("/"), p
    assert any(p.startswith("x" * 100) for p in r.files), "the plain long name was dropped"
