/* The inside of a sandbox: init (PID 1 of the new namespaces) and the program it forks for each
 * step. This code runs in a clone of the caller's process, which may have had other threads:
 * their locks (malloc's, stdio's) may be held forever in this copy, and glibc still believes
 * they exist. So only raw system calls and stack memory here; every string was prepared by the
 * supervisor (struct sbx_plan). setresuid/setgroups are raw syscalls because glibc's wrappers
 * would signal the phantom threads (setxid broadcast) and hang. */
#include "sandbox/sbx_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

size_t sbx_strlcpy(char *dst, const char *src, size_t size)
{
    size_t len = strlen(src);

    if (size > 0) {
        size_t n = len < size - 1 ? len : size - 1;
        memcpy(dst, src, n);
        dst[n] = '\0';
    }
    return len;
}

bool sbx_path_join(char *dst, size_t size, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    bool slash = lb > 0 && b[0] != '/';

    if (la + lb + (slash ? 1 : 0) + 1 > size)
        return false;
    memcpy(dst, a, la);
    if (slash)
        dst[la++] = '/';
    memcpy(dst + la, b, lb + 1);
    return true;
}

static void report(const struct sbx_plan *plan, int kind, int step, int stage, int status, int err)
{
    struct sbx_rec rec = {kind, step, stage, status, err};
    ssize_t n;

    do {
        n = write(plan->report_w, &rec, sizeof rec);
    } while (n < 0 && errno == EINTR);
}

static void __attribute__((noreturn)) fail(const struct sbx_plan *plan, int stage, int err)
{
    report(plan, SBX_REC_SETUP_FAIL, -1, stage, 0, err < 0 ? -err : err);
    _exit(127);
}

/* Close every fd but the ones in keep (sorted ascending): a sibling sandbox cloned at the same
 * moment in another thread would otherwise hold our pipes (and we its), and a leaked service fd is
 * the CVE-2024-21626 escape. */
static void close_except(const int *keep, size_t n)
{
    unsigned from = 0;

    for (size_t i = 0; i < n; i++) {
        if (keep[i] < 0)
            continue;
        if ((unsigned)keep[i] > from)
            close_range(from, (unsigned)keep[i] - 1, 0);
        from = (unsigned)keep[i] + 1;
    }
    close_range(from, ~0U, 0);
}

static void sort_fds(int *fds, size_t n)
{
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && fds[j - 1] > fds[j]; j--) {
            int t = fds[j];
            fds[j] = fds[j - 1];
            fds[j - 1] = t;
        }
}

/* Become uid/gid 1000 (mapped to the slot's host uid) while keeping the capabilities of our
 * user namespace: until then our fsuid is host root, unmapped here, and creating any inode on the
 * new tmpfs would fail (EOVERFLOW). */
static int switch_ids(const struct sbx_plan *plan)
{
    if (prctl(PR_SET_SECUREBITS, SECBIT_KEEP_CAPS | SECBIT_NO_SETUID_FIXUP, 0, 0, 0) < 0)
        return -errno;
    /* As root the supervisor left setgroups allowed so that we drop the host's supplementary
     * groups here; unprivileged it had to deny it, and our groups are the caller's. */
    if (plan->ctx->root && syscall(SYS_setgroups, 0, NULL) < 0)
        return -errno;
    if (syscall(SYS_setresgid, SBX_INNER_GID, SBX_INNER_GID, SBX_INNER_GID) < 0)
        return -errno;
    if (syscall(SYS_setresuid, SBX_INNER_UID, SBX_INNER_UID, SBX_INNER_UID) < 0)
        return -errno;
    return 0;
}

/* Bring lo up: local sockets work (some runtimes talk to themselves), nothing leaves the sandbox
 * because the namespace has no other interface. */
static int net_up(void)
{
    struct ifreq ifr;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int rc = 0;

    if (fd < 0)
        return -errno;
    memset(&ifr, 0, sizeof ifr);
    sbx_strlcpy(ifr.ifr_name, "lo", sizeof ifr.ifr_name);
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
        rc = -errno;
    } else {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
            rc = -errno;
    }
    close(fd);
    return rc;
}

