/* The inside of a zygote child: what a process forked from the Python zygote does to become a
 * sandbox of its own, with the cold path's pieces (mounts.c, caps.c, landlock.c, child.c's
 * rlimits and lo) and the supervisor's precompiled seccomp filter. Linked into the zygote's
 * extension module (pyext/); runs in a fresh fork of a single-threaded interpreter, so raw
 * system calls and stack memory only, as in child.c.
 *
 * Two halves: sbx_zchild_isolate() right after the fork (ahead of demand: new namespaces, a
 * fresh /proc, lo), and sbx_zchild_enter() when the job arrives (fresh /tmp and /dev/shm, the
 * workspace at /mnt/data, stdio, the slot's uid, a user namespace in which it is 1000, no
 * capabilities, no_new_privs, Landlock, rlimits, seccomp last). */
#include "sandbox/zchild.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef MOVE_MOUNT_F_EMPTY_PATH
#define MOVE_MOUNT_F_EMPTY_PATH 0x00000004
#endif

int sbx_zchild_isolate(int *stage)
{
    int rc;

    /* The cgroup namespace after the supervisor moved us into our groups: /proc/self/cgroup
     * shows "/". The PID namespace is already ours (the zygote unshared it before forking: we
     * are its PID 1). */
    *stage = SBX_ST_CGROUPNS;
    if (unshare(CLONE_NEWCGROUP | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
        return -errno;
    /* The zygote's own code (bound for it alone): already loaded, no business of the child's. */
    *stage = SBX_ST_BIND;
    if (umount2(SBX_ZYGOTE_EXT_DIR, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
        return -errno;
    *stage = SBX_ST_PROC;
    rc = sbx_mounts_proc();
    if (rc < 0)
        return rc;
    *stage = SBX_ST_NET;
    rc = sbx_net_up();
    if (rc < 0)
        return rc;
    sethostname("sandbox", 7);
    return 0;
}

static int write_self(const char *file, const char *text)
{
    char path[64];
    size_t len = strlen(text);
    int fd, rc = 0;

    sbx_path_join(path, sizeof path, "/proc/self", file);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (write(fd, text, len) != (ssize_t)len)
        rc = -errno;
    close(fd);
    return rc;
}

/* "1000 <uid> 1\n" without snprintf (async-signal-safe enough, but keep to the rule). */
static void id_map(char *buf, size_t size, unsigned uid)
{
    char digits[16];
    size_t n = 0, o = 0;

    do {
        digits[n++] = (char)('0' + uid % 10);
        uid /= 10;
    } while (uid > 0 && n < sizeof digits);
    o = sbx_strlcpy(buf, "1000 ", size);
    while (n > 0 && o + 1 < size)
        buf[o++] = digits[--n];
    buf[o] = '\0';
    if (o + 4 < size) {
        memcpy(buf + o, " 1\n", 4);
    }
}

/* The workspace: a detached mount tree (open_tree(OPEN_TREE_CLONE) by the supervisor; a bind
 * of an O_PATH fd from another mount namespace is refused by the kernel) attached at /mnt/data,
 * then checked to be the very directory the supervisor named, then its fd closed before any
 * user code (CVE-2024-21626: a leaked directory fd is a way out of the root). */
static int attach_ws(const struct zp_job *j, int tree)
{
    struct mount_attr attr = {0};
    struct stat st;

    if (syscall(SYS_move_mount, tree, "", AT_FDCWD, "/mnt/data", MOVE_MOUNT_F_EMPTY_PATH) < 0)
        return -errno;
    close(tree);
    attr.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
    if (mount_setattr(AT_FDCWD, "/mnt/data", 0, &attr, sizeof attr) < 0)
        return -errno;
    if (stat("/mnt/data", &st) < 0)
        return -errno;
    if ((uint64_t)st.st_dev != j->ws_dev || (uint64_t)st.st_ino != j->ws_ino)
        return -EXDEV;
    return 0;
}

static int lift(int fd)
{
    return fd < 0 ? fd : fcntl(fd, F_DUPFD_CLOEXEC, 10);
}

int sbx_zchild_enter(const struct zp_job *j, const struct sbx_zfds *fds,
                     const struct sock_fprog *prog, int landlock_abi, int cap_last, int *stage,
                     int *notify)
{
    struct sbx_plan plan;
    char map[64];
    int in, out, err, rc;
    sigset_t none;

    memset(&plan, 0, sizeof plan);
    sbx_strlcpy(plan.tmp_opts, j->tmp_opts, sizeof plan.tmp_opts);
    sbx_strlcpy(plan.shm_opts, j->shm_opts, sizeof plan.shm_opts);
    plan.file_size_bytes = j->file_size_bytes;
    plan.open_files = j->open_files;
    plan.nproc = j->nproc;
    plan.cpu_s = j->cpu_s;
    plan.data_bytes = j->data_bytes;

    /* Scratch space of this execution alone, over the zygote's. */
    *stage = SBX_ST_TMP;
    rc = sbx_mounts_scratch(&plan);
    if (rc < 0)
        return rc;
    *stage = SBX_ST_DATA;
    if (j->has_ws) {
        rc = attach_ws(j, fds->tree);
        if (rc < 0)
            return rc;
    } else if (mount("tmpfs", "/mnt/data", "tmpfs", MS_NOSUID | MS_NODEV, j->data_opts) < 0) {
        return -errno;
    }

    *stage = SBX_ST_STDIO;
    in = fds->in >= 0 ? fds->in : open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fds->in >= 0)
        lseek(in, 0, SEEK_SET);
    in = lift(in);
    out = lift(fds->out);
    err = lift(fds->err);
    if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
        return -errno;
    /* Only 0, 1, 2 and the channel survive (the caller closes the channel last): the
     * workspace tree, the zygote's sockets — nothing of ours reaches the user's code. */
    if (fds->chan > 3)
        close_range(3, (unsigned)fds->chan - 1, 0);
    close_range((unsigned)fds->chan + 1, ~0U, 0);
    if (chdir("/mnt/data") < 0)
        return -errno;

    /* The slot's uid in the zygote's user namespace (host: the slot's uid, as a cold sandbox
     * of that workspace), then a user namespace of our own in which it is 1000. */
    *stage = SBX_ST_IDS;
    if (syscall(SYS_setgroups, 0, NULL) < 0 || syscall(SYS_setresgid, j->uid, j->uid, j->uid) < 0 ||
        syscall(SYS_setresuid, j->uid, j->uid, j->uid) < 0)
        return -errno;
    /* The uid change made us non-dumpable, which makes the /proc/self id maps root's: a cold
     * sandbox's program is dumpable too (within its own sandbox; ptrace is denied anyway). */
    prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
    if (unshare(CLONE_NEWUSER) < 0)
        return -errno;
    id_map(map, sizeof map, j->uid);
    rc = write_self("uid_map", map);
    if (rc == 0)
        rc = write_self("setgroups", "deny");
    if (rc == 0)
        rc = write_self("gid_map", map);
    if (rc < 0)
        return rc;

    *stage = SBX_ST_CAPS;
    rc = sbx_caps_drop_all(cap_last);
    if (rc < 0)
        return rc;
    *stage = SBX_ST_NNP;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    *stage = SBX_ST_LANDLOCK;
    rc = sbx_landlock_apply(landlock_abi);
    if (rc < 0)
        return rc;
    *stage = SBX_ST_RLIMIT;
    rc = sbx_rlimits_apply(&plan);
    if (rc < 0)
        return rc;
    setpriority(PRIO_PROCESS, 0, 10);
    setsid();
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* With a notification fd for the supervisor (SBX_DONE_FD: the program's end); where the
     * kernel refuses one (a listener above us), without, and the child ends by exiting. */
    *stage = SBX_ST_SECCOMP;
    *notify =
        (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, prog);
    if (*notify >= 0)
        return 0;
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog, 0, 0) < 0)
        return -errno;
    return 0;
}