static int set_rlimit(int res, long long v)
{
    struct rlimit rl = {(rlim_t)v, (rlim_t)v};
    return setrlimit(res, &rl) < 0 ? -errno : 0;
}

static int set_rlimits(const struct sbx_plan *plan)
{
    struct rlimit cpu = {(rlim_t)plan->cpu_s + 1, (rlim_t)plan->cpu_s + 2};
    const struct {
        int res;
        long long v;
    } tab[] = {
        {RLIMIT_CORE, 0},
        {RLIMIT_NOFILE, plan->open_files},
        {RLIMIT_FSIZE, plan->file_size_bytes},
        /* Counted per (user namespace, uid) on this kernel, so per sandbox: a backstop behind
         * pids.max, and the only process limit without cgroups. */
        {RLIMIT_NPROC, plan->nproc},
        {RLIMIT_MEMLOCK, 64 * 1024},
        {RLIMIT_MSGQUEUE, 0},
        {RLIMIT_RTPRIO, 0},
        {RLIMIT_NICE, 0},
        {RLIMIT_STACK, 8 * 1024 * 1024},
    };

    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        int rc = set_rlimit(tab[i].res, tab[i].v);
        if (rc < 0)
            return rc;
    }
    /* Without a memory cgroup (unprivileged), RLIMIT_DATA is the memory bound of each process.
     * Not RLIMIT_AS, which breaks the JVM and Go (they reserve far more than they use). */
    if (plan->data_bytes > 0 && set_rlimit(RLIMIT_DATA, plan->data_bytes) < 0)
        return -errno;
    /* CPU: soft = limit + 1 s (SIGXCPU), hard = + 2 s (SIGKILL): the cgroup tick is the first
     * line, this is the per-process backstop. */
    if (plan->cpu_s > 0 && setrlimit(RLIMIT_CPU, &cpu) < 0)
        return -errno;
    return 0;
}

static void put_str(int fd, const char *s)
{
    ssize_t n = write(fd, s, strlen(s));
    (void)n;
}

/* The program of one step: below init, in its own session, with its limits and the filter. */
static void __attribute__((noreturn)) run_step(const struct sbx_plan *plan, size_t idx)
{
    const struct sbx_step *step = &plan->job->steps[idx];
    bool last = idx + 1 == plan->job->nsteps;
    struct sock_fprog prog = {plan->ctx->bpf_len, plan->ctx->bpf};
    int in, err, rep, rc, ns, listener, out = step->stdout_to_stderr ? plan->err_w : plan->out_w;
    sigset_t none;
    struct sbx_plan p3;

    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* A new session without a controlling tty: TIOCSTI has nothing to push into. */
    setsid();
    if (last && plan->stdin_fd >= 0) {
        in = plan->stdin_fd;
        lseek(in, 0, SEEK_SET);
    } else {
        in = open("/dev/null", O_RDONLY | O_CLOEXEC);
    }
    /* Lift every fd above the stdio range first: any of them may itself be 0..3 when the
     * caller runs with closed standard streams, and a dup2 would clobber it. */
    in = in < 0 ? -1 : fcntl(in, F_DUPFD_CLOEXEC, 10);
    out = fcntl(out, F_DUPFD_CLOEXEC, 10);
    err = fcntl(plan->err_w, F_DUPFD_CLOEXEC, 10);
    rep = fcntl(plan->report_w, F_DUPFD_CLOEXEC, 10);
    ns = plan->send_notify ? fcntl(plan->notify_sock, F_DUPFD_CLOEXEC, 10) : -1;
    if (in < 0 || out < 0 || err < 0 || rep < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 ||
        dup2(err, 2) < 0 || dup3(rep, 3, O_CLOEXEC) < 0 || (ns >= 0 && dup3(ns, 4, O_CLOEXEC) < 0))
        goto fail_stdio;
    /* Only 0, 1, 2 reach the program (3 and 4 are close-on-exec, 4 closed before it anyway).
     * From here on the report pipe is fd 3: its original number is closed. */
    close_range(ns >= 0 ? 5 : 4, ~0U, 0);
    p3 = *plan;
    p3.report_w = 3;
    plan = &p3;
    if (chdir("/mnt/data") < 0)
        goto fail_stdio;
    rc = set_rlimits(plan);
    if (rc < 0) {
        report(plan, SBX_REC_SETUP_FAIL, (int)idx, SBX_ST_RLIMIT, 0, -rc);
        _exit(127);
    }
    setpriority(PRIO_PROCESS, 0, 10);
    /* seccomp last: everything above needed syscalls the filter denies or may deny. A step
     * that reports its end hands the filter's notification fd to the supervisor (fd 4). */
    listener = ns >= 0 ? (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                                      SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog)
                       : -1;
    if (listener < 0 && prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0) {
        report(plan, SBX_REC_SETUP_FAIL, (int)idx, SBX_ST_SECCOMP, 0, errno);
        _exit(127);
    }
    if (listener >= 0) {
        sbx_send_fd(4, "N", 1, listener, MSG_DONTWAIT);
        close(listener);
    }
    if (ns >= 0)
        close(4);
    execve(step->argv[0], (char *const *)step->argv, (char *const *)plan->job->env);
    rc = errno;
    {
        struct sbx_rec rec = {SBX_REC_EXEC_FAIL, (int)idx, 0, 0, rc};
        ssize_t n = write(3, &rec, sizeof rec);
        (void)n;
    }
    put_str(2, "kiln: cannot execute ");
    put_str(2, step->argv[0]);
    put_str(2, rc == ENOENT ? ": no such file\n" : ": permission denied or bad format\n");
    _exit(127);
fail_stdio:
    report(plan, SBX_REC_SETUP_FAIL, (int)idx, SBX_ST_STDIO, 0, errno);
    _exit(127);
}

/* Run the steps in order, reaping every child (orphans come to PID 1). Returns nothing: init's
 * exit ends the PID namespace, and the kernel kills whatever is left, daemons included. */
static void run_steps(const struct sbx_plan *plan)
{
    for (size_t i = 0; i < plan->job->nsteps; i++) {
        long pid = syscall(SYS_clone, SIGCHLD, 0, NULL, NULL, 0);
        int status = 0;
        bool failed;

        if (pid < 0)
            fail(plan, SBX_ST_FORK, errno);
        if (pid == 0)
            run_step(plan, i);
        for (;;) {
            int st;
            pid_t w = waitpid(-1, &st, 0);
            if (w < 0 && errno == EINTR)
                continue;
            if (w < 0)
                break;
            if (w == pid) {
                status = st;
                break;
            }
        }
        report(plan, SBX_REC_STEP_DONE, (int)i, 0, status, 0);
        failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
        if (failed && plan->job->steps[i].stop_on_failure)
            break;
    }
}

void sbx_child_init(const struct sbx_plan *plan)
{
    const struct sbx_park_plan *park = plan->park;
    int keep[] = {plan->sync_r,
                  plan->report_w,
                  plan->out_w,
                  plan->err_w,
                  plan->stdin_fd,
                  park != NULL ? park->ctl_fd : -1,
                  park != NULL ? park->interp_in[0] : -1,
                  park != NULL ? park->interp_in[1] : -1};
    const size_t nkeep = sizeof keep / sizeof keep[0];
    sigset_t none;
    char c;
    ssize_t n;
    int rc, stage = SBX_ST_SYNC;

    sort_fds(keep, nkeep);
    close_except(keep, nkeep);
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    /* Die with the supervisor thread: no orphaned sandbox may outlive its supervisor. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    /* Wait until the supervisor has written our uid/gid maps and put us in the v1 cgroups. EOF
     * means it died: give up. */
    do {
        n = read(plan->sync_r, &c, 1);
    } while (n < 0 && errno == EINTR);
    if (n != 1)
        _exit(127);
    close(plan->sync_r);
    /* Non-dumpable: the program runs as the same uid and must not read our memory (a copy of
     * the caller's) through /proc/1/mem, nor ptrace us (also denied by seccomp). */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    rc = switch_ids(plan);
    if (rc < 0)
        fail(plan, SBX_ST_IDS, rc);
    /* The kernel clears the parent-death signal when our credentials change: arm it again, or a
     * kill -9 of the server would leave this sandbox running until the next start's reaper. */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    /* After the cgroup attach, so that /proc/self/cgroup shows "/" and nothing of the host. */
    if (unshare(CLONE_NEWCGROUP) < 0)
        fail(plan, SBX_ST_CGROUPNS, errno);
    rc = sbx_mounts_build(plan, &stage);
    if (rc < 0)
        fail(plan, stage, rc);
    rc = net_up();
    if (rc < 0)
        fail(plan, SBX_ST_NET, rc);
    sethostname("sandbox", 7);
    if (park != NULL)
        park->enter(plan);
    rc = sbx_caps_drop_all(plan->ctx->cap_last);
    if (rc < 0)
        fail(plan, SBX_ST_CAPS, rc);
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        fail(plan, SBX_ST_NNP, errno);
    rc = sbx_landlock_apply(plan->ctx->landlock_abi);
    if (rc < 0)
        fail(plan, SBX_ST_LANDLOCK, rc);
    run_steps(plan);
    _exit(0);
}

/* Entry points for park_child.c (init of a parked sandbox reuses the steps above). */
void sbx_child_report(const struct sbx_plan *plan, int kind, int step, int stage, int status,
                      int err)
{
    report(plan, kind, step, stage, status, err);
}

void sbx_child_run_steps(const struct sbx_plan *plan)
{
    run_steps(plan);
}

void sbx_child_run_step(const struct sbx_plan *plan, size_t idx)
{
    run_step(plan, idx);
}

int sbx_child_confine(const struct sbx_plan *plan, const char *data_dir, int *stage)
{
    int rc;

    *stage = SBX_ST_CAPS;
    rc = sbx_caps_drop_all(plan->ctx->cap_last);
    if (rc < 0)
        return rc;
    *stage = SBX_ST_NNP;
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        return -errno;
    *stage = SBX_ST_LANDLOCK;
    return sbx_landlock_apply_at(plan->ctx->landlock_abi, data_dir);
}

int sbx_send_fds(int sock, const void *buf, size_t len, const int *fds, size_t nfds, int flags)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * SBX_PASS_FDS_MAX)];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = {(void *)buf, len};
    struct msghdr mh = {0};
    ssize_t n;

    if (nfds > SBX_PASS_FDS_MAX)
        return -EINVAL;
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    if (nfds > 0) {
        struct cmsghdr *c;
        memset(&cbuf, 0, sizeof cbuf);
        mh.msg_control = cbuf.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    do {
        n = sendmsg(sock, &mh, MSG_NOSIGNAL | flags);
    } while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : 0;
}

int sbx_send_fd(int sock, const void *buf, size_t len, int fd, int flags)
{
    return sbx_send_fds(sock, buf, len, &fd, fd >= 0 ? 1 : 0, flags);
}

ssize_t sbx_recv_fds(int sock, void *buf, size_t len, int flags, int *fds, size_t max, size_t *nfds)
{
    union {
        char buf[CMSG_SPACE(sizeof(int) * SBX_PASS_FDS_MAX)];
        struct cmsghdr align;
    } cbuf;
    struct iovec iov = {buf, len};
    struct msghdr msg = {0};
    ssize_t n;

    *nfds = 0;
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cbuf.buf;
    msg.msg_controllen = sizeof cbuf.buf;
    do {
        n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
            int f;
            memcpy(&f, CMSG_DATA(c) + i * sizeof(int), sizeof f);
            if (*nfds < max)
                fds[(*nfds)++] = f;
            else
                close(f);
        }
    }
    if (n > 0 && (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)))
        return -EMSGSIZE;
    return n;
}

int sbx_net_up(void)
{
    return net_up();
}

int sbx_rlimits_apply(const struct sbx_plan *plan)
{
    return set_rlimits(plan);
}
